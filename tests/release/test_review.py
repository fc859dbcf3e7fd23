"""Governance review and policy changes on real SQLite and PostgreSQL stores: versions
planted in runs outside the gate, runs that drifted from their manifest, missing owners,
stale gates, pauses, threshold ratchets, and the propose/approve flow with its audit."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from releasegate.domain.identity import canonical_json, content_hash
from releasegate.domain.review import PROVEN, Finding, Review
from releasegate.errors import InputError, NotFoundError, RefusedError, SelfApprovalError
from releasegate.monitor.ingest import ingest_dicts
from releasegate.release.audit import audit_verify
from releasegate.release.evaluate import evaluate
from releasegate.release.experiments import expired_experiments
from releasegate.release.gate import current_policy, gate
from releasegate.release.pause import pause
from releasegate.release.policy_changes import approve, propose, show
from releasegate.release.promote import promote
from releasegate.release.register import register
from releasegate.release.rehearse import rehearse
from releasegate.release.review import review
from releasegate.store import tables as t
from releasegate.store.engine import Store
from tests.helpers import Project

FN = "tests.release.fns:route"


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path)


def shipped(store: Store, project: Project) -> str:
    """v1 through the gate to staging and production."""
    vid = register(store, project.workflow("v1"), who="alice").version_id
    evaluate(store, vid, project.suite(), who="alice")
    for env in ("staging", "production"):
        assert gate(store, vid, env, who="ci").verdict == "pass"
        promote(store, vid, env, who="alice")
    return vid


def record(store: Store, vid: str, n: int, env: str = "production", **extra: Any) -> None:
    now = time.time()
    rows = [
        {
            "run_id": f"{vid[:6]}-{env}-{extra.get('model', '')}-{i}",
            "workflow": "router",
            "version_id": vid,
            "env": env,
            "started_at": now - 60 + i,
            "latency_ms": 12.0,
            "status": "ok",
            **extra,
        }
        for i in range(n)
    ]
    result = ingest_dicts(store, rows, source="jsonl")
    assert result.landed == n, result.rejected


def by_check(result: Review, check: str) -> list[Finding]:
    return [f for f in result.findings if f.check == check]


def test_review_finds_what_ran_outside_the_loop(store: Store, project: Project) -> None:
    v1 = shipped(store, project)
    clean = review(store)
    assert by_check(clean, "outside-gate") == [] and by_check(clean, "drifted-runs") == []
    (owners,) = by_check(clean, "owners")  # the project names no care owner, no responders
    assert "care owner" in owners.message and "responders" in owners.message
    assert owners.fix.startswith(f"releasegate register {project.root / 'v1.yaml'}  # ")

    v2 = register(store, project.workflow("v2", revision="2"), who="alice").version_id
    record(store, v2, 4)  # planted: v2 was never gated for production
    record(store, v1, 3, model=FN, provider="python")  # what v1 says it runs
    record(store, v1, 2, model="tests.release.fns:other")  # another function ran as v1
    result = review(store)
    assert result.needs_action
    (outside,) = by_check(result, "outside-gate")
    assert (outside.env, outside.subject) == ("production", v2)
    assert outside.fix == f"releasegate gate {v2[:12]} --env production"
    assert "4 run(s)" in outside.evidence[0]
    (drift,) = by_check(result, "drifted-runs")
    assert drift.subject == v1 and drift.message.startswith("2 run(s) of")
    assert "model 'tests.release.fns:other'" in drift.evidence[0]
    assert drift.fix.startswith(f"releasegate register {project.root / 'v1.yaml'} ")
    assert by_check(result, "stale-gate") == [] and by_check(result, "models") == []

    # the same version gated for production is no longer outside the gate
    evaluate(store, v2, project.suite(), who="alice")
    assert gate(store, v2, "production", who="ci").verdict == "pass"
    assert by_check(review(store), "outside-gate") == []
    # runs before the period are not looked at
    assert (
        by_check(review(store, period=timedelta(seconds=1), at=_later(3600)), "drifted-runs") == []
    )


def test_review_finds_stale_gates_pauses_and_untested_alert_rules(
    store: Store, project: Project
) -> None:
    project.owners = {**project.owners, "care": "ops", "responders": ["oncall"]}
    v1 = shipped(store, project)
    (never,) = review(store, "router").findings
    assert (never.check, never.subject) == ("rehearsal", "never")
    assert never.fix == "releasegate rehearse router --env staging"
    rehearsed = rehearse(store, "router", "staging", who="oncall").rehearsal
    assert rehearsed.result in PROVEN
    assert review(store, "router").findings == ()  # every check passes
    # a rehearsal older than the period is stale
    (stale_rehearsal,) = review(
        store, "router", period=timedelta(days=1), at=_later(2 * 86400)
    ).findings
    assert stale_rehearsal.subject == rehearsed.rehearsal_id
    assert "last rehearsed 2 days ago" in stale_rehearsal.message

    evaluate(store, v1, project.suite(n=60), who="alice")  # the suite changed
    stale = by_check(review(store, "router"), "stale-gate")
    assert [(f.env, f.subject) for f in stale] == [("production", v1), ("staging", v1)]
    assert "older suite" in stale[0].message
    assert stale[0].fix == f"releasegate gate {v1[:12]} --env production"

    pause(store, "router", "production", reason="fraud wave", who="bob")
    (held,) = by_check(review(store, "router"), "paused")
    assert not held.needs_action and held.fix == "releasegate resume router --env production"


def test_an_alert_rule_is_tested_once_an_alert_of_it_reached_its_routes(
    store: Store, project: Project
) -> None:
    path = project.workflow("v1")
    text = path.read_text() + "monitor:\n  rules:\n    - {signal: error_rate, above: 0.2}\n"
    path.write_text(text)
    register(store, path, who="alice")
    (rule,) = by_check(review(store, "router"), "alert-tests")
    assert rule.subject == "error_rate" and "releasegate monitor router" in rule.fix
    with store.write() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO alerts (workflow, env, signal, severity, message, payload_json,"
                " routed_json, created_at, status, attempts) VALUES ('router', 'staging',"
                " 'error_rate', 'warning', 'm', '{}', '[\"terminal\"]', :at, :status, 1)"
            ),
            {"at": datetime.now(UTC), "status": "failed"},
        )
    assert by_check(review(store, "router"), "alert-tests")  # failed to send: not a test
    with store.write() as conn:
        conn.execute(sa.text("UPDATE alerts SET status = 'routed'"))
    assert by_check(review(store, "router"), "alert-tests") == []


def test_review_fix_collects_an_expired_experiment(store: Store, project: Project) -> None:
    path = project.workflow("exp", revision="x")
    path.write_text(path.read_text() + "experiments:\n  retention_days: 1\n")
    exp = register(store, path, experiment=True, who="alice").version_id
    evaluate(store, exp, project.suite(), who="alice")
    assert by_check(review(store), "experiments") == []  # not expired yet
    later = _later(2 * 86400)
    (found,) = by_check(review(store, at=later), "experiments")
    assert (found.subject, found.fixable, found.fix) == (exp, True, "releasegate gc router")
    assert "1-day retention" in found.evidence[0]

    fixed = review(store, at=later, fix=True, who="carol")
    assert by_check(fixed, "experiments") == []
    (line,) = fixed.fixed
    assert line.startswith(f"collected experiment {exp[:12]} of router")
    assert audit_kinds(store)[-1] == "experiment.collected"
    assert review(store, at=later, fix=True).fixed == ()  # nothing left to collect


def test_an_expired_experiment_that_serves_is_kept_as_gc_keeps_it(
    store: Store, project: Project
) -> None:
    path = project.workflow("exp", revision="x")
    path.write_text(path.read_text() + "experiments:\n  retention_days: 1\n")
    exp = register(store, path, experiment=True, who="alice").version_id
    evaluate(store, exp, project.suite(), who="alice")
    assert gate(store, exp, "staging", who="ci").verdict == "pass"
    promote(store, exp, "staging", who="alice")
    later = _later(2 * 86400)
    (found,) = by_check(review(store, at=later), "experiments")
    (listed,) = expired_experiments(store, now=later)  # what gc says, read its own way
    assert found.subject == listed.version_id == exp
    assert f"gc keeps it: it {listed.kept_because}" in found.evidence
    assert listed.kept_because == "serves router@staging" and not found.fixable
    assert review(store, at=later, fix=True).fixed == ()  # gc keeps it, and so does --fix


def test_a_version_gated_before_the_rules_tightened_is_a_data_class_violation(
    store: Store, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1 = shipped(store, project)
    assert by_check(review(store), "data-class") == []
    rules = project.root / "data-rules.yaml"
    rules.write_text("classes:\n  internal:\n    runtimes: [ollama]\n")
    monkeypatch.setenv("RELEASEGATE_DATA_RULES", str(rules))
    found = by_check(review(store), "data-class")
    assert [(f.env, f.subject) for f in found] == [("production", v1), ("staging", v1)]
    assert "model.provider: internal data would reach python model" in found[0].evidence[0]
    assert "data-rules.yaml:" in found[0].evidence[0]  # the rule, where it was written
    assert found[0].fix.startswith(f"releasegate register {project.root / 'v1.yaml'}")
    rules.write_text("classes: [not a mapping]\n")
    with pytest.raises(InputError, match="data-rules.yaml"):
        review(store)  # a bad rules file is bad input, nothing read


def test_a_policy_written_or_edited_by_sql_is_found(store: Store, project: Project) -> None:
    shipped(store, project)
    assert by_check(review(store), "policy-audit") == []
    with store.write() as conn:  # a floor lowered in the database, under the gate's feet
        row = conn.execute(
            sa.text("SELECT seq, content_json FROM policies WHERE env = 'production'")
        ).first()
        assert row is not None
        conn.execute(
            sa.text("UPDATE policies SET content_json = :c WHERE seq = :s"),
            {"c": row[1].replace('"accuracy":0.5', '"accuracy":0.1'), "s": row[0]},
        )
    (edited,) = by_check(review(store), "policy-audit")
    assert edited.env == "production" and "no longer hashes to its id" in edited.evidence[0]
    with store.write() as conn:  # a whole policy added by SQL, hashed like a real one
        content = {**json.loads(row[1]), "floors": {"accuracy": 0.2}}
        conn.execute(
            sa.insert(t.policies).values(
                policy_id=content_hash(content),
                workflow="router",
                env="staging",
                content_json=canonical_json(content),
                created_at=datetime.now(UTC),
            )  # fmt: skip
        )
    found = {f.env: f for f in by_check(review(store), "policy-audit")}
    assert "written outside releasegate" in found["staging"].evidence[0]


def test_review_of_an_unknown_workflow_is_bad_input(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no workflow 'nope'"):
        review(store, "nope")


def _later(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def audit_kinds(store: Store) -> list[str]:
    with store.read() as conn:
        return list(conn.execute(sa.text("SELECT kind FROM audit_events ORDER BY seq")).scalars())


def test_a_ratchet_is_proposed_approved_by_another_and_audited(
    store: Store, project: Project
) -> None:
    v1 = shipped(store, project)
    assert by_check(review(store), "ratchet") == []  # the floor is new
    # eight days on, with a one-day period: the 0.5 floor has stood, v1 has served a week
    later = _later(8 * 86400)
    found = {
        f.env: f for f in by_check(review(store, period=timedelta(days=1), at=later), "ratchet")
    }
    assert set(found) == {"staging", "production"}
    fix = found["production"].fix
    new = float(fix.split("--floor accuracy=")[1].split()[0])
    assert 0.5 < new <= 1.0

    before = current_policy_id(store)
    p = propose(store, "router", "production", {"accuracy": new}, reason="ratchet", who="alice")
    assert current_policy_id(store) == before  # nothing the gate reads changed yet
    written = audit_kinds(store)
    with pytest.raises(SelfApprovalError, match="nobody approves their own"):
        approve(store, p.proposal_id, who="alice")
    with pytest.raises(RefusedError, match="not an approver"):
        approve(store, p.proposal_id, who="mallory")
    assert audit_kinds(store) == written  # refusals write nothing
    done = approve(store, p.proposal_id[:8], who="bob", note="looks right")
    assert (done.state, done.approver, done.proposer) == ("approved", "bob", "alice")
    assert audit_kinds(store)[-3:] == ["policy.proposed", "policy.approved", "policy.changed"]
    with store.read() as conn:
        assert current_policy(conn, "router", "production").floors == {"accuracy": new}
        assert current_policy(conn, "router", "staging").floors == {"accuracy": 0.5}
    assert audit_verify(store).broken is None
    with pytest.raises(RefusedError, match="already approved"):
        approve(store, p.proposal_id, who="carol")

    (state,) = show(store, "router", "production")
    assert [h["floors"] for h in state.history] == [{"accuracy": 0.5}, {"accuracy": new}]
    assert state.proposals[0].proposal_id == p.proposal_id
    after = review(store, period=timedelta(days=1), at=later)
    assert {f.env for f in by_check(after, "ratchet")} == {"staging"}  # production was raised
    assert [f.env for f in by_check(after, "stale-gate")] == ["production"]  # gate it again
    assert gate(store, v1, "production", who="ci").verdict == "pass"


def test_two_approvers_at_once_make_one_policy_change(store: Store, project: Project) -> None:
    shipped(store, project)
    p = propose(store, "router", "production", {"accuracy": 0.6}, reason="raise", who="alice")
    start = threading.Barrier(2)
    won: list[str] = []
    refused: list[str] = []

    def approve_as(who: str) -> None:
        start.wait()
        try:
            won.append(approve(store, p.proposal_id, who=who).approver or "")
        except RefusedError as e:
            refused.append(str(e))

    threads = [threading.Thread(target=approve_as, args=(w,)) for w in ("bob", "carol")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(won) == 1 and len(refused) == 1, (won, refused)
    kinds = audit_kinds(store)
    assert kinds.count("policy.approved") == 1
    assert kinds.count("policy.changed") == 3  # staging and production registered, one approval
    (state,) = show(store, "router", "production")
    assert [h["floors"] for h in state.history] == [{"accuracy": 0.5}, {"accuracy": 0.6}]
    assert state.proposals[0].approver == won[0]
    assert audit_verify(store).broken is None


def test_registering_an_unchanged_file_keeps_an_approved_policy(
    store: Store, project: Project
) -> None:
    shipped(store, project)
    p = propose(store, "router", "production", {"accuracy": 0.9}, reason="ratchet", who="alice")
    approve(store, p.proposal_id, who="bob")
    approved = current_policy_id(store)
    # registering the unchanged file again keeps the approved policy, and says so
    again = register(store, project.root / "v1.yaml", who="alice")
    assert again.policies_changed == ()
    (kept,) = again.policies_kept
    assert f"proposal {p.proposal_id} replaced (approved by bob)" in kept
    assert current_policy_id(store) == approved
    # a second ratchet on top: the old file still does not undo either
    p2 = propose(store, "router", "production", {"accuracy": 1.0}, reason="more", who="carol")
    approve(store, p2.proposal_id, who="bob")
    assert register(store, project.root / "v1.yaml", who="alice").policies_kept
    with store.read() as conn:
        assert current_policy(conn, "router", "production").floors == {"accuracy": 1.0}
    # a file that says something else wins, audited as any file change is
    project.floors = {"accuracy": 0.55}
    changed = register(store, project.workflow("v1"), who="alice")
    assert changed.policies_changed == ("production", "staging") and not changed.policies_kept
    with store.read() as conn:
        assert current_policy(conn, "router", "production").floors == {"accuracy": 0.55}


def current_policy_id(store: Store) -> str:
    with store.read() as conn:
        return current_policy(conn, "router", "production").policy_id


def test_a_proposal_on_a_policy_that_changed_since_is_refused(
    store: Store, project: Project
) -> None:
    shipped(store, project)
    first = propose(store, "router", "production", {"accuracy": 0.6}, reason="a", who="alice")
    second = propose(store, "router", "production", {"accuracy": 0.7}, reason="b", who="carol")
    approve(store, first.proposal_id, who="bob")
    with pytest.raises(RefusedError, match="changed since"):
        approve(store, second.proposal_id, who="bob")


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (("router", "production", {"accuracy": 0.5}, " "), InputError, "needs a reason"),
        (("router", "nowhere", {"accuracy": 0.6}, "r"), InputError, "no environment"),
        (("nope", "production", {"accuracy": 0.6}, "r"), NotFoundError, "no workflow"),
        (("router", "production", {"accuracy": 0.5}, "r"), RefusedError, "nothing to propose"),
    ],
)
def test_bad_proposals_write_nothing(
    store: Store, project: Project, args: tuple[Any, ...], error: type[Exception], match: str
) -> None:
    register(store, project.workflow("v1"), who="alice")
    written = audit_kinds(store)
    workflow, env, floors, reason = args
    with pytest.raises(error, match=match):
        propose(store, workflow, env, floors, reason=reason, who="alice")
    assert audit_kinds(store) == written
    with pytest.raises(NotFoundError, match="no policy proposal"):
        approve(store, "feedfacefeed", who="bob")


def test_a_floor_on_a_metric_nothing_measured_and_a_short_proposal_id_are_said(
    store: Store, project: Project
) -> None:
    # approved, a typo would fail every gate after: "the suite has no metric 'acuracy'"
    shipped(store, project)
    written = audit_kinds(store)
    with pytest.raises(InputError, match="no metric 'acuracy' in the evals of") as bad:
        propose(store, "router", "production", {"acuracy": 0.6}, reason="r", who="alice")
    assert bad.value.hint is not None and "accuracy" in bad.value.hint
    assert audit_kinds(store) == written
    p = propose(store, "router", "production", {"accuracy": 0.6}, reason="r", who="alice")
    written = audit_kinds(store)
    with pytest.raises(RefusedError, match=f"proposal {p.proposal_id} \\(by alice\\) already"):
        propose(store, "router", "production", {"accuracy": 0.6}, reason="again", who="carol")
    assert audit_kinds(store) == written  # one open proposal per change
    # a real proposal's first 4 characters: too short to be looked up, and said so
    with pytest.raises(NotFoundError, match=r"\(give at least 6 characters of its id\)"):
        approve(store, p.proposal_id[:4], who="bob")


def test_a_canary_started_with_approvals_ran_inside_the_loop(
    store: Store, project: Project
) -> None:
    """High stakes: the gate says needs-approval, the approvals admit the version, a rollout
    starts; its canary runs are through the loop for review and for the monitor's alert."""
    from releasegate.monitor.alerts import gated
    from releasegate.release.promote import approve as sign
    from releasegate.release.rollout import start

    project.stakes = "high"
    project.owners = {**project.owners, "approvers": ["bob", "carol"]}
    v1 = register(store, project.workflow("v1"), who="alice").version_id
    evaluate(store, v1, project.suite(), who="alice")
    for env in ("staging", "production"):
        gate(store, v1, env, who="ci")
        sign(store, v1, env, approver="bob")
        sign(store, v1, env, approver="dana")  # a first release: the business approver too
        promote(store, v1, env, who="alice")
    v2 = register(store, project.workflow("v2", revision="2"), who="alice").version_id
    evaluate(store, v2, project.suite(), who="alice")
    assert gate(store, v2, "production", who="ci").verdict == "needs-approval"
    record(store, v2, 3)  # before any approval: outside the gate
    assert [f.subject for f in by_check(review(store), "outside-gate")] == [v2]
    sign(store, v2, "production", approver="carol")
    sign(store, v2, "production", approver="dana")
    start(store, v2, "production", canary_pct=10, who="alice")
    assert by_check(review(store), "outside-gate") == []
    with store.read() as conn:
        assert gated(conn, "router", "production", v2)
        assert not gated(conn, "router", "staging", v2)  # a rollout admits its own env only


def test_a_new_rollout_ramp_does_not_make_the_gate_stale(store: Store, project: Project) -> None:
    shipped(store, project)
    gated = {"floors": project.floors, "max_regression": {"metric": "accuracy", "margin": 0.1}}
    ramp = {**gated, "rollout": {"steps": [25, 50, 100]}}
    register(store, project.workflow("v1", policy=ramp), who="alice")  # the policy changed
    assert by_check(review(store), "stale-gate") == []  # ...but not what the gate reads
    raised = {**ramp, "floors": {"accuracy": 0.6}}
    register(store, project.workflow("v1", policy=raised), who="alice")
    assert {f.env for f in by_check(review(store), "stale-gate")} == {"staging", "production"}
