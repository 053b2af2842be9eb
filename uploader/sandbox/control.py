"""The test-control API under /_sandbox/ (loopback clients only): apps, jobs, faults, stats, reset."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from uploader.sandbox import vault
from uploader.sandbox.messages import Request, Response, json_response
from uploader.sandbox.state import SandboxState, StateError, check_id, parse_fault


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _json_body(req: Request) -> dict[str, Any]:
    try:
        payload = json.loads(req.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise StateError("body: expected a JSON object") from None
    if not isinstance(payload, dict):
        raise StateError("body: expected a JSON object")
    return payload


def handle(req: Request, state: SandboxState) -> Response:
    """Route one /_sandbox/ request; control errors answer 400 with {"error": message}."""
    if not _is_loopback(req.client_host):
        return json_response(403, {"error": "the control API answers loopback clients only"})
    try:
        return _route(req, state)
    except StateError as exc:
        return json_response(400, {"error": str(exc)}, note=str(exc))


def _route(req: Request, state: SandboxState) -> Response:
    parts = req.path.strip("/").split("/")[1:]  # after "_sandbox"
    method = req.method
    if method == "POST" and parts == ["apps"]:
        body = _json_body(req)
        app = state.register_app(body.get("app_id"), body.get("certificate_pem"), body.get("tenant_id"))
        return json_response(201, {"app_id": app.app_id, "tenant_id": app.tenant_id,
                                   "certificates": len(app.certificates)})
    if method == "POST" and parts == ["apps", "federated"]:
        body = _json_body(req)
        app = state.register_federated(body.get("app_id"), body.get("tenant_id"), body.get("issuer"),
                                       body.get("subject"), body.get("audiences"))
        return json_response(201, {"app_id": app.app_id, "tenant_id": app.tenant_id,
                                   "federated_credentials": len(app.federated)})
    if method == "POST" and parts == ["jobs"]:
        body = _json_body(req)
        state.bind_job(body.get("job_id"), body.get("app_id"))
        return json_response(201, {"job_id": body["job_id"], "app_id": body["app_id"]})
    if method == "POST" and parts == ["faults"]:
        body = _json_body(req)
        faults = body.get("faults")
        if not isinstance(faults, list):
            raise StateError("faults: expected a list of fault objects")
        pending = state.add_faults([parse_fault(f) for f in faults])
        return json_response(200, {"faults_pending": pending})
    if method == "POST" and parts and parts[0] in ("identities", "vault"):
        answer = vault.control(req, parts, _json_body(req), state.vault)
        if answer is not None:
            return answer
    if method == "POST" and parts == ["logs"]:
        body = _json_body(req)
        stored = state.logs.add(body.get("resource_id"), body.get("rows"), body.get("tenant_id"))
        return json_response(201, {"rows": stored})
    if method == "GET" and parts == ["stats"]:
        return json_response(200, state.stats())
    if method == "GET" and len(parts) == 3 and parts[0] == "jobs" and parts[2] == "received":
        job_id = check_id(parts[1], "job_id")
        return json_response(200, [str(p) for p in state.received(job_id)])
    if method == "POST" and parts == ["reset"]:
        state.reset()
        return json_response(200, {"reset": True})
    if method == "POST" and parts == ["tokens", "expire"]:
        return json_response(200, {"expired": state.expire_tokens()})
    return json_response(404, {"error": f"no control endpoint {method} {req.path}"})
