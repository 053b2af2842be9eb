"""What the hostile-input tests share: a one-record resignation file whose cell value must never be printed,
and a loopback TCP listener that counts connections (where a clear-text or redirected request would go)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

COLUMNS = {"userPrincipalName": "EmailAddress", "resignationDate": "ResignationDate",
           "lastWorkingDate": "LastWorkingDate"}
SECRET_UPN = "zqsecret.person@contoso.com"  # a cell value that must never be printed
CSV = f"EmailAddress,ResignationDate,LastWorkingDate\n{SECRET_UPN},2026-11-01T10:00,2026-12-15T17:00\n"


class Listener:
    """A plain TCP listener on loopback that counts connections: a refused request must make none.

    With `answer`, it is a scripted clear-text HTTP server instead: it reads each request (head and
    Content-Length body) and writes `answer` byte for byte (interim 1xx answers, floods, ...), then closes."""

    def __init__(self, answer: bytes | None = None) -> None:
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            if self.answer is not None:
                with contextlib.suppress(OSError):
                    self._reply(conn, self.answer)
            conn.close()

    @staticmethod
    def _reply(conn: socket.socket, answer: bytes) -> None:
        conn.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            piece = conn.recv(65536)
            if not piece:
                return
            data += piece
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            piece = conn.recv(65536)
            if not piece:
                return
            body += piece
        conn.sendall(answer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()
