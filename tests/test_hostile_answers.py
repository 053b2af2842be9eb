"""Hostile answers from the sign-in authority and the ingestion host, through the real CLI against the sandbox's
new faults (echo, endless, drip, badstatus; 5xx from discovery and the token endpoint): every command that signs
in (upload, run, doctor) ends with its own error and exit code, within its bound, printing no part of the signed
client assertion, no token and no cell value, and never a traceback (issue 18, breaks 1 and 6)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile_support import COLUMNS, CSV, SECRET_UPN

pytestmark = pytest.mark.e2e

COMMANDS = ("upload", "run", "doctor")


def invoke(command: str, tmp_path: Path, sandbox, app, *, bound: str = "5") -> tuple[subprocess.CompletedProcess[str], float]:  # noqa: ANN001, E501
    """The command against the sandbox with --deadline/--read-timeout (doctor: --timeout) at `bound` seconds."""
    data = tmp_path / "a.csv"
    data.write_text(CSV)
    env = {k: v for k, v in sandbox.env.items() if not k.startswith("UPLOADER_")}
    if command == "upload":
        args = ["upload", str(data), *app.flags, "--state-dir", str(tmp_path / "state"), "--deadline", bound,
                "--read-timeout", bound]
    elif command == "doctor":
        args = ["doctor", "--tenant-id", app.tenant_id, "--app-id", app.app_id, "--certificate",
                str(app.certificate.path), "--authority-host", app.authority_host, "--ingestion-url",
                app.ingestion_url, "--timeout", bound]
    else:
        zone = tmp_path / "zone"
        (zone / "incoming").mkdir(parents=True, exist_ok=True)
        (zone / "incoming" / "a.csv").write_text(CSV)
        env.update({"UPLOADER_TENANT_ID": app.tenant_id, "UPLOADER_APP_ID": app.app_id,
                    "UPLOADER_CERTIFICATE_PEM": app.certificate.pem, "UPLOADER_AUTHORITY_HOST": app.authority_host,
                    "UPLOADER_INGESTION_URL": app.ingestion_url, "UPLOADER_DROPZONE_URL": zone.as_uri(),
                    "UPLOADER_DEADLINE": bound, "UPLOADER_READ_TIMEOUT": bound,
                    "UPLOADER_SETTLE_SECONDS": "0",  # the file is complete: take it at once
                    "UPLOADER_CONNECTORS": json.dumps([{"name": "d", "jobId": app.job_id, "files": "*.csv",
                                                       "scenarios": [{"type": "resignation", "columns": COLUMNS}]}])})
        args = ["run"]
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "uploader", *args], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    return done, time.monotonic() - start


def assert_clean(done: subprocess.CompletedProcess[str], app) -> None:  # noqa: ANN001
    out = done.stdout + done.stderr
    assert "Traceback" not in out, "a traceback was printed"
    assert SECRET_UPN not in out and "zqsecret" not in out, "a cell value was printed"
    assert "eyJ" not in out and "client_assertion=" not in out, "the signed client assertion was printed"
    assert "Bearer" not in out and "PRIVATE KEY" not in out
    assert "not in json format" not in out, "MSAL's log line (with the answer) was printed"
    for line in app.certificate.pem.splitlines()[1:-1]:
        assert line not in out


# -- 1. answers that echo the request, 5xx, malformed status lines, on every command that signs in ------------

SIGN_IN_FAULTS = [
    pytest.param({"kind": "echo", "target": "token"}, "not JSON", id="token-echoes-the-request-as-text"),
    pytest.param({"kind": "echo", "status": 400, "target": "token"}, "not JSON", id="token-400-echo-text"),
    pytest.param({"kind": "status", "status": 503, "target": "token"}, "HTTP 503", id="token-503"),
    pytest.param({"kind": "status", "status": 500, "target": "discovery"}, "HTTP 500", id="discovery-500"),
    pytest.param({"kind": "badstatus", "target": "token"}, "malformed HTTP answer", id="token-bad-status-line"),
    pytest.param({"kind": "echo", "target": "discovery"}, "sign-in", id="discovery-not-json"),
]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(("fault", "said"), SIGN_IN_FAULTS)
def test_hostile_sign_in_answer_prints_no_assertion(tmp_path: Path, sandbox, new_app, command: str,  # noqa: ANN001
                                                    fault: dict, said: str) -> None:
    app = new_app()
    sandbox.faults([fault, fault])  # MSAL's own retry of a failed connection meets the same answer
    done, _ = invoke(command, tmp_path, sandbox, app)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-1500:]
    assert said in out, out[-1500:]
    assert_clean(done, app)
    assert sandbox.received(app.job_id) == []


def test_malformed_status_line_from_ingestion_is_not_printed(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    sandbox.faults([{"kind": "badstatus"}] * 20)
    done, seconds = invoke("upload", tmp_path, sandbox, app, bound="3")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-1500:]
    assert "malformed HTTP answer" in out and "2OO" not in out and "EmailAddress" not in out
    assert_clean(done, app)


# -- 6. endless and dripping answers end within the command's bound --------------------------------------------

@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", ["endless", "drip"])
def test_endless_or_dripping_token_answer_ends_within_the_bound(tmp_path: Path, sandbox, new_app, command: str,  # noqa: ANN001
                                                               kind: str) -> None:
    app = new_app()
    sandbox.faults([{"kind": kind, "target": "token", "seconds": 60, "interval": 0.2}] * 3)
    done, seconds = invoke(command, tmp_path, sandbox, app, bound="3")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-1500:]
    assert seconds < 25, f"{command} took {seconds:.1f} s with a {kind} token answer and a 3 s bound"
    assert ("larger than" in out) if kind == "endless" else ("within 3 s" in out), out[-1500:]
    assert_clean(done, app)


@pytest.mark.parametrize("command", ["upload", "run"])
@pytest.mark.parametrize("kind", ["endless", "drip"])
def test_endless_or_dripping_refusal_from_ingestion_ends_within_the_deadline(tmp_path: Path, sandbox, new_app,  # noqa: ANN001
                                                                            command: str, kind: str) -> None:
    app = new_app()
    sandbox.faults([{"kind": kind, "status": 503, "seconds": 60, "interval": 0.2}] * 20)
    done, seconds = invoke(command, tmp_path, sandbox, app, bound="3")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-1500:]
    assert seconds < 25, f"{command} took {seconds:.1f} s with a {kind} answer and --deadline 3"
    assert "answer too" in out, out[-1500:]
    assert_clean(done, app)
    assert sandbox.received(app.job_id) == []


def test_endless_acceptance_counts_as_accepted_quickly(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    """A 200 status line is the acceptance; an endless body after it is cut at the cap, not read for ever."""
    app = new_app()
    sandbox.faults([{"kind": "endless", "status": 200, "seconds": 60}])
    done, seconds = invoke("upload", tmp_path, sandbox, app, bound="5")
    assert done.returncode == 0, (done.stdout + done.stderr)[-1500:]
    assert seconds < 25
    assert_clean(done, app)
