"""The uploader where CPython lacks POSIX (Windows), end to end, following docs/migrating.md's Windows lines.

Every process here (the sandbox too) starts with tests/winsim/ first on PYTHONPATH: its sitecustomize removes
os.O_NOFOLLOW, os.O_DIRECTORY, os.O_NONBLOCK, os.getuid, dir_fd support, fcntl, pwd, … before `-m uploader`
runs (see its docstring). The doc's PowerShell lines run as written, with C:\\hr-connector, C:\\HR and
%LOCALAPPDATA% mapped to folders here; the remaining commands (mapping init, validate, dry run, doctor, run
with a folder drop zone) use the same files. CI also runs the whole suite on windows-latest and macos-latest.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from uploader.sandbox.client import Sandbox

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
SIM = Path(__file__).resolve().parent / "winsim"
DOC = ROOT / "docs" / "migrating.md"
EXAMPLE = ROOT / "uploader" / "examples" / "resignation.csv"


def powershell_lines(text: str) -> list[list[str]]:
    """The lines of each ```powershell block, in order (indentation of a block in a list item removed)."""
    blocks = re.findall(r"^( *)```powershell\n(.*?)^\1```", text, flags=re.S | re.M)
    return [[line.strip() for line in body.splitlines() if line.strip()] for _, body in blocks]


class Machine:
    """Windows paths of the doc mapped to folders under tmp_path, and commands run in the simulated process."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.home = tmp / "hr-connector"
        self.data = tmp / "HR"
        self.local = tmp / "LocalAppData"
        for folder in (self.home, self.data, self.local):
            folder.mkdir()
        self.env = env
        self.cwd = tmp

    def path(self, text: str) -> str:
        for windows, here in (("$env:LOCALAPPDATA", self.local), ("C:\\hr-connector", self.home),
                              ("C:\\HR", self.data)):
            text = text.replace(windows, str(here))
        return text.replace("\\", "/")

    def argv(self, line: str) -> list[str]:
        words = shlex.split(self.path(line))
        if words[0] in (".venv/Scripts/python", f"{self.home}/.venv/Scripts/python.exe", "python"):
            return [sys.executable, *words[1:]]
        raise AssertionError(f"not a python command: {line}")

    def run(self, argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, cwd=self.cwd, env=env or self.env, capture_output=True, encoding="cp1252",
                              timeout=120, check=False)  # a pipe on Windows: the ANSI code page


def ok(done: subprocess.CompletedProcess[str], code: int = 0) -> subprocess.CompletedProcess[str]:
    assert done.returncode == code, f"{done.args[1:]}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    return done


@pytest.fixture
def windows_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(SIM), str(ROOT)]))
    sandbox = Sandbox.start(tmp_path / "sandbox")
    try:
        yield sandbox
    finally:
        sandbox.stop()


def test_the_migration_guide_on_simulated_windows(tmp_path: Path, windows_sandbox: Sandbox) -> None:
    sandbox = windows_sandbox
    env = dict(sandbox.env, PYTHONPATH=os.pathsep.join([str(SIM), str(ROOT)]))
    probe = subprocess.run([sys.executable, "-c", "import os, fcntl"], env=env, capture_output=True, text=True,
                           check=False)
    assert probe.returncode == 1 and "simulated Windows" in probe.stderr, "the simulation is not in effect"
    machine = Machine(tmp_path, env)
    install, certificate, schedule = powershell_lines(DOC.read_text(encoding="utf-8"))

    # 0. Install: the venv and the extra the doc names; then the version, from the venv's python.
    assert install[0] == "cd C:\\hr-connector" and install[1] == "py -m venv .venv"
    extra = re.fullmatch(r"\.venv\\Scripts\\pip install \.\[(\w+)\]", install[2])
    assert extra and extra[1] in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    machine.cwd = machine.home
    assert ok(machine.run(machine.argv(install[3]))).stdout.startswith("hr-connector uploader ")
    # Steps 1, 2 and 4 say `python`: on Windows that is the venv's only once it is activated (the page said so,
    # but its PowerShell block never activated it).
    assert install[4].startswith(".venv\\Scripts\\Activate.ps1"), install

    # 3. The certificate, as the task's account, into a new folder under %LOCALAPPDATA%.
    assert len(certificate) == 2
    ok(machine.run(machine.argv(certificate[0])))
    shown = ok(machine.run(machine.argv(certificate[1]))).stdout
    key_file = machine.local / "hr-connector" / "hr-connector-contoso.pem"
    assert "BEGIN" not in shown and "thumbprint (SHA-1)" in shown
    tenant, app, job = (str(uuid.uuid4()) for _ in range(3))
    sandbox.register_app(app, key_file.read_text(), tenant_id=tenant)
    sandbox.bind_job(job, app)

    # 1, 2, 4: the mapping from the header, the check, the plan, the live checks (with a folder drop zone).
    csv_file = machine.data / "departures.csv"
    shutil.copyfile(EXAMPLE, csv_file)
    mapping = machine.home / "departures.json"
    ok(machine.run([sys.executable, "-m", "uploader", "mapping", "init", str(csv_file), "--scenario", "resignation",
                    "--job-id", job, "-o", str(mapping)]))
    assert "12 records" in ok(machine.run([sys.executable, "-m", "uploader", "validate", str(csv_file),
                                           "--mapping", str(mapping)])).stdout
    ok(machine.run([sys.executable, "-m", "uploader", "upload", str(csv_file), "--mapping", str(mapping),
                    "--dry-run"]))
    endpoints = {"UPLOADER_AUTHORITY_HOST": sandbox.authority_host, "UPLOADER_INGESTION_URL": sandbox.ingestion_url}
    zone = tmp_path / "zone"
    (zone / "incoming" / "departures").mkdir(parents=True)
    connectors = json.dumps([{"name": "departures", "jobId": job, "files": "departures/*.csv",
                              "scenarios": json.loads(mapping.read_text())["scenarios"]}])
    zone_env = {**env, **endpoints, "UPLOADER_DROPZONE_URL": zone.as_uri(), "UPLOADER_CONNECTORS": connectors}
    doctor = ok(machine.run([sys.executable, "-m", "uploader", "doctor", "--tenant-id", tenant, "--app-id", app,
                             "--certificate", str(key_file), "--job-id", job], env=zone_env)).stdout
    assert "sign-in" in doctor and "drop zone" in doctor, doctor
    assert sandbox.job_stats(job)["uploads"] == 0

    # 5. Task Scheduler: the variables setx stores, then the task's program, arguments and folder.
    variables: dict[str, str] = {}
    for line in schedule[:-3]:
        name, value = re.fullmatch(r'setx (UPLOADER_\w+) "([^"]*)"', line).groups()  # type: ignore[union-attr]
        variables[name] = {"<Directory (tenant) ID>": tenant, "<Application (client) ID>": app}.get(
            value, machine.path(value))
    assert variables["UPLOADER_CERTIFICATE"] == str(key_file) and variables["UPLOADER_MAPPING"] == str(mapping)
    action = re.fullmatch(r'\$action = New-ScheduledTaskAction -Execute "([^"]+)" -Argument "([^"]+)" '
                          r'-WorkingDirectory "([^"]+)"', schedule[-3])
    assert action, schedule[-3]
    assert schedule[-1].startswith("Register-ScheduledTask ") and "-Action $action" in schedule[-1]
    machine.cwd = Path(machine.path(action[3]))
    task = machine.run(machine.argv(f"{action[1]} {action[2]}"), env={**env, **endpoints, **variables})
    ok(task)
    assert sandbox.job_stats(job)["records"] == 12
    assert json.loads(task.stdout.splitlines()[-1])["exit_code"] == 0
    assert (machine.local / "hr-connector" / "state" / "checkpoints" / job).is_dir()

    # The job's `run` over a folder drop zone: a file is sent and filed; a link in incoming/ is refused.
    shutil.copyfile(EXAMPLE, zone / "incoming" / "departures" / "2026-12-06-東京.csv")  # not in cp1252
    outside = tmp_path / "outside.csv"
    outside.write_bytes(EXAMPLE.read_bytes())
    (zone / "incoming" / "departures" / "link.csv").symlink_to(outside)
    run = ok(machine.run([sys.executable, "-m", "uploader", "run"],
                         env={**zone_env, "UPLOADER_TENANT_ID": tenant, "UPLOADER_APP_ID": app,
                              "UPLOADER_CERTIFICATE": str(key_file), "UPLOADER_SETTLE_SECONDS": "0"}), code=3)
    assert "link.csv: a symbolic link" in run.stderr, run.stderr
    assert sandbox.job_stats(job)["records"] == 24
    assert [p.name for p in (zone / "processed").rglob("*.csv")] == ["2026-12-06-東京.csv"]
    assert "2026-12-06-\\u6771\\u4eac.csv" in run.stdout
    assert os.path.lexists(zone / "incoming" / "departures" / "link.csv") and outside.exists()
