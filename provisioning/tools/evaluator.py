"""Many stacks evaluated offline in a few long-lived worker processes, not one process per stack.

`offline.evaluate` starts a Python process per stack (~0.7 s of it process start and imports of Pulumi and the
azure-native modules). For a fleet that dominates: `check` of 200 stacks took minutes. Here a pool of worker
processes (one per core by default) imports all that once, then evaluates stack after stack in-process
(`offline._evaluate_here` sets Pulumi's runtime up afresh for each: mocks, settings, config, root resource).
The parent never imports Pulumi.

Hosting stacks go first: their outputs (from their own stack files, under mocks, no backend) are what their
hosted tenants' StackReference reads. A tenant whose hosting stack is missing, not a hosting stack, failed to
evaluate, or does not match (cloud family, location, subscription) gets a ConfigError naming `hostedBy` or
the key that differs.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from provisioning.config import ConfigError, ConfigProblems, all_problems
from provisioning.tools.offline import (
    REPO_ROOT,
    Evaluation,
    EvaluationError,
    StackConfig,
    hosted_by,
    hosting_file,
    is_hosting,
    load_stack_file,
    missing_hosting,
    raise_mismatches,
)

Outcome = Evaluation | ConfigError | EvaluationError


def _close_event_loop() -> None:
    """At worker exit: close the event loop Pulumi's runtime ran on, so that no loop is collected half-torn-down
    after the interpreter has closed its selector ("Exception ignored in BaseEventLoop.__del__" on stderr)."""
    import asyncio

    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        return
    if not loop.is_closed() and not loop.is_running():
        loop.close()


def _warm() -> None:
    """Worker start: the one writer's last catch (uploader/model/sink.py: what the worker prints, and what Python
    reports at its exit, is escaped, never a traceback), Ctrl-C left to the parent (which stops the pool), then
    the imports every evaluation needs once (the program's modules and Pulumi's runtime)."""
    import signal

    from uploader.model.sink import install_hooks

    install_hooks()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    atexit.register(_close_event_loop)
    import pulumi  # noqa: F401
    import pulumi.runtime.mocks  # noqa: F401

    import provisioning.components.alerts  # noqa: F401 - each pulls in its azure-native modules
    import provisioning.components.dropzone  # noqa: F401
    import provisioning.components.environment  # noqa: F401
    import provisioning.components.hosting  # noqa: F401
    import provisioning.components.identity  # noqa: F401
    import provisioning.components.image  # noqa: F401
    import provisioning.components.job  # noqa: F401
    import provisioning.components.vault  # noqa: F401


def _evaluate_in_worker(path: str, project_dir: str, hosting_outputs: dict[str, dict[str, Any]]
                        ) -> tuple[str, Any]:
    """One stack in this worker: ("ok", evaluation JSON) | ("config", [(key, rule)]) | ("error", text)."""
    from provisioning.tools.offline import _config_error_in, _evaluate_here

    try:
        config = load_stack_file(path, Path(project_dir))
        evaluation = _evaluate_here(config, Path(project_dir), hosting_outputs)
    except ConfigError as exc:
        return "config", [(p.key, p.rule) for p in all_problems(exc)]
    except Exception as exc:  # noqa: BLE001 - a stack's failure is its result; the worker goes on
        cause = _config_error_in(exc)
        if cause is not None:
            return "config", [(p.key, p.rule) for p in all_problems(cause)]
        lines = traceback.format_exception(exc)
        return "error", "".join(lines[-15:])
    return "ok", evaluation.to_json()


def _outcome(path: Path, result: tuple[str, Any]) -> Outcome:
    kind, value = result
    if kind == "ok":
        return Evaluation.from_json(value)
    if kind == "config":
        return ConfigProblems([ConfigError(k, r) for k, r in value]) if len(value) > 1 else ConfigError(*value[0])
    return EvaluationError(f"evaluating {path} failed:\n{value}")


def _run(pool: ProcessPoolExecutor | None, jobs: list[tuple[Path, dict[str, dict[str, Any]]]],
         project_dir: Path, each: Callable[[Path, tuple[str, Any]], None]) -> None:
    """Evaluate `jobs`, handing each result to `each` as soon as it is done (completion order)."""
    if pool is None:  # one worker: in this process (tests, --workers 1)
        for p, outputs in jobs:
            each(p, _evaluate_in_worker(os.fspath(p), os.fspath(project_dir), outputs))
        return
    futures = {pool.submit(_evaluate_in_worker, os.fspath(p), os.fspath(project_dir), outputs): p
               for p, outputs in jobs}
    for future in as_completed(futures):
        each(futures[future], future.result())


def evaluate_many(paths: Iterable[Path], project_dir: Path = REPO_ROOT, workers: int | None = None,
                  on_result: Callable[[Path, Outcome], None] | None = None) -> dict[Path, Outcome]:
    """Every stack file evaluated under mocks, `workers` processes at a time (default: one per core; 1 = in
    this process); hosting stacks first. Returns path -> Evaluation, or the ConfigError / EvaluationError."""
    paths = list(paths)
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    results: dict[Path, Outcome] = {}
    configs: dict[Path, StackConfig] = {}
    for path in paths:
        try:
            configs[path] = load_stack_file(path, project_dir)
        except ConfigError as exc:
            results[path] = exc
            if on_result:
                on_result(path, exc)
    # Hosting stacks: those listed, and those a listed tenant names (evaluated for their outputs only).
    hosting_paths: dict[Path, StackConfig] = {p: c for p, c in configs.items() if is_hosting(c)}
    for config in configs.values():
        if hosted_by(config) and missing_hosting(config, project_dir) is None:
            file = hosting_file(config)
            if file not in hosting_paths:
                hosting_paths[file] = load_stack_file(file, project_dir)
    context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
    # never more workers than evaluations (each worker's start costs an import of Pulumi)
    size = min(workers, max(1, len(hosting_paths) + len(configs)))
    pool = (ProcessPoolExecutor(max_workers=size, mp_context=context, initializer=_warm) if workers > 1 else None)
    try:
        hosted_outputs: dict[str, dict[str, Any] | Outcome] = {}

        def hosting_done(path: Path, result: tuple[str, Any]) -> None:
            outcome = _outcome(path, result)
            hosted_outputs[hosting_paths[path].name] = outcome.outputs if isinstance(outcome, Evaluation) else outcome
            if path in configs:
                results[path] = outcome
                if on_result:
                    on_result(path, outcome)

        _run(pool, [(p, {}) for p in hosting_paths], project_dir, hosting_done)
        jobs: list[tuple[Path, dict[str, dict[str, Any]]]] = []
        for path, config in configs.items():
            if path in results:
                continue
            host = hosted_by(config)
            if host is None:
                jobs.append((path, {}))
                continue
            problem = missing_hosting(config, project_dir)
            outputs = hosted_outputs.get(host)
            if problem is None and not isinstance(outputs, dict):
                problem = ConfigError("hr-connector:hostedBy", f"hosting stack {host} does not evaluate: "
                                                               f"{_reason(outputs)}")
            if problem is None:
                assert isinstance(outputs, dict)
                try:
                    raise_mismatches(config, {host: outputs}, project_dir)
                except ConfigError as exc:
                    problem = exc
            if problem is not None or not isinstance(outputs, dict):
                results[path] = problem or ConfigError("hr-connector:hostedBy", f"hosting stack {host}: no outputs")
                if on_result:
                    on_result(path, results[path])
                continue
            jobs.append((path, {host: outputs}))

        def tenant_done(path: Path, result: tuple[str, Any]) -> None:
            results[path] = _outcome(path, result)
            if on_result:
                on_result(path, results[path])

        _run(pool, jobs, project_dir, tenant_done)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return {p: results[p] for p in paths}


def _reason(outcome: object) -> str:
    if isinstance(outcome, ConfigError):
        return f"{outcome.key}: {outcome.rule}"
    return str(outcome).splitlines()[0] if outcome is not None else "unknown"


#: The first line `python -m provisioning.tools.evaluator` prints: what render-diff checks before reading on (a
#: base tree from before this command prints nothing, and render-diff then evaluates it one process per stack).
PROTOCOL = "hr-connector-evaluations/1"


def _main(argv: list[str] | None = None) -> int:
    """`python -m provisioning.tools.evaluator [--project-dir DIR] [--workers N] FILE...`: evaluate stack files
    of DIR's program (run with DIR as the working directory and PYTHONPATH, so its own modules are imported) and
    print one JSON line per stack as it finishes: {"path", "evaluation"} | {"path", "config": [[key, rule]]} |
    {"path", "error"}. render-diff runs it on the base tree."""
    from uploader.model import sink

    parser = sink.ArgumentParser(prog="python -m provisioning.tools.evaluator",
                                     description="Evaluate stack files under Pulumi mocks; JSON lines out.")
    parser.add_argument("files", nargs="*", metavar="FILE", help="stack files (Pulumi.<stack>.yaml)")
    parser.add_argument("--project-dir", default=os.fspath(REPO_ROOT), metavar="DIR",
                        help="the project whose program evaluates them (default: this one)")
    parser.add_argument("--workers", type=int, metavar="N", help="worker processes (default: one per core, 4 at most)")
    args = parser.parse_args(argv)

    def emit(path: Path, outcome: Outcome) -> None:
        line: dict[str, Any] = {"path": os.fspath(path)}
        if isinstance(outcome, Evaluation):
            line["evaluation"] = outcome.to_json()
        elif isinstance(outcome, ConfigError):
            line["config"] = [[p.key, p.rule] for p in all_problems(outcome)]
        else:
            line["error"] = str(outcome)
        sink.stdout.protocol(line, default=str)

    sink.stdout.protocol({"protocol": PROTOCOL})
    evaluate_many([Path(f) for f in args.files], Path(args.project_dir).resolve(), args.workers, on_result=emit)
    return 0


def outcome_from_line(line: dict[str, Any]) -> Outcome:
    """One JSON line of `_main` back into an Outcome."""
    if "evaluation" in line:
        return Evaluation.from_json(line["evaluation"])
    if "config" in line:
        problems = [ConfigError(k, r) for k, r in line["config"]]
        return ConfigProblems(problems) if len(problems) > 1 else problems[0]
    return EvaluationError(str(line.get("error") or "evaluation failed"))


if __name__ == "__main__":  # through the module's own name, so that worker processes unpickle its functions
    from uploader.model.sink import run_main

    raise SystemExit(run_main("provisioning.tools.evaluator", "_main"))
