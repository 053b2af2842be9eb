"""The real Pulumi program (__main__.py), run under mocks once per example stack file (examples/stacks/) with that
file's config loaded as the Pulumi CLI would (provisioning.tools.offline), and the graph it declares checked against
the design."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from stack_examples import example_stacks

from provisioning.config import Settings
from provisioning.tools.offline import ConfigError as OfflineConfigError
from provisioning.tools.offline import Evaluation, Resource, evaluate, load_stack_settings, mask

pytestmark = pytest.mark.pulumi

STACKS = example_stacks()
ARM_RESOURCE_ID = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/.+/[^/]+$")
GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

APP = "azuread:index/application:Application"
APP_CERT = "azuread:index/applicationCertificate:ApplicationCertificate"
CERT = "pulumi-python:dynamic/hrconnector:Certificate"
VAULT = "azure-native:keyvault:Vault"
SECRET = "azure-native:keyvault:Secret"
JOB = "azure-native:app:Job"
ROLE = "azure-native:authorization:RoleAssignment"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
RBAC_WAIT = "pulumi-python:dynamic/hrconnector:RoleAssignmentWait"
VAULT_CERT = "pulumi-python:dynamic/hrconnector:VaultCertificate"
CRYPTO_USER = "12338af0-0e69-4776-bea7-57ae8d297424"
CERTIFICATES_OFFICER = "a4417e6f-fecd-4de8-b567-7b0420556985"
SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"


def certificate_of(settings: Settings, ev: Evaluation) -> Resource:
    """The stack's one certificate resource: Key Vault-made (vault, hsm) or program-made (exportable)."""
    assert len(ev.of_type(CERT)) + len(ev.of_type(VAULT_CERT)) == 1
    return ev.one(VAULT_CERT if settings.certificate.in_vault else CERT)


def job_roles(ev: Evaluation) -> list[Resource]:
    """The job identity's role assignments (not the deployer's own grant on the vault)."""
    principal = ev.one(IDENTITY).state["principalId"]
    return [r for r in ev.of_type(ROLE) if r.inputs["principalId"] == principal]


@pytest.fixture(scope="module", params=STACKS, ids=[p.name for p in STACKS])
def stack(request: pytest.FixtureRequest) -> tuple[Settings, Evaluation]:
    """(the stack file's settings, the program's graph for it); one subprocess evaluation per stack file."""
    path: Path = request.param
    return load_stack_settings(path), evaluate(path, isolated=False)


def env_of(job: Resource) -> dict[str, dict]:
    (container,) = job.inputs["template"]["containers"]
    return {e["name"]: e for e in container["env"]}


def test_the_repo_has_the_example_stacks() -> None:
    assert len(STACKS) >= 3


def test_outputs(stack: tuple[Settings, Evaluation]) -> None:
    settings, ev = stack
    out = ev.outputs
    assert set(out) == {"applicationId", "tenantId", "certificateThumbprint", "certificateExpiresOn",
                        "certificateRenewBeforeDays", "certificateProtection", "keyVaultUri",
                        "dropZoneUrl", "jobName", "jobIdentityPrincipalId", "cloud", "ingestionEndpoint", "network",
                        "nextSteps", "credential", "azureTenantId", "jobIdentityClientId", "signIn", "workspaceId"} | (
                            {"keyId"} if settings.certificate.in_vault else set())
    assert out["azureTenantId"] == settings.tenant_id  # a self-contained example: both sides in one directory
    assert out["certificateProtection"] == settings.certificate.protection
    cert = certificate_of(settings, ev)
    assert out["jobIdentityPrincipalId"] == ev.one(IDENTITY).state["principalId"]
    assert out["applicationId"] == ev.one(APP).state["clientId"]
    assert out["tenantId"] == settings.tenant_id and out["cloud"] == settings.cloud.name
    assert out["ingestionEndpoint"] == settings.cloud.signals_url
    assert out["certificateThumbprint"] == cert.state["thumbprintSha1"]
    assert out["certificateExpiresOn"] == cert.state["notAfter"]
    if settings.certificate.in_vault:
        assert out["keyId"] == cert.state["keyId"]
    assert out["certificateRenewBeforeDays"] == settings.certificate.renew_before_days
    assert out["jobName"] == ev.one(JOB).inputs["jobName"]
    assert out["applicationId"] in out["nextSteps"]
    if not settings.connectors:
        assert "Purview" in out["nextSteps"] and "pulumi up" in out["nextSteps"]


