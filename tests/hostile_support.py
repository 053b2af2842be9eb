"""What the hostile-input tests share: a one-record resignation file whose cell value must never be printed,
and a loopback TCP listener that counts connections (where a clear-text or redirected request would go)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

COLUMNS = {"userPrincipalName": "EmailAddress", "resignationDate": "ResignationDate",
           "lastWorkingDate": "LastWorkingDate"}
SECRET_UPN = "zqsecret.person@contoso.com"  # a cell value that must never be printed
CSV = f"EmailAddress,ResignationDate,LastWorkingDate\n{SECRET_UPN},2026-11-01T10:00,2026-12-15T17:00\n"


class Listener:
    """A plain TCP listener on loopback that only counts connections: a refused request must make none."""

    def __init__(self) -> None:
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
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()
