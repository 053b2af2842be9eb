"""The fleet at a glance: an Azure Monitor workbook over the workspace's run summaries.

Each hosting stack and each self-contained tenant stack deploys one (a hosted tenant's runs are in its hosting stack's
workspace, so in that stack's workbook): one row per stack with its last run, the outcome, records over the last 30
days with a small chart of them per day, rows set aside, files waiting and the certificate's days left. The same view
from a terminal is `python -m provisioning status`.

The resource is `Microsoft.Insights/workbooks` (pulumi_azure_native.applicationinsights.Workbook in the installed SDK,
API 2023-06-01; its arguments: resource_name must be a UUID, kind "shared", category "workbook", serialized_data the
workbook JSON, source_id the resource it belongs to, version "Notebook/1.0").
The workbook JSON ("Notebook/1.0": items of type 1, text, and 3, a KQL query over `fallbackResourceIds`; grid column
formatter 10, a sparkline over an array) follows the Application Insights Workbooks schema
(https://github.com/microsoft/Application-Insights-Workbooks, schema/workbook.json).
STATUS_QUERY reads the uploader's run summary lines (uploader/commands/run.py) from ContainerAppConsoleLogs (columns
TimeGenerated and Log: https://learn.microsoft.com/azure/azure-monitor/reference/tables/containerappconsolelogs),
parses them after the term filter, sums each stack's records per day, sorts by day so that make_list keeps that order
(https://learn.microsoft.com/kusto/query/make-list-aggregation-function), and keeps the last run's summary with
arg_max (https://learn.microsoft.com/kusto/query/arg-max-aggregation-function). Days without a run are not in the
chart's series. tests/test_workbook.py runs the text over sample rows.
"""

from __future__ import annotations

import json
import uuid

import pulumi
from pulumi_azure_native import applicationinsights

STATUS_QUERY = """\
ContainerAppConsoleLogs
| where TimeGenerated > ago(30d)
| where Log has "run_summary"
| extend summary = parse_json(Log)
| where tostring(summary.event) == "run_summary"
| extend Stack = tostring(summary.stack), Day = startofday(TimeGenerated),
    Records = toint(summary.records_sent), SetAside = toint(summary.rows_set_aside)
| summarize arg_max(TimeGenerated, summary), DayRecords = sum(Records), DaySetAside = sum(SetAside)
    by Stack, Day
| order by Day asc
| summarize arg_max(TimeGenerated, summary), Trend = make_list(DayRecords), Records = sum(DayRecords),
    SetAside = sum(DaySetAside) by Stack
| project Stack, LastRun = TimeGenerated, Outcome = tostring(summary.outcome),
    ExitCode = toint(summary.exit_code), Records, Trend, SetAside, FilesWaiting = toint(summary.files_waiting),
    CertificateDaysLeft = toint(summary.certificate_days_left)
| order by Stack asc
"""
DISPLAY_NAME = "hr-connector: upload runs"
INTRO = ("## hr-connector: did every tenant's upload run?\n"
         "One row per stack from the uploader's run summaries over the last 30 days: the last run and its outcome "
         "(exit code 0 sent, 1 failed, 2 configuration, 3 rejected, 4 rows set aside, 5 stopped), records sent "
         "(with a chart per day of runs), rows set aside, files waiting and the certificate's days left (empty "
         "for `credential: federated`). The same view in a terminal: `python -m provisioning status`.")


def workbook_json(workspace_id: str) -> str:
    """The workbook's serialized_data for one workspace (its ARM resource ID)."""
    grid = {"formatters": [
        {"columnMatch": "Trend", "formatter": 10, "formatOptions": {"palette": "blue"}},
        {"columnMatch": "ExitCode", "formatter": 18, "formatOptions": {"thresholdsOptions": "icons",
                                                                      "thresholdsGrid": [
            {"operator": "==", "thresholdValue": "0", "representation": "success", "text": "{0}"},
            {"operator": "==", "thresholdValue": "4", "representation": "2", "text": "{0}"},
            {"operator": "Default", "representation": "3", "text": "{0}"}]}},
        {"columnMatch": "CertificateDaysLeft", "formatter": 18, "formatOptions": {"thresholdsOptions": "colors",
                                                                                 "thresholdsGrid": [
            {"operator": "<", "thresholdValue": "14", "representation": "redBright", "text": "{0}"},
            {"operator": "<", "thresholdValue": "30", "representation": "orange", "text": "{0}"},
            {"operator": "Default", "representation": "green", "text": "{0}"}]}},
    ]}
    return json.dumps({
        "version": "Notebook/1.0",
        "items": [
            {"type": 1, "name": "intro", "content": {"json": INTRO}},
            {"type": 3, "name": "tenants", "content": {
                "version": "KqlItem/1.0", "query": STATUS_QUERY, "size": 0, "queryType": 0,
                "resourceType": "microsoft.operationalinsights/workspaces", "visualization": "table",
                "timeContext": {"durationMs": 30 * 24 * 3600 * 1000}, "gridSettings": grid}},
        ],
        "fallbackResourceIds": [workspace_id],
        "$schema": "https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json",
    }, separators=(",", ":"))


def workbook_id(stack: str) -> str:
    """A stable UUID per stack (the workbook's resource name must be one)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"hr-connector/{stack}/status-workbook"))


class StatusWorkbook(pulumi.ComponentResource):
    """The workbook over one workspace, in the stack's resource group."""

    def __init__(self, name: str, *, workspace_id: pulumi.Input[str], resource_group_name: pulumi.Input[str],
                 location: str, opts: pulumi.ResourceOptions) -> None:
        super().__init__("hr-connector:index:StatusWorkbook", name, None, opts)
        self.workbook = applicationinsights.Workbook(
            f"{name}-workbook",
            resource_name_=workbook_id(pulumi.get_stack()),
            resource_group_name=resource_group_name,
            location=location,
            kind=applicationinsights.WorkbookSharedTypeKind.SHARED,
            category="workbook",
            display_name=f"{DISPLAY_NAME} ({pulumi.get_stack()})",
            version="Notebook/1.0",
            source_id=workspace_id,
            serialized_data=pulumi.Output.from_input(workspace_id).apply(workbook_json),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"workbookId": self.workbook.id})
