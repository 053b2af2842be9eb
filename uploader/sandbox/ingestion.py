"""Purview HR connector ingestion stand-in: `POST /api/signals?jobid=...` with a multipart `file` part.

Order of checks: scripted fault (if one is queued for this request), bearer token (401), its audience the ingestion
API's resource (401), job bound to the token's app (403 with the service's real text), multipart body and CSV text
(400), then the body is stored and counted (200). Bodies are HR test data: never logged, only stored under
the state dir.
"""

from __future__ import annotations

import csv
import io
import time
from email.message import Message

from uploader.clouds import DEFAULT_SCOPE
from uploader.sandbox.messages import Drop, Request, Response, Stream, fault_response, json_response, text_response
from uploader.sandbox.state import ID_PATTERN, SandboxState

#: The audiences an upload's token may carry: the resource of the scope in every Microsoft sample script
#: (`$resource`, https://github.com/microsoft/m365-compliance-connector-sample-scripts/blob/main/sample_script.ps1 and
#: its gcc, ITAR_L4 and ITARL5 twins: the same resource in every cloud since March 2025), and the per-cloud resources
#: those scripts named before (their commit 50040a8, "Update New Resource Id in HR Scripts"): whether the service still
#: accepts them is not published, and --scope exists for them (docs/us-government.md), so they are not refused here.
#: A token for any other resource (Key Vault, Graph, a typo) is.
INGESTION_RESOURCES = frozenset({
    DEFAULT_SCOPE.removesuffix("/.default"),
    "https://microsoft.onmicrosoft.com/4e476d41-2395-42be-89ff-34cb9186a1ac",  # sample_script.ps1 before 2025
    "https://prdtrs01.prod.outlook.com/64342688-40f0-476d-8f18-ccf14147bae1",  # sample_script_gcc.ps1 before 2025
    "https://gsgotrs.onmicrosoft.com/66ace435-1e6f-4305-8abc-96f365388077",  # sample_script_ITAR_L4.ps1 before 2025
    "https://gsgotrs.onmicrosoft.com/f02f9b48-c294-47cf-9b1a-86c1ef71896d",  # sample_script_ITARL5.ps1 before 2025
})
# The service's 403 text, as quoted in https://github.com/microsoft/m365-hrconnector-sample-scripts (README)
MISMATCH_TEXT = "jobId and corresponding appId do not match."
BOM = b"\xef\xbb\xbf"


class BadUpload(ValueError):
    """A request body the service would refuse with 400 (message never contains body content)."""


def _header_param(value: str, header: str, param: str) -> tuple[str, str | None]:
    msg = Message()
    msg[header] = value
    found = msg.get_param(param, header=header)
    if isinstance(found, tuple):  # RFC 2231 encoded parameter
        found = found[2]
    content = msg.get_content_type() if header == "content-type" else ""
    return content, found


