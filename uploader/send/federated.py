"""Sign-in with no key at all (`--credential federated`): the job's user-assigned managed identity's token, asked
for the cloud's federated audience, is the app's client assertion.

The app registration trusts the identity through a federated identity credential (the Pulumi program makes it:
provisioning/components/identity.py): issuer `https://login.microsoftonline.com/{tenant}/v2.0` (`.us` in US
Government), subject the identity's principal ID, audience `api://AzureADTokenExchange` (`...USGov`); the values are
in the cloud table (uploader/clouds.py, `Federation`, with Microsoft's source). Microsoft supports user-assigned
identities only, so AZURE_CLIENT_ID must name one.

One identity token and one sign-in per run: MSAL calls the assertion only for a real token request (never on a cache
hit), and MSAL's managed identity client caches the identity's token. The identity token is never printed, logged or
put in an error: an audience that is not the one asked for is named (it is not a secret), the token is not.
Entra's refusals of the federated credential (AADSTS70021, 700211, 700212, 700213) get their own fix in
`federated_hint`, which send/auth.py adds to Entra's cleaned message.
Sources: https://learn.microsoft.com/entra/workload-id/workload-identity-federation-config-app-trust-managed-identity,
https://learn.microsoft.com/entra/identity-platform/reference-error-codes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from uploader.clouds import Cloud
from uploader.errors import SignInError, UsageError
from uploader.report import safe_name
from uploader.send.keyvault import CLIENT_ID_ENV, KEY_TIMEOUT, IdentitySource, IdentityTokens, b64url_decode
from uploader.send.settings import ManagedIdentity

NEEDS = ("--credential federated signs in as the job's user-assigned managed identity: run it in the Container Apps "
         "job the stack made (or another Azure host with that identity); elsewhere use --certificate")

#: Entra's refusals of a federated assertion and what fixes each (codes: reference-error-codes, above).
FEDERATED_FIXES: dict[str, str] = {
    "AADSTS70021": "the app has no federated identity credential matching this identity's token: run `pulumi up` "
                   "for the stack (credential: federated makes it), or check the app's Certificates & secrets > "
                   "Federated credentials",
    "AADSTS700211": "the federated credential's issuer differs from the token's: it must be the identity's "
                    "directory, {issuer}; the identity and the app must be in the same tenant",
    "AADSTS700212": "the federated credential's audience differs from the token's: it must be {audience} for the "
                    "{cloud} cloud",
    "AADSTS700213": "the federated credential's subject differs from the token's: it must be the job identity's "
                    "principal ID (stack output jobIdentityPrincipalId; case-sensitive), and AZURE_CLIENT_ID must "
                    "name that identity",
}


def federated_hint(description: object, cloud: Cloud, tenant_id: str) -> str:
    """The fix for an AADSTS code of the federated credential found in Entra's description, or ""."""
    if not isinstance(description, str) or cloud.federation is None:
        return ""
    for code in sorted(FEDERATED_FIXES, key=len, reverse=True):  # 700211 before 70021
        if description.lstrip().startswith(code + ":"):
            return FEDERATED_FIXES[code].format(issuer=cloud.federation.issuer(tenant_id),
                                                audience=cloud.federation.audience, cloud=cloud.name)
    return ""


def token_audience(token: str) -> str | None:
    """The `aud` claim of a JWT (read, not verified: Entra verifies it), or None when it is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(b64url_decode(parts[1]))
    except ValueError:
        return None
    aud = claims.get("aud") if isinstance(claims, dict) else None
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    return aud if isinstance(aud, str) else None


class FederatedAssertion:
    """The client-assertion callable MSAL calls before each real token request: the identity's federated token."""

    def __init__(self, cloud: Cloud, identity: IdentitySource, client_id: str) -> None:
        assert cloud.federation is not None
        self.cloud = cloud
        self.audience = cloud.federation.audience
        self.identity = identity
        self.client_id = client_id
        self.calls = 0

    def __call__(self, context: Mapping[str, Any] | None = None) -> str:
        del context  # the assertion is the identity's token, whatever the token endpoint
        self.calls += 1
        token = self.identity.token()
        audience = token_audience(token)
        if audience is None:
            raise SignInError(f"the managed identity endpoint answered with a token that is not a JWT (it is not "
                              f"shown) for {self.audience}: a federated sign-in needs the identity's signed token; "
                              "check IDENTITY_ENDPOINT (or the VM's instance metadata endpoint)")
        if audience.rstrip("/") != self.audience:
            raise SignInError(f"the managed identity endpoint gave a token for the audience "
                              f"{safe_name(audience, 100)}, not {self.audience} ({self.cloud.name} cloud): Entra "
                              "would refuse it (AADSTS700212); check --cloud, and that nothing between the job and "
                              "its identity endpoint rewrites the resource; nothing was sent")
        return token


def federated_assertion(cloud: Cloud, managed: ManagedIdentity, *, timeout: float = KEY_TIMEOUT,
                        identity: IdentitySource | None = None) -> FederatedAssertion:
    """The assertion source for `--credential federated` (UsageError, exit 2, before any request when it cannot be);
    `managed` is the identity as the command read it from the environment (AZURE_CLIENT_ID, checked a GUID)."""
    if cloud.federation is None:
        raise UsageError(f"--credential federated: Microsoft does not document workload identity federation for the "
                         f"{cloud.name} cloud ({cloud.federation_unconfirmed or 'no issuer and audience'}); use "
                         "--certificate")
    chosen = (managed.client_id or "").strip()
    if not chosen:
        raise UsageError(f"--credential federated: {CLIENT_ID_ENV} must name the job's user-assigned managed identity "
                         "(its client ID): Microsoft supports only user-assigned identities as an app's federated "
                         "credential; the stack sets it on the job")
    source = identity or IdentityTokens(cloud.federation.audience, chosen, endpoint_host=managed.endpoint_host,
                                        timeout=timeout, needs=NEEDS)
    return FederatedAssertion(cloud, source, chosen)
