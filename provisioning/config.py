"""The stack config (namespace `hr-connector:`, docs/configuration.md) read and validated into typed settings.

`load_settings` is a pure function from a dict of config (key -> value) so it can be tested and used offline
without Pulumi; `settings_from_pulumi` is the thin adapter the program calls. Every problem is reported, not just
the first: ConfigError (ConfigProblems when there are several) names each full key
(`hr-connector:connectors[0].scenarios[1].columns.userPrincipalName`) and the rule broken, one problem per key.
Values may be native (int, list, dict) or what the Pulumi CLI hands a program: strings, with objects and lists as
JSON text. `config_warnings` says what a valid config may still get wrong (`check` prints it as WARN lines).
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, TypeVar

from provisioning import regions
from provisioning.cron import CronError, validate_cron
from uploader.clouds import AZURE_ENVIRONMENTS, CLOUDS, CREDENTIALS, FEDERATED, PRIVATE_DNS_ZONES, Cloud
from uploader.model.globs import MAX_OVERLAP_STATES, GlobsTooIntricate, OverlapBudget, glob_problem, overlap
from uploader.model.mapping import (
    GUID_RE,
    MAX_CONNECTORS,
    ConnectorMapping,
    MappingError,
    check_connector_count,
    parse_connector,
)

T = TypeVar("T")

NAMESPACE = "hr-connector"

DEFAULT_SCHEDULE = "0 2 * * *"
DEFAULT_VALIDITY_DAYS = 365
DEFAULT_RENEW_BEFORE_DAYS = 30
DEFAULT_PROCESSED_DAYS = 30
DEFAULT_REJECTED_DAYS = 90

#: Config namespaces a stack file may use besides the project's: the providers the program creates, and Pulumi's
#: own (`pulumi:tags`, ...). Any other namespace is read by nothing, so it is reported (a typo like `hr-conector:`).
OTHER_NAMESPACES = ("azure-native", "azuread", "docker-build", "pulumi")

#: The packages whose providers the program creates explicitly (components/providers.py), from hr-connector: keys.
#: Pulumi configures only a *default* provider from the stack's `<package>:` keys ("inputs sourced from the
#: stack's configuration values for the relevant provider package":
#: https://github.com/pulumi/pulumi/blob/master/docs/architecture/providers/default.md); an explicit provider takes
#: its constructor's arguments. So `pulumi up` would ignore `azure-native:location` in a stack file without a word:
#: the program and the offline tools refuse such keys instead (provider_key_problems), naming the key to use.
EXPLICIT_PROVIDER_PACKAGES = ("azure-native", "azuread")
#: Provider keys with an hr-connector: key doing the same job.
PROVIDER_KEY_USE = {
    "azure-native:location": "location",
    "azure-native:subscriptionId": "subscriptionId",
    "azure-native:environment": "azureEnvironment",
    "azure-native:tenantId": "azureTenantId",
    "azuread:tenantId": "tenantId",
    "azuread:environment": "cloud",
}

#: Every key of the namespace (docs/configuration.md). Anything else is an error naming it.
KEYS = (
    "cloud", "tenantId", "azureEnvironment", "location", "schedule", "connectors", "certificate",
    "image", "owners", "dropZone", "alertEmails", "subscriptionId", "tags", "hosting", "hostedBy",
    "credential",
    "azureTenantId",
    "network", "egressRouteTableId", "addressSpace", "runnerNetwork",
)
#: Keys a hosting stack must leave out: it has no Microsoft 365 tenant, no Entra app and no connector.
TENANT_ONLY_KEYS = ("tenantId", "connectors", "owners", "hostedBy")
#: A stack name (Pulumi's rule), alone or as `org/project/stack`.
_HOSTED_BY_RE = re.compile(r"^(?:[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/)?[A-Za-z0-9_.-]{1,100}$")
_CERTIFICATE_KEYS = ("validityDays", "renewBeforeDays", "protection")
#: Where the certificate's private key lives (docs/configuration.md, docs/security.md):
#: vault = made by Key Vault, never exportable; hsm = the same with an HSM-backed key (RSA-HSM) in a Premium vault;
#: exportable = made by the program, kept (encrypted) in Pulumi state and as a Key Vault secret (the default when the
#: key is absent, so no existing stack changes).
PROTECTIONS = ("vault", "hsm", "exportable")
DEFAULT_PROTECTION = "exportable"
#: What Key Vault's validity_months counts: an average Gregorian month, in days.
_DAYS_PER_MONTH = 365.25 / 12
#: How far validityDays may sit from a whole number of months and still be honoured (months run 28 to 31 days).
_MONTH_TOLERANCE_DAYS = 3
_DROPZONE_KEYS = ("processedDays", "rejectedDays", "allowedIpRanges")
#: `network`: public (the default: every resource has its public endpoint) or private (docs/configuration.md#network:
#: a virtual network, an internal Container Apps environment, private endpoints; provisioning/components/network.py).
NETWORKS = ("public", "private")
DEFAULT_NETWORK = "public"
PRIVATE = "private"
#: A route table's ARM ID (`egressRouteTableId`: the customer's firewall carries the egress, not a NAT gateway).
_ROUTE_TABLE_RE = re.compile(r"^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[^/]+/providers/"
                             r"Microsoft\.Network/routeTables/[^/]+$", re.IGNORECASE)

#: `addressSpace`: the stack's VNet (network.py), one IPv4 range from which both subnets are computed (subnet_prefixes):
#: the jobs subnet is its first /24, the endpoints subnet the first /26 of the next /24, so it is a /23 or larger.
DEFAULT_ADDRESS_SPACE = "10.60.0.0/23"
MAX_ADDRESS_PREFIX = 23
#: Where `new-stack` picks a private stack's addressSpace (the first free /23; 512 stacks), the default first: a deploy
#: network that private stacks peer with stays outside it (deploynetwork.py).
STACK_ADDRESS_POOL = "10.60.0.0/14"
#: RFC 1918's private ranges: a VNet that is peered to a hub (runnerNetwork) must use addresses that route privately.
PRIVATE_RANGES = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
#: `runnerNetwork` (the platform's output of that name, docs/configuration.md#the-deploy-runners-network-runnernetwork):
#: exactly these keys, and under privateDnsZoneIds exactly the private endpoint group IDs of PRIVATE_DNS_ZONES.
RUNNER_NETWORK_KEYS = ("virtualNetworkId", "addressSpace", "privateDnsZoneIds")
_ARM_ID = r"^/subscriptions/(?P<subscription>[0-9a-fA-F-]{36})/resourceGroups/(?P<group>[^/]+)/providers/"
_VNET_ID_RE = re.compile(_ARM_ID + r"Microsoft\.Network/virtualNetworks/(?P<name>[^/]+)$", re.IGNORECASE)
_ZONE_ID_RE = re.compile(_ARM_ID + r"Microsoft\.Network/privateDnsZones/(?P<name>[^/]+)$", re.IGNORECASE)

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
#: An image reference pinned by digest, REGISTRY/REPOSITORY[:TAG]@sha256:<64 hex>, in the grammar of the OCI
#: distribution reference (https://github.com/distribution/reference/blob/main/reference.go: a domain of
#: alphanumeric components joined by dots with an optional port, lower-case path components joined by `.`, `_`,
#: `__` or dashes, a tag of at most 128 word characters, dots and dashes). The registry host must hold a dot: a
#: name without one is Docker Hub's, which the job never pulls from.
_PINNED_IMAGE_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?))+(?::[0-9]+)?"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?@sha256:[0-9a-f]{64}$")
#: The form `image` takes pinned, for messages and docs.
PINNED_IMAGE_FORM = "REGISTRY/REPOSITORY@sha256:<64 hex digits>"
#: Azure Policy "Container registries should be encrypted with a customer-managed key", a Deny-capable member of
#: FedRAMP High, IL5 and MCSB (provisioning/policies/), and why the program does not meet it but runs a prebuilt
#: image: said the same way by `check`'s warning, `check --policy`'s violation and new-stack's refusal.
REGISTRY_CMK_POLICY = "5b9159ae-1701-4a6f-9a7a-aa9c8ddd0580"
REGISTRY_CMK_WHY = (
    "Azure Policy 5b9159ae (FedRAMP High, IL5) denies a registry without a customer-managed key, and Azure Container "
    "Registry takes that key only when it is created, through a user-assigned identity that a vault refusing public "
    "traffic does not let in (docs/configuration.md#a-private-stack-runs-a-prebuilt-image)")
_LOCATION_RE = re.compile(r"^[a-z][a-z0-9]+$")
_MAX_VALIDITY_DAYS = 3650

#: The tag every taggable Azure resource gets, whatever the stack says.
FIXED_TAGS = {"managed-by": "hr-connector"}
# Azure's tag limits: 50 tags a resource; names up to 128 characters for storage accounts (512 elsewhere), values
# up to 256; names may not contain < > % & \ ? /.
# https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/tag-resources#limitations
_MAX_TAGS = 50
_MAX_TAG_NAME = 128
_MAX_TAG_VALUE = 256
_TAG_NAME_FORBIDDEN = re.compile(r"[<>%&\\?/]")
#: A connector name is plain text: it appears in the job's logs, alerts, `render` and pull-request comments, so it
#: holds no markup, spaces, quotes or control characters (docs/configuration.md).
CONNECTOR_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CONNECTOR_NAME_RULE = ("a connector name is 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit "
                       "(plain text: no spaces, markup or control characters)")


class ConfigError(MappingError):
    """A stack config value that breaks a rule; `key` is the full key path (`hr-connector:...`).

    The same (key, rule) error as the mapping model's, so connector mappings report the same way.
    """


@dataclass(frozen=True)
class CertificateSettings:
    """The app's certificate credential: how long it is valid, and when the next `up` renews it."""

    validity_days: int = DEFAULT_VALIDITY_DAYS
    renew_before_days: int = DEFAULT_RENEW_BEFORE_DAYS
    protection: str = DEFAULT_PROTECTION
    protection_set: bool = False  # the stack file names `protection` (else the default applies, with a warning)

    @property
    def in_vault(self) -> bool:
        """True when Key Vault makes and keeps the key (vault or hsm): Pulumi state and the job hold no key."""
        return self.protection in ("vault", "hsm")


