"""Job mode's work: take each connector's files from the drop zone's `incoming/`, send them, file the outcome.

Drop-zone layout (paths relative to its root):

    incoming/<path>                          what the HR system exports; the job reads it here
    processed/<yyyy>/<mm>/<dd>/<path>         sent (or skipped: identical content sent within 12 h; or empty)
    rejected/<path>  + <path>.errors.json    invalid: nothing from it was sent; errors name line, column, rule
    state/<job_id>/<sha256>.json             checkpoints (a failed file stays in incoming/ and resumes there)
    state/connectors/<job_id>.json           first seen / last sent, for the employee-profile freshness warning
    state/moves/<id>.json                    a move in progress (finished by the next run if this one dies)
    state/locks/<path>.lock                  folder drop zones only: who is working on a file

Order: each connector's files oldest first (last-modified, then name). After a failed file the connector's
later files wait for the next run, so events reach Purview in the order the HR system exported them.

One bad file never stops the run: whatever goes wrong with a file (storage error, full disk, a name storage
cannot hold) is reported as that file's failure and the run goes on with the other connectors. The exception is a
configuration error every file would meet (RunConfigError: Key Vault refusing to sign): the run stops with exit 2
and the file stays in incoming/, unclaimed, with nothing sent. Links, FIFOs,
devices and unsafe or over-long names under incoming/ are refused (reported, left where they are, exit 3).
A file another execution has claimed is waited for (one lease period: a dead execution's claim lapses); a
file that changes while it is being sent is not filed (it stays in incoming/, the run exits 1).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import os
import shutil
import stat
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from uploader import stopping
from uploader.errors import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_SET_ASIDE,
    EXIT_STOPPED,
    RunConfigError,
    UploaderError,
)
from uploader.job.dropzone import (
    CLAIM_POLL_SECONDS,
    CLAIM_WAIT_SECONDS,
    DropZone,
    DropZoneError,
    Entry,
    FileChangedError,
    Lock,
    UnreadableState,
    Version,
    keep_renewed,
    name_problem,
)
from uploader.model import portable
from uploader.model.globs import GlobMatcher
from uploader.model.mapping import ConnectorMapping
from uploader.model.scenarios import PROFILE_REFRESH_DAYS
from uploader.report import Reporter, safe_name
from uploader.send.checkpoint import StateUnreadable, StoreWriteError, aside_name, parse_iso, utc_iso
from uploader.send.upload import FileOutcome

INCOMING = "incoming/"
PROCESSED = "processed/"
REJECTED = "rejected/"
STATE = "state/"
UNREADABLE = "state/unreadable/"  # state files that failed the state reader, set aside for a person to look at
TEMP_PREFIX = "hr-uploader-"  # + "<pid>-": local copies of HR files, removed on every exit path
#: A drop-zone file is taken only once its size and modification time have not changed for this long
#: (UPLOADER_SETTLE_SECONDS / --settle-seconds): a writer that pauses mid-file is not sent half a file.
DEFAULT_SETTLE_SECONDS = 60.0


def load_state(dz: DropZone, path: str, now: dt.datetime) -> Any | None:
    """The one way job mode reads a state file: the drop zone's read_json (through the state reader), and a file
    that fails it set aside under state/unreadable/ (renamed, not deleted; deleted only when it cannot be moved)
    before StateUnreadable says what happened. None when the file does not exist."""
    try:
        return dz.read_json(path)
    except UnreadableState as exc:
        reason = str(exc)
    aside = aside_name(UNREADABLE + path[len(STATE):], now) if path.startswith(STATE) else None
    try:
        if aside is None or name_problem(aside) is not None:
            raise DropZoneError("its name is too long to set aside")
        dz.move(path, aside)
        where = f"set aside as {safe_name(aside)}"
    except UploaderError:
        try:
            dz.delete(path)
            where = "could not be set aside, so it was removed"
        except UploaderError:
            where = "could neither be set aside nor removed"
    raise StateUnreadable(f"{reason}; {where}")


class ClaimLostError(DropZoneError):
    """The lease or lock on a file was lost mid-send: stop before another execution sends it too."""


def connector_label(connector: ConnectorMapping) -> str:
    return connector.name or connector.job_id


@dataclass
class ConnectorSummary:
    """What one run did for one connector."""

    name: str
    job_id: str
    files_sent: int = 0  # includes header-only files (valid, nothing to send)
    files_skipped: int = 0  # identical content sent within 12 h
    files_rejected: int = 0
    files_failed: int = 0
    files_locked: int = 0  # another execution holds it
    files_waiting: int = 0  # not attempted after an earlier failure; next run
    files_settling: int = 0  # changed within the settle time (still being written?); a later run takes them
    files_stopped: int = 0  # being sent when SIGTERM/SIGINT stopped the run; the next run resumes it
    records_sent: int = 0
    files_partial: int = 0  # sent with rows set aside (quarantine); also counted in files_sent
    rows_set_aside: int = 0
    seconds: float = 0.0
    days_since_sent: float | None = None  # employee-profile connectors only
    stale: bool = False

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("days_since_sent", "stale")}
        out["seconds"] = round(self.seconds, 3)
        if self.days_since_sent is not None:
            out["days_since_sent"] = round(self.days_since_sent, 1)
            out["freshness_warning"] = self.stale
        return out


@dataclass
class RunSummary:
    """The whole run: per connector, plus what matched no connector."""

    connectors: list[ConnectorSummary] = field(default_factory=list)
    unmatched: int = 0
    refused: int = 0  # links, special files, unsafe or over-long names under incoming/
    seconds: float = 0.0
    stopped: str | None = None  # SIGTERM/SIGINT stopped the run: what happened (stopping.Stopped.describe)
    settles_at: dt.datetime | None = None  # when the last file still settling has been unchanged for the settle time

    @property
    def exit_code(self) -> int:
        """5 if a signal stopped the run, else 1 if any file failed (Container Apps marks the execution failed), else
        3 if any was rejected or refused, else 4 if rows were set aside, else 0."""
        if self.stopped is not None:
            return EXIT_STOPPED
        if any(c.files_failed for c in self.connectors):
            return EXIT_FAILED
        if self.refused or any(c.files_rejected for c in self.connectors):
            return EXIT_INVALID
        if any(c.files_partial for c in self.connectors):
            return EXIT_SET_ASIDE
        return EXIT_OK

    def total(self, key: str) -> int:
        return sum(getattr(c, key) for c in self.connectors)

    def to_json(self) -> dict[str, Any]:
        keys = ("files_sent", "files_skipped", "files_rejected", "files_failed", "files_locked", "files_waiting",
                "files_settling", "files_stopped", "records_sent", "files_partial", "rows_set_aside")
        return {
            "event": "run_summary",
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
            **{k: self.total(k) for k in keys},
            "files_unmatched": self.unmatched,
            "files_refused": self.refused,
            **({"settles_at": utc_iso(self.settles_at)} if self.settles_at is not None else {}),
            **({"error": self.stopped} if self.stopped is not None else {}),
            "connectors": [c.to_json() for c in self.connectors],
        }


class GuardedStore:
    """Checkpoints under `state/<job_id>/<sha256>.json` in the drop zone (CheckpointStore).

    Reads go through `load_state` (an unreadable checkpoint is set aside and StateUnreadable raised); a write the
    drop zone refuses raises StoreWriteError. With a lock, each save first records the acknowledged chunk, then
    stops the file if the lock was lost.
    """

    def __init__(self, dropzone: DropZone, lock: Lock | None = None,
                 now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.dropzone = dropzone
        self.lock = lock
        self.now = now

    @staticmethod
    def path(key: str) -> str:
        return f"{STATE}{key}.json"

    def folder(self, key: str) -> str:
        return f"{self.dropzone.display}/{STATE}{key.split('/')[0]}/"

    def load(self, key: str) -> dict[str, Any] | None:
        data = load_state(self.dropzone, self.path(key), self.now())
        return data if isinstance(data, dict) else None

    def save(self, key: str, record: dict[str, Any]) -> None:
        try:
            self.dropzone.write_json(self.path(key), record)
        except DropZoneError as exc:
            raise StoreWriteError(str(exc)) from None
        if self.lock is not None and self.lock.lost:
            raise ClaimLostError("lost the lease on the file while sending; stopped so no other execution "
                                 "sends it twice (the next run resumes from the checkpoint)")


UploadFn = Callable[..., Any]


class JobRun:
    """One execution over one drop zone."""

    def __init__(self, dropzone: DropZone, connectors: tuple[ConnectorMapping, ...], *, upload: UploadFn,
                 client: Any, records_per_call: int, reporter: Reporter,
                 now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 claim_wait: float = CLAIM_WAIT_SECONDS, settle: float = DEFAULT_SETTLE_SECONDS) -> None:
        self.dz = dropzone
        self.settle = settle
        self.reset_state: set[str] = set()  # connectors whose state was unreadable this run
        self.claim_wait = claim_wait
        self.settles_at: dt.datetime | None = None  # the latest time a file now settling becomes takeable
        self.connectors = connectors
        self.upload = upload
        self.client = client
        self.records_per_call = records_per_call
        self.reporter = reporter
        self.now = now

    def say(self, kind: str, text: str, *, error: bool = False, **fields: Any) -> None:
        self.reporter.event(kind, text, error=error, **fields)

    def warn(self, text: str, **fields: Any) -> None:
        """A warning; in JSON logs its text is the `message` field (our own words, names passed through safe_name)."""
        self.say("warning", f"warning: {text}", error=True, **{"message": text, **fields})

    def read_state(self, path: str) -> Any | None:
        """A state record, or None (with a warning) when it cannot be read: state is never trusted blindly."""
        try:
            return load_state(self.dz, path, self.now())
        except StateUnreadable as exc:
            self.warn(f"{exc}: treated as absent")
            return None

    # -- the run ----------------------------------------------------------------------------------

    def run(self) -> RunSummary:
        started = time.monotonic()
        summary = RunSummary()
        remove_orphan_copies()
        self.finish_interrupted_moves()
        self.sweep_locks()
        entries = [e for e in self.dz.list(INCOMING) if e.path != INCOMING]
        for entry in entries:
            if entry.refused:
                summary.refused += 1
                self.say("file_refused", f"{safe_name(entry.path)}: {entry.refused}; left where it is", error=True,
                         file=safe_name(entry.path), reason=entry.refused)
        entries = [e for e in entries if not e.refused]
        assigned = self.assign(entries)
        summary.unmatched = len(entries) - sum(len(v) for v in assigned)
        settling = [self.unsettled(connector, files) for connector, files in zip(self.connectors, assigned,
                                                                               strict=True)]
        if any(assigned):
            self.check_writable()
        try:
            with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-") as tmp:
                for connector, files, waiting in zip(self.connectors, assigned, settling, strict=True):
                    stopping.check()
                    result = self.run_connector(connector, files, Path(tmp))
                    result.files_settling += waiting
                    summary.connectors.append(result)
        except stopping.Stopped as stop:  # the chunk in flight was answered and checkpointed (unless at once)
            if stop.result is not None:
                summary.connectors.append(stop.result)
            summary.stopped = stop.describe()
            self.say("stopped", stop.describe(), error=True, signal=stop.signal_name, at_once=stop.at_once)
        summary.settles_at = self.settles_at
        summary.seconds = time.monotonic() - started
        return summary

    def unsettled(self, connector: ConnectorMapping, files: list[Entry]) -> int:
        """Take out of `files` (sorted oldest first) those modified within the settle time; report and count them.

        A folder file's modification time moves with every write, and a blob's last-modified with every
        upload or append, so "unchanged for the settle time" is "last modified at least that long ago". They are
        the newest, so the ones taken still go in order. A file dated in the future waits until it is not."""
        waiting = [e for e in files if not self.settled(e)]
        files[:] = [e for e in files if self.settled(e)]
        for entry in waiting:
            self.report_settling(connector, entry)
        return len(waiting)

    def settled(self, entry: Entry) -> bool:
        return entry.modified <= self.now() - dt.timedelta(seconds=self.settle)

    def report_settling(self, connector: ConnectorMapping, entry: Entry) -> None:
        ready = entry.modified + dt.timedelta(seconds=self.settle)
        self.settles_at = max(self.settles_at or ready, ready)
        ahead = entry.modified > self.now() + dt.timedelta(minutes=5)
        why = ("its modification time is in the future (a wrong clock?); it is taken once that time is "
               f"{int(self.settle)} s past" if ahead else
               f"changed less than {int(self.settle)} s ago (still being written?); a later run takes it")
        self.say("file_settling", f"{safe_name(entry.path)}: {why}", error=ahead, file=safe_name(entry.path),
                 connector=connector_label(connector), settle_seconds=self.settle)

    def check_writable(self) -> None:
        """Write and remove a probe under state/ before anything is sent: a read-only or full drop zone fails the
        run here, not after a chunk whose checkpoint could not be kept (which the next run would send again)."""
        probe = f"{STATE}write-check/{uuid.uuid4().hex}.json"
        self.dz.write_json(probe, {"at": utc_iso(self.now())})
        self.dz.delete(probe)

    def sweep_locks(self) -> None:
        try:
            removed = self.dz.sweep_locks()
        except UploaderError as exc:
            self.warn(f"could not clear old lock files ({exc})")
            return
        if removed:
            self.say("locks_cleared", f"removed {removed} lock file(s) left by executions that stopped",
                     count=removed)

    def assign(self, entries: list[Entry]) -> list[list[Entry]]:
        """Each incoming file to the first connector whose glob matches it (lists in connector order), oldest first."""
        globs = [(i, c, GlobMatcher(c.files or "")) for i, c in enumerate(self.connectors)]
        out: list[list[Entry]] = [[] for _ in self.connectors]
        overlaps: set[tuple[str, str]] = set()
        for entry in entries:
            rel = entry.path[len(INCOMING):]
            matches = [(i, c) for i, c, glob in globs if glob.matches(rel)]
            if matches:
                out[matches[0][0]].append(entry)
                overlaps.update((connector_label(matches[0][1]), connector_label(c)) for _, c in matches[1:])
        for first, other in sorted(overlaps):
            self.say("warning", f"warning: some files match the `files` globs of both {first} and {other}; "
                     f"they go to {first} (the first in UPLOADER_CONNECTORS): make the globs disjoint",
                     connector=first, also=other)
        for files in out:
            files.sort(key=lambda e: (e.modified, e.path))
        return out

    def run_connector(self, connector: ConnectorMapping, files: list[Entry], tmp: Path) -> ConnectorSummary:
        label = connector_label(connector)
        result = ConnectorSummary(label, connector.job_id)
        started = time.monotonic()
        for i, entry in enumerate(files):
            try:
                stopping.check()
                status = self.process(connector, entry, result, tmp)
            except stopping.Stopped as stop:  # the file stays in incoming/; its checkpoint says where to resume
                if stop.outcome is not None:
                    result.files_stopped += 1
                    result.records_sent += stop.outcome.records_sent
                    if stop.outcome.records_sent:
                        with contextlib.suppress(Exception):
                            self.record_sent(connector)
                result.files_waiting = len(files) - i - (1 if stop.outcome is not None else 0)
                result.seconds = time.monotonic() - started
                stop.result = result
                raise
            except RunConfigError:
                raise  # a configuration error every file would meet (Key Vault refused to sign): exit 2, file left
            except Exception as exc:  # noqa: BLE001 - one bad file never stops the run
                status = self.failed(entry, result, describe(exc))
            if status == "failed":
                result.files_waiting = len(files) - i - 1
                if result.files_waiting:
                    self.say("waiting", f"{label}: {result.files_waiting} later file(s) wait in incoming/ for the "
                             "next run, so they reach Purview in order", connector=label,
                             files=result.files_waiting)
                break
        result.seconds = time.monotonic() - started
        try:
            self.check_freshness(connector, result)
        except UploaderError as exc:
            self.warn(f"{label}: could not check or record when it last sent ({exc})", connector=label)
        return result

    # -- one file ---------------------------------------------------------------------------------

    def process(self, connector: ConnectorMapping, entry: Entry, result: ConnectorSummary, tmp: Path) -> str:
        name = safe_name(entry.path)
        lock = self.claim(entry, connector, result)
        if lock == "gone":
            return "gone"  # another execution finished it after we listed it
        if lock == "busy":
            return self.failed(entry, result, f"still claimed by another execution after {int(self.claim_wait)} s: "
                               "not sent by this run")
        assert isinstance(lock, Lock)
        local = tmp / uuid.uuid4().hex
        try:
            with keep_renewed(lock):
                current = self.dz.stat(entry.path)
                if current is None:
                    return "gone"
                if current.refused:
                    raise DropZoneError(current.refused)
                if current.etag != entry.etag and not self.settled(current):  # written to again since it was listed
                    self.report_settling(connector, current)
                    result.files_settling += 1
                    return "settling"
                version = self.dz.download(entry.path, local, etag=current.etag)
                outcome = self.upload(
                    local, display_name=name, job_id=connector.job_id, mapping=connector,
                    client=self.client, store=GuardedStore(self.dz, lock, now=self.now),
                    records_per_call=self.records_per_call, reporter=self.reporter, now=self.now,
                    source=f"{entry.path}@{current.etag}",
                    **self.set_aside_options(entry, tmp),
                )
                return self.file_outcome(connector, entry, version, outcome, lock, result)
        finally:
            local.unlink(missing_ok=True)
            with contextlib.suppress(Exception):
                lock.release()

    def set_aside_options(self, entry: Entry, tmp: Path) -> dict[str, Any]:
        """For an upload function that can set invalid rows aside (send.quarantine): rejected/<path>'s folder."""
        if not getattr(getattr(self.upload, "func", self.upload), "sets_rows_aside", False):
            return {}
        from uploader.job.setaside import DropZoneSetAside

        return {"set_aside": DropZoneSetAside(self.dz, f"{REJECTED}{entry.path[len(INCOMING):]}"), "work_dir": tmp}

    def claim(self, entry: Entry, connector: ConnectorMapping, result: ConnectorSummary) -> Lock | str:
        """The claim on a file, "gone" when another execution filed it, or "busy" when another execution still
        holds it after claim_wait seconds. A claim by an execution that died lapses within one lease period, so
        waiting that long lets an immediate retry take over the file it was sending (in order)."""
        deadline = time.monotonic() + self.claim_wait
        announced = False
        while True:
            lock = self.dz.try_lock(entry.path)
            if lock is not None:
                return lock
            if not self.dz.exists(entry.path):
                return "gone"
            if not announced:
                announced = True
                result.files_locked += 1
                self.say("file_locked", f"{safe_name(entry.path)}: claimed by another execution; waiting up to "
                         f"{int(self.claim_wait)} s for it to finish or for its claim to lapse",
                         file=safe_name(entry.path), connector=connector_label(connector))
            left = deadline - time.monotonic()
            if left <= 0:
                return "busy"
            time.sleep(min(CLAIM_POLL_SECONDS, left))

    def failed(self, entry: Entry, result: ConnectorSummary, reason: str) -> str:
        name = safe_name(entry.path)
        self.say("file_done", f"{name}: FAILED: {reason}; it stays in incoming/ for the next run",
                 error=True, file=name, status="failed", message=reason)
        result.files_failed += 1
        return "failed"

    def file_outcome(self, connector: ConnectorMapping, entry: Entry, version: Version, outcome: FileOutcome,
                     lock: Lock, result: ConnectorSummary) -> str:
        """File the version that was read and sent (or rejected) under processed/ or rejected/; a file that is no
        longer that version (its bytes, or for folders its inode or change time, differ) stays in incoming/."""
        rel = entry.path[len(INCOMING):]
        status = outcome.status
        result.records_sent += outcome.records_sent
        if status in ("sent", "empty", "skipped", "invalid", "partial"):
            after = self.dz.stat(entry.path)
            if after is None or after.etag != version.etag:
                if outcome.records_sent:
                    self.record_sent(connector)
                return self.changed(entry, result)
        try:
            return self.file(connector, entry, version, outcome, lock, result, rel)
        except FileChangedError:  # (what was sent is recorded already)
            return self.changed(entry, result)

    def changed(self, entry: Entry, result: ConnectorSummary) -> str:
        return self.failed(entry, result, "the file changed while it was being sent (still being written?): "
                           "not filed; the next run validates and sends what it holds then")

    def file(self, connector: ConnectorMapping, entry: Entry, version: Version, outcome: FileOutcome, lock: Lock,
             result: ConnectorSummary, rel: str) -> str:
        status = outcome.status
        if status in ("sent", "empty", "skipped", "partial"):
            if outcome.records_sent:
                self.record_sent(connector)
            today = self.now().strftime("%Y/%m/%d")
            dst = self.filing_name(entry.path, version, f"{PROCESSED}{today}/{rel}")
            self.move(entry.path, dst, version, lock)
            if status == "partial":  # the valid rows went; the invalid ones are in rejected/ already
                result.files_partial += 1
                result.rows_set_aside += getattr(outcome, "rows_set_aside", 0)
            if status == "skipped":
                result.files_skipped += 1
            else:
                result.files_sent += 1
            self.say("file_moved", f"{safe_name(entry.path)}: moved to {safe_name(dst)}", file=safe_name(entry.path),
                     to=safe_name(dst), status=status)
            return str(status)
        if status == "invalid":
            dst = self.filing_name(entry.path, version, f"{REJECTED}{rel}")
            self.dz.write_json(f"{dst}.errors.json", errors_document(safe_name(entry.path), outcome.scan))
            try:
                self.move(entry.path, dst, version, lock)
            except FileChangedError:  # those errors are not this file's: it is validated again next run
                self.dz.delete(f"{dst}.errors.json")
                raise
            result.files_rejected += 1
            self.say("file_moved", f"{safe_name(entry.path)}: rejected: moved to {safe_name(dst)} "
                     f"(errors in {safe_name(dst)}.errors.json)", file=safe_name(entry.path), to=safe_name(dst),
                     status=status)
            return str(status)
        result.files_failed += 1  # failed: stays in incoming/, its checkpoint under state/
        self.say("file_left", f"{safe_name(entry.path)}: left in incoming/; the next run resumes from its checkpoint",
                 file=safe_name(entry.path), status=status)
        return "failed"

    def filing_name(self, src: str, version: Version, wanted: str) -> str:
        """Where this version of src is filed: where an earlier run that died mid-move was filing it (its move
        journal says, and that run's copy is then replaced, never doubled), else `wanted` or a free variant."""
        data = self.read_state(move_journal(src, version.etag))
        recorded = Version.from_json(data) if isinstance(data, dict) else None
        if isinstance(data, dict) and data.get("src") == src and data.get("etag") == version.etag \
                and recorded in (version, None):  # None: a journal from before versions were recorded
            dst = data.get("dst")
            prefix = wanted.split("/", 1)[0] + "/"
            if isinstance(dst, str) and dst.startswith(prefix) and name_problem(dst) is None:
                return dst
        return self.free_name(wanted)

    def free_name(self, path: str) -> str:
        """path, or path with a time stamp before its extension when that name is taken already."""
        if not self.dz.exists(path):
            return path
        p = PurePosixPath(path)
        stamp = self.now().strftime("%H%M%S") + "-" + uuid.uuid4().hex[:6]
        return str(p.with_name(f"{p.stem}.{stamp}{p.suffix}"))

    # -- moves that survive a crash ---------------------------------------------------------------

    def move(self, src: str, dst: str, version: Version, lock: Lock) -> None:
        """Journal the move, copy + delete (of this version only), drop the journal entry; a run that dies midway
        is finished later, and a run that files the same version again uses the same journal and destination.
        A file that is no longer this version is not filed (FileChangedError) and its journal entry goes."""
        journal = move_journal(src, version.etag)
        self.dz.write_json(journal, {"src": src, "dst": dst, **version.to_json(), "at": utc_iso(self.now())})
        try:
            self.dz.move(src, dst, lock, version=version)
        except FileChangedError:
            self.dz.delete(journal)
            raise
        self.dz.delete(journal)

    def finish_interrupted_moves(self) -> None:
        """Complete moves an earlier execution journaled but did not finish (it died between copy and delete).

        Each record is handled on its own: one that cannot be read, or that does not move a file from incoming/
        to processed/ or rejected/, is dropped with a warning; one that cannot be finished now is kept for the
        next run. None of them stops this run."""
        for record in self.dz.list(f"{STATE}moves/"):
            try:
                self.finish_move(record)
            except Exception as exc:  # noqa: BLE001 - a bad journal entry must not stop every run
                self.warn(f"could not finish the move recorded in {safe_name(record.path)} ({describe(exc)}); "
                          "the next run tries again")

    def finish_move(self, record: Entry) -> None:
        data = None if record.refused else self.read_state(record.path)
        if not (isinstance(data, dict) and all(isinstance(data.get(k), str) for k in ("src", "dst", "etag"))) \
                or not (data["src"].startswith(INCOMING) and data["dst"].startswith((PROCESSED, REJECTED))
                         and name_problem(data["src"]) is None and name_problem(data["dst"]) is None):
            self.warn(f"{safe_name(record.path)}: not a move of a file from incoming/ to processed/ or rejected/; "
                      "ignored and removed")
            self.dz.delete(record.path)
            return
        src, dst = data["src"], data["dst"]
        version = Version.from_json(data)
        lock = self.dz.try_lock(src)
        if lock is None:
            if not self.dz.exists(src):
                self.dz.delete(record.path)  # finished
            return  # another execution is working on it
        try:
            current = self.dz.stat(src)
            if current is not None and current.etag == data["etag"] and not current.refused:
                if version is None:
                    # written before versions were recorded: which bytes it was moving is not known, so it moves
                    # nothing; the file is taken as any other (its checkpoint keeps it from being sent twice) and
                    # filed where this journal says (filing_name), under the version that run reads
                    return
                with contextlib.suppress(FileChangedError):  # rewritten since: it stays, and is taken as any other
                    self.dz.move(src, dst, lock, version=version)
                    self.say("file_moved", f"{safe_name(src)}: finished an interrupted move to {safe_name(dst)}",
                             file=safe_name(src), to=safe_name(dst))
            self.dz.delete(record.path)
        finally:
            lock.release()

    # -- freshness --------------------------------------------------------------------------------

    @staticmethod
    def state_path(connector: ConnectorMapping) -> str:
        return f"{STATE}connectors/{connector.job_id}.json"

    def connector_state(self, connector: ConnectorMapping) -> dict[str, Any] | None:
        try:
            state = load_state(self.dz, self.state_path(connector), self.now())
        except StateUnreadable as exc:
            self.warn(f"{exc}: treated as absent")
            self.reset_state.add(connector.job_id)
            return None
        return state if isinstance(state, dict) else None  # the state reader only returns objects

    def record_sent(self, connector: ConnectorMapping) -> None:
        state = self.connector_state(connector) or {}
        now = utc_iso(self.now())
        state.update({"job_id": connector.job_id, "name": connector.name, "last_sent_at": now})
        state.setdefault("first_seen", now)
        self.dz.write_json(self.state_path(connector), state)

    def check_freshness(self, connector: ConnectorMapping, result: ConnectorSummary) -> None:
        """Warn when an employee-profile connector has sent nothing for PROFILE_REFRESH_DAYS days."""
        if not connector.maps_employee_profile:
            return
        state = self.connector_state(connector)
        now = self.now()
        if not isinstance(state, dict) or parse_iso(state.get("first_seen")) is None:
            state = {"job_id": connector.job_id, "name": connector.name, "first_seen": utc_iso(now),
                     "last_sent_at": None}
            self.dz.write_json(self.state_path(connector), state)
        since = parse_iso(state.get("last_sent_at")) or parse_iso(state.get("first_seen")) or now
        days = (now - since).total_seconds() / 86400
        result.days_since_sent = days
        if connector.job_id in self.reset_state and not result.records_sent:
            result.stale = True  # when it last sent is not known: say so rather than assume it is fresh
            self.say("freshness_warning",
                     f"warning: connector {result.name} maps employeeProfile and when it last sent is not known (its "
                     "state was unreadable and set aside); Purview deletes employee profiles not refreshed for 30 "
                     "days: check that the HR system's export arrives", connector=result.name,
                     job_id=connector.job_id, days_since_sent=None)
        elif days >= PROFILE_REFRESH_DAYS:
            result.stale = True
            what = "sent nothing" if state.get("last_sent_at") else "sent nothing since it was configured"
            self.say("freshness_warning",
                     f"warning: connector {result.name} maps employeeProfile and has {what} for {int(days)} days; "
                     f"Purview deletes employee profiles not refreshed for 30 days (send every "
                     f"{PROFILE_REFRESH_DAYS}-20 days): check the HR system's export",
                     connector=result.name, job_id=connector.job_id, days_since_sent=round(days, 1))


