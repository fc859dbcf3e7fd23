"""A parsed input file that remembers where each value came from.

Loaders (at the edge) turn YAML or JSONL into plain data plus a map from each
value's path to its line, so validation here can say "suite.yaml:14: field
'scorers[1].type'" without knowing how the text was parsed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from releasegate.errors import InputError

Path = tuple[str | int, ...]


def dotted(path: Path) -> str:
    """``("scorers", 1, "type")`` -> ``"scorers[1].type"``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def undotted(text: str) -> Path:
    """``"scorers[1].type"`` -> ``("scorers", 1, "type")``: the inverse of ``dotted``."""
    out: list[str | int] = []
    for part in text.split("."):
        name, _, rest = part.partition("[")
        if name:
            out.append(name)
        for index in filter(None, rest.replace("]", "").split("[")):
            out.append(int(index) if index.isdigit() else index)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Document:
    data: Any
    source: str
    lines: Mapping[Path, int] = field(default_factory=dict)
    base_line: int = 1  # for a JSONL record: its line in the file

    def line_of(self, path: Path) -> int:
        """The line of ``path`` or of its nearest ancestor that has one."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), self.base_line)

    def fail(
        self, error: type[InputError], message: str, path: Path, hint: str | None = None
    ) -> NoReturn:
        raise error(
            message,
            source=self.source,
            line=self.line_of(path),
            field=dotted(path) or None,
            hint=hint,
        )


class Fields:
    """Typed access to a mapping in a Document, failing with file, line and field."""

    def __init__(self, doc: Document, error: type[InputError], path: Path = ()) -> None:
        self.doc = doc
        self.error = error
        self.path = path
        value = self._at(path)
        if not isinstance(value, Mapping):
            doc.fail(error, f"expected a mapping, got {type_name(value)}", path)
        self.value: Mapping[str, Any] = value

    def _at(self, path: Path) -> Any:
        value = self.doc.data
        for part in path:
            value = value[part]
        return value

    def only(self, *allowed: str) -> Fields:
        for key in self.value:
            if key not in allowed:
                self.doc.fail(
                    self.error,
                    f"unknown field '{key}'",
                    (*self.path, str(key)),
                    hint="allowed here: " + ", ".join(allowed),
                )
        return self

    def has(self, key: str) -> bool:
        return key in self.value and self.value[key] is not None

    def get(
        self,
        key: str,
        kind: type | tuple[type, ...],
        default: Any = None,
        *,
        required: bool = False,
    ) -> Any:
        if key not in self.value or self.value[key] is None:
            if required:
                self.doc.fail(self.error, "is required", (*self.path, key))
            return default
        value = self.value[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, bool) and bool not in kinds:
            self.fail_type(key, kinds, value)
        if not isinstance(value, kinds):
            self.fail_type(key, kinds, value)
        return value

    def fail_type(self, key: str | int, kinds: tuple[type, ...], value: Any) -> NoReturn:
        want = " or ".join(type_name_of(k) for k in kinds)
        self.doc.fail(self.error, f"expected {want}, got {type_name(value)}", (*self.path, key))

    def sub(self, key: str) -> Fields:
        return Fields(self.doc, self.error, (*self.path, key))

    def sub_fail(self, key: str, index: int, value: Any) -> NoReturn:
        self.doc.fail(
            self.error, f"expected a string, got {type_name(value)}", (*self.path, key, index)
        )

    def fail(self, key: str | int | None, message: str, hint: str | None = None) -> NoReturn:
        path = self.path if key is None else (*self.path, key)
        self.doc.fail(self.error, message, path, hint=hint)


_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true/false",
    list: "a list",
    dict: "a mapping",
    type(None): "nothing",
}


def type_name_of(kind: type) -> str:
    return _TYPE_NAMES.get(kind, kind.__name__)


def type_name(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    return _TYPE_NAMES.get(type(value), type(value).__name__)
