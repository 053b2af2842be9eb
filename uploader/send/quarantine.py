"""Rows set aside instead of whole files refused (`--invalid-rows quarantine`, a connector's `invalidRows`).

In quarantine mode a file whose problems all lie in its rows is split, byte for byte, into the rows that pass
(sent as today: chunked, checkpointed, resumed) and the rows that break a rule, which are set aside with the
header row and an errors document (line, column and rule of each; never a value). A problem of the file itself
(header, encoding, structure), more invalid rows than the cap (`maxInvalidRows`, default half the file's rows), or
more than MAX_SET_ASIDE of them, still refuses the file whole, as `refuse` (the default) always does.

Exactly once, whatever kills the process: the split is a pure function of the file's content, so the valid rows
form the same bytes on every run and their checkpoint (keyed by that content's SHA-256) resumes or skips them;
the set-aside rows go to a name derived from the original content's SHA-256, written errors first and rows last
(atomically), so a rows file that exists is complete and is never written twice.

Set aside first: the rows are written before anything of the file is sent or reported, so a set-aside that cannot
be written (an over-long name, a read-only or missing folder) is that file's failure with its own message and
nothing of it leaves. `upload` writes them under `rejected/` beside each file (or --rejected-dir, checked up
front), where `upload *.csv` does not reach, and never takes a set-aside file (`is_set_aside_name`) as input.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from uploader.check.csvscan import SHOWN_PROBLEMS, ChangedWhileSending, ScanResult, scan_file, split_rows
from uploader.errors import UploaderError
from uploader.model import portable
from uploader.model.mapping import DEFAULT_ROW_CAP, ConnectorMapping, RowCap
from uploader.report import Reporter
from uploader.send.upload import FileOutcome, upload_file

#: "sent with rows set aside": the valid rows went, the invalid ones are in the set-aside file.
STATUS_PARTIAL = "partial"


@dataclass
class PartialOutcome(FileOutcome):
    """A FileOutcome that also says how many rows were set aside, and where."""

    rows_set_aside: int = 0
    set_aside_to: str = ""


@dataclass(frozen=True)
class RowPolicy:
    """What to do with invalid rows: `refuse` the file whole, or `quarantine` them (up to `cap`)."""

    mode: str = "refuse"
    cap: RowCap = DEFAULT_ROW_CAP

    @classmethod
    def resolve(cls, mapping: ConnectorMapping | None, mode: str | None = None, cap: RowCap | None = None) -> RowPolicy:
        """The command line's choice (--invalid-rows, --max-invalid-rows or their twins) wins over the mapping's
        invalidRows and maxInvalidRows; refuse and half the rows are the defaults."""
        chosen = mode or (mapping.invalid_rows if mapping is not None else None) or "refuse"
        limit = cap or (mapping.max_invalid_rows if mapping is not None else None) or DEFAULT_ROW_CAP
        return cls(chosen, limit)


class SetAside(Protocol):
    """Where a file's invalid rows go: a folder (upload) or the drop zone's rejected/ (job mode)."""

    def target(self, sha256: str) -> str:
        """The rows file's name (its errors document: the same + '.errors.json'), for this content."""

    def exists(self, target: str) -> bool: ...

    def write_errors(self, target: str, document: dict[str, Any]) -> None: ...

    def write_rows(self, target: str, local: Path) -> None:
        """Write the rows file atomically (a reader sees all of it or nothing)."""


#: `upload`'s default place for set-aside rows: a folder beside each file, so `upload *.csv` does not reach them.
SET_ASIDE_FOLDER = "rejected"
_SET_ASIDE_RE = re.compile(r"\.invalid-rows-[0-9a-f]{12}(\.[^./]*)?$")


def is_set_aside_name(name: str) -> bool:
    """True for a name set_aside_name makes (`NAME.invalid-rows-<12 hex>.csv`): never taken as input."""
    return _SET_ASIDE_RE.search(name) is not None


