"""Read → validate → chunk: one streaming pass over an HR CSV file, then the chunks to send.

`scan_file` reads the file once, in binary blocks (memory stays flat whatever the file size), and
returns a `ScanResult`: problems (file, line, column, rule — never a cell value), warnings, the
SHA-256 of the content and the chunk plan. `iter_chunks` then yields each chunk's body (the header
row followed by at most `records_per_call` whole records and at most MAX_CHUNK_BYTES of them), cutting the
file at record boundaries the scan found, so a quoted field holding commas, quotes or line breaks is never
split.

Physical lines end at "\\n" ("\\r\\n" included). Blocks without a quote character take a fast path
(split on commas, check whole columns at once); blocks with quotes go through `csv.reader`; any
block that fails a check is re-read row by row to name the lines and rules.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import os
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import accumulate, islice, repeat
from operator import add
from pathlib import Path
from typing import AnyStr, BinaryIO

from uploader.check.rules import (
    RULE_REQUIRED,
    WARN_LAST_WORKING,
    ColumnPlan,
    DateWindow,
    ScenarioPlan,
    ValidCache,
    cell_problem,
    column_ok,
    header_problems,
    missing_optional,
    plan_columns,
)
from uploader.model.mapping import ConnectorMapping
from uploader.model.safetext import safe_text
from uploader.model.scenarios import Field, Kind

BLOCK_SIZE = 1 << 20
#: A record still open (inside quotes) after this many characters is reported, not buffered further.
MAX_RECORD_CHARS = 1 << 20
#: A physical line longer than this is refused, naming the line (docs/mapping.md, "Limits"). An HR record is a
#: few hundred bytes; parsing one 16 MiB line of `ab,ab,…` into its cells took 561 MB, 1 MiB keeps a record's
#: cells to a few tens of MB, so `validate` stays under 100 MB whatever a line holds.
MAX_LINE_BYTES = 1 << 20
#: The header row is refused beyond these bounds (parsing it would hold every name in memory: 16 MiB of
#: names took ~800 MB). Real HR exports have tens to a few hundred columns with short names.
MAX_HEADER_BYTES = 1 << 20
MAX_COLUMNS = 10_000
#: A chunk holds at most this many bytes of records (besides the header row and `records_per_call`); a record
#: larger than this goes alone. The chunk is held in memory while it is sent (once: send/ingestion.py does not
#: copy it into the multipart body): 8 MiB kept `upload` of ~900 KiB records at 61 MB peak RSS (docs/performance.md),
#: where 5,000 records of ~1 MiB made one 5 GB chunk. HR records are a few hundred bytes, so the default 5,000 per
#: call (~1-2 MiB) is never cut by it.
MAX_CHUNK_BYTES = 8 << 20
SHOWN_PROBLEMS = 20
#: Quarantine keeps every invalid row's span and problems in memory: above this many rows the file is refused whole.
MAX_SET_ASIDE = 100_000
_BOM = codecs.BOM_UTF8

#: Windows PowerShell's Export-Csv starts its file with this line unless told -NoTypeInformation
#: (https://learn.microsoft.com/powershell/module/microsoft.powershell.utility/export-csv?view=powershell-5.1).
POWERSHELL_TYPE_LINE = "#TYPE"
RULE_POWERSHELL_TYPE = ("the first line is PowerShell's #TYPE line, not the header row: export with "
                        "Export-Csv -NoTypeInformation (or delete line 1)")

RULE_LONG_HEADER = (f"the header row is longer than {MAX_HEADER_BYTES >> 10} KiB (at most {MAX_COLUMNS:,} columns "
                    "of names are read): not the header of an HR export")

_CSV_ERRORS = {
    "unexpected end of data": "a quoted field is never closed (unterminated quote)",
    "new-line character seen in unquoted field": "a bare carriage return ends a line (save the file with "
    "Windows or Unix line endings)",
    "field larger than field limit": "a field is longer than 131072 characters (an unterminated quote?)",
    "expected after": "a quote inside a quoted field is not doubled (write \"\" for a quote)",
}


@dataclass(frozen=True)
class Problem:
    """One broken rule: where (physical line, column name) and which rule; never the cell's value."""

    line: int
    column: str | None
    rule: str

    def format(self, name: str) -> str:
        where = f"{name}:{self.line}:"
        return f"{where} column {safe_text(self.column)}: {self.rule}" if self.column else f"{where} {self.rule}"

    def to_json(self) -> dict[str, object]:
        return {"line": self.line, "column": self.column, "rule": self.rule}


