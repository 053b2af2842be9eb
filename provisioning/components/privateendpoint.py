"""A private endpoint for one resource's private-link sub-resource (`vault`, `blob`, `registry`) in a network's
endpoints subnet, and its DNS zone group, which writes the endpoint's A record into the private DNS zone of that
sub-resource (https://learn.microsoft.com/azure/private-link/private-endpoint-dns, "Private DNS zone group").

The sub-resource names are the group IDs of each service's private link (the same page's table:
Microsoft.KeyVault/vaults `vault`, Microsoft.Storage/storageAccounts `blob`, Microsoft.ContainerRegistry/registries
`registry`). The subnet and zone are the stack's own network's (network.py) or, for a hosted tenant, its hosting
stack's (hosting.py): the endpoint itself stays in the tenant's resource group.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import network


@dataclass(frozen=True)
class EndpointPlacement:
    """Where private endpoints go: the endpoints subnet and the private DNS zone ID per group ID."""

    subnet_id: pulumi.Input[str]
    zone_ids: dict[str, pulumi.Input[str]]


class PrivateEndpoint(pulumi.ComponentResource):
    """`endpoint` (with an approved connection: the deployer owns both sides) and `zone_group`."""

    def __init__(
        self,
        name: str,
        *,
        target_id: pulumi.Input[str],
        group_id: str,
        placement: EndpointPlacement,
        resource_group_name: pulumi.Input[str],
        location: str,
        opts: pulumi.ResourceOptions,
    ) -> None:
        super().__init__("hr-connector:index:PrivateEndpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        endpoint_name = f"pe-hr-connector-{group_id}"
        self.endpoint = network.PrivateEndpoint(
            f"{name}-endpoint",
            private_endpoint_name=endpoint_name,
            resource_group_name=resource_group_name,
            location=location,
            subnet=network.SubnetArgs(id=placement.subnet_id),
            private_link_service_connections=[network.PrivateLinkServiceConnectionArgs(
                name=endpoint_name, private_link_service_id=target_id, group_ids=[group_id])],
            opts=child,
        )
        self.zone_group = network.PrivateDnsZoneGroup(
            f"{name}-dns",
            private_dns_zone_group_name="default",
            private_endpoint_name=endpoint_name,
            resource_group_name=resource_group_name,
            private_dns_zone_configs=[network.PrivateDnsZoneConfigArgs(
                name=group_id, private_dns_zone_id=placement.zone_ids[group_id])],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.endpoint]),
        )
        self.register_outputs({"endpointId": self.endpoint.id})
