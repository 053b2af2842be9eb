"""Issue 18's delivery and state mechanisms, through the real CLI against real drop zones (folder and Azurite) and
the loopback sandbox:

- one state reader: every kind of state file, corrupted, is set aside with a warning and the run goes on, ending
  with its run_summary (breaks 4 and 14);
- nothing is sent before the file's own checkpoint is written where it lives (break 2);
- only settled files are taken (break 3);
- filing under processed/ is idempotent (break 15);
- globs match in linear time (break 12).

Every test asserts the exit code, that nothing was lost or sent twice, and that no cell value was printed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_hostile_dropzone import assert_clean, events
from test_run import (
    PROFILE_COLUMNS,
    Zone,
    connector,
    file_records,
    job_env,
    outcome,
    resignation_csv,
    run_job,
    summary,
    today_prefix,
)

from uploader.job.jobrun import move_journal

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]

DEEP = b"[" * 100_000  # nests deeper than any JSON decoder recurses


@pytest.fixture(params=["blob", "folder"])
def zone(request: pytest.FixtureRequest, tmp_path: Path) -> Zone:
    return Zone(request.param, tmp_path, request.getfixturevalue("azurite") if request.param == "blob" else None)


@pytest.fixture
def blob_zone(tmp_path: Path, azurite) -> Zone:  # noqa: ANN001
    return Zone("blob", tmp_path, azurite)


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def checkpoint_record(job_id: str, data: bytes, acked: int, **change: object) -> dict:
    now = dt.datetime.now(dt.UTC)
    total = len(file_records(data))
    return {"job_id": job_id, "sha256": hashlib.sha256(data).hexdigest(), "file": "x", "records_per_call": 5,
            "records_total": total, "records_acked": acked, "completed_at": None, "updated_at": iso(now), **change}


def uploads(sandbox, job_id: str) -> int:  # noqa: ANN001
    return sandbox.job_stats(job_id)["uploads"]


# -- one state reader: every state file, corrupted, leaves the run going -----------------------------------

STATE_CASES = {
    # what a corrupt file does without the state reader is in each comment (issue 18, break 4)
    "checkpoint-deep": ("checkpoint", DEEP),  # the file failed on every run; later files waited for ever
    "checkpoint-year-1": ("checkpoint", "year1"),  # OverflowError
    "checkpoint-huge-int": ("checkpoint", b'{"records_acked": ' + b"9" * 5001 + b"}"),
    "checkpoint-nan": ("checkpoint", b'{"records_acked": NaN}'),
    "connector-deep": ("connector", DEEP),  # a traceback and no run_summary
    "connector-future": ("connector", "future"),  # switched the freshness warning off
    "journal-deep": ("journal", DEEP),
    "journal-nested": ("journal", b'{"src": {"a": [1]}, "dst": "processed/x", "etag": "1"}'),
}


@pytest.mark.parametrize("case", sorted(STATE_CASES))
def test_every_corrupt_state_file_is_set_aside_and_the_run_goes_on(case: str, zone: Zone, sandbox,  # noqa: ANN001
                                                                  new_app) -> None:  # noqa: ANN001
    kind, content = STATE_CASES[case]
    app = new_app()
    first, later = resignation_csv(6), resignation_csv(3, start=50)
    zone.put("incoming/departures/a-first.csv", first, age_seconds=120)
    zone.put("incoming/departures/b-later.csv", later)
    now = dt.datetime.now(dt.UTC)
    if kind == "checkpoint":
        path = f"state/{app.job_id}/{hashlib.sha256(first).hexdigest()}.json"
        if content == "year1":
            content = json.dumps(checkpoint_record(app.job_id, first, 6, completed_at="0001-01-01T00:00:00+01:00",
                                                   updated_at="0001-01-01T00:00:00Z")).encode()
    elif kind == "connector":
        path = f"state/connectors/{app.job_id}.json"
        if content == "future":
            content = json.dumps({"job_id": app.job_id, "name": "profiles", "first_seen": iso(now - dt.timedelta(
                days=40)), "last_sent_at": iso(now + dt.timedelta(days=3650))}).encode()
    else:
        path = "state/moves/0123456789abcdef0123456789abcdef.json"
    zone.put(path, content)
    connectors = [connector(app.job_id, "departures/*.csv"),
                  connector(app.job_id, "profiles/*.csv", name="profiles", columns=PROFILE_COLUMNS,
                            scenario="employeeProfile")]
    done = run_job(job_env(sandbox, app, zone, connectors, UPLOADER_RECORDS_PER_CALL="5", UPLOADER_LOG_FORMAT="json"))
    assert_clean(done, app)
    line = summary(done)
    assert done.returncode == 0 and line["exit_code"] == 0, outcome(done)
    assert line["files_sent"] == 2 and line["files_waiting"] == 0, outcome(done)
    warnings = [e for e in events(done.stdout + done.stderr) if e.get("event") == "warning"
                or "warning" in str(e.get("message", ""))]
    assert any(path in json.dumps(e) and "set aside" in json.dumps(e) for e in warnings), outcome(done)
    # every record arrived, exactly once; the corrupt file was renamed aside, not deleted
    from test_run import records_at

    assert records_at(sandbox, app.job_id) == file_records(first) + file_records(later)
    aside = zone.paths("state/unreadable/")
    assert len(aside) == 1 and aside[0].startswith("state/unreadable/" + path[len("state/"):] + ".unreadable-")
    assert zone.read(aside[0]) == content
    assert zone.paths("incoming/") == []
    if case == "connector-future":  # when it last sent is not known: the freshness warning says so
        assert any(e.get("event") == "freshness_warning" for e in events(done)), outcome(done)


def test_a_lock_dated_in_the_future_does_not_block_its_file(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    """Break 4: a lock file whose time is a year ahead was never stale, so its file waited for ever."""
    app = new_app()
    zone = Zone("folder", tmp_path, None)
    data = resignation_csv(4)
    zone.put("incoming/departures/a.csv", data)
    lock = "state/locks/incoming/departures/a.csv.lock"
    zone.put(lock, json.dumps({"token": "x", "acquired_at": "2027-12-01T00:00:00+00:00"}).encode())
    ahead = time.time() + 365 * 86400
    os.utime(zone.root / lock, (ahead, ahead))
    started = time.monotonic()
    done = run_job(job_env(sandbox, app, zone, [connector(app.job_id, "departures/*.csv")]), timeout=60)
    assert done.returncode == 0, outcome(done)
    assert time.monotonic() - started < 30, "the run waited for a lock dated in the future"
    assert_clean(done, app)
    from test_run import records_at

    assert records_at(sandbox, app.job_id) == file_records(data)
    assert zone.paths("processed/") == [today_prefix() + "departures/a.csv"]


def test_upload_sets_a_corrupt_local_checkpoint_aside(new_app, sandbox, tmp_path: Path) -> None:  # noqa: ANN001
    """The local store goes through the same reader: 100,000 `[` is set aside with a warning, the file is sent."""
    app = new_app()
    data = resignation_csv(5)
    path = tmp_path / "r.csv"
    path.write_bytes(data)
    state = tmp_path / "state"
    journal = state / "checkpoints" / app.job_id / f"{hashlib.sha256(data).hexdigest()}.jsonl"
    journal.parent.mkdir(parents=True)
    journal.write_bytes(DEEP)
    done = subprocess.run([sys.executable, "-m", "uploader", "upload", str(path), *app.flags, "--state-dir",
                           str(state), "--records-per-call", "2"], env=sandbox.env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, outcome(done)
    assert_clean(done, app)
    assert "set aside" in done.stdout + done.stderr and "treated as absent" in done.stdout + done.stderr
    from test_run import records_at

    assert records_at(sandbox, app.job_id) == file_records(data)
    (aside,) = journal.parent.glob(journal.name + ".unreadable-*")
    assert aside.read_bytes() == DEEP


def test_links_planted_in_a_folder_zones_state_are_never_followed(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    """Checkpoint and state writes in a folder drop zone never follow a link: each planted link is set aside."""
    app = new_app()
    zone = Zone("folder", tmp_path, None)
    data = resignation_csv(4)
    zone.put("incoming/departures/a.csv", data)
    victim = tmp_path / "victim.json"
    victim.write_bytes(b'{"keep": 1}')
    planted = [f"state/{app.job_id}/{hashlib.sha256(data).hexdigest()}.json", f"state/connectors/{app.job_id}.json"]
    for path in planted:
        (zone.root / path).parent.mkdir(parents=True, exist_ok=True)
        (zone.root / path).symlink_to(victim)
    done = run_job(job_env(sandbox, app, zone, [connector(app.job_id, "departures/*.csv")]))
    assert victim.read_bytes() == b'{"keep": 1}', "a state write followed a link"
    assert done.returncode == 0, outcome(done)
    assert_clean(done, app)
    from test_run import records_at

    assert records_at(sandbox, app.job_id) == file_records(data)
    for path in planted:
        assert not (zone.root / path).is_symlink()
    assert len([p for p in (zone.root / "state/unreadable").rglob("*") if p.is_symlink()]) == 2


# -- break 14: upload's local checkpoint never follows a link ------------------------------------------------

def test_upload_never_writes_through_a_link_planted_in_a_shared_state_dir(new_app, sandbox, tmp_path: Path) -> None:  # noqa: ANN001
    app = new_app()
    data = resignation_csv(5)
    path = tmp_path / "r.csv"
    path.write_bytes(data)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n")
    state = tmp_path / "state"
    journal = state / "checkpoints" / app.job_id / f"{hashlib.sha256(data).hexdigest()}.jsonl"
    journal.parent.mkdir(parents=True)
    journal.symlink_to(victim)
    done = subprocess.run([sys.executable, "-m", "uploader", "upload", str(path), *app.flags, "--state-dir",
                           str(state), "--records-per-call", "2"], env=sandbox.env, capture_output=True, text=True,
                          timeout=60)
    assert victim.read_bytes() == b"precious\n", "the uploader wrote through a link"
    assert done.returncode == 0, outcome(done)
    assert_clean(done, app)
    assert "symbolic link" in done.stdout + done.stderr
    from test_run import records_at

    assert records_at(sandbox, app.job_id) == file_records(data)
    assert journal.exists() and not journal.is_symlink()  # the link set aside, a real journal in its place


def test_upload_refuses_a_linked_checkpoint_folder_and_sends_nothing(new_app, sandbox, tmp_path: Path) -> None:  # noqa: ANN001
    app = new_app()
    path = tmp_path / "r.csv"
    path.write_bytes(resignation_csv(5))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    state = tmp_path / "state"
    (state / "checkpoints").mkdir(parents=True)
    (state / "checkpoints" / app.job_id).symlink_to(elsewhere, target_is_directory=True)
    done = subprocess.run([sys.executable, "-m", "uploader", "upload", str(path), *app.flags, "--state-dir",
                           str(state), "--records-per-call", "2"], env=sandbox.env, capture_output=True, text=True,
                          timeout=60)
    assert list(elsewhere.iterdir()) == [], "the uploader wrote through a linked folder"
    assert done.returncode == 1, outcome(done)
    assert_clean(done, app)
    assert f"checkpoints/{app.job_id}" in done.stdout + done.stderr and "nothing was sent" in done.stdout + done.stderr
    assert uploads(sandbox, app.job_id) == 0


# -- break 2: nothing is sent before its checkpoint can be written -------------------------------------------

def _refuse_checkpoints(zone: Zone, job_id: str, data: bytes) -> None:
    """Make the job's own checkpoint location refuse writes while state/ as a whole accepts them."""
    if zone.kind == "folder":
        zone.put(f"state/{job_id}", b"")  # a file where the job's checkpoint folder belongs
    else:
        path = f"state/{job_id}/{hashlib.sha256(data).hexdigest()}.json"
        zone.put(path, json.dumps(checkpoint_record(job_id, data, 0)).encode())
        zone.container.get_blob_client(path).acquire_lease(lease_duration=-1)  # writes without the lease fail


