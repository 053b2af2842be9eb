"""The cloud table: the one place that knows each Microsoft 365 cloud's endpoints.

Shared by the uploader (sign-in, upload) and the Pulumi program (providers, job environment).
Sources: Microsoft's sample upload scripts, one per cloud (the authority in `$oAuthTokenEndpoint`, the
ingestion host in `$eventApiURl`, `$resource`, `$RecordsPerCall`), https://github.com/microsoft/m365-compliance-
connector-sample-scripts, and the Learn pages https://learn.microsoft.com/purview/import-hr-data and
https://learn.microsoft.com/purview/import-hr-data-us-government.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

#: Token scope of the HR connector's ingestion API (the resource Microsoft's current samples use).
#: Source: `$resource` in every sample script, e.g. https://github.com/microsoft/m365-compliance-connector-sample-scripts/blob/main/sample_script.ps1
DEFAULT_SCOPE = "https://microsoft.onmicrosoft.com/86dfdabb-5089-4a0c-880a-cfa5a790c5b1/.default"

#: Microsoft's samples send at most this many records per call.
#: Source: `[Int] $RecordsPerCall = 5000` in https://github.com/microsoft/m365-compliance-connector-sample-scripts/blob/main/sample_script.ps1
DEFAULT_RECORDS_PER_CALL = 5000


@dataclass(frozen=True)
class KeyVaultEndpoints:
    """Key Vault in one Azure environment: the vault and Managed HSM DNS suffixes and their token resources.

    A versioned key ID's host must end in one of the suffixes (`name.vault.azure.net`): the uploader sends its
    managed identity's token to no other host. The token is asked for the resource of the suffix matched.
    """

    vault_domain: str  # vault hosts are NAME.<vault_domain>
    vault_resource: str  # the token resource (audience) for vaults
    hsm_domain: str  # Managed HSM hosts are NAME.<hsm_domain>
    hsm_resource: str

    def resource_for(self, host: str) -> str | None:
        """The token resource for a key host in this environment, or None when the host is not Key Vault's."""
        host = host.lower().rstrip(".")
        for domain, resource in ((self.vault_domain, self.vault_resource), (self.hsm_domain, self.hsm_resource)):
            if host.endswith("." + domain) and len(host) > len(domain) + 1:
                return resource
        return None


#: Key Vault per Azure environment (the `azure_environment` of the cloud table below).
#: Public: DNS `.vault.azure.net`, resource `https://vault.azure.net`
#: (https://learn.microsoft.com/azure/key-vault/general/authentication-requests-and-responses); Managed HSM
#: `.managedhsm.azure.net`. US Government: `.vault.usgovcloudapi.net` and `.managedhsm.usgovcloudapi.net`
#: (https://learn.microsoft.com/azure/key-vault/general/about-keys-secrets-and-certificates, "DNS suffixes";
#: azure-cli's AZURE_US_GOV_CLOUD keyvault_dns, https://github.com/Azure/azure-cli/blob/dev/src/azure-cli-core/azure/cli/core/cloud.py).
KEY_VAULTS: dict[str, KeyVaultEndpoints] = {
    "public": KeyVaultEndpoints("vault.azure.net", "https://vault.azure.net",
                                "managedhsm.azure.net", "https://managedhsm.azure.net"),
    "usgovernment": KeyVaultEndpoints("vault.usgovcloudapi.net", "https://vault.usgovcloudapi.net",
                                      "managedhsm.usgovcloudapi.net", "https://managedhsm.usgovcloudapi.net"),
}


@dataclass(frozen=True)
class PrivateDnsZones:
    """The private DNS zone names of one Azure environment for the private endpoints of `network: private`
    (provisioning/components/network.py): Key Vault, the drop zone's blob service, the container registry."""

    vault: str
    blob: str
    registry: str

    def items(self) -> tuple[tuple[str, str], ...]:
        """(private endpoint group ID, zone name): `vault`, `blob` and `registry` are also the sub-resources
        (group IDs) of each service's private link."""
        return (("vault", self.vault), ("blob", self.blob), ("registry", self.registry))


#: Private DNS zones per Azure environment. Source: Microsoft Learn, "Azure Private Endpoint private DNS zone
#: values" (https://learn.microsoft.com/azure/private-link/private-endpoint-dns): "Azure Key Vault (Microsoft.KeyVault/
#: vaults) / vault / privatelink.vaultcore.azure.net", "Storage account (Microsoft.Storage/storageAccounts) / blob /
#: privatelink.blob.core.windows.net", "Azure Container Registry (Microsoft.ContainerRegistry/registries) / registry /
#: privatelink.azurecr.io"; its Government section: privatelink.vaultcore.usgovcloudapi.net,
#: privatelink.blob.core.usgovcloudapi.net, privatelink.azurecr.us. docs/us-government.md says how to check them.
PRIVATE_DNS_ZONES: dict[str, PrivateDnsZones] = {
    "public": PrivateDnsZones("privatelink.vaultcore.azure.net", "privatelink.blob.core.windows.net",
                              "privatelink.azurecr.io"),
    "usgovernment": PrivateDnsZones("privatelink.vaultcore.usgovcloudapi.net",
                                    "privatelink.blob.core.usgovcloudapi.net", "privatelink.azurecr.us"),
}


