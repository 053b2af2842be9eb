"""Live checks of what a real run needs, sending no HR data (`python -m uploader doctor`, docs/doctor.md).

The first thing to run in a real tenant (docs/doctor.md). Same settings as `upload` (flags and their
UPLOADER_* twins) and, in job mode, `run`'s drop zone and connectors. One line per check:

- settings: tenant, app, cloud and endpoint overrides make sense (https only);
- certificate: readable, key matches, SHA-1/SHA-256 thumbprints, days to expiry (WARN < 30, FAIL expired);
- sign-in: a real MSAL token request to the cloud's authority for the ingestion scope (AADSTS explained);
- ingestion: DNS, TCP and a verified TLS handshake with the ingestion host; no HTTP request is sent;
- connectors and drop zone (job mode): UPLOADER_CONNECTORS parses; a marker is written under
  `state/doctor-…`, read back and deleted.

Exit 0 when nothing failed (warnings allowed), 1 when a live check failed, 2 when a setting is wrong
(that wins: fix the configuration first). Never prints a key, a token or a cell value.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import ssl
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from uploader.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UploaderError, UsageError
from uploader.report import safe_name

if TYPE_CHECKING:
    from uploader.clouds import Cloud
    from uploader.job.dropzone import DropZone, StorageAccess
    from uploader.model.certs import CertificateBundle, PublicCertificate
    from uploader.send.auth import TokenProvider
    from uploader.send.federated import FederatedAssertion
    from uploader.send.keyvault import VaultAssertion
    from uploader.send.settings import SignInSettings

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"
NETWORK_TIMEOUT = 10.0  # seconds for each DNS/TCP/TLS step
MARKER_PREFIX = "state/doctor-"

# What Entra's refusals mean for this uploader, and the fix. Codes and names:
# https://learn.microsoft.com/entra/identity-platform/reference-error-codes
AADSTS: dict[str, tuple[str, str]] = {
    "700016": ("the app (client) ID was not found in this tenant",
               "check --app-id / UPLOADER_APP_ID and --tenant-id; the app must be registered in this tenant"),
    "90002": ("the tenant was not found in this cloud",
              "check --tenant-id and --cloud (GCC High and DoD tenants sign in at login.microsoftonline.us)"),
    "90038": ("the tenant belongs to another national cloud",
              "set --cloud to the tenant's cloud (gcchigh or dod for Azure Government tenants)"),
    "700027": ("the certificate is not registered on the app, has expired, or its signature did not verify",
               "upload this certificate (the SHA-1 thumbprint above) to the app registration's "
               "Certificates & secrets, or renew it"),
    "700024": ("the signed client assertion is outside its valid time range",
               "fix this machine's clock (NTP); the assertion is valid for minutes only"),
    "7000112": ("the application is disabled in this tenant",
                "enable the app's service principal (Enterprise applications > Properties)"),
    "500011": ("the ingestion API's service principal was not found in this tenant",
               "check --scope (older samples used per-cloud resource IDs) and that the tenant has the "
               "Purview HR connector"),
    "70011": ("the requested scope is invalid", "check --scope: a resource URI ending in /.default"),
    "1002012": ("the requested scope is invalid", "check --scope: a resource URI ending in /.default"),
    # --credential federated (the job's managed identity as the app's federated credential):
    "70021": ("the app has no federated identity credential matching the identity's token",
              "run `pulumi up` for the stack (credential: federated makes it) and check the app's Federated "
              "credentials"),
    "700211": ("the federated credential's issuer is not the identity's directory",
               "the issuer must be https://login.microsoftonline.com/<tenant>/v2.0 (.us for GCC High and DoD), with "
               "the app and the identity in the same tenant"),
    "700212": ("the federated credential's audience is not the identity token's",
               "use api://AzureADTokenExchange (api://AzureADTokenExchangeUSGov for GCC High and DoD), and the right "
               "--cloud"),
    "700213": ("the federated credential's subject is not this identity's principal ID",
               "set the subject to the job identity's principal ID (stack output jobIdentityPrincipalId) and let "
               "AZURE_CLIENT_ID name that identity"),
    "53003": ("Conditional Access blocked the sign-in",
              "allow this workload identity (app) or its network location in Conditional Access"),
}


@dataclass(frozen=True)
class Check:
    """One check's outcome: what was checked and found, and on WARN/FAIL the fix."""

    name: str
    status: str  # PASS | WARN | FAIL | SKIP
    summary: str
    hint: str = ""
    exit_code: int = EXIT_OK  # for FAIL: EXIT_FAILED (live) or EXIT_USAGE (a setting)
    facts: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        text = f"{self.status} {self.name}: {self.summary}"
        return f"{text}; fix: {self.hint}" if self.hint and self.status in (WARN, FAIL) else text


