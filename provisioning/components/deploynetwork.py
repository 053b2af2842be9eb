"""The platform's deploy network (the hub): where the self-hosted runner of `network: private` stacks runs, and the
central private DNS zones those stacks register their private endpoints in.

`network: private` stacks refuse public traffic to their vault's data plane and their registry (network.py), so
their `pulumi up` must run inside a network that reaches their private endpoints. The platform program declares that
network once, in its own resource group, when its `runner` config is set (docs/gitops.md#7-private-stacks-a-runner-in-
the-deploy-network):
- a virtual network (`runner.addressSpace`, default DEFAULT_ADDRESS_SPACE, outside STACK_NETWORKS, where the stacks'
  own networks are: peered networks must not overlap, https://learn.microsoft.com/azure/virtual-network/
  virtual-network-peering-overview) with one subnet, the whole address space, delegated to
  `Microsoft.App/environments` for a workload-profiles Container Apps environment ("Workload profiles environment
  ... /27 minimum subnet size"; "The subnet must be delegated to Microsoft.App/environments":
  https://learn.microsoft.com/azure/container-apps/networking, /custom-virtual-networks);
- egress through a NAT gateway with one static Standard public IP ("NAT Gateway integration ... is only supported in
  workload profiles environments": the networking page above; https://learn.microsoft.com/azure/nat-gateway/
  nat-overview), so customers can allow-list the runner's one address; no default outbound access
  (https://learn.microsoft.com/azure/virtual-network/ip-services/default-outbound-access);
- the central private DNS zones of the platform's Azure environment (uploader/clouds.py PRIVATE_DNS_ZONES, with
  Microsoft's source), each linked to this network without auto-registration: a private stack that peers its network
  to this one registers its endpoints' A records here (the `runnerNetwork` output it copies into its stack file), so
  the runner resolves `NAME.vault.azure.net` to the private address
  (https://learn.microsoft.com/azure/private-link/private-endpoint-dns-integration, "Hub and spoke").
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import network, privatedns

from provisioning.components.network import APP_DELEGATION
from provisioning.config import STACK_ADDRESS_POOL, ConfigError
from uploader.clouds import PRIVATE_DNS_ZONES

VNET_NAME = "vnet-hr-connector-deploy"
SUBNET_NAME = "snet-runners"
DEFAULT_ADDRESS_SPACE = "10.59.0.0/24"
#: The range the private stacks' own networks are taken from (network.py's; each peers with this network, and peered
#: networks must not overlap), which the deploy network's range must stay out of.
STACK_NETWORKS = STACK_ADDRESS_POOL  # one definition: config.py, where new-stack picks the stacks' ranges too
#: A workload-profiles environment's subnet is /27 at least (networking page above).
MIN_PREFIX = 27
PLATFORM_NAMESPACE = "hr-connector-platform"


def runner_address_space(value: object) -> str:
    """`runner.addressSpace`: a private IPv4 range, /27 or larger, that does not overlap the stacks' networks."""
    key = f"{PLATFORM_NAMESPACE}:runner.addressSpace"
    try:
        net = ipaddress.ip_network(str(value), strict=True)
    except ValueError:
        raise ConfigError(key, "must be an IPv4 network in CIDR form with no host bits, e.g. 10.59.0.0/24") from None
    if net.version != 4 or not net.is_private:
        raise ConfigError(key, "must be a private IPv4 range (RFC 1918): it is a virtual network's address space")
    if net.prefixlen > MIN_PREFIX:
        raise ConfigError(key, f"must be /{MIN_PREFIX} or larger: the Container Apps environment's subnet is the "
                               "whole range, and a workload-profiles environment needs a /27 at least")
    if net.overlaps(ipaddress.ip_network(STACK_NETWORKS)):
        raise ConfigError(key, f"must not overlap {STACK_NETWORKS}, where the private stacks' own networks are: "
                               "peered networks cannot overlap")
    return str(net)


@dataclass(frozen=True)
class DeployNetworkArgs:
    address_space: str
    resource_group_name: pulumi.Input[str]
    location: str
    azure_environment: str


class DeployNetwork(pulumi.ComponentResource):
    """`vnet`, `subnet` (delegated to Container Apps), `egress_ip` (behind `nat_gateway`) and `zone_ids`
    (private endpoint group ID -> central private DNS zone ID: vault, blob, registry)."""

    def __init__(self, name: str, args: DeployNetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hr-connector:platform:DeployNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        group = args.resource_group_name
        self.vnet = network.VirtualNetwork(
            f"{name}-vnet", virtual_network_name=VNET_NAME, resource_group_name=group, location=args.location,
            address_space=network.AddressSpaceArgs(address_prefixes=[args.address_space]),
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["subnets"]))  # the Subnet resource owns them
        self.egress_ip = network.PublicIPAddress(
            f"{name}-egress-ip", public_ip_address_name="pip-hr-connector-runner", resource_group_name=group,
            location=args.location, sku=network.PublicIPAddressSkuArgs(name="Standard"),
            public_ip_allocation_method="Static", public_ip_address_version="IPv4", opts=child)
        self.nat_gateway = network.NatGateway(
            f"{name}-nat", nat_gateway_name="ng-hr-connector-runner", resource_group_name=group,
            location=args.location, sku=network.NatGatewaySkuArgs(name="Standard"),
            public_ip_addresses=[network.SubResourceArgs(id=self.egress_ip.id)], opts=child)
        self.subnet = network.Subnet(
            f"{name}-subnet", subnet_name=SUBNET_NAME, virtual_network_name=VNET_NAME,  # fixed: shown in a render
            resource_group_name=group, address_prefix=args.address_space,
            delegations=[network.DelegationArgs(name="container-apps", service_name=APP_DELEGATION)],
            nat_gateway=network.SubResourceArgs(id=self.nat_gateway.id), default_outbound_access=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.vnet]))
        self.zone_ids: dict[str, pulumi.Output[str]] = {}
        for group_id, zone_name in PRIVATE_DNS_ZONES[args.azure_environment].items():
            zone = privatedns.PrivateZone(
                f"{name}-zone-{group_id}", private_zone_name=zone_name, resource_group_name=group,
                location="global", opts=child)  # private DNS zones are global resources
            privatedns.VirtualNetworkLink(
                f"{name}-zone-{group_id}-link", private_zone_name=zone_name, virtual_network_link_name=VNET_NAME,
                resource_group_name=group, location="global",
                virtual_network=privatedns.SubResourceArgs(id=self.vnet.id),
                registration_enabled=False,  # the private stacks' zone groups write their endpoints' A records
                opts=pulumi.ResourceOptions(parent=self, depends_on=[zone]))
            self.zone_ids[group_id] = zone.id
        self.register_outputs({"vnetId": self.vnet.id, "subnetId": self.subnet.id})
