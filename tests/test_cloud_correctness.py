"""Real-cloud correctness the mocks can show: renewal switches the job's key inside the `up`, the first `up` waits
for RBAC to propagate, the image inputs hold no machine path, the alert query survives missing tables, and the
next steps name the role each cloud's connector page requires."""

from __future__ import annotations

import json
import re

import pytest
from stack_examples import example_stacks

from provisioning.components.alerts import failed_executions_query
from provisioning.components.outputs import next_steps
from provisioning.components.rbacwait import PROPAGATION_SECONDS, RoleAssignmentWaitProvider
from provisioning.config import load_settings
from provisioning.tools.offline import REPO_ROOT, Evaluation, evaluate
from uploader.clouds import CLOUDS

APP_CERT = "azuread:index/applicationCertificate:ApplicationCertificate"
SECRET = "azure-native:keyvault:Secret"
JOB = "azure-native:app:Job"
ROLE = "azure-native:authorization:RoleAssignment"
RBAC_WAIT = "pulumi-python:dynamic/hrconnector:RoleAssignmentWait"
IMAGE = "docker-build:index:Image"
TENANT = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
APP_ID = "55555555-5555-4555-8555-555555555555"


def _stack(cloud: str) -> object:
    """The first stack file of a cloud (every cloud has one in examples/stacks/)."""
    return next(p for p in example_stacks() if p.name.endswith(f"-{cloud}.yaml"))


# ------------------------------------------------------------------------------------------- renewal window


@pytest.fixture(scope="module")
def two_deploys() -> tuple[Evaluation, Evaluation]:
    """The same stack evaluated twice: each evaluation generates a new certificate, as a renewal does."""
    path = _stack("commercial")
    return evaluate(path, isolated=False), evaluate(path, isolated=False)


@pytest.mark.pulumi
def test_a_renewal_changes_the_jobs_secret_reference(two_deploys: tuple[Evaluation, Evaluation]) -> None:
    """A new key is a new secret version; the job references that version, so the `up` updates the job.

    With a version-less reference the job's inputs would not change and Container Apps would pick up the new
    key only within ~30 minutes, while the old credential is already deleted at the end of the `up`.
    """
    urls = []
    for ev in two_deploys:
        (ref,) = ev.one(JOB).inputs["configuration"]["secrets"]
        props = ev.one(SECRET).state["properties"]
        assert ref["keyVaultUrl"] == props["secretUriWithVersion"]
        assert re.fullmatch(re.escape(props["secretUri"]) + r"/[0-9a-f]{32}", ref["keyVaultUrl"])
        urls.append(ref["keyVaultUrl"])
    first, second = two_deploys
    assert first.one(SECRET).state["properties"]["secretUri"] == second.one(SECRET).state["properties"]["secretUri"]
    assert urls[0] != urls[1], "a new key must change the job's reference, or the job keeps the old key"


@pytest.mark.pulumi
def test_the_job_update_sits_between_the_new_credential_and_the_old_ones_removal(
    two_deploys: tuple[Evaluation, Evaluation],
) -> None:
    """Pulumi deletes a replaced resource only after every create and update of the `up`; the job's update is
    one of them as long as the job depends on the secret, which depends on the (create-before-delete) credential."""
    ev = two_deploys[0]
    cred, secret, job = ev.one(APP_CERT), ev.one(SECRET), ev.one(JOB)
    assert cred.delete_before_replace is False  # the old credential goes last, after its replacement exists
    assert cred.urn in secret.depends_on  # the new version is written after the new credential is registered
    assert secret.urn in job.depends_on  # the job's update waits for the new version


# ------------------------------------------------------------------------------------------- RBAC propagation


@pytest.mark.pulumi
def test_the_job_waits_for_its_role_assignments_to_propagate(two_deploys: tuple[Evaluation, Evaluation]) -> None:
    ev = two_deploys[0]
    wait, job, roles = ev.one(RBAC_WAIT), ev.one(JOB), ev.of_type(ROLE)
    assert wait.urn in job.depends_on
    assert sorted(wait.inputs["roleAssignmentIds"]) == sorted(r.id for r in roles)  # keyed to the assignments
    assert {r.urn for r in roles} <= set(wait.depends_on)
    assert wait.inputs["seconds"] == PROPAGATION_SECONDS == 600


