"""The shape stays: imports run one way, commands never import each other, and each package's top level stays small.

uploader:     commands -> job -> send -> check -> shared (the root modules and model/)
provisioning: tools -> components -> model (the package's root modules), which may use uploader's shared layer only
Every import counts, including those inside functions and under TYPE_CHECKING. The command dispatch in
uploader/cli.py names command modules as strings (imported when the command runs), like pip's command table,
so the parser never imports a command. `__main__` modules are entry points and sit above everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("uploader", "provisioning")

#: Rank of each layer: a module may import its own layer or a lower one, never a higher one.
UPLOADER_RANK = {"shared": 0, "check": 1, "send": 2, "job": 3, "commands": 4}
PROVISIONING_RANK = {"model": 0, "components": 1, "tools": 2}
#: What provisioning may use of the uploader: the model both sides share, never a stage.
UPLOADER_SHARED_FOR_PROVISIONING = ("uploader.model", "uploader.clouds", "uploader.errors", "uploader.yamlfile")
MAX_TOP_LEVEL_MODULES = 8


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module name this file imports, resolved to absolute dotted names."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES)
    return out


def uploader_layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "uploader":
        return None
    if len(parts) > 1 and parts[1] in UPLOADER_RANK:
        return parts[1]
    if len(parts) > 1 and parts[1] == "sandbox":
        return "sandbox"
    return "shared"  # the root modules (clouds, errors, report, yamlfile, cli) and model/


def provisioning_layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "provisioning":
        return None
    if len(parts) > 1 and parts[1] in PROVISIONING_RANK:
        return parts[1]
    return "model"


def _violations() -> list[str]:
    problems = []
    for name, path in MODULES.items():
        if name.endswith("__main__"):
            continue  # entry points
        for target in _imports(name, path):
            top = target.split(".")[0]
            if name.startswith("uploader"):
                if top in ("provisioning", "pulumi", "pulumi_azure_native", "pulumi_azuread"):
                    problems.append(f"{name} imports {target}: the uploader (and its image) never imports Pulumi")
                if top != "uploader":
                    continue
                here, there = uploader_layer(name), uploader_layer(target)
                if there == "sandbox" and here != "sandbox":
                    problems.append(f"{name} imports {target}: only the sandbox uses the sandbox")
                elif here == "sandbox":
                    if there not in ("sandbox", "shared"):
                        problems.append(f"{name} imports {target}: the sandbox stands apart from the stages")
                elif UPLOADER_RANK[there] > UPLOADER_RANK[here]:
                    problems.append(f"{name} ({here}) imports {target} ({there}): imports run downward")
                elif here == "commands" and there == "commands" and target != "uploader.commands":
                    problems.append(f"{name} imports {target}: no command module imports another")
            else:
                if top == "uploader":
                    if not target.startswith(UPLOADER_SHARED_FOR_PROVISIONING) and target != "uploader":
                        problems.append(f"{name} imports {target}: provisioning uses the uploader's model only")
                    continue
                if top != "provisioning":
                    continue
                here, there = provisioning_layer(name), provisioning_layer(target)
                if PROVISIONING_RANK[there] > PROVISIONING_RANK[here]:
                    problems.append(f"{name} ({here}) imports {target} ({there}): imports run downward")
    return problems


def test_imports_run_downward_and_commands_stand_alone() -> None:
    assert _violations() == []


@pytest.mark.parametrize("package", PACKAGES)
def test_top_level_stays_small(package: str) -> None:
    top = sorted(p.name for p in (REPO / package).glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, f"{package}/ holds {len(top)} modules at its top level: {top}"


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The walker itself: a check-stage module importing a command is caught (and so is a relative one)."""
    fake = tmp_path / "uploader" / "check"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("def f():\n    from ..commands import upload\n    from uploader.job import jobrun\n")
    found = _imports("uploader.check.bad", fake / "bad.py")
    assert {"uploader.commands", "uploader.job"} <= found
    assert all(UPLOADER_RANK[uploader_layer(t) or "shared"] > UPLOADER_RANK["check"] for t in
               ("uploader.commands.upload", "uploader.job.jobrun"))


#: Where argparse's Namespace may be read: the command modules, which turn options into typed settings once
#: (uploader/commands/, and the sandbox's own command module, both dispatched by uploader/cli.py), and the parser.
NAMESPACE_ALLOWED = ("uploader/commands/", "uploader/cli.py", "uploader/sandbox/cli.py")


def _namespace_mentions(source: str) -> list[int]:
    """Lines that name argparse's Namespace: `argparse.Namespace`, a bare `Namespace` (imported from argparse), or
    an annotation string holding either. SimpleNamespace and other names are not it."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        named = ((isinstance(node, ast.Attribute) and node.attr == "Namespace")
                 or (isinstance(node, ast.Name) and node.id == "Namespace")
                 or (isinstance(node, ast.ImportFrom) and any(a.name == "Namespace" for a in node.names))
                 or (isinstance(node, ast.arg) and isinstance(node.annotation, ast.Constant)
                     and "Namespace" in str(node.annotation.value).replace("SimpleNamespace", "")))
        if named:
            lines.append(node.lineno)
    return sorted(set(lines))


def _namespace_readers() -> list[str]:
    found = []
    for path in sorted((REPO / "uploader").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith(NAMESPACE_ALLOWED):
            continue
        found += [f"{rel}:{line}" for line in _namespace_mentions(path.read_text(encoding="utf-8"))]
    return found


def test_stages_take_typed_settings_not_the_namespace() -> None:
    """The Namespace stops in the commands: send/, job/, check/, model/ and the root modules take typed settings
    (uploader/send/settings.py's SignInSettings, uploader/job/doctor.py's DoctorSettings), so following one option
    never climbs back up through the layers."""
    assert _namespace_readers() == [], "argparse.Namespace outside uploader/commands/ and uploader/cli.py"


def test_the_namespace_scan_sees_each_form() -> None:
    """The scanner itself: every way a module can take the Namespace is caught; SimpleNamespace is not."""
    source = ("import argparse\nfrom argparse import Namespace\n"
              "def a(args: argparse.Namespace) -> None: ...\n"
              "def b(args: Namespace) -> None: ...\n"
              "def c(args: 'argparse.Namespace') -> None: ...\n"
              "from types import SimpleNamespace\nx = SimpleNamespace()\n")
    assert _namespace_mentions(source) == [2, 3, 4, 5]
