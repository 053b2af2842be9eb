"""One module per subcommand (`python -m uploader COMMAND`), each thin: its options, one call into a stage, its
output and exit code. uploader/cli.py imports a command's module only when that command runs. No command module
imports another: what two commands share lives in the stage it belongs to (job/, send/, check/, model/), or here
when it is the turning of options and environment variables into the typed settings the stages take."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from uploader.clouds import FEDERATED
from uploader.model import environment

if TYPE_CHECKING:
    from uploader.job.dropzone import StorageAccess
    from uploader.send.settings import ManagedIdentity, SignInSettings


def sign_in_settings(args: argparse.Namespace) -> SignInSettings:
    """The sign-in options (uploader/cli.py's add_connection_options, flags or UPLOADER_* twins) and the variables
    signing in reads (UPLOADER_CERTIFICATE_PEM, UPLOADER_CERTIFICATE_PASSWORD; with --key-id or --credential
    federated the managed identity's), each read and checked once (uploader/model/environment.py), as the typed
    settings the stages take: the one place `upload`, `run` and `doctor` read them."""
    from uploader.send.settings import SignInSettings

    uses_identity = bool((args.key_id or "").strip()) or args.credential == FEDERATED
    return SignInSettings(cloud=args.cloud, authority_host=args.authority_host, ingestion_url=args.ingestion_url,
                          scope=args.scope, tenant_id=args.tenant_id, app_id=args.app_id,
                          certificate=args.certificate, key_id=args.key_id, key_vault_domain=args.key_vault_domain,
                          credential=args.credential,
                          certificate_pem=environment.read("UPLOADER_CERTIFICATE_PEM"),
                          certificate_password=environment.read("UPLOADER_CERTIFICATE_PASSWORD"),
                          identity=managed_identity() if uses_identity else None)


def managed_identity() -> ManagedIdentity:
    """The managed identity as the environment names it: AZURE_CLIENT_ID (a GUID) and the endpoint MSAL will ask
    (IDENTITY_ENDPOINT when IDENTITY_HEADER is set, as MSAL decides; else AZURE_POD_IDENTITY_AUTHORITY_HOST; else
    the VM's instance metadata endpoint). Both URLs are checked when set, whichever MSAL uses: one holding a user
    name or password is refused (exit 2) before any token is asked for."""
    from uploader.send.settings import IMDS_HOST, ManagedIdentity

    endpoint = environment.read("IDENTITY_ENDPOINT")
    header = environment.read("IDENTITY_HEADER")
    pod = environment.read("AZURE_POD_IDENTITY_AUTHORITY_HOST")
    chosen = endpoint if endpoint and header else pod
    return ManagedIdentity(client_id=environment.read("AZURE_CLIENT_ID"),
                           endpoint_host=environment.host_of(chosen) if chosen else IMDS_HOST)


def storage_access(dropzone_url: str | None, sign_in: SignInSettings) -> StorageAccess:
    """How the drop zone is reached: for a blob container (an http(s) URL) AZURE_STORAGE_CONNECTION_STRING and the
    identity's AZURE_CLIENT_ID, each read and checked once; a folder zone reads neither."""
    from uploader.job.dropzone import StorageAccess

    if not (dropzone_url or "").strip().lower().startswith(("https:", "http:")):
        return StorageAccess()
    client_id = sign_in.identity.client_id if sign_in.identity else environment.read("AZURE_CLIENT_ID")
    return StorageAccess(connection_string=environment.read("AZURE_STORAGE_CONNECTION_STRING"), client_id=client_id)


def check_tls_trust() -> None:
    """Before the first request: the CA bundle requests will read (REQUESTS_CA_BUNDLE, else CURL_CA_BUNDLE, in
    requests' order: sessions.merge_environment_settings) names a file that exists (exit 2 naming the variable; a
    missing one would fail every request later)."""
    if environment.read("REQUESTS_CA_BUNDLE") is None:
        environment.read("CURL_CA_BUNDLE")
