"""Stack config validation (provisioning.config), the cron validator, and reading stack files as the CLI does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stack_examples import example_stacks

from provisioning.config import ConfigError, Settings, load_settings
from provisioning.cron import CronError, validate_cron
from provisioning.tools.offline import SECRET_STANDIN, load_stack_file, load_stack_settings

TENANT = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
JOB = "e081f4f4-3831-48d6-a7bb-3fcfab158145"
RESIGNATION = {
    "type": "resignation",
    "columns": {"userPrincipalName": "Email", "resignationDate": "Resigned", "lastWorkingDate": "LastDay"},
}


def base(**extra: object) -> dict[str, object]:
    return {"tenantId": TENANT, "location": "eastus", **extra}


def connector(**extra: object) -> dict[str, object]:
    return {"name": "departures", "jobId": JOB, "files": "departures/*.csv", "scenarios": [RESIGNATION], **extra}


# ------------------------------------------------------------------------------------------------- valid


def test_minimal_config_takes_the_documented_defaults() -> None:
    s = load_settings(base())
    assert isinstance(s, Settings)
    assert (s.cloud.name, s.azure_environment, s.schedule) == ("commercial", "public", "0 2 * * *")
    assert (s.certificate.validity_days, s.certificate.renew_before_days) == (365, 30)
    assert (s.drop_zone.processed_days, s.drop_zone.rejected_days) == (30, 90)
    assert s.connectors == () and s.owners == () and s.alert_emails == ()
    assert s.image is None and s.subscription_id is None


def test_values_as_the_pulumi_cli_hands_them_strings_and_json_text() -> None:
    s = load_settings({
        "hr-connector:tenantId": TENANT, "hr-connector:location": "usgovvirginia", "hr-connector:cloud": "gcchigh",
        "hr-connector:connectors": json.dumps([{"jobId": JOB, "files": "*.csv", "scenarios": [RESIGNATION]}]),
        "hr-connector:certificate": '{"validityDays": "180", "renewBeforeDays": 20}',
        "hr-connector:image": "", "hr-connector:subscriptionId": "", "hr-connector:owners": "[]",
        "azure-native:location": "ignored: another namespace",
    })
    assert s.azure_environment == "usgovernment" and s.government
    assert [c.job_id for c in s.connectors] == [JOB]
    assert (s.certificate.validity_days, s.certificate.renew_before_days) == (180, 20)
    assert s.image is None and s.subscription_id is None


def test_empty_connectors_is_a_valid_first_deploy() -> None:
    assert load_settings(base(connectors=[])).connectors == ()
    assert load_settings(base(connectors="[]")).connectors == ()


def test_connectors_json_is_the_design_shape() -> None:
    s = load_settings(base(connectors=[connector()]))
    assert json.loads(s.connectors_json()) == [connector()]


# ------------------------------------------------------------------------------------------------- broken

BROKEN = [
    (base(tenantId="not-a-guid"), "hr-connector:tenantId", "GUID"),
    ({"location": "eastus"}, "hr-connector:tenantId", "required"),
    (base(subscriptionId="1234"), "hr-connector:subscriptionId", "GUID"),
    (base(owners=["0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", "bob"]), "hr-connector:owners[1]", "GUID"),
    (base(connectors=[connector(jobId="job-1")]), "hr-connector:connectors[0].jobId", "GUID"),
    (base(cloud="azure-china"), "hr-connector:cloud", "unknown cloud"),
    (base(connectors=[connector(scenarios=[{**RESIGNATION, "type": "promotion"}])]),
     "hr-connector:connectors[0].scenarios[0].type", "unknown scenario type"),
    (base(connectors=[connector(scenarios=[{"type": "resignation", "columns": {"resignationDate": "R",
                                                                               "lastWorkingDate": "L"}}])]),
     "hr-connector:connectors[0].scenarios[0].columns.userPrincipalName", "required"),
    (base(connectors=[connector(), connector(name="b", jobId="6a8f6b2a-1c3e-4a3b-9d9e-2f1b7c4d5e60", scenarios=[
        {**RESIGNATION, "value": "R"},
        {"type": "performanceReview", "value": "P",
         "columns": {"userPrincipalName": "U", "effectiveDate": "E"}}])]),
     "hr-connector:connectors[1].scenarioColumn", "more than one scenario"),
    (base(connectors=[connector(), connector(name="second")]), "hr-connector:connectors[1].jobId", "duplicates"),
    (base(schedule="0 2 * *"), "hr-connector:schedule", "4 fields"),
    (base(schedule="0 24 * * *"), "hr-connector:schedule", "hour field"),
    (base(schedule="*/0 * * * *"), "hr-connector:schedule", "step"),
    (base(schedule="0 2 * FOO *"), "hr-connector:schedule", "month field"),
    (base(schedule="0 2 10-5 * *"), "hr-connector:schedule", "backwards"),
    (base(cloud="gcchigh", azureEnvironment="public"), "hr-connector:azureEnvironment", "Azure Government"),
    (base(cloud="dod", azureEnvironment="public"), "hr-connector:azureEnvironment", "Azure Government"),
    (base(cloud="gcchigh"), "hr-connector:location", "not an Azure Government region"),
    (base(location="usgovarizona"), "hr-connector:location", "azureEnvironment is public"),
    (base(azureEnvironment="china"), "hr-connector:azureEnvironment", "unknown Azure environment"),
    (base(schedul="0 2 * * *"), "hr-connector:schedul", "did you mean 'schedule'"),
    (base(dropzone={"processedDays": 3}), "hr-connector:dropzone", "did you mean 'dropZone'"),
    (base(certificate={"validity": 10}), "hr-connector:certificate.validity", "unknown key"),
    (base(alertEmails=["ops@contoso.com", "not an address"]), "hr-connector:alertEmails[1]", "e-mail"),
    (base(alertEmails="ops@contoso.com"), "hr-connector:alertEmails", "list"),
    (base(certificate={"validityDays": 30, "renewBeforeDays": 30}), "hr-connector:certificate.renewBeforeDays",
     "less than"),
    (base(certificate={"validityDays": 0}), "hr-connector:certificate.validityDays", "between"),
    (base(certificate={"validityDays": "a year"}), "hr-connector:certificate.validityDays", "whole number"),
    (base(dropZone={"processedDays": 0}), "hr-connector:dropZone.processedDays", "between"),
    (base(dropZone={"rejectedDays": -5}), "hr-connector:dropZone.rejectedDays", "between"),
    (base(image="https://registry/x:1"), "hr-connector:image", "image reference"),
    (base(location=None), "hr-connector:location", "required"),
]


@pytest.mark.parametrize(("config", "key", "rule"), BROKEN, ids=[f"{b[1]}:{b[2]}" for b in BROKEN])
def test_every_error_names_the_key_and_the_rule(config: dict[str, object], key: str, rule: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({k: v for k, v in config.items() if v is not None})
    assert caught.value.key == key
    assert rule in caught.value.rule
    assert str(caught.value).startswith(f"{key}: ")


# ------------------------------------------------------------------------------------------------- cron


@pytest.mark.parametrize("expression", [
    "0 2 * * *", "*/15 * * * *", "0 0 1 1 *", "5,35 8-18/2 * * MON-FRI", "0 3 */2 * *", "59 23 31 DEC SUN",
    "0 4 * jan,jul 0", "0-59/5 0-23 1-31 1-12 0-6", "  0   2 * * *  ",
    # Days that exist in some named month, or a restricted day of week (robfig/cron ORs the two day fields then):
    "0 2 29 2 *", "0 2 31 1-2 *", "0 2 31 */2 *", "0 2 31 2 1", "0 2 31 2 */2", "0 2 30,31 4,5 *", "0 2 */10 2 *",
])
def test_valid_cron_expressions(expression: str) -> None:
    assert validate_cron(expression) == " ".join(expression.split())


@pytest.mark.parametrize(("expression", "message"), [
    ("", "5 fields"), ("0 2 * * * *", "6 fields"), ("60 * * * *", "minute"), ("* * 0 * *", "day of month"),
    ("* * 32 * *", "day of month"), ("* * * 13 *", "month"), ("* * * * 8", "day of week"), ("* * * * FUN", "name"),
    ("1,,2 * * * *", "empty"), ("*/61 * * * *", "larger"), ("a-b * * * *", "not a number"), ("*/x * * * *", "step"),
])
def test_invalid_cron_expressions(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        validate_cron(expression)


@pytest.mark.parametrize("expression", [
    "0 2 31 2 *", "0 2 30 2 *", "0 2 30 FEB *", "0 2 31 4 *", "0 2 31 4,6,9,11 *", "0 2 30,31 2 *", "0 2 30/1 2 *",
    "0 2 31 2 */1", "0 2 31 APR-APR *",
])
def test_a_schedule_that_never_fires_is_refused_naming_the_rule(expression: str) -> None:
    with pytest.raises(CronError, match=r"^never fires: day of month .* does not exist in .*February 29"):
        validate_cron(expression)
    with pytest.raises(ConfigError) as caught:
        load_settings({"tenantId": "3f2504e0-4f89-41d3-9a0c-0305e82c3301", "location": "eastus",
                       "schedule": expression})
    assert caught.value.key == "hr-connector:schedule" and "never fires" in caught.value.rule


# --------------------------------------------------------------------------------------- stack files, as the CLI


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"Pulumi.{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_repo_stack_is_valid_and_there_are_all_clouds() -> None:
    stacks = example_stacks()
    clouds = {load_stack_settings(p).cloud.name for p in stacks}
    assert {"commercial", "gcc", "gcchigh"} <= clouds
    assert any(not load_stack_settings(p).connectors for p in stacks), "a first-deploy example (no connectors)"
    assert any(load_stack_settings(p).connectors for p in stacks), "a second-pass example (connectors filled)"


def test_project_defaults_fill_what_the_stack_leaves_out(tmp_path: Path) -> None:
    cfg = load_stack_file(write(tmp_path, "t", f"config:\n  hr-connector:tenantId: {TENANT}\n"
                                                "  hr-connector:location: eastus\n"))
    assert cfg.name == "t"
    v = cfg.values
    assert v["hr-connector:cloud"] == "commercial"
    assert v["hr-connector:schedule"] == "0 2 * * *"
    assert v["hr-connector:certificate"] == {"validityDays": 365, "renewBeforeDays": 30}
    assert v["hr-connector:connectors"] == [] and v["hr-connector:alertEmails"] == []
    env = cfg.cli_env()  # what the language host hands the program: strings, objects as JSON
    assert env["hr-connector:certificate"] == '{"validityDays":365,"renewBeforeDays":30}'
    assert env["hr-connector:connectors"] == "[]"


def test_a_required_key_without_default_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_stack_file(write(tmp_path, "t", f"config:\n  hr-connector:tenantId: {TENANT}\n"))
    assert caught.value.key == "hr-connector:location"


def test_a_tenant_stack_without_tenant_id_is_refused_by_the_program(tmp_path: Path) -> None:
    """tenantId has a default ("") in Pulumi.yaml since hosting stacks have none; tenant stacks still need it."""
    with pytest.raises(ConfigError) as caught:
        load_stack_settings(write(tmp_path, "t", "config:\n  hr-connector:location: eastus\n"))
    assert caught.value.key == "hr-connector:tenantId" and "required" in caught.value.rule


def test_typed_keys_are_type_checked_like_the_cli(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_stack_file(write(tmp_path, "t", f"config:\n  hr-connector:tenantId: {TENANT}\n"
                                             "  hr-connector:location: eastus\n"
                                             "  hr-connector:owners: not-a-list\n"))
    assert caught.value.key == "hr-connector:owners" and "array<string>" in caught.value.rule


def test_secure_values_are_never_decrypted(tmp_path: Path) -> None:
    cfg = load_stack_file(write(tmp_path, "t", f"config:\n  hr-connector:tenantId: {TENANT}\n"
                                               "  hr-connector:location: eastus\n"
                                               "  docker-build:host:\n    secure: v1:AAAABBBB\n"))
    assert cfg.values["docker-build:host"] == SECRET_STANDIN
    assert cfg.secret_keys == ("docker-build:host",)


def test_unnamespaced_keys_and_bad_yaml_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_stack_file(write(tmp_path, "t", "config:\n  tenantId: x\n"))
    assert caught.value.key == "tenantId" and "namespaced" in caught.value.rule
    with pytest.raises(ConfigError) as caught:
        load_stack_file(write(tmp_path, "u", "config:\n  hr-connector:tenantId: [\n"))
    assert caught.value.key.endswith("Pulumi.u.yaml:3") and "YAML" in caught.value.rule


def test_an_unknown_key_in_a_stack_file_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "t", f"config:\n  hr-connector:tenantId: {TENANT}\n  hr-connector:location: eastus\n"
                                "  hr-connector:alertEmail: [ops@contoso.com]\n")
    with pytest.raises(ConfigError) as caught:
        load_stack_settings(path)
    assert caught.value.key == "hr-connector:alertEmail" and "alertEmails" in caught.value.rule


def test_pulumi_yaml_declares_every_key_the_way_the_cli_accepts() -> None:
    """Pulumi.yaml's typed project config: every key of the namespace, described, schema-valid, typed defaults."""
    import yaml

    from provisioning.config import KEYS
    from provisioning.tools.offline import REPO_ROOT, _type_ok

    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))
    assert project["name"] == "hr-connector" and project["stackConfigDir"] == "stacks"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}
    declared = project["config"]
    assert set(declared) == set(KEYS)
    for key, decl in declared.items():
        # the project schema's ConfigTypeDeclaration (Pulumi CLI 3.187+: `object` among the simple types)
        assert set(decl) <= {"type", "items", "description", "secret", "default", "value"}, key
        assert decl.get("description"), key
        assert decl.get("type") in {"string", "integer", "boolean", "array", "object"}, key
        if decl["type"] == "array":
            assert decl["items"]["type"] in {"string", "integer", "boolean", "array", "object"}, key
        if "default" in decl:
            assert _type_ok(decl["type"], decl.get("items"), decl["default"]), key
    assert {k for k, d in declared.items() if "default" not in d} == {"location"}  # tenantId: "" (hosting stacks)
    # the defaults are the program's own
    settings = load_settings({**{k: d["default"] for k, d in declared.items() if "default" in d},
                              "tenantId": TENANT, "location": "eastus"})
    assert settings == load_settings(base())


