"""The uploader's container image: the configured `image` as is, or built from uploader/Dockerfile and pushed
to a registry of the stack's own (admin user off: nothing pulls or pushes with a password).

Push is identity-based: at deploy time the deployer's Entra token (the one the azure-native provider signs
in with), for the registry's own audience, is exchanged at the registry's /oauth2/exchange endpoint for an ACR
refresh token, which the docker-build provider uses with the null-GUID user name ACR expects. No admin password,
no stored secret. The machine running `pulumi up` needs a Docker engine (BuildKit) only in this mode.

The registry accepts only tokens for the registry audience: `policies.azureADAuthenticationAsArmPolicy.status`
disabled ("Disabling azureADAuthenticationAsArmPolicy forces the registry to use ACR audience token":
https://learn.microsoft.com/azure/container-registry/container-registry-disable-authentication-as-arm; REST:
Registries - Create, `AzureADAuthenticationAsArmPolicy`, https://learn.microsoft.com/rest/api/containerregistry/registries/create;
what the Azure Verified Module sets by default and Azure Policy 42781ec6-6127-4c30-bdfa-fb423a0047d3 audits or denies,
785596ed-054f-41bc-aaec-7f3d0ba05725 modifies). An Azure Resource Manager token, which can do far more than push an
image, no longer opens the registry. The job pulls with its managed identity through Container Apps, which
takes registry-audience tokens itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_docker_build as docker_build
import requests
from pulumi_azure_native import authorization, containerregistry

from provisioning.config import Settings
from provisioning.naming import Names

REPOSITORY = "hr-uploader"
# The null-GUID user name that goes with an ACR refresh token
# (https://learn.microsoft.com/azure/container-registry/container-registry-authentication).
ACR_TOKEN_USER = "00000000-0000-0000-0000-000000000000"  # noqa: S105 - the user name ACR expects with a token
#: The registry audience the push token is asked for ("az login --scope https://containerregistry.azure.net/.default"
#: in the page above; the Azure CLI asks for `https://containerregistry.azure.net` in every cloud:
#: ACR_AUDIENCE_RESOURCE_NAME in azure-cli's acr/_constants.py). Not confirmed separately for Azure Government
#: (docs/us-government.md says how to check).
REGISTRY_AUDIENCE = "https://containerregistry.azure.net/"
# Build context and Dockerfile relative to the project directory (Pulumi runs the program and the docker-build
# provider there; the provider's own examples use `./app` and `./app/Dockerfile...`:
# https://www.pulumi.com/registry/packages/docker-build/api-docs/image/). Relative, so the inputs are the same
# from every checkout path and a deploy from another clone does not rebuild, re-push and update every job.
BUILD_CONTEXT = "."
DOCKERFILE = "uploader/Dockerfile"


def exchange_for_acr_token(login_server: str, tenant_id: str, access_token: str) -> str:
    """Trade an Entra access token (registry audience) for an ACR refresh token (what `az acr login` does)."""
    # POST /oauth2/exchange with grant_type=access_token (ACR's token exchange:
    # https://github.com/Azure/acr/blob/main/docs/AAD-OAuth.md).
    response = requests.post(
        f"https://{login_server}/oauth2/exchange",
        data={"grant_type": "access_token", "service": login_server, "tenant": tenant_id,
              "access_token": access_token},
        timeout=30,
    )
    if response.status_code != 200:
        raise RuntimeError(f"registry {login_server} refused the token exchange (HTTP {response.status_code})")
    return str(response.json()["refresh_token"])


@dataclass(frozen=True)
class RegistryRef:
    """A registry the job pulls from through its identity: this stack's, or its hosting stack's (outputs)."""

    id: pulumi.Input[str]
    login_server: pulumi.Input[str]


class UploaderImage(pulumi.ComponentResource):
    """`ref` is the image the job runs; `registry` is None when a prebuilt image is configured."""

    ref: pulumi.Output[str]
    registry: RegistryRef | None

    def __init__(
        self,
        name: str,
        settings: Settings,
        names: Names,
        resource_group_name: pulumi.Input[str],
        opts: pulumi.ResourceOptions,
        before_push: Callable[[RegistryRef], Sequence[pulumi.Resource]] | None = None,
    ) -> None:
        """`before_push`: given the registry, what the push must wait for (network: private: the registry's private
        endpoint and what makes it reachable from the runner; __main__.py)."""
        super().__init__("hr-connector:index:UploaderImage", name, None, opts)
        self.registry = None
        if settings.image:
            self.ref = pulumi.Output.from_input(settings.image)
            self.register_outputs({"image": self.ref})
            return
        child = pulumi.ResourceOptions(parent=self)
        registry = containerregistry.Registry(
            f"{name}-registry",
            registry_name=names.registry,
            resource_group_name=resource_group_name,
            location=settings.location,
            # network: private: Premium, the SKU with private endpoints and network rules ("Private Link ... Premium
            # service tier": https://learn.microsoft.com/azure/container-registry/container-registry-private-link),
            # public network access disabled (Azure Policy d0793b48-0edc-4296-a390-4c75d1bdfd71)
            sku=containerregistry.SkuArgs(name=containerregistry.SkuName.PREMIUM if settings.private
                                          else containerregistry.SkuName.BASIC),
            public_network_access="Disabled" if settings.private else None,
            network_rule_set=containerregistry.NetworkRuleSetArgs(default_action="Deny") if settings.private else None,
            admin_user_enabled=False,
            anonymous_pull_enabled=False,
            policies=containerregistry.PoliciesArgs(
                azure_ad_authentication_as_arm_policy=containerregistry.AzureADAuthenticationAsArmPolicyArgs(
                    status=containerregistry.AzureADAuthenticationAsArmPolicyStatus.DISABLED),
            ),
            opts=child,
        )
        self.registry = RegistryRef(registry.id, registry.login_server)
        reach = list(before_push(self.registry)) if before_push is not None else []
        login_server = registry.login_server
        client = authorization.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self))
        # getClientToken's `endpoint` is the audience the deployer's token is for (default: Resource Manager's)
        registry_token = authorization.get_client_token_output(
            endpoint=REGISTRY_AUDIENCE, opts=pulumi.InvokeOutputOptions(parent=self)
        ).token

        def acr_token(args: list[str]) -> str:
            server, tenant, token = args
            if pulumi.runtime.is_dry_run():  # preview pushes nothing and needs no registry token
                return "preview"
            return exchange_for_acr_token(server, tenant, token)

        password: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.all(login_server, client.tenant_id, registry_token).apply(acr_token))
        self.image = docker_build.Image(
            f"{name}-image",
            context=docker_build.BuildContextArgs(location=BUILD_CONTEXT),
            dockerfile=docker_build.DockerfileArgs(location=DOCKERFILE),
            platforms=[docker_build.Platform.LINUX_AMD64],
            tags=[login_server.apply(lambda s: f"{s}/{REPOSITORY}:latest")],
            push=True,
            build_on_preview=False,  # previews (pull requests, CI) need no Docker engine
            registries=[docker_build.RegistryArgs(address=login_server, username=ACR_TOKEN_USER, password=password)],
            opts=pulumi.ResourceOptions(parent=self, depends_on=reach),
        )
        self.ref = self.image.ref
        self.register_outputs({"image": self.ref})
