"""The fast reads of the dashboard's pages give the numbers a plain computation over the
raw runs gives, on SQLite and PostgreSQL: the signals page (one read per stretch of time,
windows sliced from it; versions counted by the database)."""

from __future__ import annotations

import math
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from releasegate.domain.drift import DriftRules, compare_windows
from releasegate.domain.monitoring import MonitorConfig
from releasegate.monitor.ingest import ingest_dicts
from releasegate.monitor.runs import signals_view
from releasegate.monitor.service import _length_bins, _window, signal_dict
from releasegate.reports.plots import Point, line_chart
from releasegate.store.engine import Store
from releasegate.store.runs import RunRepo
from releasegate.store.workflows import WorkflowRepo
from tests.helpers import Project
from tests.monitor.test_monitor import LABELS, ship

DAY = 86400.0


def mixed_runs(vids: list[str], now: float, days: int = 20, per_day: int = 40) -> list[Any]:
    """Runs of two versions over ``days`` days up to ``now``: errors, escalations, edits,
    feedback, costs (some missing), output lengths (some missing), labels (some missing),
    and shadow runs (which serve nobody and are never counted)."""
    rng = random.Random(7)
    out = []
    for d in range(days):
        for i in range(per_day + d):  # the later days busier
            t = now - (d + rng.random()) * DAY
            run: dict[str, Any] = {
                "run_id": f"fast-{d}-{i}",
                "workflow": "router",
                "version_id": vids[(i + d) % 5 == 0],
                "env": "staging",
                "started_at": t,
                "latency_ms": rng.lognormvariate(5 + (d < 7) * 0.2, 0.4),
                "tokens_in": 30,
                "tokens_out": 2,
                "status": "error" if rng.random() < 0.05 + (d < 7) * 0.05 else "ok",
                "escalated": rng.random() < 0.1,
                "edited": rng.random() < 0.1,
            }
            if run["status"] == "error":
                run["failure_reason"] = rng.choice(["timeout", "bad json"])
            if rng.random() < 0.8:
                run["cost_usd"] = rng.uniform(0.0001, 0.001)
            if rng.random() < 0.3:
                run["feedback"] = rng.choice([-1.0, -0.5, 0.5, 1.0])
            if rng.random() < 0.9:
                run["label"] = rng.choice(LABELS)
                run["output"] = run["label"] * rng.randint(1, 4)
            if rng.random() < 0.05:
                run["arm"] = "shadow"
            out.append(run)
    return out


def plain_series(store: Store, result: Any, days: int = 14) -> dict[str, str]:
    """The charts as the page drew them before: each window read on its own."""
    end = result.current.end
    start = end - timedelta(days=days)
    with store.read() as conn:
        config = MonitorConfig.from_dict(WorkflowRepo(conn).get("router").monitor)
        repo = RunRepo(conn)
        ref_runs = repo.signal_window("router", "staging", *result.reference.bounds)
        runs = repo.signal_window(
            "router", "staging", start.timestamp(), end.timestamp(), started=True
        )
    ref = _window(ref_runs)
    min_sample = max(10, min(50, result.runs // days or 10))
    rules = DriftRules(min_sample=min_sample, alpha=config.alpha, alphas=config.alphas)
    points: dict[str, list[Point]] = {}
    for i in range(days):
        a = (start + timedelta(days=i)).timestamp()
        b = (start + timedelta(days=i + 1)).timestamp()
        started = runs.column("started_at")
        chunk = runs.between(int((started < a).sum()), int((started < b).sum()))
        for s in compare_windows(ref, _window(chunk), rules, bins=_length_bins(ref)):
            ok = s.status != "insufficient" and math.isfinite(s.value)
            day = start + timedelta(days=i)
            points.setdefault(s.name, []).append(
                Point(f"{day:%m-%d}", s.value if ok else None, s.is_alert)
            )
    refs = {s.name: s.reference for s in result.signals}
    return {
        name: line_chart(
            f"router@staging {name.replace('_', ' ')}", values, reference=refs.get(name)
        )
        for name, values in points.items()
    }


@pytest.fixture
def loaded(store: Store, tmp_path: Any) -> tuple[Store, list[str], list[Any]]:
    project = Project(root=tmp_path)
    v1 = ship(store, project, project.workflow("v1"))
    v2 = ship(store, project, project.workflow("v2", temperature=0.3))
    now = datetime.now(UTC).timestamp()
    runs = mixed_runs([v1, v2], now)
    assert ingest_dicts(store, runs, source="http", atomic=True).landed == len(runs)
    return store, [v1, v2], runs


def test_the_signals_page_says_what_the_raw_runs_say(
    loaded: tuple[Store, list[str], list[Any]],
) -> None:
    store, _, stored = loaded
    result, charts = signals_view(store, "router", "staging")
    config = MonitorConfig.from_dict({})
    with store.read() as conn:
        repo = RunRepo(conn)
        cur = repo.signal_window("router", "staging", *result.current.bounds)
        ref = repo.signal_window("router", "staging", *result.reference.bounds)
    rules = DriftRules(min_sample=config.min_sample, alpha=config.alpha, alphas=config.alphas)
    expected = compare_windows(_window(ref), _window(cur), rules, bins=_length_bins(_window(ref)))
    assert [signal_dict(s) for s in result.signals] == [signal_dict(s) for s in expected]
    assert (result.runs, result.runs_reference) == (len(cur), len(ref))
    # the versions seen, from the stored runs themselves (shadow runs served nobody)
    lo, hi = result.current.bounds
    served = Counter(
        r["version_id"] for r in stored if lo <= r["started_at"] < hi and r.get("arm") != "shadow"
    )
    assert {v["version_id"]: v["runs"] for v in result.versions} == dict(served)
    assert [v["runs"] for v in result.versions] == sorted(served.values(), reverse=True)
    assert result.runs == sum(served.values())
    # what the page shows: every signal in the table, a chart per scalar signal, the same
    assert {s.name for s in result.signals} >= {"error_rate", "latency_p95", "label_mix"}
    assert charts == plain_series(store, result)
    errors = next(s for s in result.signals if s.name == "error_rate")
    assert (errors.n, errors.n_ref) == (len(cur), len(ref)) and errors.status != "insufficient"
