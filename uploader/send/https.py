"""The one way in for HTTP answers: `BoundedSession`, for sign-in (MSAL's `http_client`) and upload.

- Redirects are never followed: a redirect would make requests send the same request (the bearer token, the
  CSV, the signed client assertion) to an address nobody configured, so a 3xx answer is a failure that names its
  status and never its Location.
- Every answer is read whole, at once, with a size cap (ANSWER_LIMIT) and a wall-clock deadline per request
  (connect, TLS handshake, status line, headers and body together): an endless body, or one dripped a byte at
  a time, ends the request at its deadline instead of filling memory or hanging. A watchdog thread shuts the
  request's socket down when the deadline passes (a blocking read then returns at once). Answers are asked
  for without compression (`Accept-Encoding: identity`), so a small answer cannot inflate.
- TLS verification stays on (requests' default; REQUESTS_CA_BUNDLE is honoured). A CA bundle variable naming a
  file that does not exist is reported as such (CaBundleMissing), not as a traceback.
- Informational answers (any 1xx: `100 Continue`, `103 Early Hints`, …) are interim, never the answer: each
  connection skips them and reads on to the final answer (RFC 9110, section 15.2: "A client MUST be able to
  parse one or more 1xx responses received prior to a final response, even if the client does not expect
  one"), at most MAX_INTERIM of them. http.client skips only `100`; `101 Switching Protocols` is never asked for
  (no `Upgrade` is sent) and stays a final answer, so it is refused like any other unexpected status. The same
  connections serve the drop zone's blob client (`interim_skipping_session`).
- `describe(exc)` turns any requests/urllib3/http.client failure into a short phrase of the program's own words
  (never a service's status line, header or body), for the errors at the edge (auth.py, ingestion.py).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import ssl
import threading
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from uploader.model.safetext import safe_text

#: Largest answer read from Entra or the ingestion service (their answers are a few KiB).
ANSWER_LIMIT = 1024 * 1024
_BLOCK = 16 * 1024


class RedirectRefused(requests.RequestException):
    """The server answered 3xx; the redirect was not followed (only the status is kept, never the Location)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status} redirect (not followed)")
        self.status = status


class AnswerRefused(requests.RequestException):
    """An answer that broke a bound; `status` is its HTTP status when the status line had arrived, else None."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class AnswerTooLarge(AnswerRefused):
    """The answer's body was longer than the cap."""


class AnswerTooSlow(AnswerRefused):
    """The answer was not complete within the request's deadline."""


class CaBundleMissing(requests.RequestException):
    """REQUESTS_CA_BUNDLE (or CURL_CA_BUNDLE, or the session's verify=) names a file or folder that does not
    exist: requests raises a bare OSError for it, before any connection."""


def is_redirect_status(status: int) -> bool:
    return 300 <= status < 400


# -- informational (1xx) answers ---------------------------------------------------------------------

#: Most interim (1xx) answers read before a request's final answer; more is a hostile server (a flood).
MAX_INTERIM = 32


class TooManyInterim(http.client.HTTPException):
    """More than MAX_INTERIM informational answers before the final one."""


class _FinalAnswer(http.client.HTTPResponse):
    """http.client's response, skipping every interim 1xx answer (headers included) but 101 before the final one.

    http.client's own `begin` loops over `100 Continue` only, so a `103 Early Hints` became the answer (with no
    body), leaving the real answer unread on the connection."""

    def _read_status(self) -> tuple[str, int, str]:
        for _ in range(MAX_INTERIM + 1):
            version, status, reason = super()._read_status()  # type: ignore[misc]  # private, stable since 3.0
            if not 100 <= status < 200 or status == 101:
                return version, status, reason
            http.client.parse_headers(self.fp)  # the interim answer's headers (bounded by http.client), dropped
        raise TooManyInterim(f"more than {MAX_INTERIM} informational (1xx) answers before the final answer")


class _FinalHTTPConnection(HTTPConnection):
    response_class = _FinalAnswer


class _FinalHTTPSConnection(HTTPSConnection):
    response_class = _FinalAnswer


