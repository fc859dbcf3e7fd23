"""``stage set`` and ``stage show``: a workflow's stage, its handover date and its owners.

Setting ``routine`` requires the readiness checklist (``release.handover.check``) to
pass; ``force`` sets it anyway and records why and which checks failed. Every stage set
is a ``workflow.stage_set`` audit event, written with its row in one transaction.
Setting the stage and date already recorded is refused (exit 1) and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from releasegate.domain.handover import (
    Readiness,
    StageRecord,
    StageState,
    parse_stage,
    stage_state,
)
from releasegate.errors import RefusedError
from releasegate.release.handover import check
from releasegate.release.refs import actor as default_actor
from releasegate.release.refs import forced_reason
from releasegate.store.audit import AuditRepo
from releasegate.store.engine import Store
from releasegate.store.stages import StageRepo
from releasegate.store.workflows import WorkflowRepo


@dataclass(frozen=True)
class StageSet:
    """What ``stage set`` recorded, the stage before it, and the checklist it was set on
    (None for a stage other than ``routine``)."""

    record: StageRecord
    previous: str
    readiness: Readiness | None

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.record.as_dict(),
            "previous": self.previous,
            "readiness": None if self.readiness is None else self.readiness.as_dict(),
        }


def set_stage(
    store: Store,
    workflow: str,
    stage: str,
    *,
    handover_date: date | None = None,
    force: bool = False,
    reason: str = "",
    who: str | None = None,
    now: datetime | None = None,
) -> StageSet:
    """Record ``workflow``'s ``stage`` from ``handover_date`` (default today)."""
    stage = parse_stage(stage)
    reason = forced_reason(reason, force=force, recorded_with="the checks that failed")
    now = now or datetime.now(UTC)
    day = handover_date or now.date()
    who = who or default_actor()
    with store.read() as conn:
        wf = WorkflowRepo(conn).get(workflow)
    ready = check(store, workflow, now=now) if stage == "routine" else None
    if ready is not None and not ready.is_ready and not force:
        raise RefusedError(
            f"{workflow} is not ready for routine operation: "
            + "; ".join(
                f"{line.title}: {line.evidence}" for line in ready.lines if not line.passed
            ),
            hint=f"`releasegate report handover {workflow}` lists each check and its fix; "
            "--force --reason R sets it anyway, on the record",
        )
    failing = ready.failing if ready is not None else ()
    record = StageRecord(
        workflow=workflow,
        stage=stage,
        handover_date=day,
        change_owner=wf.owners.get("change"),
        care_owner=wf.owners.get("care"),
        actor=who,
        reason=reason,
        forced=bool(failing),
        failing=failing,
        created_at=now,
    )
    with store.write() as conn:
        history = StageRepo(conn).history(workflow, lock=True)
        before = stage_state(workflow, history, now.date())
        last = history[-1] if history else None
        if last is not None and (last.stage, last.handover_date) == (stage, day):
            raise RefusedError(
                f"{workflow} is already {stage} from {day.isoformat()}: nothing to change",
                hint=f"`releasegate stage show {workflow}`",
            )
        StageRepo(conn).add(record)
        AuditRepo(conn).append(
            kind="workflow.stage_set",
            actor=who,
            workflow=workflow,
            subject=stage,
            payload={
                "stage": stage,
                "from": before.stage,
                "handover_date": day.isoformat(),
                "change_owner": record.change_owner,
                "care_owner": record.care_owner,
                "forced": record.forced,
                "failing": list(failing),
                "reason": reason,
            },
        )
    return StageSet(record, before.stage, ready)


def show_stage(store: Store, workflow: str, *, today: date | None = None) -> StageState:
    """The stage of ``workflow`` in effect today, and a scheduled one."""
    with store.read() as conn:
        WorkflowRepo(conn).get(workflow)  # an unknown workflow is a NotFoundError
        history = StageRepo(conn).history(workflow)
    return stage_state(workflow, history, today or datetime.now(UTC).date())
