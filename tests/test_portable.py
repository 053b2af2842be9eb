"""uploader/model/portable.py: the one place where Linux, macOS and Windows differ.

- No other uploader module names what CPython on Windows lacks (O_NOFOLLOW, dir_fd=, getuid, fcntl, setitimer,
  …) or uses os.kill (which terminates on Windows): checked over the source with ast.
- The Windows way of walking a folder (a checked path, `Folder(path, None)`) keeps the promises the
  descriptor way keeps, tested here in-process on whatever system runs the tests.
"""

from __future__ import annotations

import ast
import errno
import os
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from uploader.model import portable

ROOT = Path(__file__).resolve().parents[1]
PORTABLE = ROOT / "uploader" / "model" / "portable.py"
POSIX_ONLY = {"O_NOFOLLOW", "O_DIRECTORY", "O_NONBLOCK", "O_NOCTTY", "O_CLOEXEC", "O_BINARY", "getuid", "geteuid",
              "getgid", "fchmod", "fchown", "chown", "set_blocking", "get_blocking", "kill", "killpg", "mkfifo"}
POSIX_SIGNAL = {"setitimer", "ITIMER_REAL", "alarm", "SIGALRM", "SIGKILL", "SIGHUP", "SIGUSR1", "SIGUSR2"}
POSIX_MODULES = {"fcntl", "pwd", "grp", "termios", "resource"}
SANDBOX_ALLOWED = {"kill"}  # the sandbox's test client stops its own child process (Popen.send_signal is portable)


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os" \
                and node.attr in POSIX_ONLY:
            found.append(f"{where}: os.{node.attr}")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "signal" \
                and node.attr in POSIX_SIGNAL:
            found.append(f"{where}: signal.{node.attr}")
        elif isinstance(node, ast.keyword) and node.arg in ("dir_fd", "src_dir_fd", "dst_dir_fd"):
            found.append(f"{where}: {node.arg}=")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{where}: import {n}" for n in names if n.split(".")[0] in POSIX_MODULES]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "open" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "os":
            flags = ast.unparse(node.args[1]) if len(node.args) > 1 else ""
            if "portable." not in flags:
                found.append(f"{where}: os.open with flags {flags!r} (use portable.READ / CREATE_NEW / ...)")
    return found


def test_only_the_platform_module_names_what_windows_lacks() -> None:
    problems = []
    for path in sorted((ROOT / "uploader").rglob("*.py")):
        if path == PORTABLE:
            continue
        found = _problems(path)
        if path.parts[-2] == "sandbox":
            found = [p for p in found if not any(p.endswith(f"os.{name}") for name in SANDBOX_ALLOWED)]
        problems += found
    assert not problems, "use uploader/model/portable.py instead:\n" + "\n".join(problems)


def _by_path(path: Path) -> portable.Folder:
    return portable.Folder(str(path), None)  # what Windows gets


def test_windows_walk_refuses_links_and_junction_like_reparse_points(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.txt").write_bytes(b"data\r\n")
    (tmp_path / "dirlink").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "filelink").symlink_to(tmp_path / "real" / "a.txt")
    top = _by_path(tmp_path)
    with pytest.raises(OSError) as caught:
        top.sub("dirlink")
    assert caught.value.errno == errno.ELOOP
    for flags in (portable.READ_NOFOLLOW, portable.APPEND):
        with pytest.raises(OSError) as caught:
            top.open("filelink", flags)
        assert caught.value.errno == errno.ELOOP
    with pytest.raises(FileExistsError):  # exclusive creation never writes through a link
        top.open("filelink", portable.CREATE_NEW)
    with pytest.raises(OSError) as caught:
        top.touch("filelink")
    assert caught.value.errno == errno.ELOOP
    with top.sub("real") as real:
        fd = real.open("a.txt", portable.READ_NOFOLLOW)
        try:
            assert os.read(fd, 100) == b"data\r\n"  # binary: CRLF kept
        finally:
            os.close(fd)
        real.rename("a.txt", top, "moved.txt")
    top.unlink("filelink")  # the link itself goes; never its target
    assert sorted(top.names()) == ["dirlink", "moved.txt", "real"]
    with pytest.raises(NotADirectoryError):
        top.sub("moved.txt")


def test_windows_reparse_points_are_links_only_when_they_name_another_file() -> None:
    def entry(attributes: int, tag: int) -> Any:
        return SimpleNamespace(st_mode=stat.S_IFDIR | 0o755, st_file_attributes=attributes, st_reparse_tag=tag)

    junction, symlink, dedup = 0xA0000003, 0xA000000C, 0x80000013  # IO_REPARSE_TAG_MOUNT_POINT, _SYMLINK, _DEDUP
    assert portable.is_link(entry(stat.FILE_ATTRIBUTE_REPARSE_POINT, junction))
    assert portable.is_link(entry(stat.FILE_ATTRIBUTE_REPARSE_POINT, symlink))
    assert not portable.is_link(entry(stat.FILE_ATTRIBUTE_REPARSE_POINT, dedup))
    assert not portable.is_link(entry(0, 0))


def test_walk_by_path_creates_and_enters_levels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portable, "AT_CALLS", False)
    with portable.walk(tmp_path, ["a", "b"], create=True, mode=0o700) as folder:
        assert folder.fd is None and Path(folder.path) == tmp_path / "a" / "b"
        fd = folder.open("f", portable.CREATE_NEW)
        os.close(fd)
    (tmp_path / "link").symlink_to(tmp_path / "a", target_is_directory=True)
    with pytest.raises(OSError) as caught, portable.walk(tmp_path, ["link", "b"]):
        pass
    assert caught.value.errno == errno.ELOOP


def test_process_alive() -> None:
    assert portable.process_alive(os.getpid())
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    assert not portable.process_alive(int(done.stdout))
