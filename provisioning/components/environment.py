"""Where jobs run and where their logs go: a Log Analytics workspace, a Container Apps environment, and the
diagnostic setting between them.

No workspace shared key anywhere (not in the program, not in its state): the environment's logs go to Azure
Monitor (`appLogsConfiguration.destination: azure-monitor`; "Logs destination, can be 'log-analytics',
'azure-monitor' or 'none'", pulumi_azure_native app.AppLogsConfigurationArgs), and a diagnostic setting on the
environment sends the ContainerAppConsoleLogs and ContainerAppSystemLogs categories to the workspace
("When --logs-destination is set to azure-monitor, create diagnostic settings ... Container App log categories
are ContainerAppConsoleLogs and ContainerAppSystemLogs":
https://learn.microsoft.com/azure/container-apps/log-options). With `logAnalyticsDestinationType: Dedicated`
they land in the resource-specific tables of the same names
(https://learn.microsoft.com/azure/azure-monitor/reference/supported-logs/microsoft-app-managedenvironments-logs),
whose columns have no type suffix: alerts.py queries them.

A self-contained tenant stack declares one of these for itself; a hosting stack declares one that its hosted
tenants' jobs share.

With `network: private` (network.py) the environment is a workload-profiles environment on the network's delegated
subnet, internal (no public endpoint: "internal ... only available from within the virtual network",
https://learn.microsoft.com/azure/container-apps/networking), with the Consumption profile the job names
(`workloadProfileName`, job.py; "Consumption ... workload profile type", https://learn.microsoft.com/azure/container-
apps/workload-profiles-overview). The subnet can only be set when the environment is created: moving a deployed stack
to network: private replaces its environment and job (CHANGELOG).

Also with `network: private`, the workspace keeps saved queries in a storage account of the stack's own
(`forceCmkForQuery`, Azure Policy fa298e57-9444-42ba-bf04-86e8470e32c7, "Saved-queries in Azure Monitor should be saved
in customer storage account for logs encryption"; REST: Workspaces - Create Or Update, `properties.forceCmkForQuery`,
https://learn.microsoft.com/rest/api/loganalytics/workspaces/create-or-update). What Learn asks of that account
("Use customer-managed storage accounts in Azure Monitor Logs",
https://learn.microsoft.com/azure/azure-monitor/logs/private-storage): linked to the workspace with dataSourceType
`Query` ("To use the storage account to store saved queries (required for CMK encryption)"; ARM:
Microsoft.OperationalInsights/workspaces/linkedStorageAccounts,
https://learn.microsoft.com/azure/templates/microsoft.operationalinsights/workspaces/linkedstorageaccounts), in the
workspace's region, the workspace holding a managed identity that has Storage Table Data Contributor on the account
("Creating new links ... when no managed identity is assigned will be blocked"), and, where the account refuses other
networks, "Allow trusted Microsoft services to access this storage account" (`bypass: AzureServices`): Azure Monitor
reaches it as a trusted service, not through a private endpoint; public network access stays enabled for that
exception to apply, with the default action Deny and no IP rule, so nothing else gets in
(https://learn.microsoft.com/azure/storage/common/storage-network-security, "Trusted access ... based on
system-assigned managed identity"). The account is encrypted with Microsoft-managed keys plus infrastructure
encryption; the key in the customer's own vault that Learn's page goes on to recommend is not set up here
(docs/configuration.md#network).
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import app, authorization, monitor, operationalinsights, storage

from provisioning.components.dropzone import hardened_account
from provisioning.naming import role_definition_id

#: The environment's log categories sent to the workspace (supported-logs page above).
LOG_CATEGORIES = ("ContainerAppConsoleLogs", "ContainerAppSystemLogs")
DIAGNOSTIC_SETTING_NAME = "hr-connector-logs"
OLD_PARENT_TYPE = "hr-connector:index:UploaderJob"
#: The workload profile of a private environment, and the one its jobs name (its name and type are both Consumption).
CONSUMPTION_PROFILE = "Consumption"
#: The linked storage account's data source for saved queries (private-storage page above).
QUERY_DATA_SOURCE = "Query"
#: Built-in role the workspace's identity needs on its query storage account (private-storage page, "Minimum
#: permissions for managed identity on storage account"; https://learn.microsoft.com/azure/role-based-access-control/
#: built-in-roles/storage#storage-table-data-contributor).
ROLE_STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"


class JobEnvironment(pulumi.ComponentResource):
    """`workspace`, `environment` and `diagnostics` (the setting that routes the environment's logs)."""

    def __init__(
        self,
        name: str,
        *,
        environment_name: str,
        resource_group_name: pulumi.Input[str],
        location: str,
        opts: pulumi.ResourceOptions,
        infrastructure_subnet_id: pulumi.Input[str] | None = None,
        query_storage_name: str | None = None,
    ) -> None:
        """`infrastructure_subnet_id` set: network: private, with saved queries in the account `query_storage_name`."""
        super().__init__("hr-connector:index:JobEnvironment", name, None, opts)
        private = infrastructure_subnet_id is not None
        child = pulumi.ResourceOptions(parent=self)
        # The logical names stay those of the resources when UploaderJob declared them ("job-logs",
        # "job-environment"): the URNs change only by their parent (see aliases), so an existing stack keeps them.
        self.workspace = operationalinsights.Workspace(
            "job-logs" if name == "environment" else f"{name}-logs",
            resource_group_name=resource_group_name,
            location=location,
            sku=operationalinsights.WorkspaceSkuArgs(name=operationalinsights.WorkspaceSkuNameEnum.PER_GB2018),
            # 30 days: the retention included in the price of the analytics tier
            # (https://learn.microsoft.com/azure/azure-monitor/logs/data-retention-configure)
            retention_in_days=30,
            # private: saved queries only in the linked account below (module docstring); its identity signs in there
            force_cmk_for_query=True if private else None,
            identity=operationalinsights.IdentityArgs(type=operationalinsights.IdentityType.SYSTEM_ASSIGNED)
            if private else None,
            opts=pulumi.ResourceOptions.merge(child, _moved_from_job()),
        )
        if private:
            if not query_storage_name:
                raise ValueError("a private environment needs query_storage_name")
            self._query_storage(name, query_storage_name, resource_group_name, location)
        self.environment = app.ManagedEnvironment(
            "job-environment" if name == "environment" else f"{name}-environment",
            environment_name=environment_name,
            resource_group_name=resource_group_name,
            location=location,
            app_logs_configuration=app.AppLogsConfigurationArgs(destination="azure-monitor"),
            vnet_configuration=app.VnetConfigurationArgs(infrastructure_subnet_id=infrastructure_subnet_id,
                                                         internal=True) if private else None,
            workload_profiles=[app.WorkloadProfileArgs(name=CONSUMPTION_PROFILE,
                                                       workload_profile_type=CONSUMPTION_PROFILE)]
            if private else None,
            opts=pulumi.ResourceOptions.merge(child, _moved_from_job()),
        )
        self.diagnostics = monitor.DiagnosticSetting(
            f"{name}-diagnostics",
            name=DIAGNOSTIC_SETTING_NAME,
            resource_uri=self.environment.id,
            workspace_id=self.workspace.id,  # the workspace's ARM ID, not its customer ID
            # "Dedicated": the resource-specific tables; unset would mean the legacy AzureDiagnostics table
            # (pulumi_azure_native monitor.DiagnosticSetting, log_analytics_destination_type).
            log_analytics_destination_type="Dedicated",
            logs=[monitor.DiagnosticsLogSettingsArgs(category=category, enabled=True) for category in LOG_CATEGORIES],
            opts=child,
        )
        self.register_outputs({"environmentId": self.environment.id, "workspaceId": self.workspace.id})

    def _query_storage(self, name: str, account_name: str, resource_group_name: pulumi.Input[str],
                       location: str) -> None:
        """The account for the workspace's saved queries, the workspace identity's role on it, and the link."""
        child = pulumi.ResourceOptions(parent=self)
        self.query_account = hardened_account(
            f"{name}-query-storage",
            account_name=account_name,
            resource_group_name=resource_group_name,
            location=location,  # "the linked storage account must be in the same region as the workspace"
            # Trusted Azure services only (Azure Monitor, by the workspace's system-assigned identity): default
            # action Deny, no IP rule (Azure Policy 34c877ad-507e-4c82-993e-3452a6e0ad3c, 2a1a9cdf-e04d-429a-8416-
            # 3bfb72a1b26f), bypass AzureServices as the private-storage page asks (module docstring).
            network_rule_set=storage.NetworkRuleSetArgs(default_action=storage.DefaultAction.DENY,
                                                        bypass="AzureServices", ip_rules=[]),
            public_network_access=None,
            services=storage.EncryptionServicesArgs(
                blob=storage.EncryptionServiceArgs(enabled=True, key_type=storage.KeyType.ACCOUNT),
                table=storage.EncryptionServiceArgs(enabled=True, key_type=storage.KeyType.ACCOUNT),
            ),
            opts=child,
        )
        self.query_grant = authorization.RoleAssignment(
            f"{name}-query-storage-tables",
            principal_id=self.workspace.identity.apply(_principal_id),
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            role_definition_id=self.query_account.id.apply(
                lambda aid: role_definition_id(aid.split("/")[2], ROLE_STORAGE_TABLE_DATA_CONTRIBUTOR)),
            scope=self.query_account.id,  # this one account
            description="hr-connector workspace: its saved queries in this account",
            opts=child,
        )
        self.query_link = operationalinsights.LinkedStorageAccount(
            f"{name}-query-link",
            resource_group_name=resource_group_name,
            workspace_name=self.workspace.name,
            data_source_type=QUERY_DATA_SOURCE,
            storage_account_ids=[self.query_account.id],
            # Learn: a link is refused while the account has no role assignment for the workspace's identity
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.query_grant]),
        )


def _principal_id(identity: operationalinsights.outputs.IdentityResponse | None) -> str:
    if identity is None or not identity.principal_id:
        raise ValueError("the workspace was created without its system-assigned identity")
    return identity.principal_id


def _moved_from_job() -> pulumi.ResourceOptions:
    """Before this component existed, UploaderJob ("job", a child of the stack) parented the workspace and the
    environment: an alias to that parent keeps a deployed stack's resources (no replacement)."""
    old_parent = f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::{OLD_PARENT_TYPE}::job"
    return pulumi.ResourceOptions(aliases=[pulumi.Alias(parent=old_parent)])