def check_set_aside_folder(folder: Path) -> str | None:
    """None when set-aside files can be written in `folder` (created 0700 if missing), else why not: a probe
    file is created exclusively and removed, before anything is sent."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not folder.is_dir():
            return "not a folder"
        probe = folder / f".hr-write-check-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.close(portable.create_private(probe))
        probe.unlink()
    except FileExistsError:
        return "not a folder (a file of that name exists)"
    except OSError as exc:
        return _why(exc)
    return None


def set_aside_name(name: str, sha256: str) -> str:
    """`departures.csv` -> `departures.invalid-rows-<first 12 of the SHA-256>.csv`: one name per content."""
    p = PurePosixPath(name)
    suffix = p.suffix or ".csv"
    return str(p.with_name(f"{p.stem if p.suffix else p.name}.invalid-rows-{sha256[:12]}{suffix}"))


class FolderSetAside:
    """`upload`: the rows in `rejected/` beside the file, or in --rejected-dir; private files (0600), atomic renames."""

    def __init__(self, folder: Path, file_name: str) -> None:
        self.folder = folder
        self.file_name = file_name

    def target(self, sha256: str) -> str:
        return str(self.folder / set_aside_name(self.file_name, sha256))

    def exists(self, target: str) -> bool:
        return os.path.lexists(target)

    def _write(self, target: str, fill: Callable[[Any], None]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = Path(target).with_name(f".{Path(target).name}.tmp")  # one name: a killed run's leftover is replaced
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = portable.create_private(tmp)
        try:
            with os.fdopen(fd, "wb") as f:
                fill(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def write_errors(self, target: str, document: dict[str, Any]) -> None:
        data = json.dumps(document, indent=1).encode()
        self._write(f"{target}.errors.json", lambda f: f.write(data))

    def write_rows(self, target: str, local: Path) -> None:
        def copy(f: Any) -> None:
            with open(local, "rb") as src:
                while block := src.read(1 << 20):
                    f.write(block)

        self._write(target, copy)


def errors_document(name: str, scan: ScanResult, target: str) -> dict[str, Any]:
    """The set-aside rows' errors: line (in the original file), column and rule of each; never a value."""
    return {
        "file": name,
        "rows_file": target,
        "rows_set_aside": len(scan.row_spans),
        "records_in_file": scan.records,
        "problem_count": len(scan.row_problems),
        "problems": [p.to_json() for p in scan.row_problems],
        "note": "these rows were set aside (kept byte for byte under the header in rows_file) and not sent; the "
                "file's other rows were sent. Lines are the original file's.",
    }


def upload_with_policy(
    path: str | os.PathLike[str],
    *,
    display_name: str | None,
    mapping: ConnectorMapping | None,
    reporter: Reporter,
    records_per_call: int,
    dry_run: bool = False,
    invalid_rows: str | None = None,
    max_invalid_rows: RowCap | None = None,
    set_aside: SetAside | None = None,
    work_dir: Path | None = None,
    **send: Any,
) -> FileOutcome:
    """upload_file, with the connector's invalid-rows policy applied (send: upload_file's other keywords)."""
    path = Path(path)
    name = display_name or str(path)
    policy = RowPolicy.resolve(mapping, invalid_rows, max_invalid_rows)
    common = dict(display_name=name, mapping=mapping, reporter=reporter, records_per_call=records_per_call,
                  dry_run=dry_run, **send)
    if policy.mode != "quarantine":
        return upload_file(path, **common)
    scan = scan_file(path, mapping, records_per_call, display_name=name, collect_rows=True)
    if scan.ok:
        return upload_file(path, **common)
    if scan.file_problem_count or scan.rows_truncated or len(scan.row_spans) > policy.cap.limit(scan.records):
        return _refuse_whole(name, scan, policy, reporter)
    if set_aside is None:
        set_aside = FolderSetAside(path.parent / SET_ASIDE_FOLDER, path.name)
    work = _work_folder(work_dir or path.parent)
    valid = work / (path.name if path.name.lower().endswith(".csv") else f"{path.name}.csv")  # the name sent
    rows = work / "set-aside.csv"
    target = set_aside.target(scan.sha256)
    count = len(scan.row_spans)
    try:
        with _private(valid) as valid_out, _private(rows) as rows_out:
            split_rows(path, scan, valid_out, rows_out)
        # The rows are set aside before anything of the file is sent or reported (errors first, rows last: the
        # rows file marks it done): a set-aside that cannot be written is this file's failure, nothing sent.
        wrote = False
        if not dry_run and not set_aside.exists(target):
            try:
                set_aside.write_errors(target, errors_document(name, scan, target))
                set_aside.write_rows(target, rows)
            except Exception as exc:  # noqa: BLE001 - OSError, the drop zone's errors: this file's failure
                message = (f"its {count} invalid row(s) could not be set aside in {target} ({_why(exc)}): "
                           "nothing of it was sent (--rejected-dir chooses another folder)")
                outcome = FileOutcome("failed", scan=scan, message=message)
                reporter.file_done(name, outcome)
                return outcome
            wrote = True
        _report_rows(name, scan, target, reporter, "would be set aside" if dry_run else
                     "set aside" if wrote else "already set aside by an earlier run")
        for warning in scan.warnings:  # the whole file's, with its line numbers
            reporter.warning(name, warning)
        outcome = upload_file(valid, **{**common, "reporter": _OwnLineWarnings(reporter, name)})
    except ChangedWhileSending as exc:
        message = f"{exc}: nothing sent or set aside; a rerun validates it again"
        outcome = FileOutcome("failed", scan=scan, message=message)
        reporter.file_done(name, outcome)
        return outcome
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # Exit 4 tells of rows this run left out: it set them aside, or it sent the file's valid rows without them,
    # or (job mode) it files the very version an interrupted run sent. A dry run, or a rerun that skips content
    # already sent, sets nothing aside: it says where the rows are, and its status stays planned or skipped.
    if outcome.status in ("sent", "skipped", "empty") and (wrote or outcome.records_sent or outcome.completes_earlier):
        result = PartialOutcome(STATUS_PARTIAL, outcome.records_sent, outcome.chunks_sent, outcome.retries,
                                outcome.seconds, scan, outcome.message, rows_set_aside=count, set_aside_to=target)
        reporter.event("rows_set_aside", f"{name}: {outcome.records_sent:,} record(s) sent, {count} row(s) set "
                       f"aside in {target}", file=name, records_sent=outcome.records_sent, rows_set_aside=count,
                       set_aside_to=target, sent_status=outcome.status)
        return result
    if outcome.status == "planned":
        outcome.message = f"{outcome.message}; {count} row(s) would be set aside in {target}"
    elif outcome.status in ("skipped", "empty"):
        outcome.message = f"{outcome.message}; its {count} invalid row(s) were set aside earlier in {target}"
    return outcome


