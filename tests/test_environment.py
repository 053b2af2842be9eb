"""One declaration per environment variable: uploader/model/environment.py's table is the only reader of
os.environ in the uploader (the sandbox aside), it matches the parser's twins and the user docs' table, and each
variable's one check refuses a bad value naming the variable and the rule, never the value."""

from __future__ import annotations

import ast
import io
import sys
from pathlib import Path

import pytest

from uploader.model import environment
from uploader.model.environment import VARIABLES, Invalid

REPO = Path(__file__).resolve().parent.parent

#: Where os.environ may be read in uploader/: the table's own module, and the sandbox (a test stand-in with its own
#: command line, never imported by the stages). Tighter than "the commands too": commands read through the table,
#: so an undeclared variable fails the first run that reads it (environment.declared).
ENVIRON_ALLOWED = ("uploader/model/environment.py", "uploader/sandbox/")


def environ_reads(source: str) -> list[int]:
    """Lines that touch the process environment: os.environ / os.environb / os.getenv / os.getenvb (attribute or
    imported from os, whatever alias `os` has), and os.putenv / os.unsetenv."""
    tree = ast.parse(source)
    os_names = {"os"} | {a.asname for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
                         if a.name == "os" and a.asname}
    names = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
    lines = []
    for node in ast.walk(tree):
        attribute = (isinstance(node, ast.Attribute) and node.attr in names and isinstance(node.value, ast.Name)
                     and node.value.id in os_names)
        imported = isinstance(node, ast.ImportFrom) and node.module == "os" and any(a.name in names for a in node.names)
        if attribute or imported:
            lines.append(node.lineno)
    return sorted(set(lines))


