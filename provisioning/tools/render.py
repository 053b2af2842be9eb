"""`python -m provisioning render --stack NAME [--json]`: the resources the program would declare for a stack,
with the settings a reviewer cares about, for pull-request review — offline, secrets masked.

The graph comes from offline.evaluate (the real __main__.py under Pulumi mocks). What is shown per resource
type is chosen here (REVIEW_PATHS); anything Pulumi marks secret, any PEM text and any key is masked twice
over: offline.mask already replaced secret values by digests, and `scrub` replaces whatever still looks like
key material. Values the cloud assigns (IDs, URLs) are the mocks' stand-ins and are left out.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from provisioning.config import NAMESPACE
from provisioning.tools.fleet import EvaluationFailed
from provisioning.tools.offline import (
    REPO_ROOT,
    SECRET_STANDIN,
    EvaluationError,
    Resource,
    evaluate,
    load_stack_settings,
)

MASK = "[secret]"

#: Well-known built-in Azure role definition IDs (the same in every cloud).
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

#: Per type token: the input paths shown (dotted; `[]` maps over a list). Unlisted types show their scalars.
REVIEW_PATHS: dict[str, tuple[str, ...]] = {
    "pulumi:providers:azure-native": ("environment", "location", "subscriptionId", "tenantId"),
    "pulumi:providers:azuread": ("environment", "tenantId"),
    "azuread:index/application:Application": (
        "displayName", "signInAudience", "owners", "notes", "passwords", "web.redirectUris",
        "publicClient.redirectUris", "requiredResourceAccesses"),
    "azuread:index/servicePrincipal:ServicePrincipal": ("clientId", "applicationId", "owners",
                                                        "appRoleAssignmentRequired"),
    "azuread:index/applicationCertificate:ApplicationCertificate": ("type", "encoding", "value"),
    "azure-native:resources:ResourceGroup": ("resourceGroupName", "location", "tags"),
    "azure-native:keyvault:Vault": (
        "vaultName", "location", "properties.tenantId", "properties.sku.name", "properties.enableRbacAuthorization",
        "properties.enablePurgeProtection", "properties.enableSoftDelete", "properties.softDeleteRetentionInDays",
        "properties.publicNetworkAccess", "properties.networkAcls.defaultAction", "properties.accessPolicies"),
    "azure-native:keyvault:Secret": ("secretName", "properties.contentType", "properties.attributes.expires",
                                     "properties.attributes.enabled", "properties.value"),
    "azure-native:storage:StorageAccount": (
        "accountName", "location", "kind", "sku.name", "allowSharedKeyAccess", "minimumTlsVersion",
        "allowBlobPublicAccess", "defaultToOAuthAuthentication", "enableHttpsTrafficOnly",
        "publicNetworkAccess", "encryption.requireInfrastructureEncryption"),
    "azure-native:storage:BlobContainer": ("containerName", "publicAccess"),
    "azure-native:storage:BlobServiceProperties": (
        "blobServicesName", "isVersioningEnabled", "deleteRetentionPolicy.enabled", "deleteRetentionPolicy.days",
        "containerDeleteRetentionPolicy.days"),
    "azure-native:storage:ManagementPolicy": (
        "policy.rules[].name", "policy.rules[].definition.filters.prefixMatch",
        "policy.rules[].definition.actions.baseBlob.delete.daysAfterModificationGreaterThan",
        "policy.rules[].definition.actions.version.delete.daysAfterCreationGreaterThan"),
    "azure-native:authorization:RoleAssignment": ("roleDefinitionId", "scope", "principalType"),
    "azure-native:containerregistry:Registry": ("registryName", "location", "sku.name", "adminUserEnabled",
                                                "anonymousPullEnabled", "publicNetworkAccess",
                                                "policies.azureADAuthenticationAsArmPolicy.status"),
    "azure-native:managedidentity:UserAssignedIdentity": ("resourceName", "location"),
    "azure-native:operationalinsights:Workspace": ("workspaceName", "location", "retentionInDays", "sku.name"),
    "azure-native:app:ManagedEnvironment": ("environmentName", "location", "appLogsConfiguration.destination"),
    "azure-native:app:Job": (
        "jobName", "location", "identity.type", "configuration.triggerType",
        "configuration.scheduleTriggerConfig.cronExpression", "configuration.replicaTimeout",
        "configuration.replicaRetryLimit", "configuration.secrets[].name",
        "configuration.secrets[].keyVaultUrl", "configuration.secrets[].identity",
        "configuration.registries[].server", "configuration.registries[].identity",
        "template.containers[].image", "template.containers[].resources.cpu",
        "template.containers[].resources.memory"),
    "docker-build:index:Image": ("tags", "push", "context.location", "dockerfile.location", "platforms"),
    "pulumi-python:dynamic/hrconnector:Certificate": ("commonName", "validityDays", "renewBeforeDays"),
    "pulumi-python:dynamic/hrconnector:VaultCertificate": ("certificateName", "commonName", "validityDays",
                                                           "renewBeforeDays", "keyType", "keySize", "vaultUri",
                                                           "azureTenantId"),
}

#: Outputs that come from the certificate generated at deploy time: different on every evaluation, so shown as
#: a placeholder (a render is compared between pull-request revisions; it must not change by itself).
GENERATED_OUTPUTS = ("certificateThumbprint", "certificateExpiresOn")
GENERATED = "(generated at deploy)"
_ARM_PREFIX = re.compile(r"^/subscriptions/[^/]+/resourceGroups/([^/]+)/providers/")
#: A Key Vault secret version (32 hex digits) in a versioned secret URL: new with every certificate, so generated.
#: A key version in a versioned key ID (UPLOADER_KEY_ID, the keyId output): Key Vault makes it at deploy time.
_SECRET_VERSION = re.compile(r"(/(?:secrets|keys)/[^/]+)/[0-9a-f]{32}$")

#: Input keys never shown for types without a curated list (bulky or key material).
_SKIP_KEYS = {"value", "certificate", "pem", "privateKey", "private_key", "key", "password", "secret"}
_KEYISH = re.compile(r"-----BEGIN|PRIVATE KEY|^MII[A-Za-z0-9+/]{40,}")


def tidy(value: Any) -> Any:
    """Readable values: whole floats as ints (Pulumi hands numbers over as floats), ARM IDs from the group on."""
    if isinstance(value, dict):
        return {k: tidy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [tidy(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        value = _ARM_PREFIX.sub(r"\1/", value)
        value = _SECRET_VERSION.sub(rf"\1/{GENERATED}", value)
        root = str(REPO_ROOT)
        return "." + value[len(root):] if value.startswith(root) else value
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


def _get(data: Any, path: str) -> Any:
    """Follow a dotted path; `name[]` maps over a list. Missing → None."""
    head, _, rest = path.partition(".")
    many = head.endswith("[]")
    key = head[:-2] if many else head
    if not isinstance(data, dict) or key not in data:
        return None
    value = data[key]
    if many:
        if not isinstance(value, list):
            return None
        items = [_get(v, rest) if rest else v for v in value]
        return [i for i in items if i is not None] or None
    return _get(value, rest) if rest else value


def _env(resource: Resource) -> list[dict[str, Any]]:
    """The job's environment: names, non-secret values, and which come from a secret reference."""
    out = []
    for container in resource.inputs.get("template", {}).get("containers", []) or []:
        for var in container.get("env", []) or []:
            entry: dict[str, Any] = {"name": var.get("name")}
            if var.get("secretRef"):
                entry["secretRef"] = var["secretRef"]
            else:
                entry["value"] = var.get("value")
            out.append(entry)
    return out


