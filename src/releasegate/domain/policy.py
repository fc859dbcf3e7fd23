"""Gate policy: what a version must show to enter one environment of a workflow.

A policy is data: metric floors, whether every must-pass case must pass, the
largest regression allowed against what the environment runs now, budgets, who
must approve, and optionally the blessed models and the tools a version may
declare (its permission boundary). ``required_approvals`` turns stakes and the change class into
the roles that must sign, because who approves depends on what changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from releasegate.domain.document import Fields
from releasegate.domain.identity import content_hash
from releasegate.domain.pausing import PauseOn, parse_pause_on
from releasegate.domain.pinning import (
    BlessedModel,
    DocumentLoader,
    ToolGrant,
    blessed_from_content,
    grants_from_content,
    parse_blessed,
    parse_tool_grants,
)
from releasegate.domain.rollout import RolloutPolicy, parse_rollout, rollout_policy_from_content

BUSINESS_CLASSES_DEFAULT = ("model", "tools")


NOT_GATED_SECTIONS = ("rollout", "pause_on")
"""Policy sections the gate never reads (how a rollout ramps, when to pause): changing one
does not make an earlier gate decision stale."""


def gate_rules_id(content: Mapping[str, Any]) -> str:
    """The id of what the gate reads in a policy: its content without ``NOT_GATED_SECTIONS``."""
    return content_hash({k: v for k, v in content.items() if k not in NOT_GATED_SECTIONS})


@dataclass(frozen=True)
class Regression:
    metric: str
    margin: float


@dataclass(frozen=True)
class Policy:
    workflow: str
    env: str
    floors: Mapping[str, float] = field(default_factory=dict)
    must_pass: bool = True
    regressions: tuple[Regression, ...] = ()
    latency_p95_ms: float | None = None
    cost_per_case_usd: float | None = None
    approvers_required: int | None = None  # None: 1 for high stakes, 0 for low
    business_for: tuple[str, ...] = BUSINESS_CLASSES_DEFAULT
    blessed: tuple[BlessedModel, ...] | None = None  # None: no list; () blesses nothing
    allowed_tools: tuple[ToolGrant, ...] | None = None  # None: no boundary; () no tools
    rollout: RolloutPolicy | None = None  # None: the defaults of domain.rollout
    pause_on: PauseOn | None = None  # None: only a person pauses (domain.pausing)

    @property
    def rollout_or_default(self) -> RolloutPolicy:
        return self.rollout if self.rollout is not None else RolloutPolicy()

    def content(self) -> dict[str, Any]:
        """What is hashed; the optional sections appear only when set, so older ids hold."""
        out: dict[str, Any] = {
            "workflow": self.workflow,
            "env": self.env,
            "floors": dict(self.floors),
            "must_pass": self.must_pass,
            "max_regression": [{"metric": r.metric, "margin": r.margin} for r in self.regressions],
            "budgets": {
                "latency_p95_ms": self.latency_p95_ms,
                "cost_per_case_usd": self.cost_per_case_usd,
            },
            "approvals": {
                "required": self.approvers_required,
                "business_for": list(self.business_for),
            },
        }
        if self.blessed is not None:
            out["blessed_models"] = [b.content() for b in self.blessed]
        if self.allowed_tools is not None:
            out["allowed_tools"] = [g.content() for g in self.allowed_tools]
        if self.rollout is not None:
            out["rollout"] = self.rollout.content()
        if self.pause_on is not None:
            out["pause_on"] = self.pause_on.content()
        return out

    @property
    def policy_id(self) -> str:
        return content_hash(self.content())


def default_policy(workflow: str, env: str) -> Policy:
    """What applies when a workflow file says nothing: must-pass holds, no regression > 2 points."""
    return Policy(workflow=workflow, env=env, regressions=(Regression("accuracy", 0.02),))


def policy_from_content(content: Mapping[str, Any]) -> Policy:
    budgets = content.get("budgets") or {}
    approvals = content.get("approvals") or {}
    blessed = content.get("blessed_models")
    tools = content.get("allowed_tools")
    rollout = content.get("rollout")
    pause_on = content.get("pause_on")
    return Policy(
        workflow=content["workflow"],
        env=content["env"],
        floors=dict(content.get("floors") or {}),
        must_pass=bool(content.get("must_pass", True)),
        regressions=tuple(
            Regression(r["metric"], float(r["margin"])) for r in content.get("max_regression") or []
        ),
        latency_p95_ms=budgets.get("latency_p95_ms"),
        cost_per_case_usd=budgets.get("cost_per_case_usd"),
        approvers_required=approvals.get("required"),
        business_for=tuple(approvals.get("business_for", BUSINESS_CLASSES_DEFAULT)),
        blessed=None if blessed is None else blessed_from_content(blessed),
        allowed_tools=None if tools is None else grants_from_content(tools),
        rollout=None if rollout is None else rollout_policy_from_content(rollout),
        pause_on=None if pause_on is None else PauseOn.from_content(pause_on),
    )


def _number(f: Fields, key: str, *, low: float = 0.0, high: float | None = None) -> float | None:
    value = f.get(key, float)
    if value is None:
        return None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        f.fail(key, f"must be {bound}, got {value}")
    return float(value)


def parse_policy(
    f: Fields, *, workflow: str, env: str, load: DocumentLoader | None = None
) -> Policy:
    """``load`` reads a file the policy names (a blessed-models list), relative to the
    workflow file, as a Document."""
    f.only(
        "floors",
        "must_pass",
        "max_regression",
        "budgets",
        "approvals",
        "blessed_models",
        "allowed_tools",
        "rollout",
        "pause_on",
    )
    floors: dict[str, float] = {}
    if f.has("floors"):
        fl = f.sub("floors")
        for metric in fl.value:
            value = _number(fl, str(metric), high=1.0)
            if value is not None:
                floors[str(metric)] = value
    regressions: list[Regression] = []
    if f.has("max_regression"):
        raw = f.value["max_regression"]
        items = raw if isinstance(raw, list) else [raw]
        for i, _ in enumerate(items):
            path = (
                (*f.path, "max_regression", i)
                if isinstance(raw, list)
                else (*f.path, "max_regression")
            )
            r = Fields(f.doc, f.error, path).only("metric", "margin")
            margin = _number(r, "margin", high=1.0)
            if margin is None:
                r.fail("margin", "is required: the largest regression you accept, e.g. 0.02")
            if margin <= 0:
                r.fail(
                    "margin",
                    "must be more than 0: no finite suite can show 'no regression at "
                    "all'; use a small margin such as 0.01",
                )
            regressions.append(Regression(r.get("metric", str, "accuracy"), margin))
    latency = cost = None
    if f.has("budgets"):
        b = f.sub("budgets").only("latency_p95_ms", "cost_per_case_usd")
        latency = _number(b, "latency_p95_ms")
        cost = _number(b, "cost_per_case_usd")
    required: int | None = None
    business_for: tuple[str, ...] = BUSINESS_CLASSES_DEFAULT
    if f.has("approvals"):
        a = f.sub("approvals").only("required", "business_for")
        required = a.get("required", int)
        if required is not None and required < 0:
            a.fail("required", "must be 0 or more")
        if a.has("business_for"):
            classes = a.get("business_for", list)
            valid = {"wording", "config", "tools", "retrieval", "model"}
            for i, c in enumerate(classes):
                if not isinstance(c, str) or c not in valid:
                    a.doc.fail(
                        a.error,
                        f"unknown change class '{c}'",
                        (*a.path, "business_for", i),
                        hint="one of: " + ", ".join(sorted(valid)),
                    )
            business_for = tuple(classes)
    return Policy(
        workflow=workflow,
        env=env,
        floors=floors,
        must_pass=f.get("must_pass", bool, True),
        regressions=tuple(regressions),
        latency_p95_ms=latency,
        cost_per_case_usd=cost,
        approvers_required=required,
        business_for=business_for,
        blessed=parse_blessed(f, "blessed_models", load) if f.has("blessed_models") else None,
        allowed_tools=parse_tool_grants(f, "allowed_tools") if f.has("allowed_tools") else None,
        rollout=parse_rollout(f.sub("rollout")) if f.has("rollout") else None,
        pause_on=parse_pause_on(f.sub("pause_on")) if f.has("pause_on") else None,
    )


@dataclass(frozen=True)
class ApprovalNeed:
    """Who must sign: ``named`` approvers from the approvers list, plus a business one."""

    named: int
    business: bool

    @property
    def is_empty(self) -> bool:
        return self.named == 0 and not self.business


def required_approvals(policy: Policy, stakes: str, change_class: str | None) -> ApprovalNeed:
    """High stakes need a named approver; model and tools changes also the business approver."""
    named = policy.approvers_required
    if named is None:
        named = 1 if stakes == "high" else 0
    business = stakes == "high" and change_class in policy.business_for
    return ApprovalNeed(named=named, business=business)
