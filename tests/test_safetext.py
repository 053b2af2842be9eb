"""The one way out for text: uploader.model.safetext.safe_text escapes what could forge or hide output and
withholds what is secret, whatever the text (property-tested), and every path that prints outside text uses it
(a source scan below)."""

from __future__ import annotations

import ast
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uploader.model.certs import generate_certificate
from uploader.model.safetext import INVISIBLE_CLASS, is_invisible, safe_text

REPO = Path(__file__).resolve().parent.parent
JWT = ("eyJhbGciOiJQUzI1NiIsInR5cCI6IkpXVCIsIng1dCNTMjU2IjoiYWJjIn0.eyJhdWQiOiJodHRwczovL2xvZ2luIiwiaXNzIjoiYSJ9"
       ".c2lnbmF0dXJlLXBhcnQtb2YtdGhlLWFzc2VydGlvbg")

HOSTILE = ["\x1b[2J", "\u202e", "\u2066", "\u2069", "\u200b", "\u200d", "\ufeff", "\U000e0041", "\ufe0f",
           "\U000e0100", "\u3164", "\u2800", "\u115f", "\u1160", "\uffa0", "\u2028", "\u2029", "\x85", "\x9b",
           "\u00a0", "\u3000", "\ue000", "\udcff", "\n", "\r", "\t", "\x00"]


@pytest.mark.parametrize("ch", HOSTILE)
def test_every_hostile_character_is_escaped(ch: str) -> None:
    shown = safe_text(f"a{ch}b")
    assert ch not in shown and shown.startswith("a\\") and shown.endswith("b")
    assert shown.isascii()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec=None), max_size=200))
def test_output_is_one_visible_line_for_any_input(text: str) -> None:
    shown = safe_text(text)
    assert "\n" not in shown and "\r" not in shown
    assert all(not is_invisible(ch) for ch in shown)
    assert len(shown) <= 303
    shown.encode("utf-8")  # no lone surrogate left


def test_invisible_class_matches_the_escaper() -> None:
    import re

    pattern = re.compile(f"[{INVISIBLE_CLASS}]")
    for ch in HOSTILE:
        if ch not in "\ue000\udcff":  # private use and surrogates cannot be in a decoded CSV value's class test
            assert pattern.match(ch), f"U+{ord(ch):04X} ({unicodedata.name(ch, '?')}) missing"


def test_pem_private_key_and_certificate_are_withheld() -> None:
    pem = generate_certificate("safetext").pem
    shown = safe_text(f"open {pem} failed", limit=10_000)
    body_lines = [line for line in pem.splitlines() if "-----" not in line]
    assert not any(line in shown for line in body_lines)
    assert "PRIVATE KEY" not in shown and "withheld" in shown
    assert "PRIVATE KEY" not in safe_text("BEGIN RSA PRIVATE KEY MIIEv...")


@pytest.mark.parametrize("text", [
    f"Token response is not in json format: client_assertion={JWT}&client_id=x",
    f"Authorization: Bearer {JWT}",
    "Authorization: Bearer opaque-token-0123456789abcdef",
    "grant_type=client_credentials&client_assertion_type=urn%3Aietf&client_assertion=opaque.value.here",
    '{"access_token": "opaque-token-value-0123456789"}',
    "https://user:hunter2@example.com/path",
    "https://acct.blob.core.windows.net/c?sv=2024&sig=c2VjcmV0c2lnbmF0dXJl&se=2026",
    "client_secret=Sup3rS3cret~value",
])
def test_tokens_assertions_and_credentials_are_withheld(text: str) -> None:
    shown = safe_text(text, limit=10_000)
    for secret in (JWT, "eyJ", "opaque-token", "opaque.value", "hunter2", "c2VjcmV0", "Sup3rS3cret"):
        assert secret not in shown
    assert "withheld" in shown


def test_plain_text_is_unchanged_and_long_text_cut() -> None:
    assert safe_text("incoming/départs/2026-11-21.csv") == "incoming/départs/2026-11-21.csv"
    assert safe_text("AADSTS700016: Application with identifier 'x' was not found") == (
        "AADSTS700016: Application with identifier 'x' was not found")
    assert safe_text("x" * 10_000_000, limit=20) == "x" * 20 + "..."
    assert safe_text(b"caf\xc3\xa9 \xff") == "café \\udcff"


# -- every path that prints outside text goes through the escaper ------------------------------------------

#: Names of values that come from outside the program; printing one raw (in an f-string given to print, a
#: stream's write, a reporter call or an exception) must go through safe_text / safe_name.
OUTSIDE = {"path", "args.file", "args.output", "args.mapping", "column", "cell", "header", "scenario_column",
           "args.scenario_column", "value", "url", "subject", "exc.filename"}
SAFE_CALLS = {"safe_text", "safe_name", "len", "type", "int", "sorted"}


def _raw_outside_values(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.JoinedStr):
            continue
        for part in node.values:
            if isinstance(part, ast.FormattedValue):
                expr = ast.unparse(part.value)
                if expr in OUTSIDE:
                    found.append((node.lineno, expr))
    return found


@pytest.mark.parametrize("module", ["uploader/commands/cert.py", "uploader/commands/mapping.py",
                                    "uploader/commands/doctor.py", "uploader/job/doctor.py", "uploader/check/header.py",
                                    "uploader/commands/upload.py",
                                    "uploader/commands/validate.py", "uploader/send/settings.py",
                                    "uploader/send/auth.py", "uploader/send/ingestion.py", "uploader/send/https.py",
                                    "uploader/model/boundedio.py", "uploader/model/stackfile.py",
                                    "uploader/check/csvscan.py", "uploader/cli.py"])
def test_outside_values_are_never_formatted_raw(module: str) -> None:
    """A scan of the modules that echo paths, header cells, subjects and URLs: no f-string interpolates one of
    those values except through safe_text/safe_name (which the scan sees as a call, not a bare name)."""
    tree = ast.parse((REPO / module).read_text(encoding="utf-8"))
    assert _raw_outside_values(tree) == []


def test_the_scan_sees_a_raw_value() -> None:
    tree = ast.parse('print(f"{path}: {safe_text(path)}")')
    assert _raw_outside_values(tree) == [(1, "path")]
