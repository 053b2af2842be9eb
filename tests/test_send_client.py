"""IngestionClient's retry loop with a scripted transport (requests adapter) and a fake clock.

The end-to-end behaviour against the real sandbox is in test_upload_e2e.py; this pins the loop's
decisions exactly (which waits, when to give up, which messages) without sleeping.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
import requests
from requests.adapters import BaseAdapter
from urllib3.filepost import encode_multipart_formdata
from urllib3.response import HTTPResponse

from uploader.clouds import get_cloud
from uploader.errors import UploadError
from uploader.send.ingestion import MISMATCH_HINT, IngestionClient, MultipartBody, RetryNotice

Step = Callable[[requests.PreparedRequest], requests.Response]
CLOUD = get_cloud("commercial").with_overrides(ingestion_url="https://ingest.invalid")


class Scripted(BaseAdapter):
    """Answers each request with the next scripted step; remembers what was sent."""

    def __init__(self, steps: list[Step | Exception]) -> None:
        super().__init__()
        self.steps = list(steps)
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs):  # noqa: ANN001, ANN003, ANN201
        self.requests.append(request)
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step(request)

    def close(self) -> None:
        pass


def answer(status: int, body: str = "", headers: dict[str, str] | None = None) -> Step:
    def make(request: requests.PreparedRequest) -> requests.Response:
        raw = HTTPResponse(body=io.BytesIO(body.encode()), status=status, headers=headers or {},
                           preload_content=False)
        response = requests.adapters.HTTPAdapter().build_response(request, raw)
        return response
    return make


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Tokens:
    def __init__(self) -> None:
        self.calls = 0

    def token(self) -> str:
        self.calls += 1
        return "opaque-test-token"


def client(steps: list[Step | Exception], deadline: float = 60.0) -> tuple[IngestionClient, Scripted, Clock]:
    session = requests.Session()
    adapter = Scripted(steps)
    session.mount("https://", adapter)
    clock = Clock()
    c = IngestionClient(CLOUD, Tokens(), deadline=deadline, session=session, sleep=clock.sleep,
                        clock=lambda: clock.now)
    return c, adapter, clock


def test_accepted_chunk_is_one_multipart_post_with_job_and_bearer() -> None:
    c, adapter, clock = client([answer(200, "ok")])
    assert c.send("job-1", b"A,B\r\n1,2\r\n", "x.csv") == 0
    (req,) = adapter.requests
    assert req.method == "POST"
    assert req.url == "https://ingest.invalid/api/signals?jobid=job-1"
    assert req.headers["Authorization"] == "Bearer opaque-test-token"
    assert req.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    body = b"".join(req.body)  # sent in pieces, with a Content-Length (not chunked)
    assert req.headers["Content-Length"] == str(len(body)) and "Transfer-Encoding" not in req.headers
    assert b'name="file"; filename="x.csv"' in body and b"Content-Type: text/csv" in body
    assert b"A,B\r\n1,2\r\n" in body
    assert clock.slept == []


@pytest.mark.parametrize("name", ["data.csv", "Änderungen 2026.csv"])
def test_the_multipart_body_is_what_requests_files_would_send_without_copying_the_chunk(name: str) -> None:
    """Issue 18 (memory): the chunk goes out as it is, between the part's headers and the closing line."""
    chunk = b"A,B\r\n" + b"x,y\r\n" * 1000
    body = MultipartBody(name, chunk, boundary="b0undary")
    expected, content_type = encode_multipart_formdata({"file": (name, chunk, "text/csv")}, boundary="b0undary")
    assert b"".join(body) == expected and len(body) == len(expected) and body.content_type == content_type
    assert any(piece is chunk for piece in body)  # the same object, not a copy
    assert b"".join(body) == b"".join(body)  # each attempt iterates afresh


def test_retry_after_is_honoured_then_success() -> None:
    notices: list[RetryNotice] = []
    c, adapter, clock = client([answer(429, "slow down", {"Retry-After": "7"}), answer(503), answer(200)])
    assert c.send("j", b"h\n", on_retry=notices.append) == 2
    assert clock.slept[0] == 7.0
    assert 0 <= clock.slept[1] <= 1.0  # second retry: full jitter under base * 2
    assert [n.reason for n in notices] == ["HTTP 429", "HTTP 503"]
    assert [n.attempt for n in notices] == [1, 2]
    assert len(adapter.requests) == 3


