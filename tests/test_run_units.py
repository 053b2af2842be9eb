"""Job mode's pure parts, in process: exit-code precedence, the lease-guarded checkpoint store, the errors file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from uploader.check.csvscan import scan_file
from uploader.errors import UsageError
from uploader.job.connectors import load_connectors
from uploader.job.dropzone import Lock, open_dropzone
from uploader.job.jobrun import ClaimLostError, ConnectorSummary, GuardedStore, RunSummary, errors_document
from uploader.model.mapping import parse_connector

MAPPING = {"jobId": "e081f4f4-3831-48d6-a7bb-3fcfab158145", "files": "*.csv",
           "scenarios": [{"type": "resignation", "columns": {"userPrincipalName": "Email", "resignationDate": "R",
                                                             "lastWorkingDate": "L"}}]}


@pytest.mark.parametrize(("failed", "rejected", "code"), [(0, 0, 0), (0, 2, 3), (1, 0, 1), (1, 5, 1)])
def test_exit_code_precedence(failed: int, rejected: int, code: int) -> None:
    summary = RunSummary([ConnectorSummary("a", "j", files_sent=3),
                          ConnectorSummary("b", "k", files_failed=failed, files_rejected=rejected)])
    assert summary.exit_code == code
    line = summary.to_json()
    assert line["exit_code"] == code and line["files_sent"] == 3 and line["files_failed"] == failed


class _Lock(Lock):
    def renew(self) -> None: ...

    def release(self) -> None: ...


def test_guarded_store_saves_the_acknowledged_chunk_before_stopping(tmp_path: Path) -> None:
    dz = open_dropzone(tmp_path.as_uri())
    lock = _Lock()
    store = GuardedStore(dz, lock)
    store.save("job/abc", {"records_acked": 10})
    assert (tmp_path / "state/job/abc.json").exists()
    lock.lost = True
    with pytest.raises(ClaimLostError):
        store.save("job/abc", {"records_acked": 20})
    assert store.load("job/abc") == {"records_acked": 20}, "the acknowledged chunk must still be recorded"
    assert store.load("job/none") is None


def test_errors_document_holds_places_and_rules_only(tmp_path: Path) -> None:
    secret = "SECRET-VALUE-XYZ"
    path = tmp_path / "x.csv"
    path.write_text(f"Email,R,L\n{secret},{secret},2026-01-01T00:00\n")
    scan = scan_file(path, parse_connector(MAPPING), 10)
    assert not scan.ok
    doc = errors_document("incoming/x.csv", scan)
    assert doc["file"] == "incoming/x.csv" and doc["problem_count"] == scan.problem_count >= 2
    assert {p["line"] for p in doc["problems"]} == {2}
    assert secret not in repr(doc)


def test_connectors_need_files_in_job_mode() -> None:
    assert load_connectors(None) == () and load_connectors("  ") == () and load_connectors("[]") == ()
    no_files = dict(MAPPING)
    del no_files["files"]
    with pytest.raises(UsageError, match=r"UPLOADER_CONNECTORS\[0\]\.files"):
        load_connectors(json.dumps([no_files]))
    with pytest.raises(UsageError, match="line 1"):
        load_connectors("[{]")


@pytest.mark.parametrize(("files", "rule"), [
    ("/etc/*.csv", "no leading '/'"),
    ("../outside/*.csv", "'..' is not allowed"),
    ("departures//*.csv", "empty folder name"),
    ("[z-a].csv", "not a valid glob"),
])
def test_job_mode_refuses_the_globs_check_refuses(files: str, rule: str) -> None:
    bad = dict(MAPPING, files=files)
    with pytest.raises(UsageError, match=r"UPLOADER_CONNECTORS\[1\]\.files") as caught:
        load_connectors(json.dumps([MAPPING, bad]))
    assert rule in str(caught.value) and files not in str(caught.value)


def test_a_file_written_to_again_after_listing_waits_to_settle(tmp_path: Path) -> None:
    """Settled when listed, written to again before its turn: it is left to settle, not sent in its new state."""
    import io
    import os
    import tempfile
    import time

    from uploader.job.jobrun import JobRun
    from uploader.model.mapping import parse_connectors
    from uploader.report import Reporter

    root = tmp_path / "zone"
    (root / "incoming").mkdir(parents=True)
    path = root / "incoming" / "a.csv"
    path.write_text("h\n1\n")
    old = time.time() - 600
    os.utime(path, (old, old))
    dz = open_dropzone(root.as_uri())
    (mapping,) = parse_connectors([{"name": "d", "jobId": "e081f4f4-3831-48d6-a7bb-3fcfab158145", "files": "*.csv",
                                    "scenarios": [{"type": "resignation", "columns": {
                                        "userPrincipalName": "E", "resignationDate": "R", "lastWorkingDate": "L"}}]}],
                                  where="test")
    calls: list[object] = []
    run = JobRun(dz, (mapping,), upload=lambda *a, **k: calls.append(a), client=None, records_per_call=10,
                 reporter=Reporter("json", stream=io.StringIO()), settle=60)
    (files,) = run.assign(dz.list("incoming/"))
    assert run.unsettled(mapping, files) == 0 and len(files) == 1
    with path.open("a") as fh:
        fh.write("2\n")  # the writer comes back
    with tempfile.TemporaryDirectory() as tmp:
        result = run.run_connector(mapping, files, Path(tmp))
    assert calls == [] and result.files_settling == 1 and result.files_failed == 0
    assert path.exists()


def _folder_file(tmp_path: Path, data: bytes) -> tuple[Path, object]:
    import os
    import time

    root = tmp_path / "zone"
    (root / "incoming").mkdir(parents=True)
    path = root / "incoming" / "a.csv"
    path.write_bytes(data)
    old = time.time() - 600
    os.utime(path, (old, old))
    return path, open_dropzone(root.as_uri())


def _rewrite_keeping_size_and_time(path: Path, data: bytes) -> None:
    import os

    before = path.stat()
    with path.open("r+b") as fh:
        fh.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_folder_file_rewritten_while_it_is_read_is_not_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 23 B: rewritten in place mid-download, its size and modification time put back: the copy would hold
    old and new bytes; the change time says it changed, so the download fails instead of returning a version."""
    import hashlib
    import types

    from uploader.job import dropzone as dzmod

    old, new = b"h\n" + b"1" * 100 + b"\n", b"h\n" + b"2" * 100 + b"\n"
    path, dz = _folder_file(tmp_path, old)
    monkeypatch.setattr(dzmod, "DOWNLOAD_CHUNK", 16)

    class Rewriting:  # the hash the download feeds: the HR system rewrites the file after the first block
        def __init__(self) -> None:
            self.inner, self.blocks = hashlib.sha256(), 0

        def update(self, block: bytes) -> None:
            self.blocks += 1
            if self.blocks == 1:
                _rewrite_keeping_size_and_time(path, new)
            self.inner.update(block)

        def hexdigest(self) -> str:
            return self.inner.hexdigest()

    monkeypatch.setattr(dzmod, "hashlib", types.SimpleNamespace(sha256=Rewriting, md5=hashlib.md5))
    etag = dz.stat("incoming/a.csv").etag
    with pytest.raises(dzmod.FileChangedError, match="changed while it was read"):
        dz.download("incoming/a.csv", tmp_path / "copy", etag=etag)
    assert dz.stat("incoming/a.csv").etag == etag  # size and time alone would have said nothing changed


