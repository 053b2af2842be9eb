"""HTTPS sessions that never follow a redirect, for sign-in and upload.

A redirect would make requests send the same request (the bearer token, the CSV, the signed client
assertion) to an address nobody configured, so a 3xx answer is a failure that names its status and never
its Location. TLS verification stays on (requests' default; REQUESTS_CA_BUNDLE is honoured).
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter


class RedirectRefused(requests.RequestException):
    """The server answered 3xx; the redirect was not followed (only the status is kept, never the Location)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status} redirect (not followed)")
        self.status = status


def is_redirect_status(status: int) -> bool:
    return 300 <= status < 400


class NoRedirectSession(requests.Session):
    """A requests Session that refuses every redirect, with an optional default timeout.

    MSAL calls `http_client.get/post`, which go through `request`; so does IngestionClient.
    """

    def __init__(self, timeout: float | tuple[float, float] | None = None, retries: int = 0) -> None:
        super().__init__()
        self._timeout = timeout
        if retries:  # MSAL's own session retries a failed connection once; keep that for sign-in
            adapter = HTTPAdapter(max_retries=retries)
            self.mount("https://", adapter)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["allow_redirects"] = False
        if self._timeout is not None and kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        response = super().request(method, url, *args, **kwargs)
        if is_redirect_status(response.status_code):
            status = response.status_code
            response.close()
            raise RedirectRefused(status)
        return response
