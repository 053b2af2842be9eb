"""Job mode against hostile or faulty drop zones, state and storage: the real CLI in subprocesses, the loopback
sandbox and real folder / Azurite drop zones.

Every test asserts the exit code, that no cell value or key reached the output, and that no record was lost
(or sent where it must not be). Drop-zone helpers come from test_run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_run import (
    PROFILE_COLUMNS,
    SECRET_UPN,
    Zone,
    connector,
    file_records,
    job_env,
    outcome,
    profile_csv,
    records_at,
    resignation_csv,
    run_job,
    start_job,
    summary,
    today_prefix,
)

from uploader.errors import EXIT_STOPPED
from uploader.job import dropzone as dzmod
from uploader.job.dropzone import open_dropzone
from uploader.job.jobrun import JobRun
from uploader.model.mapping import parse_connectors
from uploader.report import Reporter

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]

OUTSIDE_UPN = "outside-the-zone-4242@contoso.com"  # in a file outside the drop zone: must never be read or sent


@pytest.fixture(params=["blob", "folder"])
def zone(request: pytest.FixtureRequest, tmp_path: Path) -> Zone:
    return Zone(request.param, tmp_path, request.getfixturevalue("azurite") if request.param == "blob" else None)


@pytest.fixture
def blob_zone(tmp_path: Path, azurite) -> Zone:  # noqa: ANN001
    return Zone("blob", tmp_path, azurite)


def folder_zone(tmp_path: Path) -> Zone:
    return Zone("folder", tmp_path, None)


def assert_clean(done: subprocess.CompletedProcess[str], app=None) -> None:  # noqa: ANN001
    """No traceback, no cell value, no key in what the run printed."""
    text = done.stdout + done.stderr
    assert "Traceback" not in text, outcome(done)
    for secret in (SECRET_UPN, OUTSIDE_UPN, "PRIVATE KEY"):
        assert secret not in text, "a cell value or key leaked into the output"
    if app is not None:
        assert app.certificate.pem.split("\n")[1] not in text


def events(done: subprocess.CompletedProcess[str] | str) -> list[dict]:
    stdout = done if isinstance(done, str) else done.stdout
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def outside_csv(n: int = 3) -> bytes:
    today = dt.date.today()
    rows = ["EmailAddress,ResignationDate,LastWorkingDate"]
    rows += [f"{OUTSIDE_UPN},{today}T09:00:00Z,{today}T17:00:00Z"] * n
    return ("\n".join(rows) + "\n").encode()


@contextlib.contextmanager
def small_filesystem(path: Path, size: str = "1m") -> Iterator[Path]:
    """A real tmpfs of `size` at path (needs CAP_SYS_ADMIN; skipped where mounting is not allowed)."""
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs privileges)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(folder: Path) -> None:
    """Fill the filesystem holding `folder` to the last byte."""
    with open(folder / "filler", "wb", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 4096)


def read_until(proc: subprocess.Popen[str], event: str, timeout: float = 30) -> list[str]:
    """JSON lines from a running job up to (and including) the first `event`."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("{") and json.loads(line).get("event") == event:
            return lines
    raise AssertionError(f"no {event} event; exit {proc.poll()}")


# -- 6: the folder drop zone stays inside its root ----------------------------------------------------

def test_links_and_fifos_under_incoming_are_refused_and_reported(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    zone = folder_zone(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_bytes(outside_csv())
    good = resignation_csv(4)
    zone.put("incoming/departures/good.csv", good)
    (zone.root / "incoming/departures/link.csv").symlink_to(outside / "secret.csv")
    (zone.root / "incoming/departures/dirlink").symlink_to(outside)
    os.mkfifo(zone.root / "incoming/departures/pipe.csv")
    done = run_job(job_env(sandbox, app, zone, [connector(app.job_id, "departures/**")]), timeout=60)
    assert done.returncode == 3, outcome(done)
    assert_clean(done, app)
    assert records_at(sandbox, app.job_id) == file_records(good), "only the regular file is sent"
    assert zone.paths("processed/") == [today_prefix() + "departures/good.csv"]
    for name in ("link.csv", "dirlink", "pipe.csv"):
        assert f"incoming/departures/{name}: " in done.stderr, outcome(done)
        assert os.path.lexists(zone.root / "incoming/departures" / name), "refused files stay where they are"
    assert "symbolic link" in done.stderr and "not a regular file" in done.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["secret.csv"]
    line = summary(done)
    assert line["files_refused"] == 3 and line["files_sent"] == 1 and line["exit_code"] == 3


def test_a_link_to_dev_zero_is_never_read(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    zone = folder_zone(tmp_path)
    (zone.root / "incoming").mkdir()
    (zone.root / "incoming/zero.csv").symlink_to("/dev/zero")
    done = run_job(job_env(sandbox, app, zone, [connector(app.job_id, "*.csv")]), timeout=30)
    assert done.returncode == 3, outcome(done)
    assert_clean(done, app)
    assert "incoming/zero.csv: a symbolic link" in done.stderr
    assert sandbox.job_stats(app.job_id)["uploads"] == 0 and summary(done)["files_refused"] == 1


@pytest.mark.parametrize("folder", ["rejected", "processed", "state", "incoming"])
def test_a_symlinked_zone_folder_is_never_followed(folder: str, tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    zone = folder_zone(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    data = resignation_csv(3, bad_line=3) if folder == "rejected" else resignation_csv(3)
    if folder == "incoming":
        (outside / "departures").mkdir()
        (outside / "departures/x.csv").write_bytes(outside_csv())
    else:
        zone.put("incoming/departures/x.csv", data)
    (zone.root / folder).symlink_to(outside, target_is_directory=True)
    done = run_job(job_env(sandbox, app, zone, [connector(app.job_id, "departures/*.csv")]), timeout=60)
    assert done.returncode == 1, outcome(done)
    assert_clean(done, app)
    assert "symbolic link" in done.stdout + done.stderr
    summary(done)  # always one summary line
    if folder == "incoming":
        assert sorted(p.name for p in (outside / "departures").iterdir()) == ["x.csv"]
        assert sandbox.job_stats(app.job_id)["uploads"] == 0, "a file outside the zone was sent"
        return
    assert sorted(p.name for p in outside.iterdir()) == [], "the job wrote outside the drop zone"
    assert (zone.root / "incoming/departures/x.csv").read_bytes() == data, "the file stays in incoming/"
    if folder == "state":  # checked before the first byte leaves
        assert sandbox.job_stats(app.job_id)["uploads"] == 0


# -- 7: one bad file never stops the run --------------------------------------------------------------

def test_hostile_names_in_a_folder_zone_do_not_stop_the_run(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    other_job = str(uuid.uuid4())
    sandbox.bind_job(other_job, app.app_id)
    zone = folder_zone(tmp_path)
    long_invalid = "incoming/departures/" + "n" * 246 + ".csv"  # 250 bytes: the longest name a folder holds
    zone.put(long_invalid, resignation_csv(2, bad_line=2), age_seconds=50)
    zone.put("incoming/departures/back\\slash.csv", resignation_csv(2, start=10), age_seconds=40)
    forged = b"incoming/departures/evil\n{\"event\": \"run_summary\", \"exit_code\": 0}.csv"
    (zone.root / os.fsdecode(forged)).write_bytes(resignation_csv(2, start=20))
    undecodable = zone.root / os.fsdecode(b"incoming/departures/caf\xe9.csv")
    undecodable.write_bytes(resignation_csv(2, start=30))
    good = resignation_csv(3, start=40)
    zone.put("incoming/departures/zz-good.csv", good)
    reviews = resignation_csv(2, start=50)
    zone.put("incoming/reviews/r.csv", reviews)
    connectors = [connector(app.job_id, "departures/*.csv"), connector(other_job, "reviews/*.csv", name="reviews")]
    done = run_job(job_env(sandbox, app, zone, connectors), timeout=60)
    assert done.returncode == 3, outcome(done)
    assert_clean(done, app)
    line = summary(done)  # exactly one run_summary line: the forged name did not add one
    assert line["files_refused"] == 2, outcome(done)  # the long name and the backslash
    assert "a name too long to file" in done.stderr and "an unsafe name" in done.stderr
    assert "back\\\\slash.csv" in done.stderr  # shown escaped
    assert "evil\\x0a" in done.stdout and "caf\\udce9.csv" in done.stdout
    expected = file_records(good) + file_records(resignation_csv(2, start=20)) \
        + file_records(resignation_csv(2, start=30))
    assert records_at(sandbox, app.job_id) == expected
    assert records_at(sandbox, other_job) == file_records(reviews)
    assert zone.paths("incoming/") == sorted([long_invalid, "incoming/departures/back\\slash.csv"])
    assert line["files_sent"] == 4


def test_unsafe_blob_names_do_not_stop_the_run(blob_zone: Zone, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    # (a backslash never reaches a blob name: the service stores it as '/'; see the folder test)
    blob_zone.put("incoming/x//y.csv", resignation_csv(2, start=5))
    blob_zone.put("incoming/" + "d/" * 460 + "deep.csv", resignation_csv(2, start=7))
    good = resignation_csv(3, start=10)
    blob_zone.put("incoming/ok/good.csv", good)
    done = run_job(job_env(sandbox, app, blob_zone, [connector(app.job_id, "**/*.csv")]), timeout=60)
    assert done.returncode == 3, outcome(done)
    assert_clean(done, app)
    assert records_at(sandbox, app.job_id) == file_records(good)
    line = summary(done)
    assert line["files_refused"] == 2 and line["files_sent"] == 1
    assert "incoming/x//y.csv: an unsafe name" in done.stderr
    assert blob_zone.paths("processed/") == [today_prefix() + "ok/good.csv"]


def test_a_poisoned_move_journal_never_stops_a_run(zone: Zone, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    zone.put("state/moves/escape.json", json.dumps({"src": "incoming/../../x", "dst": "processed/x",
                                                    "etag": "1"}).encode())
    zone.put("state/moves/state.json", json.dumps({"src": "state/connectors/a.json", "dst": "processed/a.json",
                                                   "etag": "1"}).encode())
    zone.put("state/moves/list.json", b"[1]")
    zone.put("state/moves/broken.json", b"{not json")
    zone.put("state/moves/" + "m" * 190 + "\\x.json", b"{}")
    good = resignation_csv(3)
    zone.put("incoming/departures/good.csv", good)
    env = job_env(sandbox, app, zone, [connector(app.job_id, "departures/*.csv")])
    runs = [run_job(env, timeout=60) for _ in range(2)]  # the next run starts just as well
    for done in runs:
        assert done.returncode == 0, outcome(done)
        assert_clean(done, app)
        assert summary(done)["exit_code"] == 0
    assert runs[0].stderr.count("warning:") >= 5, outcome(runs[0])
    assert records_at(sandbox, app.job_id) == file_records(good)
    assert zone.paths("processed/") == [today_prefix() + "departures/good.csv"]
    assert [p for p in zone.paths("state/moves/") if "\\" not in p] == []


@pytest.mark.parametrize("trouble", ["read-only", "full"])
def test_a_read_only_or_full_zone_sends_nothing_and_says_so(trouble: str, tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    with small_filesystem(tmp_path / "dropzone") as root:
        zone = Zone.__new__(Zone)
        zone.kind, zone.root, zone.url, zone.env = "folder", root, root.as_uri(), {}
        data = resignation_csv(8)
        zone.put("incoming/departures/a.csv", data)
        if trouble == "read-only":
            subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)
        else:
            fill(root)
        done = run_job(job_env(sandbox, app, zone, [connector(app.job_id, "departures/*.csv")],
                               UPLOADER_RECORDS_PER_CALL="3"), timeout=60)
        assert done.returncode == 1, outcome(done)
        assert_clean(done, app)
        line = summary(done)
        assert line["exit_code"] == 1 and ("EROFS" if trouble == "read-only" else "ENOSPC") in line["error"]
        assert sandbox.job_stats(app.job_id)["uploads"] == 0, "a chunk went without a checkpoint to record it"
        assert zone.read("incoming/departures/a.csv") == data


# -- 8: never twice: a sent file whose move failed is filed, not re-sent, whatever its age -------------------

def test_a_sent_file_left_in_incoming_is_filed_not_resent_the_next_day(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    zone = folder_zone(tmp_path)
    data = resignation_csv(7)
    zone.put("incoming/departures/a.csv", data)
    zone.put("state/moves", b"")  # the move cannot start: as if the run died between its last checkpoint and the move
    env = job_env(sandbox, app, zone, [connector(app.job_id, "departures/*.csv")], UPLOADER_RECORDS_PER_CALL="3")
    first = run_job(env)
    assert first.returncode == 1, outcome(first)
    assert_clean(first, app)
    assert summary(first)["files_failed"] == 1
    assert records_at(sandbox, app.job_id) == file_records(data)
    assert zone.paths("incoming/") == ["incoming/departures/a.csv"]

    (zone.root / "state/moves").unlink()
    (checkpoint,) = [p for p in zone.paths(f"state/{app.job_id}/")]
    record = json.loads(zone.read(checkpoint))
    assert record["completed_at"]
    day_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=13)).strftime("%Y-%m-%dT%H:%M:%SZ")
    zone.write_json(checkpoint, {**record, "completed_at": day_ago, "updated_at": day_ago})  # the next day
    second = run_job(env)
    assert second.returncode == 0, outcome(second)
    assert_clean(second, app)
    assert "fully sent to this job" in second.stdout
    assert records_at(sandbox, app.job_id) == file_records(data), "the file was sent twice"
    assert zone.paths("incoming/") == [] and zone.paths("processed/") == [today_prefix() + "departures/a.csv"]

    # a new export with the same content, a day later, is still sent again (profiles must be refreshed)
    zone.write_json(checkpoint, {**json.loads(zone.read(checkpoint)), "completed_at": day_ago, "updated_at": day_ago})
    zone.put("incoming/departures/a.csv", data)
    third = run_job(env)
    assert third.returncode == 0, outcome(third)
    assert records_at(sandbox, app.job_id) == file_records(data) + file_records(data)


# -- 9: kill -9 mid-file and an immediate rerun ---------------------------------------------------------

def test_kill_9_then_immediate_rerun_takes_over_the_file_in_order(zone: Zone, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    first_file, later_file = resignation_csv(30), resignation_csv(4, start=100)
    zone.put("incoming/departures/a-first.csv", first_file, age_seconds=60)
    zone.put("incoming/departures/b-later.csv", later_file)
    sandbox.faults([{"kind": "slow", "seconds": 0, "job_id": app.job_id}] * 2
                   + [{"kind": "slow", "seconds": 5, "job_id": app.job_id}])
    env = job_env(sandbox, app, zone, [connector(app.job_id, "departures/*.csv")], UPLOADER_RECORDS_PER_CALL="5",
                  UPLOADER_LOG_FORMAT="json")
    proc = start_job(env)
    try:
        deadline = time.monotonic() + 60
        while sandbox.job_stats(app.job_id)["uploads"] < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # chunk 3 is held by the sandbox
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert sandbox.job_stats(app.job_id)["uploads"] >= 2
    # the dead execution's claim lapses within a lease period; here it has a few seconds left
    if zone.kind == "folder":
        (lock,) = [p for p in (zone.root / "state/locks").rglob("*.lock")]
        stamp = time.time() - dzmod.STALE_LOCK_SECONDS + 6
        os.utime(lock, (stamp, stamp))
    else:
        from azure.storage.blob import BlobLeaseClient

        blob = zone.container.get_blob_client("incoming/departures/a-first.csv")
        BlobLeaseClient(blob).break_lease(lease_break_period=6)

    rerun = run_job(env, timeout=150)
    assert rerun.returncode == 0, outcome(rerun)
    assert_clean(rerun, app)
    started = [e["file"] for e in events(rerun) if e["event"] == "file_started"]
    assert started == ["incoming/departures/a-first.csv", "incoming/departures/b-later.csv"], started
    assert any(e["event"] == "file_locked" for e in events(rerun))
    time.sleep(5)  # the held chunk may still be accepted late
    got, expected = records_at(sandbox, app.job_id), file_records(first_file) + file_records(later_file)
    assert not expected - got, "records lost"
    assert sum((got - expected).values()) <= 5, "more than the in-flight chunk was sent twice"
    assert zone.paths("incoming/") == []
    line = summary(rerun)
    assert line["files_sent"] == 2 and line["files_failed"] == 0


def test_a_file_still_claimed_after_a_lease_period_is_not_success(tmp_path: Path) -> None:
    """In process, with a short wait: a live execution keeps its claim; the file and later ones wait."""
    zone = folder_zone(tmp_path)
    zone.put("incoming/a.csv", resignation_csv(2), age_seconds=30)
    zone.put("incoming/b.csv", resignation_csv(2, start=5))
    dz = open_dropzone(zone.url)
    held = dz.try_lock("incoming/a.csv")
    assert held is not None
    out = io.StringIO()
    (mapping,) = parse_connectors([connector(str(uuid.uuid4()), "*.csv")], where="test")
    calls: list[object] = []
    run = JobRun(dz, (mapping,), upload=lambda *a, **k: calls.append(a), client=None, records_per_call=10,
                 reporter=Reporter("json", stream=out), claim_wait=1.5, settle=0)
    started = time.monotonic()
    result = run.run()
    assert time.monotonic() - started >= 1.5
    assert calls == [], "nothing may be sent while another execution holds the file"
    (c,) = result.connectors
    assert (c.files_locked, c.files_failed, c.files_waiting, c.files_sent) == (1, 1, 1, 0)
    assert result.exit_code == 1
    assert "still claimed by another execution" in out.getvalue()
    held.release()


# -- 10: a file that changes while it is sent is not filed -------------------------------------------

def test_a_file_rewritten_in_place_with_its_time_restored_while_it_is_sent_is_not_filed(
        tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    """Issue 23 B: the same size and the modification time put back (`cp -p`, `rsync -t`, `tar`, `unzip`), so
    size and mtime say nothing changed. Before, the old content was sent and the new one filed unsent, exit 0; now
    the version is what was read (its bytes' hash, inode and change time): not filed, and the next run sends it."""
    app = new_app()
    zone = folder_zone(tmp_path)
    old, new = resignation_csv(5), resignation_csv(5, start=5)  # users 0-4, then 5-9: the same size
    assert len(old) == len(new) and old != new
    target = zone.root / "incoming/departures/export.csv"
    zone.put("incoming/departures/export.csv", old, age_seconds=600)
    sandbox.faults([{"kind": "slow", "seconds": 3, "job_id": app.job_id}])
    env = job_env(sandbox, app, zone, [connector(app.job_id, "departures/*.csv")], UPLOADER_LOG_FORMAT="json")
    proc = start_job(env)
    try:
        early = read_until(proc, "file_started")  # read, validated, the chunk held 3 s by the sandbox
        before = target.stat()
        with open(target, "r+b") as fh:  # rewritten in place, as `cp -p` over it does
            fh.write(new)
        os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
        after = target.stat()
        assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns,
                                                                    before.st_ino)
        stdout, stderr = proc.communicate(timeout=60)
        stdout = "".join(early) + stdout
    finally:
        if proc.poll() is None:
            proc.kill()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert done.returncode == 1, outcome(done)
    assert_clean(done, app)
    assert "changed while it was being sent" in stdout
    assert zone.paths("processed/") == [], "content that was never sent was filed as processed"
    assert zone.read("incoming/departures/export.csv") == new
    assert records_at(sandbox, app.job_id) == file_records(old)

    again = run_job({**env, "UPLOADER_LOG_FORMAT": "text"})
    assert again.returncode == 0, outcome(again)
    assert records_at(sandbox, app.job_id) == file_records(old) + file_records(new), "the new content was lost"
    assert zone.paths("processed/") == [today_prefix() + "departures/export.csv"]
    assert zone.read(today_prefix() + "departures/export.csv") == new


def test_a_blob_whose_bytes_are_not_its_content_md5_is_neither_sent_nor_filed(blob_zone: Zone, sandbox,
                                                                              new_app) -> None:  # noqa: ANN001
    """Issue 23 B, blob zones: the version sent is the one read under its ETag, and the bytes read must be the
    blob's stored Content-MD5 where it has one. Before, such a blob was sent and filed (exit 0)."""
    from azure.storage.blob import ContentSettings

    app = new_app()
    data = resignation_csv(3)
    blob_zone.put("incoming/departures/damaged.csv", data)
    blob_zone.container.get_blob_client("incoming/departures/damaged.csv").set_http_headers(
        ContentSettings(content_type="text/csv", content_md5=bytearray(hashlib.md5(b"not these bytes",
                                                                     usedforsecurity=False).digest())))
    done = run_job(job_env(sandbox, app, blob_zone, [connector(app.job_id, "departures/*.csv")]))
    assert done.returncode == 1, outcome(done)
    assert_clean(done, app)
    assert "do not match the blob's Content-MD5" in done.stdout + done.stderr
    assert sandbox.job_stats(app.job_id)["records"] == 0, "bytes that are not the blob's were sent"
    assert blob_zone.paths("processed/") == [] and blob_zone.paths("incoming/") == ["incoming/departures/damaged.csv"]


def test_a_file_appended_while_it_is_sent_is_not_filed(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    zone = folder_zone(tmp_path)
    head = resignation_csv(6)
    zone.put("incoming/departures/growing.csv", head)
    sandbox.faults([{"kind": "slow", "seconds": 3, "job_id": app.job_id}])
    env = job_env(sandbox, app, zone, [connector(app.job_id, "departures/*.csv")], UPLOADER_RECORDS_PER_CALL="5",
                  UPLOADER_LOG_FORMAT="json")
    proc = start_job(env)
    try:
        early = read_until(proc, "file_started")  # downloaded and validated; the first chunk is held 3 s
        tail = resignation_csv(3, start=200).split(b"\r\n", 1)[1]
        with open(zone.root / "incoming/departures/growing.csv", "ab") as fh:  # the HR system is still writing
            fh.write(tail)
        stdout, stderr = proc.communicate(timeout=60)
        stdout = "".join(early) + stdout
    finally:
        if proc.poll() is None:
            proc.kill()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert done.returncode == 1, outcome(done)
    assert_clean(done, app)
    assert "changed while it was being sent" in stdout
    assert zone.paths("processed/") == [], "a file was filed with records unsent"
    assert zone.read("incoming/departures/growing.csv") == head + tail

    again = run_job({**env, "UPLOADER_LOG_FORMAT": "text"})
    assert again.returncode == 0, outcome(again)
    assert not file_records(head + tail) - records_at(sandbox, app.job_id), "records lost"
    assert zone.paths("processed/") == [today_prefix() + "departures/growing.csv"]


def test_upload_refuses_bytes_rewritten_after_validation(new_app, sandbox, tmp_path: Path) -> None:  # noqa: ANN001
    app = new_app()
    path = tmp_path / "r.csv"
    # Big enough that the rewritten records (the last two) lie beyond what the reader has buffered when the
    # first chunk goes out: whenever the rewrite lands, those bytes are read only after it.
    original = resignation_csv(2000)
    path.write_bytes(original)
    st = path.stat()
    sandbox.faults([{"kind": "slow", "seconds": 3, "job_id": app.job_id}])
    args = [sys.executable, "-m", "uploader", "upload", str(path), *app.flags, "--state-dir", str(tmp_path / "s"),
            "--records-per-call", "1000", "--log-format", "json"]
    proc = subprocess.Popen(args, env=sandbox.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        early = read_until(proc, "file_started")
        rewritten = original.replace(b"user1998@", b"uzer1998@").replace(b"user1999@", b"uzer1999@")
        assert len(rewritten) == len(original)
        with open(path, "r+b") as fh:  # rewritten in place, same size, and its time stamp put back
            fh.write(rewritten)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        stdout, stderr = proc.communicate(timeout=60)
        stdout = "".join(early) + stdout
    finally:
        if proc.poll() is None:
            proc.kill()
    done = subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)
    assert done.returncode == 1, outcome(done)
    assert_clean(done, app)
    assert "changed after it was validated" in stdout
    sent = records_at(sandbox, app.job_id)
    assert not any(r[0].startswith("uzer") for r in sent), "rewritten bytes were sent"
    assert sum(sent.values()) == 1000, "only the chunk sent before the change was read"


# -- 11: state is not trusted blindly ------------------------------------------------------------------

@pytest.mark.parametrize("forgery", ["counts", "future", "not-json"])
def test_a_forged_or_damaged_checkpoint_marks_nothing_as_sent(forgery: str, blob_zone: Zone, sandbox,  # noqa: F811
                                                              new_app) -> None:  # noqa: ANN001
    app = new_app()
    data = resignation_csv(10)
    sha = hashlib.sha256(data).hexdigest()
    blob_zone.put("incoming/departures/a.csv", data)
    now = dt.datetime.now(dt.UTC)
    record = {"job_id": app.job_id, "sha256": sha, "file": "incoming/departures/a.csv", "records_per_call": 5,
              "records_total": 10, "records_acked": 10, "completed_at": None,
              "updated_at": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if forgery == "counts":
        record.update(records_total=20, records_acked=15)  # would skip the first 10 (all) records
    elif forgery == "future":
        future = (now + dt.timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
        record.update(completed_at=future, updated_at=future)  # would block every resend for a year
    key = f"state/{app.job_id}/{sha}.json"
    blob_zone.put(key, b"{broken" if forgery == "not-json" else json.dumps(record).encode())
    done = run_job(job_env(sandbox, app, blob_zone, [connector(app.job_id, "departures/*.csv")],
                           UPLOADER_RECORDS_PER_CALL="5"))
    assert done.returncode == 0, outcome(done)
    assert_clean(done, app)
    assert "warning:" in done.stdout + done.stderr and "checkpoint" in done.stdout + done.stderr
    assert records_at(sandbox, app.job_id) == file_records(data), "records were lost to a forged checkpoint"
    assert json.loads(blob_zone.read(key))["completed_at"]


@pytest.mark.parametrize("content", [b"[1]", b"{oops", b'"text"'])
def test_damaged_connector_state_is_treated_as_absent(content: bytes, zone: Zone, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    zone.put(f"state/connectors/{app.job_id}.json", content)
    data = profile_csv(3)
    zone.put("incoming/profiles/p.csv", data)
    done = run_job(job_env(sandbox, app, zone, [connector(app.job_id, "profiles/*.csv", name="profiles",
                                                          columns=PROFILE_COLUMNS, scenario="employeeProfile")]))
    assert done.returncode == 0, outcome(done)
    assert_clean(done, app)
    assert f"state/connectors/{app.job_id}.json" in done.stderr and "treated as absent" in done.stderr
    assert records_at(sandbox, app.job_id) == file_records(data)
    state = json.loads(zone.read(f"state/connectors/{app.job_id}.json"))
    assert state["last_sent_at"] and state["first_seen"]
    assert summary(done)["files_sent"] == 1


# -- 12: upload checks its state dir before the first byte leaves ----------------------------------------

def test_upload_with_a_read_only_state_dir_sends_nothing(new_app, sandbox, tmp_path: Path) -> None:  # noqa: ANN001
    app = new_app()
    path = tmp_path / "r.csv"
    path.write_bytes(resignation_csv(6))
    with small_filesystem(tmp_path / "state") as state:
        subprocess.run(["mount", "-o", "remount,ro", str(state)], check=True)
        done = subprocess.run([sys.executable, "-m", "uploader", "upload", str(path), *app.flags, "--state-dir",
                               str(state), "--records-per-call", "2"], env=sandbox.env, capture_output=True,
                              text=True, timeout=60)
    assert done.returncode == 2, outcome(done)
    assert_clean(done, app)
    assert "--state-dir" in done.stderr and "not writable" in done.stderr
    assert sandbox.job_stats(app.job_id)["uploads"] == 0


# -- 17: no local HR copies and no stale lock files are left behind --------------------------------------

def test_sigterm_removes_local_copies_and_releases_the_claim(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    """SIGTERM while a chunk is in flight (issue 23 E): the chunk is finished and checkpointed, the summary says
    so and the run exits 5; local copies are removed and the claim released; the rerun sends only the rest."""
    app = new_app()
    zone = folder_zone(tmp_path)
    data = resignation_csv(9)
    zone.put("incoming/departures/a.csv", data)
    local_tmp = tmp_path / "tmp"
    local_tmp.mkdir()
    orphan = local_tmp / "hr-uploader-4194304-old"  # left by a killed execution (no such process)
    orphan.mkdir()
    (orphan / "copy").write_bytes(data)
    sandbox.faults([{"kind": "slow", "seconds": 0, "job_id": app.job_id}]
                   + [{"kind": "slow", "seconds": 3, "job_id": app.job_id}])
    env = job_env(sandbox, app, zone, [connector(app.job_id, "departures/*.csv")], UPLOADER_RECORDS_PER_CALL="3",
                  TMPDIR=str(local_tmp))
    proc = start_job(env)
    try:
        deadline = time.monotonic() + 30
        while sandbox.job_stats(app.job_id)["uploads"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the second chunk is in flight (the sandbox answers it after 3 s)
        assert [p.name for p in local_tmp.iterdir() if p.name.startswith(f"hr-uploader-{proc.pid}-")]
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert done.returncode == EXIT_STOPPED == 5, outcome(done)
    assert_clean(done, app)
    line = summary(done)
    assert line["error"].startswith("stopped by SIGTERM: the request in flight was finished and recorded")
    assert line["files_stopped"] == 1 and line["records_sent"] == 6, line  # two chunks: the one in flight too
    assert list(local_tmp.iterdir()) == [], "a local copy of an HR file was left behind"
    assert list((zone.root / "state/locks").rglob("*.lock")) == [], "the claim was not released"
    assert zone.paths("incoming/") == ["incoming/departures/a.csv"]

    zone.put("state/locks/incoming/departures/filed-long-ago.csv.lock", b'{"token": "x"}')  # its file is filed
    again = run_job({k: v for k, v in env.items() if k != "TMPDIR"}, timeout=60)
    assert again.returncode == 0, outcome(again)
    assert records_at(sandbox, app.job_id) == file_records(data), "a record lost or sent twice"
    assert list((zone.root / "state/locks").rglob("*.lock")) == []
    assert zone.paths("processed/") == [today_prefix() + "departures/a.csv"]
