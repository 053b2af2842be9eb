"""A faulty or hostile service through the real CLI against the loopback sandbox: redirects are never
followed (the CSV, the token and the signed assertion go nowhere else), and an error body that reflects
the request is never printed. Each case asserts the exit code, that nothing secret is printed and that
nothing is lost (no record acknowledged that was not sent; in job mode the file stays in incoming/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_support import COLUMNS, CSV, SECRET_UPN, Listener

pytestmark = pytest.mark.e2e

def uploader(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "uploader", *args], env=env, capture_output=True, text=True,
                          timeout=90, stdin=subprocess.DEVNULL)


def upload(tmp_path: Path, sandbox, app) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    data = tmp_path / "a.csv"
    data.write_text(CSV)
    return uploader("upload", str(data), *app.flags, "--state-dir", str(tmp_path / "state"), "--deadline", "5",
                    env=sandbox.env)


def run(tmp_path: Path, sandbox, app) -> tuple[subprocess.CompletedProcess[str], Path]:  # noqa: ANN001
    zone = tmp_path / "zone"
    (zone / "incoming").mkdir(parents=True)
    (zone / "incoming" / "a.csv").write_text(CSV)
    env = {k: v for k, v in sandbox.env.items() if not k.startswith("UPLOADER_")}
    env.update({"UPLOADER_TENANT_ID": app.tenant_id, "UPLOADER_APP_ID": app.app_id,
                "UPLOADER_CERTIFICATE_PEM": app.certificate.pem, "UPLOADER_AUTHORITY_HOST": app.authority_host,
                "UPLOADER_INGESTION_URL": app.ingestion_url, "UPLOADER_DROPZONE_URL": zone.as_uri(),
                "UPLOADER_SETTLE_SECONDS": "0",  # the files are complete: take them at once
                "UPLOADER_DEADLINE": "5",
                "UPLOADER_CONNECTORS": json.dumps([{"name": "departures", "jobId": app.job_id, "files": "*.csv",
                                                   "scenarios": [{"type": "resignation", "columns": COLUMNS}]}])})
    return uploader("run", env=env), zone


def assert_clean(done: subprocess.CompletedProcess[str], app) -> None:  # noqa: ANN001
    out = done.stdout + done.stderr
    assert "Traceback" not in out, out[-2000:]
    assert SECRET_UPN not in out and "zqsecret" not in out, "a cell value was printed"
    assert "Bearer" not in out and "Authorization" not in out, "the request's token was printed"
    assert "eyJ" not in out and "client_assertion" not in out, "the signed client assertion was printed"
    assert "PRIVATE KEY" not in out
    for line in app.certificate.pem.splitlines()[1:-1]:
        assert line not in out


def assert_left_in_incoming(zone: Path) -> None:
    files = sorted(p.relative_to(zone).as_posix() for p in zone.rglob("*") if p.is_file() and "/." not in
                   "/" + p.relative_to(zone).as_posix())
    assert "incoming/a.csv" in files and not any(f.startswith(("processed/", "rejected/")) for f in files), files


# -- 3. redirects are never followed -------------------------------------------------------------------

@pytest.mark.parametrize("status", [307, 308, 302])
def test_upload_redirect_from_ingestion_is_not_followed(tmp_path: Path, sandbox, new_app, listener: Listener,  # noqa: ANN001
                                                       status: int) -> None:
    app = new_app()
    target = f"https://127.0.0.1:{listener.port}/zqsteal"
    sandbox.faults([{"kind": "redirect", "status": status, "location": target}])
    done = upload(tmp_path, sandbox, app)
    assert done.returncode == 1, done.stdout[-800:] + done.stderr[-800:]
    out = done.stdout + done.stderr
    assert f"HTTP {status}" in out and "redirect" in out
    assert str(listener.port) not in out and "zqsteal" not in out, "the Location was printed"
    assert listener.connections == 0, "the CSV and the token were sent to the redirect's target"
    assert sandbox.received(app.job_id) == [] and sandbox.stats()["faults_pending"] == 0
    assert "0 of 1 records acknowledged" in out
    assert_clean(done, app)


def test_run_redirect_from_ingestion_leaves_the_file(tmp_path: Path, sandbox, new_app, listener: Listener) -> None:  # noqa: ANN001
    app = new_app()
    sandbox.faults([{"kind": "redirect", "status": 307, "location": f"https://127.0.0.1:{listener.port}/x"}])
    done, zone = run(tmp_path, sandbox, app)
    assert done.returncode == 1, done.stdout[-800:] + done.stderr[-800:]
    assert "HTTP 307" in done.stdout + done.stderr
    assert listener.connections == 0 and sandbox.received(app.job_id) == []
    assert_left_in_incoming(zone)
    assert_clean(done, app)


@pytest.mark.parametrize("status", [307, 302])
def test_sign_in_redirect_is_not_followed(tmp_path: Path, sandbox, new_app, listener: Listener,  # noqa: ANN001
                                          status: int) -> None:
    app = new_app()
    sandbox.faults([{"kind": "redirect", "status": status, "target": "token",
                     "location": f"https://127.0.0.1:{listener.port}/zqsteal"}])
    done = upload(tmp_path, sandbox, app)
    assert done.returncode == 1, done.stdout[-800:] + done.stderr[-800:]
    out = done.stdout + done.stderr
    assert f"HTTP {status}" in out and "sign-in" in out and "redirect" in out
    assert "zqsteal" not in out and str(listener.port) not in out
    assert listener.connections == 0, "the signed client assertion was sent to the redirect's target"
    assert sandbox.stats()["tokens_issued"] == 0 and sandbox.received(app.job_id) == []
    assert_clean(done, app)


# -- 4. an error body that reflects the request is never printed ----------------------------------------

@pytest.mark.parametrize("status", [400, 403, 413, 422])
def test_upload_reflected_error_body_is_not_printed(tmp_path: Path, sandbox, new_app, status: int) -> None:  # noqa: ANN001
    app = new_app()
    sandbox.faults([{"kind": "status", "status": status, "echo": True}])
    done = upload(tmp_path, sandbox, app)
    assert done.returncode == 1, done.stdout[-800:] + done.stderr[-800:]
    out = done.stdout + done.stderr
    assert f"HTTP {status}" in out and "not shown" in out
    assert "could not process request" not in out
    assert sandbox.received(app.job_id) == []
    assert_clean(done, app)


def test_run_reflected_error_body_is_not_printed_or_logged(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    sandbox.faults([{"kind": "status", "status": 400, "echo": True}])
    done, zone = run(tmp_path, sandbox, app)
    assert done.returncode == 1, done.stdout[-800:] + done.stderr[-800:]
    assert "HTTP 400" in done.stdout + done.stderr
    assert_left_in_incoming(zone)
    assert_clean(done, app)
    for path in zone.rglob("*"):
        if path.is_file() and path.name != "a.csv":
            text = path.read_text(errors="replace")
            assert SECRET_UPN not in text and "Bearer" not in text, f"{path.name} holds request data"


def test_sign_in_reflected_error_body_is_not_printed(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    sandbox.faults([{"kind": "status", "status": 400, "echo": True, "target": "token"}])
    done = upload(tmp_path, sandbox, app)
    assert done.returncode == 1, done.stdout[-800:] + done.stderr[-800:]
    assert "sign-in refused" in done.stdout + done.stderr
    assert_clean(done, app)


def test_known_microsoft_message_is_still_shown(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app(bind=False)  # the job belongs to no app: the service's real 403 text
    done = upload(tmp_path, sandbox, app)
    assert done.returncode == 1
    assert "HTTP 403: jobId and corresponding appId do not match." in done.stdout + done.stderr
    assert_clean(done, app)
