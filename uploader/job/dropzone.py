"""The drop zone: where the HR system leaves its exports and the job leaves every file's outcome.

One small interface, two backends:

- `BlobDropZone`: an Azure Blob container (`https://ACCOUNT.blob.core.windows.net/CONTAINER`), signed in with
  the job's managed identity (`AZURE_CLIENT_ID`) or, without it, `DefaultAzureCredential`;
  `AZURE_STORAGE_CONNECTION_STRING`, when set, takes precedence (Azurite, development).
- `FolderDropZone`: a local folder (`file:///srv/hr-dropzone`) for on-premises runners.

Paths are '/'-separated and relative to the drop zone's root (`incoming/departures/2026-11-21.csv`).
Downloads stream to a local file in chunks; no file is ever held whole in memory.
A `Lock` keeps two overlapping executions off the same file: a 60-second blob lease, renewed while the
file is being sent (an execution that dies frees it within a minute), or, for folders, an exclusive lock
file under `state/locks/` renewed the same way and broken when older than `STALE_LOCK_SECONDS`.
`download` returns the `Version` it read (the hash of the bytes; a blob's ETag; a folder file's inode and change
time), and `move(..., version=)` files a file only while it is still that version.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import os
import socket
import stat
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypedDict
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from uploader.errors import UploaderError, UsageError
from uploader.model import portable
from uploader.report import safe_name
from uploader.send.checkpoint import CLOCK_SKEW, MAX_STATE_BYTES, StateUnreadable, parse_state

LEASE_SECONDS = 60  # a blob lease's duration (Azure allows 15-60 s or infinite)
RENEW_SECONDS = 20  # how often a held lock is renewed
STALE_LOCK_SECONDS = LEASE_SECONDS  # a lock file not renewed for this long belongs to a dead execution
#: How long a run waits for another execution's claim on a file to be released or to lapse (a dead execution's
#: lease expires, its lock file goes stale, within one lease period) before leaving the file for the next run.
CLAIM_WAIT_SECONDS = LEASE_SECONDS + 10
CLAIM_POLL_SECONDS = 2
MAX_JSON_BYTES = MAX_STATE_BYTES  # checkpoints and state records are a few hundred bytes (the state reader's cap)
MAX_NAME_BYTES = 200  # a file or folder name (leaves room for a time stamp or `.errors.json` within 255)
MAX_DEPTH = 32  # folders below a listed folder
MAX_PATH_CHARS = 900  # a whole path (leaves room for processed/yyyy/mm/dd/ within a blob name's 1,024)
COPY_TIMEOUT_SECONDS = 600  # a server-side copy within one account is normally immediate
DOWNLOAD_CHUNK = 4 * 1024 * 1024


class DropZoneError(UploaderError):
    """The drop zone could not be read or written (storage error, permissions)."""


class FileChangedError(DropZoneError):
    """The file changed (was replaced, appended to, rewritten) since the job looked at it."""


class UnreadableState(DropZoneError):
    """A JSON record under state/ exists but cannot be read (damaged, not JSON, not a regular file)."""


@dataclass(frozen=True)
class Entry:
    """One file in the drop zone."""

    path: str  # relative to the root, '/'-separated
    size: int
    modified: dt.datetime  # last-modified, UTC
    etag: str  # changes whenever the content is replaced
    refused: str | None = None  # why the job must not touch it (a link, a FIFO, an unsafe or too-long name)


@dataclass(frozen=True)
class Version:
    """One version of a file: what `download` read. Filing (`move(..., version=)`) files the file only while it is
    still this version, so nothing is filed whose bytes were not the bytes read, validated and sent.

    `sha256` is the hash of the bytes read (the local copy the upload sends); `etag` the backend's tag for them (a
    blob's ETag, which the service changes on every write; a folder file's modification time and size). A folder
    file also has its inode and its change time where the platform keeps them (POSIX: a write, or restoring the
    modification time as `cp -p`, `rsync -t`, `tar` and `unzip` do, sets the change time to now)."""

    sha256: str
    etag: str
    inode: int | None = None
    ctime_ns: int | None = None

    def to_json(self) -> dict[str, Any]:
        """As a state record holds it: inode and change time as decimal text (nanoseconds since 1970 exceed the
        integers the state reader accepts, MAX_STATE_INT)."""
        out: dict[str, Any] = {"sha256": self.sha256, "etag": self.etag}
        out.update({k: str(v) for k, v in (("inode", self.inode), ("ctime_ns", self.ctime_ns)) if v is not None})
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Version | None:
        """The version a state record (a move journal) holds, or None when it holds none or a damaged one."""
        sha, etag, inode, ctime = (obj.get(k) for k in ("sha256", "etag", "inode", "ctime_ns"))
        if not (isinstance(sha, str) and len(sha) == 64 and isinstance(etag, str)):
            return None
        numbers: list[int | None] = []
        for text in (inode, ctime):
            if text is not None and not (isinstance(text, str) and text.isascii() and text.isdigit()
                                         and len(text) <= 24):
                return None
            numbers.append(None if text is None else int(text))
        return cls(sha, etag, *numbers)


class Lock(ABC):
    """A held claim on one file; renew it while working, release it when done."""

    lost = False  # set when a renewal failed: another execution may now take the file

    @abstractmethod
    def renew(self) -> None: ...

    @abstractmethod
    def release(self) -> None: ...


class DropZone(ABC):
    """List, download, move and lock files, and keep small JSON records (checkpoints, state)."""

    display: str  # the drop zone's address without credentials

    @abstractmethod
    def list(self, prefix: str) -> list[Entry]:
        """Files whose path starts with prefix (e.g. 'incoming/'), in no particular order."""

    @abstractmethod
    def stat(self, path: str) -> Entry | None:
        """The file's entry, or None when it does not exist."""

    @abstractmethod
    def download(self, path: str, dest: Path, etag: str | None = None) -> Version:
        """Stream the file into dest (a local path), chunk by chunk; with `etag`, only that version of it.
        Returns the version read (FileChangedError when the file changed while it was read)."""

    @abstractmethod
    def read_json(self, path: str) -> Any | None:
        """A state record, or None when it does not exist; UnreadableState when it cannot be read or fails the state
        reader (`parse_state`: size, nesting, types, dates)."""

    @abstractmethod
    def write_json(self, path: str, obj: Any) -> None:
        """Write a small JSON document atomically (a reader sees the old or the new one, never half)."""

    @abstractmethod
    def move(self, src: str, dst: str, lock: Lock | None = None, version: Version | None = None) -> None:
        """Copy src to dst then delete src. Safe to repeat: a missing src with an existing dst is done; the same
        src moved to the same dst again replaces it (never a second copy). With `version`, FileChangedError when
        src is no longer that version (nothing is filed or deleted)."""

    @abstractmethod
    def delete(self, path: str) -> None:
        """Delete a file (no error when it is already gone)."""

    @abstractmethod
    def try_lock(self, path: str) -> Lock | None:
        """Claim a file for this execution, or None when another execution holds it or it is gone."""

    def exists(self, path: str) -> bool:
        return self.stat(path) is not None

    def write_file(self, path: str, local: Path) -> None:
        """Write a local file's bytes to `path` atomically (quarantine's set-aside rows under rejected/)."""
        raise DropZoneError(f"{self.display}: this drop zone cannot store files")

    def sweep_locks(self) -> int:
        """Remove claims left by dead executions (folder lock files; blob leases lapse by themselves)."""
        return 0


