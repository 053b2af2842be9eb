"""The sandbox's request and response values, independent of the HTTP server that carries them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Request:
    method: str
    path: str  # without the query string
    query: dict[str, str]  # first value of each parameter
    headers: dict[str, str]  # lower-case names
    body: bytes
    base_url: str  # https://host:port as the client addressed us
    client_host: str

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    # for the one-line request log: never a body, token or key
    job_id: str | None = None
    records: int | None = None
    note: str | None = None


@dataclass
class Drop:
    """Close the connection without answering (a scripted fault)."""

    job_id: str | None = None


@dataclass
class Stream:
    """A hostile answer the server writes as it goes (a scripted fault), then closes the connection:
    - echo: a text/plain body that is the request body, as a proxy that reflects the request might send;
    - endless: a body that never ends (until the client leaves, or `seconds`);
    - drip: the whole answer, status line included, one byte every `interval` seconds (for `seconds`);
    - badstatus: a malformed status line that repeats the start of the request body."""

    kind: str
    status: int
    request_body: bytes
    seconds: float
    interval: float
    job_id: str | None = None


def json_response(status: int, payload: Any, **kwargs: Any) -> Response:
    return Response(status, json.dumps(payload).encode(), **kwargs)


def text_response(status: int, text: str, **kwargs: Any) -> Response:
    return Response(status, text.encode(), content_type="text/plain; charset=utf-8", **kwargs)


def fault_response(fault: Any, req: Request, job_id: str | None = None) -> Response | Stream:
    """A scripted status or redirect answer. An `echo` fault reflects the request in its error body, as a
    faulty or hostile service might: the Authorization header and the body, so tests can prove the client
    never repeats a service's text."""
    if fault.kind == "redirect":
        return Response(fault.status, b"", headers={"Location": fault.location}, job_id=job_id, note="redirect")
    if fault.kind in ("echo", "endless", "drip", "badstatus"):
        return Stream(fault.kind, fault.status, req.body, fault.seconds, fault.interval, job_id=job_id)
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = f"{fault.retry_after:g}"
    message = f"scripted fault: HTTP {fault.status}"
    if fault.echo:
        reflected = req.body[:4000].decode("utf-8", "replace")
        message = f"could not process request (Authorization: {req.header('authorization')}) {reflected}"
    return json_response(fault.status, {"error": {"code": "SandboxFault", "message": message}},
                         headers=headers, job_id=job_id, note="fault")
