"""Key Vault and managed identity stand-ins: a vault that signs with keys it never exports, and the token endpoints
a workload's managed identity uses.

Managed identity (tokens for a registered identity, opaque, bound to the resource asked for):
- Container Apps / App Service: `GET /msi/token?api-version=2019-08-01&resource=R[&client_id=C]` with header
  `X-IDENTITY-HEADER` (https://learn.microsoft.com/azure/container-apps/managed-identity#rest-endpoint-reference);
  answer `{"access_token", "expires_on" (string), "resource", "token_type", "client_id"}`.
- VM instance metadata: `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=R[&client_id=C]` with
  `Metadata: true` (https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token);
  answer adds `expires_in` (string).
Without client_id the system-assigned identity answers (registered as `system`).
A token for a federated audience (`api://AzureADTokenExchange`, `...USGov`: uploader/clouds.py) is what Entra issues a
managed identity for workload identity federation: a JWT signed with this sandbox's Entra key (RS256), `iss`
`{sandbox}/{tenant}/v2.0`, `sub` and `oid` the identity's principal ID, `aud` the audience, `tid`, `appid` the client
ID, an hour's `exp` (https://learn.microsoft.com/entra/workload-id/workload-identity-federation-config-app-trust-managed-identity).
The Entra stand-in (entra.py) verifies it with the same key and looks for the app's matching federated credential.

Key Vault `POST /keys/{name}/{version}/sign?api-version=…` `{"alg": "PS256"|"RS256", "value": base64url digest}` →
`{"kid", "value"}` (https://learn.microsoft.com/rest/api/keyvault/keys/sign/sign). No bearer token → 401 with
Key Vault's `WWW-Authenticate` challenge; a token not for a Key Vault resource → 401; an identity without a sign
grant on the key → 403 in Key Vault's RBAC shape (`Forbidden` / `ForbiddenByRbac`, naming the action); an unknown
key or version → 404 `KeyNotFound`. The private keys stay in this process: no endpoint returns them.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from cryptography.x509.oid import NameOID

from uploader.sandbox.messages import Request, Response, json_response
from uploader.sandbox.state import StateError, check_id

KEY_VAULT_RESOURCES = ("https://vault.azure.net", "https://vault.usgovcloudapi.net")
#: Token-exchange audiences (the cloud table's Federation.audience values, and China's): a token for one is a JWT.
FEDERATED_AUDIENCE_PREFIX = "api://AzureADTokenExchange"
FEDERATION_KID = "sandbox-entra-signing-key"
SIGN_ACTION = "Microsoft.KeyVault/vaults/keys/sign/action"
SYSTEM = "system"  # the system-assigned identity's registration name
#: `sign` algorithms for an RSA key and the hash whose digest `value` must be (its length is checked): JsonWebKey
#: SignatureAlgorithm in the REST spec (https://learn.microsoft.com/rest/api/keyvault/keys/sign/sign) and "RSA
#: algorithms" (https://learn.microsoft.com/azure/key-vault/keys/about-keys-details#signverify). RSNULL (a client-made
#: DigestInfo) is real but not served here.
RSA_SIGN_ALGORITHMS: dict[str, hashes.HashAlgorithm] = {
    "PS256": hashes.SHA256(), "PS384": hashes.SHA384(), "PS512": hashes.SHA512(),
    "RS256": hashes.SHA256(), "RS384": hashes.SHA384(), "RS512": hashes.SHA512(),
}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class VaultKey:
    name: str
    version: str
    key: rsa.RSAPrivateKey  # never leaves this process
    certificate: x509.Certificate


@dataclass
class VaultState:
    """Identities, their tokens, the vault's keys and who may sign with which key name; behind one lock."""

    identity_header: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    lock: threading.Lock = field(default_factory=threading.Lock)
    identities: set[str] = field(default_factory=set)
    principals: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # client id -> (principal, tenant)
    #: token -> (identity, resource, exp, tid: the identity's tenant, "" when registered without one)
    tokens: dict[str, tuple[str, str, float, str]] = field(default_factory=dict)
    keys: dict[tuple[str, str], VaultKey] = field(default_factory=dict)
    grants: set[tuple[str, str]] = field(default_factory=set)  # (identity, key name)
    identity_tokens: int = 0
    federated_tokens: int = 0  # of identity_tokens: JWTs for a federated audience
    signatures: int = 0
    sign_refused: int = 0

    _signing_key: rsa.RSAPrivateKey | None = None

    @property
    def signing_key(self) -> rsa.RSAPrivateKey:
        """The sandbox Entra's token-signing key (made on first use; its public half verifies federated assertions)."""
        with self.lock:
            if self._signing_key is None:
                self._signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._signing_key

    # control -------------------------------------------------------------------------------------
    def add_identity(self, client_id: str, principal_id: str | None = None, tenant_id: str | None = None) -> str:
        """Register an identity; its principal (object) ID is given, or made; returns it."""
        check_id(client_id, "client_id")
        if tenant_id is not None:
            check_id(tenant_id, "tenant_id")
        principal = check_id(principal_id, "principal_id") if principal_id else str(uuid.uuid4())
        with self.lock:
            self.identities.add(client_id)
            known = self.principals.get(client_id)
            if known is not None and principal_id is None:
                principal = known[0]
            self.principals[client_id] = (principal, tenant_id if tenant_id is not None else
                                          (known[1] if known else None))
        return principal

    def create_key(self, name: str, common_name: str = "hr-uploader", validity_days: int = 365,
                   key_size: int = 2048) -> VaultKey:
        """A new version of key `name` with a self-signed certificate (what issuer Self makes)."""
        check_id(name, "name")
        if key_size not in (2048, 3072, 4096):
            raise StateError("key_size: 2048, 3072 or 4096")
        key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
        now = dt.datetime.now(dt.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64] or "hr-uploader")])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=validity_days))
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False, key_agreement=False,
                                             key_cert_sign=False, crl_sign=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        entry = VaultKey(name, uuid.uuid4().hex, key, cert)
        with self.lock:
            self.keys[(name, entry.version)] = entry
        return entry

    def grant(self, client_id: str, key_name: str) -> None:
        check_id(client_id, "client_id")
        check_id(key_name, "key_name")
        with self.lock:
            self.grants.add((client_id, key_name))

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {"identity_tokens": self.identity_tokens, "signatures": self.signatures,
                    "sign_refused": self.sign_refused, "federated_tokens": self.federated_tokens}

    def reset(self) -> None:
        with self.lock:
            self.identity_tokens = self.signatures = self.sign_refused = self.federated_tokens = 0


