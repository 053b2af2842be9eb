"""What the GitOps pipeline needs, declared from the stack files: the second Pulumi project (`platform/`).

Run once by an operator of the platform, then again after each new stack file
(docs/gitops.md#set-up-run-the-platform-program-once-then-open-pull-requests). It creates, in the
platform's subscription and directory:
- the state backend: a storage account with shared keys off and a `pulumi-state` container (versioning and soft
  delete, to recover a damaged state file), and the secrets vault with the `pulumi-secrets` key (RBAC, purge
  protection); the operator gets the data-plane roles to use them (Storage Blob Data Contributor on the container,
  Key Vault Crypto User on the key) so that `pulumi stack init --secrets-provider ...` works from a terminal;
- the deploy identities (provisioning/identities.py's two models), each trusted by GitHub through federated
  credentials whose subjects are `repo:OWNER/REPO:environment:<stack>` (deploy), `...:environment:preview` and
  `...:environment:drift` (the read-only preview identity), at most 20 per identity
  (https://learn.microsoft.com/entra/workload-id/workload-identity-federation-considerations), and their roles;
- the GitHub environments (one per stack, plus `preview` and `drift`; with the `reviewers` config, the stack
  environments' required reviewers) and the variables the workflows read, with pulumi-github
  (https://www.pulumi.com/registry/packages/github/).

The deploy network and the self-hosted runner of `network: private` stacks are their own components
(deploynetwork.py, runner.py), in this component's resource group, with the runner's key in its vault.

Rights, least first: the Azure-side deploy identity is the platform's (Contributor and Role Based Access Control
Administrator on the subscription: it creates every stack's resource group); the per-tenant identities of the
per-tenant model exist only on their own Microsoft 365 side, created through an azuread provider pinned to that
tenant, and hold no Azure role at all (tests/test_platform.py checks it over the rendered program). Stacks whose
Azure side is another directory than the platform's get their GitHub environment and variables, but no Azure role
here: their subscription is not the platform's to grant in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_azuread as azuread
import pulumi_github as github
from pulumi_azure_native import authorization, keyvault, managedidentity, resources, storage

from provisioning.config import ConfigError, Settings
from provisioning.identities import (
    DEPLOY_GRAPH_PERMISSION,
    DRIFT_ENVIRONMENT,
    GITHUB_ISSUER,
    GRAPH_APP_ID,
    MULTI_TENANT,
    PER_TENANT,
    PREVIEW_ENVIRONMENT,
    PREVIEW_GRAPH_PERMISSION,
    federated_subject,
)
from provisioning.naming import role_definition_id
from uploader.clouds import KEY_VAULTS

#: GitHub's OIDC audience per Azure environment (the federated credential's `audiences`).
AUDIENCE = {"public": "api://AzureADTokenExchange", "usgovernment": "api://AzureADTokenExchangeUSGov"}
#: At most 20 federated identity credentials per app or managed identity (workload-identity-federation-considerations).
MAX_FEDERATED = 20
STATE_CONTAINER = "pulumi-state"
SECRETS_KEY = "pulumi-secrets"
#: Built-in roles (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
ROLE_CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
ROLE_READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
ROLE_RBAC_ADMINISTRATOR = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
ROLE_BLOB_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
ROLE_BLOB_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
ROLE_CRYPTO_USER = "12338af0-0e69-4776-bea7-57ae8d297424"
#: What the deploy identity may assign (the program's roles: job.py, vault.py, environment.py), as an RBAC
#: Administrator condition (https://learn.microsoft.com/azure/role-based-access-control/delegate-role-assignments-portal).
ASSIGNABLE = ("4633458b-17de-408a-b874-0445c86b69e6", "12338af0-0e69-4776-bea7-57ae8d297424",
              "ba92f5b4-2d11-453d-a403-e96b0029c9fe", "7f951dda-4ed3-4680-a7ca-43fe172d538d",
              "a4417e6f-fecd-4de8-b567-7b0420556985",
              "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3")  # the workspace's on its query storage (environment.py)


@dataclass(frozen=True)
class Reviewers:
    """Required reviewers of a deployment environment: "up to six users or teams", of whom one approves
    (https://docs.github.com/actions/managing-workflow-runs-and-deployments/managing-deployments/
    managing-environments-for-deployment#required-reviewers; pulumi-github RepositoryEnvironment `reviewers`)."""

    users: tuple[int, ...] = ()
    teams: tuple[int, ...] = ()


MAX_REVIEWERS = 6


def reviewers_setting(raw: object) -> Reviewers | None:
    """The platform's `reviewers` config object ({users: [ID...], teams: [ID...]}; None when not set or empty), or
    ConfigError naming the key."""
    if raw is None or raw == {}:
        return None
    key = "hr-connector-platform:reviewers"
    if not isinstance(raw, dict) or set(map(str, raw)) - {"users", "teams"}:
        raise ConfigError(key, "must be an object with `users` and/or `teams`, each a list of numeric GitHub IDs")
    found: dict[str, tuple[int, ...]] = {}
    for kind in ("users", "teams"):
        values = raw.get(kind) or []
        if not isinstance(values, list) or not all(
                (isinstance(v, int) and not isinstance(v, bool) and v > 0) or (isinstance(v, str) and v.isdigit())
                for v in values):
            raise ConfigError(f"{key}.{kind}", "must be a list of numeric GitHub IDs (`gh api users/NAME --jq .id`, "
                                               "`gh api orgs/ORG/teams/SLUG --jq .id`), not names")
        found[kind] = tuple(int(v) for v in values)
    total = len(found["users"]) + len(found["teams"])
    if not total or total > MAX_REVIEWERS:
        raise ConfigError(key, f"must name 1 to {MAX_REVIEWERS} users and teams in all (GitHub's limit)")
    return Reviewers(found["users"], found["teams"])


@dataclass(frozen=True)
class PlatformSettings:
    """The platform stack's config (platform/Pulumi.yaml, namespace `hr-connector-platform`)."""

    repository: str  # OWNER/REPO
    tenant_id: str  # the platform's directory
    subscription_id: str
    operator_object_id: str
    location: str = "eastus"
    azure_environment: str = "public"
    model: str = MULTI_TENANT
    #: GitHub user and team IDs whose approval each stack's deployment environment requires (`reviewers`).
    reviewers: Reviewers | None = None

    @property
    def owner(self) -> str:
        return self.repository.split("/", 1)[0]

    @property
    def repo_name(self) -> str:
        return self.repository.split("/", 1)[1]

    def unique(self, prefix: str, length: int) -> str:
        """A globally unique-enough name: the prefix and a hash of the subscription and repository."""
        digest = hashlib.sha256(f"{self.subscription_id}/{self.repository}".encode()).hexdigest()
        return (prefix + digest)[:length]


def _role(name: str, subscription_id: str, role: str, principal: pulumi.Input[str], scope: pulumi.Input[str],
          principal_type: str | None, parent: pulumi.Resource) -> authorization.RoleAssignment:
    return authorization.RoleAssignment(
        name, principal_id=principal, scope=scope, principal_type=principal_type,
        role_definition_id=role_definition_id(subscription_id, role),
        opts=pulumi.ResourceOptions(parent=parent))


def _assign_condition() -> str:
    """RBAC Administrator may create and delete only assignments of the program's roles (ABAC condition v2.0)."""
    roles = ", ".join(ASSIGNABLE)
    match = f"Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {{{roles}}}"
    return ("((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})) OR "
            f"(@Request[{match})) AND ((!(ActionMatches{{'Microsoft.Authorization/roleAssignments/delete'}})) OR "
            f"(@Resource[{match}))")


class Pipeline(pulumi.ComponentResource):
    """The state backend, the secrets key, the deploy identities and the GitHub environments of a fleet."""

    def __init__(self, name: str, platform: PlatformSettings, stacks: Sequence[tuple[str, Settings]],
                 azure: pulumi.ProviderResource, entra: pulumi.ProviderResource, gh: pulumi.ProviderResource,
                 tenant_entra: dict[str, pulumi.ProviderResource]) -> None:
        super().__init__("hr-connector:platform:Pipeline", name, None,
                         pulumi.ResourceOptions(providers={"azure-native": azure, "azuread": entra, "github": gh}))
        sub, env = platform.subscription_id, platform.azure_environment
        audience = AUDIENCE[env]
        here = [(s, st) for s, st in stacks if st.azure_environment == env]
        group = resources.ResourceGroup("platform-group", resource_group_name="rg-hr-connector-platform",
                                         location=platform.location, opts=pulumi.ResourceOptions(parent=self))
        # -- the state backend and the secrets key ----------------------------------------------------------------
        account = storage.StorageAccount(
            "state-account", account_name=platform.unique("hrstate", 24), resource_group_name=group.name,
            location=platform.location, kind=storage.Kind.STORAGE_V2,
            sku=storage.SkuArgs(name=storage.SkuName.STANDARD_ZRS), allow_shared_key_access=False,
            allow_blob_public_access=False, minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
            enable_https_traffic_only=True, opts=pulumi.ResourceOptions(parent=self, protect=True))
        storage.BlobServiceProperties(
            "state-versioning", account_name=account.name, resource_group_name=group.name,
            blob_services_name="default", is_versioning_enabled=True,
            delete_retention_policy=storage.DeleteRetentionPolicyArgs(enabled=True, days=30),
            opts=pulumi.ResourceOptions(parent=self))
        container = storage.BlobContainer("state-container", container_name=STATE_CONTAINER,
                                          account_name=account.name, resource_group_name=group.name,
                                          public_access=storage.PublicAccess.NONE,
                                          opts=pulumi.ResourceOptions(parent=self, protect=True))
        vault = keyvault.Vault(
            "secrets-vault", vault_name=platform.unique("kv-hr-", 24), resource_group_name=group.name,
            location=platform.location, properties=keyvault.VaultPropertiesArgs(
                tenant_id=platform.tenant_id, sku=keyvault.SkuArgs(family="A", name=keyvault.SkuName.STANDARD),
                enable_rbac_authorization=True, enable_purge_protection=True, enable_soft_delete=True,
                soft_delete_retention_in_days=90),
            opts=pulumi.ResourceOptions(parent=self, protect=True))
        key = keyvault.Key("secrets-key", key_name=SECRETS_KEY, vault_name=vault.name, resource_group_name=group.name,
                           properties=keyvault.KeyPropertiesArgs(kty=keyvault.JsonWebKeyType.RSA, key_size=3072),
                           opts=pulumi.ResourceOptions(parent=self, protect=True))
        self.group, self.vault = group, vault  # the deploy runner's key lives in this vault (runner.py)
        self.backend_url = pulumi.Output.concat("azblob://", STATE_CONTAINER, "?storage_account=", account.name)
        self.secrets_provider = pulumi.Output.concat("azurekeyvault://", vault.name, ".",
                                                     KEY_VAULTS[env].vault_domain, "/keys/", SECRETS_KEY)
        subscription = f"/subscriptions/{sub}"
        # The operator who runs this program: the data-plane roles for `pulumi login` and `pulumi stack init`.
        _role("operator-state", sub, ROLE_BLOB_CONTRIBUTOR, platform.operator_object_id, container.id, None, self)
        _role("operator-key", sub, ROLE_CRYPTO_USER, platform.operator_object_id, key.id, None, self)

        # -- deploy identities --------------------------------------------------------------------------------------
        self.deploy_client_ids: dict[str, pulumi.Output[str]] = {}
        self.graph_client_ids: dict[str, pulumi.Output[str]] = {}
        chunks = [here[i:i + MAX_FEDERATED] for i in range(0, len(here), MAX_FEDERATED)]
        for index, chunk in enumerate(chunks, 1):
            if platform.model == MULTI_TENANT:
                client_id, principal = self._multi_tenant_app(index, chunk, platform, audience)
            else:
                client_id, principal = self._platform_identity(index, chunk, platform, group.name, audience)
            own = [s for s, st in chunk if (st.azure_tenant_id or platform.tenant_id) == platform.tenant_id]
            if own:  # the platform's identity creates the stacks of its own directory's subscription
                _role(f"deploy-{index}-contributor", sub, ROLE_CONTRIBUTOR, principal, subscription,
                      "ServicePrincipal", self)
                authorization.RoleAssignment(
                    f"deploy-{index}-rbac-administrator", principal_id=principal, principal_type="ServicePrincipal",
                    scope=subscription, condition=_assign_condition(), condition_version="2.0",
                    role_definition_id=role_definition_id(sub, ROLE_RBAC_ADMINISTRATOR),
                    opts=pulumi.ResourceOptions(parent=self))
            _role(f"deploy-{index}-state", sub, ROLE_BLOB_CONTRIBUTOR, principal, container.id, "ServicePrincipal",
                  self)
            _role(f"deploy-{index}-key", sub, ROLE_CRYPTO_USER, principal, key.id, "ServicePrincipal", self)
            for stack, _ in chunk:
                self.deploy_client_ids[stack] = client_id
        if platform.model == PER_TENANT:
            for stack, settings in here:
                if settings.tenant_id:
                    self.graph_client_ids[stack] = self._tenant_app(stack, settings, platform, audience,
                                                                    tenant_entra[settings.tenant_id])
        # The read-only preview identity (preview and drift): multi-tenant model, a multi-tenant app requesting
        # PREVIEW_GRAPH_PERMISSION, consented in each tenant like the deploy app (a managed identity cannot sign in to
        # another directory); per-tenant model, the platform's managed identity for the Azure side.
        preview_client, preview_principal = self._preview_identity(platform, group.name, audience)
        self.preview_client_id = preview_client
        _role("preview-reader", sub, ROLE_READER, preview_principal, subscription, "ServicePrincipal", self)
        _role("preview-state", sub, ROLE_BLOB_READER, preview_principal, container.id, "ServicePrincipal", self)
        _role("preview-key", sub, ROLE_CRYPTO_USER, preview_principal, key.id, "ServicePrincipal", self)

        # -- GitHub environments and variables ---------------------------------------------------------------------
        repo = platform.repo_name
        for stack, settings in here:
            stack_environment = github.RepositoryEnvironment(
                f"environment-{stack}", repository=repo, environment=stack, prevent_self_review=True,
                reviewers=[github.RepositoryEnvironmentReviewerArgs(
                    users=list(platform.reviewers.users), teams=list(platform.reviewers.teams))]
                if platform.reviewers else None,
                deployment_branch_policy=github.RepositoryEnvironmentDeploymentBranchPolicyArgs(
                    protected_branches=True, custom_branch_policies=False),
                opts=pulumi.ResourceOptions(parent=self))
            values: dict[str, pulumi.Input[str]] = {
                "AZURE_CLIENT_ID": self.deploy_client_ids[stack],
                "AZURE_SUBSCRIPTION_ID": settings.subscription_id or sub,
                "PULUMI_BACKEND_URL": self.backend_url, "PULUMI_SECRETS_PROVIDER": self.secrets_provider}
            if stack in self.graph_client_ids:
                values["GRAPH_CLIENT_ID"] = self.graph_client_ids[stack]
            for variable, value in values.items():
                github.ActionsEnvironmentVariable(
                    f"variable-{stack}-{variable}", repository=repo, environment=stack_environment.environment,
                    variable_name=variable, value=value, opts=pulumi.ResourceOptions(parent=self))
        for environment_name in (PREVIEW_ENVIRONMENT, DRIFT_ENVIRONMENT):
            github.RepositoryEnvironment(
                f"environment-{environment_name}", repository=repo, environment=environment_name,
                deployment_branch_policy=github.RepositoryEnvironmentDeploymentBranchPolicyArgs(
                    protected_branches=environment_name == DRIFT_ENVIRONMENT, custom_branch_policies=False)
                if environment_name == DRIFT_ENVIRONMENT else None,
                opts=pulumi.ResourceOptions(parent=self))
        for variable, value in (("PREVIEW_AZURE_CLIENT_ID", preview_client),
                                ("PREVIEW_AZURE_SUBSCRIPTION_ID", pulumi.Output.from_input(sub)),
                                ("PULUMI_BACKEND_URL", self.backend_url)):
            github.ActionsVariable(f"variable-{variable}", repository=repo, variable_name=variable, value=value,
                                   opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"backendUrl": self.backend_url, "secretsProvider": self.secrets_provider})

    def _preview_identity(self, platform: PlatformSettings, group: pulumi.Input[str],
                          audience: str) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        subjects = [(e, federated_subject(platform.repository, e)) for e in (PREVIEW_ENVIRONMENT, DRIFT_ENVIRONMENT)]
        if platform.model == MULTI_TENANT:
            app = azuread.Application(
                "preview-app", display_name=f"hr-connector preview (GitHub {platform.repository})",
                sign_in_audience="AzureADMultipleOrgs",
                required_resource_accesses=[azuread.ApplicationRequiredResourceAccessArgs(
                    resource_app_id=GRAPH_APP_ID,
                    resource_accesses=[azuread.ApplicationRequiredResourceAccessResourceAccessArgs(
                        id=PREVIEW_GRAPH_PERMISSION.id, type="Role")])],
                opts=pulumi.ResourceOptions(parent=self))
            principal = azuread.ServicePrincipal("preview-app-sp", client_id=app.client_id,
                                                 opts=pulumi.ResourceOptions(parent=self))
            for environment, subject in subjects:
                azuread.ApplicationFederatedIdentityCredential(
                    f"preview-federated-{environment}", application_id=app.id, display_name=f"github-{environment}",
                    issuer=GITHUB_ISSUER, subject=subject, audiences=[audience],
                    opts=pulumi.ResourceOptions(parent=self))
            return app.client_id, principal.object_id
        identity = managedidentity.UserAssignedIdentity("preview-identity", resource_name_="id-hr-preview",
                                                        resource_group_name=group, location=platform.location,
                                                        opts=pulumi.ResourceOptions(parent=self))
        for environment, subject in subjects:
            managedidentity.FederatedIdentityCredential(
                f"preview-federated-{environment}", federated_identity_credential_resource_name=f"github-{environment}",
                resource_name_=identity.name, resource_group_name=group, issuer=GITHUB_ISSUER, subject=subject,
                audiences=[audience], opts=pulumi.ResourceOptions(parent=self))
        return identity.client_id, identity.principal_id

    def _multi_tenant_app(self, index: int, chunk: Sequence[tuple[str, Settings]], platform: PlatformSettings,
                          audience: str) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        """Model A: a multi-tenant app in the platform's directory requesting DEPLOY_GRAPH_PERMISSION (consented in
        each Microsoft 365 tenant by the URL new-stack prints), with one federated credential per stack."""
        app = azuread.Application(
            f"deploy-app-{index}", display_name=f"hr-connector deploy {index} (GitHub {platform.repository})",
            sign_in_audience="AzureADMultipleOrgs",  # consented per tenant (howto-convert-app-to-be-multi-tenant)
            required_resource_accesses=[azuread.ApplicationRequiredResourceAccessArgs(
                resource_app_id=GRAPH_APP_ID,
                resource_accesses=[azuread.ApplicationRequiredResourceAccessResourceAccessArgs(
                    id=DEPLOY_GRAPH_PERMISSION.id, type="Role")])],
            opts=pulumi.ResourceOptions(parent=self))
        principal = azuread.ServicePrincipal(f"deploy-app-{index}-sp", client_id=app.client_id,
                                             opts=pulumi.ResourceOptions(parent=self))
        for stack, _ in chunk:
            azuread.ApplicationFederatedIdentityCredential(
                f"deploy-app-{index}-federated-{stack}", application_id=app.id, display_name=f"github-{stack}",
                issuer=GITHUB_ISSUER, subject=federated_subject(platform.repository, stack), audiences=[audience],
                opts=pulumi.ResourceOptions(parent=self))
        return app.client_id, principal.object_id

    def _platform_identity(self, index: int, chunk: Sequence[tuple[str, Settings]], platform: PlatformSettings,
                           group: pulumi.Input[str], audience: str) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        """Model B's Azure side: the platform's user-assigned identity, one federated credential per stack."""
        identity = managedidentity.UserAssignedIdentity(
            f"deploy-identity-{index}", resource_name_=f"id-hr-deploy-{index}", resource_group_name=group,
            location=platform.location, opts=pulumi.ResourceOptions(parent=self))
        for stack, _ in chunk:
            managedidentity.FederatedIdentityCredential(
                f"deploy-identity-{index}-federated-{stack}",
                federated_identity_credential_resource_name=f"github-{stack}",
                resource_name_=identity.name, resource_group_name=group, issuer=GITHUB_ISSUER,
                subject=federated_subject(platform.repository, stack), audiences=[audience],
                opts=pulumi.ResourceOptions(parent=self))
        return identity.client_id, identity.principal_id

    def _tenant_app(self, stack: str, settings: Settings, platform: PlatformSettings, audience: str,
                    entra: pulumi.ProviderResource) -> pulumi.Output[str]:
        """Model B's Microsoft 365 side: a single-tenant deploy app in the stack's own tenant (azuread provider pinned
        there), trusted for `environment:<stack>` only, holding DEPLOY_GRAPH_PERMISSION in that tenant only."""
        bound = pulumi.ResourceOptions(parent=self, provider=entra)
        app = azuread.Application(f"tenant-app-{stack}", display_name=f"hr-connector deploy {stack}",
                                  sign_in_audience="AzureADMyOrg", opts=bound)
        principal = azuread.ServicePrincipal(f"tenant-app-{stack}-sp", client_id=app.client_id, opts=bound)
        graph = azuread.ServicePrincipal(f"tenant-graph-{stack}", client_id=GRAPH_APP_ID, use_existing=True, opts=bound)
        azuread.AppRoleAssignment(f"tenant-app-{stack}-graph", app_role_id=DEPLOY_GRAPH_PERMISSION.id,
                                  principal_object_id=principal.object_id, resource_object_id=graph.object_id,
                                  opts=bound)
        azuread.ApplicationFederatedIdentityCredential(
            f"tenant-app-{stack}-federated", application_id=app.id, display_name=f"github-{stack}",
            issuer=GITHUB_ISSUER, subject=federated_subject(platform.repository, stack), audiences=[audience],
            opts=bound)
        return app.client_id
