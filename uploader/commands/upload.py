"""`python -m uploader upload FILE...`: validate and send files to one connector job.

Each file is validated before any of its chunks is sent; an invalid file is reported and the next
file still goes. A failed upload stops the run (the next files would meet the same refusal or outage);
a rerun resumes from the checkpoints. Exit code: 1 if a file failed, else 3 if a file was invalid,
else 4 if this run set rows aside, else 0 (docs/cli.md's exit codes; 2 is raised as UsageError before anything is
read or sent); 5 when SIGTERM or SIGINT stopped it (uploader/stopping.py: the chunk in flight is finished and
checkpointed first).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from uploader import stopping
from uploader.cli import default_state_dir, env_name, mapping_from_args
from uploader.commands import check_tls_trust, sign_in_settings
from uploader.errors import EXIT_FAILED, EXIT_INVALID, EXIT_OK, EXIT_SET_ASIDE, EXIT_STOPPED, UsageError
from uploader.model.boundedio import FileReadError, check_regular_file
from uploader.model.mapping import job_id_problem
from uploader.report import Reporter, safe_name
from uploader.send.checkpoint import LocalCheckpointStore
from uploader.send.quarantine import (
    SET_ASIDE_FOLDER,
    STATUS_PARTIAL,
    FolderSetAside,
    RowPolicy,
    check_set_aside_folder,
    is_set_aside_name,
    upload_with_policy,
)
from uploader.send.settings import (
    CERTIFICATE_ENV,
    check_certificate,
    federated_credential,
    read_certificate,
    read_public_certificate,
    resolve_cloud,
    vault_credential,
    warn_key_vault_override,
)
from uploader.send.upload import FileOutcome

if TYPE_CHECKING:
    pass

def exit_code(outcomes: list[FileOutcome]) -> int:
    """1 if any file failed, else 3 if any was invalid, else 4 if rows were set aside, else 0."""
    statuses = {o.status for o in outcomes}
    if "failed" in statuses:
        return EXIT_FAILED
    if "invalid" in statuses:
        return EXIT_INVALID
    if STATUS_PARTIAL in statuses:
        return EXIT_SET_ASIDE
    return EXIT_OK


def check_files(names: list[str]) -> list[Path]:
    """Every FILE must exist and be a readable regular file (exit 2 naming the first that is not)."""
    paths = []
    for raw in names:
        try:
            path = Path(check_regular_file(raw))
        except FileReadError as exc:
            raise UsageError(str(exc)) from None
        paths.append(path)
    return paths


def main(args: argparse.Namespace) -> int:
    paths = check_files(args.files)
    state_dir = args.state_dir or default_state_dir()
    mapping = mapping_from_args(args, required=False)
    job_id = args.job_id or (mapping.job_id if mapping is not None else None) or None
    if not args.dry_run:
        for flag, value in (("--tenant-id", args.tenant_id), ("--app-id", args.app_id), ("--job-id", job_id)):
            if not value:
                hint = (" (the mapping's jobId is not set yet: put the connector's job ID there, or give --job-id)"
                        if flag == "--job-id" and mapping is not None else "")
                raise UsageError(f"{flag} (or {env_name(flag)}) is required to send{hint}; a --dry-run needs none")
    if job_id is not None and (rule := job_id_problem(job_id)) is not None:
        raise UsageError(f"--job-id: {rule}")
    for flag, value in (("--deadline", args.deadline), ("--read-timeout", getattr(args, "read_timeout", 1.0))):
        if value is None or not value > 0:
            raise UsageError(f"{flag}: must be a positive number of seconds")
    if args.rejected_dir and RowPolicy.resolve(mapping, args.invalid_rows).mode == "quarantine":
        # before anything is read, signed or sent: a --rejected-dir that cannot hold the set-aside rows is exit 2
        folder = Path(args.rejected_dir)
        why = ("not a folder" if folder.exists() and not folder.is_dir() else None) if args.dry_run else \
            check_set_aside_folder(folder)
        if why is not None:
            raise UsageError(f"--rejected-dir {safe_name(args.rejected_dir)}: cannot hold the set-aside rows ({why}); "
                             "nothing was sent")
    sign_in = sign_in_settings(args)  # the sign-in options, typed once: every stage below takes these
    cloud = resolve_cloud(sign_in)
    reporter = Reporter(args.log_format)
    if mapping is not None and args.job_id and mapping.job_id and mapping.job_id.lower() != args.job_id.lower():
        reporter.warning(args.mapping or f"stack {args.stack}", "the mapping's jobId differs from --job-id; "
                         "sending to --job-id")

    client = None
    if args.dry_run:  # no certificate needed, no token provider, no network
        if sign_in.federated:
            pass  # nothing to read: the job's managed identity signs in, and only when something is sent
        elif args.key_id:
            from uploader.send.keyvault import parse_key_id

            parse_key_id(args.key_id, cloud, args.key_vault_domain)
            if args.certificate or sign_in.certificate_pem:
                check_certificate(read_public_certificate(sign_in)[0], None, "--certificate", reporter)
        elif args.certificate or sign_in.certificate_pem:
            from uploader.model.certs import CertificateError, load_bundle

            pem, source = read_certificate(sign_in)
            try:
                bundle = load_bundle(pem, source=source)
            except CertificateError as exc:
                raise UsageError(str(exc)) from None
            check_certificate(bundle, args.certificate, source, reporter)
    else:
        from uploader.send.auth import TOKEN_TIMEOUT, TokenProvider
        from uploader.send.ingestion import READ_TIMEOUT, IngestionClient

        check_tls_trust()  # the CA bundle requests will read exists, before any request
        read_timeout = getattr(args, "read_timeout", None) or READ_TIMEOUT
        sign_in_timeout = min(TOKEN_TIMEOUT, read_timeout)  # each request, its answer included
        if sign_in.federated:  # no certificate, no key: the managed identity's token is the assertion
            tokens = TokenProvider(cloud, args.tenant_id, args.app_id, None, timeout=sign_in_timeout,
                                   assertion=federated_credential(sign_in, cloud, timeout=sign_in_timeout))
        elif args.key_id:  # Key Vault signs: the key ID and the public certificate are checked before any request
            assertion = vault_credential(sign_in, cloud, args.app_id)
            warn_key_vault_override(sign_in, reporter)
            tokens = TokenProvider(cloud, args.tenant_id, args.app_id, None, assertion=assertion,
                                   timeout=sign_in_timeout)
            check_certificate(tokens.bundle, None, args.certificate or CERTIFICATE_ENV, reporter)
        else:
            pem, source = read_certificate(sign_in)
            tokens = TokenProvider(cloud, args.tenant_id, args.app_id, pem, source=source, timeout=sign_in_timeout)
            check_certificate(tokens.bundle, args.certificate, source, reporter)
        try:
            Path(state_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise UsageError(f"--state-dir {safe_name(state_dir)}: cannot create ({type(exc).__name__})") from None
        try:  # before the first byte leaves: a chunk sent without its checkpoint would be sent again by a retry
            LocalCheckpointStore(state_dir).check_writable()
        except OSError as exc:
            raise UsageError(f"--state-dir: the checkpoint folder is not writable ({type(exc).__name__}"
                             f"{': ' + exc.strerror if exc.strerror else ''}); nothing was sent") from None
        client = IngestionClient(cloud, tokens, deadline=args.deadline,
                                 read_timeout=getattr(args, "read_timeout", None) or READ_TIMEOUT)
    store = LocalCheckpointStore(state_dir)
    # Quarantine's split copies (HR data): in the private state folder, or the system's temporary folder.
    work_dir = Path(state_dir) if os.path.isdir(state_dir) else Path(tempfile.gettempdir())

    outcomes: list[tuple[str, FileOutcome]] = []
    not_attempted = 0
    try:
        with reporter, stopping.graceful_stop():
            i = -1
            try:
                for i, path in enumerate(paths):
                    stopping.check()
                    name = safe_name(path)
                    if is_set_aside_name(path.name):  # `upload *.csv` run where an earlier run set rows aside
                        reason = ("a set-aside rows file (--invalid-rows quarantine wrote it): never taken as "
                                  "input; to send its rows once they are fixed, give the fixed file another name")
                        reporter.file_skipped(name, reason)
                        outcomes.append((name, FileOutcome("skipped", message=reason)))
                        continue
                    rejected = Path(args.rejected_dir) if args.rejected_dir else path.parent / SET_ASIDE_FOLDER
                    outcome = upload_with_policy(
                        path, display_name=name, job_id=job_id or "", mapping=mapping, client=client, store=store,
                        records_per_call=args.records_per_call, force=args.force, dry_run=args.dry_run,
                        reporter=reporter, invalid_rows=args.invalid_rows, max_invalid_rows=args.max_invalid_rows,
                        set_aside=FolderSetAside(rejected, path.name), work_dir=work_dir)
                    outcomes.append((name, outcome))
                    if outcome.status == "failed":
                        not_attempted = len(paths) - i - 1
                        break
                code = exit_code([o for _, o in outcomes])
            except stopping.Stopped as stop:  # the chunk in flight was answered and checkpointed (unless at once)
                if stop.outcome is not None:
                    outcomes.append((safe_name(paths[i]), stop.outcome))
                not_attempted = len(paths) - len(outcomes)
                code = EXIT_STOPPED
                reporter.event("stopped", stop.describe(), error=True, signal=stop.signal_name, at_once=stop.at_once)
            reporter.summary(outcomes, code, not_attempted=not_attempted)
    finally:
        if client is not None:
            client.close()
    return code
