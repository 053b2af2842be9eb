"""The one writer (uploader/model/sink.py): nothing else in uploader/ or provisioning/ writes to the process's
streams (a source scan), what it writes is escaped whoever built it (text, JSON, rich, argparse, a library's own
print), and the last catch covers start-up and interpreter exit (a few real processes)."""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from uploader.model import sink
from uploader.model.certs import generate_certificate
from uploader.model.environment import VARIABLES
from uploader.model.safetext import escape_line, is_invisible

REPO = Path(__file__).resolve().parent.parent
WRITER = REPO / "uploader" / "model" / "sink.py"
PEM = ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDZq1\n"
       "-----END PRIVATE KEY-----")
HOSTILE = f"x\x1b[2J\x1b[H1 file: 1 sent (exit 0)\r\n\u202eadmin:S3cr3tPw@127.0.0.1:9/msi {PEM}"


def clean(text: str) -> None:
    """No control or invisible character but the line breaks, no credential, no PEM line."""
    for line in text.split("\n"):
        assert not [ch for ch in line if is_invisible(ch)], repr(line)
    assert "S3cr3tPw" not in text and "-----BEGIN" not in text and "MIIEvQIBADAN" not in text


# -- nothing but the writer touches the streams -------------------------------------------------------------

#: sys attributes that are the process's streams.
STREAMS = {"stdout", "stderr", "__stdout__", "__stderr__"}
#: Calls that write to a stream behind the writer's back.
FORBIDDEN_CALLS = {"print", "print_exc", "print_exception", "print_tb", "print_stack", "StreamHandler",
                   "basicConfig", "Console"}


