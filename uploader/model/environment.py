"""Every environment variable the uploader reads (the sandbox aside), declared once, and the one reader of them.

`VARIABLES` is the table: each variable's name, what it is, the one function that checks and parses it, whether
its value is secret, the commands that read it and, for an `UPLOADER_*` twin, the option it twins. `read` is the
only code in the uploader that reads `os.environ` outside the sandbox (tests/test_environment.py enforces it);
it refuses a name the table does not declare, so the table cannot fall behind the code. Commands read their
variables once, at their boundary (uploader/cli.py for the option twins, uploader/commands/ for the rest), and
hand the typed values to the stages in frozen settings (send/settings.py's `SignInSettings`, job/dropzone.py's
`StorageAccess`); no stage reads the environment.

A value that breaks its rule is a UsageError (exit 2) naming the variable and the rule; the value itself is never
repeated, only, for a variable that is not secret, its shape (how long, how many lines). The user reference,
docs/cli.md's "Environment variables", is `markdown_table()`'s output (tests/test_environment.py compares them).

Variables libraries read on their own (MSAL and azure-identity read IDENTITY_ENDPOINT, IDENTITY_HEADER and the
like again to ask for a token; requests reads REQUESTS_CA_BUNDLE; ssl reads SSL_CERT_FILE) are declared here
only where the uploader reads them too, and checked here before the library sees them.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from uploader.clouds import CLOUDS, CREDENTIALS, UnknownCloudError, get_cloud
from uploader.errors import UsageError
from uploader.model.mapping import INVALID_ROWS_MODES, MappingError, RowCap, parse_row_cap


class Invalid(argparse.ArgumentTypeError):
    """A value that breaks its variable's (or option's) rule; the message is the rule and never holds the value,
    so argparse, a twin's error and a setting's error can all show it as is."""


# -- the checks: one function per kind of value --------------------------------------------------------------

#: Longest wait any option takes (a day): larger values overflow the clocks and sockets they are given to.
MAX_SECONDS = 86_400.0
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise Invalid("must be a positive whole number") from None
    if value < 1:
        raise Invalid("must be a positive whole number")
    return value


def records_per_call(text: str) -> int:
    value = positive_int(text)
    if value > 50_000:
        raise Invalid("must be at most 50000 (Microsoft's samples send 5000 per call)")
    return value


def seconds(text: str) -> float:
    """A finite, positive number of seconds, at most a day (nan, inf, 0, negatives and 1e300 are refused)."""
    rule = f"must be a positive number of seconds (finite, above 0, at most {MAX_SECONDS:g})"
    try:
        value = float(text)
    except ValueError:
        raise Invalid(rule) from None
    if not math.isfinite(value) or value <= 0 or value > MAX_SECONDS:
        raise Invalid(rule)
    return value


def settle_seconds(text: str) -> float:
    """0 to 86,400 seconds, finite (nan, inf and negatives are refused)."""
    rule = "must be a number of seconds from 0 to 86400"
    try:
        value = float(text)
    except ValueError:
        raise Invalid(rule) from None
    if not math.isfinite(value) or not 0 <= value <= MAX_SECONDS:
        raise Invalid(rule)
    return value


def switch(text: str) -> bool:
    """An on/off twin: 1/true/yes/on or 0/false/no/off."""
    word = text.strip().lower()
    if word not in TRUE_WORDS | FALSE_WORDS:
        raise Invalid("expected true or false (1/true/yes/on or 0/false/no/off)")
    return word in TRUE_WORDS


def https_url(text: str) -> str:
    """An endpoint override: an https URL with a host and a numeric port if any, no user name or password (TLS is
    never turned off, and a password in a URL would be sent and logged)."""
    value = text.strip()
    try:
        parts = urlsplit(value)
        host = parts.hostname
        has_user = parts.username is not None or parts.password is not None
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise Invalid("must be an https:// URL (not a valid URL)") from None
    if has_user:
        raise Invalid("must not hold a user name or password; give https://host[:port][/path]")
    if parts.scheme.lower() != "https" or not host:
        raise Invalid("must be an https:// URL with a host (TLS is never turned off)")
    return value


def identity_url(text: str) -> str:
    """Where the managed identity's token is asked for (IDENTITY_ENDPOINT, AZURE_POD_IDENTITY_AUTHORITY_HOST): an
    http or https URL with a host, no user name or password. Container Apps and App Service set
    `http://localhost:42356/msi/token`-like loopback URLs, plain http by design
    (https://learn.microsoft.com/azure/container-apps/managed-identity#rest-endpoint-reference)."""
    value = text.strip()
    try:
        parts = urlsplit(value)
        host = parts.hostname
        has_user = parts.username is not None or parts.password is not None
        parts.port  # noqa: B018
    except ValueError:
        raise Invalid("must be an http:// or https:// URL (not a valid URL)") from None
    if has_user:
        raise Invalid("must not hold a user name or password (the identity endpoint takes none; MSAL would send "
                      "them)")
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise Invalid("must be an http:// or https:// URL with a host")
    return value


def host_of(url: str) -> str:
    """`host[:port]` of a URL that passed `identity_url` or `https_url` (never its path or query)."""
    parts = urlsplit(url)
    return parts.netloc.rpartition("@")[2]


_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def client_id(text: str) -> str:
    """A managed identity's client ID: a GUID (https://learn.microsoft.com/entra/identity/managed-identities-azure-
    resources/how-manage-user-assigned-managed-identities: clientId is the identity's application ID, a GUID)."""
    value = text.strip()
    if not _GUID.match(value):
        raise Invalid("must be the managed identity's client ID, a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
    return str(uuid.UUID(value))


def pem_text(text: str) -> str:
    """PEM text, kept as given (the certificate readers check what it holds); at most 1 MiB."""
    if len(text) > 1024 * 1024:
        raise Invalid("must be PEM text of at most 1 MiB")
    if "-----BEGIN " not in text:
        raise Invalid("must be PEM text (-----BEGIN ... -----)")
    return text


def secret_text(text: str) -> str:
    """A password, kept exactly as given (spaces count)."""
    return text


def name(text: str) -> str:
    """A name shown in the run summary: one line of at most 200 characters, stripped."""
    value = text.strip()
    if len(value) > 200 or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise Invalid("must be one line of at most 200 printable characters")
    return value


def path_text(text: str) -> str:
    """A path: one line, no NUL."""
    value = text.strip()
    if "\0" in value or "\n" in value:
        raise Invalid("must be a path (one line, no NUL)")
    return value


def existing_file(text: str) -> str:
    """A file that exists (a CA bundle: requests and ssl fail on a missing one only when they first connect)."""
    value = path_text(text)
    if not os.path.isfile(value):
        raise Invalid("names a file that does not exist: point it at a PEM file with the CA certificates to "
                      "trust, or unset it")
    return value


def connection_string(text: str) -> str:
    """A storage connection string's shape: `Key=value` pairs separated by `;`
    (https://learn.microsoft.com/azure/storage/common/storage-configure-connection-string); Azure's SDK checks
    the keys when the container client is made."""
    pairs = [p for p in text.strip().split(";") if p.strip()]
    if not pairs or any("=" not in p or not p.split("=", 1)[0].strip() for p in pairs):
        raise Invalid("not a valid storage connection string (Key=value pairs separated by ';')")
    return text.strip()


def cloud_name(text: str) -> str:
    try:
        return get_cloud(text).name
    except UnknownCloudError:
        raise Invalid(f"unknown cloud: expected one of {', '.join(CLOUDS)}") from None


def row_cap(text: str) -> RowCap:
    """--max-invalid-rows: a number of rows or a percentage ("5%")."""
    try:
        return parse_row_cap(text, "--max-invalid-rows")
    except MappingError as exc:
        raise Invalid(exc.rule) from None


# -- the table --------------------------------------------------------------------------------------------------

SIGN_IN = ("upload", "run", "doctor")
MAPPING = ("upload", "validate")
JOB = ("run", "doctor")


@dataclass(frozen=True)
class Variable:
    """One environment variable the uploader reads. `parse` is its one check (raising `Invalid`); `commands` the
    commands that read it; `flag` the option it is the twin of (a flag given on the command line wins);
    `secret`: its value is a credential and no message ever describes it, not even its length."""

    name: str
    what: str
    parse: Callable[[str], Any]
    commands: tuple[str, ...]
    secret: bool = False
    flag: str | None = None
    choices: tuple[str, ...] | None = None


def _twin(flag: str, what: str, commands: tuple[str, ...], parse: Callable[[str], Any] = str,
          choices: tuple[str, ...] | None = None, secret: bool = False) -> Variable:
    return Variable("UPLOADER_" + flag.lstrip("-").upper().replace("-", "_"), what, parse, commands, secret, flag,
                    choices)


_DECLARED = (
    # the option twins (uploader/cli.py's add_option reads these, for the command that runs)
    _twin("--tenant-id", "Entra tenant (directory) ID", SIGN_IN),
    _twin("--app-id", "application (client) ID of the app registration", SIGN_IN),
    _twin("--job-id", "the connector's job ID from Purview", ("upload", "doctor")),
    _twin("--certificate", "PEM or PKCS#12 file with key and certificate (with --key-id: the public certificate)",
          SIGN_IN),
    _twin("--key-id", "versioned Key Vault key ID that signs the sign-in", SIGN_IN),
    _twin("--key-vault-domain", "sandbox and tests only: the Key Vault DNS domain to accept", SIGN_IN),
    _twin("--credential", "`certificate` or `federated`", SIGN_IN, choices=CREDENTIALS),
    _twin("--cloud", "`commercial`, `gcc`, `gcchigh` or `dod`", (*SIGN_IN, "endpoints"), cloud_name),
    _twin("--authority-host", "Entra host override (https)", SIGN_IN, https_url),
    _twin("--ingestion-url", "ingestion base URL override (https)", SIGN_IN, https_url),
    _twin("--scope", "token scope override", SIGN_IN),
    _twin("--deadline", "seconds one chunk may spend retrying", SIGN_IN, seconds),
    _twin("--read-timeout", "seconds to wait for one upload call's answer", SIGN_IN, seconds),
    _twin("--log-format", "`text` or `json`", (*SIGN_IN, "validate"), choices=("text", "json")),
    _twin("--mapping", "connector mapping JSON file", MAPPING),
    _twin("--stack", "the stack whose file holds the mapping; in `run`, the stack named in the run summary",
          (*MAPPING, "run")),
    _twin("--connector", "with --stack: the connector's name", MAPPING),
    _twin("--stacks-dir", "with --stack: where the stack files are", MAPPING),
    _twin("--records-per-call", "records per upload call (1-50000)", ("upload", "run"), records_per_call),
    _twin("--state-dir", "where `upload` keeps its checkpoints", ("upload",)),
    _twin("--dry-run", "validate and plan only (1/true/yes/on)", ("upload",), switch),
    _twin("--force", "send even if sent in the last 12 hours (1/true/yes/on)", ("upload",), switch),
    _twin("--invalid-rows", "`refuse` or `quarantine`", ("upload", "run"), choices=INVALID_ROWS_MODES),
    _twin("--max-invalid-rows", "quarantine: the most invalid rows, a count or a percentage", ("upload", "run"),
          row_cap),
    _twin("--rejected-dir", "quarantine: where `upload` sets invalid rows aside", ("upload",)),
    _twin("--dropzone-url", "the drop zone: a blob container URL or file:///path", JOB),
    _twin("--connectors", "JSON list of connector mappings", JOB),
    _twin("--settle-seconds", "seconds a file must be unchanged before it is taken (0-86400)", ("run",),
          settle_seconds),
    _twin("--timeout", "seconds for each network step", ("doctor",), seconds),
    # read by the commands themselves
    Variable("UPLOADER_CERTIFICATE_PEM", "the PEM bundle as text (with --key-id: the public certificate alone)",
             pem_text, SIGN_IN, secret=True),
    Variable("UPLOADER_CERTIFICATE_PASSWORD", "a PKCS#12 file's password", secret_text,
             (*SIGN_IN, "cert show"), secret=True),
    Variable("AZURE_CLIENT_ID", "the job's user-assigned managed identity (client ID): Key Vault signing, "
             "federated sign-in and the blob drop zone", client_id, SIGN_IN),
    Variable("IDENTITY_ENDPOINT", "the managed identity endpoint Container Apps and App Service set (with "
             "IDENTITY_HEADER)", identity_url, SIGN_IN),
    Variable("IDENTITY_HEADER", "the managed identity endpoint's header secret", secret_text, SIGN_IN,
             secret=True),
    Variable("AZURE_POD_IDENTITY_AUTHORITY_HOST", "a pod identity's token endpoint, instead of the VM's instance "
             "metadata endpoint", identity_url, SIGN_IN),
    Variable("AZURE_STORAGE_CONNECTION_STRING", "development only (Azurite): the blob drop zone's connection "
             "string, used instead of the identity", connection_string, JOB, secret=True),
    Variable("CONTAINER_APP_JOB_NAME", "set by Container Apps: the job, named in the run summary", name, ("run",)),
    Variable("CONTAINER_APP_JOB_EXECUTION_NAME", "set by Container Apps: the execution, named in the run summary",
             name, ("run",)),
    Variable("REQUESTS_CA_BUNDLE", "the CA certificates TLS trusts (requests reads it; checked to exist)",
             existing_file, SIGN_IN),
    Variable("CURL_CA_BUNDLE", "the CA certificates TLS trusts when REQUESTS_CA_BUNDLE is unset (requests)",
             existing_file, SIGN_IN),
    Variable("XDG_STATE_HOME", "the base of `upload`'s default --state-dir", path_text, ("upload",)),
)

#: name -> declaration, in the order above (the docs' order).
VARIABLES: Mapping[str, Variable] = {v.name: v for v in _DECLARED}


class UndeclaredVariable(LookupError):
    """A variable read that the table does not declare: a bug in the uploader, never the user's."""


def declared(variable: str) -> Variable:
    try:
        return VARIABLES[variable]
    except KeyError:
        raise UndeclaredVariable(f"{variable} is read but not declared in uploader/model/environment.py") from None


def raw(variable: str) -> str | None:
    """The variable's text as set, or None when unset: the uploader's one read of os.environ (the sandbox aside)."""
    declared(variable)
    return os.environ.get(variable)


def shape(variable: str, value: str) -> str:
    """What may be said of a refused value: nothing for a secret; its length and line count otherwise."""
    if declared(variable).secret:
        return "the value is secret and not shown"
    lines = value.count("\n") + 1
    return f"the value, {len(value):,} character{'s' if len(value) != 1 else ''}" + (
        f" on {lines} lines" if lines > 1 else "") + ", is not shown"


class Refused(UsageError):
    """A variable whose value breaks its rule (exit 2): names the variable and the rule, never the value."""

    def __init__(self, variable: str, rule: str, shape: str) -> None:
        super().__init__(f"{variable}: {rule} ({shape})")
        self.variable, self.rule, self.shape = variable, rule, shape


def refusal(variable: str, value: str, rule: str) -> Refused:
    return Refused(variable, rule, shape(variable, value))


def check(variable: str, value: str) -> Any:
    """The variable's one check applied to `value` (UsageError naming the variable and the rule)."""
    var = declared(variable)
    try:
        parsed = var.parse(value)
    except Invalid as exc:
        raise refusal(variable, value, str(exc)) from None
    if var.choices is not None and parsed not in var.choices:
        raise refusal(variable, value, f"expected one of {', '.join(var.choices)}")
    return parsed


def read(variable: str) -> Any:
    """The variable checked and parsed, or None when it is unset or blank (an empty variable counts as unset)."""
    value = raw(variable)
    if value is None or not value.strip():
        return None
    return check(variable, value)


def markdown_table() -> str:
    """docs/cli.md's table of the variables (tests/test_environment.py keeps them equal)."""
    rows = ["| variable | twin of | commands | secret | what |", "|---|---|---|---|---|"]
    for var in VARIABLES.values():
        rows.append(f"| `{var.name}` | {f'`{var.flag}`' if var.flag else '—'} | "
                    f"{', '.join(f'`{c}`' for c in var.commands)} | {'yes' if var.secret else ''} | {var.what} |")
    return "\n".join(rows)
