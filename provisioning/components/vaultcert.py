"""The app's certificate made by Key Vault itself, its key never exportable, as a Pulumi dynamic resource.

Key Vault certificates exist only on Key Vault's data plane (Azure Resource Manager, so pulumi-azure-native, has no
certificate type), so this is a dynamic provider, as certificate.py is. It calls the documented REST operations
with `requests` (already a dependency) and a token from azure-identity (already a dependency, for the uploader's
blob client) rather than azure-keyvault-certificates: four plain calls (create, poll pending, list/get versions,
PATCH) read clearly, and the deployment environment (Pulumi's .venv) gains no package.
REST reference: https://learn.microsoft.com/rest/api/keyvault/certificates (api-version 7.5).

Lifecycle:
- create: `POST {vault}/certificates/{name}/create` with policy issuer Self, key_props exportable false, kty RSA or
  RSA-HSM (hsm), key_size 2048+, reuse_key false, key usage digitalSignature (the key may sign and verify, nothing
  else), lifetime_actions a single EmailContacts (no AutoRenew: Entra would not know a key Key Vault renewed by
  itself), validity in whole months (config.validity_months); then it waits for the pending operation
  (`GET …/pending`) to complete. Every version carries two tags: the request tag (a digest of the inputs) and an
  owner tag, a nonce fresh for each create (the resource's `owner` output). A create re-run after a crash adopts
  only an operation that was *still in progress* when it started (no resource can yet output the version such an
  operation makes), and only if that version carries the same request tag; it then stamps its own owner nonce on
  it. A completed version is never adopted, so a same-day `pulumi up --replace` (`fleet up --rotate-certificate`,
  the rotate workflow) always makes a new key. The price: a create that dies in the seconds between Key Vault
  finishing and Pulumi recording the result leaves a version no resource outputs; the re-run makes another, and
  that orphan stays enabled (no app credential trusts its certificate, so it cannot sign anyone in) until someone
  disables it (docs/operators-guide.md, "If a renewal `up` fails half-way").
- state (outputs) holds only public values: the versioned key ID, the certificate (PEM), both thumbprints and the
  validity; never a key, never a token.
- diff/renewal: as certificate.py — inside renewBeforeDays of expiry, or when the subject, validity, key type or
  vault changes, the resource is replaced create-before-delete: the new version is made, the app credential
  (identity.py) is replaced create-before-delete and the job moves to the new versioned key ID inside the same
  `up`; at its end Pulumi deletes the replaced resources: the old credential leaves the app, then this resource's
  delete disables the old version (`PATCH …/{version}` attributes.enabled false; the certificate's attributes are
  mirrored to its key, so the old key no longer signs), but only if that version's owner tag is still this
  resource's nonce: a version another (live) resource has claimed is left enabled.
- tokens: for the stack's Azure (https://vault.azure.net or https://vault.usgovcloudapi.net), from the deployer's own
  sign-in, in the stack's Azure-side directory (`azureTenantId`, the resource's input: the vault belongs to the
  subscription's directory, which for a hosted tenant is the hosting stack's, not the Microsoft 365 tenant's; Key
  Vault, like Azure Resource Manager, takes tokens from that directory only:
  https://learn.microsoft.com/azure/key-vault/general/authentication), chosen explicitly: in GitHub Actions
  (ACTIONS_ID_TOKEN_REQUEST_URL set, and ARM_CLIENT_ID)
  azure-identity's ClientAssertionCredential with a callable that fetches a fresh GitHub OIDC token (the cloud's
  audience) for every token request, since those tokens live minutes and an `up` can outlive one; otherwise the az
  CLI sign-in (AzureCliCredential). The deployer holds Key Vault Certificates Officer on the vault (vault.py).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import pulumi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ResourceProvider, UpdateResult

from provisioning.components.certificate import renewal_diff
from provisioning.config import validity_months
from uploader.clouds import KEY_VAULTS

TYPE_TOKEN = "pulumi-python:dynamic/hrconnector:VaultCertificate"  # noqa: S105 - a type token
API_VERSION = "7.5"
REQUEST_TAG = "hr-connector-request"
#: The per-create nonce of the resource whose outputs name this version (its `owner` output); a delete disables a
#: version only while it still carries its own nonce here.
OWNER_TAG = "hr-connector-owner"
KEY_TYPES = ("RSA", "RSA-HSM")  # CertificatePolicy key_props.kty (SPEC 7.4 certificates.json KeyProperties)
KEY_SIZES = (2048, 3072, 4096)
#: Client authentication EKU (RFC 5280 id-kp-clientAuth)
CLIENT_AUTH_EKU = "1.3.6.1.5.5.7.3.2"
PENDING_TIMEOUT = 600.0  # seconds to wait for Key Vault to finish making the certificate
POLL_SECONDS = 2.0
#: GitHub's OIDC token audience per Azure environment: what the federated credential names
#: (https://learn.microsoft.com/entra/workload-id/workload-identity-federation-create-trust; US Government:
#: https://learn.microsoft.com/azure/azure-government/documentation-government-aad-auth-qs).
OIDC_AUDIENCE = {"public": "api://AzureADTokenExchange", "usgovernment": "api://AzureADTokenExchangeUSGov"}
_REPLACE_ON = ("vaultUri", "certificateName", "commonName", "validityDays", "keyType", "keySize")


class VaultCallError(RuntimeError):
    """A data-plane call failed; the message names the call, the status and Key Vault's error code (no token)."""


