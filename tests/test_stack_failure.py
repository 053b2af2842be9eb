"""A stack file is a unit of failure (issue 18, item 8): a poisoned stack file among good ones is reported and
skipped by every command that reads stack files — check, render, matrix, render-diff, fleet, and the uploader's
`validate --stack` — while the good stacks carry on, and the exit code says that one failed. Never a traceback.

The poison: nesting 20,000 levels deep, a 5,001-digit integer, a file over the size bound, a FIFO. The one
stack-file reader (uploader/yamlfile.py) refuses each with file:line and the rule.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stack_examples import example_stacks

REPO = Path(__file__).resolve().parent.parent
TENANT = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
GOOD = "good"
DEEP = "config:\n  hr-connector:tags: " + "[" * 20_000 + "]" * 20_000 + "\n"
BIG_INT = ("config:\n  hr-connector:tenantId: 3f2504e0-4f89-41d3-9a0c-0305e82c3301\n  hr-connector:location: eastus\n"
           "  hr-connector:certificate:\n    validityDays: " + "9" * 5001 + "\n")
POISON = {"deep": (DEEP, "Pulumi.deep.yaml:2", "nested more than 64 levels deep"),
          "bigint": (BIG_INT, "Pulumi.bigint.yaml:5", "an integer of 5001 digits")}


def run(*args: str, module: str = "provisioning", env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "HR_CONNECTOR_STACKS_DIR"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**base, **(env or {})})


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One good stack (new-stack's first-deploy file) beside the poisoned ones."""
    directory = tmp_path_factory.mktemp("stacks")
    done = run("new-stack", GOOD, "--cloud", "gcc", "--tenant-id", TENANT, "--stacks-dir", str(directory))
    assert done.returncode == 0, done.stderr
    for name, (text, _, _) in POISON.items():
        (directory / f"Pulumi.{name}.yaml").write_text(text)
    return directory


def assert_reported(output: str) -> None:
    assert "Traceback" not in output, output[-2000:]
    for _, where, rule in POISON.values():
        assert where in output and rule in output, output[-2000:]


# ------------------------------------------------------------------------------------------------ the reader

@pytest.mark.parametrize("name", list(POISON))
def test_the_reader_refuses_the_poison_naming_file_line_and_rule(tmp_path: Path, name: str) -> None:
    from uploader.model.mapping import MappingError
    from uploader.yamlfile import read_yaml

    text, where, rule = POISON[name]
    path = tmp_path / f"Pulumi.{name}.yaml"
    path.write_text(text)
    started = time.perf_counter()
    with pytest.raises(MappingError) as caught:
        read_yaml(path)
    assert time.perf_counter() - started < 5
    assert caught.value.key.endswith(where) and rule in caught.value.rule


@pytest.mark.posix
def test_the_reader_bounds_size_and_refuses_special_files(tmp_path: Path) -> None:
    from uploader.model.mapping import MappingError
    from uploader.yamlfile import MAX_BYTES, read_yaml

    big = tmp_path / "Pulumi.big.yaml"
    big.write_text("config:\n  hr-connector:location: '" + "x" * MAX_BYTES + "'\n")
    with pytest.raises(MappingError, match="larger than 1 MiB"):
        read_yaml(big)
    fifo = tmp_path / "Pulumi.fifo.yaml"
    os.mkfifo(fifo)
    started = time.perf_counter()
    with pytest.raises(MappingError, match="not a regular file"):
        read_yaml(fifo)  # no writer: a plain open would block for ever
    assert time.perf_counter() - started < 5
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_valid_files_read_as_before(tmp_path: Path) -> None:
    from uploader.yamlfile import MAX_DEPTH, read_yaml

    ok = tmp_path / "ok.yaml"
    nested = "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2)
    ok.write_text(f"a: 12345678901234567890\nb: -17\nc: 0x1F\nd: {nested}\n")
    data, problems = read_yaml(ok)
    assert (data["a"], data["b"], data["c"], problems) == (12345678901234567890, -17, 31, [])
    for path in example_stacks():
        assert read_yaml(path)[0]["config"]


