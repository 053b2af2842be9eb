"""`python -m provisioning status`: did every tenant's upload run, and is any certificate close to expiry?

One row per stack from the uploader's run summaries (the one JSON line each `uploader run` prints,
uploader/commands/run.py): the last run's time and outcome, records sent over the last 30 days (per day, as a small
chart), rows set aside, files waiting, and the certificate's days left where there is one (a federated stack has none).

Where the summaries come from:
- `--summaries FILE`: JSON lines as the job prints them (its other lines are skipped), or rows exported from a
  workspace (objects with `TimeGenerated` and `Log`, the ContainerAppConsoleLogs columns:
  https://learn.microsoft.com/azure/azure-monitor/reference/tables/containerappconsolelogs);
- otherwise Azure: each selected stack's `workspaceId` output (from `pulumi stack output`, or `--outputs` files as
  `certs` reads them), each workspace asked once through Azure's own query SDK (azure-monitor-query's
  LogsQueryClient.query_resource, with the operator's sign-in through azure-identity's DefaultAzureCredential) for
  the last 30 days of run summaries (SUMMARY_QUERY), at the cloud's query endpoint (uploader/clouds.py).
  Each workspace is asked with a token from its stack's Azure-side directory (the directory that manages its
  subscription: `azureTenantId`, fleet.MatrixEntry.azure_tenant_id), never the operator's home directory: the
  service refuses a token from a directory that does not manage the subscription ("This token must be from a
  tenant that can manage the subscription":
  https://learn.microsoft.com/azure/azure-resource-manager/management/authenticate-multi-tenant; the query API's
  answer, InvalidTokenError / InvalidAuthenticationTokenTenant:
  https://github.com/microsoft/jupyter-Kqlmagic/issues/96). DirectoryCredential pins the tenant through
  azure-identity's own multi-tenant mechanism (get_token(..., tenant_id=...), allowed by
  additionally_allowed_tenants). A workspace that cannot be asked is a problem of its stacks, named with the
  directory and what to do; the other rows still print.

Output: a table (default), `--json`, or `--html FILE`: a self-contained page (inline SVG, no script, no external
asset). Every value that came from a summary is escaped before it is shown: a summary is data, never markup.
Exit 0, or 1 when a stack's last run failed or its certificate has fewer than `--warn-days` days left.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uploader.model.safetext import safe_text

DAYS = 30
DEFAULT_WARN_DAYS = 14
#: What `status` asks each workspace (over the last DAYS days, the query's timespan): the console lines that may be run
#: summaries, parsed here (the same parser as for --summaries files). `has` is a term match on the indexed column.
SUMMARY_QUERY = """\
ContainerAppConsoleLogs
| where Log has "run_summary"
| project TimeGenerated, Log
"""
#: Failed outcomes (uploader exit codes 1, 2, 3); 4 ("sent, rows set aside") is a warning, not a failure.
FAILED_CODES = (1, 2, 3)


class StatusError(ValueError):
    """A summaries file or an answer that cannot be read (the message names the file and line, or the workspace);
    exit 2 for a file given, 1 for a workspace that could not be asked."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class SignInError(StatusError):
    """No token could be had from a directory at all (the credential is not signed in there): every workspace of that
    directory fails the same way."""


@dataclass(frozen=True)
class Run:
    """One run summary."""

    stack: str
    time: dt.datetime | None
    exit_code: int
    outcome: str
    records_sent: int = 0
    rows_set_aside: int = 0
    files_waiting: int = 0
    certificate_days_left: int | None = None
    credential: str = ""
    job: str = ""


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def parse_run(obj: Any, where: str) -> Run | None:
    """A run summary from one JSON object (a job's line, or a workspace row with its `Log`), None when the object is
    not one; StatusError naming `where` when it claims to be one but breaks the shape."""
    if not isinstance(obj, dict):
        return None
    row_time = obj.get("TimeGenerated")
    if isinstance(obj.get("Log"), str):  # a ContainerAppConsoleLogs row
        try:
            obj = json.loads(obj["Log"])
        except ValueError:
            return None
        if not isinstance(obj, dict):
            return None
    if obj.get("event") != "run_summary":
        return None
    code = obj.get("exit_code")
    if not isinstance(code, int) or isinstance(code, bool):
        raise StatusError(f"{where}: a run_summary without a whole-number exit_code")
    stack = obj.get("stack") or obj.get("job") or ""
    if not isinstance(stack, str) or not stack.strip():
        stack = "(no stack named)"
    days = obj.get("certificate_days_left")
    return Run(stack=stack.strip()[:100], time=_time(obj.get("time")) or _time(row_time), exit_code=code,
               outcome=str(obj.get("outcome") or ("sent" if code == 0 else "failed"))[:40],
               records_sent=_int(obj.get("records_sent")), rows_set_aside=_int(obj.get("rows_set_aside")),
               files_waiting=_int(obj.get("files_waiting")),
               certificate_days_left=days if isinstance(days, int) and not isinstance(days, bool) else None,
               credential=str(obj.get("credential") or "")[:20], job=str(obj.get("job") or "")[:64])


