"""Work that grows faster than its input, bounded by construction (issue 23, class C): the overlap of two `files`
globs is decided on the product of their automata (polynomial), a glob is at most MAX_GLOB_CHARS long, a stack maps
at most MAX_CONNECTORS connectors (checked before any connector is compared), and one stack's overlap checks
together visit at most MAX_OVERLAP_STATES product states. Each bound has a time and a memory ceiling here.

Time is CPU time of this process (`time.process_time`, steady on a shared machine); memory is tracemalloc's peak
(measured in a second run: tracing slows the allocations it counts)."""

from __future__ import annotations

import time
import tracemalloc
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from provisioning.config import ConfigError, all_problems, load_settings
from uploader.errors import UsageError
from uploader.job.connectors import load_connectors
from uploader.model.globs import MAX_GLOB_CHARS, MAX_OVERLAP_STATES, GlobMatcher, glob_problem, overlap
from uploader.model.mapping import MAX_CONNECTORS

TENANT = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
COLUMNS = {"userPrincipalName": "Upn", "resignationDate": "Resigned", "lastWorkingDate": "LastDay"}


def cpu_seconds(work: Callable[[], Any]) -> float:
    started = time.process_time()
    work()
    return time.process_time() - started


def peak_mb(work: Callable[[], Any]) -> float:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def connector(i: int, files: str) -> dict[str, Any]:
    return {"name": f"c{i}", "jobId": str(uuid.UUID(int=i + 1)), "files": files,
            "scenarios": [{"type": "resignation", "columns": COLUMNS}]}


def config(*globs: str) -> dict[str, Any]:
    return {"hr-connector:cloud": "commercial", "hr-connector:tenantId": TENANT, "hr-connector:location": "eastus",
            "hr-connector:connectors": [connector(i, g) for i, g in enumerate(globs)]}


def problems(cfg: dict[str, Any]) -> list[tuple[str, str]]:
    try:
        load_settings(cfg)
    except ConfigError as exc:
        return [(p.key, p.rule) for p in all_problems(exc)]
    return []


# The dearest pair of globs at the bound: every pair of their states is reachable and they never both accept.
DEAR_FIRST = ("*a" * MAX_GLOB_CHARS)[:MAX_GLOB_CHARS - 4] + ".csv"
DEAR_SECOND = ("*a" * MAX_GLOB_CHARS)[:MAX_GLOB_CHARS - 4] + ".txt"


def test_overlap_is_polynomial_in_the_globs_length() -> None:
    """`*a` and 17 `?` took 79 s and 474 MB (sets of states: each `?` doubled it); on the product it is
    microseconds, and the dearest pair at MAX_GLOB_CHARS stays within a fixed table of (2n+1)**2 pairs."""
    issue = "*a" + "?" * 17
    assert overlap(issue, "**/*.txt") == "a" + "x" * 13 + ".txt"  # the last four `?` are ".txt"
    assert cpu_seconds(lambda: overlap(issue, "**/*.txt")) < 0.05
    assert peak_mb(lambda: overlap(issue, "**/*.txt")) < 1
    at_bound = "*a" + "?" * (MAX_GLOB_CHARS - 2)
    assert overlap(at_bound, "**/*.txt") is not None
    assert peak_mb(lambda: overlap(at_bound, "**/*.txt")) < 5
    assert len(DEAR_FIRST) == len(DEAR_SECOND) == MAX_GLOB_CHARS and glob_problem(DEAR_FIRST) is None
    assert overlap(DEAR_FIRST, DEAR_SECOND) is None
    assert cpu_seconds(lambda: overlap(DEAR_FIRST, DEAR_SECOND)) < 0.5  # about 0.05 s on a quiet machine


