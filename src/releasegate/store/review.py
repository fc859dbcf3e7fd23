"""The reads ``review`` makes: each one set-based query over every workflow (or one),
never a query per version or per environment, so a review of a hundred workflows and
ten thousand versions costs a handful of round trips.

Runs are grouped in SQL by (workflow, env, version, model, provider, prompt digest)
within the period; the provider and the prompt digest live in ``attributes_json``, read
with the database's own JSON function (SQLite's ``json_extract``, PostgreSQL's ``->>``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, func, select

from releasegate.domain.review import PROMPT_DIGEST
from releasegate.store import tables as t
from releasegate.store.rows import as_utc, fetch

CHUNK = 500


class WorkflowRow(NamedTuple):
    name: str
    owners: Mapping[str, Any]
    environments: tuple[str, ...]
    monitor: Mapping[str, Any] | None
    data_class: str


class EnvRow(NamedTuple):
    workflow: str
    env: str
    version_id: str
    manifest: Mapping[str, Any] | None
    paused_reason: str | None
    paused_by: str | None
    paused_at: datetime | None


class DecisionRow(NamedTuple):
    decision_id: str
    version_id: str
    workflow: str
    env: str
    verdict: str
    checks_passed: bool
    suite_id: str
    policy_id: str


class RehearsalRow(NamedTuple):
    rehearsal_id: str
    workflow: str
    env: str
    result: str | None
    finished_at: datetime
    mutation_score: float | None


class RunGroup(NamedTuple):
    workflow: str
    env: str
    version_id: str
    model: str | None
    provider: str | None
    prompt_digest: str | None
    runs: int
    first_at: float
    last_at: float
    example_run: str


def _scoped(column: Any, workflow: str | None) -> Any:
    return True if workflow is None else column == workflow


class ReviewRepo:
    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def workflows(self, workflow: str | None) -> list[WorkflowRow]:
        w = t.workflows.c
        q = select(w.name, w.owners_json, w.environments_json, w.monitor_json, w.data_class)
        if workflow is not None:
            q = q.where(w.name == workflow)
        return [
            WorkflowRow(
                r.name,
                json.loads(r.owners_json),
                tuple(json.loads(r.environments_json)),
                json.loads(r.monitor_json) if r.monitor_json else None,
                r.data_class,
            )
            for r in self.conn.execute(q.order_by(w.name)).all()
        ]

    def environments(self, workflow: str | None) -> list[EnvRow]:
        """What every environment runs, with its version's manifest and its pause."""
        e, v = t.environments.c, t.versions.c
        q = (
            select(
                e.workflow,
                e.env,
                e.version_id,
                v.manifest_json,
                e.paused_reason,
                e.paused_by,
                e.paused_at,
            )  # fmt: skip
            .select_from(t.environments.outerjoin(t.versions, v.version_id == e.version_id))
            .where(_scoped(e.workflow, workflow))
            .order_by(e.workflow, e.env)
        )
        return [
            EnvRow(
                r.workflow,
                r.env,
                r.version_id,
                json.loads(r.manifest_json) if r.manifest_json else None,
                r.paused_reason,
                r.paused_by,
                as_utc(r.paused_at) if r.paused_at else None,
            )
            for r in self.conn.execute(q).all()
        ]

    def latest_versions(self, workflow: str | None) -> dict[str, str]:
        """Each workflow's last registered version."""
        v = t.versions.c
        last = select(func.max(v.seq)).where(_scoped(v.workflow, workflow)).group_by(v.workflow)
        q = select(v.workflow, v.version_id).where(v.seq.in_(last))
        return {r[0]: r[1] for r in self.conn.execute(q).all()}

    def moves(self, workflow: str | None) -> dict[tuple[str, str, str], datetime]:
        """(workflow, env, version) -> the last time the alias moved there to it."""
        h = t.env_history.c
        q = (
            select(h.workflow, h.env, h.version_id, func.max(h.created_at))
            .where(_scoped(h.workflow, workflow))
            .group_by(h.workflow, h.env, h.version_id)
        )
        return {(r[0], r[1], r[2]): as_utc(r[3]) for r in self.conn.execute(q).all()}

    def rollout_candidates(self, workflow: str | None) -> set[tuple[str, str, str]]:
        """(workflow, env, version) of every rollout's candidate, whatever became of it: a
        rollout starts only for a version that earned the environment (gate and approvals)."""
        r = t.rollouts.c
        q = select(r.workflow, r.env, r.canary_id).where(_scoped(r.workflow, workflow))
        return {(w, env, v) for w, env, v in self.conn.execute(q.distinct()).all()}

    def decisions(self, workflow: str | None) -> list[DecisionRow]:
        """Every gate decision's outcome (not its report), oldest first."""
        d = t.gate_decisions.c
        q = (
            select(
                d.decision_id,
                d.version_id,
                d.workflow,
                d.env,
                d.verdict,
                d.checks_passed,
                d.suite_id,
                d.policy_id,
            )  # fmt: skip
            .where(_scoped(d.workflow, workflow))
            .order_by(d.created_at, d.decision_id)
        )
        return [
            DecisionRow(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7])
            for r in self.conn.execute(q).all()
        ]

    def reports(self, decision_ids: Iterable[str]) -> dict[str, Mapping[str, Any]]:
        """The stored reports of these decisions, as JSON documents."""
        ids = sorted(set(decision_ids))
        out: dict[str, Mapping[str, Any]] = {}
        d = t.gate_decisions.c
        for i in range(0, len(ids), CHUNK):
            q = select(d.decision_id, d.report_json).where(d.decision_id.in_(ids[i : i + CHUNK]))
            out.update({r[0]: json.loads(r[1]) for r in self.conn.execute(q).all()})
        return out

    def current_suites(self, workflow: str | None) -> dict[str, str]:
        """Each workflow's current suite id."""
        s = t.suite_history.c
        last = (
            select(func.max(s.seq).label("seq"))
            .where(_scoped(s.workflow, workflow))
            .group_by(s.workflow)
            .subquery()
        )
        q = select(s.workflow, s.suite_id).where(s.seq.in_(select(last.c.seq)))
        return {r[0]: r[1] for r in self.conn.execute(q).all()}

    def manifests(self, version_ids: Iterable[str]) -> dict[str, Mapping[str, Any]]:
        """The manifests of those of ``version_ids`` that are registered."""
        ids = sorted(set(version_ids))
        v = t.versions.c
        out: dict[str, Mapping[str, Any]] = {}
        for i in range(0, len(ids), CHUNK):
            q = select(v.version_id, v.manifest_json).where(v.version_id.in_(ids[i : i + CHUNK]))
            out.update({r[0]: json.loads(r[1]) for r in self.conn.execute(q).all()})
        return out

    def origins(self, version_ids: Iterable[str]) -> dict[str, str]:
        """The workflow file each version was registered from, where its event says."""
        ids = sorted(set(version_ids))
        a = t.audit_events.c
        out: dict[str, str] = {}
        for i in range(0, len(ids), CHUNK):
            q = select(a.subject, a.payload_json).where(
                and_(a.kind == "version.registered", a.subject.in_(ids[i : i + CHUNK]))
            )
            for subject, payload in self.conn.execute(q).all():
                file = json.loads(payload).get("file")
                if isinstance(file, str):
                    out[subject] = file
        return out

    def last_rehearsals(self, workflow: str | None) -> dict[str, RehearsalRow]:
        """Each workflow's last finished rehearsal, in any environment."""
        r = t.rehearsals.c
        last = (
            select(r.workflow, func.max(r.finished_at).label("at"))
            .where(and_(r.finished_at.isnot(None), _scoped(r.workflow, workflow)))
            .group_by(r.workflow)
            .subquery()
        )
        q = (
            select(r.rehearsal_id, r.workflow, r.env, r.result, r.finished_at, r.mutation_score)
            .join(last, and_(last.c.workflow == r.workflow, last.c.at == r.finished_at))
            .order_by(r.rehearsal_id)
        )
        return {
            row.workflow: RehearsalRow(
                row.rehearsal_id,
                row.workflow,
                row.env,
                row.result,
                as_utc(row.finished_at),
                row.mutation_score,
            )  # fmt: skip
            for row in self.conn.execute(q).all()
        }

    def recorded_policies(self, workflow: str | None) -> dict[tuple[str, str], str]:
        """(workflow, env) -> the policy id its last ``policy.changed`` event records."""
        a = t.audit_events.c
        q = (
            select(a.workflow, a.payload_json)
            .where(and_(a.kind == "policy.changed", _scoped(a.workflow, workflow)))
            .order_by(a.seq)
        )
        out: dict[tuple[str, str], str] = {}
        for wf, payload in self.conn.execute(q).all():
            data = json.loads(payload)
            if isinstance(data.get("env"), str) and isinstance(data.get("policy_id"), str):
                out[(wf, data["env"])] = data["policy_id"]
        return out

    def delivered_alerts(self, workflow: str | None) -> dict[tuple[str, str], int]:
        """(workflow, signal) -> how many alerts of it the outbox holds as routed."""
        al = t.alerts.c
        q = (
            select(al.workflow, al.signal, func.count())
            .where(and_(al.status == "routed", _scoped(al.workflow, workflow)))
            .group_by(al.workflow, al.signal)
        )
        return {(r[0], r[1]): int(r[2]) for r in self.conn.execute(q).all()}

    def run_groups(self, since: float, workflow: str | None) -> list[RunGroup]:
        """Runs started at or after ``since``, grouped by what they reported (module doc)."""
        if self.conn.dialect.name == "sqlite":
            provider = "json_extract(attributes_json, '$.provider')"
            digest = f"json_extract(attributes_json, '$.{PROMPT_DIGEST}')"
        else:
            provider = "(attributes_json::json ->> 'provider')"
            digest = f"(attributes_json::json ->> '{PROMPT_DIGEST}')"
        params: list[Any] = [since]
        scope = ""
        if workflow is not None:
            scope = " AND workflow = ?"
            params.append(workflow)
        sql = (
            f"SELECT workflow, env, version_id, model, {provider}, {digest}, COUNT(*),"
            " MIN(started_at), MAX(started_at), MIN(run_id) FROM runs"
            f" WHERE started_at >= ?{scope} GROUP BY workflow, env, version_id, model,"
            f" {provider}, {digest}"
        )
        return [
            RunGroup(
                r[0],
                r[1],
                r[2],
                r[3],
                None if r[4] is None else str(r[4]),
                None if r[5] is None else str(r[5]),
                int(r[6]),
                float(r[7]),
                float(r[8]),
                r[9],
            )  # fmt: skip
            for r in fetch(self.conn, sql, params)
        ]
