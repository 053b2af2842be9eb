"""The sign-in settings every command that signs in shares (`upload`, `run`, `doctor`): the cloud with its
overrides, the certificate bundle and where it came from, and the certificate's hygiene before any request.

Commands turn their options into one `SignInSettings` (uploader/commands/__init__.py's `sign_in_settings`);
everything here takes that, never argparse's Namespace (tests/test_layers.py enforces it)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from uploader.clouds import FEDERATED, Cloud, get_cloud
from uploader.errors import UsageError
from uploader.model.certs import CERTIFICATE_PEM_ENV, CertificateBundle, PublicCertificate
from uploader.report import Reporter, safe_name

if TYPE_CHECKING:
    from uploader.send.federated import FederatedAssertion
    from uploader.send.keyvault import VaultAssertion

CERTIFICATE_ENV = CERTIFICATE_PEM_ENV
#: Where an Azure VM's managed identity is asked for a token when no other endpoint is set (instance metadata:
#: https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token).
IMDS_HOST = "169.254.169.254"


@dataclass(frozen=True)
class ManagedIdentity:
    """The managed identity Key Vault signing and federated sign-in ask for a token, as the environment names it
    (read and checked once by the command: uploader/model/environment.py). `client_id`: AZURE_CLIENT_ID, a GUID,
    or None for the system-assigned identity. `endpoint_host`: `host[:port]` of the endpoint MSAL will ask
    (IDENTITY_ENDPOINT with IDENTITY_HEADER on Container Apps and App Service, else AZURE_POD_IDENTITY_AUTHORITY_HOST,
    else the VM's instance metadata endpoint), for messages naming what to allow; a URL holding a user name or
    password was refused before this was made."""

    client_id: str | None = None
    endpoint_host: str = IMDS_HOST


@dataclass(frozen=True)
class SignInSettings:
    """How to sign in, as given (flags or their UPLOADER_* twins; None when not given): the cloud and its endpoint
    overrides, the app, and the credential (a certificate bundle, a Key Vault key with its public certificate, or
    the job's federated identity). Values are kept as given; each check below reads them from here. The variables
    outside the parser come checked (uploader/model/environment.py): the PEM text and a PFX's password (never in
    the repr), and the managed identity when --key-id or --credential federated asks for one."""

    cloud: str = "commercial"
    authority_host: str | None = None
    ingestion_url: str | None = None
    scope: str | None = None
    tenant_id: str | None = None
    app_id: str | None = None
    certificate: str | None = None
    key_id: str | None = None
    key_vault_domain: str | None = None
    credential: str | None = None
    certificate_pem: str | None = field(default=None, repr=False)
    certificate_password: str | None = field(default=None, repr=False)
    identity: ManagedIdentity | None = None

    @property
    def federated(self) -> bool:
        """--credential federated (UPLOADER_CREDENTIAL=federated)."""
        return self.credential == FEDERATED


def read_certificate(settings: SignInSettings) -> tuple[str, str]:
    """The PEM bundle text and where it came from: --certificate FILE (or its twin), else UPLOADER_CERTIFICATE_PEM.

    FILE may be a PEM bundle or a PKCS#12 (.pfx/.p12) file, whose password comes from
    UPLOADER_CERTIFICATE_PASSWORD (never from a flag)."""
    from uploader.model.certs import CertificateError, read_pem_file

    path = settings.certificate
    if path:
        try:
            return read_pem_file(path, "--certificate", CERTIFICATE_ENV, password=settings.certificate_password), path
        except CertificateError as exc:
            raise UsageError(str(exc)) from None
    if settings.certificate_pem:
        return settings.certificate_pem, CERTIFICATE_ENV
    raise UsageError(f"--certificate PEMFILE (or the PEM text in {CERTIFICATE_ENV}) is required to sign in")


def check_certificate(bundle: CertificateBundle | PublicCertificate | None, key_file: str | None, source: str,
                      reporter: Reporter) -> None:
    """Before any sign-in: warn when the key file is readable by others or the certificate expires within
    30 days; an expired or not yet valid certificate is a UsageError (Entra would refuse it). None (--credential
    federated): there is no certificate to check."""
    from uploader.model.certs import expiry_status, key_file_exposure

    if bundle is None:
        return
    if key_file and (exposure := key_file_exposure(key_file)):
        reporter.warning(safe_name(key_file), f"the private key file is {exposure}-readable; make it readable by "
                         "its owner only (chmod 600)")
    if bundle.not_before > dt.datetime.now(dt.UTC):
        raise UsageError(f"{safe_name(source)}: the certificate is not valid before "
                         f"{bundle.not_before:%Y-%m-%d %H:%M} UTC; Entra refuses sign-in with it until then (check "
                         "this machine's clock, or wait); nothing was sent")
    level, text = expiry_status(bundle.not_after)
    if level == "expired":
        raise UsageError(f"{safe_name(source)}: {text}; nothing was sent")
    if level == "expiring":
        reporter.warning(safe_name(source), text)


def check_https_url(value: str, flag: str) -> None:
    """An endpoint override: the rule of uploader/model/environment.py's `https_url` (the one check of the option and
    its twin), as a UsageError naming the flag; the URL is never repeated (it may hold a password)."""
    from uploader.model.environment import Invalid, https_url

    try:
        https_url(value)
    except Invalid as exc:
        raise UsageError(f"{flag}: {exc} (the URL is not shown)") from None


def resolve_cloud(settings: SignInSettings) -> Cloud:
    """The cloud table's entry with --authority-host / --ingestion-url / --scope applied (https only)."""
    for flag, given in (("--authority-host", settings.authority_host), ("--ingestion-url", settings.ingestion_url)):
        if given:
            check_https_url(given, flag)
    return get_cloud(settings.cloud).with_overrides(settings.authority_host, settings.ingestion_url, settings.scope)


