"""`python -m uploader run` (job mode) end to end: the real CLI in subprocesses, configured only through the
job's UPLOADER_* environment, against a real drop zone (Azurite blob container or a local folder) and the
loopback sandbox (real MSAL, TLS, HTTP).

Assertions compare counts, paths, line numbers and rules; failure messages never echo a cell value.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from uploader.sandbox.client import clean_environ

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]

RESIGNATION_COLUMNS = {"userPrincipalName": "EmailAddress", "resignationDate": "ResignationDate",
                       "lastWorkingDate": "LastWorkingDate"}
PROFILE_COLUMNS = {"userPrincipalName": "UPN", "firstName": "First", "lastName": "Last",
                   "addressLine1": "Street", "zipCode": "Zip"}
SECRET_UPN = "NOT-AN-ADDRESS-7731"  # a cell value that must never appear in any output
SECRET_DATE = "2026-13-45T00:00"


# -- drop zones --------------------------------------------------------------------------------------

class Zone:
    """A drop zone the test arranges and inspects directly (not through the uploader's own code)."""

    def __init__(self, kind: str, tmp_path: Path, azurite) -> None:  # noqa: ANN001
        self.kind = kind
        self.env: dict[str, str] = {}
        if kind == "folder":
            self.root = tmp_path / "dropzone"
            self.root.mkdir()
            self.url = self.root.as_uri()
        else:
            self.url, self.container = azurite.new_container()
            self.env = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}

    def put(self, path: str, data: bytes, age_seconds: float = 0) -> None:
        if self.kind == "folder":
            target = self.root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            if age_seconds:
                stamp = time.time() - age_seconds
                os.utime(target, (stamp, stamp))
        else:
            self.container.upload_blob(path, data, overwrite=True)

    def paths(self, prefix: str = "") -> list[str]:
        if self.kind == "folder":
            found = [p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()]
            return sorted(p for p in found if p.startswith(prefix) and "/." not in "/" + p)
        return sorted(b.name for b in self.container.list_blobs(name_starts_with=prefix))

    def read(self, path: str) -> bytes:
        if self.kind == "folder":
            return (self.root / path).read_bytes()
        return self.container.get_blob_client(path).download_blob().readall()

    def write_json(self, path: str, obj: object) -> None:
        self.put(path, json.dumps(obj).encode())


@pytest.fixture(params=["blob", "folder"])
def zone(request: pytest.FixtureRequest, tmp_path: Path) -> Zone:
    return Zone(request.param, tmp_path, request.getfixturevalue("azurite") if request.param == "blob" else None)


@pytest.fixture
def blob_zone(tmp_path: Path, azurite) -> Zone:  # noqa: ANN001
    return Zone("blob", tmp_path, azurite)


# -- data and helpers --------------------------------------------------------------------------------

def resignation_csv(n: int, start: int = 0, bad_line: int | None = None) -> bytes:
    """n resignation records (user{i}@contoso.com); bad_line (1-based physical line) breaks two rules."""
    out = io.StringIO(newline="")
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(["EmailAddress", "ResignationDate", "LastWorkingDate"])
    today = dt.date.today()
    for i in range(start, start + n):
        row = [f"user{i}@contoso.com", f"{today - dt.timedelta(days=20)}T09:00:00Z", f"{today}T17:00:00Z"]
        if bad_line is not None and i - start + 2 == bad_line:
            row = [SECRET_UPN, SECRET_DATE, row[2]]
        w.writerow(row)
    return out.getvalue().encode()


def profile_csv(n: int) -> bytes:
    rows = ["UPN,First,Last,Street,Zip"] + [f"p{i}@contoso.com,Ann{i},Lee{i},{i} Main St,9800{i % 10}"
                                            for i in range(n)]
    return ("\n".join(rows) + "\n").encode()


def connector(job_id: str, files: str, name: str = "departures", columns: dict | None = None,
              scenario: str = "resignation") -> dict:
    return {"name": name, "jobId": job_id, "files": files,
            "scenarios": [{"type": scenario, "columns": columns or RESIGNATION_COLUMNS}]}


