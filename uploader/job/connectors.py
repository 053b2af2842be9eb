"""The connector list of job mode, as the program hands it to the job (UPLOADER_CONNECTORS, JSON)."""

from __future__ import annotations

import json

from uploader.errors import UsageError
from uploader.model.mapping import ConnectorMapping, MappingError, parse_connectors

CONNECTORS_ENV = "UPLOADER_CONNECTORS"


def load_connectors(raw: str | None) -> tuple[ConnectorMapping, ...]:
    """UPLOADER_CONNECTORS: absent or empty means none configured yet; every connector needs a valid `files` glob."""
    from uploader.model.globs import glob_problem

    if raw is None or not raw.strip():
        return ()
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{CONNECTORS_ENV}: not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise UsageError(f"{CONNECTORS_ENV}: not a list of connector mappings (nested too deeply)") from None
    try:
        connectors = parse_connectors(obj, where=CONNECTORS_ENV)
    except MappingError as exc:
        raise UsageError(str(exc)) from None
    for i, connector in enumerate(connectors):
        if connector.files is None:
            raise UsageError(f"{CONNECTORS_ENV}[{i}].files: is required in job mode "
                             "(a glob relative to incoming/, e.g. \"departures/*.csv\")")
        if rule := glob_problem(connector.files):  # the same rules `provisioning check` applies to stack files
            raise UsageError(f"{CONNECTORS_ENV}[{i}].files: {rule}")
    return connectors
