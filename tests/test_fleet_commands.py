"""`python -m provisioning new-stack | check | matrix` through the real command line (subprocess), offline.

check's broken-stack cases run in one tmp stacks directory (`--stacks-dir`), each file breaking one rule; the
assertion is that each is reported on its own line naming the stack and the config key.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from stack_examples import EXAMPLES, example_stacks

REPO = Path(__file__).resolve().parent.parent
TENANT = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
JOB = "e081f4f4-3831-48d6-a7bb-3fcfab158145"


def provisioning(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HR_CONNECTOR_STACKS_DIR"}
    return subprocess.run([sys.executable, "-m", "provisioning", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------------------------------------ new-stack

#: A private stack's prebuilt image: the release imported into an Azure Government registry, pinned by digest.
GOV_IMAGE = "contosohr.azurecr.us/hr-uploader@sha256:" + "4f" * 32


@pytest.mark.parametrize(("cloud", "environment", "location", "protection"), [
    ("commercial", "public", "eastus", "vault"),
    ("gcc", "public", "eastus", "vault"),
    ("gcchigh", "usgovernment", "usgovvirginia", "hsm"),
    ("dod", "usgovernment", "usgovvirginia", "hsm"),
])
def test_new_stack_writes_the_clouds_defaults(tmp_path: Path, cloud: str, environment: str, location: str,
                                              protection: str) -> None:
    import yaml

    government = environment == "usgovernment"
    proc = provisioning("new-stack", f"t-{cloud}", "--cloud", cloud, "--tenant-id", TENANT,
                        *(("--image", GOV_IMAGE) if government else ()), "--stacks-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / f"Pulumi.t-{cloud}.yaml"
    text = path.read_text()
    config = yaml.safe_load(text)["config"]
    assert config["hr-connector:cloud"] == cloud
    # GCC High and DoD are private, so they run a prebuilt image (new-stack refuses them without one)
    assert config["hr-connector:network"] == ("private" if government else "public")
    assert config.get("hr-connector:image") == (GOV_IMAGE if government else None)
    assert config["hr-connector:tenantId"] == TENANT
    assert config["hr-connector:azureEnvironment"] == environment
    assert config["hr-connector:location"] == location
    assert config["hr-connector:connectors"] == []
    # new stacks keep the key in Key Vault: vault for commercial and GCC, an HSM-backed key for GCC High and DoD
    assert config["hr-connector:certificate"]["protection"] == protection
    assert "Next steps" in text and f"check --stack t-{cloud}" in text  # the next steps, as comments
    assert ("usgovcloudapi.net" in text) == (environment == "usgovernment")


def test_new_stack_takes_a_location(tmp_path: Path) -> None:
    proc = provisioning("new-stack", "west", "--cloud", "commercial", "--tenant-id", TENANT,
                        "--location", "westeurope", "--stacks-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "hr-connector:location: westeurope" in (tmp_path / "Pulumi.west.yaml").read_text()


def test_new_stack_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.acme.yaml"
    path.write_text("config: {}\n# hand-edited\n")
    proc = provisioning("new-stack", "acme", "--cloud", "gcc", "--tenant-id", TENANT, "--stacks-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "already exists" in proc.stderr
    assert path.read_text() == "config: {}\n# hand-edited\n"


@pytest.mark.parametrize(("args", "named"), [
    (["acme", "--cloud", "gcc", "--tenant-id", "not-a-guid"], "hr-connector:tenantId"),
    (["acme", "--cloud", "gcc", "--tenant-id", "3f2504e0-4f89-41d3-9a0c-0305e82c330"], "hr-connector:tenantId"),
    (["acme", "--cloud", "moon", "--tenant-id", TENANT], "--cloud"),
    (["a/b", "--cloud", "gcc", "--tenant-id", TENANT], "stack name"),
    (["has space", "--cloud", "gcc", "--tenant-id", TENANT], "stack name"),
    (["x" * 101, "--cloud", "gcc", "--tenant-id", TENANT], "stack name"),
    (["acme", "--cloud", "gcchigh", "--tenant-id", TENANT, "--location", "eastus"], "hr-connector:location"),
    (["acme", "--cloud", "commercial", "--tenant-id", TENANT, "--location", "usgovvirginia"],
     "hr-connector:location"),
])
def test_new_stack_rejects_bad_arguments(tmp_path: Path, args: list[str], named: str) -> None:
    proc = provisioning("new-stack", *args, "--stacks-dir", str(tmp_path))
    assert proc.returncode == 2
    assert named in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_new_stack_usage_error_exits_2(tmp_path: Path) -> None:
    proc = provisioning("new-stack", "acme", "--tenant-id", TENANT, "--stacks-dir", str(tmp_path))  # no --cloud
    assert proc.returncode == 2
    assert "--cloud" in proc.stderr


@pytest.mark.pulumi
def test_a_fresh_stack_passes_check(tmp_path: Path) -> None:
    for name, cloud in (("fresh-commercial", "commercial"), ("fresh-gcchigh", "gcchigh")):
        assert provisioning("new-stack", name, "--cloud", cloud, "--tenant-id", TENANT,
                            *(("--image", GOV_IMAGE) if cloud == "gcchigh" else ()),
                            "--stacks-dir", str(tmp_path)).returncode == 0
    proc = provisioning("check", "--stacks-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(("ok", "FAIL"))]
    assert len(lines) == 2
    for line in lines:
        assert line.startswith("ok    fresh-"), line
        assert int(line.split(": ", 1)[1].split(" resources")[0]) > 5


# ---------------------------------------------------------------------------------------------------- check


@pytest.mark.pulumi
def test_check_passes_on_the_example_stacks() -> None:
    """Every example stack file (examples/stacks/, one per cloud) validates and evaluates under mocks."""
    stacks = sorted(p.name for p in example_stacks())
    assert len(stacks) >= 3
    proc = provisioning("check", "--stacks-dir", str(EXAMPLES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ok = [ln for ln in proc.stdout.splitlines() if ln.startswith("ok    ")]
    assert len(ok) == len(stacks)
    assert f"{len(stacks)} stack(s): {len(stacks)} ok, 0 with problems" in proc.stdout


def test_stacks_starts_empty_and_check_says_there_is_nothing_to_check(tmp_path: Path) -> None:
    """A fork's first push deploys nothing it did not write: stacks/ holds no stack file, only its README, and
    `make check` (what ci.yml runs) says plainly there is nothing to check and exits 0. A missing folder or a
    named stack that is not there is still an error."""
    assert sorted(p.name for p in (REPO / "stacks").iterdir()) == ["README.md"]
    for where in ([], ["--stacks-dir", str(tmp_path)]):
        proc = provisioning("check", *where)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "no Pulumi.<stack>.yaml files: nothing to check" in proc.stdout
    assert provisioning("check", "--stacks-dir", str(tmp_path / "missing")).returncode == 2
    assert provisioning("check", "--stack", "acme", "--stacks-dir", str(tmp_path)).returncode == 2
    assert json.loads(provisioning("matrix", "--all").stdout) == {"include": []}


BASE = f"""config:
  hr-connector:cloud: commercial
  hr-connector:tenantId: {TENANT}
  hr-connector:location: eastus
