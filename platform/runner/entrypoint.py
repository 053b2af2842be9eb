"""The deploy runner's entrypoint: register one ephemeral, just-in-time GitHub Actions runner and become it.

Run by each execution of the platform's runner job (provisioning/components/runner.py), which KEDA's github-runner
scaler starts when a workflow job with the runner's labels is queued. As the GitHub App whose key the job's
Key Vault-referenced secret holds:
1. an app JWT, RS256, `iat` 60 s in the past, `exp` 9 minutes ahead (at most 10), `iss` the app ID
   ("Generating a JSON Web Token (JWT) for a GitHub App": https://docs.github.com/apps/creating-github-apps/
   authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app);
2. an installation access token, narrowed to the one repository and the one permission the next call needs
   (`POST /app/installations/{installation_id}/access_tokens` with `repositories` and `permissions`:
   https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app);
3. a just-in-time runner configuration with the labels (`POST /repos/{owner}/{repo}/actions/runners/
   generate-jitconfig`, fine-grained permission "Administration" repository (write):
   https://docs.github.com/rest/actions/self-hosted-runners#create-configuration-for-a-just-in-time-runner-for-a-
   repository); the runner it registers takes one job and is removed;
4. `exec ./run.sh` with the configuration in ACTIONS_RUNNER_INPUT_JITCONFIG, the runner's own environment twin of
   `--jitconfig` (actions/runner src/Runner.Listener/CommandSettings.cs reads every ACTIONS_RUNNER_INPUT_<arg>,
   masks the secret ones, jitconfig among them, and removes the variable from its environment before it starts a
   job; actions-runner-controller starts its runners so): on the command line it would be in /proc/<pid>/cmdline,
   which any process, and a step's `ps -ef` in the job's log, shows. The key's variables are removed from the
   environment first, and a key file is deleted once read, so no workflow step can read the app's key. So are the
   job's managed identity endpoint variables (IDENTITY_ENDPOINT and IDENTITY_HEADER, which Container Apps sets in a
   container whose job has an identity: https://learn.microsoft.com/azure/container-apps/managed-identity#rest-
   endpoint-reference, and MSI_ENDPOINT/MSI_SECRET, their older names): with them a step could take a token as the
   runner's identity, whose one role reads the app's key from the vault. The runner and the steps need no such
   token (the platform resolves the Key Vault reference and pulls the image; the steps sign in to Azure by OIDC).

Never prints the key, the JWT, the installation token or the JIT configuration; a failure prints the step, the
HTTP status and GitHub's `message` (redacted, bounded) and exits 1; an answer that is not HTTP or not JSON is such
a failure too. Redirects are not followed (urllib would resend the Authorization header to wherever one points,
even over http). TLS is verified by the system's trust store (SSL_CERT_FILE, as OpenSSL reads it), never turned
off; `RUNNER_API_URL` must be https (GitHub Enterprise Server: https://HOST/api/v3).

Environment: GITHUB_APP_ID, GITHUB_APP_INSTALLATION_ID, GITHUB_APP_PRIVATE_KEY (PEM) or GITHUB_APP_PRIVATE_KEY_FILE,
RUNNER_REPOSITORY (OWNER/REPO), RUNNER_LABELS (comma-separated), RUNNER_API_URL (default https://api.github.com),
RUNNER_GROUP_ID (default 1, a repository's default group), RUNNER_NAME (default the host name: the job replica's),
RUNNER_HOME (where run.sh is; default this image's /home/runner).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

API_VERSION = "2022-11-28"  # https://docs.github.com/rest/about-the-rest-api/api-versions
KEY_VARIABLES = ("GITHUB_APP_PRIVATE_KEY", "GITHUB_APP_PRIVATE_KEY_FILE")
#: The managed identity endpoint and its secret header: a token as the runner's identity reads the app's key.
IDENTITY_VARIABLES = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET")
JIT_VARIABLE = "ACTIONS_RUNNER_INPUT_JITCONFIG"
TIMEOUT_SECONDS = 30


class RunnerError(Exception):
    """A failure to report in one line (no secret in it) before exiting 1."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def app_jwt(app_id: str, key: rsa.RSAPrivateKey, now: float | None = None) -> str:
    """The GitHub App's JSON Web Token (RS256), valid from a minute ago for nine minutes."""
    issued = int(time.time() if now is None else now) - 60
    header = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = _b64(json.dumps({"iat": issued, "exp": issued + 60 + 540, "iss": app_id}, separators=(",", ":")).encode())
    signature = key.sign(f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{claims}.{_b64(signature)}"


def _settings(env: Mapping[str, str]) -> dict[str, str]:
    def need(name: str) -> str:
        value = env.get(name, "").strip()
        if not value:
            raise RunnerError(f"{name} is not set")
        return value

    settings = {name: need(name) for name in ("GITHUB_APP_ID", "GITHUB_APP_INSTALLATION_ID", "RUNNER_REPOSITORY")}
    for name in ("GITHUB_APP_ID", "GITHUB_APP_INSTALLATION_ID"):
        if not re.fullmatch(r"[0-9]+", settings[name]):  # ASCII: "²".isdigit(), but int("²") raises
            raise RunnerError(f"{name} must be a number")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", settings["RUNNER_REPOSITORY"]):
        raise RunnerError("RUNNER_REPOSITORY must be OWNER/REPO")
    api = (env.get("RUNNER_API_URL") or "https://api.github.com").strip().rstrip("/")
    if not re.fullmatch(r"https://[^/\s]+(/\S*)?", api):
        raise RunnerError("RUNNER_API_URL must be an https URL")
    settings["RUNNER_API_URL"] = api
    group = (env.get("RUNNER_GROUP_ID") or "1").strip()
    if not re.fullmatch(r"[0-9]+", group):
        raise RunnerError("RUNNER_GROUP_ID must be a number")
    settings["RUNNER_GROUP_ID"] = group
    settings["RUNNER_LABELS"] = need("RUNNER_LABELS")
    settings["RUNNER_NAME"] = (env.get("RUNNER_NAME") or socket.gethostname()).strip()[:64]
    settings["RUNNER_HOME"] = env.get("RUNNER_HOME") or "/home/runner"
    return settings


def _private_key(env: Mapping[str, str]) -> rsa.RSAPrivateKey:
    pem = env.get("GITHUB_APP_PRIVATE_KEY", "")
    if not pem.strip() and env.get("GITHUB_APP_PRIVATE_KEY_FILE"):
        key_file = Path(env["GITHUB_APP_PRIVATE_KEY_FILE"])
        try:
            pem = key_file.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError):
            raise RunnerError("GITHUB_APP_PRIVATE_KEY_FILE cannot be read") from None
        try:  # the workflow's steps run as this user (with sudo, in GitHub's image): the key must not stay on disk
            key_file.unlink()
        except OSError:
            raise RunnerError("GITHUB_APP_PRIVATE_KEY_FILE cannot be deleted after reading (a read-only mount?), "
                              "so the workflow's steps could read the app's key: give it in GITHUB_APP_PRIVATE_KEY"
                              ) from None
    if not pem.strip():
        raise RunnerError("neither GITHUB_APP_PRIVATE_KEY nor GITHUB_APP_PRIVATE_KEY_FILE holds the app's key")
    try:
        key = serialization.load_pem_private_key(pem.replace("\\n", "\n").encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise RunnerError("the GitHub App's private key is not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise RunnerError("the GitHub App's private key is not an RSA key (GitHub issues RSA keys)")
    return key


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are refused (an HTTPError 3xx), not followed: urllib copies every header but Content-* onto the
    redirected request, so the Authorization header would go wherever the Location points, http included."""

    def redirect_request(self, *_: Any, **__: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class GitHub:
    """POSTs to GitHub's REST API; error reports name the step and never carry the credentials sent."""

    def __init__(self, api: str) -> None:
        self.api = api
        self._secrets: list[str] = []

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return re.sub(r"[^\x20-\x7e]", "?", text)[:200]

    def post(self, step: str, path: str, bearer: str, body: dict[str, Any]) -> dict[str, Any]:
        self._secrets.append(bearer)
        request = urllib.request.Request(  # noqa: S310 - self.api is https only (_settings)
            f"{self.api}{path}", data=json.dumps(body).encode(), method="POST",
            headers={"Authorization": f"Bearer {bearer}", "Accept": "application/vnd.github+json",
                     "X-GitHub-Api-Version": API_VERSION, "Content-Type": "application/json",
                     "User-Agent": "hr-connector-runner"})
        try:
            with _OPENER.open(request, timeout=TIMEOUT_SECONDS) as response:
                answer = json.loads(response.read(1_000_000))
        except urllib.error.HTTPError as exc:
            if 300 <= exc.code < 400:
                raise RunnerError(f"{step}: GitHub answered {exc.code}, a redirect, which is not followed (it would "
                                  "carry the credentials elsewhere): check RUNNER_API_URL") from None
            try:
                message = str(json.loads(exc.read(100_000)).get("message", ""))
            except (ValueError, AttributeError, OSError, RecursionError, http.client.HTTPException):
                message = ""
            raise RunnerError(f"{step}: GitHub answered {exc.code}: {self.redact(message)}") from None
        except RecursionError:
            raise RunnerError(f"{step}: GitHub's answer is not a JSON object (nested too deeply)") from None
        except http.client.HTTPException as exc:  # not HTTP (BadStatusLine, LineTooLong, IncompleteRead): no OSError
            raise RunnerError(f"{step}: GitHub's answer is not HTTP ({type(exc).__name__})") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RunnerError(f"{step}: {self.redact(type(reason).__name__ + ': ' + str(reason))}") from None
        if not isinstance(answer, dict):
            raise RunnerError(f"{step}: GitHub's answer is not a JSON object")
        return answer


def jit_config(env: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """The settings and the encoded JIT configuration, from the app's key (RunnerError on any failure)."""
    settings = _settings(env)
    key = _private_key(env)
    owner, repo = settings["RUNNER_REPOSITORY"].split("/", 1)
    github = GitHub(settings["RUNNER_API_URL"])
    token_answer = github.post(
        "installation token", f"/app/installations/{settings['GITHUB_APP_INSTALLATION_ID']}/access_tokens",
        app_jwt(settings["GITHUB_APP_ID"], key),
        {"repositories": [repo], "permissions": {"administration": "write"}})
    token = token_answer.get("token")
    if not isinstance(token, str) or not token:
        raise RunnerError("installation token: GitHub's answer has no token")
    labels = [x.strip() for x in settings["RUNNER_LABELS"].split(",") if x.strip()]
    jit = github.post(
        "just-in-time runner configuration", f"/repos/{owner}/{repo}/actions/runners/generate-jitconfig", token,
        {"name": settings["RUNNER_NAME"], "runner_group_id": int(settings["RUNNER_GROUP_ID"]), "labels": labels,
         "work_folder": "_work"})
    encoded = jit.get("encoded_jit_config")
    if not isinstance(encoded, str) or not encoded:
        raise RunnerError("just-in-time runner configuration: GitHub's answer has no encoded_jit_config")
    return settings, encoded


def main() -> int:
    try:
        settings, encoded = jit_config(os.environ)
    except RunnerError as exc:
        print(f"hr-connector runner: {exc}", file=sys.stderr)
        return 1
    for name in (*KEY_VARIABLES, *IDENTITY_VARIABLES):  # the workflow's steps inherit this environment
        os.environ.pop(name, None)
    run = Path(settings["RUNNER_HOME"]) / "run.sh"
    print(f"hr-connector runner: registered {settings['RUNNER_NAME']} with labels {settings['RUNNER_LABELS']}",
          file=sys.stderr)
    sys.stderr.flush()
    os.chdir(run.parent)
    os.execve(str(run), [str(run)], {**os.environ, JIT_VARIABLE: encoded})  # noqa: S606 - the runner itself
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
