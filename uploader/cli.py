"""The command line (docs/cli.md): parsing, environment twins, dispatch.

Every flag has an environment twin, UPLOADER_ + the flag's name upper-cased with '-' -> '_';
a flag given on the command line wins. Each subcommand's work lives in its own module, imported
only when that subcommand runs, so `endpoints` or `validate` never load MSAL or the sandbox.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from uploader import __version__
from uploader.clouds import CLOUDS, DEFAULT_RECORDS_PER_CALL, get_cloud
from uploader.errors import EXIT_FAILED, EXIT_STOPPED, EXIT_USAGE, UploaderError, UsageError
from uploader.model import environment, sink
from uploader.model.environment import (  # the checks, declared with their variables; re-exported for the commands
    MAX_SECONDS,
    cloud_name,
    https_url,
    positive_int,
    records_per_call,
    row_cap,
    seconds,
    settle_seconds,
)
from uploader.model.mapping import ConnectorMapping, MappingError, load_mapping_file
from uploader.model.safetext import safe_text
from uploader.model.stackfile import DEFAULT_STACKS_TEXT, load_connector
from uploader.report import install_log_guard
from uploader.stopping import Stopped

__all__ = ["MAX_SECONDS", "cloud_name", "https_url", "positive_int", "records_per_call", "row_cap", "seconds",
           "settle_seconds"]
ENV_PREFIX = "UPLOADER_"


def env_name(flag: str) -> str:
    """`--records-per-call` -> `UPLOADER_RECORDS_PER_CALL`."""
    return ENV_PREFIX + flag.lstrip("-").upper().replace("-", "_")


class _TwinHelpFormatter(argparse.HelpFormatter):
    """Says an option's default once, and only when there is one: none for a default of None or False (an unset
    option, an off switch), none when the help text already says it (`default ...`)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, argparse.SUPPRESS, [], ()):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{text} (default: %(default)s)"
        return text


class FromEnv:
    """An UPLOADER_* value kept raw until the chosen subcommand is known (see resolve_env).

    Converting at parser-build time would check every subcommand's twins (an error about `run`'s
    environment would be reported as `upload`'s) and put the raw value in `--help`: never do either.
    """

    def __init__(self, env: str, raw: str, convert: Callable[[str], Any]) -> None:
        self.env = env
        self._raw = raw
        self._convert = convert

    def __repr__(self) -> str:  # what --help shows as the default: never the value (it may be a key or JSON)
        return f"${self.env}"

    __str__ = __repr__

    def value(self) -> Any:
        """The converted value: the option's own type when the command declared one (doctor's reported URLs),
        else the variable's one check (uploader/model/environment.py); UsageError naming the variable and the rule,
        never repeating the raw text."""
        if self._convert is environment.declared(self.env).parse:
            return environment.check(self.env, self._raw)
        try:
            return self._convert(self._raw)
        except (argparse.ArgumentTypeError, TypeError, ValueError):
            raise environment.refusal(self.env, self._raw, "not a valid value") from None


def resolve_env(args: argparse.Namespace) -> None:
    """Convert the chosen subcommand's environment twins; a bad one is a UsageError naming it and the command."""
    for dest, value in vars(args).items():
        if isinstance(value, FromEnv):
            try:
                setattr(args, dest, value.value())
            except environment.Refused as exc:
                raise UsageError(f"environment variable {exc.variable} (for `{args.command}`): {exc.rule} "
                                 f"({exc.shape})") from None


def add_option(
    parser: argparse.ArgumentParser,
    flag: str,
    *short: str,
    type: Callable[[str], Any] | None = None,  # noqa: A002 - mirrors argparse
    default: Any = None,
    required: bool = False,
    help: str,  # noqa: A002
    **kwargs: Any,
) -> None:
    """Add a valued option whose default comes from its UPLOADER_* environment twin (checked by resolve_env).
    The twin is declared in uploader/model/environment.py's table, which gives the option its check (`type`) and
    its choices; `type` overrides the check for this command only (doctor takes any override URL, to report it)."""
    env = env_name(flag)
    variable = environment.declared(env)
    convert = type or variable.parse
    if variable.choices is not None:
        kwargs.setdefault("choices", variable.choices)
    raw = environment.raw(env)
    if raw is not None and raw != "":
        default = FromEnv(env, raw, convert)
        required = False
    parser.add_argument(
        flag, *short, type=convert, default=default, required=required, help=f"{help} [env {env}]", **kwargs
    )


