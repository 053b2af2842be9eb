"""hr-connector: everything Microsoft Purview's HR data connector needs in one Microsoft 365 tenant.

Composition root only; each Azure concern is one component in provisioning/components/. Read top to bottom:
settings -> providers -> then one of two stack kinds (docs/fleet.md#hosting):
- a hosting stack (`hosting: true`), once per cloud, subscription and region: resource group -> job environment
  (workspace, Container Apps environment, diagnostic setting) -> registry + image (and its resource logs; none
  with `image`, a prebuilt one) -> action group -> status workbook -> outputs;
- a tenant stack: resource group -> Key Vault -> Entra app + certificate -> the vault's secret -> drop zone ->
  where the job runs (its own image and environment, or its hosting stack's through `hostedBy`) -> resource
  logs of the vault, drop zone and registry to that workspace -> scheduled job -> alerts. With `credential:
  federated` there is no Key Vault and no certificate: the app trusts the job's user-assigned identity (a
  federated identity credential, made once the job's identity exists).
"""

import pulumi
from pulumi_azure_native import resources

from provisioning.components.alerts import Alerts, HostingAlerts
from provisioning.components.diagnostics import ResourceLogs
from provisioning.components.dropzone import DropZone
from provisioning.components.environment import JobEnvironment
from provisioning.components.hosting import HostedBy
from provisioning.components.identity import Identity
from provisioning.components.image import RegistryRef, UploaderImage
from provisioning.components.job import UploaderJob, signing_key
from provisioning.components.network import PrivateNetwork
from provisioning.components.outputs import next_steps
from provisioning.components.privateendpoint import EndpointPlacement, PrivateEndpoint
from provisioning.components.providers import Providers
from provisioning.components.tags import apply_tags
from provisioning.components.vault import Vault
from provisioning.components.vaultcert import VaultCertificate
from provisioning.components.workbook import StatusWorkbook
from provisioning.config import settings_from_pulumi
from provisioning.naming import Names

settings = settings_from_pulumi()
apply_tags(settings.tags)  # before any resource: every taggable Azure resource gets them
names = Names(pulumi.get_stack(), settings.tenant_id)
# A hosted tenant's Azure side is its hosting stack's directory (its `azureTenantId` output, checked against this
# stack's own azureTenantId if set); read it before the providers, which sign in there.
hosting_ref = HostedBy("hosting", settings) if settings.hosted_by else None
providers = Providers("providers", settings, azure_tenant_id=hosting_ref.azure_tenant_id if hosting_ref else None)
bound = providers.options()


def hosting_stack() -> None:
    """What hosted tenants share. The group, environment, workspace and action group are protected: `pulumi
    destroy` of a hosting stack refuses while they exist (docs/fleet.md#hosting says what to do first)."""
    shared = providers.options(protect=True)
    group = resources.ResourceGroup("group", resource_group_name=names.resource_group, location=settings.location,
                                    opts=pulumi.ResourceOptions(provider=providers.azure, protect=True))
    # network: private: the hosting stack owns the network its tenants' jobs and private endpoints share
    network = _private_network(group, shared) if settings.private else None
    environment = JobEnvironment("environment", environment_name=names.environment, resource_group_name=group.name,
                                 location=settings.location, opts=shared,
                                 infrastructure_subnet_id=network.jobs_subnet.id if network else None,
                                 query_storage_name=names.query_storage_account)
    def registry_endpoint(registry: RegistryRef) -> list[pulumi.Resource]:
        """network: private: the push goes through the registry's endpoint, from the runner (network.reachable)."""
        if network is None:
            return []
        endpoint = PrivateEndpoint("registry-endpoint", target_id=registry.id, group_id="registry",
                                   placement=_placement(network), resource_group_name=group.name,
                                   location=settings.location, opts=bound)
        return [endpoint, *network.reachable]

    image = UploaderImage("image", settings, names, group.name, opts=bound,  # rebuilds replace the image: unprotected
                          before_push=registry_endpoint)
    alerts = HostingAlerts("alerts", settings.alert_emails, group.name, opts=shared)
    # every hosted tenant's runs at a glance (workbook.py); unprotected: it holds no data
    StatusWorkbook("status", workspace_id=environment.workspace.id, resource_group_name=group.name,
                   location=settings.location, opts=bound)
    if image.registry is not None:  # with `image` it builds nothing and owns no registry (hosting.py)
        ResourceLogs("resource-logs", environment.workspace.id, [("registry", image.registry.id)], opts=bound)

    pulumi.export("hosting", True)
    pulumi.export("cloud", settings.cloud.name)
    pulumi.export("azureEnvironment", settings.azure_environment)
    pulumi.export("location", settings.location)
    pulumi.export("subscriptionId", settings.subscription_id or "")
    pulumi.export("azureTenantId", settings.azure_tenant_id)  # its hosted tenants' Azure side
    pulumi.export("resourceGroupName", group.name)
    pulumi.export("environmentId", environment.environment.id)
    pulumi.export("environmentName", environment.environment.name)
    pulumi.export("workspaceId", environment.workspace.id)
    # with `image`: "" (its tenants set `image` too; HostedBy's check refuses one that does not)
    pulumi.export("registryId", image.registry.id if image.registry else "")
    pulumi.export("registryLoginServer", image.registry.login_server if image.registry else "")
    pulumi.export("image", image.ref)  # the built image, or the configured `image`
    pulumi.export("actionGroupId", alerts.action_group.id)
    pulumi.export("network", settings.network)
    pulumi.export("privateEndpointSubnetId", network.endpoints_subnet.id if network else "")
    pulumi.export("privateDnsZoneIds", network.zone_ids if network else {})


