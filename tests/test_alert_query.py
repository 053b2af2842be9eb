"""Issue 24 item 2: the failed-run alert's query text (provisioning/components/alerts.py) run over sample rows of
both tables, shaped as the Azure Monitor table references document them, by the KQL-subset evaluator in
tests/kql_support.py (what that proves and what it does not is in its docstring: the query's logic under the
documented operator semantics, not Log Analytics itself). The console rows carry the uploader's own run summary
lines, printed by its real printer (uploader/commands/run.py)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from kql_support import has_term, run

from provisioning.components.alerts import failed_executions_query
from uploader.commands.run import _print_summary_line
from uploader.report import Reporter

JOB, STACK = "hr-upload-contoso", "contoso"
EXECUTION = "hr-upload-contoso-vvhlnul"  # `<job>-<suffix>`, as Get-AzContainerAppJobExecution shows one
SIBLING_EXECUTION = "hr-upload-contoso-test-k2j9x0a"  # an execution of the job of stack contoso-test


def summary_line(exit_code: int, stack: str = STACK, log_format: str = "text",
                 monkeypatch: pytest.MonkeyPatch | None = None) -> str:
    out = io.StringIO()
    assert monkeypatch is not None
    monkeypatch.setenv("UPLOADER_STACK", stack)
    _print_summary_line(Reporter(log_format, stream=out), {"event": "run_summary", "exit_code": exit_code,
                                                          "files_sent": 1, "connectors": []})
    return out.getvalue().strip()


def console(job_name: str, log: str) -> dict[str, Any]:
    """A ContainerAppConsoleLogs row (columns: https://learn.microsoft.com/azure/azure-monitor/reference/tables/containerappconsolelogs)."""
    return {"TimeGenerated": "2026-12-06T02:00:05Z", "ContainerAppName": JOB, "ContainerName": "uploader",
            "ContainerGroupName": f"{job_name}-7xk2p", "EnvironmentName": "cae-hr", "JobName": job_name,
            "Log": log, "Stream": "stdout", "RevisionName": ""}


def system(job_name: str, reason: str, log: str) -> dict[str, Any]:
    """A ContainerAppSystemLogs row (columns: https://learn.microsoft.com/azure/azure-monitor/reference/tables/containerappsystemlogs)."""
    return {"TimeGenerated": "2026-12-06T02:00:09Z", "EnvironmentName": "cae-hr", "JobName": job_name,
            "ReplicaName": f"{job_name}-7xk2p", "Reason": reason, "Log": log, "EventSource": "ContainerAppController",
            "Type": "Warning", "Count": 1}


def alerts(console_rows: list[dict[str, Any]] = (), system_rows: list[dict[str, Any]] = ()) -> int:  # type: ignore[assignment]
    tables: dict[str, list[dict[str, Any]]] = {}
    if console_rows:
        tables["ContainerAppConsoleLogs"] = list(console_rows)
    if system_rows:
        tables["ContainerAppSystemLogs"] = list(system_rows)
    return len(run(failed_executions_query(JOB, STACK), tables))


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize(("exit_code", "fires"), [(0, False), (1, True), (2, True), (3, True), (4, True),
                                                  (5, True)])
def test_a_run_summary_of_an_execution_fires_on_a_non_zero_exit(exit_code: int, fires: bool, log_format: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    line = summary_line(exit_code, log_format=log_format, monkeypatch=monkeypatch)
    # JobName holds the execution's Kubernetes job name, not the job's: `JobName == job` alone never matched this
    assert alerts([console(EXECUTION, line)]) == int(fires)
    assert alerts([console(JOB, line)]) == int(fires), "the job's own name is taken too"


def test_other_jobs_and_other_stacks_do_not_fire(monkeypatch: pytest.MonkeyPatch) -> None:
    failed = summary_line(1, monkeypatch=monkeypatch)
    other_stack = summary_line(1, stack="contoso-test", monkeypatch=monkeypatch)
    assert alerts([console(SIBLING_EXECUTION, other_stack)]) == 0  # the sibling job's executions
    assert alerts([console("hr-upload-contosox-abc1234", failed)]) == 0
    assert alerts([console(EXECUTION, other_stack)]) == 0  # a summary naming another stack
    assert alerts([console(EXECUTION, "an unrelated line mentioning run_summary and exit_code 1")]) == 0
    assert alerts([console(EXECUTION, failed), console(EXECUTION, failed)]) == 2


def test_a_summary_without_a_stack_still_fires(monkeypatch: pytest.MonkeyPatch) -> None:
    """An image from before UPLOADER_STACK: the job match alone decides."""
    monkeypatch.delenv("UPLOADER_STACK", raising=False)
    out = io.StringIO()
    _print_summary_line(Reporter("text", stream=out), {"event": "run_summary", "exit_code": 1})
    assert '"stack"' not in out.getvalue()
    assert alerts([console(EXECUTION, out.getvalue().strip())]) == 1


@pytest.mark.parametrize(("reason", "log", "fires"), [
    ("BackoffLimitExceeded", "Job has reached the specified backoff limit", True),
    ("DeadlineExceeded", "Job was active longer than specified deadline", True),
    ("ContainerTerminated", "Container 'uploader' was terminated with exit code '1' and reason 'ProcessExited'", True),
    ("ContainerTerminated", "Container 'uploader' was terminated with exit code '0' and reason 'ProcessExited'", False),
    ("SuccessfulCreate", "Created pod: hr-upload-contoso-vvhlnul-7xk2p", False),
])
def test_the_system_leg_fires_on_failed_executions(reason: str, log: str, fires: bool) -> None:
    assert alerts(system_rows=[system(EXECUTION, reason, log)]) == int(fires)
    assert alerts(system_rows=[system(JOB, reason, log)]) == int(fires)
    assert alerts(system_rows=[system(SIBLING_EXECUTION, reason, log)]) == 0


def test_either_table_may_be_missing() -> None:
    assert alerts() == 0
    assert alerts(system_rows=[system(EXECUTION, "BackoffLimitExceeded", "limit")]) == 1


def test_names_that_would_not_stay_literal_are_refused() -> None:
    for job in ("Hr-Upload", "hr--upload", "hr.upload", "hr-upload-", 'x"; drop', "a" * 33):
        with pytest.raises(ValueError):
            failed_executions_query(job, STACK)
    with pytest.raises(ValueError):
        failed_executions_query(JOB, 'contoso"')


def test_the_evaluator_applies_has_as_a_whole_term() -> None:
    """The one operator whose semantics the evaluator approximates most: a term match, not a substring."""
    assert has_term("exit code '0' and", "exit code '0'")
    assert has_term('{"event": "run_summary"}', "run_summary")
    assert not has_term("exit code '0'1", "exit code '0'1x")
    assert not has_term("prerun_summary", "run_summary")
