"""`python -m provisioning check` over a generated fleet: one hosting stack and N hosted tenant stacks.

Writes the stack files to a temporary folder (one `new-stack --hosting`-shaped file and N tenants with
`hostedBy`, each with one connector), then times the real command line end to end (process start, the
config rules, every stack under Pulumi mocks in the evaluator's worker processes), and prints the figures
that docs/performance.md records.

With --preview N it then runs `python -m provisioning fleet preview --all --parallel N` over the same stacks
against the stand-in Pulumi CLI (tests/fake_pulumi.py, driven through the real Automation API): hosting stack
first, then the tenants N at a time.

    .venv/bin/python bench/fleet_check.py [--tenants 200] [--preview 8] [--keep]
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the generated stack files")
    parser.add_argument("--preview", type=int, metavar="N", help="then `fleet preview --parallel N` (stand-in CLI)")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="hr-connector-fleet-"))
    try:
        write_fleet(directory, args.tenants)
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
        return fleet_preview(directory, args.preview) if args.preview else 0
    finally:
        if args.keep:
            print(f"stack files kept in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
