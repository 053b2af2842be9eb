"""The one YAML reader for stack files (and Pulumi.yaml): safe types only, no aliases, duplicate keys reported.

Used by `python -m provisioning` and by the uploader's `--stack` option alike. PyYAML is imported only when a
file is read: the job's image has no PyYAML, and every uploader module must still import there.

- Aliases (`*name`, and `<<: *name` merges) are refused before anything is built: a few hundred bytes of nested
  aliases expand into billions of nodes when the value is walked (the "billion laughs"), and a stack file has no
  need of them. The error names the file and line.
- A key given twice in one mapping is reported with its config path (`hr-connector:connectors[1].files`) and both
  lines: YAML keeps the last one silently, so one of the two values never takes effect.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from uploader.model.mapping import MappingError

if TYPE_CHECKING:
    import yaml


@functools.cache
def _no_alias_loader() -> type[yaml.SafeLoader]:
    """PyYAML's SafeLoader, refusing an alias the moment the parser meets it (before any expansion)."""
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise _AliasRefused(event.anchor, event.start_mark.line + 1)
            return super().compose_node(parent, index)  # type: ignore[no-any-return]

    return NoAliasLoader


class _AliasRefused(Exception):
    def __init__(self, anchor: str, line: int) -> None:
        super().__init__(anchor)
        self.anchor, self.line = anchor, line


def _step(path: str, key: str) -> str:
    """The config path of a mapping key: the stack's `config:` keys stand alone, nested keys after a dot."""
    if path in ("", "config"):
        return key
    return f"{path}.{key}"


def _duplicates(node: yaml.Node, path: str = "") -> Iterator[tuple[str, int, int]]:
    """(config path, first line, repeated line) for every key given twice in one mapping."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        seen: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            line = key_node.start_mark.line + 1
            marker = (key_node.tag, key)
            if isinstance(key_node, yaml.ScalarNode) and marker in seen:
                yield _step(path, key), seen[marker], line
            else:
                seen[marker] = line
            yield from _duplicates(value_node, _step(path, key))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicates(item, f"{path}[{i}]")


def read_yaml(path: Path) -> tuple[Any, list[MappingError]]:
    """The file's data and its duplicate-key problems; MappingError (file:line) when it cannot be read at all."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise MappingError(str(path), "stack file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(str(path), f"cannot be read ({type(exc).__name__})") from None
    import yaml

    loader = _no_alias_loader()(text)
    try:
        node = loader.get_single_node()
        problems = [
            MappingError(key, f"is given twice in {path.name} (lines {first} and {again}); YAML keeps only the "
                             "last one, so the other is silently ignored: keep one")
            for key, first, again in _duplicates(node)
        ] if node is not None else []
        data = loader.construct_document(node) if node is not None else None
    except _AliasRefused as exc:
        raise MappingError(f"{path}:{exc.line}", f"YAML alias *{exc.anchor} is not allowed in stack files "
                                                "(aliases can expand a small file into gigabytes): write the "
                                                "value out") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise MappingError(where, f"not valid YAML ({getattr(exc, 'problem', None) or type(exc).__name__})") from None
    finally:
        loader.dispose()
    return data, problems
