"""`python -m provisioning new-stack NAME --cloud C --tenant-id T [--location L] [--azure-environment E]
[--network public|private] [--image REF] [--owner ID ...] [--subscription-id ID] [--alert-email A ...]
[--hosted-by HOSTING] [--schedule CRON]`:
a new tenant in one command; `new-stack NAME --hosting --cloud C --location L --alert-email A
[--subscription-id S] [--image REF]`: a hosting stack (docs/fleet.md#hosting). A private stack that owns a network
(not a hosted tenant) also gets `addressSpace` (`--address-space`, or the first /23 of ADDRESS_POOL that no private
stack in the folder uses nor the runner network) and, with `--runner-network-from FILE`, `runnerNetwork`.

Writes stacks/Pulumi.NAME.yaml from the commented template (templates/stack.yaml.tmpl, or hosting.yaml.tmpl)
with the cloud's defaults filled in and no connectors yet; refuses to overwrite; validates the result with the
program's own rules (provisioning.config via offline.load_stack_settings, Pulumi.yaml merged in) before writing
anything. A hosted tenant takes its location, Azure environment and subscription from its hosting stack's file
unless given, and must match them (the rules `check` applies); likewise its `image`, which it must set when its
hosting stack sets one. A stack that owns a network with `network: private` (GCC High and DoD by default: a
self-contained tenant or a hosting stack) needs --image, pinned by digest: it runs a prebuilt image and owns no
registry (docs/configuration.md#a-private-stack-runs-a-prebuilt-image).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

from provisioning.config import (
    DEFAULT_ADDRESS_SPACE,
    MAX_ADDRESS_PREFIX,
    PINNED_IMAGE_FORM,
    PRIVATE,
    REGISTRY_CMK_WHY,
    STACK_ADDRESS_POOL,
    ConfigError,
    ConfigProblems,
    Settings,
    all_problems,
    image_problem,
    overlapping,
)
from provisioning.identities import consent_instructions
from provisioning.naming import stack_name_problem
from provisioning.tools.fleet import FleetError, stack_file, validate_stack_name
from provisioning.tools.offline import REPO_ROOT, load_stack_settings
from uploader.clouds import Cloud, UnknownCloudError, get_cloud
from uploader.model.boundedio import STACK_FILE_LIMIT, FileReadError, read_file, shown
from uploader.model.mapping import GUID_RE
from uploader.yamlfile import MAX_DEPTH

TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "stack.yaml.tmpl"
HOSTING_TEMPLATE = TEMPLATE.with_name("hosting.yaml.tmpl")
_FAMILY = {"public": "commercial | gcc", "usgovernment": "gcchigh | dod"}

#: A region that hosts Container Apps in each Azure environment (check availability for your subscription).
DEFAULT_LOCATION = {"public": "eastus", "usgovernment": "usgovvirginia"}
#: New stacks keep the key in Key Vault: `vault` for commercial and GCC, `hsm` (an HSM-backed key, Premium vault) for
#: GCC High and DoD (docs/security.md; availability of Premium in Azure Government: docs/us-government.md).
DEFAULT_NEW_PROTECTION = {"commercial": "vault", "gcc": "vault", "gcchigh": "hsm", "dod": "hsm"}
#: New stacks for GCC High and DoD are private (docs/configuration.md#network: what FedRAMP High / IL5 policy denies
#: otherwise); commercial and GCC opt in. A hosted tenant takes its hosting stack's network.
DEFAULT_NEW_NETWORK = {"commercial": "public", "gcc": "public", "gcchigh": "private", "dod": "private"}
_VAULT_DOMAIN = {"public": "vault.azure.net", "usgovernment": "vault.usgovcloudapi.net"}
#: The stack's secrets provider: the Key Vault key docs/gitops.md ("2. The secrets key") creates, `pulumi-secrets`.
#: One definition for the file's comments, the printed next steps and the docs (tests/test_fleet_commands.py).
#: Pulumi's form: azurekeyvault://<vault>.vault.azure.net/keys/<key>
#: (https://www.pulumi.com/docs/iac/cli/commands/pulumi_stack_init/).
SECRETS_KEY = "pulumi-secrets"


def secrets_provider(azure_environment: str) -> str:
    """`--secrets-provider` for `pulumi stack init`, in the stack's Azure environment (<vault> left to fill)."""
    domain = _VAULT_DOMAIN.get(azure_environment, _VAULT_DOMAIN["public"])
    return f"azurekeyvault://<vault>.{domain}/keys/{SECRETS_KEY}"


