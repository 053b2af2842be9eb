"""Two sides of a stack, each signing in to its own directory (issue 21; docs/configuration.md#two-sides-of-a-stack).

- Over a rendered fleet (the real __main__.py under mocks): a hosted tenant whose Microsoft 365 tenant is not the
  hosting subscription's directory has its azure-native provider, its Key Vault certificate provider, its vault's
  trusted directory and every role assignment on the Azure side (the hosting directory) and only its azuread
  provider on the Microsoft 365 side; a self-contained stack has both on the tenant. The outputs keep the job's
  managed identity (Azure side) and the app (Microsoft 365 side) apart.
- `check` refuses a hosted tenant whose azureTenantId is not its hosting stack's, naming the key.
- The workflows: every job that signs in (preview, deploy, drift, renewal, rotation) takes both tenants from the
  matrix row, so none signs in with an empty tenant, whatever variables its GitHub environment has — evaluated
  for a hosting, a hosted and a self-contained stack's rows, made by the real `matrix`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioning.config import ConfigError, all_problems, load_settings
from provisioning.tools import fleet
from provisioning.tools.offline import REPO_ROOT, Evaluation, _evaluate_here, evaluate, load_stack_file
from provisioning.tools.render import sign_in

PLATFORM = "9f1c2a3b-4d5e-4f60-8a7b-8c9d0e1f2a3b"  # the platform's directory: the hosting subscription's
HOSTED = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"  # a customer's Microsoft 365 tenant, hosted by the platform
OWN = "6f9619ff-8b86-4011-b42d-00c04fc964ff"  # a self-contained customer: both sides in its own directory
AZURE = "pulumi:providers:azure-native"
AZUREAD = "pulumi:providers:azuread"
VAULT_CERT = "pulumi-python:dynamic/hrconnector:VaultCertificate"
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
OIDC_ACTION = "./.github/actions/azure-oidc"


def write(directory: Path, name: str, body: str) -> Path:
    path = directory / f"Pulumi.{name}.yaml"
    path.write_text("config:\n" + "".join(f"  hr-connector:{line}\n" for line in body.strip().splitlines()))
    return path


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("stacks")
    write(directory, "hub", f"hosting: true\nlocation: eastus\nalertEmails: [ops@platform.example]\n"
                            f"azureTenantId: {PLATFORM}")
    write(directory, "acme", f"tenantId: {HOSTED}\nlocation: eastus\nhostedBy: hub\n"
                             "certificate: {protection: vault}")
    write(directory, "globex", f"tenantId: {OWN}\nlocation: eastus\ncertificate: {{protection: vault}}")
    return directory


@pytest.fixture(scope="module")
def fleet_graph(stacks: Path) -> dict[str, Evaluation]:
    """The three stacks evaluated in this process, the hosting stack's outputs handed to its tenant."""
    hub = _evaluate_here(load_stack_file(stacks / "Pulumi.hub.yaml"), REPO_ROOT)
    return {"hub": hub,
            "acme": _evaluate_here(load_stack_file(stacks / "Pulumi.acme.yaml"), REPO_ROOT, {"hub": hub.outputs}),
            "globex": _evaluate_here(load_stack_file(stacks / "Pulumi.globex.yaml"), REPO_ROOT)}


def sides(ev: Evaluation) -> tuple[str, str | None]:
    azuread = ev.of_type(AZUREAD)
    return ev.one(AZURE).inputs["tenantId"], azuread[0].inputs["tenantId"] if azuread else None


def azure_side_bound(ev: Evaluation) -> None:
    """Every Azure resource and role assignment goes through the azure-native provider; Entra objects through
    azuread."""
    azure, azuread = ev.one(AZURE), ev.of_type(AZUREAD)
    for r in ev.resources:
        if r.type.startswith("azure-native:"):
            assert ev.provider_of(r) is azure, r.urn
        if r.type.startswith("azuread:"):
            assert azuread and ev.provider_of(r) is azuread[0], r.urn


