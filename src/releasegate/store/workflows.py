"""Workflows: a named LLM workflow with its owners, stakes, environments and monitor
settings, as registered from its workflow file (the latest registration wins)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from releasegate.domain.identity import canonical_json
from releasegate.errors import (
    NotFoundError,
)
from releasegate.store import tables as t
from releasegate.store.rows import now, record


@dataclass(frozen=True)
class WorkflowRecord:
    name: str
    description: str
    stakes: str
    owners: Mapping[str, Any]
    environments: tuple[str, ...]
    monitor: Mapping[str, Any] | None = None
    experiments_retention_days: int | None = None  # 0008: None, experiments never expire
    data_class: str = "internal"  # 0008


class WorkflowRepo:
    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def upsert(
        self,
        *,
        name: str,
        description: str,
        stakes: str,
        owners: Mapping[str, Any],
        environments: Sequence[str],
        monitor: Mapping[str, Any] | None = None,
        experiments_retention_days: int | None = None,
        data_class: str = "internal",
    ) -> None:
        values = {
            "description": description,
            "stakes": stakes,
            "owners_json": canonical_json(owners),
            "environments_json": canonical_json(list(environments)),
            "monitor_json": canonical_json(monitor) if monitor is not None else None,
            "experiments_retention_days": experiments_retention_days,
            "data_class": data_class,
            "updated_at": now(),
        }
        done = self.conn.execute(
            update(t.workflows).where(t.workflows.c.name == name).values(**values)
        )
        if done.rowcount == 0:
            self.conn.execute(insert(t.workflows).values(name=name, created_at=now(), **values))

    def get(self, name: str) -> WorkflowRecord:
        row = self.conn.execute(select(t.workflows).where(t.workflows.c.name == name)).first()
        if row is None:
            names = [r[0] for r in self.conn.execute(select(t.workflows.c.name)).all()]
            raise NotFoundError(
                f"no workflow '{name}'",
                hint=("known: " + ", ".join(names))
                if names
                else "register a workflow file first: releasegate register FILE",
            )
        return record(WorkflowRecord, row, environments=tuple)

    def all(self) -> list[WorkflowRecord]:
        rows = self.conn.execute(select(t.workflows).order_by(t.workflows.c.name)).all()
        return [record(WorkflowRecord, row, environments=tuple) for row in rows]

    def data_classes(self, names: Iterable[str]) -> dict[str, str]:
        """The data class of each of ``names`` that is registered."""
        wanted = sorted(set(names))
        if not wanted:
            return {}
        c = t.workflows.c
        rows = self.conn.execute(select(c.name, c.data_class).where(c.name.in_(wanted))).all()
        return {name: data_class for name, data_class in rows}

    def names(self) -> list[str]:
        return [
            r[0] for r in self.conn.execute(select(t.workflows.c.name).order_by(t.workflows.c.name))
        ]
