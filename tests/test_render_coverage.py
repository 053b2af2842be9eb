"""Nothing the stack config reaches is left out of `render-diff` (issue 22).

Every `hr-connector:` key (the list is `provisioning.config.KEYS`, so a key added there is covered here or this
test fails naming it) is changed on its own in a copy of one stack, and the real program's render of the copy must
differ from the original's at the paths that key drives. All variants are evaluated in one `evaluate_many` call
in this process (no process per variant). A hosting stack's change of alert e-mails and tags shows the new
receiver and the tag changes in the comment, while its hosted tenant is named as rendering the same.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioning.config import KEYS, NAMESPACE
from provisioning.tools.evaluator import evaluate_many
from provisioning.tools.offline import Evaluation
from provisioning.tools.render import report_from
from provisioning.tools.review import StackDiff, build_comment, change_lines, diff_reports

pytestmark = pytest.mark.pulumi

TENANT = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
CONNECTOR = {"name": "departures", "jobId": "e081f4f4-3831-48d6-a7bb-3fcfab158145", "files": "departures/*.csv",
             "scenarios": [{"type": "resignation", "columns": {"userPrincipalName": "EmailAddress",
                                                                "resignationDate": "ResignationDate",
                                                                "lastWorkingDate": "LastWorkingDate"}}]}
#: A self-contained tenant stack with every optional key set, so that each can be changed.
BASE = {
    "cloud": "commercial", "tenantId": TENANT, "location": "eastus", "schedule": "30 2 * * *",
    "connectors": [CONNECTOR], "certificate": {"validityDays": 365, "renewBeforeDays": 30, "protection": "vault"},
    "owners": ["0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"], "dropZone": {"processedDays": 30, "rejectedDays": 90},
    "alertEmails": ["hr-ops@contoso.example"], "subscriptionId": "11111111-2222-4333-8444-555555555555",
    "tags": {"cost-center": "4711"},
}
PLATFORM = "9f1c2a3b-4d5e-4f60-8a7b-8c9d0e1f2a3b"  # the hosting team's directory (the Azure side)
ROUTE_TABLE = ("/subscriptions/11111111-2222-4333-8444-555555555555/resourceGroups/hub-net/providers/"
               "Microsoft.Network/routeTables/firewall")
RUNNER = ("/subscriptions/22222222-2222-4333-8444-555555555555/resourceGroups/rg-hr-platform/providers/"
          "Microsoft.Network/")
RUNNER_NETWORK = {"virtualNetworkId": RUNNER + "virtualNetworks/vnet-hr-runner", "addressSpace": "10.59.0.0/24",
                  "privateDnsZoneIds": {g: f"{RUNNER}privateDnsZones/{z}" for g, z in (
                      ("vault", "privatelink.vaultcore.azure.net"), ("blob", "privatelink.blob.core.windows.net"),
                      ("registry", "privatelink.azurecr.io"))}}
HUB = {"hosting": True, "cloud": "commercial", "location": "eastus", "alertEmails": ["platform@contoso.example"],
       "subscriptionId": BASE["subscriptionId"], "tags": {"team": "platform"}, "azureTenantId": PLATFORM}

Change = Callable[[dict[str, Any]], dict[str, Any]]


def _set(**values: Any) -> Change:
    return lambda config: {**config, **values}


def _hosting(config: dict[str, Any]) -> dict[str, Any]:
    from provisioning.config import TENANT_ONLY_KEYS

    return {k: v for k, v in config.items() if k not in TENANT_ONLY_KEYS} | {"hosting": True, "azureTenantId": PLATFORM}


#: Each key: the change made, and a piece of the changed property path (`resource: path`) it must show.
VARIANTS: dict[str, tuple[Change, str]] = {
    "cloud": (_set(cloud="gcc"), "env[UPLOADER_CLOUD].value"),
    "tenantId": (_set(tenantId="9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"), "pulumi:providers:azuread"),
    "azureEnvironment": (_set(azureEnvironment="usgovernment", location="usgovvirginia"),
                         "pulumi:providers:azure-native providers-azure-native: environment"),
    "location": (_set(location="westeurope"), "azure-native:resources:ResourceGroup group: location"),
    "schedule": (_set(schedule="15 4 * * 1-5"), "scheduleTriggerConfig.cronExpression"),
    "connectors": (_set(connectors=[{**CONNECTOR, "files": "leavers/*.csv"}]), "env[UPLOADER_CONNECTORS].value"),
    "certificate": (_set(certificate={**BASE["certificate"], "validityDays": 730}), "validityDays"),
    "image": (_set(image="contoso.azurecr.io/hr-uploader:2.0.0"), "image"),
    "owners": (_set(owners=["0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f1"]), "azuread:index/application:Application"),
    "dropZone": (_set(dropZone={"processedDays": 7, "rejectedDays": 90}), "ManagementPolicy"),
    "alertEmails": (_set(alertEmails=["hr-ops@contoso.example", "second@contoso.example"]),
                    "emailReceivers[email-1].emailAddress"),
    "subscriptionId": (_set(subscriptionId="99999999-2222-4333-8444-555555555555"), "subscriptionId"),
    "tags": (_set(tags={"cost-center": "4712"}), "tags.cost-center"),
    "hosting": (_hosting, "azure-native:app:Job"),
    "hostedBy": (_set(hostedBy="hub"), "hostedBy"),
    "credential": (_set(credential="federated"), "added azuread:index/applicationFederatedIdentityCredential"),
    "azureTenantId": (_set(azureTenantId=PLATFORM), "pulumi:providers:azure-native providers-azure-native: tenantId"),
    "network": (_set(network="private"), "added azure-native:network:VirtualNetwork"),
    # only with network: private, so compared with the `network` variant (private, NAT gateway egress)
    "egressRouteTableId": (_set(network="private", egressRouteTableId=ROUTE_TABLE), "routeTable.id"),
    "addressSpace": (_set(network="private", addressSpace="10.61.0.0/23"), "addressPrefix"),
    "runnerNetwork": (_set(network="private", runnerNetwork=RUNNER_NETWORK),
                      "added azure-native:network:VirtualNetworkPeering"),
}
#: Variants compared with another variant rather than with BASE (a key that only means something beside another).
COMPARED_WITH = {"egressRouteTableId": "network", "addressSpace": "network", "runnerNetwork": "network"}


def _write(directory: Path, name: str, config: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": {f"{NAMESPACE}:{k}": v for k, v in config.items()}}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Evaluation]]:
    """The base stack, one copy per key (same stack name, own folder, the hosting stack beside it) and the hosting
    scenario, evaluated together in this process."""
    root = tmp_path_factory.mktemp("variants")
    files = {"base": _write(root / "base", "acme", BASE)}
    for key, (change, _) in VARIANTS.items():
        _write(root / key, "hub", HUB)
        files[key] = _write(root / key, "acme", change(copy.deepcopy(BASE)))
    hosted = {k: v for k, v in BASE.items() if k not in ("subscriptionId", "alertEmails")} | {"hostedBy": "hub"}
    hosted["subscriptionId"] = HUB["subscriptionId"]
    files["hub-before"] = _write(root / "hub-before", "hub", HUB)
    files["tenant-before"] = _write(root / "hub-before", "acme", hosted)
    files["hub-after"] = _write(root / "hub-after", "hub", {**HUB, "alertEmails": [*HUB["alertEmails"],
                                                                                   "oncall@contoso.example"],
                                                           "tags": {"team": "platform", "cost-center": "9000"}})
    files["tenant-after"] = _write(root / "hub-after", "acme", hosted)
    outcomes = evaluate_many(files.values(), workers=1)
    found = {}
    for label, path in files.items():
        assert isinstance(outcomes[path], Evaluation), (label, outcomes[path])
        found[label] = (path, outcomes[path])
    return found


def _diff(evaluated: dict[str, tuple[Path, Evaluation]], before: str, after: str) -> StackDiff:
    (old_path, old), (new_path, new) = evaluated[before], evaluated[after]
    return diff_reports(new.stack, report_from(old_path, old), report_from(new_path, new))


def test_every_config_key_has_a_variant() -> None:
    missing = [f"{NAMESPACE}:{k}" for k in KEYS if k not in VARIANTS]
    assert not missing, f"add a variant to VARIANTS for {missing}: every key must show in render-diff"


@pytest.mark.parametrize("key", KEYS)
def test_each_config_key_changed_alone_shows_in_render_diff(evaluated: dict[str, tuple[Path, Evaluation]],
                                                            key: str) -> None:
    if key not in VARIANTS:
        pytest.fail(f"no variant for {NAMESPACE}:{key} (see test_every_config_key_has_a_variant)")
    d = _diff(evaluated, COMPARED_WITH.get(key, "base"), key)
    assert d.status == "changed", f"{NAMESPACE}:{key} changed, but the render is the same"
    paths = [f"{c.key}: {p}" for c in d.changes for p, _, _ in c.paths] + [f"{c.kind} {c.key}" for c in d.changes]
    expected = VARIANTS[key][1]
    assert any(expected in p for p in paths), (key, expected, paths[:40])


def test_a_hosting_change_shows_the_receiver_and_tags_and_names_the_unchanged_tenant(
        evaluated: dict[str, tuple[Path, Evaluation]]) -> None:
    hub = _diff(evaluated, "hub-before", "hub-after")
    tenant = _diff(evaluated, "tenant-before", "tenant-after")
    assert tenant.status == "unchanged"
    lines = "\n".join(change_lines(hub))
    assert '+     emailReceivers[email-1].emailAddress: "oncall@contoso.example"' in lines
    tagged = {c.key.split()[0] for c in hub.changes if any(p == "tags.cost-center" for p, _, _ in c.paths)}
    assert {"azure-native:operationalinsights:Workspace", "azure-native:app:ManagedEnvironment",
            "azure-native:containerregistry:Registry", "azure-native:monitor:ActionGroup"} <= tagged
    comment = build_comment([hub, tenant], "main")
    assert "oncall@contoso.example" in comment and 'tags.cost-center: "9000"' in comment
    assert "1 selected stack(s) render the same as on main" in comment and "`acme`" in comment