def test_an_interrupted_move_files_only_the_version_its_journal_names(tmp_path: Path) -> None:
    """A run died after journaling a move; the file was then rewritten (same size and time): the next run does not
    file it. A journal from before versions were recorded moves nothing, but still names where the file goes."""
    import io

    from uploader.job.jobrun import JobRun, move_journal
    from uploader.report import Reporter

    path, dz = _folder_file(tmp_path, b"h\nold\n")
    version = dz.download("incoming/a.csv", tmp_path / "copy")
    journal = move_journal("incoming/a.csv", version.etag)
    dz.write_json(journal, {"src": "incoming/a.csv", "dst": "processed/a.csv", **version.to_json(),
                            "at": "2026-01-02T00:00:00Z"})
    _rewrite_keeping_size_and_time(path, b"h\nnew\n")
    out = io.StringIO()
    run = JobRun(dz, (), upload=lambda *a, **k: None, client=None, records_per_call=10,
                 reporter=Reporter("json", stream=out))
    run.finish_interrupted_moves()
    assert path.read_bytes() == b"h\nnew\n" and dz.stat("processed/a.csv") is None
    assert dz.list("state/moves/") == []

    dz.write_json(journal, {"src": "incoming/a.csv", "dst": "processed/b.csv", "etag": version.etag,
                            "at": "2026-01-02T00:00:00Z"})  # as the previous release wrote it: no version
    run.finish_interrupted_moves()
    assert path.exists() and dz.stat("processed/b.csv") is None  # moves nothing: which bytes it meant is unknown
    now = dz.download("incoming/a.csv", tmp_path / "again")
    assert run.filing_name("incoming/a.csv", now, "processed/a.csv") == "processed/b.csv"  # but says where
