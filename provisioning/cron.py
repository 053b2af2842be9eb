"""A small validator for 5-field cron expressions (what a Container Apps Job's schedule trigger takes).

Fields: minute hour day-of-month month day-of-week. Each field is a comma list of items; an item is
`*`, a value, or a range `a-b`, each optionally followed by `/step`. Months and weekdays also take
three-letter English names (JAN..DEC, SUN..SAT), case-insensitively.

Day of week is 0-6 (Sunday is 0): 7, which some crons also take for Sunday, is refused. Container Apps jobs run
on Kubernetes, whose CronJob schedules are parsed by robfig/cron (`cron.ParseStandard`:
https://github.com/kubernetes/kubernetes/blob/master/pkg/apis/batch/validation/validation.go), and robfig/cron's
day-of-week bounds are 0-6 (https://github.com/robfig/cron/blob/master/spec.go, `dow = bounds{0, 6, ...}`).

A schedule that never fires is refused too (`0 2 31 2 *`, 30 February, 31 April): Kubernetes would accept it and
the job would never run. robfig/cron's day rule (spec.go, `dayMatches`): when the day-of-month or the day-of-week
field is `*` (an item `*` without a step above 1: robfig's `starBit`), a day must match both fields; when both are
restricted, either. So only a restricted day of month with a `*` day of week can rule out every day: when none
of its days exists in any month the month field names (February counted with 29 days: leap years fire).
"""

from __future__ import annotations

from dataclasses import dataclass

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day of month", 1, 31, {}),
    _Field("month", 1, 12, {n: i + 1 for i, n in enumerate(_MONTHS)}),
    _Field("day of week", 0, 6, {n: i for i, n in enumerate(_DAYS)}),
)


class CronError(ValueError):
    """A cron expression that is not 5 valid fields; the message says which field and why."""


def _value(text: str, f: _Field) -> int:
    upper = text.upper()
    if upper in f.names:
        return f.names[upper]
    if not text.isdigit():
        hint = f" or a name ({', '.join(f.names)})" if f.names else ""
        raise CronError(f"{f.name} field: {text!r} is not a number{hint}")
    number = int(text)
    if not f.low <= number <= f.high:
        hint = " (Container Apps schedules follow Kubernetes' cron, where Sunday is 0 or SUN, never 7)" if (
            f.name == "day of week" and number == 7) else ""
        raise CronError(f"{f.name} field: {number} is outside {f.low}-{f.high}{hint}")
    return number


def _item(item: str, f: _Field) -> None:
    if not item:
        raise CronError(f"{f.name} field: empty list item")
    base, _, step = item.partition("/")
    if "/" in item:
        if not step.isdigit() or int(step) == 0:
            raise CronError(f"{f.name} field: step {step!r} must be a positive number")
        if int(step) > f.high - f.low + 1:
            raise CronError(f"{f.name} field: step {step} is larger than the field's range {f.low}-{f.high}")
    if base == "*":
        return
    low_text, dash, high_text = base.partition("-")
    low = _value(low_text, f)
    if dash:
        high = _value(high_text, f)
        if high < low:
            raise CronError(f"{f.name} field: range {base!r} runs backwards")


#: The most days each month has (February 29: a leap year's 29 February fires).
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _values(text: str, f: _Field) -> set[int]:
    """The values a (validated) field selects; `N/step` runs from N to the field's top, as in robfig/cron."""
    out: set[int] = set()
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            low, high = f.low, f.high
        else:
            low_text, dash, high_text = base.partition("-")
            low = _value(low_text, f)
            high = _value(high_text, f) if dash else (f.high if step_text else low)
        out.update(range(low, high + 1, step))
    return out


def _star(text: str) -> bool:
    """robfig/cron's starBit: some item is `*` with no step above 1."""
    return any(item.partition("/")[0] == "*" and int(item.partition("/")[2] or 1) <= 1 for item in text.split(","))


def _never_fires(parts: list[str]) -> str | None:
    """Why a valid 5-field expression never matches a date, or None."""
    _, _, dom, month, dow = parts
    if _star(dom) or not _star(dow):
        return None  # every day of some month matches, or the day of week alone makes days match
    days, months = _values(dom, _FIELDS[2]), _values(month, _FIELDS[3])
    if any(day <= _MONTH_DAYS[m - 1] for m in months for day in days):
        return None
    named_days = ", ".join(str(d) for d in sorted(days))
    named_months = ", ".join(_MONTHS[m - 1].title() for m in sorted(months))
    return (f"never fires: day of month {named_days} does not exist in {named_months} (April, June, September and "
            "November have 30 days, February 29), so the job would never run; choose a day every named month has, "
            "e.g. '0 2 28 2 *', or a day-of-week field")


def validate_cron(expression: object) -> str:
    """Return the expression normalised to single spaces, or raise CronError naming the field and rule."""
    if not isinstance(expression, str) or not expression.strip():
        raise CronError("must be a cron expression such as '0 2 * * *' (5 fields)")
    parts = expression.split()
    if len(parts) != 5:
        raise CronError(
            f"has {len(parts)} fields; expected 5 (minute hour day-of-month month day-of-week), e.g. '0 2 * * *'"
        )
    for text, f in zip(parts, _FIELDS, strict=True):
        for item in text.split(","):
            _item(item, f)
    if (rule := _never_fires(parts)) is not None:
        raise CronError(rule)
    return " ".join(parts)
