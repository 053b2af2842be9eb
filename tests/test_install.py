"""A fresh clone deploys with no `make` step: Pulumi's pip toolchain installs only `requirements.txt`
(https://github.com/pulumi/pulumi/blob/master/sdk/python/toolchain/pip.go: `python -m pip install -r
requirements.txt` in the project directory, and nothing when the file is missing), so that file must install
every distribution the program, its dynamic providers and the uploader code they import need."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements.txt"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
LOCAL = {"provisioning", "uploader", "__main__"}


def requirement_lines() -> list[str]:
    lines = [ln.split(" #", 1)[0].strip() for ln in REQUIREMENTS.read_text(encoding="utf-8").splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def project_extras() -> set[str]:
    """The extras of the one requirement line, which must install this project itself (editable)."""
    (line,) = requirement_lines()
    match = re.fullmatch(r"-e\s+\.(?:\[(?P<extras>[\w,\s-]+)\])?", line)
    assert match, f"requirements.txt must install this project editable (`-e .[extras]`), not {line!r}"
    return {e.strip() for e in (match["extras"] or "").split(",") if e.strip()}


def closure(requirements: list[str]) -> set[str]:
    """Canonical names of the distributions these requirements pull in (installed metadata, markers honoured)."""
    seen: set[str] = set()
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        for wanted in [""] + sorted(req.extras):
            key = f"{name}[{wanted}]"
            if key in seen:
                continue
            seen.add(key)
            try:
                requires = metadata.requires(req.name) or []
            except metadata.PackageNotFoundError:
                pytest.fail(f"{req.name} is required but not installed in this environment")
            todo.extend((Requirement(r), wanted) for r in requires)
    return {k.split("[", 1)[0] for k in seen}


def third_party_imports() -> dict[str, set[str]]:
    """Top-level modules imported anywhere in __main__.py, provisioning/ and uploader/ -> the files importing them."""
    found: dict[str, set[str]] = {}
    files = [ROOT / "__main__.py", *(ROOT / "provisioning").rglob("*.py"), *(ROOT / "uploader").rglob("*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                     else [])
            for name in names:
                top = name.split(".", 1)[0]
                if top not in sys.stdlib_module_names and top not in LOCAL and top != "__future__":
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_pulumi_yaml_uses_the_pip_toolchain_and_the_virtualenv_requirements_txt_fills() -> None:
    options = yaml.safe_load((ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))["runtime"]["options"]
    assert options == {"toolchain": "pip", "virtualenv": ".venv"}
    assert REQUIREMENTS.is_file(), "without requirements.txt, Pulumi's pip toolchain installs nothing"


def test_requirements_install_the_project_with_the_provisioning_extra() -> None:
    extras = project_extras()
    assert "provisioning" in extras
    assert extras <= set(PROJECT["optional-dependencies"])
    assert "dev" not in extras  # test tooling is not a deploy dependency


def test_what_requirements_install_covers_every_import_of_the_program() -> None:
    wanted = list(PROJECT["dependencies"])
    for extra in project_extras():
        wanted += PROJECT["optional-dependencies"][extra]
    installed = closure(wanted)
    providers = metadata.packages_distributions()
    missing = {}
    for module, files in third_party_imports().items():
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        assert dists, f"{module} (imported by {sorted(files)}) is provided by no installed distribution"
        if not dists & installed:
            missing[module] = sorted(files)
    assert not missing, f"imported but not installed by requirements.txt: {missing}"
    assert {"pulumi", "pulumi-azure-native", "pulumi-azuread", "pulumi-docker-build"} <= installed


def test_the_makefile_installs_what_pulumi_installs() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    stamp = next(ln for ln in makefile.splitlines() if ln.startswith("$(STAMP):"))
    assert "requirements.txt" in stamp, "the Makefile must reinstall when requirements.txt changes"
    assert re.search(r"pip install .*-r requirements\.txt", makefile)


def test_pip_resolves_the_requirements_file_to_this_project_with_its_extra(tmp_path: Path) -> None:
    """pip's own resolver on the file Pulumi reads (dry run; the build backend comes from the package index)."""
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed", "--no-deps",
         "--report", str(report), "-r", "requirements.txt"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    if proc.returncode != 0 and re.search(r"(?i)connection|network|temporary failure|timed out", proc.stderr):
        pytest.skip("the package index is not reachable for the build backend")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (item,) = json.loads(report.read_text())["install"]
    assert canonicalize_name(item["metadata"]["name"]) == canonicalize_name(PROJECT["name"])
    assert item["download_info"]["dir_info"].get("editable") is True
    assert Path(item["download_info"]["url"].removeprefix("file://")) == ROOT
    assert set(item["requested_extras"]) == project_extras()
    requires = [Requirement(r) for r in item["metadata"]["requires_dist"]]
    provisioning = {canonicalize_name(r.name) for r in requires
                    if r.marker is not None and r.marker.evaluate({"extra": "provisioning"})}
    assert {"pulumi", "pulumi-azure-native", "pulumi-azuread", "pulumi-docker-build"} <= provisioning
