"""The gate report: one decision and its evidence, as a frozen type with a published JSON shape.

``release.gate.gate`` builds a ``GateReport`` with every decision and stores
``to_json()``; promote, ``report gate`` and the renderers read it back with
``from_json``. The JSON shape is published as ``docs/schema/gate-report.v1.json``
and named by ``schema_version``. Reports stored before that field existed load as
version 1, and keys that older releases did not write yet (``model``, the eval's
epoch advice and flaky cases, a comparison's ``se``, a must-pass failure's
``epochs_failed``) take empty defaults. A report from a newer release is refused
with the upgrade to make, never half-read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from releasegate.domain.decision import (
    Approval,
    Check,
    MustPassFailure,
    Status,
    Verdict,
)
from releasegate.domain.policy import ApprovalNeed
from releasegate.domain.stats import Interval, PairedComparison
from releasegate.errors import InputError

SCHEMA_VERSION = 1
SCHEMA_PATH = "docs/schema/gate-report.v1.json"


@dataclass(frozen=True)
class VersionInfo:
    """The candidate version as the gate saw it."""

    version_id: str
    owner: str | None = None
    reason: str = ""
    parent_id: str | None = None
    track: str = "release"
    created_at: str | None = None


@dataclass(frozen=True)
class BaselineInfo:
    """What ran in the environment when the gate compared against it."""

    version_id: str
    owner: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class SuiteInfo:
    suite_id: str
    name: str
    cases: int


@dataclass(frozen=True)
class FlakyCase:
    """A case that passed in some epochs and failed in others (older reports: the id only)."""

    case_id: str
    passed: int | None = None
    epochs: int | None = None
    per_epoch: tuple[int, ...] = ()


@dataclass(frozen=True)
class EvalInfo:
    """The candidate's eval the gate read, with what it says about its own precision."""

    eval_id: str
    epochs: int
    clusters: int | None = None
    epoch_advice: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    flaky: tuple[FlakyCase, ...] = ()
    flaky_total: int = 0

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> EvalInfo:
        """The report's ``eval`` object (also built from an eval's stored summary)."""
        flaky = tuple(_flaky_from(f) for f in d.get("flaky") or ())
        clusters = d.get("clusters")
        return cls(
            eval_id=str(d.get("eval_id", "")),
            epochs=int(d.get("epochs", 1)),
            clusters=None if clusters is None else int(clusters),
            epoch_advice={str(k): dict(v) for k, v in (d.get("epoch_advice") or {}).items()},
            flaky=flaky,
            flaky_total=int(d.get("flaky_total") or len(flaky)),
        )


@dataclass(frozen=True)
class PolicyInfo:
    """The policy applied: its id and its content as hashed (``domain.policy.Policy.content``)."""

    policy_id: str
    content: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_must_pass_enforced(self) -> bool:
        return bool(self.content.get("must_pass", True))

    def budget(self, name: str) -> float | None:
        value = (self.content.get("budgets") or {}).get(name)
        return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class ModelInfo:
    runtime: str
    name: str
    digest: str | None = None
    revision: str | None = None
    pinned: bool = False


@dataclass(frozen=True)
class ChangeInfo:
    """The manifest diff against the baseline: its change class and the diff lines."""

    change_class: str | None
    first_release: bool
    classes: tuple[str, ...] = ()
    diff: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricRow:
    """One metric: candidate and baseline intervals, their paired comparison, the floor."""

    name: str
    candidate: Interval | None = None
    baseline: Interval | None = None
    comparison: PairedComparison | None = None
    floor: float | None = None


@dataclass(frozen=True)
class MustPassInfo:
    total: int
    failures: tuple[MustPassFailure, ...] = ()

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> MustPassInfo:
        """The report's ``must_pass`` object, which is also how an eval's summary lists them."""
        return cls(int(d.get("total", 0)), tuple(_failure_from(f) for f in d.get("failures") or ()))


@dataclass(frozen=True)
class Budgets:
    """What the candidate's eval measured against the policy's budgets."""

    latency_p95_ms: float | None = None
    cost_per_case_usd: float | None = None


@dataclass(frozen=True)
class ApprovalsInfo:
    needed: ApprovalNeed
    given: tuple[Approval, ...] = ()


