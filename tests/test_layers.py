"""Imports only point downward, no two modules import each other, and each third-party
front library stays in its layer.

``layer_problems(src)`` walks a source tree (every module, the top-level ones included)
and returns one line per broken rule; the tests run it on the real tree and on small
planted trees, so the check itself is shown to fail where it must.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

SRC = Path(__file__).resolve().parents[1] / "src" / "releasegate"

# what each layer may import from releasegate (besides itself and errors); a top-level
# module is a layer of its own: "__init__" is the package (the SDK surface), "" the root
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "domain": set(),
    "store": {"domain"},
    "providers": {"domain"},
    "runner": {"domain", "store", "providers"},
    "release": {"domain", "store", "providers", "runner", "reports"},
    "reports": {"domain"},
    "monitor": {"domain", "store", "providers", "runner", "release", "reports"},
    "sdk": {"domain", "release", "monitor"},
    "cli": {"domain", "release", "monitor", "reports", "server", "sdk", "__init__"},
    "server": {"domain", "release", "monitor", "reports", "__init__"},
    "demo": set(),
    "__init__": {"release", "sdk"},
    "__main__": {"cli"},
}
# third-party packages that belong to exactly one layer
OWNED = {
    "sqlalchemy": {"store"},
    "alembic": {"store"},
    "typer": {"cli"},
    "rich": {"cli"},
    "aiohttp": {"providers"},
    "fastapi": {"server"},
    "starlette": {"server"},
    "uvicorn": {"server"},
    "prometheus_client": {"server"},
    "authlib": {"server"},
    "httpx": {"sdk"},
}
DOMAIN_THIRD_PARTY = {"numpy", "scipy", "orjson", "yaml"}  # computation and parsing: no I/O


def module_name(src: Path, path: Path) -> str:
    """``releasegate.cli.app`` for ``src/releasegate/cli/app.py`` (a package is its name)."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([src.name, *parts])


def _in_functions(tree: ast.AST) -> set[ast.AST]:
    inner: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            inner |= set(ast.walk(node)) - {node}
    return inner


class Imports(NamedTuple):
    top: set[str]
    """Imported when the module is loaded: these can make an import loop."""
    deferred: set[str]
    """Imported inside a function (a cost deferred until it runs): layers, not loops."""
    typing: set[str]
    """Imported only for the type checker (``if TYPE_CHECKING:``): layers, not loops."""


def imports(source: str, module: str, *, is_package: bool = False) -> Imports:
    """Every name ``source`` imports, dotted (``from a import b`` gives ``a.b``)."""
    tree = ast.parse(source)
    typing_only = {
        n
        for guard in ast.walk(tree)
        if isinstance(guard, ast.If) and "TYPE_CHECKING" in ast.unparse(guard.test)
        for child in guard.body
        for n in ast.walk(child)
    }
    in_function = _in_functions(tree)
    found = Imports(set(), set(), set())
    for node in ast.walk(tree):
        if node in typing_only:
            out = found.typing
        elif node in in_function:
            out = found.deferred
        else:
            out = found.top
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")
                keep = len(package) - node.level + (1 if is_package else 0)
                base = ".".join(package[:keep] + ([base] if base else []))
            out |= {f"{base}.{a.name}" for a in node.names}
    return found


def read_tree(src: Path) -> dict[str, Imports]:
    """Module name -> what it imports, for every ``.py`` file under ``src``."""
    return {
        module_name(src, path): imports(
            path.read_text(encoding="utf-8"),
            module_name(src, path),
            is_package=path.name == "__init__.py",
        )
        for path in sorted(src.rglob("*.py"))
    }


def _module_of(name: str, modules: Mapping[str, object]) -> str:
    """The module a dotted import name lands in (``a.b.Name`` -> ``a.b``), or ""."""
    parts = name.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _stdlib(name: str) -> bool:
    return name in sys.stdlib_module_names or name == "__future__"


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan; the trees here are a few hundred modules deep
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_problems(modules: Mapping[str, Imports]) -> list[str]:
    """Every broken rule in ``modules`` (module name -> its imports), one line each."""
    root = min(modules, key=len).split(".")[0]
    problems = []
    graph: dict[str, set[str]] = {}
    for module, found in sorted(modules.items()):
        layer = _layer(module)
        graph[module] = {_module_of(name, modules) for name in found.top} - {"", module}
        for name in sorted(found.top | found.deferred | found.typing):
            parts = name.split(".")
            top = parts[0]
            if top == root:
                landed = _module_of(name, modules)
                target = _layer(landed) if landed else parts[1]
                if target in ("errors", layer):
                    continue
                if target not in ALLOWED.get(layer, set()):
                    problems.append(f"{module}: {layer} imports {name}")
            elif top in OWNED and layer not in OWNED[top]:
                problems.append(f"{module}: {top} belongs in {sorted(OWNED[top])}, not {layer}")
            elif layer == "domain" and top not in DOMAIN_THIRD_PARTY and not _stdlib(top):
                problems.append(f"{module}: domain must stay pure, imports {name}")
    for group in cycles(graph):
        problems.append(f"import loop: {' <-> '.join(group)}")
    return problems


def test_layers_import_downward_only() -> None:
    assert layer_problems(read_tree(SRC)) == []


def test_top_level_modules_are_checked() -> None:
    modules = read_tree(SRC)
    assert {"releasegate", "releasegate.errors", "releasegate.__main__"} <= set(modules)


# -- the check fails where it must ---------------------------------------------------------


def plant(tmp_path: Path, files: Mapping[str, str]) -> Path:
    src = tmp_path / "releasegate"
    for rel, text in {"__init__.py": "", "errors.py": "", **files}.items():
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return src


def test_a_planted_cli_to_store_import_fails(tmp_path: Path) -> None:
    src = plant(
        tmp_path,
        {
            "store/__init__.py": "",
            "store/engine.py": "import sqlalchemy\n",
            "cli/__init__.py": "",
            "cli/app.py": "def init():\n    from releasegate.store.engine import Store\n",
        },
    )
    assert layer_problems(read_tree(src)) == [
        "releasegate.cli.app: cli imports releasegate.store.engine.Store"
    ]


def test_a_planted_import_loop_fails(tmp_path: Path) -> None:
    src = plant(
        tmp_path,
        {
            "cli/__init__.py": "",
            "cli/app.py": "from releasegate.cli import cmd_gate\n",
            "cli/cmd_gate.py": "from releasegate.cli.app import app\n",
        },
    )
    assert layer_problems(read_tree(src)) == [
        "import loop: releasegate.cli.app <-> releasegate.cli.cmd_gate"
    ]


def test_providers_importing_the_root_package_fails(tmp_path: Path) -> None:
    src = plant(
        tmp_path,
        {
            "providers/__init__.py": "",
            "providers/http.py": "from releasegate import __version__\nimport releasegate.errors\n",
        },
    )
    assert layer_problems(read_tree(src)) == [
        "releasegate.providers.http: providers imports releasegate.__version__"
    ]


def test_imports_for_the_type_checker_obey_layers_but_make_no_loop(tmp_path: Path) -> None:
    typing_only = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import {}\n"
    src = plant(
        tmp_path,
        {
            "store/__init__.py": "",
            "store/engine.py": "",
            "sdk/__init__.py": "",
            "sdk/client.py": typing_only.format("releasegate.store.engine"),
            "release/__init__.py": "",
            "release/gate.py": "import releasegate.release.report\n",
            "release/report.py": typing_only.format("releasegate.release.gate"),
        },
    )
    assert layer_problems(read_tree(src)) == [
        "releasegate.sdk.client: sdk imports releasegate.store.engine"
    ]
