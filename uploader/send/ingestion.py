"""Sending one chunk to the ingestion API, with honest retries.

`POST {signals_url}?jobid=...`, multipart/form-data with one part `file` (text/csv), bearer token: the request
Microsoft's sample makes (Push-Data in https://github.com/microsoft/m365-compliance-connector-sample-scripts/blob/main/
sample_script.ps1).
Transient failures (429, 5xx, connection errors, timeouts) are retried with exponential backoff and
full jitter, honouring Retry-After, all within a total deadline per chunk; anything else fails at once
with the service's message. The delay arithmetic is pure (`backoff_delay`, `parse_retry_after`,
`next_delay`) so it is unit-tested without a network.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol

import requests
from urllib3.fields import RequestField
from urllib3.filepost import choose_boundary

from uploader import stopping
from uploader.clouds import DEFAULT_SCOPE, Cloud
from uploader.errors import TLS_TRUST_HINT, UploadError, is_tls_trust_failure
from uploader.report import safe_name
from uploader.send.https import (
    AnswerRefused,
    AnswerTooLarge,
    BoundedSession,
    CaBundleMissing,
    RedirectRefused,
    describe,
    is_redirect_status,
)

BASE_DELAY = 0.5
MAX_DELAY = 30.0
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 120.0

# Source: "Common Errors and resolution" in https://github.com/microsoft/m365-hrconnector-sample-scripts (README)
MISMATCH_TEXT = "jobId and corresponding appId do not match"
MISMATCH_HINT = ("hint: the job ID belongs to another app registration (check --job-id / the mapping's jobId), "
                 "or --app-id is not the app the connector was created with")


class TokenSource(Protocol):
    def token(self) -> str: ...


class _Unauthorized(Exception):
    """HTTP 401: the token was refused (expired or revoked early); one fresh token is worth a try."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class RetryNotice:
    """Told to the reporter before each wait: never contains a token or a cell value."""

    attempt: int  # 1 for the first retry
    delay: float  # seconds about to be slept
    reason: str  # e.g. "HTTP 503", "connection dropped", "read timeout"


def backoff_delay(attempt: int, base: float = BASE_DELAY, cap: float = MAX_DELAY,
                  rand: Callable[[], float] = random.random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)); attempt counts from 0."""
    ceiling = min(cap, base * math.pow(2, min(attempt, 64)))
    return rand() * ceiling


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Retry-After as seconds to wait: delta-seconds or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())


def next_delay(attempt: int, retry_after: float | None, base: float = BASE_DELAY, cap: float = MAX_DELAY,
               rand: Callable[[], float] = random.random) -> float:
    """The wait before retry number attempt+1: the service's Retry-After when given, else jittered backoff."""
    if retry_after is not None:
        return retry_after
    return backoff_delay(attempt, base, cap, rand)


def is_transient_status(status: int) -> bool:
    # Microsoft's sample retries 0/501/503 as "Service unavailable" (and every other failure, 60 s apart):
    # https://github.com/microsoft/m365-compliance-connector-sample-scripts/blob/main/sample_script.ps1 (Push-Data)
    return status == 429 or 500 <= status <= 599


#: Service answers repeated verbatim, recognised by pattern: they cannot carry request data. Source: the
#: 403 text Microsoft's upload sample documents for a job ID of another app
#: (https://learn.microsoft.com/purview/import-hr-data#step-4-run-the-script-to-upload-your-hr-data).
KNOWN_MESSAGES = (re.compile(r"jobId and corresponding appId do not match\."),)

#: What a refusal means when the service's own text is not one of KNOWN_MESSAGES.
STATUS_HINTS = {
    400: "the service could not accept the request",
    401: "the token was refused",
    403: "this app may not send to this job",
    404: "no such endpoint (check --ingestion-url)",
    405: "the endpoint does not accept uploads (check --ingestion-url)",
    408: "the service timed out reading the upload",
    413: "the upload is too large (lower --records-per-call)",
    415: "the service did not accept the upload's format",
}


