"""`python -m provisioning render-diff --base-ref REF`: what a change does to each stack, sized for a PR comment.

Each selected stack is evaluated twice, offline, the way `check` evaluates a fleet (evaluator.py: a few worker
processes, hosting stacks first, no process start per stack): once from the base tree (`git archive REF`: the
base's own program, stack files and evaluator, run as one `python -m provisioning.tools.evaluator` there) and once
from this tree. Both graphs become render reports (render.py: every input and option of every resource and
provider, the outputs; secrets masked) and are compared property path by property path.

The pull-request comment holds a summary table, the changed property paths of each touched stack (old and new
values; most significant first: failures, removed stacks and resources, provider changes, other changes, added
resources), identical change lists of many stacks shown once, and the names of the selected stacks that render
the same (collapsed) — all within GitHub's comment size limit. Everything in full (every path, the unified diff of
the two text renders, an index) goes to --details-dir for the workflow's artifact, and a longer report to the job
summary. Progress goes to stderr.
"""

from __future__ import annotations

import difflib
import html
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioning.config import ConfigError
from provisioning.tools.offline import REPO_ROOT, Evaluation, EvaluationError, stack_name, stack_path

MARKER = "<!-- hr-connector:render -->"
#: GitHub refuses an issue or pull-request comment whose body is over 65,536 characters: the REST API answers
#: 422 "Body is too long (maximum is 65536 characters)", its documentation_url being
#: https://docs.github.com/rest/issues/comments#create-an-issue-comment (quoted in danger/danger#424 and
#: telia-oss/github-pr-resource#259; GitHub's answer: https://github.com/orgs/community/discussions/27190).
#: Keep a margin.
COMMENT_LIMIT = 60_000
#: GitHub's limit for one step's job summary is 1 MiB
#: (https://docs.github.com/en/actions/reference/workflows-and-actions/workflow-commands#adding-a-job-summary);
#: keep a margin.
SUMMARY_LIMIT = 900_000
CERTIFICATE_TYPE = "pulumi-python:dynamic/hrconnector:Certificate"
ABSENT = object()  # a path one side does not have
#: A value longer than this is cut in the comment (the artifact has it whole).
VALUE_LIMIT = 300

Report = dict[str, Any]
Progress = Callable[[str], None]
Rendered = dict[Path, Report | Exception]


@dataclass
class ResourceChange:
    """One resource (or the outputs) that differs: added, removed, or changed at these paths (old, new)."""

    kind: str  # added | removed | changed
    key: str  # "type name", or "outputs"
    paths: list[tuple[str, Any, Any]] = field(default_factory=list)

    @property
    def rank(self) -> int:
        """Most significant first: a removal, a provider's change, a change, an addition, the outputs."""
        if self.key == "outputs":
            return 4
        if self.kind == "removed":
            return 0
        if self.kind == "added":
            return 3
        return 1 if self.key.startswith("pulumi:providers:") or any(
            p.startswith("options.") for p, _, _ in self.paths) else 2

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "resource": self.key,
                "paths": [{"path": p, **({} if o is ABSENT else {"old": o}), **({} if n is ABSENT else {"new": n})}
                          for p, o, n in self.paths]}


@dataclass
class StackDiff:
    """How one stack's offline render differs between the base and this tree."""

    stack: str
    cloud: str = ""
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    certificate: str = ""
    error: str = ""
    status: str = "changed"  # changed | unchanged | new | removed | error
    changes: list[ResourceChange] = field(default_factory=list)
    reports: tuple[Report | None, Report | None] = field(default=(None, None), repr=False)  # (base, head)

    @property
    def diff(self) -> str:
        """The unified diff of the two text renders (for the artifact; made when asked for: it is the slow part)."""
        from provisioning.tools.render import to_text

        base, head = self.reports
        if head is None:
            return ""
        old_text = to_text(base).splitlines() if base else []
        return "\n".join(difflib.unified_diff(old_text, to_text(head).splitlines(), "base", "head", lineterm="",
                                              n=2))

    @property
    def touched(self) -> bool:
        return self.status != "unchanged"

    @property
    def path_count(self) -> int:
        return sum(len(c.paths) for c in self.changes)

    @property
    def rank(self) -> tuple[int, int, str]:
        """Stacks most significant first: failures, removed stacks, stacks losing resources, the most changed
        paths, new stacks last."""
        tier = {"error": 0, "removed": 1, "changed": 3, "new": 4}.get(self.status, 5)
        if self.status == "changed" and self.removed:
            tier = 2
        return (tier, -self.path_count, self.stack)


