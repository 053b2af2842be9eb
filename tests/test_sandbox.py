"""The sandbox over real TLS: real MSAL against the Entra stand-in, requests against the ingestion stand-in.

In-process clients trust the sandbox CA through sandbox.http_session() (trust_env off, verify=ca.pem),
because the machine's REQUESTS_CA_BUNDLE would otherwise override verify=. Assertions never echo cell
values or tokens.
"""

from __future__ import annotations

import json
import subprocess
import sys

import jwt
import msal
import pytest
import requests

from uploader.sandbox.client import Sandbox

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


# -- Entra stand-in: refusals with real AADSTS codes ------------------------------------------------
def assert_aad_error(result: dict, error: str, code: int) -> str:
    """Entra's error JSON shape; returns error_description for further checks."""
    assert result.get("error") == error, result.get("error_description")
    assert result["error_codes"] == [code]
    description = result["error_description"]
    assert description.startswith(f"AADSTS{code}: ")
    for key in ("timestamp", "trace_id", "correlation_id"):
        assert result.get(key), key
    assert f"Trace ID: {result['trace_id']}" in description
    assert f"Correlation ID: {result['correlation_id']}" in description
    return description


def test_unknown_app_is_aadsts700016(sandbox, new_app):
    app = new_app(register=False)
    result = msal_app(sandbox, app).acquire_token_for_client([SCOPE])
    text = assert_aad_error(result, "unauthorized_client", 700016)
    assert f"Application with identifier '{app.app_id}' was not found in the directory '{app.tenant_id}'" in text
    assert "access_token" not in result


def test_app_signing_in_to_another_tenant_is_aadsts700016(sandbox, new_app):
    app = new_app()
    other_tenant = "11111111-2222-4333-8444-555555555555"
    result = msal_app(sandbox, app, tenant_id=other_tenant).acquire_token_for_client([SCOPE])
    text = assert_aad_error(result, "unauthorized_client", 700016)
    assert f"directory '{other_tenant}'" in text


def test_certificate_not_registered_is_aadsts700027(sandbox, new_app, make_certificate):
    app = new_app()
    stranger = make_certificate("not-registered")
    credential = {"private_key": stranger.pem, "public_certificate": stranger.certificate_pem}
    result = msal_app(sandbox, app, credential=credential).acquire_token_for_client([SCOPE])
    text = assert_aad_error(result, "invalid_client", 700027)
    assert "not registered on application" in text
    assert stranger.thumbprint_sha256 in text and app.app_id in text
    assert sandbox.stats()["apps"].get(app.app_id) is None  # no token issued


def test_renewal_overlap_both_certificates_sign_in(sandbox, new_app, make_certificate):
    app = new_app()
    renewed = make_certificate("renewed")
    sandbox.register_app(app.app_id, renewed.pem, tenant_id=app.tenant_id)  # added, the old one stays
    for cert in (app.certificate, renewed):
        credential = {"private_key": cert.pem, "public_certificate": cert.certificate_pem}
        result = msal_app(sandbox, app, credential=credential).acquire_token_for_client([SCOPE])
        assert "access_token" in result, result.get("error_description")


def test_legacy_sha1_thumbprint_is_accepted(sandbox, new_app):
    app = new_app()
    credential = {"private_key": app.certificate.pem, "thumbprint": app.certificate.thumbprint_sha1}
    result = msal_app(sandbox, app, credential=credential).acquire_token_for_client([SCOPE])
    assert "access_token" in result, result.get("error_description")


def test_client_secret_is_refused(sandbox, new_app):
    app = new_app()
    result = msal_app(sandbox, app, credential="a-client-secret").acquire_token_for_client([SCOPE])
    text = assert_aad_error(result, "invalid_client", 7000215)
    assert "certificate credentials only" in text
    assert sandbox.stats()["apps"].get(app.app_id) is None


