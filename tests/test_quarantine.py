"""Rows set aside instead of whole files refused (issue 16 C): `--invalid-rows quarantine`, a connector's
`invalidRows`/`maxInvalidRows`, exit 4, exactly once under kill -9, in `upload` and in job mode.

The real CLI in subprocesses against the loopback sandbox (and a folder or Azurite drop zone for `run`).
Assertions compare bytes, counts, lines and rules; failure messages never print a cell value."""

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
from test_run import Zone, job_env, run_job, summary, today_prefix

from uploader.errors import EXIT_SET_ASIDE
from uploader.job import dropzone as dzmod

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parent.parent / "uploader" / "examples"

# Microsoft Learn's multi-scenario sample, verbatim ("Configuring a single CSV file for multiple HR data types",
# https://learn.microsoft.com/purview/import-hr-data): its two job-level-change rows (lines 4 and 5) carry their
# date under ResignationDate, so their EffectiveDate is empty. Also in uploader/examples/bad/.
MS_SAMPLE = (EXAMPLES / "bad" / "multi-scenario-microsoft.csv").read_bytes()
MS_MAPPING = json.loads((EXAMPLES / "multi-scenario.json").read_text())
HINT = "EffectiveDate is empty; ResignationDate holds a date on this row"


def rows_of(data: bytes) -> list[tuple[str, ...]]:
    return [tuple(r) for r in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))][1:]


def received(sandbox, job_id: str) -> collections.Counter:  # noqa: ANN001
    seen: collections.Counter = collections.Counter()
    for body in sandbox.received(job_id):
        seen.update(rows_of(body))
    return seen


def physical_lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def mapping_file(tmp_path: Path, job_id: str, **extra: object) -> Path:
    path = tmp_path / f"mapping-{job_id[:8]}.json"
    path.write_text(json.dumps({**MS_MAPPING, "jobId": job_id, **extra}))
    return path


def upload(run_uploader, app, tmp_path: Path, *args: object, env: dict | None = None):  # noqa: ANN001, ANN201
    return run_uploader("upload", *args, *app.flags, "--state-dir", tmp_path / "state", env=env)


def assert_no_values(text: str, data: bytes) -> None:
    values = {c for row in rows_of(data) for c in row[1:] if len(c) >= 6}  # row[0]: the scenario, a column's name
    assert not [v for v in values if v in text], "a cell value appears in the output"


# -- Microsoft's sample: 6 rows sent, 2 set aside, exit 4 -------------------------------------------------


@pytest.mark.posix
def test_microsofts_sample_sends_6_rows_and_sets_2_aside(new_app, sandbox, run_uploader, tmp_path: Path) -> None:  # noqa: ANN001
    app = new_app()
    sample = tmp_path / "hr.csv"
    sample.write_bytes(MS_SAMPLE)
    mapping = mapping_file(tmp_path, app.job_id)
    result = upload(run_uploader, app, tmp_path, sample, "--mapping", mapping, "--invalid-rows", "quarantine")
    out = result.stdout + result.stderr
    assert result.returncode == EXIT_SET_ASIDE == 4, out
    lines = physical_lines(MS_SAMPLE)
    valid = [ln for i, ln in enumerate(lines, 1) if i not in (1, 4, 5)]
    assert received(sandbox, app.job_id) == collections.Counter(rows_of(lines[0] + b"".join(valid)))
    bodies = sandbox.received(app.job_id)
    assert b"".join(bodies) == lines[0] + b"".join(valid)  # in order, byte for byte, one chunk
    # The two rows, byte for byte under the header, in rejected/ beside the file (where `upload *.csv` does not
    # reach); their errors name line, column and rule.
    (aside,) = [p for p in (tmp_path / "rejected").iterdir()
                if p.name.startswith("hr.invalid-rows-") and p.suffix == ".csv"]
    assert aside.read_bytes() == lines[0] + lines[3] + lines[4]
    assert oct(aside.stat().st_mode & 0o777) == "0o600"
    errors = json.loads(Path(f"{aside}.errors.json").read_text())
    assert [(p["line"], p["column"], p["rule"]) for p in errors["problems"]] == [
        (4, "EffectiveDate", HINT), (5, "EffectiveDate", HINT)]
    assert errors["rows_set_aside"] == 2 and errors["records_in_file"] == 8
    assert f"{sample}:4: column EffectiveDate: {HINT}" in out
    assert "6 records sent in 1 chunk, 2 rows set aside" in out and "(exit 4)" in out
    assert_no_values(out + json.dumps(errors), MS_SAMPLE)
    assert not list(tmp_path.glob("**/.hr-quarantine-*"))  # the split copies are gone


