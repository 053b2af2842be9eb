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


@pytest.fixture(scope="module")
def declared() -> set[str]:
    """Every azure-native custom resource type some example stack (examples/stacks/) declares."""
    types: set[str] = set()
    for path in example_stacks():
        ev = evaluate(path)
        types |= {r.type for r in ev.resources if r.custom and r.type.startswith("azure-native:")}
    return types


def test_every_declared_type_is_in_the_reviewed_table(declared: set[str]) -> None:
    table = documented()
    assert declared - set(table) == set(), "add these types to docs/us-government.md#api-versions-and-availability"
    assert {"azure-native:app:Job", "azure-native:app:ManagedEnvironment"} <= declared


def test_the_table_matches_the_installed_sdk() -> None:
    for type_token, (version, preview) in documented().items():
        assert sdk_api_version(type_token) == version, f"{type_token}: the SDK now uses another API version"
        assert preview == ("preview" in version), f"{type_token}: mark preview versions as such"
