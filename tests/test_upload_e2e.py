"""`python -m uploader upload` end to end: the real CLI in a subprocess, real MSAL, TLS and HTTP,
against the loopback sandbox (fixtures in conftest.py).

Assertions compare what the sandbox stored with the file, record by record, and never print a cell
value: failure messages give counts, line numbers and statuses only.
"""

from __future__ import annotations

import collections
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from uploader.model.certs import generate_certificate

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parent.parent / "uploader" / "examples"
SCENARIOS = ["resignation", "job-level-change", "performance-review", "performance-improvement-plan",
             "employee-profile", "multi-scenario"]


# -- helpers ---------------------------------------------------------------------------------------

def csv_rows(data: bytes) -> list[tuple[str, ...]]:
    """Data rows of a CSV text (header dropped); a UTF-8 BOM is ignored."""
    text = data.decode("utf-8").removeprefix("\ufeff")
    rows = [tuple(r) for r in csv.reader(io.StringIO(text, newline=""))]
    return rows[1:]


def file_rows(path: Path) -> list[tuple[str, ...]]:
    return csv_rows(path.read_bytes())


def received_rows(sandbox, job_id: str) -> list[tuple[str, ...]]:  # noqa: ANN001
    rows: list[tuple[str, ...]] = []
    for body in sandbox.received(job_id):
        rows += csv_rows(body)
    return rows


def job_stats(sandbox, job_id: str) -> dict:  # noqa: ANN001
    return sandbox.stats().get("jobs", {}).get(job_id, {"uploads": 0, "records": 0, "rejected": 0})


def cells(path: Path) -> set[str]:
    """Cell values worth searching for in output (long enough not to match by chance)."""
    return {c for row in file_rows(path) for c in row if len(c) >= 6}


def assert_no_cell_values(path: Path, *texts: str) -> None:
    leaked = sum(1 for c in cells(path) for t in texts if c in t)
    assert leaked == 0, f"{leaked} cell values of {path.name} appear in the output"


def json_events(stdout: str) -> list[dict]:
    events = []
    for number, line in enumerate(stdout.splitlines(), 1):
        try:
            events.append(json.loads(line))
        except ValueError:
            pytest.fail(f"stdout line {number} is not JSON")
    return events


def mapping_for(example: str, job_id: str, tmp_path: Path) -> Path:
    """The example's mapping with the test's job ID."""
    data = json.loads((EXAMPLES / f"{example}.json").read_text())
    data["jobId"] = job_id
    out = tmp_path / f"{example}-{job_id[:8]}.json"
    out.write_text(json.dumps(data))
    return out


def write_resignations(path: Path, count: int, quoted: bool = True) -> Path:
    """A valid resignation file with `count` records (some with quoted commas and line breaks)."""
    lines = ["EmailAddress,ResignationDate,LastWorkingDate"]
    for i in range(count):
        upn = f"person{i:05d}@contoso.com"
        if quoted and i % 3 == 0:
            upn = f'"{upn}"'
        lines.append(f"{upn},2026-09-{1 + i % 28:02d}T00:00:00Z,2026-10-{1 + i % 28:02d}T00:00:00Z")
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


@pytest.fixture
def app(new_app):  # noqa: ANN001, ANN201
    return new_app()


@pytest.fixture
def upload(run_uploader, sandbox, tmp_path):  # noqa: ANN001, ANN201
    """Run `upload` with an app's flags, the sandbox's CA env and a per-test state dir."""
    state = tmp_path / "state"

    def run(a, *files: Path | str, extra: list[str] = (), env: dict | None = None,  # noqa: ANN001, B006
            timeout: float = 60, flags: bool = True) -> subprocess.CompletedProcess:
        args = ["upload", *map(str, files), *(a.flags if flags else []), "--state-dir", str(state), *extra]
        return run_uploader(*args, env=env if env is not None else sandbox.env, timeout=timeout)
    return run


# -- every scenario ------------------------------------------------------------------------------

