"""Checkpoints: what has been acknowledged for one file's content sent to one job (docs/cli.md, "Checkpoints").

A record is keyed by `f"{job_id}/{sha256}"` (identical content to the same job) and saved durably after
each acknowledged chunk. `decide` turns a record into skip / resume / send-from-the-start; it is pure
(the clock is a parameter) so the 12-hour rules are unit-tested directly.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

#: A file whose identical content was fully sent to the same job within this window is skipped.
SKIP_WINDOW = dt.timedelta(hours=12)

_KEY_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class CheckpointStore(Protocol):
    """Where checkpoint records live (a local directory here; job mode keeps them in blob storage)."""

    def load(self, key: str) -> dict[str, Any] | None: ...

    def save(self, key: str, record: dict[str, Any]) -> None: ...  # atomic and durable


def checkpoint_key(job_id: str, sha256: str) -> str:
    return f"{job_id}/{sha256}"


def utc_iso(moment: dt.datetime) -> str:
    """ISO-8601 UTC with a `Z`, second precision (what records hold)."""
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_iso(text: str | None) -> dt.datetime | None:
    """The inverse of utc_iso (any ISO-8601 with an offset; naive means UTC); None when absent or unreadable."""
    if not text or not isinstance(text, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def new_record(job_id: str, sha256: str, file: str, records_per_call: int, records_total: int,
               records_acked: int, now: dt.datetime, completed: bool = False,
               source: str | None = None) -> dict[str, Any]:
    """A record: what was acknowledged for this content; `source` names the very file sent (job mode)."""
    extra = {"source": source} if source else {}
    return {
        "job_id": job_id,
        "sha256": sha256,
        "file": file,
        "records_per_call": records_per_call,
        "records_total": records_total,
        "records_acked": records_acked,
        "completed_at": utc_iso(now) if completed else None,
        "updated_at": utc_iso(now),
        **extra,
    }


#: A record dated later than this ahead of the clock is not believed (a forged date would block a resend).
CLOCK_SKEW = dt.timedelta(minutes=5)


def check_record(record: object, *, job_id: str, sha256: str, records_total: int,
                 now: dt.datetime) -> tuple[dict[str, Any] | None, str | None]:
    """The record if it is consistent with the file just read, else (None, why) (the caller warns and sends all).

    State lives where others can write (a drop zone); a record naming other content, another job, another
    record count, an impossible acknowledged count or a future date is not trusted.
    """
    if record is None:
        return None, None
    if not isinstance(record, dict):
        return None, "not a JSON object"
    if record.get("sha256") != sha256 or str(record.get("job_id", "")).lower() != job_id.lower():
        return None, "it names other content or another job"
    acked = record.get("records_acked")
    if record.get("records_total") != records_total or not isinstance(acked, int) or isinstance(acked, bool) \
            or not 0 <= acked <= records_total:
        return None, "its record counts do not match the file"
    completed_at = parse_iso(record.get("completed_at"))
    if completed_at is not None and acked != records_total:
        return None, "it is marked complete with records unacknowledged"
    for moment in (completed_at, parse_iso(record.get("updated_at"))):
        if moment is not None and moment > now + CLOCK_SKEW:
            return None, "it is dated in the future"
    return record, None


@dataclass(frozen=True)
class Decision:
    """What to do with a file given its checkpoint: `skip_records` is where sending starts."""

    action: Literal["send", "resume", "skip"]
    skip_records: int
    reason: str


def decide(record: dict[str, Any] | None, *, records_total: int, now: dt.datetime, force: bool = False,
           source: str | None = None) -> Decision:
    """Skip, resume or send from the start.

    - completed within the last 12 hours: skip (unless force); older completions never block a resend,
      except that of the very same file (`source`, job mode: same path and version) which a run sent but
      stopped before filing: that one is skipped (filed) whatever its age;
    - not completed: resume after records_acked, however old (force does not change this: nothing
      acknowledged is sent twice, even when the service was down for days);
    - anything unreadable counts as no record.
    """
    if not isinstance(record, dict):
        return Decision("send", 0, "no checkpoint")
    completed_at = parse_iso(record.get("completed_at"))
    if completed_at is not None and source and record.get("source") == source and not force:
        return Decision("skip", 0, f"this very file was fully sent to this job at {utc_iso(completed_at)} by a run "
                                   "that stopped before filing it")
    if completed_at is not None:
        age = now - completed_at
        if age < SKIP_WINDOW:
            if force:
                return Decision("send", 0, "sent before within 12 hours; --force sends it again")
            return Decision("skip", 0, f"identical content was sent to this job at {utc_iso(completed_at)}"
                                       " (within 12 hours); --force sends it again")
        return Decision("send", 0, "sent before more than 12 hours ago; sending again")
    acked = record.get("records_acked")
    updated_at = parse_iso(record.get("updated_at"))
    if not isinstance(acked, int) or isinstance(acked, bool) or acked <= 0 or updated_at is None:
        return Decision("send", 0, "no acknowledged records in the checkpoint")
    acked = min(acked, records_total)
    return Decision("resume", acked, f"resuming after {acked} acknowledged records")


class LocalCheckpointStore:
    """A journal per file under `state_dir/checkpoints/<job_id>/<sha256>.jsonl`.

    Each save appends one JSON line and fsyncs it: one disk flush per acknowledged chunk, where a
    rewrite-and-rename costs two flushes and a rename. Every line starts with a line break, so a
    write torn by a crash can only spoil its own line; `load` returns the newest line that parses.
    A completed file's journal is compacted to its last record (temp file, fsync, rename).
    """

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.root = Path(state_dir) / "checkpoints"

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if len(parts) != 2 or not all(_KEY_PART.match(p) for p in parts):
            raise ValueError(f"checkpoint key must be JOB_ID/SHA256 of letters, digits, '.', '_' or '-': {key!r}")
        return self.root / parts[0] / f"{parts[1]}.jsonl"

    def load(self, key: str) -> dict[str, Any] | None:
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError:
            return None  # a damaged checkpoint must not block sending; the worst case is a resend
        for line in reversed(data.splitlines()):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                return record
        return None

    def check_writable(self) -> None:
        """Raise OSError unless a checkpoint can be written here (checked before anything is sent)."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".write-check-")
        try:
            os.write(fd, b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
            Path(tmp).unlink(missing_ok=True)

    def save(self, key: str, record: dict[str, Any]) -> None:
        path = self._path(key)
        line = ("\n" + json.dumps(record, sort_keys=True)).encode()
        if record.get("completed_at"):
            self._replace(path, line)
            return
        created = not path.exists()
        if created:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(path.parent)

    @staticmethod
    def _replace(path: Path, content: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".jsonl")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
