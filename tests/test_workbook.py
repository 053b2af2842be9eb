"""The status workbook (issue 25 part 2): its query text (provisioning/components/workbook.py) run by the KQL-subset
evaluator (tests/kql_support.py; what that proves and what not is in its docstring) over ContainerAppConsoleLogs rows
shaped as the table reference documents them, whose Log holds run summaries from the uploader's real printer; and
the workbook resource in the render of a hosting stack (a self-contained one: tests/test_federated_stack.py)."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kql_support import run_pipeline

from provisioning.components.workbook import STATUS_QUERY, workbook_id, workbook_json
from provisioning.tools.offline import evaluate
from uploader.commands.run import _print_summary_line
from uploader.report import Reporter

NOW = dt.datetime(2026, 12, 6, 8, 0, tzinfo=dt.UTC)
WORKBOOK = "azure-native:applicationinsights:Workbook"


def console_row(monkeypatch: pytest.MonkeyPatch, stack: str, when: dt.datetime, exit_code: int, records: int,
                days: int | None = 120, **extra: Any) -> dict[str, Any]:
    """A ContainerAppConsoleLogs row (https://learn.microsoft.com/azure/azure-monitor/reference/tables/containerappconsolelogs)
    whose Log is the run summary line `uploader run` prints."""
    monkeypatch.setenv("UPLOADER_STACK", stack)
    monkeypatch.setattr("uploader.commands.run._SIGN_IN", {"credential": "certificate" if days is not None else
                                                           "federated", "certificate_days_left": days})
    out = io.StringIO()
    _print_summary_line(Reporter("text", stream=out), {"event": "run_summary", "exit_code": exit_code,
                                                      "files_sent": 1, "records_sent": records, "connectors": [],
                                                      **extra})
    job = f"hr-upload-{stack}"
    return {"TimeGenerated": when.isoformat(), "ContainerAppName": job, "ContainerName": "uploader",
            "ContainerGroupName": f"{job}-x7k2p-abcde", "EnvironmentName": "cae-hr", "JobName": f"{job}-x7k2p",
            "Log": out.getvalue().strip(), "Stream": "stdout", "RevisionName": ""}


def test_the_query_gives_one_row_per_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    day = dt.timedelta(days=1)
    rows = [
        console_row(monkeypatch, "contoso", NOW - 3 * day, 0, 100),
        console_row(monkeypatch, "contoso", NOW - 3 * day + dt.timedelta(hours=1), 0, 5),
        console_row(monkeypatch, "contoso", NOW - day, 4, 40, rows_set_aside=3),
        console_row(monkeypatch, "fabrikam", NOW - 2 * day, 1, 0, days=10),
        console_row(monkeypatch, "tailspin", NOW - day, 0, 7, days=None),
        console_row(monkeypatch, "old", NOW - 40 * day, 0, 9),  # outside the 30 days
        {**console_row(monkeypatch, "contoso", NOW, 0, 1), "Log": "contoso: 1 sent; run_summary follows"},
    ]
    result = run_pipeline(STATUS_QUERY, {"ContainerAppConsoleLogs": rows}, now=NOW)
    by_stack = {r["Stack"]: r for r in result}
    assert [r["Stack"] for r in result] == ["contoso", "fabrikam", "tailspin"]
    contoso = by_stack["contoso"]
    assert contoso["Outcome"] == "sent, rows set aside" and contoso["ExitCode"] == 4
    assert contoso["LastRun"] == (NOW - day).isoformat()
    assert contoso["Records"] == 145 and contoso["Trend"] == [105, 40] and contoso["SetAside"] == 3
    assert contoso["CertificateDaysLeft"] == 120 and contoso["FilesWaiting"] == 0
    assert by_stack["fabrikam"]["Outcome"] == "failed" and by_stack["fabrikam"]["CertificateDaysLeft"] == 10
    assert by_stack["tailspin"]["CertificateDaysLeft"] is None


def test_the_workbook_json_names_its_workspace_and_query() -> None:
    workspace = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/log-hr"
    data = json.loads(workbook_json(workspace))
    assert data["version"] == "Notebook/1.0" and data["fallbackResourceIds"] == [workspace]
    (query,) = [i["content"] for i in data["items"] if i["type"] == 3]
    assert query["query"] == STATUS_QUERY and query["resourceType"] == "microsoft.operationalinsights/workspaces"
    assert {"columnMatch": "Trend", "formatter": 10, "formatOptions": {"palette": "blue"}} in \
        query["gridSettings"]["formatters"]
    assert workbook_id("a") == workbook_id("a") != workbook_id("b")


@pytest.mark.pulumi
def test_a_hosting_stack_renders_the_workbook_over_its_workspace(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.platform-eastus.yaml"
    path.write_text(yaml.safe_dump({"config": {"hr-connector:hosting": True, "hr-connector:location": "eastus",
                                               "hr-connector:alertEmails": ["platform@contoso.com"],
                                               "hr-connector:azureTenantId": "9b2c7d4e-5f60-4718-8a9b-0c1d2e3f4a5b"}}))
    evaluation = evaluate(path, isolated=False)
    workbook = evaluation.one(WORKBOOK)
    workspace = evaluation.one("azure-native:operationalinsights:Workspace")
    assert workbook.inputs["sourceId"] == workspace.id and workbook.inputs["kind"] == "shared"
    assert json.loads(workbook.inputs["serializedData"])["fallbackResourceIds"] == [workspace.id]
    assert workbook.inputs["resourceName"] == workbook_id("platform-eastus")