@dataclass(frozen=True)
class GateReport:
    """One gate decision with everything it was decided on (see the module docstring)."""

    decision_id: str
    created_at: datetime
    workflow: str
    env: str
    stakes: str
    verdict: Verdict
    reasons: tuple[str, ...]
    checks: tuple[Check, ...]
    version: VersionInfo
    baseline: BaselineInfo | None
    suite: SuiteInfo | None
    evaluation: EvalInfo | None
    policy: PolicyInfo
    model: ModelInfo | None
    change: ChangeInfo
    metrics: tuple[MetricRow, ...] = ()
    must_pass: MustPassInfo | None = None
    budgets: Budgets | None = None
    approvals: ApprovalsInfo = ApprovalsInfo(ApprovalNeed(0, False))
    schema_version: int = SCHEMA_VERSION

    @property
    def version_id(self) -> str:
        return self.version.version_id

    @property
    def baseline_id(self) -> str | None:
        return None if self.baseline is None else self.baseline.version_id

    @property
    def checks_passed(self) -> bool:
        """Evidence cleared every check; only approvals may be missing."""
        return self.verdict in (Verdict.PASS, Verdict.NEEDS_APPROVAL)

    @property
    def is_must_pass_enforced(self) -> bool:
        """Whether the policy gates on must-pass cases (``must_pass: false`` lets it pass)."""
        return self.policy.is_must_pass_enforced

    def to_json(self) -> dict[str, Any]:
        """The published shape (``docs/schema/gate-report.v1.json``): plain JSON values."""
        ev, mp, b = self.evaluation, self.must_pass, self.budgets
        return {
            "schema_version": self.schema_version,
            "decision_id": self.decision_id,
            "created_at": self.created_at.isoformat(),
            "workflow": self.workflow,
            "env": self.env,
            "stakes": self.stakes,
            "verdict": self.verdict.value,
            "reasons": list(self.reasons),
            "checks": [
                {"name": c.name, "status": c.status.value, "detail": c.detail} for c in self.checks
            ],
            "version": {
                "id": self.version.version_id,
                "owner": self.version.owner,
                "reason": self.version.reason,
                "parent_id": self.version.parent_id,
                "track": self.version.track,
                "created_at": self.version.created_at,
            },
            "baseline": None
            if self.baseline is None
            else {
                "id": self.baseline.version_id,
                "owner": self.baseline.owner,
                "reason": self.baseline.reason,
            },
            "suite": None
            if self.suite is None
            else {"id": self.suite.suite_id, "name": self.suite.name, "cases": self.suite.cases},
            "eval": None
            if ev is None
            else {
                "eval_id": ev.eval_id,
                "epochs": ev.epochs,
                "clusters": ev.clusters,
                "epoch_advice": {k: dict(v) for k, v in ev.epoch_advice.items()},
                "flaky": [
                    {
                        "case_id": f.case_id,
                        "passed": f.passed,
                        "epochs": f.epochs,
                        "per_epoch": list(f.per_epoch),
                    }
                    for f in ev.flaky
                ],
                "flaky_total": ev.flaky_total,
            },
            "policy": {**self.policy.content, "id": self.policy.policy_id},
            "model": None
            if self.model is None
            else {
                "runtime": self.model.runtime,
                "name": self.model.name,
                "digest": self.model.digest,
                "revision": self.model.revision,
                "pinned": self.model.pinned,
            },
            "change": {
                "class": self.change.change_class,
                "first_release": self.change.first_release,
                "classes": list(self.change.classes),
                "diff": list(self.change.diff),
            },
            "metrics": [
                {
                    "name": m.name,
                    "candidate": _interval_json(m.candidate),
                    "baseline": _interval_json(m.baseline),
                    "comparison": _comparison_json(m.comparison),
                    "floor": m.floor,
                }
                for m in self.metrics
            ],
            "must_pass": None
            if mp is None
            else {"total": mp.total, "failures": [_failure_json(f) for f in mp.failures]},
            "budgets": None
            if b is None
            else {"latency_p95_ms": b.latency_p95_ms, "cost_per_case_usd": b.cost_per_case_usd},
            "approvals": {
                "needed": {
                    "named": self.approvals.needed.named,
                    "business": self.approvals.needed.business,
                },
                "given": [{"approver": a.approver, "role": a.role} for a in self.approvals.given],
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GateReport:
        """Read a stored or published report; older shapes take defaults (module docstring)."""
        version = int(data.get("schema_version", 1))
        if version > SCHEMA_VERSION:
            raise InputError(
                f"this gate report has schema version {version}; this releasegate reads "
                f"up to {SCHEMA_VERSION}",
                field="schema_version",
                hint="upgrade releasegate (pip install -U releasegate)",
            )
        v = data.get("version") or {}
        base, suite, ev = data.get("baseline"), data.get("suite"), data.get("eval")
        policy, model, mp, budgets = (
            data.get("policy") or {},
            data.get("model"),
            data.get("must_pass"),
            data.get("budgets"),
        )
        change = data.get("change") or {}
        approvals = data.get("approvals") or {}
        need = approvals.get("needed") or {}
        return cls(
            decision_id=str(data.get("decision_id", "")),
            created_at=datetime.fromisoformat(str(data["created_at"])),
            workflow=str(data.get("workflow", "")),
            env=str(data.get("env", "")),
            stakes=str(data.get("stakes", "")),
            verdict=Verdict(data["verdict"]),
            reasons=tuple(str(r) for r in data.get("reasons") or ()),
            checks=tuple(
                Check(str(c.get("name", "")), Status(c.get("status")), str(c.get("detail", "")))
                for c in data.get("checks") or ()
            ),
            version=VersionInfo(
                str(v.get("id", "")),
                v.get("owner"),
                str(v.get("reason") or ""),
                v.get("parent_id"),
                str(v.get("track") or "release"),
                v.get("created_at"),
            ),
            baseline=None
            if not base
            else BaselineInfo(str(base["id"]), base.get("owner"), str(base.get("reason") or "")),
            suite=None
            if not suite
            else SuiteInfo(str(suite["id"]), str(suite.get("name", "")), int(suite["cases"])),
            evaluation=None if not ev else EvalInfo.from_json(ev),
            policy=PolicyInfo(
                str(policy.get("id", "")), {k: val for k, val in policy.items() if k != "id"}
            ),
            model=None
            if not model
            else ModelInfo(
                str(model.get("runtime", "")),
                str(model.get("name", "")),
                model.get("digest"),
                model.get("revision"),
                bool(model.get("pinned", False)),
            ),
            change=ChangeInfo(
                change.get("class"),
                bool(change.get("first_release", not base)),
                tuple(str(c) for c in change.get("classes") or ()),
                tuple(str(line) for line in change.get("diff") or ()),
            ),
            metrics=tuple(
                MetricRow(
                    str(m.get("name", "")),
                    _interval_from(m.get("candidate")),
                    _interval_from(m.get("baseline")),
                    _comparison_from(m.get("comparison")),
                    None if m.get("floor") is None else float(m["floor"]),
                )
                for m in data.get("metrics") or ()
            ),
            must_pass=None if mp is None else MustPassInfo.from_json(mp),
            budgets=None
            if budgets is None
            else Budgets(
                _number(budgets.get("latency_p95_ms")), _number(budgets.get("cost_per_case_usd"))
            ),
            approvals=ApprovalsInfo(
                ApprovalNeed(int(need.get("named", 0)), bool(need.get("business", False))),
                tuple(
                    Approval(str(a.get("approver", "")), str(a.get("role", "")))
                    for a in approvals.get("given") or ()
                ),
            ),
            schema_version=SCHEMA_VERSION,
        )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _interval_json(iv: Interval | None) -> dict[str, Any] | None:
    if iv is None:
        return None
    return {
        "estimate": iv.estimate,
        "low": iv.low,
        "high": iv.high,
        "se": iv.se,
        "n": iv.n,
        "method": iv.method,
    }


def _interval_from(d: Mapping[str, Any] | None) -> Interval | None:
    if not d:
        return None
    return Interval(
        float(d.get("estimate", math.nan)),
        float(d.get("low", math.nan)),
        float(d.get("high", math.nan)),
        float(d.get("se", math.nan)),
        int(d.get("n", 0)),
        str(d.get("method", "")),
    )


def _comparison_json(c: PairedComparison | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "delta": c.delta,
        "low": c.low,
        "high": c.high,
        "se": c.se if math.isfinite(c.se) else None,
        "mde": c.mde,
        "n": c.n,
        "method": c.method,
        "p_value": c.p_value,
        "worse": c.worse,
        "better": c.better,
    }


def _comparison_from(d: Mapping[str, Any] | None) -> PairedComparison | None:
    if not d:
        return None
    se = d.get("se")  # absent before version 1 was published; null when not finite
    return PairedComparison(
        delta=float(d["delta"]),
        low=float(d["low"]),
        high=float(d["high"]),
        se=math.nan if se is None else float(se),
        mde=float(d.get("mde", math.nan)),
        n=int(d.get("n", 0)),
        method=str(d.get("method", "")),
        p_value=float(d.get("p_value", math.nan)),
        worse=int(d.get("worse", 0)),
        better=int(d.get("better", 0)),
    )


def _failure_json(f: MustPassFailure) -> dict[str, Any]:
    return {
        "case_id": f.case_id,
        "input": f.input,
        "expected": f.expected,
        "output": f.output,
        "detail": f.detail,
        "epochs_failed": f.epochs_failed,
    }


def _failure_from(d: Mapping[str, Any]) -> MustPassFailure:
    failed = d.get("epochs_failed")
    return MustPassFailure(
        str(d.get("case_id", "")),
        d.get("input"),
        d.get("expected"),
        "" if d.get("output") is None else str(d["output"]),
        "" if d.get("detail") is None else str(d["detail"]),
        None if failed is None else int(failed),
    )


def _flaky_from(f: Any) -> FlakyCase:
    if not isinstance(f, Mapping):  # the first releases listed bare case ids
        return FlakyCase(str(f))
    passed, epochs = f.get("passed"), f.get("epochs")
    return FlakyCase(
        str(f.get("case_id", "")),
        None if passed is None else int(passed),
        None if epochs is None else int(epochs),
        tuple(int(bool(x)) for x in f.get("per_epoch") or ()),
    )
