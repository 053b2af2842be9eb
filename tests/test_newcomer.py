"""A newcomer's first hour (issue 16, B6/B7/B12/B13): Microsoft's scenario names, `cert new --out-dir`,
PowerShell-style flags, and the docs' sandbox recipe. Every test drives the real command line."""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from provisioning.config import ConfigError, load_settings
from uploader.job.connectors import load_connectors
from uploader.model.mapping import PLACEHOLDER_JOB_IDS
from uploader.model.scenarios import SCENARIO_NAMES, SCENARIOS
from uploader.sandbox.client import clean_environ

REPO = Path(__file__).resolve().parent.parent
TENANT = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def job_id() -> str:
    return str(uuid.uuid4())


MULTI_HEADER = ("HRScenario,EmailAddress,ResignationDate,LastWorkingDate,EffectiveDate,Remarks,Rating,OldLevel,"
                "NewLevel\n")


def mapping_with(types: list[str]) -> dict:
    columns = {
        "resignation": {"userPrincipalName": "EmailAddress", "resignationDate": "ResignationDate",
                        "lastWorkingDate": "LastWorkingDate"},
        "jobLevelChange": {"userPrincipalName": "EmailAddress", "effectiveDate": "EffectiveDate"},
        "performanceReview": {"userPrincipalName": "EmailAddress", "effectiveDate": "EffectiveDate"},
        "performanceImprovementPlan": {"userPrincipalName": "EmailAddress", "effectiveDate": "EffectiveDate"},
        "employeeProfile": {"userPrincipalName": "EmailAddress", "firstName": "F", "lastName": "L",
                            "addressLine1": "A", "zipCode": "Z"},
    }
    from uploader.model.scenarios import lookup_scenario

    scenarios = []
    for i, name in enumerate(types):
        spec = lookup_scenario(name)
        assert spec is not None, name
        scenarios.append({"type": name, "value": f"v{i}", "columns": columns[spec.type]})
    return {"name": "c", "jobId": job_id(), "files": "hr/*.csv", "scenarioColumn": "HRScenario",
            "scenarios": scenarios}


# --- B6: one table of scenario names, accepted everywhere ----------------------------------------------

ALL_NAMES = [(t, n) for t, names in SCENARIO_NAMES.items() for n in names]


def test_the_table_names_every_scenario_and_its_key() -> None:
    assert set(SCENARIO_NAMES) == set(SCENARIOS)
    for t, names in SCENARIO_NAMES.items():
        assert t in names
    keys = [n.lower() for names in SCENARIO_NAMES.values() for n in names]
    assert len(keys) == len(set(keys)) + 1  # `resignation` and Microsoft's `Resignation` differ only in case


@pytest.mark.parametrize("given", ["Job level changes", "Employee resignation", "Employee resignations",
                                   "Performance reviews", "Performance improvement plans", "job LEVEL  change",
                                   "employee profiles"])
def test_mapping_init_accepts_microsofts_names(tmp_path: Path, run_uploader, given: str) -> None:
    header = write(tmp_path / "h.csv", "EmailAddress,ResignationDate,LastWorkingDate,EffectiveDate,EmployeeFirstName,"
                   "EmployeeLastName,EmployeeAddressLine1,EmployeeZipCode\n")
    result = run_uploader("mapping", "init", header, "--scenario", given)
    assert result.returncode == 0, result.stderr
    from uploader.model.scenarios import lookup_scenario

    assert json.loads(result.stdout)["scenarios"][0]["type"] == lookup_scenario(given).type  # type: ignore[union-attr]


