"""The gate report type: JSON round trip, the published schema, and reports stored earlier."""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from releasegate.domain.decision import Approval, Check, MustPassFailure, Status, Verdict
from releasegate.domain.gate_report import (
    SCHEMA_PATH,
    SCHEMA_VERSION,
    ApprovalsInfo,
    BaselineInfo,
    Budgets,
    ChangeInfo,
    EvalInfo,
    FlakyCase,
    GateReport,
    MetricRow,
    ModelInfo,
    MustPassInfo,
    PolicyInfo,
    SuiteInfo,
    VersionInfo,
)
from releasegate.domain.policy import ApprovalNeed
from releasegate.domain.stats import Interval, PairedComparison
from releasegate.errors import InputError

REPO = Path(__file__).resolve().parents[2]
CAND, BASE = "c" * 64, "b" * 64


def schema() -> dict[str, Any]:
    return json.loads((REPO / SCHEMA_PATH).read_text())  # type: ignore[no-any-return]


def validate(report_json: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema())
    jsonschema.Draft202012Validator(schema()).validate(report_json)


def a_report() -> GateReport:
    return GateReport(
        decision_id="d" * 32,
        created_at=datetime(2026, 12, 3, 10, 15, 0, 123456, tzinfo=UTC),
        workflow="router",
        env="production",
        stakes="high",
        verdict=Verdict.NEEDS_APPROVAL,
        reasons=("missing the business approver",),
        checks=(
            Check("pinned", Status.OK, "python model 'fns:route' is pinned by revision 1"),
            Check("must-pass", Status.OK, "all 2 must-pass cases passed"),
            Check("approvals", Status.HOLD, "needs 1 named approver(s) and the business approver"),
        ),
        version=VersionInfo(CAND, "alice", "shorter prompt", BASE, "release", "2026-12-03T10:00"),
        baseline=BaselineInfo(BASE, None, "first"),
        suite=SuiteInfo("s" * 64, "router-core", 80),
        evaluation=EvalInfo(
            "ev-1",
            2,
            clusters=None,
            epoch_advice={"accuracy": {"epochs": 7, "text": "run 7 epochs"}},
            flaky=(FlakyCase("c7", 1, 2, (1, 0)), FlakyCase("legacy-id")),
            flaky_total=2,
        ),
        policy=PolicyInfo("p" * 64, {"must_pass": True, "budgets": {"latency_p95_ms": 250.0}}),
        model=ModelInfo("python", "fns:route", None, "1", True),
        change=ChangeInfo("wording", False, ("wording",), ("-old", "+new")),
        metrics=(
            MetricRow(
                "accuracy",
                Interval(0.9, 0.85, 0.95, 0.02, 80, "wilson"),
                Interval(0.88, 0.8, 0.93, 0.03, 80, "wilson"),
                PairedComparison(0.02, -0.01, 0.05, 0.015, 0.04, 80, "mcnemar", 0.2, 1, 3),
                0.8,
            ),
            MetricRow("macro_f1", Interval(0.7, 0.6, 0.8, 0.05, 80, "bootstrap")),
        ),
        must_pass=MustPassInfo(
            2, (MustPassFailure("x1", {"text": "hi"}, "fraud", "card_lost", "wrong", 2),)
        ),
        budgets=Budgets(12.5, None),
        approvals=ApprovalsInfo(ApprovalNeed(1, True), (Approval("bob", "approver"),)),
    )


def test_type_to_json_to_type_is_the_same_report() -> None:
    report = a_report()
    as_json = report.to_json()
    assert GateReport.from_json(json.loads(json.dumps(as_json))) == report
    assert as_json["schema_version"] == SCHEMA_VERSION == 1
    validate(as_json)


def test_a_first_release_on_hold_round_trips_and_validates() -> None:
    report = GateReport(
        decision_id="e" * 32,
        created_at=datetime(2026, 12, 3, tzinfo=UTC),
        workflow="router",
        env="staging",
        stakes="low",
        verdict=Verdict.HOLD,
        reasons=("evaluation: no suite",),
        checks=(Check("evaluation", Status.HOLD, "no suite"),),
        version=VersionInfo(CAND),
        baseline=None,
        suite=None,
        evaluation=None,
        policy=PolicyInfo("p" * 64, {}),
        model=None,
        change=ChangeInfo("model", True),
    )
    assert GateReport.from_json(report.to_json()) == report
    validate(report.to_json())


def test_a_comparison_whose_se_is_not_finite_is_published_as_null() -> None:
    report = a_report()
    row = report.metrics[0]
    assert row.comparison is not None
    inf = PairedComparison(0.0, -0.1, 0.1, math.inf, 0.1, 80, "paired-bootstrap", 1.0, 0, 0)
    odd = GateReport(**{**report.__dict__, "metrics": (MetricRow("m", row.candidate, None, inf),)})
    published = odd.to_json()["metrics"][0]["comparison"]
    assert published["se"] is None
    validate(odd.to_json())
    assert math.isnan(GateReport.from_json(odd.to_json()).metrics[0].comparison.se)  # type: ignore[union-attr]


