"""Experiments: gated like releases, graduated by content, collected once expired (gc).

Real stores (SQLite and PostgreSQL), real evals of a workflow that is code.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from releasegate.errors import InputError, PromotionRefusedError
from releasegate.release.audit import audit_verify
from releasegate.release.evaluate import evaluate
from releasegate.release.experiments import Collection, collect_expired, expired_experiments
from releasegate.release.gate import gate
from releasegate.release.inspect import list_versions, show_version
from releasegate.release.promote import promote
from releasegate.release.register import register
from releasegate.store.audit import AuditRepo
from releasegate.store.engine import Store
from releasegate.store.evals import EvalData, EvalDataRepo
from releasegate.store.versions import VersionRepo
from tests.helpers import Project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path, meta={"experiments": {"retention_days": 14}})


def data_of(store: Store, version_id: str) -> EvalData:
    with store.read() as conn:
        return EvalDataRepo(conn).count(version_id)


def events(store: Store, kind: str) -> list[str]:
    with store.read() as conn:
        return [e.subject or "" for e in AuditRepo(conn).events() if e.kind == kind]


def released(store: Store, project: Project) -> str:
    v1 = register(store, project.workflow("v1"), who="alice").version_id
    evaluate(store, v1, project.suite(), who="alice")
    assert gate(store, v1, "staging", who="ci").verdict == "pass"
    promote(store, v1, "staging", who="alice")
    return v1


def experiment(store: Store, project: Project, name: str = "exp", **gen: object) -> str:
    vid = register(
        store, project.workflow(name, temperature=0.7, **gen), experiment=True, who="eve"
    ).version_id
    evaluate(store, vid, project.suite(), who="eve")
    return vid


def created(store: Store, version_id: str) -> object:
    with store.read() as conn:
        found = VersionRepo(conn).find(version_id)
    assert found is not None
    return found.created_at


def test_an_experiment_is_gated_on_the_same_suite_and_policy_as_a_release(
    store: Store, project: Project
) -> None:
    v1 = released(store, project)
    exp = experiment(store, project)
    cand = gate(store, exp, "staging").report.to_json()
    release = register(store, project.workflow("v2", temperature=0.2)).version_id
    evaluate(store, release, project.suite())
    rel = gate(store, release, "staging").report.to_json()
    assert cand["version"]["track"] == "experiment" and rel["version"]["track"] == "release"
    assert cand["suite"] == rel["suite"] and cand["policy"] == rel["policy"]
    assert cand["baseline"]["id"] == rel["baseline"]["id"] == v1
    assert [m["name"] for m in cand["metrics"]] == [m["name"] for m in rel["metrics"]]
    assert cand["verdict"] == rel["verdict"] == "pass"


def test_an_experiment_is_promoted_only_through_the_gate(store: Store, project: Project) -> None:
    released(store, project)
    exp = experiment(store, project, mode="broken")
    with pytest.raises(PromotionRefusedError, match="no gate decision"):
        promote(store, exp, "staging")
    assert gate(store, exp, "staging").verdict == "fail"
    with pytest.raises(PromotionRefusedError, match="did not pass"):
        promote(store, exp, "staging")


def test_registering_an_experiments_content_as_a_release_graduates_it(
    store: Store, project: Project
) -> None:
    released(store, project)
    exp = experiment(store, project)
    passed = gate(store, exp, "staging")
    again = register(store, project.workflow("exp", temperature=0.7), reason="ship it")
    assert (again.version_id, again.is_new, again.graduated) == (exp, False, True)
    assert again.track == "release"
    assert events(store, "version.graduated") == [exp]
    # the evidence stands: same id, same suite, same policy
    promote(store, exp, "staging")
    assert passed.verdict == "pass"
    twice = register(store, project.workflow("exp", temperature=0.7))
    assert not twice.graduated and twice.track == "release"
    back = register(store, project.workflow("exp", temperature=0.7), experiment=True)
    assert back.track == "release"  # a release never goes back to the experiment track
    assert audit_verify(store).broken is None


def test_a_release_derived_from_an_experiment_records_it_as_its_parent(
    store: Store, project: Project
) -> None:
    released(store, project)
    exp = experiment(store, project)
    derived = register(store, project.workflow("v3", temperature=0.6), parent=exp[:10])
    assert derived.track == "release" and derived.parent_id == exp


def test_versions_lists_the_tracks_apart(store: Store, project: Project) -> None:
    v1 = released(store, project)
    exp = experiment(store, project)
    every = list_versions(store, "router")
    assert [(r["version_id"], r["track"]) for r in every] == [
        (v1, "release"),
        (exp, "experiment"),
    ]
    assert every[0]["expires_at"] is None
    expiry = every[1]["expires_at"]
    assert expiry == (created(store, exp) + timedelta(days=14)).isoformat()  # type: ignore[operator]
    assert [r["version_id"] for r in list_versions(store, "router", "experiment")] == [exp]
    assert [r["version_id"] for r in list_versions(store, "router", "release")] == [v1]
    with pytest.raises(InputError, match="unknown track 'beta'"):
        list_versions(store, "router", "beta")


def test_gc_collects_an_expired_experiments_eval_data_and_keeps_its_history(
    store: Store, project: Project
) -> None:
    v1 = released(store, project)
    exp = experiment(store, project)
    gate(store, exp, "staging")
    before = data_of(store, exp)
    assert before.outputs == 80 and before.scores == 160 and before.evals == 1
    later = created(store, exp) + timedelta(days=14, seconds=1)  # type: ignore[operator]
    assert collect_expired(store, now=later - timedelta(seconds=2)).experiments == ()

    done = collect_expired(store, "router", now=later, who="ops")
    assert [e.version_id for e in done.collected] == [exp]
    assert (done.outputs, done.scores) == (80, 160)
    assert data_of(store, exp) == EvalData(0, 0, 0)
    assert data_of(store, v1).outputs == 80  # a release is never collected
    shown = show_version(store, exp)  # the version, its manifest, eval summary and decision stay
    assert shown["manifest"]["generation"]["temperature"] == 0.7
    assert [e["status"] for e in shown["evals"]] == ["collected"]
    assert shown["evals"][0]["metrics"]["accuracy"] == 1.0
    assert [d["verdict"] for d in shown["decisions"]] == ["pass"]
    with store.read() as conn:
        collected = [e for e in AuditRepo(conn).events() if e.kind == "experiment.collected"]
    assert [(e.subject, e.actor) for e in collected] == [(exp, "ops")]
    assert collected[0].payload["outputs"] == 80 and collected[0].payload["retention_days"] == 14
    assert audit_verify(store).broken is None

    # collected evidence cannot carry a gate: the gate asks for a new eval
    held = gate(store, exp, "staging")
    assert held.verdict == "hold"
    assert "was not evaluated on the current suite" in held.reasons_text()
    assert collect_expired(store, now=later).experiments == ()  # nothing left: nothing audited
    assert len(events(store, "experiment.collected")) == 1


def test_gc_dry_run_lists_and_writes_nothing(store: Store, project: Project) -> None:
    released(store, project)
    exp = experiment(store, project)
    later = created(store, exp) + timedelta(days=30)  # type: ignore[operator]
    dry = collect_expired(store, now=later, dry_run=True)
    assert dry.dry_run and [e.version_id for e in dry.collected] == [exp]
    assert dry.outputs == 80
    assert data_of(store, exp).outputs == 80
    assert events(store, "experiment.collected") == []
    assert [e.version_id for e in expired_experiments(store, now=later)] == [exp]


def test_gc_keeps_an_experiment_that_serves_somewhere(store: Store, project: Project) -> None:
    released(store, project)
    exp = experiment(store, project)
    assert gate(store, exp, "staging").verdict == "pass"
    promote(store, exp, "staging")
    later = created(store, exp) + timedelta(days=30)  # type: ignore[operator]
    done = collect_expired(store, now=later)
    assert [(e.version_id, e.kept_because) for e in done.kept] == [(exp, "serves router@staging")]
    assert done.collected == () and data_of(store, exp).outputs == 80
    assert events(store, "experiment.collected") == []


def test_gc_keeps_an_experiment_that_is_a_rollouts_canary(store: Store, project: Project) -> None:
    from releasegate.release.rollout import start

    released(store, project)
    exp = experiment(store, project)
    assert gate(store, exp, "staging").verdict == "pass"
    start(store, exp, "staging", canary_pct=10)
    later = created(store, exp) + timedelta(days=30)  # type: ignore[operator]
    assert [e.kept_because for e in expired_experiments(store, now=later)] == [
        "is the canary of router@staging"
    ]
    assert collect_expired(store, now=later).collected == ()
    assert data_of(store, exp).outputs == 80


def test_without_a_retention_window_experiments_never_expire(store: Store, tmp_path: Path) -> None:
    project = Project(root=tmp_path)
    released(store, project)
    exp = experiment(store, project)
    far = created(store, exp) + timedelta(days=3650)  # type: ignore[operator]
    assert collect_expired(store, now=far).experiments == ()
    assert list_versions(store, "router", "experiment")[0]["expires_at"] is None


def test_two_collectors_at_once_collect_once(store: Store, project: Project) -> None:
    released(store, project)
    exps = [experiment(store, project, f"e{i}", seed=i) for i in range(3)]
    later = created(store, exps[-1]) + timedelta(days=15)  # type: ignore[operator]
    results: list[Collection] = []
    start = threading.Barrier(2)

    def collect() -> None:
        start.wait()
        results.append(collect_expired(store, now=later))

    threads = [threading.Thread(target=collect) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(e.version_id for r in results for e in r.collected) == sorted(exps)
    assert sorted(events(store, "experiment.collected")) == sorted(exps)
    assert audit_verify(store).broken is None
