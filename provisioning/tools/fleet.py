"""The fleet of stacks: where the stack files live, which of them a change touches, and what the pipeline
needs to know about each (its cloud, tenant and sign-in environment) — without Pulumi, credentials or network.

Shared by `python -m provisioning new-stack | check | render | matrix`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioning.components.vaultcert import OIDC_AUDIENCE  # one definition: the Key Vault provider's too
from provisioning.config import NAMESPACE, PRIVATE, ConfigError
from provisioning.identities import HOSTED_RUNNER_LABEL, private_runner_label
from provisioning.naming import stack_name_problem
from provisioning.tools.offline import REPO_ROOT, load_stack_config, stack_name, stack_path
from provisioning.tools.selection import stack_wide_changes
from uploader.clouds import UnknownCloudError, get_cloud
from uploader.errors import EXIT_FAILED, EXIT_USAGE
from uploader.model.stackfile import STACK_NAME_RE  # Pulumi's stack-name rule, one definition for both sides

#: Environment twin of `--stacks-dir` (tests and forks with their stack files elsewhere).
STACKS_DIR_ENV = "HR_CONNECTOR_STACKS_DIR"


#: azure/login's `environment` and the federated credential's audience, per Azure environment.
LOGIN = {
    "public": ("AzureCloud", OIDC_AUDIENCE["public"]),
    "usgovernment": ("AzureUSGovernment", OIDC_AUDIENCE["usgovernment"]),
}


class FleetError(Exception):
    """A problem the command line reports as one line and an exit code (2 usage/config, 1 evaluation)."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class EvaluationFailed(FleetError):
    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_FAILED)


def validate_stack_name(name: str) -> str:
    """A valid Pulumi stack name, or FleetError saying the rule."""
    if name in (".", "..") or not STACK_NAME_RE.match(name):
        raise FleetError(
            f"stack name {name!r}: must be 1-100 characters of letters, digits, '-', '_' or '.' (Pulumi's rule)"
        )
    return name


def stacks_dir(option: str | None = None) -> Path:
    """`--stacks-dir`, else $HR_CONNECTOR_STACKS_DIR, else the project's stackConfigDir (stacks/)."""
    chosen = option or os.environ.get(STACKS_DIR_ENV)
    if chosen:
        return Path(chosen).resolve()
    return stack_path("x", REPO_ROOT).parent  # where Pulumi.yaml's stackConfigDir puts stack files


def stack_file(directory: Path, name: str) -> Path:
    return directory / f"Pulumi.{name}.yaml"


def select_stacks(directory: Path, names: list[str] | None) -> list[Path]:
    """The named stacks' files (each must exist), or every Pulumi.*.yaml in the directory."""
    if not directory.is_dir():
        raise FleetError(f"{directory}: stacks directory not found")
    if not names:
        return sorted(directory.glob("Pulumi.*.yaml"))
    paths = []
    for name in names:
        validate_stack_name(name)
        path = stack_file(directory, name)
        if not path.is_file():
            known = ", ".join(stack_name(p) for p in sorted(directory.glob("Pulumi.*.yaml"))) or "none"
            raise FleetError(f"stack {name!r}: no file {path} (stacks here: {known})")
        paths.append(path)
    return paths


@dataclass(frozen=True)
class MatrixEntry:
    """What one pipeline job needs about a stack; read from the stack file, never from Azure."""

    stack: str
    cloud: str
    tenant_id: str
    azure_environment: str
    hosting: bool = False
    hosted_by: str = ""
    #: The Azure side's directory (azure-native, the Key Vault certificate provider, the az CLI sign-in); `tenant_id`
    #: is the Microsoft 365 side's (azuread), empty for a hosting stack, which has none.
    azure_tenant_id: str = ""
    #: `network: private`: its jobs run on the platform's self-hosted runner in the deploy network
    #: (components/runner.py), since its vault and registry refuse public traffic.
    private: bool = False

    @property
    def runs_on(self) -> str:
        """The job's `runs-on`, as JSON for `${{ fromJSON(matrix.runsOn) }}`: a string (one label) or an array (every
        label must match: https://docs.github.com/actions/writing-workflows/workflow-syntax-for-github-actions
        #jobsjob_idruns-on)."""
        if self.private:
            return json.dumps(["self-hosted", private_runner_label(self.azure_environment)])
        return json.dumps(HOSTED_RUNNER_LABEL)

    def to_json(self) -> dict[str, Any]:
        login_environment, audience = LOGIN[self.azure_environment]
        return {
            "stack": self.stack,
            "cloud": self.cloud,
            "tenantId": self.tenant_id,
            "azureTenantId": self.azure_tenant_id,
            "azureEnvironment": self.azure_environment,
            "loginEnvironment": login_environment,
            "oidcAudience": audience,
            # GitHub variable names allow letters, digits and `_`: PREVIEW_AZURE_CLIENT_ID_<varSuffix>.
            "varSuffix": re.sub(r"[^A-Za-z0-9]", "_", self.stack).upper(),
            "hosting": self.hosting,
            "hostedBy": self.hosted_by,
            "runsOn": self.runs_on,
        }