def test_only_the_table_reads_the_environment() -> None:
    found = []
    for path in sorted((REPO / "uploader").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if not rel.startswith(ENVIRON_ALLOWED):
            found += [f"{rel}:{line}" for line in environ_reads(path.read_text(encoding="utf-8"))]
    assert found == [], "read the variable through uploader/model/environment.py (declare it there)"


def test_the_environ_scan_sees_each_form() -> None:
    source = ("import os\nimport os as o\nfrom os import environ\nfrom os import getenv as g\n"
              "a = os.environ['X']\nb = o.getenv('X')\nc = os.environb\nd = os.path.join('a')\n")
    assert environ_reads(source) == [3, 4, 5, 6, 7]


def _literal_reads() -> set[str]:
    """Every variable name the uploader passes as a literal to environment.read/raw/check."""
    names: set[str] = set()
    for path in (REPO / "uploader").rglob("*.py"):
        if "sandbox" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("read", "raw", "check") and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "environment" and node.args
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                names.add(node.args[0].value)
    return names


def test_every_variable_read_is_declared_and_every_declared_one_is_read() -> None:
    from test_sink import leaf_parsers

    from uploader.cli import build_parser

    twins = {v.name for v in VARIABLES.values() if v.flag}
    assert _literal_reads() - set(VARIABLES) == set()
    assert set(VARIABLES) - twins - _literal_reads() == set(), "declared but never read"
    with pytest.raises(environment.UndeclaredVariable):
        environment.read("UPLOADER_NOT_DECLARED")
    # the twins each command's parser makes are the table's, command by command
    for command, parser in leaf_parsers(build_parser()).items():
        if command == ("sandbox",):
            continue
        made = {a.help.rsplit("[env ", 1)[1].rstrip("]") for a in parser._actions if "[env " in (a.help or "")}
        declared = {v.name for v in VARIABLES.values() if v.flag and " ".join(command) in v.commands}
        if command == ("run",):
            declared.discard("UPLOADER_STACK")  # run reads it for its summary, it has no --stack
        assert made == declared, command


def test_the_docs_table_is_the_declaration() -> None:
    cli = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    start, end = "<!-- environment table: begin -->\n", "\n<!-- environment table: end -->"
    assert start in cli and end in cli
    documented = cli.split(start, 1)[1].split(end, 1)[0]
    assert documented == environment.markdown_table(), (
        "docs/cli.md's environment table is out of date: paste the output of "
        "`python -c 'from uploader.model.environment import markdown_table; print(markdown_table())'`")


HOSTILE = "admin:S3cr3tPw@host\x1b[2J"


@pytest.mark.parametrize("variable", sorted(VARIABLES))
def test_a_refusal_names_the_variable_and_never_the_value(variable: str) -> None:
    var = VARIABLES[variable]
    try:
        environment.check(variable, HOSTILE)
    except environment.Refused as exc:
        text = str(exc)
        assert text.startswith(f"{variable}: ") and "S3cr3tPw" not in text and "\x1b" not in text
        assert ("secret" in text) == var.secret and "not shown" in text
        return
    # what takes any text: names checked downstream (IDs, paths, globs), a password, a header secret (the writer
    # escapes whatever of them is echoed)
    assert var.parse in (str, environment.secret_text, environment.path_text), (
        f"{variable} accepted a value with a credential and terminal controls")


@pytest.mark.parametrize("value,rule", [
    ("http://localhost:42356/msi/token", None),
    ("https://127.0.0.1:9/msi/token", None),
    ("http://admin:S3cr3tPw@127.0.0.1:9/msi/token", "user name or password"),
    ("admin:S3cr3tPw@127.0.0.1:9", "http:// or https://"),
    ("ftp://host/x", "http:// or https://"),
    ("http://host:port/x", "not a valid URL"),
])
def test_the_identity_endpoint_check(value: str, rule: str | None) -> None:
    if rule is None:
        assert environment.identity_url(value) == value
        assert environment.host_of(value) in value
    else:
        with pytest.raises(Invalid, match=rule):
            environment.identity_url(value)


def test_the_client_id_check() -> None:
    guid = "0A1B2C3D-0000-4000-8000-00000000000F"
    assert environment.client_id(f" {guid} ") == guid.lower()
    for bad in ("deploy-app", guid + "0", "{" + guid + "}", "c1"):
        with pytest.raises(Invalid, match="GUID"):
            environment.client_id(bad)


def test_settings_take_the_variables_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command boundary: sign-in settings carry the variables, checked; the managed identity is read only when
    --key-id or --credential federated uses it; the PEM text and password never show in the settings' repr."""
    import argparse

    from uploader.commands import managed_identity, sign_in_settings

    for name in [n for n in VARIABLES if n not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("UPLOADER_CERTIFICATE_PEM", "-----BEGIN CERTIFICATE-----\nSECRETBODY\n")
    monkeypatch.setenv("UPLOADER_CERTIFICATE_PASSWORD", "pw-SECRET")
    monkeypatch.setenv("AZURE_CLIENT_ID", "not-a-guid")
    args = argparse.Namespace(cloud="commercial", authority_host=None, ingestion_url=None, scope=None,
                              tenant_id="t", app_id="a", certificate=None, key_id=None, key_vault_domain=None,
                              credential="certificate")
    settings = sign_in_settings(args)  # a certificate sign-in does not read the identity's variables
    assert settings.identity is None and settings.certificate_password == "pw-SECRET"
    assert "SECRET" not in repr(settings)
    with pytest.raises(environment.Refused, match="AZURE_CLIENT_ID: must be the managed identity's client ID"):
        sign_in_settings(argparse.Namespace(**{**vars(args), "credential": "federated"}))
    monkeypatch.setenv("AZURE_CLIENT_ID", "0a1b2c3d-0000-4000-8000-00000000000f")
    monkeypatch.setenv("IDENTITY_ENDPOINT", "http://localhost:42356/msi/token")
    assert managed_identity().endpoint_host == "169.254.169.254"  # without IDENTITY_HEADER MSAL asks the VM's
    monkeypatch.setenv("IDENTITY_HEADER", "h")
    assert managed_identity().endpoint_host == "localhost:42356"


def test_a_bad_variable_is_exit_2_through_the_real_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """XDG_STATE_HOME with a NUL-free but multi-line value reaches `upload` as a usage error naming it; the same
    variable does not concern `validate`, which runs."""
    from uploader.cli import main

    csv = tmp_path / "a.csv"
    csv.write_text("HRScenarios\n")
    monkeypatch.setenv("XDG_STATE_HOME", "/tmp/a\nb")
    for name in ("UPLOADER_STATE_DIR", "UPLOADER_MAPPING", "UPLOADER_STACK"):
        monkeypatch.delenv(name, raising=False)
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert main(["upload", str(csv), "--dry-run"]) == 2
    assert "XDG_STATE_HOME: must be a path" in err.getvalue() and "/tmp/a" not in err.getvalue()