@pytest.mark.pulumi
def test_a_hosted_tenant_signs_in_to_the_hosting_directory_for_azure_and_its_own_for_entra(
        fleet_graph: dict[str, Evaluation]) -> None:
    acme, hub = fleet_graph["acme"], fleet_graph["hub"]
    assert sides(hub) == (PLATFORM, None) and hub.outputs["azureTenantId"] == PLATFORM
    assert sides(acme) == (PLATFORM, HOSTED)
    azure_side_bound(acme)
    assert acme.one("azure-native:keyvault:Vault").inputs["properties"]["tenantId"] == PLATFORM
    assert acme.one(VAULT_CERT).inputs["azureTenantId"] == PLATFORM
    assert acme.of_type("azure-native:authorization:RoleAssignment")
    assert (acme.outputs["azureTenantId"], acme.outputs["tenantId"]) == (PLATFORM, HOSTED)
    signed = acme.outputs["signIn"]
    assert signed["azure"]["tenantId"] == PLATFORM and signed["microsoft365"]["tenantId"] == HOSTED
    assert signed["azure"]["principalId"] == acme.outputs["jobIdentityPrincipalId"]
    assert signed["microsoft365"]["applicationId"] == acme.outputs["applicationId"]
    shown = sign_in(acme.resources)  # what `render` prints
    assert (shown["azure"]["tenantId"], shown["microsoft365"]["tenantId"]) == (PLATFORM, HOSTED)
    (container,) = acme.one("azure-native:app:Job").inputs["template"]["containers"]
    assert {"name": "UPLOADER_TENANT_ID", "value": HOSTED} in container["env"]  # the uploader: M365 side


@pytest.mark.pulumi
def test_a_self_contained_stack_signs_in_to_its_tenant_for_both(fleet_graph: dict[str, Evaluation]) -> None:
    globex = fleet_graph["globex"]
    assert sides(globex) == (OWN, OWN)
    azure_side_bound(globex)
    assert globex.one(VAULT_CERT).inputs["azureTenantId"] == OWN
    assert (globex.outputs["azureTenantId"], globex.outputs["tenantId"]) == (OWN, OWN)


@pytest.mark.pulumi
def test_check_refuses_a_hosted_tenant_with_another_azure_tenant(stacks: Path, tmp_path: Path) -> None:
    (tmp_path / "Pulumi.hub.yaml").write_text((stacks / "Pulumi.hub.yaml").read_text())
    path = write(tmp_path, "initech", f"tenantId: {HOSTED}\nlocation: eastus\nhostedBy: hub\nazureTenantId: {OWN}")
    with pytest.raises(ConfigError) as caught:
        evaluate(path, isolated=False)
    problems = {p.key: p.rule for p in all_problems(caught.value)}
    assert set(problems) == {"hr-connector:azureTenantId"}
    assert PLATFORM in problems["hr-connector:azureTenantId"]
    assert "hosting stack hub" in problems["hr-connector:azureTenantId"]


def test_a_hosting_stack_must_name_its_directory() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"hosting": True, "location": "eastus", "alertEmails": ["ops@platform.example"]})
    assert caught.value.key == "hr-connector:azureTenantId" and "hosting stack" in caught.value.rule
    with pytest.raises(ConfigError) as bad:
        load_settings({"tenantId": OWN, "location": "eastus", "azureTenantId": "contoso.onmicrosoft.com"})
    assert bad.value.key == "hr-connector:azureTenantId" and "GUID" in bad.value.rule
    assert load_settings({"tenantId": OWN, "location": "eastus"}).azure_tenant_id == OWN
    assert load_settings({"tenantId": OWN, "location": "eastus", "hostedBy": "hub"}).azure_tenant_id is None


def test_a_federated_credential_needs_both_sides_in_one_directory() -> None:
    """Entra refuses another tenant's managed identity token as an app's federated credential (AADSTS700236)."""
    from provisioning.components.hosting import mismatches

    with pytest.raises(ConfigError) as caught:
        load_settings({"tenantId": OWN, "location": "eastus", "azureTenantId": PLATFORM, "credential": "federated"})
    assert caught.value.key == "hr-connector:credential" and "AADSTS700236" in caught.value.rule
    hosted = load_settings({"tenantId": HOSTED, "location": "eastus", "hostedBy": "hub", "credential": "federated"})
    outputs = {"hosting": True, "azureEnvironment": "public", "location": "eastus", "subscriptionId": "",
               "registryId": "/subscriptions/x/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r"}
    assert [k for k, _ in mismatches(hosted, {**outputs, "azureTenantId": PLATFORM})] == ["hr-connector:credential"]
    assert mismatches(hosted, {**outputs, "azureTenantId": HOSTED}) == []


# ------------------------------------------------------------------------------------------------ workflows

