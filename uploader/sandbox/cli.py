"""`python -m uploader sandbox`: start the stand-in, write the ready file, print how to use it, serve."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from uploader.errors import EXIT_USAGE
from uploader.model import sink
from uploader.sandbox.server import SandboxServer, log
from uploader.sandbox.state import SandboxState, StateError
from uploader.sandbox.tls import prepare_tls

LOOPBACK_NAMES = {"localhost"}


def _default_state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "hr-connector", "sandbox")


def _pair(text: str) -> tuple[str, str]:
    left, sep, right = text.partition("=")
    if not sep or not left or not right:
        raise argparse.ArgumentTypeError("expected ID=VALUE")
    return left, right


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sandbox's options (called by uploader.cli when it builds the parser).

    Unlike the uploader's flags these have no UPLOADER_* twins: a shell set up for the uploader
    (UPLOADER_STATE_DIR, say) must not move the sandbox's files.
    """
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (127.0.0.1, ::1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0 = any free port)")
    parser.add_argument("--state-dir", default=_default_state_dir(),
                        help="directory for the sandbox CA (ca.pem), server certificate and received/ bodies")
    parser.add_argument("--ready-file",
                        help="write JSON {url, authority_host, ingestion_url, ca_file, pid} here once listening")
    parser.add_argument("--token-lifetime", type=int, default=3599, help="access token lifetime in seconds")
    parser.add_argument("--app", action="append", type=_pair, default=[], metavar="APP_ID=CERT_PEM_FILE",
                        help="register an app with the certificate in this PEM file (repeatable)")
    parser.add_argument("--job", action="append", type=_pair, default=[], metavar="JOB_ID=APP_ID",
                        help="bind a connector job ID to an app (repeatable)")


def _loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _write_ready(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)


def _instructions(url: str, ca_file: Path, state_dir: Path) -> str:
    return "\n".join([
        f"hr-connector sandbox listening on {url} (loopback only; state in {state_dir})",
        f"Entra stand-in: {url}/<tenant>/oauth2/v2.0/token   ingestion stand-in: {url}/api/signals",
        "Point the uploader at it (these exports make this shell trust only the sandbox CA):",
        f"  export REQUESTS_CA_BUNDLE={ca_file}",
        f"  export SSL_CERT_FILE={ca_file}",
        f"  export CURL_CA_BUNDLE={ca_file}",
        "  python -m uploader upload FILE --tenant-id TENANT --app-id APP --job-id JOB --certificate BUNDLE.pem \\",
        f"      --authority-host {url} --ingestion-url {url}",
        f"Register apps/jobs with --app/--job or the control API: {url}/_sandbox/apps, /_sandbox/jobs, "
        "/_sandbox/faults, /_sandbox/stats",
        f"Accepted bodies are stored under {state_dir / 'received'}/<job id>/ (test data: delete when done).",
        "Stop with Ctrl-C.",
    ])


def main(args: argparse.Namespace) -> int:
    if not _loopback(args.host):
        sink.stderr.line(f"error: --host {args.host}: the sandbox listens on loopback only (127.0.0.1, ::1 or "
                         "localhost); it is a test stand-in without real authentication")
        return EXIT_USAGE
    if not 0 <= args.port <= 65535:
        sink.stderr.line(f"error: --port {args.port}: must be between 0 and 65535")
        return EXIT_USAGE
    if args.token_lifetime < 1:
        sink.stderr.line("error: --token-lifetime: must be at least 1 second")
        return EXIT_USAGE
    state_dir = Path(args.state_dir).expanduser().resolve()
    state = SandboxState(state_dir, token_lifetime=args.token_lifetime)
    try:
        for app_id, pem_file in args.app:
            try:
                pem = Path(pem_file).read_text()
            except OSError as exc:
                sink.stderr.line(f"error: --app {app_id}=...: cannot read {pem_file}: {exc.strerror}")
                return EXIT_USAGE
            state.register_app(app_id, pem)
        for job_id, app_id in args.job:
            state.bind_job(job_id, app_id)
    except StateError as exc:
        sink.stderr.line(f"error: {exc}")
        return EXIT_USAGE
    tls = prepare_tls(state_dir)
    host = "127.0.0.1" if args.host == "localhost" else args.host
    try:
        server = SandboxServer((host, args.port), tls, state)
    except OSError as exc:
        sink.stderr.line(f"error: cannot listen on {host}:{args.port}: {exc.strerror}")
        return EXIT_USAGE
    url = server.url

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    if args.ready_file:
        _write_ready(Path(args.ready_file), {"url": url, "authority_host": url, "ingestion_url": url,
                                            "ca_file": str(tls.ca_file), "pid": os.getpid()})
    sink.stdout.block(_instructions(url, tls.ca_file, state_dir))
    log(f"listening on {url}; {len(args.app)} app(s), {len(args.job)} job(s) registered")
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if args.ready_file:
            Path(args.ready_file).unlink(missing_ok=True)
        log("stopped")
    return 0
