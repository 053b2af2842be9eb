"""Hostile or mistaken settings through the real CLI (`upload` and `run`): each is refused up front with
exit 2 naming the flag or variable, never a traceback, and nothing secret (key material, token, cell
value) is printed; no request leaves the machine in clear text, and no file is lost or moved."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hostile_support import COLUMNS, CSV, SECRET_UPN, Listener

from uploader.sandbox.client import clean_environ

pytestmark = pytest.mark.e2e

def connectors(job_id: str, files: str = "*.csv") -> str:
    return json.dumps([{"name": "departures", "jobId": job_id, "files": files,
                        "scenarios": [{"type": "resignation", "columns": COLUMNS}]}])


def run_env(sandbox, app, zone: Path, **extra: str) -> dict[str, str]:  # noqa: ANN001
    env = {k: v for k, v in sandbox.env.items() if not k.startswith("UPLOADER_")}
    env.update({"UPLOADER_TENANT_ID": app.tenant_id, "UPLOADER_APP_ID": app.app_id,
                "UPLOADER_CERTIFICATE_PEM": app.certificate.pem, "UPLOADER_AUTHORITY_HOST": app.authority_host,
                "UPLOADER_INGESTION_URL": app.ingestion_url, "UPLOADER_DROPZONE_URL": zone.as_uri(),
                "UPLOADER_CONNECTORS": connectors(app.job_id)})
    env.update(extra)
    return {k: v for k, v in env.items() if v != ""}


def uploader(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "uploader", *args], env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def drop_zone(tmp_path: Path) -> Path:
    root = tmp_path / "zone"
    (root / "incoming").mkdir(parents=True)
    (root / "incoming" / "a.csv").write_text(CSV)
    return root


def assert_clean(done: subprocess.CompletedProcess[str], pem: str) -> None:
    """No traceback, no key material, no cell value in anything printed."""
    out = done.stdout + done.stderr
    assert "Traceback" not in out, out[-2000:]
    assert "PRIVATE KEY" not in out and "BEGIN CERTIFICATE" not in out
    for line in pem.splitlines()[1:-1]:
        if len(line) > 20:
            assert line not in out, "key or certificate material was printed"
    assert SECRET_UPN not in out and "zqsecret" not in out


def assert_nothing_moved(zone: Path) -> None:
    assert sorted(p.relative_to(zone).as_posix() for p in zone.rglob("*") if p.is_file()) == ["incoming/a.csv"]


# -- 1. PEM text where a path belongs ---------------------------------------------------------------------

def test_run_certificate_variable_holding_pem_text_is_not_echoed(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    zone = drop_zone(tmp_path)
    env = run_env(sandbox, app, zone, UPLOADER_CERTIFICATE_PEM="", UPLOADER_CERTIFICATE=app.certificate.pem)
    done = uploader("run", env=env)
    assert done.returncode == 2, done.stderr[-500:]
    assert "UPLOADER_CERTIFICATE" in done.stderr and "UPLOADER_CERTIFICATE_PEM" in done.stderr
    assert "not a file path" in done.stderr
    assert_clean(done, app.certificate.pem)
    assert sandbox.stats()["token_requests"] == 0
    assert_nothing_moved(zone)


def test_upload_certificate_flag_holding_pem_text_is_not_echoed(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    data = tmp_path / "a.csv"
    data.write_text(CSV)
    flags = [f if f != str(app.certificate.path) else app.certificate.pem for f in app.flags]
    done = uploader("upload", str(data), *flags, "--state-dir", str(tmp_path / "state"), env=sandbox.env)
    assert done.returncode == 2, done.stderr[-500:]
    assert "--certificate" in done.stderr and "UPLOADER_CERTIFICATE_PEM" in done.stderr
    assert_clean(done, app.certificate.pem)
    assert sandbox.received(app.job_id) == []


def test_help_never_shows_an_environment_value(sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    env = dict(sandbox.env, UPLOADER_CERTIFICATE=app.certificate.pem, UPLOADER_CONNECTORS=connectors(app.job_id))
    for command in ("run", "upload"):
        done = uploader(command, "--help", env=env)
        assert done.returncode == 0
        assert "$UPLOADER_CERTIFICATE" in done.stdout
        assert_clean(done, app.certificate.pem)
        assert app.job_id not in done.stdout


# -- 2. every endpoint override must be https, in both commands ------------------------------------------

OVERRIDES = [("UPLOADER_INGESTION_URL", "http://127.0.0.1:{port}"),
             ("UPLOADER_AUTHORITY_HOST", "http://127.0.0.1:{port}"),
             ("UPLOADER_AUTHORITY_HOST", "ftp://127.0.0.1:{port}"),
             ("UPLOADER_INGESTION_URL", "127.0.0.1:{port}"),
             ("UPLOADER_AUTHORITY_HOST", "https://user:pw@127.0.0.1:{port}")]


@pytest.mark.parametrize(("variable", "value"), OVERRIDES)
def test_run_refuses_a_non_https_override(tmp_path: Path, sandbox, new_app, listener: Listener,  # noqa: ANN001
                                          variable: str, value: str) -> None:
    app = new_app()
    zone = drop_zone(tmp_path)
    done = uploader("run", env=run_env(sandbox, app, zone, **{variable: value.format(port=listener.port)}))
    assert done.returncode == 2, done.stdout[-800:] + done.stderr[-800:]
    assert variable in done.stderr and "`run`" in done.stderr and "upload" not in done.stderr
    assert "https" in done.stderr
    assert "pw@" not in done.stderr
    assert_clean(done, app.certificate.pem)
    assert listener.connections == 0, "something was sent in clear text"
    assert sandbox.stats()["token_requests"] == 0 and sandbox.received(app.job_id) == []
    assert_nothing_moved(zone)


@pytest.mark.parametrize(("variable", "value"), OVERRIDES)
@pytest.mark.parametrize("as_flag", [True, False])
def test_upload_refuses_a_non_https_override(tmp_path: Path, sandbox, new_app, listener: Listener,  # noqa: ANN001
                                             variable: str, value: str, as_flag: bool) -> None:
    app = new_app()
    data = tmp_path / "a.csv"
    data.write_text(CSV)
    flag = "--" + variable.removeprefix("UPLOADER_").lower().replace("_", "-")
    url = value.format(port=listener.port)
    flags = list(app.flags)
    i = flags.index(flag)
    env = dict(sandbox.env)
    if as_flag:
        flags[i + 1] = url
    else:
        del flags[i:i + 2]
        env[variable] = url
    done = uploader("upload", str(data), *flags, "--state-dir", str(tmp_path / "state"), env=env)
    assert done.returncode == 2, done.stdout[-800:] + done.stderr[-800:]
    assert (flag if as_flag else variable) in done.stderr and "https" in done.stderr
    assert_clean(done, app.certificate.pem)
    assert listener.connections == 0, "something was sent in clear text"
    assert sandbox.stats()["token_requests"] == 0 and sandbox.received(app.job_id) == []


# -- 14. settings that used to crash or loop: exit 2 naming the variable ---------------------------------

DEEP = "[" * 100_000 + "]" * 100_000
DEEP_ENV = '[{"jobId": ' * 10_000  # one variable may hold at most 128 KiB; the parser recurses before the end


@pytest.mark.parametrize(("variable", "value", "rule"), [
    ("UPLOADER_READ_TIMEOUT", "0", "positive"),
    ("UPLOADER_READ_TIMEOUT", "-5", "positive"),
    ("UPLOADER_DEADLINE", "nan", "finite"),
    ("UPLOADER_DEADLINE", "inf", "finite"),
    ("UPLOADER_LOG_FORMAT", "xml", "text, json"),
    ("UPLOADER_RECORDS_PER_CALL", "many", "whole number"),
    ("UPLOADER_CONNECTORS", DEEP_ENV, "nested too deeply"),
    ("UPLOADER_CONNECTORS", None, "not a valid glob"),
])
def test_run_bad_setting_exits_2_naming_it(tmp_path: Path, sandbox, new_app, variable: str,  # noqa: ANN001
                                           value: str | None, rule: str) -> None:
    app = new_app()
    zone = drop_zone(tmp_path)
    value = connectors(app.job_id, files="[z-a].csv") if value is None else value
    done = uploader("run", env=run_env(sandbox, app, zone, **{variable: value}))
    assert done.returncode == 2, done.stdout[-800:] + done.stderr[-800:]
    assert variable in done.stderr and rule in done.stderr, done.stderr[-800:]
    assert "upload" not in done.stderr
    assert_clean(done, app.certificate.pem)
    assert sandbox.stats()["token_requests"] == 0
    assert_nothing_moved(zone)


@pytest.mark.parametrize(("flag", "value", "rule"), [
    ("--read-timeout", "0", "positive"),
    ("--deadline", "nan", "finite"),
    ("--log-format", "xml", "text, json"),
])
def test_upload_bad_setting_in_the_environment_exits_2_naming_it(tmp_path: Path, sandbox, new_app,  # noqa: ANN001
                                                                 flag: str, value: str, rule: str) -> None:
    app = new_app()
    data = tmp_path / "a.csv"
    data.write_text(CSV)
    variable = "UPLOADER_" + flag[2:].upper().replace("-", "_")
    env = dict(sandbox.env, **{variable: value})
    done = uploader("upload", str(data), *app.flags, "--state-dir", str(tmp_path / "state"), env=env)
    assert done.returncode == 2, done.stderr[-800:]
    assert variable in done.stderr and rule in done.stderr and "`upload`" in done.stderr
    assert_clean(done, app.certificate.pem)
    assert sandbox.received(app.job_id) == []


def test_deeply_nested_mapping_file_exits_2(tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.json"
    mapping.write_text(DEEP)
    data = tmp_path / "a.csv"
    data.write_text(CSV)
    done = uploader("validate", str(data), "--mapping", str(mapping), env=clean_environ())
    assert done.returncode == 2, done.stderr[-800:]
    assert str(mapping) in done.stderr and "nested too deeply" in done.stderr
    assert "Traceback" not in done.stderr and SECRET_UPN not in done.stdout + done.stderr


def test_another_commands_bad_variable_does_not_break_this_one(tmp_path: Path) -> None:
    """UPLOADER_DRY_RUN is `upload`'s; a bad value must not stop `endpoints` (it used to exit 2 as `upload`)."""
    env = dict(clean_environ(), UPLOADER_DRY_RUN="maybe", UPLOADER_RECORDS_PER_CALL="x")
    done = uploader("endpoints", "--cloud", "gcc", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ingestion_url"].startswith("https://")
    env["UPLOADER_JOB_ID"] = str(uuid.uuid4())
    done = uploader("upload", str(tmp_path / "none.csv"), "--dry-run", env=env)
    assert done.returncode == 2