def test_refuse_stays_the_default_and_names_the_misplaced_date(new_app, sandbox, run_uploader,  # noqa: ANN001
                                                               tmp_path: Path) -> None:
    app = new_app()
    sample = tmp_path / "hr.csv"
    sample.write_bytes(MS_SAMPLE)
    result = upload(run_uploader, app, tmp_path, sample, "--mapping", mapping_file(tmp_path, app.job_id))
    assert result.returncode == 3
    assert f"{sample}:4: column EffectiveDate: {HINT}" in result.stdout + result.stderr
    assert sandbox.job_stats(app.job_id)["uploads"] == 0
    assert not list(tmp_path.glob("**/*invalid-rows*"))


def test_mapping_chooses_quarantine_and_the_flag_wins(new_app, sandbox, run_uploader, tmp_path: Path) -> None:  # noqa: ANN001
    app = new_app()
    sample = tmp_path / "hr.csv"
    sample.write_bytes(MS_SAMPLE)
    mapping = mapping_file(tmp_path, app.job_id, invalidRows="quarantine")
    refused = upload(run_uploader, app, tmp_path, sample, "--mapping", mapping, "--invalid-rows", "refuse")
    assert refused.returncode == 3 and sandbox.job_stats(app.job_id)["uploads"] == 0
    env = dict(sandbox.env, UPLOADER_REJECTED_DIR=str(tmp_path / "aside"))
    took = upload(run_uploader, app, tmp_path, sample, "--mapping", mapping, env=env)
    assert took.returncode == 4, took.stderr
    assert len(list((tmp_path / "aside").glob("hr.invalid-rows-*.csv"))) == 1
    assert sandbox.job_stats(app.job_id)["records"] == 6


@pytest.mark.parametrize("cap", ["1", "20%"])
def test_above_the_cap_the_file_is_refused_whole(new_app, sandbox, run_uploader, tmp_path: Path, cap: str) -> None:  # noqa: ANN001
    app = new_app()
    sample = tmp_path / "hr.csv"
    sample.write_bytes(MS_SAMPLE)
    mapping = mapping_file(tmp_path, app.job_id, invalidRows="quarantine", maxInvalidRows=cap)
    result = upload(run_uploader, app, tmp_path, sample, "--mapping", mapping)
    assert result.returncode == 3, result.stderr
    assert "refused whole: 2 of 8 rows are invalid, above maxInvalidRows" in result.stdout + result.stderr
    assert sandbox.job_stats(app.job_id)["uploads"] == 0
    assert not list(tmp_path.glob("**/*invalid-rows*"))
    # The flag's cap wins over the mapping's.
    wider = upload(run_uploader, app, tmp_path, sample, "--mapping", mapping, "--max-invalid-rows", "25%")
    assert wider.returncode == 4, wider.stderr


def test_a_problem_of_the_file_itself_is_never_set_aside(new_app, sandbox, run_uploader, tmp_path: Path) -> None:  # noqa: ANN001
    app = new_app()
    bad = tmp_path / "hr.csv"  # the EffectiveDate column is missing from the header: no row can be sent as mapped
    bad.write_bytes(MS_SAMPLE.replace(b"EffectiveDate,", b"Effective,", 1))
    result = upload(run_uploader, app, tmp_path, bad, "--mapping", mapping_file(tmp_path, app.job_id),
                    "--invalid-rows", "quarantine")
    assert result.returncode == 3
    assert "cannot be set aside with a row" in result.stdout + result.stderr
    assert sandbox.job_stats(app.job_id)["uploads"] == 0


@pytest.mark.parametrize(("extra", "needle"), [
    ({"invalidRows": "maybe"}, "invalidRows: must be one of refuse, quarantine"),
    ({"maxInvalidRows": "lots"}, "maxInvalidRows: must be a number of rows"),
    ({"maxInvalidRows": "150%"}, "maxInvalidRows: must be a number of rows"),
])
def test_bad_policy_keys_exit_2_naming_them(run_uploader, tmp_path: Path, extra: dict, needle: str) -> None:
    sample = tmp_path / "hr.csv"
    sample.write_bytes(MS_SAMPLE)
    result = run_uploader("validate", sample, "--mapping",
                          mapping_file(tmp_path, "3f2504e0-4f89-41d3-9a0c-0305e82c3301", **extra))
    assert result.returncode == 2 and needle in result.stderr
    flag = run_uploader("upload", sample, "--dry-run", "--max-invalid-rows", "-3")
    assert flag.returncode == 2 and "--max-invalid-rows" in flag.stderr