def _assertion(app, key_pem: str, cert, endpoint: str, **overrides) -> str:
    """A client assertion built by hand (PyJWT), to exercise checks MSAL never gets wrong."""
    import base64
    import time

    now = int(time.time())
    claims = {"aud": endpoint, "iss": app.app_id, "sub": app.app_id, "exp": now + 600, "iat": now, "nbf": now,
              "jti": "test"}
    claims.update(overrides)
    digest = bytes.fromhex(cert.thumbprint_sha256)
    headers = {"x5t#S256": base64.urlsafe_b64encode(digest).decode()}
    return jwt.encode(claims, key_pem, algorithm="PS256", headers=headers)


@pytest.mark.parametrize(("case", "code"), [
    ("expired", 700024), ("audience", 50027), ("issuer", 700021), ("forged", 700027), ("malformed", 50027),
    ("issuer-as-audience", 50027),  # Learn names the token endpoint as aud; the tenant's issuer URL is not it
])
def test_assertion_checks(sandbox, new_app, make_certificate, case, code):
    import time

    app = new_app()
    endpoint = f"{sandbox.authority_host}/{app.tenant_id}/oauth2/v2.0/token"
    key = app.certificate.pem
    overrides: dict = {
        "expired": {"exp": int(time.time()) - 60},
        "audience": {"aud": "https://login.microsoftonline.com/common/oauth2/v2.0/token"},
        "issuer": {"iss": "someone-else", "sub": "someone-else"},
        "issuer-as-audience": {"aud": f"{sandbox.authority_host}/{app.tenant_id}/v2.0"},
    }.get(case, {})
    if case == "forged":  # signed by another key but naming the registered certificate's thumbprint
        key = make_certificate("forger").pem
    assertion = _assertion(app, key, app.certificate, endpoint, **overrides)
    if case == "malformed":
        assertion = "not.a.jwt"
    resp = sandbox.http_session().post(endpoint, data={
        "grant_type": "client_credentials", "client_id": app.app_id, "scope": SCOPE,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion}, timeout=30)
    assert resp.status_code == 400
    assert_aad_error(resp.json(), "invalid_client", code)
    assert sandbox.stats()["apps"].get(app.app_id) is None


def test_scope_without_default_suffix_is_refused(sandbox, new_app):
    app = new_app()
    result = msal_app(sandbox, app).acquire_token_for_client(["https://example.invalid/read"])
    assert_aad_error(result, "invalid_scope", 1002012)


def test_two_resources_in_one_client_credentials_request_is_aadsts70011(sandbox, new_app):
    """One token has one audience: two resources' /.default in one request are refused (azure-sdk-for-net#9076)."""
    app = new_app()
    result = msal_app(sandbox, app).acquire_token_for_client([SCOPE, "https://vault.azure.net/.default"])
    assert_aad_error(result, "invalid_scope", 70011)
    assert sandbox.stats()["apps"].get(app.app_id) is None


def test_token_for_another_resource_is_refused_by_the_ingestion_api(sandbox, new_app):
    app = new_app()
    client = msal_app(sandbox, app)
    result = client.acquire_token_for_client(["https://vault.azure.net/.default"])
    assert "access_token" in result, result.get("error_description")  # Entra issues it: the resource exists
    resp = upload(sandbox, result["access_token"], app.job_id, b"a\n1\n")
    assert resp.status_code == 401
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    assert sandbox.job_stats(app.job_id) == {"uploads": 0, "records": 0, "rejected": 1}
    # the ITAR L4 sample's resource before 2025: not known to be refused, so the sandbox does not refuse it
    itar_l4 = "https://gsgotrs.onmicrosoft.com/66ace435-1e6f-4305-8abc-96f365388077/.default"
    older = client.acquire_token_for_client([itar_l4])
    assert upload(sandbox, older["access_token"], app.job_id, b"a\n1\n").status_code == 200


