"""`check --policy fedramp-high|il5|mcsb`: a stack's rendered resources against the Deny-capable members of an Azure
Policy initiative, with Microsoft's own definitions (vendored in provisioning/policies/, see its README).

Each member is evaluated as if the initiative's assignment set its effect to Deny: a resource its `if` matches
would be refused by `pulumi up` in such a subscription. The evaluator covers the parts of the policy rule language
those definitions use (https://learn.microsoft.com/azure/governance/policy/concepts/definition-structure-policy-rule):
`field`, `value`, `count` (with `where`, over a field array or a parameter array), `allOf`, `anyOf`, `not`, and the
conditions `equals`, `notEquals`, `in`, `notIn`, `exists`, `contains`, `notContains`, `like`, `notLike`, `less`,
`lessOrEquals`, `greater`, `greaterOrEquals` (logical operators and condition names case-insensitive, string
comparisons case-insensitive, as documented), and the template functions `parameters`, `field`, `current`,
`length`, `requestContext().apiVersion` (the installed SDK's API version for the type), `resourceGroup().managedBy`
(empty: the program's groups are not managed by another service) and `ipRangeContains`.

A policy is evaluated against the request `pulumi up` sends: a property the program does not set is absent (ARM
applies its default after the policy decision). Aliases are mapped to the inputs the program sets (ALIASES); an
alias not in the table is an error naming it, never a guess.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioning.config import PINNED_IMAGE_FORM, REGISTRY_CMK_POLICY, REGISTRY_CMK_WHY
from provisioning.tools.offline import Evaluation, Resource

POLICIES = Path(__file__).resolve().parent.parent / "policies"
INITIATIVE_NAMES = ("fedramp-high", "il5", "mcsb")

#: Pulumi type -> the ARM type a policy sees (the secret as Key Vault's data-plane object, for the
#: `Microsoft.KeyVault.Data` mode definitions).
ARM_TYPES = {
    "azure-native:keyvault:Vault": "Microsoft.KeyVault/vaults",
    "azure-native:keyvault:Secret": "Microsoft.KeyVault.Data/vaults/secrets",
    "azure-native:storage:StorageAccount": "Microsoft.Storage/storageAccounts",
    "azure-native:containerregistry:Registry": "Microsoft.ContainerRegistry/registries",
    "azure-native:operationalinsights:Workspace": "Microsoft.OperationalInsights/workspaces",
    "azure-native:app:ManagedEnvironment": "Microsoft.App/managedEnvironments",
    "azure-native:app:Job": "Microsoft.App/jobs",
}
#: Policy alias -> the program's input path (dotted; `[*]` an array) on the resource of the alias's type. The ARM
#: path is `properties.<rest of the alias>`; azure-native flattens `properties` except on Key Vault's resources and
#: renames a few: the storage account's `networkAcls` is `networkRuleSet`, `supportsHttpsTrafficOnly` is
#: `enableHttpsTrafficOnly` (pulumi_azure_native.storage.StorageAccount), a secret's `expiresOn` is
#: `properties.attributes.expires` (keyvault.SecretAttributesArgs).
ALIASES = {
    "Microsoft.KeyVault/vaults/createMode": "properties.createMode",
    "Microsoft.KeyVault/vaults/enablePurgeProtection": "properties.enablePurgeProtection",
    "Microsoft.KeyVault/vaults/enableRbacAuthorization": "properties.enableRbacAuthorization",
    "Microsoft.KeyVault/vaults/enableSoftDelete": "properties.enableSoftDelete",
    "Microsoft.KeyVault/vaults/networkAcls.defaultAction": "properties.networkAcls.defaultAction",
    "Microsoft.KeyVault/vaults/networkAcls.ipRules[*]": "properties.networkAcls.ipRules[*]",
    "Microsoft.KeyVault/vaults/networkAcls.ipRules[*].value": "properties.networkAcls.ipRules[*].value",
    "Microsoft.KeyVault/vaults/privateEndpointConnections[*]": "properties.privateEndpointConnections[*]",
    "Microsoft.KeyVault/vaults/privateEndpointConnections[*].privateLinkServiceConnectionState.status":
        "properties.privateEndpointConnections[*].privateLinkServiceConnectionState.status",
    "Microsoft.KeyVault/vaults/publicNetworkAccess": "properties.publicNetworkAccess",
    "Microsoft.KeyVault.Data/vaults/secrets/attributes.expiresOn": "properties.attributes.expires",
    "Microsoft.Storage/storageAccounts/allowBlobPublicAccess": "allowBlobPublicAccess",
    "Microsoft.Storage/storageAccounts/allowSharedKeyAccess": "allowSharedKeyAccess",
    "Microsoft.Storage/storageAccounts/encryption.requireInfrastructureEncryption":
        "encryption.requireInfrastructureEncryption",
    "Microsoft.Storage/storageAccounts/networkAcls.defaultAction": "networkRuleSet.defaultAction",
    "Microsoft.Storage/storageAccounts/networkAcls.ipRules[*]": "networkRuleSet.ipRules[*]",
    "Microsoft.Storage/storageAccounts/supportsHttpsTrafficOnly": "enableHttpsTrafficOnly",
    "Microsoft.ContainerRegistry/registries/encryption.status": "encryption.status",
    "Microsoft.ContainerRegistry/registries/networkRuleSet.defaultAction": "networkRuleSet.defaultAction",
    "Microsoft.ContainerRegistry/registries/publicNetworkAccess": "publicNetworkAccess",
    "Microsoft.OperationalInsights/workspaces/forceCmkForQuery": "forceCmkForQuery",
}
_ABSENT = object()
#: What clears a member that no setting of the program's resource can: said at the end of its DENY line.
FIXES = {
    REGISTRY_CMK_POLICY: (f"fix: set hr-connector:image to a prebuilt image pinned by digest ({PINNED_IMAGE_FORM}, "
                          "docs/releases.md) so that the stack owns no registry (a hosting stack too; its hosted "
                          f"tenants then set image as well), since {REGISTRY_CMK_WHY}"),
}


class PolicyError(ValueError):
    """A definition uses something the evaluator does not know (an alias, an operator, a function): named."""


@dataclass(frozen=True)
class Violation:
    """A resource a member's rule matches: the request `pulumi up` sends would be denied."""

    policy_id: str
    display_name: str
    resource_type: str
    resource_name: str
    settings: tuple[tuple[str, Any], ...]  # (alias, the value the program sends, or "(not set)")

    def line(self, stack: str) -> str:
        shown = ", ".join(f"{alias.rsplit('/', 1)[-1]} = {_show(value)}" for alias, value in self.settings)
        fix = f" -- {FIXES[self.policy_id]}" if self.policy_id in FIXES else ""
        return (f"DENY  {stack}: {self.display_name} (policy {self.policy_id}): {self.resource_type} "
                f"{self.resource_name}{': ' + shown if shown else ''}{fix}")