def test_dry_run_says_what_would_be_set_aside_and_writes_nothing(run_uploader, tmp_path: Path) -> None:  # noqa: ANN001
    sample = tmp_path / "hr.csv"
    sample.write_bytes(MS_SAMPLE)
    result = run_uploader("upload", sample, "--dry-run", "--invalid-rows", "quarantine", "--mapping",
                          mapping_file(tmp_path, "3f2504e0-4f89-41d3-9a0c-0305e82c3301"), "--state-dir",
                          tmp_path / "state")
    assert result.returncode == 0, result.stderr  # exit 4 only when a run sets rows aside; a dry run sets none
    assert "would send 6 records" in result.stdout and "would be set aside" in result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hr.csv", "mapping-3f2504e0.json"]


# -- the newcomer's hour (issue 24) and set-aside failures (issue 23 D) ------------------------------------


def test_set_aside_files_are_out_of_the_glob_skipped_as_input_and_a_rerun_exits_0(  # noqa: ANN001
        new_app, sandbox, run_uploader, tmp_path: Path) -> None:
    """`upload *.csv` the next day neither reaches nor refuses the set-aside file; a rerun that sends nothing and
    sets nothing aside exits 0, not 4."""
    app = new_app()
    sample = tmp_path / "hr.csv"
    sample.write_bytes(MS_SAMPLE)
    mapping = mapping_file(tmp_path, app.job_id, invalidRows="quarantine")
    first = upload(run_uploader, app, tmp_path, sample, "--mapping", mapping)
    assert first.returncode == 4, first.stderr
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == ["hr.csv"]  # what `upload *.csv` would take
    (aside,) = tmp_path.glob("rejected/hr.invalid-rows-*.csv")
    again = upload(run_uploader, app, tmp_path, sample, aside, "--mapping", mapping)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out[-2000:]
    assert "a set-aside rows file" in out and "never taken as input" in out
    assert "invalid row(s) already set aside by an earlier run in" in out
    assert sandbox.job_stats(app.job_id)["records"] == 6  # nothing sent twice, the set-aside file not sent


def test_a_set_aside_that_cannot_be_written_fails_that_file_before_anything_is_sent(  # noqa: ANN001
        new_app, sandbox, run_uploader, tmp_path: Path) -> None:
    app = new_app()
    long_name = tmp_path / ("h" * 240 + ".csv")  # 244 bytes: its set-aside name would be 270, over NAME_MAX
    long_name.write_bytes(MS_SAMPLE)
    result = upload(run_uploader, app, tmp_path, long_name, "--mapping", mapping_file(tmp_path, app.job_id),
                    "--invalid-rows", "quarantine")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out[-2000:]
    assert "could not be set aside" in out and "too long" in out and "nothing of it was sent" in out, out[-2000:]
    assert "internal error" not in out and "Traceback" not in out
    assert "invalid row(s) set aside in" not in out  # never reported as set aside
    assert sandbox.job_stats(app.job_id)["uploads"] == 0
    assert_no_values(out, MS_SAMPLE)


@pytest.mark.parametrize("where", ["a-file", "proc"])
def test_a_rejected_dir_that_cannot_hold_the_rows_exits_2_before_anything_is_sent(  # noqa: ANN001
        new_app, sandbox, run_uploader, tmp_path: Path, where: str) -> None:
    app = new_app()
    sample = tmp_path / "hr.csv"
    sample.write_bytes(MS_SAMPLE)
    folder = tmp_path / "taken" if where == "a-file" else Path("/proc/hr-connector-rejected")
    if where == "a-file":
        folder.write_text("")
    result = upload(run_uploader, app, tmp_path, sample, "--mapping", mapping_file(tmp_path, app.job_id),
                    "--invalid-rows", "quarantine", "--rejected-dir", folder)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out[-2000:]
    assert "--rejected-dir" in out and "cannot hold the set-aside rows" in out and "nothing was sent" in out
    assert "set aside in" not in out and "internal error" not in out
    assert sandbox.job_stats(app.job_id)["uploads"] == 0