# -- ingestion stand-in --------------------------------------------------------------------------------
QUOTED = (
    b'EmailAddress,Remarks,LastWorkingDate\r\n'
    b'a@contoso.com,"left, with a comma",2024-01-01T00:00:00Z\r\n'
    b'b@contoso.com,"said ""goodbye""",2024-01-02T00:00:00Z\r\n'
    b'c@contoso.com,"two\nlines",2024-01-03T00:00:00Z\r\n'
    b'd@contoso.com,"three\r\nlines\r\nhere",2024-01-04T00:00:00Z\r\n'
)


@pytest.mark.parametrize(("body", "records"), [
    (QUOTED, 4),
    (b"\xef\xbb\xbfa,b\n1,2\n3,4", 2),  # BOM, no trailing newline
    (b"a,b\r\n1,2\r\n", 1),  # CRLF
    (b"a,b\n", 0),  # header only
    ("Name,City\nZoë,Zürich\n".encode(), 1),  # UTF-8
])
def test_upload_counts_records(sandbox, signed_in, body, records):
    app, token = signed_in
    resp = upload(sandbox, token, app.job_id, body)
    assert resp.status_code == 200
    assert resp.json()["records"] == records
    assert sandbox.job_stats(app.job_id)["records"] == records
    assert sandbox.received(app.job_id) == [body]


def test_many_chunks_on_one_keep_alive_connection(sandbox, signed_in):
    app, token = signed_in
    session = sandbox.http_session()
    before = sandbox.stats()["connections"]
    chunk = b"EmailAddress,Date\n" + b"u@contoso.com,2024-01-01T00:00:00Z\n" * 5000
    for _ in range(5):
        assert upload(sandbox, token, app.job_id, chunk, session=session).status_code == 200
    assert sandbox.job_stats(app.job_id) == {"uploads": 5, "records": 25000, "rejected": 0}
    assert sandbox.stats()["connections"] - before == 1
    assert [p.name for p in sandbox.received_paths(app.job_id)] == [f"{i:06d}.csv" for i in range(1, 6)]


def test_job_of_another_app_is_403_with_the_services_text(sandbox, signed_in, new_app):
    app, token = signed_in
    other = new_app()
    for job in (other.job_id, "00000000-0000-4000-8000-00000000dead"):  # someone else's job; unknown job
        resp = upload(sandbox, token, job, b"a,b\n1,2\n")
        assert resp.status_code == 403
        assert "jobId and corresponding appId do not match." in resp.text
    assert sandbox.job_stats(other.job_id) == {"uploads": 0, "records": 0, "rejected": 1}
    assert sandbox.received(other.job_id) == []


@pytest.mark.parametrize("auth", [None, "Bearer not-a-token", "Basic dXNlcjpwYXNz"])
def test_missing_or_bad_token_is_401(sandbox, signed_in, auth):
    app, _ = signed_in
    headers = {"Authorization": auth} if auth else {}
    resp = sandbox.http_session().post(f"{sandbox.ingestion_url}/api/signals", params={"jobid": app.job_id},
                                       headers=headers, files={"file": ("hr.csv", b"a\n1\n")}, timeout=30)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert sandbox.job_stats(app.job_id)["uploads"] == 0


def test_expired_token_is_401(sandbox, signed_in):
    app, token = signed_in
    sandbox.expire_tokens()
    assert upload(sandbox, token, app.job_id, b"a\n1\n").status_code == 401


@pytest.mark.parametrize(("kind", "message"), [
    ("no-file-part", "no part named 'file'"),
    ("not-multipart", "multipart/form-data"),
    ("not-utf8", "not UTF-8"),
    ("open-quote", "not valid CSV"),
])
def test_bad_bodies_are_400(sandbox, signed_in, kind, message):
    app, token = signed_in
    session = sandbox.http_session()
    url, params = f"{sandbox.ingestion_url}/api/signals", {"jobid": app.job_id}
    headers = {"Authorization": f"Bearer {token}"}
    if kind == "no-file-part":
        resp = session.post(url, params=params, headers=headers, files={"other": ("x.csv", b"a\n1\n")}, timeout=30)
    elif kind == "not-multipart":
        resp = session.post(url, params=params, headers={**headers, "Content-Type": "text/csv"}, data=b"a\n1\n",
                            timeout=30)
    else:
        body = b"a,b\n\xff\xfe,1\n" if kind == "not-utf8" else b'a,b\n"open,1\n'
        resp = upload(sandbox, token, app.job_id, body, session=session)
    assert resp.status_code == 400
    assert message in resp.json()["error"]["message"]
    assert sandbox.job_stats(app.job_id)["uploads"] == 0


