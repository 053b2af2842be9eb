"""`python -m provisioning platform render [--json] [--config FILE] [--stacks-dir DIR]`: what the platform program
(platform/__main__.py, the second Pulumi project) declares for the stack files, evaluated offline under Pulumi's
mocks exactly as `render` evaluates the main program (offline.evaluate: a subprocess, no CLI, no credentials).

The report names what an operator reviews before `pulumi up` there: the state account (shared keys off) and its
container, the secrets key, every deploy identity with its federated credentials' subjects, every role
assignment (role, scope, whom), and the GitHub environments and variables.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from provisioning.tools.fleet import STACKS_DIR_ENV, EvaluationFailed, FleetError, stacks_dir
from provisioning.tools.offline import REPO_ROOT, Evaluation, EvaluationError, evaluate, load_stack_file
from provisioning.tools.render import ROLE_NAMES, scrub, tidy

PLATFORM_DIR = REPO_ROOT / "platform"
#: Roles the platform program assigns, besides the ones the stacks' program does (render.ROLE_NAMES).
PLATFORM_ROLES = {
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": "Reader",
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": "Role Based Access Control Administrator",
}
FEDERATED = ("azuread:index/applicationFederatedIdentityCredential:ApplicationFederatedIdentityCredential",
             "azure-native:managedidentity:FederatedIdentityCredential")


def platform_config(option: str | None) -> Path:
    """--config, else the one platform/Pulumi.<stack>.yaml there is."""
    if option:
        return Path(option).resolve()
    found = sorted(PLATFORM_DIR.glob("Pulumi.*.yaml"))
    found = [p for p in found if p.name != "Pulumi.yaml"]
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise FleetError(f"platform: name the platform stack's file with --config (in {PLATFORM_DIR}: {names}; "
                         "`pulumi stack init` and `pulumi config set` there make one, examples/platform/ has one)")
    return found[0]


def evaluate_platform(config: Path, stacks: Path) -> Evaluation:
    """The platform program under mocks for these stack files (ConfigError naming a platform key)."""
    load_stack_file(config, PLATFORM_DIR)  # the platform's own config problems first, naming the key
    previous = os.environ.get(STACKS_DIR_ENV)
    os.environ[STACKS_DIR_ENV] = str(stacks)  # the evaluation's subprocess inherits it
    try:
        return evaluate(config, PLATFORM_DIR, hosting_outputs={}, timeout=300)
    except EvaluationError as exc:
        raise EvaluationFailed(str(exc)) from None
    finally:
        if previous is None:
            os.environ.pop(STACKS_DIR_ENV, None)
        else:
            os.environ[STACKS_DIR_ENV] = previous


def _principal_names(ev: Evaluation) -> dict[str, str]:
    """principal/object IDs the mocks assigned -> the declaring resource's name."""
    out: dict[str, str] = {}
    for r in ev.resources:
        if r.type not in ("azure-native:managedidentity:UserAssignedIdentity",
                          "azuread:index/servicePrincipal:ServicePrincipal"):
            continue
        for key in ("principalId", "objectId"):
            if isinstance(r.state.get(key), str):
                out[r.state[key]] = r.name
    return out


def _runner(by_type: dict[str, list[Any]]) -> dict[str, Any] | None:
    """The deploy network and its runner job (components/deploynetwork.py, runner.py), None without `runner`."""
    vnets = by_type.get("azure-native:network:VirtualNetwork", [])
    jobs = by_type.get("azure-native:app:Job", [])
    if not vnets and not jobs:
        return None
    subnets = by_type.get("azure-native:network:Subnet", [])
    job = jobs[0].inputs if jobs else {}
    configuration = job.get("configuration", {})
    scale = configuration.get("eventTriggerConfig", {}).get("scale", {})
    return {
        "addressSpace": [p for v in vnets for p in v.inputs.get("addressSpace", {}).get("addressPrefixes", [])],
        "subnets": [{"name": x.inputs.get("subnetName"), "prefix": x.inputs.get("addressPrefix"),
                     "delegations": [d.get("serviceName") for d in x.inputs.get("delegations", [])],
                     "natGateway": bool(x.inputs.get("natGateway"))} for x in subnets],
        "privateDnsZones": sorted(z.inputs.get("privateZoneName")
                                  for z in by_type.get("azure-native:privatedns:PrivateZone", [])),
        "zoneLinks": sorted(z.inputs.get("privateZoneName")
                            for z in by_type.get("azure-native:privatedns:VirtualNetworkLink", [])),
        "environment": [{"name": e.inputs.get("environmentName"), "vnet": e.inputs.get("vnetConfiguration"),
                         "workloadProfiles": e.inputs.get("workloadProfiles")}
                        for e in by_type.get("azure-native:app:ManagedEnvironment", [])],
        "job": {"name": job.get("jobName"), "image": (job.get("template", {}).get("containers") or [{}])[0].get(
                    "image"), "trigger": configuration.get("triggerType"),
                "replicaTimeout": configuration.get("replicaTimeout"),
                "replicaRetryLimit": configuration.get("replicaRetryLimit"),
                "scaleRules": scale.get("rules", []), "minExecutions": scale.get("minExecutions"),
                "maxExecutions": scale.get("maxExecutions"), "pollingInterval": scale.get("pollingInterval"),
                "secrets": [{k: v for k, v in x.items() if k in ("name", "keyVaultUrl")}
                            for x in configuration.get("secrets", [])]},
    }