def read_summaries(path: Path) -> list[Run]:
    """Every run summary in a JSON-lines file (other lines, the job's readable output, are skipped)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return list(_runs(handle, str(path)))
    except OSError as exc:
        raise StatusError(f"--summaries {path}: cannot read ({exc.strerror or type(exc).__name__})") from None


def _runs(lines: Iterable[str], name: str) -> Iterator[Run]:
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text.startswith("{"):
            continue
        try:
            obj = json.loads(text)
        except ValueError:
            continue
        run = parse_run(obj, f"{name}:{number}")
        if run is not None:
            yield run


@dataclass
class StackStatus:
    """One stack's view: its last run, and the last DAYS days."""

    stack: str
    last: Run
    runs: int = 0
    failed_runs: int = 0
    records: int = 0  # over the window
    rows_set_aside: int = 0  # over the window
    daily: list[int] = field(default_factory=lambda: [0] * DAYS)  # records sent per day, oldest first

    def attention(self, warn_days: int) -> str:
        """Why this stack needs a look ("" when it does not)."""
        if self.last.exit_code in FAILED_CODES:
            return f"last run {self.last.outcome}"
        days = self.last.certificate_days_left
        if days is not None and days < warn_days:
            return "certificate expired" if days < 0 else f"certificate expires in {days} day(s)"
        return ""

    def to_json(self, warn_days: int) -> dict[str, Any]:
        last = self.last
        return {"stack": self.stack, "job": last.job, "lastRun": last.time.isoformat() if last.time else None,
                "outcome": last.outcome, "exitCode": last.exit_code, "recordsSent": last.records_sent,
                "rowsSetAside": last.rows_set_aside, "filesWaiting": last.files_waiting,
                "certificateDaysLeft": last.certificate_days_left, "credential": last.credential,
                "runs": self.runs, "failedRuns": self.failed_runs, "records30d": self.records,
                "rowsSetAside30d": self.rows_set_aside, "daily": self.daily,
                "attention": self.attention(warn_days) or None}


def build_status(runs: Iterable[Run], now: dt.datetime | None = None,
                 stacks: Iterable[str] | None = None) -> list[StackStatus]:
    """One StackStatus per stack (only `stacks` when given), by name. A run without a time counts as the latest of
    its stack so far (file order) and in no day of the chart."""
    now = now or dt.datetime.now(dt.UTC)
    start = (now - dt.timedelta(days=DAYS - 1)).date()
    wanted = set(stacks) if stacks is not None else None
    found: dict[str, StackStatus] = {}
    for run in runs:
        if wanted is not None and run.stack not in wanted:
            continue
        status = found.get(run.stack)
        if status is None:
            status = found[run.stack] = StackStatus(run.stack, run)
        elif run.time is None or status.last.time is None or run.time >= status.last.time:
            status.last = run
        if run.time is not None and run.time.date() < start:
            continue
        status.runs += 1
        status.failed_runs += run.exit_code in FAILED_CODES
        status.records += run.records_sent
        status.rows_set_aside += run.rows_set_aside
        if run.time is not None and run.time.date() <= now.date():
            status.daily[(run.time.date() - start).days] += run.records_sent
    return [found[name] for name in sorted(found)]


