"""The HTTPS server: one threaded HTTP/1.1 (keep-alive) listener on loopback that routes to the stand-ins."""

from __future__ import annotations

import re
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from uploader.model import sink
from uploader.sandbox import control, entra, ingestion, logs, vault
from uploader.sandbox.messages import Drop, Request, Response, Stream, json_response
from uploader.sandbox.state import SandboxState
from uploader.sandbox.tls import TlsMaterial

MAX_BODY = 256 * 1024 * 1024  # bytes; larger requests are refused with 413
IDLE_TIMEOUT = 120  # seconds a keep-alive connection may sit idle
OPENID = re.compile(r"^/([^/]+)/v2\.0/\.well-known/openid-configuration$")
TOKEN = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$")
SIGN = re.compile(r"^/keys/([^/]+)/([^/]+)/sign$")
LOGS_QUERY = re.compile(r"^/v1/+(subscriptions/.+)/query$")

_log_lock = threading.Lock()


def log(line: str) -> None:
    """One line to stderr (request summaries only: never bodies, tokens, assertions or keys)."""
    with _log_lock:
        sink.stderr.line(f"sandbox: {line}")


def route(req: Request, state: SandboxState) -> Response | Drop | Stream:
    if req.path.startswith("/_sandbox/"):
        return control.handle(req, state)
    if req.path == "/api/signals":
        if req.method != "POST":
            return json_response(405, {"error": "use POST"}, headers={"Allow": "POST"})
        return ingestion.signals(req, state)
    if (m := OPENID.match(req.path)) and req.method == "GET":
        return entra.openid_configuration(req, m.group(1), state)
    if (m := TOKEN.match(req.path)) and req.method == "POST":
        return entra.token(req, m.group(1), state)
    if (m := SIGN.match(req.path)) and req.method == "POST":
        return vault.sign(req, m.group(1), m.group(2), state.vault)
    if (m := LOGS_QUERY.match(req.path)) and req.method == "POST":
        return logs.query(req, "/" + m.group(1), state)
    if req.path == "/msi/token" and req.method == "GET":
        return vault.container_apps_token(req, state.vault)
    if req.path == "/metadata/identity/oauth2/token" and req.method == "GET":
        return vault.instance_metadata_token(req, state.vault)
    return json_response(404, {"error": f"not found: {req.method} {req.path}"})


class SandboxServer(ThreadingHTTPServer):
    """ThreadingHTTPServer whose connections are wrapped in TLS in their own thread (slow handshakes
    never block accept)."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], tls: TlsMaterial, state: SandboxState) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.ssl_context = tls.server_context()
        self.tls = tls
        self.state = state
        super().__init__(address, SandboxHandler)

    @property
    def url(self) -> str:
        # An AF_INET/AF_INET6 server: the host is a str (typeshed also allows bytes for other families).
        host, port = cast("tuple[str, int]", self.server_address[:2])
        return f"https://[{host}]:{port}" if ":" in str(host) else f"https://{host}:{port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # TLS handshake refused, reset, timeout: one line, no traceback
            log(f"connection from {client_address[0]} ended: {type(exc).__name__}: {getattr(exc, 'reason', '') or exc}")
            return
        super().handle_error(request, client_address)


class SandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hr-connector-sandbox/1"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    server: SandboxServer

    def setup(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request.settimeout(self.timeout)
        self.request = self.server.ssl_context.wrap_socket(self.request, server_side=True)
        self.server.state.count_connection()
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.request.close()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log(format % args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # one line per request is written by _dispatch, with job and record count

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    def _read_body(self) -> bytes | None:
        """The request body (Content-Length or chunked); None when too large (the answer is 413)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            pieces: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline(128).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(pieces)
                total += size
                if total > MAX_BODY:
                    return None
                pieces.append(self.rfile.read(size))
                self.rfile.readline(8)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        try:
            body = self._read_body()
        except ValueError:
            self._send(json_response(400, {"error": "unreadable request body framing"}), path, close=True)
            return
        if body is None:
            self._send(json_response(413, {"error": f"request body larger than {MAX_BODY} bytes"}), path,
                       close=True)
            return
        host = self.headers.get("Host") or urlsplit(self.server.url).netloc
        req = Request(
            method=self.command, path=path, query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()}, body=body,
            base_url=f"https://{host}", client_host=str(self.client_address[0]),
        )
        result = route(req, self.server.state)
        if isinstance(result, Drop):
            self.close_connection = True
            log(f"{self.command} {path} dropped job={result.job_id or '-'} (scripted fault)")
            return
        if isinstance(result, Stream):
            self.close_connection = True
            log(f"{self.command} {path} {result.kind} job={result.job_id or '-'} (scripted fault)")
            self._stream(result)
            return
        self._send(result, path)

    def _stream(self, fault: Stream) -> None:
        """Write a hostile answer (messages.Stream) until it is done, the client leaves or its time is up."""
        try:
            reason = HTTPStatus(fault.status).phrase
        except ValueError:
            reason = "Error"
        end = time.monotonic() + fault.seconds
        try:
            if fault.kind == "echo":
                head = (f"HTTP/1.1 {fault.status} {reason}\r\nContent-Type: text/plain\r\n"
                        f"Content-Length: {len(fault.request_body)}\r\nConnection: close\r\n\r\n")
                self.wfile.write(head.encode("latin-1") + fault.request_body)
            elif fault.kind == "badstatus":
                echoed = fault.request_body[:300].replace(b"\r", b" ").replace(b"\n", b" ")
                self.wfile.write(b"HTTP/1.1 2OO " + echoed + b"\r\nContent-Length: 0\r\n\r\n")
            elif fault.kind == "endless":
                head = (f"HTTP/1.1 {fault.status} {reason}\r\nContent-Type: text/plain\r\n"
                        "Content-Length: 1000000000000\r\nConnection: close\r\n\r\n")
                self.wfile.write(head.encode("latin-1"))
                block = b"x" * 65536
                while time.monotonic() < end:
                    self.wfile.write(block)
            else:  # drip: the whole answer, one byte at a time
                answer = (f"HTTP/1.1 {fault.status} {reason}\r\nContent-Type: text/plain\r\n"
                          "Content-Length: 1000000\r\nConnection: close\r\n\r\n").encode("latin-1")
                data = answer + b"y" * 1_000_000
                for i in range(len(data)):
                    if time.monotonic() >= end:
                        break
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                    time.sleep(fault.interval)
            self.wfile.flush()
        except OSError:
            pass  # the client left: what a bounded client does

    def _send(self, resp: Response, path: str, close: bool = False) -> None:
        """Write status line, headers and body in one TLS record write (no Nagle stall on keep-alive)."""
        try:
            reason = HTTPStatus(resp.status).phrase
        except ValueError:
            reason = "Error"
        lines = [f"HTTP/1.1 {resp.status} {reason}", f"Server: {self.server_version}",
                 f"Date: {self.date_time_string()}", f"Content-Type: {resp.content_type}",
                 f"Content-Length: {len(resp.body)}", "Cache-Control: no-store"]
        lines += [f"{k}: {v}" for k, v in resp.headers.items()]
        if close:
            self.close_connection = True
        if self.close_connection:
            lines.append("Connection: close")
        extra = ""
        if resp.job_id:
            extra += f" job={resp.job_id}"
        if resp.records is not None:
            extra += f" records={resp.records}"
        if resp.note:
            extra += f" ({resp.note})"
        log(f"{self.command} {path} {resp.status}{extra}")  # before the answer: a client that got it sees the line
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + resp.body)
