"""`python -m uploader validate FILE... --mapping FILE | --stack NAME --connector NAME`: check files against a
mapping; send nothing."""

from __future__ import annotations

import argparse
from pathlib import Path

from uploader.check.csvscan import scan_file
from uploader.cli import mapping_from_args
from uploader.errors import EXIT_INVALID, EXIT_OK, UsageError
from uploader.model import sink
from uploader.model.boundedio import FileReadError, check_regular_file
from uploader.report import safe_name


def main(args: argparse.Namespace) -> int:
    mapping = mapping_from_args(args, required=True)
    for raw in args.files:  # every FILE a readable regular file (not a FIFO or device), before any is read
        try:
            check_regular_file(raw)
        except FileReadError as exc:
            raise UsageError(str(exc)) from None
    invalid = 0
    for raw in args.files:
        name = safe_name(raw)
        scan = scan_file(Path(raw), mapping, records_per_call=10**9, display_name=name)
        invalid += not scan.ok
        if args.log_format == "json":
            sink.stdout.json({
                "event": "file_validated", "file": name, "ok": scan.ok, "records": scan.records,
                "problem_count": scan.problem_count, "problems": [p.to_json() for p in scan.problems],
                "warnings": scan.warnings, "sha256": scan.sha256,
            })
            continue
        for line in scan.warnings:
            sink.stderr.line(f"warning: {line}")
        if scan.ok:
            sink.stdout.line(f"{name}: valid, {scan.records} record{'s' if scan.records != 1 else ''}")
        else:
            for line in scan.report_lines():
                sink.stderr.line(line)
            sink.stderr.line(f"{name}: INVALID, {scan.problem_count} problem{'s' if scan.problem_count != 1 else ''}; "
                             "nothing from this file would be sent")
    return EXIT_INVALID if invalid else EXIT_OK