def test_mapping_files_stack_files_and_job_connectors_accept_every_name(tmp_path: Path, run_uploader) -> None:
    import yaml

    names = [n for _, n in ALL_NAMES]
    csv_file = write(tmp_path / "a.csv", MULTI_HEADER + "v0,a@contoso.com,2026-01-01T00:00,2026-01-02T00:00,,,,,\n")
    by_type: dict[str, list[str]] = {}
    for t, n in ALL_NAMES:
        by_type.setdefault(t, []).append(n)
    # Every name, in connectors of one scenario type each; resignation first so the CSV row is valid.
    for t, group in by_type.items():
        if t == "employeeProfile":
            continue
        for name in group:
            mapping = mapping_with([name]) if t == "resignation" else mapping_with(["resignation", name])
            f = write(tmp_path / "m.json", json.dumps(mapping))
            result = run_uploader("validate", csv_file, "--mapping", f)
            assert result.returncode == 0, (name, result.stderr)
            # UPLOADER_CONNECTORS (job mode) and the stack config read the same model.
            (parsed,) = load_connectors(json.dumps([mapping]))
            assert parsed.scenarios[-1].type == t
    # A stack file with Microsoft's wording: the uploader's --stack and provisioning's config both accept it.
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    connector = mapping_with(["Employee resignation", "Job level change", "performance reviews"])
    config = {"hr-connector:tenantId": TENANT, "hr-connector:location": "westeurope",
              "hr-connector:connectors": [connector]}
    (stacks / "Pulumi.t.yaml").write_text(yaml.safe_dump({"config": config}))
    result = run_uploader("validate", csv_file, "--stack", "t", "--stacks-dir", stacks)
    assert result.returncode == 0, result.stderr
    settings = load_settings(config)
    assert [s.type for s in settings.connectors[0].scenarios] == ["resignation", "jobLevelChange", "performanceReview"]
    assert names  # every name was tried above


def test_an_unknown_scenario_name_is_refused_with_the_table_pointer(tmp_path: Path, run_uploader) -> None:
    header = write(tmp_path / "h.csv", "EmailAddress,ResignationDate,LastWorkingDate\n")
    result = run_uploader("mapping", "init", header, "--scenario", "Promotions")
    assert result.returncode == 2 and "docs/mapping.md" in result.stderr
    with pytest.raises(ConfigError, match="unknown scenario type"):
        load_settings({"hr-connector:tenantId": TENANT, "hr-connector:location": "westeurope",
                        "hr-connector:connectors": [mapping_with(["resignation"]) | {"scenarios": [
                            {"type": "Promotions", "columns": {"userPrincipalName": "EmailAddress"}}]}]})


def test_docs_mapping_lists_exactly_the_table() -> None:
    text = (REPO / "docs" / "mapping.md").read_text(encoding="utf-8")
    block = text.split("<!-- scenario-names:start -->", 1)[1].split("<!-- scenario-names:end -->", 1)[0]
    listed: dict[str, list[str]] = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            listed[cells[0].strip("`")] = re.findall(r"`([^`]+)`", cells[1])
    assert listed == {t: [n for n in names if n != t] for t, names in SCENARIO_NAMES.items()}


# --- B7: cert new --out-dir creates the folder -------------------------------------------------------


@pytest.mark.posix
def test_cert_new_creates_a_missing_out_dir_private(tmp_path: Path, run_uploader) -> None:
    out = tmp_path / "not" / "yet"
    result = run_uploader("cert", "new", "--subject", "CN=hr-connector-contoso", "--out-dir", out)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "hr-connector-contoso.pem").stat().st_mode) == 0o600


def test_cert_new_out_dir_that_is_a_file_says_so(tmp_path: Path, run_uploader) -> None:
    blocker = write(tmp_path / "afile", "x")
    result = run_uploader("cert", "new", "--subject", "CN=x", "--out-dir", blocker)
    assert result.returncode == 2
    assert "exists and is a file, not a folder" in result.stderr
    below = run_uploader("cert", "new", "--subject", "CN=x", "--out-dir", blocker / "sub")
    assert below.returncode == 2 and "a part of the path is a file" in below.stderr


# --- B12: Microsoft's PowerShell parameters ----------------------------------------------------------

SECRET = "Zq8~notARealSecret.value-7731"


