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


def platform_file(directory: Path, model: str) -> Path:
    path = directory / f"Pulumi.platform-{model}.yaml"
    write(directory, f"platform-{model}", [
        f"hr-connector-platform:repository: {REPOSITORY}", f"hr-connector-platform:tenantId: {PLATFORM}",
        f"hr-connector-platform:subscriptionId: {SUBSCRIPTION}",
        "hr-connector-platform:operatorObjectId: 7e8f9a0b-1c2d-4e3f-8a4b-5c6d7e8f9a0b",
        f"hr-connector-platform:model: {model}"])
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
