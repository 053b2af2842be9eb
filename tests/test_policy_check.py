"""Issue 26 part 1: `check --policy` evaluates the rendered resources against the Deny-capable members of an Azure
Policy initiative, with Microsoft's definitions vendored in provisioning/policies/ (tools/policy.py).

The evaluator is exercised on Microsoft's own rules: each blocker the issue names is reported when the program
leaves the setting as it is today and cleared when a resource carries the compliant setting (synthetic resources,
no Pulumi); the issue-26 part-2 settings (infrastructure encryption, secret expiry, purge protection, RBAC, no
shared key) are compliant in the real render; and one real CLI run checks the stacks `new-stack` writes for GCC
High and DoD (network: private, part 3, with the prebuilt image a private stack runs), for commercial with
--network private, and for commercial (network: public): the private ones pass, the public one is refused for every
blocker.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from provisioning.tools.offline import Evaluation, Resource
from provisioning.tools.policy import ALIASES, POLICIES, PolicyError, load_initiative, violations

REPO = Path(__file__).resolve().parents[1]
TENANT = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
PLATFORM = "9f1c2a3b-4d5e-4f60-8a7b-8c9d0e1f2a3b"  # a hosting stack's directory
#: The six blockers issue 26 names (Deny members of FedRAMP High and IL5) and what clears each.
BLOCKERS = {
    "55615ac9-af46-4a59-874e-391cc3dfb490": ("azure-native:keyvault:Vault",
                                             {"properties": {"publicNetworkAccess": "Disabled",
                                                             "networkAcls": {"defaultAction": "Deny"}}}),
    "34c877ad-507e-4c82-993e-3452a6e0ad3c": ("azure-native:storage:StorageAccount",
                                             {"networkRuleSet": {"defaultAction": "Deny"}}),
    "2a1a9cdf-e04d-429a-8416-3bfb72a1b26f": ("azure-native:storage:StorageAccount",
                                             {"networkRuleSet": {"defaultAction": "Deny", "ipRules": []}}),
    "d0793b48-0edc-4296-a390-4c75d1bdfd71": ("azure-native:containerregistry:Registry",
                                             {"publicNetworkAccess": "Disabled",
                                              "networkRuleSet": {"defaultAction": "Deny"}}),
    "5b9159ae-1701-4a6f-9a7a-aa9c8ddd0580": ("azure-native:containerregistry:Registry",
                                             {"encryption": {"status": "enabled"}}),
    "fa298e57-9444-42ba-bf04-86e8470e32c7": ("azure-native:operationalinsights:Workspace",
                                             {"forceCmkForQuery": True}),
}
#: Part 2 of the issue, and settings the program had before: compliant in every render.
CLEAN = {"4733ea7b-a883-42fe-8cac-97454c2a9e4a", "98728c90-32c7-4049-8429-847dc0f4fe37",
         "0b60c0b2-2dc2-4e1c-b5c9-abbed971de53", "1e66c121-a66a-4b1f-9b83-0fd99bf0fc2d",
         "404c3081-a854-4457-ae30-26a93ef643f9", "4fa4b6c0-31ca-4c0d-b10d-24b96f62a751",
         "8c6a50c6-9ffd-4ae7-986f-5fa6111f9a54", "12d4fa5e-1f9f-4c21-97a9-b99b3c6611b5"}


def resource(type_token: str, inputs: dict[str, Any], name: str = "r") -> Resource:
    return Resource(type=type_token, name=name, urn=f"urn:{name}", id=f"/x/{name}", custom=True, inputs=inputs,
                    state={"name": name})


def denied(initiative: str, *resources: Resource) -> set[str]:
    _, members = load_initiative(initiative)
    return {v.policy_id for v in violations(Evaluation("s", list(resources), {}, 0.0), members)}


@pytest.mark.parametrize("initiative", ["fedramp-high", "il5"])
def test_each_blocker_is_reported_as_the_program_left_it_and_cleared_by_the_compliant_setting(initiative: str) -> None:
    for policy, (type_token, compliant) in BLOCKERS.items():
        before = {"location": "usgovvirginia"}
        assert policy in denied(initiative, resource(type_token, before)), policy
        assert policy not in denied(initiative, resource(type_token, before | compliant)), policy


def test_part_two_settings_are_judged_by_microsofts_rules() -> None:
    storage, secret = "azure-native:storage:StorageAccount", "azure-native:keyvault:Secret"
    infra = "4733ea7b-a883-42fe-8cac-97454c2a9e4a"
    assert infra in denied("fedramp-high", resource(storage, {}))
    for required, refused in ((False, True), (True, False)):
        encryption = {"encryption": {"requireInfrastructureEncryption": required}}
        assert (infra in denied("fedramp-high", resource(storage, encryption))) is refused
    expiry = "98728c90-32c7-4049-8429-847dc0f4fe37"
    assert expiry in denied("fedramp-high", resource(secret, {"properties": {"attributes": {"enabled": False}}}))
    expires = {"properties": {"attributes": {"enabled": False, "expires": 1828052742}}}
    assert expiry not in denied("fedramp-high", resource(secret, expires))


def test_a_violation_names_the_policy_the_resource_and_the_setting() -> None:
    _, members = load_initiative("fedramp-high")
    (line,) = [v.line("contoso") for v in violations(Evaluation("s", [resource(
        "azure-native:operationalinsights:Workspace", {}, "logs")], {}, 0.0), members)]
    assert line == ("DENY  contoso: Saved-queries in Azure Monitor should be saved in customer storage account for "
                    "logs encryption (policy fa298e57-9444-42ba-bf04-86e8470e32c7): "
                    "Microsoft.OperationalInsights/workspaces logs: forceCmkForQuery = (not set)")


def _aliases(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {str(node["field"])} if "field" in node else set()
        for value in node.values():
            found |= _aliases(value)
        if isinstance(node.get("value"), str):
            found |= set(re.findall(r"(?:field|current)\('([^']+/[^']+)'\)", node["value"]))
        return found
    if isinstance(node, list):
        return set().union(*(_aliases(v) for v in node)) if node else set()
    return set()


def test_every_alias_the_vendored_rules_read_is_mapped_and_the_data_is_what_the_readme_says() -> None:
    summary = json.loads((POLICIES / "initiatives.json").read_text())
    readme = (POLICIES / "README.md").read_text()
    assert summary["commit"] in readme and (POLICIES / "LICENSE").read_text().startswith("    MIT License")
    mapped = {a.lower() for a in ALIASES} | {"type", "name", "id"}
    for initiative in summary["initiatives"].values():
        assert initiative["members"], initiative["displayName"]
        for member in initiative["members"]:
            definition = json.loads((POLICIES / "definitions" / member["file"]).read_text(encoding="utf-8-sig"))
            assert definition["name"] == member["id"]  # Microsoft's file, verbatim
            unmapped = {a for a in _aliases(definition["properties"]["policyRule"]["if"]) if a.lower() not in mapped}
            assert not unmapped, f"{member['file']}: map {unmapped} in provisioning/tools/policy.py ALIASES"


def test_ip_range_contains_as_azure_policy_documents_it() -> None:
    from provisioning.tools.policy import _ip_range_contains

    assert _ip_range_contains("10.0.0.0/16", "10.0.4.0/24") and _ip_range_contains("10.0.0.0/16", "10.0.1.7")
    assert not _ip_range_contains("10.0.0.0/24", "10.0.0.0/16") and not _ip_range_contains("10.0.0.0/8", "2001:db8::1")


def test_an_unknown_alias_or_initiative_is_an_error_not_a_guess() -> None:
    from provisioning.tools.policy import Member, _Context, _holds, documents

    doc = documents(Evaluation("s", [resource("azure-native:storage:StorageAccount", {})], {}, 0.0))[0]
    rule = {"field": "Microsoft.Storage/storageAccounts/isHnsEnabled", "equals": True}
    with pytest.raises(PolicyError, match="isHnsEnabled is not mapped"):
        _holds(rule, _Context(doc, Member("x", "x", rule, {}, "Indexed").parameters))
    with pytest.raises(PolicyError, match="unknown initiative"):
        load_initiative("pci")


#: Release images pinned by digest, as new-stack --image takes them (docs/releases.md): an Azure Government registry
#: the release was imported into, and GHCR.
GOV_IMAGE = "contosohr.azurecr.us/hr-uploader@sha256:" + "4f" * 32
GHCR_IMAGE = "ghcr.io/contoso/hr-uploader@sha256:" + "0a" * 32


def new_stack(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """new-stack through its command line, in-process (what it prints on stderr)."""
    from provisioning.tools.cli import main

    code = main(["new-stack", *args, "--tenant-id", TENANT])
    return code, capsys.readouterr().err


def new_hosting(capsys: pytest.CaptureFixture[str], name: str, *args: str) -> tuple[int, str]:
    """new-stack --hosting for GCC High (network: private by default) through its command line, in-process."""
    from provisioning.tools.cli import main

    code = main(["new-stack", name, "--hosting", "--cloud", "gcchigh", "--location", "usgovvirginia",
                 "--alert-email", "platform@contoso.example", "--azure-tenant-id", PLATFORM, *args])
    return code, capsys.readouterr().err


def test_new_stack_refuses_a_private_stack_without_a_pinned_image(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A private stack runs a prebuilt image and owns no registry: without --image (GCC High and DoD by default,
    --network private elsewhere) new-stack exits 2 naming --image, the policy, why, and the docs; an --image not
    pinned by digest is refused too. Nothing is written."""
    where = ("--stacks-dir", str(tmp_path))
    commercial = ("--cloud", "commercial", "--network", "private")
    for args, where_from in ((("--cloud", "dod"), "az acr import"), (("--cloud", "gcchigh"), "az acr import"),
                             (commercial, "docs/releases.md#the-uploader-image")):
        code, err = new_stack(capsys, "t-private", *args, *where)
        assert code == 2, (args, err)
        assert err.startswith("error: --image REGISTRY/REPOSITORY@sha256:<64 hex digits> is needed"), err
        assert "5b9159ae" in err and "user-assigned identity" in err and where_from in err, err
        assert "docs/configuration.md#a-private-stack-runs-a-prebuilt-image" in err, err
    for image in ("contosohr.azurecr.us/hr-uploader:1.0", "hr-uploader@sha256:" + "4f" * 32,
                  "contosohr.azurecr.us/hr-uploader@sha256:" + "4f" * 31):
        code, err = new_stack(capsys, "t-private", "--cloud", "dod", "--image", image, *where)
        assert code == 2 and err.startswith("error: hr-connector:image: must be a registry reference pinned by "
                                            "digest"), err
    # a private hosting stack too: the same refusal (one message), and its tenants are told to set the image
    code, err = new_hosting(capsys, "h-gov", *where)
    assert code == 2 and err.startswith("error: --image REGISTRY/REPOSITORY@sha256:<64 hex digits> is needed"), err
    assert "5b9159ae" in err and "its hosted tenants then set the same image" in err, err
    assert not list(tmp_path.iterdir())


