"""Explicit providers: every resource in the stack goes through these, never through an ambient default, and each
is pinned to the directory of its side of the stack (docs/configuration.md#two-sides-of-a-stack):

- the **Microsoft 365 side**: the azuread provider signs in to the stack's Microsoft 365 tenant (`tenantId`), in its
  cloud's Entra environment, where the app registration and its certificate credential live; a deployer signed in
  to another directory fails instead of creating the app in the wrong one;
- the **Azure side**: the azure-native provider signs in to the directory that manages the subscription
  (`azureTenantId`: the tenant itself for a self-contained stack, the hosting stack's directory for a hosted
  tenant), in the Azure environment (public or usgovernment), to the subscription when configured. Azure Resource
  Manager accepts only a token from the directory that manages the subscription ("Authenticate requests across
  tenants": https://learn.microsoft.com/azure/azure-resource-manager/management/authenticate-multi-tenant), so
  the vault, the drop zone, the job, its managed identity and every role assignment go through this provider.

The client ID is the deployer's: ARM_CLIENT_ID for both (one multi-tenant deploy app), or GRAPH_CLIENT_ID_ENV for
the azuread provider when the Microsoft 365 side has its own deploy app (docs/gitops.md#3-deploy-identities).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TypedDict, Unpack

import pulumi
import pulumi_azuread as azuread
from pulumi_azure_native import provider as azure_native_provider

from provisioning.config import Settings

#: The Microsoft 365 side's deploy app, when it is not the Azure side's (per-tenant deploy apps: docs/gitops.md).
GRAPH_CLIENT_ID_ENV = "HR_CONNECTOR_GRAPH_CLIENT_ID"


class ChildOptions(TypedDict, total=False):
    """The ResourceOptions a caller of Providers.options may add (add a key here when one needs another)."""

    parent: pulumi.Resource
    depends_on: Sequence[pulumi.Resource]
    protect: bool
    ignore_changes: list[str]
    delete_before_replace: bool
    retain_on_delete: bool


class Providers(pulumi.ComponentResource):
    """The stack's azuread and azure-native providers."""

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None,
                 azure_tenant_id: pulumi.Input[str] | None = None) -> None:
        """`azure_tenant_id`: the Azure side's directory when the stack file does not say it (a hosted tenant: its
        hosting stack's, read through the StackReference)."""
        super().__init__("hr-connector:index:Providers", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        azure_tenant = settings.azure_tenant_id or azure_tenant_id
        if azure_tenant is None:
            raise ValueError("the Azure side's directory is unknown: no azureTenantId and no hosting stack's")
        #: The directory each provider signs in to (render shows them; the tests compare them with the config).
        self.azure_tenant_id: pulumi.Input[str] = azure_tenant
        self.microsoft365_tenant_id: str | None = None if settings.hosting else settings.tenant_id
        # A hosting stack has no Microsoft 365 tenant and creates nothing in Entra: no azuread provider.
        self.azuread = None if settings.hosting else azuread.Provider(
            f"{name}-azuread",
            tenant_id=settings.tenant_id,  # the Microsoft 365 side
            client_id=os.environ.get(GRAPH_CLIENT_ID_ENV) or None,  # else ARM_CLIENT_ID
            # global | usgovernmentl4 | usgovernmentl5, from uploader/clouds.py
            # (https://www.pulumi.com/registry/packages/azuread/api-docs/provider/#environment_python)
            environment=settings.cloud.azuread_environment,
            opts=child,
        )
        self.azure = azure_native_provider.Provider(
            f"{name}-azure-native",
            # public | usgovernment (https://www.pulumi.com/registry/packages/azure-native/api-docs/provider/)
            environment=settings.azure_environment,
            subscription_id=settings.subscription_id,
            tenant_id=azure_tenant,  # the Azure side: the directory that manages the subscription
            location=settings.location,
            opts=child,
        )
        self._name, self._settings = name, settings
        self._elsewhere: dict[str, azure_native_provider.Provider] = {}
        self.register_outputs({})

    def azure_in(self, subscription_id: str) -> pulumi.ProviderResource:
        """The Azure side's provider for resources in another subscription of the same directory (the runner's hub
        network: its peering back to the stack and its DNS zones' links, network.py): the stack's own provider when
        `subscriptionId` is that subscription, else one pinned to it (same environment and directory)."""
        if subscription_id.lower() == (self._settings.subscription_id or "").lower():
            return self.azure
        if subscription_id not in self._elsewhere:
            self._elsewhere[subscription_id] = azure_native_provider.Provider(
                f"{self._name}-azure-native-{subscription_id[:8]}",
                environment=self._settings.azure_environment,
                subscription_id=subscription_id,
                tenant_id=self.azure_tenant_id,
                location=self._settings.location,
                opts=pulumi.ResourceOptions(parent=self),
            )
        return self._elsewhere[subscription_id]

    def options(self, **kwargs: Unpack[ChildOptions]) -> pulumi.ResourceOptions:
        """Resource options that bind a component's children to the stack's providers."""
        providers: dict[str, pulumi.ProviderResource] = {"azure-native": self.azure}
        if self.azuread is not None:
            providers["azuread"] = self.azuread
        return pulumi.ResourceOptions(providers=providers, **kwargs)