def job_env(sandbox, app, zone: Zone | None, connectors: list[dict] | None, **extra: str) -> dict[str, str]:  # noqa: ANN001
    """The environment the Pulumi program gives the Container Apps job, pointed at the sandbox."""
    env = dict(sandbox.env) if sandbox is not None else clean_environ()
    env = {k: v for k, v in env.items() if not k.startswith("UPLOADER_") and k != "AZURE_STORAGE_CONNECTION_STRING"}
    if app is not None:
        env.update({
            "UPLOADER_CLOUD": "commercial",
            "UPLOADER_TENANT_ID": app.tenant_id,
            "UPLOADER_APP_ID": app.app_id,
            "UPLOADER_CERTIFICATE_PEM": app.certificate.pem,
            "UPLOADER_AUTHORITY_HOST": app.authority_host,
            "UPLOADER_INGESTION_URL": app.ingestion_url,
        })
    if zone is not None:
        env["UPLOADER_DROPZONE_URL"] = zone.url
        env.update(zone.env)
    if connectors is not None:
        env["UPLOADER_CONNECTORS"] = json.dumps(connectors)
    # Files these tests drop are complete when the run starts: take them at once (the settle time's own tests
    # set it back; the job's default is 60 s).
    env["UPLOADER_SETTLE_SECONDS"] = "0"
    env.update(extra)
    return env


def run_job(env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "uploader", "run"], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def start_job(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "uploader", "run"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def summary(done: subprocess.CompletedProcess[str] | str) -> dict:
    """The run's one JSON summary line on stdout."""
    stdout = done if isinstance(done, str) else done.stdout
    lines = [(line, json.loads(line)) for line in stdout.splitlines() if line.startswith("{")]
    found = [(raw, obj) for raw, obj in lines if obj.get("event") == "run_summary"]
    assert len(found) == 1, f"expected one run_summary line, found {len(found)}"
    raw, obj = found[0]
    # the failed-execution alert (provisioning/components/alerts.py) matches this text in the console log
    assert "run_summary" in raw and f'"exit_code": {obj["exit_code"]}' in raw
    return obj


def outcome(done: subprocess.CompletedProcess[str]) -> str:
    """Exit code and the tail of the output for assertion messages (the uploader never prints cell values)."""
    return f"exit {done.returncode}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"


def records_at(sandbox, job_id: str) -> Counter:  # noqa: ANN001
    """Every record the sandbox accepted for job_id, counted (header rows dropped)."""
    seen: Counter = Counter()
    for body in sandbox.received(job_id):
        rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
        seen.update(tuple(r) for r in rows[1:])
    return seen


def file_records(data: bytes) -> Counter:
    return Counter(tuple(r) for r in list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))[1:])


def today_prefix() -> str:
    return "processed/" + dt.datetime.now(dt.UTC).strftime("%Y/%m/%d") + "/"


# -- nothing to do, configuration errors ------------------------------------------------------------

@pytest.mark.parametrize("value", [None, "[]", ""])
def test_no_connectors_configured_is_success(value: str | None) -> None:
    env = job_env(None, None, None, None)
    if value is not None:
        env["UPLOADER_CONNECTORS"] = value
    done = run_job(env)
    assert done.returncode == 0, outcome(done)
    assert "nothing to do: no connectors configured yet" in done.stdout
    assert summary(done)["connectors"] == []


def test_the_run_summary_names_the_stack_when_the_job_sets_it() -> None:
    """A hosting stack's shared workspace holds many tenants' runs: each summary names its stack."""
    env = job_env(None, None, None, None)
    assert "stack" not in summary(run_job(env))
    done = run_job({**env, "UPLOADER_STACK": "contoso-hosted"})
    assert done.returncode == 0, outcome(done)
    assert summary(done)["stack"] == "contoso-hosted"


