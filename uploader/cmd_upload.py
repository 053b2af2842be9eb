"""`python -m uploader upload FILE...`: validate and send files to one connector job.

Each file is validated before any of its chunks is sent; an invalid file is reported and the next
file still goes. A failed upload stops the run (the next files would meet the same refusal or outage);
a rerun resumes from the checkpoints. Exit code: 1 if a file failed, else 3 if a file was invalid,
else 0 (docs/cli.md's exit codes; 2 is raised as UsageError before anything is read or sent).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .checkpoint import LocalCheckpointStore
from .cli import env_name
from .clouds import Cloud, get_cloud
from .errors import EXIT_FAILED, EXIT_INVALID, EXIT_OK, UsageError
from .mapping import GUID_RE
from .report import Reporter, safe_name
from .stackfile import mapping_from_args
from .upload import FileOutcome, upload_file

if TYPE_CHECKING:
    from .certs import CertificateBundle

CERTIFICATE_ENV = "UPLOADER_CERTIFICATE_PEM"


def exit_code(outcomes: list[FileOutcome]) -> int:
    """1 if any file failed, else 3 if any was invalid, else 0."""
    statuses = {o.status for o in outcomes}
    if "failed" in statuses:
        return EXIT_FAILED
    if "invalid" in statuses:
        return EXIT_INVALID
    return EXIT_OK


def check_files(names: list[str]) -> list[Path]:
    """Every FILE must exist and be a readable regular file (exit 2 naming the first that is not)."""
    paths = []
    for raw in names:
        path, name = Path(raw), safe_name(raw)
        if not path.exists():
            raise UsageError(f"{name}: file not found")
        if not path.is_file():
            raise UsageError(f"{name}: not a regular file")
        if not os.access(path, os.R_OK):
            raise UsageError(f"{name}: not readable")
        paths.append(path)
    return paths


def read_certificate(path: str | None, environ: os._Environ[str] | dict[str, str] = os.environ) -> tuple[str, str]:
    """The PEM bundle text and where it came from: --certificate FILE (or its twin), else UPLOADER_CERTIFICATE_PEM.

    FILE may be a PEM bundle or a PKCS#12 (.pfx/.p12) file, whose password is read from
    UPLOADER_CERTIFICATE_PASSWORD (never from a flag)."""
    from .certs import PASSWORD_ENV, CertificateError, read_pem_file

    if path:
        try:
            return read_pem_file(path, "--certificate", CERTIFICATE_ENV, password=environ.get(PASSWORD_ENV)), path
        except CertificateError as exc:
            raise UsageError(str(exc)) from None
    text = environ.get(CERTIFICATE_ENV, "")
    if text.strip():
        return text, CERTIFICATE_ENV
    raise UsageError(f"--certificate PEMFILE (or the PEM text in {CERTIFICATE_ENV}) is required to sign in")


def check_certificate(bundle: CertificateBundle, key_file: str | None, source: str, reporter: Reporter) -> None:
    """Before any sign-in: warn when the key file is readable by others or the certificate expires within
    30 days; an expired certificate is a UsageError (Entra would refuse it)."""
    from .certs import expiry_status, key_file_exposure

    if key_file and (exposure := key_file_exposure(key_file)):
        reporter.warning(safe_name(key_file), f"the private key file is {exposure}-readable; make it readable by "
                         "its owner only (chmod 600)")
    level, text = expiry_status(bundle.not_after)
    if level == "expired":
        raise UsageError(f"{safe_name(source)}: {text}; nothing was sent")
    if level == "expiring":
        reporter.warning(safe_name(source), text)


def resolve_cloud(args: argparse.Namespace) -> Cloud:
    """The cloud table's entry with --authority-host / --ingestion-url / --scope applied (https only)."""
    for flag, value in (("--authority-host", args.authority_host), ("--ingestion-url", args.ingestion_url)):
        if value:
            parts = urlsplit(value)
            if parts.scheme != "https" or not parts.netloc:
                raise UsageError(f"{flag} {value}: must be an https:// URL (TLS is never turned off)")
    return get_cloud(args.cloud).with_overrides(args.authority_host, args.ingestion_url,
                                                getattr(args, "scope", None))


def main(args: argparse.Namespace) -> int:
    paths = check_files(args.files)
    mapping = mapping_from_args(args, required=False)
    job_id = args.job_id or (mapping.job_id if mapping is not None else None)
    if not args.dry_run:
        for flag, value in (("--tenant-id", args.tenant_id), ("--app-id", args.app_id), ("--job-id", job_id)):
            if not value:
                raise UsageError(f"{flag} (or {env_name(flag)}) is required to send; a --dry-run needs none")
    if job_id is not None and not GUID_RE.match(job_id):
        raise UsageError("--job-id: must be a GUID (the job ID Purview shows for the connector)")
    for flag, value in (("--deadline", args.deadline), ("--read-timeout", getattr(args, "read_timeout", 1.0))):
        if value is None or not value > 0:
            raise UsageError(f"{flag}: must be a positive number of seconds")
    cloud = resolve_cloud(args)
    reporter = Reporter(args.log_format)
    if mapping is not None and args.job_id and mapping.job_id.lower() != args.job_id.lower():
        reporter.warning(args.mapping or f"stack {args.stack}", "the mapping's jobId differs from --job-id; "
                         "sending to --job-id")

    client = None
    if args.dry_run:  # no certificate needed, no token provider, no network
        if args.certificate or os.environ.get(CERTIFICATE_ENV, "").strip():
            from .certs import CertificateError, load_bundle

            pem, source = read_certificate(args.certificate)
            try:
                bundle = load_bundle(pem, source=source)
            except CertificateError as exc:
                raise UsageError(str(exc)) from None
            check_certificate(bundle, args.certificate, source, reporter)
    else:
        from .auth import TokenProvider
        from .send import READ_TIMEOUT, IngestionClient

        pem, source = read_certificate(args.certificate)
        tokens = TokenProvider(cloud, args.tenant_id, args.app_id, pem, source=source)
        check_certificate(tokens.bundle, args.certificate, source, reporter)
        try:
            Path(args.state_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise UsageError(f"--state-dir {safe_name(args.state_dir)}: cannot create ({type(exc).__name__})") from None
        try:  # before the first byte leaves: a chunk sent without its checkpoint would be sent again by a retry
            LocalCheckpointStore(args.state_dir).check_writable()
        except OSError as exc:
            raise UsageError(f"--state-dir: the checkpoint folder is not writable ({type(exc).__name__}"
                             f"{': ' + exc.strerror if exc.strerror else ''}); nothing was sent") from None
        client = IngestionClient(cloud, tokens, deadline=args.deadline,
                                 read_timeout=getattr(args, "read_timeout", None) or READ_TIMEOUT)
    store = LocalCheckpointStore(args.state_dir)

    outcomes: list[tuple[str, FileOutcome]] = []
    not_attempted = 0
    try:
        with reporter:
            for i, path in enumerate(paths):
                name = safe_name(path)
                outcome = upload_file(path, display_name=name, job_id=job_id or "", mapping=mapping, client=client,
                                      store=store, records_per_call=args.records_per_call, force=args.force,
                                      dry_run=args.dry_run, reporter=reporter)
                outcomes.append((name, outcome))
                if outcome.status == "failed":
                    not_attempted = len(paths) - i - 1
                    break
            code = exit_code([o for _, o in outcomes])
            reporter.summary(outcomes, code, not_attempted=not_attempted)
    finally:
        if client is not None:
            client.close()
    return code
