"""Hosting stacks and hosted tenants (issue 15): the real program under Pulumi mocks, a small fleet rendered in a
temporary stacks folder (the hosting stack's outputs come from its own stack file, evaluated first)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provisioning.components.hosting import HOSTING_OUTPUTS
from provisioning.config import ConfigError, all_problems
from provisioning.naming import Names
from provisioning.tools.offline import REPO_ROOT, Evaluation, Resource, _evaluate_here, evaluate, load_stack_file

pytestmark = pytest.mark.pulumi

TENANTS = {
    "acme": "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
    "globex": "6f9619ff-8b86-4011-b42d-00c04fc964ff",
    "initech-with-a-rather-long-stack-name": "1b4e28ba-2fa1-41d2-883f-0016d3cca427",
}
#: the hosting subscription's directory: every hosted tenant's Azure side (each tenant above is its own M365 side)
PLATFORM = "9f1c2a3b-4d5e-4f60-8a7b-8c9d0e1f2a3b"
ROLE = "azure-native:authorization:RoleAssignment"
JOB = "azure-native:app:Job"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
SHARED_TYPES = ("azure-native:app:ManagedEnvironment", "azure-native:operationalinsights:Workspace",
                "azure-native:containerregistry:Registry", "docker-build:index:Image",
                "azure-native:monitor:DiagnosticSetting")


def hosting_file(directory: Path, name: str = "hub-eastus", cloud: str = "commercial",
                 location: str = "eastus", extra: str = "", azure_tenant: str = PLATFORM) -> Path:
    path = directory / f"Pulumi.{name}.yaml"
    path.write_text("config:\n  hr-connector:hosting: true\n"
                    f"  hr-connector:cloud: {cloud}\n  hr-connector:location: {location}\n"
                    f"  hr-connector:alertEmails: [platform@contoso.example]\n"
                    f"  hr-connector:azureTenantId: {azure_tenant}\n{extra}", encoding="utf-8")
    return path


def tenant_file(directory: Path, name: str, tenant: str, hosted_by: str | None = "hub-eastus",
                cloud: str = "commercial", location: str = "eastus", extra: str = "") -> Path:
    path = directory / f"Pulumi.{name}.yaml"
    hosted = f"  hr-connector:hostedBy: {hosted_by}\n" if hosted_by else ""
    path.write_text(f"config:\n  hr-connector:tenantId: {tenant}\n  hr-connector:cloud: {cloud}\n"
                    f"  hr-connector:location: {location}\n{hosted}{extra}", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Evaluation]:
    """One hosting stack and three hosted tenants, evaluated in this process one after another."""
    directory = tmp_path_factory.mktemp("stacks")
    hosting = _evaluate_here(load_stack_file(hosting_file(directory)), REPO_ROOT)
    out = {"hub-eastus": hosting}
    for name, tenant in TENANTS.items():
        out[name] = _evaluate_here(load_stack_file(tenant_file(directory, name, tenant)), REPO_ROOT,
                                   {"hub-eastus": hosting.outputs})
    return out


def test_a_hosting_stack_declares_the_shared_resources_and_no_tenant(fleet: dict[str, Evaluation]) -> None:
    hosting = fleet["hub-eastus"]
    types = {r.type for r in hosting.resources if r.custom}
    assert set(SHARED_TYPES) <= types
    assert "azure-native:monitor:ActionGroup" in types and "azure-native:resources:ResourceGroup" in types
    assert not [t for t in types if t.startswith("azuread") or "keyvault" in t or "storage" in t or t == JOB]
    assert not hosting.of_type("pulumi:providers:azuread")
    assert set(hosting.outputs) == set(HOSTING_OUTPUTS)
    assert hosting.outputs["hosting"] is True and "tenantId" not in hosting.outputs
    environment = hosting.one("azure-native:app:ManagedEnvironment")
    assert environment.inputs["appLogsConfiguration"] == {"destination": "azure-monitor"}
    assert hosting.outputs["environmentId"] == environment.id
    # issue 26: the shared registry takes registry-audience tokens only and logs to the shared workspace
    registry = hosting.one("azure-native:containerregistry:Registry")
    assert registry.inputs["policies"] == {"azureADAuthenticationAsArmPolicy": {"status": "disabled"}}
    (registry_logs,) = [d for d in hosting.of_type("azure-native:monitor:DiagnosticSetting")
                        if d.inputs["resourceUri"] == registry.id]
    assert registry_logs.inputs["workspaceId"] == hosting.one("azure-native:operationalinsights:Workspace").id


def test_destroying_a_hosting_stack_with_its_shared_resources_is_refused(fleet: dict[str, Evaluation]) -> None:
    """protect=True on the group, environment, workspace, diagnostic setting and action group: `pulumi destroy`
    refuses while they exist (https://www.pulumi.com/docs/iac/concepts/options/protect/)."""
    hosting = fleet["hub-eastus"]
    protected = {r.type for r in hosting.resources if r.protect}
    assert {"azure-native:resources:ResourceGroup", "azure-native:app:ManagedEnvironment",
            "azure-native:operationalinsights:Workspace", "azure-native:monitor:ActionGroup"} <= protected
    for name in TENANTS:  # a tenant protects nothing of the kind: it can always be destroyed on its own
        assert not [r.type for r in fleet[name].resources if r.protect]


def test_a_hosted_tenant_declares_no_environment_workspace_or_registry(fleet: dict[str, Evaluation]) -> None:
    hosting = fleet["hub-eastus"]
    for name in TENANTS:
        tenant = fleet[name]
        diagnostics = "azure-native:monitor:DiagnosticSetting"
        assert not [r for r in tenant.resources if r.type in SHARED_TYPES and r.type != diagnostics], name
        # its own resource logs (issue 26) go to the shared workspace; none watches a shared resource
        own = {tenant.one("azure-native:keyvault:Vault").id,
               tenant.one("azure-native:storage:BlobServiceProperties").id}
        settings = tenant.of_type(diagnostics)
        assert {d.inputs["resourceUri"] for d in settings} == own, name
        assert {d.inputs["workspaceId"] for d in settings} == {hosting.outputs["workspaceId"]}
        job = tenant.one(JOB)
        assert job.inputs["environmentId"] == hosting.outputs["environmentId"]
        (container,) = job.inputs["template"]["containers"]
        assert container["image"] == hosting.outputs["image"]
        assert job.inputs["configuration"]["registries"] == [
            {"server": hosting.outputs["registryLoginServer"], "identity": tenant.one(
                "azure-native:managedidentity:UserAssignedIdentity").id}]
        # what it keeps of its own
        for kind in ("azuread:index/application:Application", "pulumi-python:dynamic/hrconnector:Certificate",
                     "azure-native:keyvault:Vault", "azure-native:storage:StorageAccount",
                     "azure-native:managedidentity:UserAssignedIdentity", JOB,
                     "azure-native:monitor:ScheduledQueryRule"):
            tenant.one(kind)
        assert tenant.outputs["hostedBy"] == "hub-eastus"


def test_each_alert_rule_watches_its_own_job_in_the_shared_workspace(fleet: dict[str, Evaluation]) -> None:
    hosting = fleet["hub-eastus"]
    for name in TENANTS:
        tenant = fleet[name]
        rule = tenant.one("azure-native:monitor:ScheduledQueryRule")
        assert rule.inputs["scopes"] == [hosting.outputs["workspaceId"]]
        assert rule.inputs["actions"]["actionGroups"] == [hosting.outputs["actionGroupId"]]
        (condition,) = rule.inputs["criteria"]["allOf"]
        assert f'let job = "{tenant.outputs["jobName"]}";' in condition["query"]


def _scope_owner(scope: str, evaluations: dict[str, Evaluation]) -> str:
    """Which stack declared the resource at this ARM scope."""
    owners = [name for name, ev in evaluations.items()
              for r in ev.resources if r.custom and r.id and (scope == r.id)]
    assert len(owners) == 1, scope
    return owners[0]


def test_no_tenant_identity_holds_a_role_beyond_its_own_resources_and_image_pull(
        fleet: dict[str, Evaluation]) -> None:
    """Across the rendered fleet: every role assignment of a hosted tenant lies on that tenant's own resources,
    apart from AcrPull on the hosting stack's registry; no assignment anywhere is on another tenant's."""
    for name in TENANTS:
        tenant = fleet[name]
        identity = tenant.one("azure-native:managedidentity:UserAssignedIdentity")
        for assignment in tenant.of_type(ROLE):
            assert assignment.inputs["principalId"] == identity.state["principalId"]
            owner = _scope_owner(assignment.inputs["scope"], fleet)
            role = assignment.inputs["roleDefinitionId"].rsplit("/", 1)[-1]
            if owner != name:
                assert owner == "hub-eastus" and role == ACR_PULL, (name, owner, role)
                assert assignment.inputs["scope"] == fleet["hub-eastus"].outputs["registryId"]
    assert not fleet["hub-eastus"].of_type(ROLE)  # the hosting stack grants nobody anything


def test_job_names_are_unique_in_the_shared_environment(fleet: dict[str, Evaluation]) -> None:
    names = [fleet[name].one(JOB).inputs["jobName"] for name in TENANTS]
    assert len(set(names)) == len(names)
    assert all(len(n) <= 32 and n.startswith("hr-hosted-") for n in names)
    # a long stack name is truncated with a hash of the whole name; two names sharing the truncated part differ
    a, b = Names("initech-with-a-rather-long-stack-name-1", ""), Names("initech-with-a-rather-long-stack-name-2", "")
    assert a.job == b.job and a.hosted_job != b.hosted_job


def test_log_lines_carry_the_stack_name(fleet: dict[str, Evaluation]) -> None:
    """The shared workspace's JobName column is the job's name, which carries the stack name (a hash stands in
    for the end of a long one), and each run summary names the whole stack (UPLOADER_STACK); the uploader logs
    no HR data (docs/security.md)."""
    for name in ("acme", "globex"):
        assert fleet[name].one(JOB).inputs["jobName"] == f"hr-hosted-{name}"
    for name in TENANTS:
        (container,) = fleet[name].one(JOB).inputs["template"]["containers"]
        assert {"name": "UPLOADER_STACK", "value": name} in container["env"]


# ------------------------------------------------------------------------------------------------ mismatches


def _problems(path: Path) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        evaluate(path, isolated=False)
    return {p.key: p.rule for p in all_problems(caught.value)}


def test_a_gcc_high_tenant_naming_a_commercial_hosting_stack_fails(tmp_path: Path) -> None:
    hosting_file(tmp_path)
    path = tenant_file(tmp_path, "tailspin", TENANTS["acme"], cloud="gcchigh", location="usgovvirginia")
    problems = _problems(path)
    assert "hr-connector:cloud" in problems and "usgovernment" in problems["hr-connector:cloud"]


def test_location_and_subscription_must_match_the_hosting_stack(tmp_path: Path) -> None:
    hosting_file(tmp_path, extra="  hr-connector:subscriptionId: 11111111-2222-4333-8444-555555555555\n")
    path = tenant_file(tmp_path, "acme", TENANTS["acme"], location="westeurope")
    problems = _problems(path)
    assert "hr-connector:location" in problems
    path = tenant_file(tmp_path, "acme", TENANTS["acme"])
    assert "hr-connector:subscriptionId" in _problems(path)


def test_a_hosting_stack_that_does_not_exist_is_named(tmp_path: Path) -> None:
    path = tenant_file(tmp_path, "acme", TENANTS["acme"], hosted_by="hub-nowhere")
    problems = _problems(path)
    assert "does not exist" in problems["hr-connector:hostedBy"] and "hub-nowhere" in problems["hr-connector:hostedBy"]
    tenant_file(tmp_path, "globex", TENANTS["globex"], hosted_by=None)
    path = tenant_file(tmp_path, "acme", TENANTS["acme"], hosted_by="globex")
    assert "not a hosting stack" in _problems(path)["hr-connector:hostedBy"]


def test_a_full_org_project_stack_name_is_accepted(tmp_path: Path) -> None:
    hosting_file(tmp_path)
    path = tenant_file(tmp_path, "acme", TENANTS["acme"], hosted_by="acme-corp/hr-connector/hub-eastus")
    evaluation = evaluate(path, isolated=False)
    assert evaluation.outputs["hostedBy"] == "acme-corp/hr-connector/hub-eastus"


# ------------------------------------------------------------------------------------------------ moving in


def _by_urn(ev: Evaluation) -> dict[str, Resource]:
    return {r.urn: r for r in ev.resources}


def test_moving_in_replaces_only_the_job(tmp_path: Path) -> None:
    """A self-contained tenant that adds hostedBy: the app, certificate, vault and drop zone keep their URNs and
    inputs (nothing of them changes in the `up`); the job moves to the shared environment. Moving in keeps the
    subscription, so the Azure side's directory too (here the tenant's own, as the hosting stack's)."""
    before_dir, after_dir = tmp_path / "before", tmp_path / "after"
    before_dir.mkdir()
    after_dir.mkdir()
    hosting_file(after_dir, azure_tenant=TENANTS["acme"])
    before = evaluate(tenant_file(before_dir, "acme", TENANTS["acme"], hosted_by=None), isolated=False)
    after = evaluate(tenant_file(after_dir, "acme", TENANTS["acme"]), isolated=False)
    old, new = _by_urn(before), _by_urn(after)
    kept = ("azuread:index/application:Application", "azuread:index/servicePrincipal:ServicePrincipal",
            "pulumi-python:dynamic/hrconnector:Certificate", "azure-native:keyvault:Vault",
            "azure-native:storage:StorageAccount", "azure-native:storage:BlobContainer",
            "azure-native:storage:ManagementPolicy", "azure-native:resources:ResourceGroup",
            "azure-native:managedidentity:UserAssignedIdentity")
    for r in before.resources:
        if r.type in kept:
            assert r.urn in new, r.urn
            assert json.dumps(new[r.urn].inputs, sort_keys=True) == json.dumps(r.inputs, sort_keys=True), r.urn
    # the secret's URN stays (its value is a freshly generated key in each offline evaluation, not in a real up)
    assert {r.urn for r in before.of_type("azure-native:keyvault:Secret")} == {
        r.urn for r in after.of_type("azure-native:keyvault:Secret")}
    job_before, job_after = before.one(JOB), after.one(JOB)
    assert job_before.urn == job_after.urn and job_before.inputs["environmentId"] != job_after.inputs["environmentId"]
    # a new name: the replacement creates the hosted job before deleting the old one (create-before-delete,
    # Pulumi's default; the same name would clash in the resource group)
    assert job_before.inputs["jobName"] != job_after.inputs["jobName"] and not job_after.delete_before_replace
    # same identity, drop zone and secret: the old and new job share the drop zone's locks and checkpoints
    assert job_before.inputs["identity"] == job_after.inputs["identity"]
    gone = {r.type for r in before.resources if r.urn not in old.keys() & new.keys()}
    assert set(SHARED_TYPES) <= gone  # its own environment, workspace, registry and image go
    assert before.outputs["dropZoneUrl"] == after.outputs["dropZoneUrl"]
    assert before.outputs["keyVaultUri"] == after.outputs["keyVaultUri"]
