"""`python -m provisioning fleet preview|up|refresh`: one Pulumi operation over many stacks at once, without GitHub.

Built on Pulumi's Automation API (pulumi.automation): each stack is a LocalWorkspace on this project run by the
Pulumi CLI (on PATH, or `--pulumi-root DIR` for DIR/bin/pulumi — what automation's PulumiCommand looks for).
Stacks run N at a time (`--parallel`), each isolated: one stack's failure is recorded and the others go on.
Hosting stacks run first, all of them finished before any other stack starts: a hosted tenant reads its
hosting stack's outputs (its environment, registry and image), so `up` must have created them.
Every stack's CLI output goes to its own log file (nothing interleaves); the terminal gets one line when a
stack starts and one when it ends, then a summary table. Exit 0 when every stack succeeded, 1 when any failed.

`up --rotate-certificate` forces a new certificate now: `pulumi up --replace <the Certificate's URN>` (not
`--target-replace`, which would leave the credential and the Key Vault secret out of the update), so the
renewal order is that of a scheduled renewal: new credential registered, then the secret's new version,
then the old credential removed (provisioning/components/certificate.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from provisioning.tools.offline import REPO_ROOT, stack_name
from uploader.model.sink import Writer

OPERATIONS = ("preview", "up", "refresh")
#: The program needs Pulumi CLI 3.187 or later (Pulumi.yaml's `type: object` config keys).
MINIMUM_CLI = "3.187.0"
#: Change kinds shown in the summary, in Pulumi's OpType spelling.
CHANGE_KINDS = ("create", "update", "replace", "delete", "same")


@dataclass
class StackRun:
    """What happened to one stack."""

    stack: str
    ok: bool = False
    changes: dict[str, int] = field(default_factory=dict)
    error: str = ""
    seconds: float = 0.0
    log: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "ok": self.ok, "changes": self.changes, "error": self.error,
                "seconds": round(self.seconds, 1), "log": self.log}


def pinned_cli_version(root: Path = REPO_ROOT) -> str:
    """The Pulumi CLI version the project pins (.pulumi-version; the workflows install exactly it)."""
    try:
        return (root / ".pulumi-version").read_text(encoding="utf-8").strip().removeprefix("v") or MINIMUM_CLI
    except OSError:
        return MINIMUM_CLI


def pulumi_cli(pulumi_root: str | None, alternative: str = "") -> str:
    """The Pulumi CLI to run (DIR/bin/pulumi for --pulumi-root DIR, else pulumi on PATH); FleetError, said once
    for the whole command, when there is none: which version to install, and the options that do without."""
    from provisioning.tools.fleet import FleetError

    exe = os.path.join(pulumi_root, "bin", "pulumi") if pulumi_root else shutil.which("pulumi")
    if exe and os.path.isfile(exe) and os.access(exe, os.X_OK):
        return exe
    version = pinned_cli_version()
    where = f"{pulumi_root}/bin/pulumi" if pulumi_root else "pulumi on PATH"
    # Pulumi's installer takes the version to install (https://www.pulumi.com/docs/iac/download-install/).
    raise FleetError(f"no Pulumi CLI ({where} not found): install Pulumi CLI {version}, the version in "
                     f".pulumi-version (`curl -fsSL https://get.pulumi.com | sh -s -- --version {version}`), or point "
                     f"to an installed one with --pulumi-root DIR (DIR/bin/pulumi)"
                     + (f", or {alternative}" if alternative else ""))


def certificate_urn(path: Path) -> str | None:
    """The URN of a stack's Certificate resource, from the program's own graph under mocks (offline); None for a
    hosting stack (it has no certificate)."""
    from provisioning.components import certificate as program_made
    from provisioning.components import vaultcert
    from provisioning.tools.fleet import EvaluationFailed
    from provisioning.tools.offline import EvaluationError, evaluate

    try:
        evaluation = evaluate(path, REPO_ROOT)
    except EvaluationError as exc:
        raise EvaluationFailed(str(exc)) from None
    # protection exportable: the program-made Certificate; vault/hsm: the Key Vault-made VaultCertificate
    found = evaluation.of_type(program_made.TYPE_TOKEN) + evaluation.of_type(vaultcert.TYPE_TOKEN)
    return found[0].urn if found else None


def stack_file_problem(path: Path) -> str:
    """Why the stack file cannot be read (through the one bounded stack-file reader), or "" when it can."""
    from provisioning.config import ConfigError
    from provisioning.yamlfile import read_yaml

    try:
        read_yaml(path)
    except ConfigError as exc:
        return f"{exc.key}: {exc.rule}"
    return ""


def _short(exc: BaseException) -> str:
    from provisioning.config import ConfigError

    if isinstance(exc, ConfigError):
        return f"{exc.key}: {exc.rule}"
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__


def _error_text(exc: BaseException, stderr: list[str]) -> str:
    """The CLI's own error lines (Pulumi masks secrets in its output), short: the log file has the rest."""
    lines = [line.strip() for line in stderr if line.strip()]
    picked = [line for line in lines if line.lower().startswith("error")] or lines
    text = " | ".join(picked[-3:]) if picked else type(exc).__name__
    return text[:500]


#: An operation name: Pulumi's automation API keys its change counts by OpType, a str enum.
_Op = TypeVar("_Op", bound=str)


def _changes(summary: Mapping[_Op, int] | None) -> dict[str, int]:
    return {kind: int(count) for kind, count in (summary or {}).items() if count}


