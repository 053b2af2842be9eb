"""`python -m provisioning status` (issue 25 part 2): one row per stack from the uploader's run summaries, read from a
file (the job's own lines, written by its real printer, and rows exported from a workspace) and from a workspace
through azure-monitor-query against the sandbox's loopback stand-in of the Log Analytics query API."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from provisioning.tools import status
from uploader.commands.run import _print_summary_line
from uploader.report import Reporter

NOW = dt.datetime.now(dt.UTC)


def job_line(monkeypatch: pytest.MonkeyPatch, stack: str, exit_code: int, records: int, *, days: int | None = 200,
             log_format: str = "text", **extra: Any) -> str:
    """A run summary as `uploader run` prints it (its real printer), for one stack."""
    monkeypatch.setenv("UPLOADER_STACK", stack)
    monkeypatch.setenv("CONTAINER_APP_JOB_NAME", f"hr-upload-{stack}"[:32])
    monkeypatch.setattr("uploader.commands.run._SIGN_IN", {"credential": "federated" if days is None else "certificate",
                                                           "certificate_days_left": days})
    out = io.StringIO()
    _print_summary_line(Reporter(log_format, stream=out), {"event": "run_summary", "exit_code": exit_code,
                                                          "files_sent": 1 if records else 0, "records_sent": records,
                                                          "connectors": [], **extra})
    return out.getvalue().strip()


def dated(line: str, days_ago: int) -> str:
    obj = json.loads(line)
    obj["time"] = (NOW - dt.timedelta(days=days_ago)).isoformat(timespec="seconds")
    return json.dumps(obj)


@pytest.fixture
def summaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    lines = [
        "contoso: 2 sent, 0 skipped, 0 rejected; 120 records; 1.2 s",  # the job's readable lines are skipped
        dated(job_line(monkeypatch, "contoso", 0, 100), 3),
        dated(job_line(monkeypatch, "contoso", 0, 120), 1),
        dated(job_line(monkeypatch, "fabrikam", 0, 50, days=9), 2),
        dated(job_line(monkeypatch, "fabrikam", 1, 0, days=9, error="sign-in refused"), 0),
        dated(job_line(monkeypatch, "<b>tailspin</b>", 4, 30, days=None, rows_set_aside=2, log_format="json"), 1),
        # a row exported from the workspace (ContainerAppConsoleLogs: TimeGenerated, Log)
        json.dumps({"TimeGenerated": (NOW - dt.timedelta(days=40)).isoformat(), "Log":
                    job_line(monkeypatch, "wingtip", 0, 7).replace('"time"', '"was_time"')}),
        json.dumps({"TimeGenerated": NOW.isoformat(), "Log": "not json"}),
    ]
    path = tmp_path / "summaries.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provisioning", "status", *args], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def test_summaries_file_gives_one_row_per_stack(summaries: Path, tmp_path: Path) -> None:
    page = tmp_path / "status.html"
    done = cli("--summaries", str(summaries), "--json", "--html", str(page))
    assert done.returncode == 1, done.stderr  # fabrikam's last run failed, and its certificate has 9 days left
    rows = {r["stack"]: r for r in json.loads(done.stdout)}
    assert set(rows) == {"contoso", "fabrikam", "<b>tailspin</b>", "wingtip"}
    assert rows["contoso"]["outcome"] == "sent" and rows["contoso"]["recordsSent"] == 120
    assert rows["contoso"]["records30d"] == 220 and rows["contoso"]["attention"] is None
    assert rows["contoso"]["daily"][-2] == 120 and rows["contoso"]["daily"][-4] == 100
    assert rows["contoso"]["job"] == "hr-upload-contoso" and rows["contoso"]["certificateDaysLeft"] == 200
    assert rows["fabrikam"]["outcome"] == "failed" and rows["fabrikam"]["attention"] == "last run failed"
    assert rows["<b>tailspin</b>"]["outcome"] == "sent, rows set aside"
    tailspin = rows["<b>tailspin</b>"]
    assert tailspin["certificateDaysLeft"] is None and tailspin["credential"] == "federated"
    assert rows["wingtip"]["records30d"] == 0 and rows["wingtip"]["runs"] == 0  # 40 days ago: last run, not in chart
    table = cli("--summaries", str(summaries), "--stack", "contoso")
    assert table.returncode == 0 and "| contoso |" in table.stdout and "fabrikam" not in table.stdout

    class Page(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[str] = []
            self.external: list[str] = []
            self.rows: list[str] = []
            self._in_th = False

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.append(tag)
            self._in_th = tag == "th" and ("scope", "row") in attrs
            self.external += [v or "" for k, v in attrs if k in ("src", "href") or (v or "").startswith("http")
                              and k != "xmlns"]

        def handle_data(self, data: str) -> None:
            if self._in_th:
                self.rows.append(data)
                self._in_th = False

    parsed = Page()
    parsed.feed(page.read_text())
    assert "script" not in parsed.tags and not parsed.external
    assert sorted(parsed.rows) == sorted(rows)  # the escaped name reads back as text, not markup
    assert parsed.tags.count("svg") == 4 and "b" not in parsed.tags


def test_a_broken_summary_is_named_by_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"event": "run_summary", "stack": "x", "exit_code": 0}\n'
                    '{"event": "run_summary", "exit_code": "0"}\n')
    done = cli("--summaries", str(path))
    assert done.returncode == 2 and f"{path}:2" in done.stderr and "exit_code" in done.stderr
    done = cli("--summaries", str(tmp_path / "missing.jsonl"))
    assert done.returncode == 2 and "cannot read" in done.stderr


@pytest.mark.e2e
def test_status_asks_each_workspace_once_with_the_operators_sign_in(sandbox: Any, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The real CLI, azure-identity (DefaultAzureCredential: here a managed identity, the sandbox's) and
    azure-monitor-query over real TLS to the sandbox's stand-in of the query API, which refuses a token it did not
    issue for itself. A hosting stack's workspace gives every hosted tenant; a tenant stack gives itself."""
    import yaml

    own = ("/subscriptions/00000000-0000-4000-8000-000000000000/resourceGroups/rg-hr-contoso/providers/"
           "Microsoft.OperationalInsights/workspaces/log-contoso")
    shared = own.replace("contoso", "platform")
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    tenant = "9b2c7d4e-5f60-4718-8a9b-0c1d2e3f4a5b"  # one directory: both sides, and the platform's subscription
    (stacks / "Pulumi.contoso.yaml").write_text(yaml.safe_dump({"config": {
        "hr-connector:tenantId": tenant, "hr-connector:location": "eastus"}}))
    (stacks / "Pulumi.platform.yaml").write_text(yaml.safe_dump({"config": {
        "hr-connector:hosting": True, "hr-connector:location": "eastus", "hr-connector:azureTenantId": tenant,
        "hr-connector:alertEmails": ["platform@contoso.com"]}}))
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"contoso": {"workspaceId": own}, "platform": {"workspaceId": shared}}))
    day = (NOW - dt.timedelta(days=1)).isoformat()
    sandbox.add_log_rows(own, [{"TimeGenerated": day, "Log": job_line(monkeypatch, "contoso", 0, 42)},
                               {"TimeGenerated": day, "Log": "an unrelated console line"}], tenant_id=tenant)
    sandbox.add_log_rows(shared, [{"TimeGenerated": day, "Log": job_line(monkeypatch, "acme", 0, 5)},
                                  {"TimeGenerated": day, "Log": job_line(monkeypatch, "globex", 3, 0)}],
                         tenant_id=tenant)
    env = {**sandbox.env, **sandbox.identity_env(None, tenant_id=tenant),
           "PYTHONPATH": os.environ.get("PYTHONPATH", "")}

    def status_cli(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "provisioning", "status", "--stacks-dir", str(stacks),
                               "--outputs", str(outputs), "--query-endpoint", sandbox.url, "--json", *extra],
                              env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    done = status_cli()
    assert done.returncode == 1, done.stderr  # globex's last run was rejected
    rows = {r["stack"]: r for r in json.loads(done.stdout)}
    assert set(rows) == {"contoso", "acme", "globex"} and rows["contoso"]["recordsSent"] == 42
    assert rows["globex"]["outcome"] == "rejected"
    done = status_cli("--stack", "contoso")
    assert done.returncode == 0 and [r["stack"] for r in json.loads(done.stdout)] == ["contoso"]
    assert sandbox.stats()["vault"]["identity_tokens"] >= 1

    class Stranger:  # a token the query API did not issue: refused, and never repeated
        def get_token(self, *scopes: str, **_: Any) -> Any:
            from azure.core.credentials import AccessToken

            return AccessToken("stranger-token", int(NOW.timestamp()) + 3600)

    with pytest.raises(status.StatusError) as caught:
        status.runs_from_workspace(own, credential=Stranger(), endpoint=sandbox.url,
                                   connection_verify=str(sandbox.ca_file), retry_total=0)
    assert caught.value.exit_code == 1 and "HTTP 403 InvalidAuthenticationToken" in str(caught.value)
    assert "stranger-token" not in str(caught.value)


