"""The fleet docs stay true to the code: every host of the cloud table is in the firewall allowlist, the US
Government page names each cloud's provider environments, and every relative link resolves."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

from uploader.clouds import CLOUDS

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
FLEET_DOCS = ("operators-guide.md", "gitops.md", "us-government.md", "troubleshooting.md", "fleet.md", "releases.md")


def host(url: str) -> str:
    return urlparse(url).hostname or url


@pytest.mark.parametrize("page", ["troubleshooting.md", "us-government.md"])
def test_every_cloud_host_is_documented(page: str) -> None:
    text = (DOCS / page).read_text()
    for cloud in CLOUDS.values():
        row = next((ln for ln in text.splitlines() if ln.startswith(f"| `{cloud.name}` |")), None)
        assert row is not None, f"{page}: no table row for {cloud.name}"
        assert host(cloud.authority_host) in row, f"{page}: {cloud.name}'s authority"
        assert host(cloud.ingestion_url) in row, f"{page}: {cloud.name}'s ingestion host"


def test_us_government_page_names_the_provider_environments() -> None:
    text = (DOCS / "us-government.md").read_text()
    for cloud in CLOUDS.values():
        row = next(ln for ln in text.splitlines() if ln.startswith(f"| `{cloud.name}` |"))
        assert f"`{cloud.azuread_environment}`" in row and f"`{cloud.azure_environment}`" in row, cloud.name
    assert "Mailbox Import Export" in text


@pytest.mark.parametrize("page", ["operators-guide.md", "fleet.md", "gitops.md"])
def test_operator_sign_ins_name_their_directory(page: str) -> None:
    """A fleet spans directories (issue 21): every `az login` an operator page tells you to run names the directory
    (`--tenant`), since a sign-in to your home directory alone is refused by a subscription in another."""
    text = (DOCS / page).read_text()
    bare = [m.group() for m in re.finditer(r"az login(?! --tenant)[^`\n]{0,40}", text)]
    assert not bare, f"{page}: `az login` without --tenant: {bare}"


def test_troubleshooting_covers_the_errors_users_hit() -> None:
    text = (DOCS / "troubleshooting.md").read_text()
    for needle in ("jobId and corresponding appId do not match.", "AADSTS700016", "AADSTS700027",
                   "Firewall allowlist", "Exit codes"):
        assert needle in text, needle


@pytest.mark.parametrize("page", [*(f"docs/{p}" for p in FLEET_DOCS), "README.md"])
def test_relative_links_resolve(page: str) -> None:
    path = REPO / page
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
        if "://" in target or target.startswith(("#", "mailto:")):
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve()
        assert resolved.is_relative_to(REPO), f"{page}: link {target} leaves the repository"
        assert resolved.exists(), f"{page}: broken link {target}"
        if anchor and resolved.suffix == ".md":
            slugs = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
                     for h in re.findall(r"^#+ (.+)$", resolved.read_text(), flags=re.M)}
            assert anchor in slugs, f"{page}: no heading for #{anchor} in {file_part}"
