"""`render-diff`: each stack's offline render compared with the base branch, in a comment that stays under
GitHub's 65,536-character limit at any fleet size (the old comment concatenated every full render)."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from stack_examples import EXAMPLES

from provisioning.tools.render import to_text
from provisioning.tools.review import COMMENT_LIMIT, MARKER, build_comment, diff_reports, diff_stacks

REPO = Path(__file__).resolve().parent.parent
GITHUB_COMMENT_LIMIT = 65_536  # https://docs.github.com/en/rest/issues/comments (body: at most 65536 characters)


@pytest.fixture(scope="module")
def real_report() -> dict[str, Any]:
    """One real render (the richest example stack), reused as the template of a large fleet."""
    done = subprocess.run([sys.executable, "-m", "provisioning", "render", "--json", "--stack", "contoso-commercial",
                           "--stacks-dir", str(EXAMPLES)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _fleet(directory: Path, count: int) -> list[Path]:
    """`count` stack files (distinct names and schedules), as a platform team's stacks/ would hold."""
    text = (EXAMPLES / "Pulumi.contoso-commercial.yaml").read_text()
    assert '"30 2 * * *"' in text
    paths = []
    for i in range(count):
        # tenant-000 keeps the template's schedule (renders the same); no other i gives minute 30, hour 2.
        schedule = "30 2 * * *" if i == 0 else f"{i % 60} {i % 24} * * *"
        path = directory / f"Pulumi.tenant-{i:03d}.yaml"
        path.write_text(text.replace('"30 2 * * *"', f'"{schedule}"'))
        paths.append(path)
    return paths


def _schedule(stack_file: Path) -> str:
    return re.search(r'hr-connector:schedule: "([^"]+)"', stack_file.read_text()).group(1)  # type: ignore[union-attr]


def _renderer(template: dict[str, Any]):
    """Stand-in for render_trees: the real report with each file's stack name and schedule (base: the template's)."""
    def one(stack_file: Path, schedule: str) -> dict[str, Any]:
        report = json.loads(json.dumps(template).replace(template["schedule"], schedule))
        report["stack"] = stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml")
        return report

    def render(files: list[Path], base_tree: Path, base_ref: str, workers: Any, progress: Any, base_dir: Any):
        base = {f: one(f, template["schedule"]) for f in files}
        head = {f: one(f, _schedule(f)) for f in files}
        return base, head
    return render


def test_the_comment_for_200_stacks_fits_github_limit(real_report: dict[str, Any], tmp_path: Path) -> None:
    paths = _fleet(tmp_path, 200)
    diffs = diff_stacks(paths, tmp_path / "base", render=_renderer(real_report))
    assert sum(d.status == "changed" for d in diffs) == 199
    comment = build_comment(diffs, "main")
    # What the old workflow posted: every full render concatenated.
    old = sum(len(to_text({**real_report, "stack": p.name})) for p in paths)
    assert old > GITHUB_COMMENT_LIMIT * 10
    assert len(comment) <= COMMENT_LIMIT < GITHUB_COMMENT_LIMIT
    assert comment.startswith(MARKER)
    assert "200 stack(s) compared with `main`" in comment
    # Every changed stack has its row in the table; the diffs that do not fit are counted, not dropped silently.
    assert all(f"| `{d.stack}` | commercial | 0 | 1 | 0 |" in comment for d in diffs if d.status == "changed")
    assert "1 selected stack(s) render the same" in comment and "`tenant-000`" in comment
    # each stack's changed paths (stacks with the same schedule: one block), as many as fit, the rest counted
    assert comment.count("<details><summary><code>tenant-") > 10
    assert re.search(r"_\d+ more stack\(s\) with changes did not fit in this comment", comment)
    assert '+     configuration.scheduleTriggerConfig.cronExpression: "1 1 * * *"' in comment


@pytest.mark.parametrize("count", [1, 9, 44, 200, 1000])
def test_any_fleet_size_stays_under_the_limit(real_report: dict[str, Any], tmp_path: Path, count: int) -> None:
    paths = _fleet(tmp_path, count)
    diffs = diff_stacks(paths, tmp_path / "base", render=_renderer(real_report))
    comment = build_comment(diffs, "main")
    assert len(comment) <= COMMENT_LIMIT
    changed = [d for d in diffs if d.status == "changed"]
    listed = sum(f"| `{d.stack}` |" in comment for d in changed)
    if listed < len(changed):  # 1000 stacks: the table itself is cut, and says how many rows are elsewhere
        assert f"{len(changed) - listed} more stack(s): see" in comment


