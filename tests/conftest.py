"""Shared fixtures: the loopback sandbox, test certificates, the real CLI in a subprocess, fresh apps.

Trusting the sandbox CA (read this before writing a TLS test): the machine sets REQUESTS_CA_BUNDLE,
SSL_CERT_FILE and CURL_CA_BUNDLE globally, and requests (so MSAL too) lets them override `verify=`.
- Child processes: pass `env=sandbox.env` (run_uploader does it for you once the sandbox has started);
  all three variables point at the sandbox CA there, and UPLOADER_* variables are removed.
- In-process clients: use `sandbox.http_session()` — a requests Session with `trust_env = False` and
  `verify = sandbox.ca_file` — and hand it to MSAL as `http_client=`. Never disable verification.

Fixtures
- sandbox (session): a running `python -m uploader sandbox` (uploader.sandbox.client.Sandbox):
  .url .authority_host .ingestion_url .ca_file .state_dir .env; register_app(app_id, pem, tenant_id=None),
  bind_job(job_id, app_id), faults([...]), stats(), job_stats(job_id), received(job_id) -> list[bytes],
  received_paths(job_id), reset(), expire_tokens(), http_session(), log_tail(). Faults and counters are
  reset before every test that uses it.
- make_certificate (session factory): make_certificate(name="hr-connector-test", validity_days=365)
  -> Certificate(.path PEM bundle file, .pem, .certificate_pem, .thumbprint_sha256, .thumbprint_sha1).
- new_app (session factory): new_app(register=True, bind=True, certificate=None, tenant_id=None)
  -> SandboxApp(.tenant_id .app_id .job_id .certificate .certificate_path .authority_host .ingestion_url
  .flags) where .flags = ["--tenant-id", T, "--app-id", A, "--job-id", J, "--certificate", PATH,
  "--authority-host", URL, "--ingestion-url", URL]; fresh IDs every call.
- run_uploader (session): run_uploader(*args, env=None, timeout=60) -> CompletedProcess (text, captured)
  of [sys.executable, "-m", "uploader", *args]; env=None means sandbox.env when the sandbox is running
  in this session, otherwise os.environ without UPLOADER_* variables.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from azurite_support import azurite  # noqa: F401 - one Azurite per session, for every test module
from hostile_support import listener  # noqa: F401 - a loopback listener that counts connections

from uploader.model.certs import generate_certificate
from uploader.sandbox.client import Sandbox, clean_environ

_RUNNING: list[Sandbox] = []


@dataclass(frozen=True)
class Certificate:
    """A test credential: PEM bundle (key + certificate) on disk. repr never shows the key."""

    path: Path
    pem: str = field(repr=False)
    certificate_pem: str = field(repr=False)
    thumbprint_sha256: str
    thumbprint_sha1: str


@dataclass(frozen=True)
class SandboxApp:
    """An app registered on the sandbox with a job bound to it, and the upload flags that reach it."""

    tenant_id: str
    app_id: str
    job_id: str
    certificate: Certificate
    authority_host: str
    ingestion_url: str

    @property
    def certificate_path(self) -> Path:
        return self.certificate.path

    @property
    def flags(self) -> list[str]:
        return ["--tenant-id", self.tenant_id, "--app-id", self.app_id, "--job-id", self.job_id,
                "--certificate", str(self.certificate.path), "--authority-host", self.authority_host,
                "--ingestion-url", self.ingestion_url]


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One real sandbox process per test session, on an ephemeral loopback port."""
    sb = Sandbox.start(tmp_path_factory.mktemp("sandbox"))
    _RUNNING.append(sb)
    try:
        yield sb
    finally:
        _RUNNING.remove(sb)
        sb.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`posix` tests are skipped on Windows and `linux` tests off Linux (CI runs the suite on all three)."""
    for item in items:
        if sys.platform == "win32" and item.get_closest_marker("posix"):
            item.add_marker(pytest.mark.skip(reason="POSIX only (FIFOs, /dev, permission bits, SIGKILL, rlimits)"))
        if not sys.platform.startswith("linux") and item.get_closest_marker("linux"):
            item.add_marker(pytest.mark.skip(reason="Linux only (peak memory from /proc)"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A failed test that used the sandbox shows the end of its log (request lines only, no data)."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and _RUNNING and "sandbox" in getattr(item, "fixturenames", ()):
        report.sections.append(("sandbox log (last 30 lines)", _RUNNING[-1].log_tail(30)))


@pytest.fixture(autouse=True)
def _sandbox_clean_slate(request: pytest.FixtureRequest) -> None:
    """Before each test that uses the sandbox: no leftover faults, counters at zero."""
    if "sandbox" in request.fixturenames:
        request.getfixturevalue("sandbox").reset()


@pytest.fixture(scope="session")
def make_certificate(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Certificate]:
    folder = tmp_path_factory.mktemp("certs")

    def make(name: str = "hr-connector-test", validity_days: int = 365) -> Certificate:
        bundle = generate_certificate(name, validity_days=validity_days)
        path = folder / f"{uuid.uuid4().hex}.pem"
        path.write_text(bundle.pem)
        path.chmod(0o600)
        return Certificate(path=path, pem=bundle.pem, certificate_pem=bundle.certificate_pem,
                           thumbprint_sha256=bundle.thumbprint_sha256, thumbprint_sha1=bundle.thumbprint_sha1)

    return make


@pytest.fixture(scope="session")
def new_app(sandbox: Sandbox, make_certificate: Callable[..., Certificate]) -> Callable[..., SandboxApp]:
    def make(register: bool = True, bind: bool = True, certificate: Certificate | None = None,
             tenant_id: str | None = None) -> SandboxApp:
        cert = certificate or make_certificate()
        app = SandboxApp(tenant_id=tenant_id or str(uuid.uuid4()), app_id=str(uuid.uuid4()),
                         job_id=str(uuid.uuid4()), certificate=cert, authority_host=sandbox.authority_host,
                         ingestion_url=sandbox.ingestion_url)
        if register:
            sandbox.register_app(app.app_id, cert.pem, tenant_id=app.tenant_id)
        if bind:
            sandbox.bind_job(app.job_id, app.app_id)
        return app

    return make


@pytest.fixture(scope="session")
def run_uploader() -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, env: Mapping[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        if env is None:
            env = _RUNNING[-1].env if _RUNNING else clean_environ()
        return subprocess.run([sys.executable, "-m", "uploader", *map(str, args)], env=dict(env),
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    return run