# -- scripted faults, seen by a plain requests client ---------------------------------------------
@pytest.mark.parametrize(("status", "retry_after"), [(503, 2), (429, 1), (500, None)])
def test_status_fault_then_normal_service(sandbox, signed_in, status, retry_after):
    app, token = signed_in
    fault = {"kind": "status", "status": status}
    if retry_after is not None:
        fault["retry_after"] = retry_after
    sandbox.faults([fault])
    first = upload(sandbox, token, app.job_id, b"a\n1\n")
    assert first.status_code == status
    assert first.headers.get("Retry-After") == (str(retry_after) if retry_after is not None else None)
    assert upload(sandbox, token, app.job_id, b"a\n1\n").status_code == 200
    assert sandbox.job_stats(app.job_id) == {"uploads": 1, "records": 1, "rejected": 1}


def test_faults_are_served_in_order(sandbox, signed_in):
    app, token = signed_in
    sandbox.faults([{"kind": "status", "status": 503}, {"kind": "status", "status": 429, "retry_after": 0}])
    assert sandbox.stats()["faults_pending"] == 2
    codes = [upload(sandbox, token, app.job_id, b"a\n1\n").status_code for _ in range(3)]
    assert codes == [503, 429, 200]
    assert sandbox.stats()["faults_pending"] == 0


def test_drop_closes_the_connection_without_an_answer(sandbox, signed_in):
    app, token = signed_in
    sandbox.faults([{"kind": "drop"}])
    session = sandbox.http_session()
    with pytest.raises(requests.ConnectionError):
        upload(sandbox, token, app.job_id, b"a\n1\n", session=session)
    assert upload(sandbox, token, app.job_id, b"a\n1\n", session=session).status_code == 200
    assert sandbox.job_stats(app.job_id) == {"uploads": 1, "records": 1, "rejected": 1}


def test_slow_answer_outlasts_a_short_read_timeout(sandbox, signed_in):
    app, token = signed_in
    sandbox.faults([{"kind": "slow", "seconds": 1.5}])
    with pytest.raises(requests.ReadTimeout):
        upload(sandbox, token, app.job_id, b"a\n1\n", timeout=(5, 0.3))
    resp = upload(sandbox, token, app.job_id, b"a\n1\n", timeout=(5, 0.3))  # fault consumed: fast again
    assert resp.status_code == 200


def test_faults_target_one_job(sandbox, signed_in, new_app):
    app, token = signed_in
    bystander = new_app()
    bystander_token = msal_app(sandbox, bystander).acquire_token_for_client([SCOPE])["access_token"]
    sandbox.faults([{"kind": "status", "status": 503, "job_id": app.job_id}])
    assert upload(sandbox, bystander_token, bystander.job_id, b"a\n1\n").status_code == 200
    assert upload(sandbox, token, app.job_id, b"a\n1\n").status_code == 503
    assert upload(sandbox, token, app.job_id, b"a\n1\n").status_code == 200


@pytest.mark.parametrize("fault", [
    {"kind": "explode"}, {"kind": "status", "status": 200}, {"kind": "slow"}, {"kind": "drop", "job_id": "../x"},
    {"kind": "status", "retry_after": -1}, {"kind": "drop", "color": "red"},
])
def test_invalid_faults_are_refused(sandbox, fault):
    with pytest.raises(RuntimeError, match="HTTP 400"):
        sandbox.faults([fault])
    assert sandbox.stats()["faults_pending"] == 0