@contextlib.contextmanager
def keep_renewed(lock: Lock, every: float = RENEW_SECONDS) -> Iterator[Lock]:
    """Renew `lock` in a background thread while the block runs; sets lock.lost if a renewal fails."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(every):
            try:
                lock.renew()
            except Exception:  # noqa: BLE001 - any failure means the claim can no longer be trusted
                lock.lost = True
                return

    thread = threading.Thread(target=renew, name="lock-renewal", daemon=True)
    thread.start()
    try:
        yield lock
    finally:
        stop.set()
        thread.join(timeout=5)


@dataclass(frozen=True)
class StorageAccess:
    """How a blob drop zone is reached, as the command read it from the environment (uploader/model/environment.py):
    AZURE_STORAGE_CONNECTION_STRING (development: Azurite; wins when set; never in the repr), else the job's
    user-assigned identity AZURE_CLIENT_ID (a GUID), else DefaultAzureCredential."""

    connection_string: str | None = field(default=None, repr=False)
    client_id: str | None = None


def open_dropzone(url: str, access: StorageAccess | None = None) -> DropZone:
    """The backend for a drop-zone URL: file:///path or a blob container URL."""
    access = access or StorageAccess()
    try:
        parsed = urlparse(url)
        has_user = parsed.username is not None or parsed.password is not None
        parsed.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise UsageError("UPLOADER_DROPZONE_URL: not a valid URL (it is not shown); expected "
                         "https://ACCOUNT.blob.core.windows.net/CONTAINER or file:///path") from None
    if has_user:
        raise UsageError("UPLOADER_DROPZONE_URL: must not hold a user name or password (the URL is not shown)")
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise UsageError(f"UPLOADER_DROPZONE_URL: file URL must be file:///absolute/path, not {safe_name(url)}")
        return FolderDropZone(Path(url2pathname(parsed.path)))  # Windows: /C:/HR/zone -> C:\HR\zone
    if parsed.scheme in ("https", "http"):
        return BlobDropZone.from_url(url, access)
    raise UsageError(
        "UPLOADER_DROPZONE_URL: expected a blob container URL (https://ACCOUNT.blob.core.windows.net/CONTAINER) "
        "or file:///path"
    )


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def _clean(path: str) -> str:
    """Refuse paths that could leave the root ('..', absolute, backslashes)."""
    parts = path.split("/")
    if path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise DropZoneError(f"drop zone: refusing unsafe path {safe_name(path)}")
    return path