def _federated_token(req: Request, state: VaultState, identity: str, resource: str) -> Response:
    """A managed identity's token for a federated audience: a JWT Entra signed, about this identity."""
    with state.lock:
        principal, tenant = state.principals.get(identity, (None, None))
    if principal is None or tenant is None:
        return json_response(400, {"error": "invalid_request", "error_description": "sandbox: register the identity "
                                   "with a tenant_id to get a federated token"}, note="identity without tenant")
    now = int(time.time())
    claims = {"aud": resource, "iss": f"{req.base_url}/{tenant}/v2.0", "sub": principal, "oid": principal,
              "tid": tenant, "appid": identity, "azp": identity, "iat": now, "nbf": now, "exp": now + 3600,
              "uti": secrets.token_urlsafe(16), "ver": "2.0"}
    token = jwt.encode(claims, state.signing_key, algorithm="RS256", headers={"kid": FEDERATION_KID})
    with state.lock:
        state.identity_tokens += 1
        state.federated_tokens += 1
    return json_response(200, {"access_token": token, "expires_on": str(now + 3600), "expires_in": "3600",
                               "resource": resource, "token_type": "Bearer", "client_id": identity},
                         note=f"federated identity token for {identity}")


def _mi_error(status: int, message: str, imds: bool, error: str = "invalid_request") -> Response:
    """A managed identity endpoint's refusal in its protocol's shape. App Service / Container Apps (2019-08-01):
    `{"statusCode", "message"}`, the fields MSAL reads (msal/managed_identity.py, _obtain_token_on_app_service).
    The VM's IMDS: OAuth's `{"error", "error_description"}`
    (https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token#error-handling)."""
    if imds:
        return json_response(status, {"error": error, "error_description": message}, note=message)
    return json_response(status, {"statusCode": status, "message": message}, note=message)


def _identity_token(state: VaultState, client_id: str | None, resource: str,
                    req: Request | None = None, imds: bool = False) -> Response:
    if not resource:  # `resource` is required in both protocols (the REST endpoint references above)
        return _mi_error(400, "Required query variable 'resource' is missing", imds)
    identity = client_id or SYSTEM
    with state.lock:
        known = identity in state.identities
    if not known:
        return _mi_error(400, "Identity not found (sandbox: register it first)", imds)
    if req is not None and resource.rstrip("/").removesuffix("/.default").startswith(FEDERATED_AUDIENCE_PREFIX):
        return _federated_token(req, state, identity, resource.rstrip("/").removesuffix("/.default"))
    token = "mi-" + secrets.token_urlsafe(32)
    expires = time.time() + 3600
    with state.lock:
        tenant = (state.principals.get(identity, ("", None))[1] or "").lower()
        state.tokens[token] = (identity, resource.rstrip("/"), expires, tenant)
        state.identity_tokens += 1
    return json_response(200, {"access_token": token, "expires_on": str(int(expires)), "expires_in": "3600",
                               "resource": resource, "token_type": "Bearer", "client_id": identity},
                         note=f"identity token for {identity}")


def container_apps_token(req: Request, state: VaultState) -> Response:
    """GET /msi/token (IDENTITY_ENDPOINT): the X-IDENTITY-HEADER must be this sandbox's."""
    if not secrets.compare_digest(req.header("x-identity-header"), state.identity_header):
        return _mi_error(401, "X-IDENTITY-HEADER missing or wrong", imds=False)
    if req.query.get("api-version") != "2019-08-01":
        return _mi_error(400, "api-version 2019-08-01 expected", imds=False)
    return _identity_token(state, req.query.get("client_id"), req.query.get("resource", ""), req)


