"""The sandbox's pure parts without a server: multipart extraction and record counting."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from urllib3 import encode_multipart_formdata

from uploader.sandbox.ingestion import BadUpload, count_records, multipart_part
from uploader.sandbox.state import SandboxState, StateError, parse_fault


def test_multipart_part_finds_the_file_among_other_parts():
    csv_bytes = b"a,b\r\n1,2\r\n--not-a-boundary\r\n"
    body, content_type = encode_multipart_formdata([("note", "x"), ("file", ("hr.csv", csv_bytes, "text/csv")),
                                                    ("after", "y")])
    assert multipart_part(content_type, body, "file") == csv_bytes
    assert multipart_part(content_type, body, "note") == b"x"


@pytest.mark.parametrize(("content_type", "body", "message"), [
    ("text/csv", b"a\n", "multipart/form-data"),
    ("multipart/form-data", b"a\n", "boundary"),
    ("multipart/form-data; boundary=XX", b"nothing here", "does not start"),
    ("multipart/form-data; boundary=XX", b"--XX\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc",
     "closing boundary"),
    ("multipart/form-data; boundary=XX", b"--XX\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\na\r\n--XX--",
     "no part named 'file'"),
])
def test_malformed_multipart_is_refused(content_type, body, message):
    with pytest.raises(BadUpload, match=message):
        multipart_part(content_type, body, "file")


cell = st.text(alphabet=st.sampled_from(list('ab ,"\n\r\u00e9')), max_size=8)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.lists(cell, min_size=2, max_size=2), max_size=12), crlf=st.booleans(),
       trailing=st.booleans())
def test_count_records_matches_csv_reader(rows, crlf, trailing):
    """Fast path (no quote) and csv path both count what csv.reader reads, header excluded."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n" if crlf else "\n").writerows([["h1", "h2"], *rows])
    text = out.getvalue()
    if not trailing:
        text = text.removesuffix("\r\n" if crlf else "\n")
    expected = len(list(csv.reader(io.StringIO(text, newline="")))) - 1
    assert count_records(text.encode()) == expected


def test_count_records_refuses_non_utf8_and_open_quotes():
    with pytest.raises(BadUpload, match="not UTF-8"):
        count_records(b"a\n\xff\n")
    with pytest.raises(BadUpload, match="not valid CSV"):
        count_records(b'a\n"open\n')


def test_faults_are_matched_by_job_in_queue_order(tmp_path):
    state = SandboxState(tmp_path)
    state.add_faults([parse_fault({"kind": "drop", "job_id": "job-b"}), parse_fault({"kind": "status"}),
                      parse_fault({"kind": "slow", "seconds": 0})])
    assert state.next_fault("job-a").kind == "status"  # the job-b fault is skipped, not consumed
    assert state.next_fault("job-b").kind == "drop"
    assert state.next_fault("job-a").kind == "slow"
    assert state.next_fault("job-a") is None


@pytest.mark.parametrize("job_id", ["../etc", ".hidden", "a/b", "", "x" * 200])
def test_ids_that_are_not_safe_directory_names_are_refused(tmp_path, job_id):
    with pytest.raises(StateError, match="job_id"):
        SandboxState(tmp_path).bind_job(job_id, "app")
