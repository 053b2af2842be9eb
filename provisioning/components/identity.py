"""The Entra app the uploader signs in as: single tenant, certificate credential only, no secret, no redirects."""

from __future__ import annotations

import pulumi
import pulumi_azuread as azuread

from provisioning.components.certificate import Certificate
from provisioning.components.vault import VAULT_CERTIFICATE_NAME, Vault
from provisioning.components.vaultcert import VaultCertificate
from provisioning.config import Settings
from provisioning.naming import Names

NOTES = (
    "Microsoft Purview HR data connector uploader for this tenant, managed by Pulumi (hr-connector). "
    "Signs in with a certificate whose key lives in Key Vault; it has no client secret. "
    "Its application (client) ID is the one entered in Purview's HR connector wizard."
)


class Identity(pulumi.ComponentResource):
    """Application + service principal + the generated certificate registered as its credential."""

    application: azuread.Application
    certificate: Certificate | VaultCertificate

    def __init__(self, name: str, settings: Settings, names: Names, opts: pulumi.ResourceOptions,
                 vault: Vault | None = None) -> None:
        """`vault` (required for protection vault/hsm): where Key Vault makes the certificate, once the deployer's
        grant there has applied."""
        super().__init__("hr-connector:index:Identity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cert = settings.certificate
        if cert.in_vault:
            # A different resource (type and name) from the exportable Certificate: moving a stack to the vault
            # creates this one and, at the end of the `up`, deletes the old one (a renewal, create-before-delete).
            assert vault is not None, "protection vault/hsm needs the Vault"
            self.certificate = VaultCertificate(
                f"{name}-vault-certificate",
                vault_uri=vault.vault_uri,
                certificate_name=VAULT_CERTIFICATE_NAME,
                common_name=names.certificate_subject,
                validity_days=cert.validity_days,
                renew_before_days=cert.renew_before_days,
                key_type="RSA-HSM" if cert.protection == "hsm" else "RSA",
                azure_environment=settings.azure_environment,
                opts=pulumi.ResourceOptions(parent=self, depends_on=vault.ready),
            )
        else:
            self.certificate = Certificate(
                f"{name}-certificate",
                common_name=names.certificate_subject,
                validity_days=cert.validity_days,
                renew_before_days=cert.renew_before_days,
                opts=child,
            )
        self.application = azuread.Application(
            f"{name}-app",
            display_name=names.app_display_name,
            # single tenant (https://learn.microsoft.com/entra/identity-platform/supported-accounts-validation)
            sign_in_audience="AzureADMyOrg",
            notes=NOTES,
            owners=list(settings.owners) or None,
            prevent_duplicate_names=True,
            opts=child,
        )
        self.service_principal = azuread.ServicePrincipal(
            f"{name}-sp",
            client_id=self.application.client_id,
            owners=list(settings.owners) or None,
            notes=NOTES,
            opts=child,
        )
        # The certificate's value changes on renewal, which replaces this credential create-before-delete:
        # the new key is registered on the app before the old one is removed (see certificate.py).
        self.credential = azuread.ApplicationCertificate(
            f"{name}-credential",
            application_id=self.application.id,
            # keyCredential type of a certificate
            # (https://learn.microsoft.com/graph/api/resources/keycredential)
            type="AsymmetricX509Cert",
            encoding="pem",
            value=self.certificate.certificatePem,
            start_date=self.certificate.notBefore,
            end_date=self.certificate.notAfter,
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=False),
        )
        self.register_outputs({"applicationId": self.application.client_id})