@pytest.mark.pulumi
def test_check_policy_over_the_stacks_new_stack_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """new-stack for gcchigh and dod (network: private by default) with --image, commercial with --network private
    and --image, and commercial public; then the real command line check --policy fedramp-high: the private stacks
    pass (no registry of their own, so no customer-managed key to lack), the public one is refused for every
    blocker, each DENY line naming its policy ID, and the registry's line naming the fix. A GCC High hosting stack
    with --image passes too (no registry), as does the tenant new-stack --hosted-by writes under it (it copies the
    image); the same tenant without `image` is refused naming the key and the hosting stack's file."""
    assert new_hosting(capsys, "h-gov", "--image", GOV_IMAGE, "--stacks-dir", str(tmp_path))[0] == 0
    for name, args in (("t-gcchigh", ("--cloud", "gcchigh", "--image", GOV_IMAGE)),
                       ("t-hosted", ("--cloud", "gcchigh", "--hosted-by", "h-gov")),
                       ("t-dod", ("--cloud", "dod", "--image", GOV_IMAGE)),
                       ("t-private", ("--cloud", "commercial", "--network", "private", "--image", GHCR_IMAGE)),
                       ("t-commercial", ("--cloud", "commercial"))):
        code, err = new_stack(capsys, name, *args, "--stacks-dir", str(tmp_path))
        assert code == 0, err
    hosted = (tmp_path / "Pulumi.t-hosted.yaml").read_text(encoding="utf-8")
    assert f'hr-connector:image: "{GOV_IMAGE}"' in hosted
    (tmp_path / "Pulumi.t-bare.yaml").write_text(hosted.replace(f'hr-connector:image: "{GOV_IMAGE}"', ""),
                                                 encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "HR_CONNECTOR_STACKS_DIR"}
    done = subprocess.run([sys.executable, "-m", "provisioning", "check", "--policy", "fedramp-high",
                           "--stacks-dir", str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr  # a config problem (t-bare) outranks the DENY lines
    for name in ("t-gcchigh", "t-dod", "t-private", "h-gov", "t-hosted"):
        assert re.search(rf"^ok    {name}: \d+ resources", done.stdout, re.M), (name, done.stdout)
    ids = set(re.findall(r"^DENY  t-commercial: .*\(policy ([0-9a-f-]{36})\)", done.stdout, re.M))
    assert ids == set(BLOCKERS) and not ids & CLEAN, ids ^ set(BLOCKERS)
    (registry_line,) = [ln for ln in done.stdout.splitlines() if "(policy 5b9159ae" in ln]
    assert "fix: set hr-connector:image to a prebuilt image pinned by digest" in registry_line
    (bare,) = [ln for ln in done.stdout.splitlines() if ln.startswith("FAIL  t-bare: ")]
    assert "hr-connector:image: is not set, but hosting stack h-gov runs a prebuilt image" in bare, bare
    assert "Pulumi.h-gov.yaml" in bare and "Pulumi.yaml" in bare, bare
    assert "7 stack(s): 5 ok, 2 with problems" in done.stdout