def _show(value: Any) -> str:
    return "(not set)" if value is _ABSENT or value is None else json.dumps(value, default=str)


@dataclass
class Member:
    policy_id: str
    display_name: str
    rule: dict[str, Any]
    parameters: dict[str, Any]  # the definition's defaults overridden by what the initiative passes
    mode: str


def load_initiative(name: str) -> tuple[dict[str, Any], list[Member]]:
    """The initiative's summary (id, displayName, file) and its vendored Deny-capable members."""
    if name not in INITIATIVE_NAMES:
        raise PolicyError(f"unknown initiative {name!r}: one of {', '.join(INITIATIVE_NAMES)}")
    summary = json.loads((POLICIES / "initiatives.json").read_text(encoding="utf-8"))
    initiative = summary["initiatives"][name]
    members = []
    for entry in initiative["members"]:
        definition = json.loads((POLICIES / "definitions" / entry["file"]).read_text(encoding="utf-8-sig"))
        props = definition["properties"]
        parameters = {k: v.get("defaultValue") for k, v in (props.get("parameters") or {}).items()}
        parameters.update(entry["parameters"])
        members.append(Member(entry["id"], props["displayName"], props["policyRule"]["if"], parameters,
                              props.get("mode", "Indexed")))
    return {k: initiative[k] for k in ("id", "displayName", "file")} | {"commit": summary["commit"]}, members