def add_switch(parser: argparse.ArgumentParser, flag: str, *, help: str) -> None:  # noqa: A002
    """Add an on/off flag whose environment twin accepts 1/true/yes/on or 0/false/no/off."""
    env = env_name(flag)
    raw = environment.raw(env) or ""
    default: Any = FromEnv(env, raw, environment.declared(env).parse) if raw.strip() else False
    parser.add_argument(flag, action="store_true", default=default, help=f"{help} [env {env}]")


def add_row_policy_options(parser: argparse.ArgumentParser) -> None:
    """--invalid-rows and --max-invalid-rows (upload and run): what to do with rows that break a rule."""
    add_option(parser, "--invalid-rows",
               help="refuse: a file with an invalid row is not sent at all (default, unless the mapping's "
               "invalidRows says otherwise); quarantine: send the valid rows, set the invalid ones aside "
               "(exit 4)")
    add_option(parser, "--max-invalid-rows",
               help="quarantine: refuse the file whole above this many invalid rows, a count or a percentage "
               "like 5%% (default: the mapping's maxInvalidRows, else 50%%)")


def add_connection_options(parser: argparse.ArgumentParser, required: bool, https_only: bool = True) -> None:
    """Sign-in and endpoint options shared by `upload` (flags) and `run` (environment).

    https_only: overrides that are not https URLs are refused while parsing (exit 2, naming the flag or
    variable); `doctor` turns it off to report them as a failed check instead.
    """
    url = None if https_only else str  # None: the variable's own check (https only)
    add_option(parser, "--tenant-id", required=required, help="Entra tenant (directory) ID")
    add_option(parser, "--app-id", required=required, help="application (client) ID of the app registration")
    add_option(parser, "--certificate", help="PEM file with the private key and the certificate, or a PKCS#12 "
               ".pfx/.p12 file (password in UPLOADER_CERTIFICATE_PASSWORD); or the PEM text itself in "
               "UPLOADER_CERTIFICATE_PEM")
    add_option(parser, "--key-id", help="versioned Key Vault key ID (https://VAULT.vault.azure.net/keys/NAME/VERSION): "
               "Key Vault signs the sign-in with it, through the managed identity (AZURE_CLIENT_ID picks a "
               "user-assigned one); --certificate then holds the public certificate only (PEM or DER)")
    add_option(parser, "--key-vault-domain", help="sandbox and tests only: accept --key-id hosts in this domain "
               "instead of the cloud's Key Vault domains")
    add_option(parser, "--credential", default="certificate",
               help="certificate (--certificate, or --key-id) or federated: sign in as the app through the job's "
               "user-assigned managed identity (AZURE_CLIENT_ID), which the app trusts; no certificate or key at all")
    add_option(parser, "--cloud", default="commercial", help=f"one of {', '.join(CLOUDS)}")
    add_option(parser, "--authority-host", type=url,
               help="override the cloud's Entra host (no instance discovery)")
    add_option(parser, "--ingestion-url", type=url, help="override the cloud's ingestion base URL")
    add_option(parser, "--scope", help="override the token scope (older samples used per-cloud IDs)")
    add_option(parser, "--deadline", default=300.0,
               help="seconds a chunk may spend retrying transient failures before the run fails")
    add_option(parser, "--read-timeout", default=120.0,
               help="seconds to wait for the ingestion service to answer one upload call")
    add_option(parser, "--log-format", default="text",
               help="text (progress bar on a terminal) or json (one object per line)")


def add_mapping_options(parser: argparse.ArgumentParser, mapping_help: str) -> None:
    """--mapping FILE, or --stack NAME [--connector NAME] [--stacks-dir DIR]."""
    add_option(parser, "--mapping", help=mapping_help)
    add_option(parser, "--stack", "-s", help="take the mapping from this stack's file (stacks/Pulumi.STACK.yaml) "
               "instead of --mapping")
    add_option(parser, "--connector", help="with --stack: the connector's `name` in hr-connector:connectors "
               "(optional when the stack has one connector)")
    add_option(parser, "--stacks-dir", help=f"with --stack: where the stack files are (default {DEFAULT_STACKS_TEXT})")


