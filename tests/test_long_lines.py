"""Issue 18, break 5: `validate` keeps its memory under 100 MB whatever one data line holds. A record over the
documented limit (1 MiB per line) is refused naming its line; lines just under it are parsed within bounds.
Sending stays under it too: chunks are capped by bytes as well as records (MAX_CHUNK_BYTES).
The peak is the uploader process's own VmHWM (uploader.sandbox.client.measured_argv)."""

from __future__ import annotations

import collections
import json
import subprocess
from pathlib import Path

import pytest
from test_hostile_csv import HEADER, mapping_file, measured

from uploader.check.csvscan import MAX_CHUNK_BYTES, MAX_LINE_BYTES
from uploader.sandbox.client import measured_argv

pytestmark = [pytest.mark.e2e, pytest.mark.linux]  # the peak is read from /proc

PROMISE_MIB = 100  # the README's promise
SIXTEEN_MIB = 16 << 20


def _write(path: Path, body: str) -> Path:
    path.write_text(HEADER + body)
    return path


@pytest.mark.parametrize("line", [
    "ab," * (SIXTEEN_MIB // 3) + "ab\n",  # 561 MB before
    "," * SIXTEEN_MIB + "\n",  # 287 MB before (and taken for a blank line: "valid, 0 records")
    "zq" * (SIXTEEN_MIB // 2),  # no line break at all, to the end of the file
    "x@contoso.com,\"" + "a,\n" * (SIXTEEN_MIB // 3) + "\",2026-12-15T17:00\n",  # one quoted record over many lines
], ids=["ab-cells", "commas", "no-line-break", "quoted-record"])
def test_a_record_over_the_limit_is_refused_naming_its_line(tmp_path: Path, line: str) -> None:
    data = _write(tmp_path / "long.csv", "okzq1@contoso.com,2026-11-01T10:00,2026-12-15T17:00\n" + line)
    code, out, peak_mib = measured("validate", str(data), "--mapping", str(mapping_file(tmp_path)),
                                   tmp_path=tmp_path)
    assert code == 3, out[-800:]
    assert f"{data}:3:" in out, out[-800:]  # line 1 is the header, line 2 a good record
    assert "longer than 1 MiB" in out or "longer than 131072" in out, out[-800:]
    assert "Traceback" not in out and "zq" not in out.replace(str(tmp_path), "") and len(out) < 5000
    assert peak_mib < PROMISE_MIB, f"peak memory {peak_mib} MiB"


@pytest.mark.parametrize("cell", ["ab,", '"",', "a,"], ids=["ab", "quoted-empty", "one-letter"])
def test_lines_just_under_the_limit_stay_within_the_promise(tmp_path: Path, cell: str) -> None:
    line = cell * ((MAX_LINE_BYTES - 10) // len(cell)) + "x\n"
    data = _write(tmp_path / "near.csv", line * 16)
    code, out, peak_mib = measured("validate", str(data), "--mapping", str(mapping_file(tmp_path)),
                                   tmp_path=tmp_path)
    assert code == 3, out[-800:]
    assert f"{data}:2:" in out and "cells; the header has 3" in out, out[-800:]
    assert peak_mib < PROMISE_MIB, f"peak memory {peak_mib} MiB"


# -- sending: chunks capped by bytes -----------------------------------------------------------------------

BIG_COLUMNS = 8  # unmapped columns that make each record ~900 KiB (each cell under csv's 128 KiB field limit)
BIG_CELL = 900 * 1024 // BIG_COLUMNS


def _big_record(i: int) -> str:
    filler = ",".join(f"zq{i:04d}{c}".ljust(BIG_CELL, "abcdefgh"[c]) for c in range(BIG_COLUMNS))
    return f"okzq{i:04d}@contoso.com,2026-11-01T10:00,2026-12-15T17:00,{filler}\n"


def test_records_of_900_kib_are_sent_within_the_promise_each_exactly_once(tmp_path: Path, sandbox,  # noqa: ANN001
                                                                          new_app) -> None:  # noqa: ANN001
    """150 valid records of ~900 KiB (132 MB; before the cap, one 5,000-record chunk held all of it, several
    times over) go through the real `upload` in chunks of at most 8 MiB, under 100 MB peak."""
    app = new_app()
    count = 150
    data = tmp_path / "big.csv"
    with data.open("w") as out:
        out.write(HEADER.rstrip("\n") + "".join(f",Extra{c}" for c in range(BIG_COLUMNS)) + "\n")
        for i in range(count):
            out.write(_big_record(i))
    peak = tmp_path / "peak.txt"
    args = measured_argv("upload", str(data), *app.flags, "--mapping", str(mapping_file(tmp_path, app.job_id)),
                        "--state-dir", str(tmp_path / "state"), "--log-format", "json")
    per_chunk = MAX_CHUNK_BYTES // len(_big_record(0))
    plan = subprocess.run([*args, "--dry-run"], env=dict(sandbox.env, PEAK_FILE=str(peak)), capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)
    planned = next(e for e in map(json.loads, plan.stdout.splitlines()) if e["event"] == "file_planned")
    assert planned["chunks"] == -(-count // per_chunk), plan.stderr[-2000:]  # the dry run shows the same plan
    done = subprocess.run(args, env=dict(sandbox.env, PEAK_FILE=str(peak)), capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "zq" not in (done.stdout + done.stderr).replace(str(tmp_path), "")  # no cell value printed
    peak_mib = int(peak.read_text()) // 1024
    assert peak_mib < PROMISE_MIB, f"peak memory {peak_mib} MiB"
    started = next(e for e in map(json.loads, done.stdout.splitlines()) if e["event"] == "file_started")
    assert started["chunks"] == -(-count // per_chunk)  # 9 records (~8 MiB) per call, not 5,000
    got: collections.Counter[str] = collections.Counter()
    paths = sandbox.received_paths(app.job_id)
    assert len(paths) == started["chunks"]
    for path in paths:  # one chunk at a time: every record whole, as in the file (no quotes: one line each)
        assert path.stat().st_size <= MAX_CHUNK_BYTES + 4096
        for line in path.read_text().splitlines(keepends=True)[1:]:
            upn = line.split(",", 1)[0]
            assert line == _big_record(int(upn[4:8])), "a record arrived changed"
            got[upn] += 1
    assert got == {f"okzq{i:04d}@contoso.com": 1 for i in range(count)}  # every record exactly once


def test_a_run_refused_mid_file_resumes_exactly_when_chunks_are_cut_by_bytes(tmp_path: Path, sandbox,  # noqa: ANN001
                                                                              new_app, run_uploader) -> None:  # noqa: ANN001
    """Chunks of varying record counts (cut by bytes and by count): a run refused at its third chunk resumes
    after the acknowledged record count, with the same settings and with another --records-per-call."""
    app = new_app()
    data = tmp_path / "mixed.csv"
    sizes = ([900] * 10 + [0] * 10) * 3  # KiB of filler per record
    lines = [f"okzq{i:04d}@contoso.com,2026-11-01T10:00,2026-12-15T17:00,{'zq' * (kib * 512)}\n"
             for i, kib in enumerate(sizes)]
    data.write_text(HEADER.rstrip("\n") + ",Extra\n" + "".join(lines))
    expected = [0]  # record counts where chunks start: 20 per call, or fewer when 8 MiB is reached first
    size = 0
    for i, line in enumerate(lines):
        if i > expected[-1] and (i - expected[-1] == 20 or size + len(line) > MAX_CHUNK_BYTES):
            expected.append(i)
            size = 0
        size += len(line)
    state = tmp_path / "state"
    base = ["upload", str(data), *app.flags, "--mapping", str(mapping_file(tmp_path, app.job_id)),
            "--state-dir", str(state), "--log-format", "json"]
    plan = run_uploader(*base, "--records-per-call", "20", "--dry-run")
    chunks = [e for e in map(json.loads, plan.stdout.splitlines()) if e["event"] == "file_planned"][0]["chunks"]
    assert chunks == len(expected), plan.stdout[-2000:]
    assert len({b - a for a, b in zip(expected, expected[1:], strict=False)}) > 1  # chunks of varying record counts
    sandbox.faults([{"kind": "slow", "seconds": 0, "job_id": app.job_id}] * 2 +
                   [{"kind": "status", "status": 400, "job_id": app.job_id}])  # chunk 3 is refused for good
    first = run_uploader(*base, "--records-per-call", "20")
    assert first.returncode == 1 and "HTTP 400" in first.stdout + first.stderr, first.stderr[-2000:]
    acked = max(e["records_acked"] for e in map(json.loads, first.stdout.splitlines()) if e["event"] == "chunk_sent")
    assert acked == expected[2]  # two chunks, the first cut by bytes after 9 records
    for per_call in ("20", "7"):  # the same plan (resumed from a cut), then another one from the acknowledged count
        sandbox.faults([{"kind": "status", "status": 400, "job_id": app.job_id}] if per_call == "20" else [])
        again = run_uploader(*base, "--records-per-call", per_call)
        started = next(e for e in map(json.loads, again.stdout.splitlines()) if e["event"] == "file_started")
        assert started["skip_records"] == acked
        if per_call == "20":
            assert started["chunks"] == len(expected) - 2  # the tail of the same plan
            assert again.returncode == 1  # refused again at once: nothing more acknowledged
            continue
        assert again.returncode == 0, again.stderr[-2000:]
    got = []
    for path in sandbox.received_paths(app.job_id):  # no quotes in this file: one record per line
        got += [line.split(b",", 1)[0].decode() for line in path.read_bytes().splitlines()[1:]]
    assert got == [f"okzq{i:04d}@contoso.com" for i in range(len(sizes))]  # every record once, in order
