"""`network: private` (issue 26 part 3): the config key and its companions refused with the key named; the real
program under mocks renders the VNet, the internal workload-profiles environment on its delegated subnet, the
private endpoints and zones, the Premium registry with public access disabled, and a vault and drop zone that deny
public traffic, and the workspace's saved queries in a linked account of its own; FedRAMP High's Deny members pass
except the registry's customer-managed key when the stack builds into a registry of its own (no `image`);
a hosting stack owns the network and its hosted tenant's endpoints go in it. With `runnerNetwork` (the deploy runner's
hub): no zones of its own, links from the hub's zones, peerings both ways, and the certificate and image push waiting
for them; `check` and `new-stack` keep the ranges of stacks peering with one hub apart; a private hosting stack with
`image` owns no registry and its tenant with its own image holds no AcrPull. Six Pulumi evaluations."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from provisioning.components.network import APP_DELEGATION, HUB_PEERING
from provisioning.config import ConfigError, all_problems, config_warnings, load_settings
from provisioning.naming import Names
from provisioning.tools.check import check_stacks, overlapping_peers
from provisioning.tools.fleet import FleetError
from provisioning.tools.newstack import StackRequest, create_stack, read_runner_network
from provisioning.tools.offline import REPO_ROOT, UNKNOWN, Evaluation, _evaluate_here, load_stack_file
from provisioning.tools.policy import load_initiative, violations
from uploader.clouds import CLOUDS, PRIVATE_DNS_ZONES

TENANT = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
PLATFORM = "9f1c2a3b-4d5e-4f60-8a7b-8c9d0e1f2a3b"
ROUTE_TABLE = ("/subscriptions/11111111-2222-4333-8444-555555555555/resourceGroups/rg-hub/providers/"
               "Microsoft.Network/routeTables/rt-to-firewall")
#: What a private stack that builds its own registry is refused for: the registry's customer-managed key
#: (docs/configuration.md#a-private-stack-runs-a-prebuilt-image; new-stack writes private stacks with `image`).
LEFT_OUT = {"5b9159ae-1701-4a6f-9a7a-aa9c8ddd0580"}
#: What new-stack asks of a private stack instead: a prebuilt image pinned by digest.
IMAGE = "contosohr.azurecr.us/hr-uploader@sha256:" + "4f" * 32
PE = "azure-native:network:PrivateEndpoint"
ZONE_GROUP = "azure-native:network:PrivateDnsZoneGroup"
ZONE = "azure-native:privatedns:PrivateZone"
SUBNET = "azure-native:network:Subnet"
LINK = "azure-native:privatedns:VirtualNetworkLink"
PEERING = "azure-native:network:VirtualNetworkPeering"
#: The runner's hub network as the platform program exports it (runnerNetwork), in another subscription.
HUB_SUB = "22222222-2222-4333-8444-555555555555"
HUB_IDS = f"/subscriptions/{HUB_SUB}/resourceGroups/rg-hr-platform/providers/Microsoft.Network/"


def runner_network(environment: str = "public", address_space: str = "10.59.0.0/24") -> dict[str, Any]:
    zones = {group: f"{HUB_IDS}privateDnsZones/{zone}" for group, zone in PRIVATE_DNS_ZONES[environment].items()}
    return {"virtualNetworkId": HUB_IDS + "virtualNetworks/vnet-hr-runner", "addressSpace": address_space,
            "privateDnsZoneIds": zones}


def _problems(**extra: Any) -> dict[str, str]:
    base = {"hr-connector:cloud": "commercial", "hr-connector:tenantId": TENANT, "hr-connector:location": "eastus"}
    with pytest.raises(ConfigError) as caught:
        load_settings({**base, **{f"hr-connector:{k}": v for k, v in extra.items()}})
    return {p.key: p.rule for p in all_problems(caught.value)}


def test_config_network_and_its_companions() -> None:
    base = {"hr-connector:tenantId": TENANT, "hr-connector:location": "eastus"}
    assert load_settings(base).network == "public" and not load_settings(base).private
    private = load_settings({**base, "hr-connector:network": "Private",
                             "hr-connector:dropZone": '{"allowedIpRanges": ["20.30.40.0/24", "52.1.2.3"]}',
                             "hr-connector:egressRouteTableId": ROUTE_TABLE})
    assert private.private and private.drop_zone.allowed_ip_ranges == ("20.30.40.0/24", "52.1.2.3")
    assert private.egress_route_table_id == ROUTE_TABLE
    assert "public, private" in _problems(network="vpn")["hr-connector:network"]
    only_private = _problems(egressRouteTableId=ROUTE_TABLE)["hr-connector:egressRouteTableId"]
    assert "only used with network: private" in only_private
    assert "route table's ARM ID" in _problems(network="private", egressRouteTableId="rt-1")[
        "hr-connector:egressRouteTableId"]
    assert "only used with network: private" in _problems(dropZone={"allowedIpRanges": ["20.30.40.0/24"]})[
        "hr-connector:dropZone.allowedIpRanges"]
    for bad, rule in (("10.1.0.0/16", "not a public range"), ("2001:db8::/32", "IPv4"),
                      ("20.30.40.0/31", "not supported"), ("20.30.40.1/24", "host bits"), ("not-an-ip", "IPv4")):
        found = _problems(network="private", dropZone={"allowedIpRanges": ["20.30.40.0/24", bad]})
        assert rule in found["hr-connector:dropZone.allowedIpRanges[1]"], (bad, found)
    hosted = _problems(network="private", hostedBy="hub", egressRouteTableId=ROUTE_TABLE)
    assert "in the hosting stack" in hosted["hr-connector:egressRouteTableId"]


def test_config_runner_network_and_address_space() -> None:
    """runnerNetwork's exact shape (ARM IDs of the right types, the environment's zone names, one subscription) and
    addressSpace's rules, each refusal naming the key and the rule; only with network: private, not hosted."""
    base = {"hr-connector:tenantId": TENANT, "hr-connector:location": "eastus", "hr-connector:network": "private"}
    settings = load_settings({**base, "hr-connector:runnerNetwork": json.dumps(runner_network()),
                              "hr-connector:addressSpace": "10.61.4.0/22"})
    assert settings.runner_network is not None and settings.runner_network.virtual_network.name == "vnet-hr-runner"
    assert settings.runner_network.to_json() == runner_network()
    assert settings.subnets == ("10.61.4.0/24", "10.61.5.0/26")
    assert load_settings(base).address_space == "10.60.0.0/23" and load_settings(base).subnets == \
        ("10.60.0.0/24", "10.60.1.0/26")  # the fixed ranges of before
    rn = runner_network()
    wrong_type = {**rn, "virtualNetworkId": rn["virtualNetworkId"].replace("virtualNetworks", "routeTables")}
    wrong_zone = {**rn, "privateDnsZoneIds": {**rn["privateDnsZoneIds"],
                                              "blob": rn["privateDnsZoneIds"]["vault"]}}
    other_sub = {**rn, "privateDnsZoneIds": {**rn["privateDnsZoneIds"], "registry": rn["privateDnsZoneIds"][
        "registry"].replace(HUB_SUB, "33333333-2222-4333-8444-555555555555")}}
    key = "hr-connector:runnerNetwork"
    for bad, where, rule in (
            ({k: v for k, v in rn.items() if k != "addressSpace"}, f"{key}.addressSpace", "is required"),
            ({**rn, "subnet": "x"}, f"{key}.subnet", "unknown key"),
            (wrong_type, f"{key}.virtualNetworkId", "ARM ID of a virtual network"),
            (wrong_zone, f"{key}.privateDnsZoneIds.blob", "registers in privatelink.blob.core.windows.net"),
            (other_sub, f"{key}.privateDnsZoneIds.registry", "in one subscription"),
            ({**rn, "addressSpace": "10.59.0.1/24"}, f"{key}.addressSpace", "host bits zero"),
            ("not json", key, "must be an object")):
        found = _problems(network="private", runnerNetwork=bad if isinstance(bad, str) else json.dumps(bad))
        assert rule in found[where], (where, found)
    gov = _problems(cloud="gcchigh", location="usgovvirginia", network="private", runnerNetwork=rn)
    assert "privatelink.vaultcore.usgovcloudapi.net" in gov[f"{key}.privateDnsZoneIds.vault"]
    assert "only used with network: private" in _problems(runnerNetwork=rn)[key]
    assert "set runnerNetwork in the hosting stack" in _problems(network="private", hostedBy="hub",
                                                                 runnerNetwork=rn)[key]
    space = "hr-connector:addressSpace"
    for bad_space, rule in (("10.61.0.0/24", "need a /23 or larger"), ("20.61.0.0/23", "RFC 1918"),
                            ("10.61.1.0/23", "host bits zero"), ("fd00::/48", "IPv4"), ("10.61.0.0", "CIDR")):
        assert rule in _problems(network="private", addressSpace=bad_space)[space], bad_space
    assert "only used with network: private" in _problems(addressSpace="10.61.0.0/23")[space]
    hub_clash = _problems(network="private", addressSpace="10.59.0.0/23", runnerNetwork=rn)[space]
    assert "overlaps runnerNetwork.addressSpace 10.59.0.0/24" in hub_clash and "virtual-network-manage-peering" in \
        hub_clash