class VaultCertificates(Protocol):
    """The data-plane operations the provider uses (RestVault; MemoryVault in the offline harness and tests)."""

    def pending(self, name: str) -> dict[str, Any] | None: ...
    def create(self, name: str, body: dict[str, Any]) -> dict[str, Any]: ...
    def versions(self, name: str) -> list[dict[str, Any]]: ...
    def get(self, name: str, version: str = "") -> dict[str, Any]: ...
    def update(self, name: str, version: str, body: dict[str, Any]) -> dict[str, Any] | None: ...


# -- the deployer's token -------------------------------------------------------------------------------------------

def deployer_credential(azure_environment: str, environ: dict[str, str] | None = None,
                        tenant_id: str | None = None) -> Any:
    """azure-identity credential for the deployer in directory `tenant_id` (the stack's Azure side; None: the
    environment's ARM_TENANT_ID, for a state written before the resource had its own): GitHub OIDC (fresh token per
    request) in a workflow, else az CLI."""
    from azure.identity import AzureAuthorityHosts, AzureCliCredential, ClientAssertionCredential

    env = dict(os.environ if environ is None else environ)
    authority = (AzureAuthorityHosts.AZURE_GOVERNMENT if azure_environment == "usgovernment"
                 else AzureAuthorityHosts.AZURE_PUBLIC_CLOUD)
    request_url, request_token = env.get("ACTIONS_ID_TOKEN_REQUEST_URL"), env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    client_id = env.get("ARM_CLIENT_ID") or env.get("AZURE_CLIENT_ID")
    tenant_id = tenant_id or env.get("ARM_TENANT_ID") or env.get("AZURE_TENANT_ID")
    if request_url and request_token and client_id and tenant_id:
        audience = env.get("ARM_OIDC_AUDIENCE") or OIDC_AUDIENCE[azure_environment]
        return ClientAssertionCredential(tenant_id, client_id, github_oidc_token(request_url, request_token, audience),
                                         authority=authority)
    return AzureCliCredential(tenant_id=tenant_id) if tenant_id else AzureCliCredential()


def github_oidc_token(request_url: str, request_token: str, audience: str) -> Callable[[], str]:
    """A callable that asks GitHub for a fresh OIDC token with `audience` every time it is called
    (https://docs.github.com/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect)."""
    import requests

    def fetch() -> str:
        separator = "&" if "?" in request_url else "?"
        response = requests.get(f"{request_url}{separator}audience={quote(audience, safe='')}",
                                headers={"Authorization": f"bearer {request_token}"}, timeout=30)
        if response.status_code != 200:
            raise VaultCallError(f"GitHub refused an OIDC token (HTTP {response.status_code})")
        return str(response.json()["value"])

    return fetch


# -- the REST client ---------------------------------------------------------------------------------------------

def check_vault_uri(vault_uri: str, azure_environment: str) -> str:
    """The vault's base URL; refused unless https in the stack's Key Vault domain (the token goes nowhere else)."""
    parts = urlsplit(vault_uri)
    host = (parts.hostname or "").lower()
    domain = KEY_VAULTS[azure_environment].vault_domain
    if parts.scheme != "https" or not host.endswith("." + domain):
        raise VaultCallError(f"vault URI {vault_uri!r} is not https://NAME.{domain}/")
    return f"https://{host}"


class RestVault:
    """Key Vault certificates over REST (api-version 7.5), with the deployer's token."""

    def __init__(self, vault_uri: str, azure_environment: str, credential: Any = None,
                 session: Any = None, tenant_id: str | None = None) -> None:
        import requests

        self.base = check_vault_uri(vault_uri, azure_environment)
        self.scope = KEY_VAULTS[azure_environment].vault_resource + "/.default"
        self.credential = credential or deployer_credential(azure_environment, tenant_id=tenant_id)
        self.session = session or requests.Session()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              missing_ok: bool = False) -> dict[str, Any] | None:
        token = self.credential.get_token(self.scope).token
        url = path if path.startswith("https://") else f"{self.base}{path}"
        params = None if "api-version=" in url else {"api-version": API_VERSION}
        response = self.session.request(method, url, params=params, json=body, timeout=60, allow_redirects=False,
                                        headers={"Authorization": f"Bearer {token}"})
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code not in (200, 201, 202):
            try:
                error = response.json().get("error") or {}
            except ValueError:
                error = {}
            code = str(error.get("code", ""))[:64]
            message = str(error.get("message", "")).splitlines()[0][:300] if error.get("message") else ""
            hint = (" (the deploying identity needs Key Vault Certificates Officer on this vault; the program "
                    "assigns it and waits for it, so allow up to 10 minutes after a first grant)"
                    if response.status_code == 403 else "")
            raise VaultCallError(f"Key Vault {method} {urlsplit(url).path}: HTTP {response.status_code} {code}: "
                                 f"{message}{hint}")
        return dict(response.json()) if response.content else {}

    def pending(self, name: str) -> dict[str, Any] | None:
        return self._call("GET", f"/certificates/{name}/pending", missing_ok=True)

    def create(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"/certificates/{name}/create", body) or {}

    def versions(self, name: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = self._call("GET", f"/certificates/{name}/versions", missing_ok=True)
        while page:
            out += list(page.get("value") or [])
            link = page.get("nextLink")
            page = self._call("GET", link) if isinstance(link, str) and link.startswith(self.base + "/") else None
        return out

    def get(self, name: str, version: str = "") -> dict[str, Any]:
        return self._call("GET", f"/certificates/{name}/{version}".rstrip("/")) or {}

    def update(self, name: str, version: str, body: dict[str, Any]) -> dict[str, Any] | None:
        return self._call("PATCH", f"/certificates/{name}/{version}", body, missing_ok=True)


# -- the policy and the bundle ------------------------------------------------------------------------------------

def request_tag(props: dict[str, Any]) -> str:
    """Same inputs -> the same tag: a re-run after a crash adopts an in-progress operation only if its version
    carries this tag (an operation someone started with other inputs is not ours)."""
    keys = ("vaultUri", "certificateName", "commonName", "validityDays", "keyType", "keySize")
    text = json.dumps({k: props.get(k) for k in keys}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def version_tags(tag: str, owner: str) -> dict[str, str]:
    """A version's tags: the request's digest, the owning create's nonce, and who manages it."""
    return {REQUEST_TAG: tag, OWNER_TAG: owner, "managed-by": "hr-connector"}


def create_body(props: dict[str, Any], tag: str, owner: str) -> dict[str, Any]:
    """CertificateCreateParameters (SPEC 7.4 certificates.json; example CreateCertificate-example.json)."""
    months = validity_months(int(props["validityDays"]))
    return {
        "policy": {
            "key_props": {"exportable": False, "kty": props["keyType"], "key_size": int(props["keySize"]),
                          "reuse_key": False},
            "secret_props": {"contentType": "application/x-pem-file"},
            "x509_props": {"subject": f"CN={props['commonName']}", "validity_months": months,
                           # digitalSignature maps to the key operations sign and verify only
                           # (https://learn.microsoft.com/azure/key-vault/certificates/about-certificates)
                           "key_usage": ["digitalSignature"], "ekus": [CLIENT_AUTH_EKU]},
            # EmailContacts only: Key Vault must not renew by itself (Entra would not know the new key).
            "lifetime_actions": [{"trigger": {"lifetime_percentage": 80}, "action": {"action_type": "EmailContacts"}}],
            "issuer": {"name": "Self"},
        },
        "attributes": {"enabled": True},
        "tags": version_tags(tag, owner),
    }


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def public_outputs(bundle: dict[str, Any]) -> dict[str, Any]:
    """What state keeps of a completed certificate version: public values only."""
    kid, cid = str(bundle.get("kid") or ""), str(bundle.get("id") or "")
    version = cid.rstrip("/").rsplit("/", 1)[-1]
    if "/keys/" not in kid or not kid.rstrip("/").endswith("/" + version):
        raise VaultCallError("Key Vault returned a certificate without its versioned key ID")
    exportable = (((bundle.get("policy") or {}).get("key_props") or {}).get("exportable"))
    if exportable is True:
        raise VaultCallError("the vault certificate's policy says its key is exportable; refusing to use it")
    cert = x509.load_der_x509_certificate(base64.b64decode(str(bundle["cer"])))
    return {
        "keyId": kid.split("?", 1)[0],
        "certificateId": cid.split("?", 1)[0],
        "version": version,
        "certificatePem": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "thumbprintSha1": cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - Entra's thumbprint
        "thumbprintSha256": cert.fingerprint(hashes.SHA256()).hex().upper(),
        "notBefore": _iso(cert.not_valid_before_utc),
        "notAfter": _iso(cert.not_valid_after_utc),
    }


# -- the provider -------------------------------------------------------------------------------------------------

class VaultCertificateProvider(ResourceProvider):
    """CRUD for a Key Vault-made certificate; `client`, `now` and `sleep` are injectable for tests."""

    # It captures no secret (no key, no token: tokens are fetched when a method runs), so its outputs are public
    # values and stay readable in state and previews.
    serialize_as_secret_always = False

    def __init__(self, client: Callable[[dict[str, Any]], VaultCertificates] | None = None,
                 now: Callable[[], dt.datetime] | None = None, sleep: Callable[[float], None] | None = None) -> None:
        super().__init__()
        self._client = client
        self._now = now
        self._sleep = sleep

    def _clock(self) -> dt.datetime:
        return (self._now or (lambda: dt.datetime.now(dt.UTC)))()

    def _vault(self, props: dict[str, Any]) -> VaultCertificates:
        if self._client is not None:
            return self._client(props)
        return RestVault(str(props["vaultUri"]), str(props["azureEnvironment"]),
                         tenant_id=str(props.get("azureTenantId") or "") or None)

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        if not isinstance(news.get("commonName"), str) or not news["commonName"]:
            failures.append(CheckFailure("commonName", "must be a non-empty string"))
        validity, renew = news.get("validityDays"), news.get("renewBeforeDays")
        if not isinstance(validity, int | float) or validity_months(int(validity)) is None:
            failures.append(CheckFailure("validityDays", "Key Vault counts validity in whole months: a number of "
                                         "days within 3 of a whole number of months (e.g. 365 = 12 months)"))
        elif not isinstance(renew, int | float) or not 1 <= renew < validity:
            failures.append(CheckFailure("renewBeforeDays", "must be at least 1 and less than validityDays"))
        if news.get("keyType") not in KEY_TYPES:
            failures.append(CheckFailure("keyType", f"must be one of {', '.join(KEY_TYPES)}"))
        if news.get("keySize") not in KEY_SIZES:
            failures.append(CheckFailure("keySize", "must be 2048, 3072 or 4096"))
        if news.get("azureEnvironment") not in KEY_VAULTS:
            failures.append(CheckFailure("azureEnvironment", f"must be one of {', '.join(KEY_VAULTS)}"))
        return CheckResult(news, failures)

    def _wait_pending(self, vault: VaultCertificates, name: str) -> dict[str, Any] | None:
        """Poll the pending operation until it is no longer in progress; its last state (None: none exists)."""
        deadline = time.monotonic() + PENDING_TIMEOUT
        while True:
            operation = vault.pending(name)
            if operation is None or str(operation.get("status", "")).lower() != "inprogress":
                return operation
            if time.monotonic() > deadline:
                raise VaultCallError(f"Key Vault did not finish certificate {name} within {PENDING_TIMEOUT:.0f} s")
            (self._sleep or time.sleep)(POLL_SECONDS)

    def _version_of(self, vault: VaultCertificates, name: str, version_ids: set[str], tag: str) -> str | None:
        """The newest enabled version among `version_ids` with this request's tag (the version an operation made)."""
        for item in sorted(vault.versions(name), key=lambda i: (i.get("attributes") or {}).get("created") or 0,
                           reverse=True):
            version = str(item.get("id", "")).rstrip("/").rsplit("/", 1)[-1]
            if (version in version_ids and (item.get("tags") or {}).get(REQUEST_TAG) == tag
                    and (item.get("attributes") or {}).get("enabled")):
                return version
        return None

    def _version_ids(self, vault: VaultCertificates, name: str) -> set[str]:
        return {str(item.get("id", "")).rstrip("/").rsplit("/", 1)[-1] for item in vault.versions(name)}

    def create(self, props: dict[str, Any]) -> CreateResult:
        vault, name = self._vault(props), str(props["certificateName"])
        tag, owner = request_tag(props), uuid.uuid4().hex  # owner: this create's nonce, fresh every time
        before = self._version_ids(vault, name)
        # Adopt only an operation still in progress now: a create whose process died before Pulumi recorded it
        # (no resource's outputs can name a version that did not exist yet). A completed version, however recent and
        # whatever its tags, belongs to a live resource or to nobody: a replacement never takes it over.
        running = vault.pending(name)
        adopted: str | None = None
        if running is not None and str(running.get("status", "")).lower() == "inprogress":
            self._wait_pending(vault, name)
            adopted = self._version_of(vault, name, self._version_ids(vault, name) - before, tag)
            if adopted is not None:  # claim it: from now on this resource's delete is the one that may disable it
                vault.update(name, adopted, {"tags": version_tags(tag, owner)})
        if adopted is None:
            before = self._version_ids(vault, name)
            vault.create(name, create_body(props, tag, owner))
            operation = self._wait_pending(vault, name) or {}
            status = str(operation.get("status", "")).lower()
            if status and status != "completed":
                error = operation.get("error") or {}
                raise VaultCallError(f"Key Vault could not make certificate {name}: {status} "
                                     f"{str(error.get('code', ''))[:64]} {str(error.get('message', ''))[:300]}")
            adopted = self._version_of(vault, name, self._version_ids(vault, name) - before, tag)
            if adopted is None:
                raise VaultCallError(f"Key Vault finished certificate {name} but no new enabled version carries this "
                                     f"request's tag ({REQUEST_TAG})")
        outs = public_outputs(vault.get(name, adopted))
        keep = {k: props[k] for k in ("vaultUri", "certificateName", "commonName", "validityDays", "renewBeforeDays",
                                      "keyType", "keySize", "azureEnvironment")}
        if props.get("azureTenantId"):
            keep["azureTenantId"] = props["azureTenantId"]
        return CreateResult(id_=outs["certificateId"], outs={**keep, **outs, "requestTag": tag, "owner": owner})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        result = renewal_diff(olds, news, _REPLACE_ON, self._clock())
        if not result.changes and olds.get("azureTenantId") != news.get("azureTenantId"):
            # where the deployer's token comes from, not the certificate: an update (so delete later finds it)
            return DiffResult(changes=True, replaces=[], stables=[], delete_before_replace=False)
        return result

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs={**olds, "renewBeforeDays": int(news["renewBeforeDays"]),
                                  "azureTenantId": news.get("azureTenantId")})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """After the old credential has left the app: disable this version (its key stops signing), but only while
        its owner tag is still this resource's nonce. A version another, live, resource has claimed is left enabled:
        a version a live resource outputs is never disabled. (State from before the owner tag has no `owner`, and
        its versions no owner tag: they match, and are disabled as before.)"""
        vault, name, version = self._vault(props), str(props["certificateName"]), str(props["version"])
        listed = [item for item in vault.versions(name)
                  if str(item.get("id", "")).rstrip("/").rsplit("/", 1)[-1] == version]
        if not listed or (listed[0].get("tags") or {}).get(OWNER_TAG) != props.get("owner"):
            return  # gone already (nothing to disable), or claimed by the resource that replaced this one
        vault.update(name, version, {"attributes": {"enabled": False}})


class VaultCertificate(pulumi.dynamic.Resource, module="hrconnector", name="VaultCertificate"):
    """A certificate Key Vault made, its key not exportable; outputs as in VaultCertificateProvider.create."""

    keyId: pulumi.Output[str]  # noqa: N815 - output names are the provider's property names
    certificatePem: pulumi.Output[str]  # noqa: N815
    thumbprintSha1: pulumi.Output[str]  # noqa: N815
    thumbprintSha256: pulumi.Output[str]  # noqa: N815
    notBefore: pulumi.Output[str]  # noqa: N815
    notAfter: pulumi.Output[str]  # noqa: N815

    def __init__(self, name: str, *, vault_uri: pulumi.Input[str], certificate_name: str, common_name: str,
                 validity_days: int, renew_before_days: int, key_type: str, azure_environment: str,
                 key_size: int = 2048, azure_tenant_id: pulumi.Input[str] | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props = {
            "vaultUri": vault_uri, "certificateName": certificate_name, "commonName": common_name,
            "validityDays": validity_days, "renewBeforeDays": renew_before_days, "keyType": key_type,
            "keySize": key_size, "azureEnvironment": azure_environment,
            "azureTenantId": azure_tenant_id,  # the Azure side's directory: where the deployer's token comes from
            **{k: None for k in ("keyId", "certificateId", "version", "certificatePem", "thumbprintSha1",
                                 "thumbprintSha256", "notBefore", "notAfter", "requestTag", "owner")},
        }
        options = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(delete_before_replace=False))
        super().__init__(VaultCertificateProvider(), name, props, options)


# -- the stand-in: Key Vault's certificate operations in memory (offline harness, tests) --------------------------

class MemoryVault:
    """Key Vault's certificate operations in memory: makes keys it never returns, completes pending operations
    after `polls` looks, keeps tags and attributes per version. Shared per vault URI within a process."""

    _vaults: dict[str, MemoryVault] = {}

    def __init__(self, vault_uri: str = "https://sandbox.vault.azure.net/", polls: int = 1) -> None:
        self.base = vault_uri.rstrip("/")
        self.polls = polls
        self.certs: dict[str, list[dict[str, Any]]] = {}
        self._keys: dict[str, rsa.RSAPrivateKey] = {}  # never leaves this object
        self._pending: dict[str, dict[str, Any]] = {}
        self.creates = 0

    @classmethod
    def for_props(cls, props: dict[str, Any]) -> MemoryVault:
        uri = str(props.get("vaultUri") or "https://sandbox.vault.azure.net/")
        return cls._vaults.setdefault(uri, cls(uri))

    def pending(self, name: str) -> dict[str, Any] | None:
        op = self._pending.get(name)
        if op is None:
            return None
        if op["status"] == "inProgress":
            op["_looks"] += 1
            if op["_looks"] >= self.polls:
                self._complete(name, op)
        return {k: v for k, v in op.items() if not k.startswith("_")}

    def create(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if (self._pending.get(name) or {}).get("status") == "inProgress":
            raise VaultCallError("HTTP 409: a pending certificate is in progress")
        self.creates += 1
        op = {"id": f"{self.base}/certificates/{name}/pending", "status": "inProgress", "_body": body, "_looks": 0,
              "request_id": uuid.uuid4().hex}
        self._pending[name] = op
        return {k: v for k, v in op.items() if not k.startswith("_")}

    def _complete(self, name: str, op: dict[str, Any]) -> None:
        body = op["_body"]
        policy = body["policy"]
        size = int(policy["key_props"]["key_size"])
        key = rsa.generate_private_key(public_exponent=65537, key_size=size)
        now = dt.datetime.now(dt.UTC)
        months = int(policy["x509_props"]["validity_months"])
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                policy["x509_props"]["subject"].removeprefix("CN="))])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now)
                .not_valid_after(now + dt.timedelta(days=round(months * 365.25 / 12)))
                .sign(key, hashes.SHA256()))
        version = uuid.uuid4().hex
        self._keys[f"{name}/{version}"] = key
        self.certs.setdefault(name, []).append({
            "id": f"{self.base}/certificates/{name}/{version}", "kid": f"{self.base}/keys/{name}/{version}",
            "sid": f"{self.base}/secrets/{name}/{version}",
            "cer": base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode(),
            "attributes": {**body.get("attributes", {}), "enabled": True,
                           "created": int(time.time() * 1000) + len(self._keys)},  # ordered, unlike Key Vault's s
            "tags": dict(body.get("tags") or {}), "policy": policy,
        })
        op.update(status="completed", target=f"{self.base}/certificates/{name}")

    def versions(self, name: str) -> list[dict[str, Any]]:
        return [{k: v[k] for k in ("id", "attributes", "tags")} for v in self.certs.get(name, [])]

    def get(self, name: str, version: str = "") -> dict[str, Any]:
        versions = self.certs.get(name) or []
        found = [v for v in versions if v["id"].endswith("/" + version)] if version else versions[-1:]
        if not found:
            raise VaultCallError(f"HTTP 404: certificate {name}/{version} not found")
        return dict(json.loads(json.dumps(found[0])))  # a copy, as a fresh HTTP answer would be

    def update(self, name: str, version: str, body: dict[str, Any]) -> dict[str, Any] | None:
        for v in self.certs.get(name, []):
            if v["id"].endswith("/" + version):
                v["attributes"].update(body.get("attributes") or {})
                if "tags" in body:  # UpdateCertificate's tags replace the version's tags
                    v["tags"] = dict(body["tags"])
                return dict(json.loads(json.dumps(v)))
        return None

    def can_sign(self, name: str, version: str) -> bool:
        """What Key Vault's sign would allow: the version exists and is enabled (attributes mirror to the key)."""
        return any(v["id"].endswith("/" + version) and v["attributes"].get("enabled") for v in self.certs.get(name, []))


def mock_create(inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The provider's create against the in-memory stand-in (used by the offline harness)."""
    props = {k: v for k, v in inputs.items() if not k.startswith("__")}
    result = VaultCertificateProvider(client=MemoryVault.for_props, sleep=lambda _s: None).create(props)
    return result.id, {**props, **(result.outs or {})}