def _private_network(group: resources.ResourceGroup, opts: pulumi.ResourceOptions) -> PrivateNetwork:
    """The stack's own network; with runnerNetwork its hub-side children go through the hub subscription's provider."""
    hub = settings.runner_network
    return PrivateNetwork("network", settings, group.name, opts=opts, hub_link_name=names.hub_link,
                          hub_provider=providers.azure_in(hub.virtual_network.subscription_id) if hub else None)


def _placement(network: PrivateNetwork) -> EndpointPlacement:
    return EndpointPlacement(subnet_id=network.endpoints_subnet.id, zone_ids=dict(network.zone_ids))


def tenant_stack() -> None:
    """One Microsoft 365 tenant: self-contained, or with its job in a hosting stack's environment."""
    group = resources.ResourceGroup("group", resource_group_name=names.resource_group, location=settings.location,
                                    opts=pulumi.ResourceOptions(provider=providers.azure))
    # network: private: the stack's own network, or its hosting stack's (which owns it); the vault, drop zone and
    # registry are reached through private endpoints there, and the job waits for them. What needs the vault's data
    # plane (the certificate) or the registry (the push) also waits for `reachable` (the zone links and the hub
    # peerings: a first `up` from the runner reaches them); a hosting stack's are in place before its tenants.
    network, placement = None, None
    reachable: list[pulumi.Resource] = []
    if settings.private and hosting_ref is not None:
        placement = hosting_ref.placement
    elif settings.private:
        network = _private_network(group, bound)
        placement, reachable = _placement(network), network.reachable
    endpoints: list[pulumi.Resource] = []

    def private_endpoint(target: str, target_id: pulumi.Input[str], group_id: str) -> None:
        if placement is not None:
            endpoints.append(PrivateEndpoint(f"{target}-endpoint", target_id=target_id, group_id=group_id,
                                             placement=placement, resource_group_name=group.name,
                                             location=settings.location, opts=bound))

    vault = None if settings.federated else Vault("vault", settings, names, group.name, opts=bound)
    if vault is not None:
        private_endpoint("vault", vault.vault.id, "vault")
        vault.ready.extend([*endpoints, *reachable])  # the certificate is made on the vault's data plane
    identity = Identity("identity", settings, names, opts=bound, vault=vault, azure_tenant_id=providers.azure_tenant_id)
    if vault is not None:
        assert identity.certificate is not None and identity.credential is not None
        vault.publish(identity.certificate, registered=[identity.credential])
    dropzone = DropZone("dropzone", settings, names, group.name, opts=bound)
    private_endpoint("dropzone", dropzone.account.id, "blob")

    def registry_endpoint(registry: RegistryRef) -> list[pulumi.Resource]:
        """network: private: the push goes through the registry's endpoint (made before it, so it waits)."""
        if placement is None:
            return []
        private_endpoint("registry", registry.id, "registry")
        return [endpoints[-1], *reachable]

    if hosting_ref is not None:  # the hosting stack's environment, workspace, image and action group
        hosting = hosting_ref
        environment_id, workspace_id, action_group = hosting.environment_id, hosting.workspace_id, \
            hosting.action_group_id
        own_image = UploaderImage("image", settings, names, group.name, opts=bound,
                                  before_push=registry_endpoint) if settings.image else None
        image, registry = (own_image.ref, own_image.registry) if own_image else (hosting.image, hosting.registry)
        job_name = names.hosted_job
    else:  # its own
        own_image = UploaderImage("image", settings, names, group.name, opts=bound, before_push=registry_endpoint)
        environment = JobEnvironment("environment", environment_name=names.environment,
                                     resource_group_name=group.name, location=settings.location, opts=bound,
                                     infrastructure_subnet_id=network.jobs_subnet.id if network else None,
                                     query_storage_name=names.query_storage_account)
        environment_id, workspace_id, action_group = environment.environment.id, environment.workspace.id, None
        StatusWorkbook("status", workspace_id=workspace_id, resource_group_name=group.name,
                       location=settings.location, opts=bound)
        image, registry = own_image.ref, own_image.registry
        job_name = names.job
    ResourceLogs("resource-logs", workspace_id, [
        *([("vault", vault.vault.id)] if vault is not None else []), ("dropzone", dropzone.blob_service.id),
        *([("registry", own_image.registry.id)] if own_image is not None and own_image.registry is not None else []),
    ], opts=bound)
    job = UploaderJob(
        "job", settings, names, group.name,
        application_id=identity.application.client_id,
        secret_id=vault.secret.id if vault else None, secret_uri=vault.secret_uri if vault else None,
        signing_key=signing_key(identity.certificate, vault),
        container_id=dropzone.container.id, dropzone_url=dropzone.url,
        image=image, registry=registry, environment_id=environment_id, job_name=job_name,
        after=endpoints, opts=bound,
    )
    if settings.federated:  # the app trusts the job's identity: subject = its principal ID
        identity.trust(job.identity.principal_id)
    if settings.alert_emails or action_group is not None:
        Alerts("alerts", settings, group.name, job_name=job.job.name, workspace_id=workspace_id,
               hosting_action_group_id=action_group, opts=bound)

    # Two sides, two identities (docs/configuration.md#two-sides-of-a-stack): the app the uploader signs in as lives
    # in the Microsoft 365 tenant; the job's managed identity (Key Vault, drop zone, registry) in the Azure side's.
    pulumi.export("applicationId", identity.application.client_id)
    pulumi.export("tenantId", settings.tenant_id)
    pulumi.export("azureTenantId", providers.azure_tenant_id)
    pulumi.export("credential", settings.credential)  # `provisioning certs` skips federated stacks
    if identity.certificate is not None and vault is not None:
        pulumi.export("certificateThumbprint", identity.certificate.thumbprintSha1)
        pulumi.export("certificateExpiresOn", identity.certificate.notAfter)
        pulumi.export("certificateRenewBeforeDays", settings.certificate.renew_before_days)  # `provisioning certs`
        pulumi.export("certificateProtection", settings.certificate.protection)
        if isinstance(identity.certificate, VaultCertificate):  # protection vault or hsm
            pulumi.export("keyId", identity.certificate.keyId)  # the versioned key ID the job signs with
        pulumi.export("keyVaultUri", vault.vault_uri)
    pulumi.export("dropZoneUrl", dropzone.url)
    pulumi.export("jobName", job.job.name)
    pulumi.export("workspaceId", workspace_id)  # where its run summaries are (`python -m provisioning status`)
    pulumi.export("jobIdentityPrincipalId", job.identity.principal_id)
    pulumi.export("jobIdentityClientId", job.identity.client_id)
    pulumi.export("signIn", pulumi.Output.all(providers.azure_tenant_id, job.identity.principal_id,
                                              identity.application.client_id).apply(
        lambda v: {"azure": {"tenantId": v[0], "identity": "the job's managed identity", "principalId": v[1],
                             "reaches": "Key Vault, the drop zone, the registry"},
                   "microsoft365": {"tenantId": settings.tenant_id, "identity": "the app registration",
                                    "applicationId": v[2], "reaches": "the Purview ingestion endpoint"}}))
    pulumi.export("cloud", settings.cloud.name)
    pulumi.export("ingestionEndpoint", settings.cloud.signals_url)
    pulumi.export("network", settings.network)
    if settings.hosted_by:
        pulumi.export("hostedBy", settings.hosted_by)
    pulumi.export("nextSteps", identity.application.client_id.apply(lambda app_id: next_steps(settings, app_id)))


if settings.hosting:
    hosting_stack()
else:
    tenant_stack()