def multipart_part(content_type: str, body: bytes, name: str) -> bytes:
    """The content of the multipart/form-data part called `name` (boundary search with bytes.find)."""
    kind, boundary = _header_param(content_type, "content-type", "boundary")
    if kind != "multipart/form-data" or not boundary:
        raise BadUpload("expected a multipart/form-data body with a boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    pos = body.find(delimiter)
    if pos < 0 or (pos > 0 and body[pos - 2:pos] != b"\r\n"):
        raise BadUpload("multipart body does not start with its boundary")
    while True:
        start = pos + len(delimiter)
        if body[start:start + 2] == b"--":
            break  # closing delimiter
        if body[start:start + 2] != b"\r\n":
            raise BadUpload("malformed multipart delimiter line")
        headers_end = body.find(b"\r\n\r\n", start + 2)
        if headers_end < 0:
            raise BadUpload("multipart part without a header block")
        headers = body[start + 2:headers_end].decode("latin-1")
        data_start = headers_end + 4
        nxt = body.find(b"\r\n" + delimiter, data_start)
        if nxt < 0:
            raise BadUpload("multipart body is missing its closing boundary")
        for line in headers.split("\r\n"):
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-disposition":
                _, part_name = _header_param(value.strip(), "content-disposition", "name")
                if part_name == name:
                    return body[data_start:nxt]
        pos = nxt + 2
    raise BadUpload(f"multipart body has no part named '{name}'")


def count_records(data: bytes) -> int:
    """Data records in a CSV text (header excluded). Fast path without quotes: count line breaks."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadUpload(f"the file part is not UTF-8 (byte offset {exc.start})") from None
    if b'"' not in data:  # line breaks as csv.reader sees them: \r\n, \n or a bare \r
        lines = data.count(b"\n")
        if b"\r" in data:
            lines += data.count(b"\r") - data.count(b"\r\n")
        if data and not data.endswith((b"\n", b"\r")):
            lines += 1
        return max(lines - 1, 0)
    text = text.removeprefix("\ufeff")
    try:
        rows = sum(1 for _ in csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise BadUpload(f"the file part is not valid CSV ({exc})") from None
    return max(rows - 1, 0)


def _fault_response(job_id: str | None, state: SandboxState, req: Request) -> Response | Drop | Stream | None:
    fault = state.next_fault(job_id)
    if fault is None:
        return None
    if fault.kind == "slow":
        time.sleep(fault.seconds)
        return None  # then answer normally (the upload may be accepted although the client gave up)
    state.count_rejected(job_id)
    if fault.kind == "drop":
        return Drop(job_id=job_id)
    return fault_response(fault, req, job_id)


def signals(req: Request, state: SandboxState) -> Response | Drop | Stream:
    """POST /api/signals?jobid=..."""
    job_id = req.query.get("jobid") or req.query.get("jobId")
    faulted = _fault_response(job_id, state, req)
    if faulted is not None:
        return faulted
    auth = req.header("authorization")
    scheme, _, bearer = auth.partition(" ")
    claims = state.token_claims(bearer.strip()) if scheme.lower() == "bearer" else None
    if claims is None:
        state.count_rejected(job_id)
        reason = "missing bearer token" if not auth else "invalid or expired bearer token"
        return json_response(401, {"error": {"code": "Unauthorized", "message": reason}},
                             headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}, job_id=job_id,
                             note=reason)
    app_id, _, audience = claims
    if audience not in INGESTION_RESOURCES:
        # A token Entra issued to the app for another resource (another --scope): its audience is not this API's.
        # The service's body for this is not published; RFC 6750 section 3.1 names the answer: 401 invalid_token.
        state.count_rejected(job_id)
        return json_response(401, {"error": {"code": "Unauthorized", "message": "the token's audience is not the "
                                              "ingestion API (ask for the scope " + DEFAULT_SCOPE + ")"}},
                             headers={"WWW-Authenticate": 'Bearer error="invalid_token", '
                                                          'error_description="The audience is invalid"'},
                             job_id=job_id, note="token for another audience")
    if not job_id or not ID_PATTERN.match(job_id):
        return json_response(400, {"error": {"code": "BadRequest", "message": "the jobid query parameter is "
                                              "required"}}, note="no jobid")
    if state.job_app(job_id) != app_id:
        state.count_rejected(job_id)
        return text_response(403, MISMATCH_TEXT, job_id=job_id, note="job/app mismatch")
    try:
        data = multipart_part(req.header("content-type"), req.body, "file")
        records = count_records(data)
    except BadUpload as exc:
        state.count_rejected(job_id)
        return json_response(400, {"error": {"code": "BadRequest", "message": str(exc)}}, job_id=job_id,
                             note=str(exc))
    seq = state.store_upload(job_id, data, records)
    return json_response(200, {"status": "accepted", "jobId": job_id, "records": records, "sequence": seq},
                         job_id=job_id, records=records)
