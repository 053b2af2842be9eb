"""Moving from Microsoft's PowerShell sample: the files, mappings and habits it leaves behind work here.

Every test drives the real command line (`python -m uploader ...` in a subprocess).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stack_examples import EXAMPLES

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


# --- Windows PowerShell's Export-Csv #TYPE line ------------------------------------------------------

RES_MAPPING = {"jobId": JOB, "scenarios": [{"type": "resignation", "columns": {
    "userPrincipalName": "EmailAddress", "resignationDate": "ResignationDate", "lastWorkingDate": "LastWorkingDate"}}]}


def test_powershell_type_line_is_one_clear_error(tmp_path: Path, run_uploader) -> None:
    exported = write(tmp_path / "export.csv", "#TYPE System.Management.Automation.PSCustomObject\n"
                     '"EmailAddress","ResignationDate","LastWorkingDate"\n'
                     '"zqtype@contoso.com","2026-11-01T10:00","2026-12-15T17:00"\n')
    mapping = mapping_file(tmp_path, RES_MAPPING)
    for args in (("validate", exported, "--mapping", mapping),
                 ("upload", exported, "--mapping", mapping, "--job-id", JOB, "--dry-run",
                  "--state-dir", tmp_path / "state")):
        result = run_uploader(*args)
        assert result.returncode == 3, result.stderr
        out = result.stdout + result.stderr
        assert f"{exported}:1:" in out and "-NoTypeInformation" in out
        assert out.count(f"{exported}:1:") == 1  # one error, not one per line
        assert "zqtype" not in out


# --- Microsoft's multi-scenario sample: rows shorter than the header ----------------------------------

# Microsoft Learn's sample, verbatim ("Configuring a single CSV file for multiple HR data types",
# https://learn.microsoft.com/purview/import-hr-data). Several rows have 8 cells under a 9-cell header.
MS_SAMPLE_HEADER = ("HRScenario,EmailAddress,ResignationDate,LastWorkingDate,EffectiveDate,Remarks,Rating,"
                    "OldLevel,NewLevel\n")
MS_SAMPLE_ROWS = [
    "Resignation,sarad@contoso.com,2019-04-23T15:18:02.4675041+05:30,2019-04-29T15:18:02.4675041+05:30,,,,\n",
    "Resignation,pilarp@contoso.com,2019-04-24T09:15:49Z,2019-04-29T15:18:02.7117540,,,,\n",
    "Job level change,sarad@contoso.com,2019-04-23T15:18:02.4675041+05:30,,,,,"
    "Level 61 Sr. Manager, Level 60 Manager\n",
    "Job level change,pillarp@contoso.com,2019-04-23T15:18:02.4675041+05:30,,,,,"
    "Level 62 Director,Level 60 Sr Manager\n",
    "Performance review,sarad@contoso.com,,,2019-04-23T15:18:02.4675041+05:30,Met expectation but bad attitude,"
    "2 Below expectations,,\n",
    "Performance review,pillarp@contoso.com,,,2019-04-23T15:18:02.4675041+05:30, Multiple conflicts with the team,,\n",
    "Performance improvement plan,sarad@contoso.com,,,2019-04-23T15:18:02.4675041+05:30,"
    "Met expectations but bad attitude,2 Below expectations,,\n",
    "Performance improvement plan,pillarp@contoso.com,,,2019-04-23T15:18:02.4675041+05:30,"
    "Multiple conflicts with the team,,\n",
]
UPN = {"userPrincipalName": "EmailAddress"}
MS_MAPPING = {"jobId": JOB, "scenarioColumn": "HRScenario", "scenarios": [
    {"type": "resignation", "value": "Resignation",
     "columns": {**UPN, "resignationDate": "ResignationDate", "lastWorkingDate": "LastWorkingDate"}},
    {"type": "jobLevelChange", "value": "Job level change",
     "columns": {**UPN, "effectiveDate": "EffectiveDate", "oldLevel": "OldLevel", "newLevel": "NewLevel"}},
    {"type": "performanceReview", "value": "Performance review",
     "columns": {**UPN, "effectiveDate": "EffectiveDate", "remarks": "Remarks", "rating": "Rating"}},
    {"type": "performanceImprovementPlan", "value": "Performance improvement plan",
     "columns": {**UPN, "effectiveDate": "EffectiveDate", "remarks": "Remarks", "rating": "Rating"}},
]}


def test_microsofts_multi_scenario_sample_short_rows_are_accepted(tmp_path: Path, run_uploader) -> None:
    mapping = mapping_file(tmp_path, MS_MAPPING)
    sample = write(tmp_path / "sample.csv", MS_SAMPLE_HEADER + "".join(MS_SAMPLE_ROWS))
    result = run_uploader("validate", sample, "--mapping", mapping)
    # Short rows are no longer errors. What is left is the sample's own slip: its job-level-change rows put
    # the effective date under ResignationDate, so their EffectiveDate is empty (lines 4 and 5 only), and the
    # error says where the date is (column names only; issue 16 C).
    assert result.returncode == 3
    lines = [x for x in result.stderr.splitlines() if x.startswith(f"{sample}:") and x[len(str(sample)) + 1].isdigit()]
    hint = "EffectiveDate is empty; ResignationDate holds a date on this row"
    assert lines == [f"{sample}:4: column EffectiveDate: {hint}",
                     f"{sample}:5: column EffectiveDate: {hint}"], result.stderr
    assert "cells; the header has" not in result.stderr

    # With the date in the EffectiveDate column, the sample is valid: one warning counts the short rows.
    fixed_rows = [r.replace("+05:30,,,,,Level", "+05:30,,,Level").replace(
        "change,sarad@contoso.com,2019", "change,sarad@contoso.com,,,2019").replace(
        "change,pillarp@contoso.com,2019", "change,pillarp@contoso.com,,,2019") for r in MS_SAMPLE_ROWS]
    fixed = write(tmp_path / "fixed.csv", MS_SAMPLE_HEADER + "".join(fixed_rows))
    result = run_uploader("validate", fixed, "--mapping", mapping)
    assert result.returncode == 0, result.stderr
    short = [x for x in result.stderr.splitlines() if "fewer cells than the header" in x]
    assert short == [f"warning: {fixed}:2: 4 records have fewer cells than the header (9); "
                     "the missing trailing cells are treated as empty"]
    assert "Met expectation" not in result.stdout + result.stderr


def test_short_row_missing_a_required_cell_and_long_rows_stay_errors(tmp_path: Path, run_uploader) -> None:
    mapping = mapping_file(tmp_path, MS_MAPPING)
    rows = ("Resignation,zq1@contoso.com,2026-11-01T10:00\n"  # lastWorkingDate (required) is missing
            "Performance review,zq2@contoso.com,,,2026-11-01T10:00\n"  # only optional cells missing
            "Performance review,zq3@contoso.com,,,2026-11-01T10:00,,,,,zqextra\n")  # one cell too many
    f = write(tmp_path / "rows.csv", MS_SAMPLE_HEADER + rows)
    result = run_uploader("validate", f, "--mapping", mapping)
    assert result.returncode == 3
    assert (f"{f}:2: has 3 cells; the header has 9, and the missing cells include LastWorkingDate, "
            "required for resignation rows") in result.stderr
    assert f"{f}:4: has 10 cells; the header has 9" in result.stderr
    assert f"{f}:3:" not in result.stderr.replace(f"{f}:3: 1 record", "")
    assert "zqextra" not in result.stderr


def test_short_rows_in_a_large_file_take_the_fast_path_and_are_sent_as_they_are(
        tmp_path: Path, run_uploader, new_app, sandbox) -> None:
    app = new_app()
    mapping = mapping_file(tmp_path, {**MS_MAPPING, "jobId": app.job_id})
    n = 30_000  # over 1 MiB: several blocks, each with short rows
    body = "".join(f"Performance review,zq{i}@contoso.com,,,2026-11-01T10:00,ok,3\n" if i % 3 else
                   f"Resignation,zq{i}@contoso.com,2026-11-01T10:00,2026-12-15T17:00,,,,,\n" for i in range(n))
    f = write(tmp_path / "big.csv", MS_SAMPLE_HEADER + body)
    short = sum(1 for i in range(n) if i % 3)
    checked = run_uploader("validate", f, "--mapping", mapping)
    assert checked.returncode == 0, checked.stderr
    assert (f"{f}:3: {short} records have fewer cells than the header (9); "
            "the missing trailing cells are treated as empty") in checked.stderr
    sent = run_uploader("upload", f, "--mapping", mapping, *app.flags, "--state-dir", tmp_path / "state")
    assert sent.returncode == 0, sent.stderr
    received = b"".join(part.split(b"\n", 1)[1] for part in sandbox.received(app.job_id))
    assert received == body.encode()


# --- a mapped optional column the header lacks --------------------------------------------------------


def test_a_mapped_optional_column_missing_from_the_header_is_a_warning(tmp_path: Path, run_uploader) -> None:
    mapping = mapping_file(tmp_path, {"jobId": JOB, "scenarios": [{"type": "performanceReview", "columns": {
        **UPN, "effectiveDate": "EffectiveDate", "remarks": "Remarks", "rating": "Rating"}}]})
    f = write(tmp_path / "review.csv", "EmailAddress,EffectiveDate,Remarks\nzq@contoso.com,2026-11-01T10:00,ok\n")
    result = run_uploader("validate", f, "--mapping", mapping)
    assert result.returncode == 0, result.stderr
    assert (f"warning: {f}:1: column Rating: not in the header; the mapping names it for "
            "performanceReview.rating (optional), so that field is absent from this file") in result.stderr
    # A file that carries no rows of a scenario (its required columns are absent) hears nothing about it.
    multi = mapping_file(tmp_path, MS_MAPPING, "multi.json")
    g = write(tmp_path / "res.csv", "HRScenario,EmailAddress,ResignationDate,LastWorkingDate\n"
              "Resignation,zq@contoso.com,2026-11-01T10:00,2026-12-15T17:00\n")
    result = run_uploader("validate", g, "--mapping", multi)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr


# --- a dry run needs no tenant, app, certificate or job ID ----------------------------------------------


def test_dry_run_needs_no_tenant_app_certificate_or_job_id(tmp_path: Path, run_uploader) -> None:
    f = write(tmp_path / "res.csv", "EmailAddress,ResignationDate,LastWorkingDate\n"
              "zq@contoso.com,2026-11-01T10:00,2026-12-15T17:00\n")
    state = tmp_path / "state"
    bare = run_uploader("upload", f, "--dry-run", "--state-dir", state)
    assert bare.returncode == 0, bare.stderr
    assert "would send 1 record in 1 chunk" in bare.stdout and "to job (none given)" in bare.stdout
    mapped = run_uploader("upload", f, "--dry-run", "--state-dir", state,
                          "--mapping", mapping_file(tmp_path, RES_MAPPING))
    assert mapped.returncode == 0, mapped.stderr
    assert f"to job {JOB}" in mapped.stdout  # the mapping's jobId
    # Sending still needs each of them, named with its environment twin (exit 2, before anything is read).
    real = run_uploader("upload", f, "--state-dir", state)
    assert real.returncode == 2
    assert "--tenant-id (or UPLOADER_TENANT_ID) is required to send" in real.stderr


# --- a TLS trust failure names the CA bundle variables ------------------------------------------------


def test_untrusted_authority_names_the_ca_bundle_variables(tmp_path: Path, run_uploader, new_app, sandbox) -> None:
    import certifi  # a real CA bundle that does not hold the sandbox's CA

    app = new_app()
    f = write(tmp_path / "res.csv", "EmailAddress,ResignationDate,LastWorkingDate\n"
              "zq@contoso.com,2026-11-01T10:00,2026-12-15T17:00\n")
    # SSL_CERT_FILE names the sandbox's CA, yet the sign-in is refused: requests reads REQUESTS_CA_BUNDLE (else
    # CURL_CA_BUNDLE, else certifi), never SSL_CERT_FILE, so the hint and the docs must not offer it as the fix.
    env = {**sandbox.env, "REQUESTS_CA_BUNDLE": certifi.where(), "SSL_CERT_FILE": str(sandbox.ca_file),
           "CURL_CA_BUNDLE": certifi.where()}
    result = run_uploader("upload", f, *app.flags, "--state-dir", tmp_path / "state", env=env)
    assert result.returncode == 1, result.stderr
    assert "sign-in authority" in result.stderr
    assert "REQUESTS_CA_BUNDLE at a PEM file" in result.stderr and "(or SSL_CERT_FILE)" not in result.stderr
    assert sandbox.received(app.job_id) == []


def test_untrusted_ingestion_endpoint_names_the_ca_bundle_variables(
        tmp_path: Path, run_uploader, new_app, make_certificate) -> None:
    import http.server
    import ssl
    import threading

    # A loopback HTTPS server whose self-signed certificate no CA bundle vouches for.
    server_cert = make_certificate("untrusted.invalid")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_cert.path)
    httpd = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        app = new_app()
        flags = list(app.flags)
        flags[flags.index("--ingestion-url") + 1] = f"https://127.0.0.1:{httpd.server_address[1]}"
        f = write(tmp_path / "res.csv", "EmailAddress,ResignationDate,LastWorkingDate\n"
                  "zq@contoso.com,2026-11-01T10:00,2026-12-15T17:00\n")
        result = run_uploader("upload", f, *flags, "--state-dir", tmp_path / "state")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result.returncode == 1, result.stderr
    assert "TLS error talking to" in result.stderr
    assert "REQUESTS_CA_BUNDLE at a PEM file" in result.stderr and "(or SSL_CERT_FILE)" not in result.stderr


# --- --stack NAME --connector NAME: the mapping the job uses ---------------------------------------------

REPO = Path(__file__).resolve().parent.parent
RES_HEADER = "EmailAddress,ResignationDate,LastWorkingDate\n"
RES_ROW = "zq@contoso.com,2026-11-01T10:00,2026-12-15T17:00\n"
EXAMPLE = ["--stack", "contoso-commercial", "--stacks-dir", str(EXAMPLES)]  # an example stack (examples/stacks/)


def stack_file(folder: Path, name: str, connectors: list[dict]) -> Path:
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    doc = {"config": {"hr-connector:tenantId": "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
                      "hr-connector:location": "westeurope", "hr-connector:connectors": connectors}}
    class NoAliases(yaml.SafeDumper):  # stack files may not hold aliases: write shared values out
        def ignore_aliases(self, data: object) -> bool:
            return True

    return write(folder / f"Pulumi.{name}.yaml", yaml.dump(doc, Dumper=NoAliases, sort_keys=False))


def test_validate_with_a_repository_stack_uses_its_connector_mapping(tmp_path: Path, run_uploader) -> None:
    f = write(tmp_path / "departures.csv", RES_HEADER + RES_ROW)
    ok = run_uploader("validate", f, *EXAMPLE, "--connector", "departures")
    assert ok.returncode == 0, ok.stderr
    # The performance connector wants HRScenario/UPN columns: the same file is wrong for it.
    wrong = run_uploader("validate", f, *EXAMPLE, "--connector", "performance")
    assert wrong.returncode == 3 and "HRScenario" in wrong.stderr
    plan = run_uploader("upload", f, "--dry-run", "--state-dir", tmp_path / "s",
                        *EXAMPLE, "--connector", "departures")
    assert plan.returncode == 0, plan.stderr
    assert "to job e081f4f4-3831-48d6-a7bb-3fcfab158145" in plan.stdout  # the stack's jobId


def test_stack_option_errors_name_the_file_and_the_rule(tmp_path: Path, run_uploader) -> None:
    f = write(tmp_path / "a.csv", RES_HEADER + RES_ROW)
    stacks = tmp_path / "stacks"
    stack_file(stacks, "two", [{"name": "a", **RES_MAPPING}, {"name": "b", **{**RES_MAPPING, "jobId": JOB[:-1] + "0"}}])
    stack_file(stacks, "broken", [{"name": "a", "jobId": JOB, "scenarios": [{"type": "resignation", "columns": {
        "userPrincipalName": "EmailAddress", "resignationDate": "R", "lastWorkingDate": "L", "salary": "S"}}]}])
    stack_file(stacks, "empty", [])
    cases = [
        (["--stack", "two"], "has 2 connectors: name one with --connector (a, b)"),
        (["--stack", "two", "--connector", "c"], "--connector 'c': not in"),
        (["--stack", "nosuch"], f"no file {stacks}/Pulumi.nosuch.yaml (stacks there: broken, empty, two"),
        (["--stack", "../etc"], "Pulumi's rule"),
        (["--stack", "broken"], "hr-connector:connectors[0].scenarios[0].columns.salary: resignation has no field"),
        (["--stack", "empty"], "hr-connector:connectors is empty"),
        (["--stack", "two", "--connector", "a", "--mapping", "m.json"], "not both"),
        (["--connector", "a"], "--connector needs --stack"),
        ([], "a mapping is required"),
    ]
    for extra, text in cases:
        result = run_uploader("validate", f, "--stacks-dir", stacks, *extra)
        assert result.returncode == 2, (extra, result.stderr)
        assert text in result.stderr, (extra, result.stderr)
    ok = run_uploader("validate", f, "--stacks-dir", stacks, "--stack", "two", "--connector", "b")
    assert ok.returncode == 0, ok.stderr


def test_stack_option_reads_stack_files_as_check_does(tmp_path: Path, run_uploader) -> None:
    """The uploader's --stack uses the same stack-file reader as `provisioning check`: no alias bomb, no
    silently ignored duplicate key."""
    f = write(tmp_path / "a.csv", RES_HEADER + RES_ROW)
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    write(stacks / "Pulumi.bomb.yaml", "\n".join(levels) + "\nconfig: {hr-connector:connectors: *i}\n")
    write(stacks / "Pulumi.twice.yaml", "config:\n  hr-connector:connectors: []\n  hr-connector:connectors: []\n")
    bomb = run_uploader("validate", f, "--stacks-dir", stacks, "--stack", "bomb", timeout=30)
    assert bomb.returncode == 2 and "YAML alias *a is not allowed" in bomb.stderr, bomb.stderr
    twice = run_uploader("validate", f, "--stacks-dir", stacks, "--stack", "twice")
    assert twice.returncode == 2 and "hr-connector:connectors: is given twice" in twice.stderr, twice.stderr


def test_stack_option_without_pyyaml_says_how_to_get_it(tmp_path: Path, run_uploader) -> None:
    from uploader.sandbox.client import clean_environ

    # Stand-in for an environment without PyYAML: a `yaml` module that cannot be imported.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    write(shadow / "yaml.py", "raise ModuleNotFoundError(\"No module named 'yaml'\", name='yaml')\n")
    env = {**clean_environ(), "PYTHONPATH": str(shadow)}
    f = write(tmp_path / "a.csv", RES_HEADER + RES_ROW)
    result = run_uploader("validate", f, *EXAMPLE, "--connector", "departures", env=env)
    assert result.returncode == 2, result.stderr
    assert "--stack needs PyYAML" in result.stderr and "Traceback" not in result.stderr
    # --mapping never needs it.
    plain = run_uploader("validate", f, "--mapping", mapping_file(tmp_path, RES_MAPPING), env=env)
    assert plain.returncode == 0, plain.stderr


def test_upload_with_a_stack_sends_to_the_stacks_job(tmp_path: Path, run_uploader, new_app, sandbox) -> None:
    app = new_app()
    stacks = tmp_path / "stacks"
    stack_file(stacks, "tenant", [{"name": "departures", **{**RES_MAPPING, "jobId": app.job_id}}])
    flags = list(app.flags)
    del flags[flags.index("--job-id"):flags.index("--job-id") + 2]  # the job ID comes from the stack file
    f = write(tmp_path / "a.csv", RES_HEADER + RES_ROW)
    result = run_uploader("upload", f, *flags, "--state-dir", tmp_path / "s", "--stacks-dir", stacks,
                          "--stack", "tenant", "--connector", "departures")
    assert result.returncode == 0, result.stderr
    assert b"".join(sandbox.received(app.job_id)) == (RES_HEADER + RES_ROW).encode()


# --- mapping init: a mapping from a CSV header ----------------------------------------------------------

SENTINEL = "zqsentinel"  # in records only: must never be printed


def init(run_uploader, *args):  # noqa: ANN001, ANN201
    return run_uploader("mapping", "init", *args)


def with_job(text: str, job: str = JOB) -> str:
    return text.replace("REPLACE-WITH-THE-CONNECTOR-JOB-ID-FROM-PURVIEW", job)


def test_mapping_init_resignation_from_microsofts_older_header(tmp_path: Path, run_uploader) -> None:
    f = write(tmp_path / "export.csv", RES_HEADER + f"{SENTINEL}@contoso.com,2026-11-01T10:00,2026-12-15T17:00\n")
    result = init(run_uploader, f, "--scenario", "resignation")
    assert result.returncode == 0, result.stderr
    mapping = json.loads(result.stdout)
    assert mapping == {"jobId": "REPLACE-WITH-THE-CONNECTOR-JOB-ID-FROM-PURVIEW", "scenarios": [
        {"type": "resignation", "columns": {"userPrincipalName": "EmailAddress", "resignationDate": "ResignationDate",
                                            "lastWorkingDate": "LastWorkingDate"}}]}
    assert "replace REPLACE-WITH-THE-CONNECTOR-JOB-ID-FROM-PURVIEW with the connector's job ID" in result.stderr
    assert "unmapped columns: none" in result.stderr
    assert SENTINEL not in result.stdout + result.stderr
    # Unedited, the placeholder still validates (checking needs no job ID: issue 16 B8) but cannot send;
    # with the job ID in, the file validates against it.
    raw = write(tmp_path / "raw.json", result.stdout)
    assert run_uploader("validate", f, "--mapping", raw).returncode == 0
    refused = run_uploader("upload", f, "--mapping", raw, "--tenant-id", JOB, "--app-id", JOB,
                           "--state-dir", tmp_path / "s")
    assert refused.returncode == 2 and "the mapping's jobId is not set yet" in refused.stderr
    edited = write(tmp_path / "m.json", with_job(result.stdout))
    checked = run_uploader("validate", f, "--mapping", edited)
    assert checked.returncode == 0, checked.stderr


def test_mapping_init_employee_profile_from_microsofts_current_sample(tmp_path: Path, run_uploader) -> None:
    # The current Learn page's sample header (EmployeeAddLine1, EmployeeDept: the sample's own spellings).
    header = ("UserPrincipalName,UserName,EmployeeFirstName,EmployeeLastName,EmployeeAddLine1,EmployeeAddLine2,"
              "EmployeeCity,EmployeeState,EmployeeZipCode,EmployeeDept,EmployeeType,EmployeeRole\n")
    f = write(tmp_path / "profile.csv", header)
    result = init(run_uploader, f, "--scenario", "Employee profile", "--job-id", JOB)
    assert result.returncode == 0, result.stderr
    mapping = json.loads(result.stdout)
    assert mapping["jobId"] == JOB and "replace" not in result.stderr
    assert mapping["scenarios"][0]["columns"] == {
        "userPrincipalName": "UserPrincipalName", "firstName": "EmployeeFirstName", "lastName": "EmployeeLastName",
        "addressLine1": "EmployeeAddLine1", "addressLine2": "EmployeeAddLine2", "city": "EmployeeCity",
        "state": "EmployeeState", "zipCode": "EmployeeZipCode", "department": "EmployeeDept",
        "employeeType": "EmployeeType", "role": "EmployeeRole"}
    assert "unmapped columns: UserName" in result.stderr
    assert "optional fields without a column (left out): employeeProfile.country" in result.stderr


def test_mapping_init_several_scenarios_to_a_new_file_never_overwritten(tmp_path: Path, run_uploader) -> None:
    sample = write(tmp_path / "sample.csv", MS_SAMPLE_HEADER.lower() + "".join(MS_SAMPLE_ROWS))
    out = tmp_path / "multi.json"
    args = [sample, "--scenario", "resignation", "--scenario", "JobLevelChange", "--scenario", "performance review",
            "--scenario", "performanceImprovementPlan", "--output", out]
    result = init(run_uploader, *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    mapping = json.loads(out.read_text())
    assert mapping["scenarioColumn"] == "hrscenario"  # found by its documented name, spelled as the header does
    assert [(s["type"], s["value"]) for s in mapping["scenarios"]] == [
        ("resignation", "Resignation"), ("jobLevelChange", "Job level change"),
        ("performanceReview", "Performance review"), ("performanceImprovementPlan", "Performance improvement plan")]
    assert mapping["scenarios"][1]["columns"] == {"userPrincipalName": "emailaddress",
                                                  "effectiveDate": "effectivedate", "remarks": "remarks",
                                                  "oldLevel": "oldlevel", "newLevel": "newlevel"}
    assert "contoso" not in result.stderr and "Met expectation" not in result.stderr
    before = out.read_bytes()
    again = init(run_uploader, *args)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert out.read_bytes() == before
    # The generated mapping (job ID filled in) is one validate accepts: only the sample's own slip remains.
    edited = write(tmp_path / "edited.json", with_job(out.read_text()))
    checked = run_uploader("validate", sample, "--mapping", edited)
    assert checked.returncode == 3
    assert "cells; the header has" not in checked.stderr
    hint = "effectivedate is empty; resignationdate holds a date on this row"
    assert f":4: column effectivedate: {hint}" in checked.stderr


def test_mapping_init_reports_missing_required_fields_and_refuses_bad_input(tmp_path: Path, run_uploader) -> None:
    f = write(tmp_path / "partial.csv", "Work Email,resignation_date,Department\n"
              f"{SENTINEL}@contoso.com,2026-11-01T10:00,Sales\n")
    result = init(run_uploader, f, "--scenario", "resignation")
    assert result.returncode == 0, result.stderr
    columns = json.loads(result.stdout)["scenarios"][0]["columns"]
    assert columns["resignationDate"] == "resignation_date"  # case, '_' and spaces are ignored
    assert "missing required fields: resignation.userPrincipalName, resignation.lastWorkingDate" in result.stderr
    assert "unmapped columns: Work Email, Department" in result.stderr
    assert SENTINEL not in result.stdout + result.stderr

    headerless = write(tmp_path / "noheader.csv", f"{SENTINEL}@contoso.com,2026-11-01T10:00,2026-12-15T17:00\n")
    ps = write(tmp_path / "ps.csv", '#TYPE System.Management.Automation.PSCustomObject\n"EmailAddress"\n')
    cases = [
        ([headerless, "--scenario", "resignation"], 3, f"{headerless}:1: looks like a record"),
        ([ps, "--scenario", "resignation"], 3, f"{ps}:1: the first line is PowerShell's #TYPE line"),
        ([f, "--scenario", "resignation", "--scenario", "performanceReview"], 2, "need --scenario-column COL"),
        ([f, "--scenario", "termination"], 2, "--scenario 'termination': unknown"),
        ([f, "--scenario", "resignation", "--scenario-column", "Kind"], 2, "--scenario-column Kind: not in"),
        ([f, "--scenario", "resignation", "--job-id", "nope"], 2, "--job-id: must be a GUID"),
    ]
    for args, code, text in cases:
        bad = init(run_uploader, *args)
        assert bad.returncode == code, (args, bad.stderr)
        assert text in bad.stderr, (args, bad.stderr)
        assert SENTINEL not in bad.stdout + bad.stderr


def test_alias_table_names_only_catalogue_fields() -> None:
    from uploader.model.scenarios import COLUMN_ALIASES, SCENARIOS

    fields = {f for s in SCENARIOS.values() for f in s.field_names}
    assert set(COLUMN_ALIASES) == fields


# --- certificates: cert new / cert show / PFX files ---------------------------------------------------


def _pfx(cert_pem: str, password: bytes | None) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    key = serialization.load_pem_private_key(cert_pem.encode(), password=None)
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    algorithm = (serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption())
    return pkcs12.serialize_key_and_certificates(b"hr", key, cert, None, algorithm)  # type: ignore[arg-type]


@pytest.mark.posix
def test_cert_new_then_upload_with_an_app_registration_made_by_hand(
        tmp_path: Path, run_uploader, new_app, sandbox) -> None:
    import stat
    import uuid

    out = tmp_path / "creds"
    out.mkdir()
    made = run_uploader("cert", "new", "--subject", "CN=hr-connector-contoso, O=Contoso", "--days", "30",
                        "--out-dir", out)
    assert made.returncode == 0, made.stderr
    pem, cer = out / "hr-connector-contoso.pem", out / "hr-connector-contoso.cer"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert "PRIVATE KEY" in pem.read_text() and "PRIVATE KEY" not in cer.read_text()
    assert "PRIVATE KEY" not in made.stdout + made.stderr
    thumb = next(x.split()[-1] for x in made.stdout.splitlines() if x.startswith("thumbprint (SHA-1)"))
    assert "Upload certificate" in made.stdout and str(cer) in made.stdout
    # Never overwritten.
    again = run_uploader("cert", "new", "--subject", "CN=hr-connector-contoso", "--out-dir", out)
    assert again.returncode == 2 and "already exists" in again.stderr
    # `cert show` agrees on the thumbprint for both files and never prints the key.
    for f in (pem, cer):
        shown = run_uploader("cert", "show", f)
        assert shown.returncode == 0, shown.stderr
        assert thumb in shown.stdout and "CN=hr-connector-contoso,O=Contoso" in shown.stdout
        assert "PRIVATE KEY" not in shown.stdout
    assert "belongs to this certificate" in run_uploader("cert", "show", pem).stdout
    # The app registration made by hand holds the .cer only; the uploader signs in with the .pem.
    app_id, tenant_id = str(uuid.uuid4()), str(uuid.uuid4())
    job_id = str(uuid.uuid4())
    sandbox.register_app(app_id, cer.read_text(), tenant_id=tenant_id)
    sandbox.bind_job(job_id, app_id)
    f = write(tmp_path / "a.csv", RES_HEADER + RES_ROW)
    sent = run_uploader("upload", f, "--tenant-id", tenant_id, "--app-id", app_id, "--job-id", job_id,
                        "--certificate", pem, "--authority-host", sandbox.authority_host,
                        "--ingestion-url", sandbox.ingestion_url, "--state-dir", tmp_path / "s")
    assert sent.returncode == 0, sent.stderr
    assert b"".join(sandbox.received(job_id)) == (RES_HEADER + RES_ROW).encode()


def test_a_pfx_file_signs_in_with_its_password_from_the_environment(
        tmp_path: Path, run_uploader, new_app, sandbox) -> None:
    app = new_app()
    password = "zq-Pfx-Pass-1"  # noqa: S105 - a test password, must never be printed
    pfx = tmp_path / "hr.pfx"
    pfx.write_bytes(_pfx(app.certificate.pem, password.encode()))
    flags = list(app.flags)
    flags[flags.index("--certificate") + 1] = str(pfx)
    f = write(tmp_path / "a.csv", RES_HEADER + RES_ROW)
    env = {**sandbox.env, "UPLOADER_CERTIFICATE_PASSWORD": password}
    sent = run_uploader("upload", f, *flags, "--state-dir", tmp_path / "s", env=env)
    assert sent.returncode == 0, sent.stderr
    assert len(sandbox.received(app.job_id)) == 1
    shown = run_uploader("cert", "show", pfx, env=env)
    assert shown.returncode == 0 and app.certificate.thumbprint_sha1 in shown.stdout
    assert "PRIVATE KEY" not in shown.stdout
    # Missing or wrong password: exit 2 naming the variable; the password is never echoed.
    missing = run_uploader("upload", f, *flags, "--state-dir", tmp_path / "s2", "--force")
    assert missing.returncode == 2 and "set UPLOADER_CERTIFICATE_PASSWORD" in missing.stderr
    wrong = run_uploader("upload", f, *flags, "--state-dir", tmp_path / "s3", "--force",
                         env={**sandbox.env, "UPLOADER_CERTIFICATE_PASSWORD": "zq-wrong-9"})
    assert wrong.returncode == 2 and "wrong password" in wrong.stderr
    assert "zq-wrong-9" not in wrong.stderr + wrong.stdout and password not in sent.stdout + sent.stderr
    # A PFX exported without a password opens without one.
    open_pfx = tmp_path / "open.p12"
    open_pfx.write_bytes(_pfx(app.certificate.pem, None))
    flags[flags.index("--certificate") + 1] = str(open_pfx)
    plain = run_uploader("upload", f, *flags, "--state-dir", tmp_path / "s4", "--force")
    assert plain.returncode == 0, plain.stderr


def test_cert_show_reads_a_der_cer_and_refuses_other_files(tmp_path: Path, run_uploader, make_certificate) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = make_certificate("der-test")
    der = tmp_path / "app.cer"
    der.write_bytes(x509.load_pem_x509_certificate(cert.certificate_pem.encode()).public_bytes(
        serialization.Encoding.DER))
    shown = run_uploader("cert", "show", der)
    assert shown.returncode == 0 and cert.thumbprint_sha1 in shown.stdout and "no private key" in shown.stdout
    other = run_uploader("cert", "show", write(tmp_path / "x.txt", "hello"))
    assert other.returncode == 2 and "not a certificate file" in other.stderr


def test_cert_show_with_an_ed25519_certificate_beside_an_rsa_key_says_they_do_not_match(
        tmp_path: Path, run_uploader, make_certificate) -> None:
    # An Ed25519 public key has no public_numbers(): comparing it with the RSA key used to crash `cert show`.
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.x509.oid import NameOID

    ed_key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ed25519-test")])
    now = dt.datetime.now(dt.UTC)
    ed_cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(ed_key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now)
               .not_valid_after(now + dt.timedelta(days=30)).sign(ed_key, None))
    rsa_pem = make_certificate("rsa-key").pem
    rsa_key_pem = rsa_pem[rsa_pem.index("-----BEGIN PRIVATE KEY-----"):]
    mixed = tmp_path / "mixed.pem"
    mixed.write_text(ed_cert.public_bytes(serialization.Encoding.PEM).decode() + rsa_key_pem)
    mixed.chmod(0o600)
    shown = run_uploader("cert", "show", mixed)
    assert shown.returncode == 0, shown.stderr
    assert "does NOT belong to" in shown.stdout


def test_gitignore_keeps_keys_and_pfx_files_out() -> None:
    ignored = (REPO / ".gitignore").read_text().split()
    assert {"*.pem", "*.pfx", "*.p12", "*.key"} <= set(ignored)


def test_mapping_init_knows_the_us_government_pages_termination_date(tmp_path: Path, run_uploader) -> None:
    f = write(tmp_path / "gcc.csv", "EmailAddress,TerminationDate,LastWorkingDate\n")
    result = init(run_uploader, f, "--scenario", "resignation")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["scenarios"][0]["columns"]["resignationDate"] == "TerminationDate"
