"""`python -m provisioning check [--stack NAME ...]`: every stack file validated and evaluated offline.

For each stack: the config rules (provisioning.config, via offline.load_stack_settings — fast, in-process),
then the real program under Pulumi mocks (evaluator.evaluate_many: a few worker processes evaluate stack after
stack, hosting stacks first so that their hosted tenants read their outputs). No Pulumi CLI, no credentials,
no network. One line per stack, or one per problem (every problem of a stack, not the first) and per warning;
the exit code says whether any stack has a problem (2 config, 1 evaluation). Across the fleet: the jobs that
share a hosting stack's environment have distinct names, and the private stacks that peer with one runner network
(`runnerNetwork`) have address spaces that do not overlap.

With `--policy fedramp-high|il5|mcsb`, each evaluated stack is also checked against the Deny-capable members of
that Azure Policy initiative (tools/policy.py, Microsoft's definitions vendored in provisioning/policies/): one
`DENY` line per resource a member would refuse, naming the policy, its ID, the resource and the settings; a
stack with any is a failure (exit 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from provisioning.config import NAMESPACE, ConfigError, Settings, all_problems, config_warnings, overlapping
from provisioning.naming import Names, stack_name_problem
from provisioning.tools.evaluator import Outcome, evaluate_many
from provisioning.tools.offline import (
    REPO_ROOT,
    EvaluationError,
    load_stack_settings,
    stack_file_warnings,
    stack_name,
)
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
    denied: tuple[str, ...] = ()  # with --policy: one DENY line per (policy, resource) the initiative refuses

    @property
    def ok(self) -> bool:
        return not self.problems and self.error is None and not self.denied

    @property
    def exit_code(self) -> int:
        if self.problems:
            return EXIT_USAGE
        return EXIT_FAILED if self.error is not None or self.denied else EXIT_OK

    def line(self) -> str:
        """One line per problem and per warning, each naming the stack and the key."""
        warned = "".join(f"\nWARN  {self.stack}: {key}: {rule}" for key, rule in self.warnings)
        if self.denied:
            return "\n".join(self.denied) + warned
        if self.ok:
            return f"ok    {self.stack}: {self.resources} resources, {self.seconds:.1f} s{warned}"
        if self.problems:
            return "\n".join(f"FAIL  {self.stack}: {key}: {rule}" for key, rule in self.problems) + warned
        first, _, rest = (self.error or "").partition("\n")
        detail = "".join(f"\n        {ln}" for ln in rest.splitlines()[-8:])  # the end of the traceback
        return f"FAIL  {self.stack}: evaluation failed: {first}{detail}{warned}"


def _preflight(path: Path) -> tuple[StackResult | None, tuple[tuple[str, str], ...], Settings | None]:
    """The config rules (fast, no evaluation): a failed StackResult, or None with the warnings and settings."""
    name = stack_name(path)
    problems: list[tuple[str, str]] = []
    if (naming_rule := stack_name_problem(name)) is not None:
        problems.append((path.name, naming_rule))
    try:
        settings = load_stack_settings(path, REPO_ROOT)
    except ConfigError as exc:
        problems.extend((p.key, p.rule) for p in all_problems(exc))
        return StackResult(name, path, problems=tuple(problems)), (), None
    warnings = tuple((w.key, w.rule) for w in [*stack_file_warnings(path, REPO_ROOT), *config_warnings(settings)])
    if problems:
        return StackResult(name, path, problems=tuple(problems), warnings=warnings), warnings, settings
    return None, warnings, settings


def _result(path: Path, outcome: Outcome, warnings: tuple[tuple[str, str], ...],
            policy: str | None = None) -> StackResult:
    name = stack_name(path)
    if isinstance(outcome, ConfigError):
        return StackResult(name, path, problems=tuple((p.key, p.rule) for p in all_problems(outcome)),
                           warnings=warnings)
    if isinstance(outcome, EvaluationError):
        return StackResult(name, path, error=str(outcome), warnings=warnings)
    denied: tuple[str, ...] = ()
    if policy is not None:
        from provisioning.tools.policy import load_initiative, violations

        _, members = load_initiative(policy)
        denied = tuple(v.line(name) for v in violations(outcome, members))
    return StackResult(name, path, resources=len(outcome.deployed()), seconds=outcome.seconds, warnings=warnings,
                       denied=denied)


def check_stack(path: Path, timeout: float = 180) -> StackResult:
    """Validate then evaluate one stack file; config problems (all of them) stop it before the evaluation."""
    return check_stacks([path], workers=1)[0]


def _shared_job_names(settings: dict[Path, Settings]) -> dict[Path, tuple[str, str]]:
    """Hosted tenants whose job name another tenant of the same hosting stack already has."""
    seen: dict[tuple[str, str], str] = {}
    clashes: dict[Path, tuple[str, str]] = {}
    for path, s in sorted(settings.items()):
        if not s.hosted_by_stack:
            continue
        job = Names(stack_name(path), s.tenant_id).hosted_job
        other = seen.setdefault((s.hosted_by_stack, job), stack_name(path))
        if other != stack_name(path):
            clashes[path] = (f"{stack_name(path)}.yaml", f"its job name {job} is already {other}'s in hosting stack "
                                                         f"{s.hosted_by_stack}'s environment: rename one stack")
    return clashes


#: Why peered networks must not overlap (Microsoft Learn, "Requirements and constraints").
PEERING_RULE = ("peered networks must not overlap (\"The virtual networks you peer must have nonoverlapping IP address "
                "spaces\": https://learn.microsoft.com/azure/virtual-network/virtual-network-manage-peering)")


def overlapping_peers(settings: dict[Path, Settings]) -> dict[Path, list[tuple[str, str]]]:
    """(key, rule) for each private stack whose addressSpace overlaps another's that peers with the same runner
    network (its runnerNetwork.virtualNetworkId): both stacks get a problem naming both files. (A stack that overlaps
    the runner network's own range is refused by its config alone.)"""
    peers: dict[str, list[tuple[Path, Settings]]] = {}
    for path, s in sorted(settings.items()):
        if s.private and not s.hosted_by and s.runner_network is not None:
            peers.setdefault(s.runner_network.virtual_network.id.lower(), []).append((path, s))
    clashes: dict[Path, list[tuple[str, str]]] = {}
    for stacks in peers.values():
        for i, (path, s) in enumerate(stacks):
            for other_path, other in stacks[:i]:
                if overlapping([s.address_space], [other.address_space]) is None:
                    continue
                assert s.runner_network is not None
                hub = s.runner_network.virtual_network.name
                for here, mine, there, theirs in ((path, s, other_path, other), (other_path, other, path, s)):
                    clashes.setdefault(here, []).append((f"{NAMESPACE}:addressSpace", (
                        f"{mine.address_space} in {here.name} overlaps {theirs.address_space} in {there.name}: both "
                        f"peer with runner network {hub}, and {PEERING_RULE}; give one stack a free range "
                        "(`new-stack` picks one: docs/configuration.md#network)")))
    return clashes


def check_stacks(paths: list[Path], workers: int | None = None, policy: str | None = None) -> list[StackResult]:
    """Every stack: the config rules, then the program under mocks in a few worker processes (evaluator.py), then
    (`policy`) the initiative's Deny-capable members; results in the given order."""
    results: dict[Path, StackResult] = {}
    warnings: dict[Path, tuple[tuple[str, str], ...]] = {}
    settings: dict[Path, Settings] = {}
    for path in paths:
        try:
            failed, warnings[path], found = _preflight(path)
        except Exception as exc:  # noqa: BLE001 - a stack file is a unit of failure: it never stops the others
            failed, warnings[path], found = (StackResult(stack_name(path), path,
                                                         error=f"cannot be checked ({type(exc).__name__})"), (), None)
        if found is not None:
            settings[path] = found
        if failed is not None:
            results[path] = failed
    fleet_problems: dict[Path, list[tuple[str, str]]] = overlapping_peers(settings)
    for path, problem in _shared_job_names(settings).items():
        fleet_problems.setdefault(path, []).insert(0, problem)
    for path, across in fleet_problems.items():
        results[path] = StackResult(stack_name(path), path, problems=tuple(across), warnings=warnings[path])
    todo = [p for p in paths if p not in results]
    for path, outcome in evaluate_many(todo, REPO_ROOT, workers).items():
        results[path] = _result(path, outcome, warnings[path], policy)
    return [results[p] for p in paths]


def overall_exit_code(results: list[StackResult]) -> int:
    """2 if any stack breaks a config rule, else 1 if any failed to evaluate, else 0."""
    codes = {r.exit_code for r in results}
    for code in (EXIT_USAGE, EXIT_FAILED):
        if code in codes:
            return code
    return EXIT_OK