def read_public_certificate(settings: SignInSettings) -> tuple[PublicCertificate, str]:
    """With --key-id: the public certificate alone (PEM or DER) from --certificate FILE, else from the PEM text in
    UPLOADER_CERTIFICATE_PEM. Anything holding a private key is refused (UsageError, exit 2)."""
    from uploader.model.boundedio import CERTIFICATE_LIMIT, FileReadError, read_file
    from uploader.model.certs import CertificateError, load_public_certificate

    path = settings.certificate
    try:
        if path:
            try:  # the one bounded reader: a regular file of at most 1 MiB, never PEM text where a path belongs
                data = read_file(path, limit=CERTIFICATE_LIMIT, label="--certificate")
            except FileReadError as exc:
                if exc.not_a_path:
                    raise UsageError("--certificate: the value is not a file path (it is not shown); with "
                                     "--key-id give the public certificate's file, or its PEM text in "
                                     f"{CERTIFICATE_ENV}") from None
                raise UsageError(str(exc)) from None
            return load_public_certificate(data, f"--certificate {safe_name(path)}"), path
        if settings.certificate_pem:
            return load_public_certificate(settings.certificate_pem.encode(), CERTIFICATE_ENV), CERTIFICATE_ENV
    except CertificateError as exc:
        raise UsageError(str(exc)) from None
    raise UsageError(f"with --key-id, --certificate CERTFILE (the public certificate, PEM or DER) or its PEM text in "
                     f"{CERTIFICATE_ENV} is required")


def vault_credential(settings: SignInSettings, cloud: Cloud, app_id: str,
                     timeout: float | None = None) -> VaultAssertion:
    """--key-id's assertion source: the key ID checked against the cloud's Key Vault domains first (exit 2 before
    any token is asked for), then the public certificate (exit 2 when it holds a private key)."""
    from uploader.send.keyvault import KEY_TIMEOUT, parse_key_id, vault_assertion

    key_id = settings.key_id or ""
    parse_key_id(key_id, cloud, settings.key_vault_domain)
    certificate, _source = read_public_certificate(settings)
    return vault_assertion(key_id, certificate, cloud, app_id, settings.identity or ManagedIdentity(),
                           domain_override=settings.key_vault_domain, timeout=timeout or KEY_TIMEOUT)


def warn_key_vault_override(settings: SignInSettings, reporter: Reporter) -> None:
    """`--key-vault-domain` is for the sandbox and tests: say so in every run that uses it (a forgotten override in a
    real job's environment would send the identity's token to hosts of that domain)."""
    domain = settings.key_vault_domain
    if settings.key_id and domain and domain.strip():
        reporter.warning("--key-vault-domain", f"Key Vault hosts in {safe_name(domain.strip(), 100)} are accepted "
                         "instead of the cloud's Key Vault domains: for the sandbox and tests only")


def federated_credential(settings: SignInSettings, cloud: Cloud,
                         timeout: float | None = None) -> FederatedAssertion:
    """--credential federated's assertion source: no certificate and no key may be given (exit 2, before any request:
    a federated stack has none, and a leftover one would be a key nobody needs), and AZURE_CLIENT_ID must name the
    user-assigned identity the app trusts."""
    from uploader.send.federated import federated_assertion
    from uploader.send.keyvault import KEY_TIMEOUT

    given = [flag for flag, value in (("--certificate", settings.certificate),
                                      ("--key-id", settings.key_id),
                                      (CERTIFICATE_ENV, settings.certificate_pem))
             if value]
    if given:
        raise UsageError(f"--credential federated signs in with the job's managed identity and takes no certificate "
                         f"or key, but {' and '.join(given)} {'is' if len(given) == 1 else 'are'} set: remove "
                         f"{'it' if len(given) == 1 else 'them'} (nothing was read or sent)")
    return federated_assertion(cloud, settings.identity or ManagedIdentity(), timeout=timeout or KEY_TIMEOUT)
