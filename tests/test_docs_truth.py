"""The reference docs follow the code: every command and option, stack config key, output, job variable,
scenario field and exit code the code defines is documented where a user looks for it, required fields
marked as the scenario catalogue says."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from provisioning.config import KEYS
from provisioning.tools.cli import build_parser as provisioning_parser
from uploader import errors
from uploader.cli import build_parser
from uploader.model.scenarios import SCENARIOS

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def long_options(parser: argparse.ArgumentParser) -> list[str]:
    return [s for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"]


def table_row(text: str, first_cell: str) -> str | None:
    return next((ln for ln in text.splitlines() if ln.startswith(f"| {first_cell} |")), None)


@pytest.mark.parametrize("command", sorted(subcommands(build_parser())))
def test_every_uploader_command_and_option_is_in_the_cli_reference(command: str) -> None:
    cli = page("cli.md")
    assert re.search(rf"^## `{command}\b", cli, flags=re.M), f"cli.md: no section for `{command}`"
    sub = subcommands(build_parser())[command]
    nested = [p for a in sub._actions if isinstance(a, argparse._SubParsersAction) for p in a.choices.values()]
    for parser in (sub, *nested):
        for option in long_options(parser):
            assert f"`{option}" in cli, f"cli.md: `{command}` option {option} is not documented"


@pytest.mark.parametrize("command", ["upload", "validate"])
def test_upload_and_validate_tables_name_each_twin(command: str) -> None:
    cli = page("cli.md")
    section = cli.split(f"## `{command}`", 1)[1].split("\n## ", 1)[0]
    for option in long_options(subcommands(build_parser())[command]):
        twin = "UPLOADER_" + option[2:].upper().replace("-", "_")
        assert f"`{twin}`" in section, f"cli.md `{command}`: {option}'s twin {twin} is not in its table"


def test_the_twin_sentence_names_the_commands_whose_options_all_have_twins() -> None:
    """cli.md said "Every option has an environment twin", but `cert new --subject` and `mapping init --scenario`
    have none: the sentence names the commands, and the table in uploader/model/environment.py decides."""
    from uploader.model.environment import VARIABLES

    sentence = page("cli.md").split("## Environment twins", 1)[1].split("(`--tenant-id`", 1)[0]
    named = set(re.findall(r"`([a-z]+)`", sentence.split(" has an environment twin", 1)[0]))
    for command, parser in subcommands(build_parser()).items():
        nested = [p for a in parser._actions if isinstance(a, argparse._SubParsersAction) for p in a.choices.values()]
        options = sorted({o for p in (parser, *nested) for o in long_options(p)})
        twins = [o for o in options if any(v.flag == o and command in {c.split()[0] for c in v.commands}
                                           for v in VARIABLES.values())]
        if command in named:
            assert twins == options, f"cli.md: `{command}` options without a twin: {sorted(set(options) - set(twins))}"
        else:
            assert twins != options or not options, f"cli.md: every `{command}` option has a twin: name it"


def test_every_provisioning_command_is_in_the_cli_reference() -> None:
    cli = page("cli.md").split("## `python -m provisioning`", 1)[1]
    for command in subcommands(provisioning_parser()):
        assert re.search(rf"^\| `{re.escape(command)}[ `]", cli, flags=re.M), f"cli.md: provisioning {command}"


def test_every_provisioning_option_is_in_its_commands_row() -> None:
    """A newcomer reads the table row, not --help: new-stack's --runner-network-from/--address-space and check's
    --policy were missing from it. Nested commands (platform render, fleet up) are matched to the parent's row;
    --stacks-dir is said once for all under the table."""
    cli = page("cli.md").split("## `python -m provisioning`", 1)[1]
    missing = []
    for command, parser in subcommands(provisioning_parser()).items():
        row = "\n".join(ln for ln in cli.splitlines() if re.match(rf"\| `{re.escape(command)}[ `]", ln))
        nested = [p for a in parser._actions if isinstance(a, argparse._SubParsersAction) for p in a.choices.values()]
        for option in {o for p in (parser, *nested) for o in long_options(p)} - {"--stacks-dir"}:
            if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", row):
                missing.append(f"{command} {option}")
    assert not missing, f"cli.md's python -m provisioning table does not name: {sorted(missing)}"


def test_exit_codes_match_the_code() -> None:
    codes = page("cli.md").split("## Exit codes", 1)[1]
    declared = [v for k, v in vars(errors).items() if k.startswith("EXIT_") and isinstance(v, int)]
    assert errors.EXIT_SET_ASIDE in declared
    for code in declared:
        assert table_row(codes, str(code)) is not None, f"cli.md: exit code {code}"


def test_every_stack_config_key_is_in_the_configuration_reference() -> None:
    text = page("configuration.md")
    project = (REPO / "Pulumi.yaml").read_text(encoding="utf-8")
    declared = re.findall(r"^  ([A-Za-z]+):$", project.split("\nconfig:\n", 1)[1], flags=re.M)
    assert sorted(declared) == sorted(KEYS), "Pulumi.yaml and provisioning/config.py disagree on the keys"
    for key in KEYS:
        assert table_row(text, f"`{key}`") is not None, f"configuration.md: no row for hr-connector:{key}"


def test_every_output_and_job_variable_is_in_the_configuration_reference() -> None:
    text = page("configuration.md")
    outputs = re.findall(r'pulumi\.export\("(\w+)"', (REPO / "__main__.py").read_text(encoding="utf-8"))
    assert outputs
    for name in outputs:
        assert table_row(text, f"`{name}`") is not None, f"configuration.md: no row for output {name}"
    job = (REPO / "provisioning" / "components" / "job.py").read_text(encoding="utf-8")
    variables = re.findall(r'EnvironmentVarArgs\(name="(\w+)"', job)
    assert variables
    for name in variables:
        assert table_row(text, f"`{name}`") is not None, f"configuration.md: no row for the job's {name}"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_scenario_field_is_in_the_mapping_reference(scenario: str) -> None:
    text = page("mapping.md")
    heading = f"### `{scenario}`"
    assert heading in text, f"mapping.md: no section for {scenario}"
    section = text.split(heading, 1)[1].split("\n#", 1)[0]
    spec = SCENARIOS[scenario]
    rows = [ln for ln in section.splitlines() if re.match(r"^\| `\w+` \|", ln)]
    assert [re.match(r"^\| `(\w+)`", ln).group(1) for ln in rows] == list(spec.field_names)  # type: ignore[union-attr]
    for row, field in zip(rows, spec.fields, strict=True):
        marked = row.split("|")[2].strip() == "\\*"
        assert marked == field.required, f"mapping.md: {scenario}.{field.name} required={field.required}"