def name_problem(path: str) -> str | None:
    """Why a listed name cannot be processed safely (None when it can): the job refuses such files.

    Refused: names that could leave the root or that storage keeps apart from their folders ('..', '//',
    backslashes), and names too long to file under processed/ or rejected/ with a time stamp or an
    `.errors.json` beside them.
    """
    try:
        _clean(path)
    except DropZoneError:
        return "an unsafe name (a backslash, an empty, '.' or '..' folder): rename it"
    if len(path) > MAX_PATH_CHARS or any(len(p.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES
                                         for p in path.split("/")):
        return (f"a name too long to file (at most {MAX_NAME_BYTES} bytes per folder or file name, "
                f"{MAX_PATH_CHARS} characters in all): rename it")
    return None


def _parse(path: str, data: bytes) -> dict[str, Any]:
    """Every state record read from a drop zone goes through the one state reader."""
    try:
        return parse_state(data, now=dt.datetime.now(dt.UTC))
    except StateUnreadable as exc:
        raise UnreadableState(f"{safe_name(path)}: {exc}") from None


def lock_is_stale(modified: float, now: float) -> bool:
    """A lock file nobody renewed for STALE_LOCK_SECONDS, or one dated in the future (a renewal never dates a lock
    ahead of the clock by more than CLOCK_SKEW: a future date is planted or damaged, and would block for ever)."""
    age = now - modified
    return age >= STALE_LOCK_SECONDS or age < -CLOCK_SKEW.total_seconds()


# --------------------------------------------------------------------------------------------- folder

# Folder drop zones are walked one directory at a time without following a link (uploader/model/portable.py:
# each level opened relative to its parent with O_NOFOLLOW | O_DIRECTORY on Linux and macOS, each name checked
# for a link, junction or other reparse point on Windows), so no link, in incoming/ or in place of a zone
# folder, can make the job read, write or move anything outside the root. Only regular files are read.


def _kind(st: os.stat_result) -> str | None:
    """Why a file of this kind is refused (None for a regular file)."""
    if portable.is_link(st):
        return "a symbolic link (the drop zone never follows links): refused"
    if stat.S_ISREG(st.st_mode):
        return None
    return "not a regular file (a FIFO, device or socket): refused"


def _os_reason(exc: OSError) -> str:
    """An OSError as its errno name and text, never its file names."""
    if exc.errno == errno.ELOOP:
        return "a symbolic link on the way (the drop zone never follows links)"
    name = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
    return f"{name} ({exc.strerror})" if exc.strerror else name


class _FileLock(Lock):
    """An exclusive lock file (O_CREAT|O_EXCL) renewed by touching it."""

    def __init__(self, zone: FolderDropZone, lock_path: str, token: str) -> None:
        self.zone = zone
        self.path = lock_path  # relative to the zone's root
        self.token = token

    def _mine(self) -> bool:
        try:
            return bool(_parse(self.path, self.zone._read_bytes(self.path, limit=4096)).get("token") == self.token)
        except (OSError, ValueError, AttributeError, DropZoneError):
            return False

    def renew(self) -> None:
        if not self._mine():
            raise DropZoneError("the lock file was taken over")
        parents, name = self.zone._split(self.path)
        with self.zone._dir(parents) as folder:
            folder.touch(name)

    def release(self) -> None:
        if self._mine():
            with contextlib.suppress(OSError, DropZoneError):
                self.zone._unlink(self.path)


class FolderDropZone(DropZone):
    """A local (or mounted) folder; moves are atomic renames within it. Links and special files are refused."""

    def __init__(self, root: Path) -> None:
        if not root.is_absolute():
            raise UsageError(f"UPLOADER_DROPZONE_URL: file URL must hold an absolute path, not {safe_name(root)}")
        if not root.is_dir():
            raise UsageError(f"UPLOADER_DROPZONE_URL: folder {safe_name(root)} does not exist")
        self.root = root
        self.display = root.as_uri()

    # -- safe access, one directory at a time ------------------------------------------------------

    @staticmethod
    def _split(path: str) -> tuple[list[str], str]:
        parts = _clean(path).split("/")
        return parts[:-1], parts[-1]

    def _dir(self, parts: list[str], create: bool = False) -> contextlib.AbstractContextManager[portable.Folder]:
        """root/parts…, entered without following links; missing folders made when `create`."""
        return portable.walk(self.root, parts, create=create)

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise DropZoneError(f"drop zone {self.display}: {what}: {_os_reason(exc)}") from None

    def _open_regular(self, folder: portable.Folder, name: str) -> int:
        fd = folder.open(name, portable.READ_NOFOLLOW)
        reason = _kind(os.fstat(fd))
        if reason is not None:
            os.close(fd)
            raise DropZoneError(f"drop zone: {safe_name(name)}: {reason}")
        return fd

    def _read_bytes(self, path: str, limit: int) -> bytes:
        parents, name = self._split(path)
        with self._dir(parents) as folder:
            fd = self._open_regular(folder, name)
            with os.fdopen(fd, "rb") as fh:
                data = fh.read(limit + 1)
        if len(data) > limit:
            raise ValueError("too large")
        return data

    def _unlink(self, path: str) -> None:
        parents, name = self._split(path)
        try:
            with self._dir(parents) as folder:
                folder.unlink(name)
        except FileNotFoundError:
            pass

    def _entry(self, path: str, st: os.stat_result) -> Entry:
        return Entry(path, st.st_size, _utc(st.st_mtime), f"{st.st_mtime_ns:x}-{st.st_size:x}",
                     refused=_kind(st) or name_problem(path))

    # -- the interface -----------------------------------------------------------------------------

    def list(self, prefix: str) -> list[Entry]:
        folder = prefix[:prefix.rfind("/") + 1]
        parts = [p for p in folder.split("/") if p]
        out: list[Entry] = []

        def walk(here: portable.Folder, rel: str, depth: int) -> None:
            if depth > MAX_DEPTH:
                out.append(Entry(rel, 0, _utc(0), "", refused=f"folders nested deeper than {MAX_DEPTH}: refused"))
                return
            for name in here.names():
                if name.startswith("."):
                    continue
                path = rel + name
                try:
                    st = here.lstat(name)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(st.st_mode) and not portable.is_link(st):
                    try:
                        child = here.sub(name)
                    except FileNotFoundError:
                        continue
                    with child:
                        walk(child, path + "/", depth + 1)
                elif path.startswith(prefix):
                    out.append(self._entry(path, st))

        with self._errors(f"listing {safe_name(folder)}"):
            try:
                with self._dir(parts) as top:
                    walk(top, folder, 0)
            except (FileNotFoundError, NotADirectoryError):
                return []
        return out

    def stat(self, path: str) -> Entry | None:
        parents, name = self._split(path)
        with self._errors(f"reading {safe_name(path)}"):
            try:
                with self._dir(parents) as here:
                    st = here.lstat(name)
            except (FileNotFoundError, NotADirectoryError):
                return None
        return self._entry(path, st)

    def download(self, path: str, dest: Path, etag: str | None = None) -> Version:
        parents, name = self._split(path)
        hasher = hashlib.sha256()
        with self._errors(f"downloading {safe_name(path)}"), self._dir(parents) as here:
            fd = self._open_regular(here, name)
            with os.fdopen(fd, "rb") as src, dest.open("wb") as out:
                first = os.fstat(fd)
                before = self._entry(path, first).etag
                if etag is not None and before != etag:
                    raise FileChangedError(f"drop zone: {safe_name(path)}: the file changed since it was listed")
                while block := src.read(DOWNLOAD_CHUNK):
                    hasher.update(block)
                    out.write(block)
                last = os.fstat(fd)
                if self._entry(path, last).etag != before or _identity(last) != _identity(first):
                    raise FileChangedError(f"drop zone: {safe_name(path)}: the file changed while it was read "
                                           "(still being written?)")
        return Version(hasher.hexdigest(), before, *_identity(first))

    def read_json(self, path: str) -> Any | None:
        try:
            data = self._read_bytes(path, MAX_JSON_BYTES)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError, DropZoneError) as exc:
            reason = _os_reason(exc) if isinstance(exc, OSError) else str(exc)
            raise UnreadableState(f"{safe_name(path)}: unreadable ({reason})") from None
        return _parse(path, data)

    def write_json(self, path: str, obj: Any) -> None:
        data = json.dumps(obj, indent=1).encode()
        self._write_atomic(path, lambda fh: fh.write(data))

    def write_file(self, path: str, local: Path) -> None:
        def copy(fh: BinaryIO) -> None:
            with open(local, "rb") as src:
                while block := src.read(DOWNLOAD_CHUNK):
                    fh.write(block)

        self._write_atomic(path, copy)

    def _write_atomic(self, path: str, write: Callable[[BinaryIO], object]) -> None:
        """Write through a new temporary file beside the target (created exclusively, never through a link),
        fsynced, then renamed over it; the folder is fsynced too."""
        parents, name = self._split(path)
        tmp = f".tmp-{uuid.uuid4().hex[:16]}"  # short: the target's own name may already be long
        with self._errors(f"writing {safe_name(path)}"), self._dir(parents, create=True) as here:
            try:
                fd = here.open(tmp, portable.CREATE_NEW, 0o666)
                with os.fdopen(fd, "wb") as fh:
                    write(fh)
                    fh.flush()
                    os.fsync(fh.fileno())
                here.rename(tmp, here, name)
            except BaseException:
                with contextlib.suppress(OSError):
                    here.unlink(tmp)
                raise
            here.fsync()

    def move(self, src: str, dst: str, lock: Lock | None = None, version: Version | None = None) -> None:
        (src_parents, src_name), (dst_parents, dst_name) = self._split(src), self._split(dst)
        with self._errors(f"moving {safe_name(src)} to {safe_name(dst)}"), \
                self._dir(dst_parents, create=True) as dst_dir:
            try:
                with self._dir(src_parents) as src_dir:
                    if version is None:
                        src_dir.rename(src_name, dst_dir, dst_name)
                    else:
                        self._file_version(src, (src_dir, src_name), (dst_dir, dst_name), version)
                    src_dir.fsync()
            except FileNotFoundError:
                try:
                    dst_dir.lstat(dst_name)
                except FileNotFoundError:
                    raise DropZoneError(f"drop zone: cannot move {safe_name(src)}: it is gone") from None
            dst_dir.fsync()

    def _file_version(self, src: str, source: tuple[portable.Folder, str], target: tuple[portable.Folder, str],
                      version: Version) -> None:
        """Rename src to its target only while it is `version`: its modification time and size, inode and change
        time (where kept) and the hash of its bytes, checked before the rename; after it, the renamed file must
        be the same file with the same bytes, or it is put back unfiled. Each check opens the file anew (no file
        is held open across a rename, which Windows refuses)."""
        (src_dir, src_name), (dst_dir, dst_name) = source, target
        before = self._version_of(src, src_dir, src_name)
        if before != version:
            raise FileChangedError(f"drop zone: {safe_name(src)}: the file changed since it was sent: not filed")
        src_dir.rename(src_name, dst_dir, dst_name)
        after = self._version_of(src, dst_dir, dst_name)
        if (after.sha256, after.inode) != (version.sha256, version.inode):  # written to or swapped meanwhile
            with contextlib.suppress(OSError):
                dst_dir.rename(dst_name, src_dir, src_name, replace=False)
            raise FileChangedError(f"drop zone: {safe_name(src)}: the file changed while it was filed: not filed")

    def _version_of(self, path: str, folder: portable.Folder, name: str) -> Version:
        """The version a file is now: its bytes hashed through one descriptor, stated before and after."""
        fd = self._open_regular(folder, name)
        with os.fdopen(fd, "rb") as fh:
            first = os.fstat(fd)
            hasher = hashlib.sha256()
            while block := fh.read(DOWNLOAD_CHUNK):
                hasher.update(block)
            if _identity(os.fstat(fd)) != _identity(first):
                return Version("", "")  # changing as it is read: matches no version
        return Version(hasher.hexdigest(), self._entry(path, first).etag, *_identity(first))

    def delete(self, path: str) -> None:
        with self._errors(f"deleting {safe_name(path)}"), contextlib.suppress(NotADirectoryError):
            self._unlink(path)

    def try_lock(self, path: str) -> Lock | None:
        lock_path = f"state/locks/{_clean(path)}.lock"
        parents, name = self._split(lock_path)
        token = uuid.uuid4().hex
        body = json.dumps({"token": token, "host": socket.gethostname(), "pid": os.getpid(),
                           "acquired_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}).encode()
        with self._errors(f"locking {safe_name(path)}"), self._dir(parents, create=True) as here:
            for _ in range(2):
                try:
                    fd = here.open(name, portable.CREATE_NEW, 0o600)
                except FileExistsError:
                    if not _break_stale(here, name):
                        return None
                    continue
                try:
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(body)
                        fh.flush()
                        os.fsync(fh.fileno())
                except BaseException:
                    with contextlib.suppress(OSError):
                        here.unlink(name)
                    raise
                lock = _FileLock(self, lock_path, token)
                if self.stat(path) is None:  # another execution finished it while we waited
                    lock.release()
                    return None
                return lock
        return None

    def sweep_locks(self) -> int:
        """Remove lock files nobody renews any more, or whose file is gone from incoming/; how many went."""
        removed = 0
        now = time.time()
        for entry in self.list("state/locks/"):
            target = entry.path[len("state/locks/"):-len(".lock")] if entry.path.endswith(".lock") else None
            stale = lock_is_stale(entry.modified.timestamp(), now)
            gone = target is not None and name_problem(target) is None and self.stat(target) is None
            if stale or gone or entry.refused:
                with contextlib.suppress(OSError, DropZoneError):
                    self._unlink(entry.path)
                    removed += 1
        return removed


def _break_stale(here: portable.Folder, name: str) -> bool:
    """Remove a stale lock file (`lock_is_stale`); True if the lock may be retried.

    Renames the lock aside first and re-checks its age, so two executions breaking the same stale lock
    cannot remove a fresh lock the other has just created.
    """
    try:
        if not lock_is_stale(here.lstat(name).st_mtime, time.time()):
            return False
        aside = f".{uuid.uuid4().hex}.stale"
        here.rename(name, here, aside, replace=False)
    except FileNotFoundError:
        return True  # released meanwhile
    if not lock_is_stale(here.lstat(aside).st_mtime, time.time()):
        with contextlib.suppress(FileExistsError):  # we took a fresh one: put it back
            here.link(aside, name)
        here.unlink(aside)
        return False
    here.unlink(aside)
    return True


def _identity(st: os.stat_result) -> tuple[int | None, int | None]:
    """A folder file's inode (where the file system numbers files) and change time (where the platform keeps one:
    `portable.CHANGE_TIME`)."""
    return (st.st_ino or None, st.st_ctime_ns if portable.CHANGE_TIME else None)


# ----------------------------------------------------------------------------------------------- blob


# Downloads in 4 MiB requests (the SDK's first request would otherwise fetch up to 32 MiB into memory).
class _Chunking(TypedDict):
    max_single_get_size: int
    max_chunk_get_size: int


_CHUNKING: _Chunking = {"max_single_get_size": DOWNLOAD_CHUNK, "max_chunk_get_size": DOWNLOAD_CHUNK}


def _transport() -> Any:
    """azure-core's requests transport over connections that skip interim 1xx answers (send/https.py)."""
    from azure.core.pipeline.transport import RequestsTransport

    from uploader.send.https import interim_skipping_session

    return RequestsTransport(session=interim_skipping_session(), session_owner=True)


class _Lease(Lock):
    def __init__(self, lease: Any) -> None:
        self.lease = lease

    def renew(self) -> None:
        self.lease.renew()

    def release(self) -> None:
        from azure.core.exceptions import HttpResponseError

        with contextlib.suppress(HttpResponseError):  # gone with a deleted blob, or already expired
            self.lease.release()


class BlobDropZone(DropZone):
    """An Azure Blob container. Moves are server-side copies followed by a delete under the lease."""

    def __init__(self, container: Any, display: str) -> None:
        self.container = container
        self.display = display

    @classmethod
    def from_url(cls, url: str, access: StorageAccess) -> BlobDropZone:
        from azure.storage.blob import ContainerClient

        parsed = urlparse(url)
        segments = [unquote(s) for s in parsed.path.strip("/").split("/") if s]
        if not segments:
            raise UsageError("UPLOADER_DROPZONE_URL: the URL must name the container (…/CONTAINER)")
        display = f"{parsed.scheme}://{parsed.netloc}{parsed.path}"
        conn = access.connection_string
        if conn:
            try:
                container = ContainerClient.from_connection_string(conn, segments[-1], transport=_transport(),
                                                                   **_CHUNKING)
            except ValueError:
                raise UsageError("AZURE_STORAGE_CONNECTION_STRING: not a valid storage connection string") from None
            return cls(container, display)
        if parsed.scheme != "https":
            raise UsageError("UPLOADER_DROPZONE_URL: a blob container URL must use https")
        from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

        client_id = access.client_id
        # the identity's token requests go over the same interim-skipping connections as the blob requests
        credential = (ManagedIdentityCredential(client_id=client_id, transport=_transport()) if client_id
                      else DefaultAzureCredential())
        return cls(ContainerClient.from_container_url(display, credential=credential, transport=_transport(),
                                                      **_CHUNKING), display)

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError

        try:
            yield
        except ClientAuthenticationError as exc:
            raise DropZoneError(f"drop zone {self.display}: {what}: sign-in failed ({type(exc).__name__})") from None
        except HttpResponseError as exc:
            lease_error = "lease" in str(getattr(exc, "error_code", "") or "").lower()
            if exc.status_code == 412 and not lease_error:  # an ETag condition failed: the blob was replaced
                raise FileChangedError(f"drop zone: {what}: the file changed since it was listed") from None
            code = getattr(exc, "error_code", None) or exc.status_code
            code = getattr(code, "value", code)
            raise DropZoneError(f"drop zone {self.display}: {what}: {code}") from None
        except AzureError as exc:
            raise DropZoneError(f"drop zone {self.display}: {what}: {type(exc).__name__}") from None

    def _entry(self, props: Any) -> Entry:
        modified = props.last_modified
        if modified.tzinfo is None:
            modified = modified.replace(tzinfo=dt.UTC)
        return Entry(props.name, int(props.size or 0), modified, str(props.etag).strip('"'),  # listings drop quotes
                     refused=name_problem(props.name))

    def list(self, prefix: str) -> list[Entry]:
        with self._errors(f"listing {safe_name(prefix)}"):
            return [self._entry(b) for b in self.container.list_blobs(name_starts_with=prefix)
                    if not b.name.endswith("/")]

    def stat(self, path: str) -> Entry | None:
        from azure.core.exceptions import ResourceNotFoundError

        with self._errors(f"reading {safe_name(path)}"):
            try:
                return self._entry(self.container.get_blob_client(_clean(path)).get_blob_properties())
            except ResourceNotFoundError:
                return None

    def download(self, path: str, dest: Path, etag: str | None = None) -> Version:
        """The version read is the ETag of the response (the SDK sends it as If-Match with every later range, so a
        blob replaced mid-download fails with 412) and the hash of the bytes. A blob that carries a Content-MD5
        (Put Blob stores one; Put Block List stores the writer's, unchecked) must match the bytes read, as
        AzCopy's downloads require by default (`--check-md5 FailIfDifferent`): Get Blob returns the whole blob's
        MD5 in x-ms-blob-content-md5 with ranged reads (learn.microsoft.com/rest/api/storageservices/get-blob)."""
        from azure.core import MatchConditions

        # with an ETag, the service refuses (412) a blob replaced since it was looked at
        condition = {"etag": f'"{etag}"', "match_condition": MatchConditions.IfNotModified} if etag else {}
        sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)  # MD5: what the service stores, no more
        with self._errors(f"downloading {safe_name(path)}"), dest.open("wb") as out:
            stream = self.container.get_blob_client(_clean(path)).download_blob(**condition)
            for block in stream.chunks():
                sha256.update(block)
                md5.update(block)
                out.write(block)
            props = stream.properties
        stored = props.content_settings.content_md5
        if stored and bytes(stored) != md5.digest():
            raise DropZoneError(f"drop zone: {safe_name(path)}: the bytes read do not match the blob's Content-MD5 "
                                "(damaged in storage or on the way, or written with a wrong MD5): not sent; upload "
                                "it again")
        return Version(sha256.hexdigest(), str(props.etag).strip('"'))

    def read_json(self, path: str) -> Any | None:
        from azure.core.exceptions import ResourceNotFoundError

        with self._errors(f"reading {safe_name(path)}"):
            try:
                blob = self.container.get_blob_client(_clean(path))
                stream = blob.download_blob(offset=0, length=MAX_JSON_BYTES + 1)
                data = stream.readall()
            except ResourceNotFoundError:
                return None
        return _parse(path, data)

    def write_json(self, path: str, obj: Any) -> None:
        from azure.storage.blob import ContentSettings

        with self._errors(f"writing {safe_name(path)}"):
            self.container.get_blob_client(_clean(path)).upload_blob(
                json.dumps(obj, indent=1).encode(), overwrite=True,
                content_settings=ContentSettings(content_type="application/json"),
            )

    def write_file(self, path: str, local: Path) -> None:
        from azure.storage.blob import ContentSettings

        with self._errors(f"writing {safe_name(path)}"), open(local, "rb") as data:
            self.container.get_blob_client(_clean(path)).upload_blob(
                data, overwrite=True, content_settings=ContentSettings(content_type="text/csv"))

    def move(self, src: str, dst: str, lock: Lock | None = None, version: Version | None = None) -> None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceNotFoundError

        source = self.container.get_blob_client(_clean(src))
        target = self.container.get_blob_client(_clean(dst))
        # with a version, only the blob with its ETag (the one read and sent) is copied and deleted (412,
        # FileChangedError, for any other): a blob rewritten after it was read is never filed in its place, nor
        # deleted unsent. The ETag changes with every write to the blob, its data or its properties
        # (learn.microsoft.com/rest/api/storageservices/specifying-conditional-headers-for-blob-service-operations).
        etag = version.etag if version is not None else None
        condition = {"source_etag": f'"{etag}"', "source_match_condition": MatchConditions.IfNotModified} if etag \
            else {}
        delete_condition = {"etag": f'"{etag}"', "match_condition": MatchConditions.IfNotModified} if etag else {}
        with self._errors(f"moving {safe_name(src)} to {safe_name(dst)}"):
            try:
                target.start_copy_from_url(source.url, **condition)
            except ResourceNotFoundError:
                if self.stat(dst) is None:
                    raise DropZoneError(f"drop zone: cannot move {safe_name(src)}: it is gone") from None
                return  # an earlier attempt copied and deleted it
            deadline = time.monotonic() + COPY_TIMEOUT_SECONDS
            while (status := target.get_blob_properties().copy.status) == "pending":
                if time.monotonic() > deadline:
                    raise DropZoneError(f"drop zone: copying {safe_name(src)} to {safe_name(dst)} did not finish")
                time.sleep(1)
            if status != "success":
                raise DropZoneError(f"drop zone: copying {safe_name(src)} to {safe_name(dst)} "
                                    f"ended with status {status}")
            lease = lock.lease if isinstance(lock, _Lease) else None
            with contextlib.suppress(ResourceNotFoundError):
                source.delete_blob(lease=lease, **delete_condition)

    def delete(self, path: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with self._errors(f"deleting {safe_name(path)}"), contextlib.suppress(ResourceNotFoundError):
            self.container.get_blob_client(_clean(path)).delete_blob()

    def try_lock(self, path: str) -> Lock | None:
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        blob = self.container.get_blob_client(_clean(path))
        try:
            return _Lease(blob.acquire_lease(lease_duration=LEASE_SECONDS))
        except ResourceNotFoundError:
            return None
        except HttpResponseError as exc:
            if exc.status_code == 409:  # LeaseAlreadyPresent: another execution holds it
                return None
            with self._errors(f"leasing {safe_name(path)}"):
                raise
    # (a lease on a blob that is being deleted by its holder fails with 404 or 409: both mean "not ours")
