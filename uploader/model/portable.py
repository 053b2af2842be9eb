"""Where Linux, macOS and Windows differ, in one place: how files are opened, how a folder is walked without
following a link, who owns a file, whether a process still runs. Every other module uses these names instead
of os.O_NOFOLLOW, dir_fd=, os.getuid, os.kill(pid, 0) or os.set_blocking, which CPython on Windows lacks or
which mean something else there (`tests/test_portable.py` keeps it so; docs/security.md#platforms says which
promise is kept by which means on each system).

- Linux and macOS (`AT_CALLS`): a folder is an open descriptor, and every name is opened, listed, renamed or
  removed relative to it (openat and friends) with O_NOFOLLOW and O_DIRECTORY, so a link planted anywhere below
  the root is never followed, even if swapped in mid-walk.
- Windows (no descriptor-relative calls, no O_NOFOLLOW): a folder is a path, and each name is checked with
  os.lstat just before use: a symbolic link, a junction or any other reparse point that names another file
  (FILE_ATTRIBUTE_REPARSE_POINT with a name-surrogate tag,
  https://learn.microsoft.com/windows/win32/fileio/reparse-points) is refused. A file opened after the check
  is compared with it (volume and file index from fstat), so a link swapped in between is refused before a byte
  is read or written. Exclusive creation (O_CREAT | O_EXCL, CreateFile's CREATE_NEW) fails when the name
  exists, link or not (https://learn.microsoft.com/windows/win32/api/fileapi/nf-fileapi-createfilew), so it never
  writes through a link on any system. Files are opened with O_BINARY: without it the C runtime turns CRLF into
  LF and stops reading at Ctrl-Z.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import sys
from collections.abc import Iterator, Sequence

_BINARY = getattr(os, "O_BINARY", 0)  # Windows only: no newline translation, no Ctrl-Z end of file
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)  # Python makes descriptors non-inheritable anyway (PEP 446)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO opens without blocking; Windows has no FIFO in its file system
_NOCTTY = getattr(os, "O_NOCTTY", 0)

#: Folders are walked by descriptor (Linux, macOS); otherwise (Windows) by path, each name checked before use.
AT_CALLS = bool(_NOFOLLOW and _DIRECTORY) and {
    os.open, os.stat, os.mkdir, os.unlink, os.rename, os.link, os.utime} <= os.supports_dir_fd \
    and os.scandir in os.supports_fd and os.utime in os.supports_follow_symlinks

#: Open a file the user named, for reading: a FIFO swapped in never blocks the open (POSIX), never text mode.
READ = os.O_RDONLY | _BINARY | _CLOEXEC | _NONBLOCK | _NOCTTY
#: Flags for `Folder.open`: read, append, create exclusively. Each refuses a link where the name should be.
READ_NOFOLLOW = READ | _NOFOLLOW
APPEND = os.O_WRONLY | os.O_APPEND | _BINARY | _CLOEXEC | _NOFOLLOW
CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _BINARY | _CLOEXEC | _NOFOLLOW
#: For a private file created by path (a key, a set-aside copy): exclusive, binary.
CREATE_NEW_PATH = CREATE_NEW

#: Whether permission bits say who may read a file. Windows has no uids and its st_mode is made up from the
#: read-only flag; access there is the file's access list, inherited from its folder.
PERMISSION_BITS = hasattr(os, "getuid")
#: POSIX keeps a change time no program can set (a write, or restoring the modification time, sets it to now);
#: Windows' st_ctime is the creation time, so there a file's version is its hash, file index, mtime and size.
CHANGE_TIME = os.name == "posix"
#: How a private file is kept private here, in words (for `cert new`'s output).
PRIVATE_FILE = "mode 0600" if PERMISSION_BITS else "no modes on Windows: readable as its folder's access list allows"


#: IsReparseTagNameSurrogate: the reparse point names another file or folder (a symbolic link, a junction),
#: as opposed to one that stores the file's own data elsewhere (deduplication, cloud placeholders)
#: (https://learn.microsoft.com/windows/win32/fileio/reparse-point-tags).
_NAME_SURROGATE = 0x20000000


#: A SIGALRM interval timer exists (POSIX); Windows has none (uploader/stopping.py then uses a thread's timer).
ALARM = hasattr(signal, "setitimer")


def set_alarm(seconds: float) -> None:
    """Deliver SIGALRM after `seconds` (0 disarms it); only where ALARM."""
    if sys.platform != "win32":
        signal.setitimer(signal.ITIMER_REAL, seconds)


def is_link(st: os.stat_result) -> bool:
    """A symbolic link, or (Windows) a junction or any other reparse point naming another file: never followed."""
    if stat.S_ISLNK(st.st_mode):
        return True
    return bool(getattr(st, "st_file_attributes", 0) & stat.FILE_ATTRIBUTE_REPARSE_POINT
                and getattr(st, "st_reparse_tag", _NAME_SURROGATE) & _NAME_SURROGATE)


def _loop(what: str = "a symbolic link or junction (never followed)") -> OSError:
    return OSError(errno.ELOOP, what)


def make_blocking(fd: int) -> None:
    """Blocking reads on a descriptor opened with READ (O_NONBLOCK only exists, and only matters, on POSIX)."""
    if sys.platform != "win32" and _NONBLOCK:
        os.set_blocking(fd, True)


def create_private(path: str | os.PathLike[str], mode: int = 0o600) -> int:
    """A new file, created exclusively (never through a link) with `mode` from the start where modes exist;
    on Windows it takes its folder's access list: make private folders with mkdir(mode=0o700), which on Windows
    (Python 3.11.10, 3.12.4 and later) gives the current user and administrators access only (CVE-2024-4030,
    python/cpython gh-118486)."""
    return os.open(path, CREATE_NEW_PATH, mode)


def owned_by_me(st: os.stat_result) -> bool:
    """Whether this process's user owns the file (POSIX uid). Windows has no uid: True, and the caller relies
    on the folder being private to the user (the temporary folder and %LOCALAPPDATA% are)."""
    getuid = getattr(os, "getuid", None)
    return getuid is None or bool(st.st_uid == getuid())


def readable_by_others(path: str | os.PathLike[str]) -> str | None:
    """'group' or 'world' when permission bits let others read the file; None where they say nothing (Windows)."""
    if not PERMISSION_BITS:
        return None
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if mode & stat.S_IROTH:
        return "world"
    if mode & stat.S_IRGRP:
        return "group"
    return None


def process_alive(pid: int) -> bool:
    """Whether a process with this ID still runs (True when that cannot be told: never remove its files then).

    Never os.kill(pid, 0) on Windows: there it terminates the process (TerminateProcess with exit code 0)."""
    if sys.platform == "win32":
        return _windows_process_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process
    return True


if sys.platform == "win32":
    def _windows_process_alive(pid: int) -> bool:
        """OpenProcess + GetExitCodeProcess (https://learn.microsoft.com/windows/win32/api/processthreadsapi/
        nf-processthreadsapi-getexitcodeprocess): STILL_ACTIVE (259) while it runs."""
        import ctypes
        from ctypes import wintypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        kernel32.OpenProcess.restype = wintypes.HANDLE
        kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
        kernel32.GetExitCodeProcess.argtypes = (wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD))
        kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return ctypes.get_last_error() == 5  # ERROR_ACCESS_DENIED: it runs, as another user
        try:
            code = wintypes.DWORD()
            if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
                return True
            return code.value == 259
        finally:
            kernel32.CloseHandle(handle)


class Folder:
    """A folder reached from a root without following a link below it: a descriptor (`AT_CALLS`) or a path.

    Names given to the methods are single path components. OSError(ELOOP) wherever a link stands in the way.
    """

    __slots__ = ("path", "fd")

    def __init__(self, path: str, fd: int | None) -> None:
        self.path = path
        self.fd = fd

    def _p(self, name: str) -> str:
        return os.path.join(self.path, name)

    # -- folders -----------------------------------------------------------------------------------

    def sub(self, name: str) -> Folder:
        """The sub-folder `name` (close it, or use `with`); a link there raises ELOOP, whatever it points at."""
        if self.fd is not None:
            try:
                return Folder(self._p(name), os.open(name, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC,
                                                     dir_fd=self.fd))
            except NotADirectoryError:
                if stat.S_ISLNK(self.lstat(name).st_mode):
                    raise _loop() from None
                raise
        st = os.lstat(self._p(name))
        if is_link(st):
            raise _loop()
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "not a folder")
        return Folder(self._p(name), None)

    def mkdir(self, name: str, mode: int = 0o777) -> None:
        if self.fd is not None:
            os.mkdir(name, mode, dir_fd=self.fd)
        else:
            os.mkdir(self._p(name), mode)

    def names(self) -> list[str]:
        """The names in this folder (no '.' or '..')."""
        if self.fd is not None:
            with os.scandir(self.fd) as it:
                return [entry.name for entry in it]
        with os.scandir(self.path) as it:
            return [entry.name for entry in it]

    def fsync(self) -> None:
        """Flush the folder's entries (a rename or a new file) to disk where a folder can be opened (POSIX);
        NTFS journals its metadata itself."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- files -------------------------------------------------------------------------------------

    def lstat(self, name: str) -> os.stat_result:
        """The entry itself (a link is described, not followed)."""
        if self.fd is not None:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        return os.lstat(self._p(name))

    def open(self, name: str, flags: int, mode: int = 0o600) -> int:
        """A descriptor for `name` (flags: READ_NOFOLLOW, APPEND or CREATE_NEW); ELOOP if it is a link."""
        if self.fd is not None:
            return os.open(name, flags, mode, dir_fd=self.fd)
        path = self._p(name)
        if flags & os.O_CREAT and flags & os.O_EXCL:
            return os.open(path, flags, mode)  # fails on any existing name, a link included
        before = os.lstat(path)
        if is_link(before):
            raise _loop()
        fd = os.open(path, flags, mode)
        try:
            after = os.fstat(fd)
            # Same volume and file index. (ReFS may give lstat a 128-bit ID and fstat a 64-bit one: not compared.)
            comparable = before.st_ino and (before.st_ino >> 64 == 0) == (after.st_ino >> 64 == 0)
            if comparable and (after.st_ino, after.st_dev) != (before.st_ino, before.st_dev):
                raise _loop("replaced while it was opened (a link swapped in?)")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def unlink(self, name: str) -> None:
        if self.fd is not None:
            os.unlink(name, dir_fd=self.fd)
        else:
            os.unlink(self._p(name))  # removes a link itself, never its target

    def rename(self, name: str, dst: Folder, dst_name: str, *, replace: bool = True) -> None:
        """Move the entry (a link itself, never its target); `replace` lets it take the place of a file."""
        move = os.replace if replace else os.rename
        if self.fd is not None and dst.fd is not None:
            move(name, dst_name, src_dir_fd=self.fd, dst_dir_fd=dst.fd)
        else:
            move(self._p(name), dst._p(dst_name))

    def link(self, name: str, new_name: str) -> None:
        """A hard link `new_name` to the entry `name` (never to what a link points at)."""
        if self.fd is not None:
            os.link(name, new_name, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)
        else:
            os.link(self._p(name), self._p(new_name))

    def touch(self, name: str) -> None:
        """Set the entry's modification time to now; a link is refused (ELOOP on Windows) or touched itself."""
        if self.fd is not None:
            os.utime(name, dir_fd=self.fd, follow_symlinks=False)
            return
        if is_link(os.lstat(self._p(name))):
            raise _loop()
        os.utime(self._p(name))


@contextlib.contextmanager
def walk(root: str | os.PathLike[str], parts: Sequence[str], *, create: bool = False,
         mode: int = 0o777) -> Iterator[Folder]:
    """The folder root/parts…, each level entered without following a link (the root itself may be one);
    missing levels made (with `mode`) when `create`, else FileNotFoundError."""
    top = os.fspath(root)
    if not AT_CALLS and not stat.S_ISDIR(os.stat(top).st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a folder")
    folder = Folder(top, os.open(top, os.O_RDONLY | _DIRECTORY | _CLOEXEC) if AT_CALLS else None)
    try:
        for part in parts:
            try:
                nxt = folder.sub(part)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    folder.mkdir(part, mode)
                nxt = folder.sub(part)
            folder.close()
            folder = nxt
        yield folder
    finally:
        folder.close()
