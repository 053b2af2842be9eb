"""The drop-zone backends (uploader.job.dropzone) against a real Azurite and a real folder, and the job's globs.

The `azurite` fixture (tests/azurite_support.py, shared through conftest) starts one Azurite per session.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import threading
import time
import uuid
from pathlib import Path

import pytest
from azurite_support import DEV_ACCOUNT, DEV_KEY

from uploader.errors import UsageError
from uploader.job import dropzone as dzmod
from uploader.job.dropzone import (
    DropZoneError,
    FolderDropZone,
    StorageAccess,
    UnreadableState,
    keep_renewed,
    open_dropzone,
)
from uploader.model.globs import GlobMatcher


@pytest.fixture(params=["folder", "blob"])
def dropzone(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The same tests run over both backends."""
    if request.param == "folder":
        return open_dropzone(tmp_path.as_uri())
    az = request.getfixturevalue("azurite")
    url, _ = az.new_container()
    return open_dropzone(url, StorageAccess(connection_string=az.connection_string))


def _put(dz, path: str, data: bytes) -> None:
    if isinstance(dz, FolderDropZone):
        target = dz.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    else:
        dz.container.upload_blob(path, data, overwrite=True)


def test_list_stat_download(dropzone, tmp_path: Path) -> None:
    _put(dropzone, "incoming/a/one.csv", b"h\n1\n")
    _put(dropzone, "incoming/two.csv", b"h\n2\n22\n")
    _put(dropzone, "processed/x.csv", b"h\n")
    entries = sorted(dropzone.list("incoming/"), key=lambda e: e.path)
    assert [(e.path, e.size) for e in entries] == [("incoming/a/one.csv", 4), ("incoming/two.csv", 7)]
    assert all(e.modified.tzinfo is not None for e in entries)
    assert dropzone.stat("incoming/two.csv").etag == entries[1].etag  # listing and stat agree
    assert dropzone.stat("incoming/missing.csv") is None
    dest = tmp_path / "download"
    dropzone.download("incoming/two.csv", dest)
    assert dest.read_bytes() == b"h\n2\n22\n"