def _certificate(report: Report) -> str:
    for resource in report.get("resources", []):
        if resource["type"] == CERTIFICATE_TYPE:
            s = resource.get("inputs") or {}
            return f"{s.get('validityDays')} d, renews {s.get('renewBeforeDays')} d before expiry"
    return ""


def _compare(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    return [(p, before.get(p, ABSENT), after.get(p, ABSENT)) for p in sorted(set(before) | set(after))
            if before.get(p, ABSENT) != after.get(p, ABSENT)]


def diff_reports(stack: str, base: Report | None, head: Report | None) -> StackDiff:
    """Compare two render reports (None: the stack file does not exist on that side), path by path."""
    from provisioning.tools.render import flatten, resource_key, resource_paths

    if head is None:
        if base is None:
            return StackDiff(stack, status="unchanged")
        gone = [resource_key(r) for r in base["resources"]]
        return StackDiff(stack, cloud=str(base.get("cloud", "")), removed=gone, status="removed",
                         changes=[ResourceChange("removed", k) for k in gone])
    before = {resource_key(r): r for r in (base or {}).get("resources", [])}
    after = {resource_key(r): r for r in head["resources"]}
    result = StackDiff(stack, cloud=str(head.get("cloud", "")), certificate=_certificate(head))
    for key in before.keys() - after.keys():
        result.changes.append(ResourceChange("removed", key, _compare(resource_paths(before[key]), {})))
    for key, resource in after.items():
        if key not in before:
            result.changes.append(ResourceChange("added", key, _compare({}, resource_paths(resource))))
        elif paths := _compare(resource_paths(before[key]), resource_paths(resource)):
            result.changes.append(ResourceChange("changed", key, paths))
    if outputs := _compare(flatten((base or {}).get("outputs") or {}), flatten(head.get("outputs") or {})):
        result.changes.append(ResourceChange("changed", "outputs", outputs))
    result.changes.sort(key=lambda c: (c.rank, c.key))
    result.added = [c.key for c in result.changes if c.kind == "added"]
    result.removed = [c.key for c in result.changes if c.kind == "removed"]
    result.changed = [c.key for c in result.changes if c.kind == "changed" and c.key != "outputs"]
    result.reports = (base, head)
    if base is None:
        result.status = "new"
    elif not result.changes:
        result.status = "unchanged"
    return result


def _value(value: Any, limit: int | None) -> str:
    from provisioning.tools.render import shown

    text = shown(value)
    if limit is not None and len(text) > limit:
        return f"{text[:limit]}… ({len(text)} characters: the artifact has it whole)"
    return text


def change_lines(d: StackDiff, limit: int | None = VALUE_LIMIT) -> list[str]:
    """The changed property paths of one stack, as lines of a `diff` block (`-` old, `+` new); an added or
    removed resource is one line unless `limit` is None (the artifact: every path)."""
    if d.status == "error":
        return [d.error]
    lines: list[str] = []
    for c in d.changes:
        if c.kind == "removed":
            lines.append(f"- {c.key}  (removed{f': {len(c.paths)} properties' if c.paths else ''})")
        elif c.kind == "added":
            lines.append(f"+ {c.key}  (added: {len(c.paths)} properties)")
        else:
            lines.append(f"~ {c.key}")
        if c.kind != "changed" and limit is not None:
            continue
        for path, old, new in c.paths:
            if old is not ABSENT:
                lines.append(f"-     {path}: {_value(old, limit)}")
            if new is not ABSENT:
                lines.append(f"+     {path}: {_value(new, limit)}")
    return lines


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


def _names_html(names: list[str], most: int = 8) -> str:
    """Stack names for a <summary> (an HTML block: Markdown does not apply there, so each is HTML-escaped)."""
    shown = ", ".join(f"<code>{html.escape(_visible(n), quote=True)}</code>" for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _details(names: list[str], d: StackDiff, lines: list[str], cut: int = 0) -> str:
    what = ("failed to render" if d.status == "error" else "stack file removed" if d.status == "removed" else
            f"{'new stack, ' if d.status == 'new' else ''}{len(d.added)} added, {len(d.changed)} changed, "
            f"{len(d.removed)} removed, {d.path_count} propert{'y' if d.path_count == 1 else 'ies'}")
    same = f" (the same changes in {len(names)} stacks)" if len(names) > 1 else ""
    body = "\n".join(lines) + (f"\n… {cut} more line(s): the artifact has every path" if cut else "")
    return (f"<details><summary>{_names_html(names)}: {html.escape(what)}{same}</summary>\n\n"
            f"{fenced(body, 'diff')}\n</details>\n")


def _unchanged(names: list[str], base_ref: str, budget: int) -> str:
    """The selected stacks that render the same, named in a collapsed list (cut to `budget` characters)."""
    if not names:
        return ""
    items: list[str] = []
    used = 0
    for name in names:
        item = code(name)
        if used + len(item) + 2 > budget:
            break
        items.append(item)
        used += len(item) + 2
    more = f", and {len(names) - len(items)} more (the artifact's index.json lists them)" if len(items) < len(
        names) else ""
    return (f"<details><summary>{len(names)} selected stack(s) render the same as on {html.escape(_visible(base_ref))}"
            f" (the merge deploys them with no change)</summary>\n\n{', '.join(items)}{more}\n\n</details>\n")


def build_comment(diffs: list[StackDiff], base_ref: str, limit: int = COMMENT_LIMIT,
                  expiries: dict[str, str] | None = None, where: str = "the job summary and the `render` artifact",
                  marker: str = MARKER) -> str:
    """The comment body, never longer than `limit`: a table of the touched stacks, the changed property paths of
    each (most significant first, identical lists once), the unchanged stacks by name."""
    expiries = expiries or {}
    touched = sorted((d for d in diffs if d.touched), key=lambda d: d.rank)
    unchanged = sorted(d.stack for d in diffs if not d.touched)
    head = [marker, f"### Offline render: {len(diffs)} stack(s) compared with {code(base_ref)}",
            "Every input and option of every resource and provider the program declares, and the stack outputs, "
            "under Pulumi mocks (no cloud access; secrets masked). "
            f"Every changed path, full renders and diffs: {where}.", ""]
    if touched:
        head += ["| stack | cloud | added | changed | removed | certificate | note |",
                 "|---|---|---:|---:|---:|---|---|"]
    tail = []
    errors = sum(d.status == "error" for d in diffs)
    if errors:
        tail.append(f"\n**{errors} stack(s) failed to render** (see the table).")

    def size(parts: list[str]) -> int:
        return sum(len(p) + 1 for p in parts)

    rows: list[str] = []
    budget = (limit - size(head) - size(tail)) * 3 // 10  # the table: at most 30% of the comment
    for d in touched:
        row = _row(d, expiries.get(d.stack, ""))
        if size(rows) + len(row) + 1 > budget:
            rows.append(f"| … | {len(touched) - len(rows)} more stack(s): see {where} | | | | | |")
            break
        rows.append(row)
    same = _unchanged(unchanged, base_ref, (limit - size(head)) // 10)
    parts = head + rows + tail
    left = limit - size(parts) - len(same) - 300
    groups: dict[str, tuple[list[str], StackDiff, list[str]]] = {}
    for d in touched:  # stacks with the very same changed paths and values: one block
        lines = change_lines(d)
        groups.setdefault("\n".join(lines), ([], d, lines))[0].append(d.stack)
    blocks: list[str] = []
    shown = 0
    for names, d, lines in groups.values():
        block = _details(names, d, lines)
        if len(block) + 1 > left:  # the first lines that fit, when a useful part fits
            keep = len(lines)
            while keep > 3 and len(_details(names, d, lines[:keep], len(lines) - keep)) + 1 > left:
                keep = max(3, keep - max(1, (len(block) + 1 - left) // 80))
            block = _details(names, d, lines[:keep], len(lines) - keep)
            if len(block) + 1 > left:
                break
        blocks.append(block)
        left -= len(block) + 1
        shown += len(names)
    if blocks:
        parts += ["", *blocks]
    if shown < len(touched):
        parts.append(f"_{len(touched) - shown} more stack(s) with changes did not fit in this comment: see {where}._")
    if same:
        parts.append(f"\n{same}")
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


def base_stack_file(head_file: Path, base_tree: Path, repo: Path = REPO_ROOT, base_dir: str | None = None) -> Path:
    """Where the same stack's file is in the base tree: in `base_dir` (relative to the repository root) when given,
    else at the same path relative to the repository, else in the base's own stackConfigDir (a change that moved
    the stack files)."""
    if base_dir:
        return base_tree / base_dir / head_file.name
    try:
        same = base_tree / head_file.resolve().relative_to(repo.resolve())
    except ValueError:
        same = None
    if same is not None and same.is_file():
        return same
    try:
        return stack_path(stack_name(head_file), base_tree)
    except ConfigError:  # the base has no readable Pulumi.yaml
        return base_tree / "stacks" / head_file.name


Outcome = Evaluation | ConfigError | EvaluationError


class _Counter:
    """`progress` lines while a tree's stacks are evaluated: at the start, every tenth part, and at the end."""

    def __init__(self, progress: Progress | None, what: str, total: int) -> None:
        self.progress, self.what, self.total, self.done = progress, what, total, 0
        self.started = time.monotonic()
        self.step = max(1, total // 10)
        self.say(f"render-diff: {what}: evaluating {total} stack(s)")

    def say(self, text: str) -> None:
        if self.progress is not None:
            self.progress(text)

    def tick(self, *_: object) -> None:
        self.done += 1
        if self.done % self.step == 0 or self.done == self.total:
            self.say(f"render-diff: {self.what}: {self.done}/{self.total} evaluated "
                     f"({time.monotonic() - self.started:.0f} s)")


def _evaluate_base(tree: Path, files: list[Path], workers: int | None, counter: _Counter) -> dict[Path, Outcome]:
    """The base tree's own program and evaluator (`python -m provisioning.tools.evaluator` run there, so its
    worker processes import its modules, not this tree's), one JSON line per stack as it finishes."""
    from provisioning.tools.evaluator import PROTOCOL, outcome_from_line

    env = {**os.environ, "PYTHONPATH": os.fspath(tree)}
    command = [sys.executable, "-m", "provisioning.tools.evaluator", "--project-dir", os.fspath(tree),
               *(["--workers", str(workers)] if workers else []), *map(os.fspath, files)]
    results: dict[Path, Outcome] = {}
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as errors, subprocess.Popen(
            command, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=errors, text=True) as proc:
        assert proc.stdout is not None
        if not _speaks(proc.stdout.readline(), PROTOCOL):
            proc.wait()
            return _evaluate_base_each(tree, files, env, counter)  # a base from before the evaluator's command
        for line in proc.stdout:
            found = json.loads(line)
            results[Path(found["path"])] = outcome_from_line(found)
            counter.tick()
        if proc.wait() != 0:
            errors.seek(0)
            tail = " | ".join(ln for ln in errors.read().splitlines()[-3:] if ln.strip())[-300:]
            for path in files:
                results.setdefault(path, EvaluationError(f"the base's evaluator exited {proc.returncode}: {tail}"))
    return results


def _speaks(first_line: str, protocol: str) -> bool:
    """Whether the base's evaluator answered with this protocol's header line (an older base prints nothing)."""
    try:
        header = json.loads(first_line) if first_line.strip() else None
    except json.JSONDecodeError:
        return False
    return isinstance(header, dict) and header.get("protocol") == protocol


def _evaluate_base_each(tree: Path, files: list[Path], env: dict[str, str], counter: _Counter) -> dict[Path, Outcome]:
    """An older base: its offline harness, one process per stack (`python -m provisioning.tools.offline`)."""
    def one(path: Path) -> Outcome:
        done = subprocess.run([sys.executable, "-m", "provisioning.tools.offline", os.fspath(path),
                               "--project-dir", os.fspath(tree)], cwd=tree, env=env, capture_output=True,
                              text=True, timeout=600)
        counter.tick()
        try:
            data = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
        except json.JSONDecodeError:
            data = {}
        if "config_error" in data:
            return ConfigError(data["config_error"]["key"], data["config_error"]["rule"])
        if done.returncode != 0 or "resources" not in data:
            lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
            return EvaluationError(lines[-1][:300] if lines else f"exit {done.returncode}")
        return Evaluation.from_json(data)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(files, pool.map(one, files), strict=True))


def _reports(outcomes: dict[Path, Outcome], project_dir: Path) -> Rendered:
    from provisioning.tools.render import report_from

    out: Rendered = {}
    for path, outcome in outcomes.items():
        if isinstance(outcome, ConfigError):
            out[path] = RuntimeError(f"{outcome.key}: {outcome.rule}")
        elif isinstance(outcome, EvaluationError):
            out[path] = RuntimeError(str(outcome).strip().splitlines()[-1][:300] if str(outcome).strip() else
                                     "evaluation failed")
        else:
            out[path] = report_from(path, outcome, project_dir)
    return out


def render_trees(head_files: list[Path], base_tree: Path, base_ref: str = "the base", workers: int | None = None,
                 progress: Progress | None = None, base_dir: str | None = None) -> tuple[Rendered, Rendered]:
    """(base reports by head file, head reports by head file): the base tree evaluated by its own program first,
    then this tree's, each in a few worker processes, hosting stacks first."""
    from provisioning.tools.evaluator import evaluate_many

    pairs = {path: base_stack_file(path, base_tree, base_dir=base_dir) for path in head_files}
    present = sorted({b for b in pairs.values() if b.is_file()})
    counter = _Counter(progress, f"base {base_ref}", len(present))
    base_outcomes = _evaluate_base(base_tree, present, workers, counter) if present else {}
    base_reports = _reports(base_outcomes, base_tree)
    counter = _Counter(progress, "this tree", len(head_files))
    head_reports = _reports(evaluate_many(head_files, REPO_ROOT, workers, on_result=counter.tick), REPO_ROOT)
    return ({path: base_reports[b] for path, b in pairs.items() if b in base_reports}, head_reports)


def diff_stacks(head_files: list[Path], base_tree: Path, base_ref: str = "the base", workers: int | None = None,
                progress: Progress | None = None,
                render: Callable[..., tuple[dict[Path, Any], dict[Path, Any]]] = render_trees,
                base_dir: str | None = None) -> list[StackDiff]:
    """Every selected stack rendered in both trees and compared; a failure is that stack's row, not the
    command's. A stack file absent from the base is a new stack. `base_dir`: where the stack files are at the
    base (--base-stacks-dir)."""
    base, head = render(head_files, base_tree, base_ref, workers, progress, base_dir)
    diffs = []
    for path in head_files:
        name = stack_name(path)
        before, after = base.get(path), head.get(path)
        failed = next((f"{side}: {value}" for side, value in (("this branch", after), ("the base", before))
                       if isinstance(value, Exception)), None)
        if failed is not None:
            diffs.append(StackDiff(name, error=failed, status="error"))
            continue
        try:
            diffs.append(diff_reports(name, before, after))
        except Exception as exc:  # noqa: BLE001 - a stack file is a unit of failure: its row, not the command's
            diffs.append(StackDiff(name, error=f"cannot be compared ({type(exc).__name__})", status="error"))
    return diffs


def write_details(diffs: list[StackDiff], directory: Path) -> None:
    """For the workflow's artifact: <stack>.changes (every changed path, old and new values whole),
    <stack>.diff (the unified diff of the two text renders) and index.json (every stack, its status and changes)."""
    directory.mkdir(parents=True, exist_ok=True)
    for d in diffs:
        if d.touched:
            (directory / f"{d.stack}.changes").write_text("\n".join(change_lines(d, None)) + "\n", encoding="utf-8")
            (directory / f"{d.stack}.diff").write_text((d.diff or d.error) + "\n", encoding="utf-8")
    index = [{"stack": d.stack, "cloud": d.cloud, "status": d.status, "added": d.added, "changed": d.changed,
              "removed": d.removed, "error": d.error, "changes": [c.to_json() for c in d.changes]}
             for d in sorted(diffs, key=lambda d: d.rank)]
    (directory / "index.json").write_text(json.dumps(index, indent=2, default=str), encoding="utf-8")
