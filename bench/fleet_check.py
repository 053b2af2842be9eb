"""`python -m provisioning check` and `render-diff` over a generated fleet: one hosting stack and N hosted tenants.

Writes the stack files to a temporary folder (one `new-stack --hosting`-shaped file and N tenants with
`hostedBy`, each with one connector), then times the real command line end to end (process start, the
config rules, every stack under Pulumi mocks in the evaluator's worker processes), and prints the figures
that docs/performance.md records.

Then `render-diff` of a change to the hosting stack (a second alert e-mail and a tag), which selects it and its N
tenants: a copy of this working tree (the files git tracks or would) is committed in a scratch repository with the
fleet under fleet/, the hosting stack file is edited, and `render-diff --base-ref HEAD --changed-files` runs there
end to end (git archive of the base, the base's program evaluated by its own evaluator, then this tree's, the
comparison and the comment). `--no-render-diff` skips it.

With --preview N it then runs `python -m provisioning fleet preview --all --parallel N` over the same stacks
against the stand-in Pulumi CLI (tests/fake_pulumi.py, driven through the real Automation API): hosting stack
first, then the tenants N at a time.

    .venv/bin/python bench/fleet_check.py [--tenants 200] [--no-check | --no-render-diff] [--preview 8] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

HOSTING = """config:
  hr-connector:hosting: true
  hr-connector:cloud: commercial
  hr-connector:location: eastus
  hr-connector:alertEmails: [platform@contoso.example]
  hr-connector:azureTenantId: 9f1c2a3b-4d5e-4f60-8a7b-8c9d0e1f2a3b
"""

TENANT = """config:
  hr-connector:tenantId: {tenant}
  hr-connector:cloud: {cloud}
  hr-connector:location: eastus
  hr-connector:hostedBy: hub-eastus
  hr-connector:connectors:
    - name: departures
      jobId: {job}
      files: departures/*.csv
      scenarios:
        - type: resignation
          columns:
            userPrincipalName: EmailAddress
            resignationDate: ResignationDate
            lastWorkingDate: LastWorkingDate
"""


def write_fleet(directory: Path, tenants: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Pulumi.hub-eastus.yaml").write_text(HOSTING, encoding="utf-8")
    for i in range(tenants):
        text = TENANT.format(tenant=uuid.uuid4(), job=uuid.uuid4(), cloud="gcc" if i % 4 == 3 else "commercial")
        (directory / f"Pulumi.tenant-{i:03d}.yaml").write_text(text, encoding="utf-8")


def fleet_preview(directory: Path, parallel: int) -> int:
    """`fleet preview --all --parallel N` against tests/fake_pulumi.py as `<root>/bin/pulumi`."""
    root, state = directory / "pulumi", directory / "fake-state"
    (root / "bin").mkdir(parents=True)
    state.mkdir()
    exe = root / "bin" / "pulumi"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{ROOT / "tests" / "fake_pulumi.py"}" "$@"\n')
    exe.chmod(0o755)
    names = [p.name[len("Pulumi."):-len(".yaml")] for p in directory.glob("Pulumi.*.yaml")]
    (state / "plan.json").write_text(json.dumps({name: {"changes": {"same": 20}} for name in names}))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "provisioning", "fleet", "preview", "--all", "--parallel",
                           str(parallel), "--pulumi-root", str(root), "--stacks-dir", str(directory),
                           "--log-dir", str(directory / "logs")],
                          cwd=ROOT, capture_output=True, text=True, check=False,
                          env={**os.environ, "FAKE_PULUMI_DIR": str(state)})
    seconds = time.perf_counter() - started
    print(f"fleet preview --parallel {parallel} (stand-in CLI): {seconds:.1f} s, exit {proc.returncode}; "
          f"{proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:]}")
    return proc.returncode


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def render_diff(directory: Path, tenants: int) -> int:
    """`render-diff` of a hosting-stack change selecting it and its tenants, in a scratch copy of this tree."""
    copy = directory / "repo"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    write_fleet(copy / "fleet", tenants)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "base"]):
        subprocess.run([*git, *args], cwd=copy, check=True, capture_output=True)
    hub = copy / "fleet" / "Pulumi.hub-eastus.yaml"
    hub.write_text(hub.read_text(encoding="utf-8").replace(
        "[platform@contoso.example]", "[platform@contoso.example, oncall@contoso.example]")
        + "  hr-connector:tags:\n    cost-center: \"4711\"\n", encoding="utf-8")
    (directory / "changed.txt").write_text("fleet/Pulumi.hub-eastus.yaml\n", encoding="utf-8")
    before, started = _cpu(), time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "provisioning", "render-diff", "--base-ref", "HEAD",
                           "--changed-files", str(directory / "changed.txt"), "--stacks-dir", str(copy / "fleet"),
                           "--comment", str(directory / "comment.md"), "--details-dir", str(directory / "details")],
                          cwd=copy, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(copy)})
    seconds, cpu = time.perf_counter() - started, _cpu() - before
    comment = (directory / "comment.md").read_text(encoding="utf-8") if proc.returncode == 0 else ""
    print(f"render-diff of a hosting-stack change selecting 1 + {tenants} stacks: {seconds:.1f} s wall, "
          f"{cpu:.1f} CPU-s (both trees), {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"exit {proc.returncode}; comment {len(comment)} characters")
    if proc.returncode != 0 or "oncall@contoso.example" not in comment or f"{tenants} selected stack(s) render the " \
            "same" not in comment:
        print(proc.stderr[-3000:])
        return proc.returncode or 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the generated stack files")
    parser.add_argument("--preview", type=int, metavar="N", help="then `fleet preview --parallel N` (stand-in CLI)")
    parser.add_argument("--no-render-diff", action="store_true", help="skip the render-diff timing")
    parser.add_argument("--no-check", action="store_true", help="skip the check timing (render-diff only)")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="hr-connector-fleet-"))
    try:
        write_fleet(directory, args.tenants)
        if args.no_check:
            return render_diff(directory, args.tenants)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "provisioning", "check", "--stacks-dir", str(directory)],
                              cwd=ROOT, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        lines = proc.stdout.strip().splitlines()
        ok = sum(line.startswith("ok ") for line in lines)
        print(f"stacks: 1 hosting + {args.tenants} hosted ({ok} ok), exit {proc.returncode}")
        print(f"check wall time: {seconds:.1f} s ({seconds / (args.tenants + 1):.2f} s a stack), "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
        # The CPU time of check and its worker processes: on an idle machine the wall time is about this divided
        # by the cores (the workers keep every core busy); on a shared machine the wall time is what is left.
        print(f"check CPU time: {cpu:.1f} s (processes: check + its workers); on {os.cpu_count()} idle cores "
              f"about {cpu / (os.cpu_count() or 1):.0f} s")
        print(lines[-1] if lines else proc.stderr[-2000:])
        if proc.returncode != 0:
            print("\n".join(line for line in lines if not line.startswith("ok "))[:4000])
            return proc.returncode
        if not args.no_render_diff and (code := render_diff(directory, args.tenants)) != 0:
            return code
        return fleet_preview(directory, args.preview) if args.preview else 0
    finally:
        if args.keep:
            print(f"stack files kept in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
