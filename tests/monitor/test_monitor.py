"""``monitor`` over real runs in a real store: signals, alerts routed to real HTTP endpoints,
cool-downs, rules, charts, Prometheus exposition and the weekly memo."""

from __future__ import annotations

import json
import random
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from releasegate.monitor.ingest import ingest_dicts
from releasegate.monitor.memo import build_memo, parse_week
from releasegate.monitor.runs import write_plots
from releasegate.monitor.service import monitor, signal_dict
from releasegate.release.evaluate import evaluate
from releasegate.release.gate import gate
from releasegate.release.promote import promote
from releasegate.release.register import register
from releasegate.reports.memo import render_html, render_markdown
from releasegate.reports.prometheus import exposition
from releasegate.store.alerts import AlertRepo, NewAlert
from releasegate.store.engine import Store
from tests.helpers import Project

LABELS = ["fraud", "card_lost", "complaint", "transfer"]


class Hook(BaseHTTPRequestHandler):
    received: list[tuple[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append((self.path, json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def workflow_with_monitor(project: Project, monitor_section: dict[str, Any]) -> Path:
    path = project.workflow("v1")
    doc = yaml.safe_load(path.read_text())
    doc["owners"]["care"] = "ops-team"
    doc["owners"]["responders"] = ["oncall"]
    doc["monitor"] = monitor_section
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def ship(store: Store, project: Project, path: Path) -> str:
    vid = register(store, path, who="alice").version_id
    evaluate(store, vid, project.suite(), who="alice")
    assert gate(store, vid, "staging", who="ci").verdict == "pass"
    promote(store, vid, "staging", who="alice")
    return vid


def runs(vid: str, *, days: float, until: float, n: int, shift: bool, seed: int) -> list[Any]:
    """``n`` runs spread over ``days`` before ``until``; a shift triples errors, slows
    latency by half and moves the label mix towards fraud."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = until - days * 86400 + 1 + i * (days * 86400 - 61) / n  # inside, off the edges
        fraud_heavy = shift and rng.random() < 0.5
        label = "fraud" if fraud_heavy else rng.choice(LABELS)
        out.append(
            {
                "run_id": f"{seed}-{i}",
                "workflow": "router",
                "version_id": vid,
                "env": "staging",
                "started_at": t,
                "latency_ms": rng.lognormvariate(5, 0.3) * (1.5 if shift else 1.0),
                "tokens_in": 30,
                "tokens_out": 2,
                "cost_usd": 0.0002,
                "status": "error" if rng.random() < (0.06 if shift else 0.01) else "ok",
                "failure_reason": "timeout",
                "label": label,
                "output": label,
            }
        )
    for r in out:
        if r["status"] == "ok":
            r["failure_reason"] = None
    return out


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path)


def test_a_shift_fires_routed_alerts_once_per_cool_down(
    store: Store, project: Project, hook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RG_TEST_SLACK", f"{hook}/slack")
    path = workflow_with_monitor(
        project,
        {
            "window": "7d",
            "min_sample": 100,
            "cooldown": "6h",
            "routes": [
                {"webhook": {"url": f"{hook}/json"}},
                {"slack": {"url_env": "RG_TEST_SLACK"}},
            ],
        },
    )
    vid = ship(store, project, path)
    now = time.time()
    week = 7.0
    ingest_dicts(
        store,
        runs(vid, days=week, until=now - week * 86400, n=800, shift=False, seed=1),
        source="http",
    )
    ingest_dicts(store, runs(vid, days=week, until=now, n=800, shift=True, seed=2), source="http")
    result = monitor(store, "router", "staging", now=at(now), embeddings=False)
    by = {s.name: s for s in result.signals}
    assert by["error_rate"].status == "alert" and by["label_mix"].status == "alert"
    assert by["latency_p95"].status == "alert"
    assert by["cost_per_task"].status == "ok"  # unchanged cost must not alert
    assert result.runs == 800 and result.runs_reference == 800
    fired = {a.signal for a in result.alerts}
    assert {"error_rate", "label_mix", "latency_p95"} <= fired
    assert all(a.mention == "ops-team, oncall" for a in result.alerts)
    paths = [p for p, _ in Hook.received]
    assert paths.count("/json") == len(result.alerts) == paths.count("/slack")
    json_body = next(b for p, b in Hook.received if p == "/json")
    assert json_body["workflow"] == "router" and json_body["owners"]["care"] == "ops-team"
    slack_body = next(b for p, b in Hook.received if p == "/slack")
    assert set(slack_body) == {"text"} and "ops-team" in slack_body["text"]
    again = monitor(store, "router", "staging", now=at(now), embeddings=False)
    assert again.alerts == []  # same signals, inside the 6h cool-down: nobody is paged twice
    assert any(s.status == "alert" for s in again.signals)
    assert {h.signal for h in again.held} == fired and again.is_alert  # still "no" for cron
    assert all(h.delivery == "routed" and "already sent" in h.sentence for h in again.held)


def test_a_rule_threshold_fires_only_with_enough_runs(store: Store, project: Project) -> None:
    path = workflow_with_monitor(
        project,
        {
            "drift_alerts": False,
            "rules": [{"signal": "error_rate", "above": 0.03, "min_sample": 500}],
        },
    )
    vid = ship(store, project, path)
    now = time.time()
    ingest_dicts(store, runs(vid, days=7, until=now - 60, n=300, shift=True, seed=3), source="http")
    quiet = monitor(store, "router", "staging", now=at(now), embeddings=False)
    assert quiet.alerts == []  # 300 runs < min_sample 500, and drift alerts are off
    ingest_dicts(store, runs(vid, days=7, until=now - 30, n=400, shift=True, seed=4), source="http")
    loud = monitor(store, "router", "staging", now=at(now), embeddings=False)
    assert [a.signal for a in loud.alerts] == ["error_rate"]
    assert "> 0.03" in loud.alerts[0].message


def test_no_shift_no_alert(store: Store, project: Project) -> None:
    path = workflow_with_monitor(project, {"min_sample": 100})
    vid = ship(store, project, path)
    now = time.time()
    ingest_dicts(
        store, runs(vid, days=7, until=now - 7 * 86400, n=700, shift=False, seed=5), source="http"
    )
    ingest_dicts(store, runs(vid, days=7, until=now, n=700, shift=False, seed=6), source="http")
    result = monitor(store, "router", "staging", now=at(now), embeddings=False)
    assert result.alerts == []
    assert [s.name for s in result.signals if s.status == "alert"] == []


def test_charts_prometheus_and_memo(store: Store, project: Project, tmp_path: Path) -> None:
    path = workflow_with_monitor(project, {"min_sample": 50})
    vid = ship(store, project, path)
    now = time.time()
    # The memo reads whole ISO weeks: the reference fills last week, the shift this week
    # so far, whatever day of the week the suite runs on.
    week, start, _ = parse_week(None, today=datetime.now(UTC).date() + timedelta(days=7))
    monday = start.timestamp()
    days = max((now - monday) / 86400, 0.05)
    ingest_dicts(store, runs(vid, days=7, until=monday, n=700, shift=False, seed=7), source="http")
    ingest_dicts(store, runs(vid, days=days, until=now, n=700, shift=True, seed=8), source="http")
    result = monitor(
        store,
        "router",
        "staging",
        now=at(now),
        window=timedelta(days=days),
        embeddings=False,
        alert=False,
    )
    written = write_plots(store, result, tmp_path / "charts")
    names = {p.name for p in written}
    assert "staging-error_rate.svg" in names and "staging-latency_p95.svg" in names
    svg = ET.parse(tmp_path / "charts" / "staging-error_rate.svg").getroot()
    assert (
        svg.tag.endswith("svg") and len(list(svg.iter("{http://www.w3.org/2000/svg}circle"))) >= 10
    )

    text = exposition("router", "staging", [signal_dict(s) for s in result.signals])
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    alert_line = next(
        ln
        for ln in lines
        if ln.startswith("releasegate_signal_alert{") and 'signal="error_rate"' in ln
    )
    assert alert_line.endswith(" 1")
    value_line = next(
        ln
        for ln in lines
        if ln.startswith("releasegate_signal_value{") and 'signal="error_rate"' in ln
    )
    assert 0.02 < float(value_line.rsplit(" ", 1)[1]) < 0.12
    assert "# TYPE releasegate_signal_value gauge" in text

    memo = build_memo(store, "router", week)
    env = memo["environments"][0]
    assert env["env"] == "staging" and env["runs"] > 0
    assert env["changes"] and env["changes"][0]["action"] == "promote"
    md = render_markdown(memo)
    assert "## Recommended actions" in md and "| error_rate |" in md
    assert "rollback router --env staging" in md or "failing runs" in md
    html = render_html(memo)
    assert html.count("<svg") >= 3 and "<table>" in html


def test_parse_week_reads_iso_weeks_and_dates() -> None:
    label, start, end = parse_week("2026-W47")
    assert label == "2026-W47" and start == datetime(2026, 11, 16, tzinfo=UTC)
    assert end - start == timedelta(days=7)
    assert parse_week("2026-11-19")[0] == "2026-W47"


def test_sampled_quality_scores_production_outputs_with_the_suites_own_scorers(
    store: Store, project: Project
) -> None:
    path = workflow_with_monitor(project, {"min_sample": 100, "sample_quality": 150})
    suite = project.suite()
    doc = yaml.safe_load(suite.read_text())
    doc["scorers"].append(
        {
            "type": "regex",
            "name": "valid_label",
            "params": {"pattern": "^(fraud|card_lost|complaint|transfer)$"},
        }
    )
    suite.write_text(yaml.safe_dump(doc, sort_keys=False))
    vid = register(store, path, who="alice").version_id
    evaluate(store, vid, suite, who="alice")
    assert gate(store, vid, "staging", who="ci").verdict == "pass"
    promote(store, vid, "staging", who="alice")
    now = time.time()
    before = runs(vid, days=7, until=now - 7 * 86400, n=400, shift=False, seed=10)
    after = runs(vid, days=7, until=now, n=400, shift=False, seed=11)
    for i, r in enumerate(after):
        if i % 4 == 0:
            r["output"] = "I think this is about fraud, maybe?"  # free text where a label belongs
    ingest_dicts(store, before + after, source="http")
    result = monitor(store, "router", "staging", now=at(now), embeddings=False, alert=False)
    quality = next(s for s in result.signals if s.name == "quality")
    assert quality.status == "alert" and quality.n == 150
    assert quality.reference > 0.95 and 0.6 < quality.value < 0.9  # errored runs fail too
    again = monitor(store, "router", "staging", now=at(now), embeddings=False, alert=False)
    assert next(s for s in again.signals if s.name == "quality").value == quality.value


def test_two_monitors_at_once_page_people_once(store: Store, project: Project, hook: str) -> None:
    path = workflow_with_monitor(
        project, {"min_sample": 100, "routes": [{"webhook": {"url": f"{hook}/json"}}]}
    )
    vid = ship(store, project, path)
    now = time.time()
    ingest_dicts(
        store, runs(vid, days=7, until=now - 7 * 86400, n=600, shift=False, seed=12), source="http"
    )
    ingest_dicts(store, runs(vid, days=7, until=now, n=600, shift=True, seed=13), source="http")
    results: list[Any] = []

    def watch() -> None:
        results.append(monitor(store, "router", "staging", now=at(now), embeddings=False))

    threads = [threading.Thread(target=watch) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fired = [a.signal for r in results for a in r.alerts]
    assert "error_rate" in fired
    assert len(fired) == len(set(fired))  # each signal alerted by exactly one of the three
    assert len(Hook.received) == len(fired)
    with store.read() as conn:
        stored = AlertRepo(conn).last("router", "staging", "error_rate")
    assert (
        stored is not None and stored.routed[0] == "terminal" and "sent (204)" in stored.routed[1]
    )


def test_a_bad_monitor_section_names_its_line_and_field(project: Project, store: Store) -> None:
    from releasegate.errors import ManifestError

    path = workflow_with_monitor(
        project, {"window": "a week", "rules": [{"signal": "error_rate", "above": 0.05}]}
    )
    with pytest.raises(ManifestError) as err:
        register(store, path, who="alice")
    assert err.value.field == "monitor.window" and "not a duration" in str(err.value)
    path = workflow_with_monitor(project, {"rules": [{"signal": "eror_rate", "above": 0.05}]})
    with pytest.raises(ManifestError, match="unknown signal 'eror_rate'") as err:
        register(store, path, who="alice")
    assert err.value.field == "monitor.rules[0].signal" and err.value.line is not None


def test_two_monitors_resending_the_outbox_at_once_send_each_alert_once(
    store: Store, project: Project, hook: str
) -> None:
    from releasegate.monitor.alerts import resend_due
    from releasegate.store.alerts import ALERT_ROUTED

    path = workflow_with_monitor(
        project, {"min_sample": 100, "routes": [{"webhook": {"url": f"{hook}/json"}}]}
    )
    ship(store, project, path)
    with store.write() as conn:  # as a monitor killed before sending leaves them
        for i in range(5):
            AlertRepo(conn).add(
                NewAlert(
                    workflow="router",
                    env="staging",
                    signal=f"s{i}",
                    severity="warning",
                    message=f"alert {i}",
                    payload={},
                ),
                status="pending",
            )
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(resend_due(store, "router", "staging")))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent = sorted(a.signal for r in results for a in r)
    assert sent == [f"s{i}" for i in range(5)]  # the lease: each by exactly one monitor
    assert sorted(b["signal"] for _, b in Hook.received) == sent
    with store.read() as conn:
        stored = [AlertRepo(conn).last("router", "staging", f"s{i}") for i in range(5)]
    assert all(a is not None and a.status == ALERT_ROUTED and a.attempts == 1 for a in stored)
    assert resend_due(store, "router", "staging") == []
