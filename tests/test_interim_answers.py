"""Informational (1xx) answers before the final one are interim, everywhere (issue 23, break F).

RFC 9110, section 15.2: a client must parse one or more 1xx answers before the final answer even when it
did not expect one. http.client skips only `100 Continue`, so a `103 Early Hints` used to become the answer
(a permanent "HTTP 103" failure). Each test talks to a scripted loopback listener (tests/hostile_support.py)
through the real session classes: sign-in and upload (BoundedSession), the drop zone's blob transport.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hostile_support import Listener

from uploader.clouds import get_cloud
from uploader.errors import UploadError
from uploader.send.https import MAX_INTERIM, BoundedSession, interim_skipping_session
from uploader.send.ingestion import IngestionClient

HINTS = (b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
         b"HTTP/1.1 102 Processing\r\n\r\n"
         b"HTTP/1.1 100 Continue\r\n\r\n")
FINAL = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\nConnection: close\r\n\r\n"
         b'{"ok": true}')


@pytest.fixture
def hints() -> Iterator[Listener]:
    lst = Listener(answer=HINTS + FINAL)
    yield lst
    lst.close()


class _Tokens:
    def token(self) -> str:
        return "t"


def test_early_hints_before_the_answer_are_skipped_by_the_bounded_session(hints: Listener) -> None:
    with BoundedSession(timeout=5) as session:  # sign-in (MSAL's http_client), Key Vault, ingestion
        answer = session.post(f"http://127.0.0.1:{hints.port}/token", data=b"x")
    assert answer.status_code == 200
    assert answer.json() == {"ok": True}


def test_early_hints_before_an_acceptance_are_not_an_upload_failure(hints: Listener) -> None:
    cloud = get_cloud("commercial").with_overrides(ingestion_url=f"http://127.0.0.1:{hints.port}")
    client = IngestionClient(cloud, _Tokens(), deadline=10, read_timeout=5)
    try:
        assert client.send("00000000-0000-0000-0000-000000000001", b"a,b\n1,2\n") == 0  # accepted, no retry
    finally:
        client.close()


def test_early_hints_are_skipped_by_the_drop_zone_transport(hints: Listener) -> None:
    with interim_skipping_session() as session:
        answer = session.get(f"http://127.0.0.1:{hints.port}/container?restype=container", timeout=5)
    assert answer.status_code == 200


def test_a_flood_of_interim_answers_is_bounded() -> None:
    flood = Listener(answer=b"HTTP/1.1 103 Early Hints\r\n\r\n" * (MAX_INTERIM + 5) + FINAL)
    try:
        cloud = get_cloud("commercial").with_overrides(ingestion_url=f"http://127.0.0.1:{flood.port}")
        client = IngestionClient(cloud, _Tokens(), deadline=1.5, read_timeout=1, base_delay=0.01, max_delay=0.05)
        with pytest.raises(UploadError, match="informational"):
            client.send("00000000-0000-0000-0000-000000000001", b"a\n1\n")
        client.close()
    finally:
        flood.close()


def test_early_hints_are_skipped_by_the_drop_zones_managed_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """The job's identity token for storage (IDENTITY_ENDPOINT, as Container Apps sets it) goes over the same
    connections: azure-identity's own transport read the 103 as the answer ("Expecting value")."""
    import json
    import time

    from uploader.job.dropzone import BlobDropZone, StorageAccess

    body = json.dumps({"access_token": "t0ken", "expires_on": str(int(time.time()) + 3600),
                       "resource": "https://storage.azure.com", "token_type": "Bearer"}).encode()
    identity = Listener(answer=HINTS + b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                        + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    try:
        monkeypatch.setenv("IDENTITY_ENDPOINT", f"http://127.0.0.1:{identity.port}/msi/token")
        monkeypatch.setenv("IDENTITY_HEADER", "header")
        zone = BlobDropZone.from_url("https://account.blob.core.windows.net/hr",
                                     StorageAccess(client_id="00000000-0000-0000-0000-000000000001"))
        assert zone.container.credential.get_token("https://storage.azure.com/.default").token == "t0ken"
    finally:
        identity.close()
