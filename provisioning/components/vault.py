"""Key Vault holding the uploader's key: RBAC mode, purge protection, 90-day soft delete.

`exportable`: one PEM secret (key + certificate) the job reads. `vault`/`hsm`: Key Vault makes the certificate itself
(vaultcert.py, after the deployer's Key Vault Certificates Officer grant has applied); the secret stays, disabled and
holding no key (a stack moving from `exportable` retires its key's secret that way); `hsm` makes the vault Premium."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
from pulumi_azure_native import authorization, keyvault

from provisioning.components.certificate import Certificate, parse_iso
from provisioning.components.rbacwait import RoleAssignmentWait
from provisioning.components.vaultcert import VaultCertificate
from provisioning.config import Settings
from provisioning.naming import Names, role_definition_id

SECRET_NAME = "uploader-certificate"  # noqa: S105 - a Key Vault secret name
PEM_CONTENT_TYPE = "application/x-pem-file"


def _epoch(iso: str) -> int:
    return int(parse_iso(iso).timestamp())


#: Built-in role for the deployer on the vault: create, read and disable certificates, never read their key or secret
#: (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/security#key-vault-certificates-officer).
ROLE_KEY_VAULT_CERTIFICATES_OFFICER = "a4417e6f-fecd-4de8-b567-7b0420556985"
#: The certificate Key Vault makes for `protection: vault|hsm` (its key and secret share the name). Not
#: SECRET_NAME: a certificate's secret would collide with the exportable stacks' standalone secret.
VAULT_CERTIFICATE_NAME = "uploader-signer"
RETIRED_NOTICE = ("retired: this stack's key moved into Key Vault (protection vault/hsm, certificate "
                  f"{VAULT_CERTIFICATE_NAME}); this secret holds no key and stays disabled")


class Vault(pulumi.ComponentResource):
    """The vault; then (publish) the secret with the key + certificate bundle for `exportable`, or, for `vault`/`hsm`,
    the same secret disabled and holding no key (a stack moving to the vault retires its old secret that way)."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        names: Names,
        resource_group_name: pulumi.Input[str],
        opts: pulumi.ResourceOptions,
    ) -> None:
        super().__init__("hr-connector:index:Vault", name, None, opts)
        self._name = name
        self._resource_group_name = resource_group_name
        self.settings = settings
        child = pulumi.ResourceOptions(parent=self)
        # The vault trusts the hosting subscription's directory (for GCC and commercial the same tenant).
        client = authorization.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self))
        # hsm: RSA-HSM keys need the Premium SKU ("HSM key types in Premium SKU":
        # https://learn.microsoft.com/azure/key-vault/keys/about-keys)
        sku = keyvault.SkuName.PREMIUM if settings.certificate.protection == "hsm" else keyvault.SkuName.STANDARD
        self.vault = keyvault.Vault(
            f"{name}-vault",
            vault_name=names.key_vault,
            resource_group_name=resource_group_name,
            location=settings.location,
            properties=keyvault.VaultPropertiesArgs(
                tenant_id=client.tenant_id,
                sku=keyvault.SkuArgs(family="A", name=sku),  # the only family (REST: vaults)
                # RBAC, not access policies: the role assignments in job.py grant the secret or the key
                # (https://learn.microsoft.com/azure/key-vault/general/rbac-guide).
                enable_rbac_authorization=True,
                # Soft delete keeps a deleted vault 7-90 days; purge protection forbids purging it before then
                # (https://learn.microsoft.com/azure/key-vault/general/soft-delete-overview).
                enable_purge_protection=True,
                enable_soft_delete=True,
                soft_delete_retention_in_days=90,
                enabled_for_deployment=False,
                enabled_for_disk_encryption=False,
                enabled_for_template_deployment=False,
                # network: private: no public endpoint (Azure Policy 55615ac9-af46-4a59-874e-391cc3dfb490, "Azure Key
                # Vault should have firewall enabled or public network access disabled"); reached through its private
                # endpoint only (privateendpoint.py), no trusted-service bypass
                # (https://learn.microsoft.com/azure/key-vault/general/network-security).
                public_network_access="Disabled" if settings.private else None,
                network_acls=keyvault.NetworkRuleSetArgs(default_action="Deny", bypass="None")
                if settings.private else None,
            ),
            opts=child,
        )
        self.vault_uri = self.vault.properties.apply(lambda p: p.vault_uri)
        self.ready: list[pulumi.Resource] = [self.vault]
        if settings.certificate.in_vault:
            # The deployer makes the certificate on the data plane: Key Vault Certificates Officer on this one
            # vault, for whoever runs `up` (the az CLI user or the pipeline's identity). No principalType: it may be
            # a user or a service principal, and ARM works it out.
            subscription_id: pulumi.Input[str] = settings.subscription_id or client.subscription_id
            self.deployer_grant = authorization.RoleAssignment(
                f"{name}-deployer-certificates-officer",
                principal_id=client.object_id,
                role_definition_id=pulumi.Output.from_input(subscription_id).apply(
                    lambda sub: role_definition_id(sub, ROLE_KEY_VAULT_CERTIFICATES_OFFICER)),
                scope=self.vault.id,
                description="hr-connector deployer: makes the uploader's certificate in this vault",
                opts=child,
            )
            # RBAC takes up to 10 minutes to apply (rbacwait.py): the certificate is made after the wait.
            self.ready.append(RoleAssignmentWait(f"{name}-deployer-rbac-propagation",
                                                 role_assignment_ids=[self.deployer_grant.id], opts=child))

    def publish(self, certificate: Certificate | VaultCertificate, registered: Sequence[pulumi.Resource] = ()) -> None:
        """`registered`: the app credential(s) for this certificate; the secret is written only after them."""
        in_vault = self.settings.certificate.in_vault
        # Every secret the program writes or retires expires (Azure Policy 98728c90-32c7-4049-8429-847dc0f4fe37, "Key
        # Vault secrets should have an expiration date"): the exportable bundle when its certificate does, the
        # retired one with the certificate that replaced it (a renewal writes a new version with the new date).
        if in_vault:
            value: pulumi.Input[str] = RETIRED_NOTICE
            attributes = keyvault.SecretAttributesArgs(enabled=False, expires=certificate.notAfter.apply(_epoch))
            content_type = "text/plain"
        else:
            assert isinstance(certificate, Certificate)
            value = pulumi.Output.secret(certificate.pem)
            attributes = keyvault.SecretAttributesArgs(
                enabled=True,
                not_before=certificate.notBefore.apply(_epoch),
                expires=certificate.notAfter.apply(_epoch),
            )
            content_type = PEM_CONTENT_TYPE
        self.secret = keyvault.Secret(
            f"{self._name}-certificate-secret",
            vault_name=self.vault.name,
            resource_group_name=self._resource_group_name,
            secret_name=SECRET_NAME,
            properties=keyvault.SecretPropertiesArgs(value=value, content_type=content_type, attributes=attributes),
            # On renewal the job must not pick up the new key before Entra knows its certificate.
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(registered)),
        )
        # Versioned (secretUriWithVersion), not the version-less URI: Container Apps refreshes a version-less
        # reference only "within 30 minutes" and pins a versioned one ("For full control of which version of a
        # secret is used, specify the version in the URI": https://learn.microsoft.com/azure/container-apps/manage-secrets).
        # A renewal writes a new version, so the job's reference changes and the job is updated inside the same
        # `up`, before Pulumi deletes the replaced (old) app credential at the end of it.
        self.secret_uri = self.secret.properties.apply(lambda p: p.secret_uri_with_version)
        if in_vault:  # the key's ARM ID: the job identity's signer role is scoped to it (job.py)
            self.key_scope = self.vault.id.apply(lambda vid: f"{vid}/keys/{VAULT_CERTIFICATE_NAME}")
        self.register_outputs({"vaultUri": self.vault_uri})
