"""Reading input files into Documents: YAML with a line for every value, JSONL by line.

This is the only place that parses user files, so every parse error, in any
file kind, comes out as an InputError with the file and line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from releasegate.domain.document import Document
from releasegate.domain.document import Path as KeyPath
from releasegate.errors import InputError


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that keeps the start line of every node it builds."""


# libyaml builds the same nodes and marks ~8x faster; its error wording differs, so a
# document it rejects is parsed again by _LineLoader for the message users see.
_FAST_LOADERS: tuple[type[Any], ...] = (
    (yaml.CSafeLoader,) if getattr(yaml, "__with_libyaml__", False) else ()
)


def _walk(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], loader: Any) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a scalar", key_node.start_mark
                )
            if key in out:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}'", key_node.start_mark
                )
            child = (*path, str(key))
            out[key] = _walk(value_node, child, lines, loader)
            lines[child] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(v, (*path, i), lines, loader) for i, v in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, source: str, error: type[InputError] = InputError) -> Document:
    for fast in _FAST_LOADERS:
        loader = fast(text)
        try:
            node = loader.get_single_node()
            lines: dict[KeyPath, int] = {}
            data = {} if node is None else _walk(node, (), lines, loader)
            return Document(data=data, source=source, lines=lines)
        except yaml.YAMLError:
            pass  # fall through to the pure-Python parser and its messages
        finally:
            loader.dispose()
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        lines = {}
        data = {} if node is None else _walk(node, (), lines, loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "malformed YAML"
        raise error(f"malformed YAML: {problem}", source=source, line=line) from None
    except yaml.YAMLError as exc:
        raise error(f"malformed YAML: {exc}", source=source) from None
    finally:
        loader.dispose()
    return Document(data=data, source=source, lines=lines)


def read_text(path: Path, error: type[InputError] = InputError, *, what: str = "file") -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{what} not found", source=str(path)) from None
    except IsADirectoryError:
        raise error(f"expected a {what}, found a directory", source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise error(f"not UTF-8 text ({exc.reason})", source=str(path)) from None


def load_yaml(path: Path, error: type[InputError] = InputError) -> Document:
    return parse_yaml(read_text(path, error), str(path), error)


def parse_jsonl(text: str, source: str, error: type[InputError] = InputError) -> list[Document]:
    records: list[Document] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise error(
                f"malformed JSON: {exc.msg} (column {exc.colno})", source=source, line=number
            ) from None
        records.append(Document(data=data, source=source, lines={(): number}, base_line=number))
    return records


def load_jsonl(path: Path, error: type[InputError] = InputError) -> list[Document]:
    return parse_jsonl(read_text(path, error), str(path), error)
