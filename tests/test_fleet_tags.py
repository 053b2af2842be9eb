"""The `tags` stack key: validated like every key (name and rule), and under Pulumi mocks every Azure resource
whose azure-native arguments accept `tags` carries the stack's tags plus `managed-by: hr-connector`, so a
tag-enforcing Azure Policy does not refuse the deploy."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
import yaml
from stack_examples import example_stacks

from provisioning.config import FIXED_TAGS, ConfigError, load_settings
from provisioning.tools.offline import evaluate

TENANT = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
BASE = {"tenantId": TENANT, "location": "eastus"}


def accepts_tags(type_token: str) -> bool:
    """Whether the azure-native class for `azure-native:<module>:<Class>` takes a `tags` argument."""
    _, module, name = type_token.split(":")
    cls = getattr(importlib.import_module(f"pulumi_azure_native.{module}"), name)
    return "tags" in inspect.signature(cls._internal_init).parameters


def test_tags_default_to_the_fixed_tag() -> None:
    assert dict(load_settings(BASE).tags) == {"managed-by": "hr-connector"} == FIXED_TAGS


def test_tags_are_merged_with_the_fixed_tag() -> None:
    settings = load_settings({**BASE, "tags": {"cost-center": "4711", "env": "prod"}})
    assert dict(settings.tags) == {"cost-center": "4711", "env": "prod", "managed-by": "hr-connector"}
    # What the Pulumi CLI hands the program: the object as JSON text; a YAML number becomes its text.
    assert load_settings({**BASE, "tags": '{"cost-center": 4711}'}).tags["cost-center"] == "4711"


@pytest.mark.parametrize(("tags", "key", "rule"), [
    ("not json", "hr-connector:tags", "object of tag name"),
    (["a"], "hr-connector:tags", "object of tag name"),
    ({"owner": {"a": 1}}, "hr-connector:tags.owner", "must be a string"),
    ({"owner": True}, "hr-connector:tags.owner", "must be a string"),
    ({"a/b": "x"}, "hr-connector:tags.a/b", "at most 128 characters without"),
    ({"x" * 129: "x"}, f"hr-connector:tags.{'x' * 129}", "at most 128"),
    ({"owner": "v" * 257}, "hr-connector:tags.owner", "at most 256"),
    ({"Managed-By": "me"}, "hr-connector:tags.Managed-By", "set by the program"),
    ({"Env": "a", "env": "b"}, "hr-connector:tags.env", "duplicates tags.Env"),
    ({f"t{i}": "v" for i in range(50)}, "hr-connector:tags", "at most 49 tags"),
])
def test_bad_tags_name_the_key_and_rule(tags: object, key: str, rule: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**BASE, "tags": tags})
    assert caught.value.key == key
    assert rule in caught.value.rule


def test_pulumi_yaml_declares_tags_as_an_object() -> None:
    project = yaml.safe_load((Path(__file__).resolve().parent.parent / "Pulumi.yaml").read_text())
    assert project["config"]["tags"]["type"] == "object"
    assert project["config"]["tags"]["default"] == {}


@pytest.mark.pulumi
def test_every_taggable_azure_resource_is_tagged(tmp_path: Path) -> None:
    """The richest example stack (connectors, alerts) with tags added, evaluated by the real __main__.py."""
    source = next(p for p in example_stacks() if "contoso" in p.name)
    doc = yaml.safe_load(source.read_text())
    doc["config"]["hr-connector:tags"] = {"cost-center": "4711", "data-class": "HR confidential"}
    path = tmp_path / source.name
    path.write_text(yaml.safe_dump(doc))

    evaluation = evaluate(path, isolated=False)
    azure = [r for r in evaluation.resources if r.custom and r.type.startswith("azure-native:")]
    expected = {"cost-center": "4711", "data-class": "HR confidential", "managed-by": "hr-connector"}
    taggable = [r for r in azure if accepts_tags(r.type)]
    untaggable = {r.type for r in azure if not accepts_tags(r.type)}
    # The graph has both kinds, so the check below is not vacuous.
    assert {"azure-native:keyvault:Vault", "azure-native:app:Job", "azure-native:storage:StorageAccount",
            "azure-native:resources:ResourceGroup", "azure-native:keyvault:Secret"} <= {r.type for r in taggable}
    assert "azure-native:authorization:RoleAssignment" in untaggable
    for resource in taggable:
        assert resource.inputs.get("tags") == expected, resource.type
    for resource in azure:
        if resource.type in untaggable:
            assert "tags" not in resource.inputs, resource.type
    # Not Azure tags: docker-build's `tags` are image names, azuread's are app keywords.
    image = evaluation.one("docker-build:index:Image")
    assert all(isinstance(t, str) and "hr-uploader" in t for t in image.inputs["tags"])
    assert "tags" not in evaluation.one("azuread:index/application:Application").inputs