def to_table(rows: list[StackStatus], warn_days: int) -> str:
    """A Markdown table, one row per stack (escaped: stack names and outcomes come from the summaries)."""
    lines = ["| stack | last run (UTC) | outcome | records (last / 30 d) | rows set aside (30 d) | files waiting | "
             "certificate days left | attention |", "|---|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        last = r.last
        when = last.time.strftime("%Y-%m-%d %H:%M") if last.time else "?"
        days = "-" if last.certificate_days_left is None else str(last.certificate_days_left)
        if last.credential == "federated":
            days = "none (federated)"
        cells = [r.stack, when, last.outcome, f"{last.records_sent:,} / {r.records:,}", str(r.rows_set_aside),
                 str(last.files_waiting), days, r.attention(warn_days) or "-"]
        lines.append("| " + " | ".join(safe_text(c, 100).replace("|", "\\|") for c in cells) + " |")
    bad = [r for r in rows if r.attention(warn_days)]
    lines += ["", f"{len(rows)} stack(s) with run summaries; {len(bad)} need attention (a failed last run, or a "
              f"certificate under {warn_days} days)"]
    return "\n".join(lines)


def _chart(daily: list[int], width: int = 180, height: int = 32) -> str:
    """Records per day as inline SVG bars (oldest left); no script, no external reference."""
    top = max(daily) or 1
    bar = width / len(daily)
    bars = []
    for i, value in enumerate(daily):
        h = 0 if value == 0 else max(1.0, value / top * (height - 2))
        bars.append(f'<rect x="{i * bar:.1f}" y="{height - h:.1f}" width="{max(bar - 1, 1):.1f}" height="{h:.1f}">'
                    f"<title>{value:,} records</title></rect>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
            f'aria-label="records sent per day, last {len(daily)} days">{"".join(bars)}</svg>')


def to_html(rows: list[StackStatus], warn_days: int, now: dt.datetime | None = None) -> str:
    """A self-contained page: inline style and SVG only (no script, no link, no image or font fetched)."""
    now = now or dt.datetime.now(dt.UTC)
    esc = html.escape
    body = []
    for r in rows:
        last = r.last
        attention = r.attention(warn_days)
        days = ("none (federated)" if last.credential == "federated" else
                "-" if last.certificate_days_left is None else str(last.certificate_days_left))
        body.append(
            f'<tr class="{"bad" if attention else "ok"}"><th scope="row">{esc(r.stack)}</th>'
            f"<td>{esc(last.time.strftime('%Y-%m-%d %H:%M') if last.time else '?')}</td>"
            f"<td>{esc(last.outcome)}</td><td class=n>{last.records_sent:,}</td><td>{_chart(r.daily)}</td>"
            f"<td class=n>{r.records:,}</td><td class=n>{r.rows_set_aside:,}</td><td class=n>{last.files_waiting}</td>"
            f"<td class=n>{esc(days)}</td><td>{esc(attention or '-')}</td></tr>")
    bad = sum(bool(r.attention(warn_days)) for r in rows)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>hr-connector status</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 1.5em; color: #1b1b1b; }}
table {{ border-collapse: collapse; }} th, td {{ padding: .3em .6em; border-bottom: 1px solid #ddd; text-align: left; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }} tr.bad th, tr.bad td {{ background: #fde7e7; }}
svg rect {{ fill: #2f6fb3; }}
</style></head><body>
<h1>hr-connector status</h1>
<p>{len(rows)} stack(s); {bad} need attention (a failed last run, or a certificate under {warn_days} days).
Generated {esc(now.strftime('%Y-%m-%d %H:%M'))} UTC from the uploader's run summaries.</p>
<table><thead><tr><th>stack</th><th>last run (UTC)</th><th>outcome</th><th>records (last run)</th>
<th>records per day, last {DAYS} days</th><th>records ({DAYS} d)</th><th>rows set aside ({DAYS} d)</th>
<th>files waiting</th><th>certificate days left</th><th>attention</th></tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table></body></html>
"""


def failing(rows: list[StackStatus], warn_days: int) -> list[StackStatus]:
    return [r for r in rows if r.attention(warn_days)]


# -- Azure: each workspace's run summaries through azure-monitor-query ------------------------------------------

def query_endpoint(azure_environment: str) -> str:
    from uploader.clouds import LOG_ANALYTICS_QUERY

    return LOG_ANALYTICS_QUERY[azure_environment]


class DirectoryCredential:
    """A TokenCredential whose every token comes from one Entra directory: it asks `credential` with
    `tenant_id=directory`, azure-identity's own multi-tenant request (its credentials honour it when the directory
    is their own or in their `additionally_allowed_tenants`; AzureCliCredential runs `az account get-access-token
    --tenant`). LogsQueryClient's BearerTokenCredentialPolicy calls get_token (azure-core's policies/_authentication.py
    uses get_token_info only when the credential has it, and this one has not), without a tenant of its own."""

    def __init__(self, credential: Any, directory: str) -> None:
        self.credential = credential
        self.directory = directory

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  **kwargs: Any) -> Any:
        return self.credential.get_token(*scopes, claims=claims, tenant_id=self.directory, **kwargs)


#: An error code from a service answer that may be shown (a word: never a message, which may echo anything).
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,79}$")


def _codes(exc: Any) -> list[str]:
    """The service's error code and inner code (OData `error.code`, `error.innererror.code`), when they are words."""
    error = getattr(exc, "error", None)
    found = [getattr(error, "code", None)]
    inner = getattr(error, "innererror", None)
    found.append(inner.get("code") if isinstance(inner, dict) else None)
    return [c for c in found if isinstance(c, str) and _CODE.match(c)]


def _no_token(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The credential raised `kind` (ClientAuthenticationError) without an HTTP answer: no token was had. The query
    SDK re-raises it as a plain HttpResponseError (azure-monitor-query's _helpers.process_error), so the chain is
    looked through."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, kind) and getattr(seen, "status_code", None) is None:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _sign_in_hint(directory: str) -> str:
    return (f"sign in to directory {directory}: `az login --tenant {directory}` (once per directory), or a service "
            f"principal of a multi-tenant app consented there")


def runs_from_workspace(workspace_id: str, *, credential: Any, endpoint: str, now: dt.datetime | None = None,
                        directory: str = "", **client_options: Any) -> list[Run]:
    """The run summaries of the last DAYS days in one workspace (its ARM resource ID), through LogsQueryClient;
    `directory` (the Azure side's tenant the credential is pinned to) is named in a failure."""
    from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError
    from azure.monitor.query import LogsQueryClient, LogsQueryStatus

    where = f"workspace {safe_text(workspace_id, 300)}"
    client = LogsQueryClient(credential, endpoint=endpoint, **client_options)
    try:
        answer = client.query_resource(workspace_id, SUMMARY_QUERY, timespan=dt.timedelta(days=DAYS))
    except AzureError as exc:
        code = getattr(exc, "status_code", None)  # HttpResponseError has one; connection errors have none
        if code is None and directory and (failed := _no_token(exc, ClientAuthenticationError)) is not None:
            # no token at all: the credential could not sign in to that directory (its message is not shown)
            raise SignInError(f"{where}: no token from directory {directory} ({type(failed).__name__}); "
                              f"{_sign_in_hint(directory)}", 1) from None
        codes = _codes(exc) if isinstance(exc, HttpResponseError) else []
        named = " " + "/".join(codes) if codes else ""
        detail = f"{type(exc).__name__}{f': HTTP {code}' if code else ''}{named}"
        hint = ""
        if directory and (code in (401, 403) or "InvalidAuthenticationTokenTenant" in codes):
            hint = (f"; the token came from directory {directory}: check that it manages the workspace's "
                    f"subscription (hr-connector:azureTenantId), and {_sign_in_hint(directory)}")
        raise StatusError(f"{where}: the query failed ({detail}; its answer is not shown){hint}", 1) from None
    finally:
        client.close()
    if answer.status != LogsQueryStatus.SUCCESS:
        raise StatusError(f"workspace {safe_text(workspace_id, 300)}: the query returned partial or no results", 1)
    runs = []
    for table in answer.tables:
        columns = list(table.columns)
        for number, row in enumerate(table.rows, 1):
            values = dict(zip(columns, list(row), strict=False))
            stamp = values.get("TimeGenerated")
            values["TimeGenerated"] = stamp.isoformat() if isinstance(stamp, dt.datetime) else stamp
            run = parse_run(values, f"workspace {safe_text(workspace_id, 300)} row {number}")
            if run is not None:
                runs.append(run)
    return runs


def workspaces_of(names: list[str], outputs: dict[str, dict[str, Any] | None | Exception]
                  ) -> tuple[dict[str, list[str]], list[str]]:
    """({workspace ID: [stack, ...]}, problems) from each stack's outputs (`workspaceId`; not deployed: a problem)."""
    found: dict[str, list[str]] = {}
    problems = []
    for name in names:
        value = outputs.get(name)
        if isinstance(value, Exception):
            problems.append(f"{name}: outputs not readable: {safe_text(str(value), 200)}")
        elif not isinstance(value, dict) or not isinstance(value.get("workspaceId"), str) or not value["workspaceId"]:
            problems.append(f"{name}: no workspaceId output (not deployed yet, or deployed before `status` existed: "
                            "run `pulumi up`)")
        else:
            found.setdefault(value["workspaceId"], []).append(name)
    return found, problems