@pytest.mark.parametrize("example", SCENARIOS)
def test_every_scenario_arrives_record_for_record(example, app, upload, sandbox, tmp_path) -> None:  # noqa: ANN001
    csv_file = EXAMPLES / f"{example}.csv"
    result = upload(app, csv_file, extra=["--mapping", str(mapping_for(example, app.job_id, tmp_path)),
                                          "--records-per-call", "3", "--log-format", "json"])
    assert result.returncode == 0, result.stderr
    expected = file_rows(csv_file)
    assert received_rows(sandbox, app.job_id) == expected  # same records, same order, none split
    chunks = -(-len(expected) // 3)
    assert job_stats(sandbox, app.job_id)["uploads"] == chunks
    assert job_stats(sandbox, app.job_id)["records"] == len(expected)
    for body in sandbox.received(app.job_id):  # every chunk starts with the header row
        assert body.decode("utf-8").removeprefix("\ufeff").splitlines()[0] == \
            csv_file.read_text(encoding="utf-8-sig").splitlines()[0]
    done = [e for e in json_events(result.stdout) if e["event"] == "file_done"]
    assert [(d["status"], d["records_sent"], d["chunks_sent"]) for d in done] == [("sent", len(expected), chunks)]
    assert_no_cell_values(csv_file, result.stdout, result.stderr)


# -- faults ----------------------------------------------------------------------------------------

FAULTS = {
    "429-retry-after": {"kind": "status", "status": 429, "retry_after": 1},
    "500": {"kind": "status", "status": 500},
    "503": {"kind": "status", "status": 503},
    "503-retry-after": {"kind": "status", "status": 503, "retry_after": 0.5},
    "drop": {"kind": "drop"},
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_transient_faults_are_retried_and_nothing_is_lost(fault, app, upload, sandbox, tmp_path) -> None:  # noqa: ANN001
    data = write_resignations(tmp_path / "r.csv", 10)
    sandbox.faults([{**FAULTS[fault], "job_id": app.job_id}, {**FAULTS[fault], "job_id": app.job_id}])
    result = upload(app, data, extra=["--records-per-call", "4", "--log-format", "json"])
    assert result.returncode == 0, result.stderr
    events = json_events(result.stdout)
    retries = [e for e in events if e["event"] == "retry"]
    assert len(retries) == 2
    if "retry_after" in FAULTS[fault]:
        assert all(r["delay"] == FAULTS[fault]["retry_after"] for r in retries)  # Retry-After honoured exactly
    else:
        assert all(0 <= r["delay"] <= 30 for r in retries)
    assert received_rows(sandbox, app.job_id) == file_rows(data)
    assert job_stats(sandbox, app.job_id)["rejected"] == 2
    summary = events[-1]
    assert summary["event"] == "summary" and summary["retries"] == 2 and summary["exit_code"] == 0


def test_slow_answer_within_the_read_timeout_is_waited_for(app, upload, sandbox, tmp_path) -> None:  # noqa: ANN001
    data = write_resignations(tmp_path / "r.csv", 5)
    sandbox.faults([{"kind": "slow", "seconds": 1.5, "job_id": app.job_id}])
    result = upload(app, data, extra=["--records-per-call", "2", "--log-format", "json"])
    assert result.returncode == 0, result.stderr
    assert not [e for e in json_events(result.stdout) if e["event"] == "retry"]
    assert received_rows(sandbox, app.job_id) == file_rows(data)


def test_slow_answer_beyond_the_read_timeout_is_retried(app, upload, sandbox, tmp_path) -> None:  # noqa: ANN001
    data = write_resignations(tmp_path / "r.csv", 5)
    sandbox.faults([{"kind": "slow", "seconds": 2.5, "job_id": app.job_id}])
    result = upload(app, data, extra=["--records-per-call", "2", "--log-format", "json", "--read-timeout", "1"])
    assert result.returncode == 0, result.stderr
    retries = [e for e in json_events(result.stdout) if e["event"] == "retry"]
    assert [r["reason"] for r in retries] == ["read timeout"]
    time.sleep(2)  # the slow request is still answered later: the service may hold the chunk twice
    got, expected = received_rows(sandbox, app.job_id), file_rows(data)
    assert collections.Counter(got) - collections.Counter(expected) == collections.Counter(expected[:2]) or \
        got == expected
    assert set(got) == set(expected)


def test_persistent_503_fails_at_the_deadline(app, upload, sandbox, tmp_path) -> None:  # noqa: ANN001
    data = write_resignations(tmp_path / "r.csv", 3)
    sandbox.faults([{"kind": "status", "status": 503, "retry_after": 1, "job_id": app.job_id}] * 5)
    started = time.monotonic()
    result = upload(app, data, extra=["--deadline", "2.5"], timeout=20)
    assert time.monotonic() - started < 15
    assert result.returncode == 1
    assert "HTTP 503" in result.stderr and "deadline" in result.stderr
    assert job_stats(sandbox, app.job_id)["records"] == 0


# -- permanent refusals ----------------------------------------------------------------------------

def test_job_of_another_app_fails_at_once_with_the_hint(new_app, upload, sandbox, tmp_path) -> None:  # noqa: ANN001
    mine, theirs = new_app(), new_app()
    data = write_resignations(tmp_path / "r.csv", 4)
    flags = [f if f != mine.job_id else theirs.job_id for f in mine.flags]
    result = upload(mine, data, extra=flags, flags=False, timeout=15)
    assert result.returncode == 1
    assert "jobId and corresponding appId do not match" in result.stderr
    assert "job ID belongs to another app" in result.stderr
    assert job_stats(sandbox, theirs.job_id)["records"] == 0
    assert job_stats(sandbox, theirs.job_id)["rejected"] == 1  # refused once, not retried


def test_unknown_certificate_fails_at_once_with_entras_text(app, upload, sandbox, tmp_path) -> None:  # noqa: ANN001
    data = write_resignations(tmp_path / "r.csv", 4)
    stranger = tmp_path / "stranger.pem"
    stranger.write_text(generate_certificate("not registered").pem)
    flags = list(app.flags)
    flags[flags.index("--certificate") + 1] = str(stranger)
    result = upload(app, data, extra=flags, flags=False, timeout=15)
    assert result.returncode == 1
    assert "AADSTS700027" in result.stderr
    assert job_stats(sandbox, app.job_id)["uploads"] == 0
    assert "PRIVATE KEY" not in result.stdout + result.stderr


def test_unknown_app_fails_with_aadsts700016(app, upload, sandbox, tmp_path) -> None:  # noqa: ANN001
    data = write_resignations(tmp_path / "r.csv", 2)
    flags = list(app.flags)
    flags[flags.index("--app-id") + 1] = "00000000-1111-4222-8333-444444444444"
    result = upload(app, data, extra=flags, flags=False, timeout=15)
    assert result.returncode == 1
    assert "AADSTS700016" in result.stderr



def test_token_for_another_audience_is_refused_by_the_service(app, upload, sandbox, tmp_path) -> None:  # noqa: ANN001
    """Entra issues a token for whatever `/.default` scope is asked; the ingestion API accepts only its own audience
    (the samples' `$resource`). The uploader signs in once more (one fresh token), then stops with exit 1 naming
    --scope, and nothing is stored."""
    data = write_resignations(tmp_path / "r.csv", 3)
    result = upload(app, data, extra=["--scope", "https://vault.azure.net/.default"], timeout=20)
    assert result.returncode == 1, result.stderr[-500:]
    assert "HTTP 401" in result.stderr and "--scope" in result.stderr
    assert job_stats(sandbox, app.job_id) == {"uploads": 0, "records": 0, "rejected": 2}
    assert sandbox.stats()["apps"][app.app_id]["tokens_issued"] == 2  # signed in again once, as for an expired token


# -- crash and resume ------------------------------------------------------------------------------

@pytest.mark.posix
def test_kill_9_mid_chunk_then_rerun_loses_nothing(app, sandbox, tmp_path) -> None:  # noqa: ANN001
    data = write_resignations(tmp_path / "r.csv", 20)
    state = tmp_path / "state"
    # Three chunks answer normally, the fourth is held for 4 s: the process is killed while it is in flight.
    sandbox.faults([{"kind": "slow", "seconds": 0, "job_id": app.job_id}] * 3 +
                   [{"kind": "slow", "seconds": 4, "job_id": app.job_id}])
    args = [sys.executable, "-m", "uploader", "upload", str(data), *app.flags, "--state-dir", str(state),
            "--records-per-call", "2", "--log-format", "json"]
    proc = subprocess.Popen(args, env=sandbox.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        acked = 0
        deadline = time.monotonic() + 30
        while acked < 3 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            event = json.loads(line)
            if event["event"] == "chunk_sent":
                acked = event["chunk"]
        assert acked == 3
        time.sleep(1.0)  # chunk 4 is now held by the sandbox
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert len(received_rows(sandbox, app.job_id)) == 6

    rerun = subprocess.run(args, env=sandbox.env, capture_output=True, text=True, timeout=60, check=False)
    assert rerun.returncode == 0, rerun.stderr
    started = [e for e in json_events(rerun.stdout) if e["event"] == "file_started"]
    assert started[0]["skip_records"] == 6  # resumed after the three acknowledged chunks
    time.sleep(4)  # let the held request finish: the sandbox accepts it late
    got, expected = collections.Counter(received_rows(sandbox, app.job_id)), collections.Counter(file_rows(data))
    assert not expected - got, "records lost"
    extra = got - expected
    assert sum(extra.values()) <= 2 and set(extra) <= set(file_rows(data)[6:8]), \
        f"{sum(extra.values())} records repeated beyond the in-flight chunk"


def test_rerun_within_12_hours_is_skipped_and_force_sends_again(app, upload, sandbox, tmp_path) -> None:  # noqa: ANN001
    data = write_resignations(tmp_path / "r.csv", 5)
    first = upload(app, data, extra=["--records-per-call", "2"])
    assert first.returncode == 0, first.stderr
    before = job_stats(sandbox, app.job_id)
    again = upload(app, data, extra=["--log-format", "json"])
    assert again.returncode == 0
    assert [e["event"] for e in json_events(again.stdout)] == ["file_skipped", "summary"]
    assert job_stats(sandbox, app.job_id) == before
    copy = tmp_path / "same-content-other-name.csv"  # identical content is recognised by its hash
    copy.write_bytes(data.read_bytes())
    assert "skipped" in upload(app, copy).stdout
    forced = upload(app, data, extra=["--force"])
    assert forced.returncode == 0, forced.stderr
    assert job_stats(sandbox, app.job_id)["records"] == 2 * before["records"]
    env = {**sandbox.env, "UPLOADER_FORCE": "true"}
    assert upload(app, data, env=env).returncode == 0
    assert job_stats(sandbox, app.job_id)["records"] == 3 * before["records"]


# -- dry run, tokens, output -----------------------------------------------------------------------

def test_dry_run_makes_no_request(app, upload, sandbox, tmp_path) -> None:  # noqa: ANN001
    data = write_resignations(tmp_path / "r.csv", 7)
    before = sandbox.stats()
    result = upload(app, data, extra=["--dry-run", "--records-per-call", "3"])
    assert result.returncode == 0, result.stderr
    assert "would send 7 records in 3 chunks" in result.stdout
    after = sandbox.stats()
    assert after["tokens_issued"] == before["tokens_issued"]
    assert job_stats(sandbox, app.job_id)["uploads"] == 0
    # No network at all: unreachable hosts do not matter.
    flags = list(app.flags)
    flags[flags.index("--authority-host") + 1] = "https://127.0.0.1:9"
    flags[flags.index("--ingestion-url") + 1] = "https://127.0.0.1:9"
    assert upload(app, data, extra=[*flags, "--dry-run"], flags=False, timeout=20).returncode == 0


def test_one_token_per_run_for_many_chunks_and_files(app, upload, sandbox, tmp_path) -> None:  # noqa: ANN001
    files = [write_resignations(tmp_path / f"r{i}.csv", 9 + i) for i in range(3)]
    before = sandbox.stats()["tokens_issued"]
    result = upload(app, *files, extra=["--records-per-call", "2"])
    assert result.returncode == 0, result.stderr
    assert sandbox.stats()["tokens_issued"] - before == 1
    assert job_stats(sandbox, app.job_id)["uploads"] == 5 + 5 + 6


def test_json_log_parses_and_holds_no_cell_value(app, upload, sandbox, tmp_path) -> None:  # noqa: ANN001
    good = EXAMPLES / "employee-profile.csv"
    bad = EXAMPLES / "bad" / "resignation-bad.csv"
    sandbox.faults([{"kind": "status", "status": 503, "retry_after": 0, "job_id": app.job_id}])
    result = upload(app, good, bad, extra=["--mapping", str(mapping_for("employee-profile", app.job_id, tmp_path)),
                                           "--records-per-call", "4", "--log-format", "json"])
    assert result.returncode == 3
    events = json_events(result.stdout)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "file_started" and kinds[-1] == "summary"
    assert {"chunk_sent", "retry", "file_done", "file_invalid"} <= set(kinds)
    invalid = next(e for e in events if e["event"] == "file_invalid")
    assert invalid["problem_count"] >= 1 and all(":" in p for p in invalid["problems"])
    assert_no_cell_values(good, result.stdout, result.stderr)
    assert_no_cell_values(bad, result.stdout, result.stderr)
    assert "Bearer" not in result.stdout + result.stderr


def test_text_output_without_a_terminal_is_plain_lines(app, upload, sandbox, tmp_path) -> None:  # noqa: ANN001
    data = write_resignations(tmp_path / "r.csv", 5)
    result = upload(app, data, extra=["--records-per-call", "2"])
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout  # no progress bar escape codes in logs
    assert "chunk 3/3 accepted" in result.stdout
    assert "sent 5 records in 3 chunks, 0 retries" in result.stdout
    assert_no_cell_values(data, result.stdout, result.stderr)


# -- files, exit codes, configuration --------------------------------------------------------------

def test_invalid_file_is_refused_and_good_files_still_go(app, upload, sandbox, tmp_path) -> None:  # noqa: ANN001
    good = write_resignations(tmp_path / "good.csv", 4)
    bad = EXAMPLES / "bad" / "resignation-bad.csv"
    mapping = mapping_for("resignation", app.job_id, tmp_path)
    result = upload(app, bad, good, extra=["--mapping", str(mapping)])
    assert result.returncode == 3
    assert f"{bad}:3: column EmailAddress:" in result.stderr
    assert received_rows(sandbox, app.job_id) == file_rows(good)  # nothing of the bad file


def test_missing_file_is_a_usage_error(app, upload, sandbox, tmp_path) -> None:  # noqa: ANN001
    good = write_resignations(tmp_path / "good.csv", 2)
    result = upload(app, good, tmp_path / "nope.csv")
    assert result.returncode == 2
    assert "nope.csv: file not found" in result.stderr
    assert job_stats(sandbox, app.job_id)["uploads"] == 0


@pytest.mark.parametrize(("change", "expected"), [
    ({"--certificate": "/nonexistent/cert.pem"}, "--certificate /nonexistent/cert.pem: file not found"),
    ({"--cloud": "azurechina"}, "unknown cloud"),
    ({"--ingestion-url": "http://127.0.0.1:1"}, "must be an https:// URL"),
    ({"--job-id": "not-a-guid"}, "--job-id: must be a GUID"),
    ({"--deadline": "0"}, "--deadline: must be a positive number of seconds"),
    ({"--read-timeout": "-1"}, "--read-timeout: must be a positive number of seconds"),
    ({"--records-per-call": "0"}, "--records-per-call"),
])
def test_configuration_errors_exit_2(change, expected, app, upload, sandbox, tmp_path) -> None:  # noqa: ANN001
    good = write_resignations(tmp_path / "good.csv", 2)
    flags = list(app.flags)
    for flag, value in change.items():
        if flag in flags:
            flags[flags.index(flag) + 1] = value
        else:
            flags += [flag, value]
    result = upload(app, good, extra=flags, flags=False)
    assert result.returncode == 2
    assert expected in result.stderr


def test_bad_mapping_exits_2_naming_the_key(app, upload, tmp_path) -> None:  # noqa: ANN001
    mapping = tmp_path / "m.json"
    mapping.write_text(json.dumps({"jobId": app.job_id, "scenarios": [{"type": "resignation", "columns": {
        "userPrincipalName": "EmailAddress", "resignationDate": "ResignationDate"}}]}))
    result = upload(app, write_resignations(tmp_path / "g.csv", 1), extra=["--mapping", str(mapping)])
    assert result.returncode == 2
    assert "scenarios[0].columns.lastWorkingDate" in result.stderr


def test_environment_twins_work_and_flags_win(new_app, upload, sandbox, tmp_path) -> None:  # noqa: ANN001
    mine, other = new_app(), new_app()
    data = write_resignations(tmp_path / "r.csv", 3)
    flags = dict(zip(mine.flags[::2], mine.flags[1::2], strict=True))
    env = dict(sandbox.env)
    for flag, value in flags.items():
        env["UPLOADER_" + flag.lstrip("-").upper().replace("-", "_")] = value
    env.pop("UPLOADER_CERTIFICATE")
    env["UPLOADER_CERTIFICATE_PEM"] = Path(flags["--certificate"]).read_text()
    env["UPLOADER_RECORDS_PER_CALL"] = "1"
    env["UPLOADER_LOG_FORMAT"] = "json"
    result = upload(mine, data, env=env, flags=False)  # everything from the environment
    assert result.returncode == 0, result.stderr
    assert job_stats(sandbox, mine.job_id)["uploads"] == 3
    json_events(result.stdout)
    # A flag beats its twin: the environment names the other app's job, the flag names ours.
    env["UPLOADER_JOB_ID"] = other.job_id
    result = upload(mine, data, env=env, flags=False, extra=["--job-id", mine.job_id, "--force",
                                                             "--records-per-call", "3"])
    assert result.returncode == 0, result.stderr
    assert job_stats(sandbox, mine.job_id)["uploads"] == 4
    assert job_stats(sandbox, other.job_id)["uploads"] == 0


def test_a_refused_token_is_renewed_once_mid_run(app, sandbox, tmp_path) -> None:  # noqa: ANN001
    data = write_resignations(tmp_path / "r.csv", 4)
    sandbox.faults([{"kind": "slow", "seconds": 2, "job_id": app.job_id}])  # holds chunk 1 before the token check
    args = [sys.executable, "-m", "uploader", "upload", str(data), *app.flags, "--state-dir", str(tmp_path / "s"),
            "--records-per-call", "2"]
    proc = subprocess.Popen(args, env=sandbox.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while sandbox.stats()["tokens_issued"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    sandbox.expire_tokens()  # the token in flight is now refused with 401
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert sandbox.stats()["tokens_issued"] == 2
    assert received_rows(sandbox, app.job_id) == file_rows(data)


def test_progress_bar_on_a_terminal(app, sandbox, tmp_path) -> None:  # noqa: ANN001
    import pty

    data = write_resignations(tmp_path / "r.csv", 6)
    master, slave = pty.openpty()
    args = [sys.executable, "-m", "uploader", "upload", str(data), *app.flags, "--state-dir", str(tmp_path / "s"),
            "--records-per-call", "2"]
    proc = subprocess.Popen(args, env={**sandbox.env, "TERM": "xterm-256color", "COLUMNS": "150"},
                            stdout=slave, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            piece = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not piece:
            break
        chunks.append(piece)
    os.close(master)
    assert proc.wait(30) == 0
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert "\x1b[" in screen  # drawn with terminal control sequences
    assert "chunk 3/3" in screen and "records" in screen
    assert "sent 6 records in 3 chunks" in screen
    assert_no_cell_values(data, screen)


def test_failed_run_resumes_exactly_even_with_another_chunk_size(app, upload, sandbox, tmp_path) -> None:  # noqa: ANN001
    data = write_resignations(tmp_path / "r.csv", 11)
    sandbox.faults([{"kind": "slow", "seconds": 0, "job_id": app.job_id}] * 2 +
                   [{"kind": "status", "status": 400, "job_id": app.job_id}])  # a permanent refusal of chunk 3
    first = upload(app, data, extra=["--records-per-call", "2"], timeout=20)
    assert first.returncode == 1
    assert "HTTP 400" in first.stderr and "4 of 11 records acknowledged" in first.stderr
    assert len(received_rows(sandbox, app.job_id)) == 4
    second = upload(app, data, extra=["--records-per-call", "3", "--log-format", "json"])
    assert second.returncode == 0, second.stderr
    started = next(e for e in json_events(second.stdout) if e["event"] == "file_started")
    assert (started["skip_records"], started["chunks"]) == (4, 3)
    assert received_rows(sandbox, app.job_id) == file_rows(data)  # every record exactly once, in order


def test_header_only_file_sends_nothing_and_succeeds(app, upload, sandbox, tmp_path) -> None:  # noqa: ANN001
    empty = tmp_path / "empty.csv"
    empty.write_text("EmailAddress,ResignationDate,LastWorkingDate\n")
    result = upload(app, empty, extra=["--log-format", "json"])
    assert result.returncode == 0, result.stderr
    done = next(e for e in json_events(result.stdout) if e["event"] == "file_done")
    assert done["status"] == "empty"
    assert sandbox.stats()["tokens_issued"] == 0  # no sign-in when there is nothing to send
    assert job_stats(sandbox, app.job_id)["uploads"] == 0


def test_failure_stops_the_run_and_later_files_are_not_attempted(new_app, upload, sandbox, tmp_path) -> None:  # noqa: ANN001
    mine, theirs = new_app(), new_app()
    files = [write_resignations(tmp_path / f"r{i}.csv", 3 + i) for i in range(3)]
    flags = [f if f != mine.job_id else theirs.job_id for f in mine.flags]
    result = upload(mine, *files, extra=[*flags, "--log-format", "json"], flags=False, timeout=20)
    assert result.returncode == 1
    summary = json_events(result.stdout)[-1]
    assert summary["event"] == "summary" and summary["not_attempted"] == 2 and summary["statuses"] == {"failed": 1}
    assert job_stats(sandbox, theirs.job_id)["rejected"] == 1
