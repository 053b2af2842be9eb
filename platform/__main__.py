"""hr-connector-platform: the pipeline the stacks deploy through, declared from their stack files.

Composition root only (provisioning/components/pipeline.py holds the resources): read the platform's config and
every stack file, pin one provider per directory (azure-native and azuread in the platform's, an azuread provider
per Microsoft 365 tenant for the per-tenant model, github for the repository), declare the Pipeline and, with the
`runner` config, the deploy network and its self-hosted runner (deploynetwork.py, runner.py), export what the
workflows, the private stacks and the operator need.
"""

import functools
import os
from pathlib import Path

import pulumi
import pulumi_azuread as azuread
import pulumi_github as github
from pulumi_azure_native import provider as azure_native_provider

from provisioning.components.deploynetwork import DeployNetwork, DeployNetworkArgs
from provisioning.components.pipeline import Pipeline, PlatformSettings, reviewers_setting
from provisioning.components.runner import DeployRunner, DeployRunnerArgs, runner_settings
from provisioning.identities import MODELS, PER_TENANT, admin_consent_url, private_runner_label
from provisioning.tools.fleet import STACKS_DIR_ENV, select_stacks
from provisioning.tools.offline import REPO_ROOT, load_stack_settings, stack_name

config = pulumi.Config()
model = config.get("model") or "multi-tenant"
if model not in MODELS:
    raise ValueError(f"hr-connector-platform:model must be one of {', '.join(MODELS)}")
repository = config.require("repository")
if repository.count("/") != 1:
    raise ValueError("hr-connector-platform:repository must be OWNER/REPO")
platform = PlatformSettings(
    repository=repository, tenant_id=config.require("tenantId"), subscription_id=config.require("subscriptionId"),
    operator_object_id=config.require("operatorObjectId"), location=config.get("location") or "eastus",
    azure_environment=config.get("azureEnvironment") or "public", model=model,
    reviewers=reviewers_setting(config.get_object("reviewers")))
# `runner` unset: no deploy network, no self-hosted runner
runner = runner_settings(config.get_object("runner"), platform.azure_environment)
folder = Path(os.environ.get(STACKS_DIR_ENV) or (Path(__file__).parent / (config.get("stacksDir") or "../stacks")))
stacks = [(stack_name(p), load_stack_settings(p, REPO_ROOT)) for p in select_stacks(folder.resolve(), None)]

azure = azure_native_provider.Provider("azure-native", environment=platform.azure_environment,
                                       tenant_id=platform.tenant_id, subscription_id=platform.subscription_id,
                                       location=platform.location)
environments = {"public": "global", "usgovernment": "usgovernmentl4"}  # azuread provider environments
entra = azuread.Provider("azuread", tenant_id=platform.tenant_id,
                         environment=environments[platform.azure_environment])
tenants = sorted({s.tenant_id for _, s in stacks if s.tenant_id and s.azure_environment == platform.azure_environment})
tenant_entra: dict[str, pulumi.ProviderResource] = {}
if model == PER_TENANT:  # each tenant's own deploy app is created in that tenant: a provider pinned there
    for _, settings in stacks:
        if settings.tenant_id in tenants and settings.tenant_id not in tenant_entra:
            tenant_entra[settings.tenant_id] = azuread.Provider(
                f"azuread-{settings.tenant_id}", tenant_id=settings.tenant_id,
                environment=settings.cloud.azuread_environment)
gh = github.Provider("github", owner=platform.owner)
pipeline = Pipeline("pipeline", platform, stacks, azure, entra, gh, tenant_entra)
if runner is not None:  # network: private stacks deploy from inside this network (docs/gitops.md)
    on_azure = pulumi.ResourceOptions(providers={"azure-native": azure})
    deploy_network = DeployNetwork("deploy-network", DeployNetworkArgs(
        address_space=runner.address_space, resource_group_name=pipeline.group.name, location=platform.location,
        azure_environment=platform.azure_environment), on_azure)
    deploy_runner = DeployRunner("deploy-runner", DeployRunnerArgs(
        settings=runner, repository=platform.repository, subscription_id=platform.subscription_id,
        azure_environment=platform.azure_environment, location=platform.location,
        resource_group_name=pipeline.group.name, subnet_id=deploy_network.subnet.id,
        vault_name=pipeline.vault.name, vault_id=pipeline.vault.id), on_azure)
    # What each network: private stack copies into its stack file as hr-connector:runnerNetwork (docs/gitops.md):
    # it peers its network to this one and registers its private endpoints in these zones.
    pulumi.export("runnerNetwork", {
        "virtualNetworkId": deploy_network.vnet.id, "addressSpace": runner.address_space,
        "privateDnsZoneIds": {group: deploy_network.zone_ids[group] for group in ("vault", "blob", "registry")}})
    pulumi.export("runnerEgressIp", deploy_network.egress_ip.ip_address)  # for customers' allow-lists
    pulumi.export("runnerIdentityPrincipalId", deploy_runner.identity.principal_id)  # AcrPull on an Azure registry
else:
    # The matrix routes every network: private stack to this platform's runner label; with no runner nothing takes
    # those jobs and GitHub cancels them after 24 hours. Said at `up` and in `platform render`, not refused: a team
    # may run its own runner with that label.
    waiting = sorted(name for name, s in stacks if s.private and s.azure_environment == platform.azure_environment)
    if waiting:
        pulumi.log.warn(
            f"{len(waiting)} network: private stack(s) ({', '.join(waiting[:5])}{', ...' if len(waiting) > 5 else ''})"
            f" and no runner: their jobs run on [self-hosted, {private_runner_label(platform.azure_environment)}] and "
            "wait for a runner with that label; set runner (docs/gitops.md#7-private-stacks-a-runner-in-the-deploy-"
            "network) or register one of yours")

pulumi.export("backendUrl", pipeline.backend_url)
pulumi.export("secretsProvider", pipeline.secrets_provider)
pulumi.export("deployClientIds", pipeline.deploy_client_ids)
if model == PER_TENANT:
    pulumi.export("graphClientIds", pipeline.graph_client_ids)
else:  # model A: each Microsoft 365 tenant's administrator consents once (docs/gitops.md#3-deploy-identities)
    pulumi.export("adminConsent", {stack: pipeline.deploy_client_ids[stack].apply(
        functools.partial(admin_consent_url, settings.cloud, settings.tenant_id))
        for stack, settings in stacks if stack in pipeline.deploy_client_ids and settings.tenant_id})
    pulumi.export("previewAdminConsent", {settings.tenant_id: pipeline.preview_client_id.apply(
        functools.partial(admin_consent_url, settings.cloud, settings.tenant_id))
        for _, settings in stacks if settings.tenant_id and settings.azure_environment == platform.azure_environment})
