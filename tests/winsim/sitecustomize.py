"""A Python process shaped like CPython on Windows where the uploader could trip over POSIX (tests/test_windows_sim.py).

Put this folder first on PYTHONPATH: `site` imports this module at start-up, before `-m uploader` runs, in
every Python process started with that PYTHONPATH (the sandbox and the demo's children too). It removes what
CPython's `nt` module does not have, and makes the calls Windows refuses fail as they fail there:

- os.O_NOFOLLOW, O_DIRECTORY, O_NONBLOCK, O_NOCTTY, O_CLOEXEC; getuid and friends, fchmod/fchown/chown,
  set_blocking/get_blocking (Windows gained them for pipes only in 3.12), mkfifo, mknod, fdatasync, sync;
- `dir_fd=` raises NotImplementedError and os.supports_dir_fd is empty; os.scandir/listdir of a descriptor
  raises TypeError; `follow_symlinks=False` raises NotImplementedError anywhere but os.stat;
- os.open of a folder raises PermissionError (Windows cannot open a folder as a file);
- standard output and error, when not a terminal, are cp1252 with strict errors (a pipe on Windows);
- `import fcntl, pwd, grp, termios, resource` fail; select has no poll/epoll (so selectors and
  socketserver pick select(), as on Windows); signal has no SIGKILL, SIGHUP, SIGALRM, SIGUSR1/2, alarm.

It cannot make paths use backslashes or files CRLF-translated: CI runs the suite on windows-latest for that.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import stat
import sys

_GONE_MODULES = frozenset({"fcntl", "pwd", "grp", "termios", "resource"})


class _NoPosixModules:  # a meta path finder (importlib.abc would import shutil and tempfile before the changes)
    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name in _GONE_MODULES:
            raise ModuleNotFoundError(f"No module named {name!r} (simulated Windows)", name=name)
        return None


for _name in _GONE_MODULES:
    sys.modules.pop(_name, None)
sys.meta_path.insert(0, _NoPosixModules())

for _attr in ("O_NOFOLLOW", "O_DIRECTORY", "O_NONBLOCK", "O_NOCTTY", "O_CLOEXEC", "O_SYNC", "O_DSYNC",
              "getuid", "geteuid", "getgid", "getegid", "getgroups", "getpgid", "killpg", "setsid", "getsid",
              "fchmod", "fchown", "chown", "lchown", "lchmod", "set_blocking", "get_blocking", "mkfifo", "mknod",
              "fdatasync", "sync", "statvfs", "fstatvfs", "openpty", "forkpty", "pipe2", "getloadavg"):
    if hasattr(os, _attr):
        delattr(os, _attr)
for _attr in ("poll", "epoll", "devpoll", "kqueue", "kevent"):
    if hasattr(select, _attr):
        delattr(select, _attr)
for _attr in ("SIGKILL", "SIGHUP", "SIGALRM", "SIGUSR1", "SIGUSR2", "SIGQUIT", "alarm", "setitimer",
              "getitimer", "pause", "siginterrupt", "pthread_kill", "pthread_sigmask"):
    if hasattr(signal, _attr):
        delattr(signal, _attr)


def _no_dir_fd(func, name):  # type: ignore[no-untyped-def]
    def wrapper(*args, dir_fd=None, follow_symlinks=True, **kwargs):  # type: ignore[no-untyped-def]
        if dir_fd is not None or kwargs.get("src_dir_fd") is not None or kwargs.get("dst_dir_fd") is not None:
            raise NotImplementedError(f"{name}: dir_fd unavailable on this platform (simulated Windows)")
        if not follow_symlinks:
            if name != "stat":
                raise NotImplementedError(f"{name}: follow_symlinks unavailable on this platform (simulated Windows)")
            kwargs["follow_symlinks"] = False
        kwargs.pop("src_dir_fd", None)
        kwargs.pop("dst_dir_fd", None)
        return func(*args, **kwargs)

    wrapper.__name__ = name
    return wrapper


for _name in ("stat", "mkdir", "rmdir", "unlink", "remove", "rename", "replace", "link", "utime", "chmod",
              "access", "readlink", "symlink"):
    setattr(os, _name, _no_dir_fd(getattr(os, _name), _name))

_real_open = os.open


def _open(path, flags, mode=0o777, *, dir_fd=None):  # type: ignore[no-untyped-def]
    if dir_fd is not None:
        raise NotImplementedError("open: dir_fd unavailable on this platform (simulated Windows)")
    try:
        is_dir = stat.S_ISDIR(os.stat(path).st_mode)
    except (OSError, TypeError, ValueError):
        is_dir = False
    if is_dir:
        raise PermissionError(errno.EACCES, "Permission denied (simulated Windows: a folder cannot be opened)", path)
    return _real_open(path, flags, mode)


os.open = _open
_real_scandir, _real_listdir = os.scandir, os.listdir


def _scandir(path="."):  # type: ignore[no-untyped-def]
    if isinstance(path, int):
        raise TypeError("scandir: path should be string, bytes, os.PathLike or None, not int (simulated Windows)")
    return _real_scandir(path)


def _listdir(path="."):  # type: ignore[no-untyped-def]
    if isinstance(path, int):
        raise TypeError("listdir: path should be string, bytes, os.PathLike or None, not int (simulated Windows)")
    return _real_listdir(path)


os.scandir, os.listdir = _scandir, _listdir
os.supports_dir_fd = set()
os.supports_fd = {os.stat, os.truncate}
os.supports_follow_symlinks = {os.stat}
# A pipe or file on Windows is written in the ANSI code page, strictly: a character it lacks raises.
for _stream in (sys.stdout, sys.stderr):
    if _stream is not None and not _stream.isatty():
        _stream.reconfigure(encoding="cp1252", errors="strict")

if "shutil" in sys.modules:  # imported before this module (by a .pth file): take Windows' path in rmtree
    sys.modules["shutil"]._use_fd_functions = False  # type: ignore[attr-defined]
