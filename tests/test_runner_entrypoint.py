"""The deploy runner's entrypoint (platform/runner/entrypoint.py), run for real as the image runs it, against a fake
GitHub REST API over HTTPS on 127.0.0.1 (the sandbox's own CA, trusted through SSL_CERT_FILE, verification on) with
a GitHub Enterprise Server-style base path, and run.sh replaced by a script that records what it was started with.

- The fake API does what GitHub does with an app JWT: it checks the RS256 signature against the app's public key,
  the issuer and the lifetime (at most 10 minutes), and refuses anything else with 401; it hands the installation
  token out only for that JWT, and the JIT configuration only for that token.
- The entrypoint starts `run.sh` with the configuration in ACTIONS_RUNNER_INPUT_JITCONFIG (not on its command line,
  which every process can read) and no app key left in the environment the workflow's steps inherit or on disk, and
  prints none of the key, the JWT, the installation token or the configuration, on success or failure.
- A hostile or broken API (a redirect elsewhere, an answer that is not HTTP, JSON nested too deeply, an error page)
  is one line naming the step and exit 1: no traceback, and no redirect followed with the credentials.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from provisioning.tools.offline import REPO_ROOT
from uploader.sandbox.tls import prepare_tls

ENTRYPOINT = REPO_ROOT / "platform" / "runner" / "entrypoint.py"
APP_ID, INSTALLATION = "123456", "7890123"
INSTALLATION_TOKEN = "ghs_installationTokenOnlyTheFakeKnows0123456789"  # noqa: S105 - a test value
JIT_CONFIG = "eyJqaXQiOiJvbmx5IG9uY2UifQ_encoded_jit_config_0123456789"
PREFIX = "/api/v3"  # GitHub Enterprise Server's REST base path
HOSTILE = ("302", "999", "413", "502")  # installation IDs the fake answers as a hostile or broken server would


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class FakeGitHub(BaseHTTPRequestHandler):
    public_key: rsa.RSAPublicKey
    seen: list[dict[str, Any]]

    def log_message(self, *_: Any) -> None:  # quiet
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _jwt_ok(self, token: str) -> bool:
        try:
            header, claims, signature = token.split(".")
            self.public_key.verify(_unb64(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(),
                                   hashes.SHA256())
        except (ValueError, InvalidSignature):
            return False
        head, body = json.loads(_unb64(header)), json.loads(_unb64(claims))
        now = time.time()
        return (head.get("alg") == "RS256" and body.get("iss") == APP_ID and body["iat"] <= now < body["exp"]
                and body["exp"] - body["iat"] <= 600)

    def do_GET(self) -> None:  # noqa: N802 - where a followed redirect would land
        bearer = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        self.seen.append({"path": self.path, "bearer": bearer})
        self._answer(404, {"message": "Not Found"})

    def _hostile(self, installation: str) -> None:
        if installation == "302":  # elsewhere: the JWT must not follow
            self.send_response(302)
            self.send_header("Location", f"{PREFIX}/stolen")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif installation == "999":  # not HTTP at all
            self.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\n")
        elif installation == "413":  # JSON nested beyond the parser's recursion limit
            data = b"[" * 200_000
            self.send_response(201)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:  # a proxy's HTML error page
            self.send_response(502)
            self.send_header("Content-Length", "20")
            self.end_headers()
            self.wfile.write(b"<html>bad gateway</>")

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        bearer = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        self.seen.append({"path": self.path, "body": body, "bearer": bearer,
                          "version": self.headers.get("X-GitHub-Api-Version")})
        installation = self.path.split("/")[-2]
        if installation in HOSTILE:
            return self._hostile(installation)
        if self.path == f"{PREFIX}/app/installations/{INSTALLATION}/access_tokens":
            if not self._jwt_ok(bearer):
                return self._answer(401, {"message": "'Issuer' claim ('iss') must be an Integer"})
            return self._answer(201, {"token": INSTALLATION_TOKEN, "expires_at": "2099-01-01T00:00:00Z"})
        if self.path == f"{PREFIX}/repos/contoso/hr-fleet/actions/runners/generate-jitconfig":
            if bearer != INSTALLATION_TOKEN:
                return self._answer(401, {"message": "Bad credentials"})
            return self._answer(201, {"runner": {"id": 23, "name": body["name"]}, "encoded_jit_config": JIT_CONFIG})
        return self._answer(404, {"message": "Not Found"})


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    return _key()


@pytest.fixture
def github(tmp_path: Path, app_key: rsa.RSAPrivateKey) -> Iterator[tuple[str, list[dict[str, Any]], Path]]:
    tls = prepare_tls(tmp_path / "tls")
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (FakeGitHub,), {"public_key": app_key.public_key(), "seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = tls.server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}{PREFIX}", seen, tls.ca_file
    finally:
        server.shutdown()
        server.server_close()


def _run(tmp_path: Path, api: str, ca: Path, key_pem: str, installation: str = INSTALLATION,
         key_file: Path | None = None) -> tuple[subprocess.CompletedProcess[str], Path]:
    home = tmp_path / "runner-home"
    home.mkdir(exist_ok=True)
    record = tmp_path / "run-args.txt"
    run_sh = home / "run.sh"  # stands in for the runner: records its arguments and what its environment holds
    run_sh.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$RECORD"\n'
                      'printf "%s" "$ACTIONS_RUNNER_INPUT_JITCONFIG" > "$RECORD.jit"\n'
                      'env | cut -d= -f1 | sort > "$RECORD.env"\n')
    run_sh.chmod(0o755)
    env = {"PATH": os.environ.get("PATH", ""), "SSL_CERT_FILE": str(ca), "RECORD": str(record),
           "GITHUB_APP_ID": APP_ID, "GITHUB_APP_INSTALLATION_ID": installation, "GITHUB_APP_PRIVATE_KEY": key_pem,
           "RUNNER_REPOSITORY": "contoso/hr-fleet", "RUNNER_LABELS": "hr-connector-private-public,linux-deploy",
           "RUNNER_API_URL": api, "RUNNER_NAME": "hr-connector-runner-abc12", "RUNNER_HOME": str(home),
           # Container Apps sets these for a job with an identity: the runner's reads the app's key from the vault
           "IDENTITY_ENDPOINT": "http://localhost:42356/msi/token", "IDENTITY_HEADER": "identity-header-secret"}
    if key_file is not None:
        env["GITHUB_APP_PRIVATE_KEY_FILE"] = str(key_file)
    done = subprocess.run([sys.executable, str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=60)
    return done, record


def _secrets_absent(output: str, key_pem: str, seen: list[dict[str, Any]]) -> None:
    body = "".join(key_pem.strip().splitlines()[1:-1])
    for secret in (body[:40], body[-40:], INSTALLATION_TOKEN, JIT_CONFIG, *(s["bearer"] for s in seen if s["bearer"])):
        assert secret not in output, "the entrypoint printed a secret"


def test_the_entrypoint_starts_a_just_in_time_runner_as_the_app(
        tmp_path: Path, app_key: rsa.RSAPrivateKey, github: tuple[str, list[dict[str, Any]], Path]) -> None:
    api, seen, ca = github
    key_pem = _pem(app_key)
    done, record = _run(tmp_path, api, ca, key_pem)
    assert done.returncode == 0, done.stderr[-500:].replace(key_pem, "[key]")
    assert record.read_text().strip() == ""  # nothing on run.sh's command line, /proc/PID/cmdline is world-readable
    assert record.with_name("run-args.txt.jit").read_text() == JIT_CONFIG
    inherited = record.with_name("run-args.txt.env").read_text().split()
    assert not {"GITHUB_APP_PRIVATE_KEY", "IDENTITY_ENDPOINT", "IDENTITY_HEADER"} & set(inherited)
    assert "RUNNER_LABELS" in inherited  # the environment is passed on, less those
    token_call, jit_call = seen
    assert token_call["body"] == {"repositories": ["hr-fleet"], "permissions": {"administration": "write"}}
    assert jit_call["body"] == {"name": "hr-connector-runner-abc12", "runner_group_id": 1, "work_folder": "_work",
                                "labels": ["hr-connector-private-public", "linux-deploy"]}
    assert {s["version"] for s in seen} == {"2022-11-28"}
    _secrets_absent(done.stdout + done.stderr, key_pem, seen)


def test_a_wrong_key_is_refused_and_nothing_runs(
        tmp_path: Path, github: tuple[str, list[dict[str, Any]], Path]) -> None:
    api, seen, ca = github
    wrong = _pem(_key())  # not the app's: the fake API's signature check refuses its JWT
    done, record = _run(tmp_path, api, ca, wrong)
    assert done.returncode == 1
    assert "installation token: GitHub answered 401" in done.stderr
    assert not record.exists()  # run.sh never started
    assert [s["path"] for s in seen] == [f"{PREFIX}/app/installations/{INSTALLATION}/access_tokens"]
    _secrets_absent(done.stdout + done.stderr, wrong, seen)


def test_tls_is_verified(tmp_path: Path, app_key: rsa.RSAPrivateKey,
                         github: tuple[str, list[dict[str, Any]], Path]) -> None:
    """Trusting another CA than the server's: the handshake fails, so no JWT is ever sent."""
    api, seen, _ = github
    other_ca = prepare_tls(tmp_path / "other").ca_file
    done, record = _run(tmp_path, api, other_ca, _pem(app_key))
    assert done.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in done.stderr
    assert seen == [] and not record.exists()