@pytest.mark.parametrize("style", ["-{} {}", "-{}:{}", "--{}={}"])
def test_powershell_flags_name_their_replacements_and_never_echo_the_secret(
        tmp_path: Path, run_uploader, style: str) -> None:
    args: list[str] = ["upload"]
    for name, value in (("tenantId", TENANT), ("appId", job_id()), ("appSecret", SECRET), ("jobId", job_id()),
                        ("filePath", "C:\\HR\\departures.csv")):
        args += shlex.split(style.format(name, shlex.quote(value)))
    result = run_uploader(*args)
    assert result.returncode == 2
    for old, new in (("-tenantId", "--tenant-id"), ("-appId", "--app-id"), ("-jobId", "--job-id"),
                     ("-filePath", "FILE...")):
        assert f"{old} -> {new}" in result.stderr
    assert "a certificate replaces the client secret" in result.stderr and "--certificate" in result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert "unrecognized arguments" not in result.stderr


def test_other_unknown_flags_never_echo_their_values(run_uploader) -> None:
    result = run_uploader("upload", "a.csv", "--client-secret-value", SECRET)
    assert result.returncode == 2
    assert "unrecognized arguments: --client-secret-value (and 1 value, not shown)" in result.stderr
    assert SECRET not in result.stderr


def test_file_names_after_double_dash_are_not_taken_for_flags(tmp_path: Path, run_uploader) -> None:
    f = write(tmp_path / "-jobId", "EmailAddress,ResignationDate,LastWorkingDate\n")
    result = run_uploader("validate", "--mapping", tmp_path / "none.json", "--", f)
    assert "PowerShell" not in result.stderr


# --- B13: housekeeping -------------------------------------------------------------------------------


def test_gitignore_has_no_merge_conflict_markers() -> None:
    text = (REPO / ".gitignore").read_text()
    assert not re.search(r"^(<{7}|={7}|>{7})", text, flags=re.M)
    assert ".fleet-logs/" in text.split()