def _stack(directory: Path, name: str, lines: str) -> Path:
    path = directory / f"Pulumi.{name}.yaml"
    path.write_text("config:\n" + lines, encoding="utf-8")
    return path


def _drop_zone(ev: Evaluation) -> Any:
    (account,) = [a for a in ev.of_type("azure-native:storage:StorageAccount") if not a.name.endswith("query-storage")]
    return account


@pytest.fixture(scope="module")
def private_stack(tmp_path_factory: pytest.TempPathFactory) -> Evaluation:
    path = _stack(tmp_path_factory.mktemp("stacks"), "contoso-private",
                  f"  hr-connector:tenantId: {TENANT}\n  hr-connector:location: eastus\n"
                  "  hr-connector:network: private\n  hr-connector:certificate:\n    protection: vault\n")
    return _evaluate_here(load_stack_file(path), REPO_ROOT)


@pytest.mark.pulumi
def test_the_render_of_a_private_stack(private_stack: Evaluation) -> None:
    ev = private_stack
    vnet = ev.one("azure-native:network:VirtualNetwork")
    subnets = {s.inputs["subnetName"]: s for s in ev.of_type(SUBNET)}
    jobs, endpoints = subnets["snet-jobs"], subnets["snet-endpoints"]
    assert jobs.inputs["virtualNetworkName"] in (vnet.inputs["virtualNetworkName"], UNKNOWN)  # known once created
    assert vnet.urn in jobs.depends_on and vnet.urn in endpoints.depends_on
    assert [d["serviceName"] for d in jobs.inputs["delegations"]] == [APP_DELEGATION]
    assert jobs.inputs["natGateway"]["id"] == ev.one("azure-native:network:NatGateway").id
    assert jobs.inputs["defaultOutboundAccess"] is False
    environment = ev.one("azure-native:app:ManagedEnvironment")
    assert environment.inputs["vnetConfiguration"] == {"internal": True, "infrastructureSubnetId": jobs.id}
    assert environment.inputs["workloadProfiles"][0]["workloadProfileType"] == "Consumption"
    job = ev.one("azure-native:app:Job")
    assert job.inputs["workloadProfileName"] == "Consumption"
    assert job.inputs["environmentId"] == environment.id
    assert {pe.urn for pe in ev.of_type(PE)} <= set(job.depends_on)  # the job waits for its endpoints
    # private endpoints: vault, blob, registry, each in the endpoints subnet with its zone, the job after them
    zones = {z.inputs["privateZoneName"]: z.id for z in ev.of_type(ZONE)}
    assert set(zones) == {name for _, name in PRIVATE_DNS_ZONES["public"].items()}
    links = ev.of_type("azure-native:privatedns:VirtualNetworkLink")
    assert {link.inputs["privateZoneName"] for link in links} == set(zones)
    assert all(link.inputs["virtualNetwork"]["id"] == vnet.id and not link.inputs["registrationEnabled"]
               for link in links)
    targets = {"vault": ev.one("azure-native:keyvault:Vault").id,
               "blob": _drop_zone(ev).id,
               "registry": ev.one("azure-native:containerregistry:Registry").id}
    found = {}
    for endpoint in ev.of_type(PE):
        (connection,) = endpoint.inputs["privateLinkServiceConnections"]
        (group,) = connection["groupIds"]
        assert endpoint.inputs["subnet"]["id"] == endpoints.id
        found[group] = connection["privateLinkServiceId"]
    assert found == targets
    zone_of = dict(PRIVATE_DNS_ZONES["public"].items())
    assert {g.inputs["privateDnsZoneConfigs"][0]["privateDnsZoneId"] for g in ev.of_type(ZONE_GROUP)} == \
        {zones[zone_of[group]] for group in targets}
    # no public traffic to the vault, the drop zone or the registry
    vault = ev.one("azure-native:keyvault:Vault").inputs["properties"]
    assert vault["publicNetworkAccess"] == "Disabled" and vault["networkAcls"]["defaultAction"] == "Deny"
    account = _drop_zone(ev).inputs
    assert account["publicNetworkAccess"] == "Disabled"
    assert account["networkRuleSet"] == {"defaultAction": "Deny", "bypass": "None", "ipRules": []}
    registry = ev.one("azure-native:containerregistry:Registry").inputs
    assert registry["sku"] == {"name": "Premium"} and registry["publicNetworkAccess"] == "Disabled"
    assert ev.outputs["network"] == "private"
    # saved queries in the stack's own account (forceCmkForQuery), linked for Query, reached by the workspace's
    # identity as a trusted service, holding Storage Table Data Contributor on that account only
    workspace = ev.one("azure-native:operationalinsights:Workspace")
    assert workspace.inputs["forceCmkForQuery"] is True and workspace.inputs["identity"] == {"type": "SystemAssigned"}
    query = next(a for a in ev.of_type("azure-native:storage:StorageAccount") if a.name.endswith("query-storage"))
    assert query.inputs["networkRuleSet"] == {"defaultAction": "Deny", "bypass": "AzureServices", "ipRules": []}
    assert query.inputs["allowSharedKeyAccess"] is False and query.inputs["location"] == workspace.inputs["location"]
    link = ev.one("azure-native:operationalinsights:LinkedStorageAccount")
    assert link.inputs["dataSourceType"] == "Query" and link.inputs["storageAccountIds"] == [query.id]
    (grant,) = [g for g in ev.of_type("azure-native:authorization:RoleAssignment") if g.inputs["scope"] == query.id]
    assert grant.inputs["roleDefinitionId"].endswith("/0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3")
    assert grant.inputs["principalId"] == workspace.state["identity"]["principalId"] and grant.urn in link.depends_on


