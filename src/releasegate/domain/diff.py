"""What changed between two manifests, and how risky that kind of change is.

The gate report and the approval rules both need the same answer: a list of
path-level changes and one change class (the riskiest one present). Values are
compared by their canonical JSON, so a diff is empty exactly when the two
manifests hash to the same version id: key order, ``1`` vs ``1.0`` and YAML
formatting never show up as changes. Tools are matched by name, so reordering
or renaming one reads as what it is rather than as a shifted index.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from releasegate.domain.identity import canonical_json

ChangeKind = Literal["added", "removed", "changed"]


class ChangeClass(StrEnum):
    """Kinds of change, which decide who must approve a release."""

    WORDING = "wording"
    CONFIG = "config"
    TOOLS = "tools"
    RETRIEVAL = "retrieval"
    MODEL = "model"

    @property
    def risk(self) -> int:
        """Higher is riskier: model > tools > retrieval > config > wording."""
        return _RISK[self]

    @property
    def meaning(self) -> str:
        """What a change of this class changed, in a sentence for a person."""
        return _MEANING[self]


_RISK: dict[ChangeClass, int] = {
    ChangeClass.WORDING: 0,
    ChangeClass.CONFIG: 1,
    ChangeClass.RETRIEVAL: 2,
    ChangeClass.TOOLS: 3,
    ChangeClass.MODEL: 4,
}

_MEANING: dict[ChangeClass, str] = {
    ChangeClass.WORDING: "only the wording of the prompts changed",
    ChangeClass.CONFIG: "generation settings changed (such as the temperature or the token limit)",
    ChangeClass.RETRIEVAL: "the embedding model or the retrieval index changed",
    ChangeClass.TOOLS: "the tools the model may call, or its output format, changed",
    ChangeClass.MODEL: "the model itself changed (its provider, name or revision)",
}

_CLASS_OF_TOP_KEY: dict[str, ChangeClass] = {
    "workflow": ChangeClass.MODEL,  # a renamed workflow is a different thing: treat as riskiest
    "model": ChangeClass.MODEL,
    "tools": ChangeClass.TOOLS,
    "output": ChangeClass.TOOLS,
    "retrieval": ChangeClass.RETRIEVAL,
    "generation": ChangeClass.CONFIG,
    "prompts": ChangeClass.WORDING,
}


@dataclass(frozen=True)
class Change:
    """One changed path. ``before`` is None when added, ``after`` None when removed."""

    path: str
    kind: ChangeKind
    before: Any
    after: Any
    change_class: ChangeClass


@dataclass(frozen=True)
class ManifestDiff:
    """All changes from a baseline manifest to a candidate, in path order."""

    changes: tuple[Change, ...]

    @property
    def classes(self) -> frozenset[ChangeClass]:
        return frozenset(c.change_class for c in self.changes)

    @property
    def change_class(self) -> ChangeClass | None:
        """The riskiest class present; this is what approval rules key on."""
        return max(self.classes, key=lambda c: c.risk, default=None)

    @property
    def is_empty(self) -> bool:
        return not self.changes


def classify(path: str) -> ChangeClass:
    """The change class of a dotted path, decided by its top-level key."""
    top = path.split(".", 1)[0].split("[", 1)[0]
    return _CLASS_OF_TOP_KEY.get(top, ChangeClass.CONFIG)


def diff_manifests(before: Mapping[str, Any], after: Mapping[str, Any]) -> ManifestDiff:
    """Every change from ``before`` (the baseline) to ``after`` (the candidate)."""
    changes = [
        Change(path, kind, old, new, classify(path))
        for path, kind, old, new in _diff_mappings("", before, after)
    ]
    return ManifestDiff(tuple(changes))


def render_text_diff(d: ManifestDiff) -> list[str]:
    """Lines for people: a unified diff for multi-line text, ``path: a -> b`` otherwise."""
    lines: list[str] = []
    for c in d.changes:
        if c.kind == "added":
            lines.extend(_render_one_sided("+", c.path, c.after))
        elif c.kind == "removed":
            lines.extend(_render_one_sided("-", c.path, c.before))
        elif _is_multiline(c.before) or _is_multiline(c.after):
            old = c.before if isinstance(c.before, str) else _show(c.before)
            new = c.after if isinstance(c.after, str) else _show(c.after)
            lines.append(f"{c.path}:")
            lines.extend(
                difflib.unified_diff(
                    old.splitlines(),
                    new.splitlines(),
                    fromfile=f"a/{c.path}",
                    tofile=f"b/{c.path}",
                    lineterm="",
                )
            )
        elif _is_list(c.before) and _is_list(c.after):
            lines.append(f"{c.path}:")
            lines.extend(_list_lines(c.before, c.after))
        else:
            lines.append(f"{c.path}: {_show(c.before)} -> {_show(c.after)}")
    return lines


def _list_lines(before: Any, after: Any) -> list[str]:
    """A list of phrasings as the items kept, dropped and added, in order, one per line."""
    old = [_show(v) for v in before]
    new = [_show(v) for v in after]
    out: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if tag == "equal":
            out.extend(f"    {v}" for v in old[i1:i2])
            continue
        out.extend(f"-   {v}" for v in old[i1:i2])
        out.extend(f"+   {v}" for v in new[j1:j2])
    return out


# -- walking ---------------------------------------------------------------------------------

_Raw = tuple[str, ChangeKind, Any, Any]


def _join(prefix: str, key: object) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _same(a: Any, b: Any) -> bool:
    """Equal as far as the version id is concerned."""
    return a is b or _canon(a) == _canon(b)


def _canon(value: Any) -> str:
    return canonical_json(_plain(value))


def _plain(value: Any) -> Any:
    """Mappings and sequences as dicts and lists, so canonical_json takes any of them."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple)


