"""The loop's order is enforced by the system: every refusal a user can hit, on both databases."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from releasegate.errors import (
    InputError,
    NotFoundError,
    PromotionRefusedError,
    RefusedError,
    SelfApprovalError,
    StaleAliasError,
)
from releasegate.release.audit import audit_verify
from releasegate.release.evaluate import evaluate
from releasegate.release.gate import gate
from releasegate.release.promote import approve, promote, rollback
from releasegate.release.register import register
from releasegate.release.resolve import resolve
from releasegate.store.engine import Location, Store
from tests.helpers import Project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path)


def shipped(store: Store, project: Project, name: str = "v1", **kw: object) -> str:
    """Register, evaluate, gate and promote a version to staging (low stakes: no approvals)."""
    vid = register(store, project.workflow(name, **kw), who="alice").version_id  # type: ignore[arg-type]
    evaluate(store, vid, project.suite(), who="alice")
    assert gate(store, vid, "staging", who="ci").verdict == "pass"
    promote(store, vid, "staging", who="alice")
    return vid


def test_registering_the_same_content_returns_the_same_id(store: Store, project: Project) -> None:
    first = register(store, project.workflow("v1"), reason="first")
    again = register(store, project.workflow("v1-copy"), reason="again")
    assert first.is_new and not again.is_new
    assert first.version_id == again.version_id
    changed = register(store, project.workflow("v2", temperature=0.3))
    assert changed.is_new and changed.version_id != first.version_id
    assert changed.parent_id == first.version_id  # default parent: the latest


def test_the_whole_loop_low_stakes(store: Store, project: Project) -> None:
    v1 = shipped(store, project)
    assert resolve(store, "router", "staging").version_id == v1
    v2 = register(store, project.workflow("v2", temperature=0.2), reason="tune").version_id
    outcome = evaluate(store, v2, project.suite())
    assert outcome.summary["metrics"]["accuracy"]["estimate"] == 1.0
    decision = gate(store, v2, "staging")
    assert decision.verdict == "pass", decision.report.to_json()["reasons"]
    acc = next(m for m in decision.report.to_json()["metrics"] if m["name"] == "accuracy")
    assert acc["comparison"]["delta"] == 0.0 and acc["baseline"]["estimate"] == 1.0
    assert decision.report.to_json()["change"]["class"] == "config"
    moved = promote(store, v2, "staging")
    assert (moved.previous_id, moved.version_id) == (v1, v2)
    verified = audit_verify(store)
    count, broken = verified.events, verified.broken
    assert broken is None and count >= 8


def test_promote_without_eval_or_gate_is_refused(store: Store, project: Project) -> None:
    vid = register(store, project.workflow("v1")).version_id
    with pytest.raises(PromotionRefusedError, match="no gate decision"):
        promote(store, vid, "staging")
    held = gate(store, vid, "staging")
    assert held.verdict == "hold"
    assert "no suite" in held.report.to_json()["reasons"][0]
    with pytest.raises(PromotionRefusedError, match="did not pass"):
        promote(store, vid, "staging")
    with pytest.raises(NotFoundError):
        resolve(store, "router", "staging")


def test_promote_after_the_suite_changed_is_refused(store: Store, project: Project) -> None:
    v1 = shipped(store, project)
    v2 = register(store, project.workflow("v2", temperature=0.5)).version_id
    evaluate(store, v2, project.suite())
    assert gate(store, v2, "staging").verdict == "pass"
    extra = [
        {"id": "incident-1", "input": "easy new #fraud", "expected": "fraud", "must_pass": True}
    ]
    evaluate(store, v1, project.suite(extra=extra, name="suite2"))  # the suite grew: current now
    with pytest.raises(PromotionRefusedError, match="suite changed"):
        promote(store, v2, "staging")


def test_promote_after_the_policy_changed_is_refused(store: Store, project: Project) -> None:
    shipped(store, project)
    v2 = register(store, project.workflow("v2", temperature=0.5)).version_id
    evaluate(store, v2, project.suite())
    assert gate(store, v2, "staging").verdict == "pass"
    project.floors = {"accuracy": 0.9}
    again = register(store, project.workflow("v2", temperature=0.5))
    assert not again.is_new and "staging" in again.policies_changed
    with pytest.raises(PromotionRefusedError, match="policy changed"):
        promote(store, v2, "staging")


def test_high_stakes_needs_named_and_business_approval(store: Store, project: Project) -> None:
    project.stakes = "high"
    v1 = register(store, project.workflow("v1"), who="alice").version_id
    evaluate(store, v1, project.suite())
    decision = gate(store, v1, "staging")
    assert decision.verdict == "needs-approval"
    assert (
        decision.report.to_json()["change"]["class"] == "model"
    )  # a first release: everything is new
    with pytest.raises(SelfApprovalError, match="nobody approves their own change"):
        approve(store, v1, "staging", approver="alice")
    with pytest.raises(RefusedError, match="not an approver"):
        approve(store, v1, "staging", approver="mallory")
    approve(store, v1, "staging", approver="bob")
    with pytest.raises(PromotionRefusedError, match="business approver"):
        promote(store, v1, "staging")
    approve(store, v1, "staging", approver="dana")
    assert promote(store, v1, "staging").changed

    # a wording change needs only the named approver
    v2 = register(store, project.workflow("v2", revision="1"), who="alice")
    assert not v2.is_new  # same content as v1
    v3 = register(store, project.workflow("v3", temperature=0.1), who="alice").version_id
    evaluate(store, v3, project.suite())
    assert gate(store, v3, "staging").verdict == "needs-approval"
    with pytest.raises(PromotionRefusedError, match="named approver"):
        promote(store, v3, "staging")
    approve(store, v3, "staging", approver="carol")
    assert promote(store, v3, "staging").version_id == v3


def test_a_broken_change_fails_the_gate_and_cannot_be_promoted(
    store: Store,
    project: Project,
) -> None:
    shipped(store, project)
    bad = register(store, project.workflow("bad", mode="broken")).version_id
    evaluate(store, bad, project.suite())
    decision = gate(store, bad, "staging")
    assert decision.verdict == "fail"
    failing = {c["name"] for c in decision.report.to_json()["checks"] if c["status"] == "fail"}
    assert {"must-pass", "regression accuracy"} <= failing
    assert decision.report.to_json()["must_pass"]["failures"][0]["output"] == "card_lost"
    with pytest.raises(PromotionRefusedError, match="did not pass"):
        promote(store, bad, "staging")


def test_a_small_suite_holds_when_it_shows_neither_verdict(store: Store, project: Project) -> None:
    project.margin = 0.01
    shipped_v1 = register(store, project.workflow("v1")).version_id
    evaluate(store, shipped_v1, project.suite(n=40))
    project.margin = 0.01
    decision = gate(store, shipped_v1, "staging")
    assert decision.verdict == "pass"  # first release: nothing to regress against
    promote(store, shipped_v1, "staging")
    v2 = register(store, project.workflow("v2", temperature=0.9)).version_id
    evaluate(store, v2, project.suite(n=40))
    held = gate(store, v2, "staging")
    assert held.verdict == "hold"
    assert "neither shown" in held.report.to_json()["reasons"][0]
    assert "cases needed" in held.report.to_json()["reasons"][0]


def test_rollback_goes_to_the_previous_approved_version(store: Store, project: Project) -> None:
    v1 = shipped(store, project)
    v2 = shipped(store, project, "v2", temperature=0.4)
    assert resolve(store, "router", "staging").version_id == v2
    moved = rollback(store, "router", "staging", reason="incident")
    assert (moved.previous_id, moved.version_id) == (v2, v1)
    assert resolve(store, "router", "staging").version_id == v1
    with pytest.raises(RefusedError, match="no earlier approved version"):
        rollback(store, "router", "staging")
    # v2's decision was made against v1, which runs again: it may go back out without a new gate
    assert promote(store, v2, "staging").version_id == v2
    assert rollback(store, "router", "staging", to=v1[:8]).version_id == v1
    never = register(store, project.workflow("v9", temperature=0.9)).version_id
    with pytest.raises(RefusedError, match="never passed the gate"):
        rollback(store, "router", "staging", to=never)


def test_unknown_environment_and_version_are_input_errors(store: Store, project: Project) -> None:
    vid = register(store, project.workflow("v1")).version_id
    with pytest.raises(InputError, match="no environment 'prod'"):
        gate(store, vid, "prod")
    with pytest.raises(NotFoundError, match="no version"):
        gate(store, "deadbeef00", "staging")


def _promote_in_process(
    url: str,
    home: str,
    version: str,
    queue: multiprocessing.Queue[str],
) -> None:
    loc = Location(
        url=url,
        blob_root=Path(home) / "blobs",
        is_embedded=url.startswith("sqlite"),
        home=Path(home),
    )
    store = Store.open(location=loc)
    try:
        promote(store, version, "staging", who=f"p{os.getpid()}", pause_after_check=0.4)
        queue.put("won")
    except StaleAliasError as exc:
        queue.put(f"stale: {exc.message}")
    except Exception as exc:  # reported to the test, which fails with it
        queue.put(f"error: {type(exc).__name__}: {exc}")


def test_two_concurrent_promoters_exactly_one_wins(
    store: Store, project: Project, store_url: str, tmp_path: Path
) -> None:
    v1 = shipped(store, project)
    contenders = []
    for i, temp in enumerate((0.3, 0.6)):
        vid = register(store, project.workflow(f"c{i}", temperature=temp)).version_id
        evaluate(store, vid, project.suite())
        assert gate(store, vid, "staging").verdict == "pass"
        contenders.append(vid)
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[str] = ctx.Queue()
    procs = [
        ctx.Process(
            target=_promote_in_process, args=(store_url, str(tmp_path / ".releasegate"), vid, queue)
        )
        for vid in contenders
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    results = sorted(queue.get(timeout=5) for _ in procs)
    assert results.count("won") == 1, results
    loser = [r for r in results if r != "won"][0]
    assert loser.startswith("stale:") and "moved" in loser, results
    now_running = resolve(store, "router", "staging").version_id
    assert now_running in contenders and now_running != v1
    with store.read() as conn:
        history = conn.execute(
            sa.text("SELECT count(*) FROM env_history WHERE env = 'staging'")
        ).scalar_one()
    assert history == 2  # v1, then exactly one contender
    assert audit_verify(store).broken is None


def test_editing_the_code_of_a_python_workflow_is_a_new_version(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"codewf_{tmp_path.name.replace('-', '_')}"  # one per run: modules are cached
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "route.py").write_text("def run(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    project = Project(root=tmp_path, fn=f"{name}.route:run")
    first = register(store, project.workflow("v1"))
    assert first.is_new
    (pkg / "route.py").write_text("def run(x):\n    return x.upper()\n")
    edited = register(store, project.workflow("v1"))
    assert edited.is_new and edited.version_id != first.version_id


def test_concurrent_registrations_of_the_same_content_agree(
    store: Store,
    project: Project,
    store_url: str,
    tmp_path: Path,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from releasegate.release.register import read_workflow, register_spec

    spec = read_workflow(project.workflow("v1"))
    home = tmp_path / ".releasegate"
    stores = [
        Store.open(
            location=Location(
                url=store_url,
                blob_root=home / "blobs",
                is_embedded=store_url.startswith("sqlite"),
                home=home,
            )
        )
        for _ in range(6)
    ]
    try:
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda s: register_spec(s, spec), stores))
    finally:
        for s in stores:
            s.close()
    assert {r.version_id for r in results} == {spec.version_id}
    assert sum(r.is_new for r in results) == 1
    assert audit_verify(store).broken is None


def test_the_resolver_serves_the_last_known_version_when_the_store_is_unreadable(
    tmp_path: Path, project: Project
) -> None:
    from releasegate.release.resolve import Resolver

    home = tmp_path / ".releasegate"
    loc = Location(
        url=f"sqlite:///{home / 'db.sqlite'}", blob_root=home / "blobs", is_embedded=True, home=home
    )
    store = Store.open(location=loc)
    v1 = shipped(store, project)
    resolver = Resolver(store, ttl=0.0)  # every call goes to the store
    assert resolver("router", "staging").version_id == v1
    with store.write() as conn:  # the store breaks under the application
        conn.execute(sa.text("DROP TABLE environments"))
    assert resolver("router", "staging").version_id == v1  # last known, not an outage
    from releasegate.errors import StoreUnavailableError

    with pytest.raises(StoreUnavailableError, match="no such table"):
        resolver("router", "production")  # never resolved: the real failure, not a guess
    store.close()
