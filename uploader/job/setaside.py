"""Job mode's place for set-aside rows (send.quarantine): beside the file under the drop zone's rejected/."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from uploader.job.dropzone import DropZone
from uploader.send.quarantine import set_aside_name


class DropZoneSetAside:
    """`rejected/<folder>/<name>.invalid-rows-<sha12>.csv` and its `.errors.json`, for `rejected/<folder>/<name>`."""

    def __init__(self, dropzone: DropZone, rejected_path: str) -> None:
        self.dz = dropzone
        self.rejected_path = rejected_path

    def target(self, sha256: str) -> str:
        p = PurePosixPath(self.rejected_path)
        return str(p.parent / set_aside_name(p.name, sha256))

    def exists(self, target: str) -> bool:
        return self.dz.exists(target)

    def write_errors(self, target: str, document: dict[str, Any]) -> None:
        self.dz.write_json(f"{target}.errors.json", document)

    def write_rows(self, target: str, local: Path) -> None:
        self.dz.write_file(target, local)
