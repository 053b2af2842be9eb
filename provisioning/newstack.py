"""`python -m provisioning new-stack NAME --cloud C --tenant-id T [--location L]`: a new tenant in one command.

Writes stacks/Pulumi.NAME.yaml from the commented template (templates/stack.yaml.tmpl) with the cloud's
defaults filled in and no connectors yet; refuses to overwrite; validates the result with the program's own
rules (provisioning.config via offline.load_stack_settings, Pulumi.yaml merged in) before writing anything.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from string import Template

from uploader.clouds import UnknownCloudError, get_cloud

from .config import ConfigError
from .fleet import FleetError, stack_file, validate_stack_name
from .offline import REPO_ROOT, load_stack_settings

TEMPLATE = Path(__file__).parent / "templates" / "stack.yaml.tmpl"

#: A region that hosts Container Apps in each Azure environment (check availability for your subscription).
DEFAULT_LOCATION = {"public": "eastus", "usgovernment": "usgovvirginia"}
_VAULT_DOMAIN = {"public": "vault.azure.net", "usgovernment": "vault.usgovcloudapi.net"}
_ROLE_HINT = {
    "commercial": "Whoever creates it needs Purview's Data Connector Admin role.",
    "gcc": "Whoever creates it needs the Mailbox Import Export role (docs/us-government.md).",
    "gcchigh": "Whoever creates it needs the Mailbox Import Export role (docs/us-government.md).",
    "dod": "Whoever creates it needs the Mailbox Import Export role (docs/us-government.md).",
}
_TITLE = {
    "commercial": "Microsoft 365 commercial",
    "gcc": "Microsoft 365 GCC, Azure commercial hosting",
    "gcchigh": "Microsoft 365 GCC High, Azure Government hosting",
    "dod": "Microsoft 365 DoD, Azure Government hosting",
}


def render_stack_file(name: str, cloud_name: str, tenant_id: str, location: str | None = None) -> str:
    """The stack file's text, validated: FleetError for a bad name/cloud, ConfigError naming the key otherwise."""
    validate_stack_name(name)
    try:
        cloud = get_cloud(cloud_name)
    except UnknownCloudError as exc:
        raise FleetError(f"--cloud: {exc}") from None
    azure_environment = cloud.azure_environment
    text = Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        name=name,
        cloud=cloud.name,
        cloud_title=_TITLE.get(cloud.name, cloud.name),
        tenant_id=tenant_id.strip(),
        azure_environment=azure_environment,
        location=(location or DEFAULT_LOCATION[azure_environment]).strip(),
        vault_domain=_VAULT_DOMAIN[azure_environment],
        role_hint=_ROLE_HINT.get(cloud.name, _ROLE_HINT["commercial"]),
    )
    # The program's own rules on the file as the Pulumi CLI would read it (Pulumi.yaml's defaults and types
    # merged in): raises ConfigError(key, rule) before anything is written.
    with tempfile.TemporaryDirectory() as scratch:
        candidate = Path(scratch) / f"Pulumi.{name}.yaml"
        candidate.write_text(text, encoding="utf-8")
        load_stack_settings(candidate, REPO_ROOT)
    return text


def create_stack(directory: Path, name: str, cloud_name: str, tenant_id: str, location: str | None = None) -> Path:
    """Write Pulumi.<name>.yaml in `directory`; never overwrites an existing file."""
    path = stack_file(directory, validate_stack_name(name))
    if path.exists():
        raise FleetError(f"{path}: already exists; new-stack never overwrites a stack file (edit it instead)")
    text = render_stack_file(name, cloud_name, tenant_id, location)
    directory.mkdir(parents=True, exist_ok=True)
    # O_EXCL: a file created meanwhile by someone else is not overwritten either.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise FleetError(f"{path}: already exists; new-stack never overwrites a stack file") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    return path


__all__ = ["ConfigError", "DEFAULT_LOCATION", "create_stack", "render_stack_file"]