@dataclass(frozen=True)
class DropZoneSettings:
    """How long processed/ and rejected/ files are kept in the drop zone."""

    processed_days: int = DEFAULT_PROCESSED_DAYS
    rejected_days: int = DEFAULT_REJECTED_DAYS
    #: With network: private, the public IPv4 addresses or CIDR ranges the HR system writes from (the account's IP
    #: rules); empty = its private endpoint only (the account refuses all public traffic).
    allowed_ip_ranges: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArmId:
    """The parts of a resource's ARM ID this program needs: where it is and its name."""

    id: str
    subscription_id: str
    resource_group: str
    name: str


@dataclass(frozen=True)
class RunnerNetwork:
    """The deploy runner's hub network (the platform program's `runnerNetwork` output): the VNet a private stack
    peers with, its address ranges, and the central private DNS zones (group ID -> zone) the stack registers its
    private endpoints in and links to its own VNet instead of creating zones of its own (network.py)."""

    virtual_network: ArmId
    address_space: tuple[str, ...]
    zones: Mapping[str, ArmId]  # vault | blob | registry -> the hub's private DNS zone

    def to_json(self) -> dict[str, Any]:
        """The config value's shape (what `new-stack --runner-network-from` writes)."""
        return {"virtualNetworkId": self.virtual_network.id,
                "addressSpace": self.address_space[0] if len(self.address_space) == 1 else list(self.address_space),
                "privateDnsZoneIds": {group: zone.id for group, zone in self.zones.items()}}


def subnet_prefixes(address_space: str) -> tuple[str, str]:
    """(jobs subnet, endpoints subnet) of an `addressSpace` of MAX_ADDRESS_PREFIX or larger: the first /24 (a
    workload-profiles environment needs a /27 at least) and the first /26 of the second /24."""
    jobs, endpoints = islice(ipaddress.IPv4Network(address_space).subnets(new_prefix=24), 2)
    return str(jobs), str(next(endpoints.subnets(new_prefix=26)))


def overlapping(one: Iterable[str], other: Iterable[str]) -> tuple[str, str] | None:
    """The first pair of ranges (one's, other's) that overlap, or None."""
    for a in one:
        for b in other:
            if ipaddress.IPv4Network(a).overlaps(ipaddress.IPv4Network(b)):
                return a, b
    return None