# ------------------------------------------------------------------------------------------- hosting


def test_a_hosting_stack_needs_no_tenant_and_refuses_tenant_keys() -> None:
    hosting = load_settings({"hosting": "true", "location": "eastus", "cloud": "commercial",
                             "alertEmails": ["platform@contoso.example"],
                             "azureTenantId": "9f1c2a3b-4d5e-4f60-8a7b-8c9d0e1f2a3b"})
    assert hosting.hosting and hosting.tenant_id == "" and hosting.hosted_by is None
    assert hosting.azure_tenant_id == "9f1c2a3b-4d5e-4f60-8a7b-8c9d0e1f2a3b" and hosting.builds_image
    # a prebuilt image is a hosting stack's choice too (it then owns no registry); the `image` rule still applies
    prebuilt = load_settings({"hosting": "true", "location": "eastus", "alertEmails": ["platform@contoso.example"],
                              "azureTenantId": "9f1c2a3b-4d5e-4f60-8a7b-8c9d0e1f2a3b", "image": "x.azurecr.io/hr:1"})
    assert prebuilt.image == "x.azurecr.io/hr:1" and not prebuilt.builds_image
    with pytest.raises(ConfigError) as caught:
        load_settings({"hosting": True, "location": "eastus", "tenantId": TENANT, "hostedBy": "other",
                       "connectors": "[]", "image": "https://x.azurecr.io/hr:1"})
    keys = {p.key for p in caught.value.problems} if hasattr(caught.value, "problems") else {caught.value.key}
    assert keys == {"hr-connector:tenantId", "hr-connector:hostedBy", "hr-connector:image",
                    "hr-connector:alertEmails", "hr-connector:azureTenantId"}
    assert "hosting stack" in caught.value.rule


@pytest.mark.parametrize("name", ["hub-eastus", "acme/hr-connector/hub-eastus"])
def test_hosted_by_takes_a_stack_or_a_full_name(name: str) -> None:
    settings = load_settings({**base(), "hostedBy": name})
    assert settings.hosted_by == name and settings.hosted_by_stack == "hub-eastus"


@pytest.mark.parametrize("name", ["a b", "x/y", "../hub", "o/p/.."])
def test_hosted_by_refuses_what_is_not_a_stack_name(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**base(), "hostedBy": name})
    assert caught.value.key == "hr-connector:hostedBy"
