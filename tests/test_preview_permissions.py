"""Every provider function (invoke) the program calls during a preview, checked against what the role
docs/gitops.md gives the preview identity allows.

A `pulumi preview` runs the program and its invokes for real, with the preview identity (pull-request previews
and the daily drift check). Resources are only diffed, but an invoke is an API call: if the role lacks its
permission, every preview of every deployed stack fails with AuthorizationFailed (issue 16 A1: the workspace's
`getSharedKeys` needs `Microsoft.OperationalInsights/workspaces/sharedKeys/action`, which Reader lacks).
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
from stack_examples import example_stacks

from provisioning.tools.offline import REPO_ROOT, Evaluation, evaluate

pytestmark = pytest.mark.pulumi

#: The Azure built-in role the docs give the preview identity, and its actions. Reader: `"actions": ["*/read"]`,
#: no notActions, no dataActions (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/general#reader).
ROLE_ACTIONS = {"Reader": ("*/read",)}

#: What each provider function needs from Azure Resource Manager; None: it makes no ARM request at all.
#: An invoke the program starts calling must be added here (the test fails naming it until then).
INVOKE_PERMISSIONS: dict[str, str | None] = {
    # "access the current configuration of the native Azure provider": the provider's own sign-in settings
    # (pulumi_azure_native/authorization/get_client_config.py; https://www.pulumi.com/registry/packages/azure-native/api-docs/authorization/getclientconfig/)
    "azure-native:authorization:getClientConfig": None,
    # "get an Azure authentication token for the current login context": a token from the credential (Entra),
    # not an ARM operation (https://www.pulumi.com/registry/packages/azure-native/api-docs/authorization/getclienttoken/)
    "azure-native:authorization:getClientToken": None,
    # Workspaces_GetSharedKeys: "Read the workspace keys to allow sending logs to this workspace"
    # (https://learn.microsoft.com/azure/azure-monitor/logs/manage-access)
    "azure-native:operationalinsights:getSharedKeys": "Microsoft.OperationalInsights/workspaces/sharedKeys/action",
    "azure-native:operationalinsights:getWorkspaceSharedKeys":
        "Microsoft.OperationalInsights/workspaces/sharedKeys/action",
}


def preview_role() -> str:
    """The role docs/gitops.md gives the preview identity on the subscription."""
    text = (REPO_ROOT / "docs" / "gitops.md").read_text(encoding="utf-8")
    found = re.search(r"\*\*The preview identity\*\*.*?\*\*([A-Za-z ]+)\*\* on the\s+subscription", text, re.S)
    assert found, "docs/gitops.md no longer says which role the preview identity holds on the subscription"
    return found.group(1)


def allowed(role: str, action: str | None) -> bool:
    """Whether the role's actions cover an ARM action (Azure's `*` wildcards; case-insensitive)."""
    if action is None:
        return True
    return any(fnmatchcase(action.lower(), pattern.lower()) for pattern in ROLE_ACTIONS[role])


def refused_invokes(evaluation: Evaluation, role: str) -> list[str]:
    problems = []
    for token in sorted(set(evaluation.invokes)):
        if token not in INVOKE_PERMISSIONS:
            problems.append(f"{token}: not classified in INVOKE_PERMISSIONS (what ARM permission does it need?)")
        elif not allowed(role, INVOKE_PERMISSIONS[token]):
            problems.append(f"{token}: needs {INVOKE_PERMISSIONS[token]}, which {role} does not grant")
    return problems


def test_the_docs_give_the_preview_identity_reader() -> None:
    assert preview_role() == "Reader"


def test_the_check_refuses_the_shared_key_call() -> None:
    """The classification has teeth: the call issue 16 A1 found would be refused."""
    assert not allowed("Reader", INVOKE_PERMISSIONS["azure-native:operationalinsights:getSharedKeys"])
    assert allowed("Reader", "Microsoft.OperationalInsights/workspaces/read")
    old = Evaluation("old", [], {}, 0.0, ["azure-native:operationalinsights:getSharedKeys"])
    assert refused_invokes(old, "Reader")


@pytest.mark.parametrize("path", example_stacks(), ids=[p.name for p in example_stacks()])
def test_every_invoke_of_a_preview_is_allowed_to_the_preview_identity(path: Path) -> None:
    evaluation = evaluate(path, isolated=False)
    assert evaluation.invokes, "the recorder saw no invoke at all (is the mock's call() still recording?)"
    assert refused_invokes(evaluation, preview_role()) == []
    assert not any("SharedKeys" in token for token in evaluation.invokes)


def test_hosting_and_hosted_stacks_call_only_allowed_invokes(tmp_path: Path) -> None:
    """A hosted tenant reads its hosting stack through a StackReference (the state backend, not an ARM call)."""
    (tmp_path / "Pulumi.hub.yaml").write_text(
        "config:\n  hr-connector:hosting: true\n  hr-connector:location: eastus\n"
        "  hr-connector:alertEmails: [ops@contoso.example]\n"
        "  hr-connector:azureTenantId: 9f1c2a3b-4d5e-4f60-8a7b-8c9d0e1f2a3b\n",
        encoding="utf-8")
    (tmp_path / "Pulumi.acme.yaml").write_text(
        "config:\n  hr-connector:tenantId: 3f2504e0-4f89-41d3-9a0c-0305e82c3301\n  hr-connector:location: eastus\n"
        "  hr-connector:hostedBy: hub\n", encoding="utf-8")
    for name in ("hub", "acme"):
        evaluation = evaluate(tmp_path / f"Pulumi.{name}.yaml", isolated=False)
        assert refused_invokes(evaluation, preview_role()) == [], name