# -- the watchdog: a deadline for a whole request -------------------------------------------------------

_current = threading.local()


class _Watchdog:
    """Shuts down the sockets of the connections one request uses once its deadline has passed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self.connections: list[Any] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="answer-deadline", daemon=True)

    def __enter__(self) -> _Watchdog:
        self._previous = getattr(_current, "watchdog", None)
        _current.watchdog = self
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        _current.watchdog = self._previous
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        if self._stop.wait(self.seconds):
            return
        self.fired = True
        while not self._stop.is_set():  # until the request gives up (a connect in progress has no socket yet)
            for conn in list(self.connections):
                sock = getattr(conn, "sock", None)
                if sock is not None:  # the plain socket's shutdown: wakes a blocked read in the other thread
                    with contextlib.suppress(OSError):
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)
            self._stop.wait(0.05)


def _watched(pool: type[HTTPConnectionPool]) -> type[HTTPConnectionPool]:
    class Watched(pool):  # type: ignore[valid-type, misc]
        def _get_conn(self, timeout: float | None = None) -> Any:
            conn = super()._get_conn(timeout)
            watchdog = getattr(_current, "watchdog", None)
            if watchdog is not None:
                watchdog.connections.append(conn)
            return conn

    Watched.ConnectionCls = _FinalHTTPSConnection if issubclass(pool, HTTPSConnectionPool) else _FinalHTTPConnection
    Watched.__name__ = f"Watched{pool.__name__}"
    return Watched


_POOLS = {"http": _watched(HTTPConnectionPool), "https": _watched(HTTPSConnectionPool)}


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter whose connection pools tell the current request's watchdog which connection it uses."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _POOLS
        return manager


class _InterimSkippingAdapter(HTTPAdapter):
    """requests' adapter whose connections skip interim 1xx answers (for clients that read answers themselves)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _FINAL_POOLS


class _FinalHTTPPool(HTTPConnectionPool):
    ConnectionCls = _FinalHTTPConnection


class _FinalHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _FinalHTTPSConnection


_FINAL_POOLS = {"http": _FinalHTTPPool, "https": _FinalHTTPSPool}


def interim_skipping_session() -> requests.Session:
    """A plain requests Session (TLS verified as always) whose connections skip interim 1xx answers: for the blob
    client's transport (azure-core reads and bounds its own answers)."""
    session = requests.Session()
    adapter = _InterimSkippingAdapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


# -- the session ------------------------------------------------------------------------------------------

def _seconds(timeout: Any) -> float | None:
    if isinstance(timeout, tuple):
        parts = [t for t in timeout if t is not None]
        return float(sum(parts)) if parts else None
    return float(timeout) if timeout is not None else None


