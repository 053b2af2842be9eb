"""The fleet tools behave like Pulumi's (issue 22, part 3): project-level config in Pulumi.yaml read by check, render,
matrix and the program alike; provider keys refused rather than ignored (by the program too); a Pulumi ESC
environment named plainly; new-stack's schedule; no Pulumi CLI said once; each warning printed once; --help."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from stack_examples import EXAMPLES

REPO = Path(__file__).resolve().parent.parent
TENANT = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
SUBSCRIPTION = "11111111-2222-4333-8444-555555555555"


def provisioning(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provisioning", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


# ------------------------------------------------------------------------------------ project-level config


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a copy of this project, a stack file in it): the copy's Pulumi.yaml gives every stack alert e-mails, tags,
    a subscription and the cloud (a GCC-only organisation); the stack file sets only its tenant and region."""
    copy = tmp_path_factory.mktemp("project")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file() and not name.startswith(("tests/", "docs/", "bench/")):
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    pulumi_yaml = yaml.safe_load((copy / "Pulumi.yaml").read_text())
    config = pulumi_yaml["config"]
    config["cloud"]["default"] = "gcc"
    config["alertEmails"]["default"] = ["hr-platform@contoso.example"]
    config["tags"]["default"] = {"cost-center": "4711"}
    config["subscriptionId"]["default"] = SUBSCRIPTION
    (copy / "Pulumi.yaml").write_text(yaml.safe_dump(pulumi_yaml, sort_keys=False))
    stacks = copy / str(pulumi_yaml.get("stackConfigDir") or ".")
    stacks.mkdir(parents=True, exist_ok=True)
    path = stacks / "Pulumi.acme.yaml"
    path.write_text(f"config:\n  hr-connector:tenantId: {TENANT}\n  hr-connector:location: eastus\n")
    return copy, path


@pytest.mark.pulumi
def test_project_config_is_read_by_check_render_matrix_and_the_program(project: tuple[Path, Path]) -> None:
    root, path = project
    env = {"PYTHONPATH": str(root)}  # the copy's own modules, as in a clone of it
    check = provisioning("check", "--stack", "acme", cwd=root, env=env)
    assert check.returncode == 0 and "ok    acme:" in check.stdout, check.stdout + check.stderr
    matrix = provisioning("matrix", "--stack", "acme", cwd=root, env=env)
    assert matrix.returncode == 0, matrix.stderr
    (entry,) = json.loads(matrix.stdout)["include"]
    assert (entry["stack"], entry["cloud"], entry["loginEnvironment"]) == ("acme", "gcc", "AzureCloud")
    # render: the program under mocks, handed the merged config as `pulumi up` hands it
    from provisioning.tools.evaluator import evaluate_many
    from provisioning.tools.offline import Evaluation
    from provisioning.tools.render import flatten, report_from

    evaluation = evaluate_many([path], root, workers=1)[path]
    assert isinstance(evaluation, Evaluation), evaluation
    report = report_from(path, evaluation, root)
    assert report["cloud"] == "gcc" and report["tags"]["cost-center"] == "4711"
    by_type = {r["type"]: flatten(r["inputs"]) for r in report["resources"]}
    assert by_type["pulumi:providers:azure-native"]["subscriptionId"] == SUBSCRIPTION
    assert by_type["azure-native:monitor:ActionGroup"]["emailReceivers[email-0].emailAddress"] == \
        "hr-platform@contoso.example"
    assert by_type["azure-native:app:ManagedEnvironment"]["tags.cost-center"] == "4711"


# ----------------------------------------------------------------------------- provider keys, ESC, warnings


@pytest.mark.pulumi
def test_the_program_itself_refuses_provider_keys_as_pulumi_up_would_run_it() -> None:
    """What `pulumi up` hands the program (the merged config, bypassing the offline reader): refused, named."""
    from provisioning.config import ConfigError, all_problems
    from provisioning.tools.offline import REPO_ROOT, StackConfig, _config_error_in, _evaluate_here

    values = {"hr-connector:tenantId": TENANT, "hr-connector:location": "eastus",
              "azure-native:location": "westus", "azuread:environment": "usgovernmentl4"}
    with pytest.raises(Exception) as raised:  # noqa: PT011 - the Pulumi runtime may wrap the ConfigError
        _evaluate_here(StackConfig("acme", REPO / "Pulumi.acme.yaml", values), REPO_ROOT)
    error = raised.value if isinstance(raised.value, ConfigError) else _config_error_in(raised.value)
    assert error is not None
    found = {p.key: p.rule for p in all_problems(error)}
    assert found["azure-native:location"].endswith("set hr-connector:location instead")
    assert found["azuread:environment"].endswith("set hr-connector:cloud instead")


