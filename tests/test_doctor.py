"""`python -m uploader doctor`: the real CLI in subprocesses against the loopback sandbox (real MSAL, DNS,
TCP, TLS), a folder drop zone and Azurite; plus the pure check functions.

Every run's output is scanned for key and token material: only thumbprints may look like long tokens.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import uuid
from pathlib import Path

import certifi
import pytest

from uploader.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from uploader.job.doctor import (
    FAIL,
    PASS,
    WARN,
    Check,
    check_certificate,
    check_ingestion,
    exit_code,
    explain_sign_in_error,
)
from uploader.model.certs import generate_certificate, load_bundle

pytestmark = pytest.mark.e2e

CONNECTORS = json.dumps([{"name": "departures", "jobId": str(uuid.uuid4()), "files": "departures/*.csv",
                          "scenarios": [{"type": "resignation", "columns": {
                              "userPrincipalName": "EmailAddress", "resignationDate": "ResignationDate",
                              "lastWorkingDate": "LastWorkingDate"}}]}])


def doctor_flags(app) -> list[str]:  # noqa: ANN001
    """The upload flags without --job-id (doctor takes it as optional)."""
    return ["--tenant-id", app.tenant_id, "--app-id", app.app_id, "--certificate", str(app.certificate.path),
            "--authority-host", app.authority_host, "--ingestion-url", app.ingestion_url]


def lines(result) -> dict[str, str]:  # noqa: ANN001
    """check name -> its output line (text mode)."""
    out = {}
    for line in result.stdout.splitlines():
        found = re.match(r"^(PASS|WARN|FAIL|SKIP) ([\w-]+): ", line)
        if found:
            out[found.group(2)] = line
    return out


def assert_no_secrets(result, *pems: str) -> None:  # noqa: ANN001
    """No PEM block or base64 line of a key, and no token-like word except the certificate thumbprints."""
    text = result.stdout + result.stderr
    assert "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" not in text
    for pem in pems:
        for body_line in pem.splitlines():
            if len(body_line) > 20 and "-----" not in body_line:
                assert body_line not in text, "a PEM line was printed"
    thumbprints = {load_bundle(p).thumbprint_sha1 for p in pems} | {load_bundle(p).thumbprint_sha256 for p in pems}
    for word in re.findall(r"[A-Za-z0-9_\-+/=.]{40,}", text):
        stripped = word.strip(".")
        if stripped.startswith(("https", "http")) or "/" in stripped:
            continue  # URLs (authority, scope, drop zone)
        assert stripped in thumbprints, "a token-like word was printed"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def expired_certificate(tmp_path: Path, **kwargs) -> tuple[Path, str]:  # noqa: ANN003
    bundle = generate_certificate("hr-connector-doctor", **kwargs)
    path = tmp_path / f"{uuid.uuid4().hex}.pem"
    path.write_text(bundle.pem)
    path.chmod(0o600)
    return path, bundle.pem


# -- the command line against the sandbox ------------------------------------------------------------

def test_all_checks_pass_with_one_real_sign_in_and_nothing_sent(new_app, sandbox, run_uploader) -> None:  # noqa: ANN001
    app = new_app()
    result = run_uploader("doctor", *doctor_flags(app), "--job-id", app.job_id)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    found = lines(result)
    assert set(found) == {"settings", "certificate", "sign-in", "ingestion"}
    assert all(line.startswith("PASS") for line in found.values()), found
    assert app.certificate.thumbprint_sha1 in found["certificate"] and "days" in found["certificate"]
    assert "verified" in found["ingestion"] and "TLS" in found["ingestion"]
    stats = sandbox.stats()
    assert stats["apps"][app.app_id]["tokens_issued"] == 1
    assert sandbox.job_stats(app.job_id)["uploads"] == 0  # no HR data, not even an empty request
    assert_no_secrets(result, app.certificate.pem)


@pytest.mark.parametrize("wrong", ["app", "tenant"])
def test_wrong_app_or_tenant_is_aadsts700016_explained(wrong, new_app, run_uploader) -> None:  # noqa: ANN001
    app = new_app()
    flags = doctor_flags(app)
    flags[flags.index("--app-id" if wrong == "app" else "--tenant-id") + 1] = str(uuid.uuid4())
    result = run_uploader("doctor", *flags)
    assert result.returncode == EXIT_FAILED, result.stdout
    line = lines(result)["sign-in"]
    assert line.startswith("FAIL") and "AADSTS700016" in line and "not found in this tenant" in line
    assert "fix: check --app-id" in line
    assert lines(result)["ingestion"].startswith("PASS")
    assert_no_secrets(result, app.certificate.pem)


def test_expired_certificate_fails_twice_locally_and_at_entra(new_app, sandbox, run_uploader, tmp_path) -> None:  # noqa: ANN001
    path, pem = expired_certificate(tmp_path, validity_days=30,
                                    now=dt.datetime.now(dt.UTC) - dt.timedelta(days=40))
    app = new_app(register=False)
    sandbox.register_app(app.app_id, pem, tenant_id=app.tenant_id)
    flags = doctor_flags(app)
    flags[flags.index("--certificate") + 1] = str(path)
    result = run_uploader("doctor", *flags)
    assert result.returncode == EXIT_FAILED, result.stdout
    found = lines(result)
    assert found["certificate"].startswith("FAIL") and "expired on" in found["certificate"]
    assert found["sign-in"].startswith("FAIL") and "AADSTS700027" in found["sign-in"]
    assert "renew" in found["certificate"]
    assert_no_secrets(result, pem)


def test_soon_expiring_certificate_is_a_warning_and_exit_0(new_app, make_certificate, run_uploader) -> None:  # noqa: ANN001
    app = new_app(certificate=make_certificate(validity_days=10))
    result = run_uploader("doctor", *doctor_flags(app))
    assert result.returncode == EXIT_OK, result.stdout
    line = lines(result)["certificate"]
    assert line.startswith("WARN") and "expires on" in line and "fix: renew it within" in line
    assert lines(result)["sign-in"].startswith("PASS")
    assert "1 warning(s)" in result.stdout


def test_closed_ingestion_port_fails_the_tcp_step(new_app, run_uploader) -> None:  # noqa: ANN001
    app = new_app()
    port = closed_port()
    flags = doctor_flags(app)
    flags[flags.index("--ingestion-url") + 1] = f"https://127.0.0.1:{port}"
    result = run_uploader("doctor", *flags)
    assert result.returncode == EXIT_FAILED
    line = lines(result)["ingestion"]
    assert line.startswith("FAIL") and f"TCP 127.0.0.1:{port} failed: ConnectionRefusedError" in line
    assert "fix: allow outbound HTTPS" in line


def test_untrusted_tls_fails_verification(new_app, sandbox, run_uploader) -> None:  # noqa: ANN001
    """The sandbox's CA is not in the public bundle: verification fails, and is never switched off."""
    app = new_app()
    env = dict(sandbox.env)
    env.update({name: certifi.where() for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")})
    result = run_uploader("doctor", *doctor_flags(app), env=env)
    assert result.returncode == EXIT_FAILED
    found = lines(result)
    assert found["ingestion"].startswith("FAIL") and "certificate is not trusted" in found["ingestion"]
    assert "REQUESTS_CA_BUNDLE" in found["ingestion"]
    assert found["sign-in"].startswith("FAIL") and "certificate is not trusted" in found["sign-in"]


def test_unresolvable_ingestion_host_fails_the_dns_step(new_app, run_uploader) -> None:  # noqa: ANN001
    app = new_app()
    flags = doctor_flags(app)
    flags[flags.index("--ingestion-url") + 1] = "https://no-such-host.invalid"
    result = run_uploader("doctor", *flags)
    assert result.returncode == EXIT_FAILED
    assert lines(result)["ingestion"].startswith("FAIL ingestion: DNS: no-such-host.invalid does not resolve")


def test_missing_settings_are_exit_2_and_skip_sign_in(new_app, sandbox, run_uploader) -> None:  # noqa: ANN001
    app = new_app()
    flags = doctor_flags(app)
    del flags[flags.index("--tenant-id"):flags.index("--tenant-id") + 2]
    result = run_uploader("doctor", *flags)
    assert result.returncode == EXIT_USAGE
    found = lines(result)
    assert found["settings"].startswith("FAIL") and "UPLOADER_TENANT_ID" in found["settings"]
    assert found["sign-in"].startswith("SKIP")
    assert found["ingestion"].startswith("PASS")  # what can still be checked, is


def test_non_https_override_is_a_usage_error(new_app, run_uploader) -> None:  # noqa: ANN001
    app = new_app()
    flags = doctor_flags(app)
    flags[flags.index("--ingestion-url") + 1] = "http://127.0.0.1:1"
    result = run_uploader("doctor", *flags)
    assert result.returncode == EXIT_USAGE
    assert "must be an https:// URL" in lines(result)["settings"]


def test_json_gives_one_object_per_check(new_app, sandbox, run_uploader, tmp_path) -> None:  # noqa: ANN001
    app = new_app()
    zone = tmp_path / "dz"
    zone.mkdir()
    env = dict(sandbox.env, UPLOADER_DROPZONE_URL=zone.as_uri(), UPLOADER_CONNECTORS=CONNECTORS)
    result = run_uploader("doctor", *doctor_flags(app), "--log-format", "json", env=env)
    assert result.returncode == EXIT_OK, result.stdout
    records = [json.loads(line) for line in result.stdout.splitlines()]
    checks = [r for r in records if r["event"] == "check"]
    assert [c["check"] for c in checks] == ["settings", "certificate", "sign-in", "ingestion", "connectors",
                                            "dropzone"]
    assert all(c["status"] == PASS for c in checks)
    cert = next(c for c in checks if c["check"] == "certificate")
    assert cert["thumbprint_sha1"] == app.certificate.thumbprint_sha1 and cert["days_to_expiry"] >= 364
    assert records[-1] == {**records[-1], "event": "doctor_summary", "exit_code": 0, "failed": 0}
    assert_no_secrets(result, app.certificate.pem)


# -- drop zones -----------------------------------------------------------------------------------

def test_folder_drop_zone_writable_leaves_nothing_behind(new_app, sandbox, run_uploader, tmp_path) -> None:  # noqa: ANN001
    app = new_app()
    zone = tmp_path / "dz"
    (zone / "incoming").mkdir(parents=True)
    (zone / "incoming" / "a.csv").write_text("EmailAddress\n")
    env = dict(sandbox.env, UPLOADER_DROPZONE_URL=zone.as_uri(), UPLOADER_CONNECTORS=CONNECTORS)
    result = run_uploader("doctor", *doctor_flags(app), env=env)
    assert result.returncode == EXIT_OK, result.stdout
    line = lines(result)["dropzone"]
    assert line.startswith("PASS") and "1 file(s) under incoming/" in line and "state/doctor-" in line
    assert lines(result)["connectors"].startswith("PASS connectors: 1 connector(s): departures")
    assert sorted(p.relative_to(zone).as_posix() for p in zone.rglob("*") if p.is_file()) == ["incoming/a.csv"]


def test_folder_drop_zone_not_writable_fails(new_app, sandbox, run_uploader, tmp_path) -> None:  # noqa: ANN001
    """`state` is taken by a file, so nothing can be written under state/ (works as root too)."""
    app = new_app()
    zone = tmp_path / "dz"
    zone.mkdir()
    (zone / "state").write_text("not a folder")
    env = dict(sandbox.env, UPLOADER_DROPZONE_URL=zone.as_uri(), UPLOADER_CONNECTORS=CONNECTORS)
    result = run_uploader("doctor", *doctor_flags(app), env=env)
    assert result.returncode == EXIT_FAILED, result.stdout
    line = lines(result)["dropzone"]
    assert line.startswith("FAIL") and "writing state/doctor-" in line and "fix: give the job's identity" in line


def test_missing_folder_and_bad_connectors_are_configuration_errors(new_app, sandbox, run_uploader,
                                                                    tmp_path) -> None:  # noqa: ANN001
    app = new_app()
    env = dict(sandbox.env, UPLOADER_DROPZONE_URL=(tmp_path / "nowhere").as_uri(), UPLOADER_CONNECTORS="[{")
    result = run_uploader("doctor", *doctor_flags(app), env=env)
    assert result.returncode == EXIT_USAGE
    found = lines(result)
    assert found["dropzone"].startswith("FAIL") and "does not exist" in found["dropzone"]
    assert found["connectors"].startswith("FAIL") and "not valid JSON" in found["connectors"]


@pytest.mark.azurite
def test_azurite_drop_zone_writable(new_app, sandbox, run_uploader, azurite) -> None:  # noqa: ANN001
    app = new_app()
    url, container = azurite.new_container()
    env = dict(sandbox.env, UPLOADER_DROPZONE_URL=url, UPLOADER_CONNECTORS=CONNECTORS,
               AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
    result = run_uploader("doctor", *doctor_flags(app), env=env)
    assert result.returncode == EXIT_OK, result.stdout
    assert lines(result)["dropzone"].startswith("PASS")
    assert [b.name for b in container.list_blobs()] == []  # the marker is gone
    assert azurite.connection_string.split("AccountKey=")[1].split(";")[0] not in result.stdout


@pytest.mark.azurite
def test_azurite_drop_zone_read_only_fails(new_app, sandbox, run_uploader, azurite) -> None:  # noqa: ANN001
    """A read+list SAS (what a Reader role gives): listing works, the marker write is refused."""
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas
    from azurite_support import DEV_ACCOUNT, DEV_KEY

    app = new_app()
    url, container = azurite.new_container()
    sas = generate_container_sas(DEV_ACCOUNT, container.container_name, account_key=DEV_KEY,
                                 permission=ContainerSasPermissions(read=True, list=True),
                                 expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    conn = f"BlobEndpoint=http://127.0.0.1:{azurite.port}/{DEV_ACCOUNT};SharedAccessSignature={sas}"
    env = dict(sandbox.env, UPLOADER_DROPZONE_URL=url, UPLOADER_CONNECTORS=CONNECTORS,
               AZURE_STORAGE_CONNECTION_STRING=conn)
    result = run_uploader("doctor", *doctor_flags(app), env=env)
    assert result.returncode == EXIT_FAILED, result.stdout
    line = lines(result)["dropzone"]
    assert line.startswith("FAIL") and "writing state/doctor-" in line and "Storage Blob Data Contributor" in line
    assert "sig=" not in result.stdout and sas not in result.stdout


# -- pure checks ----------------------------------------------------------------------------------

@pytest.mark.posix
def test_certificate_not_yet_valid_fails_and_key_exposure_warns() -> None:
    now = dt.datetime.now(dt.UTC)
    bundle = load_bundle(generate_certificate("future", now=now + dt.timedelta(days=2)).pem)
    check = check_certificate(bundle, now=now)
    assert check.status == FAIL and "not valid before" in check.summary and check.exit_code == EXIT_FAILED
    bundle = load_bundle(generate_certificate("ok").pem)
    assert check_certificate(bundle).status == PASS
    check = check_certificate(bundle, exposure="world")
    assert check.status == WARN and "readable by world" in check.summary and "chmod 600" in check.hint


def test_exit_code_configuration_wins_then_live_failures() -> None:
    ok, warn = Check("a", PASS, ""), Check("b", WARN, "")
    live, usage = Check("c", FAIL, "", exit_code=EXIT_FAILED), Check("d", FAIL, "", exit_code=EXIT_USAGE)
    assert exit_code([ok, warn]) == EXIT_OK
    assert exit_code([ok, live]) == EXIT_FAILED
    assert exit_code([live, usage, warn]) == EXIT_USAGE


def test_unknown_aadsts_code_points_at_the_lookup_page() -> None:
    summary, hint, code = explain_sign_in_error("sign-in refused: invalid_client: AADSTS123456: Something.")
    assert code == "123456" and "AADSTS123456" in summary
    assert hint.endswith("https://login.microsoftonline.com/error?code=123456")
    summary, hint, code = explain_sign_in_error("refused: AADSTS90002: Tenant 'x' not found.")
    assert code == "90002" and "tenant was not found" in summary and "--cloud" in hint


def test_direct_path_failure_behind_a_proxy_is_only_a_warning() -> None:
    """With HTTPS_PROXY in force the upload takes the proxy; the direct path failing is not a verdict."""
    url = f"https://127.0.0.1:{closed_port()}"
    direct = check_ingestion(url, timeout=2, verify=certifi.where(), proxied=False)
    assert direct.status == FAIL and direct.exit_code == EXIT_FAILED
    proxied = check_ingestion(url, timeout=2, verify=certifi.where(), proxied=True)
    assert proxied.status == WARN and "a proxy is configured" in proxied.summary