#: How the app signs in (stack `credential`, uploader `--credential`): a certificate (its key exportable or held by Key
#: Vault), or federated (the job's user-assigned managed identity, trusted by the app: no key at all).
CREDENTIALS = ("certificate", "federated")
FEDERATED = "federated"


@dataclass(frozen=True)
class Federation:
    """Workload identity federation in one Entra instance: the app trusts a user-assigned managed identity.

    The job's identity asks its endpoint for a token whose audience is `audience`; Entra accepts it as the app's
    client assertion when the app has a federated identity credential with the same issuer
    (`{issuer_host}/{tenant}/v2.0`), subject (the identity's principal ID) and audience.
    """

    issuer_host: str
    audience: str
    source: str  # where Microsoft documents these values

    def issuer(self, tenant_id: str) -> str:
        """The managed identity token's `iss` for one directory (the app's and the identity's, the same one)."""
        return f"{self.issuer_host.rstrip('/')}/{tenant_id}/v2.0"


#: Microsoft Learn, "Configure an application to trust a managed identity"
#: (https://learn.microsoft.com/entra/workload-id/workload-identity-federation-config-app-trust-managed-identity):
#: issuer "the Microsoft Entra tenant's Authority URL in the form https://login.microsoftonline.com/{tenant}/v2.0"
#: (its Bicep sample builds it from the environment's loginEndpoint, so https://login.microsoftonline.us/{tenant}/v2.0
#: in Azure Government); subject the identity's Object (Principal) ID; audience "Microsoft Entra ID global service:
#: api://AzureADTokenExchange", "Microsoft Entra ID for US Government: api://AzureADTokenExchangeUSGov"; "Only
#: user-assigned managed identities"; "Both the Microsoft Entra app and managed identity must belong to the same
#: tenant".
FEDERATION_SOURCE = ("https://learn.microsoft.com/entra/workload-id/"
                     "workload-identity-federation-config-app-trust-managed-identity")
#: GCC High and DoD tenants both sign in at Entra ID for US Government (login.microsoftonline.us:
#: https://learn.microsoft.com/entra/identity-platform/authentication-national-cloud); Microsoft's Power Platform page
#: names the token-exchange audience for "GCC High & DoD" as api://AzureADTokenExchangeUSGov
#: (https://learn.microsoft.com/power-platform/admin/set-up-managed-identity, "Specialized Azure cloud environments").
US_GOV_FEDERATION_SOURCE = (FEDERATION_SOURCE + "; https://learn.microsoft.com/power-platform/admin/"
                            "set-up-managed-identity (GCC High & DoD: api://AzureADTokenExchangeUSGov)")
GLOBAL_FEDERATION = Federation("https://login.microsoftonline.com", "api://AzureADTokenExchange", FEDERATION_SOURCE)
US_GOV_FEDERATION = Federation("https://login.microsoftonline.us", "api://AzureADTokenExchangeUSGov",
                               US_GOV_FEDERATION_SOURCE)


#: The Log Analytics query API per Azure environment (where `python -m provisioning status` reads run summaries; the
#: token audience is the same URL): azure-cli's clouds, `log_analytics_resource_id` https://api.loganalytics.io and
#: https://api.loganalytics.us (https://github.com/Azure/azure-cli/blob/dev/src/azure-cli-core/azure/cli/core/cloud.py);
#: azure-monitor-query's LogsQueryClient defaults to the public one (its `endpoint` keyword).
LOG_ANALYTICS_QUERY: dict[str, str] = {
    "public": "https://api.loganalytics.io",
    "usgovernment": "https://api.loganalytics.us",
}


