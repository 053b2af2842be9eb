"""`python -m provisioning certs`: every stack's certificate — thumbprint, expiry, days left — from stack outputs.

The outputs come from `pulumi stack output --json --stack <stack>` per stack (the Pulumi CLI, signed in to the
state backend), or from files exported earlier: a directory of `<stack>.json` files (each one stack's
`pulumi stack output --json`) or one JSON file `{"<stack>": {outputs}}`. Only the non-secret outputs
`certificateThumbprint`, `certificateExpiresOn`, `certificateRenewBeforeDays` and `certificateProtection` (where the
key lives: vault, hsm or exportable; a stack deployed before it existed is exportable) are read; nothing secret is
asked for (no `--show-secrets`).

A stack with no outputs yet is "not deployed" (not a failure); a stack whose outputs cannot be read is an
error. Exit 1 when any certificate has fewer than `--warn-days` days left (or expired) or any stack errored.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioning.tools.offline import REPO_ROOT, stack_name

DEFAULT_WARN_DAYS = 14


@dataclass(frozen=True)
class CertificateRow:
    """One stack's certificate as its outputs describe it."""

    stack: str
    status: str  # ok | renewal due | expiring | expired | not deployed | error | federated (no certificate)
    thumbprint: str = ""
    expires_on: str = ""
    days_left: int | None = None
    renew_before_days: int | None = None
    error: str = ""
    protection: str = ""  # vault | hsm | exportable (deployed before `protection` existed: exportable)
    hosted_by: str = ""  # the hosting stack whose environment runs its job ("" self-contained)

    @property
    def renewal_due(self) -> bool:
        """The next `pulumi up` renews it (inside renewBeforeDays, as components/certificate.py decides)."""
        return self.days_left is not None and self.renew_before_days is not None and (
            self.days_left <= self.renew_before_days)

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "status": self.status, "thumbprint": self.thumbprint,
                "expiresOn": self.expires_on, "daysLeft": self.days_left,
                "renewBeforeDays": self.renew_before_days, "renewalDue": self.renewal_due,
                "protection": self.protection, "error": self.error, "hostedBy": self.hosted_by}


def row_from_outputs(stack: str, outputs: dict[str, Any] | None, warn_days: int,
                     now: dt.datetime | None = None) -> CertificateRow:
    """Classify one stack from its outputs (None or {}: not deployed)."""
    if isinstance(outputs, dict) and outputs.get("credential") == "federated":
        return federated_row(stack)
    if not outputs:
        return CertificateRow(stack, "not deployed")
    expires = outputs.get("certificateExpiresOn")
    thumbprint = str(outputs.get("certificateThumbprint") or "")
    if not isinstance(expires, str) or not expires:
        return CertificateRow(stack, "error", thumbprint, error="no certificateExpiresOn output")
    try:
        moment = dt.datetime.fromisoformat(expires.replace("Z", "+00:00"))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    except ValueError:
        return CertificateRow(stack, "error", thumbprint, error="certificateExpiresOn is not an ISO 8601 time")
    days_left = math.floor((moment - (now or dt.datetime.now(dt.UTC))).total_seconds() / 86400)
    renew = outputs.get("certificateRenewBeforeDays")
    renew_before = int(renew) if isinstance(renew, (int, float)) and not isinstance(renew, bool) else None
    # where the key lives; a stack deployed before `protection` existed has no such output and is exportable
    shown = outputs.get("certificateProtection")
    protection = shown if shown in ("vault", "hsm", "exportable") else "exportable"
    row = CertificateRow(stack, "ok", thumbprint, expires, days_left, renew_before)
    if days_left < 0:
        status = "expired"
    elif days_left < warn_days:
        status = "expiring"
    elif row.renewal_due:
        status = "renewal due"
    else:
        status = "ok"
    return CertificateRow(stack, status, thumbprint, expires, days_left, renew_before, protection=protection)


def federated_row(stack: str) -> CertificateRow:
    """A stack with credential: federated has no certificate: listed, never failing, never due for renewal."""
    from provisioning.tools.fleet import FEDERATED_SKIP

    return CertificateRow(stack, "federated", error=FEDERATED_SKIP, protection="none")


def failing(rows: list[CertificateRow]) -> list[CertificateRow]:
    """The rows that make the command exit 1."""
    return [r for r in rows if r.status in ("expired", "expiring", "error")]


