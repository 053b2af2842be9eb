"""The Azure REST API version behind every azure-native resource the program declares, as the installed SDK
documents it ("Uses Azure REST API version ..."), matches the reviewed table in docs/us-government.md, where
preview versions are marked (Azure Government often lacks them)."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest
from stack_examples import example_stacks

from provisioning.tools.offline import evaluate

pytestmark = pytest.mark.pulumi

DOCS = Path(__file__).resolve().parent.parent / "docs" / "us-government.md"
ROW = re.compile(r"^\| `(azure-native:[\w]+:\w+)` \| `([0-9a-z-]+)` \| (yes|no)\b")


def documented() -> dict[str, tuple[str, bool]]:
    rows = (ROW.match(line) for line in DOCS.read_text(encoding="utf-8").splitlines())
    return {m[1]: (m[2], m[3] == "yes") for m in rows if m}


def sdk_api_version(type_token: str) -> str:
    """The API version the installed pulumi-azure-native uses for a type token (from the class's own docs)."""
    _, module, name = type_token.split(":")
    cls = getattr(importlib.import_module(f"pulumi_azure_native.{module}"), name)
    match = re.search(r"Uses Azure REST API version ([0-9a-z-]+)\.", inspect.getsource(cls))
    assert match, f"{type_token}: the SDK does not state its API version"
    return match[1]


#: The GCC High example as a fleet with the platform's runner has it: peered with the deploy network
#: (network:VirtualNetworkPeering, which no example declares), in Azure Government.
_HUB = "/subscriptions/5d1c2b3a-6e7f-4a8b-9c0d-1e2f3a4b5c6d/resourceGroups/rg-hr-connector-platform/providers/"
RUNNER_NETWORK = f"""  hr-connector:runnerNetwork:
    virtualNetworkId: {_HUB}Microsoft.Network/virtualNetworks/vnet-hr-connector-deploy
    addressSpace: 10.59.0.0/24
    privateDnsZoneIds:
      vault: {_HUB}Microsoft.Network/privateDnsZones/privatelink.vaultcore.usgovcloudapi.net
      blob: {_HUB}Microsoft.Network/privateDnsZones/privatelink.blob.core.usgovcloudapi.net
      registry: {_HUB}Microsoft.Network/privateDnsZones/privatelink.azurecr.us
"""
#: A platform stack in Azure Government with the deploy runner (keyvault:Key, the runner's network and job).
PLATFORM = """config:
  hr-connector-platform:repository: contoso/hr-connector-fleet
  hr-connector-platform:tenantId: 9f1c2a3b-4d5e-4f60-8a7b-8c9d0e1f2a3b
  hr-connector-platform:subscriptionId: 5d1c2b3a-6e7f-4a8b-9c0d-1e2f3a4b5c6d
  hr-connector-platform:operatorObjectId: 7e8f9a0b-1c2d-4e3f-8a4b-5c6d7e8f9a0b
  hr-connector-platform:location: usgovvirginia
  hr-connector-platform:azureEnvironment: usgovernment
  hr-connector-platform:runner:
    githubAppId: 123456
    githubAppInstallationId: 7890123
    image: "runners.azurecr.us/runner@sha256:3333333333333333333333333333333333333333333333333333333333333333"
"""


@pytest.fixture(scope="module")
def declared(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every azure-native custom resource type some example stack (examples/stacks/) declares, the GCC High one
    also peered with the deploy runner's network, and the platform program (platform/) with its runner: the table
    covers what a GCC High fleet deploys in Azure Government."""
    from provisioning.tools.platform import evaluate_platform

    folder = tmp_path_factory.mktemp("gov")
    (folder / "stacks").mkdir()
    gcchigh = next(p for p in example_stacks() if "gcchigh" in p.name)
    peered = folder / "stacks" / gcchigh.name
    peered.write_text(gcchigh.read_text(encoding="utf-8").rstrip("\n") + "\n" + RUNNER_NETWORK, encoding="utf-8")
    platform_file = folder / "Pulumi.gov.yaml"
    platform_file.write_text(PLATFORM, encoding="utf-8")
    evaluations = [evaluate(path, isolated=False) for path in (*example_stacks(), peered)]
    evaluations.append(evaluate_platform(platform_file, folder / "stacks"))
    types: set[str] = set()
    for ev in evaluations:
        types |= {r.type for r in ev.resources if r.custom and r.type.startswith("azure-native:")}
    return types


def test_every_declared_type_is_in_the_reviewed_table(declared: set[str]) -> None:
    table = documented()
    assert declared - set(table) == set(), "add these types to docs/us-government.md#api-versions-and-availability"
    assert {"azure-native:app:Job", "azure-native:app:ManagedEnvironment", "azure-native:network:VirtualNetworkPeering",
            "azure-native:keyvault:Key"} <= declared


def test_the_table_matches_the_installed_sdk() -> None:
    for type_token, (version, preview) in documented().items():
        assert sdk_api_version(type_token) == version, f"{type_token}: the SDK now uses another API version"
        assert preview == ("preview" in version), f"{type_token}: mark preview versions as such"
