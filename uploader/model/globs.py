"""A connector's `files` glob: what it matches, which globs are mistakes, and whether two globs overlap.

One definition of the glob language, shared by job mode (which file goes to which connector) and the stack
checks (`python -m provisioning check`). A glob matches whole paths relative to the drop zone's `incoming/`:
`*` and `?` never cross a '/', `[...]` is a character class (`[!...]` negated), and `**/` matches any number of
folders (including none); a `**` not followed by '/' matches anything. `departures/*.csv` matches
`departures/a.csv` only; `**/*.csv` matches every CSV at any depth; `*.csv` only those directly in `incoming/`.

Overlap is decided exactly, not by sampling: each glob is a small automaton over characters (character sets kept
as code-point intervals), and two globs overlap when the product of their automata reaches a state where both
accept. The path that walk spells is returned as an example both globs match.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

_MAX_CHAR = 0x10FFFF
Chars = tuple[tuple[int, int], ...]  # sorted, disjoint, inclusive code-point intervals

ANY_BUT_NEWLINE: Chars = ((0, 0x09), (0x0B, _MAX_CHAR))  # what the regex `.` matches
NOT_SLASH: Chars = ((0, 0x2E), (0x30, _MAX_CHAR))
SLASH: Chars = ((0x2F, 0x2F),)


def _merge(intervals: list[tuple[int, int]]) -> Chars:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(intervals):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def _complement(chars: Chars) -> Chars:
    out, start = [], 0
    for lo, hi in chars:
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= _MAX_CHAR:
        out.append((start, _MAX_CHAR))
    return tuple(out)


def _contains(chars: Chars, ch: str) -> bool:
    return any(lo <= ord(ch) <= hi for lo, hi in chars)


def _example(lo: int, hi: int) -> str:
    """A readable character in [lo, hi] (for the example path an overlap reports)."""
    for ch in "xa0_-.":
        if lo <= ord(ch) <= hi:
            return ch
    return chr(max(lo, 0x21)) if hi >= 0x21 else chr(lo)


def _class(body: str) -> Chars:
    """The characters of a `[...]` body, read the way Python's `re` reads the class glob_regex emits."""
    intervals, i = [], 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            lo, hi = ord(body[i]), ord(body[i + 2])
            if lo <= hi:  # a backwards range is re.error when glob_regex compiles the glob
                intervals.append((lo, hi))
            i += 3
        else:
            intervals.append((ord(body[i]), ord(body[i])))
            i += 1
    return _merge(intervals)


@dataclass(frozen=True)
class Token:
    """One step of a glob: `char` (one character of `chars`), `star` (any run of `chars`) or `dirs` (`**/`)."""

    kind: str
    chars: Chars
    regex: str


def tokens(pattern: str) -> list[Token]:
    """The glob as tokens (a glob that is not valid, e.g. `[z-a]`, fails in glob_regex with re.error)."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append(Token("dirs", NOT_SLASH, "(?:[^/]+/)*"))
            i += 3
        elif pattern.startswith("**", i):
            out.append(Token("star", ANY_BUT_NEWLINE, ".*"))
            i += 2
        elif pattern[i] == "*":
            out.append(Token("star", NOT_SLASH, "[^/]*"))
            i += 1
        elif pattern[i] == "?":
            out.append(Token("char", NOT_SLASH, "[^/]"))
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1:end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            escaped = body.replace("\\", "\\\\").replace("[", "\\[")
            regex = "[" + ("^" if negate else "\\" if escaped.startswith("^") else "") + escaped + "]"
            chars = _class(body)
            out.append(Token("char", _complement(chars) if negate else chars, regex))
            i = end + 1
        else:
            out.append(Token("char", ((ord(pattern[i]), ord(pattern[i])),), re.escape(pattern[i])))
            i += 1
    return out


def glob_regex(pattern: str) -> re.Pattern[str]:
    """The glob as a regex over paths relative to `incoming/` (use `.match`: it is anchored at the end).

    The reference translation, used to validate a glob and by tests; never to match file names: Python's
    regex engine backtracks (`*-*-*-*-*.csv` against a name of 196 dashes took 51 s). GlobMatcher matches."""
    return re.compile("".join(t.regex for t in tokens(pattern)) + r"\Z")


def glob_problem(pattern: str) -> str | None:
    """Why a `files` glob cannot mean what the user wants, or None. The rule is said, never the value."""
    if pattern.startswith("/"):
        return "must be relative to incoming/ in the drop zone (no leading '/'), e.g. departures/*.csv"
    if "\\" in pattern:
        return "separates folders with '\\'; blob paths use '/', e.g. departures/*.csv"
    segments = pattern.split("/")
    if ".." in segments:
        return "must stay under incoming/ in the drop zone ('..' is not allowed)"
    if "." in segments:
        return "has a '.' folder; paths under incoming/ have none (write departures/*.csv, not ./departures/*.csv)"
    if "" in segments:
        return "has an empty folder name ('//' or a trailing '/'), so it matches no file"
    try:
        glob_regex(pattern)
    except (ValueError, re.error) as exc:
        return f"is not a valid glob ({exc})"
    return None


State = tuple[int, bool]  # (token index, inside a folder name that `**/` is matching)


def _closure(toks: list[Token], states: set[State]) -> frozenset[State]:
    """Add the states reachable without reading a character (a star or `**/` matching nothing)."""
    out, todo = set(states), list(states)
    while todo:
        i, inside = todo.pop()
        if not inside and i < len(toks) and toks[i].kind in ("star", "dirs") and (i + 1, False) not in out:
            out.add((i + 1, False))
            todo.append((i + 1, False))
    return frozenset(out)


def _moves(toks: list[Token], state: State) -> list[tuple[Chars, State]]:
    """(characters, next state) pairs leaving one state."""
    i, inside = state
    if inside:  # in a folder name of `**/`: more name characters, or the '/' that ends it
        return [(NOT_SLASH, (i, True)), (SLASH, (i, False))]
    if i >= len(toks):
        return []
    tok = toks[i]
    if tok.kind == "char":
        return [(tok.chars, (i + 1, False))]
    if tok.kind == "star":
        return [(tok.chars, (i, False))]
    return [(NOT_SLASH, (i, True))]  # dirs: the first character of a folder name


def _pieces(sets: list[Chars]) -> list[tuple[int, int]]:
    """Split the alphabet wherever one of the sets starts or ends: inside a piece every set answers alike."""
    cuts = sorted({0, _MAX_CHAR + 1} | {lo for c in sets for lo, _ in c} | {hi + 1 for c in sets for _, hi in c})
    return [(lo, nxt - 1) for lo, nxt in zip(cuts, cuts[1:], strict=False)]


def _rank(ch: str) -> int:
    return "xa0_-.".find(ch) % 7  # the readable characters first, in that order; others last


def _readable(first: str, second: str, path: str) -> str:
    """Give the example's empty names a letter (`departures/.csv` -> `departures/x.csv`) where both still match."""
    i = 0
    while i <= len(path):
        empty_name = (i == 0 or path[i - 1] == "/") and (i == len(path) or path[i] in "./")
        candidate = path[:i] + "x" + path[i:]
        if empty_name and matches(first, candidate) and matches(second, candidate):
            path = candidate
        i += 1
    return path