def fail(name: str, summary: str, hint: str, *, usage: bool = False, **facts: Any) -> Check:
    return Check(name, FAIL, summary, hint, EXIT_USAGE if usage else EXIT_FAILED, facts)


def exit_code(checks: Iterable[Check]) -> int:
    """2 when a setting is wrong, else 1 when a live check failed, else 0 (warnings allowed)."""
    codes = {c.exit_code for c in checks if c.status == FAIL}
    if EXIT_USAGE in codes:
        return EXIT_USAGE
    return EXIT_FAILED if codes else EXIT_OK


# -- pure checks ------------------------------------------------------------------------------------

def check_certificate(bundle: CertificateBundle | PublicCertificate, now: dt.datetime | None = None,
                      exposure: str | None = None) -> Check:
    """Thumbprints (what Entra shows), key size and the validity window of a loaded bundle (or, with --key-id,
    of the public certificate whose key Key Vault holds)."""
    from uploader.model.certs import EXPIRY_WARNING_DAYS, PublicCertificate, days_to_expiry, expiry_status

    now = now or dt.datetime.now(dt.UTC)
    days = days_to_expiry(bundle.not_after, now)
    facts: dict[str, Any] = {
        "thumbprint_sha1": bundle.thumbprint_sha1, "thumbprint_sha256": bundle.thumbprint_sha256,
        "not_before": bundle.not_before.isoformat(), "not_after": bundle.not_after.isoformat(),
        "days_to_expiry": int(days), "key_bits": bundle.key_bits}
    held = "the key stays in Key Vault" if isinstance(bundle, PublicCertificate) else "private key matches"
    ids = (f"{held}; SHA-1 thumbprint {bundle.thumbprint_sha1} (what Entra shows), "
           f"SHA-256 {bundle.thumbprint_sha256}")
    if bundle.not_before > now:
        return fail("certificate", f"{ids}; not valid before {bundle.not_before:%Y-%m-%d %H:%M} UTC",
                    "check this machine's clock, or wait until the certificate is valid", **facts)
    state, sentence = expiry_status(bundle.not_after, now, EXPIRY_WARNING_DAYS)
    if state == "expired":
        return fail("certificate", f"{ids}; {sentence.split(';')[0]}",
                    "renew the certificate (pulumi up renews it inside renewBeforeDays) and upload it to the app",
                    **facts)
    warnings, hints = [], []
    if state == "expiring":
        warnings.append(sentence.split(";")[0])
        hints.append(f"renew it within {int(days)} days (pulumi up renews it inside renewBeforeDays)")
    if exposure:
        warnings.append(f"the key file is readable by {exposure}")
        hints.append("chmod 600 the PEM file (it holds the private key)")
    if warnings:
        return Check("certificate", WARN, f"{ids}; " + "; ".join(warnings), "; ".join(hints), facts=facts)
    return Check("certificate", PASS, f"{ids}; {sentence} ({int(days)} days)", facts=facts)


def explain_sign_in_error(message: str) -> tuple[str, str, str | None]:
    """(summary, hint, AADSTS code) for a SignInError's text; the code's meaning comes from AADSTS."""
    found = re.search(r"AADSTS(\d+)", message)
    code = found.group(1) if found else None
    if code in AADSTS:
        meaning, hint = AADSTS[code]
        return f"Entra refused: AADSTS{code}: {meaning} ({message})", hint, code
    if code:
        return (f"Entra refused: AADSTS{code} ({message})",
                f"look AADSTS{code} up at https://login.microsoftonline.com/error?code={code}", code)
    if "could not reach" in message:
        return message, "check DNS, firewall and proxy for the authority host (and REQUESTS_CA_BUNDLE)", None
    return message, "check --cloud, --authority-host and --tenant-id", None


def tls_verify_setting(url: str) -> str | bool:
    """What requests (so MSAL and the upload) would verify this URL's TLS with: a CA file/dir or True."""
    import requests

    settings = requests.Session().merge_environment_settings(url, {}, None, None, None)
    # Never None: requests falls back to the session's verify, True unless set (the stub allows None).
    return cast("str | bool", settings["verify"])