def service_message(response: requests.Response) -> str:
    """A bounded description of a refusal that cannot carry cell values or tokens.

    A service's error body may reflect the request (the CSV, the Authorization header), so only
    Microsoft's known messages are repeated (KNOWN_MESSAGES); any other body is described by its status.
    """
    text = (response.text or "")[:4096]
    for pattern in KNOWN_MESSAGES:
        found = pattern.search(text)
        if found:
            return found.group(0)
    try:
        phrase = HTTPStatus(response.status_code).phrase
    except ValueError:
        phrase = "error"
    hint = STATUS_HINTS.get(response.status_code)
    detail = f"{phrase} ({hint})" if hint else phrase
    return f"{detail}; the service's own text is not shown (it may repeat the data sent)"


class MultipartBody:
    """One chunk's multipart/form-data body (one part `file`, text/csv), byte for byte what requests' `files=` makes
    (urllib3's encode_multipart_formdata), but sent as three pieces: the part's headers, the chunk, the closing
    line. The chunk is never copied into a second buffer, so a chunk in flight is held in memory once."""

    def __init__(self, name: str, data: bytes, boundary: str | None = None) -> None:
        boundary = boundary or choose_boundary()
        part = RequestField.from_tuples("file", (name, b"", "text/csv"))
        self.content_type = f"multipart/form-data; boundary={boundary}"
        self._pieces = (f"--{boundary}\r\n".encode("latin-1") + part.render_headers().encode("utf-8"), data,
                        f"\r\n--{boundary}--\r\n".encode("latin-1"))

    def __len__(self) -> int:  # requests sends Content-Length (not chunked) when it knows the length
        return sum(map(len, self._pieces))

    def __iter__(self) -> Iterator[bytes]:  # a fresh iterator for each attempt
        return iter(self._pieces)


