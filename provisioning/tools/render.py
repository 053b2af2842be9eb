"""`python -m provisioning render --stack NAME [--json]`: everything the program declares for a stack, for
pull-request review — offline, secrets masked.

The graph comes from the real __main__.py under Pulumi mocks (evaluator.py). Nothing is chosen here: every input
of every resource and provider the program declares, the resource options that change what `pulumi up` does
(protect, provider, parent, dependsOn, deleteBeforeReplace, additional secret outputs), the default providers the
stack's own `<package>:` config would configure, and the stack's outputs. `flatten` turns a report into property
paths (`emailReceivers[email-1].emailAddress`), which is what `render-diff` compares and what the text shows.

Masked: anything Pulumi marks secret, any PEM text and any key (offline.mask already replaced secret values by
digests; `scrub` replaces whatever still looks like key material). Normalised, so that a render changes only
with the stack or the program: the mocks' stand-in subscription in ARM IDs, the project directory, and what is
generated at deploy time (the certificate's thumbprint and expiry, a Key Vault secret's or key's version).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from provisioning.config import NAMESPACE, ConfigError
from provisioning.tools.fleet import EvaluationFailed
from provisioning.tools.offline import (
    REPO_ROOT,
    SECRET_STANDIN,
    Evaluation,
    EvaluationError,
    Resource,
    load_stack_file,
    load_stack_settings,
)

MASK = "[secret]"

#: Well-known built-in Azure role definition IDs (the same in every cloud), named beside the ID they annotate.
ROLE_NAMES = {
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "00482a5a-887f-4fb3-b363-3b7fe8e74483": "Key Vault Administrator",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": "Storage Blob Data Reader",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "12338af0-0e69-4776-bea7-57ae8d297424": "Key Vault Crypto User",
    "a4417e6f-fecd-4de8-b567-7b0420556985": "Key Vault Certificates Officer",
    "7f951dda-4ed3-4680-a7ca-43fe172d538d": "AcrPull",
    "8311e382-0749-4cb8-b61a-304f252e45ec": "AcrPush",
}

#: Outputs that come from the certificate generated at deploy time: different on every evaluation, so shown as
#: a placeholder (a render is compared between pull-request revisions; it must not change by itself).
GENERATED_OUTPUTS = ("certificateThumbprint", "certificateExpiresOn")
GENERATED = "(generated at deploy)"
#: Inputs taken from that certificate (its validity window, to the second of the evaluation), as dotted paths: the
#: same placeholder. A change of validity shows in the certificate resource's own inputs (validityDays,
#: renewBeforeDays).
GENERATED_INPUTS = {
    "azuread:index/applicationCertificate:ApplicationCertificate": ("startDate", "endDate"),
    "azure-native:keyvault:Secret": ("properties.attributes.expires",),  # the certificate's expiry
}

#: What each side's provider creates (docs/configuration.md#two-sides-of-a-stack).
SIDES = {
    "pulumi:providers:azure-native": ("azure", "the resource group, vault, drop zone, job, its managed identity and "
                                               "every role assignment; the Key Vault certificate provider too"),
    "pulumi:providers:azuread": ("microsoft365", "the app registration, its service principal and certificate "
                                                 "credential"),
}


def sign_in(resources: list[Resource]) -> dict[str, dict[str, Any]]:
    """Which directory each side's provider signs in to, read from the provider resources the program declared."""
    declared = {r.type: r for r in resources if r.type in SIDES}  # registration order varies: SIDES sets the order
    return {side: {"provider": type_token.rsplit(":", 1)[-1], "tenantId": declared[type_token].inputs.get("tenantId"),
                   "creates": what}
            for type_token, (side, what) in SIDES.items() if type_token in declared}


