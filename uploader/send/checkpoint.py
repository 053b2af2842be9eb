"""Checkpoints: what has been acknowledged for one file's content sent to one job (docs/cli.md, "Checkpoints").

A record is keyed by `f"{job_id}/{sha256}"` (identical content to the same job) and saved durably after
each acknowledged chunk. `decide` turns a record into skip / resume / send-from-the-start; it is pure
(the clock is a parameter) so the 12-hour rules are unit-tested directly.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from uploader.model import portable

#: A file whose identical content was fully sent to the same job within this window is skipped.
SKIP_WINDOW = dt.timedelta(hours=12)

_KEY_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class CheckpointStore(Protocol):
    """Where checkpoint records live (a local directory here; job mode keeps them in blob storage)."""

    def load(self, key: str) -> dict[str, Any] | None: ...  # StateUnreadable (after setting it aside) if damaged

    def save(self, key: str, record: dict[str, Any]) -> None: ...  # atomic and durable; never follows a link

    def folder(self, key: str) -> str: ...  # where this key's checkpoint lives (named when it cannot be written)


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
    same_source: bool = False  # skip: this very file (job mode's source) was sent by a run that did not file it


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
                                   "that stopped before filing it", same_source=True)
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


class StoreWriteError(Exception):
    """A checkpoint store could not write a record (its message names where and why, never a value)."""


class StateUnreadable(ValueError):
    """A state or checkpoint file exists but fails the state reader's bounds; the message says why, never a value."""


#: The state reader's bounds (`parse_state`). State records are flat JSON objects of a few hundred bytes.
MAX_STATE_BYTES = 64 << 10
MAX_STATE_KEYS = 64
MAX_STATE_STRING = 16384
MAX_STATE_INT = 1 << 53
#: Dates in state are believed between these bounds: before 2000 (or year 1) is damage, and more than a day
#: ahead of the clock would switch off a rule that compares with now (freshness, the 12-hour window).
EARLIEST_STATE_DATE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
STATE_MAX_AHEAD = dt.timedelta(days=1)


def _is_date_key(key: str) -> bool:
    return key.endswith("_at") or key == "first_seen"


def _nesting_ok(text: str) -> bool:
    """True when the JSON text opens exactly one container outside strings (state records are flat objects).

    Checked before json.loads, so no input (100,000 `[`) makes the decoder recurse: one linear pass.
    """
    opened, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            opened += 1
            if opened > 1:
                return False
    return True


def _bounded_int(text: str) -> int:
    if len(text) > 16:
        raise ValueError("a number too large for a state record")
    return int(text)


def _refuse_constant(text: str) -> float:
    raise ValueError("NaN or Infinity")


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("a key appears twice")
    return out


