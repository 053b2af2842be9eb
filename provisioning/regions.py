"""The Azure regions a stack may name as `location`, per Azure environment (the one table of them).

Names are the programmatic region names that `az account list-locations --query "[].name"` prints (the display
name lower-cased without spaces: "West Europe" -> westeurope). Azure opens regions every year: a region missing
here makes `check` refuse the stack, and the fix is one line in this table.
"""

from __future__ import annotations

import difflib

#: Azure public cloud. Source: Microsoft Learn "Azure regions list", including access-restricted regions
#: https://learn.microsoft.com/en-us/azure/reliability/regions-list ; regions opened after that list was written
#: (austriaeast, belgiumcentral, chilecentral, denmarkeast, indonesiacentral, malaysiawest) and the Jio India
#: regions: Azure SDK region tables, e.g.
#: https://github.com/Azure/azure-sdk-for-java/blob/main/sdk/core/azure-core-management/src/main/java/com/azure/core/management/Region.java
PUBLIC = frozenset({
    "australiacentral", "australiacentral2", "australiaeast", "australiasoutheast", "austriaeast",
    "belgiumcentral", "brazilsouth", "brazilsoutheast", "canadacentral", "canadaeast", "centralindia",
    "centralus", "chilecentral", "denmarkeast", "eastasia", "eastus", "eastus2", "francecentral", "francesouth",
    "germanynorth", "germanywestcentral", "indonesiacentral", "israelcentral", "italynorth", "japaneast",
    "japanwest", "jioindiacentral", "jioindiawest", "koreacentral", "koreasouth", "malaysiawest", "mexicocentral",
    "newzealandnorth", "northcentralus", "northeurope", "norwayeast", "norwaywest", "polandcentral",
    "qatarcentral", "southafricanorth", "southafricawest", "southcentralus", "southeastasia", "southindia",
    "spaincentral", "swedencentral", "swedensouth", "switzerlandnorth", "switzerlandwest", "uaecentral",
    "uaenorth", "uksouth", "ukwest", "westcentralus", "westeurope", "westindia", "westus", "westus2", "westus3",
})

#: Azure Government ("Azure Government Cloud" in the Azure SDK region table above: usgovvirginia, usgoviowa,
#: usgovarizona, usgovtexas, usdodeast, usdodcentral).
USGOVERNMENT = frozenset({"usgovvirginia", "usgovarizona", "usgovtexas", "usgoviowa", "usdodeast", "usdodcentral"})

REGIONS: dict[str, frozenset[str]] = {"public": PUBLIC, "usgovernment": USGOVERNMENT}

#: Azure Government regions where Container Apps jobs are not known to be offered. The evidence is thin
#: (Microsoft's "products available by region" page does not list Container Apps for them, and Container Apps
#: reached Azure Government late: https://github.com/microsoft/azure-container-apps/issues/612), so `check`
#: warns rather than refuses, and says how to confirm for the subscription (CONFIRM_JOBS_REGIONS).
JOBS_NOT_KNOWN = frozenset({"usgoviowa", "usdodeast", "usdodcentral"})

#: How to list the regions that offer Container Apps jobs to a subscription (the Container Apps FAQ's command,
#: for the `jobs` resource type): https://learn.microsoft.com/en-us/azure/container-apps/faq
CONFIRM_JOBS_REGIONS = 'az provider show -n Microsoft.App --query "resourceTypes[?resourceType==\'jobs\'].locations"'


def environment_of(region: str) -> str | None:
    """The Azure environment a region belongs to, or None if it is in no table."""
    return next((env for env, names in REGIONS.items() if region in names), None)


def closest(region: str, azure_environment: str | None) -> str | None:
    """The known region (of that environment, or any) whose name is closest to a misspelt one (`westeuropa`)."""
    known = REGIONS[azure_environment] if azure_environment in REGIONS else PUBLIC | USGOVERNMENT
    close = difflib.get_close_matches(region, sorted(known), n=1, cutoff=0.75)
    return close[0] if close else None