def _generated(type_token: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """`inputs` with this type's GENERATED_INPUTS paths replaced by the placeholder (a copy; absent stays absent)."""
    paths = GENERATED_INPUTS.get(type_token, ())
    if not paths:
        return inputs
    out: dict[str, Any] = json.loads(json.dumps(inputs, default=str))
    for path in paths:
        *parents, leaf = path.split(".")
        node: Any = out
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get(leaf) is not None:
            node[leaf] = GENERATED
    return out
_ARM_PREFIX = re.compile(r"^/subscriptions/[^/]+/resourceGroups/([^/]+)/providers/")
#: A Key Vault secret version (32 hex digits) in a versioned secret URL: new with every certificate, so generated.
#: A key version in a versioned key ID (UPLOADER_KEY_ID, the keyId output): Key Vault makes it at deploy time.
_SECRET_VERSION = re.compile(r"(/(?:secrets|keys)/[^/]+)/[0-9a-f]{32}$")
_KEYISH = re.compile(r"-----BEGIN|PRIVATE KEY|^MII[A-Za-z0-9+/]{40,}")
PROVIDER_PREFIX = "pulumi:providers:"
#: Packages whose resources the program creates through Pulumi's default provider (no explicit provider passed):
#: `pulumi up` configures that provider from the stack's `<package>:` keys. The engine registers it, not the
#: program, so the mocks never see it; the render shows it with those keys as its inputs. (Default providers
#: take "inputs sourced from the stack's configuration values for the relevant provider package":
#: https://github.com/pulumi/pulumi/blob/master/docs/architecture/providers/default.md.)
DEFAULT_PROVIDER_PACKAGES = ("docker-build",)


def tidy(value: Any, root: Path = REPO_ROOT) -> Any:
    """Readable values: whole floats as ints (Pulumi hands numbers over as floats), ARM IDs from the group on,
    generated versions as a placeholder, paths under the project directory relative to it; object keys sorted,
    since the mocks hand inputs over in no fixed order (so `render --json` is the same on every run)."""
    if isinstance(value, dict):
        return {k: tidy(v, root) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list):
        return [tidy(v, root) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        value = _ARM_PREFIX.sub(r"\1/", value)
        value = _SECRET_VERSION.sub(rf"\1/{GENERATED}", value)
        text = str(root)
        return "." + value[len(text):] if value.startswith(text) else value
    return value


def scrub(value: Any) -> Any:
    """Mask anything secret-looking that is left: offline's digests, the secure stand-in, PEM or base64 DER."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        if value.startswith(("[secret:", "[unmarked-private-key:")) or value == SECRET_STANDIN:
            return MASK
        if _KEYISH.search(value):
            return MASK
    return value


def label(urn: str) -> str:
    """`type name` of a URN (urn:pulumi:stack::project::parent$type::name)."""
    parts = urn.split("::")
    return f"{parts[2].rsplit('$', 1)[-1]} {parts[-1]}" if len(parts) >= 4 else urn


def _options(resource: Resource) -> dict[str, Any]:
    """The resource options that change what `pulumi up` does with it; defaults left out."""
    out: dict[str, Any] = {}
    if resource.provider:
        out["provider"] = label(resource.provider.rsplit("::", 1)[0])
    if resource.parent and not resource.parent.split("::")[2].endswith("pulumi:pulumi:Stack"):
        out["parent"] = label(resource.parent)
    if resource.depends_on:
        out["dependsOn"] = sorted(label(u) for u in resource.depends_on)
    if resource.protect:
        out["protect"] = True
    if resource.delete_before_replace:
        out["deleteBeforeReplace"] = True
    if resource.additional_secret_outputs:
        out["additionalSecretOutputs"] = sorted(resource.additional_secret_outputs)
    return out


def _kind(resource: Resource) -> str:
    if resource.type.startswith(PROVIDER_PREFIX):
        return "provider"
    return "resource" if resource.custom else "component"


def _notes(resource: Resource, inputs: dict[str, Any]) -> dict[str, str]:
    """Read-only annotations (never compared): the role a role definition ID stands for."""
    role = inputs.get("roleDefinitionId")
    if resource.type == "azure-native:authorization:RoleAssignment" and isinstance(role, str):
        guid = role.rsplit("/", 1)[-1].lower()
        return {"role": ROLE_NAMES.get(guid, guid)}
    return {}


def _default_providers(config: dict[str, Any], evaluation: Evaluation) -> list[dict[str, Any]]:
    """The default providers `pulumi up` would create for the packages used without an explicit provider, with
    the stack's `<package>:` keys as their inputs."""
    out = []
    for package in DEFAULT_PROVIDER_PACKAGES:
        if any(r.type.startswith(f"{package}:") and not r.provider for r in evaluation.resources):
            inputs = {k.split(":", 1)[1]: v for k, v in sorted(config.items()) if k.startswith(f"{package}:")}
            out.append({"type": f"{PROVIDER_PREFIX}{package}", "name": "default", "kind": "provider",
                        "inputs": scrub(inputs), "options": {}, "notes": {"configured by": f"{package}: keys"}})
    return out


def _header(path: Path, project_dir: Path) -> dict[str, Any]:
    """What the stack file says, for the reader (not compared: every setting shows in the resources)."""
    try:
        settings = load_stack_settings(path, project_dir)
    except ConfigError:  # the other side of a render-diff may predate a rule; the resources still compare
        return {"cloud": "", "tenantId": "", "azureEnvironment": "", "location": "", "schedule": "", "tags": {},
                "hosting": False, "hostedBy": "", "connectors": []}
    return {
        "cloud": settings.cloud.name,
        "tenantId": settings.tenant_id,
        "azureEnvironment": settings.azure_environment,
        "location": settings.location,
        "schedule": settings.schedule,
        "tags": dict(settings.tags),
        "hosting": settings.hosting,
        "hostedBy": settings.hosted_by or "",
        "connectors": [{"name": c.name, "jobId": c.job_id, "files": c.files,
                        "scenarios": [s.type for s in c.scenarios]} for c in settings.connectors],
    }


def report_from(path: Path, evaluation: Evaluation, project_dir: Path = REPO_ROOT) -> dict[str, Any]:
    """The review report of one evaluated stack: every declared resource with all its inputs and options, the
    default providers, the outputs — masked and normalised."""
    resources = []
    for r in evaluation.resources:
        inputs = scrub(tidy(_generated(r.type, r.inputs), project_dir))
        resources.append({"type": r.type, "name": r.name, "kind": _kind(r), "inputs": inputs,
                          "options": scrub(tidy(_options(r), project_dir)), "notes": _notes(r, inputs)})
    try:
        config = load_stack_file(path, project_dir).values
    except ConfigError:
        config = {}
    resources += _default_providers(config, evaluation)
    order = {"provider": 0, "resource": 1, "component": 2}
    resources.sort(key=lambda r: (order[r["kind"]], r["type"], r["name"]))
    return {
        "stack": evaluation.stack,
        "namespace": NAMESPACE,
        **_header(path, project_dir),
        "signIn": sign_in(evaluation.resources),
        "resourceCount": len(evaluation.deployed()),  # the number `check` prints (providers not counted)
        "providerCount": sum(r["kind"] == "provider" for r in resources),
        "resources": resources,
        "outputs": scrub(tidy({k: GENERATED if k in GENERATED_OUTPUTS else v
                               for k, v in evaluation.outputs.items()}, project_dir)),
    }


def render_stack(path: Path) -> dict[str, Any]:
    """The review report of one stack file (evaluated in this process; a hosted tenant's hosting stack first)."""
    from provisioning.tools.evaluator import evaluate_many

    load_stack_settings(path, REPO_ROOT)  # ConfigError naming every key, before any evaluation
    outcome = evaluate_many([path], REPO_ROOT, workers=1)[path]
    if isinstance(outcome, ConfigError):
        raise outcome
    if isinstance(outcome, EvaluationError):
        raise EvaluationFailed(str(outcome)) from None
    return report_from(path, outcome)


# ------------------------------------------------------------------------------------------- property paths

def _segment(items: list[Any]) -> list[str] | None:
    """List items keyed by their `name` when every item is an object with a distinct plain name (env vars,
    e-mail receivers, lifecycle rules): an insertion then changes one path, not every index after it."""
    names = [i.get("name") if isinstance(i, dict) else None for i in items]
    if names and all(isinstance(n, str) and n and re.fullmatch(r"[A-Za-z0-9_.:-]+", n) for n in names) \
            and len(set(names)) == len(names):
        return [str(n) for n in names]
    return None


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf property paths of a value: `a.b`, `list[0]`, `env[UPLOADER_CLOUD].value`; an empty object or list
    is a leaf of its own."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in sorted(value.items(), key=lambda kv: str(kv[0])):
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value:
        keys = _segment(value) or [str(i) for i in range(len(value))]
        out = {}
        for key, item in zip(keys, value, strict=True):
            out.update(flatten(item, f"{prefix}[{key}]"))
        return out
    return {prefix: value}


def resource_key(resource: dict[str, Any]) -> str:
    return f"{resource['type']} {resource['name']}"


def resource_paths(resource: dict[str, Any]) -> dict[str, Any]:
    """One resource's inputs and options as paths (options under `options.`)."""
    paths = flatten(resource.get("inputs") or {})
    if paths == {"": {}}:
        paths = {}
    paths.update(flatten(resource.get("options") or {}, "options") if resource.get("options") else {})
    return paths


def shown(value: Any) -> str:
    """A leaf value as the text render and the comments show it (JSON: strings quoted, nothing ambiguous)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def to_text(report: dict[str, Any]) -> str:
    """A plain-text rendering: a header, then every resource with every property path, then the outputs."""
    if report.get("hosting"):
        lines = [f"hosting stack {report['stack']}: cloud family of {report['cloud']}, "
                 f"Azure {report['azureEnvironment']} / {report['location']} (shared by its hosted tenants)"]
    else:
        hosted = f", hosted by {report['hostedBy']}" if report.get("hostedBy") else ""
        lines = [
            f"stack {report['stack']}: cloud {report['cloud']}, tenant {report['tenantId']}, "
            f"Azure {report['azureEnvironment']} / {report['location']}, schedule \"{report['schedule']}\"{hosted}",
        ]
    lines.append(f"  tags (every taggable Azure resource): {shown(report['tags'])}")
    for side, name in (("azure", "Azure side"), ("microsoft365", "Microsoft 365 side")):
        if side in report.get("signIn", {}):
            s = report["signIn"][side]
            lines.append(f"  {name}: {s['provider']} signs in to tenant {s['tenantId']} ({s['creates']})")
    if not report.get("hosting"):
        if report["connectors"]:
            for c in report["connectors"]:
                lines.append(f"  connector {c['name'] or '(unnamed)'}: job {c['jobId']}, files {c['files']}, "
                             f"scenarios {', '.join(c['scenarios'])}")
        else:
            lines.append("  connectors: none yet (first deploy, before the Purview connector exists)")
    lines.append(f"{report['resourceCount']} resources (as `check` counts them), listed with the "
                 f"{report.get('providerCount', 0)} provider(s) they are created with and the program's "
                 "components; every input and option:")
    for r in report["resources"]:
        notes = "".join(f"  ({k}: {v})" for k, v in (r.get("notes") or {}).items())
        lines.append(f"- {r['type']}  {r['name']}{'  [component]' if r.get('kind') == 'component' else ''}{notes}")
        for path, value in resource_paths(r).items():
            lines.append(f"    {path}: {shown(value)}")
    if report["outputs"]:
        lines.append("outputs:")
        for path, value in flatten(report["outputs"]).items():
            lines.append(f"    {path}: {shown(value)}")
    return "\n".join(lines)
