"""`python -m provisioning check [--stack NAME ...]`: every stack file validated and evaluated offline.

For each stack: the config rules (provisioning.config, via offline.load_stack_settings — fast, in-process),
then the real program under Pulumi mocks (offline.evaluate, one subprocess per stack). No Pulumi CLI, no
credentials, no network. One line per stack, or one per problem (every problem of a stack, not the first) and
per warning; the exit code says whether any stack has a problem (2 config, 1 evaluation).
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from provisioning.config import ConfigError, all_problems, config_warnings
from provisioning.naming import stack_name_problem
from provisioning.tools.offline import REPO_ROOT, EvaluationError, evaluate, load_stack_settings, stack_name
from uploader.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE


@dataclass(frozen=True)
class StackResult:
    """The outcome for one stack: ok with a resource count, or its problems (config key + rule, every one of them),
    or an evaluation failure; warnings (key + what to do) do not fail the stack."""

    stack: str
    path: Path
    resources: int = 0
    seconds: float = 0.0
    problems: tuple[tuple[str, str], ...] = ()  # (config key or file:line, rule)
    error: str | None = None  # an evaluation failure that is not a config rule
    warnings: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems and self.error is None

    @property
    def exit_code(self) -> int:
        if self.problems:
            return EXIT_USAGE
        return EXIT_FAILED if self.error is not None else EXIT_OK

    def line(self) -> str:
        """One line per problem and per warning, each naming the stack and the key."""
        warned = "".join(f"\nWARN  {self.stack}: {key}: {rule}" for key, rule in self.warnings)
        if self.ok:
            return f"ok    {self.stack}: {self.resources} resources, {self.seconds:.1f} s{warned}"
        if self.problems:
            return "\n".join(f"FAIL  {self.stack}: {key}: {rule}" for key, rule in self.problems) + warned
        first, _, rest = (self.error or "").partition("\n")
        detail = "".join(f"\n        {ln}" for ln in rest.splitlines()[-8:])  # the end of the traceback
        return f"FAIL  {self.stack}: evaluation failed: {first}{detail}{warned}"


def check_stack(path: Path, timeout: float = 180) -> StackResult:
    """Validate then evaluate one stack file; config problems (all of them) stop it before the evaluation."""
    name = stack_name(path)
    problems: list[tuple[str, str]] = []
    if (naming_rule := stack_name_problem(name)) is not None:
        problems.append((path.name, naming_rule))
    try:
        settings = load_stack_settings(path, REPO_ROOT)
    except ConfigError as exc:
        problems.extend((p.key, p.rule) for p in all_problems(exc))
        return StackResult(name, path, problems=tuple(problems))
    warnings = tuple((w.key, w.rule) for w in config_warnings(settings))
    if problems:
        return StackResult(name, path, problems=tuple(problems), warnings=warnings)
    try:
        evaluation = evaluate(path, REPO_ROOT, timeout=timeout)
    except ConfigError as exc:
        return StackResult(name, path, problems=tuple((p.key, p.rule) for p in all_problems(exc)), warnings=warnings)
    except EvaluationError as exc:
        return StackResult(name, path, error=str(exc), warnings=warnings)
    except subprocess.TimeoutExpired:
        return StackResult(name, path, error=f"no result within {timeout:.0f} s", warnings=warnings)
    return StackResult(name, path, resources=len(evaluation.deployed()), seconds=evaluation.seconds,
                       warnings=warnings)


def _check_one(path: Path) -> StackResult:
    """check_stack, with any failure it did not foresee as that stack's result: a stack file is a unit of failure."""
    try:
        return check_stack(path)
    except Exception as exc:  # noqa: BLE001 - one stack's failure never stops the others
        return StackResult(stack_name(path), path, error=f"cannot be checked ({type(exc).__name__})")


def check_stacks(paths: list[Path], workers: int | None = None) -> list[StackResult]:
    """Every stack, a few at a time (each evaluation is its own process); results in the given order."""
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_check_one, paths))


def overall_exit_code(results: list[StackResult]) -> int:
    """2 if any stack breaks a config rule, else 1 if any failed to evaluate, else 0."""
    codes = {r.exit_code for r in results}
    for code in (EXIT_USAGE, EXIT_FAILED):
        if code in codes:
            return code
    return EXIT_OK