@dataclass(frozen=True)
class Chunk:
    """Records [first_record, first_record + records) of the file; `line_count` physical lines."""

    index: int
    first_record: int
    records: int
    line_count: int


@dataclass
class ScanResult:
    """What one pass over a file found, and how it will be sent."""

    path: Path
    display_name: str
    size: int
    mtime_ns: int
    sha256: str = ""
    header: tuple[str, ...] = ()
    header_bytes: bytes = b""
    records: int = 0
    skip_records: int = 0
    skip_lines: int = 0
    chunks: list[Chunk] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    warnings: list[str] = field(default_factory=list)
    # With collect_rows (quarantine): the problems that belong to one record (or one blank line) and can be set
    # aside with it, every one of them; the physical line span of each such record; the rest are file problems.
    row_problems: list[Problem] = field(default_factory=list)
    row_spans: list[tuple[int, int]] = field(default_factory=list)
    row_problem_count: int = 0
    rows_truncated: bool = False  # more than MAX_SET_ASIDE rows broke a rule: not all were kept

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    @property
    def file_problem_count(self) -> int:
        """Problems of the file itself (header, encoding, structure): no row can be set aside for them."""
        return self.problem_count - self.row_problem_count

    def resume_from(self, skip: int) -> ScanResult | None:
        """This plan from record `skip` on, when `skip` falls on one of its chunk boundaries (else None:
        scan again with skip_records). Saves a second pass when a run resumes with the same chunk size."""
        if not self.ok or self.skip_records:
            return None
        lines = self.skip_lines
        # A scan from `skip` plans the same cuts after it (the byte cap counts from each cut): this plan's tail.
        for i, chunk in enumerate(self.chunks + [Chunk(len(self.chunks), self.records, 0, 0)]):
            if chunk.first_record == skip:
                rest = [replace(c, index=j) for j, c in enumerate(self.chunks[i:])]
                return replace(self, skip_records=skip, skip_lines=lines, chunks=rest)
            lines += chunk.line_count
        return None

    def report_lines(self) -> list[str]:
        """The first 20 problems as `FILE:LINE: column NAME: rule`, then a count of the rest."""
        lines = [p.format(self.display_name) for p in self.problems]
        hidden = self.problem_count - len(self.problems)
        if hidden > 0:
            lines.append(f"{self.display_name}: ... and {hidden} more problem{'s' if hidden > 1 else ''}")
        return lines


class _Stop(Exception):
    """The file cannot be read further (not UTF-8, binary, malformed CSV)."""