@pytest.mark.parametrize("error", [
    requests.exceptions.ConnectionError("connection reset by peer"),
    requests.exceptions.ReadTimeout("read timed out"),
    requests.exceptions.ConnectTimeout("connect timed out"),
    requests.exceptions.ChunkedEncodingError("dropped"),
])
def test_connection_failures_are_transient(error: Exception) -> None:
    c, adapter, _ = client([error, answer(200)])
    assert c.send("j", b"h\n") == 1


def test_gives_up_when_the_deadline_would_pass() -> None:
    c, adapter, clock = client([answer(503, headers={"Retry-After": "20"})] * 5, deadline=45)
    with pytest.raises(UploadError) as info:
        c.send("j", b"h\n")
    assert info.value.permanent is False
    assert "deadline" in str(info.value) and "HTTP 503" in str(info.value)
    assert clock.slept == [20.0, 20.0]  # a third wait would end past 45 s
    assert len(adapter.requests) == 3


def test_a_retry_after_beyond_the_deadline_fails_at_once() -> None:
    c, adapter, clock = client([answer(429, headers={"Retry-After": "3600"})], deadline=60)
    with pytest.raises(UploadError, match="asked to wait 3600 s"):
        c.send("j", b"h\n")
    assert clock.slept == []


def test_403_mismatch_is_permanent_with_a_hint() -> None:
    c, adapter, clock = client([answer(403, "jobId and corresponding appId do not match.")])
    with pytest.raises(UploadError) as info:
        c.send("j", b"h\n")
    text = str(info.value)
    assert info.value.permanent is True
    assert "HTTP 403" in text and "jobId and corresponding appId do not match." in text and MISMATCH_HINT in text
    assert clock.slept == [] and len(adapter.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 404, 413])
def test_other_4xx_are_permanent_and_never_repeat_the_service_text(status: int) -> None:
    """A service body may reflect the request (cells, token): only the status and a description are shown."""
    c, adapter, clock = client([answer(status, '{"message": "the service says no to zqcell Bearer zqtok"}')])
    with pytest.raises(UploadError, match=f"HTTP {status}: ") as info:
        c.send("j", b"h\n")
    assert "zq" not in str(info.value) and "says no" not in str(info.value)
    assert len(adapter.requests) == 1


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_permanent_failure_never_followed(status: int) -> None:
    c, adapter, clock = client([answer(status, "", {"Location": "https://steal.invalid/zqsteal"})])
    with pytest.raises(UploadError) as info:
        c.send("j", b"h\n")
    assert info.value.permanent and f"HTTP {status}" in str(info.value) and "redirect" in str(info.value)
    assert "steal" not in str(info.value) and "zq" not in str(info.value)
    assert len(adapter.requests) == 1 and clock.slept == []


def test_tls_errors_are_not_retried() -> None:
    c, adapter, _ = client([requests.exceptions.SSLError("certificate verify failed")])
    with pytest.raises(UploadError, match="TLS error"):
        c.send("j", b"h\n")


def test_long_service_messages_are_shortened() -> None:
    c, adapter, _ = client([answer(400, "x" * 5000)])
    with pytest.raises(UploadError) as info:
        c.send("j", b"h\n")
    assert len(str(info.value)) < 500


class RenewableTokens(Tokens):
    def __init__(self) -> None:
        super().__init__()
        self.invalidated = 0

    def invalidate(self) -> None:
        self.invalidated += 1


def test_a_refused_token_is_renewed_once() -> None:
    c, adapter, clock = client([answer(401, "expired"), answer(200)])
    c.tokens = RenewableTokens()
    assert c.send("j", b"h\n") == 0
    assert c.tokens.invalidated == 1 and c.tokens.calls == 2 and clock.slept == []


def test_a_second_401_is_permanent() -> None:
    c, adapter, clock = client([answer(401, "expired"), answer(401, "still no")])
    c.tokens = RenewableTokens()
    with pytest.raises(UploadError, match="refused the token: HTTP 401: Unauthorized"):
        c.send("j", b"h\n")
    assert len(adapter.requests) == 2
