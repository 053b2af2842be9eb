"""Exit codes (docs/cli.md) and the exceptions that carry them to the command line."""

from __future__ import annotations

EXIT_OK = 0  # all sent, or nothing left to send
EXIT_FAILED = 1  # upload or sign-in failed
EXIT_USAGE = 2  # bad flag, missing file, unknown cloud, bad mapping
EXIT_INVALID = 3  # CSV invalid: nothing from that file was sent
EXIT_SET_ASIDE = 4  # sent with rows set aside (--invalid-rows quarantine): the valid rows went, invalid ones kept
EXIT_STOPPED = 5  # stopped by SIGTERM/SIGINT (uploader/stopping.py): the request in flight finished and recorded


class UploaderError(Exception):
    """An error the CLI reports as one message and an exit code (never a traceback)."""

    exit_code = EXIT_FAILED


class UsageError(UploaderError):
    """Bad flags or configuration: names the flag, environment variable or config key."""

    exit_code = EXIT_USAGE


class RunConfigError(UsageError):
    """A configuration error met only when a file is sent (Key Vault refusing to sign: the identity lacks the
    role): every later file would meet it too, so job mode stops the run with exit 2 instead of failing files."""


class SignInError(UploaderError):
    """Entra refused the sign-in (AADSTS… shown verbatim); permanent."""

    exit_code = EXIT_FAILED


class UploadError(UploaderError):
    """The ingestion service refused or kept failing; `permanent` says whether a retry could help."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, permanent: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent


#: Said with every TLS trust failure: requests (so MSAL, azure-identity and the blob client) trusts the bundle
#: REQUESTS_CA_BUNDLE (else CURL_CA_BUNDLE) names, else certifi's; it never reads SSL_CERT_FILE, so naming that one as
#: an alternative sent users to a variable that changes nothing (requests.utils.DEFAULT_CA_BUNDLE_PATH is certifi's).
TLS_TRUST_HINT = ("the server's certificate is not trusted: if a proxy or private endpoint re-signs TLS, point "
                  "REQUESTS_CA_BUNDLE at a PEM file with its CA certificate (SSL_CERT_FILE alone is not read by "
                  "requests); verification is never turned off")


def is_tls_trust_failure(exc: BaseException) -> bool:
    """True for a certificate verification failure anywhere in the exception's chain (requests SSLError)."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if type(seen).__name__ in ("SSLError", "SSLCertVerificationError") or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