def _why(exc: BaseException) -> str:
    """Why a set-aside write failed, in the program's words (an OSError's text may hold the path: not shown)."""
    if isinstance(exc, OSError):
        code = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        if exc.errno == errno.ENAMETOOLONG:
            return f"{code}: the set-aside name is too long for the file system"
        return f"{code}: {exc.strerror}" if exc.strerror else code
    if isinstance(exc, UploaderError):
        return str(exc)
    return f"unexpected {type(exc).__name__}"


class _OwnLineWarnings:
    """The reporter, minus the split copy's own line-numbered scan warnings (its lines are not the file's: the
    whole file's warnings were reported already). Every other call, warnings included, goes through."""

    def __init__(self, reporter: Reporter, name: str) -> None:
        self._reporter = reporter
        self._prefix = f"{name}:"

    def warning(self, name: str, text: str) -> None:
        if text.startswith(self._prefix) and text[len(self._prefix):][:1].isdigit():
            return
        self._reporter.warning(name, text)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._reporter, attr)


upload_with_policy.sets_rows_aside = True  # type: ignore[attr-defined]  # job mode hands it rejected/


def _refuse_whole(name: str, scan: ScanResult, policy: RowPolicy, reporter: Reporter) -> FileOutcome:
    if scan.file_problem_count:
        why = "a problem of the file itself (header, encoding or structure) cannot be set aside with a row"
    elif scan.rows_truncated:
        why = "too many invalid rows to set aside"
    else:
        why = (f"{len(scan.row_spans)} of {scan.records} rows are invalid, above maxInvalidRows {policy.cap} "
               f"(at most {policy.cap.limit(scan.records)} here)")
    reporter.warning(name, f"quarantine: refused whole: {why}")
    reporter.file_invalid(name, problem_count=scan.problem_count, lines=scan.report_lines())
    return FileOutcome("invalid", scan=scan, message=f"{scan.problem_count} problems; nothing sent ({why})")


def _report_rows(name: str, scan: ScanResult, target: str, reporter: Reporter, verb: str) -> None:
    count = len(scan.row_spans)
    lines = [p.format(name) for p in scan.row_problems[:SHOWN_PROBLEMS]]
    hidden = len(scan.row_problems) - len(lines)
    if hidden > 0:
        lines.append(f"{name}: ... and {hidden} more")
    text = "\n".join([f"{name}: {count} invalid row(s) {verb} in {target} (errors: {target}.errors.json); the "
                      "other rows are sent:", *(f"  {line}" for line in lines)])
    reporter.event("rows_invalid", text, error=True, file=name, rows=count, set_aside_to=target, problems=lines)


WORK_PREFIX = ".hr-quarantine-"  # + "<pid>-<random>": the split copies of one file, removed on every exit path


def _work_folder(parent: Path) -> Path:
    """A private folder for the split copies (HR data); first removes those of processes that no longer run."""
    for old in parent.glob(f"{WORK_PREFIX}*-*"):
        pid = old.name[len(WORK_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or old.is_symlink() or not old.is_dir():
            continue
        if not portable.process_alive(int(pid)):  # else still running, or another user's: not ours to judge
            shutil.rmtree(old, ignore_errors=True)
    work = parent / f"{WORK_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    work.mkdir(mode=0o700)
    return work


@contextlib.contextmanager
def _private(path: Path) -> Any:
    fd = portable.create_private(path)
    with os.fdopen(fd, "wb") as f:
        yield f


__all__ = ["PartialOutcome", "RowPolicy", "FolderSetAside", "SET_ASIDE_FOLDER", "STATUS_PARTIAL",
           "check_set_aside_folder", "is_set_aside_name", "set_aside_name", "upload_with_policy"]
