"""A battery of bad HR files through the real CLI: each ends in exit 3, nothing reaches the sandbox,
the message names the line and the rule, and no cell value appears in the output."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

RES = {"userPrincipalName": "EmailAddress", "resignationDate": "ResignationDate", "lastWorkingDate": "LastWorkingDate"}
REVIEW = {"userPrincipalName": "EmailAddress", "effectiveDate": "EffectiveDate", "remarks": "Remarks",
          "rating": "Rating"}
PROFILE = {"userPrincipalName": "UPN", "firstName": "First", "lastName": "Last", "addressLine1": "Street",
           "zipCode": "Zip"}
MULTI = [{"type": "resignation", "value": "Resignation", "columns": RES},
         {"type": "performanceReview", "value": "Performance review", "columns": REVIEW}]

H = "EmailAddress,ResignationDate,LastWorkingDate\n"
OK = "okzq1@contoso.com,2026-11-01T10:00,2026-12-15T17:00\n"
MH = "HRScenario,EmailAddress,ResignationDate,LastWorkingDate,EffectiveDate,Remarks,Rating\n"


@dataclass(frozen=True)
class Bad:
    name: str
    content: bytes
    line: int
    rule: str  # a piece of the rule text the message must carry
    secrets: tuple[str, ...] = ()  # cell values that must never be printed
    scenarios: tuple = ({"type": "resignation", "columns": RES},)
    scenario_column: str | None = None


def b(text: str) -> bytes:
    return text.encode()


CASES = [
    Bad("upn-no-at", b(H + OK + "zqalicecontoso.com,2026-11-01T10:00,2026-12-15T17:00\n"), 3, "user principal name",
        ("zqalicecontoso.com",)),
    Bad("upn-space", b(H + "zq bob@contoso.com,2026-11-01T10:00,2026-12-15T17:00\n"), 2, "user principal name",
        ("zq bob",)),
    Bad("upn-two-at", b(H + "zq@carol@contoso.com,2026-11-01T10:00,2026-12-15T17:00\n"), 2, "exactly one '@'",
        ("zq@carol",)),
    Bad("upn-empty", b(H + OK + ",2026-11-01T10:00,2026-12-15T17:00\n"), 3, "required, but empty"),
    Bad("date-dmy", b(H + "dzq@contoso.com,01/11/2026 10:00,2026-12-15T17:00\n"), 2, "ISO 8601", ("01/11/2026",)),
    Bad("date-no-time", b(H + "dzq@contoso.com,2026-11-01,2026-12-15T17:00\n"), 2, "ISO 8601"),
    Bad("date-feb-30", b(H + "dzq@contoso.com,2026-02-30T10:00,2026-12-15T17:00\n"), 2, "real calendar date",
        ("2026-02-30",)),
    Bad("date-feb-29-common-year", b(H + "dzq@contoso.com,2026-11-01T10:00,2027-02-29T17:00\n"), 2,
        "real calendar date"),
    Bad("date-hour-24", b(H + "dzq@contoso.com,2026-11-01T24:00,2026-12-15T17:00\n"), 2, "ISO 8601"),
    Bad("date-8-fraction-digits", b(H + "dzq@contoso.com,2026-11-01T10:00:00.12345678,2026-12-15T17:00\n"), 2,
        "ISO 8601"),
    Bad("date-bad-offset", b(H + "dzq@contoso.com,2026-11-01T10:00+5:30,2026-12-15T17:00\n"), 2, "ISO 8601"),
    Bad("remarks-too-long", b("EmailAddress,EffectiveDate,Remarks,Rating\n"
                              f"rzq@contoso.com,2026-11-01T10:00,{'zq' * 101},3\n"), 2, "longer than 200",
        ("zqzqzqzq",), ({"type": "performanceReview", "columns": REVIEW},)),
    Bad("rating-too-long", b("EmailAddress,EffectiveDate,Remarks,Rating\n"
                             "rzq@contoso.com,2026-11-01T10:00,fine,zq exceeds expectations by far\n"), 2,
        "longer than 25", ("exceeds expectations",), ({"type": "performanceReview", "columns": REVIEW},)),
    Bad("too-many-cells", b(H + OK + "xzq@contoso.com,2026-11-01T10:00,2026-12-15T17:00,zqextra\n"), 3,
        "has 4 cells; the header has 3", ("zqextra",)),
    Bad("too-few-cells", b(H + "xzq@contoso.com,2026-11-01T10:00\n" + OK), 2, "has 2 cells; the header has 3"),
    Bad("blank-line-inside", b(H + OK + "\n" + OK), 3, "blank line"),
    Bad("unterminated-quote", b(H + OK + '"zqopen@contoso.com,2026-11-01T10:00,2026-12-15T17:00\n' + OK), 3,
        "never closed"),
    Bad("stray-quote-in-quoted-field", b(H + '"zq"x@contoso.com,2026-11-01T10:00,2026-12-15T17:00\n'), 2,
        "quote inside a quoted field"),
    Bad("binary-nul", b"EmailAddress,ResignationDate,LastWorkingDate\n\x00\x01\x02zq\x00\n", 2, "NUL byte"),
    Bad("latin-1", H.encode() + "jos\u00e9zq@contoso.com,2026-11-01T10:00,2026-12-15T17:00\n".encode("latin-1"), 2,
        "not UTF-8"),
    Bad("utf-16", (H + OK).encode("utf-16"), 1, "UTF-8"),
    Bad("empty-file", b"", 1, "empty"),
    Bad("bom-only", b"\xef\xbb\xbf", 1, "empty"),
    Bad("first-line-blank", b("\n" + H + OK), 1, "header row"),
    Bad("missing-mapped-column", b("EmailAddress,ResignationDate\nmzq@contoso.com,2026-11-01T10:00\n"), 1,
        "not in the header"),
    Bad("duplicate-header", b("EmailAddress,ResignationDate,LastWorkingDate,emailaddress\n"
                              "dup@contoso.com,2026-11-01T10:00,2026-12-15T17:00,x\n"), 1, "duplicate column name"),
    Bad("empty-header-cell", b("EmailAddress,ResignationDate,LastWorkingDate,\n"
                               "e@contoso.com,2026-11-01T10:00,2026-12-15T17:00,\n"), 1, "header cell 4 is empty"),
    Bad("bare-cr-line-ends", b(H.replace("\n", "\r") + OK.replace("\n", "\r") * 2), 1, "carriage return"),
    Bad("unknown-scenario-value", b(MH + "Resignation,a@contoso.com,2026-11-01T10:00,2026-12-15T17:00,,,\n"
                                    "Zqpromotion,b@contoso.com,,,2026-11-01T10:00,,\n"), 3,
        "not one of the mapped scenario values", ("Zqpromotion",), tuple(MULTI), "HRScenario"),
    Bad("scenario-column-missing", b(H + OK), 1, "scenarioColumn is not in the header", (), tuple(MULTI),
        "HRScenario"),
    Bad("row-needs-absent-column", b("HRScenario,EmailAddress,ResignationDate,LastWorkingDate\n"
                                     "Resignation,a@contoso.com,2026-11-01T10:00,2026-12-15T17:00\n"
                                     "Performance review,b@contoso.com,2026-11-01T10:00,\n"), 3,
        "required for performanceReview rows", (), tuple(MULTI), "HRScenario"),
    Bad("profile-missing-zip", b("UPN,First,Last,Street,Zip\n"
                                 "p@contoso.com,Zqfirst,Zqlast,1 Zq Road,\n"), 2, "required, but empty",
        ("Zqfirst", "Zqlast", "1 Zq Road"), ({"type": "employeeProfile", "columns": PROFILE},)),
]


def mapping_file(tmp_path: Path, case: Bad, job_id: str) -> Path:
    obj: dict = {"jobId": job_id, "scenarios": list(case.scenarios)}
    if case.scenario_column:
        obj["scenarioColumn"] = case.scenario_column
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(obj))
    return path


def assert_reported(output: str, path: Path, case: Bad) -> None:
    assert f"{path}:{case.line}:" in output, f"{case.name}: no message naming line {case.line}"
    assert case.rule in output, f"{case.name}: the rule is not named"
    for secret in case.secrets:
        assert secret not in output, f"{case.name}: a cell value was printed"
    assert "zq" not in output.lower(), f"{case.name}: cell data printed"  # cells marked "zq" stand for personal data


def test_battery_is_big_enough() -> None:
    assert len(CASES) >= 25 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.e2e
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_file_is_refused_and_nothing_is_sent(case: Bad, tmp_path: Path, sandbox, new_app, run_uploader) -> None:
    app = new_app()
    path = tmp_path / f"{case.name}.csv"
    path.write_bytes(case.content)
    mapping = mapping_file(tmp_path, case, app.job_id)
    result = run_uploader("upload", path, *app.flags, "--mapping", mapping, "--state-dir", tmp_path / "state")
    output = result.stdout + result.stderr
    assert result.returncode == 3, f"{case.name}: exit {result.returncode}"
    assert_reported(output, path, case)
    assert sandbox.job_stats(app.job_id).get("uploads", 0) == 0, f"{case.name}: something was sent"
    assert sandbox.stats()["tokens_issued"] == 0, f"{case.name}: signed in although nothing was to be sent"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_validate_reports_the_same(case: Bad, tmp_path: Path, run_uploader) -> None:
    path = tmp_path / f"{case.name}.csv"
    path.write_bytes(case.content)
    mapping = mapping_file(tmp_path, case, "e081f4f4-3831-48d6-a7bb-3fcfab158145")
    result = run_uploader("validate", path, "--mapping", mapping)
    assert result.returncode == 3
    assert_reported(result.stdout + result.stderr, path, case)
