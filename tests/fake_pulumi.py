"""A stand-in Pulumi CLI for the fleet tests: what the Automation API runs as `<root>/bin/pulumi`.

It answers the commands pulumi.automation sends (`version`, `stack select`, `preview`, `up`, `refresh`,
`stack output`, `stack history`) the way the real CLI does, as far as the Automation API reads them: engine
events (the preview's summary) over the gRPC event stream it is given with `--event-log tcp://...`, JSON for
outputs and history. What each stack does is scripted in $FAKE_PULUMI_DIR/plan.json:
  {"<stack>": {"fail": "message", "sleep": 0.3, "changes": {"update": 1, "same": 9}, "outputs": {...}}}
Every call is appended to $FAKE_PULUMI_DIR/calls.jsonl with its arguments, stack, start and end times, so the
tests see the order, the overlap (parallelism) and the flags (e.g. --replace) of what was run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

VERSION = os.environ.get("FAKE_PULUMI_VERSION", "3.272.0")
STATE = Path(os.environ["FAKE_PULUMI_DIR"])


def _flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else None


def _record(entry: dict) -> None:
    line = json.dumps(entry) + "\n"
    fd = os.open(STATE / "calls.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one write with O_APPEND: lines from parallel processes never mix
    finally:
        os.close(fd)


def _send_events(target: str, events: list[dict]) -> None:
    """Stream engine events to the Automation API's gRPC server (CLI versions after 3.205 do this)."""
    import grpc
    from pulumi.runtime.proto import events_pb2, events_pb2_grpc

    with grpc.insecure_channel(target.removeprefix("tcp://")) as channel:
        stub = events_pb2_grpc.EventsStub(channel)
        stub.StreamEvents(iter([events_pb2.EventRequest(event=json.dumps(e)) for e in events]))


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--non-interactive"]
    if args[:1] == ["version"]:
        print(f"v{VERSION}")
        return 0
    plan = json.loads((STATE / "plan.json").read_text())
    stack = _flag(args, "--stack") or ""
    script = plan.get(stack)
    started = time.time()
    command = " ".join(a for a in args[:2] if not a.startswith("-"))
    if script is None:
        print(f"error: no stack named '{stack}' found", file=sys.stderr)
        return 255
    try:
        if command == "stack select":
            return 0
        if command == "stack output":
            print(json.dumps(script.get("outputs", {})))
            return 0
        if command == "stack history":
            kind = (STATE / f"last-{stack}").read_text() if (STATE / f"last-{stack}").exists() else "update"
            print(json.dumps([{"kind": kind, "startTime": "2026-01-01T00:00:00.000Z", "message": "",
                               "environment": {}, "config": {}, "result": "succeeded",
                               "endTime": "2026-01-01T00:00:01.000Z", "version": 2,
                               "resourceChanges": script.get("changes", {})}]))
            return 0
        if command in ("preview", "up", "refresh"):
            time.sleep(float(script.get("sleep", 0)))
            print(f"{command} {stack}: planning")
            if script.get("fail"):
                print(f"error: {script['fail']}", file=sys.stderr)
                return 255
            changes = script.get("changes", {})
            if "--expect-no-changes" in args and any(v for k, v in changes.items() if k != "same"):
                print("error: no changes were expected but changes occurred", file=sys.stderr)
                return 255
            if command == "preview":
                _send_events(_flag(args, "--event-log") or "", [
                    {"sequence": 1, "timestamp": int(time.time()), "summaryEvent": {
                        "maybeCorrupt": False, "durationSeconds": 1, "resourceChanges": changes, "PolicyPacks": {}}}])
            (STATE / f"last-{stack}").write_text(command)
            print(f"{command} {stack}: done")
            return 0
        print(f"error: fake pulumi does not know `{command}`", file=sys.stderr)
        return 2
    finally:
        _record({"stack": stack, "command": command, "args": args, "start": started, "end": time.time()})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