def run_stack(operation: str, path: Path, command: Any, log_dir: Path, *, expect_no_changes: bool = False,
              replace: list[str] | None = None, env: Mapping[str, str] | None = None) -> StackRun:
    """Run one operation on one stack through the Automation API; never raises (the failure is recorded)."""
    from pulumi import automation as auto

    name = stack_name(path)
    result = StackRun(name, log=str(log_dir / f"{name}.{operation}.log"))
    started = time.monotonic()
    with open(result.log, "w", encoding="utf-8") as log:
        stderr: list[str] = []

        def write(line: str) -> None:
            log.write(line + "\n")
            log.flush()

        def write_error(line: str) -> None:
            stderr.append(line)
            write(line)

        try:
            workspace = auto.LocalWorkspace(work_dir=str(REPO_ROOT), pulumi_command=command, env_vars=dict(env or {}))
            stack = auto.Stack.select(name, workspace)
            if operation == "preview":
                preview = stack.preview(on_output=write, on_error=write_error, diff=True,
                                        expect_no_changes=expect_no_changes or None)
                result.changes = _changes(preview.change_summary)
            elif operation == "up":
                up = stack.up(on_output=write, on_error=write_error, diff=True, show_secrets=False,
                              expect_no_changes=expect_no_changes or None, replace=replace or None)
                result.changes = _changes(up.summary.resource_changes)
            else:
                refresh = stack.refresh(on_output=write, on_error=write_error, show_secrets=False,
                                        expect_no_changes=expect_no_changes or None)
                result.changes = _changes(refresh.summary.resource_changes)
            result.ok = True
        except Exception as exc:  # noqa: BLE001 - any failure of one stack is that stack's result, not the fleet's
            result.error = _error_text(exc, stderr)
            write(f"hr-connector fleet: {operation} failed: {result.error}")
    result.seconds = time.monotonic() - started
    return result


def run_fleet(operation: str, paths: list[Path], *, parallel: int, log_dir: Path, pulumi_root: str | None = None,
              expect_no_changes: bool = False, rotate_certificate: bool = False,
              progress: Writer | None = None,
              runner: Callable[..., StackRun] = run_stack) -> list[StackRun]:
    """Run `operation` on every stack, `parallel` at a time; results in the order of `paths`."""
    from pulumi import automation as auto

    if operation not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}")
    from semver import VersionInfo

    from provisioning.tools.fleet import FleetError

    pulumi_cli(pulumi_root)  # none: one message for the fleet, not one failure per stack
    log_dir.mkdir(parents=True, exist_ok=True)
    where = f"{pulumi_root}/bin/pulumi" if pulumi_root else "pulumi on PATH"
    try:  # checks the CLI's version once, for every stack
        command = auto.PulumiCommand(root=pulumi_root, version=VersionInfo.parse(MINIMUM_CLI))
    except (OSError, subprocess.CalledProcessError) as exc:
        raise FleetError(f"the Pulumi CLI ({where}) could not be run: {type(exc).__name__}") from None
    except auto.errors.InvalidVersionError as exc:
        raise FleetError(f"the Pulumi CLI ({where}): {exc} (this program needs {MINIMUM_CLI} or later)") from None
    unreadable = {p: error for p in paths if (error := stack_file_problem(p))}
    replaces: dict[Path, list[str]] = {}
    from provisioning.tools.fleet import FEDERATED_SKIP, is_federated_stack

    for p in paths if rotate_certificate else []:
        if p not in unreadable and is_federated_stack(p):  # said, then `up` as usual
            if progress is not None:
                progress.line(f"{stack_name(p)}: --rotate-certificate skipped: {FEDERATED_SKIP}")
        elif p not in unreadable:
            try:
                if (urn := certificate_urn(p)) is not None:  # a hosting stack has no certificate
                    replaces[p] = [urn]
            except Exception as exc:  # noqa: BLE001 - that stack fails; the others still rotate
                unreadable[p] = _short(exc)
    lock = threading.Lock()

    def say(text: str) -> None:
        if progress is not None:
            with lock:
                progress.line(text)

    def one(path: Path) -> StackRun:
        if path in unreadable:  # a stack file is a unit of failure: reported and skipped, the others go on
            skipped = StackRun(stack_name(path), error=f"skipped: {unreadable[path]}")
            say(f"{skipped.stack}: {operation} FAILED: {skipped.error}")
            return skipped
        say(f"{stack_name(path)}: {operation} started")
        done = runner(operation, path, command, log_dir, expect_no_changes=expect_no_changes,
                      replace=replaces.get(path))
        outcome = "ok" if done.ok else f"FAILED: {done.error}"
        say(f"{done.stack}: {operation} {outcome} ({done.seconds:.0f}s; log {done.log})")
        return done

    from provisioning.tools.fleet import is_hosting_stack

    hosting = [p for p in paths if is_hosting_stack(p)]
    rest = [p for p in paths if p not in hosting]
    done: dict[Path, StackRun] = {}
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        for phase in (hosting, rest):  # every hosting stack finishes before a tenant starts
            done.update(zip(phase, pool.map(one, phase), strict=True))
    return [done[p] for p in paths]


def summary_table(operation: str, results: list[StackRun]) -> str:
    """A Markdown table (readable in a terminal and in a job summary)."""
    lines = [f"| stack | {operation} | " + " | ".join(CHANGE_KINDS) + " | seconds |",
             "|---|---|" + "---:|" * len(CHANGE_KINDS) + "---:|"]
    for r in results:
        status = "ok" if r.ok else "**failed**"
        counts = " | ".join(str(r.changes.get(kind, 0)) for kind in CHANGE_KINDS)
        lines.append(f"| {r.stack} | {status} | {counts} | {r.seconds:.0f} |")
    failed = [r for r in results if not r.ok]
    lines.append("")
    lines.append(f"{len(results)} stack(s): {len(results) - len(failed)} ok, {len(failed)} failed")
    lines.extend(f"- {r.stack}: {r.error} (log: {r.log})" for r in failed)
    return "\n".join(lines)
