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
from releasegate.domain.handover import RUNS_PERIOD
from releasegate.domain.monitoring import MonitorConfig
from releasegate.domain.review_queue import (
    DEFAULT_SEED,
    Period,
    QueueRules,
    build_queue,
    choose_sample,
    review_stats,
    sample_draw,
)
from releasegate.monitor.ingest import ingest_dicts
from releasegate.monitor.runbook import build_runbook
from releasegate.monitor.runs import signals_view
from releasegate.monitor.service import _length_bins, _window, signal_dict
from releasegate.release.handover import gather
from releasegate.release.review_queue import mark_run, review_log, review_queue
from releasegate.reports.plots import Point, line_chart
from releasegate.reports.runbook import render_markdown
from releasegate.store.engine import Store
from releasegate.store.reviews import ReviewRepo
from releasegate.store.rows import fetch
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


def plain_queue(
    store: Store, rules: QueueRules, limit: int, env: str = "staging", span: Period | None = None
) -> Any:
    """The queue as it was computed before: every run of the period read and hashed."""
    now = datetime.now(UTC)
    span = span or Period("last 28d", now - timedelta(days=28), now)
    start, end = span.start.timestamp(), span.end.timestamp()
    with store.read() as conn:
        runs = ReviewRepo(conn).period_runs("router", env, start, end)
        reviewed = ReviewRepo(conn).reviewed_ids("router", env, start, end)
    sample_ids, _ = choose_sample(((r.run_id, r.started_at) for r in runs), "router", rules)
    return build_queue(
        workflow="router", env=env, period=span, rules=rules, runs=runs,
        sample_ids=sample_ids, reviewed=reviewed, limit=limit,
    ), span  # fmt: skip


@pytest.mark.parametrize(
    "rules",
    [
        QueueRules(),  # the default: 2%, at most 50
        QueueRules(sample_share=0.5, sample_max=20, feedback_below=0.6),  # the cap binds
        QueueRules(seed="other"),  # another seed: every run hashed, as before
    ],
    ids=["default", "capped", "other-seed"],
)
def test_the_queue_and_its_numbers_are_what_the_raw_runs_give(
    loaded: tuple[Store, list[str], list[Any]], rules: QueueRules
) -> None:
    store, _, stored = loaded
    with store.read() as conn:
        rows = fetch(conn, "SELECT run_id, workflow, started_at, sample_draw FROM runs", [])
    assert len(rows) == len(stored)
    assert all(d == sample_draw(DEFAULT_SEED, wf, run, at) for run, wf, at, d in rows)
    flagged = [r["run_id"] for r in stored if r["escalated"] and r.get("arm") != "shadow"]
    mark_run(store, flagged[0], "bad", note="wrong label", who="carol")
    mark_run(store, flagged[1], "good", who="dave")
    expected, span = plain_queue(store, rules, limit=500)
    fast = review_queue(store, "router", "staging", period=span, rules=rules, limit=500)
    assert fast == expected
    assert fast.runs == sum(
        1 for r in stored if span.start.timestamp() <= r["started_at"] and r.get("arm") != "shadow"
    )
    assert fast.sampled > 0 and fast.reviewed == 2 and len(fast.items) == fast.open
    log = review_log(store, "router", "staging", period=span, rules=rules, limit=50)
    assert log.stats.bad == 1 and log.stats.reviewed == 2 and log.stats.runs == fast.runs
    assert log.stats.edited == sum(
        1 for r in stored if r["edited"] and r.get("arm") != "shadow"
        and span.start.timestamp() <= r["started_at"]
    )  # fmt: skip


def test_the_runbook_counts_what_the_raw_runs_hold(
    loaded: tuple[Store, list[str], list[Any]],
) -> None:
    store, _, stored = loaded
    production = [{**r, "run_id": "p-" + r["run_id"], "env": "production"} for r in stored[::3]]
    production[-1]["version_id"] = "f" * 64  # a version nobody registered
    assert ingest_dicts(store, production, source="http", atomic=True).landed == len(production)
    flagged = [r["run_id"] for r in production if r["escalated"] and r.get("arm") != "shadow"]
    mark_run(store, flagged[0], "bad", note="wrong label", who="carol")
    plain = [  # a run with no reason to be read, reviewed all the same
        r["run_id"]
        for r in production
        if not (r["escalated"] or r["edited"] or r.get("feedback", 1) < 0 or r.get("arm"))
        and sample_draw(DEFAULT_SEED, "router", r["run_id"], r["started_at"]) >= 0.02
    ]
    mark_run(store, plain[0], "good", who="dave")
    now = datetime.now(UTC)
    book = build_runbook(store, "router", now=now)
    start = (now - RUNS_PERIOD).timestamp()
    every = Counter(
        r["version_id"]
        for r in [*stored, *production]
        if start <= r["started_at"] < now.timestamp()
    )
    facts = gather(store, "router", now=now).facts
    assert facts.runs == sum(every.values()) and set(facts.versions_seen) == set(every)
    assert facts.versions_seen[0] == every.most_common(1)[0][0]
    assert facts.runs_unregistered == every["f" * 64] == 1
    # the review numbers the runbook shows, against the queue of every run hashed
    queue, span = plain_queue(
        store, QueueRules(), 1, env="production", span=Period("", now - RUNS_PERIOD, now)
    )
    with store.read() as conn:
        reviews = ReviewRepo(conn).in_period(
            "router", "production", span.start.timestamp(), span.end.timestamp()
        )
    assert book.main_env == "production"
    assert book.review == review_stats(
        runs=queue.runs, edited=queue.edited, queued_ids=set(queue.queued_ids), reviews=reviews
    )
    assert book.review.runs == sum(
        1 for r in production if start <= r["started_at"] and r.get("arm") != "shadow"
    )
    assert (book.review.reviewed, book.review.reviews, book.review.bad) == (1, 2, 1)
    said = f"Human review over four weeks: {book.review.sentence()}"
    assert said in render_markdown(book)