def test_a_key_file_is_deleted_once_read(tmp_path: Path, app_key: rsa.RSAPrivateKey,
                                         github: tuple[str, list[dict[str, Any]], Path]) -> None:
    """The workflow's steps run as the runner's user: a key left in a file would be theirs to read."""
    api, seen, ca = github
    key_file = tmp_path / "app-key.pem"
    key_file.write_text(_pem(app_key))
    done, record = _run(tmp_path, api, ca, "", key_file=key_file)
    assert done.returncode == 0, done.stderr[-300:]
    assert not key_file.exists() and record.with_name("run-args.txt.jit").read_text() == JIT_CONFIG


@pytest.mark.parametrize(("installation", "said"), [
    ("302", "302, a redirect, which is not followed"), ("999", "is not HTTP"),
    ("413", "not a JSON object (nested too deeply)"), ("502", "GitHub answered 502")])
def test_a_hostile_answer_is_one_line_and_exit_1(
        tmp_path: Path, app_key: rsa.RSAPrivateKey, github: tuple[str, list[dict[str, Any]], Path],
        installation: str, said: str) -> None:
    api, seen, ca = github
    key_pem = _pem(app_key)
    done, record = _run(tmp_path, api, ca, key_pem, installation=installation)
    assert done.returncode == 1 and not record.exists()
    assert done.stderr.startswith("hr-connector runner: installation token: ") and said in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1
    assert [s["path"] for s in seen] == [f"{PREFIX}/app/installations/{installation}/access_tokens"]  # no redirect
    _secrets_absent(done.stdout + done.stderr, key_pem, seen)


def test_numbers_are_ascii_digits() -> None:
    """'\u00b2'.isdigit() is true but int() refuses it: the group ID reached int() as a traceback."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("runner_entrypoint", ENTRYPOINT)
    assert spec is not None and spec.loader is not None
    entrypoint = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entrypoint)
    env = {"GITHUB_APP_ID": APP_ID, "GITHUB_APP_INSTALLATION_ID": INSTALLATION, "RUNNER_REPOSITORY": "contoso/hr",
           "RUNNER_LABELS": "x"}
    for name in ("RUNNER_GROUP_ID", "GITHUB_APP_ID"):
        with pytest.raises(entrypoint.RunnerError, match=f"{name} must be a number"):
            entrypoint._settings({**env, name: "\u00b2"})