def test_reset_clears_faults_and_counters(sandbox, signed_in):
    app, token = signed_in
    upload(sandbox, token, app.job_id, b"a\n1\n")
    sandbox.faults([{"kind": "drop"}])
    sandbox.reset()
    stats = sandbox.stats()
    assert stats["faults_pending"] == 0 and stats["tokens_issued"] == 0 and stats["jobs"] == {}
    assert upload(sandbox, token, app.job_id, b"a\n1\n").status_code == 200  # token and binding survive


# -- TLS, logging, command line ---------------------------------------------------------------------
def test_client_not_trusting_the_sandbox_ca_fails_verification(sandbox):
    system_trust = requests.Session()
    system_trust.trust_env = False  # verify with certifi's public roots only
    with pytest.raises(requests.exceptions.SSLError):
        system_trust.get(f"{sandbox.url}/_sandbox/stats", timeout=10)
    env_trust = requests.Session()  # trust_env on, machine-wide CA bundle from the environment
    with pytest.raises(requests.exceptions.SSLError):
        env_trust.get(f"{sandbox.url}/_sandbox/stats", verify=True, timeout=10)


def test_environment_for_child_processes_trusts_the_sandbox(sandbox):
    code = ("import requests, sys; r = requests.get(sys.argv[1], timeout=10); print(r.status_code)")
    result = subprocess.run([sys.executable, "-c", code, f"{sandbox.url}/_sandbox/stats"], env=sandbox.env,
                            capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == "200", result.stderr[-500:]
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        assert sandbox.env[name] == str(sandbox.ca_file)


def test_log_has_one_line_per_request_and_no_secrets(sandbox, signed_in):
    app, token = signed_in
    marker = "Secret-Cell-Value-7731"
    upload(sandbox, token, app.job_id, f"Remarks\n{marker}\n".encode())
    log = sandbox.log_tail(400)
    assert f"POST /api/signals 200 job={app.job_id} records=1" in log
    assert marker not in log and token not in log
    assert "PRIVATE KEY" not in log and "client_assertion" not in log


def test_non_loopback_host_is_refused(run_uploader, tmp_path):
    result = run_uploader("sandbox", "--host", "0.0.0.0", "--state-dir", str(tmp_path), timeout=30)  # noqa: S104
    assert result.returncode == 2
    assert "loopback only" in result.stderr


def test_command_line_registers_apps_and_jobs(tmp_path, make_certificate):
    cert = make_certificate("cli-registered")
    public = tmp_path / "app.crt"
    public.write_text(cert.certificate_pem)  # the certificate alone, as an app registration holds it
    sb = Sandbox.start(tmp_path / "sb", apps=[("app-1", public)], jobs=[("job-1", "app-1")])
    try:
        info = json.loads((tmp_path / "sb" / "ready.json").read_text())
        assert info == {"url": sb.url, "authority_host": sb.url, "ingestion_url": sb.url,
                        "ca_file": str(sb.ca_file), "pid": sb.process.pid}
        client = msal.ConfidentialClientApplication(
            "app-1", client_credential={"private_key": cert.pem, "public_certificate": cert.certificate_pem},
            authority=f"{sb.url}/any-tenant", instance_discovery=False, http_client=sb.http_session())
        token = client.acquire_token_for_client([SCOPE])["access_token"]
        assert upload(sb, token, "job-1", b"a\n1\n2\n").json()["records"] == 2
        out = (tmp_path / "sb" / "sandbox.log").read_text()
        assert f"--authority-host {sb.url} --ingestion-url {sb.url}" in out
        assert f"export REQUESTS_CA_BUNDLE={sb.ca_file}" in out
    finally:
        sb.stop()
    assert sb.process.returncode == 0  # SIGTERM is a clean stop


# -- Key Vault sign and managed identity stand-ins: the real services' refusals ------------------------
@pytest.fixture(scope="module")
def vault_key(sandbox):
    """A user-assigned identity's Key Vault token (Container Apps protocol), a key it may sign with, its certificate."""
    import uuid

    from cryptography import x509

    client_id = str(uuid.uuid4())
    env = sandbox.identity_env(client_id)
    resp = sandbox.http_session().get(env["IDENTITY_ENDPOINT"], headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]},
                                      params={"api-version": "2019-08-01", "resource": "https://vault.azure.net",
                                              "client_id": client_id}, timeout=30)
    assert resp.status_code == 200, resp.text
    key = sandbox.create_key(f"fidelity-{client_id[:8]}")
    sandbox.grant_sign(client_id, key["name"])
    cert = x509.load_pem_x509_certificate(key["certificate_pem"].encode())
    return resp.json()["access_token"], key, cert