def _settings(resource: Resource) -> dict[str, Any]:
    paths = REVIEW_PATHS.get(resource.type)
    if paths is None:
        settings = {k: v for k, v in sorted(resource.inputs.items())
                    if not isinstance(v, (dict, list)) and k not in _SKIP_KEYS and not k.startswith("__")}
    else:
        settings = {p.replace("[]", ""): v for p in paths if (v := _get(resource.inputs, p)) is not None}
    if resource.type == "azure-native:authorization:RoleAssignment" and "roleDefinitionId" in settings:
        guid = str(settings.pop("roleDefinitionId")).rsplit("/", 1)[-1].lower()
        settings = {"role": ROLE_NAMES.get(guid, guid), **settings}
    if resource.type == "azure-native:app:Job":
        settings["env"] = _env(resource)
    if resource.type == "azuread:index/application:Application":
        settings["passwords"] = len(resource.inputs.get("passwords") or [])
    if resource.type == "azure-native:keyvault:Secret" and isinstance(settings.get("properties.attributes.expires"),
                                                                      int | float):
        settings["properties.attributes.expires"] = GENERATED  # the certificate's expiry, made at deploy time
    shown: dict[str, Any] = scrub(tidy(settings))  # both keep a dict a dict
    return shown


#: What each side's provider creates (docs/configuration.md#two-sides-of-a-stack).
SIDES = {
    "pulumi:providers:azure-native": ("azure", "the resource group, vault, drop zone, job, its managed identity and "
                                               "every role assignment; the Key Vault certificate provider too"),
    "pulumi:providers:azuread": ("microsoft365", "the app registration, its service principal and certificate "
                                                 "credential"),
}


