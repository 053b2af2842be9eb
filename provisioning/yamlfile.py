"""Stack files through the uploader's one YAML reader (no aliases, duplicate keys reported), as ConfigError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from provisioning.config import ConfigError
from uploader import yamlfile
from uploader.model.mapping import MappingError


def read_yaml(path: Path) -> tuple[Any, list[ConfigError]]:
    """The file's data and its duplicate-key problems; ConfigError (file:line) when it cannot be read at all."""
    try:
        data, duplicates = yamlfile.read_yaml(path)
    except MappingError as exc:
        raise ConfigError(exc.key, exc.rule) from None
    return data, [ConfigError(d.key, d.rule) for d in duplicates]
