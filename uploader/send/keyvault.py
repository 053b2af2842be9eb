"""Sign-in with a key that never leaves Key Vault: Key Vault signs the client assertion (`--key-id`).

The pieces, in the order a run meets them:
- `parse_key_id`: the versioned key ID (`https://VAULT.vault.azure.net/keys/NAME/VERSION`). Its host must be
  in the cloud's Key Vault domains (uploader.clouds.KEY_VAULTS), else exit 2 *before* any token is asked for:
  the identity's token never goes to a host that is not Key Vault. `--key-vault-domain` overrides the domain
  (the sandbox and tests only, as `--authority-host` does for sign-in).
- `IdentityTokens`: the managed identity's token for Key Vault, through MSAL's ManagedIdentityClient: the
  Container Apps / App Service protocol (IDENTITY_ENDPOINT + IDENTITY_HEADER), else the VM's instance
  metadata endpoint; AZURE_CLIENT_ID selects a user-assigned identity
  (https://learn.microsoft.com/azure/container-apps/managed-identity#rest-endpoint-reference,
  https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token).
- `KeyVaultSigner`: Key Vault's `sign` operation, `POST {kid}/sign?api-version=7.5` with
  `{"alg": "PS256", "value": base64url(SHA-256 digest)}` (https://learn.microsoft.com/rest/api/keyvault/keys/sign/sign);
  it needs the data action Microsoft.KeyVault/vaults/keys/sign/action.
- `VaultAssertion`: the client assertion JWT (https://learn.microsoft.com/entra/identity-platform/certificate-credentials):
  header alg PS256, typ JWT, x5t#S256; claims aud = the token endpoint, iss = sub = the app ID, a fresh jti,
  nbf/iat now, exp 10 minutes later. MSAL calls it (the `client_assertion` callable, documented since
  msal 1.37) only when it really requests a token, so a normal run signs once. The signature is verified
  against the certificate given before it is used, so a wrong certificate fails here, naming both.

Nothing here prints or stores a token or a signature; Key Vault's own error text is never repeated (only its
error codes, checked against a strict pattern).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import msal
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from uploader.clouds import Cloud
from uploader.errors import TLS_TRUST_HINT, RunConfigError, SignInError, UsageError, is_tls_trust_failure
from uploader.model.certs import PublicCertificate
from uploader.report import safe_name
from uploader.send.https import BoundedSession, RedirectRefused
from uploader.send.settings import IMDS_HOST, ManagedIdentity

#: Key Vault data-plane API version for `sign` (SPEC 7.5: Azure/azure-rest-api-specs
#: specification/keyvault/data-plane/Microsoft.KeyVault/stable/7.5/keys.json).
API_VERSION = "7.5"
#: The one data action signing needs (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/security).
SIGN_ACTION = "Microsoft.KeyVault/vaults/keys/sign/action"
#: "keep it short - 5-10 minutes after nbf at most" (https://learn.microsoft.com/entra/identity-platform/certificate-credentials).
ASSERTION_LIFETIME = 600
KEY_TIMEOUT = 30.0
#: First msal documenting a callable `client_assertion` (invoked only for a real token request): 1.37.0, PR #910
#: (https://github.com/AzureAD/microsoft-authentication-library-for-python/pull/910); pyproject's floor.
MIN_MSAL_ASSERTION = "1.37"
CLIENT_ID_ENV = "AZURE_CLIENT_ID"
_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")  # Key Vault object names (certificates/{name}: ^[0-9a-zA-Z-]+$)
_VERSION = re.compile(r"^[0-9A-Za-z]{32}$")  # versions are 32 characters (e.g. f60f2a4f8e8b4ab1...)
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_.]{0,63}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?)*$")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class KeyId:
    """A versioned Key Vault key ID, checked: where the token and the digest may go."""

    url: str  # https://host[:port]/keys/NAME/VERSION, without query or fragment
    host: str
    name: str
    version: str
    resource: str  # the token resource (audience) for this host

    @property
    def sign_url(self) -> str:
        return f"{self.url}/sign"


def key_vault_domain(value: str | None) -> str | None:
    """The `--key-vault-domain` override, normalised (a DNS name; no scheme, port or path)."""
    if value is None or not value.strip():
        return None
    domain = value.strip().lower().rstrip(".")
    if not _DOMAIN.match(domain):
        raise UsageError("--key-vault-domain: must be a DNS name such as vault.example.test (no scheme, port or "
                         "path)")
    return domain


def parse_key_id(value: str, cloud: Cloud, domain_override: str | None = None) -> KeyId:
    """The key ID, or UsageError (exit 2) naming the rule; called before any token is asked for."""
    text = (value or "").strip()
    rule = "must be a versioned Key Vault key ID, https://VAULT.vault.azure.net/keys/NAME/VERSION"
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower()
        port = parts.port
        has_user = parts.username is not None or parts.password is not None
    except ValueError:
        raise UsageError(f"--key-id: {rule}") from None
    if parts.scheme.lower() != "https" or not host or has_user or parts.query or parts.fragment:
        raise UsageError(f"--key-id: {rule} (https, no user name, query or fragment)")
    segments = parts.path.strip("/").split("/")
    if len(segments) != 3 or segments[0] != "keys" or not _NAME.match(segments[1]):
        raise UsageError(f"--key-id {safe_name(text, 200)}: {rule}")
    if not _VERSION.match(segments[2]):
        raise UsageError(f"--key-id {safe_name(text, 200)}: {rule}; the version (32 characters) is required, so the "
                         "job signs with the key its certificate belongs to")
    override = key_vault_domain(domain_override)
    if override is not None:
        if host != override and not host.endswith("." + override):
            raise UsageError(f"--key-id: the host {safe_name(host, 100)} is not in --key-vault-domain {override}; "
                             "no token was asked for")
        resource = cloud.key_vault.vault_resource
    else:
        found = cloud.key_vault.resource_for(host)
        if found is None or port not in (None, 443):
            kv = cloud.key_vault
            raise UsageError(
                f"--key-id: the host {safe_name(host, 100)} is not Key Vault's in the {cloud.name} cloud "
                f"(*.{kv.vault_domain} or *.{kv.hsm_domain}); the identity's token goes to Key Vault only, so no "
                "token was asked for")
        resource = found
    netloc = host if port is None else f"{host}:{port}"
    return KeyId(f"https://{netloc}/keys/{segments[1]}/{segments[2]}", host, segments[1], segments[2], resource)


def _trust_hint(exc: BaseException) -> str:
    return f"; {TLS_TRUST_HINT}" if is_tls_trust_failure(exc) else ""


class IdentityTokens:
    """The managed identity's access token for one resource (MSAL's cache: one request per run)."""

    def __init__(self, resource: str, client_id: str | None = None, *, endpoint_host: str = IMDS_HOST,
                 timeout: float = KEY_TIMEOUT, http_client: requests.Session | None = None,
                 needs: str = "Key Vault signing needs a managed identity: Container Apps, App Service or an Azure VM; "
                              "on premises sign in with a PEM instead") -> None:
        self.resource = resource
        self.endpoint_host = safe_name(endpoint_host, 100)  # for messages: the host and port to allow
        self.needs = needs  # what the unreachable-endpoint message says this identity is for
        self.client_id = (client_id or "").strip() or None
        identity: Any = (msal.UserAssignedManagedIdentity(client_id=self.client_id) if self.client_id
                         else msal.SystemAssignedManagedIdentity())
        self._http = http_client or BoundedSession(timeout=timeout, retries=1, deadline=timeout)
        self._client = msal.ManagedIdentityClient(identity, http_client=self._http)

    @property
    def who(self) -> str:
        return f"user-assigned identity {self.client_id}" if self.client_id else "the system-assigned identity"

    def token(self) -> str:
        host = self.endpoint_host
        try:
            result = self._client.acquire_token_for_client(resource=self.resource)
        except RedirectRefused as exc:
            raise SignInError(f"the managed identity endpoint {host} answered HTTP {exc.status} (a redirect, not "
                              "followed)") from None
        except requests.RequestException as exc:
            raise SignInError(f"could not reach the managed identity endpoint {host}: {type(exc).__name__}"
                              f"{_trust_hint(exc)} ({self.needs})") from None
        except ValueError as exc:  # msal.ManagedIdentityError, or an answer that is not JSON
            raise SignInError(f"the managed identity endpoint {host} gave no usable answer ({type(exc).__name__})"
                              ) from None
        if isinstance(result, dict) and result.get("access_token"):
            return str(result["access_token"])
        error = result.get("error") if isinstance(result, dict) else None
        code = error if isinstance(error, str) and _CODE.match(error) else "error"
        raise SignInError(f"the managed identity endpoint {host} refused a token for {self.resource} to {self.who} "
                          f"({code}); check that the identity is assigned to this job and that {CLIENT_ID_ENV} "
                          "names it")


def _error_codes(response: requests.Response) -> str:
    """Key Vault's error code and inner code (`Forbidden`, `ForbiddenByRbac`), never its message text."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return ""
    codes = [error.get("code"), (error.get("innererror") or {}).get("code") if isinstance(error, dict) else None]
    shown = [c for c in codes if isinstance(c, str) and _CODE.match(c)]
    return f" ({', '.join(shown)})" if shown else ""