def instance_metadata_token(req: Request, state: VaultState) -> Response:
    """GET /metadata/identity/oauth2/token (the VM's IMDS): `Metadata: true` required."""
    if req.header("metadata") != "true":
        return _mi_error(400, "Required metadata header not specified", imds=True)
    return _identity_token(state, req.query.get("client_id"), req.query.get("resource", ""), req, imds=True)


def _kv_error(status: int, code: str, message: str, inner: str | None = None, **kwargs: Any) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return json_response(status, {"error": error}, **kwargs)


def sign(req: Request, name: str, version: str, state: VaultState) -> Response:
    """POST /keys/{name}/{version}/sign."""
    auth = req.header("authorization")
    challenge = {"WWW-Authenticate":
                 f'Bearer authorization="{req.base_url}/tenant", resource="{KEY_VAULT_RESOURCES[0]}"'}
    if not auth.startswith("Bearer "):
        return _kv_error(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.", headers=challenge)
    with state.lock:
        entry = state.tokens.get(auth[7:])
    if entry is None or entry[2] <= time.time() or entry[1] not in KEY_VAULT_RESOURCES:
        return _kv_error(401, "Unauthorized", "AKV10022: Invalid audience or token.", headers=challenge)
    identity = entry[0]
    with state.lock:
        key = state.keys.get((name, version))
        allowed = (identity, name) in state.grants
        if not allowed:
            state.sign_refused += 1
    if not allowed:  # RBAC is checked before the object is looked up
        return _kv_error(403, "Forbidden", "Caller is not authorized to perform action on resource.\r\n"
                         f"Caller: appid={identity}\r\nAction: '{SIGN_ACTION}'\r\n"
                         f"Resource: '/vaults/sandbox/keys/{name}'\r\nAssignment: (not found)\r\n"
                         "DecisionReason: 'DeniedWithNoValidRBAC'", "ForbiddenByRbac", note="sign refused")
    if key is None:
        return _kv_error(404, "KeyNotFound", f"A key with (name/id) {name}/{version} was not found in this key vault.")
    try:
        body = json.loads(req.body or b"{}")
        alg, digest = body["alg"], _b64url_decode(body["value"])
    except (ValueError, KeyError, TypeError):
        return _kv_error(400, "BadParameter", "alg and value (base64url) are required")
    digest_hash = RSA_SIGN_ALGORITHMS.get(alg) if isinstance(alg, str) else None
    if digest_hash is None:
        return _kv_error(400, "BadParameter", f"Invalid algorithm for an RSA key: expected one of "
                         f"{', '.join(RSA_SIGN_ALGORITHMS)} (this sandbox does not serve RSNULL)")
    if len(digest) != digest_hash.digest_size:
        # Key Vault's text, quoted in https://github.com/Azure/azure-sdk-for-js/issues/12654 and
        # https://github.com/Azure/azure-cli/issues/28027: `value` is the digest of the alg's hash, base64url.
        return _kv_error(400, "BadParameter", f"Invalid length of 'value': {len(digest)} bytes. {alg} requires "
                         f"{digest_hash.digest_size} bytes, encoded with base64url.")
    pad: padding.AsymmetricPadding = (padding.PSS(mgf=padding.MGF1(digest_hash), salt_length=padding.PSS.DIGEST_LENGTH)
                                      if alg.startswith("PS") else padding.PKCS1v15())
    signature = key.key.sign(digest, pad, utils.Prehashed(digest_hash))
    with state.lock:
        state.signatures += 1
    return json_response(200, {"kid": f"{req.base_url}/keys/{name}/{version}", "value": _b64url(signature)},
                         note=f"signed with {name}/{version[:8]} for {identity}")


def control(req: Request, parts: list[str], body: dict[str, Any], state: VaultState) -> Response | None:
    """/_sandbox/identities and /_sandbox/vault/...: register identities, make keys, grant sign."""
    if req.method == "POST" and parts == ["identities"]:
        client_id = body.get("client_id") or SYSTEM
        principal = state.add_identity(client_id, body.get("principal_id"), body.get("tenant_id"))
        return json_response(201, {"client_id": client_id, "principal_id": principal,
                                   "identity_header": state.identity_header})
    if req.method == "POST" and parts == ["vault", "keys"]:
        validity = body.get("validity_days", 365)
        if not isinstance(validity, int) or isinstance(validity, bool) or not 1 <= validity <= 3650:
            raise StateError("validity_days: a whole number of days, 1 to 3650")
        entry = state.create_key(str(body.get("name") or ""), str(body.get("common_name") or "hr-uploader"), validity,
                                 int(body.get("key_size", 2048)))
        return json_response(201, {"kid": f"{req.base_url}/keys/{entry.name}/{entry.version}",
                                   "name": entry.name, "version": entry.version,
                                   "certificate_pem": entry.certificate.public_bytes(
                                       serialization.Encoding.PEM).decode()})
    if req.method == "POST" and parts == ["vault", "grants"]:
        state.grant(str(body.get("client_id") or SYSTEM), str(body.get("key_name") or ""))
        return json_response(201, {"granted": SIGN_ACTION})
    return None
