"""Peak memory of `validate` on hostile data lines (issue 18, break 5): the README promises under 100 MB.

Each case is one file: a header row, then lines built to be expensive to parse. The figure is the uploader
process's own high-water mark (VmHWM), as tests/test_long_lines.py measures it.

    .venv/bin/python bench/long_lines.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = "EmailAddress,ResignationDate,LastWorkingDate\n"
MIB = 1 << 20
COLUMNS = {"userPrincipalName": "EmailAddress", "resignationDate": "ResignationDate",
           "lastWorkingDate": "LastWorkingDate"}

CASES = {
    "one 16 MiB line of ab,ab,...": "ab," * (16 * MIB // 3) + "ab\n",
    "one 16 MiB line of commas": "," * (16 * MIB) + "\n",
    "16 lines of ab,ab,... just under 1 MiB": ("ab," * ((MIB - 10) // 3) + "x\n") * 16,
    '16 lines of "","",... just under 1 MiB': ('"",' * ((MIB - 10) // 3) + "x\n") * 16,
    "a quoted record over 16 MiB of lines": 'x@contoso.com,"' + "a,\n" * (16 * MIB // 3) + '",2026-12-15T17:00\n',
}

_PEAK = """
import atexit, os, runpy, sys
def _peak():
    with open("/proc/self/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    with open(os.environ["PEAK_FILE"], "w") as out:
        out.write(str(kib))
atexit.register(_peak)
sys.argv = ["uploader", *sys.argv[1:]]
runpy.run_module("uploader", run_name="__main__")
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mapping = work / "mapping.json"
        mapping.write_text(json.dumps({"jobId": "e081f4f4-3831-48d6-a7bb-3fcfab158145",
                                       "scenarios": [{"type": "resignation", "columns": COLUMNS}]}))
        print(f"{'case':45} {'exit':>4} {'peak MiB':>9} {'seconds':>8}")
        for name, body in CASES.items():
            data = work / "case.csv"
            data.write_text(HEADER + body)
            peak = work / "peak"
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", _PEAK, "validate", str(data), "--mapping", str(mapping)],
                                  cwd=ROOT, env=dict(os.environ, PEAK_FILE=str(peak)), capture_output=True,
                                  stdin=subprocess.DEVNULL)
            seconds = time.perf_counter() - started
            print(f"{name:45} {done.returncode:>4} {int(peak.read_text()) // 1024:>9} {seconds:>8.2f}")


if __name__ == "__main__":
    main()