@pytest.mark.pulumi
def test_a_private_stack_that_builds_its_registry_is_refused_for_the_key_and_told_the_fix(
        private_stack: Evaluation) -> None:
    """This stack sets no `image` (new-stack would refuse it; a hand-written file can): it builds into a Premium
    registry of its own, which FedRAMP High refuses for the customer-managed key alone; the DENY line names the fix,
    and `check` without --policy warns about it on the `image` key. With `image` the warning is gone."""
    _, members = load_initiative("fedramp-high")
    found = violations(private_stack, members)
    assert {v.policy_id for v in found} == LEFT_OUT
    assert "-- fix: set hr-connector:image to a prebuilt image pinned by digest" in found[0].line("contoso-private")
    base = {"hr-connector:tenantId": TENANT, "hr-connector:location": "eastus", "hr-connector:network": "private"}
    (warning,) = [w for w in config_warnings(load_settings(base)) if w.key == "hr-connector:image"]
    assert "5b9159ae" in warning.rule and "pinned by digest" in warning.rule
    pinned = load_settings({**base, "hr-connector:image": "ghcr.io/contoso/hr-uploader@sha256:" + "ab" * 32})
    assert not pinned.builds_image and not [w for w in config_warnings(pinned) if w.key == "hr-connector:image"]
    public = load_settings({**base, "hr-connector:network": "public"})
    assert public.builds_image and not [w for w in config_warnings(public) if w.key == "hr-connector:image"]


