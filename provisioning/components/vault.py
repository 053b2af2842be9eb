"""Key Vault holding the uploader's key: RBAC mode, purge protection, 90-day soft delete, one PEM secret."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
from pulumi_azure_native import authorization, keyvault

from provisioning.components.certificate import Certificate, parse_iso
from provisioning.config import Settings
from provisioning.naming import Names

SECRET_NAME = "uploader-certificate"  # noqa: S105 - a Key Vault secret name
PEM_CONTENT_TYPE = "application/x-pem-file"


def _epoch(iso: str) -> int:
    return int(parse_iso(iso).timestamp())


class Vault(pulumi.ComponentResource):
    """The vault and the secret with the key + certificate bundle (expires with the certificate)."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        names: Names,
        resource_group_name: pulumi.Input[str],
        certificate: Certificate,
        opts: pulumi.ResourceOptions,
        registered: Sequence[pulumi.Resource] = (),
    ) -> None:
        """`registered`: the app credential(s) for this certificate; the secret is written only after them."""
        super().__init__("hr-connector:index:Vault", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # The vault trusts the hosting subscription's directory (for GCC and commercial the same tenant).
        client = authorization.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self))
        self.vault = keyvault.Vault(
            f"{name}-vault",
            vault_name=names.key_vault,
            resource_group_name=resource_group_name,
            location=settings.location,
            properties=keyvault.VaultPropertiesArgs(
                tenant_id=client.tenant_id,
                sku=keyvault.SkuArgs(family="A", name=keyvault.SkuName.STANDARD),  # the only family (REST: vaults)
                # RBAC, not access policies: the role assignments in job.py grant the secret
                # (https://learn.microsoft.com/azure/key-vault/general/rbac-guide).
                enable_rbac_authorization=True,
                # Soft delete keeps a deleted vault 7-90 days; purge protection forbids purging it before then
                # (https://learn.microsoft.com/azure/key-vault/general/soft-delete-overview).
                enable_purge_protection=True,
                enable_soft_delete=True,
                soft_delete_retention_in_days=90,
                enabled_for_deployment=False,
                enabled_for_disk_encryption=False,
                enabled_for_template_deployment=False,
            ),
            opts=child,
        )
        self.secret = keyvault.Secret(
            f"{name}-certificate-secret",
            vault_name=self.vault.name,
            resource_group_name=resource_group_name,
            secret_name=SECRET_NAME,
            properties=keyvault.SecretPropertiesArgs(
                value=pulumi.Output.secret(certificate.pem),
                content_type=PEM_CONTENT_TYPE,
                attributes=keyvault.SecretAttributesArgs(
                    enabled=True,
                    not_before=certificate.notBefore.apply(_epoch),
                    expires=certificate.notAfter.apply(_epoch),
                ),
            ),
            # On renewal the job must not pick up the new key before Entra knows its certificate.
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(registered)),
        )
        self.vault_uri = self.vault.properties.apply(lambda p: p.vault_uri)
        # Versioned (secretUriWithVersion), not the version-less URI: Container Apps refreshes a version-less
        # reference only "within 30 minutes" and pins a versioned one ("For full control of which version of a
        # secret is used, specify the version in the URI": https://learn.microsoft.com/azure/container-apps/manage-secrets).
        # A renewal writes a new version, so the job's reference changes and the job is updated inside the same
        # `up`, before Pulumi deletes the replaced (old) app credential at the end of it.
        self.secret_uri = self.secret.properties.apply(lambda p: p.secret_uri_with_version)
        self.register_outputs({"vaultUri": self.vault_uri})
