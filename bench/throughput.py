"""Uploader throughput and memory on a large HR export, against the loopback sandbox.

One run reports, for the same generated file:
  - a bare `csv.reader` pass (the reference),
  - the uploader (`python -m uploader upload` with a mapping: validate, chunk, sign in, send),
  - a raw send of the same bytes in the same chunks with requests (no validation: the network floor),
  - the uploader signing in with Key Vault (`--key-id`: a managed identity token and one `sign` call to the
    sandbox's Key Vault stand-in) against the PEM run, interleaved runs, best of each,
and the uploader's peak memory (max RSS of its process) at two file sizes, to show it is flat.

    .venv/bin/python bench/throughput.py [--rows 1000000] [--small-rows 100000] [--runs 2] [--keep]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from uploader.check.csvscan import iter_chunks, scan_file  # noqa: E402
from uploader.clouds import DEFAULT_SCOPE  # noqa: E402
from uploader.model.certs import generate_certificate  # noqa: E402

HEADER = "EmailAddress,ResignationDate,LastWorkingDate\n"
PER_CALL = 5000


def generate(path: Path, rows: int) -> None:
    """Resignation records with plausible dates (a few hundred distinct, as in real exports)."""
    rnd = random.Random(7)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(HEADER)
        for i in range(rows):
            m, d = rnd.randint(9, 11), rnd.randint(1, 28)
            f.write(f"employee{i}@contoso.com,2026-{m:02d}-{d:02d}T09:{i % 60:02d}:00,"
                    f"2026-{m + 1:02d}-{d:02d}T17:30:00.0000000+00:00\n")


def bare_csv_pass(path: Path) -> float:
    start = time.perf_counter()
    with open(path, newline="", encoding="utf-8") as f:
        for _ in csv.reader(f):
            pass
    return time.perf_counter() - start


def start_sandbox(state: Path) -> tuple[subprocess.Popen, dict]:
    ready = state / "ready.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "uploader", "sandbox", "--state-dir", str(state), "--ready-file", str(ready)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        if ready.exists():
            return proc, json.loads(ready.read_text())
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("the sandbox did not start")


def register(info: dict, app_id: str, job_id: str, cert_pem: str) -> None:
    s = requests.Session()
    s.verify = info["ca_file"]
    s.post(f"{info['url']}/_sandbox/apps", json={"app_id": app_id, "certificate_pem": cert_pem}).raise_for_status()
    s.post(f"{info['url']}/_sandbox/jobs", json={"job_id": job_id, "app_id": app_id}).raise_for_status()


def vault_app(info: dict, job_id: str, work: Path) -> tuple[str, list[str], dict[str, str]]:
    """An app whose key lives in the sandbox's Key Vault: (app ID, the upload flags, the identity's environment)."""
    s = requests.Session()
    s.verify = info["ca_file"]
    client_id, app_id = str(uuid.uuid4()), str(uuid.uuid4())
    header = s.post(f"{info['url']}/_sandbox/identities", json={"client_id": client_id}).json()["identity_header"]
    key = s.post(f"{info['url']}/_sandbox/vault/keys", json={"name": "bench-signer"}).json()
    s.post(f"{info['url']}/_sandbox/vault/grants", json={"client_id": client_id, "key_name": "bench-signer"})
    register(info, app_id, job_id, key["certificate_pem"])
    public = work / "vault.crt"
    public.write_text(key["certificate_pem"])
    port = info["url"].rsplit(":", 1)[1]
    flags = ["--key-id", f"https://localhost:{port}/keys/bench-signer/{key['version']}",
             "--key-vault-domain", "localhost", "--certificate", str(public)]
    env = {"IDENTITY_ENDPOINT": f"{info['url']}/msi/token", "IDENTITY_HEADER": header, "AZURE_CLIENT_ID": client_id}
    return app_id, flags, env


def run_uploader(path: Path, info: dict, env: dict, work: Path, cert: Path | list[str], mapping: Path,
                 app_id: str, job_id: str) -> tuple[float, int, int]:
    """Wall seconds, peak RSS (KiB) and exit code of one `python -m uploader upload` (cert: a PEM file, or the
    --key-id flags of a Key Vault-signed run)."""
    credential = ["--certificate", str(cert)] if isinstance(cert, Path) else cert
    args = [sys.executable, "-m", "uploader", "upload", str(path), "--tenant-id", str(uuid.uuid4()),
            "--app-id", app_id, "--job-id", job_id, *credential, "--mapping", str(mapping),
            "--authority-host", info["authority_host"], "--ingestion-url", info["ingestion_url"],
            "--state-dir", str(work / f"state-{uuid.uuid4().hex}"), "--log-format", "json"]
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"uploader exited {code}: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
    return seconds, usage.ru_maxrss, code


def raw_send(path: Path, info: dict, token: str, job_id: str) -> float:
    """The same chunks posted with requests and no validation: what the network and sandbox cost."""
    scan = scan_file(path, None, PER_CALL)  # only to cut the same chunks (not timed)
    bodies = iter_chunks(path, scan)
    s = requests.Session()
    s.verify = info["ca_file"]
    start = time.perf_counter()
    for _, body in bodies:
        r = s.post(f"{info['ingestion_url']}/api/signals", params={"jobid": job_id},
                   headers={"Authorization": f"Bearer {token}"}, files={"file": ("chunk.csv", body, "text/csv")})
        r.raise_for_status()
    return time.perf_counter() - start


def token_for(info: dict, app_id: str, cert_pem: str, tenant: str) -> str:
    import msal

    from uploader.model.certs import load_bundle

    bundle = load_bundle(cert_pem)
    app = msal.ConfidentialClientApplication(
        app_id, authority=f"{info['authority_host']}/{tenant}", instance_discovery=False,
        client_credential={"private_key": bundle.pem, "public_certificate": bundle.certificate_pem},
    )
    result = app.acquire_token_for_client(scopes=[DEFAULT_SCOPE])
    if "access_token" not in result:
        raise SystemExit(f"could not get a sandbox token: {result.get('error_description')}")
    return result["access_token"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--small-rows", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=2, help="uploader runs per credential (best of them is reported)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    opts = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hr-bench-"))
    proc = None
    try:
        big, small = work / "big.csv", work / "small.csv"
        generate(big, opts.rows)
        generate(small, opts.small_rows)
        bundle = generate_certificate("hr-connector bench", 30)
        cert = work / "bench.pem"
        cert.write_text(bundle.pem)
        app_id, job_id = str(uuid.uuid4()), str(uuid.uuid4())
        mapping = work / "mapping.json"
        mapping.write_text(json.dumps({"jobId": job_id, "scenarios": [{"type": "resignation", "columns": {
            "userPrincipalName": "EmailAddress", "resignationDate": "ResignationDate",
            "lastWorkingDate": "LastWorkingDate"}}]}))
        proc, info = start_sandbox(work / "sandbox")
        # requests lets these variables override verify=, so this process and its children trust the sandbox CA
        ca_vars = {k: info["ca_file"] for k in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")}
        os.environ.update(ca_vars)
        env = dict(os.environ)
        register(info, app_id, job_id, bundle.certificate_pem)

        bare = min(bare_csv_pass(big) for _ in range(3))
        token = token_for(info, app_id, bundle.pem, str(uuid.uuid4()))
        raw = raw_send(big, info, token, job_id)
        kv_job = str(uuid.uuid4())
        kv_app, kv_flags, kv_env = vault_app(info, kv_job, work)
        kv_mapping = work / "mapping-kv.json"
        kv_mapping.write_text(mapping.read_text().replace(job_id, kv_job))
        runs, kv_runs = [], []
        for _ in range(max(1, opts.runs)):  # interleaved, so both meet the same machine load
            runs.append(run_uploader(big, info, env, work, cert, mapping, app_id, job_id))
            kv_runs.append(run_uploader(big, info, {**env, **kv_env}, work, kv_flags, kv_mapping, kv_app, kv_job))
        up, rss_big = min(r[0] for r in runs), max(r[1] for r in runs)
        kv_up = min(r[0] for r in kv_runs)
        _, rss_small, _ = run_uploader(small, info, env, work, cert, mapping, app_id, job_id)
        stats = requests.get(f"{info['url']}/_sandbox/stats", verify=info["ca_file"], timeout=30).json()
        received = stats["jobs"][job_id]["records"]
        signatures = stats["vault"]["signatures"]
        size_mb = big.stat().st_size / 1e6
        report = {
            "rows": opts.rows, "file_mb": round(size_mb, 1), "records_per_call": PER_CALL,
            "bare_csv_reader_s": round(bare, 3), "uploader_s": round(up, 3), "raw_send_s": round(raw, 3),
            "uploader_vs_bare_csv": round(up / bare, 2), "raw_send_vs_bare_csv": round(raw / bare, 2),
            "uploader_peak_rss_mb": round(rss_big / 1024, 1),
            f"uploader_peak_rss_mb_at_{opts.small_rows}_rows": round(rss_small / 1024, 1),
            "records_received_by_sandbox": received, "cpus": os.cpu_count(),
            "uploader_key_vault_s": round(kv_up, 3), "key_vault_vs_pem": round(kv_up / up, 3),
            "key_vault_sign_operations": signatures, "key_vault_runs": len(kv_runs),
        }
        print(json.dumps(report, indent=2))
        print(f"\n| {opts.rows:,} rows ({size_mb:.0f} MB) | seconds | × bare csv.reader |\n|---|---|---|\n"
              f"| bare csv.reader pass | {bare:.2f} | 1.00 |\n"
              f"| uploader: validate + sign in + send | {up:.2f} | {up / bare:.2f} |\n"
              f"| raw send of the same chunks (no validation) | {raw:.2f} | {raw / bare:.2f} |\n"
              f"| uploader signed by Key Vault (`--key-id`) | {kv_up:.2f} | {kv_up / bare:.2f} |\n\n"
              f"Key Vault-signed run vs PEM run: {kv_up / up:.3f}× ({signatures} sign operations for "
              f"{len(kv_runs)} runs: one per run).\n"
              f"Peak memory of the uploader: {rss_big / 1024:.0f} MB at {opts.rows:,} rows, "
              f"{rss_small / 1024:.0f} MB at {opts.small_rows:,} rows.")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
