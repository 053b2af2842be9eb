"""What the uploader tells people and machines: progress, retries, per-file summaries, the run summary.

Three renderings of the same events:
- text on a terminal: a rich progress bar per file (records/s, chunk i of n) and one line per outcome;
- text otherwise (logs, CI, pipes): plain lines, one per event;
- `--log-format json`: one JSON object per line, `{"event": ..., "time": ..., ...}` with the events
  file_started, chunk_sent, retry, file_done, file_skipped, file_invalid, file_planned, warning, summary
  (and whatever `event()` is given by job mode).
Only names, counts, line numbers, rules and durations are ever reported: never a cell value, token or key.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any, Protocol, TextIO

from uploader.model import sink
from uploader.model.safetext import safe_text


class Outcome(Protocol):
    """What the reporter reads from uploader.send.upload.FileOutcome (or job mode's equivalent)."""

    status: str
    records_sent: int
    chunks_sent: int
    retries: int
    seconds: float
    message: str


def safe_name(name: object, limit: int = 300) -> str:
    """A name or text from outside (a path, a blob name, a service's words) fit for one output line: the one
    escaper, uploader.model.safetext.safe_text (secrets withheld, control and invisible characters escaped,
    backslashes doubled, cut to `limit` characters)."""
    return safe_text(name, limit)


#: Libraries whose failures the program turns into its own errors at the edge (send/auth.py, send/https.py,
#: send/ingestion.py): their log lines would repeat what a service sent (MSAL logs a token answer that is not
#: JSON whole, the signed client assertion included; urllib3 logs a malformed status line), so they are off.
SILENCED_LOGGERS = ("msal", "urllib3", "requests")


class EscapingLogHandler(logging.Handler):
    """Every log record any library emits (azure-core, azure-identity, ...) as one escaped line on stderr:
    `warning: LOGGER: MESSAGE`, the message through safe_text (secrets withheld), never a traceback."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a library's bad format string must not end the run
            message = str(record.msg)
        sink.stderr.line(f"{record.levelname.lower()}: {safe_text(record.name, 60)}: {safe_text(message)}")


def install_log_guard() -> None:
    """Route all logging through EscapingLogHandler (warnings and above) and switch SILENCED_LOGGERS off."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(EscapingLogHandler(logging.WARNING))
    root.setLevel(logging.WARNING)
    for name in SILENCED_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.CRITICAL + 1)
        logger.propagate = False
    logging.captureWarnings(True)  # warnings.warn() from libraries: the same escaped line


def _n(value: int) -> str:
    return f"{value:,}"


def _plural(count: int, word: str) -> str:
    if count == 1:
        return f"{_n(count)} {word}"
    return f"{_n(count)} {word[:-1] + 'ies' if word.endswith('ry') else word + 's'}"


