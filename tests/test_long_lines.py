"""Issue 18, break 5: `validate` keeps its memory under 100 MB whatever one data line holds. A record over the
documented limit (1 MiB per line) is refused naming its line; lines just under it are parsed within bounds.
The peak is the uploader process's own VmHWM (see test_hostile_csv.measured)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_hostile_csv import HEADER, mapping_file, measured

from uploader.check.csvscan import MAX_LINE_BYTES

pytestmark = pytest.mark.e2e

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
