"""hr-connector: everything Microsoft Purview's HR data connector needs in one Microsoft 365 tenant.

Composition root only; each Azure concern is one component in provisioning/. Read top to bottom:
settings -> providers -> Key Vault -> Entra app + certificate -> the vault's secret ->
drop zone -> image -> scheduled job -> alerts.
"""

import pulumi
from pulumi_azure_native import resources

from provisioning.components.alerts import Alerts
from provisioning.components.dropzone import DropZone
from provisioning.components.environment import JobEnvironment
from provisioning.components.identity import Identity
from provisioning.components.image import UploaderImage
from provisioning.components.job import UploaderJob, signing_key
from provisioning.components.outputs import next_steps
from provisioning.components.providers import Providers
from provisioning.components.tags import apply_tags
from provisioning.components.vault import Vault
from provisioning.components.vaultcert import VaultCertificate
from provisioning.config import settings_from_pulumi
from provisioning.naming import Names

settings = settings_from_pulumi()
apply_tags(settings.tags)  # before any resource: every taggable Azure resource gets them
names = Names(pulumi.get_stack(), settings.tenant_id)
providers = Providers("providers", settings)
bound = providers.options()

group = resources.ResourceGroup("group", resource_group_name=names.resource_group, location=settings.location,
                                opts=pulumi.ResourceOptions(provider=providers.azure))
vault = Vault("vault", settings, names, group.name, opts=bound)
identity = Identity("identity", settings, names, opts=bound, vault=vault)
vault.publish(identity.certificate, registered=[identity.credential])
dropzone = DropZone("dropzone", settings, names, group.name, opts=bound)
image = UploaderImage("image", settings, names, group.name, opts=bound)
environment = JobEnvironment("environment", environment_name=names.environment, resource_group_name=group.name,
                             location=settings.location, opts=bound)
job = UploaderJob(
    "job", settings, names, group.name,
    application_id=identity.application.client_id,
    secret_id=vault.secret.id, secret_uri=vault.secret_uri, signing_key=signing_key(identity.certificate, vault),
    container_id=dropzone.container.id, dropzone_url=dropzone.url,
    image=image.ref, registry=image.registry, environment_id=environment.environment.id, opts=bound,
)
if settings.alert_emails:
    Alerts("alerts", settings, group.name, job_name=job.job.name, workspace_id=environment.workspace.id, opts=bound)

pulumi.export("applicationId", identity.application.client_id)
pulumi.export("tenantId", settings.tenant_id)
pulumi.export("certificateThumbprint", identity.certificate.thumbprintSha1)
pulumi.export("certificateExpiresOn", identity.certificate.notAfter)
pulumi.export("certificateRenewBeforeDays", settings.certificate.renew_before_days)  # `python -m provisioning certs`
pulumi.export("certificateProtection", settings.certificate.protection)
if isinstance(identity.certificate, VaultCertificate):  # protection vault or hsm
    pulumi.export("keyId", identity.certificate.keyId)  # the versioned key ID the job signs with (UPLOADER_KEY_ID)
pulumi.export("keyVaultUri", vault.vault_uri)
pulumi.export("dropZoneUrl", dropzone.url)
pulumi.export("jobName", job.job.name)
pulumi.export("jobIdentityPrincipalId", job.identity.principal_id)
pulumi.export("cloud", settings.cloud.name)
pulumi.export("ingestionEndpoint", settings.cloud.signals_url)
pulumi.export("nextSteps", identity.application.client_id.apply(lambda app_id: next_steps(settings, app_id)))