def report(ev: Evaluation) -> dict[str, Any]:
    names = _principal_names(ev)
    # by URN: the mocks register resources in no fixed order, and the report is the same on every run
    resources = sorted(ev.resources, key=lambda r: r.urn)
    by_type: dict[str, list[Any]] = {}
    for r in resources:
        by_type.setdefault(r.type, []).append(r)

    def one(token: str) -> dict[str, Any]:
        (found,) = by_type.get(token, [None])
        return found.inputs if found else {}

    account = one("azure-native:storage:StorageAccount")
    roles = []
    for r in by_type.get("azure-native:authorization:RoleAssignment", []):
        guid = str(r.inputs.get("roleDefinitionId", "")).rsplit("/", 1)[-1]
        roles.append({"name": r.name, "role": {**ROLE_NAMES, **PLATFORM_ROLES}.get(guid, guid),
                      "principal": names.get(r.inputs.get("principalId"), r.inputs.get("principalId")),
                      "scope": r.inputs.get("scope"), "condition": bool(r.inputs.get("condition"))})
    federated = [{"name": r.name, "subject": r.inputs.get("subject"), "issuer": r.inputs.get("issuer"),
                  "audiences": r.inputs.get("audiences")} for t in FEDERATED for r in by_type.get(t, [])]
    environments = sorted(r.inputs.get("environment")
                          for r in by_type.get("github:index/repositoryEnvironment:RepositoryEnvironment", []))
    variables = sorted(
        [f"{r.inputs.get('environment')}/{r.inputs.get('variableName')}"
         for r in by_type.get("github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable", [])]
        + [f"(repository)/{r.inputs.get('variableName')}"
           for r in by_type.get("github:index/actionsVariable:ActionsVariable", [])])
    runner = _runner(by_type)
    providers = [{"provider": r.type.rsplit(":", 1)[-1], "name": r.name, "tenantId": r.inputs.get("tenantId"),
                  "owner": r.inputs.get("owner")} for r in resources if r.type.startswith("pulumi:providers:")]
    shown: dict[str, Any] = scrub(tidy({
        "project": "hr-connector-platform",
        "stack": ev.stack,
        "stateAccount": {k: account.get(k) for k in ("accountName", "allowSharedKeyAccess", "allowBlobPublicAccess",
                                                      "minimumTlsVersion", "enableHttpsTrafficOnly")},
        "stateContainer": one("azure-native:storage:BlobContainer").get("containerName"),
        "secretsKey": {"vault": one("azure-native:keyvault:Key").get("vaultName"),
                       "key": one("azure-native:keyvault:Key").get("keyName"),
                       "rbac": one("azure-native:keyvault:Vault").get("properties", {}).get("enableRbacAuthorization")},
        "providers": providers,
        "federatedCredentials": federated,
        "roleAssignments": roles,
        "githubEnvironments": environments,
        "githubVariables": variables,
        "reviewers": {r.inputs.get("environment"): r.inputs.get("reviewers")
                      for r in by_type.get("github:index/repositoryEnvironment:RepositoryEnvironment", [])
                      if r.inputs.get("reviewers")},
        "deployRunner": runner,
        "warnings": [line.removeprefix("warning: ") for line in ev.logs if line.startswith("warning: ")],
        "resourceCount": len(ev.deployed()),
        "outputs": ev.outputs,
    }))
    return shown


def to_text(data: dict[str, Any]) -> str:
    lines = [f"platform stack {data['stack']}: {data['resourceCount']} resources",
             f"  state: account {data['stateAccount']['accountName']} (shared keys "
             f"{'on' if data['stateAccount']['allowSharedKeyAccess'] else 'off'}), container {data['stateContainer']}",
             f"  secrets key: {data['secretsKey']['key']} in vault {data['secretsKey']['vault']}"]
    for p in data["providers"]:
        where = f"tenant {p['tenantId']}" if p.get("tenantId") else f"owner {p.get('owner')}"
        lines.append(f"  provider {p['provider']} {p['name']}: {where}")
    lines.append("federated credentials:")
    lines += [f"  {f['name']}: {f['subject']}" for f in data["federatedCredentials"]]
    lines.append("role assignments:")
    lines += [f"  {r['principal']}: {r['role']}{' (conditioned)' if r['condition'] else ''} on {r['scope']}"
              for r in data["roleAssignments"]]
    lines.append(f"GitHub environments: {', '.join(data['githubEnvironments'])}")
    lines.append("GitHub variables:")
    lines += [f"  {v}" for v in data["githubVariables"]]
    if data.get("reviewers"):
        lines.append("required reviewers: " + ", ".join(sorted(data["reviewers"])))
    runner = data.get("deployRunner")
    if runner:
        job = runner["job"]
        lines.append(f"deploy network: {', '.join(runner['addressSpace'])}; private DNS zones "
                     f"{', '.join(runner['privateDnsZones'])}")
        # The labels are what a private stack's matrix row must match (runsOn): shown, so the render answers
        # "will my GCC High stack's jobs land here?" (docs/gitops.md#7-private-stacks-a-runner-in-the-deploy-network).
        labels = [x for r in job["scaleRules"] for x in str(r.get("metadata", {}).get("labels", "")).split(",") if x]
        lines.append(f"runner job {job['name']}: {job['image']}, trigger {job['trigger']}, scale rules "
                     + ", ".join(str(r.get("type")) for r in job["scaleRules"])
                     + "; runner labels " + ", ".join(["self-hosted", *labels]))
    lines += [f"WARN  {w}" for w in data.get("warnings", [])]
    lines.append("outputs:")
    lines += [f"  {k}: {json.dumps(v)}" for k, v in data["outputs"].items()]
    return "\n".join(lines)


def render_platform(config: str | None, stacks: str | None) -> dict[str, Any]:
    return report(evaluate_platform(platform_config(config), stacks_dir(stacks)))
