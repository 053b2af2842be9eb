"""Offline evaluation harness: a stack file's config as the Pulumi CLI would hand it to the program, and the
real `__main__.py` run under Pulumi mocks with that config, recording every resource it declares.

No Pulumi CLI, no cloud, no credentials. Used by the tests, `python -m provisioning check` and `render`.

- `load_stack_config(stack)` reads `stacks/Pulumi.<stack>.yaml` (or a path) and merges Pulumi.yaml's project
  config defaults the way the CLI's mergeConfig does: project keys the stack leaves out take their `default`;
  a project key with no default the stack leaves out is an error; explicitly typed keys are type-checked;
  `secure:` values are replaced by a fixed stand-in (never decrypted) and reported as secret keys.
- `evaluate(stack)` runs the program under `pulumi.runtime.set_mocks` and returns an `Evaluation`. The mocks
  run in preview mode, as `pulumi preview` would: nothing is pushed or exchanged, and the certificate's
  dynamic provider `create` runs as the engine would run it on a first `up`.

Isolation: Pulumi's runtime keeps process-global state (settings, the root Stack resource, context variables,
the event loop), so by default each evaluation runs in a fresh subprocess (`python -m provisioning.tools.offline`)
that prints the evaluation as JSON; the parent never imports Pulumi. Any value that was a Pulumi secret, or
any string holding a private key, crosses the process boundary only as a masked digest ("[secret:ab12...]"),
so tests can compare secrets for equality without ever seeing or printing them.
"""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from provisioning.config import (
    NAMESPACE,
    OTHER_NAMESPACES,
    ConfigError,
    ConfigProblems,
    ConfigWarning,
    Settings,
    provider_key_problems,
)
from provisioning.yamlfile import read_yaml
from uploader.model.sink import ArgumentParser

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The top-level keys of a stack file (the Pulumi CLI's ProjectStack):
#: https://github.com/pulumi/pulumi/blob/master/sdk/go/common/workspace/project.go
STACK_FILE_KEYS = ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment")
SECRET_STANDIN = "[secure value: not decrypted offline]"  # noqa: S105 - a placeholder
UNKNOWN = "[unknown until deployed]"
_SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"  # noqa: S105 - pulumi.runtime.rpc._special_sig_key
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 - pulumi.runtime.rpc._special_secret_sig


class EvaluationError(RuntimeError):
    """The program failed under mocks for a reason other than a config rule (message has no secret values)."""


@dataclass(frozen=True)
class StackConfig:
    """A stack's effective config: full key (`ns:key`) -> value (native YAML types), and which keys are secret."""

    name: str
    path: Path
    values: dict[str, Any]
    secret_keys: tuple[str, ...] = ()

    def cli_env(self) -> dict[str, str]:
        """What the CLI's language host puts in PULUMI_CONFIG: every value a string, objects/lists as JSON."""
        return {k: _cli_string(v) for k, v in self.values.items()}


def _cli_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    if value is None:
        return ""
    return str(value)


# ---------------------------------------------------------------------------------------------- stack config


def _read_yaml(path: Path) -> Any:
    """A YAML file through the one stack-file reader (no aliases); duplicate keys are errors here."""
    data, duplicates = read_yaml(path)
    if duplicates:
        raise ConfigProblems(duplicates)
    return data


def stack_path(stack: str | os.PathLike[str], project_dir: Path = REPO_ROOT) -> Path:
    """`contoso` -> <project>/stacks/Pulumi.contoso.yaml; a path (anything with a / or .yaml) is used as is."""
    text = os.fspath(stack)
    if "/" in text or text.endswith((".yaml", ".yml")):
        return Path(text)
    return project_dir / _stack_config_dir(project_dir) / f"Pulumi.{text}.yaml"


def stack_name(path: Path) -> str:
    """Pulumi.<name>.yaml -> name."""
    name = path.name
    for suffix in (".yaml", ".yml"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name.removeprefix("Pulumi.")


def list_stacks(project_dir: Path = REPO_ROOT) -> list[Path]:
    """Every stack file in the project's stackConfigDir, sorted."""
    return sorted((project_dir / _stack_config_dir(project_dir)).glob("Pulumi.*.yaml"))


def _project(project_dir: Path) -> dict[str, Any]:
    path = project_dir / "Pulumi.yaml"
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = -1
    return copy.deepcopy(_project_at(path, stamp))


@functools.lru_cache(maxsize=8)
def _project_at(path: Path, stamp: int) -> dict[str, Any]:
    """Pulumi.yaml, read once per change (a fleet evaluation reads it for every stack)."""
    project_dir = path.parent
    project = _read_yaml(path)
    if not isinstance(project, dict) or not project.get("name"):
        raise ConfigError(str(project_dir / "Pulumi.yaml"), "project file without a name")
    return project


def _stack_config_dir(project_dir: Path) -> str:
    return str(_project(project_dir).get("stackConfigDir") or ".")


def _unsecure(value: Any) -> tuple[Any, bool]:
    """Replace `secure:` leaves with a stand-in; report whether there were any."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SECRET_STANDIN, True
        found = False
        out = {}
        for k, v in value.items():
            out[k], s = _unsecure(v)
            found = found or s
        return out, found
    if isinstance(value, list):
        pairs = [_unsecure(v) for v in value]
        return [p[0] for p in pairs], any(p[1] for p in pairs)
    return value, False


def _type_ok(type_name: str, items: dict[str, Any] | None, value: Any) -> bool:
    """The CLI's ValidateConfigValue for explicitly typed project keys (stack scalars arrive as strings)."""
    if type_name == "string":
        return not isinstance(value, (dict, list))
    if type_name == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        return isinstance(value, str) and value.strip().lstrip("-").isdigit()
    if type_name == "boolean":
        return isinstance(value, bool) or value in ("true", "false")
    if type_name == "object":
        return isinstance(value, dict)
    if type_name == "array":
        if not isinstance(value, list) or not items:
            return False
        return all(_type_ok(items.get("type", ""), items.get("items"), v) for v in value)
    return True


def read_stack_file(
    stack: str | os.PathLike[str], project_dir: Path = REPO_ROOT
) -> tuple[StackConfig, list[ConfigError]]:
    """A stack's effective config, merged with Pulumi.yaml's project config as the Pulumi CLI does, and every
    problem of the file itself (duplicate keys, unknown top-level keys and namespaces, the project's types).

    Raises ConfigError only when the file cannot be read as a stack file at all (missing, not YAML, an alias).
    """
    project_dir = Path(project_dir)
    project = _project(project_dir)
    project_name = str(project["name"])
    path = stack_path(stack, project_dir)
    doc, problems = read_yaml(path)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(str(path), "a stack file must be a mapping with a `config:` key")
    for key in doc:
        if str(key) not in STACK_FILE_KEYS:
            close = difflib.get_close_matches(str(key), STACK_FILE_KEYS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"a stack file has {', '.join(STACK_FILE_KEYS)}"
            problems.append(ConfigError(f"{path.name}: {key}", f"unknown top-level key; {hint}"))
    if "config" not in doc and problems:
        return StackConfig(stack_name(path), path, {}), problems  # without config, every other report is noise
    raw = doc.get("config") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: config", "must be a mapping of `namespace:key: value`")

    namespaces = (project_name, *OTHER_NAMESPACES)
    values: dict[str, Any] = {}
    secret: list[str] = []
    for key, value in raw.items():
        key = str(key)
        if ":" not in key:
            problems.append(ConfigError(key, f"stack config keys must be namespaced, e.g. {project_name}:{key}"))
            continue
        namespace = key.split(":", 1)[0]
        if namespace not in namespaces:
            close = difflib.get_close_matches(namespace, namespaces, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"this program reads {', '.join(namespaces)}"
            problems.append(ConfigError(key, f"unknown config namespace {namespace!r} (nothing reads it); {hint}"))
            continue
        value, is_secret = _unsecure(value)
        values[key] = value
        if is_secret:
            secret.append(key)

    problems.extend(provider_key_problems(values))
    declared = project.get("config") or {}
    for short, decl in declared.items():
        full = short if ":" in short else f"{project_name}:{short}"
        if not isinstance(decl, dict):  # shorthand `key: default`
            decl = {"default": decl} if full.startswith(f"{project_name}:") else {"value": decl}
        default = decl.get("default", decl.get("value"))
        if full not in values:
            if default is None:
                if full.startswith(f"{project_name}:"):
                    problems.append(ConfigError(full, "is required: the stack file must set it (Pulumi.yaml gives "
                                                      "no default)"))
                continue
            values[full] = default
            problems.extend(provider_key_problems([full]))  # Pulumi.yaml's project config, the same rule
            continue
        type_name = decl.get("type")
        if type_name and full not in secret and not _type_ok(type_name, decl.get("items"), values[full]):
            items = decl.get("items") or {}
            shown = f"array<{items.get('type')}>" if type_name == "array" else type_name
            problems.append(ConfigError(full, f"must be of type '{shown}' (Pulumi.yaml declares it so)"))
    return StackConfig(stack_name(path), path, values, tuple(secret)), problems


def stack_file_warnings(stack: str | os.PathLike[str], project_dir: Path = REPO_ROOT) -> list[ConfigWarning]:
    """What the offline tools cannot see in a stack file: a Pulumi ESC `environment:` (Pulumi Cloud opens it when
    the CLI runs; its `pulumiConfig` values become stack config:
    https://www.pulumi.com/docs/esc/integrations/infrastructure/pulumi-iac/)."""
    path = stack_path(stack, Path(project_dir))
    try:
        doc, _ = read_yaml(path)
    except ConfigError:
        return []
    imports = doc.get("environment") if isinstance(doc, dict) else None
    if isinstance(imports, dict):
        imports = imports.get("imports")
    if not imports:
        return []
    names = ", ".join(str(i) for i in imports) if isinstance(imports, list) else str(imports)
    return [ConfigWarning(f"{path.name}: environment", (
        f"imports Pulumi ESC environment(s) {names}, which these offline tools cannot open (Pulumi Cloud resolves "
        "them when the Pulumi CLI runs): any hr-connector: value they supply is missing from what check, render, "
        "render-diff and matrix see. Put hr-connector: values in this file's config: or in Pulumi.yaml's project "
        "config (docs/configuration.md#fleet-wide-values-pulumiyaml) and keep the environment for what only a "
        "deployment needs (sign-in variables, secrets); `pulumi preview` shows what it adds"))]


def load_stack_file(stack: str | os.PathLike[str], project_dir: Path = REPO_ROOT) -> StackConfig:
    """read_stack_file, raising ConfigError (ConfigProblems for several) if the file has any problem."""
    config, problems = read_stack_file(stack, project_dir)
    if problems:
        raise ConfigProblems(problems)
    return config


def load_stack_config(stack: str | os.PathLike[str], project_dir: Path = REPO_ROOT) -> dict[str, Any]:
    """`load_stack_file(...).values`: full key (`hr-connector:cloud`) -> value, defaults applied."""
    return load_stack_file(stack, project_dir).values


def load_stack_settings(stack: str | os.PathLike[str], project_dir: Path = REPO_ROOT) -> Settings:
    """The validated Settings of a stack file (no Pulumi import). Raises ConfigError (ConfigProblems when there
    are several) naming every key that breaks a rule: the file's own problems and the program's config rules."""
    from provisioning.config import Problems, all_problems, load_settings

    config, file_problems = read_stack_file(stack, project_dir)
    problems = Problems()
    for problem in file_problems:
        problems.add(problem)
    if not config.values and file_problems:
        problems.raise_if_any()
    try:
        settings = load_settings({k: v for k, v in config.values.items() if k.startswith(f"{NAMESPACE}:")},
                                 secret_keys=config.secret_keys)
    except ConfigError as exc:
        for problem in all_problems(exc):
            problems.add(problem)
    problems.raise_if_any()
    return settings


# ---------------------------------------------------------------------------------------------- evaluation


@dataclass
class Resource:
    """One resource the program declared: type token, logical name, inputs, and how it hangs in the graph."""

    type: str
    name: str
    urn: str
    id: str
    custom: bool
    inputs: dict[str, Any]
    state: dict[str, Any]
    provider: str | None = None  # provider reference "urn::id" (explicit providers), None for components
    parent: str | None = None  # parent URN
    depends_on: list[str] = field(default_factory=list)
    delete_before_replace: bool = False
    additional_secret_outputs: list[str] = field(default_factory=list)
    protect: bool = False  # `pulumi destroy` refuses while it exists
    ignore_changes: list[str] = field(default_factory=list)  # input paths an update leaves as they are



@dataclass
class Evaluation:
    """The graph one stack evaluates to under mocks, with the stack outputs (secrets masked)."""

    stack: str
    resources: list[Resource]
    outputs: dict[str, Any]
    seconds: float
    invokes: list[str] = field(default_factory=list)  # provider function tokens called, in call order
    invoke_args: list[dict[str, Any]] = field(default_factory=list)  # {"token", "args"} per call, in call order
    #: What the program logged (pulumi.log.warn/error: "warning: ..."), kept here instead of printed: `check`
    #: reports the config warnings once, from the settings, and a worker's stderr stays clean.
    logs: list[str] = field(default_factory=list)

    def of_type(self, type_token: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_token]

    def deployed(self) -> list[Resource]:
        """What `check` and `render` count as the stack's resources: the custom resources `pulumi up` creates in
        Azure and Entra (and the program's dynamic ones), not the provider instances nor component resources."""
        return [r for r in self.resources if r.custom and not r.type.startswith("pulumi:providers:")]

    def one(self, type_token: str) -> Resource:
        found = self.of_type(type_token)
        if len(found) != 1:
            raise AssertionError(f"expected one {type_token}, found {len(found)}")
        return found[0]

    def by_urn(self, urn: str) -> Resource:
        return next(r for r in self.resources if r.urn == urn)

    def provider_of(self, resource: Resource) -> Resource | None:
        """The explicit provider resource a resource is bound to."""
        if not resource.provider:
            return None
        urn = resource.provider.rsplit("::", 1)[0]
        return self.by_urn(urn)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Evaluation:
        return cls(data["stack"], [Resource(**r) for r in data["resources"]], data["outputs"], data["seconds"],
                   list(data.get("invokes", [])), list(data.get("invoke_args", [])), list(data.get("logs", [])))


def mask(value: Any, secret: bool = False) -> Any:
    """Replace secrets (Pulumi secret wrappers, anything holding a private key) by a stable digest marker."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIG_KEY) == _SECRET_SIG:
            return mask(value.get("value"), secret=True)
        return {k: mask(v, secret) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask(v, secret) for v in value]
    if type(value).__name__ == "Unknown":  # pulumi.runtime.rpc.Unknown: not known until deployment
        return UNKNOWN
    if secret and value is not None:
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # numbers cross the wire as floats; digest them as the program wrote them
        return "[secret:" + hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16] + "]"
    if isinstance(value, str) and "PRIVATE KEY" in value:
        # a key that was NOT marked secret: masked too, but visibly so the tests can fail on it
        return "[unmarked-private-key:" + hashlib.sha256(value.encode()).hexdigest()[:16] + "]"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(type(value).__name__)


HOSTING_OUTPUTS_ENV = "HR_CONNECTOR_HOSTING_OUTPUTS"  # the hosting stacks' outputs handed to a worker process


def hosted_by(config: StackConfig) -> str | None:
    """The hosting stack a tenant stack names (`hostedBy`, the last part of `org/project/NAME`), or None."""
    value = config.values.get(f"{NAMESPACE}:hostedBy")
    return str(value).strip().rsplit("/", 1)[-1] or None if value else None


def is_hosting(config: StackConfig) -> bool:
    """`hosting: true` (as the CLI hands it over: a bool or its text)."""
    return str(config.values.get(f"{NAMESPACE}:hosting", False)).strip().lower() == "true"


def hosting_file(config: StackConfig) -> Path:
    """Where the hosting stack's file is: beside the tenant's (the same project's stackConfigDir)."""
    return config.path.parent / f"Pulumi.{hosted_by(config)}.yaml"


def missing_hosting(config: StackConfig, project_dir: Path = REPO_ROOT) -> ConfigError | None:
    """The problem when a tenant names a hosting stack that has no stack file, or one that is not a hosting stack."""
    host = hosted_by(config)
    if host is None:
        return None
    path = hosting_file(config)
    key = f"{NAMESPACE}:hostedBy"
    if host == config.name:
        return ConfigError(key, "names this stack itself; name the hosting stack")
    if not path.is_file():
        return ConfigError(key, f"hosting stack {host!r} does not exist: no {path.name} beside this stack file "
                                f"(create it with `python -m provisioning new-stack {host} --hosting ...`)")
    try:
        hosting_config = load_stack_file(path, project_dir)
    except ConfigError:
        return None  # its own problems are reported on it; its evaluation fails below with them
    if not is_hosting(hosting_config):
        return ConfigError(key, f"{host} is not a hosting stack (its file does not set hr-connector:hosting: true)")
    return None


def hosting_outputs_for(config: StackConfig, project_dir: Path, *, isolated: bool = True,
                        timeout: float = 120) -> dict[str, dict[str, Any]]:
    """{hosting stack: its outputs} for a hosted tenant (the hosting stack evaluated under mocks), else {}."""
    host = hosted_by(config)
    if host is None:
        return {}
    problem = missing_hosting(config, project_dir)
    if problem is not None:
        raise problem
    try:
        hosting = evaluate(hosting_file(config), project_dir, isolated=isolated, timeout=timeout)
    except ConfigError as exc:
        raise ConfigError(f"{NAMESPACE}:hostedBy", f"hosting stack {host} has a problem: {exc.key}: {exc.rule}"
                          ) from None
    outputs = {host: hosting.outputs}
    raise_mismatches(config, outputs, project_dir)
    return outputs


def raise_mismatches(config: StackConfig, hosting_outputs: dict[str, dict[str, Any]], project_dir: Path) -> None:
    """ConfigError (ConfigProblems) naming each way a hosted tenant does not fit its hosting stack: cloud family,
    location, subscription (the program makes the same check on the real outputs)."""
    from provisioning.components.hosting import mismatches

    host = hosted_by(config)
    if host is None or host not in hosting_outputs:
        return
    settings = load_stack_settings(config.path, project_dir)
    found = mismatches(settings, hosting_outputs[host])
    if found:
        raise ConfigProblems([ConfigError(key, rule) for key, rule in found])


def evaluate(
    stack: str | os.PathLike[str],
    project_dir: Path = REPO_ROOT,
    *,
    isolated: bool = True,
    timeout: float = 120,
    hosting_outputs: dict[str, dict[str, Any]] | None = None,
) -> Evaluation:
    """Run the real program for one stack under mocks. Config problems raise ConfigError(key, rule).

    A hosted tenant reads its hosting stack's outputs: `hosting_outputs` ({name: outputs}) when given, else the
    hosting stack's own file, evaluated first (offline, like everything here: no backend)."""
    config = load_stack_file(stack, project_dir)  # config-file errors surface without starting Python again
    if hosting_outputs is None:
        hosting_outputs = hosting_outputs_for(config, Path(project_dir), isolated=isolated, timeout=timeout)
    else:
        raise_mismatches(config, hosting_outputs, Path(project_dir))
    if not isolated:
        return _evaluate_here(config, Path(project_dir), hosting_outputs)
    # The evaluation comes back in a file, not on standard output: what a program prints passes the escaper
    # (uploader/model/sink.py), which would change the graph's strings.
    with tempfile.TemporaryDirectory(prefix="hr-connector-eval-") as tmp:
        result = Path(tmp) / "evaluation.json"
        proc = subprocess.run(
            [sys.executable, "-m", "provisioning.tools.offline", os.fspath(stack_path(stack, Path(project_dir))),
             "--project-dir", os.fspath(project_dir), "--result", os.fspath(result)],
            capture_output=True, text=True, timeout=timeout, cwd=project_dir,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([os.fspath(project_dir), os.fspath(REPO_ROOT)]),
                 HOSTING_OUTPUTS_ENV: json.dumps(hosting_outputs)},
        )
        try:
            data = json.loads(result.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            data = {}
    if "config_error" in data:
        raise ConfigError(data["config_error"]["key"], data["config_error"]["rule"])
    if proc.returncode != 0 or "resources" not in data:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise EvaluationError(f"evaluating {stack} failed (exit {proc.returncode}):\n{tail}")
    return Evaluation.from_json(data)


def evaluate_all(project_dir: Path = REPO_ROOT) -> Iterator[tuple[Path, Evaluation | Exception]]:
    """Every stack file, evaluated one subprocess each; errors are yielded, not raised."""
    for path in list_stacks(project_dir):
        try:
            yield path, evaluate(path, project_dir)
        except (ConfigError, EvaluationError, subprocess.TimeoutExpired) as exc:
            yield path, exc


# ------------------------------------------------------------------------------- in-process (the worker side)

_ARM_TYPES = {
    "resources:ResourceGroup": "Microsoft.Resources/resourceGroups",
    "keyvault:Vault": "Microsoft.KeyVault/vaults",
    "keyvault:Secret": "Microsoft.KeyVault/vaults/{vaultName}/secrets",
    "keyvault:Key": "Microsoft.KeyVault/vaults/{vaultName}/keys",
    "storage:StorageAccount": "Microsoft.Storage/storageAccounts",
    "storage:BlobContainer": "Microsoft.Storage/storageAccounts/{accountName}/blobServices/default/containers",
    "storage:ManagementPolicy": "Microsoft.Storage/storageAccounts/{accountName}/managementPolicies",
    "storage:BlobServiceProperties": "Microsoft.Storage/storageAccounts/{accountName}/blobServices",
    "containerregistry:Registry": "Microsoft.ContainerRegistry/registries",
    "operationalinsights:Workspace": "Microsoft.OperationalInsights/workspaces",
    "operationalinsights:LinkedStorageAccount":
        "Microsoft.OperationalInsights/workspaces/{workspaceName}/linkedStorageAccounts",
    "app:ManagedEnvironment": "Microsoft.App/managedEnvironments",
    "app:Job": "Microsoft.App/jobs",
    "managedidentity:UserAssignedIdentity": "Microsoft.ManagedIdentity/userAssignedIdentities",
    "authorization:RoleAssignment": "Microsoft.Authorization/roleAssignments",
    "monitor:ActionGroup": "Microsoft.Insights/actionGroups",
    "monitor:ScheduledQueryRule": "Microsoft.Insights/scheduledQueryRules",
    "monitor:MetricAlert": "Microsoft.Insights/metricAlerts",
    "monitor:DiagnosticSetting": "Microsoft.Insights/diagnosticSettings",
    "applicationinsights:Workbook": "Microsoft.Insights/workbooks",
}
_ARM_NAME_INPUT = {
    "resources:ResourceGroup": "resourceGroupName", "keyvault:Vault": "vaultName", "keyvault:Secret": "secretName",
    "keyvault:Key": "keyName",
    "storage:StorageAccount": "accountName", "storage:BlobContainer": "containerName",
    "storage:ManagementPolicy": "managementPolicyName", "storage:BlobServiceProperties": "blobServicesName",
    "containerregistry:Registry": "registryName",
    "operationalinsights:Workspace": "workspaceName", "operationalinsights:LinkedStorageAccount": "dataSourceType",
    "app:ManagedEnvironment": "environmentName",
    "app:Job": "jobName", "managedidentity:UserAssignedIdentity": "resourceName",
    "monitor:ActionGroup": "actionGroupName", "monitor:ScheduledQueryRule": "ruleName",
    "monitor:DiagnosticSetting": "name", "applicationinsights:Workbook": "resourceName",
}
MOCK_SUBSCRIPTION = "00000000-0000-4000-8000-00000000a5b1"
_HOSTING = {"usgovernment": False}  # per evaluation (set by the provider's registration)
_HOSTING_OUTPUTS: dict[str, dict[str, Any]] = {}  # hosting stack name -> its outputs, for StackReference reads
ORGANIZATION = "organization"  # what the DIY backends call every stack's organization


def _unwrap_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(_SECRET_SIG_KEY) == _SECRET_SIG:
            return _unwrap_secrets(value.get("value"))
        return {k: _unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap_secrets(v) for v in value]
    return value


def _drop_empty_secrets(value: Any) -> Any:
    """Secret wrappers around unset values cannot travel back through the mock monitor; drop them."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIG_KEY) == _SECRET_SIG and value.get("value") is None:
            return None
        return {k: v2 for k, v in value.items() if (v2 := _drop_empty_secrets(v)) is not None}
    if isinstance(value, list):
        return [_drop_empty_secrets(v) for v in value]
    return value


def _mock_state(typ: str, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Plausible outputs for the resources the program declares (ids shaped like Azure's)."""
    from provisioning.components import (
        certificate,  # the dynamic providers' own create, run as the engine would
        rbacwait,
        vaultcert,
    )

    inputs = _drop_empty_secrets(inputs)
    state = dict(inputs)
    if typ == "pulumi:providers:azure-native":  # registered first: its cloud shapes the DNS names below
        _HOSTING["usgovernment"] = inputs.get("environment") == "usgovernment"
    if typ == rbacwait.TYPE_TOKEN:
        return rbacwait.mock_create(inputs)  # without the sleep
    if typ == vaultcert.TYPE_TOKEN:
        return vaultcert.mock_create(inputs)  # against the in-memory Key Vault stand-in (vaultcert.MemoryVault)
    if typ == "pulumi:pulumi:StackReference":  # a read of the hosting stack's state: its outputs, offline
        target = str(inputs.get("name") or name)
        outputs = _HOSTING_OUTPUTS.get(target.rsplit("/", 1)[-1])
        if outputs is None:
            raise EvaluationError(f"no outputs of hosting stack {target} were given to the offline evaluation")
        return target, {"name": target, "outputs": outputs, "secretOutputNames": []}
    if typ.startswith("pulumi-python:dynamic"):
        return certificate.mock_create(inputs)
    if typ == "azure-native:network:PublicIPAddress":  # a static address is allocated at creation
        state["ipAddress"] = "203.0.113.10"  # TEST-NET-3 (RFC 5737): an address for documentation
    short = typ.split(":", 1)[1] if typ.startswith("azure-native:") else ""
    if short in _ARM_TYPES:
        plain = _unwrap_secrets(inputs)
        rg = plain.get("resourceGroupName", name)
        arm = _ARM_TYPES[short].format(vaultName=plain.get("vaultName", "vault"),
                                       accountName=plain.get("accountName", "account"),
                                       workspaceName=plain.get("workspaceName", "workspace"))
        name_key = _ARM_NAME_INPUT.get(short)
        leaf = plain.get(name_key) if name_key and isinstance(plain.get(name_key), str) else f"{name}-mock"
        gov = _HOSTING["usgovernment"]
        if short == "resources:ResourceGroup":
            rid = f"/subscriptions/{MOCK_SUBSCRIPTION}/resourceGroups/{leaf}"
        elif short == "monitor:DiagnosticSetting":  # an extension resource of the resource it watches
            rid = f"{plain.get('resourceUri')}/providers/{arm}/{plain.get('name', name)}"
        elif short == "authorization:RoleAssignment":
            rid = f"{plain.get('scope')}/providers/{arm}/{hashlib.sha256(name.encode()).hexdigest()[:32]}"
        else:
            rid = f"/subscriptions/{MOCK_SUBSCRIPTION}/resourceGroups/{rg}/providers/{arm}/{leaf}"
        state["name"] = leaf
        state["id"] = rid
        identity = plain.get("identity")
        if isinstance(identity, dict) and isinstance(identity.get("userAssignedIdentities"), list):
            # ARM answers the list of identity IDs with a map of ID -> {principalId, clientId}
            state["identity"] = {**identity, "userAssignedIdentities": {
                uid: {"principalId": "22222222-2222-4222-8222-000000000000",
                      "clientId": "11111111-1111-4111-8111-000000000000"}
                for uid in identity["userAssignedIdentities"]}}
        if isinstance(identity, dict) and "SystemAssigned" in str(identity.get("type")):
            digest = hashlib.sha256(name.encode()).hexdigest()[:12]
            state["identity"] = {**state.get("identity", identity), "principalId": f"66666666-6666-4666-8666-{digest}",
                                 "tenantId": "77777777-7777-4777-8777-777777777777"}
        if short == "keyvault:Vault":
            host = "vault.usgovcloudapi.net" if gov else "vault.azure.net"
            state["properties"] = {**plain.get("properties", {}), "vaultUri": f"https://{leaf}.{host}/",
                                   "hsmPoolResourceId": "", "privateEndpointConnections": [],
                                   "provisioningState": "Succeeded"}
        if short == "keyvault:Secret":
            vault_host = "vault.usgovcloudapi.net" if gov else "vault.azure.net"
            base = f"https://{plain.get('vaultName', 'vault')}.{vault_host}/secrets/{leaf}"
            # as in Key Vault, every new value is a new version (32 hex digits); here derived from the value
            value = json.dumps(plain.get("properties", {}).get("value"), sort_keys=True, default=str)
            version = hashlib.sha256(value.encode()).hexdigest()[:32]
            state["properties"] = {
                **{k: v for k, v in plain.get("properties", {}).items() if k != "value"},
                "secretUri": base, "secretUriWithVersion": f"{base}/{version}",
            }
        if short == "storage:StorageAccount":
            suffix = "core.usgovcloudapi.net" if gov else "core.windows.net"
            state["primaryEndpoints"] = {kind: f"https://{leaf}.{kind}.{suffix}/"
                                         for kind in ("blob", "dfs", "file", "queue", "table", "web")}
        if short == "containerregistry:Registry":
            state["loginServer"] = f"{leaf}.azurecr.{'us' if gov else 'io'}"
        if short == "managedidentity:UserAssignedIdentity":
            state["clientId"] = "11111111-1111-4111-8111-" + hashlib.sha256(name.encode()).hexdigest()[:12]
            state["principalId"] = "22222222-2222-4222-8222-" + hashlib.sha256(name.encode()).hexdigest()[:12]
        if short == "operationalinsights:Workspace":
            state["customerId"] = "33333333-3333-4333-8333-333333333333"
        return rid, state
    if typ.startswith("azuread:"):
        oid = "44444444-4444-4444-8444-" + hashlib.sha256(name.encode()).hexdigest()[:12]
        state.setdefault("objectId", oid)
        if typ == "azuread:index/application:Application":
            state["clientId"] = "55555555-5555-4555-8555-" + hashlib.sha256(name.encode()).hexdigest()[:12]
            return f"/applications/{oid}", state
        return oid, state
    if typ.startswith("docker-build:"):
        state["ref"] = f"{inputs.get('tags', ['image'])[0]}@sha256:{'0' * 64}"
        state["digest"] = f"sha256:{'0' * 64}"
        return f"{name}-id", state
    return f"{name}-id", state


def _evaluate_here(config: StackConfig, project_dir: Path,
                   hosting_outputs: dict[str, dict[str, Any]] | None = None) -> Evaluation:
    """Run <project>/__main__.py under mocks in this process. Each call sets Pulumi's runtime up afresh (mocks,
    settings, config, root resource), so one process may evaluate many stacks one after another."""
    import runpy

    import pulumi
    from pulumi.runtime import mocks, settings
    from pulumi.runtime.proto import resource_pb2
    from pulumi.runtime.stack import Stack, run_pulumi_func, wait_for_rpcs
    from pulumi.runtime.sync_await import _sync_await

    started = time.perf_counter()
    _HOSTING["usgovernment"] = False
    _HOSTING_OUTPUTS.clear()
    _HOSTING_OUTPUTS.update(hosting_outputs or {})
    records: dict[str, dict[str, Any]] = {}
    invokes: list[str] = []  # every provider function (invoke) the program calls, in order
    invoke_args: list[dict[str, Any]] = []

    class Recorder(mocks.Mocks):
        def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
            return _mock_state(args.typ, args.name, args.inputs)

        # Pulumi's MockMonitor.Invoke takes a plain dict too (`isinstance(tup, dict)`); Mocks.call names only the
        # (result, failures) tuple.
        def call(self, args: mocks.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
            invokes.append(args.token)
            invoke_args.append({"token": args.token, "args": mask(dict(args.args))})
            if args.token.endswith("getClientConfig"):
                # The directory the provider the invoke goes through signs in to (its tenantId), as Azure answers.
                provider = records.get((args.provider or "").rsplit("::", 1)[0], {}).get("inputs", {})
                tenant = provider.get("tenantId") or config.values.get(f"{NAMESPACE}:tenantId")
                return {"subscriptionId": MOCK_SUBSCRIPTION, "tenantId": tenant,
                        "clientId": "66666666-6666-4666-8666-666666666666",
                        "objectId": "77777777-7777-4777-8777-777777777777"}
            if args.token.endswith("getClientToken"):
                return {"token": "mock-access-token"}
            return {}

    class Monitor(mocks.MockMonitor):
        def RegisterResource(  # noqa: N802 - gRPC method name
                self, request: resource_pb2.RegisterResourceRequest) -> resource_pb2.RegisterResourceResponse:
            # Pulumi's MockMonitor is unannotated.
            response: resource_pb2.RegisterResourceResponse = super().RegisterResource(request)  # type: ignore[no-untyped-call]
            if request.type != "pulumi:pulumi:Stack":
                registered = self.resources.get(response.urn)
                from pulumi.runtime import rpc

                records[response.urn] = {
                    "type": request.type, "name": request.name, "urn": response.urn,
                    "id": response.id or "", "custom": bool(request.custom),
                    "inputs": mask(rpc.deserialize_properties(request.object)),
                    "state": {k: mask(v, secret=k in request.additionalSecretOutputs)
                              for k, v in (registered.state if registered else {}).items()},
                    "provider": request.provider or None, "parent": request.parent or None,
                    "depends_on": list(request.dependencies),
                    "delete_before_replace": bool(request.deleteBeforeReplace),
                    "additional_secret_outputs": list(request.additionalSecretOutputs),
                    "protect": bool(request.protect),
                    "ignore_changes": list(request.ignoreChanges),
                }
            return response

    env_before = {k: os.environ.get(k) for k in ("PULUMI_CONFIG", "PULUMI_CONFIG_SECRET_KEYS")}
    os.environ["PULUMI_CONFIG"] = json.dumps(config.cli_env())
    os.environ["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(list(config.secret_keys))
    pulumi.runtime.set_all_config(config.cli_env(), list(config.secret_keys))
    # Pulumi annotates a Resource; None clears the root a previous evaluation in this process left behind.
    settings.set_root_resource(None)  # type: ignore[arg-type]
    project = str(_project(project_dir)["name"])
    logs: list[str] = []
    pulumi.runtime.set_mocks(Recorder(), project=project, stack=config.name, preview=True,
                             monitor=Monitor(Recorder()), organization=ORGANIZATION, logger=_program_logger(logs))
    main = project_dir / "__main__.py"
    cwd = os.getcwd()
    os.chdir(project_dir)
    sys.path.insert(0, os.fspath(project_dir))
    try:
        def program() -> None:
            runpy.run_path(os.fspath(main), run_name="__main__")

        _sync_await(run_pulumi_func(program))

        async def resolve() -> dict[str, Any]:
            await wait_for_rpcs()
            out: dict[str, Any] = {}
            root = settings.get_root_resource()
            for key, value in (root.outputs if isinstance(root, Stack) else {}).items():
                o = pulumi.Output.from_input(value)
                resolved, is_secret = await o.future(), await o.is_secret()
                out[key] = mask(resolved, secret=bool(is_secret))
            return out

        outputs = _sync_await(resolve())
    finally:
        os.chdir(cwd)
        sys.path.remove(os.fspath(project_dir))
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    resources = [Resource(**r) for r in records.values()]
    return Evaluation(config.name, resources, outputs, round(time.perf_counter() - started, 3), invokes,
                      invoke_args, logs)


def _program_logger(into: list[str]) -> logging.Logger:
    """The logger Pulumi's mock engine writes the program's pulumi.log messages to: into a list, not stderr."""

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            into.append(f"{record.levelname.lower()}: {record.getMessage()}")

    logger = logging.getLogger("hr-connector.offline.program")
    logger.handlers = [Collect(logging.DEBUG)]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger


def _config_error_in(exc: BaseException) -> ConfigError | None:
    """The ConfigError behind an exception the Pulumi runtime wrapped (cause chains may loop)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ConfigError):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def _main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m provisioning.tools.offline",
                                     description="Evaluate one stack under Pulumi mocks; print the graph as JSON.")
    parser.add_argument("stack", help="stack name or path to Pulumi.<stack>.yaml")
    parser.add_argument("--project-dir", default=os.fspath(REPO_ROOT))
    parser.add_argument("--result", required=True, help="write the evaluation's JSON here")
    args = parser.parse_args(argv)

    def result(data: dict[str, Any]) -> None:
        Path(args.result).write_text(json.dumps(data, default=str), encoding="utf-8")

    project_dir = Path(args.project_dir).resolve()
    hosting_outputs = json.loads(os.environ.get(HOSTING_OUTPUTS_ENV) or "{}")
    try:
        evaluation = _evaluate_here(load_stack_file(args.stack, project_dir), project_dir, hosting_outputs)
    except ConfigError as exc:
        result({"config_error": {"key": exc.key, "rule": exc.rule}})
        return 2
    except Exception as exc:  # noqa: BLE001 - a config error may arrive wrapped by the Pulumi runtime
        cause = _config_error_in(exc)
        if cause is not None:
            result({"config_error": {"key": cause.key, "rule": cause.rule}})
            return 2
        raise
    result(evaluation.to_json())
    return 0


if __name__ == "__main__":
    from uploader.model.sink import run_main

    sys.exit(run_main(__name__, "_main"))
