"""Untrusted text in: YAML and JSON read so that bad input is a message, never a crash.

Every YAML file (workflows, suites, policies, price tables) and every JSON document
(suite cases, runs, OTLP) people or programs hand us goes through here. The limits:
control characters are refused with their line and column; nesting stops at
``MAX_DEPTH`` levels; YAML aliases may not expand a document beyond the ratio Go's
yaml.v3 allows ("excessive aliasing"), so a 500-byte alias bomb is refused in
milliseconds instead of filling memory; an unquoted date stays the string it was
written as. Parsing only: reading files (and their size cap) stays with the loaders.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from releasegate.domain.document import Document
from releasegate.domain.document import Path as KeyPath
from releasegate.domain.nesting import MAX_DEPTH, deep_message, too_deep
from releasegate.errors import InputError

MAX_INPUT_BYTES = 10 * 1024 * 1024
"""Default size cap of a YAML or JSON document (``RELEASEGATE_MAX_INPUT_BYTES``)."""

# C0 controls but tab, LF and CR; DEL; the C1 controls but NEL; the two non-characters
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]")
_NAMES = {0: "NUL", 0x1B: "ESC", 0x7F: "DEL", 0x08: "BS", 0x0C: "FF", 0x0B: "VT"}
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"
_SCALARS = (str, int, float, bool, type(None))


def check_size(size: int, limit: int, source: str, error: type[InputError] = InputError) -> None:
    """Refuse a document larger than ``limit`` bytes before it is read."""
    if size > limit:
        raise error(
            f"is {size:,} bytes, more than the {limit:,}-byte limit for an input file",
            source=source,
            hint="raise RELEASEGATE_MAX_INPUT_BYTES if this file is meant to be this large",
        )


def check_controls(text: str, source: str, error: type[InputError] = InputError) -> None:
    """Refuse a text holding a control character, naming its line and column."""
    found = _CONTROL.search(text)
    if found is None:
        return
    at = found.start()
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    code = ord(found.group())
    name = _NAMES.get(code)
    shown = f"U+{code:04X}" + (f" ({name})" if name else "")
    raise error(
        f"control character {shown} at column {column}: an input file cannot hold it",
        source=source,
        line=line,
        hint="remove it (a paste from a terminal?); inside a double-quoted YAML string "
        'write it as an escape, like "\\x1b"',
    )


# -- YAML -------------------------------------------------------------------------------------


class _Resolver(yaml.resolver.Resolver):
    """YAML 1.1's implicit types without the timestamp: ``2024-01-01`` stays a string
    (a date object would fail later in a hash or a JSON column)."""


_Resolver.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}


class _Constructor(yaml.constructor.SafeConstructor):
    """SafeConstructor whose explicit ``!!timestamp`` is kept as its text too."""


_Constructor.add_constructor(_TIMESTAMP, _Constructor.construct_yaml_str)  # type: ignore[type-var]


class _Composer(yaml.composer.Composer):
    """The node composer with a depth limit (the stock one recurses without bound)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH + 1:  # a scalar sits one below its collection
                mark = self.peek_event().start_mark  # type: ignore[attr-defined]
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _PyLoader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    _Composer,
    _Constructor,
    _Resolver,
):
    """The pure-Python parser: slower, with the clearer error messages."""

    def __init__(self, text: str) -> None:
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        _Composer.__init__(self)
        _Constructor.__init__(self)
        _Resolver.__init__(self)


_LOADERS: list[type[Any]] = [_PyLoader]
if getattr(yaml, "__with_libyaml__", False):
    # libyaml composes ~8x faster; it stops nesting at 1,000 levels (C recursion stays
    # small) and the walk below holds the real limits, depth and aliasing included
    from yaml.cyaml import CParser  # type: ignore[attr-defined]

    class _FastLoader(CParser, _Constructor, _Resolver):
        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            _Constructor.__init__(self)
            _Resolver.__init__(self)

    _LOADERS.insert(0, _FastLoader)


class _Refused(Exception):
    """A limit was hit (not a YAML syntax error): reported as is, never re-parsed."""

    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


def allowed_alias_ratio(decoded: int) -> float:
    """yaml.v3's bound on aliased nodes / all nodes: 0.99 up to 400,000 nodes, falling
    linearly to 0.10 at 4,000,000."""
    low, high = 400_000, 4_000_000
    if decoded <= low:
        return 0.99
    if decoded >= high:
        return 0.10
    return 0.99 - 0.89 * (decoded - low) / (high - low)


class _Walk:
    """Nodes to plain data plus a line per path, counting nodes as yaml.v3 does: once an
    anchored node has been walked, each later reference walks it again as an alias."""

    def __init__(self, loader: Any, *, duplicate_keys: bool = False) -> None:
        self.loader = loader
        self.duplicate_keys = duplicate_keys
        self.lines: dict[KeyPath, int] = {}
        self.walked: set[int] = set()
        self.open: set[int] = set()  # collections being walked: a reference back is a cycle
        self.decoded = 0
        self.aliased = 0
        self.alias_depth = 0

    def count(self, node: yaml.Node) -> None:
        self.decoded += 1
        if self.alias_depth:
            self.aliased += 1
            if (
                self.aliased > 100
                and self.decoded > 1000
                and self.aliased / self.decoded > allowed_alias_ratio(self.decoded)
            ):
                raise _Refused(
                    "excessive aliasing: the aliases expand this document far beyond its "
                    "size (a YAML alias bomb?)",
                    node.start_mark,
                )

    def walk(self, node: yaml.Node, path: KeyPath, depth: int) -> Any:
        key = id(node)
        if key in self.walked:  # a reference to an anchor walked before: an alias
            self.count(node)
            self.alias_depth += 1
            try:
                return self.fresh(node, path, depth)
            finally:
                self.alias_depth -= 1
        self.walked.add(key)
        return self.fresh(node, path, depth)

    def fresh(self, node: yaml.Node, path: KeyPath, depth: int) -> Any:
        self.count(node)
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if depth >= MAX_DEPTH:  # the root collection is at depth 0
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels", node.start_mark)
        key = id(node)
        if key in self.open:
            raise _Refused("an alias refers to a node that contains it", node.start_mark)
        self.open.add(key)
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.walk(v, (*path, i), depth + 1) for i, v in enumerate(node.value)]
            return self.mapping(node, path, depth)
        finally:
            self.open.discard(key)

    def mapping(self, node: yaml.Node, path: KeyPath, depth: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Refused("malformed YAML: a key must be a scalar", key_node.start_mark)
            if key_node.tag == _MERGE:
                self.merge(value_node, path, depth, merged)
                continue
            key = self.scalar(key_node)
            if key in out and not self.duplicate_keys:
                raise _Refused(f"malformed YAML: duplicate key '{key}'", key_node.start_mark)
            child = (*path, str(key))
            out[key] = self.walk(value_node, child, depth + 1)
            self.lines[child] = key_node.start_mark.line + 1
        self.lines[path] = node.start_mark.line + 1
        return {**merged, **out} if merged else out

    def merge(self, node: yaml.Node, path: KeyPath, depth: int, into: dict[Any, Any]) -> None:
        """``<<: *base`` or ``<<: [*a, *b]``: the earlier source wins, explicit keys win."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                raise _Refused(
                    "malformed YAML: '<<' merges a mapping or a list of mappings", source.start_mark
                )
            for key, value in self.walk(source, path, depth + 1).items():
                into.setdefault(key, value)

    def scalar(self, node: yaml.Node) -> Any:
        try:
            value = self.loader.construct_object(node, deep=True)
        except (ValueError, OverflowError) as exc:  # int() of 5,000 digits, say
            raise _Refused(f"unreadable value: {exc}", node.start_mark) from None
        if not isinstance(value, _SCALARS):
            raise _Refused(
                f"a value of type {node.tag.rsplit(':', 1)[-1]} is not supported here",
                node.start_mark,
            )
        return value


def _document(loader: Any, source: str, duplicate_keys: bool) -> Document:
    node = loader.get_single_node()
    if node is None:
        return Document(data={}, source=source, lines={})
    walk = _Walk(loader, duplicate_keys=duplicate_keys)
    data = walk.walk(node, (), 0)
    return Document(data=data, source=source, lines=walk.lines)


def parse_yaml(
    text: str,
    source: str,
    error: type[InputError] = InputError,
    *,
    duplicate_keys: bool = False,
) -> Document:
    """A YAML document as plain data (str, int, float, bool, None, list, dict) with the
    line of every value; anything else is ``error`` naming the file and line.
    ``duplicate_keys``: let a repeated key through (the last wins), for a caller that
    reports them itself."""
    check_controls(text, source, error)
    for i, kind in enumerate(_LOADERS):
        is_last = i == len(_LOADERS) - 1
        loader = kind(text)
        try:
            return _document(loader, source, duplicate_keys)
        except _Refused as refused:
            line = refused.mark.line + 1 if refused.mark is not None else None
            raise error(refused.message, source=source, line=line) from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else None
            if "nesting depth" in str(exc.problem):  # libyaml stops at 1,000 levels
                raise error(
                    f"nested deeper than {MAX_DEPTH} levels", source=source, line=line
                ) from None
            if not is_last:
                continue  # libyaml's wording is terse: the Python parser says it again
            problem = exc.problem or exc.context or "malformed YAML"
            raise error(f"malformed YAML: {problem}", source=source, line=line) from None
        except (yaml.YAMLError, RecursionError) as exc:
            if not is_last:
                continue
            raise error(f"malformed YAML: {exc}", source=source) from None
        finally:
            loader.dispose()
    raise AssertionError("unreachable")  # pragma: no cover


def compose_yaml(text: str, source: str, error: type[InputError] = InputError) -> yaml.Node | None:
    """The node tree of a YAML document, for readers that walk nodes themselves, after
    the same checks as ``parse_yaml`` (control characters, depth, aliasing)."""
    parse_yaml(text, source, error, duplicate_keys=True)  # the caller names duplicates
    loader = _LOADERS[0](text)
    try:
        return loader.get_single_node()  # type: ignore[no-any-return]
    finally:
        loader.dispose()


def construct_scalar(node: yaml.Node) -> Any:
    """A scalar node's value, with dates kept as strings (as ``parse_yaml`` keeps them)."""
    loader = _PyLoader("")
    try:
        return loader.construct_object(node)
    finally:
        loader.dispose()


# -- JSON -------------------------------------------------------------------------------------


def parse_json(
    raw: str | bytes,
    source: str,
    error: type[InputError] = InputError,
    *,
    line: int | None = None,
) -> Any:
    """One JSON document, refused (``error`` naming ``source`` and ``line``) when it is
    malformed or nests deeper than ``MAX_DEPTH``. The depth is walked only when the text
    holds more than ``MAX_DEPTH`` brackets (two ``count`` calls in the common case)."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        where = (
            f"column {exc.colno}" if line is not None else f"line {exc.lineno}, column {exc.colno}"
        )
        raise error(
            f"malformed JSON: {exc.msg} ({where})",
            source=source,
            line=line if line is not None else exc.lineno,
        ) from None
    except UnicodeDecodeError as exc:
        raise error(f"not UTF-8 text ({exc.reason})", source=source, line=line) from None
    except RecursionError:
        raise error(deep_message(), source=source, line=line) from None
    except ValueError as exc:  # a 5000-digit number
        raise error(
            f"unreadable JSON: {str(exc).split(';')[0]}", source=source, line=line
        ) from None
    if isinstance(raw, bytes):
        brackets = raw.count(b"[") + raw.count(b"{")
    else:
        brackets = raw.count("[") + raw.count("{")
    if brackets > MAX_DEPTH and too_deep(value):
        raise error(deep_message(), source=source, line=line)
    return value
