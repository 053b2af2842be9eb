"""Certificate hygiene through the real CLI against the sandbox: a key readable by others is warned about,
an RSA key under 2048 bits is refused (exit 2), a certificate expiring within 30 days is warned about
before sign-in, and an expired one is a clear error before any request. Never a key byte printed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_certs_helpers import weak_bundle_pem

pytestmark = pytest.mark.e2e

COLUMNS = {"userPrincipalName": "EmailAddress", "resignationDate": "ResignationDate",
           "lastWorkingDate": "LastWorkingDate"}
CSV = "EmailAddress,ResignationDate,LastWorkingDate\nzqcell@contoso.com,2026-11-01T10:00,2026-12-15T17:00\n"


def uploader(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "uploader", *args], env=env, capture_output=True, text=True,
                          timeout=90, stdin=subprocess.DEVNULL)


def app_with(sandbox, new_app, tmp_path: Path, pem: str, mode: int = 0o600):  # noqa: ANN001, ANN201
    """A sandbox app whose registered certificate is `pem`; returns (app, upload flags with that key file)."""
    app = new_app(register=False)
    sandbox.register_app(app.app_id, pem, tenant_id=app.tenant_id)
    key = tmp_path / "app.pem"
    key.write_text(pem)
    key.chmod(mode)
    flags = list(app.flags)
    flags[flags.index("--certificate") + 1] = str(key)
    return app, flags, key


def upload(tmp_path: Path, sandbox, flags: list[str]) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    data = tmp_path / "a.csv"
    data.write_text(CSV)
    return uploader("upload", str(data), *flags, "--state-dir", str(tmp_path / "state"), env=sandbox.env)


def assert_clean(done: subprocess.CompletedProcess[str], pem: str) -> None:
    out = done.stdout + done.stderr
    assert "Traceback" not in out and "PRIVATE KEY" not in out and "zqcell" not in out
    for line in pem.splitlines()[1:-1]:
        assert line not in out


@pytest.mark.posix
@pytest.mark.parametrize(("mode", "word"), [(0o640, "group-readable"), (0o644, "world-readable")])
def test_key_file_readable_by_others_is_warned_about(tmp_path: Path, sandbox, new_app, make_certificate,  # noqa: ANN001
                                                      mode: int, word: str) -> None:
    cert = make_certificate()
    app, flags, key = app_with(sandbox, new_app, tmp_path, cert.pem, mode)
    done = upload(tmp_path, sandbox, flags)
    assert done.returncode == 0, done.stdout[-800:] + done.stderr[-800:]
    assert f"{key}: warning: the private key file is {word}" in done.stdout + done.stderr
    assert len(sandbox.received(app.job_id)) == 1
    assert_clean(done, cert.pem)


def test_owner_only_key_file_gives_no_warning(tmp_path: Path, sandbox, new_app, make_certificate) -> None:  # noqa: ANN001
    cert = make_certificate()
    app, flags, _ = app_with(sandbox, new_app, tmp_path, cert.pem, 0o600)
    done = upload(tmp_path, sandbox, flags)
    assert done.returncode == 0 and "warning" not in done.stdout + done.stderr


def test_rsa_key_under_2048_bits_is_refused(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    pem = weak_bundle_pem(1024)
    app, flags, key = app_with(sandbox, new_app, tmp_path, pem)
    done = upload(tmp_path, sandbox, flags)
    assert done.returncode == 2, done.stdout[-800:] + done.stderr[-800:]
    assert "1024 bits" in done.stderr and "2048" in done.stderr and str(key) in done.stderr
    assert sandbox.stats()["token_requests"] == 0 and sandbox.received(app.job_id) == []
    assert_clean(done, pem)


def test_certificate_expiring_soon_is_warned_about_before_sign_in(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    pem = weak_bundle_pem(2048, days=10)
    app, flags, key = app_with(sandbox, new_app, tmp_path, pem)
    done = upload(tmp_path, sandbox, flags)
    assert done.returncode == 0, done.stdout[-800:] + done.stderr[-800:]
    out = done.stdout + done.stderr
    assert "warning: the certificate expires on" in out and "renew" in out
    assert len(sandbox.received(app.job_id)) == 1
    assert_clean(done, pem)


def test_expired_certificate_is_an_error_before_any_request(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    pem = weak_bundle_pem(2048, days=2, start_days=-30)  # valid from 31 days ago to 28 days ago
    app, flags, key = app_with(sandbox, new_app, tmp_path, pem)
    done = upload(tmp_path, sandbox, flags)
    assert done.returncode == 2, done.stdout[-800:] + done.stderr[-800:]
    assert "the certificate expired on" in done.stderr and str(key) in done.stderr
    assert sandbox.stats()["token_requests"] == 0 and sandbox.received(app.job_id) == []
    assert_clean(done, pem)


def test_run_with_expired_certificate_exits_2_and_leaves_the_file(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    pem = weak_bundle_pem(2048, days=2, start_days=-30)
    app, _, _ = app_with(sandbox, new_app, tmp_path, pem)
    zone = tmp_path / "zone"
    (zone / "incoming").mkdir(parents=True)
    (zone / "incoming" / "a.csv").write_text(CSV)
    env = {k: v for k, v in sandbox.env.items() if not k.startswith("UPLOADER_")}
    env.update({"UPLOADER_TENANT_ID": app.tenant_id, "UPLOADER_APP_ID": app.app_id,
                "UPLOADER_CERTIFICATE_PEM": pem, "UPLOADER_AUTHORITY_HOST": app.authority_host,
                "UPLOADER_INGESTION_URL": app.ingestion_url, "UPLOADER_DROPZONE_URL": zone.as_uri(),
                "UPLOADER_CONNECTORS": json.dumps([{"name": "d", "jobId": app.job_id, "files": "*.csv",
                                                   "scenarios": [{"type": "resignation", "columns": COLUMNS}]}])})
    done = uploader("run", env=env)
    assert done.returncode == 2, done.stdout[-800:] + done.stderr[-800:]
    assert "UPLOADER_CERTIFICATE_PEM: the certificate expired on" in done.stderr
    assert sandbox.stats()["token_requests"] == 0
    assert [p.relative_to(zone).as_posix() for p in zone.rglob("*.csv")] == ["incoming/a.csv"]
    assert_clean(done, pem)


def test_rsa_key_beside_an_ed25519_certificate_is_refused_as_not_belonging(tmp_path: Path, sandbox,  # noqa: ANN001
                                                                           new_app) -> None:  # noqa: ANN001
    # An Ed25519 public key has no public_numbers(): comparing it with the RSA key used to crash (a traceback).
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.x509.oid import NameOID

    ed_key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ed25519")])
    now = dt.datetime.now(dt.UTC)
    ed_cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(ed_key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
               .not_valid_after(now + dt.timedelta(days=30)).sign(ed_key, None))
    rsa_pem = weak_bundle_pem(2048)
    pem = rsa_pem[:rsa_pem.index("-----BEGIN CERTIFICATE-----")] + ed_cert.public_bytes(
        serialization.Encoding.PEM).decode()
    app, flags, key = app_with(sandbox, new_app, tmp_path, pem)
    done = upload(tmp_path, sandbox, flags)
    assert done.returncode == 2, done.stdout[-800:] + done.stderr[-800:]
    assert "does not belong to the certificate" in done.stderr and str(key) in done.stderr
    assert sandbox.stats()["token_requests"] == 0 and sandbox.received(app.job_id) == []
    assert_clean(done, pem)
