"""Log Analytics query API stand-in: `POST /v1/{resourceId}/query` answers a workspace's stored rows.

What `python -m provisioning status` asks through azure-monitor-query (LogsQueryClient.query_resource): the body is
`{"query": KQL, "timespan": ISO 8601 duration}` and the answer `{"tables": [{"name": "PrimaryResult", "columns":
[{"name", "type"}], "rows": [[...]]}]}` (https://learn.microsoft.com/rest/api/loganalytics/dataaccess/query/resource-execute).
It runs no KQL: it answers the TimeGenerated and Log columns of the rows the control API stored for that resource
(`POST /_sandbox/logs {"resource_id", "rows": [{"TimeGenerated", "Log"}]}`), which is what the status query
projects. No bearer token, or one this sandbox's identity endpoint did not issue for this API (its URL is the
audience, as LogsQueryClient asks): 401, as the service answers; a body without query or timespan: 400
BadArgumentError.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from uploader.sandbox.messages import Request, Response, json_response
from uploader.sandbox.state import StateError
from uploader.sandbox.vault import VaultState


@dataclass
class LogsState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    rows: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # resource ID (lower case) -> rows
    queries: int = 0

    def add(self, resource_id: object, rows: object) -> int:
        if not isinstance(resource_id, str) or not resource_id.startswith("/subscriptions/"):
            raise StateError("resource_id: an ARM resource ID, /subscriptions/...")
        if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("Log"), str)
                                                 and isinstance(r.get("TimeGenerated"), str) for r in rows):
            raise StateError("rows: a list of {TimeGenerated, Log} objects (strings)")
        with self.lock:
            stored = self.rows.setdefault(resource_id.lower().rstrip("/"), [])
            stored.extend({"TimeGenerated": r["TimeGenerated"], "Log": r["Log"]} for r in rows)
            return len(stored)


def query(req: Request, resource_id: str, state: LogsState, vault: VaultState) -> Response:
    auth = req.header("authorization")
    if not auth.startswith("Bearer "):
        return json_response(401, {"error": {"code": "AuthorizationRequiredError",
                                             "message": "Valid authentication was not provided"}})
    with vault.lock:
        issued = vault.tokens.get(auth[7:])
    if issued is None or issued[2] <= time.time() or issued[1].rstrip("/") != req.base_url.rstrip("/"):
        return json_response(401, {"error": {"code": "InvalidAuthenticationTokenAudience",
                                             "message": "The access token is not valid for this API"}},
                             note="token refused")
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
