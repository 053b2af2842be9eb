"""A small evaluator for the subset of KQL the failed-run alert uses (provisioning/components/alerts.py), so a test
can run the query text itself over sample rows.

What it proves, and what not: it parses the alert's exact text (any construct outside the subset is an error, not
skipped) and applies each operator as Microsoft documents it; it is not Log Analytics. Semantics, from the Kusto
reference (https://learn.microsoft.com/kusto/query/):
- `let NAME = "literal";` scalar bindings; `union isfuzzy=true (T | ...), (T | ...)`: a leg whose table has no rows
  given contributes nothing (fuzzy resolution);
- `| where PREDICATE`, `| extend NAME = EXPR`;
- `==` / `!=` case-sensitive; `=~` case-insensitive; `in~ (...)` case-insensitive membership (string operators);
- `has` / `!has`: the right side is a whole term of the left side, case-insensitive: the match may not continue
  an alphanumeric run on either side (string operators, "What is a term?");
- `matches regex`: RE2 search (the patterns used are plain enough for Python's `re`);
- `and`, `or`, `not(...)`; `parse_json`, `tostring`, `toint`, `isempty`; `a.b` on a dynamic value;
- a column the row lacks is an empty string (a documented column with no value), `summary.x` missing is null.

`run_pipeline` (the status workbook's query, provisioning/components/workbook.py) adds a query that starts at one
table, and:
- `>`, `<`, `>=`, `<=` (datetimes compared as instants; an ISO 8601 string column is a datetime), `ago(30d)` (now
  minus a timespan; `Nd`/`Nh` literals), `startofday(t)`;
- `| extend A = e, B = e`; `| project A, B = e` (only those columns, in that order);
- `| summarize AGG, ... by COL, ...` with `arg_max(T, C, ...)` (the columns of the row with the largest T; ties: the
  first), `NAME = sum(e)` (nulls skipped), `NAME = count()`, `NAME = make_list(e)` (in input order: the query sorts
  first, as make_list's reference requires for a defined order: https://learn.microsoft.com/kusto/query/make-list-aggregation-function);
- `| order by COL asc|desc` (stable).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<verbatim>@"[^"]*"|@'[^']*')
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<number>\d+)
  | (?P<op>==|!=|=~|>=|<=|!has\b|in~|[|(),;.=<>*])
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
""", re.VERBOSE)


