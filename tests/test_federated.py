"""`--credential federated` (issue 25): no key at all. The job's user-assigned managed identity asks its endpoint for a
token for the cloud's federated audience, and that token is the app's client assertion.

End to end through the real CLI against the sandbox's stand-ins: the identity endpoint (Container Apps protocol)
issues a JWT signed by the sandbox's Entra, and the Entra stand-in accepts it only when the app has a federated
identity credential with the same issuer, subject and audience, refusing with Entra's AADSTS codes otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from uploader.sandbox.client import Sandbox

pytestmark = pytest.mark.e2e

MAPPING_ROWS = ["EmailAddress,ResignationDate,LastWorkingDate"] + [
    f"user{i}@contoso.com,2026-01-0{1 + i % 9}T00:00:00Z,2026-02-0{1 + i % 9}T00:00:00Z" for i in range(12)]


class FederatedApp:
    """An app with no certificate, a job, and a user-assigned identity with a principal ID in the app's tenant."""

    def __init__(self, sandbox: Sandbox, *, trust: bool = True, subject: str | None = None,
                 audience: str = "api://AzureADTokenExchange") -> None:
        self.sandbox = sandbox
        self.tenant_id, self.app_id, self.job_id, self.client_id, self.principal_id = (
            str(uuid.uuid4()) for _ in range(5))
        self.identity_env = sandbox.identity_env(self.client_id, tenant_id=self.tenant_id,
                                                 principal_id=self.principal_id)
        if trust:
            sandbox.trust_identity(self.app_id, self.tenant_id, subject or self.principal_id, audience=audience)
        else:  # an app that trusts only a certificate (the sandbox keeps the public certificate alone)
            from uploader.model.certs import generate_certificate

            sandbox.register_app(self.app_id, generate_certificate("cert-only app", validity_days=2).certificate_pem,
                                 tenant_id=self.tenant_id)
        sandbox.bind_job(self.job_id, self.app_id)
        self.env = {**sandbox.env, **self.identity_env}

    def flags(self) -> list[str]:
        return ["--credential", "federated", "--tenant-id", self.tenant_id, "--app-id", self.app_id,
                "--job-id", self.job_id, "--authority-host", self.sandbox.authority_host,
                "--ingestion-url", self.sandbox.ingestion_url]


