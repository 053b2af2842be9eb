"""Which changed files select every stack: derived from what `__main__.py` imports and what the Dockerfile copies
into the image (after its .dockerignore), so docs, tests, examples, the sandbox and the offline tools select
none — each selected stack would otherwise wait for its own approval on merge."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from provisioning.tools.selection import image_matcher, program_files, stack_wide_changes

REPO = Path(__file__).resolve().parent.parent
TENANT = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"

STACK_WIDE = [
    "__main__.py", "Pulumi.yaml", "pyproject.toml", "requirements.txt",
    "provisioning/components/job.py", "provisioning/components/rbacwait.py", "provisioning/components/certificate.py",
    "provisioning/config.py",
    "provisioning/components/tags.py",
    "uploader/clouds.py",  # imported by the program (and in the image)
    "uploader/send/ingestion.py", "uploader/commands/run.py", "uploader/new_module.py",  # in the image
    "uploader/requirements.lock", "uploader/Dockerfile", "uploader/Dockerfile.dockerignore",
]
NOT_STACK_WIDE = [
    "README.md", "docs/gitops.md", "CHANGELOG.md", "LICENSE", "tests/test_program.py", "tests/conftest.py",
    ".github/workflows/ci.yml", "Makefile", "package.json", "bench/throughput.py",
    "uploader/sandbox/server.py", "uploader/examples/resignation.csv", "uploader/sandbox/demo.py",
    "uploader/__pycache__/cli.cpython-311.pyc",
    "provisioning/tools/render.py", "provisioning/tools/check.py", "provisioning/tools/newstack.py",
    "provisioning/tools/fleet.py",
    "provisioning/tools/offline.py", "provisioning/tools/cli.py", "provisioning/templates/stack.yaml.tmpl",
    "stacks/Pulumi.contoso-commercial.yaml",  # selects its own stack only (fleet.changed_stacks)
    "examples/stacks/Pulumi.contoso-commercial.yaml", "stacks/README.md",
]


@pytest.mark.parametrize("path", STACK_WIDE)
def test_what_the_program_or_image_uses_selects_every_stack(path: str) -> None:
    assert stack_wide_changes([path], REPO) == [path]


@pytest.mark.parametrize("path", NOT_STACK_WIDE)
def test_docs_tests_examples_sandbox_and_offline_tools_select_none(path: str) -> None:
    assert stack_wide_changes([path], REPO) == []


def test_the_program_closure_is_what_main_imports() -> None:
    files = program_files(REPO)
    assert {"__main__.py", "provisioning/components/job.py", "provisioning/components/certificate.py",
            "uploader/model/certs.py"} <= files
    assert not files & {"provisioning/tools/offline.py", "provisioning/tools/render.py", "provisioning/tools/fleet.py"}
    assert all((REPO / f).is_file() for f in files)


def _mini_repo(tmp_path: Path, dockerfile: str, dockerignore: str) -> Path:
    """A project whose program imports one helper, and whose image copies what the test says."""
    (tmp_path / "provisioning").mkdir()
    (tmp_path / "uploader" / "extra").mkdir(parents=True)
    (tmp_path / "__main__.py").write_text("from provisioning import used\nimport provisioning.also as a\n")
    (tmp_path / "provisioning" / "__init__.py").write_text("")
    (tmp_path / "provisioning" / "used.py").write_text("from .deep import x\n")
    (tmp_path / "provisioning" / "deep.py").write_text("from uploader.clouds import C\n")
    (tmp_path / "provisioning" / "also.py").write_text("")
    (tmp_path / "provisioning" / "tool.py").write_text("from . import used\n")
    (tmp_path / "uploader" / "__init__.py").write_text("")
    (tmp_path / "uploader" / "clouds.py").write_text("C = 1\n")
    (tmp_path / "uploader" / "Dockerfile").write_text(dockerfile)
    (tmp_path / "uploader" / "Dockerfile.dockerignore").write_text(dockerignore)
    return tmp_path


def test_selection_follows_the_dockerfile_and_dockerignore(tmp_path: Path) -> None:
    root = _mini_repo(tmp_path, "FROM x\nCOPY README.md pyproject.toml ./\nCOPY --chown=1:1 uploader/ u/\n",
                      "*\n!README.md\n!uploader/\nuploader/extra/\n!uploader/extra/keep.txt\n**/*.pyc\n")
    assert program_files(root) == {"__main__.py", "provisioning/__init__.py", "provisioning/used.py",
                                   "provisioning/deep.py", "provisioning/also.py", "uploader/__init__.py",
                                   "uploader/clouds.py"}
    in_image = image_matcher(root)
    assert in_image("README.md") and in_image("uploader/x.py") and in_image("uploader/extra/keep.txt")
    assert not in_image("uploader/extra/other.txt") and not in_image("uploader/a/b.pyc")
    assert not in_image("docs/a.md")  # not copied
    assert not in_image("pyproject.toml")  # copied, but the .dockerignore keeps it out of the context
    assert stack_wide_changes(["provisioning/tool.py", "README.md", "docs/a.md", "provisioning/deep.py"],
                              root) == ["README.md", "provisioning/deep.py"]


def test_matrix_uses_the_derived_selection(tmp_path: Path) -> None:
    for name in ("a", "b"):
        done = subprocess.run([sys.executable, "-m", "provisioning", "new-stack", name, "--cloud", "gcc",
                               "--tenant-id", TENANT, "--stacks-dir", str(tmp_path)],
                              cwd=REPO, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    changed = tmp_path / "changed.txt"

    def selected(*paths: str) -> list[str]:
        changed.write_text("\n".join(paths) + "\n")
        done = subprocess.run([sys.executable, "-m", "provisioning", "matrix", "--changed-files", str(changed),
                               "--stacks-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return [e["stack"] for e in json.loads(done.stdout)["include"]]

    assert selected("uploader/sandbox/entra.py", "tests/test_run.py", "docs/fleet.md") == []
    assert selected("uploader/sandbox/entra.py", "stacks/Pulumi.b.yaml") == ["b"]
    assert selected("examples/stacks/Pulumi.b.yaml", "examples/stacks/README.md") == []  # examples never deploy
    assert selected("uploader/send/upload.py") == ["a", "b"]