def mapping_from_args(args: argparse.Namespace, required: bool) -> ConnectorMapping | None:
    """The mapping named by --mapping or --stack/--connector (UsageError, exit 2, naming the flag or key)."""
    stack = getattr(args, "stack", None)
    if args.mapping and stack:
        raise UsageError("give --mapping FILE or --stack NAME, not both")
    if stack:
        return load_connector(stack, getattr(args, "connector", None), getattr(args, "stacks_dir", None))
    if getattr(args, "connector", None):
        raise UsageError("--connector needs --stack (the stack file whose connector it names)")
    if args.mapping:
        try:
            return load_mapping_file(args.mapping)
        except MappingError as exc:
            raise UsageError(f"--mapping {exc}") from None
    if required:
        raise UsageError("a mapping is required: --mapping FILE, or --stack NAME --connector NAME")
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="python -m uploader",
        description="Validate HR CSV files and send them to the Microsoft Purview HR connector, "
        "signed in with a certificate (never a client secret).",
        formatter_class=_TwinHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hr-connector uploader {__version__}")
    # Every subcommand's parser escapes its error line too (argparse repeats a refused value there).
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_ArgumentParser)

    up = sub.add_parser("upload", help="validate and send CSV files to one connector job",
                        formatter_class=_TwinHelpFormatter)
    up.add_argument("files", nargs="+", metavar="FILE", help="CSV files exported by the HR system")
    # Not required by the parser: a dry run needs no sign-in, so cmd_upload asks for them only to send.
    add_connection_options(up, required=False)
    add_option(up, "--job-id", help="the connector's job ID from Purview (default: the mapping's jobId)")
    add_option(up, "--records-per-call", default=DEFAULT_RECORDS_PER_CALL,
               help="records per upload call")
    add_mapping_options(up, "connector mapping JSON (docs/mapping.md); without it (or --stack), "
                        "structural checks only")
    add_option(up, "--state-dir", help="where checkpoints are kept (default: $XDG_STATE_HOME/hr-connector, else "
               "~/.local/state/hr-connector)")
    add_switch(up, "--dry-run", help="validate and plan the chunks; send nothing, make no request")
    add_switch(up, "--force", help="send even if identical content was sent to this job in the last 12 hours")
    add_row_policy_options(up)
    add_option(up, "--rejected-dir", help="quarantine: where the set-aside rows go (default: a rejected/ folder beside "
               "each file, which `upload *.csv` does not reach); checked before anything is sent (exit 2 if it "
               "cannot hold them)")
    up.set_defaults(handler="uploader.commands.upload")

    val = sub.add_parser("validate", help="check CSV files against a connector mapping; send nothing",
                         formatter_class=_TwinHelpFormatter)
    val.add_argument("files", nargs="+", metavar="FILE", help="CSV files to check")
    add_mapping_options(val, "connector mapping JSON (docs/mapping.md); or --stack/--connector")
    add_option(val, "--log-format", default="text", help="text or json")
    val.set_defaults(handler="uploader.commands.validate")

    _module_command(sub, "mapping", "uploader.commands.mapping",
                    "write a connector mapping from a CSV header (`mapping init`)")
    _module_command(sub, "cert", "uploader.commands.cert",
                    "make a certificate credential (`cert new`) or inspect one (`cert show`)")

    ep = sub.add_parser("endpoints", help="print a cloud's endpoints as JSON", formatter_class=_TwinHelpFormatter)
    add_option(ep, "--cloud", required=True, help=f"one of {', '.join(CLOUDS)}")
    ep.set_defaults(handler=None)

    _module_command(sub, "run", "uploader.commands.run",
                    "job mode: send the drop zone's new files (settings from UPLOADER_* env)")
    _module_command(sub, "doctor", "uploader.commands.doctor",
                    "live checks before a real run: certificate, sign-in, ingestion TLS, drop zone (sends no HR data)")
    _module_command(sub, "sandbox", "uploader.sandbox.cli",
                    "local stand-in for Entra and the ingestion API, on loopback TLS")
    return parser


def _module_command(sub: argparse._SubParsersAction[_ArgumentParser], name: str, module: str,
                    help: str) -> None:  # noqa: A002
    """A subcommand whose options and work both live in `module` (its add_arguments and main)."""
    parser = sub.add_parser(name, help=help, formatter_class=_TwinHelpFormatter)
    _extend(module, parser)
    parser.set_defaults(handler=module)