def test_no_password_credential_anywhere(stack: tuple[Settings, Evaluation]) -> None:
    _, ev = stack
    assert not [r.type for r in ev.resources if "password" in r.type.lower()]
    app = ev.one(APP)
    assert "password" not in app.inputs and "passwordCredentials" not in app.inputs
    assert app.inputs["signInAudience"] == "AzureADMyOrg"
    assert not app.inputs.get("web", {}).get("redirectUris") and "publicClient" not in app.inputs
    assert "Purview" in app.inputs["notes"]


def test_a_certificate_credential_from_the_generated_certificate(stack: tuple[Settings, Evaluation]) -> None:
    settings, ev = stack
    cert, cred, app = certificate_of(settings, ev), ev.one(APP_CERT), ev.one(APP)
    assert cred.inputs["type"] == "AsymmetricX509Cert" and cred.inputs["encoding"] == "pem"
    assert cred.inputs["applicationId"] == app.id
    # the azuread schema marks the value secret; it is the public certificate, never the key bundle
    assert cert.state["certificatePem"].startswith("-----BEGIN CERTIFICATE-----")
    assert cred.inputs["value"] == mask(cert.state["certificatePem"], secret=True)
    assert (cred.inputs["startDate"], cred.inputs["endDate"]) == (cert.state["notBefore"], cert.state["notAfter"])
    assert cert.inputs["validityDays"] == settings.certificate.validity_days
    assert cert.inputs["renewBeforeDays"] == settings.certificate.renew_before_days
    # renewal overlap: both are replaced create-before-delete
    assert not cert.delete_before_replace and not cred.delete_before_replace
    if settings.certificate.in_vault:
        # Key Vault makes it (after the deployer's grant has applied); state keeps public values only
        assert "pem" not in cert.state and cert.additional_secret_outputs == []
        assert cert.inputs["keyType"] == ("RSA-HSM" if settings.certificate.protection == "hsm" else "RSA")
        assert cert.inputs["keySize"] >= 2048
        assert cert.state["keyId"].startswith(ev.outputs["keyVaultUri"].rstrip("/") + "/keys/uploader-signer/")
        waits = [w for w in ev.of_type(RBAC_WAIT) if w.urn in cert.depends_on]
        officer = [r for r in ev.of_type(ROLE) if r.inputs["roleDefinitionId"].endswith(CERTIFICATES_OFFICER)]
        assert len(waits) == 1 and len(officer) == 1 and waits[0].inputs["roleAssignmentIds"] == [officer[0].id]
        assert officer[0].inputs["scope"] == ev.one(VAULT).id  # the one vault, for the deployer
    else:
        assert cred.inputs["value"] != cert.state["pem"]
        assert cert.additional_secret_outputs == ["pem"]  # the key is a secret output of the certificate
        assert cert.state["pem"].startswith("[secret:")
    assert app.inputs.get("owners", []) == list(settings.owners)


def test_no_private_key_travels_unmarked(stack: tuple[Settings, Evaluation]) -> None:
    _, ev = stack
    assert "unmarked-private-key" not in json.dumps(ev.to_json())


def test_vault_and_hsm_stacks_hold_no_private_key_anywhere(stack: tuple[Settings, Evaluation]) -> None:
    """protection vault/hsm: no resource's inputs or state, and no output, holds a private key or a secret of one
    (the evaluation runs the VaultCertificate provider's real create against the in-memory Key Vault stand-in)."""
    settings, ev = stack
    if not settings.certificate.in_vault:
        pytest.skip("exportable: the key is a secret output (test_no_private_key_travels_unmarked)")
    text = json.dumps(ev.to_json())
    assert "PRIVATE KEY" not in text
    assert not [r.name for r in ev.resources if "pem" in r.state or "pem" in r.inputs]
    assert not ev.of_type(CERT), "no program-made (exportable) certificate"