def _azure_environment(request: StackRequest) -> str:
    return (request.azure_environment or get_cloud(request.cloud).azure_environment).strip().lower()
#: Every cloud: Data Connector Admin (provisioning/components/outputs.py cites Microsoft's pages).
_ROLE_HINT = {
    "commercial": "Whoever creates it needs Purview's Data Connector Admin role.",
    "gcc": "Whoever creates it needs Purview's Data Connector Admin role (docs/us-government.md).",
    "gcchigh": "Whoever creates it needs Purview's Data Connector Admin role (docs/us-government.md).",
    "dod": "Whoever creates it needs Purview's Data Connector Admin role (docs/us-government.md).",
}
_TITLE = {
    "commercial": "Microsoft 365 commercial",
    "gcc": "Microsoft 365 GCC, Azure commercial hosting",
    "gcchigh": "Microsoft 365 GCC High, Azure Government hosting",
    "dod": "Microsoft 365 DoD, Azure Government hosting",
}


@dataclass(frozen=True)
class StackRequest:
    """What `new-stack` was asked for: the name, the tenant, and the optional settings given as flags."""

    name: str
    cloud: str
    tenant_id: str
    location: str | None = None
    azure_environment: str | None = None
    image: str | None = None
    owners: tuple[str, ...] = ()
    subscription_id: str | None = None
    alert_emails: tuple[str, ...] = ()
    hosting: bool = False
    hosted_by: str | None = None
    azure_tenant_id: str | None = None  # the Azure side's directory, when it is not the Microsoft 365 tenant's
    deploy_app_id: str | None = None  # the multi-tenant deploy app whose consent URL the next steps show
    schedule: str | None = None  # --schedule CRON; None: spread_schedule(name)
    network: str | None = None  # public | private; None: DEFAULT_NEW_NETWORK (a hosted tenant: its hosting stack's)
    address_space: str | None = None  # --address-space; None: a private stack gets a free /23 of ADDRESS_POOL
    runner_network: Mapping[str, Any] | None = None  # --runner-network-from FILE (read_runner_network)


#: Where new-stack picks a private stack's `addressSpace`: the first /23 of this range that no private stack in the
#: folder (a hosting stack, or a tenant with its own network) nor the runner network uses; 512 stacks. It starts
#: with the default, 10.60.0.0/23, which a private stack without the key has (docs/configuration.md#network).
ADDRESS_POOL = STACK_ADDRESS_POOL