@pytest.fixture(scope="module")
def hub_stack(tmp_path_factory: pytest.TempPathFactory) -> Evaluation:
    """A private tenant with the runner's hub network (in another subscription) and a range of its own."""
    path = _stack(tmp_path_factory.mktemp("hub"), "contoso-hub",
                  f"  hr-connector:tenantId: {TENANT}\n  hr-connector:location: eastus\n"
                  "  hr-connector:network: private\n  hr-connector:certificate:\n    protection: vault\n"
                  "  hr-connector:addressSpace: 10.61.2.0/23\n"
                  f"  hr-connector:runnerNetwork: {json.dumps(runner_network())}\n")
    return _evaluate_here(load_stack_file(path), REPO_ROOT)


@pytest.mark.pulumi
def test_the_render_of_a_private_stack_with_the_runners_network(hub_stack: Evaluation) -> None:
    """No zone of its own; each hub zone linked to the VNet; peerings both ways (the hub's a child of the hub VNet,
    through a provider pinned to the hub's subscription); the endpoints register in the hub's zones; the VNet and
    subnets in addressSpace; the certificate and the image push wait for the endpoint, zone group, links, peerings."""
    ev = hub_stack
    assert not ev.of_type(ZONE)
    vnet = ev.one("azure-native:network:VirtualNetwork")
    assert vnet.inputs["addressSpace"] == {"addressPrefixes": ["10.61.2.0/23"]}
    assert {s.inputs["subnetName"]: s.inputs["addressPrefix"] for s in ev.of_type(SUBNET)} == \
        {"snet-jobs": "10.61.2.0/24", "snet-endpoints": "10.61.3.0/26"}
    hub = runner_network()
    link_name = Names("contoso-hub", TENANT).hub_link
    (hub_provider,) = [p for p in ev.of_type("pulumi:providers:azure-native") if p.inputs.get("subscriptionId") ==
                       HUB_SUB]
    links = {link.inputs["privateZoneName"]: link for link in ev.of_type(LINK)}
    assert set(links) == {name for _, name in PRIVATE_DNS_ZONES["public"].items()}
    for link in links.values():
        assert link.inputs["resourceGroupName"] == "rg-hr-platform" and link.inputs["virtualNetworkLinkName"] == \
            link_name
        assert link.inputs["virtualNetwork"]["id"] == vnet.id and link.inputs["registrationEnabled"] is False
        assert ev.provider_of(link) == hub_provider
    peerings = {p.inputs["virtualNetworkPeeringName"]: p for p in ev.of_type(PEERING)}
    to_hub, from_hub = peerings[HUB_PEERING], peerings[link_name]
    assert to_hub.inputs["remoteVirtualNetwork"]["id"] == hub["virtualNetworkId"]
    assert to_hub.inputs["resourceGroupName"] == "rg-hr-connector-contoso-hub"
    assert (from_hub.inputs["virtualNetworkName"], from_hub.inputs["resourceGroupName"]) == \
        ("vnet-hr-runner", "rg-hr-platform")
    assert from_hub.inputs["remoteVirtualNetwork"]["id"] == vnet.id and ev.provider_of(from_hub) == hub_provider
    assert ev.provider_of(to_hub) != hub_provider  # the stack's own subscription
    for peering in (to_hub, from_hub):
        assert {k: peering.inputs[k] for k in ("allowVirtualNetworkAccess", "allowForwardedTraffic",
                                                "allowGatewayTransit", "useRemoteGateways")} == \
            {"allowVirtualNetworkAccess": True, "allowForwardedTraffic": False, "allowGatewayTransit": False,
             "useRemoteGateways": False}
    zone_groups = {g.inputs["privateDnsZoneConfigs"][0]["name"]: g for g in ev.of_type(ZONE_GROUP)}
    assert {group: g.inputs["privateDnsZoneConfigs"][0]["privateDnsZoneId"] for group, g in zone_groups.items()} == \
        hub["privateDnsZoneIds"]
    reach = {link.urn for link in links.values()} | {to_hub.urn, from_hub.urn}
    endpoints = {pe.inputs["privateLinkServiceConnections"][0]["groupIds"][0]: pe for pe in ev.of_type(PE)}
    for waiting, group in ((ev.one("pulumi-python:dynamic/hrconnector:VaultCertificate"), "vault"),
                           (ev.one("docker-build:index:Image"), "registry")):
        needs = reach | {endpoints[group].urn, zone_groups[group].urn}
        assert needs <= set(waiting.depends_on), (waiting.type, needs - set(waiting.depends_on))