def test_no_files_is_success(zone: Zone, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    zone.put("incoming/other/readme.txt", b"not for any connector")
    done = run_job(job_env(sandbox, app, zone, [connector(app.job_id, "departures/*.csv")]))
    assert done.returncode == 0, outcome(done)
    assert "nothing to do: no new files" in done.stdout
    assert "1 file(s) under incoming/ match no connector" in done.stdout
    line = summary(done)
    assert line["files_sent"] == 0 and line["files_unmatched"] == 1 and line["exit_code"] == 0
    assert sandbox.stats()["tokens_issued"] == 0, "nothing to send: no sign-in either"
    assert zone.paths("incoming/") == ["incoming/other/readme.txt"]


@pytest.mark.parametrize(("change", "message"), [
    ({"UPLOADER_CONNECTORS": "[{"}, "UPLOADER_CONNECTORS: not valid JSON"),
    ({"UPLOADER_CONNECTORS": '{"name": "x"}'}, "UPLOADER_CONNECTORS: must be a list"),
    ({"UPLOADER_CONNECTORS": json.dumps([{"jobId": "not-a-guid", "files": "*.csv",
                                          "scenarios": [{"type": "resignation", "columns": RESIGNATION_COLUMNS}]}])},
     "UPLOADER_CONNECTORS[0].jobId"),
    ({"UPLOADER_CONNECTORS": json.dumps([{"jobId": str(uuid.uuid4()),
                                          "scenarios": [{"type": "resignation", "columns": RESIGNATION_COLUMNS}]}])},
     "UPLOADER_CONNECTORS[0].files: is required in job mode"),
    ({"UPLOADER_TENANT_ID": ""}, "UPLOADER_TENANT_ID is not set"),
    ({"UPLOADER_APP_ID": ""}, "UPLOADER_APP_ID is not set"),
    ({"UPLOADER_CERTIFICATE_PEM": ""}, "UPLOADER_CERTIFICATE_PEM is not set"),
    ({"UPLOADER_CERTIFICATE_PEM": "not a pem"}, "UPLOADER_CERTIFICATE_PEM"),
    ({"UPLOADER_DROPZONE_URL": ""}, "UPLOADER_DROPZONE_URL is not set"),
    ({"UPLOADER_DROPZONE_URL": "ftp://x/y"}, "UPLOADER_DROPZONE_URL"),
    ({"UPLOADER_DROPZONE_URL": "file:///no/such/folder"}, "UPLOADER_DROPZONE_URL: folder"),
    ({"UPLOADER_CLOUD": "mars"}, "UPLOADER_CLOUD"),
    ({"UPLOADER_RECORDS_PER_CALL": "0"}, "UPLOADER_RECORDS_PER_CALL"),
    ({"UPLOADER_DEADLINE": "soon"}, "UPLOADER_DEADLINE"),
])
def test_configuration_errors_exit_2_naming_the_variable(tmp_path: Path, make_certificate, change: dict,
                                                          message: str) -> None:  # noqa: ANN001
    cert = make_certificate()
    env = job_env(None, None, None, [connector(str(uuid.uuid4()), "*.csv")])
    env.update({"UPLOADER_TENANT_ID": str(uuid.uuid4()), "UPLOADER_APP_ID": str(uuid.uuid4()),
                "UPLOADER_CERTIFICATE_PEM": cert.pem, "UPLOADER_DROPZONE_URL": tmp_path.as_uri()})
    env.update(change)
    env = {k: v for k, v in env.items() if v != ""}
    done = run_job(env)
    assert done.returncode == 2, outcome(done)
    assert message in done.stderr, outcome(done)
    assert "Traceback" not in done.stderr
    assert "PRIVATE KEY" not in done.stdout + done.stderr


# -- outcomes ----------------------------------------------------------------------------------------

def test_valid_file_is_sent_and_processed_invalid_is_rejected(zone: Zone, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    good = resignation_csv(23)
    bad = resignation_csv(9, start=100, bad_line=5)
    zone.put("incoming/departures/2026-11-20.csv", good, age_seconds=60)
    zone.put("incoming/departures/2026-11-21.csv", bad)
    done = run_job(job_env(sandbox, app, zone, [connector(app.job_id, "departures/*.csv")],
                           UPLOADER_RECORDS_PER_CALL="10"))
    assert done.returncode == 3, outcome(done)

    # the good file: every record at the sandbox exactly once, the file under processed/<date>/
    assert records_at(sandbox, app.job_id) == file_records(good)
    assert sandbox.job_stats(app.job_id)["uploads"] == 3
    assert zone.paths("processed/") == [today_prefix() + "departures/2026-11-20.csv"]
    assert zone.read(today_prefix() + "departures/2026-11-20.csv") == good

    # the bad file: nothing from it sent, moved to rejected/ with its errors beside it
    assert zone.paths("rejected/") == ["rejected/departures/2026-11-21.csv",
                                       "rejected/departures/2026-11-21.csv.errors.json"]
    assert zone.read("rejected/departures/2026-11-21.csv") == bad
    errors = json.loads(zone.read("rejected/departures/2026-11-21.csv.errors.json"))
    assert errors["file"] == "incoming/departures/2026-11-21.csv"
    assert errors["problem_count"] == 2
    assert {(p["line"], p["column"]) for p in errors["problems"]} == {(5, "EmailAddress"), (5, "ResignationDate")}
    assert all(p["rule"] for p in errors["problems"])
    for text in (done.stdout, done.stderr, json.dumps(errors)):
        assert SECRET_UPN not in text and SECRET_DATE not in text, "a cell value leaked into the output"
    assert zone.paths("incoming/") == []

    line = summary(done)
    assert line["exit_code"] == 3 and line["files_sent"] == 1 and line["files_rejected"] == 1
    assert line["records_sent"] == 23 and line["files_failed"] == 0
    (departures,) = line["connectors"]
    assert departures["name"] == "departures" and departures["job_id"] == app.job_id
    assert departures["files_sent"] == 1 and departures["records_sent"] == 23 and departures["seconds"] >= 0
    assert "departures: 1 sent, 0 skipped, 1 rejected, 0 failed" in done.stdout


def test_oldest_first_and_several_connectors(sandbox, new_app, tmp_path: Path) -> None:  # noqa: ANN001
    app = new_app()
    profiles_job = str(uuid.uuid4())
    sandbox.bind_job(profiles_job, app.app_id)
    zone = Zone("folder", tmp_path, None)
    zone.put("incoming/departures/b.csv", resignation_csv(3, start=0), age_seconds=300)
    zone.put("incoming/departures/a.csv", resignation_csv(3, start=10), age_seconds=100)
    zone.put("incoming/profiles/2026/11/all.csv", profile_csv(4))
    zone.put("incoming/misc.csv", resignation_csv(2, start=50))
    zone.put("incoming/notes.txt", b"matches nothing")
    catchall_job = str(uuid.uuid4())
    sandbox.bind_job(catchall_job, app.app_id)
    connectors = [connector(app.job_id, "departures/*.csv"),
                  connector(profiles_job, "profiles/**/*.csv", name="profiles", columns=PROFILE_COLUMNS,
                            scenario="employeeProfile"),
                  connector(catchall_job, "*.csv", name="catchall")]
    done = run_job(job_env(sandbox, app, zone, connectors, UPLOADER_LOG_FORMAT="json"))
    assert done.returncode == 0, outcome(done)
    events = [json.loads(line) for line in done.stdout.splitlines()]
    started = [e["file"] for e in events if e["event"] == "file_started"]
    assert started == ["incoming/departures/b.csv", "incoming/departures/a.csv", "incoming/profiles/2026/11/all.csv",
                       "incoming/misc.csv"]
    assert sum(records_at(sandbox, app.job_id).values()) == 6
    assert sum(records_at(sandbox, profiles_job).values()) == 4
    assert sum(records_at(sandbox, catchall_job).values()) == 2
    assert sandbox.stats()["tokens_issued"] == 1, "one token per run"
    line = summary(done)
    assert [c["name"] for c in line["connectors"]] == ["departures", "profiles", "catchall"]
    assert line["connectors"][1]["freshness_warning"] is False
    assert line["files_unmatched"] == 1 and zone.paths("incoming/") == ["incoming/notes.txt"]


def test_overlapping_globs_go_to_the_first_connector(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    second = str(uuid.uuid4())
    sandbox.bind_job(second, app.app_id)
    zone = Zone("folder", tmp_path, None)
    zone.put("incoming/departures/a.csv", resignation_csv(2))
    connectors = [connector(app.job_id, "departures/*.csv"), connector(second, "**/*.csv", name="everything")]
    done = run_job(job_env(sandbox, app, zone, connectors))
    assert done.returncode == 0, outcome(done)
    assert "match the `files` globs of both departures and everything" in done.stdout
    assert sandbox.job_stats(app.job_id)["records"] == 2 and sandbox.job_stats(second)["records"] == 0


def test_transient_failure_stays_in_incoming_and_the_next_run_resumes(zone: Zone, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    data = resignation_csv(50)
    later = resignation_csv(5, start=500)
    zone.put("incoming/departures/big.csv", data, age_seconds=60)
    zone.put("incoming/departures/later.csv", later)
    # three chunks accepted, then a 503 whose Retry-After exceeds the deadline: the run gives up on chunk 4
    sandbox.faults([{"kind": "slow", "seconds": 0, "job_id": app.job_id}] * 3
                   + [{"kind": "status", "status": 503, "retry_after": 120, "job_id": app.job_id}])
    env = job_env(sandbox, app, zone, [connector(app.job_id, "departures/*.csv")],
                  UPLOADER_RECORDS_PER_CALL="10", UPLOADER_DEADLINE="5")
    first = run_job(env)
    assert first.returncode == 1, outcome(first)
    assert zone.paths("incoming/") == ["incoming/departures/big.csv", "incoming/departures/later.csv"]
    assert zone.paths("processed/") == [] and zone.paths("rejected/") == []
    checkpoints = [p for p in zone.paths("state/") if p.startswith(f"state/{app.job_id}/")]
    assert len(checkpoints) == 1
    record = json.loads(zone.read(checkpoints[0]))
    assert record["records_acked"] == 30 and record["completed_at"] is None
    line = summary(first)
    assert line["exit_code"] == 1 and line["files_failed"] == 1 and line["files_waiting"] == 1
    assert sum(records_at(sandbox, app.job_id).values()) == 30
    assert "left in incoming/" in first.stdout + first.stderr

    second = run_job(env)
    assert second.returncode == 0, outcome(second)
    assert records_at(sandbox, app.job_id) == file_records(data) + file_records(later), "a record was resent or lost"
    assert sandbox.job_stats(app.job_id)["uploads"] == 3 + 2 + 1
    assert zone.paths("incoming/") == []
    assert zone.paths("processed/") == [today_prefix() + "departures/big.csv", today_prefix() + "departures/later.csv"]
    assert summary(second)["records_sent"] == 25


def test_identical_content_within_12_hours_is_skipped_and_filed(blob_zone: Zone, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    data = resignation_csv(4)
    env = job_env(sandbox, app, blob_zone, [connector(app.job_id, "departures/*.csv")])
    blob_zone.put("incoming/departures/monday.csv", data)
    assert run_job(env).returncode == 0
    blob_zone.put("incoming/departures/monday.csv", data)  # the HR system exports the same file again
    again = run_job(env)
    assert again.returncode == 0, outcome(again)
    assert "skipped" in again.stdout and "within 12 hours" in again.stdout
    assert sum(records_at(sandbox, app.job_id).values()) == 4
    processed = blob_zone.paths("processed/")
    first = today_prefix() + "departures/monday.csv"
    assert len(processed) == 2 and first in processed
    (second,) = set(processed) - {first}  # the name was taken: a time stamp goes before the extension
    assert second.startswith(today_prefix() + "departures/monday.") and second.endswith(".csv")
    assert summary(again)["files_skipped"] == 1


def test_interrupted_move_is_finished_without_resending(zone: Zone, sandbox, new_app) -> None:  # noqa: ANN001
    """An execution died after copying a sent file to processed/ but before deleting it from incoming/."""
    app = new_app()
    data = resignation_csv(3)
    src, dst = "incoming/departures/x.csv", "processed/2026/01/02/departures/x.csv"
    zone.put(src, data)
    zone.put(dst, data)
    zone.write_json("state/moves/0123.json", {"src": src, "dst": dst, **_version(zone, src),
                                              "at": "2026-01-02T00:00:00Z"})
    done = run_job(job_env(sandbox, app, zone, [connector(app.job_id, "departures/*.csv")]))
    assert done.returncode == 0, outcome(done)
    assert "finished an interrupted move" in done.stdout
    assert zone.paths("incoming/") == [] and zone.paths("state/moves/") == []
    assert zone.paths("processed/") == [dst]
    assert sandbox.job_stats(app.job_id)["records"] == 0


def _version(zone: Zone, path: str) -> dict[str, object]:
    """The drop zone's own notion of the file's version, as a move journal records it (the uploader's backend,
    used read-only: the file is read into a temporary copy)."""
    import tempfile

    from uploader.job.dropzone import StorageAccess, open_dropzone

    access = StorageAccess(connection_string=zone.env.get("AZURE_STORAGE_CONNECTION_STRING"))
    with tempfile.TemporaryDirectory() as tmp:
        return open_dropzone(zone.url, access).download(path, Path(tmp) / "copy").to_json()


# -- concurrency -------------------------------------------------------------------------------------

def test_two_overlapping_runs_send_each_file_once(zone: Zone, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    files = {f"incoming/departures/f{i}.csv": resignation_csv(6, start=100 * i) for i in range(4)}
    for i, (path, data) in enumerate(files.items()):
        zone.put(path, data, age_seconds=100 - i)
    # every upload answers late, so the two executions overlap for the whole run
    sandbox.faults([{"kind": "slow", "seconds": 0.5, "job_id": app.job_id}] * 8)
    env = job_env(sandbox, app, zone, [connector(app.job_id, "departures/*.csv")], UPLOADER_RECORDS_PER_CALL="3")
    runs = [start_job(env), start_job(env)]
    results = [p.communicate(timeout=120) for p in runs]
    assert [p.returncode for p in runs] == [0, 0], results
    expected = Counter()
    for data in files.values():
        expected += file_records(data)
    assert records_at(sandbox, app.job_id) == expected, "a file was sent twice (or not at all)"
    lines = [summary(out) for out, _ in results]
    assert sum(line["files_sent"] for line in lines) == 4
    assert sum(line["files_locked"] for line in lines) >= 1, "the two executions never met over a file"
    assert zone.paths("incoming/") == []
    assert len(zone.paths("processed/")) == 4
    assert [p for p in zone.paths("state/") if "/locks/" in p and p.endswith(".lock")] == []


# -- freshness ---------------------------------------------------------------------------------------

def test_freshness_warning_for_employee_profiles(blob_zone: Zone, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    connectors = [connector(app.job_id, "profiles/*.csv", name="profiles", columns=PROFILE_COLUMNS,
                            scenario="employeeProfile")]
    env = job_env(sandbox, app, blob_zone, connectors)
    now = dt.datetime.now(dt.UTC)
    blob_zone.write_json(f"state/connectors/{app.job_id}.json", {
        "job_id": app.job_id, "name": "profiles",
        "first_seen": (now - dt.timedelta(days=60)).isoformat(),
        "last_sent_at": (now - dt.timedelta(days=16, hours=1)).isoformat(),
    })
    stale = run_job(env)
    assert stale.returncode == 0, outcome(stale)
    assert "maps employeeProfile and has sent nothing for 16 days" in stale.stdout
    (profiles,) = summary(stale)["connectors"]
    assert profiles["freshness_warning"] is True and profiles["days_since_sent"] >= 16

    blob_zone.put("incoming/profiles/today.csv", profile_csv(3))
    fresh = run_job(env)
    assert fresh.returncode == 0, outcome(fresh)
    assert "sent nothing" not in fresh.stdout
    (profiles,) = summary(fresh)["connectors"]
    assert profiles["freshness_warning"] is False and profiles["days_since_sent"] < 1
    state = json.loads(blob_zone.read(f"state/connectors/{app.job_id}.json"))
    assert dt.datetime.fromisoformat(state["last_sent_at"].replace("Z", "+00:00")) > now - dt.timedelta(minutes=5)


def test_new_profile_connector_is_not_stale_on_day_one(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    zone = Zone("folder", tmp_path, None)
    connectors = [connector(app.job_id, "profiles/*.csv", name="profiles", columns=PROFILE_COLUMNS,
                            scenario="employeeProfile")]
    done = run_job(job_env(sandbox, app, zone, connectors))
    assert done.returncode == 0, outcome(done)
    assert "sent nothing" not in done.stdout
    state = json.loads(zone.read(f"state/connectors/{app.job_id}.json"))
    assert state["first_seen"] and state["last_sent_at"] is None


# -- failures that are the run's, not the file's ------------------------------------------------------

def test_wrong_job_fails_and_leaves_files(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    other = new_app()  # its job belongs to another app: the service answers 403 mismatch
    zone = Zone("folder", tmp_path, None)
    zone.put("incoming/departures/0-bad.csv", resignation_csv(2, bad_line=2), age_seconds=20)
    zone.put("incoming/departures/a.csv", resignation_csv(2), age_seconds=10)
    zone.put("incoming/departures/b.csv", resignation_csv(2, start=5))
    done = run_job(job_env(sandbox, app, zone, [connector(other.job_id, "departures/*.csv")]), timeout=30)
    assert done.returncode == 1, "failed wins over rejected\n" + outcome(done)
    assert "jobId and corresponding appId do not match" in done.stderr + done.stdout
    assert zone.paths("incoming/") == ["incoming/departures/a.csv", "incoming/departures/b.csv"]
    assert zone.paths("rejected/") == ["rejected/departures/0-bad.csv", "rejected/departures/0-bad.csv.errors.json"]
    line = summary(done)
    assert line["files_failed"] == 1 and line["files_waiting"] == 1 and line["files_rejected"] == 1
    assert line["exit_code"] == 1
    assert sandbox.job_stats(other.job_id)["records"] == 0


def test_sign_in_refused_fails_every_connector_and_moves_nothing(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app(register=False)  # Entra does not know this app: AADSTS700016
    second_job = str(uuid.uuid4())
    zone = Zone("folder", tmp_path, None)
    zone.put("incoming/departures/a.csv", resignation_csv(2))
    zone.put("incoming/reviews/r.csv", resignation_csv(2, start=9))
    connectors = [connector(app.job_id, "departures/*.csv"), connector(second_job, "reviews/*.csv", name="reviews")]
    done = run_job(job_env(sandbox, app, zone, connectors), timeout=30)
    assert done.returncode == 1, outcome(done)
    assert "AADSTS700016" in done.stdout + done.stderr
    assert zone.paths("incoming/") == ["incoming/departures/a.csv", "incoming/reviews/r.csv"]
    assert [c["files_failed"] for c in summary(done)["connectors"]] == [1, 1]
    assert app.certificate.pem.split("\n")[1] not in done.stdout + done.stderr



def test_missing_container_fails_with_the_drop_zone_named(azurite, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    zone = Zone("blob", Path("/nonexistent"), azurite)
    zone.url = zone.url.rsplit("/", 1)[0] + "/no-such-container"
    done = run_job(job_env(sandbox, app, zone, [connector(app.job_id, "*.csv")]))
    assert done.returncode == 1, outcome(done)
    assert "no-such-container" in done.stderr and "ContainerNotFound" in done.stderr
    assert "Traceback" not in done.stderr and "AccountKey" not in done.stderr
    line = summary(done)
    assert line["exit_code"] == 1 and "ContainerNotFound" in line["error"]