def test_the_vault_and_the_key_in_it(stack: tuple[Settings, Evaluation]) -> None:
    settings, ev = stack
    vault, secret, cert = ev.one(VAULT), ev.one(SECRET), certificate_of(settings, ev)
    props = vault.inputs["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enablePurgeProtection"] is True
    assert props["softDeleteRetentionInDays"] == 90
    assert "accessPolicies" not in props
    assert props["sku"]["name"] == ("premium" if settings.certificate.protection == "hsm" else "standard")
    assert secret.inputs["vaultName"] == vault.state["name"]
    # renewal order: the new key is published only after its certificate is registered on the app
    assert ev.one(APP_CERT).urn in secret.depends_on
    secret_props = secret.inputs["properties"]
    if settings.certificate.in_vault:  # the secret stays, disabled, holding no key (a moved stack's old one retired)
        # issue 26: it expires too (Azure Policy 98728c90…), with the certificate that replaced it
        assert secret_props["attributes"] == {"enabled": False, "expires": _epoch(cert.state["notAfter"])}
        assert "PRIVATE KEY" not in secret_props["value"] and "retired" in secret_props["value"]
        assert cert.inputs["vaultUri"] == ev.outputs["keyVaultUri"]
        return
    # the whole properties object is a Pulumi secret; its value is the certificate's PEM bundle (key included)
    assert secret_props["value"] == cert.state["pem"]
    assert secret_props["contentType"] == mask("application/x-pem-file", secret=True)
    assert secret_props["attributes"]["expires"] == mask(_epoch(cert.state["notAfter"]), secret=True)


def _epoch(iso: str) -> int:
    from provisioning.components.certificate import parse_iso

    return int(parse_iso(iso).timestamp())


def test_the_drop_zone(stack: tuple[Settings, Evaluation]) -> None:
    settings, ev = stack
    # the drop zone's account (a private stack also has its workspace's query storage: test_private_network.py)
    (account,) = [a for a in ev.of_type("azure-native:storage:StorageAccount") if not a.name.endswith("query-storage")]
    i = account.inputs
    assert (i["kind"], i["allowSharedKeyAccess"], i["allowBlobPublicAccess"]) == ("StorageV2", False, False)
    assert (i["minimumTlsVersion"], i["defaultToOAuthAuthentication"]) == ("TLS1_2", True)
    # issue 26: infrastructure encryption on a new account; an existing one is left as it is (set at creation only)
    assert i["encryption"]["requireInfrastructureEncryption"] is True
    assert i["encryption"]["keySource"] == "Microsoft.Storage"
    assert account.ignore_changes == ["encryption.requireInfrastructureEncryption"]
    # soft delete and versioning on the blob service
    service = ev.one("azure-native:storage:BlobServiceProperties")
    assert service.inputs["accountName"] == account.state["name"] and service.inputs["blobServicesName"] == "default"
    assert service.inputs["isVersioningEnabled"] is True
    assert service.inputs["deleteRetentionPolicy"] == {"enabled": True, "days": 7, "allowPermanentDelete": False}
    assert service.inputs["containerDeleteRetentionPolicy"] == {"enabled": True, "days": 7}
    container = ev.one("azure-native:storage:BlobContainer")
    assert container.inputs["publicAccess"] == "None"
    lifecycle = ev.one("azure-native:storage:ManagementPolicy")
    assert service.urn in lifecycle.depends_on
    policy = lifecycle.inputs["policy"]
    rules = {r["name"]: r["definition"] for r in policy["rules"]}
    # previous versions (made by every overwrite and delete) expire everywhere in the container, so no copy of an
    # HR file outlives its retention by more than the version and soft-delete windows
    versions = rules["expire-previous-versions"]
    assert versions["filters"]["prefixMatch"] == ["dropzone/"]
    assert versions["actions"] == {"version": {"delete": {"daysAfterCreationGreaterThan": 7}}}
    for rule, prefix, days in (("delete-processed", "processed/", settings.drop_zone.processed_days),
                               ("delete-rejected", "rejected/", settings.drop_zone.rejected_days)):
        assert rules[rule]["filters"]["prefixMatch"] == [f"dropzone/{prefix}"]
        assert rules[rule]["actions"]["baseBlob"]["delete"]["daysAfterModificationGreaterThan"] == days
    assert ev.outputs["dropZoneUrl"].endswith(f"/{container.inputs['containerName']}")


