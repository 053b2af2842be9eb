"""The scheduled Container Apps Job that runs `python -m uploader run`, and everything it needs.

In a Container Apps environment (environment.py; the stack's own, or the hosting stack's shared one), a
user-assigned identity with up to three role assignments, each scoped to the one resource it serves
(principalType ServicePrincipal):
  Key Vault Secrets User        on the certificate secret (not the vault)       protection exportable
  Key Vault Crypto User         on the certificate's key (not the vault)        protection vault / hsm
  Storage Blob Data Contributor on the drop-zone container (not the account)
  AcrPull                       on the registry the image is built in (the stack's own or the hosting stack's;
                                none with a configured `image`, which the job pulls with this identity)
With `exportable` the Job reads the key through a Key Vault secret reference (the secret's versioned URL, see
vault.py) via that identity; with `vault`/`hsm` it gets no key at all, only UPLOADER_KEY_ID (the versioned key ID)
and the public certificate, and Key Vault signs its sign-in through that identity. It pulls through it too.
Container Apps already fetches the secret while it creates the job, and a fresh role assignment takes minutes to
apply, so the job depends on a RoleAssignmentWait keyed to the role assignments (rbacwait.py): the first `up` waits
once instead of failing with "unable to fetch secret".
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_azure_native import app, authorization, managedidentity

from provisioning.components.environment import CONSUMPTION_PROFILE
from provisioning.components.image import RegistryRef
from provisioning.components.rbacwait import RoleAssignmentWait
from provisioning.components.vaultcert import VaultCertificate
from provisioning.config import Settings
from provisioning.naming import Names, role_definition_id
from uploader.clouds import FEDERATED
from uploader.model.certs import CERTIFICATE_PEM_ENV

#: Built-in role definition GUIDs, the same in every Azure cloud
#: (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
ROLE_KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"  # built-in-roles/security#key-vault-secrets-user
# Key Vault Crypto User, scoped to the one key (protection vault/hsm): the job may use the key, never read a secret
# or export it (the role has no secrets/* data action; the key is not exportable). Chosen over a custom role holding
# only keys/sign/action because creating a role definition needs Microsoft.Authorization/roleDefinitions/write,
# which the deploy identity's conditioned RBAC Administrator role (docs/gitops.md) does not have, and because the
# certificate's key usage (digitalSignature) already limits the key to sign and verify
# (https://learn.microsoft.com/azure/key-vault/certificates/about-certificates): encrypt, decrypt, wrap and unwrap
# fail at the key. What the role still allows beyond signing (keys/update, keys/backup) is in docs/security.md.
ROLE_KEY_VAULT_CRYPTO_USER = "12338af0-0e69-4776-bea7-57ae8d297424"  # built-in-roles/security#key-vault-crypto-user
#: The versioned key ID the uploader signs with (its `--key-id` twin).
KEY_ID_ENV = "UPLOADER_KEY_ID"
#: `--credential`'s twin: `federated` for a stack with credential: federated.
CREDENTIAL_ENV = "UPLOADER_CREDENTIAL"
ROLE_STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"  # built-in-roles/storage
ROLE_ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"  # built-in-roles/containers#acrpull

CERTIFICATE_SECRET_REF = "uploader-certificate-pem"  # noqa: S105 - the name of a secret reference
REPLICA_TIMEOUT_SECONDS = 2 * 60 * 60
REPLICA_RETRY_LIMIT = 1
# 0.5 vCPU with 1Gi is one of the CPU/memory pairs the Consumption plan allows
# (https://learn.microsoft.com/azure/container-apps/containers, "Allocations").
CPU_CORES = 0.5
MEMORY = "1Gi"


@dataclass(frozen=True)
class SigningKey:
    """Protection vault/hsm: the key the job signs with (versioned ID), its ARM scope and the public certificate."""

    key_id: pulumi.Input[str]
    scope: pulumi.Input[str]
    certificate_pem: pulumi.Input[str]
    #: the VaultCertificate that makes the key: the key-scoped role assignment waits for it, since ARM refuses a
    #: scope that does not exist yet and the scope string alone (vault ID + key name) carries no such dependency
    certificate: pulumi.Resource | None = None


def signing_key(certificate: Any, vault: Any) -> SigningKey | None:
    """The job's SigningKey when Key Vault holds the key (a VaultCertificate), else None (the PEM secret)."""
    if not isinstance(certificate, VaultCertificate):
        return None
    return SigningKey(key_id=certificate.keyId, scope=vault.key_scope, certificate_pem=certificate.certificatePem,
                      certificate=certificate)


