"""The stack config (namespace `hr-connector:`, docs/configuration.md) read and validated into typed settings.

`load_settings` is a pure function from a dict of config (key -> value) so it can be tested and used offline
without Pulumi; `settings_from_pulumi` is the thin adapter the program calls. Every problem raises
ConfigError naming the full key (`hr-connector:connectors[0].scenarios[1].columns.userPrincipalName`) and
the rule broken. Values may be native (int, list, dict) or what the Pulumi CLI hands a program: strings,
with objects and lists as JSON text.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from uploader.clouds import AZURE_ENVIRONMENTS, CLOUDS, Cloud
from uploader.mapping import GUID_RE, ConnectorMapping, MappingError, parse_connectors

from .cron import CronError, validate_cron

NAMESPACE = "hr-connector"

DEFAULT_SCHEDULE = "0 2 * * *"
DEFAULT_VALIDITY_DAYS = 365
DEFAULT_RENEW_BEFORE_DAYS = 30
DEFAULT_PROCESSED_DAYS = 30
DEFAULT_REJECTED_DAYS = 90

#: Every key of the namespace (docs/configuration.md). Anything else is an error naming it.
KEYS = (
    "cloud", "tenantId", "azureEnvironment", "location", "schedule", "connectors", "certificate",
    "image", "owners", "dropZone", "alertEmails", "subscriptionId", "tags",
)
_CERTIFICATE_KEYS = ("validityDays", "renewBeforeDays")
_DROPZONE_KEYS = ("processedDays", "rejectedDays")

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_LOCATION_RE = re.compile(r"^[a-z][a-z0-9]+$")
#: Azure Government regions start with these (usgovvirginia, usgovarizona, usgovtexas, usdodeast, usdodcentral).
_GOV_REGION_PREFIXES = ("usgov", "usdod")
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


class ConfigError(MappingError):
    """A stack config value that breaks a rule; `key` is the full key path (`hr-connector:...`).

    The same (key, rule) error as the mapping model's, so connector mappings report the same way.
    """


@dataclass(frozen=True)
class CertificateSettings:
    """The app's certificate credential: how long it is valid, and when the next `up` renews it."""

    validity_days: int = DEFAULT_VALIDITY_DAYS
    renew_before_days: int = DEFAULT_RENEW_BEFORE_DAYS


@dataclass(frozen=True)
class DropZoneSettings:
    """How long processed/ and rejected/ files are kept in the drop zone."""

    processed_days: int = DEFAULT_PROCESSED_DAYS
    rejected_days: int = DEFAULT_REJECTED_DAYS


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


def _structured(value: Any, path: str, kind: type, what: str) -> Any:
    """Objects and lists arrive from the Pulumi CLI as JSON text."""
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return kind()
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
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
    obj = _structured(value, "certificate", dict, "an object {validityDays, renewBeforeDays}")
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
    return CertificateSettings(validity, renew)


def _drop_zone(value: Any) -> DropZoneSettings:
    obj = _structured(value, "dropZone", dict, "an object {processedDays, rejectedDays}")
    for key in obj:
        if key not in _DROPZONE_KEYS:
            raise _unknown(key, _DROPZONE_KEYS, f"dropZone.{key}")
    processed = _int(obj.get("processedDays", DEFAULT_PROCESSED_DAYS), "dropZone.processedDays", 1, 36500)
    rejected = _int(obj.get("rejectedDays", DEFAULT_REJECTED_DAYS), "dropZone.rejectedDays", 1, 36500)
    return DropZoneSettings(processed, rejected)


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


