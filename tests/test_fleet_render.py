"""`python -m provisioning render` through the real command line: the real program under Pulumi mocks, rendered
for review as JSON and text, with every secret masked (no PEM, no key material, nothing Pulumi marks secret)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TENANT = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
JOB_A = "e081f4f4-3831-48d6-a7bb-3fcfab158145"
JOB_B = "6a8f6b2a-1c3e-4a3b-9d9e-2f1b7c4d5e60"

STACK = f"""config:
  hr-connector:cloud: commercial
  hr-connector:tenantId: {TENANT}
  hr-connector:location: westeurope
  hr-connector:schedule: "45 4 * * 1-5"
  hr-connector:image: contoso.azurecr.io/hr-uploader:1.2.3
  hr-connector:connectors:
    - name: departures
      jobId: {JOB_A}
      files: departures/*.csv
      scenarios:
        - type: resignation
          columns: {{userPrincipalName: EmailAddress, resignationDate: ResignationDate,
                    lastWorkingDate: LastWorkingDate}}
    - name: profiles
      jobId: {JOB_B}
      files: profiles/*.csv
      scenarios:
        - type: employeeProfile
          columns: {{userPrincipalName: UPN, firstName: First, lastName: Last, addressLine1: Street,
                    zipCode: Zip}}
"""
GOV_STACK = f"""config:
  hr-connector:cloud: gcchigh
  hr-connector:tenantId: {TENANT}
  hr-connector:location: usgovarizona
"""
KEY_MATERIAL = re.compile(r"-----BEGIN|PRIVATE KEY|MII[A-Za-z0-9+/]{60,}")  # PEM, or base64 DER

pytestmark = pytest.mark.pulumi


def render(stacks: Path, stack: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provisioning", "render", "--stack", stack,
                           "--stacks-dir", str(stacks), *extra],
                          cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("stacks")
    (directory / "Pulumi.review.yaml").write_text(STACK)
    (directory / "Pulumi.review-gov.yaml").write_text(GOV_STACK)
    (directory / "Pulumi.broken.yaml").write_text(STACK.replace("45 4 * * 1-5", "45 4 * *"))
    return directory


@pytest.fixture(scope="module")
def report(stacks: Path) -> dict:
    proc = render(stacks, "review", "--json")
    assert proc.returncode == 0, proc.stderr
    assert not KEY_MATERIAL.search(proc.stdout), "key material in the JSON render"
    return json.loads(proc.stdout)


def resources(report: dict, type_token: str) -> list[dict]:
    return [r for r in report["resources"] if r["type"] == type_token]


def test_render_json_summarises_the_stack(report: dict) -> None:
    assert (report["stack"], report["cloud"], report["tenantId"]) == ("review", "commercial", TENANT)
    assert (report["azureEnvironment"], report["location"], report["schedule"]) == ("public", "westeurope",
                                                                                  "45 4 * * 1-5")
    assert [(c["name"], c["jobId"]) for c in report["connectors"]] == [("departures", JOB_A), ("profiles", JOB_B)]
    providers = [r for r in report["resources"] if r["kind"] == "provider"]
    custom = [r for r in report["resources"] if r["kind"] == "resource"]
    # azuread and azure-native, explicit (a prebuilt image: no docker-build provider)
    assert [r["type"] for r in providers] == ["pulumi:providers:azure-native", "pulumi:providers:azuread"]
    assert report["providerCount"] == 2
    assert report["resourceCount"] == len(custom) > 10
    assert {r["kind"] for r in report["resources"]} == {"provider", "resource", "component"}


def test_check_and_render_report_the_same_resource_count(stacks: Path, report: dict) -> None:
    """One count, one definition (offline.Evaluation.deployed): `check`'s `N resources` is render's resourceCount,
    and the text render names it so."""
    env = {**os.environ, "HR_CONNECTOR_STACKS_DIR": str(stacks)}
    check = subprocess.run([sys.executable, "-m", "provisioning", "check", "--stack", "review"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"ok    review: {report['resourceCount']} resources," in check.stdout
    text = render(stacks, "review")
    heading = f"\n{report['resourceCount']} resources (as `check` counts them), listed with the 2 provider(s)"
    assert heading in text.stdout


def test_render_shows_every_input_a_reviewer_checks(report: dict) -> None:
    from provisioning.tools.render import flatten

    (job,) = resources(report, "azure-native:app:Job")
    inputs = job["inputs"]
    assert inputs["configuration"]["scheduleTriggerConfig"]["cronExpression"] == "45 4 * * 1-5"
    paths = flatten(inputs)
    assert paths["template.containers[uploader].image"] == "contoso.azurecr.io/hr-uploader:1.2.3"
    assert paths["template.containers[uploader].env[UPLOADER_CLOUD].value"] == "commercial"
    assert paths["template.containers[uploader].env[UPLOADER_TENANT_ID].value"] == TENANT
    connectors = json.loads(paths["template.containers[uploader].env[UPLOADER_CONNECTORS].value"])
    assert {c["jobId"] for c in connectors} == {JOB_A, JOB_B}
    assert "template.containers[uploader].env[UPLOADER_CERTIFICATE_PEM].secretRef" in paths
    assert "template.containers[uploader].env[UPLOADER_CERTIFICATE_PEM].value" not in paths
    assert job["options"]["provider"] == "pulumi:providers:azure-native providers-azure-native"

    roles = resources(report, "azure-native:authorization:RoleAssignment")
    assert roles
    for role in roles:
        assert role["notes"]["role"] in {"Key Vault Secrets User", "Storage Blob Data Contributor", "AcrPull"}
        assert role["inputs"]["principalType"] == "ServicePrincipal"
        assert not role["inputs"]["scope"].startswith("/subscriptions/") and "/" in role["inputs"]["scope"]

    (vault,) = resources(report, "azure-native:keyvault:Vault")
    assert vault["inputs"]["properties"]["enableRbacAuthorization"] is True
    assert vault["inputs"]["properties"]["enablePurgeProtection"] is True
    (account,) = resources(report, "azure-native:storage:StorageAccount")
    assert account["inputs"]["allowSharedKeyAccess"] is False
    (app,) = resources(report, "azuread:index/application:Application")
    assert not app["inputs"].get("passwords")


def test_render_masks_secrets(report: dict) -> None:
    (secret,) = resources(report, "azure-native:keyvault:Secret")
    assert secret["inputs"]["properties"]["value"] == "[secret]"
    (credential,) = resources(report, "azuread:index/applicationCertificate:ApplicationCertificate")
    assert credential["inputs"]["value"] == "[secret]"
    assert credential["inputs"]["endDate"] == "(generated at deploy)"  # the certificate's own validity window
    text = json.dumps(report)
    assert "[secret:" not in text and "unmarked-private-key" not in text


def test_render_text_for_a_us_government_stack(stacks: Path) -> None:
    first = render(stacks, "review-gov")
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert not KEY_MATERIAL.search(out), "key material in the text render"
    assert out.startswith("stack review-gov: cloud gcchigh")
    assert "connectors: none yet" in out
    assert 'environment: "usgovernmentl4"' in out and 'environment: "usgovernment"\n' in out
    assert 'location: "usgovarizona"' in out
    # the image is built through docker-build's default provider, which `pulumi up` configures from the stack's
    # docker-build: keys (none here)
    assert "- pulumi:providers:docker-build  default  (configured by: docker-build: keys)" in out
    assert 'certificateThumbprint: "(generated at deploy)"' in out
    second = render(stacks, "review-gov")
    assert second.stdout == out  # stable between runs: a pull-request comment changes only with the stack


def test_render_refuses_a_broken_or_unknown_stack(stacks: Path) -> None:
    broken = render(stacks, "broken")
    assert broken.returncode == 2
    assert "hr-connector:schedule" in broken.stderr and broken.stdout == ""
    unknown = render(stacks, "nope")
    assert unknown.returncode == 2 and "nope" in unknown.stderr


def test_scrub_masks_what_still_looks_like_key_material() -> None:
    from provisioning.tools.render import MASK, scrub

    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ\n-----END PRIVATE KEY-----\n"
    der = "MII" + "A" * 80
    masked = scrub({"a": [pem, {"b": der}], "c": "[secret:0123abcd]", "d": "[unmarked-private-key:99]", "e": "ok"})
    assert masked == {"a": [MASK, {"b": MASK}], "c": MASK, "d": MASK, "e": "ok"}


def test_the_json_report_does_not_depend_on_the_order_the_mocks_register_in() -> None:
    """Pulumi's mocks hand inputs and providers over in no fixed order; the report's keys and sides come out the
    same whichever order they arrived in (render --json differed from run to run before)."""
    from provisioning.tools.offline import Resource
    from provisioning.tools.render import sign_in, tidy

    def provider(kind: str, tenant: str) -> Resource:
        return Resource(type=f"pulumi:providers:{kind}", name=kind, urn=f"urn:{kind}", id=kind, custom=True,
                        inputs={"tenantId": tenant, "environment": "public"}, state={})

    graph, azure = provider("azuread", "m365-side"), provider("azure-native", "azure-side")
    assert list(sign_in([graph, azure])) == list(sign_in([azure, graph])) == ["azure", "microsoft365"]
    assert sign_in([graph, azure])["azure"]["tenantId"] == "azure-side"
    shuffled = {"zeta": 1.0, "alpha": {"b": [{"y": 2, "x": 1}], "a": "text"}}
    assert json.dumps(tidy(shuffled)) == json.dumps(tidy(dict(reversed(list(shuffled.items())))))
    assert list(tidy(shuffled)) == ["alpha", "zeta"] and list(tidy(shuffled)["alpha"]["b"][0]) == ["x", "y"]
