"""The connector list of job mode, as the program hands it to the job (UPLOADER_CONNECTORS, JSON)."""

from __future__ import annotations

import json

from uploader.errors import UsageError
from uploader.model.mapping import ConnectorMapping, MappingError, parse_connectors

CONNECTORS_ENV = "UPLOADER_CONNECTORS"


def load_connectors(raw: str | None, where: str = CONNECTORS_ENV) -> tuple[ConnectorMapping, ...]:
    """UPLOADER_CONNECTORS: absent or empty means none configured yet; every connector needs a valid `files` glob.
    `where` names the list in messages (the variable, or the file it is kept in)."""
    from uploader.model.globs import glob_problem

    if raw is None or not raw.strip():
        return ()
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise UsageError(f"{where}: not a list of connector mappings (nested too deeply)") from None
    try:
        connectors = parse_connectors(obj, where=where)
    except MappingError as exc:
        raise UsageError(str(exc)) from None
    for i, connector in enumerate(connectors):
        if connector.files is None:
            raise UsageError(f"{where}[{i}].files: is required in job mode "
                             "(a glob relative to incoming/, e.g. \"departures/*.csv\")")
        if rule := glob_problem(connector.files):  # the same rules `provisioning check` applies to stack files
            raise UsageError(f"{where}[{i}].files: {rule}")
    return connectors


def read_json_file(path: str, what: str) -> object:
    """A JSON document from a small regular file (mapping or connectors.json): UsageError naming it and why."""
    from uploader.model.boundedio import MAPPING_LIMIT, FileReadError, read_file
    from uploader.model.safetext import safe_text

    try:
        data = read_file(path, limit=MAPPING_LIMIT * 16)
    except FileReadError as exc:
        raise UsageError(f"{what} {safe_text(path)}: {exc.reason}") from None
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        line = getattr(exc, "lineno", None)
        raise UsageError(f"{what} {safe_text(path)}{f':{line}' if line else ''}: not valid JSON "
                         f"({type(exc).__name__})") from None


def add_connector(connectors: object, mapping: object, *, name: str, files: str, where: str) -> list[object]:
    """The connector list (UPLOADER_CONNECTORS / connectors.json) with `mapping` (a `mapping init` file's object) as
    a new entry named `name` taking `files`: checked as the job checks it (a real jobId, a valid glob, unique
    names), so a list this returns is one `run` accepts."""
    if connectors is None:
        connectors = []
    if not isinstance(connectors, list):
        raise UsageError(f"{where}: must be a list of connector mappings")
    if not isinstance(mapping, dict):
        raise UsageError("the mapping: must be an object with jobId and scenarios")
    entry = {"name": name, "files": files, **{k: v for k, v in mapping.items() if k not in ("name", "files")}}
    updated = [*connectors, entry]
    load_connectors(json.dumps(updated), where)  # the job's own reader: every rule it applies, naming the entry
    return updated
