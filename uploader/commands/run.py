"""`python -m uploader run`: job mode, every setting from the job's UPLOADER_* environment (docs/job-mode.md).

Reads the connectors (UPLOADER_CONNECTORS), opens the drop zone (UPLOADER_DROPZONE_URL), and hands the
work to uploader.job.jobrun. Prints readable lines and one JSON summary line; exits 0 when everything was sent
(or there was nothing to do), 1 when any file failed (failure wins over rejection, so Container Apps
marks the execution failed), 3 when any file was rejected, 4 when it set rows aside, 2 on a configuration error
naming the variable, 5 when SIGTERM or SIGINT stopped it (uploader/stopping.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

from uploader import stopping
from uploader.cli import add_connection_options, add_option, add_row_policy_options, env_name
from uploader.clouds import DEFAULT_RECORDS_PER_CALL, get_cloud
from uploader.commands import sign_in_settings, storage_access
from uploader.errors import EXIT_FAILED, EXIT_OK, EXIT_STOPPED, UploaderError, UsageError
from uploader.job.connectors import CONNECTORS_ENV, load_connectors
from uploader.model import environment
from uploader.report import Reporter
from uploader.send.settings import CERTIFICATE_ENV as CERTIFICATE_PEM_ENV


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `run` options: normally all come from the environment twins the Pulumi program sets."""
    parser.description = (
        "Job mode: send each connector's new files from the drop zone's incoming/ (oldest first), then move "
        "them to processed/<yyyy>/<mm>/<dd>/ or rejected/ (with .errors.json); a failed file stays in incoming/ "
        "and resumes next run. Settings come from the environment (UPLOADER_*, AZURE_CLIENT_ID, "
        "AZURE_STORAGE_CONNECTION_STRING); the certificate bundle from UPLOADER_CERTIFICATE_PEM."
    )
    parser.epilog = ("exit codes: 0 all sent or nothing to do; 1 a file failed, changed while it was sent or was "
                     "held by another execution (wins over 3); 2 configuration; 3 a file was rejected or refused "
                     "(wins over 4); 4 rows set aside by this run (--invalid-rows quarantine); 5 stopped by SIGTERM "
                     "or SIGINT after finishing and recording the request in flight (wins over all)")
    add_connection_options(parser, required=False)
    add_option(parser, "--dropzone-url", help="blob container URL (https://ACCOUNT.blob.core.windows.net/CONTAINER) "
               "or file:///path of the drop zone")
    add_option(parser, "--connectors", help="JSON list of connector mappings (each with name, jobId, files, ...)")
    add_option(parser, "--records-per-call", default=DEFAULT_RECORDS_PER_CALL, help="records per upload call")
    add_option(parser, "--settle-seconds", default=60.0,
               help="take a file only once it has not changed for this many seconds (0 to 86400; default 60): "
                    "a writer still writing, or pausing mid-file, is not sent half a file")
    add_row_policy_options(parser)


def _required(value: str | None, flag: str) -> str:
    if value is None or not str(value).strip():
        raise UsageError(f"{env_name(flag)} is not set (job mode reads its settings from the environment)")
    return str(value).strip()


def _certificate_pem(args: argparse.Namespace, sign_in: Any) -> tuple[str, str]:
    """The PEM bundle's text and where it came from (UPLOADER_CERTIFICATE_PEM, else --certificate's file)."""
    from uploader.model.certs import CertificateError, read_pem_file

    if sign_in.certificate_pem:
        return sign_in.certificate_pem, CERTIFICATE_PEM_ENV
    if args.certificate:
        try:
            pem = read_pem_file(args.certificate, "UPLOADER_CERTIFICATE", CERTIFICATE_PEM_ENV,
                                password=sign_in.certificate_password)
            return pem, args.certificate
        except CertificateError as exc:
            raise UsageError(str(exc)) from None
    raise UsageError(f"{CERTIFICATE_PEM_ENV} is not set (the job's certificate bundle, from Key Vault)")


