"""`python -m provisioning render-diff --base-ref REF`: what a change does to each stack, sized for a PR comment.

Each selected stack is rendered twice, offline (the real __main__.py under Pulumi mocks, secrets masked):
once from the base tree (`git archive REF`, the base's own program and stack file) and once from this tree.
The resources are compared by (type, name): added, removed, changed settings; plus a unified diff of the
two text renders. The pull-request comment holds a summary table and as many diffs as fit in its budget
(GitHub refuses comments over 65,536 characters); every diff and full render also goes to a directory the
workflow uploads as an artifact, and to the job summary. A change that touches 200 stacks still makes a
comment under the limit.
"""

from __future__ import annotations

import difflib
import html
import io
import json
import re
import subprocess
import sys
import tarfile
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioning.tools.offline import REPO_ROOT, stack_name

MARKER = "<!-- hr-connector:render -->"
#: GitHub's limit for an issue or pull-request comment body is 65,536 characters; keep a margin.
COMMENT_LIMIT = 60_000
#: GitHub's limit for one step's job summary is 1 MiB; keep a margin.
SUMMARY_LIMIT = 900_000
CERTIFICATE_TYPE = "pulumi-python:dynamic/hrconnector:Certificate"


@dataclass
class StackDiff:
    """How one stack's offline render differs between the base and this tree."""

    stack: str
    cloud: str = ""
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    diff: str = ""
    certificate: str = ""
    error: str = ""
    status: str = "changed"  # changed | unchanged | new | removed | error

    @property
    def touched(self) -> bool:
        return self.status != "unchanged"


def _key(resource: dict[str, Any]) -> str:
    return f"{resource['type']} {resource['name']}"


def _certificate(report: dict[str, Any]) -> str:
    for resource in report.get("resources", []):
        if resource["type"] == CERTIFICATE_TYPE:
            s = resource["settings"]
            return f"{s.get('validityDays')} d, renews {s.get('renewBeforeDays')} d before expiry"
    return ""


def diff_reports(stack: str, base: dict[str, Any] | None, head: dict[str, Any] | None) -> StackDiff:
    """Compare two render reports (None: the stack file does not exist on that side)."""
    from provisioning.tools.render import to_text

    if head is None:
        if base is None:
            return StackDiff(stack, status="unchanged")
        return StackDiff(stack, cloud=str(base.get("cloud", "")), removed=[_key(r) for r in base["resources"]],
                         status="removed")
    before = {_key(r): r for r in (base or {}).get("resources", [])}
    after = {_key(r): r for r in head["resources"]}
    result = StackDiff(stack, cloud=str(head.get("cloud", "")), certificate=_certificate(head))
    result.added = [k for k in after if k not in before]
    result.removed = [k for k in before if k not in after]
    result.changed = [k for k in after if k in before and after[k]["settings"] != before[k]["settings"]]
    old_text = to_text(base).splitlines() if base else []
    result.diff = "\n".join(difflib.unified_diff(old_text, to_text(head).splitlines(), "base", "head",
                                                 lineterm="", n=2))
    if base is None:
        result.status = "new"
    elif not result.diff:
        result.status = "unchanged"
    return result


# ------------------------------------------------------------------ text from stack files, made inert for GitHub
# Everything below that comes from a stack file or a file name (stack names, values in the renders, errors) is
# untrusted: GitHub renders the comment as Markdown with inline HTML. Each piece goes out through one of three
# functions, chosen by where it lands: `md` (Markdown text, e.g. a table cell), `code` (an inline code span),
# `fenced` (a code block no line of the text can close). `_visible` first shows control, bidi and invisible
# characters as \uXXXX, so no character can end a line, reorder the text or hide.

#: Categories shown as escapes: controls, format (bidi, zero-width, tags), separators, private use, unassigned.
_INVISIBLE = {"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"}


def _visible(text: str, keep: str = "") -> str:
    """`text` with every control, format, line/paragraph separator, private-use or unassigned character (other
    than those in `keep`) written as \\uXXXX, and U+3164/U+2800-style blanks with no glyph too."""
    out = []
    for ch in text:
        if ch in keep:
            out.append(ch)
        elif unicodedata.category(ch) in _INVISIBLE or ch in "\u115f\u1160\u3164\uffa0\u2800":
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return "".join(out)


def md(text: str) -> str:
    """Plain text for Markdown with inline HTML: every ASCII punctuation mark backslash-escaped (CommonMark allows
    it for all of them: no emphasis, link, table cell, mention or fence), then &, <, > and quotes as entities."""
    escaped = re.sub(r"""([!#$%()*+,\-./:;=?@\[\\\]^_`{|}~])""", r"\\\1", _visible(text))
    return html.escape(escaped, quote=True)


def code(text: str) -> str:
    """An inline code span the text cannot close (a backtick run longer than any inside); `|` escaped for tables
    (GitHub's table rule applies inside code spans too). HTML is not interpreted inside a code span."""
    text = _visible(text)
    ticks = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}".replace("|", "\\|")


def fenced(text: str, info: str = "") -> str:
    """A fenced code block no line of `text` can close: the fence is longer than any backtick run in it."""
    text = _visible(text, keep="\n")
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def _row(d: StackDiff, expiry: str) -> str:
    what = {"new": "new stack", "removed": "stack file removed", "error": f"error: {d.error}"}.get(d.status, "")
    cert = " / ".join(x for x in (expiry, d.certificate) if x)
    return (f"| {code(d.stack)} | {md(d.cloud)} | {len(d.added)} | {len(d.changed)} | {len(d.removed)} | {md(cert)} | "
            f"{md(what)} |")