def sign_in(resources: list[Resource]) -> dict[str, dict[str, Any]]:
    """Which directory each side's provider signs in to, read from the provider resources the program declared."""
    out: dict[str, dict[str, Any]] = {}
    for r in resources:
        if r.type in SIDES:
            side, what = SIDES[r.type]
            out[side] = {"provider": r.type.rsplit(":", 1)[-1], "tenantId": r.inputs.get("tenantId"), "creates": what}
    return out


def render_stack(path: Path) -> dict[str, Any]:
    """The review report of one stack file: its settings, each declared resource, the outputs (masked)."""
    settings = load_stack_settings(path, REPO_ROOT)  # ConfigError naming the key, before any evaluation
    try:
        evaluation = evaluate(path, REPO_ROOT)
    except EvaluationError as exc:
        raise EvaluationFailed(str(exc)) from None
    resources = []
    for r in sorted(evaluation.resources, key=lambda r: (not r.type.startswith("pulumi:providers:"), r.type, r.name)):
        if not r.custom and not REVIEW_PATHS.get(r.type):
            continue  # component resources: structure only, nothing to review
        resources.append({"type": r.type, "name": r.name, "settings": _settings(r)})
    return {
        "stack": evaluation.stack,
        "namespace": NAMESPACE,
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
        "signIn": sign_in(evaluation.resources),
        "resourceCount": len(evaluation.deployed()),  # the number `check` prints (providers not counted)
        "providerCount": sum(r.type.startswith("pulumi:providers:") for r in evaluation.resources),
        "resources": resources,
        "outputs": scrub(tidy({k: GENERATED if k in GENERATED_OUTPUTS else v
                                for k, v in evaluation.outputs.items()})),
    }


def _fmt(value: Any) -> str:
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value, separators=(", ", ": "))
    return str(value)


def to_text(report: dict[str, Any]) -> str:
    """A plain-text rendering for a pull-request comment (one block per resource)."""
    if report.get("hosting"):
        lines = [f"hosting stack {report['stack']}: cloud family of {report['cloud']}, "
                 f"Azure {report['azureEnvironment']} / {report['location']} (shared by its hosted tenants)"]
    else:
        hosted = f", hosted by {report['hostedBy']}" if report.get("hostedBy") else ""
        lines = [
            f"stack {report['stack']}: cloud {report['cloud']}, tenant {report['tenantId']}, "
            f"Azure {report['azureEnvironment']} / {report['location']}, schedule \"{report['schedule']}\"{hosted}",
        ]
    lines.append(f"  tags (every taggable Azure resource): {_fmt(report['tags'])}")
    for side, label in (("azure", "Azure side"), ("microsoft365", "Microsoft 365 side")):
        if side in report.get("signIn", {}):
            s = report["signIn"][side]
            lines.append(f"  {label}: {s['provider']} signs in to tenant {s['tenantId']} ({s['creates']})")
    if report.get("hosting"):
        pass  # no tenant, no connectors
    elif report["connectors"]:
        for c in report["connectors"]:
            lines.append(f"  connector {c['name'] or '(unnamed)'}: job {c['jobId']}, files {c['files']}, "
                         f"scenarios {', '.join(c['scenarios'])}")
    else:
        lines.append("  connectors: none yet (first deploy, before the Purview connector exists)")
    providers = report.get("providerCount", 0)
    lines.append(f"{report['resourceCount']} resources (as `check` counts them), listed with the "
                 f"{providers} provider(s) they are created with:" if providers else
                 f"{report['resourceCount']} resources:")
    for r in report["resources"]:
        lines.append(f"- {r['type']}  {r['name']}")
        for key, value in r["settings"].items():
            if key == "env":
                for var in value:
                    shown = f"secretRef {var['secretRef']}" if "secretRef" in var else _fmt(var.get("value"))
                    lines.append(f"    env {var['name']} = {shown}")
            else:
                lines.append(f"    {key}: {_fmt(value)}")
    if report["outputs"]:
        lines.append("outputs:")
        for key, value in report["outputs"].items():
            lines.append(f"    {key}: {_fmt(value)}")
    return "\n".join(lines)
