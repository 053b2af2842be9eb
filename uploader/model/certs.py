"""Certificate bundles: generate a self-signed credential, and load the PEM bundle the uploader signs in with.

The bundle is one PEM text holding the private key and the certificate (what the Pulumi program
stores in Key Vault and `--certificate` / UPLOADER_CERTIFICATE_PEM carry). Shared by the uploader,
the sandbox, the demo, the tests and the Pulumi program's certificate resource.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from uploader.model import portable
from uploader.model.safetext import safe_text

#: Smallest RSA key accepted: Entra refuses smaller keys at sign-in ("AADSTS700027: RSA key size 1024 is less
#: than the minimum required 2048 bits", https://github.com/silverhack/monkey365/issues/183).
MIN_RSA_BITS = 2048

#: Warn when the certificate expires within this many days (the stack's default renewBeforeDays).
EXPIRY_WARNING_DAYS = 30


class CertificateError(ValueError):
    """A PEM bundle that cannot be used (never includes the PEM text itself)."""


def thumbprint(cert: x509.Certificate, algorithm: str = "sha1") -> str:
    """Upper-case hex fingerprint: sha1 is what the Entra portal shows, sha256 what MSAL sends (x5t#S256)."""
    digest = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256()}[algorithm]  # noqa: S303 - Entra's format
    return cert.fingerprint(digest).hex().upper()


def days_to_expiry(not_after: dt.datetime, now: dt.datetime | None = None) -> float:
    """Days (fractional) until not_after; negative once expired."""
    now = now or dt.datetime.now(dt.UTC)
    return (not_after - now).total_seconds() / 86400


def expiry_status(not_after: dt.datetime, now: dt.datetime | None = None,
                  warn_days: int = EXPIRY_WARNING_DAYS) -> tuple[str, str]:
    """("expired" | "expiring" | "ok", a sentence naming the date): for warnings and doctor checks."""
    days = days_to_expiry(not_after, now)
    when = not_after.strftime("%Y-%m-%d %H:%M UTC")
    if days <= 0:
        return "expired", f"the certificate expired on {when}; Entra refuses sign-in with it (renew it)"
    if days < warn_days:
        return "expiring", f"the certificate expires on {when} (in {int(days)} days); renew it before then"
    return "ok", f"the certificate is valid until {when}"


#: The variable holding the PEM bundle's text, as the scheduled job gets it (the one definition of its name;
#: the program sets it on the job, the uploader reads it).
CERTIFICATE_PEM_ENV = "UPLOADER_CERTIFICATE_PEM"


