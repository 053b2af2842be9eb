"""Certificate bundles: generate a self-signed credential, and load the PEM bundle the uploader signs in with.

The bundle is one PEM text holding the private key and the certificate (what the Pulumi program
stores in Key Vault and `--certificate` / UPLOADER_CERTIFICATE_PEM carry). Shared by the uploader,
the sandbox, the demo, the tests and the Pulumi program's certificate resource.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


class CertificateError(ValueError):
    """A PEM bundle that cannot be used (never includes the PEM text itself)."""


@dataclass(frozen=True)
class CertificateBundle:
    """A private key and its certificate, as PEM, with the facts Entra and MSAL need."""

    pem: str  # private key (PKCS#8, unencrypted) followed by the certificate
    certificate_pem: str  # the public certificate alone (what the app registration holds)
    thumbprint_sha1: str  # hex, upper-case: what the Entra portal shows
    thumbprint_sha256: str  # hex, upper-case: what MSAL puts in the assertion (x5t#S256)
    not_before: dt.datetime
    not_after: dt.datetime

    def __repr__(self) -> str:  # never show the key
        return f"CertificateBundle(thumbprint_sha1={self.thumbprint_sha1}, not_after={self.not_after.isoformat()})"


def generate_certificate(
    common_name: str,
    validity_days: int = 365,
    key_size: int = 2048,
    now: dt.datetime | None = None,
) -> CertificateBundle:
    """A new RSA key and a self-signed SHA-256 certificate for it, valid from now for validity_days."""
    if key_size < 2048:
        raise CertificateError("key size must be at least 2048 bits")
    now = now or dt.datetime.now(dt.UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=validity_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return _bundle(key_pem, cert)


def _bundle(key_pem: str, cert: x509.Certificate) -> CertificateBundle:
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return CertificateBundle(
        pem=key_pem + cert_pem,
        certificate_pem=cert_pem,
        thumbprint_sha1=cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - Entra's thumbprint format
        thumbprint_sha256=cert.fingerprint(hashes.SHA256()).hex().upper(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


def load_bundle(pem_text: str, source: str = "certificate") -> CertificateBundle:
    """Parse a PEM bundle (key + certificate, either order); `source` names the flag or file in errors."""
    expected = "expected a PEM bundle with the private key and the certificate"
    if "PRIVATE KEY-----" not in pem_text:
        raise CertificateError(f"{source}: no private key found ({expected})")
    if "BEGIN CERTIFICATE-----" not in pem_text:
        raise CertificateError(f"{source}: no certificate found ({expected})")
    try:
        key = serialization.load_pem_private_key(pem_text.encode(), password=None)
        cert = x509.load_pem_x509_certificate(pem_text.encode())
    except (ValueError, TypeError) as exc:
        reason = f"{type(exc).__name__}; encrypted keys are not supported"
        raise CertificateError(f"{source}: unreadable PEM ({reason})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CertificateError(f"{source}: the private key must be RSA (Entra app certificates are RSA)")
    if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
        raise CertificateError(f"{source}: the private key does not belong to the certificate")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return _bundle(key_pem, cert)
