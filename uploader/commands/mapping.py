"""`python -m uploader mapping init FILE --scenario TYPE...`: a connector mapping from a CSV file's header;
`mapping connector MAPPING --name NAME --files GLOB [--add-to connectors.json]`: that mapping as job mode's entry.

Reads the header row only (never a record, so never a cell value), matches its column names against the
names Microsoft documents for each field (`scenarios.COLUMN_ALIASES`, case-insensitive), and writes the
mapping JSON to stdout or to a new `--output` file (never overwritten). The report on stderr says which
columns were mapped, which were not, and which required fields have no column. The `jobId` is a
placeholder until the Purview connector exists (or `--job-id` gives it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path
from typing import Any

from uploader.check.header import (
    build_mapping,
    read_header,
    scenarios_named,
)
from uploader.errors import EXIT_OK, UsageError
from uploader.model import sink
from uploader.model.mapping import JOB_ID_PLACEHOLDER, MappingError, job_id_problem, parse_connector
from uploader.model.safetext import safe_text
from uploader.model.scenarios import (
    SCENARIO_COLUMN_ALIASES,
    SCENARIOS,
    find_column,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="mapping_command", required=True, metavar="ACTION")
    init = sub.add_parser("init", help="write a mapping JSON from a CSV file's header row (reads no record)")
    init.add_argument("file", metavar="FILE", help="a CSV export whose first line is the header row")
    init.add_argument("--scenario", action="append", required=True, metavar="TYPE",
                      help=f"a scenario the file carries (repeat for several): {', '.join(SCENARIOS)} "
                      "or Microsoft's names, e.g. 'Job level changes' (docs/mapping.md); case-insensitive")
    init.add_argument("--scenario-column", metavar="COL",
                      help="the column telling rows' scenarios apart (needed with several --scenario; "
                      f"default: a header column named {' or '.join(SCENARIO_COLUMN_ALIASES)})")
    init.add_argument("--job-id", metavar="GUID", help="the connector's job ID, if Purview already shows it")
    init.add_argument("--first-line-is-header", action="store_true",
                      help="take the first line for the header row although none of its cells is a column name "
                      "Microsoft documents (the other header rules still apply; docs/mapping.md)")
    init.add_argument("--output", "-o", metavar="FILE", help="write the mapping here (refused if it exists); "
                      "default: standard output")
    entry = sub.add_parser("connector", help="turn a mapping file into a connector entry for job mode "
                           "(UPLOADER_CONNECTORS, connectors.json, the stack's hr-connector:connectors)")
    entry.add_argument("mapping", metavar="MAPPING", help="a mapping JSON (from mapping init, its jobId filled in)")
    entry.add_argument("--name", required=True, help="the connector's name (unique in the list)")
    entry.add_argument("--files", required=True, metavar="GLOB",
                       help="which files under the drop zone's incoming/ it takes, e.g. 'departures/*.csv'")
    entry.add_argument("--add-to", metavar="FILE", help="add the entry to this JSON list (created if missing; "
                       "replaced atomically); default: print a one-entry list")


def main(args: argparse.Namespace) -> int:
    if args.mapping_command == "connector":
        return _connector(args)
    path = Path(args.file)
    specs = scenarios_named(args.scenario)
    if args.job_id is not None and (rule := job_id_problem(args.job_id)) is not None:
        raise UsageError(f"--job-id: {rule}")
    if args.output and os.path.lexists(args.output):
        raise UsageError(f"--output {safe_text(args.output)}: already exists (never overwritten; choose another name)")
    header = read_header(path, confirmed=args.first_line_is_header)

    scenario_column = None
    if args.scenario_column:
        scenario_column = find_column(header, (args.scenario_column,))
        if scenario_column is None:
            raise UsageError(f"--scenario-column {safe_text(args.scenario_column)}: not in {safe_text(path)}'s header")
    elif len(specs) > 1:
        scenario_column = find_column(header, SCENARIO_COLUMN_ALIASES)
        if scenario_column is None:
            names = " or ".join(SCENARIO_COLUMN_ALIASES)
            raise UsageError(f"several scenarios need --scenario-column COL: the column of {safe_text(path)} "
                             f"whose value says each row's scenario (none named {names})")

    mapping, missing, unmatched = build_mapping(header, specs, scenario_column, args.job_id or JOB_ID_PLACEHOLDER)
    try:  # what we write must be what validate/upload accept (the placeholder jobId aside)
        parse_connector(mapping, "mapping", job_id_optional=True)
    except MappingError as exc:  # pragma: no cover - build_mapping follows the catalogue
        raise UsageError(f"internal: the generated mapping is invalid: {exc}") from None
    text = json.dumps(mapping, indent=2) + "\n"

    if args.output:
        try:
            with open(args.output, "x", encoding="utf-8") as f:
                f.write(text)
        except FileExistsError:
            raise UsageError(f"--output {safe_text(args.output)}: already exists (never overwritten)") from None
        except OSError as exc:
            raise UsageError(f"--output {safe_text(args.output)}: cannot write ({type(exc).__name__})") from None
    else:
        sink.stdout.json(mapping, indent=2)
    _report(path, header, mapping, scenario_column, missing, unmatched, args)
    return EXIT_OK


def _report(path: Path, header: list[str], mapping: dict[str, Any], scenario_column: str | None,
            missing: list[str], unmatched: list[str], args: argparse.Namespace) -> None:
    """What was matched and what is left to do, on stderr (column names only: the header, never a record)."""
    def say(text: str) -> None:
        sink.stderr.line(text.removesuffix("\n"))

    used = {scenario_column} if scenario_column else set()
    say(f"{safe_text(path)}: header with {len(header)} columns (records not read; * = required field)\n")
    if scenario_column:
        say(f"  scenario column: {safe_text(scenario_column)}\n")
    for entry in mapping["scenarios"]:
        rows = f" (rows whose {safe_text(scenario_column)} is {entry['value']!r})" if scenario_column else ""
        say(f"  {entry['type']}{rows}:\n")
        for name, column in entry["columns"].items():
            key = f"{entry['type']}.{name}"
            label = name + ("*" if SCENARIOS[entry["type"]].field(name).required else "")
            if key in missing:
                say(f"    {label:<19} <- {safe_text(column)}  MISSING: required, no such column in the header\n")
            else:
                used.add(column)
                say(f"    {label:<19} <- {safe_text(column)}\n")
    unmapped = [c for c in header if c not in used]
    listed = ", ".join(map(safe_text, unmapped)) if unmapped else "none"
    say(f"  mapped columns: {len(used)}; unmapped columns: {listed}\n")
    if unmatched:
        say(f"  optional fields without a column (left out): {', '.join(unmatched)}\n")
    if missing:
        say(f"  missing required fields: {', '.join(missing)}: add the columns to the export, or put your "
            "column names in the mapping; validate fails until then\n")
    where = safe_text(args.output or "the mapping")
    if not args.job_id:
        say(f"next: in {where}, replace {JOB_ID_PLACEHOLDER} with the connector's job ID (Purview portal > "
            "Settings > Data connectors > My connectors > your HR connector)\n")
    if scenario_column:
        say(f"next: check each scenario's \"value\" against what your {safe_text(scenario_column)} column holds\n")
    say(f"then: python -m uploader validate {safe_text(path)} --mapping {safe_text(args.output or 'MAPPING.json')}\n")


def _connector(args: argparse.Namespace) -> int:
    """Print the list with the new entry, or write it into --add-to (atomically), checked as the job reads it."""
    from uploader.job.connectors import add_connector, read_json_file

    mapping = read_json_file(args.mapping, "MAPPING")
    existing = read_json_file(args.add_to, "--add-to") if args.add_to and os.path.exists(args.add_to) else []
    where = safe_text(args.add_to) if args.add_to else "the connector list"
    connectors = add_connector(existing, mapping, name=args.name, files=args.files, where=where)
    text = json.dumps(connectors, indent=2) + "\n"
    if not args.add_to:
        sink.stdout.json(connectors, indent=2)
        return EXIT_OK
    target = Path(args.add_to)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):  # a name too long to create is too long to remove
            tmp.unlink(missing_ok=True)
        raise UsageError(f"--add-to {safe_text(args.add_to)}: cannot write ({type(exc).__name__})") from None
    sink.stderr.line(f"{safe_text(args.add_to)}: {len(connectors)} connector(s); added {safe_text(args.name)} "
                     f"(files {safe_text(args.files)}). Job mode: UPLOADER_CONNECTORS=\"$(cat "
                     f"{safe_text(args.add_to)})\" python -m uploader run")
    return EXIT_OK
