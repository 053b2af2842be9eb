"""The one way in for file bytes: `read_file` reads a whole small file (a certificate, a mapping, a stack
file, a state file) and `read_prefix` the start of a large one (a CSV file's header), each with a size cap and a
wall-clock deadline; `open_regular` opens a file for streaming.

All three refuse, before reading a byte:
- a value given where a path belongs that is not a path (PEM text, several lines, longer than PATH_MAX): never
  repeated, the error says so;
- anything but a regular file: a FIFO (which would block the open for ever), a character device such as
  /dev/zero (endless) or /dev/tty, a socket, a folder (on Windows: a device such as CON or NUL). The file is
  checked with os.stat, opened with `portable.READ` (O_NONBLOCK on POSIX, so a FIFO swapped in after the check
  cannot hang the open; O_BINARY on Windows) and checked again with fstat on the open handle;
- a file larger than the cap (by its size, and again while reading, in case it grows).

Errors are FileReadError (a ValueError) whose message names the label (the flag or variable) and the path,
escaped by safe_text; callers turn it into their own error (UsageError, MappingError, CertificateError).
Shared by the uploader and the Pulumi program (it imports nothing but the escaper and `portable`).
"""

from __future__ import annotations

import os
import stat
import time
from typing import BinaryIO

from uploader.model import portable
from uploader.model.safetext import safe_text

KIB = 1024
MIB = 1024 * KIB
#: Caps for what the program reads whole. A certificate bundle or PFX is a few KiB (a long chain tens of KiB).
CERTIFICATE_LIMIT = 1 * MIB
MAPPING_LIMIT = 1 * MIB
STACK_FILE_LIMIT = 4 * MIB
STATE_FILE_LIMIT = 1 * MIB
#: Seconds one whole-file read may take (a file on a stalled network share fails instead of hanging the run).
READ_DEADLINE = 30.0
#: Longest value taken for a path (Linux PATH_MAX).
PATH_LIMIT = 4096
_BLOCK = 64 * KIB


class FileReadError(ValueError):
    """A file that cannot be read within its bounds; the message never holds the file's content."""

    def __init__(self, where: str, reason: str, *, missing: bool = False, not_a_path: bool = False) -> None:
        super().__init__(f"{where}: {reason}" if where else reason)
        self.where = where  # the label and the escaped path (the label alone when the value was not a path)
        self.reason = reason
        self.missing = missing
        self.not_a_path = not_a_path  # the value cannot be a path (PEM text, several lines): never repeated


def shown(label: str, path: object) -> str:
    """`LABEL PATH` (or `PATH`) for an error message, the path escaped."""
    name = safe_text(os.fspath(path) if isinstance(path, os.PathLike) else path)
    return f"{label} {name}" if label else name


def check_path_value(value: str | os.PathLike[str], label: str = "") -> str:
    """The value as a path, or FileReadError when it cannot be one (PEM text, several lines, too long); the
    value is not repeated then (it may be a key)."""
    text = os.fspath(value)
    if not isinstance(text, str):  # pragma: no cover - bytes paths are not used here
        text = os.fsdecode(text)
    if not text or len(text) > PATH_LIMIT or "-----" in text or "\n" in text or "\r" in text or "\x00" in text:
        raise FileReadError(label, "the value is not a file path (empty, several lines, PEM text or longer than "
                            f"{PATH_LIMIT} characters; it is not shown)", not_a_path=True)
    return text


def _open(path: str, label: str) -> tuple[int, os.stat_result]:
    where = shown(label, path)
    try:
        before = os.stat(path)
    except FileNotFoundError:
        raise FileReadError(where, "file not found", missing=True) from None
    except OSError as exc:
        raise FileReadError(where, f"cannot read ({type(exc).__name__})") from None
    _require_regular(before, where)
    try:
        fd = os.open(path, portable.READ)
    except FileNotFoundError:
        raise FileReadError(where, "file not found", missing=True) from None
    except OSError as exc:
        raise FileReadError(where, f"cannot read ({type(exc).__name__})") from None
    try:
        st = os.fstat(fd)
        _require_regular(st, where)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _require_regular(st: os.stat_result, where: str) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode)
            else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
            else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
    raise FileReadError(where, f"not a regular file ({kind}); give the path of a file")


def _read(fd: int, where: str, limit: int, deadline: float, *, truncate: bool) -> bytes:
    start = time.monotonic()
    pieces: list[bytes] = []
    total = 0
    while True:
        if time.monotonic() - start > deadline:
            raise FileReadError(where, f"reading took longer than {deadline:g} s; gave up")
        try:
            piece = os.read(fd, min(_BLOCK, limit + 1 - total))
        except BlockingIOError:  # pragma: no cover - regular files do not block; a swapped file might
            raise FileReadError(where, "not a regular file; give the path of a file") from None
        except OSError as exc:
            raise FileReadError(where, f"cannot read ({type(exc).__name__})") from None
        if not piece:
            return b"".join(pieces)
        total += len(piece)
        if total > limit:
            if truncate:
                pieces.append(piece[: len(piece) - (total - limit)])
                return b"".join(pieces)
            raise FileReadError(where, f"larger than {_size(limit)} (this file is never that large; is it the "
                                "right file?)")
        pieces.append(piece)


def _size(limit: int) -> str:
    return f"{limit // MIB} MiB" if limit % MIB == 0 else f"{limit // KIB} KiB"


def check_regular_file(path: str | os.PathLike[str], label: str = "") -> str:
    """The path of an existing, readable regular file (FileReadError otherwise), for files read later as a
    stream (the CSV files `validate` and `upload` take): the same refusals as the readers, before any open."""
    text = check_path_value(path, label)
    fd, _ = _open(text, label)
    os.close(fd)
    return text


def read_file(path: str | os.PathLike[str], *, limit: int, label: str = "",
              deadline: float = READ_DEADLINE) -> bytes:
    """The whole content of a small regular file, at most `limit` bytes (FileReadError otherwise)."""
    text = check_path_value(path, label)
    fd, st = _open(text, label)
    try:
        where = shown(label, text)
        if st.st_size > limit:
            raise FileReadError(where, f"larger than {_size(limit)} (this file is never that large; is it the "
                                "right file?)")
        return _read(fd, where, limit, deadline, truncate=False)
    finally:
        os.close(fd)


def read_prefix(path: str | os.PathLike[str], *, limit: int, label: str = "",
                deadline: float = READ_DEADLINE) -> bytes:
    """The first `limit` bytes (or fewer) of a regular file of any size."""
    text = check_path_value(path, label)
    fd, _ = _open(text, label)
    try:
        return _read(fd, shown(label, text), limit, deadline, truncate=True)
    finally:
        os.close(fd)


def open_regular(path: str | os.PathLike[str], label: str = "") -> BinaryIO:
    """A regular file opened for binary reading (blocking reads), refusing FIFOs, devices and folders first."""
    text = check_path_value(path, label)
    fd, _ = _open(text, label)
    try:
        portable.make_blocking(fd)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
