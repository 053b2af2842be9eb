"""Log Analytics query API stand-in: `POST /v1/{resourceId}/query` answers a workspace's stored rows.

What `python -m provisioning status` asks through azure-monitor-query (LogsQueryClient.query_resource): the body is
`{"query": KQL, "timespan": ISO 8601 duration}` and the answer `{"tables": [{"name": "PrimaryResult", "columns":
[{"name", "type"}], "rows": [[...]]}]}` (https://learn.microsoft.com/rest/api/loganalytics/dataaccess/query/resource-execute).
It runs no KQL: it answers the TimeGenerated and Log columns of the rows the control API stored for that resource
(`POST /_sandbox/logs {"resource_id", "rows": [{"TimeGenerated", "Log"}]}`), which is what the status query
projects.

Who may ask, as the service decides (its error shapes: https://learn.microsoft.com/azure/azure-monitor/logs/api/errors):
- no Authorization header: 401 `AuthenticationFailed`;
- a token this sandbox did not issue, or one expired: 403 `InvalidAuthenticationToken` ("The access token is
  invalid.");
- a token for another resource (LogsQueryClient asks for `{endpoint}/.default`, the query URL is the audience):
  403 `InvalidAuthenticationTokenAudience`;
- a token from a directory that does not manage the workspace's subscription (its `tid`; the directory registered
  with the rows, `POST /_sandbox/logs {"tenant_id"}`): 403 `InvalidTokenError` with the inner
  `InvalidAuthenticationTokenTenant` naming both issuers, the shape the query API answers
  (https://github.com/microsoft/jupyter-Kqlmagic/issues/96). Azure Resource Manager refuses such a token the same
  way ("This token must be from a tenant that can manage the subscription":
  https://learn.microsoft.com/azure/azure-resource-manager/management/authenticate-multi-tenant), with 401
  (https://github.com/Azure/azure-sdk-for-net/issues/49391); the query API answers its outer `InvalidTokenError`
  with 403 (https://github.com/axios/axios/issues/2653, https://github.com/Azure/azure-sdk-for-js/pull/15399).
  Tokens are the sandbox's opaque ones: a managed identity's carries the tenant it was registered with, an app's the
  tenant whose token endpoint issued it.
A body without query or timespan: 400 BadArgumentError.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from uploader.sandbox.messages import Request, Response, json_response
from uploader.sandbox.state import SandboxState, StateError, check_id


@dataclass
class LogsState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    rows: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # resource ID (lower case) -> rows
    #: subscription ID (lower case) -> the directory that manages it (its tenant ID); a subscription not here is
    #: not checked (a test that does not model directories)
    directories: dict[str, str] = field(default_factory=dict)
    queries: int = 0

    def add(self, resource_id: object, rows: object, tenant_id: object = None) -> int:
        if not isinstance(resource_id, str) or not resource_id.startswith("/subscriptions/"):
            raise StateError("resource_id: an ARM resource ID, /subscriptions/...")
        if tenant_id is not None:
            check_id(tenant_id if isinstance(tenant_id, str) else "", "tenant_id")
        if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("Log"), str)
                                                 and isinstance(r.get("TimeGenerated"), str) for r in rows):
            raise StateError("rows: a list of {TimeGenerated, Log} objects (strings)")
        with self.lock:
            if isinstance(tenant_id, str):
                self.directories[_subscription(resource_id)] = tenant_id.lower()
            stored = self.rows.setdefault(resource_id.lower().rstrip("/"), [])
            stored.extend({"TimeGenerated": r["TimeGenerated"], "Log": r["Log"]} for r in rows)
            return len(stored)


def _subscription(resource_id: str) -> str:
    return resource_id.strip("/").split("/")[1].lower() if resource_id.count("/") >= 2 else ""


def _refuse(status: int, code: str, message: str, inner: dict[str, str] | None = None) -> Response:
    error: dict[str, Any] = {"message": message, "code": code}
    if inner:
        error["innererror"] = inner
    return json_response(status, {"error": error}, note=f"token refused: {(inner or {}).get('code', code)}")


def query(req: Request, resource_id: str, sandbox: SandboxState) -> Response:
    state, vault = sandbox.logs, sandbox.vault
    auth = req.header("authorization")
    if not auth.startswith("Bearer "):
        return json_response(401, {"error": {"code": "AuthenticationFailed",
                                             "message": "Authentication failed. The 'Authorization' header is "
                                                        "missing."}})
    token = auth[7:]
    with vault.lock:
        identity = vault.tokens.get(token)
    claims: tuple[str, str] | None = None  # (tid, resource)
    if identity is not None and identity[2] > time.time():
        claims = (identity[3], identity[1])
    elif (app := sandbox.token_claims(token)) is not None:
        claims = (app[1], app[2])
    if claims is None:
        return _refuse(403, "InvalidAuthenticationToken", "The access token is invalid.")
    tid, resource = claims
    if resource.rstrip("/") != req.base_url.rstrip("/"):
        return _refuse(403, "InvalidAuthenticationTokenAudience",
                       f"The access token has been obtained from wrong audience or resource '{resource[:200]}'. It "
                       f"should exactly match (including forward slash) with one of the allowed audiences "
                       f"'{req.base_url}'.")
    with state.lock:
        directory = state.directories.get(_subscription(resource_id))
    if directory is not None and tid != directory:
        return _refuse(403, "InvalidTokenError", "The provided authentication is not valid for this resource", {
            "code": "InvalidAuthenticationTokenTenant",
            "message": f"The access token is from the wrong issuer '{req.base_url}/{tid or '(none)'}/'. It must "
                       f"match the tenant '{req.base_url}/{directory}/' associated with this subscription. Please "
                       f"use the authority (URL) '{req.base_url}/{directory}' to get the token."})
    try:
        body: Any = json.loads(req.body or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("query"), str) or not body.get("timespan"):
        return json_response(400, {"error": {"code": "BadArgumentError",
                                             "message": "The request had some invalid properties"}})
    with state.lock:
        state.queries += 1
        rows = list(state.rows.get(resource_id.lower().rstrip("/"), []))
    return json_response(200, {"tables": [{"name": "PrimaryResult",
                                           "columns": [{"name": "TimeGenerated", "type": "datetime"},
                                                       {"name": "Log", "type": "string"}],
                                           "rows": [[r["TimeGenerated"], r["Log"]] for r in rows]}]},
                         note=f"{len(rows)} row(s)")
