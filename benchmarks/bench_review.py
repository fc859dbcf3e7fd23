"""Governance review over a large store: 100 workflows, 10,000 versions.

``python benchmarks/bench_review.py [--runs N] [--pg URL]`` builds one store (SQLite in a
temp project; with ``--pg``, also a fresh PostgreSQL database) holding SYNTHETIC rows
written straight into the tables (no evals run, no audit chain: review reads neither):

- 100 workflows (staging, production), a third without a care owner, half with an alert
  rule, every other one rehearsed; 100 release versions each (10,000) plus 5 expired
  experiments each holding 20 outputs and scores (31,900 audit events: registered,
  evaluated, gated, policy changed); one gate decision per version for
  staging and one for what runs in production (a ~4 KB report each, 10,100 in all); two
  policy versions per environment; a second suite on every tenth workflow;
- 100,000 runs within the period, every workflow's production version, a tenth of them
  reporting another model, and 50 runs of a version never gated for production.

It then times ``review`` over every workflow, in-process (median of ``--runs``, after one
warm-up call) and through the CLI in a fresh process (``releasegate review --json``, wall
time of the whole process, median of ``--runs``), and prints one table: figure, median,
wall and CPU seconds (median), target (2 s), and each one's ratio to the target. On a
shared machine the CPU figure is the one to compare: wall time there is mostly waiting for
a core. Speed lives here, never in test asserts; other work
on the machine inflates the wall figures alike.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench_loop import temp_pg_database
from releasegate.domain.identity import canonical_json, content_hash
from releasegate.domain.policy import Policy, Regression
from releasegate.domain.runs import parse_batch
from releasegate.release.review import review
from releasegate.store import tables as t
from releasegate.store.engine import Location, Store
from releasegate.store.runs import RunRepo, encode

WORKFLOWS = 100
VERSIONS = 100
EXPERIMENTS = 5
RUNS = 100_000
TARGET_S = 2.0
NOW = datetime.now(UTC)
ENVS = ("staging", "production")


def _manifest(w: int, v: int) -> dict[str, Any]:
    labels = {f"label_{i}": [f"phrase {i} {j} of workflow {w}" for j in range(3)] for i in range(8)}
    return {
        "workflow": f"wf-{w:03d}",
        "model": {"provider": "openai", "name": "gpt-4o-2024-08-06"},
        "prompts": {
            "system": f"Route the message (workflow {w}, version {v}).",
            "templates": {"input": "{input}"},
            "labels": labels,
        },
        "generation": {"temperature": 0.0, "v": v},
        "tools": [],
    }


def _report(decision_id: str, w: int, vid: str, env: str, policy_id: str) -> dict[str, Any]:
    estimate = 0.9
    return {
        "schema_version": 1,
        "decision_id": decision_id,
        "workflow": f"wf-{w:03d}",
        "env": env,
        "verdict": "pass",
        "version": {"id": vid},
        "policy": {"policy_id": policy_id},
        "checks": [{"name": f"check {i}", "status": "ok", "detail": "x" * 60} for i in range(30)],
        "metrics": [
            {
                "name": "accuracy",
                "candidate": {
                    "estimate": estimate,
                    "low": 0.87,
                    "high": 0.93,
                    "se": 0.015,
                    "n": 400,
                    "method": "wilson",
                },  # fmt: skip
                "baseline": None,
                "comparison": None,
                "floor": 0.7,
            }
        ],
    }


def build(store: Store) -> None:
    old = NOW - timedelta(days=200)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in (
        "workflows", "versions", "suites", "suite_history", "policies", "gate_decisions",
        "environments", "env_history", "alerts", "rehearsals", "outputs", "scores",
        "audit_events",
    )}  # fmt: skip
    serving: dict[int, str] = {}
    for w in range(WORKFLOWS):
        name = f"wf-{w:03d}"
        owners = {
            "change": "alice",
            "care": None if w % 3 == 0 else "ops",
            "approvers": ["bob", "carol"],
            "business": [],
            "responders": ["oncall"],
        }
        monitor = {"rules": [{"signal": "error_rate", "above": 0.1}]} if w % 2 else None
        rows["workflows"].append({
            "name": name, "description": "", "stakes": "low",
            "owners_json": canonical_json(owners), "environments_json": canonical_json(ENVS),
            "monitor_json": canonical_json(monitor) if monitor else None,
            "experiments_retention_days": 14, "created_at": old, "updated_at": old,
        })  # fmt: skip
        suites = [content_hash({"suite": name, "n": k}) for k in range(2 if w % 10 == 0 else 1)]
        for k, sid in enumerate(suites):
            rows["suites"].append({
                "suite_id": sid, "name": "core", "workflow": name, "description": "",
                "content_json": "{}", "created_at": old,
            })  # fmt: skip
            rows["suite_history"].append({
                "workflow": name, "suite_id": sid, "reason": "", "created_at": old + timedelta(k),
            })  # fmt: skip
        policy_ids = {}
        for env in ENVS:
            for k, floor in enumerate((0.6, 0.7)):
                p = Policy(
                    workflow=name, env=env, floors={"accuracy": floor},
                    regressions=(Regression("accuracy", 0.02),),
                )  # fmt: skip
                rows["policies"].append({
                    "policy_id": p.policy_id, "workflow": name, "env": env,
                    "content_json": canonical_json(p.content()), "created_at": old + timedelta(k),
                })  # fmt: skip
                policy_ids[env] = p.policy_id
                rows["audit_events"].append({
                    "seq": len(rows["audit_events"]) + 1, "at": old, "kind": "policy.changed",
                    "actor": "alice", "workflow": name, "subject": p.policy_id,
                    "payload_json": canonical_json({"env": env, "policy_id": p.policy_id}),
                    "prev_hash": "0" * 64, "hash": "0" * 64, "key_id": None,
                })  # fmt: skip
        vids = []
        for v in range(VERSIONS + EXPERIMENTS):
            manifest = _manifest(w, v)
            vid = content_hash(manifest)
            vids.append(vid)
            is_experiment = v >= VERSIONS
            for kind in ("version.registered", "eval.finished", "gate.decided"):
                payload = {"file": f"/projects/{name}/v{v}.yaml"} if kind[0] == "v" else {}
                rows["audit_events"].append({
                    "seq": len(rows["audit_events"]) + 1, "at": old, "kind": kind,
                    "actor": "alice", "workflow": name, "subject": vid,
                    "payload_json": canonical_json(payload), "prev_hash": "0" * 64,
                    "hash": "0" * 64, "key_id": None,
                })  # fmt: skip
            rows["versions"].append({
                "version_id": vid, "workflow": name, "manifest_json": canonical_json(manifest),
                "owner": "alice", "parent_id": None, "reason": "", "source_commit": None,
                "track": "experiment" if is_experiment else "release",
                "created_at": old + timedelta(minutes=v),
            })  # fmt: skip
            if is_experiment:
                for case in range(20):
                    key = {"version_id": vid, "case_hash": f"{case:064d}", "epoch": 0}
                    rows["outputs"].append({
                        **key, "text": "label_1", "data_json": None, "latency_ms": 1.0,
                        "tokens_in": 1, "tokens_out": 1, "cost_usd": 0.0, "error": None,
                        "created_at": old,
                    })  # fmt: skip
                    rows["scores"].append(
                        {**key, "scorer_id": "s" * 64, "value": 1.0, "passed": True, "detail": ""}
                    )
                continue
            targets = ["staging"] + (["production"] if v == VERSIONS - 2 else [])
            for env in targets:
                did = uuid.uuid4().hex
                rows["gate_decisions"].append({
                    "decision_id": did, "version_id": vid, "workflow": name, "env": env,
                    "suite_id": suites[0], "policy_id": policy_ids[env], "baseline_id": None,
                    "verdict": "pass", "checks_passed": True, "change_class": "wording",
                    "report_json": canonical_json(
                        _report(did, w, vid, env, policy_ids[env])
                    ),
                    "created_at": old + timedelta(minutes=v, seconds=1),
                })  # fmt: skip
        serving[w] = vids[VERSIONS - 2]
        for env, vid in (("staging", vids[VERSIONS - 1]), ("production", vids[VERSIONS - 2])):
            rows["environments"].append({
                "workflow": name, "env": env, "version_id": vid, "revision": 3,
                "updated_at": old,
            })  # fmt: skip
            for k in range(3):
                moved = vids[VERSIONS - 1 - k - (env == "production")]
                rows["env_history"].append({
                    "workflow": name, "env": env, "version_id": moved,
                    "previous_id": None, "action": "promote", "actor": "alice",
                    "decision_id": None, "reason": "", "created_at": old + timedelta(days=k),
                })  # fmt: skip
        if monitor and w % 4 == 1:
            rows["alerts"].append({
                "workflow": name, "env": "staging", "signal": "error_rate",
                "severity": "warning", "message": "m", "payload_json": "{}",
                "routed_json": "[]", "created_at": old, "status": "routed", "attempts": 1,
            })  # fmt: skip
        if w % 2 == 0:
            rows["rehearsals"].append({
                "rehearsal_id": uuid.uuid4().hex, "workflow": name, "env": "staging",
                "original_id": vids[VERSIONS - 1], "deployed_id": None, "suite_id": suites[0],
                "state": "finished", "result": "passed", "active": None,
                "mutation_score": 0.8, "time_to_detect_s": 1.0, "time_to_revert_s": 1.0,
                "is_restored": True, "mutations_json": "[]", "runner_json": "{}",
                "actor": "oncall", "started_at": NOW - timedelta(days=10),
                "updated_at": NOW - timedelta(days=10), "finished_at": NOW - timedelta(days=10),
            })  # fmt: skip
    with store.write() as conn:
        for name, batch in rows.items():
            if batch:
                conn.execute(sa.insert(getattr(t, name)), batch)
    _runs(store, serving)


def _runs(store: Store, serving: dict[int, str]) -> None:
    now = time.time()
    items = []
    for i in range(RUNS):
        w = i % WORKFLOWS
        item = {
            "run_id": f"r{i}", "workflow": f"wf-{w:03d}", "version_id": serving[w],
            "env": "production", "started_at": now - 86400 * 30 + i * 20, "latency_ms": 12.0,
            "status": "ok", "model": "gpt-4o-2024-08-06" if i % 10 else "gpt-4o-mini",
            "provider": "openai",
        }  # fmt: skip
        items.append(item)
    rogue = content_hash({"rogue": 1})
    for i in range(50):
        items.append({
            "run_id": f"x{i}", "workflow": "wf-007", "version_id": rogue, "env": "production",
            "started_at": now - 3600 + i, "latency_ms": 9.0, "status": "ok",
        })  # fmt: skip
    parsed = parse_batch(items, now=datetime.now(UTC), source="jsonl")
    assert not parsed.rejected, parsed.rejected[:3]
    with store.write() as conn:
        RunRepo(conn).insert_many(encode(r, now) for r in parsed.accepted)


def _median(values: list[float]) -> float:
    return statistics.median(values)


Timed = tuple[list[float], list[float], int]
"""Wall seconds and CPU seconds of each run, and how many findings the review had."""


def time_in_process(store: Store, runs: int) -> Timed:
    found = review(store)  # warm-up: imports, caches, the database's pages
    walls, cpus = [], []
    for _ in range(runs):
        c0, t0 = time.process_time(), time.perf_counter()
        found = review(store)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return walls, cpus, len(found.findings)


def time_cli(root: Path, runs: int, env: dict[str, str]) -> Timed:
    walls, cpus, findings = [], [], 0
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "releasegate", "review", "--json"],
            cwd=root, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        assert done.returncode == 1, done.stderr
        findings = len(json.loads(done.stdout)["findings"])
    return walls, cpus, findings


def _row(figure: str, timed: Timed) -> str:
    walls, cpus, findings = timed
    wall, cpu = _median(walls), _median(cpus)
    shown = ", ".join(f"{x:.2f}" for x in walls)
    return (
        f"| {figure} | {wall:.3f} s | {cpu:.3f} s | {TARGET_S:.0f} s | {wall / TARGET_S:.2f} "
        f"| {cpu / TARGET_S:.2f} | {findings:,} | {shown} |"
    )


def bench(label: str, store: Store, root: Path, runs: int, env: dict[str, str]) -> list[str]:
    t0 = time.perf_counter()
    build(store)
    print(f"{label}: built in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return [
        _row(f"{label}, in-process `review()`", time_in_process(store, runs)),
        _row(f"{label}, `releasegate review --json`, fresh process", time_cli(root, runs, env)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pg", help="a PostgreSQL server URL (an empty database is created)")
    args = parser.parse_args()
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {**os.environ}
        env.pop("RELEASEGATE_DATABASE_URL", None)
        home = root / ".releasegate"
        home.mkdir()
        loc = Location(f"sqlite:///{home / 'releasegate.db'}", home / "blobs", True, home)
        store = Store.open(location=loc)
        try:
            lines += bench("SQLite", store, root, args.runs, env)
        finally:
            store.close()
        if args.pg:
            lines += _bench_pg(args.pg, root, args.runs, env)
    print(
        f"review over {WORKFLOWS} workflows, {WORKFLOWS * VERSIONS:,} versions "
        f"(+{WORKFLOWS * EXPERIMENTS} experiments), {RUNS:,} runs in the period; "
        f"median of {args.runs}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(
        "| figure | wall (median) | CPU (median) | target | wall / target | CPU / target "
        "| findings | wall of every run |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for line in lines:
        print(line)


def _bench_pg(server: str, root: Path, runs: int, env: dict[str, str]) -> list[str]:
    with temp_pg_database(server) as url:
        home = root / "pg-home"
        home.mkdir()
        store = Store.open(location=Location(url, home / "blobs", False, home))
        try:
            return bench("PostgreSQL", store, root, runs, {**env, "RELEASEGATE_DATABASE_URL": url})
        finally:
            store.close()


if __name__ == "__main__":
    main()
