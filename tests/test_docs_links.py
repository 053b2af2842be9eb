"""The repository stands on its own: every relative link in its Markdown resolves to a file inside it (and
to a heading there, when the link names one), and no tracked file points at notes kept outside it."""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".git", ".venv", "node_modules", ".pytest_cache", ".hypothesis", ".ruff_cache", "__pycache__", ".ci"}
#: Paths outside the repository that used to be referenced; spelled in pieces so this file does not match.
FORBIDDEN = ("../" + "shared", "DESIGN" + ".md")

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"`[^`]*`")


def tracked_files() -> list[Path]:
    """The repository's files: `git ls-files` when it is a checkout, else a walk without build folders."""
    try:
        argv = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]  # new files count too
        out = subprocess.run(argv, cwd=REPO, capture_output=True, check=True).stdout
        files = [REPO / p for p in out.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        files = [p for p in REPO.rglob("*") if p.is_file()]
    return [p for p in files if p.is_file() and not SKIP_DIRS.intersection(p.relative_to(REPO).parts)]


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a link or heading inside a fence is only an example)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def links(text: str) -> list[str]:
    """Inline and reference-style link targets, outside code blocks and code spans."""
    found: list[str] = []
    for line in prose_lines(text):
        ref = _REFERENCE_LINK.match(line)
        if ref:
            found.append(ref.group(1))
            continue
        found += _INLINE_LINK.findall(_CODE_SPAN.sub("", line))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: rendered text, lower-cased, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors on its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """Every heading anchor of a Markdown file; repeated headings get -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        m = _HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return frozenset(out)


def markdown_pages() -> list[Path]:
    pages = [p for p in tracked_files() if p.suffix == ".md"]
    assert REPO / "README.md" in pages and any(p.parent == REPO / "docs" for p in pages)
    return sorted(pages)


@pytest.mark.parametrize("page", markdown_pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_stay_in_the_repository_and_resolve(page: Path) -> None:
    problems = []
    for target in links(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (page.parent / file_part).resolve() if file_part else page
        if not resolved.is_relative_to(REPO):
            problems.append(f"{target}: leaves the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{target}: no heading with anchor #{anchor} in {resolved.relative_to(REPO)}")
    assert not problems, f"{page.relative_to(REPO)}: " + "; ".join(problems)


def test_no_file_points_outside_the_repository() -> None:
    offenders = []
    for path in tracked_files():
        if path == Path(__file__).resolve():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary
        for n, line in enumerate(text.splitlines(), start=1):
            if any(word in line for word in FORBIDDEN):
                offenders.append(f"{path.relative_to(REPO)}:{n}")
    assert not offenders, "files pointing at notes outside the repository (use docs/): " + ", ".join(offenders)


#: `docs/<page>.md#<anchor>` as code, templates, workflows and messages name it (a user reads it in an error or a
#: generated stack file). An anchor broken across two lines of a string ends in "-" and is left alone.
_DOC_REFERENCE = re.compile(r"(?<![\w/.-])docs/([\w.-]+\.md)(?:#([\w-]*\w))?(?![\w-])")


def test_docs_named_outside_markdown_resolve() -> None:
    """Every `docs/X.md#anchor` a non-Markdown file names (error messages, the stack template, comments pointing a
    reader there) is a page with that heading: `provisioning/config.py` named `#the-deploy-runners-network`."""
    problems = []
    for path in tracked_files():
        if path.suffix == ".md" or path.parent == REPO / "tests":
            continue  # Markdown has its own check; tests make up pages of their own
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for n, line in enumerate(text.splitlines(), start=1):
            for page, anchor in _DOC_REFERENCE.findall(line):
                target = REPO / "docs" / page
                if not target.is_file() or (anchor and anchor not in anchors(target)):
                    problems.append(f"{path.relative_to(REPO)}:{n}: docs/{page}" + (f"#{anchor}" if anchor else ""))
    assert not problems, "no such page or heading: " + ", ".join(problems)


def test_the_link_checker_sees_what_it_must() -> None:
    """The checker's own parts, on a page made up for it (a checker that finds nothing proves nothing)."""
    text = (
        "# Top `code` *here*\n## Top code here\nSee [a](docs/x.md#y), ![i](img.png), `[not](a.md)`.\n"
        "```\n[also not](b.md)\n# not a heading\n```\n[ref]: ../outside.md\n"
    )
    assert links(text) == ["docs/x.md#y", "img.png", "../outside.md"]
    assert slug("4. Second deploy (pass 2): job ID and mapping") == "4-second-deploy-pass-2-job-id-and-mapping"
    assert slug("`python -m provisioning`") == "python--m-provisioning"
    assert slug("[Link](x.md) text") == "link-text"