def test_download_streams_in_chunks(dropzone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    _put(dropzone, "incoming/big.csv", data)
    monkeypatch.setattr(dzmod, "DOWNLOAD_CHUNK", 64 * 1024)
    dest = tmp_path / "big"
    dropzone.download("incoming/big.csv", dest)
    assert dest.read_bytes() == data


def test_json_roundtrip_and_missing(dropzone) -> None:
    assert dropzone.read_json("state/none.json") is None
    dropzone.write_json("state/job/abc.json", {"records_acked": 5})
    dropzone.write_json("state/job/abc.json", {"records_acked": 10})
    assert dropzone.read_json("state/job/abc.json") == {"records_acked": 10}
    _put(dropzone, "state/bad.json", b"{not json")
    with pytest.raises(UnreadableState, match="not valid JSON"):  # the job warns and treats it as absent
        dropzone.read_json("state/bad.json")


def test_move_is_repeatable(dropzone) -> None:
    _put(dropzone, "incoming/d/x.csv", b"h\n1\n")
    lock = dropzone.try_lock("incoming/d/x.csv")
    assert lock is not None
    dropzone.move("incoming/d/x.csv", "processed/2026/11/22/d/x.csv", lock)
    dropzone.move("incoming/d/x.csv", "processed/2026/11/22/d/x.csv", lock)  # a second attempt: already done
    lock.release()
    assert dropzone.stat("incoming/d/x.csv") is None
    assert dropzone.stat("processed/2026/11/22/d/x.csv").size == 4
    with pytest.raises(DropZoneError):
        dropzone.move("incoming/never.csv", "processed/never.csv")


def _rewrite_same_size(dz, path: str, data: bytes) -> None:
    """Replace a file's bytes with others of the same size; a folder file keeps its inode and gets its modification
    time back (as `cp -p`, `rsync -t`, `tar` and `unzip` leave it). A blob cannot be given its time back."""
    if isinstance(dz, FolderDropZone):
        target = dz.root / path
        before = target.stat()
        with open(target, "r+b") as fh:
            fh.write(data)
        os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert target.stat().st_ino == before.st_ino
    else:
        dz.container.upload_blob(path, data, overwrite=True)


def test_only_the_version_read_is_filed(dropzone, tmp_path: Path) -> None:
    """Issue 23 B: the version is what download read (its bytes' hash; the blob's ETag; the folder file's inode and
    change time); a file rewritten since, even to the same size and time, is neither filed nor deleted."""
    old, new = b"h\nold-1\n", b"h\nnew-2\n"
    _put(dropzone, "incoming/v.csv", old)
    listed = dropzone.stat("incoming/v.csv")
    version = dropzone.download("incoming/v.csv", tmp_path / "copy", etag=listed.etag)
    assert version.sha256 == hashlib.sha256(old).hexdigest() and (tmp_path / "copy").read_bytes() == old
    if isinstance(dropzone, FolderDropZone):
        assert version.inode and version.ctime_ns and version.etag == listed.etag
        assert dropzone.stat("incoming/v.csv").etag == listed.etag  # size and time alone cannot tell
    _rewrite_same_size(dropzone, "incoming/v.csv", new)
    with pytest.raises(dzmod.FileChangedError, match="changed since it was"):
        dropzone.move("incoming/v.csv", "processed/v.csv", version=version)
    assert dropzone.stat("processed/v.csv") is None
    dest = tmp_path / "now"
    again = dropzone.download("incoming/v.csv", dest)
    assert dest.read_bytes() == new and again.sha256 == hashlib.sha256(new).hexdigest()
    dropzone.move("incoming/v.csv", "processed/v.csv", version=again)  # the version read now is filed
    assert dropzone.stat("incoming/v.csv") is None and dropzone.stat("processed/v.csv").size == len(new)


@pytest.mark.azurite
def test_a_blob_whose_bytes_do_not_match_its_content_md5_is_not_read(azurite, tmp_path: Path) -> None:  # noqa: ANN001
    """A blob's stored Content-MD5 (Put Blob computes it; Put Block List and Set Blob Properties store the writer's,
    unchecked) must be the MD5 of the bytes read, or they are not the bytes its writer stored."""
    from azure.storage.blob import ContentSettings

    url, container = azurite.new_container()
    dz = open_dropzone(url, StorageAccess(connection_string=azurite.connection_string))
    container.upload_blob("incoming/m.csv", b"h\n1\n")
    version = dz.download("incoming/m.csv", tmp_path / "ok")
    assert version.sha256 == hashlib.sha256(b"h\n1\n").hexdigest()
    container.get_blob_client("incoming/m.csv").set_http_headers(
        ContentSettings(content_type="text/csv", content_md5=bytearray(hashlib.md5(b"other",
                                                                     usedforsecurity=False).digest())))
    with pytest.raises(DropZoneError, match="do not match the blob's Content-MD5"):
        dz.download("incoming/m.csv", tmp_path / "bad")


def test_lock_is_exclusive_until_released(dropzone) -> None:
    _put(dropzone, "incoming/x.csv", b"h\n")
    first = dropzone.try_lock("incoming/x.csv")
    assert first is not None
    assert dropzone.try_lock("incoming/x.csv") is None
    first.renew()
    assert dropzone.try_lock("incoming/x.csv") is None
    first.release()
    again = dropzone.try_lock("incoming/x.csv")
    assert again is not None
    again.release()
    assert dropzone.try_lock("incoming/gone.csv") is None  # nothing to claim


def test_concurrent_claims_have_one_winner(dropzone) -> None:
    _put(dropzone, "incoming/race.csv", b"h\n")
    winners: list[object] = []
    barrier = threading.Barrier(6)

    def claim() -> None:
        barrier.wait()
        lock = dropzone.try_lock("incoming/race.csv")
        if lock is not None:
            winners.append(lock)

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    winners[0].release()


def test_keep_renewed_marks_a_lost_lock(dropzone) -> None:
    _put(dropzone, "incoming/x.csv", b"h\n")
    lock = dropzone.try_lock("incoming/x.csv")
    with keep_renewed(lock, every=0.05):
        time.sleep(0.2)
        assert not lock.lost
        if isinstance(dropzone, FolderDropZone):
            (dropzone.root / "state/locks/incoming/x.csv.lock").unlink()  # taken away
        else:
            from azure.storage.blob import BlobLeaseClient

            BlobLeaseClient(dropzone.container.get_blob_client("incoming/x.csv")).break_lease(lease_break_period=0)
        deadline = time.monotonic() + 5
        while not lock.lost and time.monotonic() < deadline:
            time.sleep(0.05)
    assert lock.lost
    lock.release()


def test_stale_lock_file_is_broken(tmp_path: Path) -> None:
    dz = open_dropzone(tmp_path.as_uri())
    _put(dz, "incoming/x.csv", b"h\n")
    held = dz.try_lock("incoming/x.csv")
    lock_file = tmp_path / "state/locks/incoming/x.csv.lock"
    assert dz.try_lock("incoming/x.csv") is None
    old = time.time() - dzmod.STALE_LOCK_SECONDS - 5
    os.utime(lock_file, (old, old))  # its execution died and stopped renewing it
    taker = dz.try_lock("incoming/x.csv")
    assert taker is not None
    assert held is not None
    with pytest.raises(DropZoneError):
        held.renew()  # the dead execution, had it woken up, learns it lost the claim
    held.release()  # must not remove the new holder's lock
    assert lock_file.exists()
    assert json.loads(lock_file.read_text())["pid"] == os.getpid()
    taker.release()
    assert not lock_file.exists()


def test_paths_cannot_leave_the_root(tmp_path: Path) -> None:
    dz = open_dropzone(tmp_path.as_uri())
    for bad in ("../x", "/etc/passwd", "a/../../x", "a//b", "a\\b"):
        with pytest.raises(DropZoneError):
            dz.stat(bad)


def test_urls(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="UPLOADER_DROPZONE_URL"):
        open_dropzone("ftp://example/x")
    with pytest.raises(UsageError, match="does not exist"):
        open_dropzone((tmp_path / "missing").as_uri())
    with pytest.raises(UsageError, match="must name the container"):
        open_dropzone("https://acct.blob.core.windows.net/", StorageAccess())
    with pytest.raises(UsageError, match="https"):
        open_dropzone("http://acct.blob.core.windows.net/c", StorageAccess())
    with pytest.raises(UsageError, match="AZURE_STORAGE_CONNECTION_STRING"):
        open_dropzone("https://acct.blob.core.windows.net/c", StorageAccess(connection_string="nonsense"))
    managed = open_dropzone("https://acct.blob.core.windows.net/drop", StorageAccess(client_id=str(uuid.uuid4())))
    assert type(managed.container.credential).__name__ == "ManagedIdentityCredential"
    assert managed.container.container_name == "drop"


def test_storage_errors_name_the_drop_zone_not_secrets(azurite) -> None:
    url = f"http://127.0.0.1:{azurite.port}/{DEV_ACCOUNT}/no-such-container"
    dz = open_dropzone(url, StorageAccess(connection_string=azurite.connection_string))
    with pytest.raises(DropZoneError) as info:
        dz.list("incoming/")
    assert "no-such-container" in str(info.value) and "ContainerNotFound" in str(info.value)
    assert DEV_KEY not in str(info.value)


@pytest.mark.parametrize(("pattern", "path", "matches"), [
    ("departures/*.csv", "departures/a.csv", True),
    ("departures/*.csv", "departures/sub/a.csv", False),
    ("departures/*.csv", "other/a.csv", False),
    ("*.csv", "a.csv", True),
    ("*.csv", "x/a.csv", False),
    ("**/*.csv", "a.csv", True),
    ("**/*.csv", "x/y/a.csv", True),
    ("**/*.csv", "x/y/a.txt", False),
    ("profiles/**", "profiles/2026/a.csv", True),
    ("hr_??.csv", "hr_01.csv", True),
    ("hr_??.csv", "hr_1.csv", False),
    ("hr_[0-9].csv", "hr_7.csv", True),
    ("hr_[!0-9].csv", "hr_7.csv", False),
    ("a.b(c)+.csv", "a.b(c)+.csv", True),
    ("a.csv", "aXcsv", False),
])
def test_glob(pattern: str, path: str, matches: bool) -> None:
    assert GlobMatcher(pattern).matches(path) is matches


def test_entry_times_are_utc(dropzone) -> None:
    _put(dropzone, "incoming/t.csv", b"h\n")
    entry = dropzone.stat("incoming/t.csv")
    assert abs((dt.datetime.now(dt.UTC) - entry.modified).total_seconds()) < 120


def test_glob_matching_is_linear_in_the_name() -> None:
    """Issue 18: `*-*-*-*-*.csv` against 196 dashes took 51 s by regex; the automaton takes one step a character."""
    import time

    from uploader.model.globs import MAX_MATCH_CHARS

    started = time.monotonic()
    for pattern in ("*-*-*-*-*.csv", "*-*-*-*-*-*-*-*.csv", "**/*a*a*a*a*a*b", "[!x]*?*?*?*?*.csv"):
        glob = GlobMatcher(pattern)
        for name in ("-" * 196 + ".txt", "-" * 1000, "a/" * 400 + "a" * 200, "-" * 1019 + ".csv"):
            glob.matches(name)
    assert time.monotonic() - started < 2
    assert GlobMatcher("*-*.csv").matches("-" * 500 + ".csv")
    assert not GlobMatcher("*").matches("x" * (MAX_MATCH_CHARS + 1))  # names over the bound never match


def test_a_lock_dated_in_the_future_is_stale() -> None:
    from uploader.job.dropzone import STALE_LOCK_SECONDS, lock_is_stale

    now = time.time()
    assert not lock_is_stale(now, now) and not lock_is_stale(now + 60, now)  # a little clock skew is fine
    assert lock_is_stale(now - STALE_LOCK_SECONDS, now)
    assert lock_is_stale(now + 3600, now) and lock_is_stale(now + 365 * 86400, now)