def _provider(slept: list[float]) -> RoleAssignmentWaitProvider:
    return RoleAssignmentWaitProvider(sleep=slept.append)


def test_the_wait_sleeps_on_create_only() -> None:
    slept: list[float] = []
    provider = _provider(slept)
    created = provider.create({"roleAssignmentIds": ["/a/roleAssignments/2", "/a/roleAssignments/1"], "seconds": 600})
    assert slept == [600]
    olds = dict(created.outs or {})
    assert olds["roleAssignmentIds"] == ["/a/roleAssignments/1", "/a/roleAssignments/2"]
    same = provider.diff(created.id, olds, {"roleAssignmentIds": ["/a/roleAssignments/1", "/a/roleAssignments/2"],
                                            "seconds": 600})
    assert not same.changes and not same.replaces  # an ordinary `up`: no wait
    provider.update(created.id, olds, {**olds, "seconds": 30})
    provider.delete(created.id, olds)
    assert slept == [600]


def test_a_new_role_assignment_waits_again() -> None:
    provider = _provider([])
    olds = {"roleAssignmentIds": ["/a/roleAssignments/1"], "seconds": 600}
    recreated = provider.diff("id", olds, {"roleAssignmentIds": ["/a/roleAssignments/9"], "seconds": 600})
    assert recreated.changes and recreated.replaces == ["roleAssignmentIds"]
    assert recreated.delete_before_replace is False
    from pulumi.runtime.rpc import UNKNOWN  # what a preview sees for an assignment about to be (re)created

    previewed = provider.diff("id", olds, {"roleAssignmentIds": [UNKNOWN], "seconds": 600})
    assert previewed.replaces == ["roleAssignmentIds"]
    assert not provider.check({}, {"roleAssignmentIds": UNKNOWN, "seconds": 600}).failures


@pytest.mark.parametrize(("props", "key"), [
    ({"roleAssignmentIds": [], "seconds": 600}, "roleAssignmentIds"),
    ({"roleAssignmentIds": "not-a-list", "seconds": 600}, "roleAssignmentIds"),
    ({"roleAssignmentIds": ["/x"], "seconds": -1}, "seconds"),
    ({"roleAssignmentIds": ["/x"], "seconds": True}, "seconds"),
])
def test_the_wait_refuses_bad_inputs(props: dict, key: str) -> None:
    assert [f.property for f in _provider([]).check({}, props).failures] == [key]


# ------------------------------------------------------------------------------------------- image inputs


@pytest.mark.pulumi
def test_no_input_holds_this_checkouts_absolute_path(two_deploys: tuple[Evaluation, Evaluation]) -> None:
    """Project-relative build inputs: a deploy from another clone path changes nothing, rebuilds nothing."""
    ev = two_deploys[0]
    assert str(REPO_ROOT) not in json.dumps([r.inputs for r in ev.resources])
    image = ev.one(IMAGE)
    assert image.inputs["context"]["location"] == "."
    assert image.inputs["dockerfile"]["location"] == "uploader/Dockerfile"
    assert (REPO_ROOT / image.inputs["dockerfile"]["location"]).is_file()
    assert (REPO_ROOT / image.inputs["context"]["location"] / "pyproject.toml").is_file()


# ------------------------------------------------------------------------------------------- alert query


def test_the_alert_query_names_each_table_inside_a_fuzzy_union_leg() -> None:
    """`union isfuzzy=true` only forgives sources it resolves itself: a table bound in a `let` statement fails
    when it does not exist yet (https://learn.microsoft.com/kusto/query/union-operator)."""
    query = failed_executions_query("hr-job", "contoso")
    tables = ("ContainerAppSystemLogs", "ContainerAppConsoleLogs")
    lets = [line for line in query.splitlines() if line.startswith("let ")]
    assert lets == ['let job = "hr-job";', 'let stack = "contoso";']  # scalars only; no table bound outside the union
    head, _, legs = query.partition("union isfuzzy=true")
    assert legs and not any(t in head for t in tables)
    for table in tables:
        assert re.search(rf"\(\s*{table}\s*\|", legs), f"{table} is not a parenthesized union leg"
    assert legs.count("(") == legs.count(")")
    assert legs.count("JobName == job or JobName matches regex @\"^hr-job-[a-z0-9]+$\"") == 2  # both legs: the job


