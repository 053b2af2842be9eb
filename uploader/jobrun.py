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
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .checkpoint import parse_iso, utc_iso
from .dropzone import DropZone, DropZoneError, Entry, Lock, keep_renewed
from .errors import EXIT_FAILED, EXIT_INVALID, EXIT_OK, UploaderError
from .mapping import ConnectorMapping
from .report import Reporter
from .scenarios import PROFILE_REFRESH_DAYS

INCOMING = "incoming/"
PROCESSED = "processed/"
REJECTED = "rejected/"
STATE = "state/"


class ClaimLostError(DropZoneError):
    """The lease or lock on a file was lost mid-send: stop before another execution sends it too."""


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A connector's `files` glob as a regex over paths relative to `incoming/` (whole-path match).

    `*` and `?` never cross a '/', `[...]` is a character class, and `**/` matches any number of
    folders (including none): `departures/*.csv` matches `departures/a.csv` only; `**/*.csv` matches
    every CSV at any depth; `*.csv` only those directly in `incoming/`.
    """
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1:end]
            negate = body.startswith("!")
            body = (body[1:] if negate else body).replace("\\", "\\\\").replace("[", "\\[")
            out.append("[" + ("^" if negate else "\\" if body.startswith("^") else "") + body + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


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
    records_sent: int = 0
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
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """1 if any file failed (Container Apps marks the execution failed), else 3 if any was rejected, else 0."""
        if any(c.files_failed for c in self.connectors):
            return EXIT_FAILED
        if any(c.files_rejected for c in self.connectors):
            return EXIT_INVALID
        return EXIT_OK

    def total(self, key: str) -> int:
        return sum(getattr(c, key) for c in self.connectors)

    def to_json(self) -> dict[str, Any]:
        keys = ("files_sent", "files_skipped", "files_rejected", "files_failed", "files_locked", "files_waiting",
                "records_sent")
        return {
            "event": "run_summary",
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
            **{k: self.total(k) for k in keys},
            "files_unmatched": self.unmatched,
            "connectors": [c.to_json() for c in self.connectors],
        }


class GuardedStore:
    """Checkpoints under `state/<job_id>/<sha256>.json` in the drop zone (CheckpointStore).

    With a lock, each save first records the acknowledged chunk, then stops the file if the lock was lost.
    """

    def __init__(self, dropzone: DropZone, lock: Lock | None = None) -> None:
        self.dropzone = dropzone
        self.lock = lock

    @staticmethod
    def path(key: str) -> str:
        return f"{STATE}{key}.json"

    def load(self, key: str) -> dict | None:
        data = self.dropzone.read_json(self.path(key))
        return data if isinstance(data, dict) else None

    def save(self, key: str, record: dict) -> None:
        self.dropzone.write_json(self.path(key), record)
        if self.lock is not None and self.lock.lost:
            raise ClaimLostError("lost the lease on the file while sending; stopped so no other execution "
                                 "sends it twice (the next run resumes from the checkpoint)")


UploadFn = Callable[..., Any]


class JobRun:
    """One execution over one drop zone."""

    def __init__(self, dropzone: DropZone, connectors: tuple[ConnectorMapping, ...], *, upload: UploadFn,
                 client: Any, records_per_call: int, reporter: Reporter,
                 now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.dz = dropzone
        self.connectors = connectors
        self.upload = upload
        self.client = client
        self.records_per_call = records_per_call
        self.reporter = reporter
        self.now = now

    def say(self, kind: str, text: str, *, error: bool = False, **fields: Any) -> None:
        self.reporter.event(kind, text, error=error, **fields)

    # -- the run ----------------------------------------------------------------------------------

    def run(self) -> RunSummary:
        started = time.monotonic()
        summary = RunSummary()
        self.finish_interrupted_moves()
        entries = [e for e in self.dz.list(INCOMING) if e.path != INCOMING]
        assigned = self.assign(entries)
        summary.unmatched = len(entries) - sum(len(v) for v in assigned)
        with tempfile.TemporaryDirectory(prefix="hr-uploader-") as tmp:
            for connector, files in zip(self.connectors, assigned, strict=True):
                summary.connectors.append(self.run_connector(connector, files, Path(tmp)))
        summary.seconds = time.monotonic() - started
        return summary

    def assign(self, entries: list[Entry]) -> list[list[Entry]]:
        """Each incoming file to the first connector whose glob matches it (lists in connector order), oldest first."""
        globs = [(i, c, glob_regex(c.files or "")) for i, c in enumerate(self.connectors)]
        out: list[list[Entry]] = [[] for _ in self.connectors]
        overlaps: set[tuple[str, str]] = set()
        for entry in entries:
            rel = entry.path[len(INCOMING):]
            matches = [(i, c) for i, c, rx in globs if rx.match(rel)]
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
            status = self.process(connector, entry, result, tmp)
            if status == "failed":
                result.files_waiting = len(files) - i - 1
                if result.files_waiting:
                    self.say("waiting", f"{label}: {result.files_waiting} later file(s) wait in incoming/ for the "
                             "next run, so they reach Purview in order", connector=label,
                             files=result.files_waiting)
                break
        result.seconds = time.monotonic() - started
        self.check_freshness(connector, result)
        return result

    # -- one file ---------------------------------------------------------------------------------

    def process(self, connector: ConnectorMapping, entry: Entry, result: ConnectorSummary, tmp: Path) -> str:
        label = connector_label(connector)
        lock = self.dz.try_lock(entry.path)
        if lock is None:
            if self.dz.exists(entry.path):
                result.files_locked += 1
                self.say("file_locked", f"{entry.path}: skipped: another execution is sending it",
                         file=entry.path, connector=label)
                return "locked"
            return "gone"  # another execution finished it after we listed it
        local = tmp / uuid.uuid4().hex
        try:
            with keep_renewed(lock):
                current = self.dz.stat(entry.path)
                if current is None:
                    return "gone"
                try:
                    self.dz.download(entry.path, local)
                    outcome = self.upload(
                        local, display_name=entry.path, job_id=connector.job_id, mapping=connector,
                        client=self.client, store=GuardedStore(self.dz, lock),
                        records_per_call=self.records_per_call, reporter=self.reporter, now=self.now,
                    )
                    return self.file_outcome(connector, entry, current, outcome, lock, result)
                except UploaderError as exc:  # drop-zone trouble (download, checkpoint, move), a lost lease
                    self.say("file_done", f"{entry.path}: FAILED: {exc}; it stays in incoming/ for the next run",
                             error=True, file=entry.path, status="failed", message=str(exc))
                    result.files_failed += 1
                    return "failed"
        finally:
            local.unlink(missing_ok=True)
            lock.release()

    def file_outcome(self, connector: ConnectorMapping, entry: Entry, current: Entry, outcome: Any, lock: Lock,
                     result: ConnectorSummary) -> str:
        rel = entry.path[len(INCOMING):]
        status = outcome.status
        result.records_sent += outcome.records_sent
        if status in ("sent", "empty", "skipped"):
            if outcome.records_sent:
                self.record_sent(connector)
            today = self.now().strftime("%Y/%m/%d")
            dst = self.free_name(f"{PROCESSED}{today}/{rel}")
            self.move(entry.path, dst, current.etag, lock)
            if status == "skipped":
                result.files_skipped += 1
            else:
                result.files_sent += 1
            self.say("file_moved", f"{entry.path}: moved to {dst}", file=entry.path, to=dst, status=status)
            return status
        if status == "invalid":
            dst = self.free_name(f"{REJECTED}{rel}")
            self.dz.write_json(f"{dst}.errors.json", errors_document(entry.path, outcome.scan))
            self.move(entry.path, dst, current.etag, lock)
            result.files_rejected += 1
            self.say("file_moved", f"{entry.path}: rejected: moved to {dst} (errors in {dst}.errors.json)",
                     file=entry.path, to=dst, status=status)
            return status
        result.files_failed += 1  # failed: stays in incoming/, its checkpoint under state/
        self.say("file_left", f"{entry.path}: left in incoming/; the next run resumes from its checkpoint",
                 file=entry.path, status=status)
        return "failed"

    def free_name(self, path: str) -> str:
        """path, or path with a time stamp before its extension when that name is taken already."""
        if not self.dz.exists(path):
            return path
        p = PurePosixPath(path)
        stamp = self.now().strftime("%H%M%S") + "-" + uuid.uuid4().hex[:6]
        return str(p.with_name(f"{p.stem}.{stamp}{p.suffix}"))

    # -- moves that survive a crash ---------------------------------------------------------------

    def move(self, src: str, dst: str, etag: str, lock: Lock) -> None:
        """Journal the move, copy + delete, drop the journal entry; a run that dies midway is finished later."""
        journal = f"{STATE}moves/{uuid.uuid4().hex}.json"
        self.dz.write_json(journal, {"src": src, "dst": dst, "etag": etag, "at": utc_iso(self.now())})
        self.dz.move(src, dst, lock)
        self.dz.delete(journal)

    def finish_interrupted_moves(self) -> None:
        """Complete moves an earlier execution journaled but did not finish (it died between copy and delete)."""
        for record in self.dz.list(f"{STATE}moves/"):
            data = self.dz.read_json(record.path)
            if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("src", "dst", "etag")):
                self.dz.delete(record.path)
                continue
            src, dst = data["src"], data["dst"]
            lock = self.dz.try_lock(src)
            if lock is None:
                if not self.dz.exists(src):
                    self.dz.delete(record.path)  # finished
                continue  # another execution is working on it
            try:
                current = self.dz.stat(src)
                if current is not None and current.etag == data["etag"]:
                    self.dz.move(src, dst, lock)
                    self.say("file_moved", f"{src}: finished an interrupted move to {dst}", file=src, to=dst)
                self.dz.delete(record.path)
            finally:
                lock.release()

    # -- freshness --------------------------------------------------------------------------------

    @staticmethod
    def state_path(connector: ConnectorMapping) -> str:
        return f"{STATE}connectors/{connector.job_id}.json"

    def record_sent(self, connector: ConnectorMapping) -> None:
        state = self.dz.read_json(self.state_path(connector)) or {}
        now = utc_iso(self.now())
        state.update({"job_id": connector.job_id, "name": connector.name, "last_sent_at": now})
        state.setdefault("first_seen", now)
        self.dz.write_json(self.state_path(connector), state)

    def check_freshness(self, connector: ConnectorMapping, result: ConnectorSummary) -> None:
        """Warn when an employee-profile connector has sent nothing for PROFILE_REFRESH_DAYS days."""
        if not connector.maps_employee_profile:
            return
        state = self.dz.read_json(self.state_path(connector))
        now = self.now()
        if not isinstance(state, dict) or parse_iso(state.get("first_seen")) is None:
            state = {"job_id": connector.job_id, "name": connector.name, "first_seen": utc_iso(now),
                     "last_sent_at": None}
            self.dz.write_json(self.state_path(connector), state)
        since = parse_iso(state.get("last_sent_at")) or parse_iso(state.get("first_seen")) or now
        days = (now - since).total_seconds() / 86400
        result.days_since_sent = days
        if days >= PROFILE_REFRESH_DAYS:
            result.stale = True
            what = "sent nothing" if state.get("last_sent_at") else "sent nothing since it was configured"
            self.say("freshness_warning",
                     f"warning: connector {result.name} maps employeeProfile and has {what} for {int(days)} days; "
                     f"Purview deletes employee profiles not refreshed for 30 days (send every "
                     f"{PROFILE_REFRESH_DAYS}-20 days): check the HR system's export",
                     connector=result.name, job_id=connector.job_id, days_since_sent=round(days, 1))


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
