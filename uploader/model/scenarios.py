"""The scenario catalogue: the HR connector's five data types and the fields each one maps.

One definition shared by CSV validation, the mapping model and the Pulumi program's config checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    """How a field's cells are checked."""

    UPN = "upn"  # one '@', no spaces
    DATE = "date"  # ISO 8601 date-time, real calendar date
    REMARKS = "remarks"  # at most 200 characters
    RATING = "rating"  # at most 25 characters
    TEXT = "text"  # free text


MAX_LENGTH = {Kind.REMARKS: 200, Kind.RATING: 25}


@dataclass(frozen=True)
class Field:
    """One field of a scenario: its name in the mapping, whether it is required, how it is checked."""

    name: str
    required: bool
    kind: Kind


@dataclass(frozen=True)
class ScenarioType:
    """One HR data type the connector understands."""

    type: str
    title: str  # the wording Microsoft's wizard uses, and the usual HRScenario value
    fields: tuple[Field, ...]

    @property
    def required_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)


def _f(name: str, kind: Kind = Kind.TEXT, required: bool = False) -> Field:
    return Field(name, required, kind)


_UPN = _f("userPrincipalName", Kind.UPN, required=True)
_EFFECTIVE = _f("effectiveDate", Kind.DATE, required=True)

SCENARIOS: dict[str, ScenarioType] = {
    s.type: s
    for s in (
        ScenarioType("resignation", "Resignation", (
            _UPN,
            _f("resignationDate", Kind.DATE, required=True),
            _f("lastWorkingDate", Kind.DATE, required=True),
        )),
        ScenarioType("jobLevelChange", "Job level change", (
            _UPN, _EFFECTIVE, _f("remarks", Kind.REMARKS), _f("oldLevel"), _f("newLevel"),
        )),
        ScenarioType("performanceReview", "Performance review", (
            _UPN, _EFFECTIVE, _f("remarks", Kind.REMARKS), _f("rating", Kind.RATING),
        )),
        ScenarioType("performanceImprovementPlan", "Performance improvement plan", (
            _UPN, _EFFECTIVE, _f("remarks", Kind.REMARKS), _f("rating", Kind.RATING),
        )),
        ScenarioType("employeeProfile", "Employee profile", (
            _UPN,
            _f("firstName", required=True),
            _f("lastName", required=True),
            _f("addressLine1", required=True),
            _f("addressLine2"),
            _f("city"),
            _f("state"),
            _f("zipCode", required=True),
            _f("country"),
            _f("department"),
            _f("employeeType"),
            _f("role"),
        )),
    )
}

#: Purview deletes employee profiles not refreshed for 30 days; Microsoft advises every 15–20.
PROFILE_REFRESH_DAYS = 15


# --- the names a scenario goes by (one table, accepted everywhere a scenario is named) -------------------
# `scenarios[].type` in mapping files, stack files and UPLOADER_CONNECTORS, and `mapping init --scenario`.
# Sources: "Set up a connector to import HR data", https://learn.microsoft.com/purview/import-hr-data (the list
# of data types: "Employee resignation", "Job level changes", "Performance reviews", "Performance improvement
# plans", "Employee profile"; the policy table: "Employee resignations"; the HRScenario values of the
# multi-scenario section: "Resignation", "Job level change", "Performance review", "Performance improvement
# plan", "Employee profile"), and the US Government page,
# https://learn.microsoft.com/purview/import-hr-data-us-government ("Employee resignation"). Each name in its
# singular and plural, and the camelCase key. Compared ignoring case and runs of spaces.
SCENARIO_NAMES: dict[str, tuple[str, ...]] = {
    "resignation": ("resignation", "Resignation", "Resignations", "Employee resignation",
                    "Employee resignations"),
    "jobLevelChange": ("jobLevelChange", "Job level change", "Job level changes"),
    "performanceReview": ("performanceReview", "Performance review", "Performance reviews"),
    "performanceImprovementPlan": ("performanceImprovementPlan", "Performance improvement plan",
                                   "Performance improvement plans"),
    "employeeProfile": ("employeeProfile", "Employee profile", "Employee profiles"),
}