"""
CONNECTOR = f"""  hr-connector:connectors:
    - name: departures
      jobId: {JOB}
      files: departures/*.csv
      scenarios:
        - type: resignation
          columns:
            userPrincipalName: EmailAddress
            resignationDate: ResignationDate
            lastWorkingDate: LastWorkingDate
"""

#: stack name -> (file text, the key its line must name, a word of the rule)
BROKEN = {
    "tenant-not-guid": (BASE.replace(TENANT, "contoso.onmicrosoft.com"), "hr-connector:tenantId", "GUID"),
    "tenant-missing": (BASE.replace(f"  hr-connector:tenantId: {TENANT}\n", ""), "hr-connector:tenantId",
                       "required"),
    "unknown-cloud": (BASE.replace("cloud: commercial", "cloud: gcc-high"), "hr-connector:cloud", "unknown cloud"),
    "gcchigh-public": (BASE.replace("cloud: commercial", "cloud: gcchigh")
                       + "  hr-connector:azureEnvironment: public\n", "hr-connector:azureEnvironment",
                       "Azure Government"),
    "gov-region": (BASE.replace("cloud: commercial", "cloud: dod"), "hr-connector:location", "Azure Government"),
    "cron-six-fields": (BASE + '  hr-connector:schedule: "0 0 2 * * *"\n', "hr-connector:schedule", ""),
    "cron-bad-hour": (BASE + '  hr-connector:schedule: "0 25 * * *"\n', "hr-connector:schedule", ""),
    "unknown-key": (BASE + '  hr-connector:schedul: "0 2 * * *"\n', "hr-connector:schedul", "unknown key"),
    "scenario-type": (BASE + CONNECTOR.replace("type: resignation", "type: promotion"),
                      "hr-connector:connectors[0].scenarios[0].type", "promotion"),
    "missing-column": (BASE + CONNECTOR.replace("            lastWorkingDate: LastWorkingDate\n", ""),
                       "hr-connector:connectors[0].scenarios[0].columns.lastWorkingDate", "required"),
    "job-not-guid": (BASE + CONNECTOR.replace(JOB, "job-0001"), "hr-connector:connectors[0].jobId", "GUID"),
    "no-scenario-column": (BASE + CONNECTOR + """        - type: performanceReview
          columns:
            userPrincipalName: EmailAddress
            effectiveDate: EffectiveDate
""", "hr-connector:connectors[0].scenarioColumn", "more than one scenario"),
    "renew-window": (BASE + "  hr-connector:certificate:\n    validityDays: 30\n    renewBeforeDays: 30\n",
                     "hr-connector:certificate.renewBeforeDays", ""),
    "owner-not-guid": (BASE + "  hr-connector:owners: [alice@contoso.com]\n", "hr-connector:owners[0]", "GUID"),
    "owners-not-list": (BASE + "  hr-connector:owners: 0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0\n",
                        "hr-connector:owners", "array"),
    "not-namespaced": (BASE + "  schedule: '0 2 * * *'\n", "schedule", "namespaced"),
    "bad-yaml": (BASE + "  hr-connector:schedule: [0 2 * * *\n", "Pulumi.bad-yaml.yaml:", "YAML"),
    "alert-email": (BASE + "  hr-connector:alertEmails: [not-an-address]\n", "hr-connector:alertEmails[0]", ""),
}


def test_check_names_the_key_of_each_broken_stack_file(tmp_path: Path) -> None:
    for name, (text, _, _) in BROKEN.items():
        (tmp_path / f"Pulumi.{name}.yaml").write_text(text)
    proc = provisioning("check", "--stacks-dir", str(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = {ln.split(":", 1)[0].split()[-1]: ln for ln in proc.stdout.splitlines() if ln.startswith("FAIL")}
    assert sorted(lines) == sorted(BROKEN), proc.stdout
    for name, (_, key, rule) in BROKEN.items():
        line = lines[name]
        assert line.startswith(f"FAIL  {name}: "), line
        assert key in line, f"{name}: expected the key {key} in the report"
        assert rule in line, f"{name}: expected {rule!r} in the rule"
    assert f"{len(BROKEN)} stack(s): 0 ok, {len(BROKEN)} with problems" in proc.stdout


def test_check_one_named_stack_and_unknown_names(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.one.yaml").write_text(BROKEN["unknown-key"][0])
    (tmp_path / "Pulumi.two.yaml").write_text(BROKEN["tenant-not-guid"][0])
    proc = provisioning("check", "--stack", "two", "--stacks-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "FAIL  two: hr-connector:tenantId" in proc.stdout and "one" not in proc.stdout
    missing = provisioning("check", "--stack", "three", "--stacks-dir", str(tmp_path))
    assert missing.returncode == 2
    assert "three" in missing.stderr and "one, two" in missing.stderr
    assert provisioning("check", "--stacks-dir", str(tmp_path / "nowhere")).returncode == 2  # empty: exit 0, below


def test_check_reads_the_stacks_dir_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.env.yaml").write_text(BROKEN["gov-region"][0])
    env = {**os.environ, "HR_CONNECTOR_STACKS_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "provisioning", "check"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "FAIL  env: hr-connector:location" in proc.stdout


# --------------------------------------------------------------------------------------------------- matrix


def _matrix(tmp_path: Path, *args: str, exit_code: int = 0) -> list[dict]:
    proc = provisioning("matrix", *args, "--stacks-dir", str(tmp_path))
    assert proc.returncode == exit_code, proc.stderr
    return json.loads(proc.stdout)["include"]


def test_matrix_selects_changed_stacks_with_their_sign_in_cloud(tmp_path: Path) -> None:
    for name, cloud in (("acme", "commercial"), ("acme-gcc", "gcc"), ("acme-high", "gcchigh"), ("acme-dod", "dod")):
        assert provisioning("new-stack", name, "--cloud", cloud, "--tenant-id", TENANT,
                            *(("--image", GOV_IMAGE) if cloud in ("gcchigh", "dod") else ()),
                            "--stacks-dir", str(tmp_path)).returncode == 0
    changed = tmp_path / "changed.txt"

    changed.write_text("stacks/Pulumi.acme-high.yaml\nREADME.md\n")
    (entry,) = _matrix(tmp_path, "--changed-files", str(changed))
    assert entry == {"stack": "acme-high", "cloud": "gcchigh", "tenantId": TENANT, "azureTenantId": TENANT,
                     "azureEnvironment": "usgovernment", "loginEnvironment": "AzureUSGovernment",
                     "oidcAudience": "api://AzureADTokenExchangeUSGov", "varSuffix": "ACME_HIGH",
                     "hosting": False, "hostedBy": "", "runsOn": '["self-hosted", "hr-connector-private-usgovernment"]'}

    changed.write_text("stacks/Pulumi.acme-gcc.yaml\nstacks/Pulumi.gone.yaml\n")  # gone: deleted in the change
    (entry,) = _matrix(tmp_path, "--changed-files", str(changed))
    assert (entry["stack"], entry["loginEnvironment"], entry["oidcAudience"]) == (
        "acme-gcc", "AzureCloud", "api://AzureADTokenExchange")

    changed.write_text("docs/gitops.md\nREADME.md\n")
    assert _matrix(tmp_path, "--changed-files", str(changed)) == []

    for program_file in ("provisioning/components/job.py", "__main__.py", "Pulumi.yaml", "uploader/cli.py"):
        changed.write_text(f"{program_file}\n")
        assert len(_matrix(tmp_path, "--changed-files", str(changed))) == 4, program_file

    assert sorted(e["stack"] for e in _matrix(tmp_path, "--all")) == ["acme", "acme-dod", "acme-gcc", "acme-high"]
    assert [e["stack"] for e in _matrix(tmp_path, "--stack", "acme-dod")] == ["acme-dod"]
    assert provisioning("matrix", "--stack", "nope", "--stacks-dir", str(tmp_path)).returncode == 2


def test_matrix_of_the_example_stacks() -> None:
    proc = provisioning("matrix", "--all", "--stacks-dir", str(EXAMPLES))
    assert proc.returncode == 0, proc.stderr
    entries = json.loads(proc.stdout)["include"]
    assert {e["stack"] for e in entries} == {p.name[len("Pulumi."):-len(".yaml")]
                                             for p in example_stacks()}
    for e in entries:
        assert (e["loginEnvironment"] == "AzureUSGovernment") == (e["cloud"] in ("gcchigh", "dod"))


def test_check_lines_and_exit_code_precedence() -> None:
    from provisioning.tools.check import StackResult, overall_exit_code

    ok = StackResult("a", Path("Pulumi.a.yaml"), resources=21, seconds=1.234)
    config = StackResult("b", Path("Pulumi.b.yaml"), problems=(("hr-connector:schedule", "must have 5 fields"),
                                                               ("hr-connector:cloud", "unknown cloud")))
    crashed = StackResult("c", Path("Pulumi.c.yaml"), error="evaluating c failed (exit 1):\n" +
                          "\n".join(f"frame {i}" for i in range(30)) + "\nValueError: boom")
    warned = StackResult("d", Path("Pulumi.d.yaml"), resources=3, seconds=1,
                         warnings=(("hr-connector:location", "not known to offer jobs"),))
    assert ok.line() == "ok    a: 21 resources, 1.2 s"
    assert config.line() == ("FAIL  b: hr-connector:schedule: must have 5 fields\n"
                             "FAIL  b: hr-connector:cloud: unknown cloud")
    assert warned.line() == "ok    d: 3 resources, 1.0 s\nWARN  d: hr-connector:location: not known to offer jobs"
    lines = crashed.line().splitlines()
    assert lines[0] == "FAIL  c: evaluation failed: evaluating c failed (exit 1):"
    assert lines[-1].strip() == "ValueError: boom" and len(lines) == 9  # the end of the traceback only
    assert [r.exit_code for r in (ok, config, crashed, warned)] == [0, 2, 1, 0]
    assert overall_exit_code([ok, warned]) == 0
    assert overall_exit_code([ok, crashed]) == 1
    assert overall_exit_code([crashed, config, ok]) == 2  # a config problem is the one to fix first


def test_matrix_keeps_a_broken_stack_as_its_own_failing_entry(tmp_path: Path) -> None:
    """A broken stack file must not stop the other stacks' jobs: it gets an entry whose job fails on check."""
    assert provisioning("new-stack", "good", "--cloud", "gcc", "--tenant-id", TENANT,
                        "--stacks-dir", str(tmp_path)).returncode == 0
    (tmp_path / "Pulumi.bad.yaml").write_text(BROKEN["bad-yaml"][0])
    (tmp_path / "Pulumi.moon.yaml").write_text(BROKEN["unknown-cloud"][0])
    entries = {e["stack"]: e for e in _matrix(tmp_path, "--all", exit_code=1)}  # 1: one stack could not be read
    assert set(entries) == {"good", "bad", "moon"}
    assert "error" not in entries["good"] and entries["good"]["cloud"] == "gcc"
    assert "Pulumi.bad.yaml:" in entries["bad"]["error"] and "YAML" in entries["bad"]["error"]
    assert "gcc-high" in entries["moon"]["error"]


# ------------------------------------------------------------------------------- the secrets provider, one URL

@pytest.mark.parametrize(("cloud", "domain"), [("commercial", "vault.azure.net"), ("dod", "vault.usgovcloudapi.net")])
def test_new_stack_prints_writes_and_documents_one_secrets_provider(tmp_path: Path, cloud: str, domain: str) -> None:
    """The URL new-stack prints is the one it writes in the file's comments, and the one docs/gitops.md gives."""
    done = provisioning("new-stack", "one", "--cloud", cloud, "--tenant-id", TENANT,
                        *(("--image", GOV_IMAGE) if cloud == "dod" else ()), "--stacks-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    url = re.compile(r'--secrets-provider "([^"]+)"')
    printed = url.findall(done.stdout)
    written = url.findall((tmp_path / "Pulumi.one.yaml").read_text())
    assert printed == written == [f"azurekeyvault://<vault>.{domain}/keys/pulumi-secrets"]
    gitops = (REPO / "docs" / "gitops.md").read_text()
    assert "azurekeyvault://<vault>.vault.azure.net/keys/pulumi-secrets" in gitops and f"<vault>.{domain}" in gitops
    assert "-n pulumi-secrets" in gitops  # the key gitops.md creates is the key the URL names
    assert "then pulumi up --stack one" in done.stdout


def test_readme_first_deploy_creates_the_stack_before_pulumi_up() -> None:
    """new-stack says `pulumi stack init` comes before the first `pulumi up`; the README's first deploy does too."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## A first deploy"):readme.index("## Documentation")]
    init = section.index('pulumi stack init contoso --secrets-provider "azurekeyvault://<vault>.vault.azure.net/keys/'
                         'pulumi-secrets"')
    assert init < section.index("pulumi up --stack contoso")
