"""Upload one file: validate, consult the checkpoint, send its chunks in order, checkpoint each one.

Shared by `upload` (cmd_upload) and job mode. Nothing is sent from an invalid file; a dry run makes
no request at all (the client is not even needed).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from uploader import stopping
from uploader.check.csvscan import ChangedWhileSending, ScanResult, iter_chunks, scan_file
from uploader.errors import SignInError, UploadError
from uploader.report import Reporter
from uploader.send.checkpoint import (
    CheckpointStore,
    StateUnreadable,
    StoreWriteError,
    check_record,
    checkpoint_key,
    decide,
    new_record,
)

if TYPE_CHECKING:
    from uploader.model.mapping import ConnectorMapping
    from uploader.send.ingestion import IngestionClient, RetryNotice

class CheckpointWriteError(Exception):
    """A checkpoint could not be written after a chunk was acknowledged."""


STATUSES = ("sent", "skipped", "invalid", "failed", "empty", "planned", "stopped")


@dataclass
class FileOutcome:
    """How one file went. status: sent | skipped | invalid | failed | empty (| planned, dry runs only).

    `fatal` marks failures whose cause is the run's, not the file's (sign-in refused, a permanent refusal
    by the service such as the 403 job/app mismatch): the next files would fail the same way.
    """

    status: str
    records_sent: int = 0
    chunks_sent: int = 0
    retries: int = 0
    seconds: float = 0.0
    scan: ScanResult | None = None
    message: str = ""
    fatal: bool = False
    #: skipped because a run that stopped before filing sent this very file (job mode's `source`): this run is the
    #: first to finish its delivery, so it tells what that run would have told (exit 4 for rows set aside)
    completes_earlier: bool = False


def upload_file(
    path: str | os.PathLike[str],
    *,
    display_name: str | None,
    job_id: str,
    mapping: ConnectorMapping | None,
    client: IngestionClient | None,
    store: CheckpointStore,
    records_per_call: int,
    force: bool = False,
    dry_run: bool = False,
    reporter: Reporter,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    source: str | None = None,
) -> FileOutcome:
    """Validate `path` and send it to `job_id` in chunks of at most records_per_call records.

    `source` (job mode) names the very file being sent (its drop-zone path and version): a completed checkpoint
    with the same source means a run sent it but stopped before filing it, so it is not sent again.
    """
    path = Path(path)
    name = display_name or str(path)
    started = time.monotonic()

    def elapsed() -> float:
        return time.monotonic() - started

    scan = scan_file(path, mapping, records_per_call, display_name=name)
    if not scan.ok:
        reporter.file_invalid(name, problem_count=scan.problem_count, lines=scan.report_lines())
        return FileOutcome("invalid", seconds=elapsed(), scan=scan,
                           message=f"{scan.problem_count} problems; nothing sent")
    for warning in scan.warnings:
        reporter.warning(name, warning)

    key = checkpoint_key(job_id, scan.sha256)
    try:
        previous = store.load(key) if job_id else None  # a dry run without a job ID has no checkpoints to consult
    except StateUnreadable as exc:  # the store set it aside: the file is sent from its first record
        reporter.warning(name, f"its checkpoint {exc}: treated as absent")
        previous = None
    record, distrust = check_record(previous, job_id=job_id or "", sha256=scan.sha256, records_total=scan.records,
                                    now=now())
    if distrust:
        reporter.warning(name, f"its checkpoint is not trusted ({distrust}): treated as absent")
    decision = decide(record, records_total=scan.records, now=now(), force=force, source=source)
    if decision.action == "skip":
        reporter.file_skipped(name, decision.reason)
        return FileOutcome("skipped", seconds=elapsed(), scan=scan, message=decision.reason,
                           completes_earlier=decision.same_source)

    skip = decision.skip_records
    if skip and (resumed := scan.resume_from(skip)) is not None:
        scan = resumed  # the same chunk size as the interrupted run: its plan, from the boundary on
    elif skip:
        # Another chunk size since the interrupted run: plan again from the first unacknowledged record.
        first_sha = scan.sha256
        scan = scan_file(path, mapping, records_per_call, skip_records=skip, display_name=name)
        if not scan.ok or scan.sha256 != first_sha:
            message = "the file changed while it was being read; run again"
            reporter.file_done(name, FileOutcome("failed", message=message))
            return FileOutcome("failed", seconds=elapsed(), scan=scan, message=message)

    if dry_run:
        reporter.file_planned(name, job_id=job_id, records=scan.records,
                              chunks=[(c.first_record, c.records) for c in scan.chunks],
                              records_per_call=records_per_call, skip_records=skip)
        return FileOutcome("planned", seconds=elapsed(), scan=scan,
                           message=f"would send {scan.records - skip} records in {len(scan.chunks)} chunks")

    if scan.records == 0:
        outcome = FileOutcome("empty", seconds=elapsed(), scan=scan, message="no records (header only)")
        reporter.file_done(name, outcome)
        return outcome

    if client is None:
        raise ValueError("upload_file needs a client unless dry_run")
    total_chunks = len(scan.chunks)
    reporter.file_started(name, job_id=job_id, records=scan.records, chunks=total_chunks,
                          records_per_call=records_per_call, skip_records=skip)
    sent = chunks_sent = retries = 0
    acked = skip

    def save(record: dict[str, Any]) -> None:
        try:
            store.save(key, record)
        except OSError as exc:  # a full disk, a read-only folder: the chunk went, its record did not
            raise CheckpointWriteError(f"could not write the checkpoint in {store.folder(key)} "
                                       f"({type(exc).__name__}: {exc.strerror or 'write failed'})") from None
        except StoreWriteError as exc:  # the drop zone's store: its message names the zone and the reason
            raise CheckpointWriteError(f"could not write the checkpoint in {store.folder(key)} ({exc})") from None

    # Nothing leaves before this file's own checkpoint can be written where it lives: a checkpoint folder that
    # refuses writes (permissions, a full disk, a file-size limit) would otherwise have every run send the same
    # chunk again. The record says what is acknowledged so far (0, or where a resumed run starts).
    try:
        save(new_record(job_id, scan.sha256, name, records_per_call, scan.records, skip, now(), source=source))
    except CheckpointWriteError as exc:
        message = f"{exc}: nothing was sent (a chunk without its checkpoint would be sent again by every run)"
        outcome = FileOutcome("failed", 0, 0, 0, elapsed(), scan, message, fatal=True)
        reporter.file_done(name, outcome)
        return outcome

    upload_name = path.name if path.name.lower().endswith(".csv") else f"{path.name}.csv"
    try:
        for chunk, body in iter_chunks(path, scan):
            number = chunk.index + 1
            stopping.check()  # a stop asked for while the last chunk was in flight: it is recorded; stop here

            def on_retry(notice: RetryNotice, number: int = number) -> None:
                reporter.retry(name, chunk=number, chunks=total_chunks, attempt=notice.attempt,
                               delay=notice.delay, reason=notice.reason)

            retries += client.send(job_id, body, upload_name, on_retry=on_retry)
            sent += chunk.records
            chunks_sent += 1
            acked = chunk.first_record + chunk.records
            done = acked >= scan.records
            save(new_record(job_id, scan.sha256, name, records_per_call, scan.records, acked, now(),
                            completed=done, source=source))
            reporter.chunk_sent(name, chunk=number, chunks=total_chunks, records=chunk.records,
                                records_acked=acked, records_total=scan.records, retries=retries)
            del body  # before the next chunk is read: one chunk in memory at a time (docs/performance.md)
    except stopping.Stopped as stop:  # what of this file was acknowledged (and recorded, unless at once)
        stop.outcome = FileOutcome("stopped", sent, chunks_sent, retries, elapsed(), scan,
                                   f"{acked} of {scan.records} records acknowledged and recorded; the next run "
                                   "resumes there")
        raise
    except (UploadError, SignInError, ChangedWhileSending, CheckpointWriteError) as exc:
        fatal = isinstance(exc, SignInError | CheckpointWriteError) or getattr(exc, "permanent", False)
        if isinstance(exc, ChangedWhileSending):
            message = f"{exc} (while it was being sent): not recorded as sent; a rerun validates and sends it again"
        elif isinstance(exc, CheckpointWriteError):
            message = (f"{exc}; a rerun may send the last chunk again ({acked} of {scan.records} records "
                       "acknowledged)")
        else:
            message = f"{exc} ({acked} of {scan.records} records acknowledged; a rerun resumes there)"
        outcome = FileOutcome("failed", sent, chunks_sent, retries, elapsed(), scan, message, fatal=fatal)
        reporter.file_done(name, outcome)
        return outcome
    if acked < scan.records:  # the plan did not cover the file: never claim it was sent
        outcome = FileOutcome("failed", sent, chunks_sent, retries, elapsed(), scan,
                              f"only {acked} of {scan.records} records were planned and sent")
        reporter.file_done(name, outcome)
        return outcome
    if chunks_sent == 0:  # every record was acknowledged by an earlier run: just record completion
        try:
            save(new_record(job_id, scan.sha256, name, records_per_call, scan.records, acked, now(), completed=True,
                            source=source))
        except CheckpointWriteError as exc:
            outcome = FileOutcome("failed", 0, 0, 0, elapsed(), scan, str(exc), fatal=True)
            reporter.file_done(name, outcome)
            return outcome
    outcome = FileOutcome("sent", sent, chunks_sent, retries, elapsed(), scan)
    reporter.file_done(name, outcome)
    return outcome