def load_settings(config: Mapping[str, Any]) -> Settings:
    """Validate a stack's config (bare or `hr-connector:`-prefixed keys) into Settings, or raise ConfigError."""
    cfg = _strip_namespace(config)
    for key in cfg:
        if key not in KEYS:
            raise _unknown(key, KEYS, key)

    cloud_name = _optional_str(cfg.get("cloud"), "cloud") or "commercial"
    if cloud_name.lower() not in CLOUDS:
        raise ConfigError(_k("cloud"), f"unknown cloud {cloud_name!r}: expected one of {', '.join(CLOUDS)}")
    cloud = CLOUDS[cloud_name.lower()]

    if cfg.get("tenantId") in (None, ""):
        raise ConfigError(_k("tenantId"), "is required: the Microsoft 365 tenant's ID (a GUID)")
    tenant_id = _guid(cfg["tenantId"], "tenantId", "the Microsoft 365 tenant's ID")

    azure_environment = (_optional_str(cfg.get("azureEnvironment"), "azureEnvironment") or cloud.azure_environment)
    azure_environment = azure_environment.lower()
    if azure_environment not in AZURE_ENVIRONMENTS:
        raise ConfigError(
            _k("azureEnvironment"),
            f"unknown Azure environment {azure_environment!r}: expected one of {', '.join(AZURE_ENVIRONMENTS)}",
        )
    if cloud.government and azure_environment != "usgovernment":
        raise ConfigError(
            _k("azureEnvironment"),
            f"a {cloud.name} tenant must be hosted in Azure Government (usgovernment), not {azure_environment}",
        )

    location = _optional_str(cfg.get("location"), "location")
    if location is None:
        raise ConfigError(_k("location"), "is required: the Azure region to host in, e.g. eastus or usgovvirginia")
    location = location.lower().replace(" ", "")
    if not _LOCATION_RE.match(location):
        raise ConfigError(_k("location"), "must be an Azure region name such as eastus or usgovvirginia")
    in_gov_region = location.startswith(_GOV_REGION_PREFIXES)
    if azure_environment == "usgovernment" and not in_gov_region:
        raise ConfigError(
            _k("location"),
            f"{location} is not an Azure Government region (usgovvirginia, usgovarizona, usgovtexas, ...)",
        )
    if azure_environment == "public" and in_gov_region:
        raise ConfigError(_k("location"), f"{location} is an Azure Government region but azureEnvironment is public")

    try:
        schedule = validate_cron(cfg.get("schedule") or DEFAULT_SCHEDULE)
    except CronError as exc:
        raise ConfigError(_k("schedule"), str(exc)) from None

    raw_connectors = _list(cfg.get("connectors"), "connectors", "a list of connector mappings")
    try:
        connectors = parse_connectors(raw_connectors, where=_k("connectors"))
    except MappingError as exc:
        raise ConfigError(exc.key, exc.rule) from None
    job_ids: dict[str, int] = {}
    for i, c in enumerate(connectors):
        if c.job_id.lower() in job_ids:
            raise ConfigError(_k(f"connectors[{i}].jobId"), f"duplicates connectors[{job_ids[c.job_id.lower()]}].jobId")
        job_ids[c.job_id.lower()] = i

    certificate = _certificate(cfg.get("certificate") or {})
    drop_zone = _drop_zone(cfg.get("dropZone") or {})

    image = _optional_str(cfg.get("image"), "image")
    if image is not None and (any(ch.isspace() for ch in image) or image.startswith(("http://", "https://"))):
        raise ConfigError(_k("image"), "must be an image reference such as myregistry.azurecr.io/hr-uploader:1.0")

    owners = tuple(
        _guid(o, f"owners[{i}]", "an Entra object ID")
        for i, o in enumerate(_list(cfg.get("owners"), "owners", "a list of Entra object IDs"))
    )
    emails: list[str] = []
    for i, e in enumerate(_list(cfg.get("alertEmails"), "alertEmails", "a list of e-mail addresses")):
        if not isinstance(e, str) or not _EMAIL_RE.match(e.strip()):
            raise ConfigError(_k(f"alertEmails[{i}]"), "must be an e-mail address such as hr-ops@contoso.com")
        emails.append(e.strip())

    subscription = cfg.get("subscriptionId")
    subscription_id = (
        None if subscription in (None, "") else _guid(subscription, "subscriptionId", "an Azure subscription ID")
    )

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
        alert_emails=tuple(emails),
        subscription_id=subscription_id,
        tags=_tags(cfg.get("tags") or {}),
    )


def settings_from_pulumi() -> Settings:
    """Read this namespace's keys from the running Pulumi program's config and validate them."""
    from pulumi.runtime import config as runtime_config  # the program's side only; load_settings stays pure

    merged: dict[str, Any] = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    prefix = f"{NAMESPACE}:"
    return load_settings({k: v for k, v in merged.items() if k.startswith(prefix)})
