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
- one private DNS zone per private-link service in the Azure environment's names (uploader/clouds.py
  PRIVATE_DNS_ZONES, with Microsoft's source), each linked to the VNet (no auto-registration), so that the job's
  `NAME.vault.azure.net` resolves to the private endpoint's address.

A hosting stack owns one of these for itself and its hosted tenants (hosting.py: it exports the endpoints subnet and
the zone IDs; a hosted tenant's endpoints go there). Every name is fixed: each stack has its own resource group.
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import network, privatedns

from provisioning.config import Settings
from uploader.clouds import PRIVATE_DNS_ZONES

VNET_NAME = "vnet-hr-connector"
ADDRESS_SPACE = "10.60.0.0/23"
JOBS_SUBNET = ("snet-jobs", "10.60.0.0/24")  # the environment's infrastructure subnet (/27 at least)
ENDPOINTS_SUBNET = ("snet-endpoints", "10.60.1.0/26")
#: Delegation the workload-profiles environment's subnet needs (networking page above).
APP_DELEGATION = "Microsoft.App/environments"


class PrivateNetwork(pulumi.ComponentResource):
    """`vnet`, `jobs_subnet` (delegated), `endpoints_subnet`, `nat_gateway` (None with egressRouteTableId), and
    `zone_ids` (private endpoint group ID -> private DNS zone ID: vault, blob, registry)."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        resource_group_name: pulumi.Input[str],
        opts: pulumi.ResourceOptions,
    ) -> None:
        super().__init__("hr-connector:index:PrivateNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.vnet = network.VirtualNetwork(
            f"{name}-vnet",
            virtual_network_name=VNET_NAME,
            resource_group_name=resource_group_name,
            location=settings.location,
            address_space=network.AddressSpaceArgs(address_prefixes=[ADDRESS_SPACE]),
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
            subnet_name=JOBS_SUBNET[0],
            virtual_network_name=self.vnet.name,
            resource_group_name=resource_group_name,
            address_prefix=JOBS_SUBNET[1],
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
            subnet_name=ENDPOINTS_SUBNET[0],
            virtual_network_name=self.vnet.name,
            resource_group_name=resource_group_name,
            address_prefix=ENDPOINTS_SUBNET[1],
            default_outbound_access=False,
            # one subnet operation at a time on a VNet (ARM answers AnotherOperationInProgress otherwise)
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.jobs_subnet]),
        )
        self.zone_ids: dict[str, pulumi.Output[str]] = {}
        for group, zone_name in PRIVATE_DNS_ZONES[settings.azure_environment].items():
            zone = privatedns.PrivateZone(
                f"{name}-zone-{group}",
                private_zone_name=zone_name,
                resource_group_name=resource_group_name,
                location="global",  # private DNS zones are global resources
                opts=child,
            )
            privatedns.VirtualNetworkLink(
                f"{name}-zone-{group}-link",
                private_zone_name=zone_name,  # the name, so that render shows it; the dependency below
                virtual_network_link_name=VNET_NAME,
                resource_group_name=resource_group_name,
                location="global",
                virtual_network=privatedns.SubResourceArgs(id=self.vnet.id),
                registration_enabled=False,  # the zone groups write the endpoints' A records
                opts=pulumi.ResourceOptions(parent=self, depends_on=[zone]),
            )
            self.zone_ids[group] = zone.id
        self.register_outputs({"vnetId": self.vnet.id, "jobsSubnetId": self.jobs_subnet.id,
                               "endpointsSubnetId": self.endpoints_subnet.id})
