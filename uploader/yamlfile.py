"""The one YAML reader for stack files (and Pulumi.yaml): safe types only, no aliases, duplicate keys reported.

Used by `python -m provisioning` and by the uploader's `--stack` option alike. PyYAML is imported only when a
file is read: the job's image has no PyYAML, and every uploader module must still import there.

- Aliases (`*name`, and `<<: *name` merges) are refused before anything is built: a few hundred bytes of nested
  aliases expand into billions of nodes when the value is walked (the "billion laughs"), and a stack file has no
  need of them. The error names the file and line.
- A key given twice in one mapping is reported with its config path (`hr-connector:connectors[1].files`) and both
  lines: YAML keeps the last one silently, so one of the two values never takes effect.
- Bounded: a file over MAX_BYTES, nesting deeper than MAX_DEPTH, or an integer longer than MAX_INT_DIGITS is refused
  with file:line and the rule (a stack file needs none of them; unbounded, they end in a RecursionError or Python's
  int-conversion limit as a traceback). A FIFO or device is refused before it is read. So one broken stack file is
  one stack's error, never the fleet's traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from uploader.model.mapping import MappingError
from uploader.model.safetext import safe_text

if TYPE_CHECKING:
    import yaml

#: A stack file is a few KB; 1 MiB leaves room for hundreds of connectors.
MAX_BYTES = 1024 * 1024
#: The deepest a stack file goes is ~7 levels (config > connectors > [i] > scenarios > [j] > columns > key).
MAX_DEPTH = 64
#: Past a 64-bit integer (19 digits) no setting means anything; Python refuses over 4300 digits with a traceback.
MAX_INT_DIGITS = 20


@functools.cache
def _no_alias_loader() -> type[yaml.SafeLoader]:
    """PyYAML's SafeLoader, refusing an alias the moment the parser meets it (before any expansion), nesting
    deeper than MAX_DEPTH before it recurses further, and integers longer than MAX_INT_DIGITS before int()."""
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        _depth = 0

        def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
            event = self.peek_event()  # type: ignore[no-untyped-call]
            line = event.start_mark.line + 1 if event.start_mark is not None else 0
            if isinstance(event, yaml.AliasEvent):
                raise _Refused(line,
                               f"YAML alias *{safe_text(event.anchor, 60)} is not allowed in stack files (aliases can "
                               "expand a small file into gigabytes): write the value out")
            if self._depth >= MAX_DEPTH:
                raise _Refused(line,
                               f"nested more than {MAX_DEPTH} levels deep (a stack file needs fewer than 10)")
            self._depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_bounded_int(self, node: yaml.ScalarNode) -> int:
            digits = str(node.value).replace("_", "").lstrip("+-")
            if len(digits) > MAX_INT_DIGITS:
                raise _Refused(node.start_mark.line + 1,
                               f"an integer of {len(digits)} digits (at most {MAX_INT_DIGITS}): quote it if it is text")
            return self.construct_yaml_int(node)

    NoAliasLoader.add_constructor("tag:yaml.org,2002:int", NoAliasLoader.construct_bounded_int)
    return NoAliasLoader


class _Refused(Exception):
    """A bound the file breaks, found while parsing: the line and the rule."""

    def __init__(self, line: int, rule: str) -> None:
        super().__init__(rule)
        self.line, self.rule = line, rule


def _read_bounded(path: Path) -> str:
    """The file's text, through the one bounded reader (model/boundedio): a regular file of at most MAX_BYTES (a
    FIFO or device is refused before any read)."""
    from uploader.model.boundedio import FileReadError, read_file

    try:
        data = read_file(path, limit=MAX_BYTES)
    except FileReadError as exc:
        raise MappingError(exc.where or "the value", "stack file not found" if exc.missing else exc.reason) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MappingError(safe_text(path), "cannot be read (not UTF-8)") from None


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
    text = _read_bounded(path)
    import yaml

    try:
        loader = _no_alias_loader()(text)
    except yaml.YAMLError as exc:  # the reader refuses control characters before any node is read
        raise MappingError(safe_text(path), f"not valid YAML ({getattr(exc, 'reason', None) or type(exc).__name__})"
                           ) from None
    try:
        node = loader.get_single_node()
        problems = [
            MappingError(safe_text(key), f"is given twice in {safe_text(path.name)} (lines {first} and {again}); "
                             "YAML keeps only the last one, so the other is silently ignored: keep one")
            for key, first, again in _duplicates(node)
        ] if node is not None else []
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        raise MappingError(f"{safe_text(path)}:{exc.line}", exc.rule) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{safe_text(path)}:{mark.line + 1}" if mark is not None else safe_text(path)
        raise MappingError(where, f"not valid YAML ({getattr(exc, 'problem', None) or type(exc).__name__})") from None
    except (RecursionError, ValueError, OverflowError, MemoryError) as exc:  # a bound this reader does not know yet
        raise MappingError(safe_text(path), f"cannot be read as a stack file ({type(exc).__name__})") from None
    finally:
        loader.dispose()
    return data, problems
