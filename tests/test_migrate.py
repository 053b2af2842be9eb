"""Moving from Microsoft's PowerShell sample: the files, mappings and habits it leaves behind work here.

Every test drives the real command line (`python -m uploader ...` in a subprocess).
"""

from __future__ import annotations

import json
from pathlib import Path

JOB = "e081f4f4-3831-48d6-a7bb-3fcfab158145"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def mapping_file(tmp_path: Path, obj: dict, name: str = "mapping.json") -> Path:
    return write(tmp_path / name, json.dumps(obj))


# --- scenario types and field names match case-insensitively -----------------------------------------


def test_mapping_types_and_fields_match_case_insensitively(tmp_path: Path, run_uploader) -> None:
    mapping = mapping_file(tmp_path, {"jobId": JOB, "scenarios": [{
        "type": "Resignation",
        "columns": {"UserPrincipalName": "EmailAddress", "RESIGNATIONDATE": "ResignationDate",
                    "lastworkingdate": "LastWorkingDate"}}]})
    good = write(tmp_path / "good.csv", "EmailAddress,ResignationDate,LastWorkingDate\n"
                 "zq1@contoso.com,2026-11-01T10:00,2026-12-15T17:00\n")
    ok = run_uploader("validate", good, "--mapping", mapping)
    assert ok.returncode == 0, ok.stderr
    # The catalogue's canonical spelling appears in messages, whatever case the mapping used.
    short = write(tmp_path / "short.csv", "EmailAddress,ResignationDate\nzq1@contoso.com,2026-11-01T10:00\n")
    bad = run_uploader("validate", short, "--mapping", mapping)
    assert bad.returncode == 3
    assert "resignation.lastWorkingDate" in bad.stderr


def test_a_field_mapped_twice_in_different_case_is_refused(tmp_path: Path, run_uploader) -> None:
    mapping = mapping_file(tmp_path, {"jobId": JOB, "scenarios": [{
        "type": "resignation",
        "columns": {"userPrincipalName": "EmailAddress", "UserPrincipalName": "UPN",
                    "resignationDate": "ResignationDate", "lastWorkingDate": "LastWorkingDate"}}]})
    csv = write(tmp_path / "a.csv", "EmailAddress,ResignationDate,LastWorkingDate\n")
    result = run_uploader("validate", csv, "--mapping", mapping)
    assert result.returncode == 2
    assert "columns.UserPrincipalName" in result.stderr and "second time" in result.stderr
