"""Policies: the gate rules of a workflow for an environment, versioned by content;
the newest one added is current."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, insert, select

from releasegate.domain.identity import canonical_json
from releasegate.store import tables as t
from releasegate.store.rows import as_utc, now


class StoredPolicy(NamedTuple):
    """The current policy of a workflow for an environment: its id and its content."""

    policy_id: str
    content: Mapping[str, Any]


class PolicyVersion(NamedTuple):
    """One stored policy of an environment, oldest first in ``history``."""

    seq: int
    policy_id: str
    content: Mapping[str, Any]
    created_at: datetime


class PolicyRepo:
    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def current(self, workflow: str, env: str) -> StoredPolicy | None:
        row = self.conn.execute(
            select(t.policies.c.policy_id, t.policies.c.content_json)
            .where(and_(t.policies.c.workflow == workflow, t.policies.c.env == env))
            .order_by(t.policies.c.seq.desc())
            .limit(1)
        ).first()
        return None if row is None else StoredPolicy(row.policy_id, json.loads(row.content_json))

    def add(self, *, policy_id: str, workflow: str, env: str, content: Mapping[str, Any]) -> None:
        self.conn.execute(
            insert(t.policies).values(
                policy_id=policy_id,
                workflow=workflow,
                env=env,
                content_json=canonical_json(content),
                created_at=now(),
            )
        )

    def history(
        self, workflow: str, env: str | None = None
    ) -> dict[tuple[str, str], list[PolicyVersion]]:
        """Every stored policy of ``workflow`` (one environment, or all), oldest first,
        by (workflow, env): one query."""
        p = t.policies.c
        where = (
            p.workflow == workflow if env is None else and_(p.workflow == workflow, p.env == env)
        )
        return self._grouped(where)

    def all_history(self) -> dict[tuple[str, str], list[PolicyVersion]]:
        """Every stored policy of every workflow, oldest first, by (workflow, env)."""
        return self._grouped(None)

    def _grouped(self, where: Any) -> dict[tuple[str, str], list[PolicyVersion]]:
        p = t.policies.c
        q = select(p.workflow, p.env, p.seq, p.policy_id, p.content_json, p.created_at)
        if where is not None:
            q = q.where(where)
        out: dict[tuple[str, str], list[PolicyVersion]] = {}
        for r in self.conn.execute(q.order_by(p.seq)).all():
            out.setdefault((r.workflow, r.env), []).append(
                PolicyVersion(r.seq, r.policy_id, json.loads(r.content_json), as_utc(r.created_at))
            )
        return out
