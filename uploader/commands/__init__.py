"""One module per subcommand (`python -m uploader COMMAND`), each thin: its options, one call into a stage, its
output and exit code. uploader/cli.py imports a command's module only when that command runs. No command module
imports another: what two commands share lives in the stage it belongs to (job/, send/, check/, model/)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from uploader.send.settings import SignInSettings


def sign_in_settings(args: argparse.Namespace) -> SignInSettings:
    """The sign-in options (uploader/cli.py's add_connection_options, flags or UPLOADER_* twins) as the typed
    settings the stages take: the one place `upload`, `run` and `doctor` read them from the Namespace."""
    from uploader.send.settings import SignInSettings

    return SignInSettings(cloud=args.cloud, authority_host=args.authority_host, ingestion_url=args.ingestion_url,
                          scope=args.scope, tenant_id=args.tenant_id, app_id=args.app_id,
                          certificate=args.certificate, key_id=args.key_id, key_vault_domain=args.key_vault_domain,
                          credential=args.credential)
