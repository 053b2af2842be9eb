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
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import app, monitor, operationalinsights

#: The environment's log categories sent to the workspace (supported-logs page above).
LOG_CATEGORIES = ("ContainerAppConsoleLogs", "ContainerAppSystemLogs")
DIAGNOSTIC_SETTING_NAME = "hr-connector-logs"
OLD_PARENT_TYPE = "hr-connector:index:UploaderJob"
#: The workload profile of a private environment, and the one its jobs name (its name and type are both Consumption).
CONSUMPTION_PROFILE = "Consumption"


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
    ) -> None:
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
            opts=pulumi.ResourceOptions.merge(child, _moved_from_job()),
        )
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


def _moved_from_job() -> pulumi.ResourceOptions:
    """Before this component existed, UploaderJob ("job", a child of the stack) parented the workspace and the
    environment: an alias to that parent keeps a deployed stack's resources (no replacement)."""
    old_parent = f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::{OLD_PARENT_TYPE}::job"
    return pulumi.ResourceOptions(aliases=[pulumi.Alias(parent=old_parent)])