def test_a_checkpoint_location_that_refuses_writes_sends_nothing(zone: Zone, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    data = resignation_csv(12)
    zone.put("incoming/departures/a.csv", data)
    _refuse_checkpoints(zone, app.job_id, data)
    env = job_env(sandbox, app, zone, [connector(app.job_id, "departures/*.csv")], UPLOADER_RECORDS_PER_CALL="5")
    for _ in range(2):  # before: every run sent the first chunk again
        done = run_job(env)
        assert done.returncode == 1, outcome(done)
        assert_clean(done, app)
        assert summary(done)["files_failed"] == 1
        assert f"state/{app.job_id}/" in done.stdout + done.stderr and "nothing was sent" in done.stdout + done.stderr
    assert uploads(sandbox, app.job_id) == 0, "a chunk left without a checkpoint to record it"
    assert zone.read("incoming/departures/a.csv") == data


def test_upload_with_a_checkpoint_folder_that_refuses_writes_sends_nothing(new_app, sandbox, tmp_path: Path) -> None:  # noqa: ANN001
    app = new_app()
    path = tmp_path / "r.csv"
    path.write_bytes(resignation_csv(6))
    state = tmp_path / "state"
    (state / "checkpoints").mkdir(parents=True)
    (state / "checkpoints" / app.job_id).write_bytes(b"")  # the state dir is writable; the job's folder is not
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "uploader", "upload", str(path), *app.flags, "--state-dir",
                               str(state), "--records-per-call", "2"], env=sandbox.env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 1, outcome(done)
        assert_clean(done, app)
        assert f"checkpoints/{app.job_id}" in done.stdout + done.stderr
    assert uploads(sandbox, app.job_id) == 0


