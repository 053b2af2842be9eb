"""PR comments are escaped, and names are plain text (issue 18, item 13).

`render-diff`'s comment is rendered by GitHub as Markdown with inline HTML. Everything it takes from a stack file
or a file name must come out inert: a stack value `commercial <img src=…>`, a stack file named with a backtick and
`<!--`, a value that holds a code fence or `</details>`. The comment is rendered here by a real CommonMark parser
with GitHub's tables and raw HTML on (markdown-it-py), and the HTML it produces is inspected tag by tag.
`check` refuses connector names and stack names outside a plain character set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from stack_examples import EXAMPLES

from provisioning.tools.render import to_text
from provisioning.tools.review import MARKER, StackDiff, build_comment, code, diff_reports, fenced, md

REPO = Path(__file__).resolve().parent.parent
TENANT = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
IMG = 'commercial <img src=x onerror="alert(1)">'
HOSTILE_NAME = "x`<!--"
#: The tags a render-diff comment may produce; anything else came from a stack file.
ALLOWED_TAGS = {"h3", "p", "table", "thead", "tbody", "tr", "th", "td", "code", "details", "summary", "pre", "em",
                "strong"}


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.opened: list[str] = []
        self.closed: list[str] = []
        self.comments: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.opened.append(tag)
        self.attributes.extend(a for a in attrs if a != ("class", "language-diff") and a[0] != "style")

    def handle_endtag(self, tag: str) -> None:
        self.closed.append(tag)

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)


def rendered(markdown: str) -> Tags:
    """The HTML GitHub-flavoured Markdown makes of the comment (CommonMark + tables, raw HTML allowed)."""
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    tags = Tags()
    tags.feed(html)
    tags.close()
    return tags


def assert_inert(comment: str, details: int) -> None:
    tags = rendered(comment)
    assert set(tags.opened) <= ALLOWED_TAGS, set(tags.opened) - ALLOWED_TAGS
    assert tags.comments == [MARKER.removeprefix("<!--").removesuffix("-->")]  # only the marker
    assert tags.attributes == []  # no src=, onerror=, href=
    assert tags.opened.count("details") == tags.closed.count("details") == details
    assert tags.opened.count("pre") == details  # each diff in its own code block, none closed early


def hostile_report(report: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(report))
    out["cloud"] = IMG
    out["schedule"] = "0 2 * * * ```\n</details><img src=x>\n<!--"
    out["connectors"] = [{"name": "a`b\n```\n<img src=y>", "jobId": "j", "files": "*.csv", "scenarios": ["x"]}]
    return out


def test_hostile_values_and_names_render_inert() -> None:
    base = {"stack": "s", "cloud": "commercial", "tenantId": TENANT, "azureEnvironment": "public",
            "location": "eastus", "schedule": "0 2 * * *", "tags": {}, "connectors": [], "resourceCount": 1,
            "resources": [{"type": "t", "name": "n", "inputs": {"a": 1}}], "outputs": {}}
    head = hostile_report(base)
    head["resources"] = [{"type": "t", "name": "n", "inputs": {"a": IMG, "b`": "```"}}, {"type": "t", "name": "<!--",
                                                                               "inputs": {}}]
    changed = diff_reports(HOSTILE_NAME, base, head)
    assert "<img" in changed.diff  # the raw value is in the diff, and must stay inert
    broken = StackDiff("y|z<!--", cloud=IMG, status="error", error="this branch: a | b\n<img src=x> ```")
    removed = StackDiff("gone`", cloud=IMG, removed=["t <!--"], status="removed")
    comment = build_comment([changed, broken, removed], "main<!--`", expiries={HOSTILE_NAME: "<b>soon</b>"})
    assert_inert(comment, details=3)
    assert '+     a: "commercial <img src=x onerror=' in comment  # the changed value is shown, inert in its block
    assert rendered(comment).opened.count("td") == 3 * 7  # three rows of seven cells: no value split a row


@pytest.mark.parametrize("text", ["a`b", "``", "`x`", "a|b", "<!--", "line\nbreak", "\u202eevil", "\x1b[31m"])
def test_the_escapes_hold_for_any_text(text: str) -> None:
    tags = rendered(f"| {code(text)} | {md(text)} |\n|---|---|\n| {md(text)} | {code(text)} |\n\n{fenced(text)}\n")
    assert set(tags.opened) <= ALLOWED_TAGS and not tags.comments and not tags.attributes
    assert tags.opened.count("td") == 2 and tags.opened.count("pre") == 1


@pytest.mark.pulumi
def test_a_real_render_with_html_in_a_tag_value_is_inert(tmp_path: Path) -> None:
    """A real stack file whose tag value and connector-free config carry HTML, rendered by the real program."""
    text = (EXAMPLES / "Pulumi.fabrikam-gcc.yaml").read_text()
    (tmp_path / "Pulumi.fabrikam-gcc.yaml").write_text(
        text + f"  hr-connector:tags:\n    owner: '{IMG.replace(chr(39), chr(39) * 2)}'\n")
    done = subprocess.run([sys.executable, "-m", "provisioning", "render", "--json", "--stack", "fabrikam-gcc",
                           "--stacks-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ})
    assert done.returncode == 0, done.stderr
    head = json.loads(done.stdout)
    assert "<img src=x" in to_text(head)
    comment = build_comment([diff_reports("fabrikam-gcc", None, head)], "main")
    assert_inert(comment, details=1)


# ---------------------------------------------------------------------------------------- names are plain text

def _check(stacks: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HR_CONNECTOR_STACKS_DIR"}
    return subprocess.run([sys.executable, "-m", "provisioning", "check", "--stacks-dir", str(stacks)], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=env)


def _stack(name: str) -> str:
    return (f"config:\n  hr-connector:tenantId: {TENANT}\n  hr-connector:location: eastus\n"
            "  hr-connector:connectors:\n"
            f"    - name: {json.dumps(name)}\n      jobId: 6a8f6b2a-1c3e-4a3b-9d9e-2f1b7c4d5e60\n"
            "      files: a/*.csv\n      scenarios:\n        - type: resignation\n"
            "          columns: {userPrincipalName: U, resignationDate: R, lastWorkingDate: L}\n")


@pytest.mark.parametrize("name", ["depart\nures", "a`b", "<img src=x>", "-dash", "x" * 65, "dé"])
def test_check_refuses_connector_names_that_are_not_plain_text(tmp_path: Path, name: str) -> None:
    (tmp_path / "Pulumi.plain.yaml").write_text(_stack(name))
    done = _check(tmp_path)
    assert done.returncode == 2, done.stdout
    assert "FAIL  plain: hr-connector:connectors[0].name: a connector name is 1-64 letters, digits" in done.stdout


def test_check_refuses_a_stack_file_name_with_markup(tmp_path: Path) -> None:
    (tmp_path / f"Pulumi.{HOSTILE_NAME}.yaml").write_text(_stack("departures"))
    done = _check(tmp_path)
    assert done.returncode == 2, done.stdout
    assert "a stack name is 1-100 letters, digits, '-', '_' or '.'" in done.stdout