# ------------------------------------------------------------------------------------------- next steps


@pytest.mark.parametrize("cloud", ["commercial", "gcc", "gcchigh", "dod"])
def test_next_steps_name_data_connector_admin_in_every_cloud(cloud: str) -> None:
    """Microsoft's current pages, commercial and US Government alike, name Data Connector Admin
    (https://learn.microsoft.com/purview/import-hr-data, https://learn.microsoft.com/purview/import-hr-data-us-government);
    Mailbox Import Export, from older US Government pages, is only what to try if the portal refuses."""
    location = "usgovvirginia" if CLOUDS[cloud].azure_environment == "usgovernment" else "eastus"
    settings = load_settings({"tenantId": TENANT, "cloud": cloud, "location": location})
    text = next_steps(settings, APP_ID)
    assert "(role: Data Connector Admin;" in text and APP_ID in text
    legacy = text.index("Mailbox Import Export")
    assert "if the portal refuses" in text[:legacy]


def test_the_docs_name_data_connector_admin_in_every_cloud() -> None:
    for page in ("README.md", "docs/us-government.md", "docs/operators-guide.md", "docs/migrating.md"):
        text = (REPO_ROOT / page).read_text()
        assert "Data Connector Admin" in text, page
        for line in (ln for ln in text.splitlines() if "Mailbox Import Export" in ln):
            assert "refuses" in line or "older" in line or "Older" in line, (page, line)


#: The documented columns of the resource-specific tables a diagnostic setting writes
#: (https://learn.microsoft.com/azure/azure-monitor/reference/tables/containerappsystemlogs and
#: https://learn.microsoft.com/azure/azure-monitor/reference/tables/containerappconsolelogs).
SYSTEM_LOG_COLUMNS = {"_BilledSize", "ComponentName", "ComponentType", "ContainerAppName", "ContainerName", "Count",
                      "EnvironmentName", "EventSource", "_IsBillable", "JobName", "Location", "Log", "OperationName",
                      "Reason", "ReplicaName", "_ResourceId", "RevisionName", "SourceSystem", "_SubscriptionId",
                      "TenantId", "TimeGenerated", "Type"}
CONSOLE_LOG_COLUMNS = {"_BilledSize", "ContainerAppName", "ContainerGroupId", "ContainerGroupName", "ContainerId",
                       "ContainerImage", "ContainerName", "EnvironmentName", "_IsBillable", "JobName", "Location",
                       "Log", "OperationName", "_ResourceId", "RevisionName", "SourceSystem", "Stream",
                       "_SubscriptionId", "TenantId", "TimeGenerated", "Type"}


def test_the_alert_query_reads_the_tables_the_azure_monitor_destination_writes() -> None:
    """Issue 16 A1: the environment logs through a diagnostic setting (no shared key), which writes the
    resource-specific tables, whose columns carry no `_s`/`_g` type suffix; `_CL` tables stay empty."""
    query = failed_executions_query("hr-job", "contoso")
    assert "_CL" not in query and "column_ifexists" not in query
    legs = query.split("(ContainerApp")[1:]
    columns = {"SystemLogs": SYSTEM_LOG_COLUMNS, "ConsoleLogs": CONSOLE_LOG_COLUMNS}
    for leg in legs:
        table = leg.split()[0]
        used = set(re.findall(r"\b([A-Z][A-Za-z]+)\s*(?:==|=~|in~|!has|has|matches regex)", leg))
        used |= set(re.findall(r"parse_json\(([A-Za-z]+)\)", leg))
        assert used, table
        assert used <= columns[table], f"ContainerApp{table}: {used - columns[table]} are not documented columns"
        assert not re.search(r"\b[A-Za-z]+_[sgd]\b", leg)
        assert "JobName == job" in leg