def _details(d: StackDiff) -> str:
    body = d.diff or ("\n".join(f"- {k}" for k in d.removed) if d.status == "removed" else d.error)
    # The <details> line is an HTML block: Markdown does not apply there, so the name is HTML-escaped.
    summary = html.escape(_visible(d.stack), quote=True)
    return f"<details><summary><code>{summary}</code></summary>\n\n{fenced(body, 'diff')}\n</details>\n"


def build_comment(diffs: list[StackDiff], base_ref: str, limit: int = COMMENT_LIMIT,
                  expiries: dict[str, str] | None = None, where: str = "the job summary and the `render` artifact",
                  marker: str = MARKER) -> str:
    """The comment body: a summary table of the touched stacks and their diffs, never longer than `limit`."""
    expiries = expiries or {}
    touched = [d for d in diffs if d.touched]
    unchanged = [d.stack for d in diffs if not d.touched]
    head = [marker, f"### Offline render: {len(diffs)} stack(s) compared with {code(base_ref)}",
            "What the program declares for each stack under Pulumi mocks (no cloud access; secrets masked). "
            f"Full renders and every diff: {where}.", ""]
    if touched:
        head += ["| stack | cloud | added | changed | removed | certificate | note |",
                 "|---|---|---:|---:|---:|---|---|"]
    tail = []
    if unchanged:
        tail.append(f"\n{len(unchanged)} stack(s) render the same as on {code(base_ref)}.")
    errors = sum(d.status == "error" for d in diffs)
    if errors:
        tail.append(f"\n**{errors} stack(s) failed to render** (see the table).")

    def size(parts: list[str]) -> int:
        return sum(len(p) + 1 for p in parts)

    rows: list[str] = []
    budget = limit - size(head) - size(tail) - 200
    for d in touched:
        row = _row(d, expiries.get(d.stack, ""))
        if size(rows) + len(row) + 1 > budget:
            rows.append(f"| … | {len(touched) - len(rows)} more stack(s): see {where} | | | | | |")
            break
        rows.append(row)
    parts = head + rows + tail
    left = limit - size(parts) - 200
    shown = 0
    details: list[str] = []
    for d in touched:
        block = _details(d)
        if size(details) + len(block) + 1 > left:
            break
        details.append(block)
        shown += 1
    if details:
        parts += ["", *details]
    if shown < len(touched):
        parts.append(f"_{len(touched) - shown} diff(s) did not fit in this comment: see {where}._")
    body = "\n".join(parts)
    return body[:limit]


def extract_tree(ref: str, into: Path, repo: Path = REPO_ROOT) -> Path:
    """The repository as it is at `ref` (git archive), unpacked into `into`."""
    from provisioning.tools.fleet import FleetError

    done = subprocess.run(["git", "archive", "--format=tar", ref], cwd=repo, capture_output=True, timeout=300)
    if done.returncode != 0:
        raise FleetError(f"--base-ref {ref}: git archive failed: {done.stderr.decode(errors='replace')[-300:]}")
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        archive.extractall(into, filter="data")
    return into


def render_in(tree: Path, stack_file: Path) -> dict[str, Any] | None | Exception:
    """`python -m provisioning render --json` run in `tree` (its own program); None when the file is absent."""
    if not stack_file.is_file():
        return None
    done = subprocess.run([sys.executable, "-m", "provisioning", "render", "--json", "--stack", stack_name(stack_file),
                           "--stacks-dir", str(stack_file.parent)], cwd=tree, capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
        return RuntimeError(lines[-1][:300] if lines else f"render exited {done.returncode}")
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        return RuntimeError("render did not print a JSON report")
    return report


def base_stack_file(head_file: Path, base_tree: Path, repo: Path = REPO_ROOT, base_dir: str | None = None) -> Path:
    """Where the same stack's file is in the base tree: in `base_dir` (relative to the repository root) when given,
    else at the same relative path, else (a file outside the repository) in the base's stacks/."""
    if base_dir:
        return base_tree / base_dir / head_file.name
    try:
        return base_tree / head_file.resolve().relative_to(repo.resolve())
    except ValueError:
        return base_tree / "stacks" / head_file.name


def diff_stacks(head_files: list[Path], base_tree: Path, parallel: int = 2,
                render: Callable[[Path, Path], Any] = render_in, base_dir: str | None = None) -> list[StackDiff]:
    """Render each stack in both trees and compare; failures are that stack's row, not the command's."""
    def one(path: Path) -> tuple[StackDiff, Any]:
        try:
            return compare(path)
        except Exception as exc:  # noqa: BLE001 - a stack file is a unit of failure: its row, not the command's
            return StackDiff(stack_name(path), error=f"cannot be rendered ({type(exc).__name__})", status="error"), None

    def compare(path: Path) -> tuple[StackDiff, Any]:
        base = render(base_tree, base_stack_file(path, base_tree, base_dir=base_dir))
        head = render(REPO_ROOT, path)
        name = stack_name(path)
        for side, value in (("this branch", head), ("the base", base)):
            if isinstance(value, Exception):
                return StackDiff(name, error=f"{side}: {value}", status="error"), head
        return diff_reports(name, base, head), head

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        results = list(pool.map(one, head_files))
    return [d for d, _ in results]


def write_details(diffs: list[StackDiff], directory: Path) -> None:
    """Every diff as <stack>.diff, and a JSON index, for the workflow's artifact."""
    directory.mkdir(parents=True, exist_ok=True)
    for d in diffs:
        (directory / f"{d.stack}.diff").write_text((d.diff or d.error) + "\n", encoding="utf-8")
    index = [{"stack": d.stack, "cloud": d.cloud, "status": d.status, "added": d.added, "changed": d.changed,
              "removed": d.removed, "error": d.error} for d in diffs]
    (directory / "index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
