"""The one writer: everything `python -m uploader` and `python -m provisioning` write to standard output, standard
error and their JSON logs passes here, and every line of it passes the escaper whoever built it
(docs/security.md, "One writer for everything printed").

- `stdout` and `stderr` (`Writer`): `line(text)` writes one line through `safetext.escape_line` (secrets withheld,
  control and invisible characters escaped, a line break inside `text` included); `lines(...)` several;
  `block(text)` the program's own multi-line text (a table, a rendered report, help), its line breaks kept and
  every other character escaped; `json(value)` one JSON document, every string in it (keys too) through the
  escaper, ASCII only, so it stays valid JSON and no control character reaches the log.
- `console(writer)`: a rich Console on the writer's stream whose every text segment passes the escaper; rich's
  own control segments (the progress bar's cursor moves) are the only codes that reach the terminal.
- `ArgumentParser`: argparse whose usage, help, version and error text go through the writer.
- `run_main(module)`: the last catch of an entry point (`__main__.py`): `install_hooks()`, then the module's
  `main()`; an interrupt or an error before the command line is even set up (an import) is one escaped line,
  never a traceback.
- `install_hooks()`: `sys.excepthook`, `threading.excepthook` and `sys.unraisablehook` write one escaped line
  (no traceback, no exception message: it may hold data), and `sys.stdout`/`sys.stderr` become `EscapingStream`s,
  so what a library writes to them directly passes the escaper too.

Only this module writes to the process's streams (tests/test_sink.py scans uploader/ and provisioning/ for any
other `print`, `sys.stdout`, `sys.stderr` or rich `Console`).
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, Any, TextIO

from uploader.model.safetext import escape_line, withhold_secrets

if TYPE_CHECKING:
    from rich.console import Console

EXIT_INTERRUPTED = 130


class EscapingStream(io.TextIOBase):
    """What `sys.stdout`/`sys.stderr` become under `install_hooks`: text written to it directly (a library's
    print) comes out line by line through `escape_line`; a partial line waits for its end or a flush."""

    def __init__(self, raw: TextIO) -> None:
        super().__init__()
        self.raw = raw
        self._pending = ""

    def write(self, text: str) -> int:
        whole = self._pending + text
        done, newline, self._pending = whole.rpartition("\n")
        if newline:
            _write(self.raw, escape_lines(done), flush=False)
        if len(self._pending) > 65_536:  # a line without end is written in pieces, each escaped
            self.flush()
        return len(text)

    def flush(self) -> None:
        pending, self._pending = self._pending, ""
        _write(self.raw, escape_line(pending) if pending else "", flush=True)

    def isatty(self) -> bool:
        return self.raw.isatty()

    def fileno(self) -> int:
        return self.raw.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]  # typeshed declares a plain attribute, io a property
        return getattr(self.raw, "encoding", "utf-8") or "utf-8"


def _raw(stream: TextIO | IO[str]) -> TextIO | IO[str]:
    """The stream under an EscapingStream (its pending partial line written first), else the stream."""
    if isinstance(stream, EscapingStream):
        stream.flush()
        return stream.raw
    return stream


def _write(stream: TextIO | IO[str], data: str, *, flush: bool) -> None:
    try:
        if data:
            stream.write(data)
        if flush:
            stream.flush()
    except BrokenPipeError:  # `... | head`: the reader went away; the run goes on, its output is dropped
        _drop(stream)
    except ValueError:  # the stream was closed
        pass


def _drop(stream: TextIO | IO[str]) -> None:
    """Point the stream's descriptor at the null device, so that nothing (Python's flush at exit included) fails
    on it again."""
    try:
        with open(os.devnull, "w", encoding="utf-8") as null:
            os.dup2(null.fileno(), stream.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass


class Writer:
    """One output (standard output or error, looked up at each write so that a test's capture is honoured; or
    a given stream) behind the escaper."""

    def __init__(self, name: str | None = None, stream: TextIO | IO[str] | None = None) -> None:
        if (name is None) == (stream is None):
            raise ValueError("a Writer writes to sys.stdout/sys.stderr by name, or to a given stream")
        self._name = name
        self._stream = stream

    def raw(self) -> TextIO | IO[str]:
        """The stream itself (for a rich Console made by `console()`; never written to elsewhere)."""
        if self._stream is not None:
            return _raw(self._stream)
        return _raw(sys.stdout if self._name == "stdout" else sys.stderr)

    def isatty(self) -> bool:
        try:
            return self.raw().isatty()
        except (ValueError, AttributeError):
            return False

    def line(self, text: object = "") -> None:
        """One line: `text` through the escaper (a line break inside it is escaped too)."""
        _write(self.raw(), escape_line(str(text)) + "\n", flush=True)

    def lines(self, lines: Iterable[object]) -> None:
        """Several lines, each through the escaper."""
        _write(self.raw(), "".join(escape_line(str(line)) + "\n" for line in lines), flush=True)

    def block(self, text: str) -> None:
        """The program's own multi-line text (a table, a report, help): its line breaks kept, each line escaped
        (secrets withheld across its lines first: a PEM block spans several)."""
        _write(self.raw(), escape_lines(str(text)), flush=True)

    def json(self, value: Any, *, indent: int | None = None, separators: tuple[str, str] | None = None,
             default: Callable[[Any], Any] | None = None) -> None:
        """One JSON document (one line unless `indent`): every string in it, keys too, through the escaper."""
        text = json.dumps(clean_json(value, default), indent=indent, separators=separators, ensure_ascii=True)
        _write(self.raw(), text + "\n", flush=True)

    def protocol(self, value: Any, *, default: Callable[[Any], Any] | None = None) -> None:
        """One JSON line of a worker protocol between the programs' own processes (`python -m
        provisioning.tools.evaluator`, read line by line by render-diff): the data exact, so its strings are not
        escaped and no secret is withheld, but ASCII only (no control character can reach a terminal it is shown
        on by mistake). Never for what a person or a log reads."""
        _write(self.raw(), json.dumps(value, default=default, ensure_ascii=True) + "\n", flush=True)


def escape_lines(text: str) -> str:
    """Several lines (`text` split at its line breaks), each through the escaper, each ending in a line break;
    secrets are withheld from the whole text first, so a block spread over lines is caught whole."""
    return "".join(escape_line(line) + "\n" for line in withhold_secrets(text, prose=True).split("\n"))


def clean_json(value: Any, default: Callable[[Any], Any] | None = None) -> Any:
    """`value` with every string (dictionary keys included) through the escaper; what JSON cannot hold goes
    through `default` first (TypeError without one, as json.dumps)."""
    if isinstance(value, str):
        return escape_line(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {escape_line(str(k)) if isinstance(k, str) else k: clean_json(v, default) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v, default) for v in value]
    if default is None:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
    return clean_json(default(value), None)


stdout = Writer("stdout")
stderr = Writer("stderr")


def console(writer: Writer, **options: Any) -> Console:
    """A rich Console on top of `writer`: every text segment it renders passes the escaper (line breaks kept);
    rich's control segments (cursor moves of a live progress bar) pass as they are."""
    from rich.console import Console
    from rich.segment import Segment

    class EscapingConsole(Console):
        def _render_buffer(self, buffer: Iterable[Segment]) -> str:
            return super()._render_buffer(
                segment if segment.control else
                Segment("\n".join(map(escape_line, segment.text.split("\n"))), segment.style, segment.control)
                for segment in buffer)

    return EscapingConsole(file=writer.raw(), **options)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose every message (usage, help, version, errors: argparse repeats a refused value in them)
    goes through the writer."""

    def _print_message(self, message: str, file: Any = None) -> None:  # argparse's SupportsWrite[str] | None
        if not message:
            return
        text = message.removesuffix("\n")
        if file is None or file is sys.stdout:
            stdout.block(text)
        elif file is sys.stderr:
            stderr.block(text)
        else:  # a file the caller opened (help written to a file), not the process's streams
            file.write(escape_lines(text))


def where(exc: BaseException) -> str:
    """The innermost frame of the project's own code that the exception passed: file:line, no values."""
    found = "?"
    for frame in traceback.extract_tb(exc.__traceback__):
        path = frame.filename.replace("\\", "/")
        for package in ("uploader", "provisioning"):
            parts = path.split(f"/{package}/")
            if len(parts) > 1:
                found = f"{package}/{parts[-1]}:{frame.lineno}"
    return found


def internal_error(exc: BaseException, context: str = "") -> str:
    """The one line that stands for an unexpected exception: its type and where, never its message."""
    return (f"error: internal error{context} ({type(exc).__name__} at {where(exc)}); its message is not shown "
            "(it may hold data); please report it")


def _excepthook(kind: type[BaseException], exc: BaseException, tb: object) -> None:
    if issubclass(kind, KeyboardInterrupt):
        stderr.line("interrupted")
    else:
        stderr.line(internal_error(exc))


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    exc = args.exc_value if args.exc_value is not None else args.exc_type()
    stderr.line(internal_error(exc, " in a thread"))


def _unraisablehook(unraisable: Any) -> None:
    """An exception Python could not raise (a `__del__`, an atexit callback, a loop torn down at exit): one
    line naming its type and what raised it, never its message or a traceback."""
    try:
        exc = unraisable.exc_value
        kind = unraisable.exc_type.__name__ if unraisable.exc_type is not None else "exception"
        obj = unraisable.object
        what = getattr(obj, "__qualname__", None) or type(obj).__name__
        stderr.line(f"warning: {kind} ignored during clean-up in {what}" + (f" ({where(exc)})" if exc else ""))
    except BaseException:  # noqa: BLE001, S110 - Python is shutting down: nothing more can be said
        pass


def install_hooks() -> None:
    """The last catch for this process: uncaught exceptions in the main thread and in other threads, and
    exceptions Python ignores (at exit), each one escaped line; `sys.stdout`/`sys.stderr` escape what is written
    to them directly."""
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook
    sys.unraisablehook = _unraisablehook
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, EscapingStream):
            _tolerant(stream)
            setattr(sys, name, EscapingStream(stream))


def _tolerant(stream: TextIO) -> None:
    """The stream never fails on a character its encoding lacks: on Windows a pipe, a file or Task Scheduler's
    redirection is written in the ANSI code page (cp1252, ...), where a file name in another script would raise
    UnicodeEncodeError mid-run. Such a character is written as an escape (\\uXXXX) instead."""
    if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
        stream.reconfigure(errors="backslashreplace")


def run_main(module: str, function: str = "main", interrupted: str = "interrupted") -> int:
    """An entry point's body: the hooks installed, then `module.function()` imported and called; what escapes it
    (an interrupt during start-up, an import error) is one escaped line and an exit code, never a traceback."""
    install_hooks()
    return guarded(lambda: getattr(importlib.import_module(module), function)(), interrupted)


def guarded(main: Callable[[], object], interrupted: str = "interrupted") -> int:
    """`main()`'s exit code; an exception it lets through is one escaped line (no message, no traceback) and 1,
    an interrupt `interrupted` and 130."""
    try:
        code = main()
        return code if isinstance(code, int) else 1
    except KeyboardInterrupt:
        stderr.line(interrupted)
        return EXIT_INTERRUPTED
    except SystemExit as exc:  # argparse's exits carry a number; a text code would be printed raw by Python
        if exc.code is None or isinstance(exc.code, int):
            raise
        stderr.line(f"error: {exc.code}")
        return 1
    except BaseException as exc:  # noqa: BLE001 - the last edge: one line, its message not shown
        stderr.line(internal_error(exc))
        return 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, EscapingStream):
                stream.flush()