def direct_writes(source: str) -> list[str]:
    """Each place that writes to stdout/stderr without the writer: print(), sys.stdout/sys.stderr, a rich
    Console, traceback's printers, a logging StreamHandler, os.write to descriptor 1 or 2, /dev/stdout."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Attribute) and node.attr in STREAMS and ast.unparse(node.value) == "sys":
            found.append(f"{line}: sys.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "sys":
            found += [f"{line}: from sys import {a.name}" for a in node.names if a.name in STREAMS]
        elif isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else (
                node.func.attr if isinstance(node.func, ast.Attribute) else "")
            if name in FORBIDDEN_CALLS and not (name == "print" and isinstance(node.func, ast.Attribute)):
                found.append(f"{line}: {ast.unparse(node.func)}()")
            if name == "write" and ast.unparse(node.func) == "os.write" and node.args and \
                    ast.unparse(node.args[0]) in ("1", "2"):
                found.append(f"{line}: os.write to a standard stream")
        elif isinstance(node, ast.Constant) and node.value in ("/dev/stdout", "/dev/stderr", "/dev/tty"):
            found.append(f"{line}: {node.value}")
    return found


def test_only_the_writer_writes_to_the_streams() -> None:
    problems = []
    for package in ("uploader", "provisioning"):
        for path in sorted((REPO / package).rglob("*.py")):
            if path != WRITER:
                problems += [f"{path.relative_to(REPO)}:{hit}" for hit in direct_writes(path.read_text("utf-8"))]
    assert problems == [], "write through uploader.model.sink instead:\n" + "\n".join(problems)


def test_the_scan_sees_each_kind_of_direct_write() -> None:
    source = textwrap.dedent("""
        import sys, os, traceback, logging
        from sys import stderr
        from rich.console import Console
        print("x")
        sys.stdout.write("x")
        traceback.print_exc()
        logging.StreamHandler()
        Console()
        os.write(2, b"x")
        open("/dev/tty", "w")
        console.print("rich's own print method is the escaping console's, allowed")
    """)
    assert len(direct_writes(source)) == 8


# -- the writer ------------------------------------------------------------------------------------------

def test_a_line_is_escaped_whatever_built_it() -> None:
    out = io.StringIO()
    sink.Writer(stream=out).line(f"error: {HOSTILE}")
    text = out.getvalue()
    assert text.count("\n") == 1 and "[credentials withheld]@127.0.0.1:9" in text and "PEM block withheld" in text
    clean(text)


def test_json_stays_valid_and_its_strings_are_escaped() -> None:
    out = io.StringIO()
    sink.Writer(stream=out).json({"event": "x", "message": HOSTILE, HOSTILE: [HOSTILE, 1, None, True],
                                  "path": "C:\\data\\a.csv"})
    text = out.getvalue()
    assert text.count("\n") == 1
    record = json.loads(text)
    assert record["path"] == "C:\\data\\a.csv"  # plain text comes out as it went in
    clean(json.dumps(record, ensure_ascii=False))


def test_a_block_keeps_its_own_line_breaks_only() -> None:
    out = io.StringIO()
    sink.Writer(stream=out).block("a table\n  row\x1b[2J one\n")
    assert out.getvalue() == "a table\n  row\\x1b[2J one\n\n"


def test_plain_lines_and_already_escaped_values_pass_unchanged() -> None:
    from uploader.model.safetext import safe_text

    for text in ("incoming/départs/2026-11-21.csv: sent 12 records in 1 chunk, 0 retries, 0.1 s",
                 "keep it secret: --certificate FILE", "private key + certificate: a.pem (mode 0600)",
                 safe_text(HOSTILE), "user@contoso.com is an address, not a credential"):
        assert escape_line(text) == text


def test_the_rich_console_escapes_text_but_draws_its_own_codes() -> None:
    out = io.StringIO()
    console = sink.console(sink.Writer(stream=out), force_terminal=True, width=200)
    console.print("[bold]styled[/] " + HOSTILE.replace("[", "("), soft_wrap=True)
    text = out.getvalue()
    assert "\x1b[1m" in text  # rich's own style code
    assert "\x1b[2J" not in text and "\u202e" not in text and "S3cr3tPw" not in text


def test_argparse_messages_go_through_the_writer(capsys: pytest.CaptureFixture[str]) -> None:
    parser = sink.ArgumentParser(prog="tool")
    parser.add_argument("--cloud", choices=["commercial"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--cloud", HOSTILE])
    err = capsys.readouterr().err
    assert "invalid choice" in err
    clean(err)


def test_a_library_writing_to_the_streams_directly_is_escaped() -> None:
    raw = io.StringIO()
    stream = sink.EscapingStream(raw)
    stream.write("partial ")
    stream.write(f"{HOSTILE}\nnext")
    stream.flush()
    assert raw.getvalue().count("\n") == 2 and raw.getvalue().endswith("[PEM block withheld]\nnext")
    clean(raw.getvalue())


def test_a_reader_that_went_away_stops_nothing() -> None:
    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "w") as stream:
        writer = sink.Writer(stream=stream)
        writer.line("first")  # EPIPE: the descriptor now points at the null device
        writer.line("second")


# -- the last catch: start-up and exit, in real processes -------------------------------------------------

def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60,
                          env=env, cwd=REPO, stdin=subprocess.DEVNULL)


#: Runs `python -m PROGRAM --help` with SIGINT delivered while the command line module is being imported.
INTERRUPT_AT_START = """
import os, runpy, signal, sys
program, module = sys.argv[1], sys.argv[2]
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == module:
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, Interrupt())
sys.argv = [program, "--help"]
runpy.run_module(program, run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("program,module", [("uploader", "uploader.cli"), ("provisioning", "provisioning.tools.cli")])
def test_sigint_while_starting_is_one_line_and_exit_130(program: str, module: str) -> None:
    done = _python(INTERRUPT_AT_START, program, module)
    assert done.returncode == 130, done.stderr[-2000:]
    assert done.stderr == "interrupted\n" and done.stdout == ""


#: Exceptions nobody catches, each holding a credential and terminal controls: in a thread, in a __del__ (one
#: collected now, one as the interpreter shuts down), in an atexit callback, in the main thread; and a library
#: printing straight to sys.stderr.
AT_EXIT = r"""
import atexit, sys, threading
from uploader.model.sink import install_hooks
install_hooks()
secret = "admin:S3cr3tPw@127.0.0.1:9 \x1b[2J"
class Held:
    def __del__(self):
        raise ValueError(secret)
def work():
    raise RuntimeError(secret)
def at_exit():
    raise OSError(secret)
atexit.register(at_exit)
thread = threading.Thread(target=work)
thread.start()
thread.join()
print("library says", secret, file=sys.stderr)
collected = Held()
del collected
kept = Held()
raise KeyError(secret)
"""


def test_exceptions_at_exit_and_in_threads_are_one_escaped_line_each() -> None:
    done = _python(AT_EXIT)
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    lines = done.stderr.splitlines()
    assert any("internal error in a thread (RuntimeError" in line for line in lines), lines
    assert any(line.startswith("error: internal error (KeyError") for line in lines), lines
    assert any("ValueError ignored during clean-up in Held.__del__" in line for line in lines), lines
    assert any("OSError ignored during clean-up in at_exit" in line for line in lines), lines
    assert "library says [credentials withheld]@127.0.0.1:9 \\x1b[2J" in lines
    clean(done.stderr)


# -- the fuzz: every command, every option and variable it reads, each hostile in turn ---------------------

GUID = "6f1c2b0e-3d4a-4f5b-9c8d-7e6f5a4b3c2d"
CONTROLS = "ok\x1b[2J\x1b[H1 file: 1 sent (exit 0)\r\n\u202eevil\x07\x9b"
BARE_URL = "admin:S3cr3tPw@127.0.0.1:9/msi/token"
FUZZ_PEM = generate_certificate("sink-fuzz", validity_days=2, key_size=2048).pem
#: Shortest PEM body line the scan looks for (16 base64 characters: 96 bits, never there by chance).
MIN_PEM_LINE = 16
VALUES = {"controls": CONTROLS, "bare-url": BARE_URL, "pem": FUZZ_PEM}
UNREACHABLE = "https://127.0.0.1:9"  # the discard port: refused at once, nothing listens
MAPPING = {"name": "departures", "jobId": GUID, "files": "*.csv",
           "scenarios": [{"type": "resignation", "columns": {"userPrincipalName": "EmailAddress",
                                                              "resignationDate": "ResignationDate",
                                                              "lastWorkingDate": "LastWorkingDate"}}]}
#: Invalid (a bad date): every command validates it and stops before it would sign in or send.
BAD_CSV = "EmailAddress,ResignationDate,LastWorkingDate\nx@contoso.com,not a date,2026-01-01T00:00:00Z\n"
def fuzz_clean(text: str, file_name: bool = False) -> None:
    """`clean`, with every line of the real PEM's body. file_name: the value became a file name the program made
    of it (`cert new --name`: every character but letters, digits, '.', '_', '-' turned into '-'), shown as the
    name of the file written; the credential must not appear in its own form."""
    if file_name:
        assert "S3cr3tPw@" not in text and ":S3cr3tPw" not in text
        text = text.replace("S3cr3tPw", "")
    clean(text)
    for line in FUZZ_PEM.splitlines():
        # a block's last line can be a few characters long, and the key is new each run: as short as "AB==" it
        # turns up by chance in what `cert new` prints (hex thumbprints), so only lines that cannot are looked for
        assert "-----" in line or len(line) < MIN_PEM_LINE or line not in text, "PEM material was printed"


def leaf_parsers(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
                 ) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """(command words) -> parser, for every command (and `mapping init`, `cert new`, ...)."""
    found: dict[tuple[str, ...], argparse.ArgumentParser] = {}
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {prefix: parser}
    for name, sub in subs[0].choices.items():
        found.update(leaf_parsers(sub, (*prefix, name)))
    return found


def options(parser: argparse.ArgumentParser) -> list[tuple[str, bool]]:
    """(flag or positional dest, takes a value) for every argument but help/version."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction):
            continue
        flag = action.option_strings[-1] if action.option_strings else action.dest
        out.append((flag, action.nargs != 0))
    return out


class Workspace:
    """A folder with what the baseline command lines name: a mapping, an invalid CSV, a certificate bundle, a
    stack file, a drop zone per run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "mapping.json").write_text(json.dumps(MAPPING))
        (root / "bad.csv").write_text(BAD_CSV)
        (root / "bundle.pem").write_text(FUZZ_PEM)
        (root / "public.crt").write_text(FUZZ_PEM[FUZZ_PEM.index("-----BEGIN CERTIFICATE"):])
        (root / "empty-stacks").mkdir()
        (root / "new-stacks").mkdir()
        stacks = root / "stacks"
        stacks.mkdir()
        (stacks / "Pulumi.contoso-commercial.yaml").write_text(
            (REPO / "examples" / "stacks" / "Pulumi.contoso-commercial.yaml").read_text("utf-8"))
        self.n = 0

    def zone(self) -> str:
        self.n += 1
        zone = self.root / f"zone{self.n}"
        (zone / "incoming").mkdir(parents=True)
        (zone / "incoming" / "bad.csv").write_text(BAD_CSV)
        return zone.as_uri()

    def uploader(self, command: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
        """A baseline that gets as far as it can without the network: every setting valid, the file invalid."""
        sign_in = ["--tenant-id", GUID, "--app-id", GUID, "--certificate", "bundle.pem",
                   "--authority-host", UNREACHABLE, "--ingestion-url", UNREACHABLE, "--timeout", "2"]
        if command == ("upload",):
            return ["upload", "bad.csv", *sign_in[:-2], "--job-id", GUID, "--mapping", "mapping.json",
                    "--state-dir", "state"], {}
        if command == ("validate",):
            return ["validate", "bad.csv", "--mapping", "mapping.json"], {}
        if command == ("doctor",):  # without the bundle: parsing an RSA key twice a run is most of doctor's time
            return ["doctor", *sign_in[:4], *sign_in[6:], "--job-id", GUID], {}
        if command == ("doctor", "--key-id"):  # Key Vault signing: doctor asks the managed identity for a token
            return (["doctor", "--tenant-id", GUID, "--app-id", GUID, "--certificate", "public.crt", "--key-id",
                     "https://kv1.vault.azure.net/keys/app/0123456789abcdef0123456789abcdef", "--authority-host",
                     UNREACHABLE, "--ingestion-url", UNREACHABLE, "--timeout", "2"],
                    {"IDENTITY_ENDPOINT": "http://127.0.0.1:9/msi/token", "IDENTITY_HEADER": "h",
                     "AZURE_CLIENT_ID": GUID})
        if command == ("run",):
            return ["run"], {"UPLOADER_TENANT_ID": GUID, "UPLOADER_APP_ID": GUID, "UPLOADER_CERTIFICATE_PEM": FUZZ_PEM,
                             "UPLOADER_AUTHORITY_HOST": UNREACHABLE, "UPLOADER_INGESTION_URL": UNREACHABLE,
                             "UPLOADER_DROPZONE_URL": self.zone(), "UPLOADER_SETTLE_SECONDS": "0",
                             "UPLOADER_CONNECTORS": json.dumps([MAPPING])}
        if command == ("mapping", "init"):
            return ["mapping", "init", "bad.csv", "--scenario", "resignation", "--output", f"m{uuid.uuid4().hex}"], {}
        if command == ("mapping", "connector"):
            return ["mapping", "connector", "mapping.json", "--name", "departures", "--files", "*.csv"], {}
        if command == ("cert", "new"):
            return ["cert", "new", "--subject", "CN=fuzz", "--name", f"c{uuid.uuid4().hex}", "--key-size", "2048",
                    "--days", "2"], {}
        if command == ("cert", "show"):
            return ["cert", "show", "bundle.pem"], {}
        if command == ("endpoints",):
            return ["endpoints", "--cloud", "commercial"], {}
        raise AssertionError(f"no baseline for {command}: add one")

    def provisioning(self, command: tuple[str, ...]) -> list[str]:
        """A baseline that evaluates no stack (that is the costly part, and prints what `render` tests check)."""
        empty = ["--stacks-dir", "empty-stacks"]
        if command[0] == "fleet":
            return ["fleet", command[1], "--all", "--stacks-dir", "stacks", "--pulumi-root", "no-pulumi"]
        return {
            ("new-stack",): ["new-stack", f"s{uuid.uuid4().hex[:8]}", "--cloud", "commercial", "--tenant-id", GUID,
                             "--stacks-dir", "new-stacks"],
            ("check",): ["check", *empty],
            ("render",): ["render", "--stack", "none", *empty],
            ("render-diff",): ["render-diff", "--base-ref", "HEAD", "--stack", "none", *empty],
            ("matrix",): ["matrix", "--all", "--batches", "--stacks-dir", "stacks"],
            ("certs",): ["certs", "--stacks-dir", "stacks", "--outputs", "none.json"],
            ("platform", "render"): ["platform", "render", "--config", "none.yaml", *empty],
            ("status",): ["status", "--summaries", "none.jsonl", "--stacks-dir", "stacks"],
        }[command]


def with_value(argv: list[str], flag: str, value: str, positional_index: int | None) -> list[str]:
    """`argv` with `flag`'s value replaced by `value` (or the flag added, or the positional replaced)."""
    if positional_index is not None:
        return [*argv[:positional_index], value, *argv[positional_index + 1:]]
    if flag in argv:
        i = argv.index(flag)
        return [*argv[:i + 1], value, *argv[i + 2:]]
    return [*argv, flag, value]


def without(argv: list[str], flag: str) -> list[str]:
    if flag in argv:
        i = argv.index(flag)
        return [*argv[:i], *argv[i + 2:]]
    return argv


def call(main: object, argv: list[str], env: dict[str, str], cwd: Path, monkeypatch: pytest.MonkeyPatch
         ) -> tuple[int, str, str]:
    """The real CLI entry, in this process, with this environment (every UPLOADER_*/AZURE_*/IDENTITY_* variable
    of the test's own environment removed) and the streams captured."""
    out, err = io.StringIO(), io.StringIO()
    with monkeypatch.context() as m:
        for name in list(os.environ):
            if name.startswith(("UPLOADER_", "AZURE_", "IDENTITY_", "HR_CONNECTOR_", "CONTAINER_APP_")):
                m.delenv(name)
        for name, value in env.items():
            m.setenv(name, value)
        m.chdir(cwd)
        m.setattr(sys, "stdout", out)
        m.setattr(sys, "stderr", err)
        try:  # what `python -m ...` runs: the entry's last catch around main
            code = sink.guarded(lambda: main(argv))  # type: ignore[operator]
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def uploader_cases() -> list[tuple[tuple[str, ...], str, str, bool]]:
    """(command, the option or variable, hostile value's name, is a variable) for every uploader command but
    `sandbox` (the loopback test stand-in: it serves until stopped)."""
    from uploader.cli import build_parser

    cases = []
    for command, parser in sorted(leaf_parsers(build_parser()).items()):
        if command == ("sandbox",):
            continue
        for flag, takes_value in options(parser):
            if flag in ("command", "mapping_command", "cert_command", "handler"):
                continue
            cases += [(command, flag, value, False) for value in VALUES if takes_value]
        # every variable the table declares for this command (uploader/model/environment.py): a variable added
        # there is fuzzed here without another line (tests/test_environment.py holds the table to the parser)
        cases += [(command, name, value, True) for name in sorted(variables_of(command)) for value in VALUES]
    # doctor with --key-id reads the managed identity's variables (upload and run only when they sign in that way):
    # every variable doctor reads that is not an option's twin, again with a Key Vault key
    cases += [(("doctor", "--key-id"), name, value, True) for name in sorted(OUTSIDE_THE_PARSER) for value in VALUES]
    return cases


def variables_of(command: tuple[str, ...]) -> set[str]:
    return {v.name for v in VARIABLES.values() if " ".join(command) in v.commands}


#: The variables doctor reads besides its options' twins: the certificate's, the managed identity's, the drop zone's.
OUTSIDE_THE_PARSER = {name for name in variables_of(("doctor",)) if VARIABLES[name].flag is None}


UPLOADER_CASES = uploader_cases()
#: The commands that write a JSON log with --log-format json.
JSON_LOGS = {c for c, s, _, variable in UPLOADER_CASES if variable and s == "UPLOADER_LOG_FORMAT"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("sink-fuzz"))


def test_the_fuzz_covers_every_command_and_every_declared_variable() -> None:
    commands = {c for c, *_ in UPLOADER_CASES}
    assert {("upload",), ("run",), ("doctor",), ("validate",), ("endpoints",), ("mapping", "init"), ("cert", "new"),
            ("cert", "show")} <= commands
    subjects = {s for _, s, _, variable in UPLOADER_CASES if variable}
    assert subjects == set(VARIABLES)  # the table, whole: no variable the uploader reads goes unfuzzed
    assert {"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "AZURE_CLIENT_ID", "UPLOADER_CLOUD", "UPLOADER_CERTIFICATE_PEM",
            "UPLOADER_CONNECTORS", "UPLOADER_LOG_FORMAT"} <= subjects


@pytest.mark.parametrize("command,subject,value,variable", UPLOADER_CASES,
                         ids=[f"{' '.join(c)}:{s}:{v}" for c, s, v, _ in UPLOADER_CASES])
def test_uploader_output_is_clean_whatever_the_setting_holds(workspace: Workspace, monkeypatch: pytest.MonkeyPatch,
                                                             command: tuple[str, ...], subject: str, value: str,
                                                             variable: bool) -> None:
    from uploader.cli import main

    argv, env = workspace.uploader(command)
    command = command[:1] if command == ("doctor", "--key-id") else command
    if variable:
        # the flag given on the command line would win over its twin; json logs where the command has them
        argv = without(argv, "--" + subject.removeprefix("UPLOADER_").lower().replace("_", "-"))
        env = {**env, subject: VALUES[value]}
        if command in JSON_LOGS and subject != "UPLOADER_LOG_FORMAT":
            env.setdefault("UPLOADER_LOG_FORMAT", "json")
    else:
        position = None if subject.startswith("-") else len(command)
        argv = with_value(argv, subject, VALUES[value], position)
    code, out, err = call(main, argv, env, workspace.root, monkeypatch)
    fuzz_clean(out + err, file_name=command == ("cert", "new") and subject in ("--name", "--subject"))
    if env.get("UPLOADER_LOG_FORMAT") == "json":
        for line in out.splitlines():
            json.loads(line)  # every line of a JSON log is one valid object
    assert code in (0, 1, 2, 3, 4) and "internal error" not in err, (code, err[-500:])  # bad input: a clear error



def provisioning_cases() -> list[tuple[tuple[str, ...], str, str, bool]]:
    """Every `python -m provisioning` command, each option and the variable it reads (the stacks folder)."""
    from provisioning.tools.cli import build_parser
    from provisioning.tools.fleet import STACKS_DIR_ENV

    cases = []
    for command, parser in sorted(leaf_parsers(build_parser()).items()):
        for flag, takes_value in options(parser):
            if flag != "command" and takes_value:
                cases += [(command, flag, value, False) for value in VALUES]
        cases += [(command, STACKS_DIR_ENV, value, True) for value in VALUES]
    return cases


PROVISIONING_CASES = provisioning_cases()


@pytest.mark.parametrize("command,subject,value,variable", PROVISIONING_CASES,
                         ids=[f"{' '.join(c)}:{s}:{v}" for c, s, v, _ in PROVISIONING_CASES])
def test_provisioning_output_is_clean_whatever_the_option_holds(workspace: Workspace, monkeypatch: pytest.MonkeyPatch,
                                                                command: tuple[str, ...], subject: str, value: str,
                                                                variable: bool) -> None:
    from provisioning.tools.cli import main

    argv = workspace.provisioning(command)
    env: dict[str, str] = {}
    if variable:
        argv, env = without(argv, "--stacks-dir"), {subject: VALUES[value]}
    else:
        position = None if subject.startswith("-") else len(command)
        argv = with_value(argv, subject, VALUES[value], position)
    code, out, err = call(main, argv, env, workspace.root, monkeypatch)
    fuzz_clean(out + err)
    assert code in (0, 1, 2) and "internal error" not in err, (code, err[-500:])  # bad input: a clear error


# -- the reported break, end to end: a credential in IDENTITY_ENDPOINT reaches every output ------------------

ISSUE_ENDPOINT = "http://admin:S3cr3tPw@127.0.0.1:9/msi/token"


@pytest.mark.e2e
@pytest.mark.parametrize("command", ["upload", "run", "doctor"])
def test_a_credential_in_the_identity_endpoint_is_withheld_in_text_and_json(sandbox, tmp_path: Path,  # noqa: ANN001
                                                                            monkeypatch: pytest.MonkeyPatch,
                                                                            command: str) -> None:
    """IDENTITY_ENDPOINT='http://admin:S3cr3tPw@127.0.0.1:9/msi/token' with Key Vault signing: refused at the command
    boundary (uploader/model/environment.py's identity_url, exit 2) naming the variable and the rule, never the value,
    before any token is asked for (MSAL would send the user name and password). Without them, the sign-in reaches the
    managed identity step (the sandbox's Entra and vault are real), which fails and names the endpoint's host and port
    (the host to allow), in text and in the JSON log."""
    from test_keyvault_signin import VaultApp, job_env, resignations

    from uploader.cli import main

    app = VaultApp(sandbox, tmp_path)
    csv = tmp_path / "departures.csv"
    csv.write_bytes(resignations(3))
    if command == "run":
        zone = tmp_path / "zone"
        (zone / "incoming").mkdir(parents=True)
        (zone / "incoming" / "a.csv").write_bytes(resignations(3))
        argv, env = ["run"], job_env(app, sandbox, zone)
    else:
        argv, env = [command, *([str(csv)] if command == "upload" else []), *app.flags(),
                     *(["--state-dir", str(tmp_path / "state")] if command == "upload" else [])], dict(app.env)
    for log_format in ("text", "json"):
        env = {**env, "IDENTITY_ENDPOINT": ISSUE_ENDPOINT, "UPLOADER_LOG_FORMAT": log_format}
        code, out, err = call(main, argv, env, tmp_path, monkeypatch)
        assert code == 2 and "IDENTITY_ENDPOINT: must not hold a user name or password" in err, (code, err[-1000:])
        assert "127.0.0.1" not in out + err and "admin" not in out + err
        fuzz_clean(out + err)
    env = {**env, "IDENTITY_ENDPOINT": ISSUE_ENDPOINT.replace("admin:S3cr3tPw@", ""), "UPLOADER_LOG_FORMAT": "json"}
    code, out, err = call(main, argv, env, tmp_path, monkeypatch)
    assert code in (1, 2), (code, out[-1000:], err[-1000:])
    records = [json.loads(line) for line in out.splitlines()]
    assert any("127.0.0.1:9" in json.dumps(r) for r in records) or "127.0.0.1:9" in err, (records, err[-1000:])