def upload(app: FederatedApp, csv: Path, *extra: str, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "uploader", "upload", str(csv), *extra,
                           "--state-dir", str(csv.parent / "state")], env=env if env is not None else app.env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def tell(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\nstdout:\n{done.stdout[-2000:]}\nstderr:\n{done.stderr[-2000:]}"


def no_token_shown(done: subprocess.CompletedProcess[str]) -> None:
    text = done.stdout + done.stderr
    assert "eyJ" not in text, "a JWT (the identity's token) was printed"


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "departures.csv"
    path.write_text("\n".join(MAPPING_ROWS) + "\n")
    return path


def test_federated_upload_sends_with_one_identity_token_and_no_certificate(sandbox: Sandbox, csv_file: Path) -> None:
    app = FederatedApp(sandbox)
    assert not any("CERTIFICATE" in k or "KEY_ID" in k for k in app.env), "no certificate in the environment"
    done = upload(app, csv_file, *app.flags(), "--records-per-call", "5")
    assert done.returncode == 0, tell(done)
    stats = sandbox.stats()
    assert stats["jobs"][app.job_id] == {"uploads": 3, "records": 12, "rejected": 0}
    assert stats["vault"]["federated_tokens"] == 1 and stats["vault"]["identity_tokens"] == 1
    assert stats["apps"][app.app_id]["tokens_issued"] == 1, "one sign-in per run"
    assert stats["vault"]["signatures"] == 0
    on_disk = [p for p in csv_file.parent.rglob("*") if p.is_file()]
    assert not any(b"BEGIN CERTIFICATE" in p.read_bytes() or b"PRIVATE KEY" in p.read_bytes() for p in on_disk)
    no_token_shown(done)


@pytest.mark.parametrize("case,code,fix", [
    ("untrusted", "AADSTS70021", "run `pulumi up`"),
    ("wrong-subject", "AADSTS700213", "jobIdentityPrincipalId"),
    ("wrong-audience", "AADSTS700212", "api://AzureADTokenExchange"),
])
def test_entra_refuses_a_federated_assertion_without_a_matching_credential(sandbox: Sandbox, csv_file: Path,
                                                                          case: str, code: str, fix: str) -> None:
    app = FederatedApp(sandbox, trust=case != "untrusted",
                       subject=str(uuid.uuid4()) if case == "wrong-subject" else None,
                       audience="api://AzureADTokenExchangeUSGov" if case == "wrong-audience" else
                       "api://AzureADTokenExchange")
    done = upload(app, csv_file, *app.flags())
    assert done.returncode == 1, tell(done)
    assert code in done.stderr and "fix:" in done.stderr and fix in done.stderr, tell(done)
    assert app.job_id not in sandbox.stats()["jobs"]
    no_token_shown(done)


def test_no_identity_endpoint_and_no_identity_are_told_apart(sandbox: Sandbox, csv_file: Path) -> None:
    app = FederatedApp(sandbox)
    closed = {**app.env, "IDENTITY_ENDPOINT": "https://127.0.0.1:9/msi/token"}  # nothing listens on port 9
    done = upload(app, csv_file, *app.flags(), env=closed)
    assert done.returncode == 1, tell(done)
    assert "could not reach the managed identity endpoint 127.0.0.1:9" in done.stderr
    assert "user-assigned managed identity" in done.stderr
    no_identity = {k: v for k, v in app.env.items() if k != "AZURE_CLIENT_ID"}
    done = upload(app, csv_file, *app.flags(), env=no_identity)
    assert done.returncode == 2 and "AZURE_CLIENT_ID must name" in done.stderr, tell(done)
    with_pem = {**app.env, "UPLOADER_CERTIFICATE_PEM": "-----BEGIN CERTIFICATE-----"}
    done = upload(app, csv_file, *app.flags(), env=with_pem)
    assert done.returncode == 2 and "takes no certificate or key" in done.stderr, tell(done)
    assert sandbox.stats()["vault"]["identity_tokens"] == 0


def test_a_token_for_another_audience_is_refused_before_entra(sandbox: Sandbox) -> None:
    """The assertion in-process, with an identity stand-in answering for a US Government audience."""
    from uploader.clouds import get_cloud
    from uploader.errors import SignInError
    from uploader.send.federated import federated_assertion
    from uploader.send.keyvault import b64url
    from uploader.send.settings import ManagedIdentity

    class WrongAudience:
        resource = "api://AzureADTokenExchange"

        def token(self) -> str:
            claims = b64url(b'{"aud":"api://AzureADTokenExchangeUSGov","sub":"x"}')
            return f"{b64url(b'{}')}.{claims}.c2ln"

    assertion = federated_assertion(get_cloud("commercial"), ManagedIdentity("c1"), identity=WrongAudience())
    with pytest.raises(SignInError) as caught:
        assertion({})
    assert "api://AzureADTokenExchangeUSGov" in str(caught.value) and "AADSTS700212" in str(caught.value)
    assert "eyJ" not in str(caught.value) and "c2ln" not in str(caught.value)


def test_job_mode_env_twin_selects_federated(sandbox: Sandbox, tmp_path: Path) -> None:
    """UPLOADER_CREDENTIAL=federated in the job's environment (what a federated stack sets): `run` sends the drop
    zone's file with no certificate variable at all."""
    app = FederatedApp(sandbox)
    zone = tmp_path / "zone"
    (zone / "incoming").mkdir(parents=True)
    (zone / "incoming" / "departures.csv").write_text("\n".join(MAPPING_ROWS) + "\n")
    os.utime(zone / "incoming" / "departures.csv", (1, 1))
    connectors = json.dumps([{"name": "departures", "jobId": app.job_id, "files": "*.csv", "scenarios": [
        {"type": "resignation", "columns": {"userPrincipalName": "EmailAddress", "resignationDate": "ResignationDate",
                                            "lastWorkingDate": "LastWorkingDate"}}]}])
    env = {**app.env, "UPLOADER_CREDENTIAL": "federated", "UPLOADER_TENANT_ID": app.tenant_id,
           "UPLOADER_APP_ID": app.app_id, "UPLOADER_AUTHORITY_HOST": sandbox.authority_host,
           "UPLOADER_INGESTION_URL": sandbox.ingestion_url, "UPLOADER_DROPZONE_URL": zone.as_uri(),
           "UPLOADER_CONNECTORS": connectors, "UPLOADER_SETTLE_SECONDS": "0"}
    done = subprocess.run([sys.executable, "-m", "uploader", "run", "--log-format", "json"], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, tell(done)
    assert sandbox.stats()["jobs"][app.job_id]["records"] == 12
    no_token_shown(done)


def test_doctor_checks_the_federated_path_without_sending_hr_data(sandbox: Sandbox) -> None:
    app = FederatedApp(sandbox)
    flags = [f for f in app.flags() if f != "--job-id" and f != app.job_id]
    done = subprocess.run([sys.executable, "-m", "uploader", "doctor", *flags], env=app.env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, tell(done)
    for name in ("credential", "identity", "sign-in"):
        assert any(line.startswith(f"PASS  {name}") or (name in line and "PASS" in line)
                   for line in done.stdout.splitlines()), tell(done)
    stats = sandbox.stats()
    assert stats["vault"]["federated_tokens"] == 1, "one identity token for the whole doctor run"
    assert stats["apps"][app.app_id]["tokens_issued"] == 1 and app.job_id not in stats["jobs"]
    no_token_shown(done)
    untrusted = FederatedApp(sandbox, trust=False)
    done = subprocess.run([sys.executable, "-m", "uploader", "doctor", *untrusted.flags()[:-4],
                           "--authority-host", sandbox.authority_host, "--ingestion-url", sandbox.ingestion_url],
                          env=untrusted.env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 1 and "AADSTS70021" in done.stdout + done.stderr, tell(done)
    assert "pulumi up" in done.stdout + done.stderr
