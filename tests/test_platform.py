"""The pipeline as code (issue 21 part 3): platform/__main__.py, the second Pulumi project, evaluated offline under
Pulumi's mocks through `python -m provisioning platform render --json`, for a platform directory with one hosting
stack, two hosted tenants in their own Microsoft 365 directories and a self-contained tenant elsewhere.

- It declares the state account with shared keys off and its container, the secrets key, one GitHub environment
  per stack (plus `preview` and `drift`), and federated credentials whose subjects name each environment.
- Per-tenant model: no tenant identity has rights on another tenant's resources (every resource of a tenant's
  deploy app goes through an azuread provider pinned to that tenant; none holds an Azure role; its one Graph
  permission is assigned in its own tenant; it trusts its own stack's environment only).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from provisioning.identities import DEPLOY_GRAPH_PERMISSION
from provisioning.tools.offline import REPO_ROOT, Evaluation

pytestmark = pytest.mark.pulumi

PLATFORM = "9f1c2a3b-4d5e-4f60-8a7b-8c9d0e1f2a3b"
SUBSCRIPTION = "5d1c2b3a-6e7f-4a8b-9c0d-1e2f3a4b5c6d"
TENANTS = {"acme": "3f2504e0-4f89-41d3-9a0c-0305e82c3301", "globex": "6f9619ff-8b86-4011-b42d-00c04fc964ff"}
ELSEWHERE = ("initech", "1b4e28ba-2fa1-41d2-883f-0016d3cca427")  # self-contained, its own directory
REPOSITORY = "contoso/hr-fleet"
ENVIRONMENTS = {"hub", "acme", "globex", "initech", "preview", "drift"}


def write(directory: Path, name: str, lines: list[str]) -> None:
    (directory / f"Pulumi.{name}.yaml").write_text("config:\n" + "".join(f"  {line}\n" for line in lines))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    stacks = tmp_path_factory.mktemp("stacks")
    write(stacks, "hub", ["hr-connector:hosting: true", "hr-connector:location: eastus",
                          "hr-connector:alertEmails: [ops@platform.example]", f"hr-connector:azureTenantId: {PLATFORM}",
                          f"hr-connector:subscriptionId: {SUBSCRIPTION}"])
    for name, tenant in TENANTS.items():
        write(stacks, name, [f"hr-connector:tenantId: {tenant}", "hr-connector:location: eastus",
                             "hr-connector:hostedBy: hub", f"hr-connector:subscriptionId: {SUBSCRIPTION}"])
    write(stacks, ELSEWHERE[0], [f"hr-connector:tenantId: {ELSEWHERE[1]}", "hr-connector:location: westeurope"])
    return stacks


def platform_file(directory: Path, model: str, extra: list[str] | None = None) -> Path:
    path = directory / f"Pulumi.platform-{model}.yaml"
    write(directory, f"platform-{model}", [
        f"hr-connector-platform:repository: {REPOSITORY}", f"hr-connector-platform:tenantId: {PLATFORM}",
        f"hr-connector-platform:subscriptionId: {SUBSCRIPTION}",
        "hr-connector-platform:operatorObjectId: 7e8f9a0b-1c2d-4e3f-8a4b-5c6d7e8f9a0b",
        f"hr-connector-platform:model: {model}", *(extra or [])])
    return path


def test_platform_render_declares_the_pipeline(fleet: Path, tmp_path: Path) -> None:
    """The real command, as an operator runs it before `pulumi up` in platform/ (multi-tenant model)."""
    done = subprocess.run([sys.executable, "-m", "provisioning", "platform", "render", "--json", "--config",
                           str(platform_file(tmp_path, "multi-tenant")), "--stacks-dir", str(fleet)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    data: dict[str, Any] = json.loads(done.stdout)
    assert data["stateAccount"]["allowSharedKeyAccess"] is False
    assert data["stateAccount"]["allowBlobPublicAccess"] is False and data["stateContainer"] == "pulumi-state"
    assert data["secretsKey"]["key"] == "pulumi-secrets" and data["secretsKey"]["rbac"] is True
    assert set(data["githubEnvironments"]) == ENVIRONMENTS  # one per stack, plus preview and drift
    subjects = {f["subject"] for f in data["federatedCredentials"]}
    assert subjects == {f"repo:{REPOSITORY}:environment:{e}" for e in ENVIRONMENTS}
    assert all(f["issuer"] == "https://token.actions.githubusercontent.com" for f in data["federatedCredentials"])
    for stack in ("hub", "acme", "globex", "initech"):
        assert {f"{stack}/{v}" for v in ("AZURE_CLIENT_ID", "AZURE_SUBSCRIPTION_ID", "PULUMI_BACKEND_URL",
                                         "PULUMI_SECRETS_PROVIDER")} <= set(data["githubVariables"])
    roles = {(r["principal"], r["role"], r["scope"].rsplit("/", 1)[-1]) for r in data["roleAssignments"]}
    assert ("deploy-app-1-sp", "Contributor", SUBSCRIPTION) in roles
    assert ("deploy-app-1-sp", "Storage Blob Data Contributor", "pulumi-state") in roles
    assert ("deploy-app-1-sp", "Key Vault Crypto User", "pulumi-secrets") in roles
    assert ("preview-app-sp", "Reader", SUBSCRIPTION) in roles  # multi-tenant: the preview app, consented per tenant
    assert ("preview-app-sp", "Storage Blob Data Reader", "pulumi-state") in roles
    assert set(data["outputs"]["previewAdminConsent"]) == set(TENANTS.values()) | {ELSEWHERE[1]}
    rbac = [r for r in data["roleAssignments"] if r["role"] == "Role Based Access Control Administrator"]
    assert rbac and all(r["condition"] for r in rbac)  # limited to the program's roles
    operator = {r["role"] for r in data["roleAssignments"] if r["principal"] == "7e8f9a0b-1c2d-4e3f-8a4b-5c6d7e8f9a0b"}
    assert operator == {"Storage Blob Data Contributor", "Key Vault Crypto User"}
    consent = data["outputs"]["adminConsent"]
    assert consent["acme"].startswith(f"https://login.microsoftonline.com/{TENANTS['acme']}/adminconsent?client_id=")
    # Without `runner`: no deploy network, no runner, none of their outputs; without `reviewers`: none required.
    assert data["deployRunner"] is None and data["reviewers"] == {}
    assert not {"runnerNetwork", "runnerEgressIp", "runnerIdentityPrincipalId"} & set(data["outputs"])


def test_private_stacks_and_no_runner_are_named(tmp_path: Path) -> None:
    """A private stack routes to the platform's runner label: a platform of its Azure environment without `runner`
    says so (pulumi.log.warn, shown by `up` and by platform render) instead of leaving its jobs queued unexplained."""
    from provisioning.tools.platform import evaluate_platform, report, to_text

    stacks = tmp_path / "stacks"
    stacks.mkdir()
    image = "acme.azurecr.io/hr-uploader@sha256:" + "ab" * 32
    write(stacks, "vaulted", [f"hr-connector:tenantId: {ELSEWHERE[1]}", "hr-connector:location: eastus",
                              "hr-connector:network: private", f"hr-connector:image: {image}"])
    data = report(evaluate_platform(platform_file(tmp_path, "multi-tenant"), stacks))
    (warning,) = data["warnings"]
    assert "1 network: private stack(s) (vaulted) and no runner" in warning
    assert "[self-hosted, hr-connector-private-public]" in warning and f"WARN  {warning}" in to_text(data)


def test_no_tenant_identity_has_rights_on_another_tenants_resources(fleet: Path, tmp_path: Path) -> None:
    """Per-tenant model, over the rendered platform program."""
    from provisioning.tools.platform import evaluate_platform

    ev: Evaluation = evaluate_platform(platform_file(tmp_path, "per-tenant"), fleet)
    providers = {r.urn: r for r in ev.resources if r.type == "pulumi:providers:azuread"}
    tenant_principals: dict[str, str] = {}
    for stack in TENANTS.keys() | {ELSEWHERE[0]}:
        tenant = TENANTS.get(stack, ELSEWHERE[1])
        own = [r for r in ev.resources if r.name.startswith((f"tenant-app-{stack}", f"tenant-graph-{stack}"))]
        assert {r.type.rsplit(":", 1)[-1] for r in own} >= {"Application", "ServicePrincipal", "AppRoleAssignment",
                                                            "ApplicationFederatedIdentityCredential"}, stack
        for r in own:  # every resource of this tenant's identity is made in this tenant's directory
            provider = providers[(r.provider or "").rsplit("::", 1)[0]]
            assert provider.inputs["tenantId"] == tenant, (stack, r.name)
        (sp,) = [r for r in own if r.name == f"tenant-app-{stack}-sp"]
        tenant_principals[sp.state["objectId"]] = stack
        (grant,) = [r for r in own if r.type.endswith("AppRoleAssignment")]
        assert grant.inputs["principalObjectId"] == sp.state["objectId"]
        assert grant.inputs["appRoleId"] == DEPLOY_GRAPH_PERMISSION.id  # its one Graph permission
        (trust,) = [r for r in own if r.type.endswith("ApplicationFederatedIdentityCredential")]
        assert trust.inputs["subject"] == f"repo:{REPOSITORY}:environment:{stack}"  # its own environment only
    # No Azure role for any tenant identity: the Azure side is the platform's identity.
    for assignment in ev.of_type("azure-native:authorization:RoleAssignment"):
        assert assignment.inputs["principalId"] not in tenant_principals, assignment.name
    # No tenant identity's object is reached through another tenant's provider (and none through the platform's).
    platform_provider = next(r for r in providers.values() if r.inputs["tenantId"] == PLATFORM)
    for r in ev.resources:
        if r.type == "azuread:index/appRoleAssignment:AppRoleAssignment":
            stack = tenant_principals[r.inputs["principalObjectId"]]
            assert providers[(r.provider or "").rsplit("::", 1)[0]].inputs["tenantId"] == TENANTS.get(
                stack, ELSEWHERE[1])
            assert (r.provider or "").rsplit("::", 1)[0] != platform_provider.urn
    variables = {r.inputs["variableName"]: r for r in ev.of_type(
        "github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable") if r.inputs["environment"] == "acme"}
    assert "GRAPH_CLIENT_ID" in variables  # the workflow's Microsoft 365 side signs in as the tenant's own app


RUNNER = ["hr-connector-platform:runner:", "    githubAppId: 123456", "    githubAppInstallationId: '7890123'",
          "    image: contosoacr.azurecr.io/hr-connector-runner@sha256:" + "3" * 64, "    labels: [linux-deploy]",
          "hr-connector-platform:reviewers: {users: [1234], teams: [77]}"]


def test_the_runner_deploys_private_stacks_from_inside_the_deploy_network(fleet: Path, tmp_path: Path) -> None:
    """With `runner`: the hub network (delegated subnet, NAT egress, the central zones linked), a workload-profiles
    environment on it, and an event-driven job whose github-runner scale rule authenticates as the GitHub App with
    the key of a Key Vault-referenced secret, read by an identity that may read that one secret only."""
    from provisioning.components.runner import RUNNER_KEY_SECRET
    from provisioning.tools.platform import evaluate_platform, report, to_text
    from uploader.clouds import PRIVATE_DNS_ZONES

    ev: Evaluation = evaluate_platform(platform_file(tmp_path, "multi-tenant", RUNNER), fleet)
    (vnet,) = ev.of_type("azure-native:network:VirtualNetwork")
    assert vnet.inputs["addressSpace"]["addressPrefixes"] == ["10.59.0.0/24"]
    (subnet,) = ev.of_type("azure-native:network:Subnet")
    (nat,) = ev.of_type("azure-native:network:NatGateway")
    (ip,) = ev.of_type("azure-native:network:PublicIPAddress")
    assert subnet.inputs["virtualNetworkName"] == vnet.inputs["virtualNetworkName"]
    assert subnet.inputs["addressPrefix"] == "10.59.0.0/24"  # the whole range: /27 at least
    assert [d["serviceName"] for d in subnet.inputs["delegations"]] == ["Microsoft.App/environments"]
    assert subnet.inputs["natGateway"]["id"] == nat.id and subnet.inputs["defaultOutboundAccess"] is False
    assert nat.inputs["publicIpAddresses"] == [{"id": ip.id}] and ip.inputs["publicIPAllocationMethod"] == "Static"
    zones = {z.inputs["privateZoneName"]: z for z in ev.of_type("azure-native:privatedns:PrivateZone")}
    assert set(zones) == {name for _, name in PRIVATE_DNS_ZONES["public"].items()}
    links = ev.of_type("azure-native:privatedns:VirtualNetworkLink")
    assert {(k.inputs["privateZoneName"], k.inputs["virtualNetwork"]["id"]) for k in links} == {
        (name, vnet.id) for name in zones}
    (environment,) = ev.of_type("azure-native:app:ManagedEnvironment")
    assert environment.inputs["vnetConfiguration"] == {"infrastructureSubnetId": subnet.id, "internal": True}
    assert [p["workloadProfileType"] for p in environment.inputs["workloadProfiles"]] == ["Consumption"]

    (job,) = ev.of_type("azure-native:app:Job")
    (identity,) = [r for r in ev.of_type("azure-native:managedidentity:UserAssignedIdentity")
                   if r.name == "deploy-runner-identity"]
    assert job.inputs["environmentId"] == environment.id and job.inputs["workloadProfileName"] == "Consumption"
    assert job.inputs["identity"]["userAssignedIdentities"] == [identity.id]
    configuration = job.inputs["configuration"]
    assert configuration["triggerType"] == "Event" and configuration["replicaRetryLimit"] == 0
    assert configuration["replicaTimeout"] >= 3600  # outlasts a deploy job's 60 minutes
    trigger = configuration["eventTriggerConfig"]
    assert trigger["parallelism"] == 1 and trigger["scale"]["minExecutions"] == 0
    assert trigger["scale"]["pollingInterval"] > 0
    (rule,) = trigger["scale"]["rules"]
    assert rule["type"] == "github-runner"
    assert rule["metadata"] == {"owner": "contoso", "repos": "hr-fleet", "runnerScope": "repo",
                                "labels": "hr-connector-private-public,linux-deploy", "targetWorkflowQueueLength": "1",
                                "applicationID": "123456", "installationID": "7890123"}
    (auth,) = rule["auth"]
    assert auth["triggerParameter"] == "appKey"  # a GitHub App's key, not a personal access token
    secrets = {x["name"]: x for x in configuration["secrets"]}
    key = secrets[auth["secretRef"]]
    (vault,) = ev.of_type("azure-native:keyvault:Vault")
    assert key == {"name": auth["secretRef"], "identity": identity.id,
                   "keyVaultUrl": f"{vault.state['properties']['vaultUri']}secrets/{RUNNER_KEY_SECRET}"}
    (container,) = job.inputs["template"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["GITHUB_APP_PRIVATE_KEY"] == {"name": "GITHUB_APP_PRIVATE_KEY", "secretRef": auth["secretRef"]}
    assert env["RUNNER_LABELS"]["value"] == "hr-connector-private-public,linux-deploy"
    assert configuration["registries"] == [{"server": "contosoacr.azurecr.io", "identity": identity.id}]
    # Least privilege: the identity's one role is Key Vault Secrets User on that one secret.
    grants = [r for r in ev.of_type("azure-native:authorization:RoleAssignment")
              if r.inputs["principalId"] == identity.state["principalId"]]
    assert [(g.inputs["roleDefinitionId"].rsplit("/", 1)[-1], g.inputs["scope"]) for g in grants] == [
        ("4633458b-17de-408a-b874-0445c86b69e6", f"{vault.id}/secrets/{RUNNER_KEY_SECRET}")]
    (wait,) = [r for r in ev.resources if r.name == "deploy-runner-rbac-propagation"]
    assert wait.urn in job.depends_on  # the secret is fetched while the job is created

    outputs = ev.outputs
    assert outputs["runnerNetwork"] == {"virtualNetworkId": vnet.id, "addressSpace": "10.59.0.0/24",
                                        "privateDnsZoneIds": {g: zones[n].id for g, n in
                                                              PRIVATE_DNS_ZONES["public"].items()}}
    assert outputs["runnerEgressIp"] == ip.state["ipAddress"]
    data = report(ev)
    assert data["deployRunner"]["job"]["trigger"] == "Event" and data["warnings"] == []
    # the same report whatever order the mocks registered the resources in (render --json is diffed across runs)
    assert report(dataclasses.replace(ev, resources=ev.resources[::-1])) == data
    # The text render names the labels a private stack's matrix row (runsOn) must match.
    assert "runner labels self-hosted, hr-connector-private-public, linux-deploy" in to_text(data)
    stacks = {"hub", "acme", "globex", "initech"}
    assert data["reviewers"] == {s: [{"users": [1234], "teams": [77]}] for s in stacks}  # not preview or drift


#: A runner image as the platform takes it: pinned by digest.
PINNED = "r.io/x@sha256:" + "3" * 64


@pytest.mark.parametrize(("raw", "key"), [
    ({"githubAppInstallationId": 2, "image": PINNED}, "runner.githubAppId"),
    ({"githubAppId": 1, "githubAppInstallationId": 2, "image": "x"}, "runner.image"),
    ({"githubAppId": 1, "githubAppInstallationId": 2, "image": "r.io/x:1"}, "runner.image"),  # a tag can be moved
    ({"githubAppId": 1, "githubAppInstallationId": 2, "image": PINNED, "addressSpace": "10.61.4.0/24"},
     "runner.addressSpace"),  # overlaps the private stacks' own networks
    ({"githubAppId": 1, "githubAppInstallationId": 2, "image": PINNED, "addressSpace": "10.59.0.0/28"},
     "runner.addressSpace"),  # smaller than a workload-profiles subnet
    ({"githubAppId": 1, "githubAppInstallationId": 2, "image": PINNED, "labels": ["self-hosted"]},
     "runner.labels"),
    ({"githubAppId": 1, "githubAppInstallationId": 2, "image": PINNED, "apiUrl": "http://ghe.example/api/v3"},
     "runner.apiUrl"),
    ({"githubAppId": 1, "githubAppInstallationId": 2, "image": PINNED, "token": "x"}, "runner.token"),
    ({"githubAppId": "\u00b2", "githubAppInstallationId": 2, "image": PINNED}, "runner.githubAppId"),  # isdigit
    ({"githubAppId": 1, "githubAppInstallationId": 2, "image": PINNED, "apiUrl": "https://ghe.example/api\n"},
     "runner.apiUrl"),
    ({"githubAppId": 1, "githubAppInstallationId": 2, "image": PINNED, "labels": ["deploy\n"]}, "runner.labels"),
])
def test_runner_config_problems_name_the_key(raw: dict[str, Any], key: str) -> None:
    from provisioning.components.runner import runner_settings
    from provisioning.config import ConfigError

    with pytest.raises(ConfigError) as caught:
        runner_settings(raw)
    assert caught.value.key == f"hr-connector-platform:{key}"


def test_reviewers_are_numeric_ids_six_at_most() -> None:
    from provisioning.components.pipeline import Reviewers, reviewers_setting
    from provisioning.config import ConfigError

    assert reviewers_setting({"users": [1, "2"], "teams": [3]}) == Reviewers((1, 2), (3,))
    assert reviewers_setting({}) is None  # Pulumi.yaml's default: none required
    for bad in ({"users": ["octocat"]}, {"users": list(range(1, 8))}, {"people": [1]}, {"users": []}):
        with pytest.raises(ConfigError):
            reviewers_setting(bad)
