"""Everything the sandbox remembers, behind one lock: apps, jobs, tokens, queued faults, counters, bodies."""

from __future__ import annotations

import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

# Job and app IDs become directory names under received/: GUID-like text only.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
FAULT_KINDS = ("status", "drop", "slow", "redirect", "echo", "endless", "drip", "badstatus")
FAULT_TARGETS = ("ingestion", "token", "discovery")
#: Faults whose answer is written by the server as it goes (hostile answers): any endpoint takes them.
STREAM_KINDS = ("echo", "endless", "drip", "badstatus")
MAX_STREAM_SECONDS = 300.0
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
MAX_SLOW_SECONDS = 600.0
MAX_RETRY_AFTER = 86400


class StateError(ValueError):
    """A control request the sandbox cannot apply (the message names the field and the rule)."""


@dataclass(frozen=True)
class FederatedCredential:
    """An app's federated identity credential: the (issuer, subject) it trusts, and the audiences accepted
    (https://learn.microsoft.com/graph/api/resources/federatedidentitycredential)."""

    issuer: str
    subject: str
    audiences: tuple[str, ...]


@dataclass
class App:
    """An app registration: its certificate and federated credentials and, optionally, the one tenant it lives in."""

    app_id: str
    tenant_id: str | None
    certificates: list[x509.Certificate] = field(default_factory=list)
    federated: list[FederatedCredential] = field(default_factory=list)


@dataclass
class JobStats:
    uploads: int = 0  # accepted bodies
    records: int = 0  # records in accepted bodies
    rejected: int = 0  # requests for this job answered with anything but 200 (faults included)


@dataclass(frozen=True)
class Fault:
    kind: str
    status: int = 503
    retry_after: float | None = None
    seconds: float = 0.0
    job_id: str | None = None
    location: str | None = None  # redirect: the Location header
    echo: bool = False  # status: the error body reflects the request (its Authorization header and body)
    target: str = "ingestion"  # which endpoint consumes it: ingestion (/api/signals), token or discovery
    interval: float = 0.5  # drip: seconds between bytes


