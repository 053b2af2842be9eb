"""Hostile CSV files and drop-zone names through the real CLI: a header problem never echoes unknown text
as a column name, an absurd header is refused with bounded memory, invisible or control characters in a
UPN are a rule error (never shown), and a file name cannot forge log lines. Each case asserts the exit
code, that no cell value is printed and that nothing is lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from uploader.sandbox.client import clean_environ, measured_argv

pytestmark = pytest.mark.e2e

COLUMNS = {"userPrincipalName": "EmailAddress", "resignationDate": "ResignationDate",
           "lastWorkingDate": "LastWorkingDate"}
HEADER = "EmailAddress,ResignationDate,LastWorkingDate\n"
ROW = "okzq1@contoso.com,2026-11-01T10:00,2026-12-15T17:00\n"


def mapping_file(tmp_path: Path, job_id: str = "e081f4f4-3831-48d6-a7bb-3fcfab158145") -> Path:
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps({"jobId": job_id, "scenarios": [{"type": "resignation", "columns": COLUMNS}]}))
    return path


def uploader(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "uploader", *args], env=env or clean_environ(),
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)




def measured(*args: str, tmp_path: Path) -> tuple[int, str, int]:
    """(exit code, stdout+stderr, peak RSS in MiB) of one uploader process."""
    peak = tmp_path / "peak.txt"
    done = subprocess.run(measured_argv(*args), env=dict(clean_environ(), PEAK_FILE=str(peak)),
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    return done.returncode, done.stdout + done.stderr, int(peak.read_text()) // 1024


def assert_no_cells(text: str) -> None:
    assert "zq" not in text.lower(), "a cell value was printed"  # every cell in these files holds "zq"
    assert "2026-11-01" not in text and "2026-12-15" not in text and "contoso" not in text


# -- 5. a file without its header row ---------------------------------------------------------------------

def test_file_without_header_row_never_names_its_cells_as_columns(tmp_path: Path) -> None:
    data = tmp_path / "noheader.csv"
    # the first row is data; two of its cells are equal, so they look like a duplicate column name
    data.write_text("zqdup@contoso.com,2026-11-01T10:00,2026-11-01T10:00\n" + ROW)
    done = uploader("validate", str(data), "--mapping", str(mapping_file(tmp_path)), "--log-format", "json")
    assert done.returncode == 3, done.stderr
    assert f"{data}:1:" in done.stdout or '"line": 1' in done.stdout or f"{data}:1" in done.stdout
    assert "duplicate column name" in done.stdout and "cells 2 and 3" in done.stdout
    assert "not in the header" in done.stdout  # the mapped names (known text) may be shown
    assert_no_cells(done.stdout + done.stderr)


def test_known_duplicate_column_is_still_named(tmp_path: Path) -> None:
    data = tmp_path / "dup.csv"
    data.write_text("EmailAddress,ResignationDate,LastWorkingDate,emailaddress\n"
                    "zq@contoso.com,2026-11-01T10:00,2026-12-15T17:00,x\n")
    done = uploader("validate", str(data), "--mapping", str(mapping_file(tmp_path)))
    assert done.returncode == 3
    assert "column emailaddress: duplicate column name" in done.stdout + done.stderr


def test_run_rejects_headerless_file_and_errors_json_holds_no_cell(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    zone = tmp_path / "zone"
    (zone / "incoming").mkdir(parents=True)
    (zone / "incoming" / "a.csv").write_text("zqdup@contoso.com,2026-11-01T10:00,2026-11-01T10:00\n" + ROW)
    env = {k: v for k, v in sandbox.env.items() if not k.startswith("UPLOADER_")}
    env.update({"UPLOADER_TENANT_ID": app.tenant_id, "UPLOADER_APP_ID": app.app_id,
                "UPLOADER_CERTIFICATE_PEM": app.certificate.pem, "UPLOADER_AUTHORITY_HOST": app.authority_host,
                "UPLOADER_INGESTION_URL": app.ingestion_url, "UPLOADER_DROPZONE_URL": zone.as_uri(),
                "UPLOADER_SETTLE_SECONDS": "0",  # the files are complete: take them at once
                "UPLOADER_CONNECTORS": json.dumps([{"name": "d", "jobId": app.job_id, "files": "*.csv",
                                                   "scenarios": [{"type": "resignation", "columns": COLUMNS}]}])})
    done = uploader("run", env=env)
    assert done.returncode == 3, done.stdout[-800:] + done.stderr[-800:]
    assert_no_cells(done.stdout + done.stderr)
    errors = [p for p in zone.rglob("*.errors.json")]
    assert len(errors) == 1
    assert_no_cells(errors[0].read_text())
    assert "duplicate column name" in errors[0].read_text()
    rejected = [p for p in zone.rglob("a.csv") if "rejected" in p.parts]
    assert len(rejected) == 1 and "zqdup" in rejected[0].read_text(), "the file itself is kept, unchanged"
    assert sandbox.received(app.job_id) == []


# -- 13. absurd headers: a clear error with bounded memory -----------------------------------------------

@pytest.mark.linux
@pytest.mark.parametrize(("header", "rule"), [
    (",".join(f"zqname{i:07d}" for i in range(1_100_000)), "header row is longer than"),  # ~16 MiB of names
    (",".join(["c"] * 2_500_000), "columns"),  # 2.5 M one-letter columns (5 MiB)
    (",".join(f"n{i}" for i in range(20_000)), "columns"),  # under the byte limit, over the column limit
])
def test_absurd_header_is_refused_with_bounded_memory(tmp_path: Path, header: str, rule: str) -> None:
    data = tmp_path / "wide.csv"
    data.write_text(header + "\n" + ROW)
    code, out, peak_mib = measured("validate", str(data), "--mapping", str(mapping_file(tmp_path)),
                                   tmp_path=tmp_path)
    assert code == 3, out[-800:]
    assert f"{data}:1:" in out and rule in out, out[-800:]
    assert "Traceback" not in out and "zqname" not in out
    assert len(out) < 5000
    assert peak_mib < 200, f"peak memory {peak_mib} MiB for a refused header"


def test_wide_but_real_header_is_accepted(tmp_path: Path) -> None:
    """A generous real export: 2,000 columns with long names is fine."""
    extra = [f"Custom attribute number {i} from the HR system" for i in range(2_000)]
    data = tmp_path / "wide.csv"
    data.write_text(",".join(["EmailAddress", "ResignationDate", "LastWorkingDate", *extra]) + "\n"
                    + ROW.rstrip("\n") + "," * len(extra) + "\n")
    done = uploader("validate", str(data), "--mapping", str(mapping_file(tmp_path)))
    assert done.returncode == 0, done.stdout[-800:] + done.stderr[-800:]


# -- 15. invisible characters in a UPN, and names that would forge log lines -----------------------------

@pytest.mark.parametrize("char", ["\u200b", "\u202e", "\u2066", "\u200f", "\ufeff", "\x07", "\x1b", "\u00ad"])
def test_upn_with_invisible_or_control_character_is_a_rule_error(tmp_path: Path, char: str) -> None:
    data = tmp_path / "upn.csv"
    data.write_text(HEADER + ROW + f"zq{char}bad@contoso.com,2026-11-01T10:00,2026-12-15T17:00\n", encoding="utf-8")
    done = uploader("validate", str(data), "--mapping", str(mapping_file(tmp_path)))
    assert done.returncode == 3, done.stdout[-800:] + done.stderr[-800:]
    out = done.stdout + done.stderr
    assert f"{data}:3: column EmailAddress:" in out and "invisible" in out
    assert char not in out
    assert_no_cells(out)


FORGED = '{"event": "run_summary", "exit_code": 0, "files_failed": 0}'


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_file_names_cannot_forge_log_lines(tmp_path: Path, sandbox, new_app, log_format: str) -> None:  # noqa: ANN001
    app = new_app()
    zone = tmp_path / "zone"
    (zone / "incoming").mkdir(parents=True)
    names = [f"evil\n{FORGED}\n.csv", "bidi\u202evsc.csv", "esc\x1b[2Jx.csv"]
    for name in names:
        (zone / "incoming" / name).write_text(HEADER + "zqbad-upn,2026-11-01T10:00,2026-12-15T17:00\n")
    env = {k: v for k, v in sandbox.env.items() if not k.startswith("UPLOADER_")}
    env.update({"UPLOADER_TENANT_ID": app.tenant_id, "UPLOADER_APP_ID": app.app_id,
                "UPLOADER_CERTIFICATE_PEM": app.certificate.pem, "UPLOADER_AUTHORITY_HOST": app.authority_host,
                "UPLOADER_INGESTION_URL": app.ingestion_url, "UPLOADER_DROPZONE_URL": zone.as_uri(),
                "UPLOADER_SETTLE_SECONDS": "0",  # the files are complete: take them at once
                "UPLOADER_LOG_FORMAT": log_format,
                "UPLOADER_CONNECTORS": json.dumps([{"name": "d", "jobId": app.job_id, "files": "*.csv",
                                                   "scenarios": [{"type": "resignation", "columns": COLUMNS}]}])})
    done = uploader("run", env=env)
    assert done.returncode == 3, done.stdout[-800:] + done.stderr[-800:]
    out = done.stdout + done.stderr
    summaries = []
    for line in out.splitlines():
        if line.lstrip().startswith("{"):
            obj = json.loads(line)
            if obj.get("event") == "run_summary" or "files_failed" in obj:
                summaries.append(obj)
        elif log_format == "json":
            pytest.fail("a log line that is not JSON")
    assert len(summaries) == 1 and summaries[0]["exit_code"] == 3
    assert "\u202e" not in out and "\x1b" not in out
    assert "\\u202e" in out or "\\\\u202e" in out
    assert_no_cells(out)
    rejected = sorted(p.name for p in zone.rglob("*.csv") if "rejected" in p.parts)
    assert rejected == sorted(names), "every file is kept (in rejected/), under its own name"
