"""A small validator for 5-field cron expressions (what a Container Apps Job's schedule trigger takes).

Fields: minute hour day-of-month month day-of-week. Each field is a comma list of items; an item is
`*`, a value, or a range `a-b`, each optionally followed by `/step`. Months and weekdays also take
three-letter English names (JAN..DEC, SUN..SAT), case-insensitively.

Day of week is 0-6 (Sunday is 0): 7, which some crons also take for Sunday, is refused. Container Apps jobs run
on Kubernetes, whose CronJob schedules are parsed by robfig/cron (`cron.ParseStandard`:
https://github.com/kubernetes/kubernetes/blob/master/pkg/apis/batch/validation/validation.go), and robfig/cron's
day-of-week bounds are 0-6 (https://github.com/robfig/cron/blob/master/spec.go, `dow = bounds{0, 6, ...}`).
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
    return " ".join(parts)
