"""The self-hosted GitHub Actions runner that deploys `network: private` stacks, as an event-driven Container Apps job
in the platform's deploy network (deploynetwork.py).

Microsoft's pattern, "Tutorial: Deploy self-hosted CI/CD runners and agents with Azure Container Apps jobs"
(https://learn.microsoft.com/azure/container-apps/tutorial-ci-cd-runners-jobs, GitHub Actions pivot): a job with an
Event trigger whose KEDA `github-runner` scale rule polls GitHub for queued workflow jobs and starts one execution
(one ephemeral runner that takes one workflow job and exits) per queued job; no execution runs while nothing is
queued (min executions 0). Here, unlike the tutorial's personal access token, both KEDA and the runner authenticate
as a GitHub App:
- the scale rule (https://keda.sh/docs/latest/scalers/github-runner/): metadata `owner`, `runnerScope: repo`,
  `repos`, `labels`, `applicationID`, `installationID` (and `githubApiURL` for GitHub Enterprise Server), and the
  authentication parameter `appKey` ("the private key for the GitHub App") from the job's secret;
- the runner's entrypoint (platform/runner/entrypoint.py) signs an app JWT with the same key, exchanges it for an
  installation token, asks GitHub for a just-in-time runner configuration with the labels, and starts the runner
  with it: nothing persistent is registered, and no registration token outlives the run.

The app's private key never passes through Pulumi: the operator stores it once as the secret RUNNER_KEY_SECRET in the
platform's vault (`az keyvault secret set --file`, docs/gitops.md#7-private-stacks-a-runner-in-the-deploy-network), and
the job's secret is a Key Vault reference to it (`keyVaultUrl` + the job's user-assigned identity: "Reference a
secret from Key Vault", https://learn.microsoft.com/azure/container-apps/manage-secrets). That identity holds Key Vault
Secrets User on that one secret and nothing else (role scoped to `<vault>/secrets/<name>`:
https://learn.microsoft.com/azure/key-vault/general/rbac-guide, "Secret scope role assignment"); the job waits for the
role to apply as the stacks' jobs do (rbacwait.py). The entrypoint removes the identity endpoint's variables before
the runner starts, so no workflow step can take that identity's token and read the key with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_azure_native import app, authorization, managedidentity

from provisioning.components.deploynetwork import DEFAULT_ADDRESS_SPACE, PLATFORM_NAMESPACE, runner_address_space
from provisioning.components.environment import CONSUMPTION_PROFILE
from provisioning.components.job import ROLE_KEY_VAULT_SECRETS_USER, azure_registry_of
from provisioning.components.rbacwait import RoleAssignmentWait
from provisioning.config import ConfigError, image_problem
from provisioning.identities import private_runner_label
from provisioning.naming import role_definition_id
from uploader.clouds import KEY_VAULTS

#: The platform vault's secret holding the GitHub App's private key (PEM), stored by the operator.
RUNNER_KEY_SECRET = "github-runner-app-key"  # noqa: S105 - a secret's name, not a secret
#: The job's secret (a Key Vault reference) and the scale rule's authentication parameter that reads it.
KEY_SECRET_REF = "github-app-key"  # noqa: S105 - a secret reference's name
APP_KEY_PARAMETER = "appKey"
SCALER = "github-runner"
DEFAULT_API_URL = "https://api.github.com"
#: A deploy job may run 60 minutes (deploy-stacks.yml's timeout-minutes); the replica gets 15 more for the runner to
#: start, register and wait in GitHub's queue. The tutorial's replica timeout is 1800 s, too short for a `pulumi up`
#: that waits out role propagation (rbacwait.py).
REPLICA_TIMEOUT_SECONDS = 75 * 60
#: KEDA polls GitHub every 30 s (the tutorial's and KEDA's default); each execution is one runner (parallelism 1,
#: one completion); at most MAX_EXECUTIONS at once; a failed runner is not retried (a new queued job starts another).
POLLING_SECONDS = 30
MAX_EXECUTIONS = 10
CPU_CORES = 2.0  # a Consumption profile replica: up to 4 vCPU / 8 GiB (workload-profiles-overview)
MEMORY = "4Gi"
#: GitHub's label rule: letters, digits and `-_.`, not "self-hosted" (every self-hosted runner has it).
_LABEL = re.compile(r"[A-Za-z0-9._-]{1,100}")  # fullmatch: `$` lets a final newline through
_KEYS = ("addressSpace", "githubAppId", "githubAppInstallationId", "image", "labels", "apiUrl")


@dataclass(frozen=True)
class RunnerSettings:
    """The platform's `runner` config object (platform/Pulumi.yaml)."""

    app_id: str
    installation_id: str
    image: str
    azure_environment: str = "public"  # the platform's
    address_space: str = DEFAULT_ADDRESS_SPACE
    extra_labels: tuple[str, ...] = ()
    api_url: str = DEFAULT_API_URL

    @property
    def labels(self) -> tuple[str, ...]:
        """The runner's labels besides `self-hosted`: the one the matrix routes private stacks of the platform's Azure
        environment to (identities.private_runner_label) first, then `labels`."""
        own = private_runner_label(self.azure_environment)
        return (own, *(x for x in self.extra_labels if x != own))


