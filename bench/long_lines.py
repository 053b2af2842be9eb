"""Peak memory of `validate` on hostile data lines, and of `upload` of long valid records (issue 18, break 5):
the README promises under 100 MB.

Each validate case is one file: a header row, then lines built to be expensive to parse. The upload case sends
150 valid records of ~900 KiB each to the loopback sandbox (chunks capped at 8 MiB of records, not 5,000
records: one chunk used to hold the whole 132 MB file). The figure is the uploader process's own high-water
mark (VmHWM), measured as the tests measure it (uploader.sandbox.client.measured_argv).

    .venv/bin/python bench/long_lines.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from uploader.model.certs import generate_certificate  # noqa: E402
from uploader.sandbox.client import Sandbox, measured_argv  # noqa: E402

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



def _measure(name: str, args: list[str], env: dict[str, str], work: Path) -> None:
    peak = work / "peak"
    started = time.perf_counter()
    done = subprocess.run(measured_argv(*args), cwd=ROOT, env=dict(env, PEAK_FILE=str(peak)),
                          capture_output=True, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    print(f"{name:45} {done.returncode:>4} {int(peak.read_text()) // 1024:>9} {seconds:>8.2f}")


def _upload_long_records(work: Path, mapping: dict[str, object]) -> None:
    """`upload` of 150 valid records of ~900 KiB each (eight unmapped columns of ~112 KiB) to the sandbox."""
    data = work / "long-records.csv"
    with data.open("w") as out:
        out.write(HEADER.rstrip("\n") + "".join(f",Extra{c}" for c in range(8)) + "\n")
        for i in range(150):
            cells = ",".join(f"{i:04d}{c}".ljust(900 * 1024 // 8, "abcdefgh"[c]) for c in range(8))
            out.write(f"p{i:04d}@contoso.com,2026-11-01T10:00,2026-12-15T17:00,{cells}\n")
    sandbox = Sandbox.start(work / "sandbox")
    try:
        bundle = generate_certificate("hr-connector bench", 30)
        cert = work / "app.pem"
        cert.write_text(bundle.pem)
        cert.chmod(0o600)
        app_id, job_id, tenant = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
        sandbox.register_app(app_id, bundle.pem, tenant_id=tenant)
        sandbox.bind_job(job_id, app_id)
        mapped = work / "upload-mapping.json"
        mapped.write_text(json.dumps({**mapping, "jobId": job_id}))
        _measure("upload: 150 valid records of ~900 KiB", [
            "upload", str(data), "--mapping", str(mapped), "--tenant-id", tenant, "--app-id", app_id,
            "--certificate", str(cert), "--authority-host", sandbox.authority_host,
            "--ingestion-url", sandbox.ingestion_url, "--state-dir", str(work / "state")], sandbox.env, work)
    finally:
        sandbox.stop()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mapping = work / "mapping.json"
        document: dict[str, object] = {"jobId": "e081f4f4-3831-48d6-a7bb-3fcfab158145",
                    "scenarios": [{"type": "resignation", "columns": COLUMNS}]}
        mapping.write_text(json.dumps(document))
        print(f"{'case':45} {'exit':>4} {'peak MiB':>9} {'seconds':>8}")
        for name, body in CASES.items():
            data = work / "case.csv"
            data.write_text(HEADER + body)
            _measure(name, ["validate", str(data), "--mapping", str(mapping)], dict(os.environ), work)
        _upload_long_records(work, document)


if __name__ == "__main__":
    main()
