"""`--key-id`: Key Vault signs the client assertion with a key it never exports (issue 14).

End to end through the real CLI against the sandbox's independent stand-ins: Entra (verifies every assertion
against the registered certificate), Key Vault (signs with a key it holds, refuses callers without the grant)
and the managed identity endpoint (Container Apps protocol, and the VM's instance metadata endpoint).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from uploader.clouds import get_cloud
from uploader.errors import UsageError
from uploader.model.certs import generate_certificate, load_bundle
from uploader.sandbox.client import Sandbox
from uploader.send.keyvault import SIGN_ACTION, parse_key_id

pytestmark = pytest.mark.e2e

VERSION = "0123456789abcdef0123456789abcdef"


def resignations(n: int) -> bytes:
    rows = ["EmailAddress,ResignationDate,LastWorkingDate"]
    rows += [f"user{i}@contoso.com,2026-01-0{1 + i % 9}T00:00:00Z,2026-02-0{1 + i % 9}T00:00:00Z" for i in range(n)]
    return ("\n".join(rows) + "\n").encode()


MAPPING = {"name": "departures", "jobId": "", "files": "*.csv",
           "scenarios": [{"type": "resignation", "columns": {"userPrincipalName": "EmailAddress",
                                                              "resignationDate": "ResignationDate",
                                                              "lastWorkingDate": "LastWorkingDate"}}]}


class VaultApp:
    """An app whose certificate Key Vault made (key in the sandbox vault), a job, an identity, the CLI flags."""

    def __init__(self, sandbox: Sandbox, tmp_path: Path, *, grant: bool = True, identity: str | None = "user",
                 protocol: str = "container-apps") -> None:
        self.sandbox = sandbox
        self.tenant_id, self.app_id, self.job_id = (str(uuid.uuid4()) for _ in range(3))
        self.key = sandbox.create_key(f"hr-{uuid.uuid4().hex[:12]}")
        self.client_id = str(uuid.uuid4()) if identity == "user" else None
        sandbox.register_app(self.app_id, self.key["certificate_pem"], tenant_id=self.tenant_id)
        sandbox.bind_job(self.job_id, self.app_id)
        self.identity_env = sandbox.identity_env(self.client_id, protocol)
        if grant:
            sandbox.grant_sign(self.client_id, self.key["name"])
        self.cert_path = tmp_path / f"{self.key['name']}.crt"
        self.cert_path.write_text(self.key["certificate_pem"])
        self.env = {**sandbox.env, **self.identity_env}

    def flags(self, key_id: str | None = None, certificate: Path | None = None, domain: bool = True) -> list[str]:
        out = ["--tenant-id", self.tenant_id, "--app-id", self.app_id, "--job-id", self.job_id,
               "--key-id", key_id or self.key["kid"], "--certificate", str(certificate or self.cert_path),
               "--authority-host", self.sandbox.authority_host, "--ingestion-url", self.sandbox.ingestion_url]
        return out + (["--key-vault-domain", "localhost"] if domain else [])


def upload(app: VaultApp, csv: Path, *extra: str,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "uploader", "upload", str(csv), *extra,
                           "--state-dir", str(csv.parent / "state")], env=env or app.env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def tell(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\nstdout:\n{done.stdout[-2000:]}\nstderr:\n{done.stderr[-2000:]}"


def nothing_secret(done: subprocess.CompletedProcess[str]) -> None:
    """No token (the stand-ins' tokens start with mi- or are 43 url-safe characters) and no JWT was printed."""
    text = done.stdout + done.stderr
    assert "mi-" not in text and "eyJ" not in text


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "departures.csv"
    path.write_bytes(resignations(25))
    return path


@pytest.mark.parametrize("protocol,identity", [("container-apps", "user"), ("vm", None)])
def test_vault_signed_upload_sends_every_record_with_one_signature(sandbox: Sandbox, tmp_path: Path, csv_file: Path,
                                                                    protocol: str, identity: str | None) -> None:
    app = VaultApp(sandbox, tmp_path, identity=identity, protocol=protocol)
    done = upload(app, csv_file, *app.flags(), "--records-per-call", "10")
    assert done.returncode == 0, tell(done)
    stats = sandbox.stats()
    assert stats["jobs"][app.job_id] == {"uploads": 3, "records": 25, "rejected": 0}
    assert stats["vault"]["signatures"] == 1, "one sign operation per run (MSAL asks only on a real token request)"
    assert stats["vault"]["identity_tokens"] == 1
    assert stats["apps"][app.app_id]["tokens_issued"] == 1
    assert "--key-vault-domain: warning:" in done.stdout + done.stderr  # the override is never silent
    nothing_secret(done)


def test_der_certificate_is_accepted(sandbox: Sandbox, tmp_path: Path, csv_file: Path) -> None:
    app = VaultApp(sandbox, tmp_path)
    der = tmp_path / "app.cer"
    der.write_bytes(x509.load_pem_x509_certificate(app.key["certificate_pem"].encode())
                    .public_bytes(serialization.Encoding.DER))
    done = upload(app, csv_file, *app.flags(certificate=der))
    assert done.returncode == 0, tell(done)
    assert sandbox.stats()["jobs"][app.job_id]["records"] == 25


def test_key_outside_the_key_vault_domain_is_refused_before_any_token(sandbox: Sandbox, tmp_path: Path,
                                                                      csv_file: Path) -> None:
    app = VaultApp(sandbox, tmp_path)
    done = upload(app, csv_file, *app.flags(domain=False))  # localhost is not *.vault.azure.net
    assert done.returncode == 2, tell(done)
    assert "is not Key Vault's" in done.stderr and "no token was asked for" in done.stderr
    stats = sandbox.stats()
    assert stats["vault"] == {"identity_tokens": 0, "signatures": 0, "sign_refused": 0, "federated_tokens": 0}
    assert stats["token_requests"] == 0 and app.job_id not in stats["jobs"]


def test_identity_without_the_role_is_refused_naming_the_permission(sandbox: Sandbox, tmp_path: Path,
                                                                     csv_file: Path) -> None:
    app = VaultApp(sandbox, tmp_path, grant=False)
    done = upload(app, csv_file, *app.flags())
    assert done.returncode == 2, tell(done)
    assert SIGN_ACTION in done.stderr and app.key["kid"] in done.stderr and "nothing was sent" in done.stderr
    assert "ForbiddenByRbac" in done.stderr
    stats = sandbox.stats()
    assert stats["vault"]["sign_refused"] == 1 and stats["vault"]["signatures"] == 0
    assert stats["token_requests"] == 0 and app.job_id not in stats["jobs"]
    nothing_secret(done)


def test_private_key_with_key_id_is_refused(sandbox: Sandbox, tmp_path: Path, csv_file: Path) -> None:
    app = VaultApp(sandbox, tmp_path)
    bundle = generate_certificate("local")
    pem = tmp_path / "bundle.pem"
    pem.write_text(bundle.pem)
    pfx = tmp_path / "bundle.pfx"
    loaded = load_bundle(bundle.pem)
    key = serialization.load_pem_private_key(loaded.pem.encode(), None)
    cert = x509.load_pem_x509_certificate(loaded.certificate_pem.encode())
    pfx.write_bytes(pkcs12.serialize_key_and_certificates(b"x", key, cert, None,  # type: ignore[arg-type]
                                                          serialization.NoEncryption()))
    for path in (pem, pfx):
        done = upload(app, csv_file, *app.flags(certificate=path))
        assert done.returncode == 2, tell(done)
        assert "private key" in done.stderr and "public certificate only" in done.stderr
    env = {**app.env, "UPLOADER_CERTIFICATE_PEM": bundle.pem}
    flags = [f for f in app.flags() if f not in ("--certificate", str(app.cert_path))]
    done = upload(app, csv_file, *flags, env=env)
    assert done.returncode == 2 and "UPLOADER_CERTIFICATE_PEM: holds a private key" in done.stderr, tell(done)
    stats = sandbox.stats()
    assert stats["vault"]["identity_tokens"] == 0 and stats["token_requests"] == 0


def test_certificate_of_another_key_fails_before_sign_in(sandbox: Sandbox, tmp_path: Path, csv_file: Path) -> None:
    app = VaultApp(sandbox, tmp_path)
    other = tmp_path / "other.crt"
    other.write_text(generate_certificate("other").certificate_pem)
    done = upload(app, csv_file, *app.flags(certificate=other))
    assert done.returncode == 2, tell(done)
    assert "does not verify against the certificate given" in done.stderr
    assert sandbox.stats()["token_requests"] == 0


def test_unreachable_vault_names_the_host_to_allow(sandbox: Sandbox, tmp_path: Path, csv_file: Path) -> None:
    app = VaultApp(sandbox, tmp_path)
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kid = f"https://localhost:{port}/keys/{app.key['name']}/{app.key['version']}"
    done = upload(app, csv_file, *app.flags(key_id=kid))
    assert done.returncode == 1, tell(done)
    assert "could not reach Key Vault localhost" in done.stderr and "firewall" in done.stderr
    assert sandbox.stats()["token_requests"] == 0


def job_env(app: VaultApp, sandbox: Sandbox, zone: Path) -> dict[str, str]:
    return {**app.env, "UPLOADER_TENANT_ID": app.tenant_id, "UPLOADER_APP_ID": app.app_id,
           "UPLOADER_KEY_ID": app.key["kid"], "UPLOADER_CERTIFICATE_PEM": app.key["certificate_pem"],
           "UPLOADER_KEY_VAULT_DOMAIN": "localhost", "UPLOADER_AUTHORITY_HOST": sandbox.authority_host,
           "UPLOADER_INGESTION_URL": sandbox.ingestion_url, "UPLOADER_DROPZONE_URL": zone.as_uri(),
           "UPLOADER_CONNECTORS": json.dumps([{**MAPPING, "jobId": app.job_id}]),
           "UPLOADER_SETTLE_SECONDS": "0"}  # the test writes complete files at once


def run_job(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "uploader", "run"], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def test_job_mode_signs_with_the_vault(sandbox: Sandbox, tmp_path: Path) -> None:
    app = VaultApp(sandbox, tmp_path)
    zone = tmp_path / "zone"
    (zone / "incoming").mkdir(parents=True)
    (zone / "incoming" / "a.csv").write_bytes(resignations(7))
    (zone / "incoming" / "b.csv").write_bytes(resignations(4))
    env = job_env(app, sandbox, zone)
    done = subprocess.run([sys.executable, "-m", "uploader", "run"], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, tell(done)
    stats = sandbox.stats()
    assert stats["jobs"][app.job_id]["records"] == 11
    assert stats["vault"]["signatures"] == 1
    nothing_secret(done)


# -- the key ID's rules (no network) ---------------------------------------------------------------

@pytest.mark.parametrize("cloud,url,resource", [
    ("commercial", f"https://kv1.vault.azure.net/keys/app/{VERSION}", "https://vault.azure.net"),
    ("gcc", f"https://kv1.vault.azure.net/keys/app/{VERSION}", "https://vault.azure.net"),
    ("gcchigh", f"https://kv1.vault.usgovcloudapi.net/keys/app/{VERSION}", "https://vault.usgovcloudapi.net"),
    ("dod", f"https://hsm1.managedhsm.usgovcloudapi.net/keys/app/{VERSION}", "https://managedhsm.usgovcloudapi.net"),
    ("commercial", f"https://hsm1.managedhsm.azure.net/keys/app/{VERSION}", "https://managedhsm.azure.net"),
])
def test_key_id_in_the_clouds_key_vault_domain(cloud: str, url: str, resource: str) -> None:
    key = parse_key_id(url, get_cloud(cloud))
    assert key.resource == resource and key.sign_url == url + "/sign"


@pytest.mark.parametrize("cloud,url", [
    ("commercial", f"https://kv1.vault.usgovcloudapi.net/keys/app/{VERSION}"),  # another cloud's vault
    ("gcchigh", f"https://kv1.vault.azure.net/keys/app/{VERSION}"),
    ("commercial", f"https://vault.azure.net.evil.test/keys/app/{VERSION}"),
    ("commercial", f"https://evilvault.azure.net/keys/app/{VERSION}"),
    ("commercial", f"https://vault.azure.net/keys/app/{VERSION}"),  # the bare domain is no vault
    ("commercial", f"http://kv1.vault.azure.net/keys/app/{VERSION}"),
    ("commercial", f"https://kv1.vault.azure.net:8443/keys/app/{VERSION}"),
    ("commercial", f"https://user@kv1.vault.azure.net/keys/app/{VERSION}"),
    ("commercial", "https://kv1.vault.azure.net/keys/app"),  # unversioned
    ("commercial", f"https://kv1.vault.azure.net/secrets/app/{VERSION}"),
    ("commercial", f"https://kv1.vault.azure.net/keys/app/{VERSION}?api-version=7.5"),
])
def test_key_id_outside_the_domain_or_malformed_is_refused(cloud: str, url: str) -> None:
    with pytest.raises(UsageError):
        parse_key_id(url, get_cloud(cloud))


# -- doctor in vault mode --------------------------------------------------------------------------

def doctor(app: VaultApp, *flags: str) -> tuple[subprocess.CompletedProcess[str], dict[str, dict[str, Any]]]:
    flags = tuple(f for f in flags if f not in ("--job-id", app.job_id))
    done = subprocess.run([sys.executable, "-m", "uploader", "doctor", *flags, "--log-format", "json"], env=app.env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done, {line["check"]: line for line in lines if line.get("event") == "check"}


def test_doctor_vault_mode_checks_identity_sign_and_signature(sandbox: Sandbox, tmp_path: Path) -> None:
    app = VaultApp(sandbox, tmp_path)
    done, checks = doctor(app, *app.flags())
    assert {k: checks[k]["status"] for k in ("certificate", "identity", "key-vault", "signature", "sign-in")} == {
        "certificate": "PASS", "identity": "PASS", "key-vault": "PASS", "signature": "PASS", "sign-in": "PASS"}, \
        tell(done)
    assert "the key stays in Key Vault" in checks["certificate"]["summary"]
    nothing_secret(done)


def test_doctor_vault_mode_names_the_missing_role_and_a_wrong_certificate(sandbox: Sandbox, tmp_path: Path) -> None:
    app = VaultApp(sandbox, tmp_path, grant=False)
    done, checks = doctor(app, *app.flags())
    assert done.returncode == 2 and checks["key-vault"]["status"] == "FAIL", tell(done)
    assert SIGN_ACTION in checks["key-vault"]["summary"] and checks["sign-in"]["status"] == "SKIP"
    granted = VaultApp(sandbox, tmp_path)
    other = tmp_path / "other.crt"
    other.write_text(generate_certificate("other").certificate_pem)
    done, checks = doctor(granted, *granted.flags(certificate=other))
    assert done.returncode == 2 and checks["signature"]["status"] == "FAIL", tell(done)
    assert sandbox.stats()["token_requests"] == 0


def test_doctor_vault_mode_without_an_identity_endpoint_fails_the_identity_check(sandbox: Sandbox,
                                                                                  tmp_path: Path) -> None:
    app = VaultApp(sandbox, tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app.env = {**app.env, "IDENTITY_ENDPOINT": f"https://127.0.0.1:{port}/msi/token"}
    done, checks = doctor(app, *app.flags())
    assert done.returncode == 1 and checks["identity"]["status"] == "FAIL", tell(done)
    assert f"127.0.0.1:{port}" in checks["identity"]["summary"]


def test_dry_run_checks_the_key_id_and_the_certificate_and_asks_for_nothing(sandbox: Sandbox, tmp_path: Path,
                                                                             csv_file: Path) -> None:
    app = VaultApp(sandbox, tmp_path)
    done = upload(app, csv_file, *app.flags(), "--dry-run")
    assert done.returncode == 0, tell(done)
    outside = upload(app, csv_file, *app.flags(domain=False), "--dry-run")
    assert outside.returncode == 2 and "is not Key Vault's" in outside.stderr, tell(outside)
    stats = sandbox.stats()
    assert stats["vault"]["identity_tokens"] == 0 and stats["token_requests"] == 0


def test_the_vault_stand_in_never_exports_a_key(sandbox: Sandbox, tmp_path: Path) -> None:
    app = VaultApp(sandbox, tmp_path)
    session = sandbox.http_session()
    base = f"{sandbox.url}/keys/{app.key['name']}/{app.key['version']}"
    for method, url in (("GET", base), ("GET", base.replace("/keys/", "/secrets/")), ("POST", base + "/export"),
                        ("POST", base + "/backup"), ("GET", f"{sandbox.url}/_sandbox/stats")):
        answer = session.request(method, url, timeout=30)
        assert "PRIVATE KEY" not in answer.text and '"d"' not in answer.text
        if not url.endswith("/stats"):
            assert answer.status_code == 404
    assert "PRIVATE KEY" not in json.dumps(app.key)


def test_job_mode_stops_with_exit_2_when_key_vault_refuses_to_sign(sandbox: Sandbox, tmp_path: Path) -> None:
    """Every file would meet the refusal: the run stops (exit 2) naming the permission, the file stays in
    incoming/ unclaimed, nothing is sent, and the one run_summary line says why."""
    app = VaultApp(sandbox, tmp_path, grant=False)
    zone = tmp_path / "zone"
    (zone / "incoming").mkdir(parents=True)
    (zone / "incoming" / "a.csv").write_bytes(resignations(5))
    done = run_job(job_env(app, sandbox, zone))
    assert done.returncode == 2, tell(done)
    assert SIGN_ACTION in done.stderr and app.key["name"] in done.stderr
    summary = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [s["exit_code"] for s in summary if s.get("event") == "run_summary"] == [2]
    assert sorted(p.name for p in (zone / "incoming").iterdir()) == ["a.csv"]
    assert not (zone / "rejected").exists() and not (zone / "processed").exists()
    locks = list((zone / "state").rglob("*.lock")) if (zone / "state").exists() else []
    assert locks == []  # the claim was released
    stats = sandbox.stats()
    assert stats["token_requests"] == 0 and app.job_id not in stats["jobs"]


def test_a_dripping_key_vault_answer_ends_within_the_signers_bound() -> None:
    """Key Vault's answers go through the same bounded session as sign-in and ingestion (one way in for bytes):
    a host that drips its body a byte at a time ends in SignInError within the signer's timeout, not never."""
    import threading
    import time

    from uploader.errors import SignInError
    from uploader.send.keyvault import KeyId, KeyVaultSigner

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    stop = threading.Event()

    def drip() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
            while not stop.is_set():
                try:
                    conn.sendall(b" ")
                except OSError:
                    return
                time.sleep(0.2)

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()

    class Identity:
        resource = "https://vault.azure.net"

        def token(self) -> str:
            return "not-a-real-token"

    key = KeyId(url=f"http://127.0.0.1:{port}/keys/k/0123456789abcdef", host=f"127.0.0.1:{port}", name="k",
                version="0123456789abcdef", resource=Identity.resource)
    signer = KeyVaultSigner(key, Identity(), timeout=2.0)
    start = time.monotonic()
    try:
        with pytest.raises(SignInError) as caught:
            signer.sign(b"\0" * 32)
    finally:
        stop.set()
        server.close()
    assert time.monotonic() - start < 10
    assert "not-a-real-token" not in str(caught.value)
