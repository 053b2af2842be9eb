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
from uploader.model.mapping import GUID_RE
from uploader.model.safetext import safe_text
from uploader.send.https import AnswerRefused, BoundedSession, CaBundleMissing, RedirectRefused, describe

if TYPE_CHECKING:
    from uploader.send.federated import FederatedAssertion
    from uploader.send.keyvault import VaultAssertion

TOKEN_TIMEOUT = 30.0  # seconds per request to the authority (the whole answer, read within this)
#: A tenant is named by its ID (a GUID) or one of its domain names (contoso.onmicrosoft.com): the two forms an
#: authority URL takes (https://learn.microsoft.com/entra/identity-platform/msal-client-application-configuration#authority).
TENANT_DOMAIN_RE = re.compile(r"(?=.{1,253}\Z)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\Z")


def check_ids(tenant_id: str, app_id: str) -> None:
    """The tenant and app IDs that go into the authority URL and the assertion: a GUID (or, for the tenant, a
    domain name); UsageError naming the flag otherwise, never repeating the value (it may be a pasted key)."""
    if not (GUID_RE.match(tenant_id) or TENANT_DOMAIN_RE.match(tenant_id)):
        raise UsageError("--tenant-id: must be the tenant's ID (a GUID) or its domain name "
                         "(contoso.onmicrosoft.com); the value given is not shown")
    if not GUID_RE.match(app_id):
        raise UsageError("--app-id: must be the app registration's application (client) ID, a GUID; the value "
                         "given is not shown")
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
    return safe_text(text[0]) if text else type(exc).__name__


class TokenProvider:
    """Access tokens for the ingestion API, for one app registration signed in with a certificate."""

    def __init__(self, cloud: Cloud, tenant_id: str, app_id: str, pem_text: str | None,
                 *, source: str = "certificate", timeout: float = TOKEN_TIMEOUT,
                 http_client: requests.Session | None = None,
                 assertion: VaultAssertion | FederatedAssertion | None = None) -> None:
        # `assertion` (--key-id): Key Vault signs the client assertion and MSAL calls it for each real token
        # request; `bundle` is then the public certificate alone. (--credential federated): the managed identity's
        # token is the assertion; there is no certificate at all (`bundle` None). Otherwise the PEM bundle's key
        # signs in MSAL.
        check_ids(tenant_id, app_id)
        self.bundle: CertificateBundle | PublicCertificate | None
        self._credential: dict[str, Any]
        from uploader.send.federated import FederatedAssertion

        self.federated = isinstance(assertion, FederatedAssertion)
        if assertion is not None:
            self.bundle = None if isinstance(assertion, FederatedAssertion) else assertion.certificate
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
        # never follows a redirect, so the signed client assertion only ever goes to the authority configured,
        # and reads each answer within a size cap and `timeout` seconds in all.
        self.http_client = http_client or BoundedSession(timeout=timeout, retries=1, deadline=timeout)
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
            except UploaderError:  # the program's own (a Key Vault assertion's failure): already told
                raise
            except (RedirectRefused, AnswerRefused, CaBundleMissing, requests.RequestException) as exc:
                raise self._transport_error(exc) from None
            except msal.exceptions.MsalServiceError as exc:
                raise self._service_error(exc) from None
            except ValueError as exc:  # MSAL raises ValueError for both a bad authority and a refused credential
                raise self._constructor_error(exc) from None
            except Exception as exc:  # noqa: BLE001 - the edge: MSAL's other failures on a strange answer
                raise self._unusable_answer(exc) from None
        return self._app

    def _transport_error(self, exc: BaseException) -> SignInError:
        if isinstance(exc, RedirectRefused):
            return self._redirect_error(exc)
        return SignInError(f"could not reach the sign-in authority {self._host()}: {describe(exc)}"
                           f"{_trust_hint(exc)}")

    def _service_error(self, exc: BaseException) -> SignInError:
        """MSAL's MsalServiceError: the authority answered 5xx (discovery or token); its text is not shown."""
        found = re.search(r"HTTP Error: (\d{3})", str(exc))
        status = f"HTTP {found.group(1)}" if found else "an error"
        return SignInError(f"the sign-in authority {self._host()} answered {status} (a failure on its side; "
                           "its answer is not shown); try again later")

    def _unusable_answer(self, exc: BaseException) -> SignInError:
        return SignInError(f"sign-in at {self._host()} failed: the authority's answer could not be used "
                           f"({type(exc).__name__}; the answer is not shown)")

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
        try:
            host = urlsplit(self.cloud.authority_host).netloc or self.cloud.authority_host
        except ValueError:
            host = self.cloud.authority_host
        return safe_text(host)

    def invalidate(self) -> None:
        """Forget the cached token (the service refused it); the next token() signs in again."""
        self._app = None

    def token(self) -> str:
        """An access token; MSAL's cache answers every call after the first until it nears expiry."""
        app = self._client()
        try:
            result = app.acquire_token_for_client(scopes=[self.cloud.scope])
        except UploaderError:  # the program's own (a Key Vault assertion's failure): already told
            raise
        except (RedirectRefused, AnswerRefused, CaBundleMissing, requests.RequestException) as exc:
            raise self._transport_error(exc) from None
        except msal.exceptions.MsalServiceError as exc:
            raise self._service_error(exc) from None
        except ValueError:  # MSAL's json.loads of a token answer that is not JSON (it may echo the assertion)
            raise SignInError(f"sign-in at {self._host()} failed: the token endpoint's answer is not JSON (it is "
                              "not shown: it may repeat the request, the signed client assertion included)") from None
        except Exception as exc:  # noqa: BLE001 - the edge: MSAL's other failures on a strange answer
            raise self._unusable_answer(exc) from None
        if not isinstance(result, dict):
            raise SignInError(f"sign-in at {self._host()} gave no answer")
        token = result.get("access_token")
        if token:
            return str(token)
        fix = ""
        if self.federated:
            from uploader.send.federated import federated_hint

            hint = federated_hint(result.get("error_description"), self.cloud, self.tenant_id)
            fix = f"; fix: {hint}" if hint else ""
        raise SignInError(
            f"sign-in refused by {self._host()} for app {self.app_id} in tenant {safe_text(self.tenant_id)}: "
            f"{entra_message(result.get('error'), result.get('error_description'))}{fix}"
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
