"""The sandbox over real TLS: real MSAL against the Entra stand-in, requests against the ingestion stand-in.

In-process clients trust the sandbox CA through sandbox.http_session() (trust_env off, verify=ca.pem),
because the machine's REQUESTS_CA_BUNDLE would otherwise override verify=. Assertions never echo cell
values or tokens.
"""

from __future__ import annotations

import msal
import pytest

SCOPE = "https://microsoft.onmicrosoft.com/86dfdabb-5089-4a0c-880a-cfa5a790c5b1/.default"


def msal_app(sandbox, app, credential=None, tenant_id=None) -> msal.ConfidentialClientApplication:
    """MSAL exactly as the uploader builds it: PEM key + certificate, overridden authority, no discovery."""
    cert = app.certificate
    credential = credential or {"private_key": cert.pem, "public_certificate": cert.certificate_pem}
    return msal.ConfidentialClientApplication(
        app.app_id, client_credential=credential, authority=f"{sandbox.authority_host}/{tenant_id or app.tenant_id}",
        instance_discovery=False, http_client=sandbox.http_session(),
    )


def upload(sandbox, token: str, job_id: str, body: bytes | str, session=None, **kwargs):
    session = session or sandbox.http_session()
    return session.post(f"{sandbox.ingestion_url}/api/signals", params={"jobid": job_id},
                        headers={"Authorization": f"Bearer {token}"},
                        files={"file": ("hr.csv", body, "text/csv")}, timeout=kwargs.pop("timeout", 30), **kwargs)


@pytest.fixture
def signed_in(sandbox, new_app):
    """A fresh app with a job bound to it, and an access token from real MSAL."""
    app = new_app()
    result = msal_app(sandbox, app).acquire_token_for_client([SCOPE])
    assert "access_token" in result, result.get("error_description")
    return app, result["access_token"]


def test_msal_signs_in_with_certificate_and_caches_the_token(sandbox, new_app):
    app = new_app()
    client = msal_app(sandbox, app)
    first = client.acquire_token_for_client([SCOPE])
    second = client.acquire_token_for_client([SCOPE])
    assert first.get("token_type") == "Bearer", first.get("error_description")
    assert first["token_source"] == "identity_provider"
    assert second["token_source"] == "cache"
    assert second["access_token"] == first["access_token"]
    stats = sandbox.stats()
    assert stats["apps"][app.app_id]["tokens_issued"] == 1
    assert stats["tokens_issued"] >= 1


def test_upload_is_accepted_counted_and_stored(sandbox, signed_in):
    app, token = signed_in
    body = b"EmailAddress,ResignationDate\nu1@contoso.com,2024-01-01T00:00:00Z\nu2@contoso.com,2024-01-02T00:00:00Z\n"
    resp = upload(sandbox, token, app.job_id, body)
    assert resp.status_code == 200
    assert resp.json()["records"] == 2
    assert sandbox.job_stats(app.job_id) == {"uploads": 1, "records": 2, "rejected": 0}
    assert sandbox.received(app.job_id) == [body]
    paths = sandbox.received_paths(app.job_id)
    assert paths[0].parent == sandbox.state_dir / "received" / app.job_id
