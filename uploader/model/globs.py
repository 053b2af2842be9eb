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

import functools
import re
from array import array
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


#: The longest `files` glob. Every file name is matched against it and every other connector's glob is compared
#: with it, in work that grows with its length (matching: linear in the name times the glob; overlap: the product of
#: two globs). Real globs are a folder or two and a name pattern, well under 100 characters
#: (`workday/employee-profile/**/EmployeeProfile_[0-9][0-9][0-9][0-9]-*.csv` is 72); at 256 the dearest pair of
#: globs (`*a*a…` against `*a*a…`) is compared in about 0.15 s and 20 MB, a 1,000-character name matched in 0.1 s.
MAX_GLOB_CHARS = 256
#: The product states all of one stack's overlap checks together may visit (`OverlapBudget`): about half a second in
#: the worst case (each check's tables are freed before the next). Globs that start with different folders are told
#: apart in a few states: MAX_CONNECTORS connectors with real globs (a folder each) use about 30,000; only globs
#: made of many `*` and `?` come near it.
MAX_OVERLAP_STATES = 500_000


class GlobsTooIntricate(ValueError):
    """Deciding whether the globs overlap would take more than the budget of product states."""


class OverlapBudget:
    """The product states `overlap` may still visit, shared by every check of one stack."""

    def __init__(self, states: int = MAX_OVERLAP_STATES) -> None:
        self.left = states


def glob_problem(pattern: str) -> str | None:
    """Why a `files` glob cannot mean what the user wants, or None. The rule is said, never the value."""
    if len(pattern) > MAX_GLOB_CHARS:
        return (f"is {len(pattern):,} characters long; at most {MAX_GLOB_CHARS} are allowed (every file name is "
                "matched against a glob and every other glob compared with it, work that grows with its length; "
                "real globs are a folder and a name pattern, well under 100 characters)")
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


def _intersect(first: Chars, second: Chars) -> Chars:
    """The characters in both sets (both sorted and disjoint: one merge pass)."""
    out, i, j = [], 0, 0
    while i < len(first) and j < len(second):
        lo, hi = max(first[i][0], second[j][0]), min(first[i][1], second[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def _epsilon(toks: list[Token], state: State) -> State | None:
    """The state reached without reading a character (a star or `**/` matching nothing), if any."""
    i, inside = state
    if not inside and i < len(toks) and toks[i].kind in ("star", "dirs"):
        return (i + 1, False)
    return None


class _Automaton:
    """A glob's automaton as tables indexed by state number: the moves reading a character, and the move without."""

    def __init__(self, pattern: str) -> None:
        toks = tokens(pattern)
        states: list[State] = [(i, False) for i in range(len(toks) + 1)]
        states += [(i, True) for i, t in enumerate(toks) if t.kind == "dirs"]
        number = {state: n for n, state in enumerate(states)}
        self.size = len(states)
        self.accept = number[(len(toks), False)]
        self.classes: list[Chars] = []  # each distinct character set once; moves name them by their index
        index: dict[Chars, int] = {}
        self.moves = [[(index.setdefault(chars, len(index)), number[nxt]) for chars, nxt in _moves(toks, state)]
                      for state in states]
        self.classes = sorted(index, key=index.__getitem__)
        self.skip = [-1 if (nxt := _epsilon(toks, state)) is None else number[nxt] for state in states]


@functools.lru_cache(maxsize=256)  # a stack's checks compare each glob with every other: build each once
def _automaton(pattern: str) -> _Automaton:
    return _Automaton(pattern)


def overlap(first: str, second: str, budget: OverlapBudget | None = None) -> str | None:
    """A path under incoming/ that both globs match (one of the shortest), or None when they are disjoint.

    Decided on the product of the two globs' automata, state by state (never on sets of states, whose number
    grows exponentially: `*a` and 17 `?` took 79 s that way): a product state is a pair (state of the first,
    state of the second), at most (2n+1)(2m+1) of them for globs of n and m tokens, each visited once, so the work
    is O(n*m). A breadth-first walk in which a star or `**/` matching nothing costs no character (0-1 BFS) finds a
    shortest path to the pair where both accept; it is spelt with readable characters where the two character sets
    allow, then `_readable` fills empty names. With a budget, each product state visited spends one;
    GlobsTooIntricate when none is left."""
    a, b = _automaton(first), _automaton(second)
    width = b.size
    accept = a.accept * width + b.accept
    # the code point two character sets share, as an example (-1: none; None: not worked out yet)
    common: list[list[int | None]] = [[None] * len(b.classes) for _ in a.classes]
    # Tables over every pair, numbered state of a * width + state of b: at most (2*257)**2 pairs for two globs of
    # MAX_GLOB_CHARS, a few MB; the walk allocates nothing per pair beyond its queue.
    pairs = a.size * width
    dist = array("l", [-1]) * pairs  # characters read to reach the pair (-1: not reached)
    parent = array("l", [-1]) * pairs  # the pair it was reached from
    via = array("l", [-1]) * pairs  # the code point read on the way (-1: none, a star or `**/` matching nothing)
    done = bytearray(pairs)
    dist[0] = 0
    queue: deque[int] = deque([0])
    while queue:
        pair = queue.popleft()
        if done[pair]:
            continue
        done[pair] = 1
        if budget is not None:
            budget.left -= 1
            if budget.left < 0:
                raise GlobsTooIntricate(f"comparing the globs would visit more than {MAX_OVERLAP_STATES:,} states")
        if pair == accept:
            path: list[str] = []
            while pair:
                if via[pair] >= 0:
                    path.append(chr(via[pair]))
                pair = parent[pair]
            return _readable(first, second, "".join(reversed(path)))
        here = dist[pair]
        state_a, state_b = divmod(pair, width)
        steps: list[tuple[int, int]] = []
        if (skip := a.skip[state_a]) >= 0:
            steps.append((skip * width + state_b, -1))
        if (skip := b.skip[state_b]) >= 0:
            steps.append((state_a * width + skip, -1))
        for class_a, next_a in a.moves[state_a]:
            shared = common[class_a]
            for class_b, next_b in b.moves[state_b]:
                code = shared[class_b]
                if code is None:
                    both = _intersect(a.classes[class_a], b.classes[class_b])
                    code = shared[class_b] = ord(min((_example(lo, hi) for lo, hi in both), key=_rank)) \
                        if both else -1
                if code >= 0:
                    steps.append((next_a * width + next_b, code))
        for nxt, code in steps:
            cost = here + 1 if code >= 0 else here
            if dist[nxt] < 0 or cost < dist[nxt]:
                dist[nxt], parent[nxt], via[nxt] = cost, pair, code
                if code >= 0:
                    queue.append(nxt)
                else:
                    queue.appendleft(nxt)
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
