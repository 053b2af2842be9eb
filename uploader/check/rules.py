"""Cell and header rules (docs/mapping.md, "Row rules"), in two forms that share one definition of each rule:

- *column checks* (`column_ok`) answer "is every cell of this column valid?" for a whole batch with
  C-level operations (joined-string regexes, set differences, `map`), the fast path for valid files;
- *cell checks* (`cell_problem`) say which rule one cell breaks, used to name the line once a batch
  fails its column check.

No function here returns or formats a cell's value: HR data is personal data.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from uploader.model.mapping import ConnectorMapping
from uploader.model.safetext import INVISIBLE_CLASS
from uploader.model.scenarios import MAX_LENGTH, Field, Kind, ScenarioType

# --- the rules -------------------------------------------------------------------------------------

# Characters no UPN holds, which would make two addresses look alike or hide text: C0/C1 controls, the soft
# hyphen, zero-width characters, bidirectional marks, overrides and isolates, the BOM, Unicode's invisible
# operators, tag characters (U+E0000 block), variation selectors, the Hangul fillers (U+115F, U+1160, U+3164,
# U+FFA0), the blank Braille pattern (U+2800) and spaces other than U+0020: the escaper's own set
# (uploader/model/safetext.py), so what a UPN may hold is exactly what prints as itself.
INVISIBLE_CHARS = INVISIBLE_CLASS
_INVISIBLE_RE = re.compile(f"[{INVISIBLE_CHARS}]")
_UPN = rf"[^@\s{INVISIBLE_CHARS}]+@[^@\s{INVISIBLE_CHARS}]+"
_LEAP_YEAR = r"(?:\d\d(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)"
_CALENDAR_DATE = (
    r"(?:\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
    rf"|02-(?:0[1-9]|1\d|2[0-8]))|{_LEAP_YEAR}-02-29)"
)
_TIME = r"T(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,7})?)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)?"
_DATE = _CALENDAR_DATE + _TIME
# Same shape without the calendar, to tell "not a real date" from "not ISO 8601".
_DATE_SHAPE = r"\d{4}-\d\d-\d\d" + _TIME

UPN_RE = re.compile(_UPN)
DATE_RE = re.compile(_DATE)
DATE_SHAPE_RE = re.compile(_DATE_SHAPE)

# A column is joined with "\n" (no valid UPN or date contains a line break) and matched once.
_UPN_COLUMN_RE = re.compile(rf"{_UPN}(?:\n{_UPN})*")
_DATE_COLUMN_RE = re.compile(rf"{_DATE}(?:\n{_DATE})*")

DATE_FORMAT_HINT = "YYYY-MM-DDThh:mm[:ss[.fffffff]][Z|±hh:mm]"

RULE_REQUIRED = "required, but empty"
RULE_UPN = "not a user principal name (needs exactly one '@' and no spaces)"
RULE_UPN_INVISIBLE = ("not a user principal name (holds an invisible, control or text-direction character, "
                      "e.g. a zero-width space, a right-to-left override, a tag character or a variation selector)")
RULE_DATE = f"not an ISO 8601 date-time ({DATE_FORMAT_HINT})"
RULE_CALENDAR = "not a real calendar date"

#: lastWorkingDate further in the past or future than this is suspicious (a warning, not an error).
LAST_WORKING_PAST = dt.timedelta(days=183)
LAST_WORKING_FUTURE = dt.timedelta(days=365)


def cell_problem(field: Field, value: str) -> str | None:
    """The rule one cell breaks, or None."""
    if not value.strip():
        return RULE_REQUIRED if field.required else None
    kind = field.kind
    if kind is Kind.UPN:
        if UPN_RE.fullmatch(value):
            return None
        return RULE_UPN_INVISIBLE if _INVISIBLE_RE.search(value) else RULE_UPN
    if kind is Kind.DATE:
        if DATE_RE.fullmatch(value):
            return None
        return RULE_CALENDAR if DATE_SHAPE_RE.fullmatch(value) else RULE_DATE
    limit = MAX_LENGTH.get(kind)
    if limit is not None and len(value) > limit:
        return f"longer than {limit} characters"
    return None


class ValidCache:
    """Values already proven valid for one kind of check (dates and codes repeat across an export).

    Bounded, so memory stays flat whatever the file size.
    """

    def __init__(self, limit: int = 200_000) -> None:
        self.values: set[str] = set()
        self.limit = limit

    def unseen(self, values: Sequence[str]) -> set[str]:
        return set(values) - self.values

    def add(self, values: set[str]) -> None:
        if len(self.values) + len(values) <= self.limit:
            self.values |= values


def column_ok(field: Field, values: Sequence[str], cache: ValidCache | None = None) -> bool:
    """True when every cell of the column passes `cell_problem` (fast, whole-column operations)."""
    if not values:
        return True
    kind = field.kind
    if kind is Kind.UPN:
        return _UPN_COLUMN_RE.fullmatch("\n".join(values)) is not None
    if kind is Kind.DATE:
        todo = cache.unseen(values) if cache is not None else set(values)
        if not todo:
            return True
        ok = _DATE_COLUMN_RE.fullmatch("\n".join(todo)) is not None
        if ok and cache is not None:
            cache.add(todo)
        return ok
    if field.required and not all(map(str.strip, values)):
        return False
    limit = MAX_LENGTH.get(kind)
    return limit is None or max(map(len, values)) <= limit


# --- lastWorkingDate plausibility (a warning) ------------------------------------------------------


@dataclass(frozen=True)
class DateWindow:
    """ISO date strings bounding plausible lastWorkingDate values; ISO dates compare as strings."""

    earliest: str
    latest: str

    @classmethod
    def around(cls, today: dt.date) -> DateWindow:
        return cls((today - LAST_WORKING_PAST).isoformat(), (today + LAST_WORKING_FUTURE).isoformat())

    def column_ok(self, values: Sequence[str]) -> bool:
        return not values or (min(values)[:10] >= self.earliest and max(values)[:10] <= self.latest)

    def outside(self, values: Sequence[str]) -> tuple[int, int]:
        """How many values fall outside the window, and the index of the first one."""
        prefixes = list(map(_DATE_PREFIX, values))
        bad = {p for p in set(prefixes) if not self.earliest <= p <= self.latest}
        first = next(i for i, p in enumerate(prefixes) if p in bad)
        return sum(map(bad.__contains__, prefixes)), first

    def cell_ok(self, value: str) -> bool:
        return self.earliest <= value[:10] <= self.latest


_DATE_PREFIX = operator.itemgetter(slice(0, 10))
WARN_LAST_WORKING = "more than 6 months in the past or more than 1 year ahead"


# --- header → column plan --------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldColumn:
    """One mapped field of a scenario and the header index of its column (None: not in the header)."""

    field: Field
    column: str  # the column name the mapping gives
    index: int | None


class PresentColumn(Protocol):
    """A FieldColumn whose column is in the header (what ScenarioPlan.present yields)."""

    @property
    def field(self) -> Field: ...

    @property
    def column(self) -> str: ...

    @property
    def index(self) -> int: ...


@dataclass(frozen=True)
class ScenarioPlan:
    """How to check the rows of one scenario in this file."""

    spec: ScenarioType
    value: str | None  # lower-cased HRScenario value, or None for a single-scenario connector
    columns: tuple[FieldColumn, ...]

    @property
    def missing_required(self) -> tuple[FieldColumn, ...]:
        return tuple(c for c in self.columns if c.index is None and c.field.required)

    @property
    def present(self) -> tuple[PresentColumn, ...]:
        return cast("tuple[PresentColumn, ...]", tuple(c for c in self.columns if c.index is not None))


@dataclass(frozen=True)
class ColumnPlan:
    """The header resolved against a mapping (columns matched case-insensitively)."""

    header: tuple[str, ...]
    scenario_index: int | None  # header index of scenarioColumn, when the connector has one
    scenarios: tuple[ScenarioPlan, ...]

    def by_value(self) -> dict[str, ScenarioPlan]:
        return {s.value: s for s in self.scenarios if s.value is not None}


def header_problems(header: Sequence[str], known: Collection[str] = ()) -> list[tuple[str | None, str]]:
    """(column, rule) for empty or duplicate header names.

    A duplicate is named only when it is a `known` (lower-case) name, such as a column the mapping names:
    a file without its header row has data in its first line, and a cell value must never be shown as if
    it were a column name; other duplicates are named by their positions.
    """
    problems: list[tuple[str | None, str]] = []
    seen: dict[str, int] = {}
    for i, name in enumerate(header, start=1):
        key = name.strip().lower()
        if not key:
            problems.append((None, f"header cell {i} is empty (every column needs a name)"))
        elif key in seen:
            if key in known:
                problems.append((name, "duplicate column name in the header (names match case-insensitively)"))
            else:
                problems.append((None, f"duplicate column name in the header: cells {seen[key]} and {i} have the "
                                       "same name (names match case-insensitively; is the header row missing?)"))
        seen.setdefault(key, i)
    return problems


def plan_columns(header: Sequence[str], mapping: ConnectorMapping | None) -> tuple[ColumnPlan, list[tuple[str, str]]]:
    """Resolve mapped column names to header positions; (column, rule) problems for what is missing.

    Required columns missing for a scenario are reported against that scenario's rows (a connector
    may read several files that each hold one scenario), except for single-scenario connectors,
    where the header itself is wrong.
    """
    index: dict[str, int] = {}
    for i, name in enumerate(header):
        index.setdefault(name.strip().lower(), i)
    if mapping is None:
        return ColumnPlan(tuple(header), None, ()), []
    problems: list[tuple[str, str]] = []
    scenario_index = None
    if mapping.scenario_column is not None:
        scenario_index = index.get(mapping.scenario_column.lower())
        if scenario_index is None:
            problems.append((mapping.scenario_column, "the mapping's scenarioColumn is not in the header"))
    plans = []
    for s in mapping.scenarios:
        cols = tuple(
            FieldColumn(s.spec.field(name), column, index.get(column.lower())) for name, column in s.columns.items()
        )
        value = s.value.lower() if (s.value is not None and mapping.scenario_column is not None) else None
        plan = ScenarioPlan(s.spec, value, cols)
        if value is None:
            problems += [
                (c.column, f"not in the header (mapped to {s.type}.{c.field.name}, a required field)")
                for c in plan.missing_required
            ]
        plans.append(plan)
    return ColumnPlan(tuple(header), scenario_index, tuple(plans)), problems


def missing_optional(plan: ColumnPlan | None) -> dict[str, list[str]]:
    """Columns the mapping names for optional fields that the header lacks: column -> ["type.field", ...].

    Only for scenarios this file can carry (their required columns are all in the header); a file that
    holds none of a scenario's rows is not told about that scenario's optional columns.
    """
    out: dict[str, list[str]] = {}
    for scenario in plan.scenarios if plan is not None else ():
        if scenario.missing_required:
            continue
        for c in scenario.columns:
            if c.index is None and not c.field.required:
                out.setdefault(c.column, []).append(f"{scenario.spec.type}.{c.field.name}")
    return out