def default_state_dir() -> str:
    """`upload`'s checkpoints when --state-dir is not given (XDG_STATE_HOME read and checked when it is needed,
    for `upload` only: a bad one is exit 2 naming it)."""
    base = environment.read("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "hr-connector")


def _extend(module: str, parser: argparse.ArgumentParser) -> None:
    """Let a subcommand's module declare its own options (`add_arguments(parser)`), if it exists yet."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return
        raise
    add = getattr(mod, "add_arguments", None)
    if add is not None:
        add(parser)


#: Microsoft's sample_script.ps1 parameters (https://learn.microsoft.com/purview/import-hr-data, step 4:
#: -tenantId -appId -appSecret -jobId -filePath; older versions -csvFilePath; -RecordsPerCall) and what replaces
#: each here. None: no flag replaces it (the certificate replaces the client secret).
POWERSHELL_FLAGS: dict[str, str | None] = {
    "tenantid": "--tenant-id",
    "appid": "--app-id",
    "appsecret": None,
    "clientsecret": None,
    "jobid": "--job-id",
    "filepath": "FILE... (the files, as arguments)",
    "csvfilepath": "FILE... (the files, as arguments)",
    "recordspercall": "--records-per-call",
}
_POWERSHELL_SPELLING = {"tenantid": "-tenantId", "appid": "-appId", "appsecret": "-appSecret",
                        "clientsecret": "-clientSecret", "jobid": "-jobId", "filepath": "-filePath",
                        "csvfilepath": "-csvFilePath", "recordspercall": "-RecordsPerCall"}


def powershell_flags(argv: Sequence[str]) -> list[str]:
    """The PowerShell script's parameter names found in `argv` (-appId, -appSecret:VALUE, --jobId=...), by key."""
    found: list[str] = []
    for arg in argv:
        if arg == "--":  # the rest are file names
            break
        if not arg.startswith("-") or arg.startswith("---"):
            continue
        name = arg.lstrip("-").split(":", 1)[0].split("=", 1)[0].lower()
        if name in POWERSHELL_FLAGS and name not in found:
            found.append(name)
    return found


def powershell_message(found: list[str]) -> str:
    """What replaces each PowerShell parameter; names only (a value after -appSecret is never repeated)."""
    parts = []
    for name in found:
        new = POWERSHELL_FLAGS[name]
        if new is None:
            parts.append(f"{_POWERSHELL_SPELLING[name]}: no such flag; a certificate replaces the client secret "
                         "(--certificate PEMFILE, or a .pfx with its password in UPLOADER_CERTIFICATE_PASSWORD; "
                         "`python -m uploader cert new` makes one). The value given was not shown or kept: remove "
                         "it from your shell history or task definition, and delete the secret from the app "
                         "registration once the certificate works")
        else:
            parts.append(f"{_POWERSHELL_SPELLING[name]} -> {new}")
    return ("these are the parameters of Microsoft's PowerShell script, not this uploader's flags: "
            + "; ".join(parts) + " (docs/migrating.md)")


class _ArgumentParser(sink.ArgumentParser):
    """argparse, except that "unrecognized arguments" never repeats a value (it may be a secret), and that every
    error line passes the escaper (argparse repeats a refused value, `invalid choice: '…'`, which may hold a key
    or terminal control characters)."""

    def error(self, message: str) -> NoReturn:
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            tokens = message[len(prefix):].split()
            flags = [t.split("=", 1)[0].split(":", 1)[0] for t in tokens if t.startswith("-")]
            hidden = len(tokens) - len(flags)
            message = prefix + " ".join(flags) + (f" (and {hidden} value{'s' if hidden > 1 else ''}, not shown)"
                                                  if hidden else "")
        super().error(safe_text(message, 500))


def main(argv: Sequence[str] | None = None) -> int:
    install_log_guard()
    argv = list(sys.argv[1:] if argv is None else argv)
    if found := powershell_flags(argv):
        sink.stderr.line(f"error: {powershell_message(found)}")
        return EXIT_USAGE
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        resolve_env(args)
        if args.handler is None:  # endpoints
            sink.stdout.json(get_cloud(args.cloud).endpoints(), indent=2)
            return 0
        module = importlib.import_module(args.handler)
        return int(module.main(args))
    except UploaderError as exc:
        sink.stderr.line(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        sink.stderr.line("interrupted: acknowledged chunks are checkpointed; run again to resume")
        return 130
    except Stopped as stop:  # a signal past the command's own handling (uploader/stopping.py)
        sink.stderr.line(f"error: {stop.describe()}")
        return EXIT_STOPPED
    except Exception as exc:  # noqa: BLE001 - the last edge: a bug must not print what it was holding
        sink.stderr.line(f"error: internal error ({type(exc).__name__} at {sink.where(exc)}); its message is not "
                         "shown (it may hold data); acknowledged chunks are checkpointed; please report it")
        return EXIT_FAILED

