"""The connector mapping model, shared by the CLI's `--mapping` file, the job's UPLOADER_CONNECTORS
and the Pulumi stack config (docs/mapping.md).

Parsing is strict: every problem raises MappingError naming the key path and the rule broken.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping as AnyMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uploader.model.scenarios import SCENARIOS, ScenarioType, lookup_scenario, scenario_names_hint

#: What `mapping init` writes as jobId until the Purview connector exists. A mapping file (`--mapping`) may still
#: hold it (or no jobId): validate and dry runs need no job ID; sending asks for one. Stack files and
#: UPLOADER_CONNECTORS, which the scheduled job sends with, always need the real GUID.
JOB_ID_PLACEHOLDER = "REPLACE-WITH-THE-CONNECTOR-JOB-ID-FROM-PURVIEW"
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

#: Job IDs that are examples, never a connector's: the all-zero GUID and every GUID this project's docs and
#: templates show as a job ID (tests/test_placeholders.py finds them and checks that each is listed here). A job
#: pointing at one of them deploys and then fails every upload, so `check`, `validate`, `upload`, `run`,
#: `doctor` and `mapping init` refuse them. (The example stacks in stacks/ and the mappings in uploader/examples/
#: are run by the tests and the demo against the sandbox, so they hold ordinary GUIDs.)
PLACEHOLDER_JOB_IDS = frozenset({
    "00000000-0000-0000-0000-000000000000",  # provisioning/templates/stack.yaml.tmpl
    "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",  # docs/configuration.md, mapping.md, operators-guide.md, doctor.md
})
#: Where Purview shows a connector's job ID: on the wizard's last page and on the connector's flyout
#: (https://learn.microsoft.com/purview/import-hr-data, step 3: "copy the job ID ... from this page or from the
#: connector flyout page").
JOB_ID_WHERE = ("the Purview portal shows the real one on the HR connector wizard's last page and on the "
                "connector's flyout (Data connectors > My connectors > your connector)")


def job_id_problem(job_id: str) -> str | None:
    """Why `job_id` cannot be a connector's job ID (not a GUID, or a known example), or None."""
    if not GUID_RE.match(job_id.strip()):
        return f"must be a GUID (the job ID of the connector: {JOB_ID_WHERE})"
    if job_id.strip().lower() in PLACEHOLDER_JOB_IDS:
        return f"is an example job ID from this project's docs or templates, not a connector's: {JOB_ID_WHERE}"
    return None


class MappingError(ValueError):
    """A mapping that breaks a rule; `key` is the path of the offending key."""

    def __init__(self, key: str, rule: str) -> None:
        super().__init__(f"{key}: {rule}")
        self.key = key
        self.rule = rule


#: What to do with a file whose rows break rules: refuse it whole (nothing sent; the default), or send its valid
#: rows and set the invalid ones aside (`quarantine`). docs/mapping.md, "Invalid rows".
INVALID_ROWS_MODES = ("refuse", "quarantine")
_CAP_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


@dataclass(frozen=True)
class RowCap:
    """maxInvalidRows: a count, or a percentage of the file's records, of invalid rows above which a file is refused
    whole even in quarantine mode (a broken export must not trickle in)."""

    count: int | None = None
    percent: float | None = None

    def limit(self, records: int) -> int:
        """The most rows that may be set aside from a file of `records` records."""
        if self.count is not None:
            return self.count
        return int(records * (self.percent or 0.0) / 100)

    def __str__(self) -> str:
        return str(self.count) if self.count is not None else f"{self.percent:g}%"

    def to_json(self) -> int | str:
        return self.count if self.count is not None else f"{self.percent:g}%"


#: The cap when none is given: more than half of a file's rows invalid is a broken export, not a few bad rows.
DEFAULT_ROW_CAP = RowCap(percent=50.0)


