"""Environments: the alias each environment of a workflow points at, moved by
compare-and-swap on its revision, and the history of every move (promote, rollback)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from releasegate.errors import (
    StaleAliasError,
)
from releasegate.store import tables as t
from releasegate.store.rows import now, record


class Alias(NamedTuple):
    """Where an environment's alias points, and its revision: a move compares and swaps it."""

    version_id: str
    revision: int


@dataclass(frozen=True)
class Pause:
    """Why an environment is paused, by whom and since when: while it is, ``resolve`` says
    so and the application sends every request to its human fallback."""

    reason: str
    by: str
    at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "by": self.by, "at": self.at.isoformat()}


@dataclass(frozen=True)
class HistoryRecord:
    seq: int
    workflow: str
    env: str
    version_id: str
    previous_id: str | None
    action: str
    actor: str
    decision_id: str | None
    reason: str
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """What a report or ``--json`` shows of one promotion or rollback."""
        return {
            "at": self.created_at.isoformat(),
            "action": self.action,
            "version_id": self.version_id,
            "previous_id": self.previous_id,
            "actor": self.actor,
            "reason": self.reason,
        }


class EnvironmentRepo:
    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def current(
        self,
        workflow: str,
        env: str,
        *,
        lock: bool = False,
    ) -> Alias | None:
        q = select(t.environments.c.version_id, t.environments.c.revision).where(
            and_(t.environments.c.workflow == workflow, t.environments.c.env == env)
        )
        if lock and self.conn.dialect.name == "postgresql":
            q = q.with_for_update()
        row = self.conn.execute(q).first()
        return None if row is None else Alias(row.version_id, row.revision)

    def move(
        self,
        *,
        workflow: str,
        env: str,
        version_id: str,
        expected: Alias | None,
    ) -> int:
        """Compare-and-swap the alias; raises StaleAliasError if someone moved it first."""
        at = now()
        if expected is None:
            try:
                with self.conn.begin_nested():
                    self.conn.execute(
                        insert(t.environments).values(
                            workflow=workflow,
                            env=env,
                            version_id=version_id,
                            revision=1,
                            updated_at=at,
                        )
                    )
            except IntegrityError:
                raise StaleAliasError(
                    f"{workflow}@{env} was set by another writer at the same moment",
                    hint="look again with `releasegate resolve`, re-run the gate, then promote",
                ) from None
            return 1
        done = self.conn.execute(
            update(t.environments)
            .where(
                and_(
                    t.environments.c.workflow == workflow,
                    t.environments.c.env == env,
                    t.environments.c.revision == expected.revision,
                )
            )
            .values(version_id=version_id, revision=expected.revision + 1, updated_at=at)
        )
        if done.rowcount != 1:
            raise StaleAliasError(
                f"{workflow}@{env} moved while this promotion was being checked",
                hint="look again with `releasegate resolve`, re-run the gate, then promote",
            )
        return expected.revision + 1

    def serving(self, workflow: str, env: str) -> tuple[Alias, Pause | None] | None:
        """Where the alias points and the environment's pause, in one query (``resolve``)."""
        e = t.environments.c
        row = self.conn.execute(
            select(e.version_id, e.revision, e.paused_reason, e.paused_by, e.paused_at).where(
                and_(e.workflow == workflow, e.env == env)
            )
        ).first()
        if row is None:
            return None
        held = None
        if row.paused_reason is not None:
            held = Pause(row.paused_reason, row.paused_by or "", row.paused_at)
        return Alias(row.version_id, row.revision), held

    def pause(self, workflow: str, env: str) -> Pause | None:
        """The environment's pause, or None when it runs normally (or has no row yet)."""
        found = self.serving(workflow, env)
        return None if found is None else found[1]

    def set_pause(self, workflow: str, env: str, pause: Pause | None) -> bool:
        """Pause the environment (``pause``) or resume it (None). Compare-and-swap on the
        pause itself: False, and nothing written, when it already was paused (or was not)."""
        e = t.environments.c
        was = e.paused_reason.is_(None) if pause is not None else e.paused_reason.isnot(None)
        done = self.conn.execute(
            update(t.environments)
            .where(and_(e.workflow == workflow, e.env == env, was))
            .values(
                paused_reason=pause.reason if pause else None,
                paused_by=pause.by if pause else None,
                paused_at=pause.at if pause else None,
            )
        )
        return done.rowcount == 1

    def all(self, workflow: str) -> dict[str, str]:
        rows = self.conn.execute(
            select(t.environments.c.env, t.environments.c.version_id).where(
                t.environments.c.workflow == workflow
            )
        ).all()
        return {r.env: r.version_id for r in rows}

    def everywhere(self) -> list[tuple[str, str, str]]:
        """(workflow, env, version id) of every environment that runs something."""
        e = t.environments.c
        query = select(e.workflow, e.env, e.version_id).order_by(e.workflow, e.env)
        return [(w, env, v) for w, env, v in self.conn.execute(query).all()]

    def record(
        self,
        *,
        workflow: str,
        env: str,
        version_id: str,
        previous_id: str | None,
        action: str,
        actor: str,
        decision_id: str | None,
        reason: str,
    ) -> None:
        self.conn.execute(
            insert(t.env_history).values(
                workflow=workflow,
                env=env,
                version_id=version_id,
                previous_id=previous_id,
                action=action,
                actor=actor,
                decision_id=decision_id,
                reason=reason,
                created_at=now(),
            )
        )

    def history(self, workflow: str, env: str) -> list[HistoryRecord]:
        rows = self.conn.execute(
            select(t.env_history)
            .where(and_(t.env_history.c.workflow == workflow, t.env_history.c.env == env))
            .order_by(t.env_history.c.seq)
        ).all()
        return [record(HistoryRecord, r) for r in rows]
