"""Exit codes (docs/cli.md) and the exceptions that carry them to the command line."""

from __future__ import annotations

EXIT_OK = 0  # all sent, or nothing left to send
EXIT_FAILED = 1  # upload or sign-in failed
EXIT_USAGE = 2  # bad flag, missing file, unknown cloud, bad mapping
EXIT_INVALID = 3  # CSV invalid: nothing from that file was sent


class UploaderError(Exception):
    """An error the CLI reports as one message and an exit code (never a traceback)."""

    exit_code = EXIT_FAILED


class UsageError(UploaderError):
    """Bad flags or configuration: names the flag, environment variable or config key."""

    exit_code = EXIT_USAGE


class SignInError(UploaderError):
    """Entra refused the sign-in (AADSTS… shown verbatim); permanent."""

    exit_code = EXIT_FAILED


class UploadError(UploaderError):
    """The ingestion service refused or kept failing; `permanent` says whether a retry could help."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, permanent: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent
