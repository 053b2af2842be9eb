"""Certificate sign-in through MSAL: one confidential client per run, one token per run from its cache.

The PEM bundle's private key and certificate go to MSAL as `private_key` + `public_certificate`, so
MSAL computes the SHA-256 thumbprint itself and signs the client assertion with PS256 and an
`x5t#S256` header. That needs MSAL >= 1.35 (thumbprint optional, msal PR #835); 1.34 and older refuse the
credential in the constructor with a ValueError, reported here as a credential problem (exit 2), not as an
unknown authority. With an overridden authority host, instance discovery is off, so
sign-in only ever talks to that host (private endpoints, proxies, the loopback sandbox).
Entra's refusals (AADSTS…) become SignInError with Entra's own description: fatal, never retried.
The token itself is never logged or put in an error.
"""

from __future__ import annotations

import re
import traceback
from pathlib import PurePath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msal
import requests

from uploader.clouds import CLOUDS, Cloud
from uploader.errors import TLS_TRUST_HINT, SignInError, UploaderError, UsageError, is_tls_trust_failure
from uploader.model.certs import CertificateBundle, CertificateError, PublicCertificate, load_bundle
from uploader.send.https import NoRedirectSession, RedirectRefused

if TYPE_CHECKING:
    from uploader.send.keyvault import VaultAssertion

TOKEN_TIMEOUT = 30.0  # seconds per request to the authority
# First MSAL computing the thumbprint from public_certificate (1.35.0 release notes, "Thumbprint for certificate
# made optional"): https://github.com/AzureAD/microsoft-authentication-library-for-python/pull/835
MIN_MSAL = "1.35"


def msal_stage(exc: BaseException) -> str:
    """Where in MSAL's constructor a ValueError arose: 'authority' (metadata discovery) or 'credential'.

    MSAL raises plain ValueError for both, so the traceback tells them apart: authority validation and
    OpenID discovery live in msal/authority.py; the client credential is parsed after it, elsewhere.
    """
    for frame in traceback.extract_tb(exc.__traceback__):
        path = PurePath(frame.filename)
        if path.name == "authority.py" and path.parent.name == "msal":
            return "authority"
    return "credential"


def _trust_hint(exc: BaseException) -> str:
    return f"; {TLS_TRUST_HINT}" if is_tls_trust_failure(exc) else ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


class TokenProvider:
    """Access tokens for the ingestion API, for one app registration signed in with a certificate."""

    def __init__(self, cloud: Cloud, tenant_id: str, app_id: str, pem_text: str | None,
                 *, source: str = "certificate", timeout: float = TOKEN_TIMEOUT,
                 http_client: requests.Session | None = None, assertion: VaultAssertion | None = None) -> None:
        # `assertion` (--key-id): Key Vault signs the client assertion and MSAL calls it for each real token
        # request; `bundle` is then the public certificate alone. Otherwise the PEM bundle's key signs in MSAL.
        self.bundle: CertificateBundle | PublicCertificate
        self._credential: dict[str, Any]
        if assertion is not None:
            self.bundle = assertion.certificate
            self._credential = {"client_assertion": assertion}
        else:
            try:
                self.bundle = load_bundle(pem_text or "", source=source)
            except CertificateError as exc:
                raise UsageError(str(exc)) from None
            self._credential = {"private_key": self.bundle.pem.split("-----BEGIN CERTIFICATE-----", 1)[0],
                                "public_certificate": self.bundle.certificate_pem}
        self.cloud = cloud
        self.tenant_id = tenant_id
        self.app_id = app_id
        self.authority = cloud.authority(tenant_id)
        self.timeout = timeout
        self.source = source
        # Default: a session like MSAL's own (verifies TLS, honours the env CA, one connection retry) that
        # never follows a redirect, so the signed client assertion only ever goes to the authority configured.
        self.http_client = http_client or NoRedirectSession(timeout=timeout, retries=1)
        self._app: msal.ConfidentialClientApplication | None = None

    @property
    def host_overridden(self) -> bool:
        """True when the authority host is not the cloud table's own (then: no instance discovery)."""
        known = CLOUDS.get(self.cloud.name)
        return known is None or known.authority_host.rstrip("/") != self.cloud.authority_host.rstrip("/")

    def _client(self) -> msal.ConfidentialClientApplication:
        # Built on first use: MSAL fetches the authority's metadata in its constructor.
        if self._app is None:
            kwargs: dict[str, object] = {"instance_discovery": False} if self.host_overridden else {}
            kwargs["http_client"] = self.http_client
            try:
                self._app = msal.ConfidentialClientApplication(
                    self.app_id,
                    authority=self.authority,
                    client_credential=self._credential,
                    timeout=self.timeout,
                    **kwargs,
                )
            except RedirectRefused as exc:
                raise self._redirect_error(exc) from None
            except requests.RequestException as exc:
                raise SignInError(f"could not reach the sign-in authority {self._host()}: "
                                  f"{type(exc).__name__}{_trust_hint(exc)}") from None
            except ValueError as exc:  # MSAL raises ValueError for both a bad authority and a refused credential
                raise self._constructor_error(exc) from None
        return self._app

    def _constructor_error(self, exc: ValueError) -> UploaderError:
        """Name the real cause of MSAL's ValueError: the authority's metadata, or the certificate credential."""
        if msal_stage(exc) == "authority":
            return SignInError(
                f"sign-in authority {self.authority}: its OpenID metadata could not be read (wrong --cloud or "
                f"--authority-host, or tenant {self.tenant_id} does not exist there): {_first_line(exc)}")
        return UsageError(
            f"{self.source}: MSAL {msal.__version__} refused the certificate credential: {_first_line(exc)} "
            f"(this uploader needs msal>={MIN_MSAL}, which computes the thumbprint from the certificate)")

    def _redirect_error(self, exc: RedirectRefused) -> SignInError:
        return SignInError(f"the sign-in authority {self._host()} answered HTTP {exc.status} (a redirect); "
                           "redirects are never followed, so nothing was sent elsewhere (check --authority-host)")

    def _host(self) -> str:
        return urlsplit(self.cloud.authority_host).netloc or self.cloud.authority_host

    def invalidate(self) -> None:
        """Forget the cached token (the service refused it); the next token() signs in again."""
        self._app = None

    def token(self) -> str:
        """An access token; MSAL's cache answers every call after the first until it nears expiry."""
        app = self._client()
        try:
            result = app.acquire_token_for_client(scopes=[self.cloud.scope])
        except RedirectRefused as exc:
            raise self._redirect_error(exc) from None
        except requests.RequestException as exc:
            raise SignInError(f"could not reach the sign-in authority {self._host()}: "
                              f"{type(exc).__name__}{_trust_hint(exc)}") from None
        if not isinstance(result, dict):
            raise SignInError(f"sign-in at {self._host()} gave no answer")
        token = result.get("access_token")
        if token:
            return str(token)
        raise SignInError(
            f"sign-in refused by {self._host()} for app {self.app_id} in tenant {self.tenant_id}: "
            f"{entra_message(result.get('error'), result.get('error_description'))}"
        )


_ERROR_CODE = re.compile(r"[a-z_]{1,64}")
_AADSTS = re.compile(r"\s*(AADSTS\d{1,9}):\s*(.*?)(?:\s+Trace ID:.*)?\Z", re.DOTALL)
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9_\-+/=.]{40,}")
MESSAGE_LIMIT = 300


def entra_message(error: object, description: object) -> str:
    """Entra's refusal, cleaned: its OAuth error code and its AADSTS message (Trace ID onwards cut), with
    anything token-like removed and the length bounded; an answer that is not Entra's shape is not repeated
    (an authority that reflects the request would otherwise print the signed client assertion)."""
    code = error if isinstance(error, str) and _ERROR_CODE.fullmatch(error) else "error"
    found = _AADSTS.match(description) if isinstance(description, str) else None
    if found is None:
        return f"{code} (the authority's description is not an AADSTS message, so it is not shown)"

    def redact(m: re.Match[str]) -> str:  # thumbprints (hex) stay: they tell which certificate was used
        return m.group(0) if re.fullmatch(r"[0-9A-Fa-f]+", m.group(0)) else "[redacted]"

    text = " ".join(_TOKEN_LIKE.sub(redact, found.group(2)).split())
    if len(text) > MESSAGE_LIMIT:
        text = text[:MESSAGE_LIMIT] + "…"
    return f"{code}: {found.group(1)}: {text}"