def tokenize(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise SyntaxError(f"KQL subset: cannot read {text[pos:pos + 20]!r}")
        pos = match.end()
        kind = match.lastgroup or ""
        if kind == "ws":
            continue
        value = match.group()
        if kind == "verbatim":
            kind, value = "string", value[2:-1]
        elif kind == "string":
            value = json.loads('"' + value[1:-1].replace('"', '\\"').replace("\\'", "'") + '"') \
                if value[0] == "'" else json.loads(value)
        out.append((kind, value))
    return out


def _is_term_char(char: str) -> bool:
    return char.isalnum()


def has_term(haystack: str, needle: str) -> bool:
    """`has`: needle found case-insensitively, not continuing an alphanumeric run at either end."""
    hay, nee = haystack.lower(), needle.lower()
    start = hay.find(nee)
    while start >= 0:
        end = start + len(nee)
        left_ok = not (nee[:1] and _is_term_char(nee[0]) and start > 0 and _is_term_char(hay[start - 1]))
        right_ok = not (nee[-1:] and _is_term_char(nee[-1]) and end < len(hay) and _is_term_char(hay[end]))
        if left_ok and right_ok:
            return True
        start = hay.find(nee, start + 1)
    return False


Row = dict[str, Any]
Expr = Callable[[Row], Any]


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], scalars: dict[str, Any],
                 now: dt.datetime | None = None) -> None:
        self.tokens, self.pos, self.scalars = tokens, 0, scalars
        self.now = now or dt.datetime.now(dt.UTC)

    def peek(self, offset: int = 0) -> tuple[str, str]:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else ("eof", "")

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        tok_kind, tok_value = self.peek()
        if (value is not None and tok_value != value) or (kind is not None and tok_kind != kind):
            raise SyntaxError(f"KQL subset: expected {value or kind}, found {tok_value!r}")
        self.pos += 1
        return tok_value

    # expressions: or > and > comparison > primary
    def expr(self) -> Expr:
        left = self.conj()
        while self.peek() == ("word", "or"):
            self.take("or")
            right = self.conj()
            left = (lambda a, b: lambda row: bool(a(row)) or bool(b(row)))(left, right)
        return left

    def conj(self) -> Expr:
        left = self.comparison()
        while self.peek() == ("word", "and"):
            self.take("and")
            right = self.comparison()
            left = (lambda a, b: lambda row: bool(a(row)) and bool(b(row)))(left, right)
        return left

    def comparison(self) -> Expr:
        left = self.primary()
        kind, value = self.peek()
        if value in ("==", "!=", "=~"):
            self.take()
            right = self.primary()
            ops: dict[str, Callable[[Any, Any], bool]] = {
                "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
                "=~": lambda a, b: str(a).lower() == str(b).lower()}
            return (lambda a, b, op: lambda row: op(a(row), b(row)))(left, right, ops[value])
        if value in (">", "<", ">=", "<="):
            self.take()
            right = self.primary()
            order: dict[str, Callable[[Any, Any], bool]] = {
                ">": lambda a, b: a > b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b}
            return (lambda a, b, op: lambda row: _comparable(a(row)) is not None and _comparable(b(row)) is not None
                    and op(_comparable(a(row)), _comparable(b(row))))(left, right, order[value])
        if value in ("has", "!has"):
            self.take()
            right = self.primary()
            negate = value == "!has"
            return (lambda a, b: lambda row: has_term(str(a(row) or ""), str(b(row))) != negate)(left, right)
        if value == "in~":
            self.take()
            self.take("(")
            items = [self.primary()]
            while self.peek()[1] == ",":
                self.take(",")
                items.append(self.primary())
            self.take(")")
            return (lambda a, xs: lambda row: str(a(row)).lower() in {str(x(row)).lower() for x in xs})(left, items)
        if kind == "word" and value == "matches":
            self.take("matches")
            self.take("regex")
            pattern = self.primary()
            return (lambda a, p: lambda row: re.search(str(p(row)), str(a(row) or "")) is not None)(left, pattern)
        return left

    def primary(self) -> Expr:
        kind, value = self.peek()
        if value == "(":
            self.take("(")
            inner = self.expr()
            self.take(")")
            return inner
        if kind == "string":
            self.take()
            return lambda _row, v=value: v
        if kind == "number":
            self.take()
            unit = self.peek()
            if unit[0] == "word" and unit[1] in ("d", "h", "m", "s"):  # a timespan literal: 30d, 1h
                self.take()
                span = dt.timedelta(**{{"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}[unit[1]]:
                                       int(value)})
                return lambda _row, v=span: v
            return lambda _row, v=int(value): v
        if kind != "word":
            raise SyntaxError(f"KQL subset: unexpected {value!r}")
        self.take()
        if self.peek()[1] == "(":
            return self.call(value)
        base: Expr
        if value in self.scalars:
            base = lambda _row, v=self.scalars[value]: v  # noqa: E731
        else:
            base = lambda row, name=value: row.get(name, "")  # noqa: E731
        while self.peek()[1] == ".":
            self.take(".")
            key = self.take(kind="word")
            base = (lambda b, k: lambda row: (b(row) or {}).get(k) if isinstance(b(row), dict) else None)(base, key)
        return base

    def call(self, name: str) -> Expr:
        self.take("(")
        if name == "now":
            self.take(")")
            return lambda _row: self.now
        arg = self.expr()
        self.take(")")
        if name == "ago":
            return lambda row: self.now - arg(row)
        if name == "startofday":
            def start(row: Row) -> dt.datetime | None:
                moment = _comparable(arg(row))
                return moment.replace(hour=0, minute=0, second=0, microsecond=0) \
                    if isinstance(moment, dt.datetime) else None
            return start
        if name == "not":
            return lambda row: not arg(row)
        if name == "parse_json":
            def parse(row: Row) -> Any:
                try:
                    return json.loads(str(arg(row)))
                except ValueError:
                    return str(arg(row))
            return parse
        if name == "tostring":
            return lambda row: "" if arg(row) is None else (arg(row) if isinstance(arg(row), str)
                                                          else json.dumps(arg(row)))
        if name == "toint":
            def to_int(row: Row) -> int | None:
                value = arg(row)
                return value if isinstance(value, int) and not isinstance(value, bool) else None
            return to_int
        if name == "isempty":
            return lambda row: arg(row) in ("", None)
        raise SyntaxError(f"KQL subset: function {name}() is not in the subset")


def _comparable(value: Any) -> Any:
    """A datetime for an ISO 8601 string or a datetime; numbers as they are; anything else None."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def _assignments(parser: _Parser) -> list[tuple[str, Expr]]:
    """`A = e, B = e` (project also takes a bare column: `A`)."""
    out = []
    while True:
        name = parser.take(kind="word")
        if parser.peek()[1] == "=":
            parser.take("=")
            out.append((name, parser.expr()))
        else:
            out.append((name, (lambda n: lambda row: row.get(n, ""))(name)))
        if parser.peek()[1] != ",":
            return out
        parser.take(",")


def _summarize(parser: _Parser, rows: list[Row]) -> list[Row]:
    aggregates: list[tuple[str, str, list[Expr], list[str]]] = []  # (output name, function, args, arg names)
    while True:
        name = parser.take(kind="word")
        if parser.peek()[1] == "=":
            parser.take("=")
            function = parser.take(kind="word")
        else:
            function, name = name, ""
        parser.take("(")
        args: list[Expr] = []
        names: list[str] = []
        while parser.peek()[1] != ")":
            if names or args:
                parser.take(",")
            if parser.peek()[0] == "word" and parser.peek(1)[1] in (",", ")"):
                names.append(parser.peek()[1])
            args.append(parser.expr())
        parser.take(")")
        if function not in ("arg_max", "sum", "count", "make_list") or (function != "arg_max" and not name):
            raise SyntaxError(f"KQL subset: aggregate {function}() (named) is not in the subset")
        aggregates.append((name, function, args, names))
        if parser.peek()[1] != ",":
            break
        parser.take(",")
    parser.take("by")
    keys = [parser.take(kind="word")]
    while parser.peek()[1] == ",":
        parser.take(",")
        keys.append(parser.take(kind="word"))
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(json.dumps(row.get(k, ""), default=str) for k in keys), []).append(row)
    out = []
    for members in groups.values():
        result: Row = {k: members[0].get(k, "") for k in keys}
        for name, function, args, names in aggregates:
            if function == "arg_max":
                best = members[0]
                for member in members[1:]:
                    if _comparable(args[0](member)) > _comparable(args[0](best)):
                        best = member
                result.update({n: best.get(n, "") for n in names})
            elif function == "sum":
                result[name] = sum(v for v in (args[0](m) for m in members) if isinstance(v, int | float))
            elif function == "count":
                result[name] = len(members)
            else:
                result[name] = [args[0](m) for m in members]
        out.append(result)
    return out


def _operators(parser: _Parser, rows: list[Row]) -> list[Row]:
    """`| where … | extend … | project … | summarize … | order by …` applied to `rows`, up to the first token that is
    not `|` (the end of the query, or of a union's subquery)."""
    while parser.peek()[1] == "|":
        parser.take("|")
        verb = parser.take(kind="word")
        if verb == "where":
            predicate = parser.expr()
            rows = [r for r in rows if predicate(r)]
        elif verb == "extend":
            for column, value in _assignments(parser):
                rows = [{**r, column: value(r)} for r in rows]
        elif verb == "project":
            columns = _assignments(parser)
            rows = [{column: value(r) for column, value in columns} for r in rows]
        elif verb == "summarize":
            rows = _summarize(parser, rows)
        elif verb == "order":
            parser.take("by")
            column = parser.take(kind="word")
            descending = parser.peek()[1] == "desc"
            if parser.peek()[1] in ("asc", "desc"):
                parser.take()
            rows.sort(key=lambda r: (_comparable(r.get(column)) is None, _comparable(r.get(column)) or 0)
                      if not isinstance(r.get(column), str) or _comparable(r.get(column)) is not None
                      else (False, r.get(column)), reverse=descending)
        else:
            raise SyntaxError(f"KQL subset: operator {verb} is not in the subset")
    return rows


def run_pipeline(query: str, tables: dict[str, Iterable[Row]], now: dt.datetime | None = None) -> list[Row]:
    """The rows a query of one table returns (the status workbook's form: see the module's docstring)."""
    parser = _Parser(tokenize(query), {}, now)
    rows = _operators(parser, [dict(r) for r in tables.get(parser.take(kind="word"), [])])
    if parser.peek()[0] != "eof":
        raise SyntaxError(f"KQL subset: unread text from {parser.peek()[1]!r}")
    return rows


def run(query: str, tables: dict[str, Iterable[Row]]) -> list[Row]:
    """The rows the query returns over `tables` (table name -> rows)."""
    parser = _Parser(tokenize(query), {})
    while parser.peek() == ("word", "let"):
        parser.take("let")
        name = parser.take(kind="word")
        parser.take("=")
        parser.scalars[name] = parser.take(kind="string")
        parser.take(";")
    parser.take("union")
    parser.take("isfuzzy")
    parser.take("=")
    parser.take("true")
    out: list[Row] = []
    while True:
        parser.take("(")
        table = parser.take(kind="word")
        rows = _operators(parser, [dict(r) for r in tables.get(table, [])])  # isfuzzy: an absent table is no rows
        parser.take(")")
        out += [{"Type": table, **r} for r in rows]
        if parser.peek()[1] != ",":
            break
        parser.take(",")
    if parser.peek()[0] != "eof":
        raise SyntaxError(f"KQL subset: unread text from {parser.peek()[1]!r}")
    return out