DIRECTORY_A = "a1a1a1a1-0000-4000-8000-00000000000a"  # contoso: both sides; the operator's home directory
DIRECTORY_B = "b2b2b2b2-0000-4000-8000-00000000000b"  # fabrikam's subscription (its Microsoft 365 tenant is C)
TENANT_C = "c3c3c3c3-0000-4000-8000-00000000000c"
DIRECTORY_D = "d4d4d4d4-0000-4000-8000-00000000000d"  # what tailspin's file says; its subscription is in B


def _workspace(name: str, subscription: str) -> str:
    return (f"/subscriptions/{subscription}/resourceGroups/rg-hr-{name}/providers/Microsoft.OperationalInsights/"
            f"workspaces/log-{name}")


@pytest.mark.e2e
def test_status_asks_each_workspace_with_a_token_from_its_own_directory(
        sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_certificate: Any) -> None:
    """Issue 21: stacks whose subscriptions are in two directories. The operator is a multi-tenant app's service
    principal (DefaultAzureCredential's EnvironmentCredential, home directory A; the sandbox's Entra issues tokens
    for it in any directory, as for an app consented there). The query stand-in refuses a token whose directory does
    not manage the workspace's subscription, as the service does: both workspaces answer only if each was asked
    with its own directory's token. A stack whose file names the wrong directory is its own error (with the
    directory and what to do); the other rows still print."""
    import yaml
    from azure.identity import DefaultAzureCredential

    contoso, fabrikam = _workspace("contoso", "1" * 8 + "-1111-4111-8111-" + "1" * 12), \
        _workspace("fabrikam", "2" * 8 + "-2222-4222-8222-" + "2" * 12)
    tailspin = _workspace("tailspin", "3" * 8 + "-3333-4333-8333-" + "3" * 12)
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    files = {"contoso": {"hr-connector:tenantId": DIRECTORY_A},
             "fabrikam": {"hr-connector:tenantId": TENANT_C, "hr-connector:azureTenantId": DIRECTORY_B},
             "tailspin": {"hr-connector:tenantId": TENANT_C, "hr-connector:azureTenantId": DIRECTORY_D}}
    for name, config in files.items():
        (stacks / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": {**config,
                                                                               "hr-connector:location": "eastus"}}))
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"contoso": {"workspaceId": contoso}, "fabrikam": {"workspaceId": fabrikam},
                                   "tailspin": {"workspaceId": tailspin}}))
    day = (NOW - dt.timedelta(days=1)).isoformat()
    for name, workspace, directory in (("contoso", contoso, DIRECTORY_A), ("fabrikam", fabrikam, DIRECTORY_B),
                                       ("tailspin", tailspin, DIRECTORY_B)):
        sandbox.add_log_rows(workspace, [{"TimeGenerated": day, "Log": job_line(monkeypatch, name, 0, 7)}],
                             tenant_id=directory)
    operator = make_certificate("platform-operator")
    app_id = "0fe7a70a-0000-4000-8000-0000000000ff"
    sandbox.register_app(app_id, operator.pem)  # no tenant: it signs in to any directory (consented everywhere)
    identity = {"AZURE_TENANT_ID": DIRECTORY_A, "AZURE_CLIENT_ID": app_id,
                "AZURE_CLIENT_CERTIFICATE_PATH": str(operator.path)}
    env = {**sandbox.env, **identity, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-m", "provisioning", "status", "--stacks-dir", str(stacks), "--outputs",
                           str(outputs), "--query-endpoint", sandbox.url, "--authority-host", sandbox.url, "--json"],
                          env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 1, done.stderr  # tailspin's workspace could not be asked
    rows = {r["stack"]: r for r in json.loads(done.stdout)}
    assert set(rows) == {"contoso", "fabrikam"} and rows["fabrikam"]["recordsSent"] == 7, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: tailspin: workspace "), done.stderr
    assert "HTTP 403 InvalidTokenError/InvalidAuthenticationTokenTenant" in errors[0]
    assert f"directory {DIRECTORY_D}" in errors[0] and f"az login --tenant {DIRECTORY_D}" in errors[0]

    # the old way, one credential and no directory: the token is the home directory's, and B's workspace refuses it
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        monkeypatch.setenv(name, str(sandbox.ca_file))  # this process's sign-in trusts the sandbox, as the CLI's did
    for name, value in identity.items():
        monkeypatch.setenv(name, value)
    home = DefaultAzureCredential(authority=sandbox.url, disable_instance_discovery=True)
    with pytest.raises(status.StatusError) as caught:
        status.runs_from_workspace(fabrikam, credential=home, endpoint=sandbox.url, retry_total=0,
                                   connection_verify=str(sandbox.ca_file))
    assert "HTTP 403 InvalidTokenError/InvalidAuthenticationTokenTenant" in str(caught.value)
    pinned = status.DirectoryCredential(home, DIRECTORY_B)  # what `status` does: B's token for B's workspace
    with pytest.raises(status.SignInError) as refused:  # only its home directory, unless allowed others
        status.runs_from_workspace(fabrikam, credential=pinned, endpoint=sandbox.url, retry_total=0,
                                   connection_verify=str(sandbox.ca_file), directory=DIRECTORY_B)
    assert "(ClientAuthenticationError)" in str(refused.value)


def test_a_directory_without_a_sign_in_names_it_and_what_to_do() -> None:
    """No token at all from a directory (not signed in there): SignInError naming the directory and `az login
    --tenant`; the credential's own message (which may echo anything) is not shown. No request is sent."""
    from azure.core.exceptions import ClientAuthenticationError

    asked: list[str | None] = []

    class SignedOut:
        def get_token(self, *scopes: str, tenant_id: str | None = None, **_: Any) -> Any:
            asked.append(tenant_id)
            raise ClientAuthenticationError("secret-looking detail from the CLI")

    with pytest.raises(status.SignInError) as caught:
        status.runs_from_workspace(_workspace("x", "9" * 8 + "-9999-4999-8999-" + "9" * 12),
                                   credential=status.DirectoryCredential(SignedOut(), DIRECTORY_D),
                                   endpoint="https://127.0.0.1:9", directory=DIRECTORY_D)
    assert asked == [DIRECTORY_D]  # the directory was asked for, not the credential's default
    message = str(caught.value)
    assert f"az login --tenant {DIRECTORY_D}" in message and "secret-looking" not in message
    assert "(ClientAuthenticationError)" in message
