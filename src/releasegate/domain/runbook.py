"""The runbook's facts: what an operator needs to run a workflow, gathered from the store.

``monitor.runbook.build_runbook`` fills a ``Runbook``; ``reports.runbook`` writes it as
one Markdown or HTML page. Every command the page shows is built here from these facts
(``rollback_command`` and friends), so the page and the tests that run its commands
agree on what an operator types.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from releasegate.domain.handover import NormalRange, Readiness, StageState, TrackedNumber
from releasegate.domain.rehearsal import Rehearsal
from releasegate.domain.review_queue import ReviewStats


def cmd(*words: str) -> str:
    """A ``releasegate`` command line, each word quoted for a POSIX shell where needed."""
    return " ".join(["releasegate", *(shlex.quote(w) for w in words)])


@dataclass(frozen=True)
class EnvironmentFacts:
    """One environment: what runs there, why, how it got there, and how to undo it."""

    env: str
    version_id: str | None
    version_reason: str
    version_owner: str | None
    version_created_at: datetime | None
    moved_at: datetime | None
    moved_by: str | None
    move_action: str | None
    """``promote`` or ``rollback``: the last change of the environment."""
    move_reason: str
    verdict: str | None
    decision_id: str | None
    decided_at: datetime | None
    change_class: str | None
    approved_by: tuple[str, ...]
    paused_reason: str | None
    paused_by: str | None
    paused_at: datetime | None
    rollout: str | None
    """An active rollout, as a sentence."""
    rollback_to: str | None
    """The version ``rollback`` would move it back to (None: nothing earlier ran there)."""
    rollback_to_reason: str

    def rollback_command(self, workflow: str) -> str | None:
        if self.rollback_to is None:
            return None
        return cmd("rollback", workflow, "--env", self.env, "--reason", "INCIDENT: what you saw")

    def rollback_to_command(self, workflow: str) -> str | None:
        if self.rollback_to is None:
            return None
        return cmd(
            "rollback", workflow, "--env", self.env, "--to", self.rollback_to,
            "--reason", "INCIDENT: what you saw",
        )  # fmt: skip

    def gate_report_command(self) -> str | None:
        return None if self.decision_id is None else cmd("report", "gate", self.decision_id)

    def abort_command(self, workflow: str) -> str:
        return cmd(
            "rollout", "abort", workflow, "--env", self.env, "--reason", "INCIDENT: what you saw"
        )

    def pause_command(self, workflow: str) -> str:
        return cmd("pause", workflow, "--env", self.env, "--reason", "INCIDENT: what you saw")

    def resume_command(self, workflow: str) -> str:
        return cmd("resume", workflow, "--env", self.env)

    def resolve_command(self, workflow: str) -> str:
        return cmd("resolve", workflow, "--env", self.env)


@dataclass(frozen=True)
class AlertRuleFacts:
    signal: str
    condition: str
    """``above 0.05 with at least 100 runs, quiet 6h after firing``."""


@dataclass(frozen=True)
class RecentAlert:
    at: datetime
    env: str
    signal: str
    severity: str
    message: str
    delivery: str


@dataclass(frozen=True)
class FailureFacts:
    reason: str
    runs: int
    last_run_id: str


@dataclass(frozen=True)
class Runbook:
    """Everything the one-page runbook says, as gathered at ``generated_at``."""

    workflow: str
    description: str
    stakes: str
    generated_at: datetime
    stage: StageState
    change_owner: str | None
    care_owner: str | None
    approvers: tuple[str, ...]
    business: tuple[str, ...]
    responders: tuple[str, ...]
    main_env: str
    model: str
    runs_per_day: float | None
    """Typical runs a day in ``main_env`` over the period (None: no runs)."""
    example_input: str | None
    example_output: str | None
    top_labels: tuple[tuple[str, int], ...]
    tracked: tuple[TrackedNumber, ...]
    error_rate: NormalRange
    escalation_rate: NormalRange
    escalations: tuple[str, ...]
    pause_rules: tuple[str, ...]
    """When ``monitor`` and ``rollout check`` pause it on their own, as sentences."""
    monitor_window: str
    min_sample: int
    cooldown: str
    drift_alerts: bool
    rules: tuple[AlertRuleFacts, ...]
    routes: tuple[str, ...]
    recent_alerts: tuple[RecentAlert, ...]
    environments: tuple[EnvironmentFacts, ...]
    rehearsal: Rehearsal | None
    failures: tuple[FailureFacts, ...]
    escalated_runs: tuple[str, ...]
    edited_runs: tuple[str, ...]
    negative_runs: tuple[str, ...]
    suite: str | None
    """The suite name of the last gate (what ``suite add-case`` extends)."""
    readiness: Readiness
    review: ReviewStats | None = None
    """The review queue's numbers over the same four weeks in ``main_env``."""

    def env(self, name: str) -> EnvironmentFacts:
        return next(e for e in self.environments if e.env == name)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["readiness"] = self.readiness.as_dict()
        out["stage"] = self.stage.as_dict()
        out["review"] = None if self.review is None else self.review.as_dict()
        out["commands"] = {
            e.env: {
                "rollback": e.rollback_command(self.workflow),
                "rollback_to": e.rollback_to_command(self.workflow),
                "pause": e.pause_command(self.workflow),
                "resume": e.resume_command(self.workflow),
                "resolve": e.resolve_command(self.workflow),
                "abort": None if e.rollout is None else e.abort_command(self.workflow),
            }
            for e in self.environments
        }
        return out
