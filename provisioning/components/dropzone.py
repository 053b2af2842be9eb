"""The drop zone: a locked-down StorageV2 account and the container the HR system exports into.

Layout inside the container (owned by `uploader run`): incoming/, processed/, rejected/, state/. The
lifecycle policy deletes processed/ and rejected/ files after the configured number of days.
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import storage

from provisioning.config import Settings
from provisioning.naming import Names

CONTAINER_NAME = "dropzone"


def _delete_after(rule: str, prefix: str, days: int) -> storage.ManagementPolicyRuleArgs:
    return storage.ManagementPolicyRuleArgs(
        name=rule,
        type="Lifecycle",
        enabled=True,
        definition=storage.ManagementPolicyDefinitionArgs(
            filters=storage.ManagementPolicyFilterArgs(blob_types=["blockBlob"], prefix_match=[prefix]),
            actions=storage.ManagementPolicyActionArgs(
                base_blob=storage.ManagementPolicyBaseBlobArgs(
                    delete=storage.DateAfterModificationArgs(days_after_modification_greater_than=days),
                ),
            ),
        ),
    )


class DropZone(pulumi.ComponentResource):
    """Storage account (no shared keys, TLS 1.2, no public blobs, OAuth by default), container, lifecycle."""

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
        self.account = storage.StorageAccount(
            f"{name}-account",
            account_name=names.storage_account,
            resource_group_name=resource_group_name,
            location=settings.location,
            kind=storage.Kind.STORAGE_V2,
            sku=storage.SkuArgs(name=storage.SkuName.STANDARD_LRS),
            allow_shared_key_access=False,
            allow_blob_public_access=False,
            default_to_o_auth_authentication=True,
            minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
            enable_https_traffic_only=True,
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
            ]),
            opts=child,
        )
        # (apply, not Output.all: Output.all hands typed outputs over as plain dicts)
        blob_endpoint = self.account.primary_endpoints.apply(lambda endpoints: endpoints.blob.rstrip("/"))
        self.url = pulumi.Output.concat(blob_endpoint, "/", self.container.name)
        self.register_outputs({"dropZoneUrl": self.url})