def azure_registry_of(image: str | None) -> str | None:
    """The registry host of an image in an Azure Container Registry (public or US Government), else None."""
    host = (image or "").split("/", 1)[0].lower()
    # Registry login servers: <name>.azurecr.io in Azure, <name>.azurecr.us in Azure Government
    # (https://learn.microsoft.com/azure/azure-government/compare-azure-government-global-azure).
    return host if "/" in (image or "") and host.endswith((".azurecr.io", ".azurecr.us")) else None


class UploaderJob(pulumi.ComponentResource):
    """Identity, role assignments and the scheduled job, in a Container Apps environment made elsewhere
    (environment.py: the stack's own, or its hosting stack's)."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        names: Names,
        resource_group_name: pulumi.Input[str],
        *,
        application_id: pulumi.Input[str],
        secret_id: pulumi.Input[str] | None = None,
        secret_uri: pulumi.Input[str] | None = None,
        signing_key: SigningKey | None = None,
        container_id: pulumi.Input[str],
        dropzone_url: pulumi.Input[str],
        image: pulumi.Input[str],
        environment_id: pulumi.Input[str],
        registry: RegistryRef | None,
        job_name: str,
        opts: pulumi.ResourceOptions,
        after: Sequence[pulumi.Resource] = (),
    ) -> None:
        """`after`: resources the job waits for besides its role assignments (network: private, the private
        endpoints it reaches the vault, the drop zone and the registry through)."""
        super().__init__("hr-connector:index:UploaderJob", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity",
            resource_group_name=resource_group_name,
            location=settings.location,
            opts=child,
        )
        subscription_id: pulumi.Input[str] = settings.subscription_id or authorization.get_client_config_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).subscription_id
        # The job's way to sign in: a key in Key Vault it may only sign with (protection vault/hsm), the PEM secret,
        # or (credential: federated) nothing at all: the app trusts this identity (identity.py, Identity.trust).
        grants: list[tuple[str, str, pulumi.Input[str], list[pulumi.Resource]]] = []
        if settings.federated:
            pass
        elif signing_key is not None:
            # the key exists only once Key Vault has made the certificate (issue 24: a first `up` could otherwise
            # assign the role on a key that is not there yet)
            made_by = [signing_key.certificate] if signing_key.certificate is not None else []
            grants.append(("key-signer", ROLE_KEY_VAULT_CRYPTO_USER, signing_key.scope, made_by))
        else:
            assert secret_id is not None and secret_uri is not None, "exportable: the job reads the PEM secret"
            grants.append(("secret-reader", ROLE_KEY_VAULT_SECRETS_USER, secret_id, []))
        grants.append(("dropzone-contributor", ROLE_STORAGE_BLOB_DATA_CONTRIBUTOR, container_id, []))
        if registry is not None:
            grants.append(("registry-pull", ROLE_ACR_PULL, registry.id, []))
        self.role_assignments = [
            authorization.RoleAssignment(
                f"{name}-{label}",
                principal_id=self.identity.principal_id,
                principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
                role_definition_id=pulumi.Output.from_input(subscription_id).apply(
                    functools.partial(role_definition_id, role_guid=role)
                ),
                scope=scope,
                description=f"hr-connector uploader job ({label})",
                opts=pulumi.ResourceOptions(parent=self, depends_on=after),
            )
            for label, role, scope, after in grants
        ]
        # Container Apps fetches the Key Vault secret through the identity while it creates the job; wait for the
        # role assignments to apply first, once per set of assignments (rbacwait.py).
        self.rbac_wait = RoleAssignmentWait(
            f"{name}-rbac-propagation",
            role_assignment_ids=[assignment.id for assignment in self.role_assignments],
            opts=child,
        )
        # Pull through the identity: from the stack's registry, or from a configured image's Azure registry
        # (grant the jobIdentityPrincipalId output AcrPull there); other registries are pulled anonymously.
        pull_from: pulumi.Input[str] | None = registry.login_server if registry is not None else azure_registry_of(
            settings.image
        )
        registries: Sequence[app.RegistryCredentialsArgs] = (
            [app.RegistryCredentialsArgs(server=pull_from, identity=self.identity.id)] if pull_from else []
        )
        credential_env: list[app.EnvironmentVarArgs]
        if settings.federated:  # the identity's token for the federated audience is the client assertion
            credential_env = [app.EnvironmentVarArgs(name=CREDENTIAL_ENV, value=FEDERATED)]
        elif signing_key is not None:
            credential_env = [app.EnvironmentVarArgs(name=KEY_ID_ENV, value=signing_key.key_id),
                              # the public certificate alone (no key), as a plain value: what --certificate holds
                              # with --key-id
                              app.EnvironmentVarArgs(name=CERTIFICATE_PEM_ENV, value=signing_key.certificate_pem)]
        else:
            credential_env = [app.EnvironmentVarArgs(name=CERTIFICATE_PEM_ENV, secret_ref=CERTIFICATE_SECRET_REF)]
        env = [
            app.EnvironmentVarArgs(name="UPLOADER_CLOUD", value=settings.cloud.name),
            app.EnvironmentVarArgs(name="UPLOADER_TENANT_ID", value=settings.tenant_id),
            app.EnvironmentVarArgs(name="UPLOADER_APP_ID", value=application_id),
            app.EnvironmentVarArgs(name="UPLOADER_CONNECTORS", value=settings.connectors_json()),
            *credential_env,
            app.EnvironmentVarArgs(name="UPLOADER_DROPZONE_URL", value=dropzone_url),
            # the stack's name in every run summary (a hosting stack's workspace holds many tenants' runs)
            app.EnvironmentVarArgs(name="UPLOADER_STACK", value=pulumi.get_stack()),
            app.EnvironmentVarArgs(name="AZURE_CLIENT_ID", value=self.identity.client_id),
        ]
        self.job = app.Job(
            f"{name}-job",
            job_name=job_name,
            resource_group_name=resource_group_name,
            location=settings.location,
            environment_id=environment_id,
            # network: private: the environment's Consumption profile (environment.py)
            workload_profile_name=CONSUMPTION_PROFILE if settings.private else None,
            identity=app.ManagedServiceIdentityArgs(
                type=app.ManagedServiceIdentityType.USER_ASSIGNED,
                user_assigned_identities=[self.identity.id],
            ),
            configuration=app.JobConfigurationArgs(
                trigger_type=app.TriggerType.SCHEDULE,
                schedule_trigger_config=app.JobConfigurationScheduleTriggerConfigArgs(
                    cron_expression=settings.schedule, parallelism=1, replica_completion_count=1,
                ),
                replica_timeout=REPLICA_TIMEOUT_SECONDS,
                replica_retry_limit=REPLICA_RETRY_LIMIT,
                secrets=[app.SecretArgs(name=CERTIFICATE_SECRET_REF, key_vault_url=secret_uri,
                                        identity=self.identity.id)]
                if signing_key is None and not settings.federated else [],
                registries=registries,
            ),
            template=app.JobTemplateArgs(containers=[
                app.ContainerArgs(
                    name="uploader",
                    image=image,
                    env=env,
                    resources=app.ContainerResourcesArgs(cpu=CPU_CORES, memory=MEMORY),
                ),
            ]),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*self.role_assignments, self.rbac_wait, *after]),
        )
        self.register_outputs({"jobName": self.job.name})
