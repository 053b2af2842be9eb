"""Physical names meet Azure's rules for any stack name, and are stable and distinct per stack/tenant."""

from __future__ import annotations

import re

import pytest

from provisioning.naming import Names

TENANT = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
STACK_NAMES = ["contoso-commercial", "a", "Very_Long.Stack-Name-With-Many-Parts-2026-production", "x--y", "123"]


@pytest.mark.parametrize("stack", STACK_NAMES)
def test_names_follow_azure_rules(stack: str) -> None:
    n = Names(stack, TENANT)
    assert re.fullmatch(r"[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]", n.key_vault) and "--" not in n.key_vault
    assert re.fullmatch(r"[a-z0-9]{3,24}", n.storage_account)
    assert re.fullmatch(r"[a-zA-Z0-9]{5,50}", n.registry)
    assert re.fullmatch(r"[a-z][a-z0-9-]{0,30}[a-z0-9]", n.job) and "--" not in n.job
    assert re.fullmatch(r"[-\w._()]{1,90}", n.resource_group) and not n.resource_group.endswith(".")
    assert stack in n.app_display_name


def test_global_names_differ_per_stack_and_tenant_and_never_change() -> None:
    a, b = Names("prod", TENANT), Names("prod", "9b2c7d4e-5f60-4718-8a9b-0c1d2e3f4a5b")
    assert a.key_vault != b.key_vault and a.storage_account != b.storage_account
    assert Names("prod", TENANT).key_vault == a.key_vault  # deterministic: a re-run never renames
