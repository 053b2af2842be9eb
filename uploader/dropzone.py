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
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from .errors import UploaderError, UsageError

LEASE_SECONDS = 60  # a blob lease's duration (Azure allows 15-60 s or infinite)
RENEW_SECONDS = 20  # how often a held lock is renewed
STALE_LOCK_SECONDS = 180  # a lock file not renewed for this long belongs to a dead execution
COPY_TIMEOUT_SECONDS = 600  # a server-side copy within one account is normally immediate
DOWNLOAD_CHUNK = 4 * 1024 * 1024


class DropZoneError(UploaderError):
    """The drop zone could not be read or written (storage error, permissions)."""


@dataclass(frozen=True)
class Entry:
    """One file in the drop zone."""

    path: str  # relative to the root, '/'-separated
    size: int
    modified: dt.datetime  # last-modified, UTC
    etag: str  # changes whenever the content is replaced


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
    def download(self, path: str, dest: Path) -> None:
        """Stream the file into dest (a local path), chunk by chunk."""

    @abstractmethod
    def read_json(self, path: str) -> Any | None:
        """A small JSON document, or None when it does not exist (or is unreadable)."""

    @abstractmethod
    def write_json(self, path: str, obj: Any) -> None:
        """Write a small JSON document atomically (a reader sees the old or the new one, never half)."""

    @abstractmethod
    def move(self, src: str, dst: str, lock: Lock | None = None) -> None:
        """Copy src to dst then delete src. Safe to repeat: a missing src with an existing dst is done."""

    @abstractmethod
    def delete(self, path: str) -> None:
        """Delete a file (no error when it is already gone)."""

    @abstractmethod
    def try_lock(self, path: str) -> Lock | None:
        """Claim a file for this execution, or None when another execution holds it or it is gone."""

    def exists(self, path: str) -> bool:
        return self.stat(path) is not None


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


def open_dropzone(url: str, env: dict[str, str] | None = None) -> DropZone:
    """The backend for a drop-zone URL: file:///path or a blob container URL."""
    env = dict(os.environ if env is None else env)
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise UsageError(f"UPLOADER_DROPZONE_URL: file URL must be file:///absolute/path, not {url!r}")
        return FolderDropZone(Path(unquote(parsed.path)))
    if parsed.scheme in ("https", "http"):
        return BlobDropZone.from_url(url, env)
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
        raise DropZoneError(f"drop zone: refusing unsafe path {path!r}")
    return path


# --------------------------------------------------------------------------------------------- folder


class _FileLock(Lock):
    """An exclusive lock file (O_CREAT|O_EXCL) renewed by touching it."""

    def __init__(self, lock_path: Path, token: str) -> None:
        self.path = lock_path
        self.token = token

    def _mine(self) -> bool:
        try:
            return json.loads(self.path.read_text()).get("token") == self.token
        except (OSError, ValueError):
            return False

    def renew(self) -> None:
        if not self._mine():
            raise DropZoneError(f"lock {self.path.name} was taken over")
        os.utime(self.path)

    def release(self) -> None:
        if self._mine():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


