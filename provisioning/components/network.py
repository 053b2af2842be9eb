"""`network: private`: the virtual network a stack's job runs in and its resources are reached through.

- a virtual network (ADDRESS_SPACE) with two subnets:
  - JOBS_SUBNET, delegated to `Microsoft.App/environments`, for a workload-profiles Container Apps environment
    ("Workload profiles environment ... /27 minimum subnet size", "The subnet must be delegated to
    Microsoft.App/environments": https://learn.microsoft.com/azure/container-apps/networking and
    https://learn.microsoft.com/azure/container-apps/custom-virtual-networks);
  - ENDPOINTS_SUBNET for the private endpoints of the vault, the drop zone's blob service and the registry
    (privateendpoint.py);
- egress of the jobs subnet: a NAT gateway with one static Standard public IP ("NAT Gateway integration ... is
  only supported in workload profiles environments": the networking page above), or, with `egressRouteTableId`, the
  customer's route table (to their firewall; "User defined routes (UDR) ... workload profiles environment":
  https://learn.microsoft.com/azure/container-apps/user-defined-routes). Entra sign-in and the Purview ingestion API
  have no private link: docs/configuration.md#network lists the hosts the job must reach per cloud;
- name resolution for the private endpoints, one of two ways:
  - without `runnerNetwork`: one private DNS zone per private-link service in the Azure environment's names
    (uploader/clouds.py PRIVATE_DNS_ZONES, with Microsoft's source), each linked to the VNet (no auto-registration),
    so that the job's `NAME.vault.azure.net` resolves to the private endpoint's address. The deployer brings a
    runner that reaches the VNet (and resolves these zones);
  - with `runnerNetwork` (the platform program's hub network, where the self-hosted deploy runner runs): no zone of
    its own. A virtual network can be linked to one private DNS zone of a given name only ("Creating multiple zones
    with the same name for a single virtual network is not supported": https://learn.microsoft.com/azure/private-link/
    private-link-faq; ARM answers "A virtual network cannot be linked to multiple zones with overlapping namespaces"),
    so the runner could never resolve every stack's own `privatelink.vaultcore.azure.net`. As Microsoft's "Private
    Link and DNS integration at scale" describes for hub and spoke (https://learn.microsoft.com/azure/cloud-adoption-
    framework/ready/azure-best-practices/private-link-and-dns-integration-at-scale), the zones are central: the
    endpoints' zone groups write their records into the hub's zones, and each hub zone gets a link to this VNet (a
    child of the zone, in the hub's resource group, named per stack: Names.hub_link) so that the job resolves them
    too. The VNet is peered with the hub both ways (this VNet's peering, and the hub VNet's peering back, a child of
    the hub VNet); "The virtual networks you peer must have nonoverlapping IP address spaces"
    (https://learn.microsoft.com/azure/virtual-network/virtual-network-manage-peering), hence `addressSpace` per
    stack and `check`'s refusal of overlapping stacks (tools/check.py). The peerings allow traffic between the two
    VNets only: no forwarded traffic, no gateway transit, no remote gateway.

A hosting stack owns one of these for itself and its hosted tenants (hosting.py: it exports the endpoints subnet and
the zone IDs, its own or the hub's; a hosted tenant's endpoints go there). Every name but the hub's children is
fixed: each stack has its own resource group. `reachable` lists what makes the vault's data plane and the registry
reachable from the runner (links and peerings); the certificate and the image push wait for it (__main__.py).
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import network, privatedns

from provisioning.config import Settings
from uploader.clouds import PRIVATE_DNS_ZONES

VNET_NAME = "vnet-hr-connector"
#: Subnet names; their ranges come from `addressSpace` (config.subnet_prefixes).
JOBS_SUBNET = "snet-jobs"  # the environment's infrastructure subnet (/27 at least)
ENDPOINTS_SUBNET = "snet-endpoints"
#: This VNet's peering to the runner's hub network (the hub's peering back is named per stack: Names.hub_link).
HUB_PEERING = "peer-hr-connector-runner"
#: Delegation the workload-profiles environment's subnet needs (networking page above).
APP_DELEGATION = "Microsoft.App/environments"


class PrivateNetwork(pulumi.ComponentResource):
    """`vnet`, `jobs_subnet` (delegated), `endpoints_subnet`, `nat_gateway` (None with egressRouteTableId),
    `zone_ids` (private endpoint group ID -> private DNS zone ID: vault, blob, registry; the hub's with
    runnerNetwork) and `reachable` (the zone links and peerings)."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        resource_group_name: pulumi.Input[str],
        opts: pulumi.ResourceOptions,
        *,
        hub_link_name: str = "",
        hub_provider: pulumi.ProviderResource | None = None,
    ) -> None:
        """`hub_link_name` (Names.hub_link) and `hub_provider` (the Azure side's provider for the hub's subscription):
        with runnerNetwork only."""
        super().__init__("hr-connector:index:PrivateNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        jobs_prefix, endpoints_prefix = settings.subnets
        self.vnet = network.VirtualNetwork(
            f"{name}-vnet",
            virtual_network_name=VNET_NAME,
            resource_group_name=resource_group_name,
            location=settings.location,
            address_space=network.AddressSpaceArgs(address_prefixes=[settings.address_space]),
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["subnets"]),  # the Subnet resources own them
        )
        self.nat_gateway: network.NatGateway | None = None
        if settings.egress_route_table_id is None:
            egress_ip = network.PublicIPAddress(
                f"{name}-egress-ip",
                public_ip_address_name="pip-hr-connector-egress",
                resource_group_name=resource_group_name,
                location=settings.location,
                # a NAT gateway takes Standard static IPv4 addresses
                # (https://learn.microsoft.com/azure/nat-gateway/nat-overview)
                sku=network.PublicIPAddressSkuArgs(name="Standard"),
                public_ip_allocation_method="Static",
                public_ip_address_version="IPv4",
                opts=child,
            )
            self.nat_gateway = network.NatGateway(
                f"{name}-nat",
                nat_gateway_name="ng-hr-connector",
                resource_group_name=resource_group_name,
                location=settings.location,
                sku=network.NatGatewaySkuArgs(name="Standard"),
                public_ip_addresses=[network.SubResourceArgs(id=egress_ip.id)],
                opts=child,
            )
            self.egress_ip: network.PublicIPAddress | None = egress_ip
        else:
            self.egress_ip = None
        self.jobs_subnet = network.Subnet(
            f"{name}-jobs-subnet",
            subnet_name=JOBS_SUBNET,
            virtual_network_name=self.vnet.name,
            resource_group_name=resource_group_name,
            address_prefix=jobs_prefix,
            delegations=[network.DelegationArgs(name="container-apps", service_name=APP_DELEGATION)],
            nat_gateway=network.SubResourceArgs(id=self.nat_gateway.id) if self.nat_gateway is not None else None,
            route_table=network.RouteTableArgs(id=settings.egress_route_table_id)
            if settings.egress_route_table_id else None,
            # no implicit outbound access: egress only through the NAT gateway or the route table
            # (https://learn.microsoft.com/azure/virtual-network/ip-services/default-outbound-access)
            default_outbound_access=False,
            opts=child,
        )
        self.endpoints_subnet = network.Subnet(
            f"{name}-endpoints-subnet",
            subnet_name=ENDPOINTS_SUBNET,
            virtual_network_name=self.vnet.name,
            resource_group_name=resource_group_name,
            address_prefix=endpoints_prefix,
            default_outbound_access=False,
            # one subnet operation at a time on a VNet (ARM answers AnotherOperationInProgress otherwise)
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.jobs_subnet]),
        )
        self.zone_ids: dict[str, pulumi.Input[str]] = {}
        self.reachable: list[pulumi.Resource] = []
        if settings.runner_network is None:
            self._own_zones(name, settings, resource_group_name)
        else:
            assert hub_provider is not None and hub_link_name, "runnerNetwork needs the hub's provider and link name"
            self._hub(name, settings, resource_group_name, hub_link_name, hub_provider)
        self.register_outputs({"vnetId": self.vnet.id, "jobsSubnetId": self.jobs_subnet.id,
                               "endpointsSubnetId": self.endpoints_subnet.id})

    def _own_zones(self, name: str, settings: Settings, resource_group_name: pulumi.Input[str]) -> None:
        for group, zone_name in PRIVATE_DNS_ZONES[settings.azure_environment].items():
            zone = privatedns.PrivateZone(
                f"{name}-zone-{group}",
                private_zone_name=zone_name,
                resource_group_name=resource_group_name,
                location="global",  # private DNS zones are global resources
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.reachable.append(privatedns.VirtualNetworkLink(
                f"{name}-zone-{group}-link",
                private_zone_name=zone_name,  # the name, so that render shows it; the dependency below
                virtual_network_link_name=VNET_NAME,
                resource_group_name=resource_group_name,
                location="global",
                virtual_network=privatedns.SubResourceArgs(id=self.vnet.id),
                registration_enabled=False,  # the zone groups write the endpoints' A records
                opts=pulumi.ResourceOptions(parent=self, depends_on=[zone]),
            ))
            self.zone_ids[group] = zone.id

    def _hub(self, name: str, settings: Settings, resource_group_name: pulumi.Input[str], link_name: str,
             hub_provider: pulumi.ProviderResource) -> None:
        """The runner's hub (module docstring): its zones linked to this VNet, and peerings both ways."""
        hub = settings.runner_network
        assert hub is not None
        in_hub = pulumi.ResourceOptions(parent=self, provider=hub_provider)
        for group, zone in hub.zones.items():
            self.reachable.append(privatedns.VirtualNetworkLink(
                f"{name}-hub-zone-{group}-link",
                private_zone_name=zone.name,
                virtual_network_link_name=link_name,  # unique within the zone, one per stack
                resource_group_name=zone.resource_group,
                location="global",
                virtual_network=privatedns.SubResourceArgs(id=self.vnet.id),
                registration_enabled=False,
                opts=in_hub,
            ))
            self.zone_ids[group] = zone.id
        # Traffic between the two VNets only (allowVirtualNetworkAccess); nothing forwarded, no gateway either way
        # (https://learn.microsoft.com/azure/templates/microsoft.network/virtualnetworks/virtualnetworkpeerings).
        to_hub = network.VirtualNetworkPeering(
            f"{name}-to-hub",
            virtual_network_peering_name=HUB_PEERING,
            virtual_network_name=self.vnet.name,
            resource_group_name=resource_group_name,
            remote_virtual_network=network.SubResourceArgs(id=hub.virtual_network.id),
            allow_virtual_network_access=True, allow_forwarded_traffic=False, allow_gateway_transit=False,
            use_remote_gateways=False,
            # after the subnets: one operation at a time on a VNet
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.endpoints_subnet]),
        )
        from_hub = network.VirtualNetworkPeering(
            f"{name}-from-hub",
            virtual_network_peering_name=link_name,  # unique among the hub VNet's peerings, one per stack
            virtual_network_name=hub.virtual_network.name,
            resource_group_name=hub.virtual_network.resource_group,
            remote_virtual_network=network.SubResourceArgs(id=self.vnet.id),
            allow_virtual_network_access=True, allow_forwarded_traffic=False, allow_gateway_transit=False,
            use_remote_gateways=False,
            opts=pulumi.ResourceOptions.merge(in_hub, pulumi.ResourceOptions(depends_on=[to_hub])),
        )
        self.reachable.extend([to_hub, from_hub])