@pytest.mark.pulumi
def test_check_prints_each_warning_once_and_names_an_esc_environment(tmp_path: Path) -> None:
    text = (EXAMPLES / "Pulumi.wingtip-dod.yaml").read_text()
    assert "protection" not in text  # it draws the certificate.protection warning
    (tmp_path / "Pulumi.wingtip-dod.yaml").write_text(text + "environment:\n  - contoso/hr-prod\n")
    done = provisioning("check", "--stacks-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("certificate.protection") == 1 and "protection" not in done.stderr
    (esc,) = [ln for ln in done.stdout.splitlines() if "environment:" in ln]
    assert esc.startswith("WARN  wingtip-dod: Pulumi.wingtip-dod.yaml: environment: imports Pulumi ESC")
    assert "contoso/hr-prod" in esc and "cannot open" in esc and "Pulumi.yaml's project config" in esc


# ------------------------------------------------------------------------------------------------ new-stack


def test_new_stack_spreads_schedules_over_the_night_and_takes_schedule(tmp_path: Path) -> None:
    from provisioning.cron import validate_cron
    from provisioning.tools.newstack import StackRequest, render_stack_file, spread_schedule

    names = [f"tenant-{i:03d}" for i in range(200)]
    schedules = [spread_schedule(n) for n in names]
    assert schedules == [spread_schedule(n) for n in names]  # stable
    assert len(set(schedules)) > 150  # spread, not all at 02:00
    for schedule in schedules:
        minute, hour, *rest = schedule.split()
        assert validate_cron(schedule) == schedule and 0 <= int(hour) < 6 and rest == ["*", "*", "*"]
    text = render_stack_file(StackRequest("acme", "commercial", TENANT))
    assert f'hr-connector:schedule: "{spread_schedule("acme")}"' in text
    done = provisioning("new-stack", "acme", "--cloud", "gcc", "--tenant-id", TENANT, "--schedule", "30 3 * * 1-5",
                        "--stacks-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load((tmp_path / "Pulumi.acme.yaml").read_text())["config"]["hr-connector:schedule"] == \
        "30 3 * * 1-5"
    bad = provisioning("new-stack", "beta", "--cloud", "gcc", "--tenant-id", TENANT, "--schedule", "0 2 * * 7",
                       "--stacks-dir", str(tmp_path))
    assert bad.returncode == 2 and "hr-connector:schedule" in bad.stderr
    assert not (tmp_path / "Pulumi.beta.yaml").exists()


# --------------------------------------------------------------------------------------- no Pulumi CLI, help


def test_certs_and_fleet_without_a_pulumi_cli_say_once_what_to_install(tmp_path: Path) -> None:
    version = (REPO / ".pulumi-version").read_text().strip()
    for name in ("alpha", "bravo", "charlie"):
        (tmp_path / f"Pulumi.{name}.yaml").write_text(f"config:\n  hr-connector:tenantId: {TENANT}\n"
                                                      "  hr-connector:location: eastus\n")
    no_cli = {"PATH": str(Path(sys.executable).parent.parent / "nowhere")}
    for args, alternative in ((["certs"], "--outputs"), (["fleet", "preview", "--all"], "--pulumi-root")):
        done = subprocess.run([sys.executable, "-m", "provisioning", *args, "--stacks-dir", str(tmp_path)], cwd=REPO,
                              capture_output=True, text=True, timeout=120, env={**os.environ, **no_cli})
        assert done.returncode == 2, done.stdout + done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: no Pulumi CLI"), done.stderr  # once, not per stack
        assert f"install Pulumi CLI {version}" in lines[0] and alternative in lines[0] and "--pulumi-root" in lines[0]


def _option_entries(text: str) -> list[str]:
    """Each option's entry in a --help text (its line and the indented lines that continue it), joined."""
    entries: list[str] = []
    for line in text.splitlines():
        if line.startswith("  -"):
            entries.append(line.strip())
        elif line.startswith("      ") and entries:
            entries[-1] += " " + line.strip()
    return entries


def _helps() -> dict[str, str]:
    import argparse

    from provisioning.tools.cli import build_parser
    from uploader.cli import build_parser as uploader_parser

    def commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices

    out = {}
    for name, sub in commands(build_parser()).items():
        out[f"provisioning {name}"] = sub.format_help()
        if name == "fleet":
            for operation, op in commands(sub).items():
                out[f"provisioning fleet {operation}"] = op.format_help()
    for name, sub in commands(uploader_parser()).items():
        out[f"uploader {name}"] = sub.format_help()
    return out


def test_help_states_each_default_once_and_describes_every_option(monkeypatch: pytest.MonkeyPatch) -> None:
    from provisioning.tools.cli import build_parser

    for key in [k for k in os.environ if k.startswith("UPLOADER_")]:
        monkeypatch.delenv(key)
    helps = _helps()
    assert {"provisioning render", "provisioning fleet preview", "uploader upload", "uploader validate"} <= set(helps)
    for command, text in helps.items():
        assert "(default: None)" not in text and "(default: False)" not in text, command
        for entry in _option_entries(text):
            assert entry.lower().count("default") <= 1, (command, entry)
    render = next(a for a in build_parser()._actions if a.dest == "command").choices["render"]  # type: ignore[attr-defined]
    assert all(a.help for a in render._actions), [a.option_strings for a in render._actions if not a.help]
    assert build_parser().parse_args(["render", "-s", "acme"]).stack == "acme"
    assert "--expect-no-changes" in helps["provisioning fleet preview"]
    assert "--rotate-certificate" not in helps["provisioning fleet preview"]
    assert "--rotate-certificate" in helps["provisioning fleet up"]
    assert "--stack STACK, -s STACK" in helps["uploader validate"]