def overlap(first: str, second: str) -> str | None:
    """A path under incoming/ that both globs match (one of the shortest), or None when they are disjoint."""
    a, b = tokens(first), tokens(second)
    Pair = tuple[frozenset[State], frozenset[State]]
    start: Pair = (_closure(a, {(0, False)}), _closure(b, {(0, False)}))
    parents: dict[Pair, tuple[Pair | None, str]] = {start: (None, "")}
    queue = deque([start])
    while queue:
        pair = queue.popleft()
        states_a, states_b = pair
        if (len(a), False) in states_a and (len(b), False) in states_b:
            path: list[str] = []
            node: Pair | None = pair
            while node is not None and parents[node][0] is not None:
                node, ch = parents[node]
                path.append(ch)
            return _readable(first, second, "".join(reversed(path)))
        moves_a = [m for s in states_a for m in _moves(a, s)]
        moves_b = [m for s in states_b for m in _moves(b, s)]
        for lo, hi in sorted(_pieces([c for c, _ in moves_a + moves_b]), key=lambda p: _rank(_example(*p))):
            ch = _example(lo, hi)
            next_a = {t for c, t in moves_a if _contains(c, ch)}
            next_b = {t for c, t in moves_b if _contains(c, ch)}
            if not next_a or not next_b:
                continue
            nxt = (_closure(a, next_a), _closure(b, next_b))
            if nxt not in parents:
                parents[nxt] = (pair, ch)
                queue.append(nxt)
    return None


#: Names longer than this never match (job mode refuses them before: see dropzone.name_problem).
MAX_MATCH_CHARS = 1024
_MAX_CACHED_STEPS = 4096


class GlobMatcher:
    """One glob, matched in time linear in the name's length, whatever the glob and the name.

    The glob's automaton (the one `overlap` walks) is run as a set of states, one step per character; no step
    ever goes back, so `*-*-*-*-*.csv` against 200 dashes costs 200 steps, where the regex translation
    backtracks for minutes. Steps already taken are remembered (a lazily built DFA, bounded), so a connector's
    many files cost one dictionary look-up per character. Names over MAX_MATCH_CHARS are refused (no match).
    """

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._toks = tokens(pattern)
        self._start = _closure(self._toks, {(0, False)})
        self._accept: State = (len(self._toks), False)
        self._steps: dict[tuple[frozenset[State], str], frozenset[State]] = {}

    def _step(self, states: frozenset[State], ch: str) -> frozenset[State]:
        key = (states, ch)
        found = self._steps.get(key)
        if found is None:
            toks = self._toks
            found = _closure(toks, {t for s in states for c, t in _moves(toks, s) if _contains(c, ch)})
            if len(self._steps) >= _MAX_CACHED_STEPS:
                self._steps.clear()
            self._steps[key] = found
        return found

    def matches(self, path: str) -> bool:
        if len(path) > MAX_MATCH_CHARS:
            return False
        states = self._start
        for ch in path:
            states = self._step(states, ch)
            if not states:
                return False
        return self._accept in states


def matches(pattern: str, path: str) -> bool:
    """Whether the glob matches the path (GlobMatcher: linear time; tests compare it to the regex translation)."""
    return GlobMatcher(pattern).matches(path)