class BoundedSession(requests.Session):
    """A requests Session that refuses redirects and reads every answer whole within a size cap and a deadline.

    MSAL calls `http_client.get/post`, which go through `request`; so does IngestionClient. `deadline` (seconds
    per request) defaults to the sum of the timeout's parts; a call may pass its own `deadline=`.
    """

    def __init__(self, timeout: float | tuple[float, float] | None = None, retries: int = 0,
                 *, limit: int = ANSWER_LIMIT, deadline: float | None = None) -> None:
        super().__init__()
        self._timeout = timeout
        self.limit = limit
        self.deadline = deadline
        self.headers["Accept-Encoding"] = "identity"
        adapter = _WatchedAdapter(max_retries=retries)  # MSAL's own session retries a connection once
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, deadline: float | None = None,
                **kwargs: Any) -> requests.Response:
        kwargs["allow_redirects"] = False
        kwargs["stream"] = True
        if self._timeout is not None and kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        seconds = deadline or self.deadline or _seconds(kwargs.get("timeout")) or 120.0
        start = time.monotonic()
        status: int | None = None
        with _Watchdog(seconds) as watchdog:
            try:
                response = super().request(method, url, *args, **kwargs)
                status = response.status_code
                if is_redirect_status(status):
                    response.close()
                    raise RedirectRefused(status)
                self._read(response, seconds, watchdog)
            except (RedirectRefused, AnswerRefused):
                raise
            except requests.RequestException:
                if watchdog.fired:
                    raise AnswerTooSlow(f"no complete answer within {seconds:g} s", status) from None
                raise
            except OSError as exc:  # requests' bare OSError for a CA bundle path that does not exist
                if watchdog.fired:
                    raise AnswerTooSlow(f"no complete answer within {seconds:g} s", status) from None
                raise CaBundleMissing(_ca_bundle_problem(self.verify)) from exc
        if watchdog.fired or time.monotonic() - start > seconds:
            response.close()
            raise AnswerTooSlow(f"no complete answer within {seconds:g} s", status)
        return response

    def _read(self, response: requests.Response, seconds: float, watchdog: _Watchdog) -> None:
        """Read the body into the response (so .text and .json() work), within the cap."""
        pieces: list[bytes] = []
        total = 0
        try:
            for piece in response.iter_content(_BLOCK):
                total += len(piece)
                if total > self.limit:
                    raise AnswerTooLarge(f"an answer larger than {_size(self.limit)}",
                                         response.status_code)
                pieces.append(piece)
                if watchdog.fired:
                    break
        except BaseException:
            response.close()
            raise
        if watchdog.fired:
            response.close()
            raise AnswerTooSlow(f"no complete answer within {seconds:g} s", response.status_code)
        response._content = b"".join(pieces)  # noqa: SLF001 - what requests' own .content sets
        response._content_consumed = True  # type: ignore[attr-defined]  # noqa: SLF001
        response.close()  # the body is read: the connection goes back to the pool


def _size(limit: int) -> str:
    return f"{limit / (1024 * 1024):g} MiB" if limit >= 1024 * 1024 else f"{limit / 1024:g} KiB"



def _ca_bundle_problem(verify: Any) -> str:
    """The commands checked REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE before the first request (uploader/commands/
    __init__.py, check_tls_trust); a bundle missing now went away since, or came from `verify`."""
    if isinstance(verify, str) and not os.path.exists(verify):
        return f"the CA bundle {safe_text(verify)} does not exist"
    return ("the CA bundle to verify TLS with could not be read (REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE names it: "
            "point it at a PEM file with the CA certificates to trust, or unset it)")


def _inner(exc: BaseException) -> BaseException | None:
    """The exception urllib3 and requests keep in `.reason` or their arguments rather than as a cause."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        return reason
    return next((arg for arg in exc.args if isinstance(arg, BaseException)), None)


def describe(exc: BaseException) -> str:
    """A short phrase for a transport failure, in the program's own words (escaped; never a service's text)."""
    if isinstance(exc, RedirectRefused):
        return f"HTTP {exc.status} (a redirect, not followed)"
    if isinstance(exc, AnswerRefused | CaBundleMissing):
        return safe_text(str(exc))
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect timeout"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "read timeout"
    seen: BaseException | None = exc
    for _ in range(12):
        if seen is None:
            break
        if isinstance(seen, TooManyInterim):
            return str(seen)
        if isinstance(seen, http.client.BadStatusLine | http.client.LineTooLong):
            return "a malformed HTTP answer (its status line or a header is not HTTP; it is not shown)"
        if isinstance(seen, http.client.RemoteDisconnected | http.client.IncompleteRead):
            return "the connection closed before the answer was complete"
        if isinstance(seen, ssl.SSLCertVerificationError):
            return safe_text(f"TLS: the server's certificate is not trusted ({seen.verify_message})")
        if isinstance(seen, ssl.SSLError):
            return safe_text(f"TLS error ({seen.reason or type(seen).__name__})")
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, ConnectionResetError):
            return "connection reset"
        if isinstance(seen, socket.gaierror):
            return "the host name does not resolve"
        if isinstance(seen, TimeoutError | socket.timeout):
            return "timed out"
        seen = seen.__cause__ or seen.__context__ or _inner(seen)
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection dropped mid-answer"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection error"
    return type(exc).__name__
