"""`python -m uploader cert new|show`: a certificate credential for an app registration made by hand.

- `cert new --subject "CN=…" [--days N] [--out-dir DIR]` writes NAME.pem (private key + certificate, mode
  0600: what `--certificate` takes) and NAME.cer (the public certificate alone, to upload to the app
  registration), and prints the thumbprint Entra will show. Existing files are never overwritten.
- `cert show FILE` prints each certificate's subject, thumbprints and validity, and whether the file holds
  a private key that belongs to it. It never prints the key.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from uploader.errors import EXIT_OK, UsageError
from uploader.model import environment, portable, sink
from uploader.model.safetext import safe_text

if TYPE_CHECKING:  # cryptography is imported when a cert command runs, not when the parser is built
    from cryptography import x509

#: Same bounds as the stack's certificate.validityDays.
MAX_DAYS = 3650
#: Where Entra takes the public certificate (.cer, .pem or .crt): App registrations > the app > Certificates &
#: secrets > Certificates > Upload certificate
#: (https://learn.microsoft.com/entra/identity-platform/how-to-add-credentials?tabs=certificate).
UPLOAD_HINT = ("upload {cer} to the app registration: Entra admin center > App registrations > your app > "
               "Certificates & secrets > Certificates > Upload certificate; the portal then shows thumbprint {tp}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="cert_command", required=True, metavar="ACTION")
    new = sub.add_parser("new", help="a new RSA key and self-signed certificate: NAME.pem (0600) and NAME.cer")
    new.add_argument("--subject", required=True, help='the certificate subject, e.g. "CN=hr-connector-contoso"')
    new.add_argument("--days", type=int, default=365, help=f"validity in days (1-{MAX_DAYS}; default 365)")
    new.add_argument("--key-size", type=int, default=2048, choices=(2048, 3072, 4096),  # certs.MIN_RSA_BITS up
                     help="RSA key size in bits")
    new.add_argument("--out-dir", default=".", help="folder for NAME.pem and NAME.cer (default: here)")
    new.add_argument("--name", help="file name stem (default: from the subject's CN)")
    show = sub.add_parser("show", help="thumbprints and validity of a PEM, .cer/.crt (PEM or DER) or PFX file")
    show.add_argument("file", metavar="FILE")


def _subject(text: str) -> x509.Name:
    from cryptography import x509

    try:  # "CN=a, O=b" (the Windows spelling, with spaces) as well as RFC 4514's "CN=a,O=b"
        name = x509.Name.from_rfc4514_string(re.sub(r"(?<!\\),\s+", ",", text.strip()))
    except ValueError:
        raise UsageError('--subject: not a distinguished name like "CN=hr-connector-contoso, O=Contoso"') from None
    if not name.get_attributes_for_oid(x509.NameOID.COMMON_NAME):
        raise UsageError('--subject: needs a CN, e.g. "CN=hr-connector-contoso"')
    return name


def _stem(name: x509.Name, given: str | None) -> str:
    from cryptography import x509

    stem = given or str(name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.")
    if not stem:
        raise UsageError("--name: give a file name stem of letters, digits, '.', '_' or '-'")
    return stem


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `mode` from the start (never a moment world-readable), refusing an existing file."""
    fd = portable.create_private(path, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)  # a umask cannot widen it, but be explicit (on Windows: not read-only, nothing more)


def _out_dir(out: Path) -> Path:
    """The folder for the key and certificate: created (mode 0700, parents too) when it does not exist yet."""
    if out.is_dir():
        return out
    if os.path.lexists(out):
        kind = "a file" if out.is_file() else "a broken link" if out.is_symlink() else "a special file"
        raise UsageError(f"--out-dir {safe_text(out)}: exists and is {kind}, not a folder (give a folder, or a new "
                         "name to create one)")
    try:
        out.mkdir(mode=0o700, parents=True)  # 0700: on Windows, an access list for this user and administrators
    except FileExistsError:  # created meanwhile by someone else: use it if it is a folder
        if not out.is_dir():
            raise UsageError(f"--out-dir {safe_text(out)}: exists and is not a folder") from None
    except NotADirectoryError:
        raise UsageError(f"--out-dir {safe_text(out)}: a part of the path is a file, not a folder") from None
    except OSError as exc:
        raise UsageError(f"--out-dir {safe_text(out)}: cannot create the folder ({type(exc).__name__}"
                         f"{': ' + exc.strerror if exc.strerror else ''})") from None
    os.chmod(out, 0o700)  # mkdir's mode is narrowed by the umask only; be explicit
    return out


