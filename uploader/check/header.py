"""A connector mapping drafted from a CSV file's header row (`mapping init`): the header rule that keeps a
record from being taken for column names, and the match of column names to each scenario's fields
(`scenarios.COLUMN_ALIASES`, case-insensitive). Reads the header only, never a record."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

from uploader.check.csvscan import POWERSHELL_TYPE_LINE, RULE_POWERSHELL_TYPE
from uploader.errors import EXIT_INVALID, UploaderError, UsageError
from uploader.model.boundedio import FileReadError, read_prefix
from uploader.model.safetext import INVISIBLE_CLASS, safe_text
from uploader.model.scenarios import (
    SCENARIO_COLUMN_ALIASES,
    SCENARIOS,
    ScenarioType,
    column_key,
    field_aliases,
    find_column,
    lookup_scenario,
    scenario_names_hint,
)

DATE_PREFIX_RE = re.compile(r"\d{4}-\d\d-\d\d|\d{1,2}/\d{1,2}/\d{2,4}")
_INVISIBLE = re.compile(f"[{INVISIBLE_CLASS}]")
#: Longest cell taken for a column name.
MAX_COLUMN_NAME = 128
#: The header must end within this many bytes (a header row is short; this is not a CSV export).
MAX_HEADER_CHARS = 1 << 20


class HeaderError(UploaderError):
    """The file's first line is not a usable header row: a CSV problem (exit 3), named by file and line."""

    exit_code = EXIT_INVALID


def known_column_names() -> set[str]:
    """Every column name the catalogue knows (Microsoft's documented names, the field names, the scenario
    column's names), compared as scenarios.column_key compares them."""
    names = {*SCENARIO_COLUMN_ALIASES}
    for spec in SCENARIOS.values():
        for f in spec.fields:
            names.update(field_aliases(f.name))
    return {column_key(name) for name in names}


def header_problem(header: list[str], confirmed: bool) -> str | None:
    """Why `header` (the first line's cells) cannot be taken for the header row, or None.

    The rule (docs/mapping.md): every cell is a column name (non-empty, at most MAX_COLUMN_NAME characters,
    beginning with a letter or '_', holding no '@', no control or invisible character and not a date), the
    names are distinct, and at least one of them is a column name the catalogue knows; `--first-line-is-header`
    (confirmed) waives only that last condition, for exports whose every column has its own name.
    The reason never repeats a cell (a record's cells are personal data).
    """
    if not any(cell.strip() for cell in header):
        return "the first line must be the header row, but it is blank"
    for i, raw in enumerate(header, start=1):
        cell = raw.strip()
        if not cell:
            return f"looks like a record, not the header row (cell {i} is empty, and every column needs a name)"
        if "@" in cell or DATE_PREFIX_RE.match(cell) or not (cell[0].isalpha() or cell[0] == "_"):
            return (f"looks like a record (cell {i} holds an address, a date, a number or another value, not a "
                    "column name), not the header row; export with column names in the first line")
        if _INVISIBLE.search(cell):
            return f"cell {i} of the header row holds a control or invisible character"
        if len(cell) > MAX_COLUMN_NAME:
            return f"looks like a record (cell {i} is longer than {MAX_COLUMN_NAME} characters), not the header row"
    keys = [column_key(cell) for cell in header]
    if len(set(keys)) != len(keys):
        first = next(i for i, k in enumerate(keys) if keys.index(k) != i)
        return (f"looks like a record (cells {keys.index(keys[first]) + 1} and {first + 1} are equal, and column "
                "names are distinct), not the header row")
    if not confirmed and not set(keys) & known_column_names():
        return ("none of the first line's cells is a column name Microsoft documents for a scenario's field "
                "(e.g. EmailAddress, ResignationDate), so it may be a record: if it is the header row, say so with "
                "--first-line-is-header")
    return None


def read_header(path: Path, confirmed: bool = False) -> list[str]:
    """The header row of a CSV file, read without touching the records (HeaderError naming file:1)."""
    try:
        data = read_prefix(path, limit=MAX_HEADER_CHARS)
    except FileReadError as exc:
        raise UsageError(str(exc)) from None
    name = safe_text(path)
    # Decoded leniently so that the records after the header cannot fail it; the header itself must be UTF-8.
    text = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
    if len(data) == MAX_HEADER_CHARS and "\n" not in text:
        raise HeaderError(f"{name}:1: no line break in the first {MAX_HEADER_CHARS >> 20} MiB: not a CSV export")
    if text.startswith(POWERSHELL_TYPE_LINE):
        raise HeaderError(f"{name}:1: {RULE_POWERSHELL_TYPE}")
    try:
        header = next(csv.reader(io.StringIO(text), strict=True), [])
    except csv.Error:
        raise HeaderError(f"{name}:1: the header row is not well-formed CSV") from None
    if any("\ufffd" in cell or "\x00" in cell for cell in header):
        raise HeaderError(f"{name}:1: the header row is not UTF-8 text (export as CSV UTF-8)")
    problem = header_problem(header, confirmed)
    if problem is not None:
        # A file without a header row: its first record must not be echoed back as "column names".
        raise HeaderError(f"{name}:1: {problem}")
    return [cell.strip() for cell in header]


def build_mapping(header: list[str], specs: list[ScenarioType], scenario_column: str | None,
                  job_id: str) -> tuple[dict[str, Any], list[str], list[str]]:
    """(mapping JSON, missing required fields as `type.field`, optional fields without a column)."""
    mapping: dict[str, Any] = {"jobId": job_id}
    if scenario_column is not None:
        mapping["scenarioColumn"] = scenario_column
    missing: list[str] = []
    unmatched_optional: list[str] = []
    scenarios = []
    for spec in specs:
        columns: dict[str, str] = {}
        for f in spec.fields:
            column = find_column(header, field_aliases(f.name))
            if column is not None:
                columns[f.name] = column
            elif f.required:
                missing.append(f"{spec.type}.{f.name}")
                columns[f.name] = field_aliases(f.name)[0]  # Microsoft's name: a suggestion to check
            else:
                unmatched_optional.append(f"{spec.type}.{f.name}")
        entry: dict[str, Any] = {"type": spec.type}
        if scenario_column is not None:
            entry["value"] = spec.title  # Microsoft's example HRScenario values
        entry["columns"] = columns
        scenarios.append(entry)
    mapping["scenarios"] = scenarios
    return mapping, missing, unmatched_optional


def scenarios_named(names: list[str]) -> list[ScenarioType]:
    specs: list[ScenarioType] = []
    for name in names:
        spec = lookup_scenario(name)
        if spec is None:
            raise UsageError(f"--scenario {safe_text(repr(name))}: unknown (expected {scenario_names_hint()})")
        if spec in specs:
            raise UsageError(f"--scenario {spec.type}: given twice")
        specs.append(spec)
    return specs
