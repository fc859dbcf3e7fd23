"""Gate decisions and approvals: what the gate decided for a version in an environment,
with its report (a ``GateReport``, stored as its published JSON and read back through
``GateReport.from_json``, so reports stored by older releases load), and who approved
it in which role."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Row, and_, insert, select

from releasegate.domain.gate_report import GateReport
from releasegate.store import tables as t
from releasegate.store.rows import now, record, values


@dataclass(frozen=True)
class DecisionRecord:
    decision_id: str
    version_id: str
    workflow: str
    env: str
    suite_id: str
    policy_id: str
    baseline_id: str | None
    verdict: str
    checks_passed: bool
    change_class: str | None
    report: GateReport
    created_at: datetime


def _decision(row: Row[Any]) -> DecisionRecord:
    return record(DecisionRecord, row, checks_passed=bool, report=GateReport.from_json)


class DecisionRepo:
    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, decision: DecisionRecord) -> None:
        self.conn.execute(insert(t.gate_decisions).values(**values(decision, t.gate_decisions)))

    def by_prefix(self, prefix: str) -> list[DecisionRecord]:
        rows = self.conn.execute(
            select(t.gate_decisions)
            .where(t.gate_decisions.c.decision_id.startswith(prefix, autoescape=True))
            .limit(5)
        ).all()
        return [_decision(r) for r in rows]

    def latest(self, version_id: str, env: str) -> DecisionRecord | None:
        row = self.conn.execute(
            select(t.gate_decisions)
            .where(and_(t.gate_decisions.c.version_id == version_id, t.gate_decisions.c.env == env))
            .order_by(t.gate_decisions.c.created_at.desc())
            .limit(1)
        ).first()
        return None if row is None else _decision(row)


class Signoff(NamedTuple):
    """One approval of a version for an environment: who, in which role(s)."""

    approver: str
    role: str


class ApprovalRepo:
    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(
        self,
        *,
        version_id: str,
        env: str,
        workflow: str,
        approver: str,
        role: str,
        note: str,
    ) -> bool:
        exists = self.conn.execute(
            select(t.approvals.c.approver).where(
                and_(
                    t.approvals.c.version_id == version_id,
                    t.approvals.c.env == env,
                    t.approvals.c.approver == approver,
                )
            )
        ).first()
        if exists:
            return False
        self.conn.execute(
            insert(t.approvals).values(
                version_id=version_id,
                env=env,
                workflow=workflow,
                approver=approver,
                role=role,
                note=note,
                created_at=now(),
            )
        )
        return True

    def list(self, version_id: str, env: str) -> list[Signoff]:
        rows = self.conn.execute(
            select(t.approvals.c.approver, t.approvals.c.role)
            .where(and_(t.approvals.c.version_id == version_id, t.approvals.c.env == env))
            .order_by(t.approvals.c.created_at)
        ).all()
        return [Signoff(r.approver, r.role) for r in rows]
