"""Resource logs of the stack's Key Vault, drop zone and registry, sent to the job's Log Analytics workspace.

One diagnostic setting per resource, every log category (`categoryGroup: allLogs`, "all logs, including the
categories added later": https://learn.microsoft.com/azure/azure-monitor/essentials/diagnostic-settings#category-groups):
- the vault: AuditEvent, who read, signed with or changed what
  (https://learn.microsoft.com/azure/azure-monitor/reference/supported-logs/microsoft-keyvault-vaults-logs;
  Azure Policy cf820ca0-f99e-4f3e-84fb-66e913812d21, "Resource logs in Key Vault should be enabled");
- the drop zone's blob service (a storage account's blob logs are a setting on `…/blobServices/default`, not on the
  account): StorageRead, StorageWrite, StorageDelete
  (https://learn.microsoft.com/azure/azure-monitor/reference/supported-logs/microsoft-storage-storageaccounts-blobservices-logs);
- the registry: logins and repository events
  (https://learn.microsoft.com/azure/azure-monitor/reference/supported-logs/microsoft-containerregistry-registries-logs).
The workspace is the job's: the stack's own, or a hosted tenant's hosting stack's (its operators already see the
job's logs there). Blob logs name the blob paths (file names), never a blob's content.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
from pulumi_azure_native import monitor

SETTING_NAME = "hr-connector-resource-logs"


class ResourceLogs(pulumi.ComponentResource):
    """`settings`: one diagnostic setting per (label, resource ID) in `targets`, to `workspace_id`."""

    def __init__(self, name: str, workspace_id: pulumi.Input[str],
                 targets: Sequence[tuple[str, pulumi.Input[str]]], opts: pulumi.ResourceOptions) -> None:
        super().__init__("hr-connector:index:ResourceLogs", name, None, opts)
        self.settings = [
            monitor.DiagnosticSetting(
                f"{name}-{label}",
                name=SETTING_NAME,
                resource_uri=resource_id,
                workspace_id=workspace_id,  # the workspace's ARM ID
                logs=[monitor.DiagnosticsLogSettingsArgs(category_group="allLogs", enabled=True)],
                opts=pulumi.ResourceOptions(parent=self),
            )
            for label, resource_id in targets
        ]
        self.register_outputs({})
