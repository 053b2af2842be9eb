"""A deliberate wait for Azure RBAC to propagate, as a Pulumi dynamic resource (like certificate.py).

Container Apps fetches the job's Key Vault secret through the job's identity while it *creates* the job, and
fails ("unable to fetch secret ... using Managed identity") when the identity's role assignment is not yet in
force, although the assignment already exists (microsoft/azure-container-apps issues #930, #1174, #1804).
Key Vault documents that a role assignment can take up to 10 minutes (600 seconds) to apply
(https://learn.microsoft.com/azure/key-vault/general/rbac-guide#known-limits-and-performance).

So the job depends on a RoleAssignmentWait keyed to the IDs of the job identity's role assignments:
- create (first `up`, or any `up` that (re)creates a role assignment, which changes the keys): sleep `seconds`;
- diff: a changed key (a new role assignment ID) replaces the wait, i.e. waits again; anything else is no change;
- update and delete: nothing to do (nothing exists outside Pulumi state), so every other `up` costs no time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ResourceProvider, UpdateResult
from pulumi.runtime.rpc import UNKNOWN

TYPE_TOKEN = "pulumi-python:dynamic/hrconnector:RoleAssignmentWait"  # noqa: S105 - a type token
#: Key Vault's documented role-assignment latency: "up to 10 minutes (600 seconds)"
#: (https://learn.microsoft.com/azure/key-vault/general/rbac-guide#known-limits-and-performance).
PROPAGATION_SECONDS = 600
_UNKNOWN = UNKNOWN  # how the dynamic provider's check and diff see a value not known until deployment


def _keys(value: Any) -> list[str] | None:
    """The sorted role assignment IDs, or None while any is unknown (a preview of a (re)created assignment)."""
    if not isinstance(value, list) or any(k == _UNKNOWN for k in value):
        return None
    return sorted(str(k) for k in value)


class RoleAssignmentWaitProvider(ResourceProvider):
    """Sleeps on create; `sleep` is injectable for tests (None: time.sleep)."""

    def __init__(self, sleep: Callable[[float], None] | None = None) -> None:
        super().__init__()
        self._sleep = sleep

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        keys = news.get("roleAssignmentIds")
        if keys != _UNKNOWN and (not isinstance(keys, list) or not keys
                                 or not all(isinstance(k, str) and k for k in keys)):
            failures.append(CheckFailure("roleAssignmentIds", "must be a non-empty list of role assignment IDs"))
        seconds = news.get("seconds")
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
            failures.append(CheckFailure("seconds", "must be a number of seconds (0 or more)"))
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        seconds = float(props["seconds"])
        (self._sleep or time.sleep)(seconds)
        keys = _keys(props["roleAssignmentIds"]) or []
        return CreateResult(id_=f"rbac-wait-{len(keys)}", outs={"roleAssignmentIds": keys, "seconds": props["seconds"]})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        new_keys = _keys(news.get("roleAssignmentIds"))
        replaces = ["roleAssignmentIds"] if new_keys is None or _keys(olds.get("roleAssignmentIds")) != new_keys else []
        changed = bool(replaces) or olds.get("seconds") != news.get("seconds")
        return DiffResult(changes=changed, replaces=replaces, stables=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Only `seconds` changed: the role assignments are the same, so there is nothing to wait for."""
        return UpdateResult(outs={**olds, "seconds": news["seconds"]})

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Nothing exists outside Pulumi state."""


class RoleAssignmentWait(pulumi.dynamic.Resource, module="hrconnector", name="RoleAssignmentWait"):
    """Created (so waited for) once per set of role assignment IDs; make the consumer depend on it."""

    roleAssignmentIds: pulumi.Output[list[str]]  # noqa: N815 - output names are the provider's property names
    seconds: pulumi.Output[float]

    def __init__(
        self,
        name: str,
        role_assignment_ids: pulumi.Input[list[pulumi.Input[str]]],
        seconds: float = PROPAGATION_SECONDS,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {"roleAssignmentIds": role_assignment_ids, "seconds": seconds}
        super().__init__(RoleAssignmentWaitProvider(), name, props, opts)


def mock_create(inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The provider's create without the sleep (used by the offline harness, which runs no real deployment)."""
    props = {k: v for k, v in inputs.items() if not k.startswith("__")}
    result = RoleAssignmentWaitProvider(sleep=lambda _seconds: None).create(props)
    return result.id, {**props, **(result.outs or {})}