def check_ingestion(url: str, *, timeout: float = NETWORK_TIMEOUT, verify: str | bool | None = None,
                    proxied: bool | None = None) -> Check:
    """DNS, TCP and a verified TLS handshake with the ingestion host. No HTTP request, nothing sent."""
    import requests.utils

    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    where = f"{host}:{port}"
    verify = tls_verify_setting(url) if verify is None else verify
    if proxied is None:
        proxied = bool(requests.utils.get_environ_proxies(url))
    severity = WARN if proxied else FAIL
    via_proxy = " (a proxy is configured for it: the upload goes through the proxy, this checked the direct path)"

    def bad(summary: str, hint: str) -> Check:
        if severity == WARN:
            return Check("ingestion", WARN, summary + via_proxy, hint)
        return fail("ingestion", summary, hint)

    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except (socket.gaierror, UnicodeError) as exc:
        return bad(f"DNS: {host} does not resolve ({getattr(exc, 'strerror', None) or type(exc).__name__})",
                   f"check DNS for {host} (and --cloud / --ingestion-url)")
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return bad(f"{host} resolves ({len(addresses)} address(es)) but TCP {where} failed: {type(exc).__name__}",
                   f"allow outbound HTTPS to {host} in the firewall (Microsoft's page asks to allowlist it)")
    try:
        context = ssl.create_default_context()
        if isinstance(verify, str):
            context = ssl.create_default_context(cafile=None if os.path.isdir(verify) else verify,
                                                 capath=verify if os.path.isdir(verify) else None)
        elif verify is True:  # requests' own default bundle
            context = ssl.create_default_context(cafile=requests.utils.DEFAULT_CA_BUNDLE_PATH)
    except (OSError, ssl.SSLError) as exc:
        sock.close()
        return fail("ingestion", f"the CA bundle {safe_name(verify)} to verify TLS with cannot be read "
                    f"({type(exc).__name__})", "point REQUESTS_CA_BUNDLE (and CURL_CA_BUNDLE, if set) at "
                    "an existing PEM file with the CA certificates, or unset it", usage=True)
    try:
        with sock, context.wrap_socket(sock, server_hostname=host) as tls:
            version = tls.version()
            cert = tls.getpeercert() or {}
    except ssl.SSLCertVerificationError as exc:
        return bad(f"TLS with {where}: the server's certificate is not trusted ({safe_name(exc.verify_message)})",
                   "if a TLS-inspecting proxy sits in between, add its CA to REQUESTS_CA_BUNDLE "
                   "(verification is never turned off)")
    except (ssl.SSLError, OSError) as exc:
        return bad(f"TLS handshake with {where} failed: {type(exc).__name__}: {safe_name(exc)}",
                   f"check that {where} is the HTTPS ingestion endpoint (--ingestion-url)")
    until = safe_name(cert.get("notAfter", "?"), 40)
    return Check("ingestion", PASS, f"{host} resolves ({len(addresses)} address(es)); {version} handshake with "
                 f"{where} verified (server certificate valid until {until}); no request sent",
                 facts={"host": host, "port": port, "tls_version": version})


def check_connectors(raw: str | None) -> Check:
    """UPLOADER_CONNECTORS parses as the job reads it (names and job IDs only are shown)."""
    from uploader.job.connectors import CONNECTORS_ENV, load_connectors

    try:
        connectors = load_connectors(raw)
    except UsageError as exc:
        return fail("connectors", str(exc), f"fix {CONNECTORS_ENV} (the stack's `connectors`)", usage=True)
    if not connectors:
        return Check("connectors", WARN, f"{CONNECTORS_ENV} is empty: the job will do nothing",
                     "add the connectors to the stack's `connectors` once the Purview HR connector exists")
    names = ", ".join(f"{safe_name(c.name or '?', 60)} (job {c.job_id})" for c in connectors)
    return Check("connectors", PASS, f"{len(connectors)} connector(s): {names}",
                 facts={"connectors": [{"name": c.name, "job_id": c.job_id} for c in connectors]})


