"""The mapping a command checks against: a `--mapping` JSON file, or one connector of a Pulumi stack file.

`--stack NAME --connector NAME` reads `Pulumi.NAME.yaml` (in `--stacks-dir`, default the checkout's
`stacks/`) and takes the named entry of its `hr-connector:connectors` list, parsed by the same mapping
model the Pulumi program and the scheduled job use, so the file a user validates is the one the job uses.

PyYAML is imported only here, and only when `--stack` is given: the job's image never reads stack files
(the program hands the job its connectors as UPLOADER_CONNECTORS JSON), so it stays out of the uploader's
runtime dependencies; the `provisioning` extra, which anyone with stack files installs, brings it.
No Pulumi import: the uploader's container stays small.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from .errors import UsageError
from .mapping import ConnectorMapping, MappingError, load_mapping_file, parse_connectors
from .yamlfile import read_yaml

NAMESPACE = "hr-connector"
CONNECTORS_KEY = f"{NAMESPACE}:connectors"
#: Pulumi's rule for stack names: letters, digits, `-`, `_` and `.`, at most 100 characters.
STACK_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
#: Where stack files live in a checkout (Pulumi.yaml's stackConfigDir), beside this package.
CHECKOUT_STACKS = Path(__file__).resolve().parent.parent / "stacks"


def add_mapping_options(parser: argparse.ArgumentParser, add_option: Any, mapping_help: str) -> None:
    """--mapping FILE, or --stack NAME [--connector NAME] [--stacks-dir DIR]."""
    add_option(parser, "--mapping", help=mapping_help)
    add_option(parser, "--stack", help="take the mapping from this stack's file (stacks/Pulumi.STACK.yaml) "
               "instead of --mapping")
    add_option(parser, "--connector", help="with --stack: the connector's `name` in hr-connector:connectors "
               "(optional when the stack has one connector)")
    add_option(parser, "--stacks-dir", help=f"with --stack: where the stack files are (default {CHECKOUT_STACKS})")


def mapping_from_args(args: argparse.Namespace, required: bool) -> ConnectorMapping | None:
    """The mapping named by --mapping or --stack/--connector (UsageError, exit 2, naming the flag or key)."""
    stack = getattr(args, "stack", None)
    if args.mapping and stack:
        raise UsageError("give --mapping FILE or --stack NAME, not both")
    if stack:
        return load_connector(stack, getattr(args, "connector", None), getattr(args, "stacks_dir", None))
    if getattr(args, "connector", None):
        raise UsageError("--connector needs --stack (the stack file whose connector it names)")
    if args.mapping:
        try:
            return load_mapping_file(args.mapping)
        except MappingError as exc:
            raise UsageError(f"--mapping {exc}") from None
    if required:
        raise UsageError("a mapping is required: --mapping FILE, or --stack NAME --connector NAME")
    return None


def stack_path(stack: str, stacks_dir: str | None) -> Path:
    if stack in (".", "..") or not STACK_NAME_RE.match(stack):
        raise UsageError(f"--stack {stack!r}: must be 1-100 letters, digits, '-', '_' or '.' (Pulumi's rule)")
    return Path(stacks_dir or CHECKOUT_STACKS) / f"Pulumi.{stack}.yaml"


def load_connector(stack: str, connector: str | None, stacks_dir: str | None) -> ConnectorMapping:
    """The connector named `connector` (or the only one) in the stack file's hr-connector:connectors."""
    path = stack_path(stack, stacks_dir)
    try:
        import yaml  # noqa: F401 - read_yaml needs it
    except ImportError:
        raise UsageError("--stack needs PyYAML to read the stack file: pip install 'hr-connector[provisioning]' "
                         "(or pip install PyYAML), or pass the mapping as JSON with --mapping") from None
    if not path.is_file():
        known = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in path.parent.glob("Pulumi.*.yaml"))
        raise UsageError(f"--stack {stack}: no file {path} (stacks there: {', '.join(known) or 'none'}; "
                         "--stacks-dir DIR to look elsewhere)")
    try:
        document, duplicates = read_yaml(path)  # no aliases (a few bytes could expand to gigabytes)
    except MappingError as exc:
        raise UsageError(str(exc)) from None
    if duplicates:
        raise UsageError("; ".join(f"{path}: {d}" for d in duplicates))
    config = document.get("config") if isinstance(document, dict) else None
    raw = config.get(CONNECTORS_KEY) if isinstance(config, dict) else None
    try:
        connectors = parse_connectors(raw, where=f"{path}: {CONNECTORS_KEY}")
    except MappingError as exc:
        raise UsageError(str(exc)) from None
    names = [c.name or f"#{i}" for i, c in enumerate(connectors)]
    if not connectors:
        raise UsageError(f"{path}: {CONNECTORS_KEY} is empty (add the connector's mapping and jobId once it "
                         "exists in Purview)")
    if connector is None:
        if len(connectors) == 1:
            return connectors[0]
        raise UsageError(f"--stack {stack} has {len(connectors)} connectors: name one with --connector "
                         f"({', '.join(names)})")
    for c in connectors:
        if c.name == connector:
            return c
    raise UsageError(f"--connector {connector!r}: not in {path}'s {CONNECTORS_KEY} (connectors: {', '.join(names)})")