def _diff_values(path: str, a: Any, b: Any) -> Iterator[_Raw]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        yield from _diff_mappings(path, a, b)
    elif _is_list(a) and _is_list(b) and not (_all_scalars(a) and _all_scalars(b)):
        yield from _diff_lists(path, a, b)
    elif not _same(a, b):
        yield (path, "changed", a, b)


def _diff_mappings(prefix: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> Iterator[_Raw]:
    for key in sorted(set(a) | set(b), key=str):
        path = _join(prefix, key)
        if key not in b:
            yield (path, "removed", a[key], None)
        elif key not in a:
            yield (path, "added", None, b[key])
        else:
            yield from _diff_values(path, a[key], b[key])


def _all_scalars(items: Sequence[Any]) -> bool:
    return all(not isinstance(v, Mapping) and not _is_list(v) for v in items)


def _names(items: Sequence[Any]) -> list[str] | None:
    """Item names when every item is a mapping with a distinct string ``name``."""
    names = [v.get("name") if isinstance(v, Mapping) else None for v in items]
    if all(isinstance(n, str) for n in names) and len(set(names)) == len(names):
        return [str(n) for n in names]
    return None


def _diff_lists(path: str, a: Sequence[Any], b: Sequence[Any]) -> Iterator[_Raw]:
    names_a, names_b = _names(a), _names(b)
    if names_a is None or names_b is None:
        yield from _diff_by_index(path, a, b)
        return
    by_a, by_b = dict(zip(names_a, a, strict=True)), dict(zip(names_b, b, strict=True))
    for name in sorted(set(by_a) | set(by_b)):
        item_path = f"{path}[{name}]"
        if name not in by_b:
            yield (item_path, "removed", by_a[name], None)
        elif name not in by_a:
            yield (item_path, "added", None, by_b[name])
        else:
            yield from _diff_values(item_path, by_a[name], by_b[name])
    # Order is part of the content hash (and of what a model sees), so a pure
    # reordering must not read as "no change".
    kept_a = [n for n in names_a if n in by_b]
    kept_b = [n for n in names_b if n in by_a]
    if kept_a != kept_b:
        yield (path, "changed", kept_a, kept_b)


def _diff_by_index(path: str, a: Sequence[Any], b: Sequence[Any]) -> Iterator[_Raw]:
    for i in range(max(len(a), len(b))):
        item_path = f"{path}[{i}]"
        if i >= len(b):
            yield (item_path, "removed", a[i], None)
        elif i >= len(a):
            yield (item_path, "added", None, b[i])
        else:
            yield from _diff_values(item_path, a[i], b[i])


# -- rendering -------------------------------------------------------------------------------


def _is_multiline(value: Any) -> bool:
    return isinstance(value, str) and "\n" in value


def _show(value: Any) -> str:
    return _canon(value)


def _render_one_sided(sign: str, path: str, value: Any) -> list[str]:
    if _is_multiline(value):
        return [f"{sign} {path}:", *(f"{sign}   {line}" for line in value.splitlines())]
    return [f"{sign} {path}: {_show(value)}"]