def _key(name: str) -> str:
    return f"{PLATFORM_NAMESPACE}:runner.{name}"


def _numeric_id(raw: dict[str, Any], name: str) -> str:
    value = raw.get(name)
    text = str(value).strip() if value is not None and not isinstance(value, bool) else ""
    if not re.fullmatch(r"[0-9]+", text) or int(text) == 0:  # ASCII: "²".isdigit(), but int("²") raises
        raise ConfigError(_key(name), "is required: the GitHub App's numeric ID (docs/gitops.md#7-private-stacks-a-"
                                      "runner-in-the-deploy-network)")
    return text


def runner_settings(raw: object, azure_environment: str = "public") -> RunnerSettings | None:
    """The `runner` config object (None: not set or empty, no runner), or ConfigError naming the key and the rule."""
    if raw is None or raw == {}:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{PLATFORM_NAMESPACE}:runner", "must be an object with githubAppId, "
                                                         "githubAppInstallationId and image")
    unknown = sorted(set(map(str, raw)) - set(_KEYS))
    if unknown:
        raise ConfigError(_key(unknown[0]), f"unknown key; the runner object has {', '.join(_KEYS)}")
    image = str(raw.get("image") or "").strip()
    if not image or "/" not in image:
        raise ConfigError(_key("image"), "is required: the runner image built from platform/runner/Dockerfile, "
                                         "REGISTRY/NAME@sha256:DIGEST")
    # Pinned by digest (the `image` key's one rule): the runner job reads the GitHub App's key, so whoever could
    # move a tag in that registry could run code that reads it.
    if (rule := image_problem(image, pinned=True)) is not None:
        raise ConfigError(_key("image"), rule + "; the runner holds the GitHub App's key, so whoever can move a "
                                                "tag could read it")
    labels = raw.get("labels") or []
    if not isinstance(labels, list) or not all(isinstance(x, str) and _LABEL.fullmatch(x) for x in labels):
        raise ConfigError(_key("labels"), "must be a list of runner labels (letters, digits, '.', '_', '-')")
    if any(x.lower() == "self-hosted" for x in labels):
        raise ConfigError(_key("labels"), "must not list self-hosted: every self-hosted runner has it")
    api_url = str(raw.get("apiUrl") or DEFAULT_API_URL).rstrip("/")
    if not re.fullmatch(r"https://[^/\s]+(/[^\s]*)?", api_url):  # fullmatch: `$` lets a final newline through
        raise ConfigError(_key("apiUrl"), "must be the GitHub API's https URL (https://api.github.com, or "
                                          "https://HOST/api/v3 for GitHub Enterprise Server)")
    return RunnerSettings(
        app_id=_numeric_id(raw, "githubAppId"), installation_id=_numeric_id(raw, "githubAppInstallationId"),
        image=image, address_space=runner_address_space(raw.get("addressSpace") or DEFAULT_ADDRESS_SPACE),
        azure_environment=azure_environment, extra_labels=tuple(labels), api_url=api_url)


@dataclass(frozen=True)
class DeployRunnerArgs:
    settings: RunnerSettings
    repository: str  # OWNER/REPO
    subscription_id: str
    azure_environment: str
    location: str
    resource_group_name: pulumi.Input[str]
    subnet_id: pulumi.Input[str]  # deploynetwork.DeployNetwork's delegated subnet
    vault_name: pulumi.Input[str]  # the platform's vault, holding RUNNER_KEY_SECRET
    vault_id: pulumi.Input[str]


def scale_metadata(settings: RunnerSettings, repository: str) -> dict[str, str]:
    """The KEDA github-runner scaler's metadata (keda.sh/docs/latest/scalers/github-runner): repository scope."""
    owner, repo = repository.split("/", 1)
    metadata = {"owner": owner, "runnerScope": "repo", "repos": repo, "labels": ",".join(settings.labels),
                "targetWorkflowQueueLength": "1", "applicationID": settings.app_id,
                "installationID": settings.installation_id}
    if settings.api_url != DEFAULT_API_URL:
        metadata["githubApiURL"] = settings.api_url
    return metadata