# -- break 3: settled files only -----------------------------------------------------------------------------

def test_a_writer_that_pauses_is_never_sent_half_a_file(zone: Zone, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    data = resignation_csv(20)
    half = data[:data.index(b"\n", len(data) // 2) + 1]
    zone.put("incoming/departures/a.csv", half)  # the writer pauses here
    env = job_env(sandbox, app, zone, [connector(app.job_id, "departures/*.csv")], UPLOADER_SETTLE_SECONDS="4")
    done = run_job(env)
    assert done.returncode == 0, outcome(done)
    assert_clean(done, app)
    line = summary(done)
    assert line["files_settling"] == 1 and line["files_sent"] == 0, outcome(done)
    assert "still being written" in done.stdout + done.stderr
    # The closing line says how many wait and when they can be taken, never "everything was sent" (issue 24).
    out = done.stdout + done.stderr
    assert "everything was sent" not in out and "exit 0: everything taken was sent" in out, out[-2000:]
    assert "1 file(s) still settling (changed less than 4 s ago) wait in incoming/: they have been unchanged for " \
           "4 s at " in out and "the first run after that takes them" in out, out[-2000:]
    settles_at = dt.datetime.fromisoformat(line["settles_at"].replace("Z", "+00:00"))
    assert -dt.timedelta(seconds=1) < settles_at - dt.datetime.now(dt.UTC) <= dt.timedelta(seconds=5)
    assert uploads(sandbox, app.job_id) == 0 and zone.paths("processed/") == []
    zone.put("incoming/departures/a.csv", data)  # ... and writes the rest
    time.sleep(5)
    done = run_job(env)
    assert done.returncode == 0, outcome(done)
    from test_run import records_at

    assert records_at(sandbox, app.job_id) == file_records(data), "records lost or sent twice"
    assert zone.paths("processed/") == [today_prefix() + "departures/a.csv"]


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "86401", "soon"])
def test_settle_seconds_is_checked(value: str) -> None:
    env = job_env(None, None, None, [connector("e081f4f4-3831-48d6-a7bb-3fcfab158145", "*.csv")],
                  UPLOADER_SETTLE_SECONDS=value)
    done = run_job(env, timeout=30)
    assert done.returncode == 2, outcome(done)
    assert "UPLOADER_SETTLE_SECONDS" in done.stderr and "Traceback" not in done.stderr


# -- break 15: filing under processed/ is idempotent ----------------------------------------------------------

def test_a_blob_run_that_died_after_the_copy_leaves_one_copy(blob_zone: Zone, sandbox, new_app) -> None:  # noqa: ANN001
    """The crashed run sent the file, wrote its move journal, copied it to processed/ and died with its lease held;
    the next run takes the file over when the lease lapses and files it where the journal says: one copy."""
    app = new_app()
    data = resignation_csv(4)
    src = "incoming/departures/a.csv"
    blob_zone.put(src, data)
    etag = blob_zone.container.get_blob_client(src).get_blob_properties().etag.strip('"')
    dst = today_prefix() + "departures/a.csv"
    blob_zone.put(dst, data)  # the copy the crashed run made
    record = checkpoint_record(app.job_id, data, 4, completed_at=iso(dt.datetime.now(dt.UTC)),
                               source=f"{src}@{etag}")
    blob_zone.write_json(f"state/{app.job_id}/{record['sha256']}.json", record)
    blob_zone.write_json(move_journal(src, etag), {"src": src, "dst": dst, "etag": etag, "at": record["updated_at"]})
    # the dead run's lease (15 s, the shortest Blob storage grants), lapsing in 5 s as if it had been taken 10 s ago
    blob_zone.container.get_blob_client(src).acquire_lease(lease_duration=15).break_lease(lease_break_period=5)
    done = run_job(job_env(sandbox, app, blob_zone, [connector(app.job_id, "departures/*.csv")]), timeout=120)
    assert done.returncode == 0, outcome(done)
    assert_clean(done, app)
    assert blob_zone.paths("processed/") == [dst], "a second copy was filed"
    assert blob_zone.paths("incoming/") == [] and blob_zone.paths("state/moves/") == []
    assert uploads(sandbox, app.job_id) == 0  # it was sent by the run that died: not again


# -- break 12: globs match in linear time ----------------------------------------------------------------------

def test_backtracking_globs_do_not_stall_the_job(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    zone = Zone("folder", tmp_path, None)
    for suffix in ("a", "b", "c"):
        zone.put("incoming/" + "-" * 196 + f".{suffix}", b"")  # before: 51 s for these three names
    data = resignation_csv(3)
    zone.put("incoming/2026-11-30-hr-export-1.csv", data)
    started = time.monotonic()
    done = run_job(job_env(sandbox, app, zone, [connector(app.job_id, "*-*-*-*-*-*.csv")]), timeout=120)
    assert time.monotonic() - started < 20, "matching file names took too long"
    assert done.returncode == 0, outcome(done)
    line = summary(done)
    assert line["files_sent"] == 1 and line["files_unmatched"] == 3