def rows(stacks: Path) -> dict[str, dict[str, Any]]:
    """The real matrix rows of a hosting, a hosted and a self-contained stack."""
    return {e["stack"]: e for e in fleet.matrix(fleet.hosting_first(fleet.select_stacks(stacks, None)))["include"]}


def test_matrix_rows_carry_both_tenants(stacks: Path) -> None:
    found = rows(stacks)
    assert (found["hub"]["azureTenantId"], found["hub"]["tenantId"]) == (PLATFORM, "")
    assert (found["acme"]["azureTenantId"], found["acme"]["tenantId"]) == (PLATFORM, HOSTED)
    assert (found["globex"]["azureTenantId"], found["globex"]["tenantId"]) == (OWN, OWN)


_TERM = re.compile(r"^(matrix|env|vars)\.([A-Za-z0-9_]+)$|^vars\[format\('([A-Z_]+)\{0\}', matrix\.varSuffix\)\]$")


def evaluate_expression(text: str, row: dict[str, Any], env: dict[str, str], variables: dict[str, str]) -> str:
    """GitHub's `${{ a || b }}` for the terms these workflows use: the first non-empty operand."""
    match = re.fullmatch(r"\$\{\{\s*(.*?)\s*\}\}", text.strip())
    assert match, f"not a single expression: {text!r}"
    for operand in (o.strip() for o in match[1].split("||")):
        term = _TERM.match(operand)
        assert term, f"an operand this test cannot evaluate: {operand!r}"
        if term[1] == "matrix":
            value = str(row.get(term[2], ""))
        elif term[1] == "env":
            value = evaluate_expression(env[term[2]], row, env, variables) if term[2] in env else ""
        elif term[1] == "vars":
            value = variables.get(term[2], "")
        else:
            value = variables.get(f"{term[3]}{row['varSuffix']}", "")
        if value:
            return value
    return ""


def signing_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for name, job in yaml.safe_load(path.read_text())["jobs"].items():
            if any(s.get("uses") == OIDC_ACTION for s in job.get("steps", [])):
                out.append((path.name, name, job))
    return out


@pytest.mark.parametrize("kind", ["hub", "acme", "globex"])
def test_no_workflow_signs_in_with_an_empty_tenant(stacks: Path, kind: str) -> None:
    """Preview and drift run in the shared `preview`/`drift` environments, deploy, renewal and rotation in the
    stack's: whatever variables those hold, the tenants come from the row. Evaluated with no variable set at all
    but the client IDs and subscriptions (so no `vars.AZURE_TENANT_ID` can fill a gap)."""
    row = rows(stacks)[kind]
    variables = {"AZURE_CLIENT_ID": "deploy-app", "PREVIEW_AZURE_CLIENT_ID": "preview-app",
                 "AZURE_SUBSCRIPTION_ID": "sub", "PREVIEW_AZURE_SUBSCRIPTION_ID": "sub"}
    jobs = signing_jobs()
    assert {(f, j) for f, j, _ in jobs} == {("deploy-stacks.yml", "deploy"), ("preview-stacks.yml", "preview"),
                                            ("drift-stacks.yml", "drift"), ("scheduled.yml", "renew"),
                                            ("rotate.yml", "rotate")}
    for file, name, job in jobs:
        env = job["env"]
        assert evaluate_expression(env["ARM_TENANT_ID"], row, env, variables) == row["azureTenantId"], (file, name)
        (login,) = [s["with"] for s in job["steps"] if s.get("uses") == OIDC_ACTION]
        assert evaluate_expression(login["tenant-id"], row, env, variables) == row["azureTenantId"], (file, name)
        assert evaluate_expression(login["client-id"], row, env, variables), (file, name)
        # The Microsoft 365 side's deploy app: the same multi-tenant app, or its own (GRAPH_CLIENT_ID).
        graph = evaluate_expression(env["HR_CONNECTOR_GRAPH_CLIENT_ID"], row, env, variables)
        assert graph == evaluate_expression(env["ARM_CLIENT_ID"], row, env, variables), (file, name)
        own = {**variables, "GRAPH_CLIENT_ID": "graph-app", f"PREVIEW_GRAPH_CLIENT_ID_{row['varSuffix']}": "graph-app"}
        assert evaluate_expression(env["HR_CONNECTOR_GRAPH_CLIENT_ID"], row, env, own) == "graph-app", (file, name)
        assert not any("AZURE_TENANT_ID" in str(v) for v in env.values()), (file, name)