class _LineTooLong(Exception):
    """A physical line over MAX_LINE_BYTES: not an HR record, and not worth holding in memory."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _Scanner:
    """Consumes the file's text block by block; keeps counts, problems and the chunk plan."""

    def __init__(self, result: ScanResult, mapping: ConnectorMapping | None, per_call: int, today: dt.date,
                 collect_rows: bool = False, chunk_bytes: int = MAX_CHUNK_BYTES) -> None:
        self.result = result
        self.collect_rows = collect_rows
        self.date_columns: list[tuple[int, str, Field]] = []  # (index, column, field) of every mapped date column
        self.mapping = mapping
        self.per_call = per_call
        self.window = DateWindow.around(today)
        self.caches: dict[Kind, ValidCache] = {}
        self.plan: ColumnPlan | None = None
        self.width = 0
        self.header_lines = 0
        self.lines = 0  # physical lines consumed so far (header included)
        self.records = 0
        self.last_record_line = 0
        self.pending = ""  # a record still inside quotes at the end of the last block
        self.blank_lines: list[int] = []  # blank lines not yet followed by a record
        self.short_rows, self.first_short_line = 0, 0  # records with fewer cells than the header, accepted
        self.missing_reported: set[tuple[str, str]] = set()
        self.late_warnings = 0
        self.first_late_line = 0
        self.late_count: int = 0
        self.late_first: int | None = None  # this block's implausible lastWorkingDate records
        # chunk planning: the line reached at each record count where a cut falls. A chunk ends after per_call
        # records, or before the record that would take its bytes over chunk_bytes (a larger record goes alone).
        self.chunk_bytes = max(1, chunk_bytes)
        self.next_cut = result.skip_records if result.skip_records > 0 else per_call
        self.cuts: list[tuple[int, int]] = []
        self.chunk_first = 0  # record count where the chunk being planned starts
        self.chunk_line = 0  # the line after which it starts (the header row's last line, or the last cut)
        self.chunk_start = 0  # the byte offset there; only a lower bound of it while not chunk_exact
        self.chunk_exact = False
        # Byte offsets are worked out only where a chunk may reach chunk_bytes (an ordinary file never does):
        # the raw blocks that may still be asked about, as (lines before, byte offset, bytes), and their line ends.
        self.raw: list[tuple[int, int, bytes]] = []
        self.raw_ends: dict[int, list[int]] = {}
        self.lines_noted = 0
        self.bytes_seen = 0

    def problem(self, line: int, column: str | None, rule: str, span: tuple[int, int] | None = None) -> None:
        """Record a broken rule; `span` (first and last physical line) marks a problem of that one record."""
        self.result.problem_count += 1
        if len(self.result.problems) < SHOWN_PROBLEMS:
            self.result.problems.append(Problem(line, column, rule))
        if span is None:
            return
        result = self.result
        result.row_problem_count += 1
        if not self.collect_rows:
            return
        if not result.row_spans or result.row_spans[-1] != span:
            if len(result.row_spans) >= MAX_SET_ASIDE:
                result.rows_truncated = True
                return
            result.row_spans.append(span)
        elif result.rows_truncated:
            return
        result.row_problems.append(Problem(line, column, rule))

    # -- header -------------------------------------------------------------------------------------

    def read_header(self, block: bytes, text: str) -> str:
        """Parse the header from the first block; keep its raw bytes; return the text after it."""
        if text.startswith(POWERSHELL_TYPE_LINE):
            self.problem(1, None, RULE_POWERSHELL_TYPE)
            raise _Stop
        first_line = block[:block.find(b"\n") + 1 or len(block)]
        if len(first_line) > MAX_HEADER_BYTES:
            self.problem(1, None, RULE_LONG_HEADER)
            raise _Stop
        if first_line.count(b",") >= MAX_COLUMNS:
            self.problem(1, None, f"the header row has more than {MAX_COLUMNS:,} columns: not the header of an "
                         "HR export")
            raise _Stop
        reader = csv.reader(io.StringIO(text), strict=True)
        try:
            header = next(reader)
        except csv.Error as exc:
            self.problem(1, None, _csv_rule(exc))
            raise _Stop from None
        if not any(cell.strip() for cell in header):
            self.problem(1, None, "the first line must be the header row, but it is blank")
            raise _Stop
        self.header_lines = self.lines = self.chunk_line = reader.line_num
        cut = _index_after_lines(block, b"\n", self.header_lines)
        self.result.header_bytes = block[:cut] if block[:cut].endswith(b"\n") else block[:cut] + b"\n"
        self.result.header = tuple(header)
        self.width = len(header)
        for column, rule in header_problems(header, _known_names(self.mapping)):
            self.problem(1, column, rule)
        self.plan, plan_problems = plan_columns(header, self.mapping)
        for column, rule in plan_problems:
            self.problem(1, column, rule)
        seen_dates: set[int] = set()
        for scenario in self.plan.scenarios if self.plan is not None else ():
            for fc in scenario.present:
                if fc.field.kind is Kind.DATE and fc.index not in seen_dates:
                    seen_dates.add(fc.index)
                    self.date_columns.append((fc.index, fc.column, fc.field))
        for column, fields in missing_optional(self.plan).items():
            self.result.warnings.append(
                f"{self.result.display_name}:1: column {safe_text(column)}: not in the header; the mapping names it "
                f"for {', '.join(fields)} (optional), so {'that field is' if len(fields) == 1 else 'those fields are'} "
                "absent from this file"
            )
        return text[_index_after_lines(text, "\n", self.header_lines):]

    # -- blocks -------------------------------------------------------------------------------------

    def note_bytes(self, block: bytes, final: bool) -> None:
        """Keep the next raw block (as it is in the file) for the byte cap of chunks; drop blocks no longer needed:
        those before the chunk's start (while its offset is not known), the last record and the uncounted lines."""
        keep = min(self.lines + 1, self.last_record_line or self.lines + 1,
                   self.chunk_line if not self.chunk_exact else self.lines + 1)  # the first line still needed
        while len(self.raw) > 1 and self.raw[1][0] < keep:  # the first block ends before it
            self.raw_ends.pop(self.raw.pop(0)[1], None)
        lines = block.count(b"\n") + (1 if final and block and not block.endswith(b"\n") else 0)
        self.raw.append((self.lines_noted, self.bytes_seen, block))
        self.lines_noted += lines
        self.bytes_seen += len(block)

    def _raw_of(self, line: int) -> tuple[int, int, bytes]:
        """The raw block holding physical line `line` (one of the blocks kept)."""
        for i in range(len(self.raw) - 1, -1, -1):
            if self.raw[i][0] < line:
                return self.raw[i]
        raise AssertionError("a line no longer kept")

    def _line_end(self, line: int) -> int:
        """Byte offset just after physical line `line` (in the file without its BOM)."""
        first, offset, data = self._raw_of(line)
        ends = self.raw_ends.get(offset)
        if ends is None:  # where each line of that block ends: worked out once per block, only when asked
            parts = data.split(b"\n")
            tail = parts.pop()
            ends = list(map(add, accumulate(map(len, parts)), range(offset + 1, offset + 1 + len(parts))))
            if tail:
                ends.append(offset + len(data))
            self.raw_ends[offset] = ends
        return ends[line - first - 1]

    def feed(self, text: str, final: bool) -> None:
        """Check one block of text that ends at a line break (or at the end of the file)."""
        if self.pending:
            text, self.pending = self.pending + text, ""
        if not text:
            return
        if "\x00" in text:
            line = self.lines + 1 + text.count("\n", 0, text.index("\x00"))
            self.problem(line, None, "contains a NUL byte: a binary file, not CSV text")
            raise _Stop
        if '"' not in text and self._fast_block(text):
            return
        self._csv_block(text, final)

    def _fast_block(self, text: str) -> bool:
        """A block without quotes: each line is one record. False when the block needs a closer look."""
        if "\r" in text:
            text = text.replace("\r\n", "\n")
            if "\r" in text:
                return False
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        if self.blank_lines or "" in lines:
            return False
        if set(map(str.count, lines, repeat(","))) != {self.width - 1}:
            return False
        flat = ",".join(lines).split(",")
        width = self.width
        if not self._columns_ok(lambda i: flat[i::width], len(lines)):
            return False
        self._note_late(None)
        self._advance(range(1, len(lines) + 1), len(lines))
        return True

    def _csv_block(self, text: str, final: bool) -> None:
        """A block with quoted fields: csv.reader decides where records end."""
        reader = csv.reader(io.StringIO(text), strict=True)
        rows: list[list[str]] = []
        ends: list[int] = []
        try:
            for row in reader:
                rows.append(row)
                ends.append(reader.line_num)
        except csv.Error as exc:
            done = ends[-1] if ends else 0
            rest = text[_index_after_lines(text, "\n", done):]
            if "unexpected end of data" in str(exc) and not final and len(rest) <= MAX_RECORD_CHARS:
                self.pending = rest  # the record continues in the next block
                if rows:
                    self._rows(rows, ends, done)
                return
            if rows:
                self._rows(rows, ends, done)
            too_long = "unexpected end of data" in str(exc) and not final and len(rest) > MAX_RECORD_CHARS
            self.problem(self.lines + 1, None, f"a record longer than {MAX_RECORD_CHARS >> 20} MiB (the limit for "
                         "one record; an unterminated quote?)" if too_long else _csv_rule(exc))
            raise _Stop from None
        self._rows(rows, ends, text.count("\n") + (0 if text.endswith("\n") else 1))

    def _rows(self, rows: list[list[str]], ends: list[int], block_lines: int) -> None:
        """Records parsed by csv.reader; `ends[i]` is the block-relative line where row i ends."""
        widths = set(map(len, rows))
        if not self.blank_lines and widths == {self.width}:
            columns = list(zip(*rows, strict=True))
            if self._columns_ok(lambda i: columns[i], len(rows)):
                self._note_late(ends)
                self._advance(ends, block_lines)
                return
        elif not self.blank_lines and rows and max(widths) <= self.width and self._short_rows_fast(rows, ends):
            self._advance(ends, block_lines)
            return
        self._precise(rows, ends, block_lines)

    def _short_rows_fast(self, rows: list[list[str]], ends: list[int]) -> bool:
        """A block where some records lack trailing cells: pad them with empty cells and check the columns.
        False (nothing counted) when a padded row breaks a rule or looks blank: the precise pass names it."""
        width = self.width
        short = [i for i, row in enumerate(rows) if len(row) < width]
        if not all(any(map(str.strip, rows[i])) for i in short):
            return False
        padded = [row if len(row) == width else row + [""] * (width - len(row)) for row in rows]
        columns = list(zip(*padded, strict=True))
        if not self._columns_ok(lambda i: columns[i], len(padded)):
            return False
        self._note_late(ends)
        first = short[0]
        self._note_short(len(short), self.lines + 1 + (ends[first - 1] if first else 0))
        return True

    def _note_short(self, count: int, line: int) -> None:
        self.short_rows += count
        self.first_short_line = self.first_short_line or line

    # -- checks -------------------------------------------------------------------------------------

    def _columns_ok(self, column: Callable[[int], Sequence[str]], count: int) -> bool:
        """Whole-column checks for a block of `count` well-formed records (late dates noted, not failed)."""
        self.late_count, self.late_first = 0, None
        plan = self.plan
        if plan is None or not plan.scenarios:
            return True
        groups: list[tuple[ScenarioPlan, list[int] | None]]
        if plan.scenario_index is None:
            if self.mapping is not None and self.mapping.scenario_column is not None:
                return False  # scenarioColumn missing from the header: reported once
            groups = [(plan.scenarios[0], None)]
        else:
            values = list(map(str.lower, map(str.strip, column(plan.scenario_index))))
            by_value = plan.by_value()
            kinds = set(values)
            if not kinds <= by_value.keys():
                return False
            if len(kinds) == 1:
                groups = [(by_value[values[0]], None)]
            else:
                groups = [(by_value[v], [i for i, x in enumerate(values) if x == v]) for v in kinds]
        for scenario, rows in groups:
            if scenario.missing_required:
                return False
            for fc in scenario.present:
                col = column(fc.index)
                if rows is not None:
                    col = [col[i] for i in rows]
                if not column_ok(fc.field, col, self.caches.setdefault(fc.field.kind, ValidCache())):
                    return False
                if fc.field.name == "lastWorkingDate" and not self.window.column_ok(col):
                    count, first = self.window.outside(col)
                    self.late_count += count
                    first = first if rows is None else rows[first]
                    self.late_first = first if self.late_first is None else min(first, self.late_first)
        return True

    def _note_late(self, ends: list[int] | None) -> None:
        """Turn the block's implausible lastWorkingDate rows into a warning count and first line."""
        if not self.late_count or self.late_first is None:
            return
        self.late_warnings += self.late_count
        first = self.late_first
        line = self.lines + 1 + (first if ends is None else (ends[first - 1] if first else 0))
        self.first_late_line = self.first_late_line or line

    def _precise(self, rows: list[list[str]], ends: list[int], block_lines: int) -> None:
        """Row by row: name every broken rule with its line (and collect warnings)."""
        start = self.lines
        record_ends: list[int] = []
        previous_end = 0
        for row, end in zip(rows, ends, strict=True):
            line = start + previous_end + 1  # where this row starts
            span = (line, start + end)
            previous_end = end
            if not any(cell.strip() for cell in row) and (len(row) <= 1 or len(row) != self.width):
                self.blank_lines.append(line)
                continue
            self._flush_blanks()
            record_ends.append(end)
            if len(row) > self.width:
                self.problem(line, None, f"has {len(row)} cells; the header has {self.width}", span)
                continue
            cells = len(row)
            if cells < self.width:  # missing trailing cells are empty, unless the row's scenario needs them
                row = row + [""] * (self.width - cells)
            scenario = self._scenario_of(row, line, span)
            if cells < self.width:
                needed = [] if scenario is None else [
                    fc.column for fc in scenario.present if fc.field.required and fc.index >= cells
                ]
                if needed and scenario is not None:  # (needed implies a scenario)
                    self.problem(line, None, f"has {cells} cells; the header has {self.width}, and the missing "
                                             f"cells include {', '.join(needed)}, required for "
                                             f"{scenario.spec.type} rows", span)
                    continue
                self._note_short(1, line)
            if scenario is None:
                continue
            for missing in scenario.missing_required:  # named once, at the first row that needs it
                if (scenario.spec.type, missing.column) not in self.missing_reported:
                    self.missing_reported.add((scenario.spec.type, missing.column))
                    self.problem(line, missing.column, f"not in the header, but required for {scenario.spec.type} rows")
            for fc in scenario.present:
                value = row[fc.index]
                rule = cell_problem(fc.field, value)
                if rule == RULE_REQUIRED and fc.field.kind is Kind.DATE:
                    rule = self._date_elsewhere(row, fc.index, fc.column) or rule
                if rule is not None:
                    self.problem(line, fc.column, rule, span)
                elif fc.field.name == "lastWorkingDate" and not self.window.cell_ok(value):
                    self.late_warnings += 1
                    self.first_late_line = self.first_late_line or line
        self._advance(record_ends, block_lines)

    def _date_elsewhere(self, row: list[str], index: int, column: str) -> str | None:
        """For an empty required date: another mapped date column of the row that holds a valid date (a date put
        in the wrong column, as in Microsoft's multi-scenario sample). Names columns only, never the value."""
        for other, name, date_field in self.date_columns:
            cell = row[other] if other != index and other < len(row) else ""
            if cell.strip() and cell_problem(date_field, cell) is None:
                return f"{safe_text(column)} is empty; {safe_text(name)} holds a date on this row"
        return None

    def _scenario_of(self, row: list[str], line: int, span: tuple[int, int] | None = None) -> ScenarioPlan | None:
        """The scenario a well-formed row belongs to (None: nothing to check, or reported)."""
        plan = self.plan
        if plan is None or not plan.scenarios:
            return None
        if plan.scenario_index is None:
            assert self.mapping is not None
            return None if self.mapping.scenario_column is not None else plan.scenarios[0]
        value = row[plan.scenario_index].strip().lower()
        scenario = plan.by_value().get(value)
        if scenario is None:
            assert self.mapping is not None
            known = ", ".join(repr(s.value) for s in self.mapping.scenarios)
            rule = "empty" if not value else f"not one of the mapped scenario values ({known})"
            self.problem(line, self.mapping.scenario_column, rule, span)
        return scenario

    def _flush_blanks(self) -> None:
        """Blank lines followed by a record are errors (trailing ones at the end of the file are not)."""
        for line in self.blank_lines:
            self.problem(line, None, f"blank line (every record needs {self.width} cells)", (line, line))
        self.blank_lines.clear()

    # -- counting and chunk planning ------------------------------------------------------------------

    def _advance(self, record_ends: Sequence[int], block_lines: int) -> None:
        """Count a block's records (block-relative end lines) and note the line at each chunk cut."""
        start, records = self.lines, self.records
        n = len(record_ends)
        if n:
            self._plan_cuts(record_ends, start, records)
            self.last_record_line = start + record_ends[-1]
        self.records = records + n
        self.lines = start + block_lines

    def _plan_cuts(self, record_ends: Sequence[int], start: int, records: int) -> None:
        """The cuts among a block's records: by count (per_call, or the resume point first), and before the first
        record that takes the chunk over chunk_bytes. Only the records of the file decide, so the plan is the same
        on every run, and a plan scanned from a cut on (resume) has the same cuts after it."""
        n = len(record_ends)
        resuming = self.chunk_first < self.result.skip_records  # records before the resume point are not sent
        while True:
            cut = self.next_cut
            # everything read so far is within the cap: no record of this block can take the chunk over it
            if not resuming and self.bytes_seen - self.chunk_start > self.chunk_bytes:
                if not self.chunk_exact:
                    self.chunk_start, self.chunk_exact = self._line_end(self.chunk_line), True
                limit = self.chunk_start + self.chunk_bytes
                fit = bisect_right(record_ends, limit, key=lambda end: self._line_end(start + end))
                if fit < n:  # record `fit` does not fit: the chunk ends before it (or with it, when it is alone)
                    cut = min(cut, max(records + fit, self.chunk_first + 1))
            if cut > records + n:
                return
            # a cut at `records` falls after the previous block's last record
            line = self.last_record_line if cut == records else start + record_ends[cut - records - 1]
            self.cuts.append((cut, line))
            resuming = False
            self.chunk_first, self.chunk_line = cut, line
            offset = self._raw_of(line)[1]
            if offset in self.raw_ends:
                self.chunk_start, self.chunk_exact = self._line_end(line), True
            else:  # the start of its block is a lower bound: the exact offset is worked out only if needed
                self.chunk_start, self.chunk_exact = offset, False
            self.next_cut = cut + self.per_call

    def finish(self) -> None:
        """Close the plan: trailing blank lines are left out, the last partial chunk is added."""
        result = self.result
        result.records = self.records
        if self.short_rows:
            n = self.short_rows
            result.warnings.append(
                f"{result.display_name}:{self.first_short_line}: {n} record{'s have' if n > 1 else ' has'} fewer "
                f"cells than the header ({self.width}); the missing trailing cells are treated as empty"
            )
        if self.late_warnings:
            n = self.late_warnings
            result.warnings.append(
                f"{result.display_name}:{self.first_late_line}: {n} lastWorkingDate "
                f"value{'s are' if n > 1 else ' is'} {WARN_LAST_WORKING}"
            )
        if not result.ok:
            return
        skip = min(result.skip_records, self.records)
        cuts = [c for c in self.cuts if c[0] < self.records]
        cuts.append((self.records, self.last_record_line or self.header_lines))
        start_records, start_lines = 0, self.header_lines
        for records, line in cuts:
            if records > skip and records > start_records:
                result.chunks.append(Chunk(len(result.chunks), start_records, records - start_records,
                                           line - start_lines))
            if records <= skip:
                result.skip_lines = line
            start_records, start_lines = records, line
        if skip == 0:
            result.skip_lines = self.header_lines


