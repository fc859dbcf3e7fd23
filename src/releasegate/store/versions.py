"""Versions: immutable, content-addressed snapshots of a workflow, in registration order.

A version's content is added once and never changed (its track may go from
``experiment`` to ``release``: metadata, not content); lookups are by id, by id prefix (what a
user types) and by workflow."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select, update

from releasegate.store import tables as t
from releasegate.store.rows import record, values


@dataclass(frozen=True)
class VersionRecord:
    version_id: str
    workflow: str
    manifest: Mapping[str, Any]
    owner: str | None
    parent_id: str | None
    reason: str
    track: str
    source_commit: str | None
    created_at: datetime


def _version(row: Row[Any]) -> VersionRecord:
    return record(VersionRecord, row)


class VersionRepo:
    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, version: VersionRecord) -> None:
        self.conn.execute(insert(t.versions).values(**values(version, t.versions)))

    def set_track(self, version_id: str, track: str) -> None:
        self.conn.execute(
            update(t.versions).where(t.versions.c.version_id == version_id).values(track=track)
        )

    def on_track(self, track: str, workflow: str | None = None) -> list[VersionRecord]:
        """The versions on ``track`` (of one workflow, or all), in registration order."""
        q = select(t.versions).where(t.versions.c.track == track)
        if workflow is not None:
            q = q.where(t.versions.c.workflow == workflow)
        return [_version(r) for r in self.conn.execute(q.order_by(t.versions.c.seq)).all()]

    def manifests(self) -> Iterator[Mapping[str, Any]]:
        """Every version's manifest, of every workflow."""
        for (raw,) in self.conn.execute(select(t.versions.c.manifest_json)):
            yield json.loads(raw)

    def find(self, version_id: str) -> VersionRecord | None:
        row = self.conn.execute(
            select(t.versions).where(t.versions.c.version_id == version_id)
        ).first()
        return None if row is None else _version(row)

    def by_prefix(self, prefix: str) -> list[VersionRecord]:
        rows = self.conn.execute(
            select(t.versions)
            .where(t.versions.c.version_id.startswith(prefix, autoescape=True))
            .limit(5)
        ).all()
        return [_version(r) for r in rows]

    def registered(self, workflow: str, version_ids: Iterable[str]) -> set[str]:
        """Which of ``version_ids`` are registered versions of ``workflow``."""
        ids = sorted(set(version_ids))
        v = t.versions.c
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            q = select(v.version_id).where(
                v.workflow == workflow, v.version_id.in_(ids[i : i + 500])
            )
            found.update(str(r[0]) for r in self.conn.execute(q).all())
        return found

    def list(self, workflow: str) -> list[VersionRecord]:
        rows = self.conn.execute(
            select(t.versions).where(t.versions.c.workflow == workflow).order_by(t.versions.c.seq)
        ).all()
        return [_version(r) for r in rows]

    def newest(self, workflow: str, limit: int) -> tuple[tuple[VersionRecord, ...], int]:
        """The ``limit`` newest versions of ``workflow`` (newest first), and how many it has."""
        v = t.versions.c
        rows = self.conn.execute(
            select(t.versions).where(v.workflow == workflow).order_by(v.seq.desc()).limit(limit)
        ).all()
        total = self.conn.execute(
            select(func.count()).select_from(t.versions).where(v.workflow == workflow)
        ).scalar_one()
        return tuple(_version(r) for r in rows), int(total)

    def latest(self, workflow: str) -> VersionRecord | None:
        row = self.conn.execute(
            select(t.versions)
            .where(t.versions.c.workflow == workflow)
            .order_by(t.versions.c.seq.desc())
            .limit(1)
        ).first()
        return None if row is None else _version(row)
