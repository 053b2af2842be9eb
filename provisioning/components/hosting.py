"""A hosted tenant's view of its hosting stack: the hosting stack's outputs, read through a Pulumi StackReference,
checked against this stack's own cloud, location, subscription and Azure-side directory (`azureTenantId`).

A hosting stack (`hosting: true`, __main__.py) exports HOSTING_OUTPUTS. A tenant stack with `hostedBy: NAME`
reads them here: its job goes in the shared Container Apps environment, its alert rule queries the shared
workspace and notifies the shared action group, and its image is the one the hosting stack built (pulled with
AcrPull on the shared registry, the one role a hosted tenant holds on a shared resource), or the tenant's own
`image` (no role on anything shared: it pulls with its own identity, job.py).

A hosting stack that sets `image` builds nothing and owns no registry: it exports that `image` and empty
`registryId`/`registryLoginServer`. Which image a tenant runs is decided by its own config, never guessed from the
outputs: a hosted tenant of such a hosting stack sets `image` too (the same as its hosting stack's `network`), and
`mismatches` refuses one that does not, naming the key, before the job could be given an empty registry.

A StackReference is a read of the other stack's state: nothing of the hosting stack is created, changed or
deleted by a tenant's `up` or `destroy` (https://www.pulumi.com/docs/iac/concepts/stacks/#stackreferences).
A bare NAME is a stack of this project; it becomes `org/project/NAME`, the fully qualified form
("orgName/projectName/stackName": https://www.pulumi.com/docs/iac/concepts/stacks/).
"""

from __future__ import annotations

from typing import Any

import pulumi

from provisioning.components.image import RegistryRef
from provisioning.components.privateendpoint import EndpointPlacement
from provisioning.config import NAMESPACE, ConfigError, Settings

#: What a hosting stack exports for its tenants (and what `check` and `render` take from it offline).
HOSTING_OUTPUTS = (
    "hosting", "cloud", "azureEnvironment", "location", "subscriptionId", "resourceGroupName", "environmentId",
    "environmentName", "workspaceId", "registryId", "registryLoginServer", "image", "actionGroupId", "azureTenantId",
    # registryId and registryLoginServer are "" when the hosting stack sets `image` (it owns no registry).
    # network: private (network.py): the hosting stack owns the network; its tenants' private endpoints go in its
    # endpoints subnet and register in its private DNS zones (group ID -> zone ID). Public: "" and {}.
    "network", "privateEndpointSubnetId", "privateDnsZoneIds",
)


DEPLOYERS = "unset (the deployer's subscription)"


def qualified_name(hosted_by: str) -> str:
    """`NAME` -> `<org>/<this project>/NAME`; a fully qualified name is kept."""
    if "/" in hosted_by:
        return hosted_by
    return f"{pulumi.get_organization()}/{pulumi.get_project()}/{hosted_by}"


def no_registry_rule(hosted_by: str) -> str:
    """Why a hosted tenant without `image` is refused under a hosting stack that sets `image` (it owns no registry,
    so it has no image of its own to lend): said by `check`, `new-stack` and the program."""
    host = hosted_by.rsplit("/", 1)[-1]
    return (f"is not set, but hosting stack {hosted_by} runs a prebuilt image and owns no registry (its stack file "
            f"Pulumi.{host}.yaml sets hr-connector:image): a hosted tenant then runs an image it names itself; set "
            "hr-connector:image here too, to that image or the tenant's own, pinned by digest (or set it once for "
            "every stack in Pulumi.yaml's project-level config: docs/configuration.md#fleet-wide-values-pulumiyaml)")