def _sign(sandbox, vault_key, alg: str, digest: bytes):
    import base64

    token, key, _ = vault_key
    value = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return sandbox.http_session().post(f"{sandbox.url}/keys/{key['name']}/{key['version']}/sign",
                                       params={"api-version": "7.5"}, headers={"Authorization": f"Bearer {token}"},
                                       json={"alg": alg, "value": value}, timeout=30)


@pytest.mark.parametrize("alg", ["PS256", "RS384", "PS512"])
def test_vault_signs_each_rsa_algorithm_over_its_hashs_digest(sandbox, vault_key, alg):
    import base64
    import hashlib

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, utils

    bits = int(alg[2:])
    digest = hashlib.new(f"sha{bits}", b"signing input").digest()
    resp = _sign(sandbox, vault_key, alg, digest)
    assert resp.status_code == 200, resp.text
    signature = base64.urlsafe_b64decode(resp.json()["value"] + "==")
    chosen = {256: hashes.SHA256(), 384: hashes.SHA384(), 512: hashes.SHA512()}[bits]
    pad = (padding.PSS(mgf=padding.MGF1(chosen), salt_length=padding.PSS.DIGEST_LENGTH) if alg.startswith("PS")
           else padding.PKCS1v15())
    vault_key[2].public_key().verify(signature, digest, pad, utils.Prehashed(chosen))  # raises if it does not verify


@pytest.mark.parametrize(("alg", "length", "message"), [
    ("PS256", 48, "Invalid length of 'value': 48 bytes. PS256 requires 32 bytes, encoded with base64url."),
    ("RS512", 32, "Invalid length of 'value': 32 bytes. RS512 requires 64 bytes, encoded with base64url."),
    ("ES256", 32, "Invalid algorithm"),  # an EC algorithm on an RSA key
])
def test_vault_refuses_a_digest_or_algorithm_that_does_not_fit(sandbox, vault_key, alg, length, message):
    before = sandbox.stats()["vault"]["signatures"]
    resp = _sign(sandbox, vault_key, alg, b"\x01" * length)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "BadParameter" and error["message"].startswith(message)
    assert sandbox.stats()["vault"]["signatures"] == before


def test_identity_endpoints_refuse_a_missing_resource_in_their_protocols_shape(sandbox):
    """App Service / Container Apps answer {statusCode, message} (what MSAL reads); the VM's IMDS OAuth's
    {error, error_description}. Both require `resource`."""
    env = sandbox.identity_env()
    session = sandbox.http_session()
    apps = session.get(env["IDENTITY_ENDPOINT"], headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]},
                       params={"api-version": "2019-08-01"}, timeout=30)
    assert apps.status_code == 400
    assert apps.json()["statusCode"] == 400 and "resource" in apps.json()["message"]
    no_header = session.get(env["IDENTITY_ENDPOINT"], params={"api-version": "2019-08-01",
                                                              "resource": "https://vault.azure.net"}, timeout=30)
    assert no_header.status_code == 401 and no_header.json()["statusCode"] == 401
    imds = session.get(f"{sandbox.url}/metadata/identity/oauth2/token", headers={"Metadata": "true"},
                       params={"api-version": "2018-02-01"}, timeout=30)
    assert imds.status_code == 400
    assert imds.json()["error"] == "invalid_request" and "resource" in imds.json()["error_description"]
