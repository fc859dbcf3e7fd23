"""Alerts that are never lost and exit codes that tell the truth, through a real subprocess:
a ``kill -9`` between storing and sending an alert, a route that is down, a cool-down that
keeps people from being paged twice but not the cron job from seeing "no", and too few
runs to judge."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_production_cli import write
from tests.helpers import REPO, Project, ok_json, register, rg
from tests.helpers import ship as ship_to
from tests.monitor.test_monitor import Hook, runs, workflow_with_monitor

WEEK = ("--week", time.strftime("%G-W%V", time.gmtime()))
MONITOR = ("monitor", "router", "--env", "staging", "--no-embeddings", "--no-quality")


def ship(project: Project, route_url: str) -> str:
    """A gated version on staging whose alerts go to ``route_url`` (1 s timeout)."""
    d = project.root
    path = workflow_with_monitor(
        project,
        {"min_sample": 100, "routes": [{"webhook": {"url": route_url, "timeout": "1s"}}]},
    )
    vid = register(d, path)
    ship_to(project, vid)
    return vid


def shifted_week(project: Project, vid: str) -> None:
    now = time.time()
    rows = runs(vid, days=7, until=now - 7 * 86400, n=400, shift=False, seed=1)
    rows += runs(vid, days=7, until=now, n=400, shift=True, seed=2)
    write(project.root / "runs.jsonl", rows)
    assert rg(project.root, "runs", "import", "runs.jsonl").returncode == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start the webhook receiver on a given port, when the test says so."""
    servers: list[ThreadingHTTPServer] = []

    def start(port: int) -> None:
        Hook.received = []
        server = ThreadingHTTPServer(("127.0.0.1", port), Hook)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def leases(project: Project) -> list[tuple[str, str | None]]:
    db = project.root / ".releasegate" / "releasegate.db"
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT status, lease_until FROM alerts ORDER BY seq").fetchall()


def wait_out_lease(project: Project) -> None:
    """Let the killed monitor's lease (route timeouts plus a margin) run out, as the next
    cron run, an hour later, would find it."""
    for _, until in leases(project):
        if until:
            at = datetime.fromisoformat(until).replace(tzinfo=UTC).timestamp()
            time.sleep(max(0.0, at - time.time() + 0.2))


def test_an_alert_stored_but_not_sent_when_monitor_is_killed_is_sent_by_the_next_one(
    tmp_path: Path, serve: Any
) -> None:
    project = Project(root=tmp_path)
    d = project.root
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    vid = ship(project, f"http://127.0.0.1:{port}/hook")
    shifted_week(project, vid)

    env = {**os.environ, "PYTHONPATH": str(REPO), "RELEASEGATE_ACTOR": "alice"}
    env.pop("RELEASEGATE_DATABASE_URL", None)
    first = subprocess.Popen(
        [sys.executable, "-m", "releasegate", *MONITOR],
        cwd=d,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    listener.settimeout(120)  # a guard against a hang, not a measurement
    conn, _ = listener.accept()  # the monitor stored its alert and is sending it now
    os.kill(first.pid, signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    conn.close()
    listener.close()
    statuses = [s for s, _ in leases(project)]
    assert statuses and set(statuses) == {"pending"}  # stored, never sent

    memo = ok_json(rg(d, "report", "memo", "router", *WEEK, "--out", "memo", "--json"))
    stored = memo["environments"][0]["alerts"]
    assert stored and {a["delivery"] for a in stored} == {"pending"}

    serve(port)  # the receiver is back
    wait_out_lease(project)
    second = rg(d, *MONITOR)
    assert second.returncode == 1, second.stderr
    assert "not delivered then, sent now" in second.stdout
    assert "in alert (cool-down):" in second.stdout  # the signals themselves stay quiet
    sent = [body for path, body in Hook.received if path == "/hook"]
    resent = [b for b in sent if b["resent"]]
    assert [b["message"] for b in resent] == [a["message"] for a in stored]
    assert resent[0]["status"] == "pending"  # as it was stored; now it is marked routed
    assert {s for s, _ in leases(project)} == {"routed"}

    third = rg(d, *MONITOR, "--json")  # nothing left to send, nobody paged twice
    assert third.returncode == 1
    report = json.loads(third.stdout)
    assert report["status"] == "alert" and report["resent"] == [] and report["alerts"] == []
    assert {h["delivery"] for h in report["held"]} == {"routed"}
    assert len(Hook.received) == len(sent)


def test_a_route_that_is_down_fails_the_alert_and_the_next_monitor_sends_it(
    tmp_path: Path, serve: Any
) -> None:
    project = Project(root=tmp_path)
    d = project.root
    port = free_port()  # nothing listens there yet
    vid = ship(project, f"http://127.0.0.1:{port}/hook")
    shifted_week(project, vid)

    down = rg(d, *MONITOR, "--json")
    assert down.returncode == 1
    report = json.loads(down.stdout)
    assert report["alerts"] and {a["status"] for a in report["alerts"]} == {"failed"}
    assert all(a["attempts"] == 1 and "failed" in a["error"] for a in report["alerts"])
    memo = ok_json(rg(d, "report", "memo", "router", *WEEK, "--out", "memo", "--json"))
    assert any("not delivered yet" in a for a in memo["actions"])

    serve(port)
    wait_out_lease(project)
    up = rg(d, *MONITOR, "--json")
    assert up.returncode == 1
    again = json.loads(up.stdout)
    assert {a["signal"] for a in again["resent"]} == {a["signal"] for a in report["alerts"]}
    assert {a["status"] for a in again["resent"]} == {"routed"}
    assert all(a["attempts"] == 2 for a in again["resent"])
    assert len(Hook.received) == len(report["alerts"])  # each sent once, when it could be


def test_too_few_runs_to_judge_is_not_nothing_needs_doing(tmp_path: Path) -> None:
    project = Project(root=tmp_path)
    d = project.root
    vid = ship(project, "http://127.0.0.1:9/unused")
    now = time.time()
    write(d / "runs.jsonl", runs(vid, days=1, until=now, n=12, shift=False, seed=4))
    assert rg(d, "runs", "import", "runs.jsonl").returncode == 0

    watched = rg(d, *MONITOR)
    assert watched.returncode == 0, watched.stderr
    assert "too few runs to judge: 12 in this window and 0 in the reference" in watched.stdout
    assert "no signal in alert" not in watched.stdout
    report = json.loads(rg(d, *MONITOR, "--json").stdout)
    assert report["status"] == "insufficient"

    memo = rg(d, "report", "memo", "router", *WEEK, "--out", "memo")
    assert memo.returncode == 0
    assert "too few runs to judge" in memo.stdout and "nothing needs doing" not in memo.stdout
    text = (d / "memo" / "memo.md").read_text()
    assert "Too few runs to judge" in text and "Nothing needs doing" not in text