def api_version(type_token: str) -> str:
    """The Azure REST API version the installed pulumi-azure-native uses for a type (its class docs say it)."""
    _, module, name = type_token.split(":")
    cls = getattr(importlib.import_module(f"pulumi_azure_native.{module}"), name)
    match = re.search(r"Uses Azure REST API version ([0-9a-z-]+)\.", inspect.getsource(cls))
    return match[1] if match else ""


# -- the document a policy sees ---------------------------------------------------------------------------------

@dataclass
class Document:
    resource: Resource
    arm_type: str
    api_version: str
    read: list[tuple[str, Any]] = field(default_factory=list)  # aliases the rule read, in order

    @property
    def name(self) -> str:
        """The Azure name the program sets, or the logical name when Pulumi names the resource itself."""
        name = str(self.resource.state.get("name") or "")
        return name if name and not name.endswith("-mock") else f"{self.resource.name} (auto-named)"

    def field(self, alias: str) -> Any:
        """The value of `type`, `name`, `id`, `location`, `tags`, or an alias (a list for `[*]`; _ABSENT if unset)."""
        key = alias.lower()
        if key == "type":
            return self.arm_type
        if key in ("name", "fullname"):
            return self.name
        if key == "id":
            return self.resource.id
        if key == "location":
            return self.resource.inputs.get("location", _ABSENT)
        if key == "tags":
            return self.resource.inputs.get("tags", _ABSENT)
        path = next((p for a, p in ALIASES.items() if a.lower() == key), None)
        if path is None:
            raise PolicyError(f"alias {alias} is not mapped to the program's inputs (provisioning/tools/policy.py "
                              "ALIASES)")
        if not key.startswith(self.arm_type.lower() + "/"):
            return _ABSENT  # another type's alias: not on this resource
        value = _walk(self.resource.inputs, path)
        if not any(a == alias for a, _ in self.read):
            self.read.append((alias, value))
        return value


def _walk(data: Any, path: str) -> Any:
    """Follow a dotted path; `x[*]` maps over a list (a missing list is an empty one)."""
    head, _, rest = path.partition(".")
    many = head.endswith("[*]")
    key = head[:-3] if many else head
    value = data.get(key, _ABSENT) if isinstance(data, dict) else _ABSENT
    if many:
        items = value if isinstance(value, list) else []
        return [(_walk(item, rest) if rest else item) for item in items]
    if not rest or value is _ABSENT:
        return value
    return _walk(value, rest)


def documents(evaluation: Evaluation) -> list[Document]:
    """The stack's resources a policy of the vendored set can apply to."""
    return [Document(r, ARM_TYPES[r.type], api_version(r.type)) for r in evaluation.resources
            if r.custom and r.type in ARM_TYPES]


# -- the rule language ---------------------------------------------------------------------------------------------

_CONDITIONS = ("equals", "notequals", "in", "notin", "exists", "contains", "notcontains", "like", "notlike",
               "less", "lessorequals", "greater", "greaterorequals", "containskey", "notcontainskey")


class _Context:
    def __init__(self, doc: Document, parameters: dict[str, Any]) -> None:
        self.doc = doc
        self.parameters = {k.lower(): v for k, v in parameters.items()}
        self.current: dict[str, Any] = {}  # count's `name` or field array alias -> the element being counted


