"""Entra ID stand-in: OpenID configuration and the v2.0 token endpoint for client credentials.

Certificate credentials: the client assertion JWT must be signed by a certificate registered on the app (matched by
its `x5t#S256` or `x5t` thumbprint), addressed to this token endpoint, issued by and about the client, and unexpired.
Federated credentials: an assertion issued by someone else (its `iss` is not the client) must be a managed identity
token this sandbox's Entra signed (vault.py), unexpired, and match one of the app's federated identity credentials on
issuer, subject and audience; else AADSTS70021 (the app has none), 700211 (issuer), 700213 (subject), 700212
(audience), as Entra answers. Refusals carry real AADSTS codes and texts
in Entra's error JSON, which MSAL hands to the caller unchanged.
Sources: error JSON and codes, https://learn.microsoft.com/entra/identity-platform/reference-error-codes;
the client assertion's claims and x5t#S256 header, https://learn.microsoft.com/entra/identity-platform/certificate-credentials
"""

from __future__ import annotations

import base64
import datetime as dt
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from uploader.sandbox.messages import Request, Response, Stream, fault_response, json_response
from uploader.sandbox.state import App, SandboxState

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ["PS256", "RS256"]
CLOCK_SKEW = 300  # seconds Entra tolerates on nbf/iat
CERT_DOC = "https://learn.microsoft.com/entra/identity-platform/certificate-credentials"


def openid_configuration(req: Request, tenant: str, state: SandboxState | None = None) -> Response | Stream:
    """What MSAL reads from {authority}/v2.0/.well-known/openid-configuration (or a queued discovery fault)."""
    fault = state.next_fault(None, target="discovery") if state is not None else None
    if fault is not None:
        return fault_response(fault, req)
    base = f"{req.base_url}/{tenant}"
    return json_response(200, {
        "issuer": f"{base}/v2.0",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "jwks_uri": f"{req.base_url}/{tenant}/discovery/v2.0/keys",
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "tenant_region_scope": "WW",
        "cloud_instance_name": "sandbox.invalid",
    })


def aad_error(req: Request, status: int, error: str, code: int, text: str) -> Response:
    """Entra's error JSON: error, error_description (AADSTS code, text, trace/correlation IDs, time)."""
    now = dt.datetime.now(dt.UTC)
    timestamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    trace_id = str(uuid.uuid4())
    correlation_id = req.header("client-request-id") or str(uuid.uuid4())
    description = (f"AADSTS{code}: {text} Trace ID: {trace_id} Correlation ID: {correlation_id} "
                   f"Timestamp: {now.strftime('%Y-%m-%d %H:%M:%S')}Z")
    return json_response(status, {
        "error": error,
        "error_description": description,
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"{req.base_url}/error?code={code}",
    }, note=f"AADSTS{code}")


def _decode_thumbprint(value: object) -> bytes | None:
    """A base64url thumbprint from a JWT header as bytes (padded, as MSAL sends it, or unpadded)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.urlsafe_b64decode(value.rstrip("=") + "=" * (-len(value.rstrip("=")) % 4))
    except ValueError:
        return None


def _matching_certificate(header: dict[str, Any], certificates: list[x509.Certificate]) -> x509.Certificate | None:
    """The registered certificate named by the assertion's x5t#S256 (SHA-256) or x5t (SHA-1) header."""
    s256, s1 = _decode_thumbprint(header.get("x5t#S256")), _decode_thumbprint(header.get("x5t"))
    for cert in certificates:
        if s256 and s256 == cert.fingerprint(hashes.SHA256()):
            return cert
        if s1 and s1 == cert.fingerprint(hashes.SHA1()):  # noqa: S303 - x5t is SHA-1 by definition
            return cert
    return None


def _client_thumbprint(header: dict[str, Any]) -> str:
    """The thumbprint the client presented, as upper-case hex (what Entra quotes in AADSTS700027)."""
    raw = _decode_thumbprint(header.get("x5t#S256")) or _decode_thumbprint(header.get("x5t"))
    return raw.hex().upper() if raw else ""


def _found_key(cert: x509.Certificate) -> str:
    fmt = "%m/%d/%Y %H:%M:%S"
    return f"Found key 'Start={cert.not_valid_before_utc:{fmt}}, End={cert.not_valid_after_utc:{fmt}}'"


