"""The review's checks as pure functions over tables of facts: no store, no I/O."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from releasegate.domain.data_class import DataRules
from releasegate.domain.identity import content_hash
from releasegate.domain.pinning import BlessedModel
from releasegate.domain.policy import Policy, gate_rules_id
from releasegate.domain.review import (
    CHECKS,
    AlertRuleFacts,
    Expired,
    Finding,
    LastRehearsal,
    Paused,
    Reported,
    Review,
    RunningData,
    RunningModel,
    Seen,
    Serving,
    StoredPolicy,
    WorkflowOwners,
    admitted,
    alert_tests,
    data_class_violations,
    expired,
    missing_owners,
    model_problems,
    ordered,
    outside_gate,
    parse_period,
    paused,
    prompt_digests,
    rehearsals,
    reported_drift,
    stale_gates,
    unaudited_policies,
)
from releasegate.errors import InputError

V, W = "a" * 64, "b" * 64
AT = datetime(2026, 6, 1, tzinfo=UTC)
MANIFEST: dict[str, Any] = {
    "workflow": "router",
    "model": {"provider": "openai", "name": "gpt-4o-2024-08-06"},
    "prompts": {"system": "Route it.", "templates": {"input": "Message: {input}"}},
}


def seen(version_id: str = V, env: str = "production", registered: bool = True) -> Seen:
    return Seen("router", env, version_id, 7, AT, AT + timedelta(hours=1), registered)


@pytest.mark.parametrize(
    ("moved", "verdicts", "registered", "expected_fix"),
    [
        ({("router", "production", V)}, {}, True, None),  # promoted there: fine
        (set(), {("router", "production", V): "pass"}, True, None),  # a canary: passed there
        (set(), {}, True, f"releasegate gate {V[:12]} --env production"),
        (set(), {("router", "production", V): "fail"}, True, "releasegate gate"),
        (set(), {("router", "production", V): "needs-approval"}, True, "releasegate gate"),
        ({("router", "staging", V)}, {("router", "staging", V): "pass"}, True, "gate"),
        (set(), {}, False, "releasegate resolve router --env production"),
    ],
)
def test_outside_gate(
    moved: set[Any], verdicts: dict[Any, str], registered: bool, expected_fix: str | None
) -> None:
    found = outside_gate([seen(registered=registered)], admitted(moved, verdicts))
    if expected_fix is None:
        assert found == []
        return
    (f,) = found
    assert (f.check, f.workflow, f.env, f.subject) == ("outside-gate", "router", "production", V)
    assert expected_fix in f.fix and f.needs_action
    assert any("7 run(s)" in e for e in f.evidence)
    assert ("not registered" in " ".join(f.evidence)) is (not registered)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(
    ("model", "provider", "digest", "drifted"),
    [
        (None, None, None, ()),
        ("gpt-4o-2024-08-06", "openai", None, ()),
        ("gpt-4o", None, None, ("model",)),  # the alias is not the pinned snapshot
        ("gpt-4o-2024-08-06", "anthropic", None, ("provider",)),
        (None, None, "sha256:" + content_hash(MANIFEST["prompts"]), ()),
        (None, None, _sha("Route it."), ()),  # the system prompt's own text
        (None, None, _sha("Message: {input}")[:12], ()),  # a template, by a 12-digit prefix
        (None, None, _sha("Route it!"), ("prompt digest",)),
        (None, None, _sha("Route it.")[:8], ("prompt digest",)),  # too short to say
        ("gpt-4o", "anthropic", _sha("x"), ("model", "prompt digest", "provider")),
    ],
)
def test_reported_drift(
    model: str | None, provider: str | None, digest: str | None, drifted: tuple[str, ...]
) -> None:
    runs = [Reported("router", "production", V, model, provider, digest, 5, "run-1")]
    found = reported_drift(runs, {V: MANIFEST}, {V: "/p/router.yaml"})
    if not drifted:
        assert found == []
        return
    (f,) = found
    assert f.check == "drifted-runs" and f.subject == V
    assert f.fix.startswith("releasegate register /p/router.yaml ")
    for what in drifted:
        assert what in f.message
        assert any(f"reported {what} " in e and "run-1" in e for e in f.evidence)
    assert len([e for e in f.evidence if "reported" in e]) == len(drifted)


def test_drift_counts_runs_once_and_skips_unregistered_versions() -> None:
    runs = [
        Reported("router", "production", V, "gpt-4o", "anthropic", None, 5, "r1"),
        Reported("router", "production", V, "gpt-4o", None, None, 2, "r2"),
        Reported("router", "production", W, "gpt-4o", None, None, 9, "r3"),  # not registered
    ]
    (f,) = reported_drift(runs, {V: MANIFEST})
    assert f.message.startswith("7 run(s) of")
    assert "WORKFLOW_FILE" in f.fix  # no origin known


def test_a_local_model_is_compared_by_its_ollama_tag() -> None:
    manifest = {"model": {"provider": "openai", "runtime": "ollama", "name": "qwen2.5"}}
    ok = Reported("router", "staging", V, "qwen2.5:latest", "ollama", None, 1, "r")
    bad = ok._replace(model="qwen2.5:7b")
    assert reported_drift([ok], {V: manifest}) == []
    assert len(reported_drift([bad], {V: manifest})) == 1


def test_prompt_digests_cover_section_system_and_templates() -> None:
    assert prompt_digests(MANIFEST) == {
        content_hash(MANIFEST["prompts"]),
        _sha("Route it."),
        _sha("Message: {input}"),
    }
    assert prompt_digests({"model": {}}) == {content_hash({})}


@pytest.mark.parametrize(
    ("decision", "suite", "policy", "stale"),
    [
        (("d1", "s1", "p1"), "s1", "p1", None),
        (("d1", "s0", "p1"), "s1", "p1", "suite"),
        (("d1", "s1", "p0"), "s1", "p1", "policy"),
        (("d1", "s0", "p0"), "s1", "p1", "suite and policy"),
        ((None, None, None), "s1", "p1", "no passing gate decision"),
        (("d1", "s1", "p1"), None, "p1", None),  # no suite on record: nothing to be stale on
    ],
)
def test_stale_gates(
    decision: tuple[Any, Any, Any], suite: str | None, policy: str, stale: str | None
) -> None:
    found = stale_gates([Serving("router", "production", V, *decision, suite, policy)])
    if stale is None:
        assert found == []
        return
    (f,) = found
    assert stale in f.message
    assert f.fix == f"releasegate gate {V[:12]} --env production"


@pytest.mark.parametrize(
    ("owners", "missing"),
    [
        ({"change": "alice", "care": "ops", "responders": ["oncall"]}, ()),
        ({"change": "alice", "care": "ops", "responders": []}, ("responders",)),
        ({"change": "alice"}, ("care owner", "responders")),
        ({}, ("change owner", "care owner", "responders")),
        ({"change": None, "care": "ops", "responders": ["x"]}, ("change owner",)),
    ],
)
def test_missing_owners(owners: dict[str, Any], missing: tuple[str, ...]) -> None:
    found = missing_owners([WorkflowOwners("router", owners)])
    if not missing:
        assert found == []
        return
    (f,) = found
    for word in missing:
        assert word in f.message
    assert f.env is None and f.fix.startswith("releasegate register")


POLICY = Policy(workflow="router", env="production")


@pytest.mark.parametrize(
    ("model", "blessed", "problems"),
    [
        ({"provider": "openai", "name": "gpt-4o-2024-08-06"}, None, ()),
        ({"provider": "openai", "name": "gpt-4o"}, None, ("unpinned",)),
        (
            {"provider": "openai", "name": "gpt-4o-2024-08-06"},
            (BlessedModel("hosted", "gpt-4o-2024-08-06"),),
            (),
        ),
        (
            {"provider": "openai", "name": "gpt-4o-2024-08-06"},
            (BlessedModel("hosted", "gpt-4o-mini-2024-07-18"),),
            ("unblessed",),
        ),
        ({"provider": "openai", "name": "gpt-4o"}, (), ("unblessed", "unpinned")),
    ],
)
def test_model_problems(
    model: dict[str, Any], blessed: tuple[BlessedModel, ...] | None, problems: tuple[str, ...]
) -> None:
    policy = Policy(workflow="router", env="production", blessed=blessed)
    found = model_problems([RunningModel("router", "production", V, {"model": model}, policy)])
    assert sorted(f.subject.split(":")[1] for f in found) == sorted(problems)
    for f in found:
        if f.subject.endswith("unblessed"):
            assert f.fix == "releasegate rollback router --env production"


def test_alert_rules_count_as_tested_once_delivered() -> None:
    rules = [
        AlertRuleFacts("router", "error_rate", 2, ("staging", "production")),
        AlertRuleFacts("router", "latency_p95", 0, ("staging", "production")),
    ]
    (f,) = alert_tests(rules)
    assert (f.subject, f.check) == ("latency_p95", "alert-tests")
    assert f.fix.startswith("releasegate monitor router --env staging")


def test_a_pause_is_shown_and_needs_no_action() -> None:
    (f,) = paused([Paused("router", "production", V, "fraud wave", "bob", AT)])
    assert not f.needs_action and f.fix == "releasegate resume router --env production"
    assert "fraud wave" in f.evidence[0] and "bob" in f.evidence[0]
    review = Review(("router",), timedelta(days=90), AT, (f,))
    assert not review.needs_action and review.as_dict()["ok"] is True


def test_review_json_shape_and_order() -> None:
    a = Finding("ratchet", "router", "production", "accuracy", "m", "fix")
    b = Finding("outside-gate", "router", "production", V, "m", "fix", ("e",))
    review = Review(("router",), timedelta(days=30), AT, tuple(ordered([a, b])))
    data = review.as_dict()
    assert [f["check"] for f in data["findings"]] == ["outside-gate", "ratchet"]
    assert data["needs_action"] is True and data["ok"] is False
    assert data["period_days"] == 30 and data["checks"] == list(CHECKS)
    assert data["by_check"]["outside-gate"] == 1 and data["by_check"]["owners"] == 0
    assert set(data["findings"][0]) == {
        "check", "workflow", "env", "subject", "message", "evidence", "fix", "needs_action",
        "fixable",
    }  # fmt: skip


@pytest.mark.parametrize(("text", "days"), [(None, 90), ("30d", 30), ("2w", 14), ("12h", 0.5)])
def test_parse_period(text: str | None, days: float) -> None:
    assert parse_period(text) == timedelta(days=days)


# past 100 years "now - period" leaves the calendar: an OverflowError, exit 70, before
@pytest.mark.parametrize("text", ["", "90", "soon", "-3d", "0d", "999999d", "99999999999d"])
def test_a_bad_period_is_bad_input(text: str) -> None:
    with pytest.raises(InputError, match="--period"):
        parse_period(text)


@pytest.mark.parametrize(
    ("last", "finding"),
    [
        (LastRehearsal("router", "staging"), "was never rehearsed"),
        (
            LastRehearsal("router", "staging", "r1", "staging", "passed", AT - timedelta(days=5)),
            None,
        ),
        (
            LastRehearsal(
                "router", "staging", "r1", "staging", "suite-too-weak", AT - timedelta(days=5), 0.6
            ),
            None,
        ),
        (
            LastRehearsal("router", "staging", "r1", "staging", "passed", AT - timedelta(days=100)),
            "last rehearsed 100 days ago, over the 90-day period",
        ),
        (
            LastRehearsal(
                "router", "staging", "r1", "staging", "not-restored", AT - timedelta(days=1)
            ),
            "did not restore the original (not-restored)",
        ),
        (
            LastRehearsal(
                "router", "staging", "r1", "staging", "interrupted", AT - timedelta(days=1)
            ),
            "(interrupted)",
        ),
    ],
)
def test_rehearsals(last: LastRehearsal, finding: str | None) -> None:
    found = rehearsals([last], period=timedelta(days=90), at=AT)
    if finding is None:
        assert found == []
        return
    (f,) = found
    assert finding in f.message and f.check == "rehearsal" and f.needs_action
    assert f.fix == "releasegate rehearse router --env staging"


def test_a_stale_rehearsal_says_what_its_suite_caught() -> None:
    last = LastRehearsal(
        "router", "staging", "r1", "staging", "suite-too-weak", AT - timedelta(days=91), 0.75
    )
    (f,) = rehearsals([last], period=timedelta(days=90), at=AT)
    assert "caught 75% of the gated mutations" in f.evidence[1]


@pytest.mark.parametrize(("kept", "fixable"), [(None, True), ("serves router@staging", False)])
def test_expired_experiments(kept: str | None, fixable: bool) -> None:
    (f,) = expired([Expired("router", V, AT, 14, 80, 160, kept)])
    assert (f.check, f.subject, f.fix, f.fixable) == (
        "experiments",
        V,
        "releasegate gc router",
        fixable,
    )
    assert "14-day retention" in f.evidence[0] and "80 output(s)" in f.evidence[0]
    assert (kept is not None) is any(
        "gc keeps it: it serves router@staging" in e for e in f.evidence
    )


@pytest.mark.parametrize(
    ("model", "data_class", "fields"),
    [
        ({"provider": "openai", "name": "gpt-4o-2024-08-06"}, "internal", ()),
        ({"provider": "openai", "name": "gpt-4o-2024-08-06"}, "confidential", ("model.base_url",)),
        (
            {"provider": "openai", "name": "q", "base_url": "http://127.0.0.1:8000/v1"},
            "restricted",
            (),
        ),
        ({"provider": "python", "name": "m:f"}, "restricted", ()),
    ],
)
def test_data_class_violations(
    model: dict[str, Any], data_class: str, fields: tuple[str, ...]
) -> None:
    running = [RunningData("router", "production", V, {"model": model}, data_class)]
    found = data_class_violations(running, DataRules(), {V: "/p/router.yaml"})
    if not fields:
        assert found == []
        return
    (f,) = found
    assert (f.check, f.env, f.subject) == ("data-class", "production", V)
    assert f.fix.startswith("releasegate register /p/router.yaml")
    assert [e.split(":")[0] for e in f.evidence] == list(fields)
    assert "data rule 'confidential: local runtimes only'" in f.evidence[0]


@pytest.mark.parametrize(
    ("content_id", "recorded", "problem"),
    [
        ("p1", "p1", None),
        ("p1", "p0", "the audit log last recorded p0 there"),
        ("p1", None, "the audit log last recorded no policy there"),
        ("px", "p1", "its content no longer hashes to its id"),
    ],
)
def test_unaudited_policies(content_id: str, recorded: str | None, problem: str | None) -> None:
    found = unaudited_policies([StoredPolicy("router", "production", "p1", content_id, recorded)])
    if problem is None:
        assert found == []
        return
    (f,) = found
    assert problem in f.evidence[0] and f.fix == "releasegate audit verify"
    assert (f.check, f.env, f.subject) == ("policy-audit", "production", "p1")


def test_a_policy_change_the_gate_never_reads_leaves_the_decision_standing() -> None:
    base = {"workflow": "router", "env": "production", "floors": {"accuracy": 0.7}}
    ramped = {**base, "rollout": {"steps": [25, 50, 100]}}
    raised = {**base, "floors": {"accuracy": 0.8}}
    assert gate_rules_id(ramped) == gate_rules_id(base) != gate_rules_id(raised)
    decided = ("d1", "s1", "p-old")

    def serving(now: dict[str, Any]) -> Serving:
        return Serving(
            "router", "production", V, *decided, "s1", "p-new", gate_rules_id(base),
            gate_rules_id(now),
        )  # fmt: skip

    assert stale_gates([serving(ramped)]) == []  # only the ramp changed
    (f,) = stale_gates([serving(raised)])
    assert "older policy" in f.message
    unknown = Serving("router", "production", V, *decided, "s1", "p-new")
    assert len(stale_gates([unknown])) == 1  # rules unknown: the ids decide, as before
