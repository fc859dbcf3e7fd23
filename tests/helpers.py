"""Small workflow projects written to a temp dir: versions, a suite, a policy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests import forkrun

LABELS = ("fraud", "card_lost", "complaint", "transfer")


def cases(n: int = 80, *, hard_every: int = 4) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        label = LABELS[i % len(LABELS)]
        prefix = "hard" if i % hard_every == 1 else "easy"
        out.append(
            {
                "id": f"c{i:03d}",
                "input": f"{prefix} message {i} #{label}",
                "expected": label,
                "tags": [label],
                "must_pass": label in ("fraud", "card_lost") and prefix == "easy",
            }
        )
    return out


@dataclass
class Project:
    root: Path
    stakes: str = "low"
    margin: float = 0.1
    floors: dict[str, float] = field(default_factory=lambda: {"accuracy": 0.5})
    owners: dict[str, Any] = field(
        default_factory=lambda: {
            "change": "alice",
            "approvers": ["bob", "carol"],
            "business": ["dana"],
        }
    )
    fn: str = "tests.release.fns:route"
    meta: dict[str, Any] = field(default_factory=dict)  # more workflow metadata (data_class...)

    def workflow(
        self,
        name: str,
        *,
        mode: str = "good",
        revision: str = "1",
        policy: dict[str, Any] | None = None,
        **generation: Any,
    ) -> Path:
        pol = policy or {
            "floors": self.floors,
            "max_regression": {"metric": "accuracy", "margin": self.margin},
        }
        doc = {
            "workflow": "router",
            "stakes": self.stakes,
            "owners": self.owners,
            "model": {"provider": "python", "name": self.fn, "revision": revision},
            "prompts": {"system": "route it"},
            "generation": {"mode": mode, **generation},
            "policy": {"staging": pol, "production": pol},
            **self.meta,
        }
        path = self.root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def suite(
        self, n: int = 80, *, extra: list[dict[str, Any]] | None = None, name: str = "suite"
    ) -> Path:
        rows = cases(n) + (extra or [])
        (self.root / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        doc = {
            "suite": "router-core",
            "workflow": "router",
            "cases": f"{name}.jsonl",
            "scorers": [{"type": "label_accuracy", "name": "accuracy"}, {"type": "macro_f1"}],
        }
        path = self.root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path


REPO = Path(__file__).resolve().parents[1]


def rg(
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    fresh: bool = False,
) -> subprocess.CompletedProcess[str]:
    """The real ``releasegate`` command in its own process, on the embedded store of ``cwd``
    unless ``env`` names another; the repo is importable so test workflows can be code.
    The process is forked from one that imported the command's modules already
    (``tests/forkrun.py``); ``fresh`` starts a new interpreter instead, for a test of
    what only that shows (start-up, imports)."""
    full = {**os.environ, "PYTHONPATH": str(REPO), "RELEASEGATE_ACTOR": "alice", "COLUMNS": "200"}
    full.pop("RELEASEGATE_DATABASE_URL", None)
    full.update(env or {})
    if not fresh:
        return forkrun.run(args, cwd=cwd, env=full, timeout=timeout)
    return subprocess.run(
        [sys.executable, "-m", "releasegate", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    """The command's JSON document, after checking it exited 0 (stderr shown if not)."""
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def register(cwd: Path, path: Path | str) -> str:
    """Register a workflow file through the CLI; its version id."""
    return str(ok_json(rg(cwd, "register", str(path), "--json"))["version_id"])


def ship(project: Project, vid: str, env: str = "staging") -> None:
    """Evaluate ``vid`` on the project's suite, gate it for ``env`` and promote it there."""
    d = project.root
    if not (d / "suite.yaml").exists():
        project.suite()
    for argv in (("eval", vid, "--suite", "suite.yaml"), ("gate", vid, "--env", env)):
        done = rg(d, *argv)
        assert done.returncode == 0, done.stdout + done.stderr
    promoted = rg(d, "promote", vid, "--env", env)
    assert promoted.returncode == 0, promoted.stderr


def judge_suite(
    d: Path,
    model: dict[str, Any],
    rows: list[dict[str, Any]],
    *,
    rubric: str = "Is polite.",
    scale: str = "pass_fail",
) -> Path:
    """``suite.yaml`` over ``rows`` with one judge scorer, ``polite``, asking ``model``
    (a model section, e.g. ``JudgeServer.model()``)."""
    (d / "cases.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    params = {"model": model, "rubric": rubric, "scale": scale}
    doc = {
        "suite": "judged",
        "workflow": "router",
        "cases": "cases.jsonl",
        "scorers": [{"type": "judge", "name": "polite", "params": params}],
    }
    path = d / "suite.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@contextmanager
def project_copy(root: Path, url: str, target: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A copy of the project at ``root`` (files, audit key) at ``target`` and of its store:
    SQLite's file comes with the files, a PostgreSQL ``url`` is cloned as a template.
    Yields the copy's database URL and the environment that names it (empty for SQLite)."""
    from tests.conftest import PG_ADMIN, drop_pg_database, pg_database

    shutil.copytree(root, target)
    if url.startswith("sqlite"):
        yield f"sqlite:///{target / '.releasegate' / 'releasegate.db'}", {}
        return
    name = pg_database(url.rsplit("/", 1)[1])
    try:
        yield f"{PG_ADMIN}/{name}", {"RELEASEGATE_DATABASE_URL": f"{PG_ADMIN}/{name}"}
    finally:
        drop_pg_database(name)