class IdentitySource(Protocol):
    """What KeyVaultSigner needs from an identity (IdentityTokens, or a test's stand-in)."""

    resource: str

    def token(self) -> str: ...


class KeyVaultSigner:
    """Key Vault's `sign` with one key version; counts the signatures it obtained."""

    def __init__(self, key: KeyId, identity: IdentitySource, *, timeout: float = KEY_TIMEOUT,
                 http_client: requests.Session | None = None) -> None:
        self.key = key
        self.identity = identity
        self._http = http_client or BoundedSession(timeout=timeout, retries=1, deadline=timeout)
        self.signatures = 0

    def sign(self, digest: bytes, alg: str = "PS256") -> bytes:
        """The signature over a SHA-256 digest; SignInError/UsageError naming the key and the fix."""
        token = self.identity.token()
        where = f"Key Vault {self.key.host}"
        try:
            response = self._http.post(self.key.sign_url, params={"api-version": API_VERSION},
                                       json={"alg": alg, "value": b64url(digest)},
                                       headers={"Authorization": f"Bearer {token}"})
        except RedirectRefused as exc:
            raise SignInError(f"{where} answered HTTP {exc.status} (a redirect, not followed); nothing was "
                              "sent") from None
        except requests.RequestException as exc:
            raise SignInError(f"could not reach {where}: {type(exc).__name__}{_trust_hint(exc)}; allow outbound "
                              f"HTTPS to {self.key.host} (port 443) through the firewall; nothing was sent") from None
        status = response.status_code
        if status == 403:
            raise RunConfigError(f"{where} refused to sign with key {self.key.url}: HTTP 403{_error_codes(response)}: "
                             f"the identity ({getattr(self.identity, 'who', 'the managed identity')}) lacks "
                             f"'{SIGN_ACTION}' on this key; grant the stack's signer role (or Key Vault Crypto User) "
                             "scoped to the key, and allow up to 10 minutes for the role to apply; nothing was sent")
        if status == 401:
            raise SignInError(f"{where} did not accept the managed identity's token for {self.identity.resource} "
                              f"(HTTP 401{_error_codes(response)}): the key's vault may be in another tenant or "
                              "cloud; nothing was sent")
        if status == 404:
            raise UsageError(f"{where} has no key {self.key.url} (HTTP 404{_error_codes(response)}): check --key-id "
                             "(after a renewal the job gets the new version from `pulumi up`); nothing was sent")
        if status != 200:
            raise SignInError(f"{where} could not sign: HTTP {status}{_error_codes(response)}; nothing was sent")
        try:
            value = response.json()["value"]
            signature = b64url_decode(value)
        except (ValueError, KeyError, TypeError):
            raise SignInError(f"{where} answered the sign request without a readable signature") from None
        self.signatures += 1
        return signature