class DeployRunner(pulumi.ComponentResource):
    """`identity`, `secret_reader` (its one role), `rbac_wait`, `environment` (workload profiles, on the deploy
    network's subnet, internal) and `job` (the event-driven runner job)."""

    def __init__(self, name: str, args: DeployRunnerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hr-connector:platform:DeployRunner", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        s, group = args.settings, args.resource_group_name
        self.identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity", resource_name_="id-hr-connector-runner", resource_group_name=group,
            location=args.location, opts=child)
        secret_scope = pulumi.Output.concat(args.vault_id, "/secrets/", RUNNER_KEY_SECRET)
        self.secret_reader = authorization.RoleAssignment(
            f"{name}-key-reader", principal_id=self.identity.principal_id,
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL, scope=secret_scope,
            role_definition_id=role_definition_id(args.subscription_id, ROLE_KEY_VAULT_SECRETS_USER),
            description="hr-connector runner: the GitHub App's private key only", opts=child)
        self.rbac_wait = RoleAssignmentWait(f"{name}-rbac-propagation", role_assignment_ids=[self.secret_reader.id],
                                            opts=child)
        self.environment = app.ManagedEnvironment(
            f"{name}-environment", environment_name="cae-hr-connector-runner", resource_group_name=group,
            location=args.location,
            # internal: no public endpoint (the runner only calls out); the subnet is set only at creation
            vnet_configuration=app.VnetConfigurationArgs(infrastructure_subnet_id=args.subnet_id, internal=True),
            workload_profiles=[app.WorkloadProfileArgs(name=CONSUMPTION_PROFILE,
                                                       workload_profile_type=CONSUMPTION_PROFILE)],
            opts=child)
        # The secret's URL without a version: Container Apps reads the latest version (manage-secrets page above).
        domain = KEY_VAULTS[args.azure_environment].vault_domain
        key_url = pulumi.Output.concat("https://", args.vault_name, ".", domain, "/secrets/", RUNNER_KEY_SECRET)
        registry = azure_registry_of(s.image)  # an Azure registry: pulled as the identity (grant it AcrPull there)
        env = [app.EnvironmentVarArgs(name="GITHUB_APP_ID", value=s.app_id),
               app.EnvironmentVarArgs(name="GITHUB_APP_INSTALLATION_ID", value=s.installation_id),
               app.EnvironmentVarArgs(name="GITHUB_APP_PRIVATE_KEY", secret_ref=KEY_SECRET_REF),
               app.EnvironmentVarArgs(name="RUNNER_REPOSITORY", value=args.repository),
               app.EnvironmentVarArgs(name="RUNNER_LABELS", value=",".join(s.labels)),
               app.EnvironmentVarArgs(name="RUNNER_API_URL", value=s.api_url)]
        self.job = app.Job(
            f"{name}-job", job_name="hr-connector-runner", resource_group_name=group, location=args.location,
            environment_id=self.environment.id, workload_profile_name=CONSUMPTION_PROFILE,
            identity=app.ManagedServiceIdentityArgs(type=app.ManagedServiceIdentityType.USER_ASSIGNED,
                                                    user_assigned_identities=[self.identity.id]),
            configuration=app.JobConfigurationArgs(
                trigger_type=app.TriggerType.EVENT,
                event_trigger_config=app.JobConfigurationEventTriggerConfigArgs(
                    parallelism=1, replica_completion_count=1,
                    scale=app.JobScaleArgs(
                        min_executions=0, max_executions=MAX_EXECUTIONS, polling_interval=POLLING_SECONDS,
                        rules=[app.JobScaleRuleArgs(
                            name=SCALER, type=SCALER, metadata=scale_metadata(s, args.repository),
                            auth=[app.ScaleRuleAuthArgs(secret_ref=KEY_SECRET_REF,
                                                        trigger_parameter=APP_KEY_PARAMETER)])])),
                replica_timeout=REPLICA_TIMEOUT_SECONDS, replica_retry_limit=0,
                secrets=[app.SecretArgs(name=KEY_SECRET_REF, key_vault_url=key_url, identity=self.identity.id)],
                registries=[app.RegistryCredentialsArgs(server=registry, identity=self.identity.id)]
                if registry else None),
            template=app.JobTemplateArgs(containers=[app.ContainerArgs(
                name="runner", image=s.image, env=env,
                resources=app.ContainerResourcesArgs(cpu=CPU_CORES, memory=MEMORY))]),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.secret_reader, self.rbac_wait]))
        self.register_outputs({"jobName": self.job.name, "identityPrincipalId": self.identity.principal_id})

