"""Raised alerts, kept as an outbox: stored ``pending`` under a lease, then sent, then
marked ``routed`` (or ``failed``). The cool-down reads the last alert per signal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, and_, insert, or_, select, update

from releasegate.domain.identity import canonical_json
from releasegate.domain.monitoring import quiet_until
from releasegate.store import tables as t
from releasegate.store.rows import now, record, values

ALERT_PENDING, ALERT_ROUTED, ALERT_FAILED = "pending", "routed", "failed"


@dataclass(frozen=True)
class NewAlert:
    """An alert as a monitor raises it, before the outbox stores it."""

    workflow: str
    env: str
    signal: str
    severity: str
    message: str
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class AlertRecord:
    seq: int
    workflow: str
    env: str
    signal: str
    severity: str
    message: str
    payload: Mapping[str, Any]
    routed: Sequence[str]
    created_at: datetime
    status: str = ALERT_ROUTED
    attempts: int = 0
    last_error: str | None = None
    lease_until: datetime | None = None
    routed_at: datetime | None = None

    @property
    def is_delivered(self) -> bool:
        return self.status == ALERT_ROUTED


class AlertRepo:
    """Raised alerts, kept as an outbox: stored ``pending`` under a lease, then sent, then
    marked ``routed`` (or ``failed`` with the error and the attempt count). The cool-down
    reads the last alert per signal; the next monitor re-sends what is pending or failed
    once its lease has run out; the memo lists a week's."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(
        self,
        alert: NewAlert,
        *,
        routed: Sequence[str] = (),
        at: datetime | None = None,
        status: str = ALERT_ROUTED,
        lease_until: datetime | None = None,
    ) -> int:
        result = self.conn.execute(
            insert(t.alerts).values(
                **values(alert, t.alerts),
                routed_json=canonical_json(list(routed)),
                created_at=at or now(),
                status=status,
                attempts=0,
                lease_until=lease_until,
            )
        )
        key = result.inserted_primary_key
        return int(key[0]) if key else 0

    def claim(
        self, alert: NewAlert, *, cooldown: timedelta, at: datetime, lease: timedelta
    ) -> int | None:
        """Add the alert as ``pending``, its lease held by the caller, unless the same
        signal alerted within ``cooldown``.

        Call inside a write transaction. On PostgreSQL the check-then-insert holds the
        one-row ``audit_head`` lock (SQLite's BEGIN IMMEDIATE already serialises writers),
        so two processes raising the same alert at once store, and send, it once.
        """
        if self.conn.dialect.name != "sqlite":
            self.conn.execute(
                select(t.audit_head.c.id).where(t.audit_head.c.id == 1).with_for_update()
            )
        last = self.last(alert.workflow, alert.env, alert.signal)
        if last is not None and quiet_until(last.created_at, at, cooldown) is not None:
            return None
        return self.add(alert, at=at, status=ALERT_PENDING, lease_until=now() + lease)

    def due(self, workflow: str, env: str) -> list[AlertRecord]:
        """Pending and failed alerts of ``workflow@env`` whose lease (if any) has run out."""
        a = t.alerts.c
        rows = self.conn.execute(
            select(t.alerts)
            .where(
                and_(
                    a.status.in_((ALERT_PENDING, ALERT_FAILED)),
                    a.workflow == workflow,
                    a.env == env,
                    or_(a.lease_until.is_(None), a.lease_until < now()),
                )
            )
            .order_by(a.seq)
        ).all()
        return [_alert(r) for r in rows]

    def take(self, seq: int, lease: timedelta) -> bool:
        """Take the lease of a pending or failed alert whose lease has run out; False when
        another monitor holds it or it was delivered meanwhile (one atomic UPDATE)."""
        a = t.alerts.c
        at = now()
        result = self.conn.execute(
            update(t.alerts)
            .where(
                and_(
                    a.seq == seq,
                    a.status.in_((ALERT_PENDING, ALERT_FAILED)),
                    or_(a.lease_until.is_(None), a.lease_until < at),
                )
            )
            .values(lease_until=at + lease)
        )
        return result.rowcount == 1

    def finish(self, seq: int, routed: Sequence[str], error: str | None) -> None:
        """Record one delivery attempt: ``routed`` when ``error`` is None, else ``failed``."""
        a = t.alerts.c
        self.conn.execute(
            update(t.alerts)
            .where(a.seq == seq)
            .values(
                routed_json=canonical_json(list(routed)),
                status=ALERT_ROUTED if error is None else ALERT_FAILED,
                attempts=a.attempts + 1,
                last_error=error,
                lease_until=None,
                routed_at=now() if error is None else None,
            )
        )

    def last(self, workflow: str, env: str, signal: str) -> AlertRecord | None:
        a = t.alerts.c
        row = self.conn.execute(
            select(t.alerts)
            .where(and_(a.workflow == workflow, a.env == env, a.signal == signal))
            .order_by(a.seq.desc())
            .limit(1)
        ).first()
        return _alert(row) if row else None

    def between(
        self, workflow: str, start: datetime, end: datetime, env: str | None = None
    ) -> list[AlertRecord]:
        a = t.alerts.c
        cond = and_(a.workflow == workflow, a.created_at >= start, a.created_at < end)
        if env is not None:
            cond = and_(cond, a.env == env)
        rows = self.conn.execute(select(t.alerts).where(cond).order_by(a.seq)).all()
        return [_alert(r) for r in rows]


def _alert(row: Row[Any]) -> AlertRecord:
    return record(AlertRecord, row)