def parse_state(data: bytes, *, now: dt.datetime) -> dict[str, Any]:
    """The one state reader: every checkpoint and state record (drop zone or local) is read through it.

    A record is a flat JSON object (at most MAX_STATE_KEYS keys) of strings (at most MAX_STATE_STRING
    characters), integers (|n| < 2**53), booleans and nulls, at most MAX_STATE_BYTES in all; every date
    (`*_at`, `first_seen`) is ISO-8601 between 2000 and one day from now. Anything else raises
    StateUnreadable naming the rule broken (never the value): the caller sets the file aside and carries on.
    """
    if len(data) > MAX_STATE_BYTES:
        raise StateUnreadable(f"larger than {MAX_STATE_BYTES >> 10} KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise StateUnreadable("not UTF-8 text") from None
    if not _nesting_ok(text):
        raise StateUnreadable("nested JSON (a state record is one flat object)")
    try:
        obj = json.loads(text, parse_int=_bounded_int, parse_constant=_refuse_constant,
                         object_pairs_hook=_unique_pairs)
    except (ValueError, RecursionError):
        raise StateUnreadable("not valid JSON") from None
    if not isinstance(obj, dict):
        raise StateUnreadable("not a JSON object")
    if len(obj) > MAX_STATE_KEYS:
        raise StateUnreadable(f"more than {MAX_STATE_KEYS} keys")
    for key, value in obj.items():
        if len(key) > 64:
            raise StateUnreadable("a key longer than 64 characters")
        if isinstance(value, str) and len(value) > MAX_STATE_STRING:
            raise StateUnreadable(f"a value longer than {MAX_STATE_STRING} characters")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= MAX_STATE_INT:
            raise StateUnreadable("a number out of range")
        if isinstance(value, float):
            raise StateUnreadable("a fractional number")
        if _is_date_key(key) and value is not None:
            moment = parse_iso(value) if isinstance(value, str) else None
            if moment is None:
                raise StateUnreadable(f"{key} is not an ISO-8601 date")
            if moment < EARLIEST_STATE_DATE:
                raise StateUnreadable(f"{key} is dated before 2000")
            if moment > now + STATE_MAX_AHEAD:
                raise StateUnreadable(f"{key} is dated in the future")
    return obj


def aside_name(name: str, now: dt.datetime) -> str:
    """Where an unreadable state file is set aside, beside it: kept for a person to look at, never read again."""
    return f"{name}.unreadable-{now.astimezone(dt.UTC).strftime('%Y%m%dT%H%M%SZ')}-{os.urandom(3).hex()}"


# Local checkpoint files are reached one folder at a time from --state-dir without following a link
# (uploader/model/portable.py: by descriptor with O_NOFOLLOW | O_DIRECTORY on Linux and macOS, each name checked
# for a link or junction on Windows), and written only through descriptors opened without following a link or
# created exclusively: in a shared --state-dir, a link planted at a checkpoint's path (or in place of its
# folder) is never followed. A hard link is refused too (its count is above one).
#: A journal is read from its end: the newest records only, however long it grew.
JOURNAL_TAIL_BYTES = MAX_STATE_BYTES


class LocalCheckpointStore:
    """A journal per file under `state_dir/checkpoints/<job_id>/<sha256>.jsonl`.

    Each save appends one JSON line and fsyncs it: one disk flush per acknowledged chunk, where a
    rewrite-and-rename costs two flushes and a rename. Every line starts with a line break, so a
    write torn by a crash can only spoil its own line; `load` reads the journal's end and returns its
    newest complete line, through the state reader (`parse_state`). A completed file's journal is
    compacted to its last record (create-exclusive temp file, fsync, rename). A journal that fails the
    state reader, or is not a regular file, is renamed aside (`aside_name`) and StateUnreadable raised.
    """

    def __init__(self, state_dir: str | os.PathLike[str],
                 now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.state_dir = Path(state_dir)
        self.root = self.state_dir / "checkpoints"
        self.now = now

    @staticmethod
    def _parts(key: str) -> tuple[str, str]:
        parts = key.split("/")
        if len(parts) != 2 or not all(_KEY_PART.match(p) for p in parts):
            raise ValueError(f"checkpoint key must be JOB_ID/SHA256 of letters, digits, '.', '_' or '-': {key!r}")
        return parts[0], f"{parts[1]}.jsonl"

    def _path(self, key: str) -> Path:
        job, name = self._parts(key)
        return self.root / job / name

    def folder(self, key: str) -> str:
        """The folder that holds this key's checkpoint (for messages)."""
        return str(self.root / self._parts(key)[0])

    @contextlib.contextmanager
    def _dir(self, job: str | None, create: bool) -> Iterator[portable.Folder]:
        """checkpoints/<job>/ (or checkpoints/), each level entered without following a link."""
        if create:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with portable.walk(self.state_dir, ("checkpoints", job) if job else ("checkpoints",), create=create,
                           mode=0o700) as folder:
            yield folder

    def load(self, key: str) -> dict[str, Any] | None:
        job, name = self._parts(key)
        try:
            with self._dir(job, create=False) as folder:
                try:
                    fd = folder.open(name, portable.READ_NOFOLLOW)
                except FileNotFoundError:
                    return None
                except OSError as exc:  # a link (ELOOP) or worse where the journal should be
                    reason = "a symbolic link" if exc.errno == errno.ELOOP else f"cannot be opened ({exc.strerror})"
                    raise StateUnreadable(self._set_aside(folder, job, name, reason)) from None
                why = None
                try:
                    st = os.fstat(fd)
                    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                        why = "not a regular file" if not stat.S_ISREG(st.st_mode) else "a hard link"
                    else:
                        os.lseek(fd, max(0, st.st_size - JOURNAL_TAIL_BYTES), os.SEEK_SET)
                        data = os.read(fd, JOURNAL_TAIL_BYTES)
                finally:
                    os.close(fd)  # before any rename: Windows renames no open file
                if why is not None:
                    raise StateUnreadable(self._set_aside(folder, job, name, why))
                try:
                    return self._newest(data, whole=st.st_size <= JOURNAL_TAIL_BYTES)
                except StateUnreadable as exc:
                    raise StateUnreadable(self._set_aside(folder, job, name, str(exc))) from None
        except FileNotFoundError:
            return None
        except OSError as exc:  # a folder on the way is a link, or unreadable
            if exc.errno == errno.ELOOP:
                raise StateUnreadable(f"{self.folder(key)}: a symbolic link on the way (never followed)") from None
            raise StateUnreadable(f"{self.folder(key)}: cannot be read ({exc.strerror})") from None

    def _newest(self, data: bytes, whole: bool) -> dict[str, Any] | None:
        """The newest complete record: a torn last line (a crash mid-write) is skipped; any other bad line is not."""
        lines = [line for line in data.split(b"\n") if line.strip()]
        if not whole and lines:
            lines = lines[1:]  # the first line of a tail read may be cut
        if not lines:
            if whole:
                return None  # created, then the process died before its first record
            raise StateUnreadable(f"no complete record in its last {JOURNAL_TAIL_BYTES >> 10} KiB")
        now = self.now()
        for i, line in enumerate(reversed(lines)):
            try:
                return parse_state(line, now=now)
            except StateUnreadable as exc:
                if i == 0 and str(exc) == "not valid JSON":
                    continue  # torn by a crash: the record before it stands
                raise
        raise StateUnreadable("not valid JSON")

    def _set_aside(self, folder: portable.Folder, job: str, name: str, reason: str) -> str:
        aside = aside_name(name, self.now())
        where = self.root / job / name
        try:
            folder.rename(name, folder, aside, replace=False)  # renames a link itself, never its target
        except OSError as exc:
            return f"{where}: unreadable ({reason}); could not be set aside ({exc.strerror})"
        return f"{where}: unreadable ({reason}); set aside as {aside}"

    def check_writable(self) -> None:
        """Raise OSError unless a file can be created in the checkpoints folder (upload checks before anything)."""
        with self._dir(None, create=True) as folder:
            tmp = f".write-check-{os.urandom(6).hex()}"
            out = folder.open(tmp, portable.CREATE_NEW, 0o600)
            try:
                os.write(out, b"\n")
                os.fsync(out)
            finally:
                os.close(out)
                folder.unlink(tmp)

    def save(self, key: str, record: dict[str, Any]) -> None:
        job, name = self._parts(key)
        line = ("\n" + json.dumps(record, sort_keys=True)).encode()
        with self._dir(job, create=True) as folder:
            if record.get("completed_at"):
                self._replace(folder, name, line)
                return
            try:
                fd = folder.open(name, portable.APPEND)
                created = False
            except FileNotFoundError:
                fd = folder.open(name, portable.CREATE_NEW, 0o600)
                created = True
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                    raise OSError(errno.EPERM, "the checkpoint is not a regular file of its own")
                _write_all(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                folder.fsync()

    @staticmethod
    def _replace(folder: portable.Folder, name: str, content: bytes) -> None:
        tmp = f".tmp-{os.urandom(8).hex()}"
        fd = folder.open(tmp, portable.CREATE_NEW, 0o600)
        try:
            try:
                _write_all(fd, content)
                os.fsync(fd)
            finally:
                os.close(fd)
            folder.rename(tmp, folder, name)
        except BaseException:
            with contextlib.suppress(OSError):
                folder.unlink(tmp)
            raise
        folder.fsync()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