def test_the_job_schedule_environment_and_secret_reference(stack: tuple[Settings, Evaluation]) -> None:
    settings, ev = stack
    job, identity, secret, app = ev.one(JOB), ev.one(IDENTITY), ev.one(SECRET), ev.one(APP)
    conf = job.inputs["configuration"]
    assert conf["triggerType"] == "Schedule"
    assert conf["scheduleTriggerConfig"]["cronExpression"] == settings.schedule
    assert conf["replicaTimeout"] > 0 and conf["replicaRetryLimit"] >= 0
    assert job.inputs["identity"] == {"type": "UserAssigned", "userAssignedIdentities": [identity.id]}
    env = env_of(job)
    key_vars: set[str] = set()
    if settings.certificate.in_vault:
        # no key, no secret reference: the versioned key ID (a renewal's new version updates the job inside the
        # `up`) and the public certificate alone, in plain values
        cert = certificate_of(settings, ev)
        assert not conf.get("secrets")
        assert not any("secretRef" in e for e in env.values())
        assert env["UPLOADER_KEY_ID"]["value"] == cert.state["keyId"]
        assert env["UPLOADER_CERTIFICATE_PEM"]["value"] == cert.state["certificatePem"]
        assert "PRIVATE KEY" not in env["UPLOADER_CERTIFICATE_PEM"]["value"]
        key_vars = {"UPLOADER_KEY_ID"}
    else:
        (kv_ref,) = conf["secrets"]
        # versioned: a renewal's new secret version updates the job inside the `up`, before the old credential goes
        assert kv_ref["keyVaultUrl"] == secret.state["properties"]["secretUriWithVersion"]
        assert kv_ref["keyVaultUrl"] != secret.state["properties"]["secretUri"]
        assert kv_ref["identity"] == identity.id and "value" not in kv_ref
        assert env["UPLOADER_CERTIFICATE_PEM"] == {"name": "UPLOADER_CERTIFICATE_PEM", "secretRef": kv_ref["name"]}
    assert env["UPLOADER_CLOUD"]["value"] == settings.cloud.name
    assert env["UPLOADER_TENANT_ID"]["value"] == settings.tenant_id
    assert env["UPLOADER_APP_ID"]["value"] == app.state["clientId"]
    assert env["AZURE_CLIENT_ID"]["value"] == identity.state["clientId"]
    assert env["UPLOADER_DROPZONE_URL"]["value"] == ev.outputs["dropZoneUrl"]
    connectors = json.loads(env["UPLOADER_CONNECTORS"]["value"])
    assert [c["jobId"] for c in connectors] == [c.job_id for c in settings.connectors]
    assert env["UPLOADER_STACK"]["value"] == ev.stack  # named in each run summary
    assert set(env) == {"UPLOADER_STACK", "UPLOADER_CLOUD", "UPLOADER_TENANT_ID", "UPLOADER_APP_ID",
                        "UPLOADER_CONNECTORS", "UPLOADER_CERTIFICATE_PEM", "UPLOADER_DROPZONE_URL",
                        "AZURE_CLIENT_ID"} | key_vars
    (container,) = job.inputs["template"]["containers"]
    assert container["resources"] == {"cpu": 0.5, "memory": "1Gi"}
    # the job waits for its role assignments, and for them to propagate (the wait is keyed to their IDs)
    assert {r.urn for r in job_roles(ev)} <= set(job.depends_on)
    (wait,) = [w for w in ev.of_type(RBAC_WAIT) if w.urn in job.depends_on]
    assert sorted(wait.inputs["roleAssignmentIds"]) == sorted(r.id for r in job_roles(ev))
    assert {r.urn for r in job_roles(ev)} <= set(wait.depends_on)
    assert wait.inputs["seconds"] == 600  # Key Vault's documented role-assignment latency


def test_role_assignments_each_scoped_to_one_resource(stack: tuple[Settings, Evaluation]) -> None:
    settings, ev = stack
    identity = ev.one(IDENTITY)
    by_role = {r.inputs["roleDefinitionId"].rsplit("/", 1)[1]: r for r in job_roles(ev)}
    expected = {"ba92f5b4-2d11-453d-a403-e96b0029c9fe": ev.one("azure-native:storage:BlobContainer").id}
    if settings.certificate.in_vault:  # Key Vault Crypto User on the one key; no Secrets User role at all
        expected[CRYPTO_USER] = f"{ev.one(VAULT).id}/keys/uploader-signer"
        assert not [r for r in ev.of_type(ROLE) if r.inputs["roleDefinitionId"].endswith(SECRETS_USER)]
        # issue 24 item 3: the key exists once Key Vault made the certificate; the assignment waits for it
        assert ev.one(VAULT_CERT).urn in by_role[CRYPTO_USER].depends_on
    else:
        expected[SECRETS_USER] = ev.one(SECRET).id  # Key Vault Secrets User: the secret
    registries = ev.of_type("azure-native:containerregistry:Registry")
    if registries:
        expected["7f951dda-4ed3-4680-a7ca-43fe172d538d"] = registries[0].id  # AcrPull: the registry
    assert {role: r.inputs["scope"] for role, r in by_role.items()} == expected
    for r in by_role.values():
        assert ARM_RESOURCE_ID.match(r.inputs["scope"]) or r.inputs["scope"].endswith("/keys/uploader-signer"), \
            "scoped to one resource, not a group or subscription"
        assert r.inputs["principalType"] == "ServicePrincipal"
        assert r.inputs["principalId"] == identity.state["principalId"]
        assert re.fullmatch(rf"/subscriptions/{GUID}/providers/Microsoft.Authorization/roleDefinitions/{GUID}",
                            r.inputs["roleDefinitionId"])
        if settings.subscription_id:
            assert r.inputs["roleDefinitionId"].startswith(f"/subscriptions/{settings.subscription_id}/")


def test_every_azure_resource_goes_through_the_explicit_providers(stack: tuple[Settings, Evaluation]) -> None:
    settings, ev = stack
    azuread_provider = ev.one("pulumi:providers:azuread")
    azure_provider = ev.one("pulumi:providers:azure-native")
    assert azuread_provider.inputs["tenantId"] == settings.tenant_id
    assert azuread_provider.inputs["environment"] == settings.cloud.azuread_environment
    assert azure_provider.inputs["environment"] == settings.azure_environment
    if settings.subscription_id:
        assert azure_provider.inputs["subscriptionId"] == settings.subscription_id
    for r in ev.resources:
        if r.type.startswith("azuread:"):
            assert ev.provider_of(r) is azuread_provider, r.name
        elif r.type.startswith("azure-native:"):
            assert ev.provider_of(r) is azure_provider, r.name


def test_us_government_stacks_deploy_to_us_government(stack: tuple[Settings, Evaluation]) -> None:
    settings, ev = stack
    if settings.cloud.name not in ("gcchigh", "dod"):
        assert ev.one("pulumi:providers:azuread").inputs["environment"] == "global"
        assert ev.one("pulumi:providers:azure-native").inputs["environment"] == settings.azure_environment
        return
    assert ev.one("pulumi:providers:azure-native").inputs["environment"] == "usgovernment"
    expected = {"gcchigh": "usgovernmentl4", "dod": "usgovernmentl5"}[settings.cloud.name]
    assert ev.one("pulumi:providers:azuread").inputs["environment"] == expected
    assert settings.location.startswith(("usgov", "usdod"))
    assert ".usgovcloudapi.net" in ev.outputs["keyVaultUri"] and ".usgovcloudapi.net" in ev.outputs["dropZoneUrl"]
    assert ".us" in ev.outputs["ingestionEndpoint"] or ".mil" in ev.outputs["ingestionEndpoint"]


def test_the_image(stack: tuple[Settings, Evaluation]) -> None:
    settings, ev = stack
    (container,) = ev.one(JOB).inputs["template"]["containers"]
    registries = ev.of_type("azure-native:containerregistry:Registry")
    if settings.image:
        assert container["image"] == settings.image
        assert not registries and not ev.of_type("docker-build:index:Image")
        pulls = ev.one(JOB).inputs["configuration"].get("registries", [])
        host = settings.image.split("/", 1)[0]
        if host.endswith((".azurecr.io", ".azurecr.us")):  # an Azure registry: pulled through the identity
            assert pulls == [{"server": host, "identity": ev.one(IDENTITY).id}]
        else:
            assert pulls == []
        return
    (registry,) = registries
    assert registry.inputs["adminUserEnabled"] is False
    # issue 26: the registry takes registry-audience tokens only, and the push asks for one
    assert registry.inputs["policies"] == {"azureADAuthenticationAsArmPolicy": {"status": "disabled"}}
    audiences = [c["args"].get("endpoint") for c in ev.invoke_args if c["token"].endswith("getClientToken")]
    assert audiences == ["https://containerregistry.azure.net/"]
    image = ev.one("docker-build:index:Image")
    assert image.inputs["push"] is True and image.inputs["buildOnPreview"] is False
    assert image.inputs["dockerfile"]["location"].endswith("uploader/Dockerfile")
    assert image.inputs["tags"][0].startswith(registry.state["loginServer"] + "/")
    (push_login,) = image.inputs["registries"]  # a secret as a whole: it holds the exchanged registry token
    assert push_login["username"] == mask("00000000-0000-0000-0000-000000000000", secret=True)  # token user
    assert push_login["password"].startswith("[secret:")
    assert container["image"] == image.state["ref"]
    (pull,) = ev.one(JOB).inputs["configuration"]["registries"]
    assert pull == {"server": registry.state["loginServer"], "identity": ev.one(IDENTITY).id}


@pytest.mark.parametrize("initiative", ["fedramp-high", "il5"])
def test_private_examples_pass_the_policy_initiatives_and_public_ones_are_refused_by_id(
        stack: tuple[Settings, Evaluation], initiative: str) -> None:
    """What `check --policy` reports over examples/stacks/ (the graphs are the ones above: no new evaluation). The
    private examples (GCC High, DoD) run a prebuilt image and own no registry, so every Deny member passes; a public
    one is refused, naming policy IDs, the network members among them."""
    from provisioning.tools.policy import load_initiative, violations

    settings, ev = stack
    _, members = load_initiative(initiative)
    found = violations(ev, members)
    if settings.private:
        assert settings.image and not settings.builds_image
        assert found == [], [v.line(ev.stack) for v in found]
    else:
        assert {v.policy_id for v in found} >= {"55615ac9-af46-4a59-874e-391cc3dfb490",
                                                "34c877ad-507e-4c82-993e-3452a6e0ad3c"}
        assert all(re.search(rf"\(policy {GUID}\)", v.line(ev.stack)) for v in found)


def test_alerts_only_when_alert_emails_are_set(stack: tuple[Settings, Evaluation]) -> None:
    settings, ev = stack
    groups = ev.of_type("azure-native:monitor:ActionGroup")
    rules = ev.of_type("azure-native:monitor:ScheduledQueryRule")
    if not settings.alert_emails:
        assert not groups and not rules
        return
    (group,), (rule,) = groups, rules
    assert [r["emailAddress"] for r in group.inputs["emailReceivers"]] == list(settings.alert_emails)
    assert rule.inputs["scopes"] == [ev.one("azure-native:operationalinsights:Workspace").id]
    assert rule.inputs["actions"]["actionGroups"] == [group.id]
    (condition,) = rule.inputs["criteria"]["allOf"]
    assert ev.outputs["jobName"] in condition["query"]
    assert condition["operator"] == "GreaterThan" and condition["threshold"] == 0
    assert rule.inputs["skipQueryValidation"] is True  # the log table appears only after the first logs


def test_logs_reach_the_workspace_through_a_diagnostic_setting_not_a_shared_key(
        stack: tuple[Settings, Evaluation]) -> None:
    """Issue 16 A1: no workspace shared key in the program or its state; the environment logs to Azure Monitor
    and a diagnostic setting on it sends both Container Apps log categories to the workspace."""
    _, ev = stack
    environment = ev.one("azure-native:app:ManagedEnvironment")
    workspace = ev.one("azure-native:operationalinsights:Workspace")
    assert environment.inputs["appLogsConfiguration"] == {"destination": "azure-monitor"}
    (setting,) = [d for d in ev.of_type("azure-native:monitor:DiagnosticSetting")
                  if d.inputs["resourceUri"] == environment.id]
    assert setting.inputs["workspaceId"] == workspace.id
    assert setting.inputs["logAnalyticsDestinationType"] == "Dedicated"
    assert sorted(log["category"] for log in setting.inputs["logs"] if log["enabled"]) == [
        "ContainerAppConsoleLogs", "ContainerAppSystemLogs"]
    assert ev.one(JOB).inputs["environmentId"] == environment.id
    graph = json.dumps([r.inputs | r.state for r in ev.resources]).lower()
    assert '"sharedkey"' not in graph and "primarysharedkey" not in graph and "loganalyticsconfiguration" not in graph
    assert not [t for t in ev.invokes if "sharedkeys" in t.lower()]


def test_the_vault_drop_zone_and_registry_log_to_the_workspace(stack: tuple[Settings, Evaluation]) -> None:
    """Issue 26: a diagnostic setting with every log category on the vault (Azure Policy cf820ca0…), the drop
    zone's blob service and the stack's registry, to the job's workspace."""
    _, ev = stack
    workspace = ev.one("azure-native:operationalinsights:Workspace")
    settings_by_target = {d.inputs["resourceUri"]: d for d in ev.of_type("azure-native:monitor:DiagnosticSetting")}
    targets = [*[r.id for r in ev.of_type(VAULT)], ev.one("azure-native:storage:BlobServiceProperties").id,
               *[r.id for r in ev.of_type("azure-native:containerregistry:Registry")]]
    assert ev.one("azure-native:storage:BlobServiceProperties").id.endswith("/blobServices/default")
    for target in targets:
        setting = settings_by_target[target]
        assert setting.inputs["workspaceId"] == workspace.id
        assert setting.inputs["logs"] == [{"categoryGroup": "allLogs", "enabled": True}]


# ----------------------------------------------------------------------- broken stack files, through the program

TENANT = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"


@pytest.mark.parametrize(("body", "key", "rule"), [
    ("  hr-connector:location: eastus\n  hr-connector:schedul: '0 2 * * *'\n", "hr-connector:schedul",
     "unknown key"),
    ("  hr-connector:cloud: gcchigh\n  hr-connector:azureEnvironment: public\n  hr-connector:location: eastus\n",
     "hr-connector:azureEnvironment", "Azure Government"),
    ("  hr-connector:location: eastus\n  hr-connector:connectors:\n    - jobId: e081f4f4-3831-48d6-a7bb-3fcfab158145\n"
     "      files: departures/*.csv\n      scenarios:\n        - type: resignation\n"
     "          columns: {resignationDate: R, lastWorkingDate: L}\n",
     "hr-connector:connectors[0].scenarios[0].columns.userPrincipalName", "required"),
], ids=["unknown-key", "gcchigh-on-public", "mapping-without-upn"])
def test_broken_stack_files_fail_with_the_key_named(tmp_path: Path, body: str, key: str, rule: str) -> None:
    path = tmp_path / "Pulumi.broken.yaml"
    path.write_text(f"config:\n  hr-connector:tenantId: {TENANT}\n{body}", encoding="utf-8")
    with pytest.raises(OfflineConfigError) as caught:
        evaluate(path)
    assert caught.value.key == key and rule in caught.value.rule


def test_a_stack_file_missing_a_required_key_fails_before_the_program(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.broken.yaml"
    path.write_text("config:\n  hr-connector:location: eastus\n", encoding="utf-8")
    with pytest.raises(OfflineConfigError) as caught:
        evaluate(path)
    assert caught.value.key == "hr-connector:tenantId"


@pytest.mark.parametrize(("image", "host"), [
    ("fleetregistry.azurecr.io/hr-uploader:0.1.0", "fleetregistry.azurecr.io"),
    ("govregistry.azurecr.us/hr-uploader@sha256:" + "0" * 64, "govregistry.azurecr.us"),
    ("ghcr.io/contoso/hr-uploader:1", None),
    ("hr-uploader:1", None),
    (None, None),
])
def test_which_configured_images_are_pulled_through_the_identity(image: str | None, host: str | None) -> None:
    from provisioning.components.job import azure_registry_of

    assert azure_registry_of(image) == host


# ----------------------------------------------------------------------- moving a stack's key into Key Vault

def test_changing_protection_is_a_renewal_and_the_job_moves_to_the_new_key(tmp_path: Path) -> None:
    """The same stack evaluated as `exportable`, then as `vault`: the certificate is a new resource (Pulumi creates
    it, then deletes the old one at the end of the `up`), so the app credential (create-before-delete) and the job
    change in the same `up`; the job drops its secret reference and its Secrets User role for the versioned key ID
    and Crypto User on the key; the secret stays (same resource) but is disabled and holds no key."""
    base = ("config:\n  hr-connector:cloud: commercial\n  hr-connector:tenantId: " + TENANT + "\n"
            "  hr-connector:location: eastus\n  hr-connector:image: example.azurecr.io/hr-uploader:1\n")
    before_path, after_path = tmp_path / "Pulumi.moving.yaml", tmp_path / "after" / "Pulumi.moving.yaml"
    after_path.parent.mkdir()
    before_path.write_text(base)
    after_path.write_text(base + "  hr-connector:certificate:\n    protection: vault\n")
    before, after = evaluate(before_path, isolated=False), evaluate(after_path, isolated=False)
    old_cert, new_cert = before.one(CERT), after.one(VAULT_CERT)
    assert old_cert.urn != new_cert.urn and not after.of_type(CERT)  # a new certificate; the old one is deleted
    assert not new_cert.delete_before_replace
    old_cred, new_cred = before.one(APP_CERT), after.one(APP_CERT)
    assert old_cred.urn == new_cred.urn and not new_cred.delete_before_replace  # replaced, new before old goes
    assert new_cred.inputs["value"] == mask(new_cert.state["certificatePem"], secret=True) != old_cred.inputs["value"]
    assert before.one(SECRET).urn == after.one(SECRET).urn
    assert after.one(SECRET).inputs["properties"]["attributes"] == {
        "enabled": False, "expires": _epoch(new_cert.state["notAfter"])}
    old_env, new_env = env_of(before.one(JOB)), env_of(after.one(JOB))
    assert before.one(JOB).urn == after.one(JOB).urn  # updated in place, in the same `up`
    assert "secretRef" in old_env["UPLOADER_CERTIFICATE_PEM"] and "UPLOADER_KEY_ID" not in old_env
    assert new_env["UPLOADER_KEY_ID"]["value"] == new_cert.state["keyId"] == after.outputs["keyId"]
    roles = {r.inputs["roleDefinitionId"].rsplit("/", 1)[1] for r in job_roles(after)}
    assert CRYPTO_USER in roles and SECRETS_USER not in roles
    assert before.outputs["certificateProtection"] == "exportable" and after.outputs["certificateProtection"] == "vault"