@pytest.mark.pulumi
def test_fedramp_high_passes_a_private_stack_with_the_runners_network(hub_stack: Evaluation) -> None:
    _, members = load_initiative("fedramp-high")
    assert {v.policy_id for v in violations(hub_stack, members)} == LEFT_OUT


@pytest.mark.pulumi
def test_a_hosting_stack_owns_the_network_and_its_tenants_endpoints_go_in_it(tmp_path: Path) -> None:
    """One private hosting stack (egress through the customer's route table, no NAT gateway; the runner's hub network)
    and one hosted tenant: the tenant declares no network of its own; its vault's and drop zone's endpoints are in the
    hosting stack's endpoints subnet and register in the hub's zones, which the hosting stack exports and links to
    its VNet (usgovernment names for a GCC High fleet)."""
    hub = runner_network("usgovernment")
    hosting_path = _stack(tmp_path, "hub-gov", (
        "  hr-connector:hosting: true\n  hr-connector:cloud: gcchigh\n  hr-connector:location: usgovvirginia\n"
        f"  hr-connector:alertEmails: [platform@contoso.example]\n  hr-connector:azureTenantId: {PLATFORM}\n"
        f"  hr-connector:network: private\n  hr-connector:egressRouteTableId: {ROUTE_TABLE}\n"
        f"  hr-connector:runnerNetwork: {json.dumps(hub)}\n"))
    hosting = _evaluate_here(load_stack_file(hosting_path), REPO_ROOT)
    assert not hosting.of_type("azure-native:network:NatGateway")
    jobs = next(s for s in hosting.of_type(SUBNET) if s.inputs["subnetName"] == "snet-jobs")
    assert jobs.inputs["routeTable"] == {"id": ROUTE_TABLE} and "natGateway" not in jobs.inputs
    assert not hosting.of_type(ZONE) and len(hosting.of_type(PEERING)) == 2
    assert {link.inputs["privateZoneName"] for link in hosting.of_type(LINK)} == {
        "privatelink.vaultcore.usgovcloudapi.net", "privatelink.blob.core.usgovcloudapi.net", "privatelink.azurecr.us"}
    out = hosting.outputs
    assert out["network"] == "private" and out["privateDnsZoneIds"] == hub["privateDnsZoneIds"]
    image = hosting.one("docker-build:index:Image")  # the hosting stack's push waits for its registry's endpoint
    assert {pe.urn for pe in hosting.of_type(PE)} | {link.urn for link in hosting.of_type(LINK)} <= \
        set(image.depends_on)
    (registry_endpoint,) = hosting.of_type(PE)
    assert registry_endpoint.inputs["subnet"]["id"] == out["privateEndpointSubnetId"]

    tenant_path = _stack(tmp_path, "tailspin", (
        f"  hr-connector:tenantId: {TENANT}\n  hr-connector:cloud: gcchigh\n  hr-connector:location: usgovvirginia\n"
        f"  hr-connector:hostedBy: hub-gov\n  hr-connector:network: private\n"
        f"  hr-connector:azureTenantId: {PLATFORM}\n"))
    tenant = _evaluate_here(load_stack_file(tenant_path), REPO_ROOT, {"hub-gov": out})
    assert not tenant.of_type("azure-native:network:VirtualNetwork") and not tenant.of_type(ZONE)
    groups = {}
    for endpoint in tenant.of_type(PE):
        assert endpoint.inputs["subnet"]["id"] == out["privateEndpointSubnetId"]
        groups[endpoint.inputs["privateLinkServiceConnections"][0]["groupIds"][0]] = endpoint
    assert set(groups) == {"vault", "blob"}  # the image is the hosting stack's: no registry of its own
    assert {g.inputs["privateDnsZoneConfigs"][0]["privateDnsZoneId"] for g in tenant.of_type(ZONE_GROUP)} == \
        {out["privateDnsZoneIds"]["vault"], out["privateDnsZoneIds"]["blob"]}
    assert tenant.one("azure-native:app:Job").inputs["workloadProfileName"] == "Consumption"
    assert tenant.one("azure-native:keyvault:Vault").inputs["properties"]["publicNetworkAccess"] == "Disabled"