@dataclass(frozen=True)
class Cloud:
    """Endpoints and hosting defaults of one Microsoft 365 cloud."""

    name: str
    authority_host: str
    ingestion_url: str
    # azure-native provider environment for hosting: public | usgovernment
    # (https://www.pulumi.com/registry/packages/azure-native/installation-configuration/)
    azure_environment: str
    # azuread provider environment: global | usgovernmentl4 | usgovernmentl5
    # (https://www.pulumi.com/registry/packages/azuread/api-docs/provider/)
    azuread_environment: str
    scope: str = DEFAULT_SCOPE
    #: Workload identity federation (`credential: federated`); None where Microsoft's pages do not confirm the
    #: issuer and audience, and then `federation_unconfirmed` says why (config refuses `federated` with it).
    federation: Federation | None = None
    federation_unconfirmed: str = ""
    # Microsoft Graph for this cloud's tenants: global (also GCC), graph.microsoft.us (GCC High, L4),
    # dod-graph.microsoft.us (DoD, L5) (https://learn.microsoft.com/graph/deployments). The deploy identity's
    # admin consent names it (python -m provisioning new-stack, docs/gitops.md).
    graph_url: str = "https://graph.microsoft.com"

    @property
    def key_vault(self) -> KeyVaultEndpoints:
        """Key Vault's DNS suffixes and token resources in the Azure that hosts this cloud's stacks."""
        return KEY_VAULTS[self.azure_environment]

    @property
    def private_dns_zones(self) -> PrivateDnsZones:
        """The private DNS zone names for private endpoints in the Azure that hosts this cloud's stacks."""
        return PRIVATE_DNS_ZONES[self.azure_environment]

    @property
    def government(self) -> bool:
        """True for the US Government clouds that must be hosted in Azure Government."""
        return self.azure_environment == "usgovernment"

    @property
    def signals_url(self) -> str:
        """The upload endpoint; the connector's job ID goes in the `jobid` query parameter."""
        # Source: `$eventApiEndpoint = "api/signals"` and the `jobid` query in https://github.com/microsoft/m365-compliance-connector-sample-scripts/blob/main/sample_script.ps1
        return f"{self.ingestion_url.rstrip('/')}/api/signals"

    def with_overrides(
        self,
        authority_host: str | None = None,
        ingestion_url: str | None = None,
        scope: str | None = None,
    ) -> Cloud:
        """A copy with private-endpoint, proxy or test hosts in place of the public ones."""
        return replace(
            self,
            authority_host=(authority_host or self.authority_host).rstrip("/"),
            ingestion_url=(ingestion_url or self.ingestion_url).rstrip("/"),
            scope=scope or self.scope,
        )

    def authority(self, tenant_id: str) -> str:
        """The Entra authority URL for one tenant."""
        return f"{self.authority_host.rstrip('/')}/{tenant_id}"

    def endpoints(self) -> dict[str, str]:
        """What `python -m uploader endpoints` prints."""
        return {"authority": self.authority_host, "scope": self.scope, "ingestion_url": self.ingestion_url}


CLOUDS: dict[str, Cloud] = {
    c.name: c
    for c in (
        # Authority hosts (global; US Government for GCC High and DoD, whose tenants live in Azure Government):
        # https://learn.microsoft.com/entra/identity-platform/authentication-national-cloud
        # Ingestion host: https://learn.microsoft.com/purview/import-hr-data (firewall allowlist) and
        # https://github.com/microsoft/m365-compliance-connector-sample-scripts/blob/main/sample_script.ps1
        Cloud("commercial", "https://login.microsoftonline.com",
              "https://webhook.ingestion.office.com", "public", "global", federation=GLOBAL_FEDERATION),
        # https://github.com/microsoft/m365-compliance-connector-sample-scripts/blob/main/sample_script_gcc.ps1
        Cloud("gcc", "https://login.microsoftonline.com",
              "https://webhook-gcc.ingestion.office365.us", "public", "global", federation=GLOBAL_FEDERATION),
        # https://github.com/microsoft/m365-compliance-connector-sample-scripts/blob/main/sample_script_ITAR_L4.ps1
        Cloud("gcchigh", "https://login.microsoftonline.us",
              "https://webhook-itarl4.ingestion.office365.us", "usgovernment", "usgovernmentl4",
              federation=US_GOV_FEDERATION, graph_url="https://graph.microsoft.us"),
        # https://github.com/microsoft/m365-compliance-connector-sample-scripts/blob/main/sample_script_ITARL5.ps1
        Cloud("dod", "https://login.microsoftonline.us",
              "https://webhook-itarl5.ingestion.apps.mil", "usgovernment", "usgovernmentl5",
              federation=US_GOV_FEDERATION, graph_url="https://dod-graph.microsoft.us"),
    )
}

AZURE_ENVIRONMENTS = ("public", "usgovernment")


class UnknownCloudError(ValueError):
    """A cloud name that is not in the table."""


def get_cloud(name: str) -> Cloud:
    """Look a cloud up by name (case-insensitive); the error lists the known names."""
    try:
        return CLOUDS[name.strip().lower()]
    except KeyError:
        raise UnknownCloudError(
            f"unknown cloud {name!r}: expected one of {', '.join(CLOUDS)}"
        ) from None