def test_diff_reports_classifies_resources(real_report: dict[str, Any]) -> None:
    head = copy.deepcopy(real_report)
    job = next(r for r in head["resources"] if r["type"] == "azure-native:app:Job")
    job["inputs"]["configuration"]["replicaTimeout"] = 60
    head["resources"] = [r for r in head["resources"] if r["type"] != "azure-native:monitor:ActionGroup"]
    head["resources"].append({"type": "azure-native:storage:Queue", "name": "q", "kind": "resource",
                              "inputs": {"queueName": "q"}, "options": {}})
    d = diff_reports("x", real_report, head)
    assert d.changed == [f"azure-native:app:Job {job['name']}"]
    assert d.added == ["azure-native:storage:Queue q"]
    assert [k.split()[0] for k in d.removed] == ["azure-native:monitor:ActionGroup"]
    # most significant first: the removal, then the change, then the addition
    assert [c.kind for c in d.changes] == ["removed", "changed", "added"]
    assert d.changes[1].paths == [("configuration.replicaTimeout", 7200, 60)]
    assert "-    configuration.replicaTimeout: 7200" in d.diff and "+    configuration.replicaTimeout: 60" in d.diff
    assert diff_reports("x", real_report, copy.deepcopy(real_report)).status == "unchanged"
    assert diff_reports("x", None, real_report).status == "new"


def test_identical_changes_are_shown_once_and_long_values_are_cut(real_report: dict[str, Any]) -> None:
    head = copy.deepcopy(real_report)
    head["outputs"]["nextSteps"] = "x" * 5000
    diffs = [diff_reports(f"s{i}", real_report, head) for i in range(30)]
    comment = build_comment(diffs, "main")
    assert comment.count("<details><summary>") == 1 and "(the same changes in 30 stacks)" in comment
    assert "and 22 more" in comment and "(5002 characters: the artifact has it whole)" in comment


@pytest.mark.pulumi
def test_render_diff_against_a_git_ref(tmp_path: Path) -> None:
    """The real command: base = HEAD (git archive), this tree's program; one stack file edited, one as is."""
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    changed = (EXAMPLES / "Pulumi.contoso-commercial.yaml").read_text().replace('"30 2 * * *"', '"45 3 * * *"')
    assert '"45 3 * * *"' in changed
    (stacks / "Pulumi.contoso-commercial.yaml").write_text(changed)
    (stacks / "Pulumi.fabrikam-gcc.yaml").write_text((EXAMPLES / "Pulumi.fabrikam-gcc.yaml").read_text())
    summary = tmp_path / "summary.md"
    done = subprocess.run(
        [sys.executable, "-m", "provisioning", "render-diff", "--base-ref", "HEAD", "--all", "--stacks-dir",
         str(stacks), "--base-stacks-dir", "examples/stacks", "--comment", str(tmp_path / "comment.md"),
         "--summary", str(summary),
         "--details-dir", str(tmp_path / "details")],
        cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ})
    assert done.returncode == 0, done.stderr
    comment = (tmp_path / "comment.md").read_text()
    assert "| `contoso-commercial` | commercial | 0 | 1 | 0 |" in comment
    assert '-     configuration.scheduleTriggerConfig.cronExpression: "30 2 * * *"' in comment
    assert '+     configuration.scheduleTriggerConfig.cronExpression: "45 3 * * *"' in comment
    assert "1 selected stack(s) render the same as on HEAD" in comment and "`fabrikam-gcc`" in comment
    assert "fabrikam-gcc` |" not in comment  # not in the table of changed stacks
    assert "-----BEGIN" not in comment and "PRIVATE KEY" not in comment
    assert "render-diff: this tree: 2/2 evaluated" in done.stderr  # progress
    assert "contoso-commercial" in summary.read_text() and not summary.read_text().startswith(MARKER)
    index = json.loads((tmp_path / "details" / "index.json").read_text())
    assert {e["stack"]: e["status"] for e in index} == {"contoso-commercial": "changed", "fabrikam-gcc": "unchanged"}
    changes = (tmp_path / "details" / "contoso-commercial.changes").read_text()
    assert '+     configuration.scheduleTriggerConfig.cronExpression: "45 3 * * *"' in changes


def test_an_older_base_without_the_evaluator_command_is_recognised() -> None:
    """render-diff runs the base's own `python -m provisioning.tools.evaluator`; a base from before that command
    prints no header (python -m on a module without a main guard exits quietly), and is evaluated one process per
    stack instead."""
    from provisioning.tools.evaluator import PROTOCOL
    from provisioning.tools.review import _speaks

    assert _speaks(json.dumps({"protocol": PROTOCOL}) + "\n", PROTOCOL)
    assert not _speaks("", PROTOCOL) and not _speaks("warning: something\n", PROTOCOL)
    assert not _speaks(json.dumps({"protocol": "other/1"}), PROTOCOL) and not _speaks("[1]", PROTOCOL)