def check_id(value: object, name: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise StateError(f"{name}: expected an ID of letters, digits, '.', '_' or '-' (at most 128)")
    return value


def parse_certificates(pem: object, source: str = "certificate_pem") -> list[x509.Certificate]:
    """The certificates in a PEM text (a key+certificate bundle is fine; the key is ignored)."""
    if not isinstance(pem, str) or "BEGIN CERTIFICATE-----" not in pem:
        raise StateError(f"{source}: no PEM certificate found")
    try:
        return x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise StateError(f"{source}: unreadable PEM certificate") from None


def parse_fault(raw: Any) -> Fault:
    """Validate one fault object from `POST /_sandbox/faults`."""
    if not isinstance(raw, dict):
        raise StateError("faults: each fault must be an object")
    unknown = set(raw) - {"kind", "status", "retry_after", "seconds", "job_id", "location", "echo", "target",
                          "interval"}
    if unknown:
        raise StateError(f"faults: unknown key {sorted(unknown)[0]!r}")
    kind = raw.get("kind")
    if kind not in FAULT_KINDS:
        raise StateError(f"faults: kind must be one of {', '.join(FAULT_KINDS)}")
    job_id = raw.get("job_id")
    if job_id is not None:
        check_id(job_id, "faults: job_id")
    target = raw.get("target", "ingestion")
    if target not in FAULT_TARGETS:
        raise StateError(f"faults: target must be one of {', '.join(FAULT_TARGETS)}")
    if target != "ingestion" and kind not in ("status", "redirect", *STREAM_KINDS):
        raise StateError(f"faults: the {target} endpoint takes status, redirect and "
                         f"{', '.join(STREAM_KINDS)} faults only")
    if kind in STREAM_KINDS:
        status = raw.get("status", 200)
        if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599:
            raise StateError("faults: status must be an HTTP status between 200 and 599")
        seconds = raw.get("seconds", 120)
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 < seconds <= MAX_STREAM_SECONDS:
            raise StateError(f"faults: seconds must be between 0 and {MAX_STREAM_SECONDS:g}")
        interval = raw.get("interval", 0.5)
        if not isinstance(interval, int | float) or isinstance(interval, bool) or not 0 < interval <= 10:
            raise StateError("faults: interval must be between 0 and 10 seconds")
        return Fault(kind, status=status, seconds=float(seconds), job_id=job_id, target=target,
                     interval=float(interval))
    if kind == "redirect":
        status = raw.get("status", 307)
        location = raw.get("location")
        if status not in REDIRECT_STATUSES or isinstance(status, bool):
            raise StateError(f"faults: a redirect status is one of {', '.join(map(str, REDIRECT_STATUSES))}")
        if not isinstance(location, str) or not location.startswith(("https://", "http://")):
            raise StateError("faults: a redirect needs a location (an http(s) URL)")
        return Fault("redirect", status=status, location=location, job_id=job_id, target=target)
    if kind == "status":
        status = raw.get("status", 503)
        if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
            raise StateError("faults: status must be an HTTP error status between 400 and 599")
        retry_after = raw.get("retry_after")
        if retry_after is not None and (not isinstance(retry_after, int | float) or isinstance(retry_after, bool)
                                        or not 0 <= retry_after <= MAX_RETRY_AFTER):
            raise StateError(f"faults: retry_after must be a number of seconds between 0 and {MAX_RETRY_AFTER}")
        echo = raw.get("echo", False)
        if not isinstance(echo, bool):
            raise StateError("faults: echo must be true or false")
        return Fault("status", status=status, retry_after=retry_after, job_id=job_id, echo=echo, target=target)
    if kind == "slow":
        seconds = raw.get("seconds")
        if not isinstance(seconds, int | float) or not 0 <= seconds <= MAX_SLOW_SECONDS:
            raise StateError(f"faults: slow needs seconds between 0 and {MAX_SLOW_SECONDS:g}")
        return Fault("slow", seconds=float(seconds), job_id=job_id)
    return Fault("drop", job_id=job_id)


class SandboxState:
    """Thread-safe in-memory state; accepted bodies are written under state_dir/received/<job>/<seq>.csv."""

    def __init__(self, state_dir: Path, token_lifetime: int = 3599) -> None:
        self.state_dir = state_dir
        self.token_lifetime = token_lifetime
        self._lock = threading.Lock()
        self._apps: dict[str, App] = {}
        self._jobs: dict[str, str] = {}  # job id -> app id
        self._tokens: dict[str, tuple[str, float]] = {}  # access token -> (app id, expiry epoch)
        #: access token -> (tid: the directory whose token endpoint issued it, its resource: the scope without
        #: /.default), what a resource server reads from a real token's `tid` and `aud` claims
        self._token_claims: dict[str, tuple[str, str]] = {}
        self._faults: list[Fault] = []
        self._tokens_issued = 0
        self._token_requests = 0
        self._app_tokens: dict[str, int] = {}
        self._jobs_stats: dict[str, JobStats] = {}
        self._faults_served = 0
        self._connections = 0
        self._next_seq: dict[str, int] = {}
        self._received: dict[str, list[Path]] = {}
        from uploader.sandbox.vault import VaultState

        self.vault = VaultState()  # managed identities, their tokens, the Key Vault stand-in's keys and grants
        from uploader.sandbox.logs import LogsState

        self.logs = LogsState()  # the Log Analytics query API stand-in's rows, per workspace

    # registrations ---------------------------------------------------------------------------------
    def register_app(self, app_id: object, certificate_pem: object, tenant_id: object = None) -> App:
        """Register an app (or add a certificate credential to it, as during a renewal overlap).

        The arguments come unchecked from a control request's JSON body: they are checked here."""
        app_id = check_id(app_id, "app_id")
        if tenant_id is not None:
            tenant_id = check_id(tenant_id, "tenant_id")
        certs = parse_certificates(certificate_pem)
        with self._lock:
            app = self._apps.setdefault(app_id, App(app_id, tenant_id))
            if tenant_id is not None:
                app.tenant_id = tenant_id
            known = {c.fingerprint(hashes.SHA256()) for c in app.certificates}
            app.certificates.extend(c for c in certs if c.fingerprint(hashes.SHA256()) not in known)
            return app

    def register_federated(self, app_id: object, tenant_id: object, issuer: object, subject: object,
                           audiences: object) -> App:
        """Add a federated identity credential to an app (registering it, with no certificate, if new). As in
        Entra, nothing checks that the values are right: a wrong one shows only when the token exchange fails."""
        app_id = check_id(app_id, "app_id")
        if tenant_id is not None:
            tenant_id = check_id(tenant_id, "tenant_id")
        for value, name in ((issuer, "issuer"), (subject, "subject")):
            if not isinstance(value, str) or not value or len(value) > 600:
                raise StateError(f"{name}: expected a non-empty string of at most 600 characters")
        if (not isinstance(audiences, list) or len(audiences) != 1
                or not all(isinstance(a, str) and a for a in audiences)):
            raise StateError("audiences: expected a list of one audience (Entra allows exactly one)")
        assert isinstance(issuer, str) and isinstance(subject, str)
        credential = FederatedCredential(issuer, subject, tuple(audiences))
        with self._lock:
            app = self._apps.setdefault(app_id, App(app_id, tenant_id))
            if tenant_id is not None:
                app.tenant_id = tenant_id
            if credential not in app.federated:
                app.federated.append(credential)
            return app

    def find_app(self, app_id: str) -> App | None:
        """A snapshot of the app's registration (safe to read while another thread adds a certificate)."""
        with self._lock:
            app = self._apps.get(app_id)
            return None if app is None else App(app.app_id, app.tenant_id, list(app.certificates),
                                                list(app.federated))

    def bind_job(self, job_id: object, app_id: object) -> None:
        job_id = check_id(job_id, "job_id")
        app_id = check_id(app_id, "app_id")
        with self._lock:
            self._jobs[job_id] = app_id

    def job_app(self, job_id: str) -> str | None:
        with self._lock:
            return self._jobs.get(job_id)

    def count_connection(self) -> None:
        with self._lock:
            self._connections += 1

    # tokens ----------------------------------------------------------------------------------------
    def count_token_request(self) -> None:
        with self._lock:
            self._token_requests += 1

    def issue_token(self, app_id: str, tenant: str = "", resource: str = "") -> tuple[str, int]:
        """A new opaque access token bound to app_id (issued by `tenant`'s token endpoint, for `resource`), and its
        lifetime in seconds."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = (app_id, time.time() + self.token_lifetime)
            self._token_claims[token] = (tenant.lower(), resource.rstrip("/"))
            self._tokens_issued += 1
            self._app_tokens[app_id] = self._app_tokens.get(app_id, 0) + 1
        return token, self.token_lifetime

    def token_app(self, token: str) -> str | None:
        """The app a still-valid token was issued to, or None."""
        with self._lock:
            entry = self._tokens.get(token)
        if entry is None or entry[1] <= time.time():
            return None
        return entry[0]

    def token_claims(self, token: str) -> tuple[str, str, str] | None:
        """(app id, tid, resource) of a still-valid token, or None."""
        app = self.token_app(token)
        if app is None:
            return None
        with self._lock:
            tid, resource = self._token_claims.get(token, ("", ""))
        return app, tid, resource

    def expire_tokens(self) -> int:
        """Make every issued token expired (to exercise a client's 401 handling)."""
        with self._lock:
            self._tokens = {t: (app, 0.0) for t, (app, _) in self._tokens.items()}
            return len(self._tokens)

    # faults ----------------------------------------------------------------------------------------
    def add_faults(self, faults: list[Fault]) -> int:
        with self._lock:
            self._faults.extend(faults)
            return len(self._faults)

    def next_fault(self, job_id: str | None, target: str = "ingestion") -> Fault | None:
        """Take the first queued fault meant for this request (its endpoint; untargeted, or targeted at its job)."""
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.target == target and (fault.job_id is None or fault.job_id == job_id):
                    self._faults_served += 1
                    return self._faults.pop(i)
        return None

    # uploads ---------------------------------------------------------------------------------------
    def _job_stats(self, job_id: str) -> JobStats:
        return self._jobs_stats.setdefault(job_id, JobStats())

    def count_rejected(self, job_id: str | None) -> None:
        if job_id is None or not ID_PATTERN.match(job_id):
            return
        with self._lock:
            self._job_stats(job_id).rejected += 1

    def store_upload(self, job_id: str, body: bytes, records: int) -> int:
        """Save an accepted body as received/<job>/<seq>.csv, count it, and return its sequence number."""
        check_id(job_id, "job_id")
        folder = self.state_dir / "received" / job_id
        with self._lock:
            if job_id not in self._next_seq:
                folder.mkdir(parents=True, exist_ok=True)
                existing = [int(p.stem) for p in folder.glob("*.csv") if p.stem.isdigit()]
                self._next_seq[job_id] = max(existing, default=0) + 1
            seq = self._next_seq[job_id]
            self._next_seq[job_id] = seq + 1
        path = folder / f"{seq:06d}.csv"
        path.write_bytes(body)
        with self._lock:
            stats = self._job_stats(job_id)
            stats.uploads += 1
            stats.records += records
            self._received.setdefault(job_id, []).append(path)
        return seq

    def received(self, job_id: str) -> list[Path]:
        """Paths of the bodies accepted for job_id by this process, in arrival order."""
        with self._lock:
            return sorted(self._received.get(job_id, []))

    # stats and reset -------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "tokens_issued": self._tokens_issued,
                "token_requests": self._token_requests,
                "apps": {app: {"tokens_issued": n} for app, n in self._app_tokens.items()},
                "jobs": {job: {"uploads": s.uploads, "records": s.records, "rejected": s.rejected}
                         for job, s in self._jobs_stats.items()},
                "faults_pending": len(self._faults),
                "faults_served": self._faults_served,
                "connections": self._connections,
                "vault": self.vault.stats(),
            }

    def reset(self) -> None:
        """Drop queued faults and zero the counters; registrations, tokens and stored bodies stay."""
        with self._lock:
            self._faults.clear()
            self._tokens_issued = 0
            self._token_requests = 0
            self._app_tokens.clear()
            self._jobs_stats.clear()
            self._faults_served = 0
            self._connections = 0
            self._received.clear()
        self.vault.reset()