@pytest.mark.pulumi
def test_a_private_hosting_stack_with_an_image_owns_no_registry(tmp_path: Path) -> None:
    """A GCC High hosting stack that sets `image` builds nothing: no registry, no push, no registry endpoint (nothing
    registers in the registry zone), FedRAMP High finds nothing to deny and `check` gives no image warning; it exports
    the image and empty registry outputs. A hosted tenant with its own image holds no AcrPull on anything: it pulls
    from its image's registry with its own identity. (`check` refusing a tenant without `image`:
    test_policy_check.py.)"""
    hosting_path = _stack(tmp_path, "hub-gov", (
        "  hr-connector:hosting: true\n  hr-connector:cloud: gcchigh\n  hr-connector:location: usgovvirginia\n"
        f"  hr-connector:alertEmails: [platform@contoso.example]\n  hr-connector:azureTenantId: {PLATFORM}\n"
        f"  hr-connector:network: private\n  hr-connector:image: {IMAGE}\n"))
    hosting = _evaluate_here(load_stack_file(hosting_path), REPO_ROOT)
    for kind in ("azure-native:containerregistry:Registry", "docker-build:index:Image", PE, ZONE_GROUP):
        assert not hosting.of_type(kind), kind
    out = hosting.outputs
    assert (out["image"], out["registryId"], out["registryLoginServer"]) == (IMAGE, "", "")
    _, members = load_initiative("fedramp-high")
    assert violations(hosting, members) == []
    from provisioning.tools.offline import load_stack_settings

    assert not [w for w in config_warnings(load_stack_settings(hosting_path, REPO_ROOT)) if w.key.endswith(":image")]

    own = "tailspinhr.azurecr.us/hr-uploader@sha256:" + "5e" * 32
    tenant_path = _stack(tmp_path, "tailspin", (
        f"  hr-connector:tenantId: {TENANT}\n  hr-connector:cloud: gcchigh\n  hr-connector:location: usgovvirginia\n"
        f"  hr-connector:hostedBy: hub-gov\n  hr-connector:network: private\n  hr-connector:image: {own}\n"))
    tenant = _evaluate_here(load_stack_file(tenant_path), REPO_ROOT, {"hub-gov": out})
    acr_pull = "/7f951dda-4ed3-4680-a7ca-43fe172d538d"
    assert not [r for r in tenant.of_type("azure-native:authorization:RoleAssignment")
                if r.inputs["roleDefinitionId"].endswith(acr_pull)]
    job = tenant.one("azure-native:app:Job")
    assert job.inputs["template"]["containers"][0]["image"] == own
    assert job.inputs["configuration"]["registries"] == [
        {"server": "tailspinhr.azurecr.us",
         "identity": tenant.one("azure-native:managedidentity:UserAssignedIdentity").id}]
    assert {pe.inputs["privateLinkServiceConnections"][0]["groupIds"][0] for pe in tenant.of_type(PE)} == \
        {"vault", "blob"}


