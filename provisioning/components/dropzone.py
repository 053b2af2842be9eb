"""The drop zone: a locked-down StorageV2 account and the container the HR system exports into.

Layout inside the container (owned by `uploader run`): incoming/, processed/, rejected/, state/. The
lifecycle policy deletes processed/ and rejected/ files after the configured number of days.

Clean by default (issue 26; what Azure Policy's FedRAMP High / IL5 / MCSB initiatives look for):
- infrastructure encryption, a second layer of AES-256 at the infrastructure level, which "can only be enabled
  when the storage account is created" (https://learn.microsoft.com/azure/storage/common/infrastructure-encryption-enable;
  policy 4733ea7b-a883-42fe-8cac-97454c2a9e4a). A new account gets it; an existing account keeps what it has
  (`ignore_changes`: a plain `up` must not try to change it in place or replace the drop zone with its files).
  Moving an existing account over is a documented step (CHANGELOG, docs/operators-guide.md).
- blob soft delete and versioning (https://learn.microsoft.com/azure/storage/blobs/soft-delete-blob-overview,
  https://learn.microsoft.com/azure/storage/blobs/versioning-overview): an accidental delete or overwrite of an HR
  file or a checkpoint can be undone for SOFT_DELETE_DAYS. So that no copy outlives the retention, the lifecycle
  policy also deletes previous versions VERSION_DAYS after they stop being current ("daysAfterCreationGreaterThan"
  counts from when a version became previous: https://learn.microsoft.com/azure/storage/blobs/lifecycle-management-overview).
  A processed file is therefore gone at most processedDays + VERSION_DAYS + SOFT_DELETE_DAYS after it was filed.
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import storage

from provisioning.config import Settings
from provisioning.naming import Names

CONTAINER_NAME = "dropzone"
#: How long a deleted blob (or previous version) stays recoverable; 1-365 days (DeleteRetentionPolicy).
SOFT_DELETE_DAYS = 7
#: How long a previous version is kept after it stops being the current one.
VERSION_DAYS = 7


def _lifecycle_rule(
    rule: str, prefix: str, actions: storage.ManagementPolicyActionArgs,
) -> storage.ManagementPolicyRuleArgs:
    """One lifecycle rule over the block blobs under `prefix`."""
    return storage.ManagementPolicyRuleArgs(
        name=rule,
        type="Lifecycle",
        enabled=True,
        definition=storage.ManagementPolicyDefinitionArgs(
            filters=storage.ManagementPolicyFilterArgs(blob_types=["blockBlob"], prefix_match=[prefix]),
            actions=actions,
        ),
    )


def _delete_after(rule: str, prefix: str, days: int) -> storage.ManagementPolicyRuleArgs:
    """Current blobs under `prefix` are deleted `days` after their last modification."""
    return _lifecycle_rule(rule, prefix, storage.ManagementPolicyActionArgs(
        base_blob=storage.ManagementPolicyBaseBlobArgs(
            delete=storage.DateAfterModificationArgs(days_after_modification_greater_than=days))))


def _expire_versions(rule: str, prefix: str, days: int) -> storage.ManagementPolicyRuleArgs:
    """Previous versions anywhere under `prefix` are deleted `days` after they stopped being current."""
    return _lifecycle_rule(rule, prefix, storage.ManagementPolicyActionArgs(
        version=storage.ManagementPolicyVersionArgs(
            delete=storage.DateAfterCreationArgs(days_after_creation_greater_than=days))))


def hardened_account(
    resource_name: str,
    *,
    account_name: pulumi.Input[str],
    resource_group_name: pulumi.Input[str],
    location: pulumi.Input[str],
    network_rule_set: storage.NetworkRuleSetArgs | None,
    public_network_access: str | None,
    services: storage.EncryptionServicesArgs,
    opts: pulumi.ResourceOptions,
) -> storage.StorageAccount:
    """A StorageV2 account with the baseline every account of the program has: no shared keys, no public blobs,
    OAuth by default, TLS 1.2 and HTTPS only, infrastructure encryption (Azure Policy 4733ea7b-a883-42fe-8cac-
    97454c2a9e4a; only at creation: callers keep an existing account's setting with `ignore_changes`). The caller
    says who may reach it (`network_rule_set`, `public_network_access`) and which services are encrypted."""
    return storage.StorageAccount(
        resource_name,
        account_name=account_name,
        resource_group_name=resource_group_name,
        location=location,
        kind=storage.Kind.STORAGE_V2,
        sku=storage.SkuArgs(name=storage.SkuName.STANDARD_LRS),
        allow_shared_key_access=False,
        allow_blob_public_access=False,
        default_to_o_auth_authentication=True,
        minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
        enable_https_traffic_only=True,
        public_network_access=public_network_access,
        network_rule_set=network_rule_set,
        encryption=storage.EncryptionArgs(
            key_source=storage.KeySource.MICROSOFT_STORAGE,
            require_infrastructure_encryption=True,
            services=services,
        ),
        opts=opts,
    )


class DropZone(pulumi.ComponentResource):
    """Storage account (no shared keys, TLS 1.2, no public blobs, OAuth by default, infrastructure encryption),
    its blob service (soft delete, versioning), container, lifecycle."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        names: Names,
        resource_group_name: pulumi.Input[str],
        opts: pulumi.ResourceOptions,
    ) -> None:
        super().__init__("hr-connector:index:DropZone", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # network: private: public network access Enabled only for the IP rules ("Enabled from selected virtual
        # networks and IP addresses"), else Disabled
        allowed = settings.drop_zone.allowed_ip_ranges
        self.account = hardened_account(
            f"{name}-account",
            account_name=names.storage_account,
            resource_group_name=resource_group_name,
            location=settings.location,
            # network: private: public traffic refused (Azure Policy 34c877ad-507e-4c82-993e-3452a6e0ad3c and
            # 2a1a9cdf-e04d-429a-8416-3bfb72a1b26f); the job reaches the blob service through its private endpoint;
            # the HR system through it too, or from dropZone.allowedIpRanges (the account's IP rules, which policy
            # 2a1a9cdf denies: docs/configuration.md#network). No trusted-service bypass
            # (https://learn.microsoft.com/azure/storage/common/storage-network-security).
            public_network_access=("Enabled" if allowed else "Disabled") if settings.private else None,
            network_rule_set=storage.NetworkRuleSetArgs(
                default_action=storage.DefaultAction.DENY,
                bypass="None",
                ip_rules=[storage.IPRuleArgs(i_p_address_or_range=ip, action=storage.Action.ALLOW) for ip in allowed],
            ) if settings.private else None,
            services=storage.EncryptionServicesArgs(
                blob=storage.EncryptionServiceArgs(enabled=True, key_type=storage.KeyType.ACCOUNT),
            ),
            # Only at creation: an existing account keeps its setting (see the module docstring).
            opts=pulumi.ResourceOptions(parent=self,
                                        ignore_changes=["encryption.requireInfrastructureEncryption"]),
        )
        # The blob service of the account (always named "default"): soft delete for blobs and containers, versioning.
        self.blob_service = storage.BlobServiceProperties(
            f"{name}-blob-service",
            account_name=self.account.name,
            resource_group_name=resource_group_name,
            blob_services_name="default",
            delete_retention_policy=storage.DeleteRetentionPolicyArgs(enabled=True, days=SOFT_DELETE_DAYS,
                                                                      allow_permanent_delete=False),
            container_delete_retention_policy=storage.DeleteRetentionPolicyArgs(enabled=True,
                                                                                days=SOFT_DELETE_DAYS),
            is_versioning_enabled=True,
            opts=child,
        )
        self.container = storage.BlobContainer(
            f"{name}-container",
            account_name=self.account.name,
            resource_group_name=resource_group_name,
            container_name=CONTAINER_NAME,
            public_access=storage.PublicAccess.NONE,
            opts=child,
        )
        days = settings.drop_zone
        self.policy = storage.ManagementPolicy(
            f"{name}-lifecycle",
            account_name=self.account.name,
            resource_group_name=resource_group_name,
            management_policy_name="default",
            policy=storage.ManagementPolicySchemaArgs(rules=[
                _delete_after("delete-processed", f"{CONTAINER_NAME}/processed/", days.processed_days),
                _delete_after("delete-rejected", f"{CONTAINER_NAME}/rejected/", days.rejected_days),
                _expire_versions("expire-previous-versions", f"{CONTAINER_NAME}/", VERSION_DAYS),
            ]),
            # versions exist once versioning is on
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.blob_service]),
        )
        # (apply, not Output.all: Output.all hands typed outputs over as plain dicts)
        blob_endpoint = self.account.primary_endpoints.apply(lambda endpoints: endpoints.blob.rstrip("/"))
        self.url = pulumi.Output.concat(blob_endpoint, "/", self.container.name)
        self.register_outputs({"dropZoneUrl": self.url})
