"""The small certificate helpers shared by sign-in, `upload`, `run` and `doctor`: thumbprints, expiry,
key-file permissions, and the refusal of RSA keys Entra would refuse."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from uploader.model.certs import (
    CertificateError,
    days_to_expiry,
    expiry_status,
    generate_certificate,
    key_file_exposure,
    load_bundle,
    thumbprint,
)


def weak_bundle_pem(bits: int = 1024, days: int = 365, start_days: int = 0) -> str:
    """A key + self-signed certificate bundle built by hand (generate_certificate refuses weak keys)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak")])
    now = dt.datetime.now(dt.UTC) + dt.timedelta(days=start_days)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=days)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return key_pem + cert.public_bytes(serialization.Encoding.PEM).decode()


def test_thumbprints_match_the_bundle() -> None:
    bundle = generate_certificate("t")
    cert = x509.load_pem_x509_certificate(bundle.certificate_pem.encode())
    assert thumbprint(cert) == bundle.thumbprint_sha1 and len(bundle.thumbprint_sha1) == 40
    assert thumbprint(cert, "sha256") == bundle.thumbprint_sha256 and len(bundle.thumbprint_sha256) == 64
    assert bundle.key_bits == 2048


def test_days_to_expiry_and_status() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert days_to_expiry(now + dt.timedelta(days=10), now) == pytest.approx(10)
    assert days_to_expiry(now - dt.timedelta(days=1), now) == pytest.approx(-1)
    assert expiry_status(now + dt.timedelta(days=90), now)[0] == "ok"
    level, text = expiry_status(now + dt.timedelta(days=12), now)
    assert level == "expiring" and "2026-01-13" in text and "12 days" in text
    level, text = expiry_status(now - dt.timedelta(hours=1), now)
    assert level == "expired" and "2025-12-31" in text


@pytest.mark.posix
def test_key_file_exposure(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_text("x")
    path.chmod(0o600)
    assert key_file_exposure(path) is None
    path.chmod(0o640)
    assert key_file_exposure(path) == "group"
    path.chmod(0o644)
    assert key_file_exposure(path) == "world"
    assert key_file_exposure(tmp_path / "absent") is None


def test_weak_rsa_key_is_refused_without_echoing_the_key() -> None:
    pem = weak_bundle_pem(1024)
    with pytest.raises(CertificateError) as caught:
        load_bundle(pem, source="app.pem")
    message = str(caught.value)
    assert "1024 bits" in message and "2048" in message and "app.pem" in message
    assert "PRIVATE KEY" not in message and pem.splitlines()[1] not in message