def main(args: argparse.Namespace) -> int:
    from uploader.job.dropzone import open_dropzone
    from uploader.job.jobrun import JobRun
    from uploader.send.auth import TOKEN_TIMEOUT, TokenProvider
    from uploader.send.ingestion import IngestionClient
    from uploader.send.quarantine import upload_with_policy
    from uploader.send.settings import check_certificate

    reporter = Reporter(args.log_format)
    names = RunNames.from_environment()  # read and checked once: every summary line of the run carries them
    connectors = load_connectors(args.connectors)
    if not connectors:
        reporter.event("nothing_to_do", f"nothing to do: no connectors configured yet ({CONNECTORS_ENV} is empty); "
                       "add them to the stack's `connectors` once the Purview HR connector exists",
                       reason="no connectors")
        _print_summary_line(reporter, {"event": "run_summary", "exit_code": EXIT_OK, "connectors": [],
                                       "reason": "no connectors configured"}, names)
        return EXIT_OK
    tenant_id = _required(args.tenant_id, "--tenant-id")
    app_id = _required(args.app_id, "--app-id")
    dropzone_url = _required(args.dropzone_url, "--dropzone-url")
    cloud = get_cloud(args.cloud).with_overrides(args.authority_host, args.ingestion_url, args.scope)
    from uploader.send.federated import FederatedAssertion
    from uploader.send.keyvault import VaultAssertion
    from uploader.send.settings import federated_credential

    sign_in = sign_in_settings(args)  # the sign-in options and variables, typed once: the stages below take these
    assertion: VaultAssertion | FederatedAssertion | None
    if sign_in.federated:  # UPLOADER_CREDENTIAL=federated: the job's identity; no certificate, no key
        assertion = federated_credential(sign_in, cloud)
        pem, source, key_file = None, "the job's managed identity", None
    elif args.key_id:  # Key Vault signs (UPLOADER_KEY_ID): the key ID is checked before the drop zone is opened
        from uploader.send.settings import vault_credential, warn_key_vault_override

        assertion = vault_credential(sign_in, cloud, app_id)
        warn_key_vault_override(sign_in, reporter)
        pem, source, key_file = None, CERTIFICATE_PEM_ENV, None
    else:
        assertion = None
        pem, source = _certificate_pem(args, sign_in)
        key_file = None if source == CERTIFICATE_PEM_ENV else args.certificate
    dropzone = open_dropzone(dropzone_url, storage_access(dropzone_url, sign_in))
    # signs in only when a file is sent; each sign-in request (its answer included) within --read-timeout, <= 30 s
    tokens = TokenProvider(cloud, tenant_id, app_id, pem, source=source, assertion=assertion,
                           timeout=min(TOKEN_TIMEOUT, args.read_timeout))
    _SIGN_IN.update(sign_in_facts(tokens, "federated" if isinstance(assertion, FederatedAssertion) else
                                  "key vault" if assertion is not None else "certificate"))
    check_certificate(tokens.bundle, key_file, source, reporter)  # expired: exit 2 before any request
    client = IngestionClient(cloud, tokens, deadline=args.deadline, read_timeout=args.read_timeout)
    try:
        # SIGTERM (Container Apps stopping the execution) or SIGINT: the chunk in flight is finished and recorded,
        # then JobRun stops and its summary says so (exit 5); a second signal, or the grace time, stops at once.
        with reporter, stopping.graceful_stop():
            upload = functools.partial(upload_with_policy, invalid_rows=args.invalid_rows,
                                       max_invalid_rows=args.max_invalid_rows)
            summary = JobRun(dropzone, connectors, upload=upload, client=client,
                             records_per_call=args.records_per_call, reporter=reporter,
                             settle=args.settle_seconds).run()
    except stopping.Stopped as stop:  # outside a file (listing, claiming, filing): nothing was in flight
        reporter.event("exit", f"exit {EXIT_STOPPED}: {stop.describe()}; files not filed stay in incoming/",
                       error=True)
        _print_summary_line(reporter, {"event": "run_summary", "exit_code": EXIT_STOPPED,
                                       "error": stop.describe(), "connectors": []}, names)
        return EXIT_STOPPED
    except UploaderError as exc:  # the drop zone itself failed (listing, permissions): still one summary line
        _print_summary_line(reporter, {"event": "run_summary", "exit_code": exc.exit_code, "error": str(exc),
                                       "connectors": []}, names)
        raise
    except Exception as exc:  # noqa: BLE001 - whatever happens, every run ends with its summary line
        reporter.event("exit", f"exit 1: unexpected {type(exc).__name__}; files not filed stay in incoming/",
                       error=True)
        _print_summary_line(reporter, {"event": "run_summary", "exit_code": EXIT_FAILED,
                                       "error": f"unexpected {type(exc).__name__}", "connectors": []}, names)
        return EXIT_FAILED
    finally:
        client.close()

    totals = summary.to_json()
    if not any(totals[k] for k in ("files_sent", "files_skipped", "files_rejected", "files_failed",
                                   "files_locked", "files_waiting", "files_settling", "files_refused")):
        extra = f" ({summary.unmatched} file(s) under incoming/ match no connector's glob)" if summary.unmatched else ""
        reporter.event("nothing_to_do", f"nothing to do: no new files in {dropzone.display}/incoming/{extra}",
                       reason="no files", files_unmatched=summary.unmatched)
    for c in summary.connectors:
        reporter.event("connector_summary",
                       f"{c.name}: {c.files_sent} sent, {c.files_skipped} skipped, {c.files_rejected} rejected, "
                       f"{c.files_failed} failed, {c.files_locked} busy elsewhere, {c.files_waiting} waiting, "
                       f"{c.files_settling} settling; "
                       f"{c.records_sent:,} records; {c.seconds:.1f} s"
                       + (f"; {c.rows_set_aside} row(s) set aside from {c.files_partial} file(s) sent"
                          if c.files_partial else ""))
    if summary.unmatched:
        reporter.event("unmatched", f"{summary.unmatched} file(s) under incoming/ match no connector's glob "
                       "(left where they are)")
    if summary.refused:
        reporter.event("refused", f"{summary.refused} file(s) under incoming/ refused (links, special files, unsafe "
                       "or over-long names; left where they are): see the lines above", error=True)
    settling = summary.total("files_settling")
    reporter.event("exit", f"exit {summary.exit_code}: " + {
        0: "everything taken was sent (or there was nothing to send)" if settling else
           "everything was sent (or there was nothing to send)",
        1: "a file failed to send; it stays in incoming/ and the next run resumes it",
        3: "a file was rejected (see rejected/<path>.errors.json) or refused",
        4: "sent with rows set aside: the valid rows went, the invalid ones are in rejected/ (with .errors.json)",
        EXIT_STOPPED: f"{summary.stopped}; files not filed stay in incoming/",
    }[summary.exit_code] + (_settling_note(settling, summary.settles_at, args.settle_seconds) if settling else ""),
        error=summary.exit_code == EXIT_STOPPED)
    _print_summary_line(reporter, totals, names)
    return summary.exit_code


