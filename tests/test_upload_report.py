"""Reporter renderings: plain lines, JSON lines, and the run summary (job mode reuses them)."""

from __future__ import annotations

import io
import json

from uploader.report import Reporter
from uploader.send.upload import FileOutcome


def test_json_lines_carry_the_events_and_counts() -> None:
    out = io.StringIO()
    r = Reporter("json", stream=out)
    r.file_started("a.csv", job_id="J", records=5, chunks=3, records_per_call=2)
    r.retry("a.csv", chunk=1, chunks=3, attempt=1, delay=1.23456, reason="HTTP 503")
    r.chunk_sent("a.csv", chunk=1, chunks=3, records=2, records_acked=2, records_total=5, retries=1)
    r.file_done("a.csv", FileOutcome("sent", 5, 3, 1, 0.5))
    r.file_skipped("b.csv", "identical content was sent")
    r.file_invalid("c.csv", problem_count=21, lines=["c.csv:2: column X: rule"])
    r.event("custom", "ignored in json", anything=1)
    r.summary([("a.csv", FileOutcome("sent", 5, 3, 1, 0.5)), ("c.csv", FileOutcome("invalid"))], 3)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["file_started", "retry", "chunk_sent", "file_done", "file_skipped",
                                            "file_invalid", "custom", "summary"]
    assert events[1]["delay"] == 1.235 and events[1]["reason"] == "HTTP 503"
    assert events[5]["problem_count"] == 21 and events[5]["problems"] == ["c.csv:2: column X: rule"]
    assert events[-1]["statuses"] == {"sent": 1, "invalid": 1} and events[-1]["exit_code"] == 3
    assert all("time" in e for e in events)


def test_plain_lines_without_a_terminal() -> None:
    out, err = io.StringIO(), io.StringIO()
    r = Reporter("text", stream=out, err=err, tty=False)
    r.file_started("a.csv", job_id="J", records=5, chunks=3, records_per_call=2, skip_records=2)
    r.chunk_sent("a.csv", chunk=2, chunks=3, records=2, records_acked=4, records_total=5, retries=0)
    r.file_done("a.csv", FileOutcome("sent", 3, 2, 1, 0.25))
    r.file_done("b.csv", FileOutcome("failed", 0, 0, 0, 1.0, message="HTTP 403: no"))
    r.file_planned("d.csv", job_id="J", records=12, chunks=[(0, 5), (5, 5), (10, 2)], records_per_call=5)
    r.summary([("a.csv", FileOutcome("sent", 3, 2, 1, 0.25))], 1, not_attempted=2)
    text = out.getvalue()
    assert "a.csv: sending 3 records in 3 chunks (up to 2 per call) to job J, resuming after 2" in text
    assert "a.csv: chunk 2/3 accepted (2 records, 4/5)" in text
    assert "a.csv: sent 3 records in 2 chunks, 1 retry, 0.2 s" in text
    assert "d.csv: dry run: would send 12 records in 3 chunks" in text and "chunk 3: records 11–12" in text
    assert "3 files: 1 sent, 2 not attempted; 3 records sent in 2 chunks, 1 retry" in text
    assert err.getvalue() == "b.csv: FAILED after 0 records in 0 chunks: HTTP 403: no\n"
    assert "\x1b[" not in text
