"""A graceful stop on SIGTERM or SIGINT: the request in flight is finished and recorded, then the run stops.

Container Apps stops a container with SIGTERM and, if it has not ended, with SIGKILL ("Shutdown" in
https://learn.microsoft.com/azure/container-apps/application-lifecycle-management) once its termination grace
period has passed (30 s by default for a container app's instances: `terminationGracePeriodSeconds`, "Defaults to 30
seconds", https://learn.microsoft.com/javascript/api/@azure/arm-appcontainers/template; a job's template,
`JobTemplate`, exposes no such setting: https://learn.microsoft.com/javascript/api/@azure/arm-appcontainers/
jobtemplate, and neither does pulumi-azure-native's `app.JobTemplateArgs`, so the job runs with the default).
Stopping at once threw away the chunk in flight: the service had it, its checkpoint did not, so the next run sent
it again.

- The first signal asks for a stop (`requested()`): the command goes on until the chunk in flight is answered and
  its checkpoint written, then `check()` raises `Stopped` at the next stop point (before each chunk, after each
  acknowledged chunk, before each file, instead of a retry's wait). The run prints its summary and exits
  EXIT_STOPPED (5).
- A grace timer (STOP_GRACE_SECONDS, under Container Apps' 30 s) bounds the wait: when it passes, or at a second
  signal, `Stopped(at_once=True)` is raised wherever the program is (a blocking read is interrupted), and what
  was in flight is not recorded (the next run sends that one chunk again).

Nothing is printed from the signal handler itself (a write there could land inside another write); the stop
point says what happened.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from uploader.model import portable

#: The longest a stop waits for the request in flight: below Container Apps' default termination grace period
#: (30 s, after which the execution is killed), with room for the summary.
STOP_GRACE_SECONDS = 20.0
#: Container Apps' default termination grace period (see the module docstring's sources).
PLATFORM_GRACE_SECONDS = 30.0
_SIGNALS = ("SIGTERM", "SIGINT")


class Stopped(BaseException):
    """The run was asked to stop. Unwinds like an error (local HR copies removed, claims released), but no per-file
    handler takes it for one file's failure. `outcome`: the file in progress when it was raised (what of it was
    acknowledged), set by the sender; `at_once`: the grace time passed or a second signal came."""

    def __init__(self, signal_name: str, *, at_once: bool = False) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.at_once = at_once
        self.outcome: Any = None  # send.upload.FileOutcome of the file in progress
        self.result: Any = None  # job.jobrun.ConnectorSummary of the connector in progress

    def describe(self) -> str:
        if self.at_once:
            return (f"stopped by {self.signal_name} at once (a second signal, or the {STOP_GRACE_SECONDS:g} s grace "
                    "time passed): a request in flight was abandoned and is sent again by the next run")
        return (f"stopped by {self.signal_name}: the request in flight was finished and recorded; the next run "
                "resumes after it")


class _State:
    signal_name: str | None = None
    timer: threading.Timer | None = None
    installed = False


_state = _State()


def requested() -> bool:
    """True once a stop was asked for."""
    return _state.signal_name is not None


def check() -> None:
    """A stop point: raise Stopped if a stop was asked for (nothing is in flight here)."""
    if _state.signal_name is not None:
        _disarm()
        raise Stopped(_state.signal_name)


def sleep(seconds: float) -> None:
    """time.sleep that ends at a stop request (a retry's wait sends nothing: nothing to finish)."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        check()
        time.sleep(min(left, 0.1))
    check()


def _hard_stop(signal_name: str) -> None:
    _disarm()
    raise Stopped(signal_name, at_once=True)


def _on_signal(signum: int, frame: object) -> None:
    name = signal.Signals(signum).name
    if _state.signal_name is not None:  # the second signal, or the grace timer (SIGALRM / an interrupt)
        _hard_stop(_state.signal_name)
    _state.signal_name = name
    if portable.ALARM:  # interrupts a blocking read when it fires
        portable.set_alarm(STOP_GRACE_SECONDS)
    else:  # Windows: no SIGALRM; the main thread is interrupted as by a second Ctrl-C
        import _thread

        _state.timer = threading.Timer(STOP_GRACE_SECONDS, _thread.interrupt_main, args=(signal.SIGINT,))
        _state.timer.daemon = True
        _state.timer.start()


def _on_alarm(signum: int, frame: object) -> None:
    if _state.signal_name is not None:
        _hard_stop(_state.signal_name)


def _disarm() -> None:
    if portable.ALARM:
        portable.set_alarm(0)
    if _state.timer is not None:
        _state.timer.cancel()
        _state.timer = None


@contextlib.contextmanager
def graceful_stop() -> Iterator[None]:
    """SIGTERM and SIGINT ask for a graceful stop while the block runs (main thread only); restored after."""
    if threading.current_thread() is not threading.main_thread() or _state.installed:
        yield
        return
    previous: dict[int, Any] = {}
    names = [*_SIGNALS, *(["SIGALRM"] if portable.ALARM else [])]
    for name in names:
        signum = getattr(signal, name, None)
        if signum is not None:
            previous[signum] = signal.signal(signum, _on_alarm if name == "SIGALRM" else _on_signal)
    _state.installed = True
    try:
        yield
    finally:
        _disarm()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _state.installed = False
        _state.signal_name = None


__all__ = ["PLATFORM_GRACE_SECONDS", "STOP_GRACE_SECONDS", "Stopped", "check", "graceful_stop", "requested", "sleep"]