@pytest.mark.posix
def test_cli_md_sandbox_recipe_writes_a_key_doctor_accepts(tmp_path: Path) -> None:
    """Run the recipe's first line (the credential) as written; the key must be owner-only (no doctor warning)."""
    from uploader.model.certs import key_file_exposure

    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    recipe = text.split("`make demo` does all of this for you. By hand:", 1)[1].split("```sh\n", 1)[1]
    first = recipe.splitlines()[0]
    assert "app.pem" in first
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "python"  # `python` in the recipe is this checkout's interpreter
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    shim.chmod(0o755)
    env = clean_environ() | {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    subprocess.run(["sh", "-c", first], cwd=tmp_path, env=env, check=True, capture_output=True, timeout=60)
    key = tmp_path / "app.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key_file_exposure(str(key)) is None


# --- A4: doctor's headline says what it verified and what only the first upload proves -----------------


def test_doctor_headline_says_the_job_binding_is_not_verified(new_app, sandbox, run_uploader) -> None:  # noqa: ANN001
    app = new_app(bind=False)  # the job is bound to no app: doctor cannot know, and must not claim it
    flags = ["--tenant-id", app.tenant_id, "--app-id", app.app_id, "--job-id", app.job_id, "--certificate",
             str(app.certificate_path), "--authority-host", app.authority_host, "--ingestion-url", app.ingestion_url]
    result = run_uploader("doctor", *flags)
    assert result.returncode == 0, result.stdout + result.stderr
    headline = result.stdout.strip().splitlines()[-1]
    assert "ready for a real run" not in headline
    assert "verified settings, certificate, sign-in, ingestion host (DNS + TLS)" in headline
    assert f"NOT verified: that job {app.job_id} belongs to a connector bound to this app" in headline
    assert "the first upload proves it" in headline
    as_json = run_uploader("doctor", *flags, "--log-format", "json")
    summary = json.loads(as_json.stdout.strip().splitlines()[-1])
    assert summary["not_verified"] == ["job-binding"] and "sign-in" in summary["verified"]
    # ...and indeed the first upload is what finds it out (403, exit 1).
    f = write(Path(sandbox.state_dir).parent / f"{uuid.uuid4().hex}.csv",
              "EmailAddress,ResignationDate,LastWorkingDate\nzq@contoso.com,2026-11-01T10:00,2026-12-01T10:00\n")
    sent = run_uploader("upload", f, *flags, "--state-dir", Path(sandbox.state_dir).parent / uuid.uuid4().hex)
    assert sent.returncode == 1 and "jobId and corresponding appId do not match" in sent.stderr + sent.stdout


# --- B8: docs/migrating.md works as written, step by step ---------------------------------------------


def fenced_commands(markdown: str) -> list[str]:
    """Each command of the page's ```sh blocks, in order, continuation lines joined (comments left to sh)."""
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", markdown, flags=re.S):
        for cmd in block.replace("\\\n", " ").splitlines():
            if cmd.strip() and not cmd.lstrip().startswith("#"):
                commands.append(cmd.strip())
    return commands


@pytest.mark.posix
def test_migrating_md_runs_start_to_finish(tmp_path: Path, sandbox) -> None:  # noqa: ANN001
    """Every command of docs/migrating.md, run as written by `sh` in a fresh folder against the sandbox. Between
    them the test does only what the page tells the user to do by hand (upload the .cer, paste the job ID)."""
    import tomllib

    text = (REPO / "docs" / "migrating.md").read_text(encoding="utf-8")
    commands = fenced_commands(text)
    # Step 0: the install line brings PyYAML (the [stack] extra), which step 5's --stack tip needs.
    install = next(c for c in commands if "pip install" in c)
    extras = re.findall(r"\.\[(\w+)\]", install)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert extras and any(d.startswith("PyYAML") for e in extras for d in project["optional-dependencies"][e])
    assert "--stack" in text

    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "python"  # the activated .venv's python: this checkout's interpreter
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    shim.chmod(0o755)
    (work / "departures.csv").write_bytes((REPO / "uploader" / "examples" / "resignation.csv").read_bytes())
    (work / "hr-export.csv").write_bytes((REPO / "uploader" / "examples" / "multi-scenario.csv").read_bytes())
    tenant, app, job = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    env = dict(sandbox.env, HOME=str(home), PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(REPO), TENANT=tenant, APP=app, JOB=job,
               UPLOADER_AUTHORITY_HOST=sandbox.authority_host, UPLOADER_INGESTION_URL=sandbox.ingestion_url)
    env.pop("XDG_STATE_HOME", None)

    ran: list[str] = []
    for command in commands:
        if "pip install" in command or command.startswith(". .venv/bin/activate") or "…" in command \
                or "app.pfx" in command or command.startswith("export UPLOADER_CERTIFICATE_PASSWORD"):
            continue  # the install (checked above), activation (the shim), placeholders (…), the PFX alternative
        if " upload " in f" {command} " and "--dry-run" not in command:
            # Step 1's second task, by hand: paste the connector's job ID into the mapping's jobId.
            mapping = work / "departures.json"
            mapping.write_text(mapping.read_text().replace("REPLACE-WITH-THE-CONNECTOR-JOB-ID-FROM-PURVIEW", job))
        result = subprocess.run(["sh", "-c", command], cwd=work, env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        ran.append(command)
        if " cert new " in f" {command} ":
            # Step 3, in the Entra admin center: upload the .cer to the app; the connector is bound to the app.
            pem = (home / ".hr-connector" / "hr-connector-contoso.pem").read_text()
            sandbox.register_app(app, pem, tenant_id=tenant)
            sandbox.bind_job(job, app)
        if "--dry-run" in command:
            assert "to job (none given)" in result.stdout  # the mapping still holds the placeholder
    kinds = [next((w for w in ("mapping init", "validate", "cert new", "--dry-run", "doctor", " upload ")
                   if w in f" {c} "), c) for c in ran]
    assert kinds == ["python -m uploader --version", "mapping init", "mapping init", "validate", "cert new",
                     "--dry-run", "doctor", " upload "]
    assert sandbox.job_stats(job)["records"] == 12
    # Step 5's tip, as written (inline code): the stack file's connector, read with PyYAML.
    tip = re.search(r"`(python -m uploader validate [^`]*--stack[^`]*)`", text)
    assert tip is not None
    tip_command = " ".join(tip.group(1).split()).replace(" examples/stacks ", f" {REPO / 'examples' / 'stacks'} ")
    result = subprocess.run(["sh", "-c", tip_command], cwd=work, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# -- the newcomer's hour, round 4 (issue 24) -------------------------------------------------------------------

def test_validate_stack_outside_a_checkout_reads_dot_stacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed uploader lives in site-packages, which holds no stack files: --stack looks in ./stacks."""
    from uploader.model import stackfile

    assert stackfile.default_stacks_dir() == REPO / "stacks"  # run from this checkout: its own stacks/
    monkeypatch.setattr(stackfile, "PACKAGE_ROOT", tmp_path / "site-packages")  # no Pulumi.yaml there
    fleet = tmp_path / "fleet"
    (fleet / "stacks").mkdir(parents=True)
    mapping = json.loads((REPO / "uploader" / "examples" / "resignation.json").read_text())
    write(fleet / "stacks" / "Pulumi.t.yaml",
          "config:\n  hr-connector:connectors:\n" + f"    - {json.dumps({**mapping, 'name': 'departures'})}\n")
    monkeypatch.chdir(fleet)
    assert stackfile.default_stacks_dir() == Path("stacks")
    connector = stackfile.load_connector("t", None, None)
    assert connector.name == "departures"


def test_job_mode_md_turns_a_mapping_file_into_a_connector_entry(tmp_path: Path, run_uploader) -> None:  # noqa: ANN001
    """docs/job-mode.md's one command, run as written: the list it writes is the page's, and `run` accepts it."""
    text = (REPO / "docs" / "job-mode.md").read_text(encoding="utf-8")
    section = text.split("## From a mapping file to a connector", 1)[1].split("\n## ", 1)[0]
    (command,) = fenced_commands(section)
    shown = json.loads(re.search(r"```json\n(.*?)```", section, flags=re.S).group(1))
    assert shown[0]["jobId"] in PLACEHOLDER_JOB_IDS  # the page's example: the job refuses it
    shown[0]["jobId"] = job_id()  # the connector's own, pasted into the mapping (mapping init --job-id)
    init = run_uploader("mapping", "init", REPO / "uploader" / "examples" / "resignation.csv", "--scenario",
                        "resignation", "--job-id", shown[0]["jobId"], "-o", tmp_path / "departures.json")
    assert init.returncode == 0, init.stderr
    argv = [sys.executable, *shlex.split(command)[1:]]  # `python` is this interpreter
    done = subprocess.run(argv, cwd=tmp_path, env=clean_environ(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    written = (tmp_path / "connectors.json").read_text()
    assert json.loads(written) == shown
    (connector,) = load_connectors(written)
    assert connector.name == "departures" and connector.files == "departures/*.csv"
    again = subprocess.run(argv, cwd=tmp_path, env=clean_environ(), capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "connectors.json[1].name: duplicates" in again.stderr
    assert json.loads((tmp_path / "connectors.json").read_text()) == shown  # unchanged


def test_every_exit_code_is_in_migrating_md_and_cli_md() -> None:
    from uploader import errors

    codes = {v for k, v in vars(errors).items() if k.startswith("EXIT_")}
    assert {0, 1, 2, 3, 4, 5} <= codes
    migrating = (REPO / "docs" / "migrating.md").read_text(encoding="utf-8")
    line = migrating.split("Exit codes: ", 1)[1].split("\n\n", 1)[0]
    assert [c for c in sorted(codes) if not re.search(rf"(^|, ){c} ", line)] == []
    cli = (REPO / "docs" / "cli.md").read_text(encoding="utf-8").split("## Exit codes", 1)[1]
    assert [c for c in sorted(codes) if f"\n| {c} |" not in cli] == []