def check_dropzone(zone: DropZone, marker: str | None = None) -> Check:
    """The drop zone lists incoming/ and takes a small marker under state/ (written, read back, deleted)."""
    from uploader.job.dropzone import DropZoneError

    marker = marker or f"{MARKER_PREFIX}{uuid.uuid4().hex[:12]}.json"
    body = {"written_by": "python -m uploader doctor", "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    step = "listing incoming/"
    hint = ("give the job's identity 'Storage Blob Data Contributor' on the container (or, for a folder, "
            "write access for the job's user)")
    try:
        waiting = len(zone.list("incoming/"))
        step = f"writing {marker}"
        zone.write_json(marker, body)
        step = f"reading {marker} back"
        if zone.read_json(marker) != body:
            return fail("dropzone", f"{zone.display}: {marker} did not read back as written", hint)
        step = f"deleting {marker}"
        zone.delete(marker)
        if zone.exists(marker):
            return fail("dropzone", f"{zone.display}: {marker} is still there after delete", hint)
    except DropZoneError as exc:
        return fail("dropzone", str(exc), hint)
    except OSError as exc:
        return fail("dropzone", f"{zone.display}: {step}: {type(exc).__name__}", hint)
    return Check("dropzone", PASS, f"{zone.display}: {waiting} file(s) under incoming/; wrote, read back and "
                 f"deleted {marker}", facts={"files_waiting": waiting})


# -- the checks a run needs, in order ------------------------------------------------------------

@dataclass(frozen=True)
class DoctorSettings:
    """What `doctor` checks, as given (uploader/commands/doctor.py builds it once from its options): the sign-in
    settings `upload` and `run` share, the job ID whose form is checked, and in job mode the connectors and the
    drop zone; `timeout` bounds each network step."""

    sign_in: SignInSettings
    job_id: str | None = None
    dropzone_url: str | None = None
    connectors: str | None = None
    timeout: float = NETWORK_TIMEOUT
    storage: StorageAccess | None = None  # a blob zone's access (None: a folder zone, or none given)


def _settings(doctor: DoctorSettings) -> tuple[Check, Cloud | None]:
    """Required IDs present and well formed, endpoint overrides https: the cloud to check, or None."""
    from uploader.model.mapping import job_id_problem
    from uploader.send.auth import check_ids
    from uploader.send.settings import resolve_cloud

    sign_in = doctor.sign_in
    missing = [flag for flag, value in (("--tenant-id", sign_in.tenant_id), ("--app-id", sign_in.app_id))
               if not (value or "").strip()]
    try:
        cloud = resolve_cloud(sign_in)
    except UsageError as exc:
        return fail("settings", str(exc), "use the https:// URL of the host", usage=True), None
    if missing:
        envs = ", ".join(f"{m} (UPLOADER_{m[2:].upper().replace('-', '_')})" for m in missing)
        return fail("settings", f"{envs} not set", "give the app registration's IDs", usage=True), cloud
    try:
        check_ids((sign_in.tenant_id or "").strip(), (sign_in.app_id or "").strip())
    except UsageError as exc:
        return fail("settings", str(exc), "give the app registration's IDs", usage=True), cloud
    if doctor.job_id and (rule := job_id_problem(doctor.job_id)) is not None:
        return fail("settings", f"--job-id: {rule}", "copy the job ID Purview shows for the connector",
                    usage=True), cloud
    return Check("settings", PASS, f"cloud {cloud.name}: authority {safe_name(cloud.authority_host)}, ingestion "
                 f"{safe_name(cloud.ingestion_url)}, scope {safe_name(cloud.scope)}; tenant "
                 f"{(sign_in.tenant_id or '').strip()}, app {(sign_in.app_id or '').strip()}"
                 + (f", job {doctor.job_id}" if doctor.job_id else ""),
                 facts=cloud.endpoints()), cloud


def _certificate(sign_in: SignInSettings) -> tuple[Check, CertificateBundle | None, str, str]:
    from uploader.model.certs import CertificateError, key_file_exposure, load_bundle
    from uploader.send.settings import read_certificate

    try:
        pem, source = read_certificate(sign_in)
        bundle = load_bundle(pem, source=source)
    except (UsageError, CertificateError) as exc:
        return (fail("certificate", str(exc), "give --certificate PEMFILE (key + certificate) or "
                     "UPLOADER_CERTIFICATE_PEM", usage=True), None, "", "")
    exposure = key_file_exposure(sign_in.certificate) if sign_in.certificate else None
    return check_certificate(bundle, exposure=exposure), bundle, pem, source


def _vault_certificate(doctor: DoctorSettings, cloud: Cloud | None) -> tuple[Check, VaultAssertion | None]:
    """--key-id: the key ID inside the cloud's Key Vault domains and the public certificate alone (no key)."""
    from uploader.send.settings import vault_credential

    if cloud is None:
        return Check("certificate", SKIP, "needs valid settings (see above)"), None
    try:
        assertion = vault_credential(doctor.sign_in, cloud, (doctor.sign_in.app_id or "").strip(),
                                     timeout=doctor.timeout)
    except UsageError as exc:
        return fail("certificate", str(exc), "give --key-id (the versioned key ID the stack outputs) and "
                    "--certificate CERTFILE (the public certificate only)", usage=True), None
    return check_certificate(assertion.certificate), assertion


def vault_checks(assertion: VaultAssertion) -> list[Check]:
    """Vault mode: the managed identity's token for Key Vault, Key Vault's `sign` with the key (a random digest, no
    HR data), and that signature verifying against the certificate given. Stops at the first failure."""
    import hashlib
    import os

    from uploader.errors import SignInError
    from uploader.send.keyvault import SIGN_ACTION

    signer = assertion.signer
    key = signer.key
    try:
        signer.identity.token()
    except SignInError as exc:
        return [fail("identity", str(exc), "run where the job's managed identity is assigned (Container Apps, "
                     "App Service, an Azure VM) and set AZURE_CLIENT_ID to its client ID")]
    who = getattr(signer.identity, "who", "the managed identity")
    checks = [Check("identity", PASS, f"{who} got a token for {key.resource} (token not shown)")]
    signing_input = os.urandom(32)
    try:
        signature = signer.sign(hashlib.sha256(signing_input).digest())
    except UploaderError as exc:
        hint = (f"grant the identity '{SIGN_ACTION}' on the key (the stack's signer role) and allow 10 minutes"
                if exc.exit_code == EXIT_USAGE else f"allow outbound HTTPS to {key.host} (port 443)")
        return [*checks, fail("key-vault", str(exc), hint, usage=exc.exit_code == EXIT_USAGE)]
    checks.append(Check("key-vault", PASS, f"Key Vault {key.host} signed with key {key.name} version {key.version} "
                        "(signature not shown)"))
    try:
        assertion.verify(signing_input, signature)
    except UsageError as exc:
        return [*checks, fail("signature", str(exc), "give the certificate of this key version (the stack's "
                              "certificate output), or the key ID of this certificate", usage=True)]
    return [*checks, Check("signature", PASS, f"the vault's PS256 signature verifies against the certificate "
                           f"(SHA-1 thumbprint {assertion.certificate.thumbprint_sha1})")]


def federated_checks(doctor: DoctorSettings, cloud: Cloud) -> tuple[list[Check], FederatedAssertion | None]:
    """--credential federated: no certificate or key given, a user-assigned identity named, and its token for the
    cloud's federated audience obtained and addressed to that audience (the token is never shown). The assertion
    is returned for the sign-in check only when all passed."""
    from uploader.errors import SignInError
    from uploader.send.settings import federated_credential

    try:
        assertion = federated_credential(doctor.sign_in, cloud, timeout=doctor.timeout)
    except UsageError as exc:
        return [fail("credential", str(exc), "give no --certificate/--key-id, and set AZURE_CLIENT_ID to the job "
                     "identity's client ID", usage=True)], None
    federation = cloud.federation
    assert federation is not None
    issuer = federation.issuer((doctor.sign_in.tenant_id or "").strip())
    checks = [Check("credential", PASS, f"federated: the app trusts user-assigned identity {assertion.client_id} "
                    f"(issuer {issuer}, audience {federation.audience}); no "
                    "certificate or key")]
    try:
        assertion({})
    except SignInError as exc:
        return [*checks, fail("identity", str(exc), "run where the job's user-assigned identity is assigned (the "
                              "stack's Container Apps job) and set AZURE_CLIENT_ID to its client ID")], None
    return [*checks, Check("identity", PASS, f"user-assigned identity {assertion.client_id} got a token for "
                           f"{federation.audience} (token not shown)")], assertion


def _sign_in(tokens: TokenProvider) -> Check:
    import msal

    from uploader.errors import SignInError

    try:
        tokens.token()
    except UsageError as exc:
        return fail("sign-in", str(exc), "upgrade msal (pip install 'msal>=1.35')", usage=True)
    except SignInError as exc:
        summary, hint, code = explain_sign_in_error(str(exc))
        return fail("sign-in", summary, hint, aadsts=code)
    return Check("sign-in", PASS, f"token issued by {safe_name(tokens.authority)} to app {tokens.app_id} for scope "
                 f"{tokens.cloud.scope} (token not shown; MSAL {msal.__version__})")


def run_checks(doctor: DoctorSettings, emit: Callable[[Check], None]) -> list[Check]:
    """Run every check that its inputs allow, emitting each as it completes."""
    checks: list[Check] = []

    def add(check: Check) -> None:
        checks.append(check)
        emit(check)

    sign_in = doctor.sign_in
    settings, cloud = _settings(doctor)
    add(settings)
    assertion: VaultAssertion | FederatedAssertion | None = None
    bundle: CertificateBundle | PublicCertificate | None
    if sign_in.federated:  # no certificate: the identity's token for the federated audience, then sign-in with it
        bundle, pem, source = None, "", "the job's managed identity"
        assertion = None
        if cloud is not None:
            credential, assertion = federated_checks(doctor, cloud)
            for check in credential:
                add(check)
    elif sign_in.key_id:  # vault mode: the public certificate, then identity, sign and verify
        cert, assertion = _vault_certificate(doctor, cloud)
        add(cert)
        bundle, pem, source = (assertion.certificate if assertion else None), "", "--certificate"
        if assertion is not None:
            for check in vault_checks(assertion):
                add(check)
            if checks[-1].status != PASS:
                assertion = bundle = None  # the sign-in below would only repeat the failure
    else:
        cert, bundle, pem, source = _certificate(sign_in)
        add(cert)
    if cloud is not None and (bundle is not None or assertion is not None) and settings.status == PASS:
        from uploader.send.auth import TokenProvider

        try:
            tokens = TokenProvider(cloud, (sign_in.tenant_id or "").strip(), (sign_in.app_id or "").strip(), pem,
                                   source=source, timeout=doctor.timeout, assertion=assertion)
            add(_sign_in(tokens))
        except UploaderError as exc:
            add(fail("sign-in", str(exc), "check the certificate bundle", usage=exc.exit_code == EXIT_USAGE))
    else:
        add(Check("sign-in", SKIP, "needs valid settings and a readable certificate (see above)"))
    if cloud is not None:
        add(check_ingestion(cloud.ingestion_url, timeout=doctor.timeout))
    else:
        add(Check("ingestion", SKIP, "needs a valid --ingestion-url (see above)"))
    job_mode = bool((doctor.dropzone_url or "").strip())  # UPLOADER_DROPZONE_URL set: the job's environment
    if job_mode or doctor.connectors is not None:
        add(check_connectors(doctor.connectors))
    if job_mode:
        add(_dropzone(doctor.dropzone_url or "", doctor.storage))
    return checks


def _dropzone(url: str, storage: StorageAccess | None) -> Check:
    from uploader.job.dropzone import open_dropzone

    try:
        zone = open_dropzone(url.strip(), storage)
    except UsageError as exc:
        return fail("dropzone", str(exc), "fix UPLOADER_DROPZONE_URL", usage=True)
    return check_dropzone(zone)


#: What doctor cannot check. Microsoft documents one ingestion call, the upload itself (POST /api/signals?jobid=,
#: "Set up a connector to import HR data", https://learn.microsoft.com/purview/import-hr-data, step 4), and no
#: request that checks a job ID without sending records (no GET, no header-only or empty upload is documented
#: as free of side effects: a header-only file may well be recorded as a run). So the job ID's binding to this app
#: is proved only by the first real upload (a 403 "jobId and corresponding appId do not match." refuses it).
JOB_BINDING = "job-binding"


def verified_headline(checks: list[Check], job_id: str | None) -> str:
    """The exit-0 headline: what was verified, and what only the first upload can prove."""
    names = {"settings": "settings", "certificate": "certificate", "sign-in": "sign-in",
             "ingestion": "ingestion host (DNS + TLS)", "connectors": "connectors", "dropzone": "drop zone"}
    done = [names.get(c.name, c.name) for c in checks if c.status in (PASS, WARN)]
    jobs = [job_id] if job_id else []
    for c in checks:
        jobs += [str(x.get("job_id")) for x in c.facts.get("connectors", ()) if isinstance(x, dict)]
    job = (f"that job{'s' if len(jobs) > 1 else ''} {', '.join(jobs)} belong{'' if len(jobs) > 1 else 's'} to a "
           "connector bound to this app" if jobs else "any job ID (none given)")
    return (f"verified {', '.join(done)}; NOT verified: {job} (only its form was checked: no documented request "
            "checks it without sending HR data; the first upload proves it, a 403 \"jobId and corresponding "
            "appId do not match.\" means it is wrong)")