def parse_row_cap(value: Any, where: str) -> RowCap:
    """A whole number of rows (>= 0) or a percentage "P%" (0 < P <= 100); MappingError naming `where`."""
    rule = 'must be a number of rows (e.g. 100) or a percentage of the file\'s rows (e.g. "5%")'
    if isinstance(value, bool):
        raise MappingError(where, rule)
    if isinstance(value, int):
        if value < 0:
            raise MappingError(where, rule)
        return RowCap(count=value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return RowCap(count=int(text))
        found = _CAP_RE.match(text)
        if found and 0 < float(found.group(1)) <= 100:
            return RowCap(percent=float(found.group(1)))
    raise MappingError(where, rule)


@dataclass(frozen=True)
class ScenarioMapping:
    """One scenario of a connector: its type, its HRScenario value, and field → CSV column."""

    type: str
    value: str | None
    columns: dict[str, str]

    @property
    def spec(self) -> ScenarioType:
        return SCENARIOS[self.type]


@dataclass(frozen=True)
class ConnectorMapping:
    """One Purview HR connector: its job ID and how its CSV files map to scenarios."""

    job_id: str
    scenarios: tuple[ScenarioMapping, ...]
    name: str | None = None
    files: str | None = None
    scenario_column: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    invalid_rows: str | None = None  # refuse | quarantine (None: the command line's choice, else refuse)
    max_invalid_rows: RowCap | None = None

    @property
    def maps_employee_profile(self) -> bool:
        return any(s.type == "employeeProfile" for s in self.scenarios)

    def to_json(self) -> dict[str, Any]:
        """The mapping in its JSON shape (docs/mapping.md) (what UPLOADER_CONNECTORS carries)."""
        out: dict[str, Any] = {}
        if self.name is not None:
            out["name"] = self.name
        out["jobId"] = self.job_id
        if self.files is not None:
            out["files"] = self.files
        if self.scenario_column is not None:
            out["scenarioColumn"] = self.scenario_column
        out["scenarios"] = [
            {"type": s.type, **({"value": s.value} if s.value is not None else {}), "columns": dict(s.columns)}
            for s in self.scenarios
        ]
        if self.invalid_rows is not None:
            out["invalidRows"] = self.invalid_rows
        if self.max_invalid_rows is not None:
            out["maxInvalidRows"] = self.max_invalid_rows.to_json()
        return out


_CONNECTOR_KEYS = {"name", "jobId", "files", "scenarioColumn", "scenarios", "invalidRows", "maxInvalidRows"}
_SCENARIO_KEYS = {"type", "value", "columns"}


def _str(obj: AnyMapping[str, Any], key: str, where: str, required: bool) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise MappingError(f"{where}.{key}", "is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise MappingError(f"{where}.{key}", "must be a non-empty string")
    return value.strip()


def parse_scenario(obj: Any, where: str) -> ScenarioMapping:
    """Parse one entry of a connector's `scenarios` list."""
    if not isinstance(obj, AnyMapping):
        raise MappingError(where, "must be an object with type, value and columns")
    unknown = sorted(set(obj) - _SCENARIO_KEYS)
    if unknown:
        raise MappingError(f"{where}.{unknown[0]}", f"unknown key (expected {', '.join(sorted(_SCENARIO_KEYS))})")
    given_type = _str(obj, "type", where, required=True)
    assert given_type is not None
    spec = lookup_scenario(given_type)
    if spec is None:
        raise MappingError(f"{where}.type", f"unknown scenario type {given_type!r} (expected {scenario_names_hint()})")
    type_ = spec.type  # scenario types and field names match case-insensitively; the canonical spelling is kept
    fields_by_lower = {f.lower(): f for f in spec.field_names}
    value = _str(obj, "value", where, required=False)
    columns = obj.get("columns")
    if not isinstance(columns, AnyMapping) or not columns:
        raise MappingError(f"{where}.columns", "must be an object mapping the scenario's fields to CSV column names")
    parsed: dict[str, str] = {}
    for given, column in columns.items():
        name = fields_by_lower.get(str(given).lower())
        if name is None:
            raise MappingError(
                f"{where}.columns.{given}",
                f"{type_} has no field {given!r} (fields: {', '.join(spec.field_names)})",
            )
        if name in parsed:
            raise MappingError(f"{where}.columns.{given}",
                               f"maps {name} a second time (field names match case-insensitively)")
        if not isinstance(column, str) or not column.strip():
            raise MappingError(f"{where}.columns.{given}", "must be a non-empty CSV column name")
        parsed[name] = column.strip()
    for required in spec.required_fields:
        if required not in parsed:
            raise MappingError(f"{where}.columns.{required}", f"is required for {type_}")
    return ScenarioMapping(type_, value, parsed)


def parse_connector(obj: Any, where: str = "mapping", *, job_id_optional: bool = False) -> ConnectorMapping:
    """Parse one connector mapping object (docs/mapping.md).

    job_id_optional: a missing jobId, or mapping init's placeholder, gives job_id "" (a `--mapping` file before
    the connector exists: validate and dry runs need no job ID; `upload` asks for one before sending)."""
    if not isinstance(obj, AnyMapping):
        raise MappingError(where, "must be an object with jobId and scenarios")
    unknown = sorted(set(obj) - _CONNECTOR_KEYS)
    if unknown:
        raise MappingError(f"{where}.{unknown[0]}", f"unknown key (expected {', '.join(sorted(_CONNECTOR_KEYS))})")
    job_id = _str(obj, "jobId", where, required=not job_id_optional)
    if job_id_optional and (job_id is None or job_id == JOB_ID_PLACEHOLDER):
        job_id = ""
    elif job_id == JOB_ID_PLACEHOLDER:
        raise MappingError(f"{where}.jobId", "still holds the placeholder mapping init wrote: put the connector's "
                           "job ID there (Purview portal > Settings > Data connectors > My connectors > the "
                           "connector > Connector job ID)")
    assert job_id is not None
    if job_id and (rule := job_id_problem(job_id)) is not None:
        raise MappingError(f"{where}.jobId", rule)
    raw_scenarios = obj.get("scenarios")
    if not isinstance(raw_scenarios, list) or not raw_scenarios:
        raise MappingError(f"{where}.scenarios", "must be a non-empty list")
    scenarios = tuple(parse_scenario(s, f"{where}.scenarios[{i}]") for i, s in enumerate(raw_scenarios))
    scenario_column = _str(obj, "scenarioColumn", where, required=False)
    if len(scenarios) > 1:
        if scenario_column is None:
            raise MappingError(f"{where}.scenarioColumn", "is required when a connector maps more than one scenario")
        seen: dict[str, int] = {}
        for i, s in enumerate(scenarios):
            if s.value is None:
                raise MappingError(
                    f"{where}.scenarios[{i}].value", "is required when a connector maps more than one scenario"
                )
            if s.value.lower() in seen:
                raise MappingError(
                    f"{where}.scenarios[{i}].value",
                    f"duplicates scenarios[{seen[s.value.lower()]}].value (values match case-insensitively)",
                )
            seen[s.value.lower()] = i
    elif scenario_column is not None and scenarios[0].value is None:
        raise MappingError(f"{where}.scenarios[0].value", "is required when scenarioColumn is set")
    name = _str(obj, "name", where, required=False)
    files = _str(obj, "files", where, required=False)
    invalid_rows = _str(obj, "invalidRows", where, required=False)
    if invalid_rows is not None and invalid_rows.lower() not in INVALID_ROWS_MODES:
        raise MappingError(f"{where}.invalidRows", f"must be one of {', '.join(INVALID_ROWS_MODES)}")
    cap = obj.get("maxInvalidRows")
    max_invalid_rows = None if cap is None else parse_row_cap(cap, f"{where}.maxInvalidRows")
    return ConnectorMapping(job_id, scenarios, name=name, files=files, scenario_column=scenario_column,
                            invalid_rows=invalid_rows.lower() if invalid_rows else None,
                            max_invalid_rows=max_invalid_rows)


#: The most connectors one stack (and so one job's UPLOADER_CONNECTORS) may map. Each is a Purview HR connector
#: with its own job ID and `files` glob, and every glob is compared with every other (work that grows with the
#: square of the count): a tenant has one connector per HR export, a handful, a dozen or two at the most (there are
#: six scenario types, and one connector can carry several), so 100 is far above any real stack, and 100 connectors
#: with real globs are compared in well under a second.
MAX_CONNECTORS = 100
CONNECTORS_RULE = (f"at most {MAX_CONNECTORS} connectors per stack (every connector's glob is compared with every "
                   "other's, work that grows with the square of their number; a tenant has one connector per HR "
                   "export, a few dozen at the very most): split them across stacks")


def check_connector_count(obj: list[Any], where: str) -> None:
    """The connector bound, checked on the raw list before any connector is parsed or compared."""
    if len(obj) > MAX_CONNECTORS:
        raise MappingError(where, f"has {len(obj):,} connectors; {CONNECTORS_RULE}")


def parse_connectors(obj: Any, where: str = "connectors") -> tuple[ConnectorMapping, ...]:
    """Parse a list of connector mappings (stack config, UPLOADER_CONNECTORS). Names must be unique."""
    if obj is None:
        return ()
    if not isinstance(obj, list):
        raise MappingError(where, "must be a list of connector mappings")
    check_connector_count(obj, where)
    connectors = tuple(parse_connector(c, f"{where}[{i}]") for i, c in enumerate(obj))
    names: dict[str, int] = {}
    for i, c in enumerate(connectors):
        if c.name is not None:
            if c.name in names:
                raise MappingError(f"{where}[{i}].name", f"duplicates {where}[{names[c.name]}].name")
            names[c.name] = i
    return connectors


def load_mapping_file(path: str | Path) -> ConnectorMapping:
    """Read a `--mapping` JSON file (bounded: a regular file of at most 1 MiB); errors name the file and the key.
    Its jobId may be absent or mapping init's placeholder (job_id ""): checking files and planning need none."""
    from uploader.model.boundedio import MAPPING_LIMIT, FileReadError, read_file
    from uploader.model.safetext import safe_text

    try:
        data = read_file(path, limit=MAPPING_LIMIT)
    except FileReadError as exc:
        raise MappingError(exc.where or "the value", exc.reason) from None  # `--mapping: the value is not …`
    name = safe_text(path)
    try:
        obj = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise MappingError(f"{name}:{line}" if line else name, f"not valid JSON ({type(exc).__name__})") from None
    except RecursionError:
        raise MappingError(name, "not a connector mapping (JSON nested too deeply)") from None
    return parse_connector(obj, where=name, job_id_optional=True)
