"""Policies: the gate rules of a workflow for an environment, versioned by content;
the newest one added is current."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, insert, select

from releasegate.domain.identity import canonical_json
from releasegate.store import tables as t
from releasegate.store.rows import now


class StoredPolicy(NamedTuple):
    """The current policy of a workflow for an environment: its id and its content."""

    policy_id: str
    content: Mapping[str, Any]


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