# ------------------------------------------------------------------------------------------------ every command

@pytest.mark.pulumi
def test_check_reports_the_poisoned_stacks_and_checks_the_good_one(stacks: Path) -> None:
    done = run("check", "--stacks-dir", str(stacks))
    assert_reported(done.stdout + done.stderr)
    assert f"ok    {GOOD}:" in done.stdout
    assert "3 stack(s): 1 ok, 2 with problems" in done.stdout
    assert done.returncode == 2


@pytest.mark.pulumi
def test_render_of_the_good_stack_works_beside_poisoned_ones_and_the_poisoned_one_is_an_error(stacks: Path) -> None:
    good = run("render", "--stack", GOOD, "--json", "--stacks-dir", str(stacks))
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["stack"] == GOOD
    for name, (_, where, rule) in POISON.items():
        bad = run("render", "--stack", name, "--stacks-dir", str(stacks))
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr[-2000:]
        assert where in bad.stderr and rule in bad.stderr


def test_matrix_keeps_every_stack_and_exits_1(stacks: Path) -> None:
    done = run("matrix", "--all", "--stacks-dir", str(stacks))
    assert_reported(done.stderr)
    assert done.returncode == 1
    entries = {e["stack"]: e for e in json.loads(done.stdout)["include"]}
    assert set(entries) == {GOOD, *POISON}
    assert "error" not in entries[GOOD] and entries[GOOD]["cloud"] == "gcc"
    assert all(entries[name]["error"] for name in POISON)


@pytest.mark.pulumi
def test_render_diff_gives_the_poisoned_stacks_an_error_row(stacks: Path, tmp_path: Path) -> None:
    comment = tmp_path / "comment.md"
    done = run("render-diff", "--base-ref", "HEAD", "--all", "--stacks-dir", str(stacks), "--comment", str(comment),
               "--details-dir", str(tmp_path / "details"))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    index = {e["stack"]: e for e in json.loads((tmp_path / "details" / "index.json").read_text())}
    assert index[GOOD]["status"] == "new"
    for name, (_, _, rule) in POISON.items():
        assert index[name]["status"] == "error" and rule in index[name]["error"]
    assert "2 stack(s) failed to render" in comment.read_text()


@pytest.mark.posix
def test_fleet_skips_the_poisoned_stacks_and_runs_the_good_one(stacks: Path, tmp_path: Path) -> None:
    root, state = tmp_path / "pulumi", tmp_path / "state"
    (root / "bin").mkdir(parents=True)
    state.mkdir()
    exe = root / "bin" / "pulumi"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{REPO / "tests" / "fake_pulumi.py"}" "$@"\n')
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    (state / "plan.json").write_text(json.dumps({GOOD: {"changes": {"same": 17}}}))
    done = run("fleet", "preview", "--all", "--pulumi-root", str(root), "--stacks-dir", str(stacks),
               "--log-dir", str(tmp_path / "logs"), "--json", env={"FAKE_PULUMI_DIR": str(state)})
    assert_reported(done.stdout + done.stderr)
    assert done.returncode == 1
    results = {r["stack"]: r for r in json.loads(done.stdout)}
    assert results[GOOD]["ok"] and not any(results[name]["ok"] for name in POISON)
    previewed = [json.loads(line)["stack"] for line in (state / "calls.jsonl").read_text().splitlines()
                 if json.loads(line)["command"] == "preview"]
    assert previewed == [GOOD]  # the poisoned stacks never reached the Pulumi CLI


@pytest.mark.parametrize("name", list(POISON))
def test_validate_stack_refuses_the_poisoned_file_without_a_traceback(stacks: Path, tmp_path: Path, name: str) -> None:
    csv = tmp_path / "x.csv"
    csv.write_text("UserPrincipalName,ResignationDate\n")
    done = run("validate", "--stack", name, "--stacks-dir", str(stacks), str(csv), module="uploader")
    _, where, rule = POISON[name]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert where in done.stderr and rule in done.stderr