def outputs_from_files(source: Path, stacks: list[str]) -> dict[str, dict[str, Any] | None]:
    """Outputs per stack from a directory of <stack>.json files or one {stack: outputs} file."""
    from provisioning.tools.fleet import FleetError

    if source.is_dir():
        found: dict[str, dict[str, Any] | None] = {}
        for name in stacks:
            file = source / f"{name}.json"
            found[name] = _read_json(file) if file.is_file() else None
        return found
    if source.is_file():
        data = _read_json(source)
        if not isinstance(data, dict):
            raise FleetError(f"{source}: must be a JSON object of stack name -> outputs")
        return {name: data.get(name) for name in stacks}
    raise FleetError(f"--outputs {source}: no such file or directory")


def _read_json(path: Path) -> Any:
    from provisioning.tools.fleet import FleetError

    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if text.strip() else None
    except (OSError, json.JSONDecodeError) as exc:
        raise FleetError(f"{path}: not readable JSON ({type(exc).__name__})") from None


def outputs_from_pulumi(stack: str, pulumi: str = "pulumi") -> dict[str, Any] | None | Exception:
    """`pulumi stack output --json --stack <stack>` (no secrets); an exception object when the CLI fails."""
    try:
        done = subprocess.run([pulumi, "stack", "output", "--json", "--non-interactive", "--stack", stack],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return RuntimeError(f"could not run {pulumi}: {type(exc).__name__}")
    if done.returncode != 0:
        lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
        return RuntimeError(lines[-1][:300] if lines else f"pulumi exited {done.returncode}")
    return json.loads(done.stdout) if done.stdout.strip() else None


def inventory(paths: list[Path], warn_days: int, outputs: Path | None = None, pulumi: str = "pulumi",
              now: dt.datetime | None = None) -> list[CertificateRow]:
    """One row per tenant stack file, in order (hosting stacks have no certificate: they group the rows)."""
    from dataclasses import replace

    from provisioning.tools.fleet import hosting_of, is_federated_stack, is_hosting_stack

    hosts = {stack_name(p): hosting_of(p) for p in paths if not is_hosting_stack(p)}
    paths = [p for p in paths if stack_name(p) in hosts]
    federated = {stack_name(p) for p in paths if is_federated_stack(p)}  # nothing to read: no certificate
    names = [stack_name(p) for p in paths if stack_name(p) not in federated]
    found = outputs_from_files(outputs, names) if outputs is not None else {n: outputs_from_pulumi(n, pulumi)
                                                                           for n in names}
    rows = [federated_row(stack_name(p)) for p in paths if stack_name(p) in federated]
    for name in names:
        value = found.get(name)
        if isinstance(value, Exception):
            rows.append(CertificateRow(name, "error", error=str(value)))
        elif value is not None and not isinstance(value, dict):
            rows.append(CertificateRow(name, "error", error="outputs are not a JSON object"))
        else:
            rows.append(row_from_outputs(name, value, warn_days, now))
    return [replace(row, hosted_by=hosts.get(row.stack, "")) for row in rows]


def to_table(rows: list[CertificateRow], warn_days: int) -> str:
    """A Markdown table (fine in a terminal and in a GitHub job summary), most urgent first."""
    def urgency(r: CertificateRow) -> tuple[int, int, str]:
        return (0 if r.status == "error" else 1, r.days_left if r.days_left is not None else 10**6, r.stack)

    lines = ["| stack | status | days left | expires (UTC) | renew before (days) | thumbprint (SHA-1) | hosted by | "
             "key |", "|---|---|---:|---|---:|---|---|---|"]
    # most urgent first across the whole fleet, whichever hosting stack runs the job (the `hosted by` column)
    for r in sorted(rows, key=urgency):
        days = "" if r.days_left is None else str(r.days_left)
        renew = "" if r.renew_before_days is None else str(r.renew_before_days)
        status = f"{r.status}: {r.error}" if r.error else r.status  # federated: why it has no certificate
        lines.append(f"| {r.stack} | {status} | {days} | {r.expires_on} | {renew} | {r.thumbprint} | "
                     f"{r.hosted_by or '-'} | {r.protection} |")
    bad = failing(rows)
    due = [r for r in rows if r.renewal_due]
    lines.append("")
    lines.append(f"{len(rows)} stack(s): {len(bad)} under {warn_days} days, expired or unreadable; "
                 f"{len(due)} inside their renewal window (the next `pulumi up` renews them)")
    return "\n".join(lines)
