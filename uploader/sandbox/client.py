"""Start a sandbox process and drive its control API (used by tests/conftest.py and the demo).

Trusting the sandbox CA: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override `verify=` whenever
`trust_env` is on, and this machine sets them globally. So in-process clients use `http_session()`:
a requests Session with `trust_env = False` (environment CA variables and proxies ignored) and
`verify = ca_file`. Child processes get `env`: a copy of os.environ (without UPLOADER_* twins) whose
REQUESTS_CA_BUNDLE, SSL_CERT_FILE and CURL_CA_BUNDLE all point at the sandbox CA.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import requests

CA_ENV_VARS = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")
_CERT_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


#: `python -c PEAK_LAUNCHER ARGS` runs `python -m uploader ARGS` and, at exit, writes the process's own peak memory
#: (VmHWM, in KiB) to the file named by $PEAK_FILE: its own high-water mark, where a child's ru_maxrss would include
#: the forking parent's size. The one launcher the memory tests and bench/ measure the uploader with.
PEAK_LAUNCHER = """
import atexit, os, runpy, sys
def _peak():
    with open("/proc/self/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    with open(os.environ["PEAK_FILE"], "w") as out:
        out.write(str(kib))
atexit.register(_peak)
sys.argv = ["uploader", *sys.argv[1:]]
runpy.run_module("uploader", run_name="__main__")
"""


def measured_argv(*args: str) -> list[str]:
    """The command line that runs the uploader with ARGS under PEAK_LAUNCHER (set PEAK_FILE in its environment)."""
    return [sys.executable, "-c", PEAK_LAUNCHER, *args]


class SandboxStartError(RuntimeError):
    """The sandbox process did not become ready (the message carries the tail of its log)."""


def certificate_only(pem: str) -> str:
    """The certificate blocks of a PEM text: a key+certificate bundle never leaves the caller."""
    blocks = _CERT_BLOCK.findall(pem)
    if not blocks:
        raise ValueError("no PEM certificate found")
    return "\n".join(blocks) + "\n"


#: A managed identity's environment (Container Apps, App Service, VM override, user-assigned selection): never
#: inherited by a test's child process from the developer's shell.
IDENTITY_VARS = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "AZURE_POD_IDENTITY_AUTHORITY_HOST", "AZURE_CLIENT_ID",
                 "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT")


def clean_environ(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ without UPLOADER_* variables (so a developer's shell never leaks into a test)."""
    return {k: v for k, v in (base or os.environ).items()
            if not k.startswith("UPLOADER_") and k not in IDENTITY_VARS}


def http_session(ca_file: str | Path) -> requests.Session:
    """A requests Session that trusts exactly the given CA, whatever the environment says."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca_file)
    return session


class Sandbox:
    """A running sandbox: its URLs and CA, a child-process environment that trusts it, and control calls."""

    def __init__(self, url: str, ca_file: Path, state_dir: Path,
                 process: subprocess.Popen[bytes] | None = None, log_file: Path | None = None) -> None:
        self.url = url
        self.authority_host = url
        self.ingestion_url = url
        self.ca_file = ca_file
        self.state_dir = state_dir
        self.process = process
        self.log_file = log_file
        self.session = http_session(ca_file)
        self.env = clean_environ()
        self.env.update({name: str(ca_file) for name in CA_ENV_VARS})

    @classmethod
    def start(cls, state_dir: Path, *, apps: Iterable[tuple[str, Path]] = (), jobs: Iterable[tuple[str, str]] = (),
              timeout: float = 30.0, extra_args: Iterable[str] = ()) -> Sandbox:
        """Run `python -m uploader sandbox` on an ephemeral loopback port; wait for its ready file.

        Its stdout and stderr go to state_dir/sandbox.log (never a pipe nobody reads).
        """
        state_dir.mkdir(parents=True, exist_ok=True)
        ready = state_dir / "ready.json"
        ready.unlink(missing_ok=True)
        log_file = state_dir / "sandbox.log"
        cmd = [sys.executable, "-m", "uploader", "sandbox", "--host", "127.0.0.1", "--port", "0",
               "--state-dir", str(state_dir), "--ready-file", str(ready)]
        for app_id, pem_path in apps:
            cmd += ["--app", f"{app_id}={pem_path}"]
        for job_id, app_id in jobs:
            cmd += ["--job", f"{job_id}={app_id}"]
        cmd += list(extra_args)
        with open(log_file, "ab") as log:
            process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env=clean_environ())
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if process.poll() is not None:
                raise SandboxStartError(f"sandbox exited with {process.returncode}:\n{_tail(log_file)}")
            if time.monotonic() > deadline:
                process.kill()
                raise SandboxStartError(f"sandbox not ready within {timeout:g} s:\n{_tail(log_file)}")
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        return cls(info["url"], Path(info["ca_file"]), state_dir, process, log_file)

    def stop(self, timeout: float = 10.0) -> None:
        self.session.close()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the sandbox's log (request summaries only; safe to show in a failure)."""
        return _tail(self.log_file, lines) if self.log_file else ""

    # control API ------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        resp = self.session.request(method, f"{self.url}/_sandbox/{path}", json=payload, timeout=30)
        if resp.status_code >= 400:
            raise RuntimeError(f"sandbox control {method} {path}: HTTP {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    def _object(self, method: str, path: str, payload: Any = None) -> dict[str, Any]:
        """A control call answered with a JSON object (every route but jobs/<id>/received)."""
        answer: dict[str, Any] = self._call(method, path, payload)
        return answer

    def register_app(self, app_id: str, pem: str, tenant_id: str | None = None) -> dict[str, Any]:
        """Register an app with the certificate(s) in pem (a key+cert bundle is fine: only certs are sent).

        With tenant_id, the app exists only in that tenant (other tenants get AADSTS700016)."""
        payload: dict[str, Any] = {"app_id": app_id, "certificate_pem": certificate_only(pem)}
        if tenant_id is not None:
            payload["tenant_id"] = tenant_id
        return self._object("POST", "apps", payload)

    def bind_job(self, job_id: str, app_id: str) -> dict[str, Any]:
        return self._object("POST", "jobs", {"job_id": job_id, "app_id": app_id})

    def faults(self, faults: list[dict[str, Any]]) -> dict[str, Any]:
        """Queue faults for the next ingestion requests, in order: {"kind": "status", "status": 503,
        "retry_after": 1, "echo": false}, {"kind": "drop"}, {"kind": "slow", "seconds": 2},
        {"kind": "redirect", "status": 307, "location": URL}; optional "job_id"; "target": "token" serves a
        status or redirect fault to the next token request instead."""
        return self._object("POST", "faults", {"faults": faults})

    def stats(self) -> dict[str, Any]:
        """{"tokens_issued", "token_requests", "apps": {app: {"tokens_issued"}},
        "jobs": {job: {"uploads", "records", "rejected"}}, "faults_pending", "faults_served",
        "connections" (TLS connections accepted)}"""
        return self._object("GET", "stats")

    def job_stats(self, job_id: str) -> dict[str, Any]:
        """This job's counters (zeros when nothing arrived)."""
        jobs: dict[str, dict[str, Any]] = self.stats()["jobs"]
        return jobs.get(job_id, {"uploads": 0, "records": 0, "rejected": 0})

    def received_paths(self, job_id: str) -> list[Path]:
        return [Path(p) for p in self._call("GET", f"jobs/{job_id}/received")]

    def received(self, job_id: str) -> list[bytes]:
        """The accepted bodies (CSV part content) for job_id, in arrival order."""
        return [p.read_bytes() for p in self.received_paths(job_id)]

    def reset(self) -> dict[str, Any]:
        """Drop queued faults and zero the counters (registrations, tokens and stored files stay)."""
        return self._object("POST", "reset")

    def expire_tokens(self) -> dict[str, Any]:
        """Expire every issued access token (the next ingestion call with one gets 401)."""
        return self._object("POST", "tokens/expire")

    # Key Vault and managed identity stand-ins ---------------------------------------------------------
    def add_identity(self, client_id: str | None = None, *, tenant_id: str | None = None,
                     principal_id: str | None = None) -> dict[str, Any]:
        """Register a managed identity (None: the system-assigned one); returns its client_id, principal_id and the
        header. With tenant_id, it can get federated tokens (iss {url}/{tenant_id}/v2.0, sub its principal_id)."""
        payload = {k: v for k, v in (("client_id", client_id), ("tenant_id", tenant_id),
                                     ("principal_id", principal_id)) if v}
        return self._object("POST", "identities", payload)

    def trust_identity(self, app_id: str, tenant_id: str, principal_id: str,
                       audience: str = "api://AzureADTokenExchange", issuer: str | None = None) -> dict[str, Any]:
        """Give the app a federated identity credential trusting the identity (what Identity.trust makes): issuer
        this sandbox's {url}/{tenant}/v2.0 unless given, subject its principal ID, one audience."""
        return self._object("POST", "apps/federated", {
            "app_id": app_id, "tenant_id": tenant_id, "issuer": issuer or f"{self.url}/{tenant_id}/v2.0",
            "subject": principal_id, "audiences": [audience]})

    def identity_env(self, client_id: str | None = None, protocol: str = "container-apps", *,
                     tenant_id: str | None = None, principal_id: str | None = None) -> dict[str, str]:
        """The environment a workload with this identity sees: Container Apps' IDENTITY_ENDPOINT/IDENTITY_HEADER,
        or (protocol "vm") the instance metadata endpoint's host; AZURE_CLIENT_ID for a user-assigned one."""
        info = self.add_identity(client_id, tenant_id=tenant_id, principal_id=principal_id)
        env = ({"IDENTITY_ENDPOINT": f"{self.url}/msi/token", "IDENTITY_HEADER": info["identity_header"]}
               if protocol == "container-apps" else {"AZURE_POD_IDENTITY_AUTHORITY_HOST": self.url})
        if client_id:
            env["AZURE_CLIENT_ID"] = client_id
        return env

    def create_key(self, name: str, common_name: str = "hr-uploader", validity_days: int = 365) -> dict[str, Any]:
        """A new key version in the vault stand-in: {"kid" (on host localhost), "name", "version",
        "certificate_pem"} (the private key is never returned)."""
        made = self._object("POST", "vault/keys", {"name": name, "common_name": common_name,
                                                     "validity_days": validity_days})
        made["kid"] = f"https://localhost:{self.port}/keys/{made['name']}/{made['version']}"
        return made

    def grant_sign(self, client_id: str | None, key_name: str) -> dict[str, Any]:
        """Let the identity sign with every version of key_name (what the stack's signer role gives)."""
        return self._object("POST", "vault/grants", {"client_id": client_id, "key_name": key_name})

    # Log Analytics query API stand-in ---------------------------------------------------------------------
    def add_log_rows(self, resource_id: str, rows: list[dict[str, str]], *,
                     tenant_id: str | None = None) -> dict[str, Any]:
        """Store ContainerAppConsoleLogs rows ({TimeGenerated, Log}) for a workspace (its ARM resource ID); with
        tenant_id, the directory that manages its subscription (a token from another directory is then refused)."""
        payload: dict[str, Any] = {"resource_id": resource_id, "rows": rows}
        if tenant_id is not None:
            payload["tenant_id"] = tenant_id
        return self._object("POST", "logs", payload)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def http_session(self) -> requests.Session:
        """A fresh requests Session trusting only this sandbox's CA (trust_env off)."""
        return http_session(self.ca_file)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