def read_pem_file(value: str, label: str, pem_env: str = CERTIFICATE_PEM_ENV,
                  password: str | None = None) -> str:
    """The text of the PEM bundle file named by `value` (from `label`, a flag or variable).

    PEM text given where a path belongs (`--certificate "$(cat app.pem)"`) is refused without ever
    repeating it, and the error names `pem_env`, the variable that does take PEM text.
    A PKCS#12 (.pfx/.p12) file is converted to the PEM bundle in memory, opened with `password`
    (the caller reads it from UPLOADER_CERTIFICATE_PASSWORD, never from a flag).
    """
    from uploader.model.boundedio import CERTIFICATE_LIMIT, FileReadError, read_file

    try:
        data = read_file(value, limit=CERTIFICATE_LIMIT, label=label)
    except FileReadError as exc:
        if exc.not_a_path:  # not a path: PEM text (or worse) where a path belongs; never repeated
            raise CertificateError(f"{label}: the value is not a file path (it looks like PEM text or is too "
                                   f"long; it is not shown); put the PEM text in {pem_env}, or give the PEM "
                                   "file's path") from None
        raise CertificateError(str(exc)) from None
    shown = safe_text(value)
    if is_pkcs12(data):
        return pem_from_pkcs12(data, password, source=f"{label} {shown}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CertificateError(f"{label} {shown}: neither a PEM bundle nor a PKCS#12 (PFX) file") from None


def key_file_exposure(path: str | os.PathLike[str]) -> str | None:
    """'group' or 'world' when a key file's mode lets others read it (POSIX), else None (and always None on
    Windows, where modes say nothing: there the file's access list does, docs/security.md#platforms)."""
    return portable.readable_by_others(path)


@dataclass(frozen=True)
class CertificateBundle:
    """A private key and its certificate, as PEM, with the facts Entra and MSAL need."""

    pem: str  # private key (PKCS#8, unencrypted) followed by the certificate
    certificate_pem: str  # the public certificate alone (what the app registration holds)
    thumbprint_sha1: str  # hex, upper-case: what the Entra portal shows
    thumbprint_sha256: str  # hex, upper-case: what MSAL puts in the assertion (x5t#S256)
    not_before: dt.datetime
    not_after: dt.datetime
    key_bits: int = 0  # RSA modulus size

    def __repr__(self) -> str:  # never show the key
        return f"CertificateBundle(thumbprint_sha1={self.thumbprint_sha1}, not_after={self.not_after.isoformat()})"


def generate_certificate(
    common_name: str,
    validity_days: int = 365,
    key_size: int = 2048,
    now: dt.datetime | None = None,
    subject: x509.Name | None = None,
) -> CertificateBundle:
    """A new RSA key and a self-signed SHA-256 certificate for it, valid from now for validity_days.

    The subject (and issuer) is `subject` when given, else CN=common_name."""
    if key_size < MIN_RSA_BITS:
        raise CertificateError(f"key size must be at least {MIN_RSA_BITS} bits")
    now = now or dt.datetime.now(dt.UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = subject or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
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
        thumbprint_sha1=thumbprint(cert, "sha1"),
        thumbprint_sha256=thumbprint(cert, "sha256"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_bits=getattr(cert.public_key(), "key_size", 0),
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
    cert_key = cert.public_key()  # not necessarily RSA (an Ed25519 key has no public_numbers)
    if not isinstance(cert_key, rsa.RSAPublicKey) or key.public_key().public_numbers() != cert_key.public_numbers():
        raise CertificateError(f"{source}: the private key does not belong to the certificate")
    if key.key_size < MIN_RSA_BITS:
        raise CertificateError(f"{source}: the RSA key has {key.key_size} bits; Entra requires at least "
                               f"{MIN_RSA_BITS} (generate a new certificate)")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return _bundle(key_pem, cert)


# --- PKCS#12 (PFX) files: what Windows and Microsoft's certificate samples export ----------------------

#: The PFX password's one source (never a command-line flag: flags show in process lists and shell history).
PASSWORD_ENV = "UPLOADER_CERTIFICATE_PASSWORD"  # noqa: S105 - the variable's name, not a password


def is_pkcs12(data: bytes) -> bool:
    """True for binary DER content (a PKCS#12 file begins with an ASN.1 SEQUENCE), False for PEM text."""
    return data[:1] == b"\x30" and b"-----BEGIN" not in data[:4096]


def pem_from_pkcs12(data: bytes, password: str | None, source: str) -> str:
    """The PEM bundle (unencrypted PKCS#8 key + the key's certificate), in memory, from a PFX file.

    `password` comes from UPLOADER_CERTIFICATE_PASSWORD; a PFX exported without one opens with none.
    Uses cryptography's pkcs12 loader (https://cryptography.io/en/latest/hazmat/primitives/asymmetric/serialization/#pkcs12).
    """
    from cryptography.hazmat.primitives.serialization import pkcs12

    # The variable's bytes as given: os.environ keeps undecodable bytes as lone surrogates (surrogateescape).
    tries = [password.encode("utf-8", "surrogateescape")] if password else [None, b""]
    loaded = None
    for secret in tries:
        try:
            loaded = pkcs12.load_key_and_certificates(data, secret)
            break
        except (ValueError, TypeError):
            continue
    if loaded is None:
        need = "wrong password" if password else f"it needs a password: set {PASSWORD_ENV}"
        raise CertificateError(f"{source}: cannot open the PKCS#12 (PFX) file ({need}, or not a PFX file)")
    key, cert, _chain = loaded
    if key is None:
        raise CertificateError(f"{source}: the PFX file holds no private key (export it with the private key)")
    if cert is None:
        raise CertificateError(f"{source}: the PFX file holds no certificate for its key")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem + cert.public_bytes(serialization.Encoding.PEM).decode()


# --- The public certificate alone: what --certificate holds when Key Vault holds the key (--key-id) ------------

KEY_HELD_ELSEWHERE = ("with --key-id the private key stays in Key Vault: give the public certificate only "
                      "(PEM or DER), never a file that holds a private key")


@dataclass(frozen=True)
class PublicCertificate:
    """An app credential's certificate without its key (the key is in Key Vault), with what Entra and MSAL need."""

    certificate_pem: str
    der: bytes
    thumbprint_sha1: str
    thumbprint_sha256: str
    not_before: dt.datetime
    not_after: dt.datetime
    key_bits: int
    public_key: rsa.RSAPublicKey

    def __repr__(self) -> str:
        return f"PublicCertificate(thumbprint_sha1={self.thumbprint_sha1}, not_after={self.not_after.isoformat()})"


def public_certificate(cert: x509.Certificate, source: str) -> PublicCertificate:
    """The facts of one certificate; its key must be RSA of at least MIN_RSA_BITS (Entra's rule)."""
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise CertificateError(f"{source}: the certificate's key must be RSA (Entra app certificates are RSA)")
    if key.key_size < MIN_RSA_BITS:
        raise CertificateError(f"{source}: the certificate's RSA key has {key.key_size} bits; Entra requires at "
                               f"least {MIN_RSA_BITS}")
    return PublicCertificate(
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        der=cert.public_bytes(serialization.Encoding.DER),
        thumbprint_sha1=thumbprint(cert, "sha1"),
        thumbprint_sha256=thumbprint(cert, "sha256"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_bits=key.key_size,
        public_key=key,
    )


def load_public_certificate(data: bytes, source: str = "certificate") -> PublicCertificate:
    """The one certificate in `data` (PEM or DER). Anything that holds a private key is refused: a PEM key block,
    or a PKCS#12 (PFX) file with a key (the point of --key-id is that the key is not on this machine)."""
    if b"PRIVATE KEY-----" in data:
        raise CertificateError(f"{source}: holds a private key; {KEY_HELD_ELSEWHERE}")
    if b"-----BEGIN" in data[:4096] or b"BEGIN CERTIFICATE-----" in data:
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError:
            raise CertificateError(f"{source}: no readable PEM certificate (expected the public certificate)") from None
        if len(certs) != 1:
            raise CertificateError(f"{source}: holds {len(certs)} certificates; give the app's certificate alone")
        return public_certificate(certs[0], source)
    try:
        return public_certificate(x509.load_der_x509_certificate(data), source)
    except ValueError:
        pass
    if is_pkcs12(data):
        from cryptography.hazmat.primitives.serialization import pkcs12

        try:
            key = pkcs12.load_key_and_certificates(data, None)[0]
        except (ValueError, TypeError):
            key = None  # locked with a password: it is a PFX, which is made to carry a key
        raise CertificateError(f"{source}: a PKCS#12 (PFX) file{' holding a private key' if key else ''}; "
                               f"{KEY_HELD_ELSEWHERE}")
    raise CertificateError(f"{source}: neither a PEM nor a DER certificate")