@dataclass(frozen=True)
class Settings:
    """A validated stack config."""

    cloud: Cloud
    tenant_id: str
    azure_environment: str  # public | usgovernment
    location: str
    schedule: str = DEFAULT_SCHEDULE
    connectors: tuple[ConnectorMapping, ...] = ()
    certificate: CertificateSettings = field(default_factory=CertificateSettings)
    drop_zone: DropZoneSettings = field(default_factory=DropZoneSettings)
    image: str | None = None
    owners: tuple[str, ...] = ()
    alert_emails: tuple[str, ...] = ()
    subscription_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=lambda: dict(FIXED_TAGS))
    hosting: bool = False  # a hosting stack: shared environment, workspace, registry unless `image`, action group
    hosted_by: str | None = None  # the hosting stack whose environment this tenant's job runs in
    credential: str = "certificate"  # certificate | federated (the job's managed identity; no key, nothing to renew)

    @property
    def federated(self) -> bool:
        """The app trusts the job's user-assigned identity: no certificate, no Key Vault key, no secret."""
        return self.credential == FEDERATED
    #: The Azure side's directory: the Entra tenant that manages the subscription (azure-native, the Key Vault
    #: certificate provider and every role assignment sign in there). A self-contained stack: `azureTenantId`, else
    #: `tenantId`; a hosting stack: `azureTenantId` (required); a hosted tenant: `azureTenantId` if set (it must equal
    #: its hosting stack's), else None = its hosting stack's, read from that stack's `azureTenantId` output.
    azure_tenant_id: str | None = None
    #: public | private (docs/configuration.md#network). A hosting stack owns the network; its hosted tenants set the
    #: same value and put their vault's and drop zone's private endpoints in it.
    network: str = DEFAULT_NETWORK
    #: With network: private, the route table (ARM ID) that sends the job's egress through the customer's firewall;
    #: None = a NAT gateway of the stack's own.
    egress_route_table_id: str | None = None
    #: With network: private (not in a hosted tenant), the stack's VNet range; both subnets come from it.
    address_space: str = DEFAULT_ADDRESS_SPACE
    #: With network: private, the deploy runner's hub network to peer with and whose DNS zones to use; None = the
    #: stack's own zones, and the deployer brings a runner that reaches the VNet.
    runner_network: RunnerNetwork | None = None

    @property
    def subnets(self) -> tuple[str, str]:
        """(jobs subnet, endpoints subnet) within address_space (subnet_prefixes)."""
        return subnet_prefixes(self.address_space)

    @property
    def private(self) -> bool:
        """network: private: no public endpoint on the vault, drop zone or registry; the job runs in a VNet."""
        return self.network == PRIVATE

    @property
    def builds_image(self) -> bool:
        """The program builds the uploader image into a registry of the stack's own: a hosting stack or a
        self-contained tenant without `image`; a hosted tenant runs its hosting stack's image or its own `image` (it
        must set one when its hosting stack sets `image` and so owns no registry: hosting.py `mismatches`)."""
        return self.image is None and self.hosted_by is None

    @property
    def hosted_by_stack(self) -> str | None:
        """The hosting stack's own name (the last part of `org/project/stack`)."""
        return self.hosted_by.rsplit("/", 1)[-1] if self.hosted_by else None

    @property
    def government(self) -> bool:
        """Hosted in Azure Government."""
        return self.azure_environment == "usgovernment"

    def connectors_json(self) -> str:
        """UPLOADER_CONNECTORS: the mappings as a JSON list (docs/mapping.md's shape)."""
        return json.dumps([c.to_json() for c in self.connectors], separators=(",", ":"))


def _k(path: str) -> str:
    return f"{NAMESPACE}:{path}"


