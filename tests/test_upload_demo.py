"""`make demo` (python -m uploader.sandbox.demo) runs end to end and ends with its line of success."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from uploader.sandbox.client import clean_environ

EXAMPLES = Path(__file__).resolve().parent.parent / "uploader" / "examples"


@pytest.mark.e2e
def test_demo_succeeds_and_shows_no_cell_value() -> None:
    result = subprocess.run([sys.executable, "-m", "uploader.sandbox.demo"], env=clean_environ(), capture_output=True,
                            text=True, timeout=180, stdin=subprocess.DEVNULL, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("✔ Demo complete: 6 example files")
    assert "HTTP 503; retried after 1.0 s" in result.stdout
    assert "exit 3; records the sandbox received for that job: 12 before, 12 after" in result.stdout
    # the Key Vault-signed path beside the PEM path: refused without the role, then one sign for the whole run
    assert "without a role on the key: exit 2" in result.stdout
    assert "resignation.csv sent 12 records, 1 sign operation(s) for the whole run" in result.stdout
    values = set()
    for path in EXAMPLES.rglob("*.csv"):
        with path.open(encoding="utf-8-sig", newline="") as fh:
            values |= {c for row in list(csv.reader(fh))[1:] for c in row if len(c) >= 6}
    names = " ".join(p.name.lower() for p in EXAMPLES.rglob("*"))
    values = {v for v in values if v.lower() not in names}  # "Resignation" (an HRScenario value) names a file
    leaked = sum(1 for v in values if v in result.stdout or v in result.stderr)
    assert leaked == 0, f"{leaked} cell values of the examples appear in the demo's output"