def _flag(value: Any) -> bool:
    return str(value).strip().lower() == "true"


def matrix_entry(path: Path) -> MatrixEntry:
    """The stack's cloud and hosting environment with Pulumi.yaml's defaults applied (no full validation)."""
    if (rule := stack_name_problem(stack_name(path))) is not None:
        raise FleetError(f"{path.name}: {rule}")
    values = load_stack_config(path, REPO_ROOT)
    cloud = get_cloud(str(values.get(f"{NAMESPACE}:cloud") or "commercial"))
    azure_environment = str(values.get(f"{NAMESPACE}:azureEnvironment") or cloud.azure_environment).lower()
    if azure_environment not in LOGIN:
        raise FleetError(f"{stack_name(path)}: {NAMESPACE}:azureEnvironment: unknown Azure environment")
    tenant = str(values.get(f"{NAMESPACE}:tenantId") or "").strip().lower()
    hosting, host = _flag(values.get(f"{NAMESPACE}:hosting", False)), hosting_of(path, values)
    private = str(values.get(f"{NAMESPACE}:network") or "").strip().lower() == PRIVATE
    return MatrixEntry(stack_name(path), cloud.name, tenant, azure_environment, hosting, host,
                       _azure_tenant(path, values, tenant, hosting, host), private)


def _azure_tenant(path: Path, values: dict[str, Any], tenant: str, hosting: bool, host: str) -> str:
    """The Azure side's directory, as the program resolves it (config.Settings.azure_tenant_id): the stack's own
    azureTenantId, else for a hosted tenant its hosting stack's (the file beside it), else the tenant. Never empty:
    a job must not sign in without a tenant (FleetError: that stack's entry fails on `check`)."""
    own = str(values.get(f"{NAMESPACE}:azureTenantId") or "").strip().lower()
    if own:
        return own
    if host:
        hosting_file = stack_file(path.parent, host)
        try:
            theirs = str(load_stack_config(hosting_file, REPO_ROOT).get(f"{NAMESPACE}:azureTenantId") or "")
        except Exception:  # noqa: BLE001 - missing or unreadable: named below
            theirs = ""
        if not theirs.strip():
            raise FleetError(f"{stack_name(path)}: {NAMESPACE}:hostedBy: hosting stack {host} has no readable "
                             f"{NAMESPACE}:azureTenantId in {hosting_file.name}, so the Azure side's directory is "
                             "unknown")
        return theirs.strip().lower()
    if hosting or not tenant:
        raise FleetError(f"{stack_name(path)}: {NAMESPACE}:azureTenantId: is required "
                         + ("in a hosting stack" if hosting else "(no tenantId either)"))
    return tenant


def hosting_of(path: Path, values: dict[str, Any] | None = None) -> str:
    """The hosting stack a stack file names (`hostedBy`, its last part), or "" (self-contained, hosting, unreadable)."""
    if values is None:
        try:
            values = load_stack_config(path, REPO_ROOT)
        except Exception:  # noqa: BLE001 - an unreadable file is reported by matrix/check, not here
            return ""
    return str(values.get(f"{NAMESPACE}:hostedBy") or "").strip().rsplit("/", 1)[-1]


def is_hosting_stack(path: Path) -> bool:
    try:
        return _flag(load_stack_config(path, REPO_ROOT).get(f"{NAMESPACE}:hosting", False))
    except Exception:  # noqa: BLE001 - an unreadable file is reported by matrix/check, not here
        return False


def is_federated_stack(path: Path) -> bool:
    """`credential: federated`: the app trusts the job's managed identity; no certificate to list, renew or rotate."""
    try:
        value = load_stack_config(path, REPO_ROOT).get(f"{NAMESPACE}:credential")
    except Exception:  # noqa: BLE001 - an unreadable file is reported by matrix/check, not here
        return False
    return isinstance(value, str) and value.strip().lower() == "federated"


#: What `certs`, `fleet up --rotate-certificate` and the scheduled renewal check say of a federated stack.
FEDERATED_SKIP = ("no certificate: credential federated (the app trusts the job's managed identity; nothing to "
                  "renew or rotate)")