def token(req: Request, tenant: str, state: SandboxState) -> Response | Stream:
    """POST /{tenant}/oauth2/v2.0/token (client_credentials with a certificate assertion only)."""
    state.count_token_request()
    fault = state.next_fault(None, target="token")
    if fault is not None:
        return fault_response(fault, req)
    form = {k: v[0] for k, v in parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    grant = form.get("grant_type", "")
    if grant != "client_credentials":
        return aad_error(req, 400, "unsupported_grant_type", 70003,
                         f"The app requested an unsupported grant type '{grant[:40]}'. "
                         "This sandbox serves client_credentials only.")
    client_id = form.get("client_id", "")
    if not client_id:
        return aad_error(req, 400, "invalid_request", 900144,
                         "The request body must contain the following parameter: 'client_id'.")
    scope = form.get("scope", "")
    if not scope:
        return aad_error(req, 400, "invalid_request", 900144,
                         "The request body must contain the following parameter: 'scope'.")
    resources = {s.removesuffix("/.default") for s in scope.split() if s.endswith("/.default")}
    if not resources:
        return aad_error(req, 400, "invalid_scope", 1002012,
                         f"The provided value for scope {scope[:200]} is not valid. Client credential flows must "
                         "have a scope value with /.default suffixed to the resource identifier "
                         "(application ID URI).")
    # One token is for one resource (its audience): client credentials asking for two resources' /.default get
    # AADSTS70011 invalid_scope, as quoted in https://github.com/Azure/azure-sdk-for-net/issues/9076 (the other
    # flows answer AADSTS28000 "contains more than one resource", https://github.com/Azure-Samples/active-directory-
    # aspnetcore-webapp-openidconnect-v2/issues/271).
    if len(resources) > 1:
        return aad_error(req, 400, "invalid_scope", 70011,
                         "The provided request must include a 'scope' input parameter. The provided value for the "
                         f"input parameter 'scope' is not valid. The scope {scope[:300]} is not valid.")
    app = state.find_app(client_id)
    if app is None or (app.tenant_id is not None and app.tenant_id != tenant):
        return aad_error(req, 400, "unauthorized_client", 700016,
                         f"Application with identifier '{client_id[:128]}' was not found in the directory "
                         f"'{tenant}'. This can happen if the application has not been installed by the "
                         "administrator of the tenant or consented to by any user in the tenant. You may have "
                         "sent your authentication request to the wrong tenant.")
    if "client_secret" in form:
        return aad_error(req, 400, "invalid_client", 7000215,
                         "Invalid client secret provided. No client secret is registered for app "
                         f"'{client_id}': this sandbox app accepts certificate credentials only "
                         "(client_assertion signed with its registered certificate).")
    assertion = form.get("client_assertion", "")
    if not assertion:
        return aad_error(req, 400, "invalid_client", 7000218,
                         "The request body must contain the following parameter: 'client_assertion' or "
                         "'client_secret'.")
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        return aad_error(req, 400, "invalid_request", 90014,
                         f"The required field 'client_assertion_type' is missing or is not '{ASSERTION_TYPE}'.")
    try:
        unverified = jwt.decode(assertion, options={"verify_signature": False})
        unverified_header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        unverified, unverified_header = {}, {}
    # A token another issuer signed (no certificate thumbprint; iss that issuer's URL) is a federated credential;
    # a certificate assertion names its certificate and is issued by the client itself (else AADSTS700021 below).
    issuer = unverified.get("iss")
    if (isinstance(issuer, str) and issuer.startswith("https://") and issuer != client_id
            and not {"x5t", "x5t#S256"} & set(unverified_header)):
        return _verify_federated(req, tenant, client_id, app, assertion, state)
    return _verify_assertion(req, tenant, client_id, app.certificates, assertion, state)


WIF_DOC = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
_CHECK_FIC = (f"Please check your federated identity credential Subject, Audience and Issuer against the presented "
              f"assertion. {WIF_DOC}")


def _resource(req: Request) -> str:
    """The resource a client_credentials request asks a token for: its first scope without `/.default`."""
    form = {k: v[0] for k, v in parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    scopes = [s for s in form.get("scope", "").split() if s.endswith("/.default")]
    return scopes[0].removesuffix("/.default") if scopes else ""


def _verify_federated(req: Request, tenant: str, client_id: str, app: App, assertion: str,
                      state: SandboxState) -> Response:
    """A workload identity's token as the client assertion: signed by this Entra, matching a federated credential."""
    try:
        claims = jwt.decode(assertion, state.vault.signing_key.public_key(), algorithms=["RS256"],
                            options={"verify_aud": False, "require": ["exp", "iss", "sub", "aud"]})
    except jwt.ExpiredSignatureError:
        return aad_error(req, 400, "invalid_client", 700024,
                         "Client assertion is not within its valid time range. Review the documentation at "
                         f"{WIF_DOC} .")
    except jwt.PyJWTError:
        return aad_error(req, 400, "invalid_client", 50027,
                         "JWT token is invalid or malformed. [Reason - the assertion's signature does not verify "
                         "against its issuer's keys.]")
    issuer, subject = str(claims["iss"]), str(claims["sub"])
    aud = claims["aud"]
    audiences = [aud] if isinstance(aud, str) else [str(a) for a in aud] if isinstance(aud, list) else []
    if not app.federated:
        return aad_error(req, 400, "invalid_client", 70021,
                         f"No matching federated identity record found for presented assertion. Assertion Issuer: "
                         f"'{issuer[:200]}'. Assertion Subject: '{subject[:200]}'. Assertion Audience: "
                         f"'{','.join(audiences)[:200]}'. {WIF_DOC}")
    by_issuer = [f for f in app.federated if f.issuer == issuer]
    if not by_issuer:
        return aad_error(req, 400, "invalid_client", 700211,
                         f"No matching federated identity record found for presented assertion issuer "
                         f"'{issuer[:200]}'. {_CHECK_FIC}")
    by_subject = [f for f in by_issuer if f.subject == subject]  # case-sensitive, as Entra compares
    if not by_subject:
        return aad_error(req, 400, "invalid_client", 700213,
                         f"No matching federated identity record found for presented assertion subject "
                         f"'{subject[:200]}'. Please note that the matching is done using a case-sensitive "
                         f"comparison. {_CHECK_FIC}")
    if not any(a in f.audiences for f in by_subject for a in audiences):
        return aad_error(req, 400, "invalid_client", 700212,
                         f"No matching federated identity record found for presented assertion audience "
                         f"'{','.join(audiences)[:200]}'. {_CHECK_FIC}")
    access_token, lifetime = state.issue_token(client_id, tenant, _resource(req))
    return json_response(200, {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                               "access_token": access_token}, note=f"token issued to app {client_id} (federated)")


def _verify_assertion(req: Request, tenant: str, client_id: str, certificates: list[x509.Certificate],
                      assertion: str, state: SandboxState) -> Response:
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return aad_error(req, 400, "invalid_client", 50027,
                         "JWT token is invalid or malformed. (client_assertion)")
    thumbprint = _client_thumbprint(header)
    cert = _matching_certificate(header, certificates)
    if cert is None:
        return aad_error(req, 400, "invalid_client", 700027,
                         "The certificate with identifier used to sign the client assertion is not registered "
                         f"on application. [Reason - The key was not found., Thumbprint of key used by client: "
                         f"'{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph "
                         f"to see configured keys for app Id '{client_id}'.]")
    now = time.time()
    if cert.not_valid_after_utc.timestamp() < now or cert.not_valid_before_utc.timestamp() > now + CLOCK_SKEW:
        return aad_error(req, 400, "invalid_client", 700027,
                         "Client assertion contains an invalid signature. [Reason - The key used is expired., "
                         f"Thumbprint of key used by client: '{thumbprint}', {_found_key(cert)}]")
    endpoint = f"{req.base_url}/{tenant}/oauth2/v2.0/token"
    # `aud` is the token endpoint, as Learn's certificate credentials page gives it
    # (https://login.microsoftonline.com/{tenantId}/oauth2/v2.0/token) and as MSAL sets it (authority.token_endpoint
    # in msal/application.py, _build_client). The issuer URL is not a documented audience: refused.
    audiences = [endpoint]
    try:
        # PyJWT's key type names the key types it verifies with (RSA, EC, EdDSA); cryptography's public_key() names
        # every type a certificate can hold (the tests register RSA certificates).
        jwt.decode(assertion, cert.public_key(), algorithms=ALGORITHMS, audience=audiences,  # type: ignore[arg-type]
                   options={"require": ["exp", "aud", "iss", "sub"], "verify_nbf": False, "verify_iat": False})
    except jwt.InvalidSignatureError:
        return aad_error(req, 400, "invalid_client", 700027,
                         "Client assertion contains an invalid signature. [Reason - The provided signature value "
                         f"did not match the expected signature value., Thumbprint of key used by client: "
                         f"'{thumbprint}', {_found_key(cert)}]")
    except jwt.ExpiredSignatureError:
        exp = dt.datetime.fromtimestamp(float(claims.get("exp", 0)), dt.UTC)
        return aad_error(req, 400, "invalid_client", 700024,
                         f"Client assertion is not within its valid time range. Current time: "
                         f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%S.%fZ}, expiry time of assertion "
                         f"{exp:%Y-%m-%dT%H:%M:%S.%fZ}. Review the documentation at {CERT_DOC} .")
    except jwt.InvalidAudienceError:
        return aad_error(req, 400, "invalid_client", 50027,
                         "JWT token is invalid or malformed. [Reason - The client assertion's audience (aud) "
                         f"must be the token endpoint {endpoint}.]")
    except jwt.InvalidAlgorithmError:
        return aad_error(req, 400, "invalid_client", 50027,
                         f"JWT token is invalid or malformed. [Reason - The signing algorithm must be one of "
                         f"{', '.join(ALGORITHMS)}.]")
    except jwt.PyJWTError as exc:
        return aad_error(req, 400, "invalid_client", 50027,
                         f"JWT token is invalid or malformed. [Reason - {type(exc).__name__}.]")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and nbf > now + CLOCK_SKEW:
        return aad_error(req, 400, "invalid_client", 700024,
                         "Client assertion is not within its valid time range (nbf is in the future). "
                         f"Review the documentation at {CERT_DOC} .")
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        return aad_error(req, 400, "invalid_client", 700021,
                         "Client assertion application identifier doesn't match 'client_id' parameter. "
                         f"Review the documentation at {CERT_DOC} .")
    access_token, lifetime = state.issue_token(client_id, tenant, _resource(req))
    return json_response(200, {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                               "access_token": access_token}, note=f"token issued to app {client_id}")