def read_runner_network(path: Path) -> dict[str, Any]:
    """`--runner-network-from FILE`: the platform stack's `pulumi stack output --json` (its runnerNetwork key) or
    the runnerNetwork object alone. Its values are checked where every stack's are (provisioning.config)."""
    label = "--runner-network-from"
    flag = shown(label, path)  # escaped: a path is echoed input
    try:  # the one bounded reader: a FIFO, /dev/zero or a huge file is refused, not read for ever
        raw = read_file(path, limit=STACK_FILE_LIMIT, label=label)
    except FileReadError as exc:
        raise FleetError(f"{exc.where}: cannot be read ({exc.reason})") from None
    too_deep = FleetError(f"{flag}: is nested more than {MAX_DEPTH} levels deep (the limit of a stack file, which "
                          "it is written into; a runnerNetwork output has 3)")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise FleetError(f"{flag}: is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise FleetError(f"{flag}: is not JSON (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:  # deeper than the parser's own limit
        raise too_deep from None
    if _depth(data) > MAX_DEPTH:
        raise too_deep
    if isinstance(data, dict) and isinstance(data.get("runnerNetwork"), dict):
        data = data["runnerNetwork"]
    if not isinstance(data, dict) or "virtualNetworkId" not in data:
        raise FleetError(f"{flag}: holds no runnerNetwork: give the platform stack's `pulumi stack output --json` "
                         "or its runnerNetwork object {virtualNetworkId, addressSpace, privateDnsZoneIds}")
    return data


def _depth(value: Any) -> int:
    """How many levels of objects and lists `value` has (a scalar: 1), without recursion."""
    depth, level = 0, [value]
    while level:
        depth += 1
        level = [x for item in level if isinstance(item, (dict, list))
                 for x in (item.values() if isinstance(item, dict) else item)]
    return depth


def _ranges(value: Any) -> list[str]:
    """The private IPv4 ranges in a runnerNetwork's addressSpace (a CIDR or a list); what is not one (0.0.0.0/0, a
    public range) is left to the config rules, which name it."""
    out = []
    for item in value if isinstance(value, list) else [value]:
        try:
            net = ipaddress.IPv4Network(str(item).strip(), strict=True)
        except ValueError:
            continue
        if net.is_private:
            out.append(str(net))
    return out


def _network_owners(directory: Path) -> dict[Path, Settings]:
    """The folder's private stacks that own a network (hosting stacks and self-contained tenants); a file that does
    not load is left to `check`."""
    owners = {}
    for path in sorted(directory.glob("Pulumi.*.yaml")) if directory.is_dir() else []:
        try:
            settings = load_stack_settings(path, REPO_ROOT)
        except Exception:  # noqa: BLE001, S112 - a broken stack file is `check`'s to report, not new-stack's
            continue
        if settings.private and not settings.hosted_by:
            owners[path] = settings
    return owners


def free_address_space(used: list[str]) -> str:
    """The first /MAX_ADDRESS_PREFIX of ADDRESS_POOL that overlaps none of `used`."""
    for candidate in ipaddress.IPv4Network(ADDRESS_POOL).subnets(new_prefix=MAX_ADDRESS_PREFIX):
        if overlapping([str(candidate)], used) is None:
            return str(candidate)
    raise FleetError(f"no free /{MAX_ADDRESS_PREFIX} left in {ADDRESS_POOL} (new-stack's pool): give --address-space")


_PLAIN_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _yaml_lines(value: Any, indent: int) -> list[str]:
    """A mapping of strings, lists and mappings as block YAML lines (JSON scalars are YAML scalars)."""
    lines = []
    for raw_key, item in value.items():
        # a key that is not a plain name is quoted: written raw, "x\n  hr-connector:allowedIps: ..." from a
        # hostile outputs file would add keys of its own to the stack file
        key = raw_key if _PLAIN_KEY.fullmatch(str(raw_key)) else json.dumps(str(raw_key))
        if isinstance(item, Mapping):
            lines.append(f"{' ' * indent}{key}:")
            lines.extend(_yaml_lines(item, indent + 2))
        else:
            lines.append(f"{' ' * indent}{key}: {json.dumps(item)}")
    return lines


def _network_lines(request: StackRequest, network: str, address_space: str | None) -> str:
    """`addressSpace` and `runnerNetwork` for a private stack that owns a network (empty otherwise)."""
    if network != "private" or request.hosted_by:
        lines = []
        if request.address_space:
            lines.append(f"  hr-connector:addressSpace: {json.dumps(request.address_space.strip())}")
        if request.runner_network is not None:
            lines.extend(["  hr-connector:runnerNetwork:", *_yaml_lines(request.runner_network, 4)])
        return "".join(f"{line}\n" for line in lines)  # the config rules refuse them, naming the key
    how = "Given with --address-space." if request.address_space else \
        (f"Picked by new-stack: the first /{MAX_ADDRESS_PREFIX} of {ADDRESS_POOL} that no private stack in this "
         "folder uses.")
    lines = ["  # The virtual network's range; both subnets come from it. Stacks that peer with one runner network",
             "  # must not overlap (`check` refuses it; docs/configuration.md#network).", f"  # {how}",
             f"  hr-connector:addressSpace: {json.dumps(address_space or DEFAULT_ADDRESS_SPACE)}"]
    if request.runner_network is None:
        lines += ["  # No runnerNetwork: the stack has private DNS zones of its own, and `pulumi up` must run where",
                  "  # it reaches this network (a runner you peer yourself). With the platform's deploy runner, add",
                  "  # its runnerNetwork output (new-stack --runner-network-from FILE writes it;",
                  "  # docs/configuration.md#the-deploy-runners-network-runnernetwork)."]
    else:
        lines += ["  # The deploy runner's hub network (the platform's runnerNetwork output): the VNet is peered",
                  "  # with it both ways and uses its central private DNS zones",
                  "  # (docs/configuration.md#the-deploy-runners-network-runnernetwork).",
                  "  hr-connector:runnerNetwork:", *_yaml_lines(request.runner_network, 4)]
    return "".join(f"{line}\n" for line in lines)


#: Without --schedule, a new tenant's job runs once a day at a minute of this window (UTC), picked by a stable hash
#: of the stack name: 200 tenants of one hosting environment do not all start at 02:00 (docs/fleet.md#hosting).
NIGHT_UTC = (0, 6)  # from 00:00 up to 06:00


def spread_schedule(name: str) -> str:
    """A daily 5-field cron at a minute of the night (NIGHT_UTC) that depends on the stack name only."""
    start, end = NIGHT_UTC
    minute = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") % ((end - start) * 60)
    return f"{minute % 60} {start + minute // 60} * * *"


def _checked_name(name: str) -> str:
    """Pulumi's rule for stack names, then the program's: the names derived from it must fit Azure and X.509."""
    validate_stack_name(name)
    if (rule := stack_name_problem(name)) is not None:
        raise FleetError(f"stack name {name!r}: {rule}")
    return name


def _optional_lines(request: StackRequest) -> str:
    """The optional keys the flags set, as YAML lines (JSON strings are valid YAML scalars)."""
    lines = []
    if request.owners:
        lines.append(f"  hr-connector:owners: [{', '.join(json.dumps(o.strip()) for o in request.owners)}]")
    if request.image:
        lines.append(f"  hr-connector:image: {json.dumps(request.image.strip())}")
    if request.subscription_id:
        lines.append(f"  hr-connector:subscriptionId: {json.dumps(request.subscription_id.strip())}")
    if request.alert_emails and not request.hosting:
        lines.append(f"  hr-connector:alertEmails: [{', '.join(json.dumps(a.strip()) for a in request.alert_emails)}]")
    if request.azure_tenant_id:
        lines.append("  # The Azure side: the Entra tenant that manages the subscription (docs/configuration.md"
                     "#two-sides-of-a-stack).")
        lines.append(f"  hr-connector:azureTenantId: {json.dumps(request.azure_tenant_id.strip())}")
    if request.hosted_by:
        lines.append("  # The hosting stack whose Container Apps environment and workspace this job uses.")
        lines.append(f"  hr-connector:hostedBy: {json.dumps(request.hosted_by.strip())}")
    return "".join(f"{line}\n" for line in lines)


def _cloud(name: str) -> Cloud:
    try:
        return get_cloud(name)
    except UnknownCloudError as exc:
        raise FleetError(f"--cloud: {exc}") from None


def _with_hosting_defaults(request: StackRequest, directory: Path) -> StackRequest:
    """A hosted tenant's location, subscription, network and image default to its hosting stack's (its Azure
    environment follows its cloud, so that a cloud of the other family is named as the mismatch). The image only
    when the hosting stack sets one: otherwise the tenant runs the image its hosting stack builds."""
    if not request.hosted_by:
        return request
    from dataclasses import replace

    host = request.hosted_by.strip().rsplit("/", 1)[-1]
    path = stack_file(directory, validate_stack_name(host))
    if not path.is_file():
        raise FleetError(f"--hosted-by {request.hosted_by}: hosting stack {host!r} does not exist (no {path}); "
                         f"create it first: python -m provisioning new-stack {host} --hosting ...")
    hosting = load_stack_settings(path, REPO_ROOT)
    if not hosting.hosting:
        raise FleetError(f"--hosted-by {request.hosted_by}: {host} is not a hosting stack (no hosting: true)")
    own = (request.azure_environment or _cloud(request.cloud).azure_environment).strip().lower()
    if own != hosting.azure_environment:
        raise FleetError(f"--cloud {request.cloud}: its tenants run in Azure {own}, but hosting stack {host} is in "
                         f"Azure {hosting.azure_environment} (commercial and gcc are hosted on public, gcchigh and "
                         "dod on usgovernment)")
    return replace(request, location=request.location or hosting.location,
                   subscription_id=request.subscription_id or hosting.subscription_id,
                   network=request.network or hosting.network, image=request.image or hosting.image)


def _render_hosting(request: StackRequest, cloud_name: str, azure_environment: str, stacks_dir_flag: str,
                    address_space: str | None) -> str:
    if request.tenant_id or request.owners or request.hosted_by or request.schedule:
        raise FleetError("--hosting: a hosting stack has no tenant, owners, schedule or hosting stack of its "
                         "own (drop --tenant-id, --owner, --schedule and --hosted-by)")
    if not request.alert_emails:
        raise FleetError("--hosting needs --alert-email ADDRESS: the hosting stack's action group is told when any "
                         "hosted tenant's job fails")
    if not request.location:
        raise FleetError("--hosting needs --location: a hosting stack is once per cloud, subscription and region")
    if not request.azure_tenant_id:
        raise FleetError("--hosting needs --azure-tenant-id GUID: the Entra tenant that manages the hosting "
                         "subscription (its hosted tenants' Azure side signs in there)")
    example = "  # hr-connector:subscriptionId: 00000000-0000-0000-0000-000000000000\n"
    optional = (f"  hr-connector:subscriptionId: {json.dumps(request.subscription_id.strip())}\n"
                if request.subscription_id else example)
    if request.image:
        optional += ("  # A prebuilt uploader image, pinned by digest: this stack builds nothing and owns no registry,"
                     "\n  # and each hosted tenant sets image too (this one, or its own).\n"
                     f"  hr-connector:image: {json.dumps(request.image.strip())}\n")
    return Template(HOSTING_TEMPLATE.read_text(encoding="utf-8")).substitute(
        name=request.name, cloud=cloud_name, cloud_title=_TITLE.get(cloud_name, cloud_name),
        azure_environment=azure_environment, family=_FAMILY.get(azure_environment, ""),
        location=request.location.strip(), stacks_dir_flag=stacks_dir_flag,
        secrets_provider=secrets_provider(azure_environment),
        alert_emails="[" + ", ".join(json.dumps(a.strip()) for a in request.alert_emails) + "]",
        azure_tenant_id=json.dumps(request.azure_tenant_id.strip()),
        optional=optional,
        network=request.network or DEFAULT_NEW_NETWORK.get(cloud_name, "public"),
        network_keys=_network_lines(request, request.network or DEFAULT_NEW_NETWORK.get(cloud_name, "public"),
                                    address_space),
    )


def render_stack_file(request: StackRequest, stacks_dir_flag: str = "", directory: Path | None = None) -> str:
    """The stack file's text, validated: FleetError for a bad name/cloud, ConfigError naming every key otherwise.

    `stacks_dir_flag` (` --stacks-dir DIR` or empty) goes into the next steps the file's comments give."""
    _checked_name(request.name)
    cloud = _cloud(request.cloud)
    if request.deploy_app_id is not None and not GUID_RE.match(request.deploy_app_id.strip()):
        raise FleetError("--deploy-app-id: must be the deploy app's application (client) ID, a GUID")
    if directory is not None:
        request = _with_hosting_defaults(request, directory)
    azure_environment = (request.azure_environment or cloud.azure_environment).strip().lower()
    owns_network = (request.network or DEFAULT_NEW_NETWORK[cloud.name]) == "private" and not request.hosted_by
    peers = _network_owners(directory) if directory is not None and owns_network else {}
    address_space = request.address_space.strip() if request.address_space else None
    if owns_network and address_space is None:
        hub = _ranges((request.runner_network or {}).get("addressSpace"))
        address_space = free_address_space([s.address_space for s in peers.values()] + hub)
    if request.hosting:
        text = _render_hosting(request, cloud.name, azure_environment, stacks_dir_flag, address_space)
    else:
        text = _render_tenant(request, cloud.name, azure_environment, stacks_dir_flag, address_space)
    # The program's own rules on the file as the Pulumi CLI would read it (Pulumi.yaml's defaults and types
    # merged in): raises ConfigError naming every broken key before anything is written.
    with tempfile.TemporaryDirectory() as scratch:
        candidate = Path(scratch) / f"Pulumi.{request.name}.yaml"
        candidate.write_text(text, encoding="utf-8")
        unpinned = _unpinned_image(request)
        try:
            settings = load_stack_settings(candidate, REPO_ROOT)
        except ConfigError as exc:  # every problem at once: the file's, and an --image not pinned
            found = all_problems(exc)
            if unpinned is not None and not any(p.key == unpinned.key for p in found):
                raise ConfigProblems([*found, unpinned]) from None
            raise
        if unpinned is not None:
            raise unpinned
        if request.hosted_by and directory is not None:
            _check_against_hosting(settings, directory)
        if directory is not None and settings.runner_network is not None:  # `check`'s rule across the folder
            from provisioning.tools.check import overlapping_peers

            mine = directory / candidate.name
            clashes = overlapping_peers({**{p: s for p, s in peers.items() if p != mine}, mine: settings})
            if clashes.get(mine):
                raise ConfigProblems([ConfigError(key, rule) for key, rule in clashes[mine]])
        _runs_a_prebuilt_image(request, settings)
    return text


def _check_against_hosting(settings: Settings, directory: Path) -> None:
    """The tenant fits its hosting stack (cloud family, location, subscription): the program's own rule."""
    from provisioning.components.hosting import mismatches

    hosting = load_stack_settings(stack_file(directory, settings.hosted_by_stack or ""), REPO_ROOT)
    # registryId: only whether the hosting stack owns a registry matters here (it does unless it sets `image`)
    found = mismatches(settings, {"hosting": True, "azureEnvironment": hosting.azure_environment,
                                  "location": hosting.location, "subscriptionId": hosting.subscription_id or "",
                                  "azureTenantId": hosting.azure_tenant_id or "", "network": hosting.network,
                                  "registryId": "" if hosting.image else "its registry"})
    if found:
        raise ConfigProblems([ConfigError(key, rule) for key, rule in found])


def _unpinned_image(request: StackRequest) -> ConfigError | None:
    """--image not pinned by digest (the `image` key's own rule, with the pin), as a problem of the key it writes."""
    if request.image and (rule := image_problem(request.image.strip(), pinned=True)) is not None:
        return ConfigError("hr-connector:image", rule)
    return None


def _runs_a_prebuilt_image(request: StackRequest, settings: Settings) -> None:
    """A private stack that would build into a registry of its own (no --image; a hosting stack or a tenant that is
    not hosted) is refused (exit 2): it runs a prebuilt image and owns no registry."""
    if not (settings.private and settings.builds_image):
        return
    where = ("the release's image imported into a registry of yours in Azure Government with az acr import "
             "(docs/releases.md#gcc-high-and-dod-import-into-your-own-registry)"
             if settings.government else "the release's image (docs/releases.md#the-uploader-image)")
    chosen = "--network private" if request.network == PRIVATE else f"what new-stack writes for {settings.cloud.name}"
    tenants = "; its hosted tenants then set the same image (--hosted-by copies it)" if settings.hosting else ""
    raise FleetError(f"--image {PINNED_IMAGE_FORM} is needed: a network: private stack ({chosen}) runs a prebuilt "
                     f"image and owns no registry, because {REGISTRY_CMK_WHY}; give {where}{tenants}")


def _render_tenant(request: StackRequest, cloud_name: str, azure_environment: str, stacks_dir_flag: str,
                   address_space: str | None) -> str:
    if not request.tenant_id:
        raise FleetError("--tenant-id is required (the Microsoft 365 tenant's ID), unless --hosting")
    cloud = get_cloud(cloud_name)
    return Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        name=request.name,
        cloud=cloud.name,
        cloud_title=_TITLE.get(cloud.name, cloud.name),
        tenant_id=request.tenant_id.strip(),
        azure_environment=azure_environment,
        location=(request.location or DEFAULT_LOCATION.get(azure_environment, "eastus")).strip(),
        secrets_provider=secrets_provider(azure_environment),
        role_hint=_ROLE_HINT.get(cloud.name, _ROLE_HINT["commercial"]),
        stacks_dir_flag=stacks_dir_flag,
        optional=_optional_lines(request),
        protection=DEFAULT_NEW_PROTECTION[cloud.name],
        schedule=json.dumps((request.schedule or spread_schedule(request.name)).strip()),
        schedule_note="given with --schedule" if request.schedule else
        f"Picked by new-stack from a hash of the stack name: a minute between {NIGHT_UTC[0]:02d}:00 and "
        f"{NIGHT_UTC[1]:02d}:00 UTC, so tenants do not all start at once.",
        network=request.network or DEFAULT_NEW_NETWORK[cloud.name],
        network_keys=_network_lines(request, request.network or DEFAULT_NEW_NETWORK[cloud.name], address_space),
    )


def create_stack(directory: Path, request: StackRequest, stacks_dir_flag: str = "") -> Path:
    """Write Pulumi.<name>.yaml in `directory`; never overwrites an existing file."""
    path = stack_file(directory, _checked_name(request.name))
    if path.exists():
        raise FleetError(f"{path}: already exists; new-stack never overwrites a stack file (edit it instead)")
    text = render_stack_file(request, stacks_dir_flag, directory)
    directory.mkdir(parents=True, exist_ok=True)
    # O_EXCL: a file created meanwhile by someone else is not overwritten either.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise FleetError(f"{path}: already exists; new-stack never overwrites a stack file") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    return path


def next_steps(request: StackRequest, stacks_dir_flag: str = "") -> list[str]:
    """What to run after new-stack, with the same --stacks-dir (the rest is in the file's comments); for a tenant
    stack also the admin consent a multi-tenant deploy app needs there (provisioning/identities.py)."""
    if request.hosting:
        return [
            f"python -m provisioning check --stack {request.name}{stacks_dir_flag}",
            f"pulumi stack init {request.name} --secrets-provider \"{secrets_provider(_azure_environment(request))}\""
            "  (docs/gitops.md; <vault>: your secrets vault), then pulumi up --stack " + request.name
            + " (before its tenants)",
            f"python -m provisioning new-stack NAME --cloud C --tenant-id T --hosted-by {request.name}"
            f"{stacks_dir_flag}  (each hosted tenant)",
        ]
    private = (request.network or DEFAULT_NEW_NETWORK.get(get_cloud(request.cloud).name, "public")) == "private"
    deploy = (" (network: private: from a machine that reaches its network, in the pipeline the platform's self-hosted "
              "runner: docs/gitops.md#7-private-stacks-a-runner-in-the-deploy-network)") if private else ""
    steps = [
        f"python -m provisioning check --stack {request.name}{stacks_dir_flag}",
        f"python -m provisioning render --stack {request.name}{stacks_dir_flag}",
        f"pulumi stack init {request.name} --secrets-provider \"{secrets_provider(_azure_environment(request))}\""
        "  (docs/gitops.md; <vault>: your secrets vault), then pulumi up --stack " + request.name + deploy,
        *consent_instructions(get_cloud(request.cloud), request.tenant_id.strip(), request.deploy_app_id),
    ]
    if request.runner_network is not None and not request.hosted_by:
        # The peering back and the zone links are made in the runner network's subscription with this stack's
        # Azure-side sign-in (network.py), which reaches no other directory: said here, as check cannot know
        # the directory of that subscription.
        vnet = str(request.runner_network.get("virtualNetworkId", ""))
        subscription = vnet.split("/")[2] if vnet.count("/") > 2 else "?"
        side = (request.azure_tenant_id or request.tenant_id).strip()
        steps.append(f"runnerNetwork is in subscription {subscription}: this stack's Azure side (azureTenantId, "
                     f"here {side}) must be that subscription's directory, or its deploy cannot peer back; a "
                     "platform directory other than the tenant's: --azure-tenant-id (docs/gitops.md#7-private-"
                     "stacks-a-runner-in-the-deploy-network)")
    return steps


__all__ = ["ConfigError", "DEFAULT_LOCATION", "StackRequest", "create_stack", "next_steps", "render_stack_file"]
