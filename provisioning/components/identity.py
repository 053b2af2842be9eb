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


FEDERATED_NOTES = (
    "Microsoft Purview HR data connector uploader for this tenant, managed by Pulumi (hr-connector). "
    "Signs in as its upload job's user-assigned managed identity (a federated identity credential); it has no "
    "certificate and no client secret. Its application (client) ID is the one entered in Purview's HR connector wizard."
)
#: The federated identity credential's name: 3-120 URL-friendly characters, immutable
#: (https://learn.microsoft.com/entra/workload-id/workload-identity-federation-config-app-trust-managed-identity).
FEDERATED_CREDENTIAL_NAME = "hr-uploader-job-identity"


class Identity(pulumi.ComponentResource):
    """Application + service principal + its credential: the generated certificate, or (credential: federated)
    a federated identity credential trusting the job's user-assigned identity (`trust`, once the job exists)."""

    application: azuread.Application
    certificate: Certificate | VaultCertificate | None

    def __init__(self, name: str, settings: Settings, names: Names, opts: pulumi.ResourceOptions,
                 vault: Vault | None = None, azure_tenant_id: pulumi.Input[str] | None = None) -> None:
        """`vault` (required for protection vault/hsm): where Key Vault makes the certificate, once the deployer's
        grant there has applied; `azure_tenant_id`: the directory the certificate provider signs in to (the Azure
        side, Providers.azure_tenant_id). The app and its credential are on the Microsoft 365 side (azuread)."""
        super().__init__("hr-connector:index:Identity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.settings = settings
        self._name = name
        cert = settings.certificate
        self.certificate = None
        self.credential: pulumi.Resource | None = None
        if settings.federated:
            pass  # no certificate, no key: `trust` registers the job's identity once the job has one
        elif cert.in_vault:
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
                azure_tenant_id=azure_tenant_id,
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
            notes=FEDERATED_NOTES if settings.federated else NOTES,
            owners=list(settings.owners) or None,
            prevent_duplicate_names=True,
            opts=child,
        )
        self.service_principal = azuread.ServicePrincipal(
            f"{name}-sp",
            client_id=self.application.client_id,
            owners=list(settings.owners) or None,
            notes=FEDERATED_NOTES if settings.federated else NOTES,
            opts=child,
        )
        if self.certificate is not None:
            self.credential = self._certificate_credential(name, self.certificate)
        self.register_outputs({"applicationId": self.application.client_id})

    def _certificate_credential(self, name: str, certificate: Certificate | VaultCertificate) -> pulumi.Resource:
        # The certificate's value changes on renewal, which replaces this credential create-before-delete:
        # the new key is registered on the app before the old one is removed (see certificate.py).
        return azuread.ApplicationCertificate(
            f"{name}-credential",
            application_id=self.application.id,
            # keyCredential type of a certificate
            # (https://learn.microsoft.com/graph/api/resources/keycredential)
            type="AsymmetricX509Cert",
            encoding="pem",
            value=certificate.certificatePem,
            start_date=certificate.notBefore,
            end_date=certificate.notAfter,
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=False),
        )

    def trust(self, principal_id: pulumi.Input[str]) -> azuread.ApplicationFederatedIdentityCredential:
        """credential: federated: the app trusts the job's user-assigned identity (its principal ID as subject).

        Issuer and audience come from the cloud table (uploader/clouds.py, Federation, with Microsoft's source);
        config.py has already refused a cloud without them. Arguments as pulumi_azuread 6.x names them
        (application_federated_identity_credential.py: application_id, audiences, display_name, issuer, subject)."""
        federation = self.settings.cloud.federation
        assert federation is not None, "config refuses credential: federated where the cloud has no federation"
        self.credential = azuread.ApplicationFederatedIdentityCredential(
            f"{self._name}-federated-credential",
            application_id=self.application.id,
            display_name=FEDERATED_CREDENTIAL_NAME,
            description="hr-connector: the upload job's user-assigned managed identity signs in as this app",
            issuer=federation.issuer(self.settings.tenant_id),
            subject=principal_id,
            audiences=[federation.audience],
            opts=pulumi.ResourceOptions(parent=self),
        )
        return self.credential