def new(args: argparse.Namespace) -> int:
    from cryptography import x509

    from uploader.model.certs import generate_certificate

    subject = _subject(args.subject)
    if not 1 <= args.days <= MAX_DAYS:
        raise UsageError(f"--days: must be between 1 and {MAX_DAYS}")
    out = _out_dir(Path(args.out_dir))
    stem = _stem(subject, args.name)
    pem_path, cer_path = out / f"{stem}.pem", out / f"{stem}.cer"
    for path in (pem_path, cer_path):
        if os.path.lexists(path):
            raise UsageError(f"{safe_text(path)}: already exists (never overwritten; choose --name or --out-dir)")
    common_name = str(subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)
    bundle = generate_certificate(common_name, validity_days=args.days, key_size=args.key_size, subject=subject)
    try:
        _write_new(pem_path, bundle.pem.encode(), 0o600)
        _write_new(cer_path, bundle.certificate_pem.encode(), 0o644)
    except FileExistsError as exc:
        raise UsageError(f"{safe_text(exc.filename)}: already exists (never overwritten)") from None
    except OSError as exc:
        raise UsageError(f"--out-dir {safe_text(out)}: cannot write ({type(exc).__name__})") from None
    pem_shown, cer_shown = safe_text(pem_path), safe_text(cer_path)
    sink.stdout.line(f"private key + certificate: {pem_shown} ({portable.PRIVATE_FILE}; keep it secret: "
                     f"--certificate {pem_shown})")
    sink.stdout.line(f"public certificate:        {cer_shown}")
    sink.stdout.line(f"subject:                   {_name(subject)}")
    sink.stdout.line(f"thumbprint (SHA-1):        {bundle.thumbprint_sha1}")
    sink.stdout.line(f"thumbprint (SHA-256):      {bundle.thumbprint_sha256}")
    sink.stdout.line(f"valid until:               {bundle.not_after.strftime('%Y-%m-%d %H:%M UTC')}")
    sink.stdout.line("next: " + UPLOAD_HINT.format(cer=cer_shown, tp=bundle.thumbprint_sha1))
    return EXIT_OK


def _load(path: Path) -> tuple[list[x509.Certificate], object | None]:
    """The file's certificates and its private key, if any (PEM bundle, PEM or DER certificate, PFX)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from uploader.model.boundedio import CERTIFICATE_LIMIT, FileReadError, read_file
    from uploader.model.certs import PASSWORD_ENV, CertificateError, is_pkcs12, pem_from_pkcs12

    try:
        data = read_file(path, limit=CERTIFICATE_LIMIT)
    except FileReadError as exc:
        raise UsageError(str(exc)) from None
    name = safe_text(path)
    if b"-----BEGIN" in data:
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError:
            raise UsageError(f"{name}: no readable PEM certificate in it") from None
        key: object | None = None
        if b"PRIVATE KEY-----" in data:
            try:
                key = serialization.load_pem_private_key(data, password=None)
            except (ValueError, TypeError):
                key = "encrypted or unreadable"
        return certs, key
    try:
        return [x509.load_der_x509_certificate(data)], None
    except ValueError:
        pass
    if is_pkcs12(data):
        try:
            pem = pem_from_pkcs12(data, environment.read(PASSWORD_ENV), source=name)
        except CertificateError as exc:
            raise UsageError(str(exc)) from None
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        return x509.load_pem_x509_certificates(pem.encode()), key
    raise UsageError(f"{name}: not a certificate file (PEM, DER .cer or PKCS#12 .pfx)")


def _name(name: x509.Name) -> str:
    """A subject or issuer, escaped: a certificate's names are whatever its maker wrote (escape sequences,
    bidi overrides, line breaks that would forge a line of this output)."""
    try:
        text = name.rfc4514_string()
    except ValueError:  # an attribute cryptography cannot render
        return "(unreadable name)"
    return safe_text(text, 1000)


def show(args: argparse.Namespace) -> int:
    from uploader.model.certs import expiry_status, thumbprint

    path = Path(args.file)
    certs, key = _load(path)
    name = safe_text(path)
    key_numbers = getattr(getattr(key, "public_key", lambda: None)(), "public_numbers", lambda: None)()
    for i, cert in enumerate(certs, start=1):
        _, status = expiry_status(cert.not_valid_after_utc)
        sink.stdout.line(f"{name}: certificate {i} of {len(certs)}")
        sink.stdout.line(f"  subject:              {_name(cert.subject)}")
        sink.stdout.line(f"  issuer:               {_name(cert.issuer)}")
        sink.stdout.line(f"  thumbprint (SHA-1):   {thumbprint(cert, 'sha1')}")
        sink.stdout.line(f"  thumbprint (SHA-256): {thumbprint(cert, 'sha256')}")
        sink.stdout.line(f"  valid:                {cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
              f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; {status}")
        if key is not None and not isinstance(key, str):
            # Not every key type has public_numbers (Ed25519, Ed448): such a certificate matches no RSA/EC key.
            cert_numbers = getattr(cert.public_key(), "public_numbers", lambda: None)()
            matches = key_numbers is not None and cert_numbers == key_numbers
            belongs = "belongs to" if matches else "does NOT belong to"
            sink.stdout.line(f"  private key:          in the file; {belongs} this certificate")
    if key is None:
        sink.stdout.line(f"{name}: no private key in the file (a public certificate: what the app registration holds)")
    elif isinstance(key, str):
        sink.stdout.line(f"{name}: holds a private key that is {key} (--certificate needs an unencrypted key or a PFX)")
    return EXIT_OK


def main(args: argparse.Namespace) -> int:
    return new(args) if args.cert_command == "new" else show(args)