def move_journal(src: str, etag: str) -> str:
    """The move journal of one version of one file: the same name every time that version is filed."""
    digest = hashlib.sha256(f"{src}@{etag}".encode("utf-8", "surrogateescape")).hexdigest()
    return f"{STATE}moves/{digest[:32]}.json"


def errors_document(path: str, scan: Any) -> dict[str, Any]:
    """`rejected/<path>.errors.json`: where and which rule, never a cell value."""
    problems = [] if scan is None else [
        {"line": p.line, "column": p.column, "rule": p.rule} for p in scan.problems
    ]
    return {
        "file": path,
        "problem_count": getattr(scan, "problem_count", len(problems)),
        "problems": problems,
        "note": "the first problems only (problem_count counts all); nothing from this file was sent",
    }


def describe(exc: BaseException) -> str:
    """A failure for the log: our own messages as they are; anything else by kind (its text may hold data)."""
    if isinstance(exc, FileChangedError):
        return f"{exc}: not sent; the next run validates and sends what it holds then"
    if isinstance(exc, UploaderError):
        return str(exc)
    if isinstance(exc, OSError):
        code = errno.errorcode.get(exc.errno or 0)
        return f"{type(exc).__name__}" + (f" {code} ({exc.strerror})" if code and exc.strerror else "")
    return f"unexpected {type(exc).__name__}"


def remove_orphan_copies(folder: str | None = None) -> int:
    """Remove local copies of HR files left by executions that were killed (their process no longer runs)."""
    removed = 0
    base = Path(folder or tempfile.gettempdir())
    for path in base.glob(f"{TEMP_PREFIX}*-*"):
        pid_text = path.name[len(TEMP_PREFIX):].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        try:
            st = path.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or portable.is_link(st) or not portable.owned_by_me(st):
            continue
        if portable.process_alive(int(pid_text)):
            continue  # still running, or another user's process: not ours to judge
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed
