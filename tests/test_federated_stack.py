"""A stack with `credential: federated` (issue 25): the real program under mocks renders a federated identity
credential trusting the job identity's principal ID, and no certificate, Key Vault, key or secret; config refuses
it where Microsoft does not document it; `certs` lists it without a certificate and never as due for renewal."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioning.config import ConfigError, all_problems, load_settings
from provisioning.tools.inventory import failing, inventory, row_from_outputs
from provisioning.tools.offline import evaluate
from uploader import clouds

FIC = "azuread:index/applicationFederatedIdentityCredential:ApplicationFederatedIdentityCredential"
TENANT = "9b2c7d4e-5f60-4718-8a9b-0c1d2e3f4a5b"


def stack_file(tmp_path: Path, cloud: str = "commercial", location: str = "eastus", **extra: Any) -> Path:
    path = tmp_path / f"Pulumi.fed-{cloud}.yaml"
    config = {"hr-connector:cloud": cloud, "hr-connector:tenantId": TENANT, "hr-connector:location": location,
              "hr-connector:credential": "federated", **{f"hr-connector:{k}": v for k, v in extra.items()}}
    path.write_text(yaml.safe_dump({"config": config}))
    return path


@pytest.mark.pulumi
@pytest.mark.parametrize("cloud,location,issuer,audience", [
    ("commercial", "eastus", "https://login.microsoftonline.com", "api://AzureADTokenExchange"),
    ("gcchigh", "usgovvirginia", "https://login.microsoftonline.us", "api://AzureADTokenExchangeUSGov"),
])
def test_federated_stack_trusts_the_job_identity_and_holds_no_key(tmp_path: Path, cloud: str, location: str,
                                                                 issuer: str, audience: str) -> None:
    evaluation = evaluate(stack_file(tmp_path, cloud, location), isolated=False)
    fic = evaluation.one(FIC)
    identity = evaluation.one("azure-native:managedidentity:UserAssignedIdentity")
    app = evaluation.one("azuread:index/application:Application")
    assert fic.inputs["subject"] == identity.state["principalId"]
    assert fic.inputs["issuer"] == f"{issuer}/{TENANT}/v2.0"
    assert fic.inputs["audiences"] == [audience]
    assert fic.inputs["applicationId"] == app.id
    types = {r.type for r in evaluation.deployed()}
    for absent in ("azuread:index/applicationCertificate:ApplicationCertificate",
                   "azuread:index/applicationPassword:ApplicationPassword",
                   "azure-native:keyvault:Vault", "azure-native:keyvault:Secret", "azure-native:keyvault:Key"):
        assert absent not in types, absent
    assert not any(t.startswith("pulumi-python:dynamic") and "ertificate" in t for t in types), types
    job = evaluation.one("azure-native:app:Job")
    env = {e["name"]: e.get("value") for e in job.inputs["template"]["containers"][0]["env"]}
    assert env["UPLOADER_CREDENTIAL"] == "federated" and "UPLOADER_CERTIFICATE_PEM" not in env
    assert job.inputs["configuration"].get("secrets", []) == []
    roles = [r.name for r in evaluation.of_type("azure-native:authorization:RoleAssignment")]
    assert not any("secret" in r or "signer" in r for r in roles), roles
    assert evaluation.outputs["credential"] == "federated"
    workbook = evaluation.one("azure-native:applicationinsights:Workbook")  # a self-contained stack's status view
    assert workbook.inputs["sourceId"] == evaluation.one("azure-native:operationalinsights:Workspace").id
    assert evaluation.outputs["workspaceId"] == workbook.inputs["sourceId"]
    assert "certificateExpiresOn" not in evaluation.outputs and "keyVaultUri" not in evaluation.outputs
    # resource logs (issue 26): no vault to watch; the drop zone's blob service and the registry still log
    watched = {d.inputs["resourceUri"] for d in evaluation.of_type("azure-native:monitor:DiagnosticSetting")}
    assert evaluation.one("azure-native:storage:BlobServiceProperties").id in watched
    assert evaluation.one("azure-native:containerregistry:Registry").id in watched


def test_config_refuses_federated_where_it_is_not_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"hr-connector:cloud": "dod", "hr-connector:tenantId": TENANT, "hr-connector:location": "usgovvirginia",
            "hr-connector:credential": "federated"}
    assert load_settings(base).federated
    unconfirmed = dataclasses.replace(clouds.CLOUDS["dod"], federation=None,
                                      federation_unconfirmed="not on https://learn.microsoft.com/... for DoD")
    monkeypatch.setitem(clouds.CLOUDS, "dod", unconfirmed)
    with pytest.raises(ConfigError) as caught:
        load_settings(base)
    problem = all_problems(caught.value)[0]
    assert problem.key == "hr-connector:credential" and "refused for the dod cloud" in problem.rule
    assert "learn.microsoft.com" in problem.rule
    with pytest.raises(ConfigError) as caught:
        load_settings({**base, "hr-connector:cloud": "commercial", "hr-connector:credential": "keyless"})
    assert "certificate, federated" in str(caught.value)
    hosting = {"hr-connector:hosting": True, "hr-connector:location": "eastus", "hr-connector:alertEmails": ["a@b.co"],
               "hr-connector:credential": "federated"}
    with pytest.raises(ConfigError) as caught:
        load_settings(hosting)
    assert any(p.key == "hr-connector:credential" for p in all_problems(caught.value))


def test_every_cloud_has_a_documented_issuer_and_audience() -> None:
    for cloud in clouds.CLOUDS.values():
        assert cloud.federation is not None, cloud.name
        assert cloud.federation.issuer_host == cloud.authority_host  # the tenant's own authority
        assert cloud.federation.source.startswith("https://learn.microsoft.com/")


def test_certs_lists_a_federated_stack_without_a_certificate(tmp_path: Path) -> None:
    path = stack_file(tmp_path)
    (tmp_path / "outputs.json").write_text("{}")  # nothing deployed: the stack file alone says federated
    rows = inventory([path], warn_days=14, outputs=tmp_path / "outputs.json")
    assert [(r.stack, r.status) for r in rows] == [("fed-commercial", "federated")]
    assert "nothing to renew" in rows[0].error and not rows[0].renewal_due and not failing(rows)
    row = row_from_outputs("x", {"credential": "federated"}, warn_days=14)
    assert row.status == "federated" and row.to_json()["renewalDue"] is False