def hosting_first(paths: list[Path]) -> list[Path]:
    """Hosting stacks first (in order), then every other stack (in order): tenants read their hosting stack's
    outputs, so it deploys before them."""
    hosting = [p for p in paths if is_hosting_stack(p)]
    return hosting + [p for p in paths if p not in hosting]


def changed_stacks(changed: list[str], directory: Path) -> list[Path]:
    """Stacks a change touches: every stack if what they all deploy changed (the program, the project, the image:
    selection.stack_wide_changes), else the changed stack files that exist and, for a changed hosting stack,
    every tenant it hosts. Hosting stacks come first."""
    changed = [c.strip() for c in changed if c.strip()]
    everything = select_stacks(directory, None)
    if stack_wide_changes(changed, REPO_ROOT):
        return hosting_first(everything)
    names = {Path(c).name for c in changed  # examples/stacks/ holds examples, never deployed
             if re.fullmatch(r"(.*/)?Pulumi\.[^/]+\.yaml", c) and not c.startswith("examples/")}
    picked = [p for p in everything if p.name in names]
    hosts = {stack_name(p) for p in picked if is_hosting_stack(p)}
    if hosts:
        picked += [p for p in everything if p not in picked and hosting_of(p) in hosts]
    return hosting_first(sorted(picked))


def matrix(paths: list[Path]) -> dict[str, Any]:
    """A GitHub Actions matrix: {"include": [entry, ...]}.

    A stack file is a unit of failure: one too broken to read (or with a name that is not plain text) still gets
    its entry, with `error`, so that its own job fails on `check` naming the problem and deploys nothing, while
    the other stacks' jobs go ahead. `matrix_errors` lists them for the command's report and exit code.
    """
    include = []
    for path in paths:
        try:
            include.append(matrix_entry(path).to_json())
        except (ConfigError, FleetError, UnknownCloudError) as exc:
            include.append(_broken_entry(path, f"{exc.key}: {exc.rule}" if isinstance(exc, ConfigError) else str(exc)))
        except Exception as exc:  # noqa: BLE001 - one stack's unexpected failure is that stack's entry, not the fleet's
            include.append(_broken_entry(path, f"cannot be read ({type(exc).__name__})"))
    return {"include": include}


def _broken_entry(path: Path, error: str) -> dict[str, Any]:
    return {**MatrixEntry(stack_name(path), "", "", "public").to_json(), "error": error}


def matrix_errors(result: dict[str, Any]) -> list[str]:
    """`<stack>: <problem>` for every entry of a matrix that could not be read."""
    return [f"{e['stack']}: {e['error']}" for e in result["include"] if e.get("error")]


#: GitHub Actions: "A job matrix can generate a maximum of 256 jobs per workflow run"
#: (https://docs.github.com/en/actions/reference/limits).
MATRIX_LIMIT = 256
#: The batch jobs the deploy, preview and scheduled workflows declare (each calls a reusable workflow with one
#: batch's matrix): up to 5 x 256 = 1,280 stacks, the first batch holding the hosting stacks when there are any.
MAX_BATCHES = 5


def plan(paths: list[Path], batch_size: int = MATRIX_LIMIT, max_batches: int = MAX_BATCHES) -> dict[str, Any]:
    """The matrix split into batches of at most `batch_size` stacks, run one after another: every hosting stack
    in a batch before any tenant's (a hosting stack's batch holds hosting stacks only), every stack once.

    {"count": N, "batches": [{"include": [...]}, ...]}; FleetError when more batches are needed than the
    workflows declare."""
    entries = matrix(hosting_first(paths))["include"]
    hosting = [e for e in entries if e.get("hosting")]
    tenants = [e for e in entries if not e.get("hosting")]
    batches = [{"include": group[i:i + batch_size]} for group in (hosting, tenants)
               for i in range(0, len(group), batch_size)]
    if len(batches) > max_batches:
        raise FleetError(f"{len(entries)} stacks need {len(batches)} batches of at most {batch_size} jobs "
                         f"(hosting stacks in their own), but the workflows run {max_batches}: add batch jobs "
                         "to .github/workflows (deploy, preview, scheduled)")
    return {"count": len(entries), "batches": batches}


def github_outputs(planned: dict[str, Any], max_batches: int = MAX_BATCHES) -> str:
    """The plan as step outputs (`name=value` lines for $GITHUB_OUTPUT): count, and batchN/countN for every batch
    job the workflows declare (an empty batch for those the plan does not need)."""
    lines = [f"count={planned['count']}"]
    batches = planned["batches"]
    for i in range(max_batches):
        batch = batches[i] if i < len(batches) else {"include": []}
        lines.append(f"batch{i + 1}={json.dumps(batch, separators=(',', ':'))}")
        lines.append(f"count{i + 1}={len(batch['include'])}")
    return "\n".join(lines) + "\n"