# What `gate` stored before the type existed (release of 2026-12-03): no schema_version, no
# comparison se. Users' stores hold reports like this one, and they must keep loading.
STORED_BEFORE_THE_TYPE: dict[str, Any] = {
    "decision_id": "0d1e2c3a4b5c6d7e8f9001122334455a",
    "created_at": "2026-12-01T10:15:00.123456+00:00",
    "workflow": "router",
    "env": "staging",
    "stakes": "high",
    "verdict": "pass",
    "reasons": ["every check passed"],
    "checks": [
        {"name": "pinned", "status": "ok", "detail": "pinned by revision 1"},
        {"name": "floor accuracy", "status": "ok", "detail": "0.900 >= floor 0.500"},
    ],
    "version": {
        "id": CAND,
        "owner": "alice",
        "reason": "v2",
        "parent_id": None,
        "track": "release",
        "created_at": "2026-12-01T10:00:00+00:00",
    },
    "baseline": {"id": BASE, "owner": "alice", "reason": "v1"},
    "suite": {"id": "s" * 64, "name": "router-core", "cases": 80},
    "eval": {
        "eval_id": "ev-9",
        "epochs": 1,
        "clusters": None,
        "epoch_advice": {},
        "flaky": [],
        "flaky_total": 0,
    },
    "policy": {
        "id": "p" * 64,
        "workflow": "router",
        "env": "staging",
        "floors": {"accuracy": 0.5},
        "must_pass": True,
        "max_regression": [{"metric": "accuracy", "margin": 0.05}],
        "budgets": {"latency_p95_ms": None, "cost_per_case_usd": None},
        "approvals": {"required": None, "business_for": ["model", "tools"]},
    },
    "model": {
        "runtime": "python",
        "name": "fns:route",
        "digest": None,
        "revision": "1",
        "pinned": True,
    },
    "change": {"class": "config", "first_release": False, "classes": ["config"], "diff": []},
    "metrics": [
        {
            "name": "accuracy",
            "candidate": {
                "estimate": 0.9,
                "low": 0.81,
                "high": 0.95,
                "se": 0.03,
                "n": 80,
                "method": "wilson",
            },
            "baseline": {
                "estimate": 0.9,
                "low": 0.81,
                "high": 0.95,
                "se": 0.03,
                "n": 80,
                "method": "wilson",
            },
            "comparison": {
                "delta": 0.0,
                "low": -0.02,
                "high": 0.02,
                "mde": 0.03,
                "n": 80,
                "method": "mcnemar",
                "p_value": 1.0,
                "worse": 0,
                "better": 0,
            },
            "floor": 0.5,
        }
    ],
    "must_pass": {
        "total": 1,
        "failures": [
            {
                "case_id": "x1",
                "input": "lost my card",
                "expected": "card_lost",
                "output": "fraud",
                "detail": "accuracy: predicted 'fraud'",
                "epochs_failed": 1,
            }
        ],
    },
    "budgets": {"latency_p95_ms": 0.01, "cost_per_case_usd": 0.0},
    "approvals": {
        "needed": {"named": 1, "business": False},
        "given": [{"approver": "bob", "role": "approver"}],
    },
}


def test_a_report_stored_before_the_type_loads_and_publishes_as_version_1() -> None:
    stored = copy.deepcopy(STORED_BEFORE_THE_TYPE)
    report = GateReport.from_json(stored)
    assert stored == STORED_BEFORE_THE_TYPE  # reading never changes the stored dict
    assert report.verdict is Verdict.PASS and report.checks_passed
    assert report.version_id == CAND and report.baseline_id == BASE
    assert report.policy.policy_id == "p" * 64 and report.is_must_pass_enforced
    comparison = report.metrics[0].comparison
    assert comparison is not None and comparison.method == "mcnemar"
    assert math.isnan(comparison.se)  # not recorded then
    assert report.must_pass is not None and report.must_pass.failures[0].epochs_failed == 1
    published = report.to_json()
    validate(published)
    expected = copy.deepcopy(STORED_BEFORE_THE_TYPE)
    expected["schema_version"] = 1
    expected["metrics"][0]["comparison"]["se"] = None
    assert published == expected  # nothing else is lost or renamed


def test_the_oldest_reports_load_with_defaults() -> None:
    """The first releases wrote no model, no eval precision, no epochs_failed, bare flaky ids."""
    oldest = copy.deepcopy(STORED_BEFORE_THE_TYPE)
    del oldest["model"]
    oldest["eval"] = {"eval_id": "ev-1", "epochs": 2, "flaky": ["c3"]}
    del oldest["must_pass"]["failures"][0]["epochs_failed"]
    report = GateReport.from_json(oldest)
    assert report.model is None
    assert report.evaluation == EvalInfo("ev-1", 2, flaky=(FlakyCase("c3"),), flaky_total=1)
    assert report.must_pass is not None and report.must_pass.failures[0].epochs_failed is None
    validate(report.to_json())
    assert GateReport.from_json(report.to_json()) == report


def test_a_report_from_a_newer_release_is_refused_with_the_upgrade() -> None:
    newer = {**STORED_BEFORE_THE_TYPE, "schema_version": SCHEMA_VERSION + 1}
    with pytest.raises(InputError, match="schema version 2; this releasegate reads up to 1") as e:
        GateReport.from_json(newer)
    assert "upgrade releasegate" in (e.value.hint or "")


def test_the_schema_refuses_what_the_type_never_writes() -> None:
    published = a_report().to_json()
    for broken in (
        {**published, "verdict": "maybe"},
        {**published, "surprise": 1},
        {k: v for k, v in published.items() if k != "policy"},
        {**published, "schema_version": 2},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)
