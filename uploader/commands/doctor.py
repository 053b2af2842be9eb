"""`python -m uploader doctor`: the live checks of uploader/job/doctor.py, one line each, and the verdict.

Exit 0 when nothing failed (warnings allowed), 1 when a live check failed, 2 when a setting is wrong
(that wins: fix the configuration first). Never prints a key, a token or a cell value.
"""

from __future__ import annotations

import argparse

from uploader.cli import add_connection_options, add_option
from uploader.commands import check_tls_trust, sign_in_settings, storage_access
from uploader.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from uploader.job.doctor import (
    FAIL,
    JOB_BINDING,
    NETWORK_TIMEOUT,
    PASS,
    SKIP,
    WARN,
    Check,
    DoctorSettings,
    exit_code,
    run_checks,
    verified_headline,
)
from uploader.report import Reporter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Live checks before the first real run: certificate, sign-in, ingestion host (DNS + "
                          "TLS), and in job mode the connectors and the drop zone. Sends no HR data, prints no "
                          "key or token. See docs/doctor.md.")
    parser.epilog = "exit codes: 0 all passed (warnings allowed); 1 a live check failed; 2 a setting is wrong"
    add_connection_options(parser, required=False, https_only=False)  # the settings check reports them
    add_option(parser, "--job-id", help="the connector's job ID from Purview (optional: its form is checked)")
    add_option(parser, "--dropzone-url", help="job mode: blob container URL or file:///path of the drop zone")
    add_option(parser, "--connectors", help="job mode: JSON list of connector mappings")
    add_option(parser, "--timeout", default=NETWORK_TIMEOUT,
               help="seconds for each network step (sign-in: each request, its answer included)")



def main(args: argparse.Namespace) -> int:
    reporter = Reporter(args.log_format)

    def emit(check: Check) -> None:
        reporter.event("check", check.line(), check=check.name, status=check.status, summary=check.summary,
                       hint=check.hint or None, **check.facts)

    sign_in = sign_in_settings(args)  # the options and the variables, typed once
    check_tls_trust()
    doctor = DoctorSettings(sign_in, job_id=args.job_id, dropzone_url=args.dropzone_url,
                            connectors=args.connectors, timeout=args.timeout,
                            storage=storage_access(args.dropzone_url, sign_in))
    checks = run_checks(doctor, emit)
    code = exit_code(checks)
    counts = {s: sum(c.status == s for c in checks) for s in (PASS, WARN, FAIL, SKIP)}
    verdict = {EXIT_OK: verified_headline(checks, args.job_id), EXIT_FAILED: "a live check failed",
               EXIT_USAGE: "a setting is wrong"}[code]
    reporter.event("doctor_summary", f"doctor: {counts[PASS]} passed, {counts[WARN]} warning(s), {counts[FAIL]} "
                   f"failed, {counts[SKIP]} skipped; exit {code}: {verdict}", exit_code=code,
                   passed=counts[PASS], warnings=counts[WARN], failed=counts[FAIL], skipped=counts[SKIP],
                   verified=[c.name for c in checks if c.status in (PASS, WARN)],
                   not_verified=[JOB_BINDING])
    return code