def test_the_egress_hosts_in_the_docs_are_the_cloud_tables() -> None:
    """docs/configuration.md#where-the-job-must-reach-egress: one row per cloud, its sign-in and ingestion hosts."""
    text = (REPO_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = text.split("### Where the job must reach (egress)", 1)[1].split("\n### ", 1)[0]
    for cloud in CLOUDS.values():
        host = cloud.authority_host.removeprefix("https://")
        ingestion = cloud.ingestion_url.removeprefix("https://")
        assert f"| `{cloud.name}` | `{host}` | `{ingestion}` |" in section, cloud.name
    for zones in PRIVATE_DNS_ZONES.values():
        assert all(f"`{name}`" in text for _, name in zones.items())


def _private_file(directory: Path, name: str, space: str | None, hub: dict[str, Any] | None = None) -> Path:
    lines = f"  hr-connector:tenantId: {TENANT}\n  hr-connector:location: eastus\n  hr-connector:network: private\n"
    if space:
        lines += f"  hr-connector:addressSpace: {space}\n"
    if hub is not None:
        lines += f"  hr-connector:runnerNetwork: {json.dumps(hub)}\n"
    return _stack(directory, name, lines)


def test_check_refuses_overlapping_stacks_that_peer_with_one_runner_network(tmp_path: Path) -> None:
    """Both stacks fail, each naming the key and both files; another hub, or no hub, is not a clash. No evaluation:
    the stacks with problems stop before it."""
    hub, other_hub = runner_network(), {**runner_network(), "virtualNetworkId": HUB_IDS + "virtualNetworks/vnet-b"}
    a = _private_file(tmp_path, "alpha", "10.60.4.0/23", hub)
    b = _private_file(tmp_path, "bravo", "10.60.4.0/22", hub)  # contains alpha's
    c = _private_file(tmp_path, "charlie", "10.60.4.0/23", other_hub)  # same range, another hub
    d = _private_file(tmp_path, "delta", None)  # 10.60.0.0/23, no hub: nothing peers it
    e = _private_file(tmp_path, "echo", "10.60.8.0/23", hub)
    from provisioning.tools.offline import load_stack_settings

    clashes = overlapping_peers({p: load_stack_settings(p, REPO_ROOT) for p in (a, b, c, d, e)})
    assert set(clashes) == {a, b}
    (key, rule), = clashes[a]
    assert key == "hr-connector:addressSpace" and "Pulumi.alpha.yaml" in rule and "Pulumi.bravo.yaml" in rule
    assert "10.60.4.0/22" in rule and "vnet-hr-runner" in rule and "nonoverlapping IP address spaces" in rule
    results = {r.stack: r for r in check_stacks([a, b])}
    assert all(r.exit_code == 2 and r.problems[0][0] == "hr-connector:addressSpace" for r in results.values())
    assert "Pulumi.alpha.yaml" in results["bravo"].line() and "Pulumi.bravo.yaml" in results["alpha"].line()


def test_new_stack_picks_a_free_range_and_writes_the_runner_network(tmp_path: Path) -> None:
    """The first /23 of the pool no private stack in the folder (nor the hub) uses; runnerNetwork from the platform's
    outputs; an explicit range that overlaps a peer is refused naming both files; bad files are named."""
    _private_file(tmp_path, "taken", None)  # 10.60.0.0/23, the default
    outputs = tmp_path / "platform.json"
    outputs.write_text(json.dumps({"backendUrl": "azblob://x", "runnerNetwork": runner_network("public",
                                                                                               "10.60.2.0/24")}))
    hub = read_runner_network(outputs)
    path = create_stack(tmp_path, StackRequest("fresh", "commercial", TENANT, network="private", runner_network=hub,
                                               image=IMAGE))
    text = path.read_text(encoding="utf-8")
    assert 'hr-connector:addressSpace: "10.60.4.0/23"' in text and "10.60.0.0/14" in text
    from provisioning.tools.offline import load_stack_settings

    assert load_stack_settings(path, REPO_ROOT).runner_network.to_json() == hub  # type: ignore[union-attr]
    with pytest.raises(ConfigError) as clash:
        create_stack(tmp_path, StackRequest("again", "commercial", TENANT, network="private", runner_network=hub,
                                            address_space="10.60.4.0/23", image=IMAGE))
    assert "Pulumi.fresh.yaml" in clash.value.rule and "Pulumi.again.yaml" in clash.value.rule
    public = create_stack(tmp_path, StackRequest("plain", "commercial", TENANT)).read_text(encoding="utf-8")
    assert "addressSpace" not in public and "runnerNetwork" not in public
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "other.json").write_text('{"backendUrl": "x"}', encoding="utf-8")
    for name, rule in (("broken.json", "is not JSON (line 1"), ("other.json", "holds no runnerNetwork"),
                       ("missing.json", "cannot be read")):
        with pytest.raises(FleetError, match=r"--runner-network-from .*" + re.escape(rule)):
            read_runner_network(tmp_path / name)


