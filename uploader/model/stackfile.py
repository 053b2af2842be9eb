"""One connector of a Pulumi stack file, for `--stack NAME --connector NAME` (the options are in uploader/cli.py).

`--stack NAME --connector NAME` reads `Pulumi.NAME.yaml` (in `--stacks-dir`; by default the checkout's `stacks/`
when the uploader runs from a checkout, else `./stacks`: an installed uploader's own folder is site-packages,
which holds no stack files) and takes the named entry of its `hr-connector:connectors` list, parsed by the same mapping
model the Pulumi program and the scheduled job use, so the file a user validates is the one the job uses.

PyYAML is imported only here, and only when `--stack` is given: the job's image never reads stack files
(the program hands the job its connectors as UPLOADER_CONNECTORS JSON), so it stays out of the uploader's
runtime dependencies; the `provisioning` extra, which anyone with stack files installs, brings it.
No Pulumi import: the uploader's container stays small.
"""

from __future__ import annotations

import re
from pathlib import Path

from uploader.errors import UsageError
from uploader.model.mapping import ConnectorMapping, MappingError, parse_connectors
from uploader.model.safetext import safe_text
from uploader.yamlfile import read_yaml

NAMESPACE = "hr-connector"
CONNECTORS_KEY = f"{NAMESPACE}:connectors"
#: Pulumi's rule for stack names: letters, digits, `-`, `_` and `.`, at most 100 characters.
STACK_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
#: The folder holding the `uploader` package: a checkout's root (with Pulumi.yaml), or site-packages when installed.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
#: What --help says of the default.
DEFAULT_STACKS_TEXT = "./stacks; in a checkout, its stacks/"


def default_stacks_dir() -> Path:
    """The checkout's stacks/ (Pulumi.yaml's stackConfigDir) when the uploader runs from one, else ./stacks."""
    if (PACKAGE_ROOT / "Pulumi.yaml").is_file():
        return PACKAGE_ROOT / "stacks"
    return Path("stacks")


def stack_path(stack: str, stacks_dir: str | None) -> Path:
    if stack in (".", "..") or not STACK_NAME_RE.match(stack):
        raise UsageError(f"--stack {safe_text(repr(stack))}: must be 1-100 letters, digits, '-', '_' or '.' "
                         "(Pulumi's rule)")
    return (Path(stacks_dir) if stacks_dir else default_stacks_dir()) / f"Pulumi.{stack}.yaml"


def load_connector(stack: str, connector: str | None, stacks_dir: str | None) -> ConnectorMapping:
    """The connector named `connector` (or the only one) in the stack file's hr-connector:connectors."""
    path = stack_path(stack, stacks_dir)
    try:
        import yaml  # noqa: F401 - read_yaml needs it
    except ImportError:
        raise UsageError("--stack needs PyYAML to read the stack file: pip install '.[stack]' in the checkout "
                         "(or pip install PyYAML), or pass the mapping as JSON with --mapping") from None
    shown = safe_text(path)
    if not path.exists():  # a FIFO or device there is refused by the bounded reader, naming it
        known = sorted(safe_text(p.name[len("Pulumi."):-len(".yaml")], 60) for p in path.parent.glob("Pulumi.*.yaml"))
        raise UsageError(f"--stack {stack}: no file {shown} (stacks there: {', '.join(known) or 'none'}; "
                         "--stacks-dir DIR to look elsewhere)")
    try:
        document, duplicates = read_yaml(path)  # no aliases (a few bytes could expand to gigabytes)
    except MappingError as exc:
        raise UsageError(str(exc)) from None
    if duplicates:
        raise UsageError("; ".join(f"{shown}: {d}" for d in duplicates))
    config = document.get("config") if isinstance(document, dict) else None
    raw = config.get(CONNECTORS_KEY) if isinstance(config, dict) else None
    try:
        connectors = parse_connectors(raw, where=f"{shown}: {CONNECTORS_KEY}")
    except MappingError as exc:
        raise UsageError(str(exc)) from None
    names = [safe_text(c.name, 60) if c.name else f"#{i}" for i, c in enumerate(connectors)]
    if not connectors:
        raise UsageError(f"{shown}: {CONNECTORS_KEY} is empty (add the connector's mapping and jobId once it "
                         "exists in Purview)")
    if connector is None:
        if len(connectors) == 1:
            return connectors[0]
        raise UsageError(f"--stack {stack} has {len(connectors)} connectors: name one with --connector "
                         f"({', '.join(names)})")
    for c in connectors:
        if c.name == connector:
            return c
    raise UsageError(f"--connector {safe_text(repr(connector))}: not in {shown}'s {CONNECTORS_KEY} (connectors: "
                     f"{', '.join(names)})")