def _known_names(mapping: ConnectorMapping | None) -> set[str]:
    """Lower-case column names the mapping gives: the only header text an error may repeat."""
    if mapping is None:
        return set()
    names = {column.lower() for s in mapping.scenarios for column in s.columns.values()}
    if mapping.scenario_column:
        names.add(mapping.scenario_column.lower())
    return names


def _index_after_lines(text: AnyStr, newline: AnyStr, n: int) -> int:
    """Index just after the n-th line break (len(text) when there are fewer)."""
    pos = 0
    for _ in range(n):
        nxt = text.find(newline, pos)
        if nxt < 0:
            return len(text)
        pos = nxt + 1
    return pos


def _csv_rule(exc: csv.Error) -> str:
    text = str(exc)
    for needle, rule in _CSV_ERRORS.items():
        if needle in text:
            return rule
    return "malformed CSV"


def _long_line(data: bytes, limit: int) -> int | None:
    """The offset where a line longer than `limit` starts in data, or None. A few `find` calls per block: a line
    over `limit` covers a whole aligned window of limit/2 bytes, so only windows without a line break are looked
    at closely."""
    half = max(1, limit // 2)
    for start in range(0, len(data), half):
        if data.find(b"\n", start, start + half) != -1:
            continue
        line_start = data.rfind(b"\n", 0, start) + 1
        end = data.find(b"\n", start)
        if (len(data) if end == -1 else end) - line_start > limit:
            return line_start
    return None


def _blocks(f: io.BufferedReader, hasher: hashlib._Hash, block_size: int) -> Iterator[tuple[bytes, bool]]:
    """(bytes ending at a line break, is_final) from a binary file; the final block may end anywhere.

    No block holds a line over MAX_LINE_BYTES (_LineTooLong names its line), and none is longer than block_size
    unless it is one line, so the records parsed from one block hold at most ~max(block_size, MAX_LINE_BYTES) / 2
    cells (memory stays flat whatever a line holds)."""
    carry = b""
    lines = 0  # line breaks before this block
    while True:
        data = f.read(block_size)
        if not data:
            break
        hasher.update(data)
        data = carry + data if carry else data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            if len(data) > MAX_LINE_BYTES:
                raise _LineTooLong(lines + 1)
            carry = data
            continue
        carry = data[cut:]
        block = data[:cut]
        if len(block) > MAX_LINE_BYTES and (at := _long_line(block, MAX_LINE_BYTES)) is not None:
            raise _LineTooLong(lines + 1 + block.count(b"\n", 0, at))
        lines += block.count(b"\n")
        while len(block) > block_size:  # after a long line: cut again at line breaks, so no block parses more
            piece = block.rfind(b"\n", 0, block_size) + 1 or block.find(b"\n") + 1  # than block_size bytes or one line
            yield block[:piece], False
            block = block[piece:]
        if block:
            yield block, False
    if len(carry) > MAX_LINE_BYTES:
        raise _LineTooLong(lines + 1)
    yield carry, True


def scan_file(
    path: Path | str,
    mapping: ConnectorMapping | None,
    records_per_call: int,
    skip_records: int = 0,
    display_name: str | None = None,
    *,
    today: dt.date | None = None,
    block_size: int = BLOCK_SIZE,
    collect_rows: bool = False,
    chunk_bytes: int = MAX_CHUNK_BYTES,
) -> ScanResult:
    """One streaming pass: structure, rules (when a mapping is given), SHA-256 and the chunk plan (chunks of at most
    `records_per_call` records and `chunk_bytes` bytes of them; a larger record goes alone)."""
    p = Path(path)
    st = p.stat()
    result = ScanResult(p, display_name or str(path), st.st_size, st.st_mtime_ns, skip_records=max(0, skip_records))
    scanner = _Scanner(result, mapping, records_per_call, today or dt.date.today(), collect_rows=collect_rows,
                       chunk_bytes=chunk_bytes)
    hasher = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    first = True
    with open(p, "rb") as f:
        try:
            for block, final in _blocks(f, hasher, block_size):
                if first:
                    if block.startswith(_BOM):
                        block = block[len(_BOM):]
                    if final and not block.strip():
                        scanner.problem(1, None, "the file is empty (expected a header row and records)")
                        raise _Stop
                scanner.note_bytes(block, final)
                text = _decode(decoder, block, final, scanner)
                if first:
                    first = False
                    text = scanner.read_header(block, text)
                scanner.feed(text, final)
            if scanner.pending:
                scanner.problem(scanner.lines + 1, None, _CSV_ERRORS["unexpected end of data"])
        except _LineTooLong as exc:
            scanner.problem(exc.line, None, RULE_LONG_HEADER if exc.line == 1 else
                            f"a line longer than {MAX_LINE_BYTES >> 20} MiB (the limit for one record; an HR "
                            "record is a few hundred bytes): not a CSV export, or records not separated by line "
                            "breaks")
        except _Stop:
            pass  # nothing more is checked; the digest still covers the whole file
        while rest := f.read(block_size):
            hasher.update(rest)
    result.sha256 = hasher.hexdigest()
    scanner.finish()
    return result


def _decode(decoder: codecs.IncrementalDecoder, block: bytes, final: bool, scanner: _Scanner) -> str:
    try:
        return decoder.decode(block, final)
    except UnicodeDecodeError as exc:
        line = scanner.lines + 1 + block.count(b"\n", 0, exc.start)
        scanner.problem(line, None, "not UTF-8 text (a binary file, or another encoding: export as CSV UTF-8)")
        raise _Stop from None


class ChangedWhileSending(ValueError):
    """The file no longer holds what was validated (appended to, rewritten) while its chunks were read."""


def iter_chunks(path: Path | str, scan: ScanResult) -> Iterator[tuple[Chunk, bytes]]:
    """Each planned chunk's body: the header row, then its records exactly as they are in the file.

    The file's size and modification time are checked before every chunk, and the SHA-256 of everything read
    is compared with the scan's before the last chunk is handed out: a file changed since it was validated
    raises ChangedWhileSending, at the latest before its final chunk (so it is never recorded as sent).
    """
    if not scan.ok:
        raise ValueError("refusing to send a file that failed validation")
    hasher = hashlib.sha256()
    with open(path, "rb") as f:

        def check() -> None:
            st = os.fstat(f.fileno())
            if (st.st_size, st.st_mtime_ns) != (scan.size, scan.mtime_ns):
                raise ChangedWhileSending(f"{scan.display_name}: the file changed after it was validated")

        check()
        lines = iter(f)
        for line in islice(lines, scan.skip_lines):
            hasher.update(line)
        last = len(scan.chunks) - 1
        header = len(scan.header_bytes)
        for i, chunk in enumerate(scan.chunks):
            # one copy of the chunk is held while it is sent (the lines joined are freed at once)
            body = b"".join([scan.header_bytes, *islice(lines, chunk.line_count)])
            hasher.update(memoryview(body)[header:])
            if i == last:
                while rest := f.read(BLOCK_SIZE):
                    hasher.update(rest)
                if hasher.hexdigest() != scan.sha256:
                    raise ChangedWhileSending(f"{scan.display_name}: the file changed after it was validated")
            check()
            yield chunk, body
            del body


def split_rows(path: Path | str, scan: ScanResult, valid: BinaryIO, rejected: BinaryIO) -> int:
    """Quarantine: copy the file's records byte for byte, those in `scan.row_spans` (invalid) to `rejected` and the
    others to `valid`, each after the header row. Returns the number of invalid spans copied. A file that no longer
    holds what was scanned (SHA-256) raises ChangedWhileSending: nothing from it may be sent or set aside."""
    if scan.file_problem_count or scan.rows_truncated:
        raise ValueError("only a file whose problems are all in its rows can be split")
    spans = sorted(scan.row_spans)
    header_lines = scan.header_bytes.count(b"\n")
    hasher = hashlib.sha256()
    valid.write(scan.header_bytes)
    rejected.write(scan.header_bytes)
    i = 0
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            hasher.update(line)
            if number <= header_lines:
                continue
            while i < len(spans) and spans[i][1] < number:
                i += 1
            inside = i < len(spans) and spans[i][0] <= number
            (rejected if inside else valid).write(line)
    if hasher.hexdigest() != scan.sha256:
        raise ChangedWhileSending(f"{scan.display_name}: the file changed after it was validated")
    return len(spans)


__all__ = ["ChangedWhileSending", "Chunk", "Problem", "ScanResult", "iter_chunks", "scan_file", "split_rows"]
