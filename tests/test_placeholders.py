"""Placeholder job IDs are refused (issue 16, item 5): the all-zero GUID and every GUID this project's docs and
templates show as a job ID. One list (uploader/model/mapping.py PLACEHOLDER_JOB_IDS), used by the uploader and by
provisioning: `check`, `validate`, `upload`, `doctor` and `mapping init` refuse them through their real command
lines, with a pointer to where Purview shows the real ID. The repository's own runnable examples (stacks/,
uploader/examples/) hold ordinary GUIDs, so `make check` and the demo keep working.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from stack_examples import example_stacks

from uploader.model.mapping import PLACEHOLDER_JOB_IDS, MappingError, parse_connector

REPO = Path(__file__).resolve().parent.parent
GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
#: How a job ID is written in docs and templates: YAML `jobId: G`, JSON `"jobId": "G"`, a flag `--job-id G`.
JOB_ID_SHOWN = re.compile(rf"""(?:jobId["']?\s*:\s*["']?|--job-id[ =]["']?)({GUID})""")
ZERO = "00000000-0000-0000-0000-000000000000"
RESIGNATION = {"type": "resignation", "columns": {"userPrincipalName": "U", "resignationDate": "R",
                                                   "lastWorkingDate": "L"}}
POINTER = "the Purview portal shows the real one on the HR connector wizard's last page and on the connector's flyout"


def shown_job_ids() -> dict[str, set[str]]:
    """Every GUID the docs, README and templates show as a job ID, with where."""
    found: dict[str, set[str]] = {}
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "provisioning" /
                                                                                 "templates").iterdir())]
    for page in pages:
        for guid in JOB_ID_SHOWN.findall(page.read_text(encoding="utf-8")):
            found.setdefault(guid.lower(), set()).add(page.relative_to(REPO).as_posix())
    return found


def test_every_job_id_the_docs_and_templates_show_is_a_listed_placeholder() -> None:
    shown = shown_job_ids()
    assert ZERO in shown and len(shown) >= 2  # the template's and the docs' examples are found
    unlisted = {guid: pages for guid, pages in shown.items() if guid not in PLACEHOLDER_JOB_IDS}
    assert not unlisted, f"example job IDs that would pass check: {unlisted}"


def test_the_runnable_examples_hold_real_looking_job_ids() -> None:
    """examples/stacks/ (checked by the tests) and uploader/examples/ (the demo) are run, so none of their job IDs
    is a placeholder."""
    ids = [json.loads(p.read_text())["jobId"] for p in sorted((REPO / "uploader" / "examples").glob("*.json"))]
    for path in example_stacks():
        config = yaml.safe_load(path.read_text())["config"]
        ids += [c["jobId"] for c in config.get("hr-connector:connectors", [])]
    assert len(ids) >= 8 and not [i for i in ids if i.lower() in PLACEHOLDER_JOB_IDS]


@pytest.mark.parametrize("job_id", [*sorted(PLACEHOLDER_JOB_IDS), " " + ZERO,
                                    "AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE"])
def test_the_model_refuses_each_placeholder_naming_where_purview_shows_the_real_one(job_id: str) -> None:
    with pytest.raises(MappingError) as caught:
        parse_connector({"jobId": job_id, "scenarios": [RESIGNATION]}, "m")
    assert caught.value.key == "m.jobId" and POINTER in caught.value.rule


def run(module: str, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HR_CONNECTOR_STACKS_DIR" and not k.startswith("UPLOADER_")}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


def test_check_refuses_a_stack_with_the_templates_placeholder(tmp_path: Path) -> None:
    text = (f"config:\n  hr-connector:tenantId: 3f2504e0-4f89-41d3-9a0c-0305e82c3301\n"
            f"  hr-connector:location: eastus\n  hr-connector:connectors:\n"
            f"    - name: departures\n      jobId: {ZERO}\n      files: departures/*.csv\n"
            f"      scenarios: [{json.dumps(RESIGNATION)}]\n")
    (tmp_path / "Pulumi.zero.yaml").write_text(text)
    done = run("provisioning", "check", "--stacks-dir", str(tmp_path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "FAIL  zero: hr-connector:connectors[0].jobId: is an example job ID" in done.stdout
    assert POINTER in done.stdout


def test_the_uploader_commands_refuse_placeholders(tmp_path: Path) -> None:
    csv = tmp_path / "resignations.csv"
    csv.write_text("U,R,L\nada@contoso.example,2025-01-02,2025-01-31\n")
    for job_id in sorted(PLACEHOLDER_JOB_IDS):
        mapping = tmp_path / "m.json"
        mapping.write_text(json.dumps({"jobId": job_id, "scenarios": [RESIGNATION]}))
        validate = run("uploader", "validate", str(csv), "--mapping", str(mapping))
        assert validate.returncode == 2 and "jobId: is an example job ID" in validate.stderr, validate.stderr
        upload = run("uploader", "upload", str(csv), "--mapping", str(mapping), "--dry-run")
        assert upload.returncode == 2 and POINTER in upload.stderr, upload.stderr
        flag = run("uploader", "upload", str(csv), "--dry-run", "--job-id", job_id,
                   "--mapping", str(REPO / "uploader" / "examples" / "resignation.json"))
        assert flag.returncode == 2 and "--job-id: is an example job ID" in flag.stderr, flag.stderr
        init = run("uploader", "mapping", "init", str(csv), "--scenario", "resignation", "--job-id", job_id)
        assert init.returncode == 2 and "--job-id: is an example job ID" in init.stderr, init.stderr
        doctor = run("uploader", "doctor", "--tenant-id", "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
                     "--app-id", "9b2c7d4e-5f60-4718-8a9b-0c1d2e3f4a5b", "--job-id", job_id)
        assert doctor.returncode == 2 and "--job-id: is an example job ID" in doctor.stdout + doctor.stderr