class FolderDropZone(DropZone):
    """A local (or mounted) folder; moves are atomic renames within it."""

    def __init__(self, root: Path) -> None:
        if not root.is_absolute():
            raise UsageError(f"UPLOADER_DROPZONE_URL: file URL must hold an absolute path, not {str(root)!r}")
        if not root.is_dir():
            raise UsageError(f"UPLOADER_DROPZONE_URL: folder {root} does not exist")
        self.root = root
        self.display = root.as_uri()

    def _p(self, path: str) -> Path:
        return self.root / _clean(path)

    def _entry(self, path: str, st: os.stat_result) -> Entry:
        return Entry(path, st.st_size, _utc(st.st_mtime), f"{st.st_mtime_ns:x}-{st.st_size:x}")

    def list(self, prefix: str) -> list[Entry]:
        base = self.root / prefix.rstrip("/") if prefix else self.root
        out: list[Entry] = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                full = Path(dirpath) / name
                rel = full.relative_to(self.root).as_posix()
                if name.startswith(".") or not rel.startswith(prefix):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    out.append(self._entry(rel, full.stat()))
        return out

    def stat(self, path: str) -> Entry | None:
        try:
            st = self._p(path).stat()
        except FileNotFoundError:
            return None
        return self._entry(path, st)

    def download(self, path: str, dest: Path) -> None:
        with self._p(path).open("rb") as src, dest.open("wb") as out:
            while block := src.read(DOWNLOAD_CHUNK):
                out.write(block)

    def read_json(self, path: str) -> Any | None:
        try:
            return json.loads(self._p(path).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None

    def write_json(self, path: str, obj: Any) -> None:
        target = self._p(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)

    def move(self, src: str, dst: str, lock: Lock | None = None) -> None:
        source, target = self._p(src), self._p(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, target)
        except FileNotFoundError:
            if not target.exists():
                raise DropZoneError(f"drop zone: cannot move {src}: it is gone") from None
        _fsync_dir(target.parent)
        _fsync_dir(source.parent)

    def delete(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._p(path).unlink()

    def try_lock(self, path: str) -> Lock | None:
        lock_path = self._p(f"state/locks/{_clean(path)}.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        body = json.dumps({"token": token, "host": socket.gethostname(), "pid": os.getpid(),
                           "acquired_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
        for _ in range(2):
            try:
                fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                if not _break_stale(lock_path):
                    return None
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            if not self._p(path).exists():  # another execution finished it while we waited
                _FileLock(lock_path, token).release()
                return None
            return _FileLock(lock_path, token)
        return None


def _break_stale(lock_path: Path) -> bool:
    """Remove a lock file nobody has renewed for STALE_LOCK_SECONDS; True if the lock may be retried.

    Renames the lock aside first and re-checks its age, so two executions breaking the same stale lock
    cannot remove a fresh lock the other has just created.
    """
    try:
        if time.time() - lock_path.stat().st_mtime < STALE_LOCK_SECONDS:
            return False
        aside = lock_path.with_name(f".{lock_path.name}.{uuid.uuid4().hex}.stale")
        os.rename(lock_path, aside)
    except FileNotFoundError:
        return True  # released meanwhile
    if time.time() - aside.stat().st_mtime < STALE_LOCK_SECONDS:  # we took a fresh one: put it back
        with contextlib.suppress(FileExistsError):
            os.link(aside, lock_path)
        aside.unlink()
        return False
    aside.unlink()
    return True


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ----------------------------------------------------------------------------------------------- blob


# Downloads in 4 MiB requests (the SDK's first request would otherwise fetch up to 32 MiB into memory).
_CHUNKING = {"max_single_get_size": DOWNLOAD_CHUNK, "max_chunk_get_size": DOWNLOAD_CHUNK}


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
    def from_url(cls, url: str, env: dict[str, str]) -> BlobDropZone:
        from azure.storage.blob import ContainerClient

        parsed = urlparse(url)
        segments = [unquote(s) for s in parsed.path.strip("/").split("/") if s]
        if not segments:
            raise UsageError("UPLOADER_DROPZONE_URL: the URL must name the container (…/CONTAINER)")
        display = f"{parsed.scheme}://{parsed.netloc}{parsed.path}"
        conn = env.get("AZURE_STORAGE_CONNECTION_STRING")
        if conn:
            try:
                container = ContainerClient.from_connection_string(conn, segments[-1], **_CHUNKING)
            except ValueError:
                raise UsageError("AZURE_STORAGE_CONNECTION_STRING: not a valid storage connection string") from None
            return cls(container, display)
        if parsed.scheme != "https":
            raise UsageError("UPLOADER_DROPZONE_URL: a blob container URL must use https")
        from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

        client_id = env.get("AZURE_CLIENT_ID")
        credential = ManagedIdentityCredential(client_id=client_id) if client_id else DefaultAzureCredential()
        return cls(ContainerClient.from_container_url(display, credential=credential, **_CHUNKING), display)

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError

        try:
            yield
        except ClientAuthenticationError as exc:
            raise DropZoneError(f"drop zone {self.display}: {what}: sign-in failed ({type(exc).__name__})") from None
        except HttpResponseError as exc:
            code = getattr(exc, "error_code", None) or exc.status_code
            code = getattr(code, "value", code)
            raise DropZoneError(f"drop zone {self.display}: {what}: {code}") from None
        except AzureError as exc:
            raise DropZoneError(f"drop zone {self.display}: {what}: {type(exc).__name__}") from None

    def _entry(self, props: Any) -> Entry:
        modified = props.last_modified
        if modified.tzinfo is None:
            modified = modified.replace(tzinfo=dt.UTC)
        return Entry(props.name, int(props.size or 0), modified, str(props.etag).strip('"'))  # listings drop quotes

    def list(self, prefix: str) -> list[Entry]:
        with self._errors(f"listing {prefix}"):
            return [self._entry(b) for b in self.container.list_blobs(name_starts_with=prefix)
                    if not b.name.endswith("/")]

    def stat(self, path: str) -> Entry | None:
        from azure.core.exceptions import ResourceNotFoundError

        with self._errors(f"reading {path}"):
            try:
                return self._entry(self.container.get_blob_client(_clean(path)).get_blob_properties())
            except ResourceNotFoundError:
                return None

    def download(self, path: str, dest: Path) -> None:
        with self._errors(f"downloading {path}"), dest.open("wb") as out:
            stream = self.container.get_blob_client(_clean(path)).download_blob()
            for block in stream.chunks():
                out.write(block)

    def read_json(self, path: str) -> Any | None:
        from azure.core.exceptions import ResourceNotFoundError

        with self._errors(f"reading {path}"):
            try:
                data = self.container.get_blob_client(_clean(path)).download_blob().readall()
            except ResourceNotFoundError:
                return None
        try:
            return json.loads(data)
        except ValueError:
            return None

    def write_json(self, path: str, obj: Any) -> None:
        from azure.storage.blob import ContentSettings

        with self._errors(f"writing {path}"):
            self.container.get_blob_client(_clean(path)).upload_blob(
                json.dumps(obj, indent=1).encode(), overwrite=True,
                content_settings=ContentSettings(content_type="application/json"),
            )

    def move(self, src: str, dst: str, lock: Lock | None = None) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        source = self.container.get_blob_client(_clean(src))
        target = self.container.get_blob_client(_clean(dst))
        with self._errors(f"moving {src} to {dst}"):
            try:
                target.start_copy_from_url(source.url)
            except ResourceNotFoundError:
                if self.stat(dst) is None:
                    raise DropZoneError(f"drop zone: cannot move {src}: it is gone") from None
                return  # an earlier attempt copied and deleted it
            deadline = time.monotonic() + COPY_TIMEOUT_SECONDS
            while (status := target.get_blob_properties().copy.status) == "pending":
                if time.monotonic() > deadline:
                    raise DropZoneError(f"drop zone: copying {src} to {dst} did not finish")
                time.sleep(1)
            if status != "success":
                raise DropZoneError(f"drop zone: copying {src} to {dst} ended with status {status}")
            lease = lock.lease if isinstance(lock, _Lease) else None
            with contextlib.suppress(ResourceNotFoundError):
                source.delete_blob(lease=lease)

    def delete(self, path: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with self._errors(f"deleting {path}"), contextlib.suppress(ResourceNotFoundError):
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
            with self._errors(f"leasing {path}"):
                raise
    # (a lease on a blob that is being deleted by its holder fails with 404 or 409: both mean "not ours")