class VaultAssertion:
    """The client-assertion callable MSAL calls before each real token request (never on a cache hit)."""

    def __init__(self, signer: KeyVaultSigner, certificate: PublicCertificate, app_id: str, *,
                 audience: str = "", clock: Callable[[], float] = time.time) -> None:
        self.signer = signer
        self.certificate = certificate
        self.app_id = app_id
        self.audience = audience
        self._clock = clock

    def verify(self, signing_input: bytes, signature: bytes) -> None:
        """The vault's PS256 signature must verify against the certificate given (else a clear UsageError)."""
        try:
            self.certificate.public_key.verify(
                signature, signing_input,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
                hashes.SHA256())
        except InvalidSignature:
            raise UsageError(f"the signature Key Vault made with key {self.signer.key.url} does not verify against "
                             f"the certificate given (SHA-1 thumbprint {self.certificate.thumbprint_sha1}): "
                             "--certificate is not this key version's certificate; nothing was sent") from None

    def __call__(self, context: Mapping[str, Any]) -> str:
        audience = str(context.get("token_endpoint") or self.audience) if isinstance(context, Mapping) else ""
        if not audience:
            raise SignInError("MSAL gave no token endpoint for the client assertion's audience")
        now = int(self._clock())
        header = {"alg": "PS256", "typ": "JWT",
                  "x5t#S256": b64url(hashlib.sha256(self.certificate.der).digest())}
        claims = {"aud": audience, "iss": self.app_id, "sub": self.app_id, "jti": str(uuid.uuid4()),
                  "nbf": now, "iat": now, "exp": now + ASSERTION_LIFETIME}
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + b64url(json.dumps(claims, separators=(",", ":")).encode())).encode("ascii")
        signature = self.signer.sign(hashlib.sha256(signing_input).digest(), "PS256")
        self.verify(signing_input, signature)
        return signing_input.decode("ascii") + "." + b64url(signature)


def vault_assertion(key_id: str, certificate: PublicCertificate, cloud: Cloud, app_id: str,
                    managed: ManagedIdentity, *, domain_override: str | None = None,
                    timeout: float = KEY_TIMEOUT) -> VaultAssertion:
    """The assertion source for `--key-id`: the key ID checked first (exit 2 before any token is asked for); the
    managed identity as the command read it from the environment (AZURE_CLIENT_ID: a user-assigned one)."""
    key = parse_key_id(key_id, cloud, domain_override)
    identity = IdentityTokens(key.resource, managed.client_id, endpoint_host=managed.endpoint_host, timeout=timeout)
    return VaultAssertion(KeyVaultSigner(key, identity, timeout=timeout), certificate, app_id)