# -- kill -9 anywhere: each valid row sent once, each invalid row set aside once ----------------------


def quarantine_file(path: Path, records: int) -> tuple[bytes, set[int]]:
    """`records` resignation rows, every fifth one invalid (some spanning two lines in a quoted cell)."""
    lines = [b"EmailAddress,ResignationDate,LastWorkingDate\r\n"]
    bad: set[int] = set()
    for i in range(records):
        if i % 5 == 3:
            bad.add(i)
            upn = f'"bad {i}\r\nrow"' if i % 2 else f"no-at-sign-{i}"
            lines.append(f"{upn},2026-09-01T00:00:00Z,2026-10-01T00:00:00Z\r\n".encode())
        else:
            lines.append(f"p{i:04d}@contoso.com,2026-09-{1 + i % 28:02d}T00:00:00Z,2026-10-01T00:00:00Z\r\n".encode())
    data = b"".join(lines)
    path.write_bytes(data)
    return data, bad


KILL_POINTS = [("rows_invalid", 1), ("chunk_sent", 1), ("chunk_sent", 3), ("chunk_sent", 6), ("file_done", 1)]


@pytest.mark.posix
def test_kill_9_at_any_point_sends_each_valid_row_once_and_sets_each_invalid_row_aside_once(  # noqa: ANN001
        new_app, sandbox, tmp_path: Path) -> None:
    app = new_app()
    path = tmp_path / "r.csv"
    data, bad = quarantine_file(path, 60)
    per_call = 4
    mapping = tmp_path / "m.json"
    mapping.write_text(json.dumps({**json.loads((EXAMPLES / "resignation.json").read_text()), "jobId": app.job_id}))
    args = [sys.executable, "-m", "uploader", "upload", str(path), *app.flags, "--state-dir", str(tmp_path / "state"),
            "--mapping", str(mapping),
            "--records-per-call", str(per_call), "--log-format", "json", "--invalid-rows", "quarantine"]
    kills = 0
    for event, nth in KILL_POINTS:
        proc = subprocess.Popen(args, env=sandbox.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            seen = 0
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                line = proc.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    break
                if json.loads(line).get("event") == event:
                    seen += 1
                    if seen == nth:
                        os.kill(proc.pid, signal.SIGKILL)
                        kills += 1
                        break
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    assert kills == len(KILL_POINTS)  # each kill point was reached
    final = subprocess.run(args, env=sandbox.env, capture_output=True, text=True, timeout=60)
    assert final.returncode == 0, final.stderr[-2000:]  # it sends and sets aside nothing: all went before the kills
    lines = physical_lines(data)
    records = []  # (index, bytes) of each record: the quoted invalid ones span two physical lines
    i, n = 1, 0
    while i < len(lines):
        take = 2 if lines[i].count(b'"') % 2 else 1
        records.append((n, b"".join(lines[i:i + take])))
        i, n = i + take, n + 1
    valid = collections.Counter(rows_of(lines[0] + b"".join(r for k, r in records if k not in bad)))
    got = received(sandbox, app.job_id)
    assert not valid - got, "valid rows lost"
    assert not set(got) - set(valid), "an invalid row was sent"
    repeated = sum((got - valid).values())
    assert repeated <= per_call * kills, f"{repeated} rows sent twice, beyond the chunks in flight at the kills"
    (aside,) = list(tmp_path.glob("rejected/r.invalid-rows-*.csv"))
    assert aside.read_bytes() == lines[0] + b"".join(r for k, r in records if k in bad)
    errors = json.loads(Path(f"{aside}.errors.json").read_text())
    assert errors["rows_set_aside"] == len(bad) == 12
    assert not list(tmp_path.glob("**/.hr-quarantine-*")) and not list(tmp_path.glob("**/.*.tmp"))


# -- job mode -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["folder", pytest.param("blob", marks=pytest.mark.azurite)])
def test_job_mode_sets_rows_aside_under_rejected_and_exits_4(kind: str, request: pytest.FixtureRequest,  # noqa: ANN001
                                                             new_app, sandbox, tmp_path: Path) -> None:
    zone = Zone(kind, tmp_path, request.getfixturevalue("azurite") if kind == "blob" else None)
    app = new_app()
    zone.put("incoming/hr/2026-06-30.csv", MS_SAMPLE)
    connectors = [{**MS_MAPPING, "jobId": app.job_id, "invalidRows": "quarantine"}]
    done = run_job(job_env(sandbox, app, zone, connectors))
    assert done.returncode == 4, done.stdout[-3000:] + done.stderr[-3000:]
    totals = summary(done)  # its raw line has "exit_code": 4, so the failed-run alert's query matches it
    assert totals["exit_code"] == 4 and totals["files_partial"] == 1 and totals["rows_set_aside"] == 2
    assert totals["records_sent"] == 6 and sandbox.job_stats(app.job_id)["records"] == 6
    rejected = zone.paths("rejected/")
    assert len(rejected) == 2 and rejected[0].startswith("rejected/hr/2026-06-30.invalid-rows-")
    lines = physical_lines(MS_SAMPLE)
    assert zone.read(rejected[0]) == lines[0] + lines[3] + lines[4]
    problems = json.loads(zone.read(rejected[1]))["problems"]
    assert [(p["line"], p["rule"]) for p in problems] == [(4, HINT), (5, HINT)]
    assert zone.paths("processed/") == [f"{today_prefix()}hr/2026-06-30.csv"]
    assert zone.paths("incoming/") == []
    assert_no_values(done.stdout + done.stderr, MS_SAMPLE)
    again = run_job(job_env(sandbox, app, zone, connectors))  # nothing left: nothing sent or set aside twice
    assert again.returncode == 0 and len(zone.paths("rejected/")) == 2
    assert sandbox.job_stats(app.job_id)["records"] == 6


@pytest.mark.posix
def test_job_mode_rerun_after_a_kill_before_filing_sets_nothing_aside_twice(new_app, sandbox, tmp_path: Path) -> None:  # noqa: ANN001
    """Killed after sending and setting aside but before the file was moved: the rerun files it, sends nothing."""
    zone = Zone("folder", tmp_path, None)
    app = new_app()
    zone.put("incoming/hr/a.csv", MS_SAMPLE)
    connectors = [{**MS_MAPPING, "jobId": app.job_id}]
    env = job_env(sandbox, app, zone, connectors, UPLOADER_INVALID_ROWS="quarantine", UPLOADER_LOG_FORMAT="json")
    proc = subprocess.Popen([sys.executable, "-m", "uploader", "run"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            if json.loads(line).get("event") == "rows_set_aside":
                os.kill(proc.pid, signal.SIGKILL)
                break
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    # The killed execution's lock is never renewed again; date it a second short of stale, so the rerun breaks it
    # after one second instead of waiting out the whole lease period (test_hostile_dropzone ages it the same way).
    for lock in (zone.root / "state/locks").rglob("*.lock"):
        stamp = time.time() - dzmod.STALE_LOCK_SECONDS + 1
        os.utime(lock, (stamp, stamp))
    done = run_job(env)
    assert done.returncode == 4, done.stdout[-2000:]
    assert sandbox.job_stats(app.job_id)["records"] == 6
    assert len(zone.paths("rejected/")) == 2 and zone.paths("incoming/") == []


def test_stack_config_carries_the_policy_to_the_job() -> None:
    """A stack's invalidRows/maxInvalidRows reach UPLOADER_CONNECTORS unchanged (one mapping model)."""
    from provisioning.config import load_settings
    from uploader.job.connectors import load_connectors
    from uploader.send.quarantine import RowPolicy

    connector = {**MS_MAPPING, "jobId": "3f2504e0-4f89-41d3-9a0c-0305e82c3301", "invalidRows": "Quarantine",
                 "maxInvalidRows": "5%"}
    settings = load_settings({"hr-connector:tenantId": "3f2504e0-4f89-41d3-9a0c-0305e82c3302",
                              "hr-connector:location": "westeurope", "hr-connector:connectors": [connector]})
    (parsed,) = load_connectors(settings.connectors_json())
    assert json.loads(settings.connectors_json())[0]["invalidRows"] == "quarantine"
    policy = RowPolicy.resolve(parsed)
    assert (policy.mode, str(policy.cap), policy.cap.limit(200)) == ("quarantine", "5%", 10)
    assert RowPolicy.resolve(parsed, "refuse").mode == "refuse"  # the job's UPLOADER_INVALID_ROWS wins
