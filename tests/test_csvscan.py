"""The CSV pipeline: rules, structure, chunk boundaries (hypothesis), resume plans, fast vs careful paths."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uploader.check.csvscan import iter_chunks, scan_file
from uploader.check.rules import cell_problem
from uploader.model.mapping import parse_connector
from uploader.model.scenarios import SCENARIOS

JOB = "e081f4f4-3831-48d6-a7bb-3fcfab158145"
TODAY = dt.date(2026, 11, 22)
RESIGNATION = parse_connector({
    "jobId": JOB,
    "scenarios": [{"type": "resignation", "columns": {
        "userPrincipalName": "EmailAddress", "resignationDate": "ResignationDate",
        "lastWorkingDate": "LastWorkingDate"}}],
})
REVIEW = parse_connector({
    "jobId": JOB,
    "scenarios": [{"type": "performanceReview", "columns": {
        "userPrincipalName": "UPN", "effectiveDate": "EffectiveDate", "remarks": "Remarks", "rating": "Rating"}}],
})


def write(tmp_path: Path, text: str | bytes, name: str = "f.csv") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


def rows_of(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode())))


# --- cell rules --------------------------------------------------------------------------------------

DATE = SCENARIOS["resignation"].field("resignationDate")
UPN = SCENARIOS["resignation"].field("userPrincipalName")
REMARKS = SCENARIOS["performanceReview"].field("remarks")
RATING = SCENARIOS["performanceReview"].field("rating")


@pytest.mark.parametrize("value", [
    "2026-04-23T15:18", "2026-04-23T15:18:02", "2026-04-23T15:18:02.4675041+05:30", "2026-04-23T15:18:02Z",
    "2024-02-29T00:00", "2000-02-29T00:00:00.1-12:00", "2026-12-31T23:59:59.1234567Z",
])
def test_valid_dates(value: str) -> None:
    assert cell_problem(DATE, value) is None


@pytest.mark.parametrize(("value", "rule"), [
    ("2026-02-29T10:00", "calendar"), ("1900-02-29T10:00", "calendar"), ("2026-04-31T10:00", "calendar"),
    ("2026-13-01T10:00", "calendar"), ("2026-04-23", "ISO 8601"), ("23/04/2026 10:00", "ISO 8601"),
    ("2026-04-23T24:00", "ISO 8601"), ("2026-04-23T10:00:00.12345678", "ISO 8601"),
    ("2026-04-23T10:00+5:30", "ISO 8601"), ("2026-04-23 10:00", "ISO 8601"), ("", "required"),
])
def test_invalid_dates(value: str, rule: str) -> None:
    problem = cell_problem(DATE, value)
    assert problem is not None and rule in problem


@pytest.mark.parametrize(("value", "ok"), [
    ("a@b.com", True), ("a.b+c@contoso.onmicrosoft.com", True), ("a b@c.com", False), ("a@b@c.com", False),
    ("ab.com", False), ("@b.com", False), ("a@", False), ("   ", False),
])
def test_upn(value: str, ok: bool) -> None:
    assert (cell_problem(UPN, value) is None) is ok


def test_lengths_and_optional_cells() -> None:
    assert cell_problem(REMARKS, "x" * 200) is None
    assert "200" in (cell_problem(REMARKS, "x" * 201) or "")
    assert cell_problem(RATING, "x" * 25) is None
    assert "25" in (cell_problem(RATING, "x" * 26) or "")
    assert cell_problem(REMARKS, "") is None


# --- structure and encodings -------------------------------------------------------------------------

HEADER = "EmailAddress,ResignationDate,LastWorkingDate"
ROW = "a{}@contoso.com,2026-10-01T10:00:00,2026-12-01T16:30"


def good_file(n: int, newline: str = "\n") -> str:
    return newline.join([HEADER, *(ROW.format(i) for i in range(n))]) + newline


def test_bom_crlf_and_case_insensitive_header(tmp_path: Path) -> None:
    text = good_file(3, "\r\n").replace(HEADER, "emailaddress,RESIGNATIONDATE,LastWorkingDate")
    scan = scan_file(write(tmp_path, "\ufeff" + text), RESIGNATION, 2, today=TODAY)
    assert scan.ok and scan.records == 3 and [c.records for c in scan.chunks] == [2, 1]
    bodies = [b for _, b in iter_chunks(scan.path, scan)]
    assert all(b.startswith(b"emailaddress,") for b in bodies)  # header first, BOM gone
    assert sum(len(rows_of(b)) - 1 for b in bodies) == 3


def test_header_only_is_valid_and_empty_file_is_not(tmp_path: Path) -> None:
    scan = scan_file(write(tmp_path, HEADER + "\n"), RESIGNATION, 10, today=TODAY)
    assert scan.ok and scan.records == 0 and scan.chunks == []
    for text in ("", "\ufeff", "\n\n  \n"):
        scan = scan_file(write(tmp_path, text), RESIGNATION, 10, today=TODAY)
        assert not scan.ok and scan.problems[0].line == 1


def test_trailing_blank_lines_are_ignored_but_inner_ones_are_errors(tmp_path: Path) -> None:
    scan = scan_file(write(tmp_path, good_file(3) + "\n\n"), RESIGNATION, 10, today=TODAY)
    assert scan.ok and scan.records == 3
    body = next(iter_chunks(scan.path, scan))[1]
    assert not body.endswith(b"\n\n")
    text = good_file(3).replace("\na1@", "\n\na1@")
    scan = scan_file(write(tmp_path, text), RESIGNATION, 10, today=TODAY)
    assert not scan.ok and (scan.problems[0].line, "blank line") == (3, scan.problems[0].rule[:10])


def test_problems_name_line_column_rule_and_stop_at_twenty(tmp_path: Path) -> None:
    lines = [HEADER] + [f"bad user{i},2026-10-01T10:00,2026-12-01T10:00" for i in range(30)]
    scan = scan_file(write(tmp_path, "\n".join(lines) + "\n"), RESIGNATION, 10, display_name="x.csv", today=TODAY)
    assert scan.problem_count == 30 and len(scan.problems) == 20
    report = scan.report_lines()
    assert report[0] == "x.csv:2: column EmailAddress: not a user principal name (needs exactly one '@' and no spaces)"
    assert report[-1] == "x.csv: ... and 10 more problems"
    assert not any("bad user" in line for line in report)


def test_warning_for_implausible_last_working_date(tmp_path: Path) -> None:
    text = good_file(4).replace("a2@contoso.com,2026-10-01T10:00:00,2026-12-01T16:30",
                                "a2@contoso.com,2026-10-01T10:00:00,2024-12-01T16:30")
    scan = scan_file(write(tmp_path, text), RESIGNATION, 10, display_name="w.csv", today=TODAY)
    assert scan.ok and scan.warnings == [
        "w.csv:4: 1 lastWorkingDate value is more than 6 months in the past or more than 1 year ahead"]


def test_multi_scenario_rows_checked_by_their_own_scenario(tmp_path: Path) -> None:
    mapping = parse_connector({
        "jobId": JOB, "scenarioColumn": "HRScenario",
        "scenarios": [
            {"type": "resignation", "value": "Resignation", "columns": {
                "userPrincipalName": "Email", "resignationDate": "RD", "lastWorkingDate": "LWD"}},
            {"type": "jobLevelChange", "value": "Job level change", "columns": {
                "userPrincipalName": "Email", "effectiveDate": "ED", "remarks": "Remarks"}},
        ],
    })
    text = ("HRScenario,Email,RD,LWD,ED,Remarks\n"
            "Resignation,a@b.com,2026-10-01T10:00,2026-12-01T10:00,,\n"
            'JOB LEVEL CHANGE,c@d.com,,,2026-10-01T10:00,"a, b\nc"\n'
            "Job level change,e@f.com,,,,\n")
    scan = scan_file(write(tmp_path, text), mapping, 10, today=TODAY)
    assert [(p.line, p.column) for p in scan.problems] == [(5, "ED")]
    assert "required" in scan.problems[0].rule


# --- chunk boundaries: property tests ----------------------------------------------------------------

cell_text = st.text(alphabet=st.sampled_from(list('ab ,"\n\r\'é✓x')), max_size=12)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=st.lists(st.lists(cell_text, min_size=3, max_size=3), min_size=0, max_size=40),
    per_call=st.integers(min_value=1, max_value=9),
    block_size=st.integers(min_value=1, max_value=64),
    crlf=st.booleans(),
    skip=st.integers(min_value=0, max_value=45),
)
def test_chunks_never_split_a_record(tmp_path: Path, records, per_call, block_size, crlf, skip) -> None:
    if not crlf:  # csv.writer leaves a bare CR unquoted with "\n" line ends; such files are rejected
        records = [[c.replace("\r", "") for c in r] for r in records]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n" if crlf else "\n").writerows([["A", "B", "C"], *records])
    path = write(tmp_path, buf.getvalue(), "p.csv")
    scan = scan_file(path, None, per_call, skip_records=skip, block_size=block_size, today=TODAY)
    assert scan.ok, scan.report_lines()
    assert scan.records == len(records)
    sent: list[list[str]] = []
    for chunk, body in iter_chunks(path, scan):
        parsed = rows_of(body)
        assert parsed[0] == ["A", "B", "C"]  # every chunk starts with the header
        assert 1 <= len(parsed) - 1 <= per_call and len(parsed) - 1 == chunk.records
        sent += parsed[1:]
    assert sent == records[min(skip, len(records)):]  # whole records, in order, nothing lost or repeated


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(min_value=0, max_value=60), per_call=st.integers(min_value=1, max_value=25),
       block_size=st.integers(min_value=16, max_value=400), quote_all=st.booleans())
def test_fast_and_csv_paths_agree(tmp_path: Path, n, per_call, block_size, quote_all) -> None:
    buf = io.StringIO()
    quoting = csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL
    w = csv.writer(buf, lineterminator="\n", quoting=quoting)
    w.writerow(HEADER.split(","))
    w.writerows(ROW.format(i).split(",") for i in range(n))
    scan = scan_file(write(tmp_path, buf.getvalue(), "q.csv"), RESIGNATION, per_call, block_size=block_size,
                     today=TODAY)
    assert scan.ok and scan.records == n
    assert [c.records for c in scan.chunks] == [min(per_call, n - i) for i in range(0, n, per_call)]


def test_resume_plan_starts_after_acknowledged_records(tmp_path: Path) -> None:
    path = write(tmp_path, good_file(10))
    full = scan_file(path, RESIGNATION, 3, today=TODAY)
    resumed = scan_file(path, RESIGNATION, 3, skip_records=6, today=TODAY)
    assert [c.first_record for c in full.chunks] == [0, 3, 6, 9]
    assert [c.first_record for c in resumed.chunks] == [6, 9] and resumed.sha256 == full.sha256
    first = rows_of(next(iter_chunks(path, resumed))[1])
    assert first[1][0] == "a6@contoso.com"


@pytest.mark.parametrize("skip", [0, 3, 6, 9, 10])
def test_resume_from_a_chunk_boundary_needs_no_second_pass(tmp_path: Path, skip: int) -> None:
    path = write(tmp_path, good_file(10) + "\n")
    full = scan_file(path, RESIGNATION, 3, today=TODAY)
    again = scan_file(path, RESIGNATION, 3, skip_records=skip, today=TODAY)
    resumed = full.resume_from(skip)
    assert resumed is not None and (resumed.chunks, resumed.skip_lines) == (again.chunks, again.skip_lines)
    assert [b for _, b in iter_chunks(path, resumed)] == [b for _, b in iter_chunks(path, again)]
    assert full.resume_from(4) is None  # not a boundary of this plan (another chunk size): scan again


# --- chunk boundaries: the byte cap (issue 18: memory bounded when sending) --------------------------------

@pytest.mark.parametrize("block_size", [16, 64, 1 << 20])
def test_chunks_are_cut_by_bytes_as_well_as_by_records(tmp_path: Path, block_size: int) -> None:
    """Greedy: a chunk ends after per_call records or before the record that takes it over the cap; a record
    larger than the cap goes alone; quoted line breaks and UTF-8 count as the bytes they are in the file."""
    sizes = [10, 10, 10, 30, 50, 10, 10, 10, 10]
    lines = [f"r{i},{'x' * (size - 4)}\n" for i, size in enumerate(sizes)]
    lines[1] = 'r1,"\néx"\n'  # 10 bytes over two physical lines
    assert [len(line.encode()) for line in lines] == sizes
    path = write(tmp_path, "A,B\n" + "".join(lines))
    scan = scan_file(path, None, 3, block_size=block_size, chunk_bytes=35)
    assert scan.ok and scan.records == 9
    assert [(c.first_record, c.records, c.line_count) for c in scan.chunks] == [
        (0, 3, 4),  # 3 records (per_call), 30 bytes
        (3, 1, 1),  # 30 bytes: with the next 50 it would be over 35
        (4, 1, 1),  # one record over the cap goes alone, whole
        (5, 3, 3),
        (8, 1, 1),
    ]
    bodies = [body for _, body in iter_chunks(path, scan)]
    assert [len(b) - len(b"A,B\n") for b in bodies] == [30, 30, 50, 30, 10]
    assert b"".join(b.removeprefix(b"A,B\n") for b in bodies) == path.read_bytes().removeprefix(b"A,B\n")
    # the default cap leaves files of ordinary records to records_per_call alone
    plain = write(tmp_path, good_file(20), "plain.csv")
    assert [c.records for c in scan_file(plain, RESIGNATION, 7, today=TODAY).chunks] == [7, 7, 6]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=st.lists(st.lists(cell_text, min_size=3, max_size=3), min_size=0, max_size=30),
    per_call=st.integers(min_value=1, max_value=9),
    chunk_bytes=st.integers(min_value=1, max_value=120),
    block_size=st.integers(min_value=1, max_value=64),
    bom=st.booleans(),
)
def test_byte_capped_plans_are_greedy_exact_and_resumable(tmp_path: Path, records, per_call, chunk_bytes,
                                                          block_size, bom) -> None:
    records = [[c.replace("\r", "") for c in r] for r in records]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([["A", "B", "C"], *records])
    path = write(tmp_path, ("\ufeff" if bom else "") + buf.getvalue(), "b.csv")
    sizes = []  # each record's bytes in the file
    for record in records:
        one = io.StringIO()
        csv.writer(one, lineterminator="\n").writerow(record)
        sizes.append(len(one.getvalue().encode()))
    scan = scan_file(path, None, per_call, block_size=block_size, chunk_bytes=chunk_bytes)
    assert scan.ok and scan.records == len(records)
    sent: list[list[str]] = []
    for chunk, body in iter_chunks(path, scan):
        size = len(body) - len(scan.header_bytes)
        assert size == sum(sizes[chunk.first_record:chunk.first_record + chunk.records])
        assert chunk.records <= per_call and (size <= chunk_bytes or chunk.records == 1)
        after = chunk.first_record + chunk.records
        if after < len(records) and chunk.records < per_call:  # cut early only when the next record does not fit
            assert size + sizes[after] > chunk_bytes
        sent += rows_of(body)[1:]
    assert sent == records
    again = scan_file(path, None, per_call, block_size=block_size, chunk_bytes=chunk_bytes)
    assert again.chunks == scan.chunks  # deterministic: a checkpoint's record count means the same cut
    for k, chunk in enumerate(scan.chunks):  # a resumed scan plans the same cuts after the resume point
        resumed = scan_file(path, None, per_call, skip_records=chunk.first_record, block_size=block_size,
                            chunk_bytes=chunk_bytes)
        assert [(c.first_record, c.records, c.line_count) for c in resumed.chunks] == \
            [(c.first_record, c.records, c.line_count) for c in scan.chunks[k:]]


def test_a_file_without_line_breaks_is_refused_without_holding_it(tmp_path: Path, monkeypatch) -> None:
    import uploader.check.csvscan as csvscan

    monkeypatch.setattr(csvscan, "MAX_LINE_BYTES", 4096)
    scan = scan_file(write(tmp_path, HEADER + "\n" + "x" * 50_000), RESIGNATION, 10, block_size=1024, today=TODAY)
    assert not scan.ok and scan.problems[0].line == 2 and "longer than" in scan.problems[0].rule


def test_changed_file_is_not_sent(tmp_path: Path) -> None:
    path = write(tmp_path, good_file(2))
    scan = scan_file(path, RESIGNATION, 3, today=TODAY)
    path.write_text(good_file(3))
    with pytest.raises(ValueError, match="changed after it was validated"):
        list(iter_chunks(path, scan))


def test_a_missing_column_is_named_once_not_on_every_row(tmp_path: Path) -> None:
    mapping = parse_connector({
        "jobId": JOB, "scenarioColumn": "HRScenario",
        "scenarios": [
            {"type": "resignation", "value": "Resignation", "columns": {
                "userPrincipalName": "Email", "resignationDate": "RD", "lastWorkingDate": "LWD"}},
            {"type": "jobLevelChange", "value": "Job level change", "columns": {
                "userPrincipalName": "Email", "effectiveDate": "ED"}},
        ],
    })
    rows = "".join(f"Job level change,u{i}@contoso.com,,\n" for i in range(30))
    scan = scan_file(write(tmp_path, "HRScenario,Email,RD,LWD\n" + rows), mapping, 10, today=TODAY)
    assert [(p.line, p.column) for p in scan.problems] == [(2, "ED")] and scan.problem_count == 1


@pytest.mark.parametrize("block_size", [64, 1000, 4096, 1 << 20])
def test_a_long_line_anywhere_is_named_by_its_line(tmp_path: Path, monkeypatch, block_size: int) -> None:
    """Issue 18: a line over the limit is refused naming its own line, whichever block it starts in."""
    import uploader.check.csvscan as csvscan

    monkeypatch.setattr(csvscan, "MAX_LINE_BYTES", 4096)
    rows = good_file(40).split("\n", 1)[1]
    body = HEADER + "\n" + rows + "ab," * 2000 + "ab\n" + rows
    scan = scan_file(write(tmp_path, body), RESIGNATION, 10, block_size=block_size, today=TODAY)
    assert not scan.ok and [p.line for p in scan.problems] == [42], scan.problems
    assert "longer than" in scan.problems[0].rule


def test_lines_under_the_limit_after_a_long_one_are_planned_alike(tmp_path: Path, monkeypatch) -> None:
    """Blocks cut again after a long (allowed) line plan the same chunks as one big block."""
    import uploader.check.csvscan as csvscan

    monkeypatch.setattr(csvscan, "MAX_LINE_BYTES", 4096)
    path = write(tmp_path, good_file(200))
    plans = {bs: [(c.first_record, c.records, c.line_count) for c in
                  scan_file(path, RESIGNATION, 7, block_size=bs, today=TODAY).chunks] for bs in (100, 1000, 1 << 20)}
    assert plans[100] == plans[1000] == plans[1 << 20]


def test_long_line_finder() -> None:
    from uploader.check.csvscan import _long_line

    assert _long_line(b"a\n" * 1000, 10) is None
    assert _long_line(b"ab\n" + b"x" * 11 + b"\nc\n", 10) == 3
    assert _long_line(b"x" * 10 + b"\n", 10) is None
    assert _long_line(b"\n" + b"x" * 30, 10) == 1
