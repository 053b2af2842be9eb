"""The mistakes people make in stack files, each caught by the real `python -m provisioning check` (subprocess)
on a temporary stacks directory: the line names the stack, the key and the rule, and the exit code is 2.

All broken stacks share one directory and one `check` run (config problems stop a stack before the evaluation,
so the run is fast); each case is its own test over that run's output.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
TENANT = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
JOBS = ["e081f4f4-3831-48d6-a7bb-3fcfab158145", "6a8f6b2a-1c3e-4a3b-9d9e-2f1b7c4d5e60",
        "7b9f6b2a-1c3e-4a3b-9d9e-2f1b7c4d5e61"]
OWNER = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"


def provisioning(*args: str, timeout: float = 240, limit_memory: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HR_CONNECTOR_STACKS_DIR"}

    def one_gib() -> None:  # a regression (an alias expanded) then fails fast instead of eating the machine
        import resource  # POSIX only (the tests that limit memory are marked posix)

        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run([sys.executable, "-m", "provisioning", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=one_gib if limit_memory else None)


def stack(*lines: str, location: str = "eastus", cloud: str = "commercial") -> str:
    return "\n".join(["config:", f"  hr-connector:cloud: {cloud}", f"  hr-connector:tenantId: {TENANT}",
                      f"  hr-connector:location: {location}", *lines]) + "\n"


def connector(i: int, files: str | None, *, name: str | None = None) -> list[str]:
    lines = [f"    - name: {name or f'c{i}'}", f"      jobId: {JOBS[i]}"]
    if files is not None:
        lines.append(f"      files: {files!r}")
    return [*lines, "      scenarios:", "        - type: resignation",
            "          columns: {userPrincipalName: Upn, resignationDate: Resigned, lastWorkingDate: LastDay}"]


def connectors(*globs: str | None) -> list[str]:
    return ["  hr-connector:connectors:", *(ln for i, g in enumerate(globs) for ln in connector(i, g))]


LONG_NAME = "n" * 52

#: stack name -> (file text, [(key the line names, words of the rule), ...]): every listed problem is reported.
BROKEN: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "no-files": (stack(*connectors("departures/*.csv", None)),
                 [("hr-connector:connectors[1].files", "is required")]),
    "region-typo": (stack(location="westeuropa"),
                    [("hr-connector:location", "did you mean 'westeurope'?")]),
    "gov-region-typo": (stack(location="usgovvirgina", cloud="gcchigh"),
                        [("hr-connector:location", "did you mean 'usgovvirginia'?")]),
    "unknown-region": (stack(location="moonbase"), [("hr-connector:location", "not an Azure public region")]),
    "never-fires": (stack('  hr-connector:schedule: "0 2 31 2 *"'),
                    [("hr-connector:schedule", "never fires: day of month 31 does not exist in Feb")]),
    "duplicate-key": (stack("  hr-connector:location: westus"),
                      [("hr-connector:location", "given twice in Pulumi.duplicate-key.yaml (lines 4 and 5)")]),
    "duplicate-nested": (stack(*connectors("a/*.csv")[:4], "      files: 'b/*.csv'", *connectors("a/*.csv")[4:]),
                         [("hr-connector:connectors[0].files", "given twice")]),
    "absolute-glob": (stack(*connectors("/departures/*.csv")),
                      [("hr-connector:connectors[0].files", "relative to incoming/")]),
    "dotdot-glob": (stack(*connectors("../departures/*.csv")),
                    [("hr-connector:connectors[0].files", "'..' is not allowed")]),
    "dot-glob": (stack(*connectors("./departures/*.csv")), [("hr-connector:connectors[0].files", "'.' folder")]),
    "overlapping-globs": (stack(*connectors("departures/*.csv", "**/*.csv")),
                          [("hr-connector:connectors[1].files",
                            "overlaps connectors[0].files: both match e.g. 'departures/x.csv'")]),
    "identical-globs": (stack(*connectors("hr/*.csv", "other/*.csv", "hr/*.csv")),
                        [("hr-connector:connectors[2].files", "overlaps connectors[0].files")]),
    "secure-value": (stack("  hr-connector:alertEmails:", "    secure: v1:AAAABBBBCCCC"),
                     [("hr-connector:alertEmails", "is a `secure:` (encrypted) value")]),
    "unknown-namespace": (stack('  hr-conector:schedule: "0 3 * * *"'),
                          [("hr-conector:schedule", "unknown config namespace 'hr-conector'"),
                           ("hr-conector:schedule", "did you mean 'hr-connector'?")]),
    "top-level-typo": ("conifg:\n  hr-connector:tenantId: " + TENANT + "\n",
                       [("Pulumi.top-level-typo.yaml: conifg", "did you mean 'config'?")]),
    "cron-sunday-7": (stack('  hr-connector:schedule: "0 2 * * 7"'),
                      [("hr-connector:schedule", "7 is outside 0-6")]),
    "cron-range-to-7": (stack('  hr-connector:schedule: "0 2 * * 5-7"'),
                        [("hr-connector:schedule", "day of week field: 7 is outside 0-6")]),
    # Report all problems of a stack, not the first.
    "many-problems": (stack('  hr-connector:schedule: "0 2 * * 7"', "  hr-connector:owners: [bob]",
                            *connectors("/abs/*.csv", None), location="westeuropa").replace(TENANT, "not-a-guid"),
                      [("hr-connector:tenantId", "GUID"), ("hr-connector:location", "'westeurope'"),
                       ("hr-connector:schedule", "0-6"), ("hr-connector:owners[0]", "GUID"),
                       ("hr-connector:connectors[0].files", "relative to incoming/"),
                       ("hr-connector:connectors[1].files", "is required")]),
    LONG_NAME: (stack(), [(f"Pulumi.{LONG_NAME}.yaml", "at most 51 fit the app certificate's subject")]),
    # provider keys `pulumi up` would ignore (the program's providers are explicit): refused, naming the key to use
    "provider-keys": (stack("  azure-native:location: westus", f"  azuread:tenantId: {TENANT}",
                            "  azure-native:environment: usgovernment", "  azure-native:useOidc: true"),
                      [("azure-native:location", "`pulumi up` would ignore it; set hr-connector:location instead"),
                       ("azuread:tenantId", "set hr-connector:tenantId instead"),
                       ("azure-native:environment", "set hr-connector:azureEnvironment instead"),
                       ("azure-native:useOidc", "sign-in settings come from the environment (ARM_* variables")]),
}


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], float]:
    directory = tmp_path_factory.mktemp("stacks")
    for name, (text, _) in BROKEN.items():
        (directory / f"Pulumi.{name}.yaml").write_text(text)
    started = time.perf_counter()
    proc = provisioning("check", "--stacks-dir", str(directory))
    return proc, time.perf_counter() - started


@pytest.mark.parametrize("name", list(BROKEN), ids=[n[:20] for n in BROKEN])
def test_check_reports_the_key_and_rule(broken_run: tuple[subprocess.CompletedProcess[str], float], name: str) -> None:
    proc, _ = broken_run
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(f"FAIL  {name}: ")]
    assert lines, f"{name}: no FAIL line in\n{proc.stdout}"
    for key, rule in BROKEN[name][1]:
        assert any(f"FAIL  {name}: {key}: " in ln and rule in ln for ln in lines), (name, key, rule, lines)
    assert "Traceback" not in proc.stdout + proc.stderr


Run = tuple[subprocess.CompletedProcess[str], float]


def test_every_broken_stack_fails_and_check_stays_fast(broken_run: Run) -> None:
    proc, seconds = broken_run
    assert f"{len(BROKEN)} stack(s): 0 ok, {len(BROKEN)} with problems" in proc.stdout
    assert seconds < 30, f"check of {len(BROKEN)} broken stacks took {seconds:.1f} s"


def test_one_line_per_problem_with_no_duplicates(broken_run: tuple[subprocess.CompletedProcess[str], float]) -> None:
    proc, _ = broken_run
    many = [ln for ln in proc.stdout.splitlines() if ln.startswith("FAIL  many-problems: ")]
    assert len(many) == len(BROKEN["many-problems"][1]), many
    keys = [ln.split(": ", 2)[1] for ln in many]
    assert len(keys) == len(set(keys)), "one problem per key"


# ---------------------------------------------------------------------------------------------- alias bomb

BOMB = """config:
  hr-connector:tenantId: 3f2504e0-4f89-41d3-9a0c-0305e82c3301
  hr-connector:location: eastus
  hr-connector:tags:
    a: &a ["x","x","x","x","x","x","x","x","x"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: [*g,*g,*g,*g,*g,*g,*g,*g,*g]
"""


@pytest.mark.posix
@pytest.mark.parametrize("command", [["check"], ["render", "--stack", "bomb"], ["matrix", "--all"]])
def test_a_yaml_alias_bomb_is_refused_quickly_naming_the_file(tmp_path: Path, command: list[str]) -> None:
    assert len(BOMB.encode()) < 600
    (tmp_path / "Pulumi.bomb.yaml").write_text(BOMB)
    started = time.perf_counter()
    proc = provisioning(*command, "--stacks-dir", str(tmp_path), timeout=60, limit_memory=True)
    seconds = time.perf_counter() - started
    output = proc.stdout + proc.stderr
    assert seconds < 20, f"{command[0]} took {seconds:.1f} s"
    assert "Pulumi.bomb.yaml:6" in output and "YAML alias *a is not allowed in stack files" in output, output
    if command[0] == "matrix":  # the broken stack keeps its own failing entry; the matrix itself is produced
        assert proc.returncode == 1 and proc.stdout.startswith('{"include":'), output
    else:
        assert proc.returncode == 2, output


def test_the_loader_refuses_merge_keys_and_names_duplicates_in_lists(tmp_path: Path) -> None:
    from provisioning.config import ConfigError
    from provisioning.yamlfile import read_yaml

    merge = tmp_path / "merge.yaml"
    merge.write_text("base: &base {a: 1}\nconfig:\n  x:\n    <<: *base\n")
    with pytest.raises(ConfigError) as caught:
        read_yaml(merge)
    assert caught.value.key == f"{merge}:4"
    listed = tmp_path / "listed.yaml"
    listed.write_text("config:\n  hr-connector:owners:\n    - {a: 1, a: 2}\n")
    data, problems = read_yaml(listed)
    assert data == {"config": {"hr-connector:owners": [{"a": 2}]}}
    assert [(p.key, "lines 3 and 3" in p.rule) for p in problems] == [("hr-connector:owners[0].a", True)]


# ---------------------------------------------------------------------------------------------- warnings


@pytest.mark.pulumi
def test_a_dod_region_and_a_glob_under_incoming_are_warnings(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.dod.yaml").write_text(
        stack(*connectors("incoming/departures/*.csv"), location="usdodcentral", cloud="dod"))
    proc = provisioning("check", "--stacks-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok    dod: ")
    warnings = [ln for ln in proc.stdout.splitlines() if ln.startswith("WARN  dod: ")]
    # the stack file names no certificate.protection: its key stays exportable, which `check` also warns about
    protection = [ln for ln in warnings if "hr-connector:certificate.protection: not set" in ln]
    assert len(protection) == 1 and "`protection: vault`" in protection[0], proc.stdout
    warnings = [ln for ln in warnings if ln not in protection]
    assert len(warnings) == 2, proc.stdout
    assert "hr-connector:location: Container Apps jobs are not known to be offered in usdodcentral" in warnings[0]
    assert "evidence is thin" in warnings[0]
    confirm = """az provider show -n Microsoft.App --query "resourceTypes[?resourceType=='jobs'].locations\""""
    assert confirm in warnings[0]
    assert "hr-connector:connectors[0].files: starts with incoming/" in warnings[1]


# ---------------------------------------------------------------------------------------------- new-stack

#: new-stack --image: a registry reference pinned by digest (docs/releases.md)
PINNED = "myregistry.azurecr.us/hr-uploader@sha256:" + "c3" * 32


def test_new_stack_takes_the_optional_settings_and_prints_next_steps_with_the_stacks_dir(tmp_path: Path) -> None:
    directory = tmp_path / "my stacks"
    second = "1f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
    subscription = "2f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
    proc = provisioning("new-stack", "acme", "--cloud", "gcc", "--tenant-id", TENANT,
                        "--azure-environment", "usgovernment", "--image", PINNED,
                        "--owner", OWNER, "--owner", second, "--subscription-id", subscription,
                        "--stacks-dir", str(directory))
    assert proc.returncode == 0, proc.stderr
    text = (directory / "Pulumi.acme.yaml").read_text()
    config = yaml.safe_load(text)["config"]
    assert config["hr-connector:azureEnvironment"] == "usgovernment"
    assert config["hr-connector:location"] == "usgovvirginia"  # the environment's default region
    assert config["hr-connector:image"] == PINNED
    assert config["hr-connector:owners"] == [OWNER, second]
    assert config["hr-connector:subscriptionId"] == subscription
    flag = f"--stacks-dir '{directory}'"
    assert f"python -m provisioning check --stack acme {flag}" in proc.stdout
    assert f"python -m provisioning render --stack acme {flag}" in proc.stdout
    assert f"check --stack acme {flag}" in text  # the file's own next steps too
    again = provisioning("check", "--stack", "acme", "--stacks-dir", str(directory))
    assert "FAIL" not in again.stdout, again.stdout


def test_new_stack_without_stacks_dir_prints_plain_next_steps(tmp_path: Path) -> None:
    env = {**os.environ, "HR_CONNECTOR_STACKS_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "provisioning", "new-stack", "plain", "--cloud", "commercial",
                           "--tenant-id", TENANT], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "python -m provisioning check --stack plain\n" in proc.stdout
    assert "--stacks-dir" not in proc.stdout


@pytest.mark.parametrize(("args", "expected"), [
    (["--owner", "bob", "--owner", OWNER], ["hr-connector:owners[0]: must be a GUID"]),
    (["--subscription-id", "1234"], ["hr-connector:subscriptionId: must be a GUID"]),
    (["--azure-environment", "china"], ["hr-connector:azureEnvironment: unknown Azure environment"]),
    (["--image", "https://registry/x:1"], ["hr-connector:image: must be an image reference"]),
    (["--image", "myregistry.azurecr.us/hr-uploader:1.0", "--owner", "bob"],  # a tag can move: pinned by digest
     ["hr-connector:image: must be a registry reference pinned by digest", "hr-connector:owners[0]"]),
    (["--location", "westeuropa", "--owner", "bob"],  # every problem, not the first
     ["hr-connector:location: 'westeuropa' is not an Azure public region; did you mean 'westeurope'?",
      "hr-connector:owners[0]"]),
])
def test_new_stack_refuses_bad_flags_naming_every_key(tmp_path: Path, args: list[str], expected: list[str]) -> None:
    proc = provisioning("new-stack", "acme", "--cloud", "commercial", "--tenant-id", TENANT, *args,
                        "--stacks-dir", str(tmp_path))
    assert proc.returncode == 2
    for needle in expected:
        assert needle in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_new_stack_refuses_a_name_the_program_cannot_build(tmp_path: Path) -> None:
    from provisioning.naming import MAX_COMMON_NAME, Names, max_stack_name_length

    limit = max_stack_name_length()
    assert len(Names("s" * limit, TENANT).certificate_subject) == MAX_COMMON_NAME
    proc = provisioning("new-stack", "s" * (limit + 1), "--cloud", "gcc", "--tenant-id", TENANT,
                        "--stacks-dir", str(tmp_path))
    assert proc.returncode == 2
    assert f"has {limit + 1} characters; at most {limit}" in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.pulumi
def test_the_longest_allowed_name_evaluates(tmp_path: Path) -> None:
    from provisioning.naming import max_stack_name_length

    name = "s" * max_stack_name_length()
    assert provisioning("new-stack", name, "--cloud", "gcc", "--tenant-id", TENANT,
                        "--stacks-dir", str(tmp_path)).returncode == 0
    proc = provisioning("check", "--stacks-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"ok    {name}: ")


# ---------------------------------------------------------------------------------------------- globs


@pytest.mark.parametrize(("first", "second", "example"), [
    ("departures/*.csv", "**/*.csv", "departures/x.csv"),
    ("*.csv", "**/*.csv", "x.csv"),
    ("hr/*", "hr/**/x.csv", "hr/x.csv"),
    ("a/[abc]*.csv", "a/c?.csv", "a/cx.csv"),
    ("x/**/y.csv", "x/y.csv", "x/y.csv"),
    ("departures/*.csv", "performance/*.csv", None),
    ("*.csv", "*.txt", None),
    ("[!a]*.csv", "a*.csv", None),
    ("a/*.csv", "a/*/*.csv", None),
    ("[a-c]*", "d*", None),
])
def test_overlap_is_exact_and_gives_a_path_both_match(first: str, second: str, example: str | None) -> None:
    from uploader.model.globs import glob_regex, overlap

    found = overlap(first, second)
    assert found == example
    if found is not None:
        assert glob_regex(first).match(found) and glob_regex(second).match(found)
    assert (overlap(second, first) is None) == (example is None)


def test_the_overlap_automaton_matches_exactly_what_job_mode_matches() -> None:
    """Random globs and paths: the automaton `overlap` walks agrees with job mode's regex on every pair."""
    from uploader.model.globs import glob_problem, glob_regex, matches

    rng = random.Random(20261128)
    atoms = ["a", "b", ".", "/", "*", "**/", "**", "?", "[ab]", "[!a]", "[a-c]", "c", "-"]
    alphabet = "abc./-"
    checked = 0
    for _ in range(400):
        pattern = "".join(rng.choice(atoms) for _ in range(rng.randint(1, 6)))
        if glob_problem(pattern) is not None and "not a valid glob" in (glob_problem(pattern) or ""):
            continue
        regex = glob_regex(pattern)
        for _ in range(40):
            path = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 7)))
            assert bool(regex.match(path)) == matches(pattern, path), (pattern, path)
            checked += 1
    assert checked > 10000


def test_disjoint_globs_in_separate_folders_pass(tmp_path: Path) -> None:
    from provisioning.tools.offline import load_stack_settings

    path = tmp_path / "Pulumi.two.yaml"
    path.write_text(stack(*connectors("departures/*.csv", "performance/*.csv", "profiles/**/*.csv")))
    settings = load_stack_settings(path)
    assert [c.files for c in settings.connectors] == ["departures/*.csv", "performance/*.csv", "profiles/**/*.csv"]


@pytest.mark.pulumi
def test_the_program_itself_refuses_a_secure_value_for_its_keys(tmp_path: Path) -> None:
    """Not only `check`: the program run by Pulumi (here under mocks) applies the same rule to its secret keys."""
    from provisioning.config import ConfigError
    from provisioning.tools.offline import evaluate

    path = tmp_path / "Pulumi.secure.yaml"
    path.write_text(stack("  hr-connector:alertEmails:", "    secure: v1:AAAABBBBCCCC"))
    with pytest.raises(ConfigError) as caught:
        evaluate(path)
    assert caught.value.key == "hr-connector:alertEmails" and "`secure:`" in caught.value.rule
