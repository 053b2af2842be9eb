"""Which repository files change what a stack deploys, derived from the code rather than listed by hand.

A change to any of these selects every stack for preview and deploy (each then waits for its own approval):
- the program: `__main__.py` and every repository module it imports, followed transitively (so the offline
  tools — check, render, new-stack, the fleet commands — and the tests stay out);
- the project and its dependencies: Pulumi.yaml, pyproject.toml and requirements.txt (what Pulumi installs);
- the uploader image: the Dockerfile, its .dockerignore, and every file its COPY lines put in the image,
  after the .dockerignore has filtered the build context (the repository root).
Docs, tests, examples and the sandbox select nothing unless the image or the program really uses them.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Callable
from pathlib import Path

#: The program's entry point (Pulumi's Python runtime runs it) and the files that set up every stack.
PROGRAM = "__main__.py"
PROJECT_FILES = ("Pulumi.yaml", "pyproject.toml", "requirements.txt")
DOCKERFILE = "uploader/Dockerfile"
DOCKERIGNORE = "uploader/Dockerfile.dockerignore"  # BuildKit's <Dockerfile>.dockerignore beside the Dockerfile
LOCAL_PACKAGES = ("provisioning", "uploader")


def _module_file(root: Path, dotted: str) -> Path | None:
    base = root.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, root: Path) -> set[str]:
    """Dotted names of the repository modules a file imports (absolute or relative)."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = ".".join(path.relative_to(root).parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    out: set[str] = set()
    for name in found:
        if name.split(".")[0] in LOCAL_PACKAGES:
            parts = name.split(".")
            out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))  # packages' __init__ run too
    return out


def program_files(root: Path) -> set[str]:
    """`__main__.py` and the repository modules it imports, transitively (paths relative to root)."""
    seen: set[Path] = set()
    todo = [root / PROGRAM]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path, root):
            module = _module_file(root, name)
            if module is not None and module not in seen:
                todo.append(module)
    return {p.relative_to(root).as_posix() for p in seen}


def _copy_sources(dockerfile: Path) -> list[str]:
    """The sources of the Dockerfile's COPY lines (from the build context; `--from=` copies excluded)."""
    sources: list[str] = []
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if len(words) < 3 or words[0].upper() not in ("COPY", "ADD"):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if any(w.startswith("--from") for w in words[1:]):
            continue
        sources.extend(s.rstrip("/") or "." for s in args[:-1])
    return sources


def _glob_regex(pattern: str) -> str:
    """A .dockerignore pattern as a regex: `*` and `?` stay inside one path segment, `**` spans any."""
    parts = pattern.split("/")
    out = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:.*/)?")
            continue
        out.append("".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in part))
        if not last:
            out.append("/")
    return "".join(out)


def _ignore_rules(dockerignore: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """(exclude?, pattern) in file order; the last rule matching a path wins (Docker's rule). A pattern that
    matches a folder matches everything under it."""
    rules = []
    for raw in dockerignore.read_text(encoding="utf-8").splitlines() if dockerignore.is_file() else []:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        rules.append((not negate, re.compile(rf"^{_glob_regex(pattern)}(?:/.*)?$")))
    return rules


def _in_context(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    excluded = False
    for exclude, pattern in rules:
        if pattern.match(path):
            excluded = exclude
    return not excluded


def image_matcher(root: Path) -> Callable[[str], bool]:
    """A predicate: does this repository path end up in the uploader image?"""
    sources = _copy_sources(root / DOCKERFILE)
    rules = _ignore_rules(root / DOCKERIGNORE)

    def in_image(path: str) -> bool:
        copied = any(s == "." or path == s or path.startswith(f"{s}/") for s in sources)
        return copied and _in_context(path, rules)

    return in_image


def stack_wide_changes(changed: list[str], root: Path) -> list[str]:
    """The changed paths (relative, `/`-separated) that can change every stack's deployment."""
    program = program_files(root)
    in_image = image_matcher(root)
    always = {*PROJECT_FILES, DOCKERFILE, DOCKERIGNORE}
    out = []
    for raw in changed:
        path = raw.strip().removeprefix("./")
        if path and (path in always or path in program or in_image(path)):
            out.append(path)
    return out
