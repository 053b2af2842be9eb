"""Azurite (npm, installed by the Makefile into node_modules/) on loopback with an ephemeral port.

The `azurite` fixture is exported through conftest.py, so one emulator serves the whole session.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Azurite's documented development account (public, the same in every installation).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class Azurite:
    """A running Azurite blob service."""

    port: int
    process: subprocess.Popen

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
                f"BlobEndpoint=http://127.0.0.1:{self.port}/{DEV_ACCOUNT};")

    def new_container(self) -> tuple[str, object]:
        """A fresh container: (its URL, a ContainerClient for the test's own arranging and checking)."""
        from azure.storage.blob import ContainerClient

        name = f"dz-{uuid.uuid4().hex[:12]}"
        client = ContainerClient.from_connection_string(self.connection_string, name)
        client.create_container()
        return f"http://127.0.0.1:{self.port}/{DEV_ACCOUNT}/{name}", client


def _azurite_binary() -> str:
    found = shutil.which("azurite-blob") or shutil.which("azurite-blob", path=str(REPO / "node_modules" / ".bin"))
    if not found:  # CI installs it (`make test`): a missing emulator is a broken setup, not a reason to skip
        pytest.fail("azurite-blob not found: run `make test` (it installs npm's azurite into node_modules/)")
    return found


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory):
    workspace = tmp_path_factory.mktemp("azurite")
    log = (workspace / "azurite.log").open("w+")
    process = subprocess.Popen(
        [_azurite_binary(), "--blobHost", "127.0.0.1", "--blobPort", "0", "--location", str(workspace),
         "--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry"],
        stdout=log, stderr=subprocess.STDOUT, cwd=workspace,
    )
    port = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and port is None:
        if process.poll() is not None:
            break
        log.seek(0)
        found = re.search(r"listens on http://127\.0\.0\.1:(\d+)", log.read())
        port = int(found.group(1)) if found else None
        if port is None:
            time.sleep(0.1)
    if port is None:
        process.kill()
        log.seek(0)
        pytest.fail(f"Azurite did not start: {log.read()[-2000:]}")
    try:
        yield Azurite(port, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