def scenario_key(name: str) -> str:
    """How scenario names are compared: case ignored, surrounding spaces trimmed, inner runs of spaces as one."""
    return " ".join(name.split()).lower()


_BY_NAME: dict[str, str] = {scenario_key(n): t for t, names in SCENARIO_NAMES.items() for n in names}


def lookup_scenario(name: str) -> ScenarioType | None:
    """The scenario `name` stands for (its camelCase key or one of Microsoft's names, SCENARIO_NAMES), or None."""
    type_ = _BY_NAME.get(scenario_key(name))
    return SCENARIOS[type_] if type_ is not None else None


def scenario_names_hint() -> str:
    """For error messages: the keys, and where the other accepted names are listed."""
    return f"{', '.join(SCENARIOS)}, or Microsoft's names such as 'Job level changes' (docs/mapping.md)"


# --- the column names Microsoft documents (what `mapping init` recognises in a CSV header) ---------------
# Sources: "Set up a connector to import HR data", https://learn.microsoft.com/purview/import-hr-data (sample
# CSVs and column tables, current page: UserPrincipalName, ImprovementRemarks/PerformanceRating in the PIP
# sample, Employee* profile columns incl. the sample header's EmployeeAddLine1 and EmployeeDept), and its
# older version (EmailAddress columns, the HRScenario column of the multi-scenario sample), and the US Government
# page, https://learn.microsoft.com/purview/import-hr-data-us-government (TerminationDate). Each field's own
# name also matches. Matching ignores case, spaces, '_' and '-'.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "userPrincipalName": ("UserPrincipalName", "EmailAddress", "UPN", "Email"),
    "resignationDate": ("ResignationDate", "TerminationDate"),
    "lastWorkingDate": ("LastWorkingDate",),
    "effectiveDate": ("EffectiveDate",),
    "remarks": ("Remarks", "ImprovementRemarks"),
    "rating": ("Rating", "PerformanceRating"),
    "oldLevel": ("OldLevel",),
    "newLevel": ("NewLevel",),
    "firstName": ("EmployeeFirstName", "FirstName"),
    "lastName": ("EmployeeLastName", "LastName"),
    "addressLine1": ("EmployeeAddressLine1", "EmployeeAddLine1", "AddressLine1"),
    "addressLine2": ("EmployeeAddressLine2", "EmployeeAddLine2", "AddressLine2"),
    "city": ("EmployeeCity", "City"),
    "state": ("EmployeeState", "State"),
    "zipCode": ("EmployeeZipCode", "ZipCode"),
    "country": ("EmployeeCountry", "Country"),
    "department": ("EmployeeDepartment", "EmployeeDept", "Department"),
    "employeeType": ("EmployeeType",),
    "role": ("EmployeeRole", "Role"),
}
#: The column that tells a multi-scenario file's rows apart (Microsoft's samples: HRScenario).
SCENARIO_COLUMN_ALIASES = ("HRScenario", "HRScenarios", "Scenario")


def column_key(name: str) -> str:
    """How header names are compared with the aliases: case, spaces, '_' and '-' ignored."""
    return "".join(ch for ch in name.lower() if ch not in " _-\t")


def find_column(header: tuple[str, ...] | list[str], names: tuple[str, ...]) -> str | None:
    """The first header column matching one of `names` (in the order of `names`), as the header spells it."""
    keys: dict[str, str] = {}
    for column in header:
        keys.setdefault(column_key(column), column)
    for name in names:
        if column_key(name) in keys:
            return keys[column_key(name)]
    return None


def field_aliases(field: str) -> tuple[str, ...]:
    """The column names that map `field`: Microsoft's documented ones, then the field's own name."""
    return COLUMN_ALIASES.get(field, ()) + (field,)
