"""Explicit providers: every resource in the stack goes through these, never through an ambient default.

The azuread provider is pinned to the stack's Microsoft 365 tenant and its cloud's Entra environment, so a
deployer signed in to another tenant fails instead of creating the app in the wrong directory. The
azure-native provider is pinned to the hosting environment (public or usgovernment) and, when configured,
the subscription.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict, Unpack

import pulumi
import pulumi_azuread as azuread
from pulumi_azure_native import provider as azure_native_provider

from provisioning.config import Settings


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

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hr-connector:index:Providers", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # A hosting stack has no Microsoft 365 tenant and creates nothing in Entra: no azuread provider.
        self.azuread = None if settings.hosting else azuread.Provider(
            f"{name}-azuread",
            tenant_id=settings.tenant_id,
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
            location=settings.location,
            opts=child,
        )
        self.register_outputs({})

    def options(self, **kwargs: Unpack[ChildOptions]) -> pulumi.ResourceOptions:
        """Resource options that bind a component's children to the stack's providers."""
        providers: dict[str, pulumi.ProviderResource] = {"azure-native": self.azure}
        if self.azuread is not None:
            providers["azuread"] = self.azuread
        return pulumi.ResourceOptions(providers=providers, **kwargs)