class Reporter:
    """Renders upload events as text (progress bar on a TTY) or JSON lines."""

    def __init__(self, log_format: str = "text", stream: TextIO | None = None, err: TextIO | None = None,
                 tty: bool | None = None) -> None:
        if log_format not in ("text", "json"):
            raise ValueError("log_format must be 'text' or 'json'")
        self.json = log_format == "json"
        # Everything goes through the one writer (uploader/model/sink.py), a given stream (tests) included.
        self.out = sink.Writer(stream=stream) if stream is not None else sink.stdout
        self.err = sink.Writer(stream=err) if err is not None else (self.out if self.json else sink.stderr)
        self.tty = (not self.json) and (self.out.isatty() if tty is None else tty)
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self._chunks: dict[str, int] = {}

    # -- plumbing ---------------------------------------------------------------------------------

    def event(self, kind: str, text: str | list[str] | None = None, *, error: bool = False, **fields: Any) -> None:
        """Emit one event: a JSON line with `fields`, or `text` as a line, or a list of lines (on stderr when
        error). A line break inside a line is escaped by the writer: only a list makes several lines."""
        if self.json:
            record = {"event": kind, "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")}
            record.update(fields)
            self.out.json(record, default=str)
        elif text is not None:
            self._line(text, error=error)

    def _line(self, text: str | list[str], error: bool = False) -> None:
        lines = [text] if isinstance(text, str) else text
        if self._progress is not None and not error:
            for line in lines:  # the console escapes what it renders (sink.console)
                self._progress.console.print(line, markup=False, highlight=False)
            return
        (self.err if error else self.out).lines(lines)

    def _start_bar(self, name: str, records: int, done: int, chunks: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("records"),
                TextColumn("{task.fields[rate]}"),
                TextColumn("chunk {task.fields[chunk]}/{task.fields[chunks]}"),
                TimeElapsedColumn(),
                console=sink.console(self.out),
                transient=True,
            )
            self._progress.start()
        self._tasks[name] = self._progress.add_task(name, total=records, completed=done,
                                                    chunk=0, chunks=chunks, rate="")

    def _stop_bar(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        if self._progress is not None and task is not None:
            self._progress.remove_task(task)
        if self._progress is not None and not self._tasks:
            self._progress.stop()
            self._progress = None

    def close(self) -> None:
        for name in list(self._tasks):
            self._stop_bar(name)

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- upload events ----------------------------------------------------------------------------

    def file_started(self, name: str, *, job_id: str, records: int, chunks: int, records_per_call: int,
                     skip_records: int = 0) -> None:
        resume = f", resuming after {_n(skip_records)} acknowledged records" if skip_records else ""
        self._chunks[name] = chunks
        if self.tty:
            self._line(f"{name}: {_plural(records - skip_records, 'record')} to send in "
                       f"{_plural(chunks, 'chunk')} → job {job_id}{resume}")
            self._start_bar(name, records, skip_records, chunks)
        self.event("file_started",
                   f"{name}: sending {_plural(records - skip_records, 'record')} in {_plural(chunks, 'chunk')} "
                   f"(up to {_n(records_per_call)} per call) to job {job_id}{resume}" if not self.tty else None,
                   file=name, job_id=job_id, records=records, chunks=chunks, records_per_call=records_per_call,
                   skip_records=skip_records)

    def chunk_sent(self, name: str, *, chunk: int, chunks: int, records: int, records_acked: int,
                   records_total: int, retries: int) -> None:
        """chunk is 1-based; records_acked counts every acknowledged record of the file (resumes included)."""
        if self.tty and name in self._tasks:
            task = self._tasks[name]
            self._progress.update(task, completed=records_acked, chunk=chunk)
            speed = self._progress.tasks[self._progress.task_ids.index(task)].speed
            self._progress.update(task, rate=f"{speed:,.0f} records/s" if speed else "")
            self._progress.refresh()  # once per chunk: every acknowledged chunk is shown, however fast
        self.event("chunk_sent",
                   None if self.tty else f"{name}: chunk {chunk}/{chunks} accepted ({_plural(records, 'record')}, "
                   f"{_n(records_acked)}/{_n(records_total)}{', ' + _plural(retries, 'retry') if retries else ''})",
                   file=name, chunk=chunk, chunks=chunks, records=records, records_acked=records_acked,
                   records_total=records_total, retries=retries)

    def retry(self, name: str, *, chunk: int, chunks: int, attempt: int, delay: float, reason: str) -> None:
        self.event("retry", f"{name}: chunk {chunk}/{chunks}: {reason}; retry {attempt} in {delay:.1f} s",
                   file=name, chunk=chunk, chunks=chunks, attempt=attempt, delay=round(delay, 3), reason=reason)

    def file_done(self, name: str, outcome: Outcome) -> None:
        """A file finished: sent, empty, or failed (with outcome.message)."""
        self._stop_bar(name)
        fields: dict[str, Any] = dict(file=name, status=outcome.status, records_sent=outcome.records_sent,
                                      chunks_sent=outcome.chunks_sent, retries=outcome.retries,
                                      seconds=round(outcome.seconds, 3))
        if outcome.status == "failed":
            text = (f"{name}: FAILED after {_plural(outcome.records_sent, 'record')} in "
                    f"{_plural(outcome.chunks_sent, 'chunk')}: {outcome.message}")
            self.event("file_done", text, error=True, message=outcome.message, **fields)
        elif outcome.status == "empty":
            self.event("file_done", f"{name}: no records (header only); nothing to send", **fields)
        else:
            self.event("file_done",
                       f"{name}: sent {_plural(outcome.records_sent, 'record')} in "
                       f"{_plural(outcome.chunks_sent, 'chunk')}, {_plural(outcome.retries, 'retry')}, "
                       f"{outcome.seconds:.1f} s", **fields)

    def file_skipped(self, name: str, reason: str) -> None:
        self.event("file_skipped", f"{name}: skipped: {reason}", file=name, reason=reason)

    def file_invalid(self, name: str, *, problem_count: int, lines: Iterable[str]) -> None:
        """The scan's report lines ("FILE:LINE: column NAME: rule") — they never hold cell values."""
        lines = list(lines)
        text = [f"{name}: invalid, nothing sent ({_plural(problem_count, 'problem')}):",
                *(f"  {line}" for line in lines)]
        self.event("file_invalid", text, error=True, file=name, problem_count=problem_count, problems=lines)

    def file_planned(self, name: str, *, job_id: str, records: int, chunks: list[tuple[int, int]],
                     records_per_call: int, skip_records: int = 0) -> None:
        """Dry run: chunks as (first_record, records) pairs."""
        resume = f", resuming after {_n(skip_records)} acknowledged records" if skip_records else ""
        job = job_id or "(none given)"
        lines = [f"{name}: dry run: would send {_plural(records - skip_records, 'record')} in "
                 f"{_plural(len(chunks), 'chunk')} (up to {_n(records_per_call)} per call) to job {job}{resume}"]
        shown = chunks[:5]
        lines += [f"  chunk {i + 1}: records {_n(first + 1)}–{_n(first + count)}" for i, (first, count) in
                  enumerate(shown)]
        if len(chunks) > len(shown):
            lines.append(f"  ... and {_plural(len(chunks) - len(shown), 'more chunk')}")
        self.event("file_planned", lines, file=name, job_id=job_id, records=records,
                   chunks=len(chunks), records_per_call=records_per_call, skip_records=skip_records)

    def warning(self, name: str, text: str) -> None:
        self.event("warning", f"{name}: warning: {text}", file=name, message=text)

    def summary(self, outcomes: Iterable[tuple[str, Outcome]], exit_code: int, *, not_attempted: int = 0) -> None:
        """The closing summary of a run: counts per status and totals."""
        outcomes = list(outcomes)
        counts: dict[str, int] = {}
        for _, o in outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        records = sum(o.records_sent for _, o in outcomes)
        chunks = sum(o.chunks_sent for _, o in outcomes)
        retries = sum(o.retries for _, o in outcomes)
        seconds = sum(o.seconds for _, o in outcomes)
        set_aside = sum(getattr(o, "rows_set_aside", 0) for _, o in outcomes)  # quarantine: rows not sent
        parts = [f"{n} {'sent with rows set aside' if status == 'partial' else status}" for status, n in counts.items()]
        if not_attempted:
            parts.append(f"{not_attempted} not attempted")
        aside = f", {_plural(set_aside, 'row')} set aside" if set_aside else ""
        text = (f"{_plural(len(outcomes) + not_attempted, 'file')}: {', '.join(parts) or 'none'}; "
                f"{_plural(records, 'record')} sent in {_plural(chunks, 'chunk')}{aside}, "
                f"{_plural(retries, 'retry')}, {seconds:.1f} s (exit {exit_code})")
        self.event("summary", text, files=len(outcomes) + not_attempted, statuses=counts, rows_set_aside=set_aside,
                   not_attempted=not_attempted, records_sent=records, chunks_sent=chunks, retries=retries,
                   seconds=round(seconds, 3), exit_code=exit_code)