def _strip_namespace(config: Mapping[str, Any]) -> dict[str, Any]:
    """Keep this namespace's keys (bare or `hr-connector:`-prefixed); other namespaces are not ours."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if ":" in key:
            ns, _, name = key.partition(":")
            if ns != NAMESPACE:
                continue
            key = name
        out[key] = value
    return out


def _unknown(key: str, known: tuple[str, ...], path: str) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f" (known keys: {', '.join(known)})"
    return ConfigError(_k(path), f"unknown key{hint}")


def _structured(value: Any, path: str, kind: type[T], what: str) -> T:
    """Objects and lists arrive from the Pulumi CLI as JSON text."""
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return kind()
        try:
            value = json.loads(text)
        except (json.JSONDecodeError, RecursionError):  # RecursionError: nested past the parser's limit
            raise ConfigError(_k(path), f"must be {what}") from None
    if not isinstance(value, kind):
        raise ConfigError(_k(path), f"must be {what}")
    return value


def _optional_str(value: Any, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(_k(path), "must be a string")
    return value.strip() or None


def _guid(value: Any, path: str, what: str) -> str:
    if not isinstance(value, str) or not GUID_RE.match(value.strip()):
        raise ConfigError(_k(path), f"must be a GUID ({what}), e.g. 00000000-0000-0000-0000-000000000000")
    return value.strip().lower()


def _int(value: Any, path: str, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise ConfigError(_k(path), "must be a whole number of days")
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        value = int(value.strip())
    if not isinstance(value, int):
        raise ConfigError(_k(path), "must be a whole number of days")
    if not low <= value <= high:
        raise ConfigError(_k(path), f"must be between {low} and {high} days")
    return value


def _certificate(value: Any) -> CertificateSettings:
    obj = _structured(value, "certificate", dict, "an object {validityDays, renewBeforeDays, protection}")
    for key in obj:
        if key not in _CERTIFICATE_KEYS:
            raise _unknown(key, _CERTIFICATE_KEYS, f"certificate.{key}")
    validity = _int(obj.get("validityDays", DEFAULT_VALIDITY_DAYS), "certificate.validityDays", 2, _MAX_VALIDITY_DAYS)
    renew = _int(obj.get("renewBeforeDays", DEFAULT_RENEW_BEFORE_DAYS), "certificate.renewBeforeDays", 1, validity)
    if renew >= validity:
        raise ConfigError(
            _k("certificate.renewBeforeDays"),
            f"must be less than certificate.validityDays ({validity}), or every `up` would renew the certificate",
        )
    protection = obj.get("protection", DEFAULT_PROTECTION)
    if not isinstance(protection, str) or protection.strip().lower() not in PROTECTIONS:
        raise ConfigError(_k("certificate.protection"), f"must be one of {', '.join(PROTECTIONS)}")
    protection = protection.strip().lower()
    if protection != "exportable" and validity_months(validity) is None:
        months = max(1, int(validity / _DAYS_PER_MONTH))
        raise ConfigError(
            _k("certificate.validityDays"),
            f"Key Vault counts validity in whole months, and {validity} days is not one (within "
            f"{_MONTH_TOLERANCE_DAYS} days): use {round(months * _DAYS_PER_MONTH)} ({months} months) or "
            f"{round((months + 1) * _DAYS_PER_MONTH)} ({months + 1} months)",
        )
    return CertificateSettings(validity, renew, protection, "protection" in obj)


def validity_months(days: int) -> int | None:
    """validityDays as Key Vault's whole validity_months, or None when no whole number of months is within
    _MONTH_TOLERANCE_DAYS of it (Key Vault's x509_props.validity_months is an integer count of months:
    https://learn.microsoft.com/rest/api/keyvault/certificates/create-certificate/create-certificate)."""
    months = round(days / _DAYS_PER_MONTH)
    if months < 1 or abs(months * _DAYS_PER_MONTH - days) > _MONTH_TOLERANCE_DAYS:
        return None
    return months


def _drop_zone(value: Any) -> DropZoneSettings:
    obj = _structured(value, "dropZone", dict, "an object {processedDays, rejectedDays, allowedIpRanges}")
    for key in obj:
        if key not in _DROPZONE_KEYS:
            raise _unknown(key, _DROPZONE_KEYS, f"dropZone.{key}")
    processed = _int(obj.get("processedDays", DEFAULT_PROCESSED_DAYS), "dropZone.processedDays", 1, 36500)
    rejected = _int(obj.get("rejectedDays", DEFAULT_REJECTED_DAYS), "dropZone.rejectedDays", 1, 36500)
    return DropZoneSettings(processed, rejected, _allowed_ip_ranges(obj.get("allowedIpRanges")))


def _allowed_ip_ranges(value: Any) -> tuple[str, ...]:
    """`dropZone.allowedIpRanges`: public IPv4 addresses or CIDR ranges, as Azure Storage's IP network rules take them:
    "Only IPv4 addresses are supported", "Small address ranges using /31 or /32 prefix sizes aren't supported.
    Configure these ranges by using individual IP address rules", and private ranges (RFC 1918) are not allowed
    (https://learn.microsoft.com/azure/storage/common/storage-network-security-set-default-access, "IP network rules";
    https://learn.microsoft.com/azure/storage/common/storage-network-security-limitations)."""
    path = "dropZone.allowedIpRanges"
    raw = _list(value, path, "a list of public IPv4 addresses or CIDR ranges")
    out: list[str] = []
    for i, item in enumerate(raw):
        where = f"{path}[{i}]"
        if not isinstance(item, str):
            raise ConfigError(_k(where), "must be a public IPv4 address or CIDR range (a.b.c.d or a.b.c.0/24)")
        text = item.strip()
        try:
            net = ipaddress.ip_network(text, strict=True)
        except ValueError:
            raise ConfigError(_k(where), "must be a public IPv4 address or CIDR range (a.b.c.d or a.b.c.0/24) "
                                         "(host bits zero)") from None
        if not isinstance(net, ipaddress.IPv4Network):
            raise ConfigError(_k(where), "Azure Storage IP rules take IPv4 only")
        if "/" in text and net.prefixlen > 30:
            raise ConfigError(_k(where), f"/{net.prefixlen} ranges are not supported by Azure Storage IP rules: list "
                                         "each address on its own (without a prefix)")
        if not net.is_global:
            raise ConfigError(_k(where), "is not a public range: Azure Storage IP rules take public addresses only "
                                         "(reach the drop zone from a private network through its private endpoint)")
        out.append(text)
    return tuple(out)


def _network(cfg: dict[str, Any]) -> str:
    value = cfg.get("network")
    if value in (None, ""):
        return DEFAULT_NETWORK
    if not isinstance(value, str) or value.strip().lower() not in NETWORKS:
        raise ConfigError(_k("network"), f"must be one of {', '.join(NETWORKS)}")
    return value.strip().lower()


def _egress_route_table(cfg: dict[str, Any], network: str | None, hosted_by: str | None) -> str | None:
    value = _optional_str(cfg.get("egressRouteTableId"), "egressRouteTableId")
    if value is None:
        return None
    if network != PRIVATE:
        raise ConfigError(_k("egressRouteTableId"), "is only used with network: private (set it, or remove this key)")
    if hosted_by:
        raise ConfigError(_k("egressRouteTableId"), "a hosted tenant's job runs in its hosting stack's network: set "
                                                    "egressRouteTableId in the hosting stack")
    if not _ROUTE_TABLE_RE.match(value):
        raise ConfigError(_k("egressRouteTableId"), "must be a route table's ARM ID: /subscriptions/<id>/"
                                                    "resourceGroups/<group>/providers/Microsoft.Network/routeTables/"
                                                    "<name>")
    return value


def _private_only(cfg: dict[str, Any], key: str, network: str | None, hosted_by: str | None) -> bool:
    """True when `key` is set where it means something: network: private, and not in a hosted tenant (whose network
    is its hosting stack's); raises naming the key otherwise."""
    if cfg.get(key) in (None, "", {}, "{}"):
        return False
    if network != PRIVATE:
        raise ConfigError(_k(key), "is only used with network: private (set it, or remove this key)")
    if hosted_by:
        raise ConfigError(_k(key), "a hosted tenant's job and private endpoints are in its hosting stack's network: "
                                   f"set {key} in the hosting stack")
    return True


def _cidr(value: Any, key: str) -> ipaddress.IPv4Network:
    if not isinstance(value, str):
        raise ConfigError(_k(key), "must be an IPv4 range in CIDR notation, e.g. 10.60.0.0/23")
    try:
        net = ipaddress.ip_network(value.strip(), strict=True)
    except ValueError:
        raise ConfigError(_k(key), "must be an IPv4 range in CIDR notation, e.g. 10.60.0.0/23 (host bits zero)") \
            from None
    if not isinstance(net, ipaddress.IPv4Network) or "/" not in value:
        raise ConfigError(_k(key), "must be an IPv4 range in CIDR notation, e.g. 10.60.0.0/23")
    return net


def _address_space(cfg: dict[str, Any], network: str | None, hosted_by: str | None) -> str:
    """`addressSpace`: the stack VNet's range, private (RFC 1918) and a /23 or larger (the two subnets)."""
    if not _private_only(cfg, "addressSpace", network, hosted_by):
        return DEFAULT_ADDRESS_SPACE
    net = _cidr(cfg["addressSpace"], "addressSpace")
    if net.prefixlen > MAX_ADDRESS_PREFIX:
        raise ConfigError(_k("addressSpace"), f"is a /{net.prefixlen}, but the jobs subnet (a /24) and the endpoints "
                                              f"subnet (a /26) need a /{MAX_ADDRESS_PREFIX} or larger")
    if not any(net.subnet_of(r) for r in PRIVATE_RANGES):
        raise ConfigError(_k("addressSpace"), "must be within a private range (RFC 1918: 10.0.0.0/8, 172.16.0.0/12 "
                                              "or 192.168.0.0/16)")
    return str(net)


def _arm_id(value: Any, key: str, pattern: re.Pattern[str], shape: str) -> ArmId:
    found = pattern.match(value.strip()) if isinstance(value, str) else None
    if found is None:
        raise ConfigError(_k(key), f"must be the ARM ID of {shape}")
    return ArmId(value.strip(), found["subscription"].lower(), found["group"], found["name"])


def _runner_network(cfg: dict[str, Any], network: str | None, hosted_by: str | None,
                    azure_environment: str | None) -> RunnerNetwork | None:
    """`runnerNetwork`: the platform's output of that name, `{virtualNetworkId, addressSpace, privateDnsZoneIds:
    {vault, blob, registry}}`, every ID an ARM ID of its type, each zone the Azure environment's name for its group
    (uploader/clouds.py PRIVATE_DNS_ZONES), the zones in the VNet's subscription."""
    if not _private_only(cfg, "runnerNetwork", network, hosted_by):
        return None
    key = "runnerNetwork"
    obj = _structured(cfg[key], key, dict, "an object {virtualNetworkId, addressSpace, privateDnsZoneIds} (the "
                                           "platform program's runnerNetwork output)")
    for name in obj:
        if name not in RUNNER_NETWORK_KEYS:
            raise _unknown(name, RUNNER_NETWORK_KEYS, f"{key}.{name}")
    for name in RUNNER_NETWORK_KEYS:
        if obj.get(name) in (None, "", [], {}):
            raise ConfigError(_k(f"{key}.{name}"), "is required (copy the platform program's runnerNetwork output)")
    vnet = _arm_id(obj["virtualNetworkId"], f"{key}.virtualNetworkId", _VNET_ID_RE,
                   "a virtual network: /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Network/"
                   "virtualNetworks/<name>")
    raw_space = obj["addressSpace"]
    ranges = raw_space if isinstance(raw_space, list) else [raw_space]
    space = tuple(str(_cidr(r, f"{key}.addressSpace")) for r in ranges)
    if not all(ipaddress.ip_network(r).is_private for r in space):  # the platform's own rule (runner_address_space)
        raise ConfigError(_k(f"{key}.addressSpace"), "must be private IPv4 ranges, as the platform's deploy network "
                                                     "is (0.0.0.0/0 or a public range cannot be peered privately)")
    raw_zones = obj["privateDnsZoneIds"]
    if not isinstance(raw_zones, dict):
        raise ConfigError(_k(f"{key}.privateDnsZoneIds"), "must be an object {vault, blob, registry} of private DNS "
                                                          "zone IDs")
    expected = dict(PRIVATE_DNS_ZONES[azure_environment or "public"].items())
    for name in raw_zones:
        if name not in expected:
            raise _unknown(name, tuple(expected), f"{key}.privateDnsZoneIds.{name}")
    zones: dict[str, ArmId] = {}
    for group, zone_name in expected.items():
        where = f"{key}.privateDnsZoneIds.{group}"
        if raw_zones.get(group) in (None, ""):
            raise ConfigError(_k(where), "is required (copy the platform program's runnerNetwork output)")
        zone = _arm_id(raw_zones[group], where, _ZONE_ID_RE, "a private DNS zone: /subscriptions/<id>/resourceGroups/"
                                                             f"<group>/providers/Microsoft.Network/privateDnsZones/"
                                                             f"{zone_name}")
        if azure_environment is not None and zone.name.lower() != zone_name:
            raise ConfigError(_k(where), f"is zone {zone.name}, but a {group} private endpoint in Azure "
                                         f"{azure_environment} registers in {zone_name}")
        if zone.subscription_id != vnet.subscription_id:
            raise ConfigError(_k(where), "is in another subscription than runnerNetwork.virtualNetworkId: the "
                                         "runner's network and its zones are in one subscription (the platform "
                                         "program creates them together)")
        zones[group] = zone
    return RunnerNetwork(vnet, space, zones)


def _tags(value: Any) -> dict[str, str]:
    """The stack's `tags` (string -> string) checked against Azure's limits, plus FIXED_TAGS."""
    obj = _structured(value, "tags", dict, "an object of tag name -> value (strings)")
    seen: dict[str, str] = {}
    for name, tag_value in obj.items():
        path = f"tags.{name}"
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(_k("tags"), "tag names must be non-empty strings")
        if len(name) > _MAX_TAG_NAME or _TAG_NAME_FORBIDDEN.search(name):
            raise ConfigError(_k(path), f"tag names are at most {_MAX_TAG_NAME} characters without < > % & \\ ? /")
        if name.lower() in {k.lower() for k in FIXED_TAGS}:
            raise ConfigError(_k(path), "is set by the program (managed-by: hr-connector); remove it")
        if name.lower() in seen:
            raise ConfigError(_k(path), f"duplicates tags.{seen[name.lower()]} (Azure tag names ignore case)")
        if isinstance(tag_value, bool) or not isinstance(tag_value, (str, int, float)):
            raise ConfigError(_k(path), "must be a string (quote numbers and dates)")
        if len(str(tag_value)) > _MAX_TAG_VALUE:
            raise ConfigError(_k(path), f"tag values are at most {_MAX_TAG_VALUE} characters")
        seen[name.lower()] = name
    if len(obj) + len(FIXED_TAGS) > _MAX_TAGS:
        allowed = _MAX_TAGS - len(FIXED_TAGS)
        raise ConfigError(_k("tags"), f"at most {allowed} tags (Azure allows {_MAX_TAGS} a resource)")
    return {**{str(k): str(v) for k, v in obj.items()}, **FIXED_TAGS}


def _list(value: Any, path: str, what: str) -> list[Any]:
    if value is None:
        return []
    return _structured(value, path, list, what)


class Problems:
    """Every problem of one config, in the order found; at most one per key (the first found).

    A problem at a key hides later ones at the same key or below it (`connectors` hides `connectors[0].jobId`):
    one fix per line of output.
    """

    def __init__(self) -> None:
        self.items: list[ConfigError] = []

    def add(self, problem: MappingError) -> None:
        key = problem.key
        if not any(key == p.key or key.startswith((f"{p.key}.", f"{p.key}[")) for p in self.items):
            self.items.append(problem if isinstance(problem, ConfigError) else ConfigError(key, problem.rule))

    def attempt(self, check: Callable[..., T], *args: Any) -> T | None:
        """check(*args), or None after recording the problem it raised."""
        try:
            return check(*args)
        except MappingError as exc:
            self.add(exc)
            return None

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigProblems(self.items)


class ConfigProblems(ConfigError):
    """Several config problems at once; `key` and `rule` are the first's, `problems` all of them."""

    def __init__(self, problems: list[ConfigError]) -> None:
        super().__init__(problems[0].key, problems[0].rule)
        self.problems = tuple(problems)

    def __str__(self) -> str:
        return "\n".join(f"{p.key}: {p.rule}" for p in self.problems)


def all_problems(exc: ConfigError) -> tuple[ConfigError, ...]:
    """The problems a ConfigError stands for (one, or a ConfigProblems' list)."""
    return exc.problems if isinstance(exc, ConfigProblems) else (exc,)


def _cloud(cfg: dict[str, Any]) -> Cloud:
    cloud_name = _optional_str(cfg.get("cloud"), "cloud") or "commercial"
    if cloud_name.lower() not in CLOUDS:
        raise ConfigError(_k("cloud"), f"unknown cloud {cloud_name!r}: expected one of {', '.join(CLOUDS)}")
    return CLOUDS[cloud_name.lower()]


def _hosting(cfg: dict[str, Any]) -> bool:
    value = cfg.get("hosting", False)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", ""):
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise ConfigError(_k("hosting"), "must be true or false")
    return value


def _credential(cfg: dict[str, Any], cloud: Cloud | None) -> str:
    """`credential`: certificate (default) or federated, which Microsoft must document for the stack's cloud."""
    value = cfg.get("credential")
    if value in (None, ""):
        return "certificate"
    if not isinstance(value, str) or value.strip().lower() not in CREDENTIALS:
        raise ConfigError(_k("credential"), f"must be one of {', '.join(CREDENTIALS)}")
    credential = value.strip().lower()
    if credential == FEDERATED and cloud is not None and cloud.federation is None:
        raise ConfigError(_k("credential"), f"federated is refused for the {cloud.name} cloud: "
                          f"{cloud.federation_unconfirmed or 'Microsoft does not document its issuer and audience'}; "
                          "use certificate")
    return credential


def _hosted_by(cfg: dict[str, Any]) -> str | None:
    name = _optional_str(cfg.get("hostedBy"), "hostedBy")
    if name is None:
        return None
    if not _HOSTED_BY_RE.match(name) or name.rsplit("/", 1)[-1] in (".", ".."):
        raise ConfigError(_k("hostedBy"), "must name the hosting stack: NAME (a stack of this project) or "
                                          "org/project/NAME")
    return name


def _not_in_hosting(cfg: dict[str, Any], problems: Problems) -> None:
    """A hosting stack has no tenant: every tenant-only key it sets is a problem (empty values are fine)."""
    for key in TENANT_ONLY_KEYS:
        if key == "credential" and str(cfg.get(key) or "").strip().lower() == "certificate":
            continue  # Pulumi.yaml's default, merged into every stack: a hosting stack never chose it
        if cfg.get(key) not in (None, "", [], "[]"):
            problems.add(ConfigError(_k(key), "a hosting stack (hosting: true) has no Microsoft 365 tenant, Entra "
                                              "app or connectors: remove it (it belongs in the tenant stacks "
                                              "that set hostedBy)"))
    if isinstance(cfg.get("credential"), str) and cfg["credential"].strip().lower() == FEDERATED:
        problems.add(ConfigError(_k("credential"), "a hosting stack has no Entra app to sign in as: `credential: "
                                                   "federated` belongs in the tenant stacks that set hostedBy"))
    if cfg.get("alertEmails") in (None, "", [], "[]"):
        problems.add(ConfigError(_k("alertEmails"), "is required in a hosting stack: its action group is told "
                                                    "when any hosted tenant's job fails (e.g. the platform team)"))


def _tenant(cfg: dict[str, Any]) -> str:
    if cfg.get("tenantId") in (None, ""):
        raise ConfigError(_k("tenantId"), "is required: the Microsoft 365 tenant's ID (a GUID)")
    return _guid(cfg["tenantId"], "tenantId", "the Microsoft 365 tenant's ID")


def _azure_environment(cfg: dict[str, Any], cloud: Cloud | None) -> str | None:
    chosen = _optional_str(cfg.get("azureEnvironment"), "azureEnvironment")
    if chosen is None:
        if cloud is None:
            return None  # the cloud's problem is reported; its default cannot be known
        chosen = cloud.azure_environment
    azure_environment = chosen.lower()
    if azure_environment not in AZURE_ENVIRONMENTS:
        raise ConfigError(
            _k("azureEnvironment"),
            f"unknown Azure environment {azure_environment!r}: expected one of {', '.join(AZURE_ENVIRONMENTS)}",
        )
    if cloud is not None and cloud.government and azure_environment != "usgovernment":
        raise ConfigError(
            _k("azureEnvironment"),
            f"a {cloud.name} tenant must be hosted in Azure Government (usgovernment), not {azure_environment}",
        )
    return azure_environment


def _location(cfg: dict[str, Any], azure_environment: str | None) -> str:
    location = _optional_str(cfg.get("location"), "location")
    if location is None:
        raise ConfigError(_k("location"), "is required: the Azure region to host in, e.g. eastus or usgovvirginia")
    location = location.lower().replace(" ", "")
    if not _LOCATION_RE.match(location):
        raise ConfigError(_k("location"), "must be an Azure region name such as eastus or usgovvirginia")
    home = regions.environment_of(location)
    if home is not None and azure_environment in (None, home):
        return location
    if azure_environment == "usgovernment" and home == "public":
        raise ConfigError(
            _k("location"),
            f"{location} is not an Azure Government region ({', '.join(sorted(regions.USGOVERNMENT))})",
        )
    if azure_environment == "public" and home == "usgovernment":
        raise ConfigError(_k("location"), f"{location} is an Azure Government region but azureEnvironment is public")
    close = regions.closest(location, azure_environment)
    hint = f"; did you mean {close!r}?" if close else " (`az account list-locations --query \"[].name\"` lists them)"
    where = f"an Azure {azure_environment}" if azure_environment else "an Azure"
    raise ConfigError(_k("location"), f"{location!r} is not {where} region{hint}")


def _schedule(cfg: dict[str, Any]) -> str:
    try:
        return validate_cron(cfg.get("schedule") or DEFAULT_SCHEDULE)
    except CronError as exc:
        raise ConfigError(_k("schedule"), str(exc)) from None


_FILES_HINT = 'a glob under incoming/ in the drop zone, e.g. "departures/*.csv"'


def _connectors(cfg: dict[str, Any], problems: Problems) -> tuple[ConnectorMapping, ...]:
    """Each connector on its own (one broken connector hides no other), then the rules between connectors."""
    raw = problems.attempt(_list, cfg.get("connectors"), "connectors", "a list of connector mappings")
    if raw is None:
        return ()
    if len(raw) > MAX_CONNECTORS:  # before any connector is parsed or compared (that work grows with count squared)
        problems.attempt(check_connector_count, raw, _k("connectors"))
        return ()
    parsed: dict[int, ConnectorMapping] = {}
    for i, obj in enumerate(raw):
        where = _k(f"connectors[{i}]")
        if isinstance(obj, Mapping):
            files = obj.get("files")
            if files is None:
                problems.add(ConfigError(f"{where}.files", "is required: the scheduled job uploads the files "
                                                           f"this glob matches ({_FILES_HINT}); without it the "
                                                           "job fails every run"))
            elif isinstance(files, str) and files.strip() and (rule := glob_problem(files.strip())):
                problems.add(ConfigError(f"{where}.files", rule))
            name = obj.get("name")
            if isinstance(name, str) and name.strip() and not CONNECTOR_NAME_RE.match(name.strip()):
                problems.add(ConfigError(f"{where}.name", CONNECTOR_NAME_RULE))
        connector = problems.attempt(parse_connector, obj, where)
        if connector is not None:
            parsed[i] = connector
    _between_connectors(parsed, problems)
    return tuple(parsed[i] for i in sorted(parsed)) if len(parsed) == len(raw) else ()


def _between_connectors(parsed: dict[int, ConnectorMapping], problems: Problems) -> None:
    """Names and job IDs are unique; no file may match two connectors' globs (job mode would pick the first)."""
    names: dict[str, int] = {}
    job_ids: dict[str, int] = {}
    globs: dict[int, str] = {}
    budget = OverlapBudget()  # the whole stack's overlap checks together (MAX_OVERLAP_STATES)
    for i, c in sorted(parsed.items()):
        if c.name is not None:
            if c.name in names:
                problems.add(ConfigError(_k(f"connectors[{i}].name"), f"duplicates connectors[{names[c.name]}].name"))
            names.setdefault(c.name, i)
        if c.job_id.lower() in job_ids:
            problems.add(ConfigError(_k(f"connectors[{i}].jobId"),
                                     f"duplicates connectors[{job_ids[c.job_id.lower()]}].jobId"))
        job_ids.setdefault(c.job_id.lower(), i)
        if c.files is None or glob_problem(c.files):
            continue
        for j, other in globs.items():
            try:
                example = overlap(other, c.files, budget)
            except GlobsTooIntricate:
                problems.add(ConfigError(
                    _k(f"connectors[{i}].files"),
                    f"could not be compared with connectors[{j}].files: the stack's globs together need more than "
                    f"{MAX_OVERLAP_STATES:,} automaton states to compare (globs made of many '*' and '?'); give each "
                    "connector its own folder (departures/*.csv), which takes a few states"))
                return
            if example is not None:
                problems.add(ConfigError(
                    _k(f"connectors[{i}].files"),
                    f"overlaps connectors[{j}].files: both match e.g. {example!r}, and job mode sends such a file "
                    f"to connectors[{j}] only; make the globs disjoint (e.g. one folder per connector)"))
                break
        globs[i] = c.files


def _owners(cfg: dict[str, Any], problems: Problems) -> tuple[str, ...]:
    raw = problems.attempt(_list, cfg.get("owners"), "owners", "a list of Entra object IDs") or []
    found = (problems.attempt(_guid, o, f"owners[{i}]", "an Entra object ID") for i, o in enumerate(raw))
    return tuple(o for o in found if o is not None)


def _alert_emails(cfg: dict[str, Any], problems: Problems) -> tuple[str, ...]:
    emails: list[str] = []
    raw = problems.attempt(_list, cfg.get("alertEmails"), "alertEmails", "a list of e-mail addresses") or []
    for i, e in enumerate(raw):
        if not isinstance(e, str) or not _EMAIL_RE.match(e.strip()):
            problems.add(ConfigError(_k(f"alertEmails[{i}]"), "must be an e-mail address such as hr-ops@contoso.com"))
        else:
            emails.append(e.strip())
    return tuple(emails)


def image_problem(image: str, *, pinned: bool = False) -> str | None:
    """What is wrong with an `image` reference (None: nothing): the one rule for the `image` key and new-stack's
    --image, which also asks for the digest pin (`pinned`) that private stacks run by (docs/releases.md)."""
    if any(ch.isspace() for ch in image) or image.startswith(("http://", "https://")):
        return "must be an image reference such as myregistry.azurecr.io/hr-uploader@sha256:<digest>"
    if pinned and not _PINNED_IMAGE_RE.match(image):
        return (f"must be a registry reference pinned by digest, {PINNED_IMAGE_FORM} (e.g. the release's "
                "linux/amd64 digest, docs/releases.md): a tag can be moved, a digest names the same bytes forever")
    return None


def _image(cfg: dict[str, Any]) -> str | None:
    image = _optional_str(cfg.get("image"), "image")
    if image is not None and (rule := image_problem(image)) is not None:
        raise ConfigError(_k("image"), rule)
    return image


def _azure_tenant(cfg: dict[str, Any], hosting: bool | None, hosted_by: str | None,
                  tenant_id: str | None) -> str | None:
    """`azureTenantId`: the directory of the Azure subscription (docs/configuration.md#two-sides-of-a-stack)."""
    if cfg.get("azureTenantId") not in (None, ""):
        return _guid(cfg["azureTenantId"], "azureTenantId", "the Entra tenant that manages the Azure subscription")
    if hosting:
        raise ConfigError(_k("azureTenantId"), "is required in a hosting stack: the ID of the Entra tenant that "
                                               "manages its subscription (its hosted tenants' Azure side signs "
                                               "in there)")
    if hosted_by:
        return None  # the hosting stack's (its azureTenantId output)
    return tenant_id or None  # one directory for both sides: the Microsoft 365 tenant's


def _subscription(cfg: dict[str, Any]) -> str | None:
    subscription = cfg.get("subscriptionId")
    if subscription in (None, ""):
        return None
    return _guid(subscription, "subscriptionId", "an Azure subscription ID")


def _secure(key: str) -> ConfigError:
    return ConfigError(
        _k(key),
        "is a `secure:` (encrypted) value, but every hr-connector setting is plain text (the program reads it "
        "as such, and none is a secret: the certificate's key is generated and kept in Key Vault); set it with "
        f"`pulumi config set {_k(key)} VALUE` (without --secret)",
    )


def provider_key_problems(keys: Iterable[str]) -> list[ConfigError]:
    """A problem for each `azure-native:` or `azuread:` key: the program's providers are explicit and would never
    read it (see EXPLICIT_PROVIDER_PACKAGES); the rule names the hr-connector: key that does the job."""
    problems = []
    for key in keys:
        package = key.split(":", 1)[0]
        if package not in EXPLICIT_PROVIDER_PACKAGES:
            continue
        use = PROVIDER_KEY_USE.get(key)
        if use is not None and use in KEYS:
            rule = f"set {_k(use)} instead"
        elif key == "azure-native:tenantId":
            rule = ("the Azure side signs in to the deployer's directory (ARM_TENANT_ID in the environment, as the "
                    "workflows set it)")
        else:
            rule = ("remove it; the provider's sign-in settings come from the environment (ARM_* variables, as the "
                    "workflows set them: docs/gitops.md)")
        problems.append(ConfigError(key, f"is not read: the program creates its {package} provider explicitly from "
                                         f"{NAMESPACE}: keys, and Pulumi gives an explicit provider no {package}: "
                                         f"stack config, so `pulumi up` would ignore it; {rule}"))
    return problems


def load_settings(config: Mapping[str, Any], secret_keys: Iterable[str] = ()) -> Settings:
    """Validate a stack's config (bare or `hr-connector:`-prefixed keys) into Settings.

    Raises ConfigError (ConfigProblems when there are several) naming every key that breaks a rule, not just
    the first. `secret_keys` are the keys Pulumi holds as secrets (`secure:` in the stack file).
    """
    cfg = _strip_namespace(config)
    problems = Problems()
    for key in cfg:
        if key not in KEYS:
            problems.add(_unknown(key, KEYS, key))
    for key in secret_keys:
        ns, _, name = key.rpartition(":")
        if ns in ("", NAMESPACE) and name in cfg:
            problems.add(_secure(name))

    hosting = problems.attempt(_hosting, cfg)
    cloud = problems.attempt(_cloud, cfg)
    if hosting:
        _not_in_hosting(cfg, problems)
    tenant_id = "" if hosting else problems.attempt(_tenant, cfg)
    hosted_by = None if hosting else problems.attempt(_hosted_by, cfg)
    azure_environment = problems.attempt(_azure_environment, cfg, cloud)
    location = problems.attempt(_location, cfg, azure_environment)
    schedule = problems.attempt(_schedule, cfg)
    connectors = _connectors(cfg, problems)
    certificate = problems.attempt(_certificate, cfg.get("certificate") or {})
    drop_zone = problems.attempt(_drop_zone, cfg.get("dropZone") or {})
    image = problems.attempt(_image, cfg)
    owners = _owners(cfg, problems)
    alert_emails = _alert_emails(cfg, problems)
    subscription_id = problems.attempt(_subscription, cfg)
    tags = problems.attempt(_tags, cfg.get("tags") or {})
    credential = "certificate" if hosting else problems.attempt(_credential, cfg, cloud)
    azure_tenant_id = problems.attempt(_azure_tenant, cfg, hosting, hosted_by, tenant_id)
    network = problems.attempt(_network, cfg)
    egress_route_table_id = problems.attempt(_egress_route_table, cfg, network, hosted_by)
    address_space = problems.attempt(_address_space, cfg, network, hosted_by)
    runner_network = problems.attempt(_runner_network, cfg, network, hosted_by, azure_environment)
    if runner_network is not None and address_space is not None and \
            (clash := overlapping([address_space], runner_network.address_space)):
        problems.add(ConfigError(_k("addressSpace"), (
            f"{clash[0]} overlaps runnerNetwork.addressSpace {clash[1]}: networks that peer must not overlap "
            "(https://learn.microsoft.com/azure/virtual-network/virtual-network-manage-peering, \"Requirements and "
            "constraints\"); set hr-connector:addressSpace to a free range")))
    if network != PRIVATE and drop_zone is not None and drop_zone.allowed_ip_ranges:
        problems.add(ConfigError(_k("dropZone.allowedIpRanges"), (
            "is only used with network: private (with network: public the drop zone takes traffic from every "
            "address); set hr-connector:network: private, or remove it")))
    if credential == FEDERATED and azure_tenant_id and tenant_id and azure_tenant_id != tenant_id:
        problems.add(ConfigError(_k("credential"), (
            "is federated, but azureTenantId is not tenantId: federated needs the job's managed identity and the "
            "app in one directory; Entra refuses a managed identity's token as the federated credential of an app "
            "registered in another tenant (AADSTS700236; https://learn.microsoft.com/entra/workload-id/"
            "workload-identity-federation-config-app-trust-managed-identity); use credential: certificate")))
    problems.raise_if_any()
    assert cloud and (tenant_id or hosting) and azure_environment and location and schedule and certificate
    assert tags is not None and drop_zone is not None and tenant_id is not None

    return Settings(
        cloud=cloud,
        tenant_id=tenant_id,
        azure_environment=azure_environment,
        location=location,
        schedule=schedule,
        connectors=connectors,
        certificate=certificate,
        drop_zone=drop_zone,
        image=image,
        owners=owners,
        alert_emails=alert_emails,
        subscription_id=subscription_id,
        tags=tags,
        hosting=bool(hosting),
        hosted_by=hosted_by,
        credential=credential or "certificate",
        azure_tenant_id=azure_tenant_id,
        network=network or DEFAULT_NETWORK,
        egress_route_table_id=egress_route_table_id,
        address_space=address_space or DEFAULT_ADDRESS_SPACE,
        runner_network=runner_network,
    )


@dataclass(frozen=True)
class ConfigWarning:
    """Something probably wrong that `check` reports without failing the stack (key and what to do)."""

    key: str
    rule: str


def config_warnings(settings: Settings) -> list[ConfigWarning]:
    """What a valid config may still get wrong: a region without Container Apps jobs, a glob under incoming/."""
    out: list[ConfigWarning] = []
    if settings.location in regions.JOBS_NOT_KNOWN:
        out.append(ConfigWarning(
            _k("location"),
            f"Container Apps jobs are not known to be offered in {settings.location} (the evidence is thin: "
            "Microsoft's region pages do not list them there); before the first `up` confirm with "
            f"`az cloud set --name AzureUSGovernment` then `{regions.CONFIRM_JOBS_REGIONS}`, or use usgovvirginia",
        ))
    if settings.federated and (settings.certificate.protection_set
                               or settings.certificate != CertificateSettings()):
        out.append(ConfigWarning(
            _k("certificate"),
            "is ignored with credential: federated (the app trusts the job's managed identity: there is no "
            "certificate to make, keep or renew); remove it",
        ))
    if not settings.certificate.protection_set and not settings.hosting and not settings.federated:
        out.append(ConfigWarning(
            _k("certificate.protection"),
            "not set, so the certificate's private key is made by the program and kept (encrypted) in Pulumi state "
            "and in a Key Vault secret the job reads; add `protection: vault` under hr-connector:certificate "
            "(`hsm` for an HSM-backed key) to have Key Vault make a key that never leaves it (the next `up` renews "
            "the certificate with overlap: docs/operators-guide.md)",
        ))
    if settings.private and settings.builds_image:
        whose = " (for its hosted tenants)" if settings.hosting else ""
        out.append(ConfigWarning(
            _k("image"),
            f"not set, so this private stack builds the uploader image into a registry of its own{whose}; set "
            f"hr-connector:image to the release's image pinned by digest ({PINNED_IMAGE_FORM}, docs/releases.md) "
            "and own no registry: " + REGISTRY_CMK_WHY,
        ))
    for i, c in enumerate(settings.connectors):
        if c.files and c.files.split("/", 1)[0] == "incoming":
            out.append(ConfigWarning(
                _k(f"connectors[{i}].files"),
                "starts with incoming/, but globs are already relative to incoming/ (this one matches "
                "incoming/incoming/...); drop the leading incoming/",
            ))
    return out


def settings_from_pulumi() -> Settings:
    """Read this namespace's keys from the running Pulumi program's config and validate them."""
    from pulumi.runtime import config as runtime_config  # the program's side only; load_settings stays pure

    merged: dict[str, Any] = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    prefix = f"{NAMESPACE}:"
    ours = {k: v for k, v in merged.items() if k.startswith(prefix)}
    secret = set(runtime_config.get_config_secret_keys_env()) | {k for k in ours if runtime_config.is_config_secret(k)}
    if ignored := provider_key_problems(sorted(merged)):  # never silently ignored, under `pulumi up` either
        raise ConfigProblems(ignored)
    settings = load_settings(ours, secret_keys=sorted(secret & set(ours)))
    import pulumi

    for warning in config_warnings(settings):
        pulumi.log.warn(f"{warning.key}: {warning.rule}")
    return settings