def mismatches(settings: Settings, hosting: dict[str, Any]) -> list[tuple[str, str]]:
    """(config key, rule) for every way a tenant does not fit its hosting stack's outputs."""
    key = f"{NAMESPACE}:hostedBy"
    if not hosting.get("hosting"):
        return [(key, f"{settings.hosted_by} is not a hosting stack (it does not set hosting: true)")]
    out = []
    if hosting.get("azureEnvironment") != settings.azure_environment:
        out.append((f"{NAMESPACE}:cloud",
                    f"a {settings.cloud.name} tenant runs in Azure {settings.azure_environment}, but hosting stack "
                    f"{settings.hosted_by} is in Azure {hosting.get('azureEnvironment')} (commercial and gcc are "
                    "hosted on public, gcchigh and dod on usgovernment)"))
    if hosting.get("location") != settings.location:
        out.append((f"{NAMESPACE}:location",
                    f"is {settings.location}, but hosting stack {settings.hosted_by} is in {hosting.get('location')}"
                    " (a hosted job runs in the hosting stack's region)"))
    if (hosting.get("subscriptionId") or None) != settings.subscription_id:
        mine, theirs = settings.subscription_id or DEPLOYERS, hosting.get("subscriptionId") or DEPLOYERS
        out.append((f"{NAMESPACE}:subscriptionId",
                    f"is {mine}, but hosting stack {settings.hosted_by} uses {theirs}: set the same subscriptionId "
                    "(a hosted job runs in the hosting stack's subscription)"))
    theirs_network = hosting.get("network") or "public"
    if theirs_network != settings.network:
        out.append((f"{NAMESPACE}:network",
                    f"is {settings.network}, but hosting stack {settings.hosted_by} is {theirs_network}: a hosting "
                    "stack owns the network its tenants' jobs run in and their private endpoints go in; set "
                    f"network: {theirs_network}"))
    if settings.image is None and not hosting.get("registryId"):
        out.append((f"{NAMESPACE}:image", no_registry_rule(settings.hosted_by or "")))
    theirs_tenant = hosting.get("azureTenantId") or ""
    if not theirs_tenant:
        out.append((f"{NAMESPACE}:hostedBy",
                    f"hosting stack {settings.hosted_by} exports no azureTenantId (the directory of its subscription):"
                    " set hr-connector:azureTenantId in it and deploy it before its tenants"))
    elif settings.federated and theirs_tenant != settings.tenant_id:
        out.append((f"{NAMESPACE}:credential",
                    f"is federated, but hosting stack {settings.hosted_by}'s directory {theirs_tenant} is not "
                    f"tenantId: federated needs the job's managed identity and the app in one directory (Entra "
                    "refuses another tenant's managed identity token as an app's federated credential, AADSTS700236: "
                    "https://learn.microsoft.com/entra/workload-id/workload-identity-federation-config-app-trust-"
                    "managed-identity); use credential: certificate"))
    if theirs_tenant and settings.azure_tenant_id and settings.azure_tenant_id != theirs_tenant:
        out.append((f"{NAMESPACE}:azureTenantId",
                    f"is {settings.azure_tenant_id}, but hosting stack {settings.hosted_by}'s subscription is in "
                    f"directory {theirs_tenant}: a hosted tenant's Azure side is its hosting stack's (remove the key, "
                    "or set that value)"))
    return out


class HostedBy(pulumi.ComponentResource):
    """The hosting stack's shared environment, workspace, registry, image and action group, as Outputs."""

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hr-connector:index:HostedBy", name, None, opts)
        assert settings.hosted_by is not None
        self.reference = pulumi.StackReference(f"{name}-stack", qualified_name(settings.hosted_by),
                                               opts=pulumi.ResourceOptions(parent=self))

        def checked(outputs: dict[str, Any]) -> dict[str, Any]:
            problems = mismatches(settings, outputs or {})
            if problems:
                raise ConfigError(*problems[0])
            return outputs

        # Every value below passes through the check: no resource is declared in the wrong place.
        outputs = self.reference.outputs.apply(checked)

        def get(key: str) -> pulumi.Output[Any]:
            return outputs.apply(lambda values: values.get(key))

        self.environment_id: pulumi.Output[str] = get("environmentId")
        self.workspace_id: pulumi.Output[str] = get("workspaceId")
        self.image: pulumi.Output[str] = get("image")
        self.action_group_id: pulumi.Output[str] = get("actionGroupId")
        self.registry = RegistryRef(get("registryId"), get("registryLoginServer"))
        #: The Azure side's directory: the hosting subscription's (the azure-native provider signs in there).
        self.azure_tenant_id: pulumi.Output[str] = get("azureTenantId")
        #: network: private: where this tenant's private endpoints go (the hosting stack's subnet and zones).
        zones = get("privateDnsZoneIds")

        def zone(group: str) -> pulumi.Output[str]:
            return zones.apply(lambda ids: str((ids or {}).get(group) or ""))

        self.placement = EndpointPlacement(subnet_id=get("privateEndpointSubnetId"),
                                           zone_ids={group: zone(group) for group in ("vault", "blob", "registry")})
        self.register_outputs({"environmentId": self.environment_id})