class IngestionClient:
    """Sends chunks to one cloud's ingestion API over one keep-alive session."""

    def __init__(
        self,
        cloud: Cloud,
        token_provider: TokenSource,
        deadline: float = 300.0,
        session: requests.Session | None = None,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        base_delay: float = BASE_DELAY,
        max_delay: float = MAX_DELAY,
        sleep: Callable[[float], None] = stopping.sleep,  # a retry's wait ends at a stop request
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cloud = cloud
        self.url = cloud.signals_url
        self.tokens = token_provider
        self.deadline = deadline
        # Verifies TLS; honours REQUESTS_CA_BUNDLE; no redirects; every answer read within a cap and a deadline.
        self.session = session or BoundedSession()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._clock = clock

    def close(self) -> None:
        self.session.close()

    def _refused_again(self) -> str:
        """Why a fresh token is refused too (an expired one is not): the API accepts only tokens whose audience is
        its own resource, the scope in every Microsoft sample (clouds.DEFAULT_SCOPE); Entra issues one for any
        `/.default` scope asked, so a wrong --scope shows only here."""
        if self.cloud.scope != DEFAULT_SCOPE:
            return (f"; a fresh token was refused too: it was asked for the scope {safe_name(self.cloud.scope, 200)} "
                    f"(--scope / UPLOADER_SCOPE), not the ingestion API's {DEFAULT_SCOPE}: drop the override")
        return "; a fresh token for the ingestion API's own scope was refused too"

    def send(self, job_id: str, body: bytes, name: str = "data.csv",
             on_retry: Callable[[RetryNotice], None] | None = None) -> int:
        """POST one chunk; returns the number of retries it took. Raises UploadError when it cannot succeed."""
        start = self._clock()
        attempt = 0
        renewed = False
        while True:
            remaining = self.deadline - (self._clock() - start)
            token = self.tokens.token()
            stopping.check()  # a stop asked for during sign-in or before a retry: nothing of this chunk has left
            try:
                reason, retry_after = self._attempt(job_id, body, name, token, max(1.0, remaining))
            except _Unauthorized as exc:
                invalidate = getattr(self.tokens, "invalidate", None)
                if renewed or invalidate is None:
                    raise UploadError(f"the ingestion service refused the token: HTTP 401: {exc.message}"
                                      f"{self._refused_again() if renewed else ''}") from None
                invalidate()  # drop the cached token once and sign in again
                renewed = True
                continue
            if reason is None:
                return attempt
            delay = next_delay(attempt, retry_after, self.base_delay, self.max_delay)
            elapsed = self._clock() - start
            if elapsed + delay >= self.deadline:
                wait = f"; the service asked to wait {retry_after:g} s" if retry_after is not None else ""
                raise UploadError(
                    f"gave up after {attempt + 1} attempts in {elapsed:.1f} s ({reason}{wait}); "
                    f"the deadline is {self.deadline:g} s per chunk (--deadline)",
                    permanent=False,
                )
            attempt += 1
            if on_retry is not None:
                on_retry(RetryNotice(attempt, delay, reason))
            self._sleep(delay)

    def _attempt(self, job_id: str, body: bytes, name: str, token: str,
                 remaining: float) -> tuple[str | None, float | None]:
        """One POST: (None, None) when accepted, (reason, retry_after) when transient; raises when permanent."""
        multipart = MultipartBody(name, body)
        timeout = (min(self.connect_timeout, remaining), min(self.read_timeout, remaining))
        extra: dict[str, Any] = {}
        if isinstance(self.session, BoundedSession):  # the whole attempt, answer included, within this
            extra["deadline"] = min(self.connect_timeout + self.read_timeout, remaining)
        try:
            response = self.session.post(
                self.url,
                params={"jobid": job_id},
                data=multipart,
                headers={"Authorization": f"Bearer {token}", "Content-Type": multipart.content_type},
                timeout=timeout,
                allow_redirects=False,  # a redirect would re-send the CSV and the token elsewhere
                **extra,
            )
        except RedirectRefused as exc:
            raise self._redirect_error(exc.status) from None
        except AnswerRefused as exc:
            if exc.status is not None and 200 <= exc.status < 300:
                return None, None  # accepted: the status says so; the body of an acceptance is never used
            what = "answer too large" if isinstance(exc, AnswerTooLarge) else "answer too slow"
            return f"{what}: {describe(exc)}", None
        except CaBundleMissing as exc:
            raise UploadError(f"TLS trust for {self.cloud.ingestion_url}: {describe(exc)}") from None
        except requests.exceptions.ConnectTimeout:
            return "connect timeout", None
        except requests.exceptions.ReadTimeout:
            return "read timeout", None
        except requests.exceptions.SSLError as exc:  # a trust problem does not heal by retrying
            hint = f"; {TLS_TRUST_HINT}" if is_tls_trust_failure(exc) else ""
            raise UploadError(f"TLS error talking to {self.cloud.ingestion_url}: {describe(exc)}{hint}") from None
        except requests.exceptions.ChunkedEncodingError:
            return "connection dropped mid-answer", None
        except requests.exceptions.ConnectionError as exc:
            return f"connection error ({describe(exc)})", None
        except requests.RequestException as exc:  # anything else requests raises: the program's own words only
            raise UploadError(f"the request to {self.cloud.ingestion_url} failed: {describe(exc)}") from None
        with response:
            status = response.status_code
            if 200 <= status < 300:
                return None, None
            if is_redirect_status(status):
                raise self._redirect_error(status)
            if is_transient_status(status):
                return f"HTTP {status}", parse_retry_after(response.headers.get("Retry-After"))
            message = service_message(response)
        if status == 401:
            raise _Unauthorized(message)
        text = f"the ingestion service refused the upload: HTTP {status}: {message}"
        if status == 403 and MISMATCH_TEXT.lower() in message.lower():
            text += f"\n{MISMATCH_HINT}"
        raise UploadError(text, permanent=True)


    def _redirect_error(self, status: int) -> UploadError:
        return UploadError(f"the ingestion service answered HTTP {status} (a redirect); redirects are never "
                           "followed, so nothing was sent elsewhere (check --ingestion-url)", permanent=True)
