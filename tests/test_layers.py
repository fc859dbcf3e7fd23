"""Imports only point downward, and each third-party front library stays in its layer."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "releasegate"

# what each layer may import from releasegate (besides itself and errors)
ALLOWED = {
    "domain": {"domain"},
    "store": {"domain", "store"},
    "providers": {"domain", "providers"},
    "runner": {"domain", "store", "providers", "runner"},
    "release": {"domain", "store", "providers", "runner", "release", "reports"},
    "reports": {"domain", "reports"},
    "monitor": {"domain", "store", "providers", "runner", "release", "reports", "monitor"},
    "sdk": {"domain", "store", "release", "monitor", "sdk"},
    "cli": {"domain", "release", "monitor", "reports", "store", "cli"},
    "demo": set(),
}
# third-party packages that belong to exactly one layer
OWNED = {
    "sqlalchemy": {"store"},
    "alembic": {"store"},
    "typer": {"cli"},
    "rich": {"cli"},
    "aiohttp": {"providers"},
}
DOMAIN_THIRD_PARTY = {"numpy", "scipy", "orjson", "yaml"}  # computation and parsing: no I/O


def imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_layers_import_downward_only() -> None:
    problems = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if len(rel.parts) < 2:
            continue
        layer = rel.parts[0]
        for name in imports(path):
            top = name.split(".")[0]
            if top == "releasegate":
                parts = name.split(".")
                target = parts[1] if len(parts) > 1 else ""
                if target in ("errors", "") or target == layer:
                    continue
                if target not in ALLOWED.get(layer, set()):
                    problems.append(f"{rel}: {layer} imports {name}")
            elif top in OWNED and layer not in OWNED[top]:
                problems.append(f"{rel}: {top} belongs in {sorted(OWNED[top])}, not {layer}")
            elif layer == "domain" and top not in DOMAIN_THIRD_PARTY and not _stdlib(top):
                problems.append(f"{rel}: domain must stay pure, imports {name}")
    assert problems == []


def _stdlib(name: str) -> bool:
    import sys

    return name in sys.stdlib_module_names or name == "__future__"