def _settling_note(count: int, settles_at: dt.datetime | None, settle: float) -> str:
    """How many files wait for their settle time, and when they can be taken (the schedule's next run after)."""
    when = (f"they have been unchanged for {int(settle)} s at {settles_at.strftime('%Y-%m-%d %H:%M:%S')} UTC, and "
            "the first run after that takes them" if settles_at is not None else "a later run takes them")
    return (f"; {count} file(s) still settling (changed less than {int(settle)} s ago) wait in incoming/: {when} "
            "(UPLOADER_SETTLE_SECONDS)")


@dataclass(frozen=True)
class RunNames:
    """What the run summary names: the Pulumi stack the job belongs to (UPLOADER_STACK, set on the job by
    provisioning/components/job.py, so a hosting stack's shared workspace tells its tenants' runs apart by more than
    the job name), and the job and execution, which Container Apps sets in every execution's containers
    (CONTAINER_APP_JOB_NAME, CONTAINER_APP_JOB_EXECUTION_NAME:
    https://learn.microsoft.com/azure/container-apps/environment-variables, built-in variables of jobs)."""

    stack: str = ""
    job: str = ""
    execution: str = ""

    @classmethod
    def from_environment(cls) -> RunNames:
        return cls(stack=(environment.read("UPLOADER_STACK") or "").strip(),
                   job=environment.read("CONTAINER_APP_JOB_NAME") or "",
                   execution=environment.read("CONTAINER_APP_JOB_EXECUTION_NAME") or "")

#: The run's outcome in a word, by exit code (what `python -m provisioning status` and the workbook show).
OUTCOMES = {0: "sent", 1: "failed", 2: "configuration error", 3: "rejected", 4: "sent, rows set aside",
            5: "stopped"}


def sign_in_facts(tokens: Any, credential: str) -> dict[str, Any]:
    """What a status view needs of the sign-in: the credential kind and, where there is a certificate, its days left
    (whole days, rounded down; negative once expired)."""
    import datetime as dt

    bundle = getattr(tokens, "bundle", None) if tokens is not None else None
    days = None
    if bundle is not None:
        days = (bundle.not_after - dt.datetime.now(dt.UTC)).days
    return {"credential": credential, "certificate_days_left": days}


_SIGN_IN: dict[str, Any] = {}  # this run's sign_in_facts, once known (every summary line of the run carries them)


def _print_summary_line(reporter: Reporter, fields: dict[str, Any], names: RunNames | None = None) -> None:
    """The one JSON line per run that Log Analytics queries (also in text mode). Besides the run's totals it names
    the stack, the job and the execution, the time, the outcome in a word, the credential and the certificate's days
    left: everything a status view (`python -m provisioning status`, the stack's workbook) reads."""
    import datetime as dt

    names = names or RunNames.from_environment()
    if names.stack:
        fields = {**fields, "stack": names.stack}
    code = fields.get("exit_code")
    fields = {**fields, "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "job": names.job, "execution": names.execution,
              "outcome": ("nothing to do" if code == 0 and not fields.get("files_sent") else
                          OUTCOMES.get(code, "failed") if isinstance(code, int) else "failed"),
              **{k: v for k, v in _SIGN_IN.items() if k not in fields}}
    for key in ("records_sent", "rows_set_aside", "files_waiting"):
        fields.setdefault(key, 0)
    if reporter.json:
        fields = {k: v for k, v in fields.items() if k != "event"}
        reporter.event("run_summary", None, **fields)
    else:
        reporter.out.json(fields)
