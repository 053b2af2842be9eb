"""`make demo`: the whole path end to end on this machine, against the loopback sandbox.

Creates a demo certificate, starts `python -m uploader sandbox` (its own CA, TLS on 127.0.0.1),
registers the app and one job per example connector, then runs the real command line in
subprocesses: validates and uploads every example in uploader/examples/ (the multi-scenario file
meets one scripted 503 on the way), prints what the sandbox received, and shows the bad file refused.
Nothing leaves the machine. Output never shows a cell value.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from uploader.errors import EXIT_INVALID, EXIT_OK
from uploader.model.certs import generate_certificate
from uploader.model.mapping import load_mapping_file
from uploader.sandbox.client import Sandbox

if TYPE_CHECKING:  # rich is imported when the demo runs
    from rich.console import Console
    from rich.table import Table

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCENARIO_FILES = ("resignation", "job-level-change", "performance-review", "performance-improvement-plan",
                  "employee-profile", "multi-scenario")
BAD_FILE = EXAMPLES / "bad" / "resignation-bad.csv"
BAD_MAPPING = EXAMPLES / "resignation.json"
RECORDS_PER_CALL = 4
TENANT_ID = "0de00000-0000-4000-8000-000000000001"  # any GUID: the sandbox serves every tenant


@dataclass(frozen=True)
class Example:
    name: str
    csv: Path
    mapping: Path
    job_id: str


def examples() -> list[Example]:
    out = []
    for name in SCENARIO_FILES:
        mapping = EXAMPLES / f"{name}.json"
        out.append(Example(name, EXAMPLES / f"{name}.csv", mapping, load_mapping_file(mapping).job_id))
    return out


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "uploader", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def _json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main() -> int:
    from rich.table import Table

    from uploader.model import sink

    out = sink.console(sink.stdout, highlight=False, soft_wrap=True)
    step = iter(range(1, 100))

    def head(text: str) -> None:
        out.print(f"\n[bold cyan]{next(step)}. {text}[/]")

    items = examples()
    with tempfile.TemporaryDirectory(prefix="hr-connector-demo-") as tmp:
        work = Path(tmp)
        head("A certificate for the demo app (no client secret anywhere)")
        bundle = generate_certificate("hr-connector demo", validity_days=2)
        cert_file = work / "demo-app.pem"  # key + certificate: what --certificate takes
        cert_file.write_text(bundle.pem)
        cert_file.chmod(0o600)
        public_file = work / "demo-app.crt"  # the certificate alone: what the app registration holds
        public_file.write_text(bundle.certificate_pem)
        app_id = str(uuid.uuid4())
        out.print(f"   app {app_id}, certificate SHA-256 thumbprint {bundle.thumbprint_sha256[:16]}…")

        head("The sandbox: a loopback stand-in for Entra ID and the ingestion API, with its own CA")
        sandbox = Sandbox.start(work / "sandbox", apps=[(app_id, public_file)],
                                jobs=[(e.job_id, app_id) for e in items])
        try:
            out.print(f"   listening at {sandbox.url}, its own CA in {sandbox.ca_file.name}; "
                      f"{len(items)} connector jobs bound to the app")
            env = sandbox.env  # trusts the sandbox CA (REQUESTS_CA_BUNDLE, SSL_CERT_FILE, CURL_CA_BUNDLE)
            common = ["--tenant-id", TENANT_ID, "--app-id", app_id, "--certificate", str(cert_file),
                      "--authority-host", sandbox.authority_host, "--ingestion-url", sandbox.ingestion_url,
                      "--state-dir", str(work / "state"), "--records-per-call", str(RECORDS_PER_CALL)]
            ok = _validate_all(out, items, env, head) and _upload_all(out, items, env, common, sandbox, head)
            if not ok:
                out.print("\n[bold red]Demo failed[/] (see above)")
                return 1
            received = _show_received(out, items, sandbox, head, Table)
            refused = _show_bad_file(out, env, common, sandbox, head)
            vault_ok = _vault_signed(out, items[0], sandbox, work, head)
            federated_ok = _federated(out, items[0], sandbox, work, head)
        finally:
            sandbox.stop()
    if received and refused and vault_ok and federated_ok:
        total = sum(_records(e.csv) for e in items)
        out.print(f"\n[bold green]✔ Demo complete:[/] {len(items)} example files ({total} records, all five "
                  "scenarios) accepted by the sandbox, one token for each run; the bad file refused with exit 3; "
                  "the Key Vault-signed run sent with one sign operation, and refused without the role; the federated "
                  "run sent with one identity token and no certificate, and refused (AADSTS70021) before the app "
                  "trusted the identity.")
        return 0
    out.print("\n[bold red]Demo failed[/] (see above)")
    return 1


def _retries(n: int) -> str:
    return "1 retry" if n == 1 else f"{n} retries"


def _records(path: Path) -> int:
    import csv

    with path.open(encoding="utf-8-sig", newline="") as fh:
        return sum(1 for _ in csv.reader(fh)) - 1


def _validate_all(out: Console, items: list[Example], env: dict[str, str], head: Callable[[str], None]) -> bool:
    head("Validate every example against its connector mapping (`python -m uploader validate`)")
    good = True
    for e in items:
        result = _cli(["validate", _rel(e.csv), "--mapping", _rel(e.mapping)], env)
        mark = "[green]valid[/]" if result.returncode == EXIT_OK else f"[red]exit {result.returncode}[/]"
        out.print(f"   {e.csv.name:<34} {mark}")
        if result.returncode != EXIT_OK:
            out.print(result.stdout + result.stderr, markup=False)
            good = False
    return good


def _upload_all(out: Console, items: list[Example], env: dict[str, str], common: list[str], sandbox: Sandbox,
                head: Callable[[str], None]) -> bool:
    head(f"Upload every example (`python -m uploader upload`, {RECORDS_PER_CALL} records per call)")
    good = True
    for e in items:
        if e.name == "multi-scenario":
            sandbox.faults([{"kind": "status", "status": 503, "retry_after": 1, "job_id": e.job_id}])
            out.print("   [dim](the sandbox will answer the next call with 503, Retry-After: 1)[/]")
        tokens_before = sandbox.stats().get("tokens_issued", 0)
        result = _cli(["upload", _rel(e.csv), "--mapping", _rel(e.mapping), "--job-id", e.job_id,
                       "--log-format", "json", *common], env)
        events = _json_lines(result.stdout)
        tokens = sandbox.stats().get("tokens_issued", 0) - tokens_before
        for ev in events:
            if ev.get("event") == "retry":
                out.print(f"   {e.csv.name:<34} [yellow]chunk {ev['chunk']}/{ev['chunks']}: {ev['reason']}; "
                          f"retried after {ev['delay']:.1f} s[/]")
        done = [ev for ev in events if ev.get("event") == "file_done"]
        if result.returncode == EXIT_OK and done and done[0].get("status") == "sent":
            d = done[0]
            out.print(f"   {e.csv.name:<34} [green]sent[/] {d['records_sent']} records in {d['chunks_sent']} chunks, "
                      f"{_retries(d['retries'])}, {d['seconds']:.1f} s, {tokens} token → job {e.job_id[:8]}…")
        else:
            out.print(f"   {e.csv.name:<34} [red]exit {result.returncode}[/]")
            out.print(result.stderr[-2000:], markup=False)
            good = False
    return good


def _show_received(out: Console, items: list[Example], sandbox: Sandbox, head: Callable[[str], None],
                   table_cls: type[Table]) -> bool:
    head("What the sandbox received (GET /_sandbox/stats): upload calls and records, against the file")
    stats = sandbox.stats()
    table = table_cls(show_edge=False, pad_edge=False, box=None)
    for col in ("file", "job", "calls", "received", "in file"):
        table.add_column(col, justify="left" if col in ("file", "job") else "right", no_wrap=True)
    good = True
    for e in items:
        job = stats.get("jobs", {}).get(e.job_id, {})
        expected = _records(e.csv)
        got = job.get("records", 0)
        good &= got == expected
        style = "green" if got == expected else "red"
        table.add_row(e.csv.name, e.job_id[:8] + "…", str(job.get("uploads", 0)), f"[{style}]{got}[/]", str(expected))
    out.print(table)
    out.print(f"   tokens issued in all: {stats.get('tokens_issued')} (one per run, from MSAL's cache)")
    return good


def _show_bad_file(out: Console, env: dict[str, str], common: list[str], sandbox: Sandbox,
                   head: Callable[[str], None]) -> bool:
    head(f"A bad file is refused before anything is sent ({_rel(BAD_FILE)})")
    mapping = load_mapping_file(BAD_MAPPING)
    before = sandbox.stats().get("jobs", {}).get(mapping.job_id, {}).get("records", 0)
    result = _cli(["upload", _rel(BAD_FILE), "--mapping", _rel(BAD_MAPPING), "--job-id", mapping.job_id, *common], env)
    after = sandbox.stats().get("jobs", {}).get(mapping.job_id, {}).get("records", 0)
    for line in result.stderr.strip().splitlines():
        out.print(f"   {line}", markup=False, style=None if line.startswith(" ") else "red")
    refused = result.returncode == EXIT_INVALID and after == before
    out.print(f"   exit {result.returncode}; records the sandbox received for that job: {before} before, {after} after")
    return refused


def _vault_signed(out: Console, example: Example, sandbox: Sandbox, work: Path, head: Callable[[str], None]) -> bool:
    """The same upload with the key held by Key Vault (`--key-id`): the sandbox's vault makes the key and never
    returns it, its managed identity endpoint gives the job's identity a token, and Entra's stand-in verifies the
    vault-signed assertion against the registered certificate."""
    head("The same upload, signed by Key Vault: the key never leaves the vault (`--key-id`, managed identity)")
    key = sandbox.create_key(f"demo-{uuid.uuid4().hex[:8]}", common_name="hr-connector demo (vault)")
    vault_app, job_id, identity = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    sandbox.register_app(vault_app, key["certificate_pem"])
    sandbox.bind_job(job_id, vault_app)
    public = work / "vault-app.crt"  # the certificate alone: --certificate holds no key in this mode
    public.write_text(key["certificate_pem"])
    env = {**sandbox.env, **sandbox.identity_env(identity)}
    flags = ["--tenant-id", TENANT_ID, "--app-id", vault_app, "--job-id", job_id, "--key-id", key["kid"],
             "--key-vault-domain", "localhost", "--certificate", str(public), "--authority-host",
             sandbox.authority_host, "--ingestion-url", sandbox.ingestion_url, "--state-dir", str(work / "state-kv"),
             "--records-per-call", str(RECORDS_PER_CALL), "--mapping", _rel(example.mapping)]
    out.print(f"   key {key['name']} version {key['version'][:8]}… in the vault stand-in; identity {identity[:8]}…")
    before = sandbox.stats()["vault"]
    refused = _cli(["upload", _rel(example.csv), *flags], env)  # no role on the key yet
    line = (refused.stderr.strip().splitlines() or [""])[-1]
    out.print(f"   without a role on the key: exit {refused.returncode}: {line[:160]}…", markup=False)
    sandbox.grant_sign(identity, key["name"])
    result = _cli(["upload", _rel(example.csv), *flags], env)
    after = sandbox.stats()
    signs = after["vault"]["signatures"] - before["signatures"]
    records = after["jobs"].get(job_id, {}).get("records", 0)
    good = refused.returncode == 2 and result.returncode == EXIT_OK and signs == 1 and records == _records(example.csv)
    mark = "[green]sent[/]" if good else f"[red]exit {result.returncode}[/]"
    out.print(f"   with Key Vault Crypto User on the key: {example.csv.name} {mark} {records} records, "
              f"{signs} sign operation(s) for the whole run, PEM path and vault path side by side above")
    if not good:
        out.print(result.stderr[-2000:], markup=False)
    return good


def _federated(out: Console, example: Example, sandbox: Sandbox, work: Path, head: Callable[[str], None]) -> bool:
    """The same upload with no certificate and no key (`--credential federated`): the job's user-assigned identity
    gets a token for api://AzureADTokenExchange from its endpoint, and Entra's stand-in accepts it as the app's client
    assertion once the app has a federated identity credential trusting that identity."""
    head("The same upload with no key at all: the app trusts the job's managed identity (`--credential federated`)")
    app_id, job_id, identity, principal = (str(uuid.uuid4()) for _ in range(4))
    sandbox.bind_job(job_id, app_id)
    env = {**sandbox.env, **sandbox.identity_env(identity, tenant_id=TENANT_ID, principal_id=principal)}
    flags = ["--credential", "federated", "--tenant-id", TENANT_ID, "--app-id", app_id, "--job-id", job_id,
             "--authority-host", sandbox.authority_host, "--ingestion-url", sandbox.ingestion_url,
             "--state-dir", str(work / "state-federated"), "--records-per-call", str(RECORDS_PER_CALL),
             "--mapping", _rel(example.mapping)]
    out.print(f"   identity {identity[:8]}… (principal {principal[:8]}…); no certificate file, no key, no secret")
    # the app exists, trusting a throwaway certificate only
    sandbox.register_app(app_id, generate_certificate("hr-connector demo (certificate-only app)",
                                                      validity_days=2).certificate_pem, tenant_id=TENANT_ID)
    refused = _cli(["upload", _rel(example.csv), *flags], env)
    line = next((ln for ln in refused.stderr.splitlines() if "AADSTS" in ln), "")
    shown = line[line.find("AADSTS"):][:150]
    out.print(f"   before the app trusts the identity: exit {refused.returncode}: {shown}…", markup=False)
    sandbox.trust_identity(app_id, TENANT_ID, principal)  # what Identity.trust makes in a federated stack
    before = sandbox.stats()["vault"]["federated_tokens"]
    result = _cli(["upload", _rel(example.csv), *flags], env)
    after = sandbox.stats()
    tokens = after["vault"]["federated_tokens"] - before
    records = after["jobs"].get(job_id, {}).get("records", 0)
    good = (refused.returncode == 1 and "AADSTS70021" in line and result.returncode == EXIT_OK and tokens == 1
            and records == _records(example.csv))
    mark = "[green]sent[/]" if good else f"[red]exit {result.returncode}[/]"
    out.print(f"   with a federated credential (issuer {sandbox.url}/{TENANT_ID[:8]}…/v2.0, subject the principal ID, "
              f"audience api://AzureADTokenExchange): {example.csv.name} {mark} {records} records, {tokens} identity "
              "token for the whole run")
    if not good:
        out.print(result.stderr[-2000:], markup=False)
    return good


if __name__ == "__main__":
    raise SystemExit(main())