def test_private_stacks_run_on_the_platforms_runner_and_public_ones_do_not(tmp_path: Path) -> None:
    """The real matrix rows route a `network: private` stack's jobs (every job that signs in) to the self-hosted
    runner's label, the one definition the platform's runner registers with, and a public stack's to ubuntu-latest."""
    import json

    from provisioning.components.runner import RunnerSettings
    from provisioning.identities import private_runner_label

    write(tmp_path, "vaulted", f"tenantId: {OWN}\nlocation: eastus\nnetwork: private")
    write(tmp_path, "open", f"tenantId: {OWN}\nlocation: eastus")
    found = rows(tmp_path)
    assert json.loads(found["vaulted"]["runsOn"]) == ["self-hosted", "hr-connector-private-public"]
    assert json.loads(found["open"]["runsOn"]) == "ubuntu-latest"
    write(tmp_path, "vaulted-gov", f"tenantId: {OWN}\nlocation: usgovvirginia\ncloud: gcchigh\nnetwork: private")
    found = rows(tmp_path)
    assert json.loads(found["vaulted-gov"]["runsOn"]) == ["self-hosted", "hr-connector-private-usgovernment"]
    for environment in ("public", "usgovernment"):  # the label the platform's runner registers with
        runner = RunnerSettings(app_id="1", installation_id="2", image="r.io/x@sha256:" + "3" * 64,
                                azure_environment=environment)
        assert runner.labels[0] == private_runner_label(environment)
    for file, name, job in signing_jobs():
        assert job["runs-on"] == "${{ fromJSON(matrix.runsOn) }}", (file, name)
    # Those jobs run `make venv` on the runner too: its image must install make (actions-runner's base has none).
    runs = " ".join(str(s.get("run", "")) for _, _, job in signing_jobs() for s in job.get("steps", []))
    installed = (REPO_ROOT / "platform" / "runner" / "Dockerfile").read_text(encoding="utf-8").split("install -y", 1)[1]
    assert "make venv" in runs and " make " in installed.split("&&", 1)[0]


# ------------------------------------------------------------------------------------------------ new-stack

def new_stack(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from provisioning.tools.cli import main

    code = main(["new-stack", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_new_stack_writes_the_azure_side_and_prints_the_consent_for_the_tenants_cloud(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = ["--stacks-dir", str(tmp_path)]
    code, _, err = new_stack(capsys, "hub", "--hosting", "--cloud", "gcchigh", "--location", "usgovvirginia",
                             "--alert-email", "ops@platform.example", *where)
    assert code == 2 and "--azure-tenant-id" in err and not (tmp_path / "Pulumi.hub.yaml").exists()
    code, _, err = new_stack(capsys, "hub", "--hosting", "--cloud", "gcchigh", "--location", "usgovvirginia",
                             "--alert-email", "ops@platform.example", "--azure-tenant-id", PLATFORM,
                             "--image", "contosohr.azurecr.us/hr-uploader@sha256:" + "4f" * 32, *where)  # private
    assert code == 0, err
    assert f'hr-connector:azureTenantId: "{PLATFORM}"' in (tmp_path / "Pulumi.hub.yaml").read_text()
    # a hosted tenant naming another directory than its hosting stack's is refused, naming the key
    code, _, err = new_stack(capsys, "acme", "--cloud", "gcchigh", "--tenant-id", HOSTED, "--hosted-by", "hub",
                             "--azure-tenant-id", OWN, *where)
    assert code == 2 and "hr-connector:azureTenantId" in err and PLATFORM in err
    deploy_app = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    code, out, err = new_stack(capsys, "acme", "--cloud", "gcchigh", "--tenant-id", HOSTED, "--hosted-by", "hub",
                               "--deploy-app-id", deploy_app, *where)
    assert code == 0, err
    assert f"https://login.microsoftonline.us/{HOSTED}/adminconsent?client_id={deploy_app}" in out
    assert "Application.ReadWrite.OwnedBy (18a4783c-866b-4cc7-a460-3d5e5662c884)" in out
    assert "https://graph.microsoft.us" in out
    assert rows(tmp_path)["acme"]["azureTenantId"] == PLATFORM  # taken from the hosting stack
    code, out, _ = new_stack(capsys, "globex", "--cloud", "commercial", "--tenant-id", OWN, *where)
    assert code == 0 and f"https://login.microsoftonline.com/{OWN}/adminconsent?client_id=<deploy app" in out