def test_new_stack_runner_network_through_the_command_line(tmp_path: Path) -> None:
    """The real CLI: a GCC High stack (private by default) from the platform's outputs, then refused for a public
    stack with the key named (exit 2)."""
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"runnerNetwork": runner_network("usgovernment")}), encoding="utf-8")
    base = [sys.executable, "-m", "provisioning", "new-stack", "--tenant-id", TENANT, "--stacks-dir", str(tmp_path),
            "--runner-network-from", str(outputs)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([*base[:4], "gov", "--cloud", "gcchigh", "--image", IMAGE, *base[4:]], capture_output=True,
                          text=True, env=env, cwd=REPO_ROOT, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "hr-connector:runnerNetwork:" in (tmp_path / "Pulumi.gov.yaml").read_text(encoding="utf-8")
    # check cannot know the runner subscription's directory: the next steps say the Azure side must be it, and that
    # a private stack's `pulumi up` runs where its network is reachable (the self-hosted runner).
    assert f"this stack's Azure side (azureTenantId, here {TENANT}) must be that subscription's directory" in \
        done.stdout and "--azure-tenant-id" in done.stdout
    assert "the platform's self-hosted runner" in done.stdout
    refused = subprocess.run([*base[:4], "pub", "--cloud", "commercial", *base[4:]], capture_output=True, text=True,
                             env=env, cwd=REPO_ROOT, timeout=120, check=False)
    assert refused.returncode == 2 and "hr-connector:runnerNetwork: is only used with network: private" in \
        refused.stderr


def test_hostile_runner_network_input_is_refused_naming_the_key_or_file(tmp_path: Path) -> None:
    """An outputs file is input: a key that would write lines of its own into the stack file (here: an egress route
    table of someone else's) is quoted, so the config rules refuse it; JSON nested past the parser's limit, a device
    and a control character in the path are one FleetError each; 0.0.0.0/0 or a public hub range is refused naming
    runnerNetwork.addressSpace (it was taken as 'no free /23 left'); a JSON-text config value nested too deeply is
    the key's error, not a RecursionError."""
    hub = runner_network("public", "10.60.2.0/24")
    zones = hub["privateDnsZoneIds"]
    registry = zones.pop("registry")
    route = "/subscriptions/" + "1" * 8 + "-1111-4111-8111-" + "1" * 12 + "/resourceGroups/x/providers/" \
        "Microsoft.Network/routeTables/x"
    zones[f"registry: {json.dumps(registry)}\n  hr-connector:egressRouteTableId"] = route
    with pytest.raises(ConfigError) as caught:
        create_stack(tmp_path, StackRequest("inj", "commercial", TENANT, network="private", runner_network=hub,
                                            image=IMAGE))
    assert "runnerNetwork.privateDnsZoneIds.registry" in caught.value.key and "unknown key" in caught.value.rule
    assert not (tmp_path / "Pulumi.inj.yaml").exists()
    for space in ("0.0.0.0/0", "8.8.8.0/24"):
        public_hub = runner_network("public", space)
        with pytest.raises(ConfigError) as caught:
            create_stack(tmp_path, StackRequest("wide", "commercial", TENANT, network="private",
                                                runner_network=public_hub, image=IMAGE))
        assert {p.key for p in all_problems(caught.value)} == {"hr-connector:runnerNetwork.addressSpace"}
    deep = tmp_path / "deep\x1b[2J.json"
    deep.write_text("[" * 100_000, encoding="utf-8")
    for path, rule in ((deep, "nested more than 64 levels deep"), (Path("/dev/zero"), "not a regular file")):
        with pytest.raises(FleetError, match=re.escape(rule)) as refused:
            read_runner_network(path)
        assert "\x1b" not in str(refused.value)
    assert "hr-connector:tags" in _problems(tags="[" * 100_000)