def test_a_glob_over_the_bound_is_refused_with_the_reason() -> None:
    """A 4,001-character glob cost 1.5 s and 135 MB per 1,000-character name: now refused by its length, in stack
    files and UPLOADER_CONNECTORS alike; a glob at the bound matches a long name within a ceiling."""
    long_glob = "a/" + "*" * (MAX_GLOB_CHARS - 1)
    rule = glob_problem(long_glob)
    assert rule is not None and f"at most {MAX_GLOB_CHARS}" in rule and "grows with its length" in rule
    assert ("hr-connector:connectors[0].files", rule) in problems(config(long_glob))
    with pytest.raises(UsageError, match=r"UPLOADER_CONNECTORS\[0\]\.files: is 257 characters long"):
        load_connectors(f'[{{"jobId": "{uuid.UUID(int=1)}", "files": "{long_glob}", "scenarios": '
                        '[{"type": "resignation", "columns": {"userPrincipalName": "U", "resignationDate": "R", '
                        '"lastWorkingDate": "L"}}]}]')
    matcher = GlobMatcher(("*a" * MAX_GLOB_CHARS)[:MAX_GLOB_CHARS])
    name = "a" * 1000
    assert cpu_seconds(lambda: matcher.matches(name)) < 0.5
    assert peak_mb(lambda: GlobMatcher(matcher.pattern).matches(name)) < 16


def test_connectors_over_the_bound_are_refused_before_any_is_compared() -> None:
    """4,000 connectors (the 766 KB stack file) never finished: the count is checked on the raw list, first."""
    many = config(*(f"{i}/*.csv" for i in range(4000)))
    assert cpu_seconds(lambda: problems(many)) < 0.1
    assert peak_mb(lambda: problems(many)) < 1
    found = problems(many)
    assert len(found) == 1 and found[0][0] == "hr-connector:connectors"
    assert f"has 4,000 connectors; at most {MAX_CONNECTORS} connectors per stack" in found[0][1]
    assert "square of their number" in found[0][1]
    with pytest.raises(UsageError, match=f"UPLOADER_CONNECTORS: has {MAX_CONNECTORS + 1} connectors"):
        load_connectors("[" + ",".join(["{}"] * (MAX_CONNECTORS + 1)) + "]")


def test_connectors_at_the_bound_with_real_globs_are_compared_quickly() -> None:
    """MAX_CONNECTORS connectors, a folder each and some at any depth, checked pairwise within a ceiling."""
    globs = [f"hr/export-{i}/*.csv" if i % 4 else f"feed-{i}/**/*-[0-9]*.csv" for i in range(MAX_CONNECTORS)]
    at_bound = config(*globs)
    assert problems(at_bound) == []
    assert cpu_seconds(lambda: problems(at_bound)) < 1


def test_one_stacks_overlap_checks_share_one_budget() -> None:
    """Twelve of the dearest globs (66 pairs, about 4.3 million product states) stop at MAX_OVERLAP_STATES with the
    key and the reason, within a ceiling, instead of running on."""
    dear = [f"{DEAR_FIRST[:-4]}.{i:03d}" for i in range(12)]
    assert all(glob_problem(g) is None for g in dear)
    found: list[tuple[str, str]] = []
    assert cpu_seconds(lambda: found.extend(problems(config(*dear)))) < 2  # about 0.5 s on a quiet machine
    assert [key for key, _ in found] == [found[0][0]] and found[0][0].startswith("hr-connector:connectors[")
    assert f"more than {MAX_OVERLAP_STATES:,} automaton states" in found[0][1]


def test_the_product_walk_agrees_with_brute_force() -> None:
    """Random small globs: when some short path matches both, overlap finds a path; when overlap
    returns a path, both globs match it."""
    import itertools
    import random

    from uploader.model.globs import GlobMatcher

    rng = random.Random(20261206)
    atoms = ["a", "b", ".", "/", "*", "**/", "**", "?", "[ab]", "[!a]"]
    paths = ["".join(p) for n in range(5) for p in itertools.product("ab./", repeat=n)]
    compared = 0
    for _ in range(150):
        first, second = ("".join(rng.choice(atoms) for _ in range(rng.randint(1, 4))) for _ in range(2))
        if glob_problem(first) or glob_problem(second):
            continue
        one, two = GlobMatcher(first), GlobMatcher(second)
        both = [p for p in paths if one.matches(p) and two.matches(p)]
        found = overlap(first, second)
        if found is not None:
            assert one.matches(found) and two.matches(found), (first, second, found)
        if both:
            assert found is not None, (first, second, both[0])
        compared += 1
    assert compared > 50
