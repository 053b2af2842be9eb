"""`python -m provisioning check` over a generated fleet: one hosting stack and N hosted tenant stacks.

Writes the stack files to a temporary folder (one `new-stack --hosting`-shaped file and N tenants with
`hostedBy`, each with one connector), then times the real command line end to end (process start, the
config rules, every stack under Pulumi mocks in the evaluator's worker processes), and prints the figures
that docs/performance.md records.

    .venv/bin/python bench/fleet_check.py [--tenants 200] [--workers N] [--keep]
"""

from __future__ import annotations

import argparse
import os
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the generated stack files")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="hr-connector-fleet-"))
    try:
        write_fleet(directory, args.tenants)
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "provisioning", "check", "--stacks-dir", str(directory)],
                              cwd=ROOT, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        lines = proc.stdout.strip().splitlines()
        ok = sum(line.startswith("ok ") for line in lines)
        print(f"stacks: 1 hosting + {args.tenants} hosted ({ok} ok), exit {proc.returncode}")
        print(f"check wall time: {seconds:.1f} s ({seconds / (args.tenants + 1):.2f} s a stack), "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
        print(lines[-1] if lines else proc.stderr[-2000:])
        if proc.returncode != 0:
            print("\n".join(line for line in lines if not line.startswith("ok "))[:4000])
        return proc.returncode
    finally:
        if args.keep:
            print(f"stack files kept in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