def _norm(value: Any) -> Any:
    """Comparison form: booleans as "true"/"false", strings lower-cased (policy comparisons ignore case)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return value.lower()
    return value


def _compare(op: str, actual: Any, expected: Any) -> bool:
    absent = actual is _ABSENT or actual is None
    if op == "exists":
        return (not absent) == (_norm(expected) in (True, "true"))
    if op == "equals":
        return not absent and _norm(actual) == _norm(expected)
    if op == "notequals":
        return absent or _norm(actual) != _norm(expected)
    if op in ("in", "notin"):
        inside = not absent and _norm(actual) in [_norm(e) for e in (expected or [])]
        return inside if op == "in" else not inside
    if op in ("contains", "notcontains"):
        if isinstance(actual, list):
            found = _norm(expected) in [_norm(a) for a in actual]
        else:
            found = not absent and str(_norm(expected)) in str(_norm(actual))
        return found if op == "contains" else not found
    if op in ("like", "notlike"):
        matched = not absent and fnmatch.fnmatchcase(str(_norm(actual)), str(_norm(expected)))
        return matched if op == "like" else not matched
    if op in ("containskey", "notcontainskey"):
        has = isinstance(actual, dict) and str(expected).lower() in {k.lower() for k in actual}
        return has if op == "containskey" else not has
    if absent:
        return False
    left, right = _norm(actual), _norm(expected)
    try:
        if isinstance(left, str) != isinstance(right, str):
            left, right = float(left), float(right)
    except (TypeError, ValueError):
        return False
    outcomes: dict[str, bool] = {"less": left < right, "lessorequals": left <= right, "greater": left > right,
                                 "greaterorequals": left >= right}
    return outcomes[op]


def _template(text: Any, ctx: _Context) -> Any:
    """A value, or the result of a template expression `[...]` in it."""
    if not (isinstance(text, str) and text.startswith("[") and text.endswith("]") and not text.startswith("[[")):
        return text
    return _Expr(text[1:-1], ctx).parse()


class _Expr:
    """Template expressions of the vendored definitions: functions of string literals and of each other."""

    _TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<p>[(),.]))")

    def __init__(self, text: str, ctx: _Context) -> None:
        self.tokens = [(m.lastgroup, m.group(m.lastgroup or "")) for m in self._TOKEN.finditer(text)]
        if "".join(v for _, v in self.tokens).replace(" ", "") != text.replace(" ", ""):
            raise PolicyError(f"template expression [{text}] is not in the evaluator's subset")
        self.pos, self.ctx, self.text = 0, ctx, text

    def parse(self) -> Any:
        value = self._value()
        if self.pos != len(self.tokens):
            raise PolicyError(f"template expression [{self.text}] is not in the evaluator's subset")
        return value

    def _take(self, expected: str | None = None) -> str:
        kind, value = self.tokens[self.pos]
        if expected is not None and value != expected:
            raise PolicyError(f"template expression [{self.text}]: expected {expected}")
        self.pos += 1
        return value

    def _value(self) -> Any:
        kind, value = self.tokens[self.pos]
        if kind == "str":
            self.pos += 1
            return value[1:-1].replace("''", "'")
        if kind == "num":
            self.pos += 1
            return int(value)
        name = self._take().lower()
        self._take("(")
        args: list[Any] = []
        while self.tokens[self.pos][1] != ")":
            args.append(self._value())
            if self.tokens[self.pos][1] == ",":
                self._take(",")
        self._take(")")
        result = self._call(name, args)
        while self.pos < len(self.tokens) and self.tokens[self.pos][1] == ".":
            self._take(".")
            prop = self._take().lower()
            result = {k.lower(): v for k, v in result.items()}.get(prop, "") if isinstance(result, dict) else ""
        return result

    def _call(self, name: str, args: list[Any]) -> Any:
        functions: dict[str, Callable[..., Any]] = {
            "parameters": lambda key: self.ctx.parameters.get(str(key).lower()),
            "field": lambda alias: self.ctx.doc.field(str(alias)),
            "current": lambda key: self.ctx.current.get(str(key).lower(), _ABSENT),
            "length": lambda v: len(v) if isinstance(v, (list, dict, str)) else 0,
            "requestcontext": lambda: {"apiVersion": self.ctx.doc.api_version},
            "resourcegroup": lambda: {"managedBy": ""},
            "iprangecontains": _ip_range_contains,
        }
        if name not in functions:
            raise PolicyError(f"template function {name}() is not in the evaluator's subset")
        return functions[name](*args)


def _ip_range_contains(outer: Any, inner: Any) -> bool:
    try:
        small, big = ipaddress.ip_network(str(inner), strict=False), ipaddress.ip_network(str(outer), strict=False)
    except ValueError:
        return False
    if isinstance(small, ipaddress.IPv4Network) and isinstance(big, ipaddress.IPv4Network):
        return small.subnet_of(big)
    if isinstance(small, ipaddress.IPv6Network) and isinstance(big, ipaddress.IPv6Network):
        return small.subnet_of(big)
    return False


def _holds(cond: dict[str, Any], ctx: _Context) -> bool:
    c = {k.lower(): v for k, v in cond.items()}
    if "allof" in c:
        return all(_holds(x, ctx) for x in c["allof"])
    if "anyof" in c:
        return any(_holds(x, ctx) for x in c["anyof"])
    if "not" in c:
        return not _holds(c["not"], ctx)
    ops = [k for k in c if k in _CONDITIONS]
    if len(ops) != 1:
        raise PolicyError(f"condition {json.dumps(cond)[:120]} is not in the evaluator's subset")
    op = ops[0]
    expected = _template(c[op], ctx)
    if "count" in c:
        return _compare(op, _count(c["count"], ctx), expected)
    if "field" in c:
        alias = str(c["field"])
        if alias.lower() in ctx.current:  # inside a count: the element being counted
            return _compare(op, ctx.current[alias.lower()], expected)
        actual = ctx.doc.field(alias)
        if "[*]" in alias:  # outside count: every element must meet it (and an empty array meets it)
            return all(_compare(op, item, expected) for item in actual) if isinstance(actual, list) else \
                _compare(op, _ABSENT, expected)
        return _compare(op, actual, expected)
    if "value" in c:
        return _compare(op, _template(c["value"], ctx), expected)
    raise PolicyError(f"condition {json.dumps(cond)[:120]} has no field, value or count")


def _count(spec: dict[str, Any], ctx: _Context) -> int:
    s = {k.lower(): v for k, v in spec.items()}
    if "field" in s:
        alias = str(s["field"])
        items = ctx.doc.field(alias)
        items = items if isinstance(items, list) else []
        key = alias.lower()
        sub_prefix = key + "."
    elif "value" in s:
        items = _template(s["value"], ctx)
        items = items if isinstance(items, list) else []
        key = str(s.get("name", "")).lower()
        sub_prefix = ""
    else:
        raise PolicyError(f"count {json.dumps(spec)[:120]} has no field or value")
    where = s.get("where")
    total = 0
    for item in items:
        saved = dict(ctx.current)
        ctx.current[key] = item
        if sub_prefix and isinstance(item, dict):  # field('a[*].b') and current('a[*].b') inside the where
            for alias, path in ALIASES.items():
                if alias.lower().startswith(sub_prefix):
                    rel = path.split("[*].", 1)[1] if "[*]." in path else ""
                    ctx.current[alias.lower()] = _walk(item, rel) if rel else item
        try:
            total += where is None or _holds(where, ctx)
        finally:
            ctx.current = saved
    return total


# -- the check ---------------------------------------------------------------------------------------------------

def violations(evaluation: Evaluation, members: list[Member]) -> list[Violation]:
    """Every (member, resource) pair whose rule matches, with the settings the rule read on that resource."""
    found = []
    for doc in documents(evaluation):
        for member in members:
            doc.read = []
            if _holds(member.rule, _Context(doc, member.parameters)):
                settings = tuple((a, v) for a, v in doc.read if a.lower() not in ("type", "name", "id"))
                found.append(Violation(member.policy_id, member.display_name, doc.arm_type, doc.name, settings))
    return found
