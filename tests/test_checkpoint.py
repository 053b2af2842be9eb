"""Checkpoint decisions (the 12-hour window, resume) and the local store's atomic writes."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uploader.send.checkpoint import (
    SKIP_WINDOW,
    LocalCheckpointStore,
    StateUnreadable,
    check_record,
    checkpoint_key,
    decide,
    new_record,
    parse_iso,
    utc_iso,
)

NOW = dt.datetime(2026, 11, 22, 12, 0, 0, tzinfo=dt.UTC)
JOB = "e081f4f4-3831-48d6-a7bb-3fcfab158145"
SHA = "ab" * 32


def record(acked: int, total: int = 100, at: dt.datetime = NOW, completed: bool = False) -> dict:
    return new_record(JOB, SHA, "f.csv", 10, total, acked, at, completed=completed)


def test_no_record_sends_everything() -> None:
    assert decide(None, records_total=100, now=NOW).action == "send"
    assert decide(None, records_total=100, now=NOW).skip_records == 0


@given(age=st.timedeltas(min_value=dt.timedelta(0), max_value=SKIP_WINDOW - dt.timedelta(seconds=1)))
def test_completed_within_12_hours_is_skipped_unless_forced(age: dt.timedelta) -> None:
    rec = record(100, at=NOW - age, completed=True)
    assert decide(rec, records_total=100, now=NOW).action == "skip"
    forced = decide(rec, records_total=100, now=NOW, force=True)
    assert (forced.action, forced.skip_records) == ("send", 0)


@given(age=st.timedeltas(min_value=SKIP_WINDOW, max_value=dt.timedelta(days=400)))
def test_older_completions_never_block_a_resend(age: dt.timedelta) -> None:
    decision = decide(record(100, at=NOW - age, completed=True), records_total=100, now=NOW)
    assert (decision.action, decision.skip_records) == ("send", 0)


@given(acked=st.integers(min_value=1, max_value=99), age=st.timedeltas(
    min_value=dt.timedelta(0), max_value=SKIP_WINDOW - dt.timedelta(seconds=1)))
def test_interrupted_run_resumes_after_the_acknowledged_records(acked: int, age: dt.timedelta) -> None:
    for force in (False, True):
        decision = decide(record(acked, at=NOW - age), records_total=100, now=NOW, force=force)
        assert (decision.action, decision.skip_records) == ("resume", acked)


def test_interrupted_run_resumes_however_old() -> None:
    decision = decide(record(40, at=NOW - dt.timedelta(days=3)), records_total=100, now=NOW)
    assert (decision.action, decision.skip_records) == ("resume", 40)


@pytest.mark.parametrize("damaged", [
    {}, {"records_acked": "7", "updated_at": utc_iso(NOW)}, {"records_acked": 5, "updated_at": "yesterday"},
    {"records_acked": True, "updated_at": utc_iso(NOW)}, {"records_acked": -3, "updated_at": utc_iso(NOW)},
    {"completed_at": "garbage"}, [], "x",
])
def test_damaged_records_count_as_none(damaged: object) -> None:
    assert decide(damaged, records_total=100, now=NOW).action == "send"  # type: ignore[arg-type]


def test_resume_never_points_past_the_end() -> None:
    assert decide(record(500), records_total=100, now=NOW).skip_records == 100


def test_iso_round_trip() -> None:
    assert parse_iso(utc_iso(NOW)) == NOW
    assert utc_iso(NOW).endswith("Z")
    assert parse_iso("2026-11-22T12:00:00") == NOW  # naive means UTC
    assert parse_iso(None) is None


@pytest.mark.posix
def test_store_round_trip_is_atomic_and_private(tmp_path: Path) -> None:
    store = LocalCheckpointStore(tmp_path)
    key = checkpoint_key(JOB, SHA)
    assert store.load(key) is None
    store.save(key, record(10))
    store.save(key, record(20))
    assert store.load(key)["records_acked"] == 20
    folder = tmp_path / "checkpoints" / JOB
    assert [p.name for p in folder.iterdir()] == [f"{SHA}.jsonl"]
    store.save(key, record(100, completed=True))  # completion compacts the journal to one record
    assert [p.name for p in folder.iterdir()] == [f"{SHA}.jsonl"]  # no temp files left behind
    lines = [json.loads(x) for x in (folder / f"{SHA}.jsonl").read_text().splitlines() if x]
    assert len(lines) == 1 and lines[0]["sha256"] == SHA and lines[0]["completed_at"]
    assert (folder.stat().st_mode & 0o077) == 0


def test_store_sets_a_damaged_file_aside(tmp_path: Path) -> None:
    store = LocalCheckpointStore(tmp_path)
    key = checkpoint_key(JOB, SHA)
    path = tmp_path / "checkpoints" / JOB / f"{SHA}.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(StateUnreadable, match="set aside"):
        store.load(key)
    assert not path.exists() and len(list(path.parent.glob(f"{SHA}.jsonl.unreadable-*"))) == 1
    assert store.load(key) is None  # set aside: the next load finds no checkpoint


def test_store_survives_a_torn_write(tmp_path: Path) -> None:
    store = LocalCheckpointStore(tmp_path)
    key = checkpoint_key(JOB, SHA)
    store.save(key, record(10))
    path = tmp_path / "checkpoints" / JOB / f"{SHA}.jsonl"
    with open(path, "a") as fh:
        fh.write('\n{"records_acked": 2')  # a crash in the middle of a write
    assert store.load(key)["records_acked"] == 10
    store.save(key, record(30))  # the next record is not glued to the torn line
    assert store.load(key)["records_acked"] == 30


def test_store_failed_write_keeps_the_previous_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalCheckpointStore(tmp_path)
    key = checkpoint_key(JOB, SHA)
    store.save(key, record(10))

    def boom(src: str, dst: str, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        store.save(key, record(20, completed=True))
    monkeypatch.undo()
    assert store.load(key)["records_acked"] == 10
    assert len(list((tmp_path / "checkpoints" / JOB).iterdir())) == 1


@pytest.mark.parametrize("key", ["../x/" + SHA, JOB + "/../../etc", "a/b/c", "/abs", JOB])
def test_store_refuses_keys_that_escape_its_directory(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError):
        LocalCheckpointStore(tmp_path).load(key)


def test_the_very_same_file_sent_but_not_filed_is_skipped_whatever_its_age() -> None:
    """Job mode: a completed checkpoint of this path and version means "file it", not "send it again"."""
    done = new_record(JOB, SHA, "f.csv", 10, 100, 100, NOW - dt.timedelta(days=3), completed=True,
                      source="incoming/f.csv@1a-2b")
    assert decide(done, records_total=100, now=NOW, source="incoming/f.csv@1a-2b").action == "skip"
    # a new export of identical content (another version) after 12 hours is sent again, as before
    assert decide(done, records_total=100, now=NOW, source="incoming/f.csv@9f-2b").action == "send"
    assert decide(done, records_total=100, now=NOW).action == "send"


@pytest.mark.parametrize(("change", "why"), [
    ({"sha256": "cd" * 32}, "other content"),
    ({"job_id": "00000000-0000-0000-0000-000000000000"}, "another job"),
    ({"records_total": 1000}, "record counts"),
    ({"records_acked": 101}, "record counts"),
    ({"records_acked": -1}, "record counts"),
    ({"records_acked": True}, "record counts"),
    ({"records_acked": 50, "completed_at": utc_iso(NOW)}, "unacknowledged"),
    ({"updated_at": utc_iso(NOW + dt.timedelta(days=1))}, "future"),
    ({"completed_at": utc_iso(NOW + dt.timedelta(days=400)), "records_acked": 100}, "future"),
])
def test_a_record_that_does_not_fit_the_file_is_not_trusted(change: dict, why: str) -> None:
    forged = {**record(40), **change}
    trusted, problem = check_record(forged, job_id=JOB, sha256=SHA, records_total=100, now=NOW)
    assert trusted is None and why in problem


def test_a_consistent_record_is_trusted() -> None:
    for rec in (record(40), record(100, completed=True)):
        assert check_record(rec, job_id=JOB.upper(), sha256=SHA, records_total=100, now=NOW) == (rec, None)
    assert check_record(None, job_id=JOB, sha256=SHA, records_total=100, now=NOW) == (None, None)
    assert check_record([1], job_id=JOB, sha256=SHA, records_total=100, now=NOW) == (None, "not a JSON object")


# -- the one state reader (issue 18) ---------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "why"), [
    (b"[" * 60_000, "nested"),
    (b"[" * 100_000, "larger than"),
    (b'{"a": {"b": 1}}', "nested"),
    (b'{"a": [1]}', "nested"),
    (b"[1]", "not a JSON object"),
    (b'"text"', "not a JSON object"),
    (b"{broken", "not valid JSON"),
    (b'{"a": NaN}', "not valid JSON"),
    (b'{"a": ' + b"9" * 5001 + b"}", "not valid JSON"),
    (b'{"a": 1, "a": 2}', "not valid JSON"),
    (b'{"a": 1.5}', "fractional"),
    (b'{"a": 9007199254740993}', "out of range"),
    (b"\xff\xfe", "not UTF-8"),
    (b'{"a": "' + b"x" * (70 << 10) + b'"}', "larger than"),
    (b'{"completed_at": "0001-01-01T00:00:00+01:00"}', "before 2000"),
    (b'{"updated_at": "1999-12-31T23:59:59Z"}', "before 2000"),
    (b'{"last_sent_at": "2027-11-22T12:00:00Z"}', "future"),
    (b'{"first_seen": "yesterday"}', "not an ISO-8601 date"),
    (b'{"acquired_at": 5}', "not an ISO-8601 date"),
])
def test_the_state_reader_refuses_what_state_never_holds(data: bytes, why: str) -> None:
    from uploader.send.checkpoint import parse_state

    with pytest.raises(StateUnreadable, match=why):
        parse_state(data, now=NOW)


def test_the_state_reader_reads_every_record_the_program_writes() -> None:
    from uploader.send.checkpoint import parse_state

    for rec in (record(40), record(100, completed=True),
                new_record(JOB, SHA, "f.csv", 10, 100, 100, NOW, completed=True, source="incoming/a.csv@1-2"),
                {"job_id": JOB, "name": None, "first_seen": utc_iso(NOW), "last_sent_at": None},
                {"src": "incoming/a.csv", "dst": "processed/a.csv", "etag": "1", "at": utc_iso(NOW)},
                {"token": "ab", "host": "h", "pid": 1, "acquired_at": NOW.isoformat(timespec="seconds")}):
        assert parse_state(json.dumps(rec).encode(), now=NOW) == rec
    # a date a little ahead of this host's clock is another host's clock, not a forgery
    assert parse_state(json.dumps({"updated_at": utc_iso(NOW + dt.timedelta(hours=23))}).encode(), now=NOW)


def test_the_state_reader_is_linear_on_deep_input() -> None:
    import time

    from uploader.send.checkpoint import parse_state

    started = time.monotonic()
    for data in (b"[" * 60_000, b'"' + b"\\\"" * 30_000, b"{" + b'"a":1,' * 10_000):
        with pytest.raises(StateUnreadable):
            parse_state(data, now=NOW)
    assert time.monotonic() - started < 2


def test_a_long_journal_is_read_from_its_end(tmp_path: Path) -> None:
    store = LocalCheckpointStore(tmp_path, now=lambda: NOW)
    key = checkpoint_key(JOB, SHA)
    for acked in range(1, 400):  # ~120 KiB of journal: more than the tail that is read
        store.save(key, record(acked))
    assert (tmp_path / "checkpoints" / JOB / f"{SHA}.jsonl").stat().st_size > 64 << 10
    assert store.load(key)["records_acked"] == 399


def test_the_store_never_writes_through_a_hard_link(tmp_path: Path) -> None:
    store = LocalCheckpointStore(tmp_path, now=lambda: NOW)
    key = checkpoint_key(JOB, SHA)
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep\n")
    folder = tmp_path / "checkpoints" / JOB
    folder.mkdir(parents=True)
    os.link(victim, folder / f"{SHA}.jsonl")
    with pytest.raises(OSError):
        store.save(key, record(10))
    assert victim.read_bytes() == b"keep\n"
    with pytest.raises(StateUnreadable, match="hard link"):
        store.load(key)
    assert victim.read_bytes() == b"keep\n"
