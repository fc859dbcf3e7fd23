"""Repositories: the only code that speaks SQL, one small class per noun.

Each method takes the open Connection, so a service composes several of them
in one transaction (a promotion checks five tables and writes three, atomically).
Rows come back as frozen records with UTC-aware times on every dialect.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Connection, Row, Table, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from releasegate.domain.audit import (
    GENESIS,
    KEYED,
    ROTATED,
    AuditEvent,
    AuditKey,
    Decided,
    Keyring,
    anchor_payload,
    chain_event,
)
from releasegate.domain.identity import canonical_json
from releasegate.domain.runs import KnownNames
from releasegate.errors import (
    AuditBrokenError,
    AuditKeyError,
    NotFoundError,
    StaleAliasError,
)
from releasegate.store import tables as t

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


def now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class WorkflowRecord:
    name: str
    description: str
    stakes: str
    owners: Mapping[str, Any]
    environments: tuple[str, ...]
    monitor: Mapping[str, Any] | None = None


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


@dataclass(frozen=True)
class SuiteRecord:
    suite_id: str
    name: str
    workflow: str
    description: str
    content: Mapping[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class EvalRecord:
    eval_id: str
    version_id: str
    suite_id: str
    epochs: int
    status: str
    n_cases: int
    n_errors: int
    n_cached: int
    summary: Mapping[str, Any]
    started_at: datetime
    finished_at: datetime | None


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
    report: Mapping[str, Any]
    created_at: datetime


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


@dataclass(frozen=True, slots=True)
class StoredOutput:
    text: str
    data: Mapping[str, Any] | None
    latency_ms: float
    tokens_in: int
    tokens_out: int
    cost_usd: float
    error: str | None


class WorkflowRepo:
    @staticmethod
    def upsert(
        conn: Connection,
        *,
        name: str,
        description: str,
        stakes: str,
        owners: Mapping[str, Any],
        environments: Sequence[str],
        monitor: Mapping[str, Any] | None = None,
    ) -> None:
        values = {
            "description": description,
            "stakes": stakes,
            "owners_json": canonical_json(owners),
            "environments_json": canonical_json(list(environments)),
            "monitor_json": canonical_json(monitor) if monitor is not None else None,
            "updated_at": now(),
        }
        done = conn.execute(update(t.workflows).where(t.workflows.c.name == name).values(**values))
        if done.rowcount == 0:
            conn.execute(insert(t.workflows).values(name=name, created_at=now(), **values))

    @staticmethod
    def get(conn: Connection, name: str) -> WorkflowRecord:
        row = conn.execute(select(t.workflows).where(t.workflows.c.name == name)).first()
        if row is None:
            names = [r[0] for r in conn.execute(select(t.workflows.c.name)).all()]
            raise NotFoundError(
                f"no workflow '{name}'",
                hint=("known: " + ", ".join(names))
                if names
                else "register a workflow file first: releasegate register FILE",
            )
        return WorkflowRecord(
            row.name,
            row.description,
            row.stakes,
            json.loads(row.owners_json),
            tuple(json.loads(row.environments_json)),
            json.loads(row.monitor_json) if row.monitor_json else None,
        )

    @staticmethod
    def names(conn: Connection) -> list[str]:
        return [r[0] for r in conn.execute(select(t.workflows.c.name).order_by(t.workflows.c.name))]


def _version(row: Row[Any]) -> VersionRecord:
    return VersionRecord(
        row.version_id,
        row.workflow,
        json.loads(row.manifest_json),
        row.owner,
        row.parent_id,
        row.reason,
        row.track,
        row.source_commit,
        _utc(row.created_at),
    )


class VersionRepo:
    @staticmethod
    def add(conn: Connection, record: VersionRecord) -> None:
        conn.execute(
            insert(t.versions).values(
                version_id=record.version_id,
                workflow=record.workflow,
                manifest_json=canonical_json(record.manifest),
                owner=record.owner,
                parent_id=record.parent_id,
                reason=record.reason,
                track=record.track,
                source_commit=record.source_commit,
                created_at=record.created_at,
            )
        )

    @staticmethod
    def find(conn: Connection, version_id: str) -> VersionRecord | None:
        row = conn.execute(select(t.versions).where(t.versions.c.version_id == version_id)).first()
        return None if row is None else _version(row)

    @staticmethod
    def by_prefix(conn: Connection, prefix: str) -> list[VersionRecord]:
        rows = conn.execute(
            select(t.versions)
            .where(t.versions.c.version_id.startswith(prefix, autoescape=True))
            .limit(5)
        ).all()
        return [_version(r) for r in rows]

    @staticmethod
    def list(conn: Connection, workflow: str) -> list[VersionRecord]:
        rows = conn.execute(
            select(t.versions).where(t.versions.c.workflow == workflow).order_by(t.versions.c.seq)
        ).all()
        return [_version(r) for r in rows]

    @staticmethod
    def latest(conn: Connection, workflow: str) -> VersionRecord | None:
        row = conn.execute(
            select(t.versions)
            .where(t.versions.c.workflow == workflow)
            .order_by(t.versions.c.seq.desc())
            .limit(1)
        ).first()
        return None if row is None else _version(row)


class SuiteRepo:
    @staticmethod
    def exists(conn: Connection, suite_id: str) -> bool:
        found = conn.execute(select(t.suites.c.suite_id).where(t.suites.c.suite_id == suite_id))
        return found.first() is not None

    @staticmethod
    def add_if_missing(
        conn: Connection,
        *,
        suite_id: str,
        name: str,
        workflow: str,
        description: str,
        content: Mapping[str, Any],
    ) -> bool:
        exists = conn.execute(
            select(t.suites.c.suite_id).where(t.suites.c.suite_id == suite_id)
        ).first()
        if exists:
            return False
        conn.execute(
            insert(t.suites).values(
                suite_id=suite_id,
                name=name,
                workflow=workflow,
                description=description,
                content_json=canonical_json(content),
                created_at=now(),
            )
        )
        return True

    @staticmethod
    def get(conn: Connection, suite_id: str) -> SuiteRecord:
        row = conn.execute(select(t.suites).where(t.suites.c.suite_id == suite_id)).first()
        if row is None:
            raise NotFoundError(f"no suite '{suite_id[:12]}'")
        return SuiteRecord(
            row.suite_id,
            row.name,
            row.workflow,
            row.description,
            json.loads(row.content_json),
            _utc(row.created_at),
        )

    @staticmethod
    def current_id(conn: Connection, workflow: str) -> str | None:
        row = conn.execute(
            select(t.suite_history.c.suite_id)
            .where(t.suite_history.c.workflow == workflow)
            .order_by(t.suite_history.c.seq.desc())
            .limit(1)
        ).first()
        return None if row is None else str(row[0])

    @staticmethod
    def make_current(conn: Connection, workflow: str, suite_id: str, reason: str) -> None:
        conn.execute(
            insert(t.suite_history).values(
                workflow=workflow, suite_id=suite_id, reason=reason, created_at=now()
            )
        )


class PolicyRepo:
    @staticmethod
    def current(conn: Connection, workflow: str, env: str) -> tuple[str, Mapping[str, Any]] | None:
        row = conn.execute(
            select(t.policies.c.policy_id, t.policies.c.content_json)
            .where(and_(t.policies.c.workflow == workflow, t.policies.c.env == env))
            .order_by(t.policies.c.seq.desc())
            .limit(1)
        ).first()
        return None if row is None else (row.policy_id, json.loads(row.content_json))

    @staticmethod
    def add(
        conn: Connection, *, policy_id: str, workflow: str, env: str, content: Mapping[str, Any]
    ) -> None:
        conn.execute(
            insert(t.policies).values(
                policy_id=policy_id,
                workflow=workflow,
                env=env,
                content_json=canonical_json(content),
                created_at=now(),
            )
        )


def _eval(row: Row[Any]) -> EvalRecord:
    return EvalRecord(
        row.eval_id,
        row.version_id,
        row.suite_id,
        row.epochs,
        row.status,
        row.n_cases,
        row.n_errors,
        row.n_cached,
        json.loads(row.summary_json),
        _utc(row.started_at),
        _utc(row.finished_at) if row.finished_at else None,
    )


class EvalRepo:
    @staticmethod
    def start(
        conn: Connection,
        *,
        eval_id: str,
        version_id: str,
        suite_id: str,
        epochs: int,
        summary: Mapping[str, Any] | None = None,
    ) -> None:
        """A running eval; ``summary`` holds its ``running`` marker (pid, host, start)."""
        conn.execute(
            insert(t.eval_runs).values(
                eval_id=eval_id,
                version_id=version_id,
                suite_id=suite_id,
                epochs=epochs,
                status="running",
                summary_json=canonical_json(summary or {}),
                started_at=now(),
            )
        )

    @staticmethod
    def running(conn: Connection) -> list[EvalRecord]:
        rows = conn.execute(
            select(t.eval_runs)
            .where(t.eval_runs.c.status == "running")
            .order_by(t.eval_runs.c.started_at)
        ).all()
        return [_eval(r) for r in rows]

    @staticmethod
    def mark_interrupted(conn: Connection, eval_id: str, summary: Mapping[str, Any]) -> bool:
        """Running -> interrupted, only if still running (another process may have won)."""
        result = conn.execute(
            update(t.eval_runs)
            .where(and_(t.eval_runs.c.eval_id == eval_id, t.eval_runs.c.status == "running"))
            .values(status="interrupted", summary_json=canonical_json(summary))
        )
        return bool(result.rowcount)

    @staticmethod
    def finish(
        conn: Connection,
        eval_id: str,
        *,
        status: str,
        n_cases: int,
        n_errors: int,
        n_cached: int,
        summary: Mapping[str, Any],
    ) -> None:
        conn.execute(
            update(t.eval_runs)
            .where(t.eval_runs.c.eval_id == eval_id)
            .values(
                status=status,
                n_cases=n_cases,
                n_errors=n_errors,
                n_cached=n_cached,
                summary_json=canonical_json(summary),
                finished_at=now(),
            )
        )

    @staticmethod
    def latest(
        conn: Connection, version_id: str, suite_id: str, *, completed: bool = True
    ) -> EvalRecord | None:
        q = select(t.eval_runs).where(
            and_(t.eval_runs.c.version_id == version_id, t.eval_runs.c.suite_id == suite_id)
        )
        if completed:
            q = q.where(t.eval_runs.c.status == "completed")
        row = conn.execute(q.order_by(t.eval_runs.c.started_at.desc()).limit(1)).first()
        return None if row is None else _eval(row)

    @staticmethod
    def for_version(conn: Connection, version_id: str) -> list[EvalRecord]:
        rows = conn.execute(
            select(t.eval_runs)
            .where(t.eval_runs.c.version_id == version_id)
            .order_by(t.eval_runs.c.started_at)
        ).all()
        return [_eval(r) for r in rows]


class OutputRepo:
    """The eval cache: one row per (version, case content, epoch), errors included."""

    @staticmethod
    def get_many(
        conn: Connection,
        version_id: str,
        case_hashes: Iterable[str],
    ) -> dict[tuple[str, int], StoredOutput]:
        wanted = set(case_hashes)
        o = t.outputs.c  # only the columns used: no created_at to parse on every row
        rows = conn.execute(
            select(
                o.case_hash,
                o.epoch,
                o.text,
                o.data_json,
                o.latency_ms,
                o.tokens_in,
                o.tokens_out,
                o.cost_usd,
                o.error,
            ).where(o.version_id == version_id)
        ).all()
        return {
            (case_hash, epoch): StoredOutput(
                text, json.loads(data) if data else None, latency, t_in, t_out, cost, error
            )
            for case_hash, epoch, text, data, latency, t_in, t_out, cost, error in rows
            if case_hash in wanted
        }

    @staticmethod
    def put_many(
        conn: Connection, version_id: str, items: Sequence[tuple[str, int, StoredOutput]]
    ) -> None:
        """Replace the outputs of ``items``; a row another writer stores meanwhile (a second
        eval of the version at once, on PostgreSQL) is kept, not a conflict."""
        if not items:
            return
        items = sorted(items, key=lambda i: (i[1], i[0]))  # one order: writers never deadlock
        by_epoch: dict[int, list[str]] = {}
        for h, e, _ in items:
            by_epoch.setdefault(e, []).append(h)
        for epoch, hashes in by_epoch.items():  # replace what a re-run (or --no-cache) redoes
            for i in range(0, len(hashes), 500):
                conn.execute(
                    t.outputs.delete().where(
                        and_(
                            t.outputs.c.version_id == version_id,
                            t.outputs.c.epoch == epoch,
                            t.outputs.c.case_hash.in_(hashes[i : i + 500]),
                        )
                    )
                )
        at = now()
        rows = [
            {
                "version_id": version_id,
                "case_hash": h,
                "epoch": e,
                "text": o.text,
                "data_json": canonical_json(o.data) if o.data is not None else None,
                "latency_ms": o.latency_ms,
                "tokens_in": o.tokens_in,
                "tokens_out": o.tokens_out,
                "cost_usd": o.cost_usd,
                "error": o.error,
                "created_at": at,
            }
            for h, e, o in items
        ]
        conn.execute(_insert_new(conn, t.outputs), rows)


class ScoreRepo:
    @staticmethod
    def get_many(
        conn: Connection,
        version_id: str,
    ) -> dict[tuple[str, int, str], tuple[float, bool, str]]:
        s = t.scores.c
        rows = conn.execute(
            select(s.case_hash, s.epoch, s.scorer_id, s.value, s.passed, s.detail).where(
                s.version_id == version_id
            )
        ).all()
        return {
            (h, e, sid): (value, bool(passed), detail) for h, e, sid, value, passed, detail in rows
        }

    @staticmethod
    def forget(conn: Connection, version_id: str, case_hashes: Iterable[str]) -> None:
        hashes = sorted(set(case_hashes))
        for i in range(0, len(hashes), 500):
            conn.execute(
                t.scores.delete().where(
                    and_(
                        t.scores.c.version_id == version_id,
                        t.scores.c.case_hash.in_(hashes[i : i + 500]),
                    )
                )
            )

    @staticmethod
    def put_many(
        conn: Connection, version_id: str, items: Sequence[tuple[str, int, str, float, bool, str]]
    ) -> int:
        """Store scores; a row whose key is already stored is kept as it is, so two evals
        (or compares) of one version at once both finish. Returns how many landed."""
        if not items:
            return 0
        rows = [
            {
                "version_id": version_id,
                "case_hash": h,
                "epoch": e,
                "scorer_id": s,
                "value": v,
                "passed": p,
                "detail": d,
            }
            for h, e, s, v, p, d in sorted(items, key=lambda i: (i[0], i[1], i[2]))
        ]  # in key order: two PostgreSQL writers of the same keys wait, never deadlock
        # RETURNING counts the rows inserted, on both drivers
        stmt = _insert_new(conn, t.scores).returning(t.scores.c.case_hash)
        return len(conn.execute(stmt, rows).all())


def _insert_new(conn: Connection, table: Table) -> Any:
    """INSERT that skips a row whose key is already stored, on the connection's dialect."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table).on_conflict_do_nothing()


def _decision(row: Row[Any]) -> DecisionRecord:
    return DecisionRecord(
        row.decision_id,
        row.version_id,
        row.workflow,
        row.env,
        row.suite_id,
        row.policy_id,
        row.baseline_id,
        row.verdict,
        bool(row.checks_passed),
        row.change_class,
        json.loads(row.report_json),
        _utc(row.created_at),
    )


class DecisionRepo:
    @staticmethod
    def add(conn: Connection, record: DecisionRecord) -> None:
        conn.execute(
            insert(t.gate_decisions).values(
                decision_id=record.decision_id,
                version_id=record.version_id,
                workflow=record.workflow,
                env=record.env,
                suite_id=record.suite_id,
                policy_id=record.policy_id,
                baseline_id=record.baseline_id,
                verdict=record.verdict,
                checks_passed=record.checks_passed,
                change_class=record.change_class,
                report_json=canonical_json(record.report),
                created_at=record.created_at,
            )
        )

    @staticmethod
    def by_prefix(conn: Connection, prefix: str) -> list[DecisionRecord]:
        rows = conn.execute(
            select(t.gate_decisions)
            .where(t.gate_decisions.c.decision_id.startswith(prefix, autoescape=True))
            .limit(5)
        ).all()
        return [_decision(r) for r in rows]

    @staticmethod
    def latest(conn: Connection, version_id: str, env: str) -> DecisionRecord | None:
        row = conn.execute(
            select(t.gate_decisions)
            .where(and_(t.gate_decisions.c.version_id == version_id, t.gate_decisions.c.env == env))
            .order_by(t.gate_decisions.c.created_at.desc())
            .limit(1)
        ).first()
        return None if row is None else _decision(row)


class ApprovalRepo:
    @staticmethod
    def add(
        conn: Connection,
        *,
        version_id: str,
        env: str,
        workflow: str,
        approver: str,
        role: str,
        note: str,
    ) -> bool:
        exists = conn.execute(
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
        conn.execute(
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

    @staticmethod
    def list(conn: Connection, version_id: str, env: str) -> list[tuple[str, str]]:
        rows = conn.execute(
            select(t.approvals.c.approver, t.approvals.c.role)
            .where(and_(t.approvals.c.version_id == version_id, t.approvals.c.env == env))
            .order_by(t.approvals.c.created_at)
        ).all()
        return [(r.approver, r.role) for r in rows]


class EnvironmentRepo:
    @staticmethod
    def current(
        conn: Connection,
        workflow: str,
        env: str,
        *,
        lock: bool = False,
    ) -> tuple[str, int] | None:
        q = select(t.environments.c.version_id, t.environments.c.revision).where(
            and_(t.environments.c.workflow == workflow, t.environments.c.env == env)
        )
        if lock and conn.dialect.name == "postgresql":
            q = q.with_for_update()
        row = conn.execute(q).first()
        return None if row is None else (row.version_id, row.revision)

    @staticmethod
    def move(
        conn: Connection,
        *,
        workflow: str,
        env: str,
        version_id: str,
        expected: tuple[str, int] | None,
    ) -> int:
        """Compare-and-swap the alias; raises StaleAliasError if someone moved it first."""
        at = now()
        if expected is None:
            try:
                with conn.begin_nested():
                    conn.execute(
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
        done = conn.execute(
            update(t.environments)
            .where(
                and_(
                    t.environments.c.workflow == workflow,
                    t.environments.c.env == env,
                    t.environments.c.revision == expected[1],
                )
            )
            .values(version_id=version_id, revision=expected[1] + 1, updated_at=at)
        )
        if done.rowcount != 1:
            raise StaleAliasError(
                f"{workflow}@{env} moved while this promotion was being checked",
                hint="look again with `releasegate resolve`, re-run the gate, then promote",
            )
        return expected[1] + 1

    @staticmethod
    def all(conn: Connection, workflow: str) -> dict[str, str]:
        rows = conn.execute(
            select(t.environments.c.env, t.environments.c.version_id).where(
                t.environments.c.workflow == workflow
            )
        ).all()
        return {r.env: r.version_id for r in rows}

    @staticmethod
    def record(
        conn: Connection,
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
        conn.execute(
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

    @staticmethod
    def history(conn: Connection, workflow: str, env: str) -> list[HistoryRecord]:
        rows = conn.execute(
            select(t.env_history)
            .where(and_(t.env_history.c.workflow == workflow, t.env_history.c.env == env))
            .order_by(t.env_history.c.seq)
        ).all()
        return [
            HistoryRecord(
                r.seq,
                r.workflow,
                r.env,
                r.version_id,
                r.previous_id,
                r.action,
                r.actor,
                r.decision_id,
                r.reason,
                _utc(r.created_at),
            )
            for r in rows
        ]


def _event(row: Row[Any]) -> AuditEvent:
    try:
        payload = json.loads(row.payload_json)
    except (TypeError, ValueError):
        raise AuditBrokenError(
            f"audit event {row.seq} cannot be read: its payload is not valid JSON "
            "(it was altered outside releasegate)",
            seq=row.seq,
            hint="run `releasegate audit verify` to see the whole chain",
        ) from None
    return AuditEvent(
        seq=row.seq,
        at=_utc(row.at),
        kind=row.kind,
        actor=row.actor,
        workflow=row.workflow,
        subject=row.subject,
        payload=payload,
        prev_hash=row.prev_hash,
        hash=row.hash,
        key_id=row.key_id,
    )


class AuditState(NamedTuple):
    """What verify compares the chain with: the tables the loop's events stand for."""

    environments: dict[tuple[str, str], str]
    approvals: set[tuple[str, str, str, str]]  # version id, env, approver, role
    versions: set[str]
    history: dict[tuple[str, str], list[tuple[str, str]]]  # (action, version id) in seq order
    decisions: dict[str, Decided]


KeysFor = Callable[[bool], Keyring | None]  # create? -> keyring; Store.write passes one


class AuditRepo:
    @staticmethod
    def append(
        conn: Connection,
        *,
        kind: str,
        actor: str,
        workflow: str | None,
        subject: str | None,
        payload: Mapping[str, Any],
    ) -> AuditEvent:
        """Chain one event onto the head, under the head row's lock, signed with the chain's key.

        The key comes from the store (``Store.write`` hands it to the connection). A head
        left by the unkeyed releases is first anchored by an ``audit.keyed`` event.
        """
        head, prev = AuditRepo._head_event(conn, lock=True)
        keys = _keys_for(conn)(prev is None or prev.key_id is None)
        if keys is None:
            raise AuditKeyError("no audit key here")  # create=True always yields one
        if prev is not None and prev.key_id is None:
            prev = AuditRepo._anchor(conn, prev, keys, has_head=head is not None)
            head = (prev.seq, prev.hash)
        # round-trip precision: both SQLite and PostgreSQL keep microseconds
        event = chain_event(
            prev,
            seq=(prev.seq + 1) if prev is not None else 1,
            at=now(),
            kind=kind,
            actor=actor,
            workflow=workflow,
            subject=subject,
            payload=json.loads(canonical_json(payload)),
            key=AuditRepo._signing_key(prev, keys),
        )
        return AuditRepo._insert(conn, event, has_head=head is not None)

    @staticmethod
    def seal(conn: Connection) -> AuditEvent | None:
        """Anchor the events of the unkeyed releases now (after an upgrade); None if none."""
        head, prev = AuditRepo._head_event(conn, lock=True)
        if prev is None or prev.key_id is not None:
            return None
        keys = _keys_for(conn)(True)
        if keys is None:
            raise AuditKeyError("no audit key here")
        return AuditRepo._anchor(conn, prev, keys, has_head=head is not None)

    @staticmethod
    def _anchor(conn: Connection, prev: AuditEvent, keys: Keyring, *, has_head: bool) -> AuditEvent:
        """The first keyed event: it names the unkeyed events before it, so they are pinned."""
        return AuditRepo._insert(
            conn,
            chain_event(
                prev,
                seq=prev.seq + 1,
                at=now(),
                kind=KEYED,
                actor="releasegate",
                workflow=None,
                subject=None,
                payload=anchor_payload(prev),
                key=keys.newest,
            ),
            has_head=has_head,
        )

    @staticmethod
    def chain_key_id(conn: Connection) -> str | None:
        """The id of the key the next event is signed with (None: no keyed event yet)."""
        _, prev = AuditRepo._head_event(conn, lock=True)
        if prev is None or prev.key_id is None:
            return None
        return str(prev.payload.get("new_key_id")) if prev.kind == ROTATED else prev.key_id

    @staticmethod
    def _signing_key(prev: AuditEvent | None, keys: Keyring) -> AuditKey:
        if prev is None or prev.key_id is None:
            return keys.newest
        key_id = str(prev.payload.get("new_key_id")) if prev.kind == ROTATED else prev.key_id
        key = keys.get(key_id)
        if key is None:
            raise AuditKeyError(
                f"the audit log is signed with key {key_id}, which is not among the audit keys "
                f"here ({keys.source}: {', '.join(keys.ids)}); nothing was written",
                hint="point RELEASEGATE_AUDIT_KEY_FILE (or RELEASEGATE_AUDIT_KEY) at the keys "
                "this store was signed with",
            )
        return key

    @staticmethod
    def _head_event(
        conn: Connection, *, lock: bool = False
    ) -> tuple[tuple[int, str] | None, AuditEvent | None]:
        """The recorded head and its event; refuses, saying what happened, if they disagree."""
        q = select(t.audit_head).where(t.audit_head.c.id == 1)
        if lock and conn.dialect.name == "postgresql":
            q = q.with_for_update()
        row = conn.execute(q).first()
        e = t.audit_events.c
        newest = conn.execute(select(func.max(e.seq))).scalar()
        if row is None:
            if newest is not None:
                raise AuditBrokenError(
                    f"the audit log's head record is missing, though events up to {newest} "
                    "exist: it was deleted outside releasegate; nothing was written",
                    seq=newest,
                    hint="run `releasegate audit verify`, then restore the head you exported "
                    "with `releasegate audit restore-head SEQ:DIGEST`",
                )
            return None, None
        head = (int(row.seq), str(row.hash))
        if head[0] == 0:
            return head, None
        if newest is not None and newest > head[0]:
            raise AuditBrokenError(
                f"the audit log has event {newest} past its recorded head {head[0]}: "
                "events were added outside releasegate; nothing was written",
                seq=newest,
                hint="run `releasegate audit verify` to see where it broke",
            )
        last = conn.execute(select(t.audit_events).where(e.seq == head[0])).first()
        if last is None:
            raise AuditBrokenError(
                f"the audit log's newest event ({head[0]}) is missing: it was deleted "
                "outside releasegate; nothing was written",
                seq=head[0],
                hint="run `releasegate audit verify` to see where it broke",
            )
        return head, _event(last)

    @staticmethod
    def _insert(conn: Connection, event: AuditEvent, *, has_head: bool) -> AuditEvent:
        conn.execute(
            insert(t.audit_events).values(
                seq=event.seq,
                at=event.at,
                kind=event.kind,
                actor=event.actor,
                workflow=event.workflow,
                subject=event.subject,
                payload_json=canonical_json(event.payload),
                prev_hash=event.prev_hash,
                hash=event.hash,
                key_id=event.key_id,
            )
        )
        if not has_head:
            conn.execute(insert(t.audit_head).values(id=1, seq=event.seq, hash=event.hash))
        else:
            conn.execute(
                update(t.audit_head)
                .where(t.audit_head.c.id == 1)
                .values(seq=event.seq, hash=event.hash)
            )
        return event

    @staticmethod
    def set_head(conn: Connection, seq: int, digest: str) -> None:
        """Write the head record back (``audit restore-head``, after the chain was checked)."""
        conn.execute(delete(t.audit_head).where(t.audit_head.c.id == 1))
        conn.execute(insert(t.audit_head).values(id=1, seq=seq, hash=digest))

    @staticmethod
    def events(
        conn: Connection,
        *,
        workflow: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEvent]:
        q = select(t.audit_events)
        if workflow:
            q = q.where(t.audit_events.c.workflow == workflow)
        if limit:
            q = q.order_by(t.audit_events.c.seq.desc()).limit(limit)
            return [_event(r) for r in reversed(conn.execute(q).all())]
        return [_event(r) for r in conn.execute(q.order_by(t.audit_events.c.seq)).all()]

    @staticmethod
    def stream(conn: Connection) -> Iterator[AuditEvent]:
        """Every event in seq order, read as the walk goes (an unreadable one raises there)."""
        result = conn.execute(select(t.audit_events).order_by(t.audit_events.c.seq))
        for rows in result.partitions(2000):
            for row in rows:
                yield _event(row)

    @staticmethod
    def event(conn: Connection, seq: int) -> AuditEvent | None:
        row = conn.execute(select(t.audit_events).where(t.audit_events.c.seq == seq)).first()
        return None if row is None else _event(row)

    @staticmethod
    def head(conn: Connection) -> tuple[int, str] | None:
        row = conn.execute(select(t.audit_head).where(t.audit_head.c.id == 1)).first()
        return None if row is None else (row.seq, row.hash)

    @staticmethod
    def count(conn: Connection) -> int:
        return int(conn.execute(select(func.count()).select_from(t.audit_events)).scalar_one())

    @staticmethod
    def registration(conn: Connection, version_id: str) -> AuditEvent | None:
        """The ``version.registered`` event of a version (where it was registered from)."""
        row = conn.execute(
            select(t.audit_events)
            .where(
                and_(
                    t.audit_events.c.kind == "version.registered",
                    t.audit_events.c.subject == version_id,
                )
            )
            .order_by(t.audit_events.c.seq)
            .limit(1)
        ).first()
        return None if row is None else _event(row)

    @staticmethod
    def state(conn: Connection) -> AuditState:
        env, ap, h, gd = t.environments.c, t.approvals.c, t.env_history.c, t.gate_decisions.c
        history: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for r in conn.execute(select(h.workflow, h.env, h.action, h.version_id).order_by(h.seq)):
            history.setdefault((r.workflow, r.env), []).append((r.action, r.version_id))
        return AuditState(
            {
                (r.workflow, r.env): r.version_id
                for r in conn.execute(select(env.workflow, env.env, env.version_id))
            },
            {
                (r.version_id, r.env, r.approver, r.role)
                for r in conn.execute(select(ap.version_id, ap.env, ap.approver, ap.role))
            },
            {r.version_id for r in conn.execute(select(t.versions.c.version_id))},
            history,
            {
                r.decision_id: Decided(
                    r.version_id,
                    r.env,
                    r.verdict,
                    r.suite_id,
                    r.policy_id,
                    r.baseline_id,
                    bool(r.checks_passed),
                )
                for r in conn.execute(
                    select(
                        gd.decision_id,
                        gd.version_id,
                        gd.env,
                        gd.verdict,
                        gd.suite_id,
                        gd.policy_id,
                        gd.baseline_id,
                        gd.checks_passed,
                    )
                )
            },
        )


def _keys_for(conn: Connection) -> KeysFor:
    keys_for = conn.get_execution_options().get("releasegate_audit_keys")
    if keys_for is None:
        raise RuntimeError("audit events are written inside Store.write(), which knows the key")
    return keys_for  # type: ignore[no-any-return]


class EmbeddingRepo:
    """Vectors by text key, so a text is embedded once per store, not once per process."""

    def __init__(self, store_engine: Any) -> None:
        self._engine = store_engine

    def get_vectors(self, keys: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        import numpy as np

        out: dict[str, npt.NDArray[np.float32]] = {}
        with self._engine.connect() as conn:
            for i in range(0, len(keys), 500):
                chunk = list(keys[i : i + 500])
                for r in conn.execute(select(t.embeddings).where(t.embeddings.c.key.in_(chunk))):
                    out[r.key] = np.frombuffer(r.vector, dtype=np.float32).copy()
        return out

    def put_vectors(self, vectors: Mapping[str, npt.NDArray[np.float32]]) -> None:
        import numpy as np

        if not vectors:
            return
        with self._engine.connect() as conn:
            conn = conn.execution_options(releasegate_write=True)
            with conn.begin():
                have = set()
                keys = list(vectors)
                for i in range(0, len(keys), 500):
                    chunk = keys[i : i + 500]
                    have |= {
                        r[0]
                        for r in conn.execute(
                            select(t.embeddings.c.key).where(t.embeddings.c.key.in_(chunk))
                        )
                    }
                rows = [
                    {"key": k, "vector": np.asarray(v, dtype=np.float32).tobytes()}
                    for k, v in vectors.items()
                    if k not in have
                ]
                if rows:
                    conn.execute(insert(t.embeddings), rows)


__all__ = ["GENESIS"]


RUN_COLUMNS: tuple[str, ...] = (
    "run_id",
    "workflow",
    "version_id",
    "env",
    "started_at",
    "ended_at",
    "latency_ms",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "model",
    "operation",
    "status",
    "failure_reason",
    "retries",
    "escalated",
    "edited",
    "feedback",
    "label",
    "output_chars",
    "input_hash",
    "output_hash",
    "input",
    "output",
    "attributes_json",
    "source",
    "received_at",
)
"""The order of a run row as ``RunRepo.insert_many`` takes it."""


def _driver(conn: Connection) -> tuple[Any, str]:
    """The DB-API connection under ``conn`` (same transaction) and its placeholder."""
    raw = conn.connection.driver_connection
    return raw, "?" if conn.dialect.name == "sqlite" else "%s"


def _fetch(conn: Connection, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Rows as plain tuples: a million-row window skips SQLAlchemy's Row objects."""
    raw, mark = _driver(conn)
    cur = raw.cursor()
    try:
        cur.execute(sql.replace("?", mark), tuple(params))
        return [tuple(r) for r in cur.fetchall()] if mark == "%s" else cur.fetchall()
    finally:
        cur.close()


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


def _comparable(row: Sequence[Any]) -> tuple[Any, ...]:
    """A ``runs`` row, stored or about to be inserted (with its sentinels), as plain
    values to compare: NULL for every sentinel, flags as bools, without the source and
    the time it was received."""
    out: list[Any] = []
    for i in RunRepo._COMPARED:
        value = row[i]
        null = RunRepo._NULLS.get(RUN_COLUMNS[i])
        if null == "flag":
            value = bool(value)
        elif null == "nan":
            value = None if value is None or value != value else float(value)
        elif null == "-1":
            value = None if value is None or value == -1 else value
        elif null == "''":
            value = None if value == "" else value
        out.append(value)
    return tuple(out)


class RunRepo:
    """Production runs: bulk, idempotent inserts and window scans, in raw DB-API for speed.

    Imports reach 100k+ runs/s only without per-row ORM work, so this repository
    talks to the driver directly, inside the caller's transaction.
    """

    # How a missing value may travel in an inserted row, and the SQL that turns it back
    # into NULL. The sqlite3 driver binds str, int and float in ~0.1 µs but None and bool
    # in ~1 µs (both go through its adaptation protocol), a third of a bulk insert.
    _NULLS: dict[str, str] = {
        **dict.fromkeys(
            ("model", "operation", "failure_reason", "label", "input_hash", "output_hash"), "''"
        ),
        "attributes_json": "''",
        "output_chars": "-1",
        "cost_usd": "nan",
        "feedback": "nan",
        "escalated": "flag",
        "edited": "flag",
    }

    @staticmethod
    def _insert_sql(dialect: str) -> str:
        sqlite = dialect == "sqlite"
        mark = "?" if sqlite else "%s"
        values = []
        for column in RUN_COLUMNS:
            null = RunRepo._NULLS.get(column)
            if null is None or (sqlite and null in ("nan", "flag")):  # SQLite binds NaN as NULL
                values.append(mark)
            elif null == "nan":
                values.append(f"NULLIF({mark}, 'NaN'::float8)")
            elif null == "flag":
                values.append(f"CAST(CAST({mark} AS INTEGER) AS BOOLEAN)")
            else:
                values.append(f"NULLIF({mark}, {null})")
        head = f"INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join(values)})"
        if sqlite:
            return f"INSERT OR IGNORE {head}"
        return f"INSERT {head} ON CONFLICT (run_id) DO NOTHING"

    @staticmethod
    def insert_many(conn: Connection, rows: Iterable[Sequence[Any]]) -> int:
        """Insert rows in ``RUN_COLUMNS`` order; a ``run_id`` already stored is skipped.

        NULL is None, or, faster, a sentinel no valid run holds: '' for the optional
        names, hashes and ``attributes_json``, NaN for ``cost_usd``/``feedback``, -1 for
        ``output_chars``; the flags may be 0/1. Returns how many landed, so a re-imported
        file reports its duplicates.
        """
        raw, _ = _driver(conn)
        sql = RunRepo._insert_sql(conn.dialect.name)
        if conn.dialect.name == "sqlite":
            before = raw.total_changes
            raw.executemany(sql, rows)
            return int(raw.total_changes - before)
        rows = list(rows)
        if not rows:
            return 0
        cur = raw.cursor()
        try:
            cur.executemany(sql, rows)
            return int(cur.rowcount)
        finally:
            cur.close()

    @staticmethod
    def unland(conn: Connection, received_at: float) -> int:
        """Delete the runs one import landed: its ``received_at`` stamp is its own."""
        result = conn.execute(t.runs.delete().where(t.runs.c.received_at == received_at))
        return int(result.rowcount or 0)

    BULK_CACHE_KIB = 256 * 1024

    @staticmethod
    def bulk(conn: Connection) -> RunRepo.BulkInsert:
        """A large page cache for a bulk insert (SQLite), back to what it was after: the
        ``run_id`` index of a million-run store outgrows the default 2 MB, and then most
        inserts miss the cache and spill dirty pages mid-transaction."""
        return RunRepo.BulkInsert(conn)

    class BulkInsert:
        """``RunRepo.bulk``: raises SQLite's page cache for one connection, then restores it."""

        def __init__(self, conn: Connection) -> None:
            self._conn = conn
            self._before: int | None = None

        def __enter__(self) -> None:
            if self._conn.dialect.name == "sqlite":
                raw, _ = _driver(self._conn)
                self._before = int(raw.execute("PRAGMA cache_size").fetchone()[0])
                raw.execute(f"PRAGMA cache_size = -{RunRepo.BULK_CACHE_KIB}")

        def __exit__(self, *exc: object) -> None:
            if self._before is not None:
                raw, _ = _driver(self._conn)
                raw.execute(f"PRAGMA cache_size = {self._before}")

    @staticmethod
    def window(
        conn: Connection,
        workflow: str,
        env: str,
        start: float,
        end: float,
        columns: Sequence[str],
        version_id: str | None = None,
    ) -> list[tuple[Any, ...]]:
        """``columns`` of the runs that started in ``[start, end)``, oldest first."""
        for c in columns:
            if c not in RUN_COLUMNS and c != "seq":
                raise ValueError(f"unknown run column {c!r}")
        sql = (
            f"SELECT {', '.join(columns)} FROM runs WHERE workflow = ? AND env = ?"
            " AND started_at >= ? AND started_at < ?"
        )
        params: list[Any] = [workflow, env, start, end]
        if version_id is not None:
            sql += " AND version_id = ?"
            params.append(version_id)
        return _fetch(conn, sql + " ORDER BY started_at", params)

    @staticmethod
    def texts(conn: Connection, seqs: Sequence[int], column: str = "input") -> dict[int, str]:
        """``{seq: text}`` of the runs ``seqs`` (``input`` or ``output``; runs without one are
        left out): a primary-key lookup, so quoting a few flagged runs reads only those."""
        if column not in ("input", "output"):
            raise ValueError(f"not a text column: {column!r}")
        wanted = sorted({int(x) for x in seqs})
        if not wanted:
            return {}
        sql = f"SELECT seq, {column} FROM runs WHERE seq IN ({_marks(wanted)})"
        return {int(q): t for q, t in _fetch(conn, sql, wanted) if t is not None}

    SIGNAL_FLAGS = (1, 2, 4, 8, 16)
    """Bits of ``signal_columns``' ``flags``: error, escalated, edited, negative feedback,
    any feedback."""

    @staticmethod
    def signal_columns(
        conn: Connection,
        workflow: str,
        env: str,
        start: float,
        end: float,
        *,
        started: bool = False,
        extra: Sequence[str] = (),
    ) -> npt.NDArray[Any]:
        """What scalar drift reads of the runs that started in ``[start, end)``, oldest
        first, as one numpy record per run: ``flags`` (``SIGNAL_FLAGS``), ``latency_ms``,
        ``cost_usd`` and ``output_chars`` (NaN where NULL), ``label`` (None where NULL),
        ``started_at`` first when asked and the ``extra`` columns last (as read).

        Rows go from the cursor straight into numpy, the four flags folded into one small
        integer (a cached Python object): a million runs cost five objects each, not nine.
        """
        import numpy as np

        for c in extra:
            if c not in RUN_COLUMNS and c != "seq":
                raise ValueError(f"unknown run column {c!r}")
        # NULL numbers come back as +inf (no stored run holds one) and become NaN here
        inf = "9e999" if conn.dialect.name == "sqlite" else "'Infinity'::float8"
        # the flags and the output length travel as one integer (chars * 32 + flags): a
        # field fewer to convert per run, a tenth of the fetch
        head: list[tuple[str, str]] = [("started_at", "f8")] if started else []
        tail = [("label", "O"), *((c, "O") for c in extra)]
        read = [*head, ("packed", "i8"), ("latency_ms", "f8"), ("cost_usd", "f8"), *tail]
        sql = (
            f"SELECT {'started_at, ' if started else ''}"
            "CASE WHEN status <> 'ok' THEN 1 ELSE 0 END + CASE WHEN escalated THEN 2 ELSE 0 END"
            " + CASE WHEN edited THEN 4 ELSE 0 END + CASE WHEN feedback < 0 THEN 8 ELSE 0 END"
            " + CASE WHEN feedback IS NULL THEN 0 ELSE 16 END"
            " + 32 * CAST(COALESCE(output_chars, -1) AS BIGINT),"
            f" latency_ms, COALESCE(cost_usd, {inf}), label"
            f"{''.join(', ' + c for c in extra)}"
            " FROM runs WHERE workflow = ? AND env = ? AND started_at >= ? AND started_at < ?"
            " ORDER BY started_at"
        )
        raw, mark = _driver(conn)
        cur = raw.cursor()
        try:
            cur.execute(sql.replace("?", mark), (workflow, env, start, end))
            got = np.fromiter(cur, dtype=np.dtype(read))
        finally:
            cur.close()
        fields = [*head, ("flags", "u1"), ("latency_ms", "f8"), ("cost_usd", "f8")]
        runs = np.empty(len(got), dtype=np.dtype([*fields, ("output_chars", "f8"), *tail]))
        for name, _ in [*head, ("latency_ms", ""), ("cost_usd", ""), *tail]:
            runs[name] = got[name]
        packed = got["packed"]
        runs["flags"] = packed & 31
        chars = (packed >> 5).astype(np.float64)  # floor division: NULL's -1 stays -1
        chars[chars < 0] = np.nan
        runs["output_chars"] = chars
        cost = runs["cost_usd"]
        cost[np.isinf(cost)] = np.nan
        return runs

    @staticmethod
    def known_names(conn: Connection, version_ids: Iterable[str]) -> KnownNames:
        """Every workflow with its environments, and the workflow of each of ``version_ids``
        that is registered: what ``domain.runs.name_problems`` checks runs against."""
        envs = {
            name: tuple(json.loads(raw))
            for name, raw in _fetch(conn, "SELECT name, environments_json FROM workflows", [])
        }
        owners: dict[str, str] = {}
        ids = sorted(set(version_ids))
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            sql = f"SELECT version_id, workflow FROM versions WHERE version_id IN ({_marks(part)})"
            owners.update(_fetch(conn, sql, part))
        return KnownNames(envs, owners)

    @staticmethod
    def received_before(conn: Connection, run_ids: Iterable[str], received_at: float) -> list[str]:
        """Which of ``run_ids`` were stored by an earlier write than the one at ``received_at``."""
        ids = sorted(set(run_ids))
        out: list[str] = []
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            sql = f"SELECT run_id FROM runs WHERE run_id IN ({_marks(part)}) AND received_at < ?"
            out.extend(r[0] for r in _fetch(conn, sql, [*part, received_at]))
        return out

    _COMPARED = tuple(i for i, c in enumerate(RUN_COLUMNS) if c not in ("source", "received_at"))

    @staticmethod
    def changed(conn: Connection, rows: Sequence[Sequence[Any]]) -> list[str]:
        """The run_ids of ``rows`` (as ``insert_many`` takes them) that are stored with
        other content: a run is recorded once, so a re-send must be identical. Call it
        after ``insert_many`` skipped some rows; the rows it just inserted compare equal."""
        wanted = {row[0]: row for row in rows}
        out: list[str] = []
        ids = sorted(wanted)
        columns = ", ".join(RUN_COLUMNS)
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            sql = f"SELECT {columns} FROM runs WHERE run_id IN ({_marks(part)})"
            for stored in _fetch(conn, sql, part):
                if _comparable(stored) != _comparable(wanted[stored[0]]):
                    out.append(stored[0])
        return sorted(out)

    @staticmethod
    def get(conn: Connection, run_id: str) -> dict[str, Any] | None:
        rows = _fetch(conn, f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE run_id = ?", [run_id])
        return dict(zip(RUN_COLUMNS, rows[0], strict=True)) if rows else None

    @staticmethod
    def by_prefix(conn: Connection, prefix: str, limit: int = 5) -> list[str]:
        column = t.runs.c.run_id
        query = select(column).where(column.startswith(prefix, autoescape=True))
        return list(conn.execute(query.order_by(column).limit(limit)).scalars())

    @staticmethod
    def count(conn: Connection) -> int:
        return int(_fetch(conn, "SELECT count(*) FROM runs", [])[0][0])


ALERT_PENDING, ALERT_ROUTED, ALERT_FAILED = "pending", "routed", "failed"


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

    @staticmethod
    def add(
        conn: Connection,
        *,
        workflow: str,
        env: str,
        signal: str,
        severity: str,
        message: str,
        payload: Mapping[str, Any],
        routed: Sequence[str],
        at: datetime | None = None,
        status: str = ALERT_ROUTED,
        lease_until: datetime | None = None,
    ) -> int:
        result = conn.execute(
            insert(t.alerts).values(
                workflow=workflow,
                env=env,
                signal=signal,
                severity=severity,
                message=message,
                payload_json=canonical_json(payload),
                routed_json=canonical_json(list(routed)),
                created_at=at or now(),
                status=status,
                attempts=0,
                lease_until=lease_until,
            )
        )
        key = result.inserted_primary_key
        return int(key[0]) if key else 0

    @staticmethod
    def claim(
        conn: Connection,
        *,
        workflow: str,
        env: str,
        signal: str,
        severity: str,
        message: str,
        payload: Mapping[str, Any],
        cooldown: timedelta,
        at: datetime,
        lease: timedelta,
    ) -> int | None:
        """Add the alert as ``pending``, its lease held by the caller, unless the same
        signal alerted within ``cooldown``.

        Call inside a write transaction. On PostgreSQL the check-then-insert holds the
        one-row ``audit_head`` lock (SQLite's BEGIN IMMEDIATE already serialises writers),
        so two processes raising the same alert at once store, and send, it once.
        """
        if conn.dialect.name != "sqlite":
            conn.execute(select(t.audit_head.c.id).where(t.audit_head.c.id == 1).with_for_update())
        last = AlertRepo.last(conn, workflow, env, signal)
        if last is not None and at - last.created_at < cooldown:
            return None
        return AlertRepo.add(
            conn,
            workflow=workflow,
            env=env,
            signal=signal,
            severity=severity,
            message=message,
            payload=payload,
            routed=[],
            at=at,
            status=ALERT_PENDING,
            lease_until=now() + lease,
        )

    @staticmethod
    def due(conn: Connection, workflow: str, env: str) -> list[AlertRecord]:
        """Pending and failed alerts of ``workflow@env`` whose lease (if any) has run out."""
        a = t.alerts.c
        rows = conn.execute(
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

    @staticmethod
    def take(conn: Connection, seq: int, lease: timedelta) -> bool:
        """Take the lease of a pending or failed alert whose lease has run out; False when
        another monitor holds it or it was delivered meanwhile (one atomic UPDATE)."""
        a = t.alerts.c
        at = now()
        result = conn.execute(
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

    @staticmethod
    def finish(conn: Connection, seq: int, routed: Sequence[str], error: str | None) -> None:
        """Record one delivery attempt: ``routed`` when ``error`` is None, else ``failed``."""
        a = t.alerts.c
        conn.execute(
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

    @staticmethod
    def last(conn: Connection, workflow: str, env: str, signal: str) -> AlertRecord | None:
        a = t.alerts.c
        row = conn.execute(
            select(t.alerts)
            .where(and_(a.workflow == workflow, a.env == env, a.signal == signal))
            .order_by(a.seq.desc())
            .limit(1)
        ).first()
        return _alert(row) if row else None

    @staticmethod
    def between(
        conn: Connection, workflow: str, start: datetime, end: datetime, env: str | None = None
    ) -> list[AlertRecord]:
        a = t.alerts.c
        cond = and_(a.workflow == workflow, a.created_at >= start, a.created_at < end)
        if env is not None:
            cond = and_(cond, a.env == env)
        rows = conn.execute(select(t.alerts).where(cond).order_by(a.seq)).all()
        return [_alert(r) for r in rows]


def _alert(row: Row[Any]) -> AlertRecord:
    return AlertRecord(
        seq=row.seq,
        workflow=row.workflow,
        env=row.env,
        signal=row.signal,
        severity=row.severity,
        message=row.message,
        payload=json.loads(row.payload_json),
        routed=json.loads(row.routed_json),
        created_at=_utc(row.created_at),
        status=row.status,
        attempts=row.attempts,
        last_error=row.last_error,
        lease_until=_utc(row.lease_until) if row.lease_until is not None else None,
        routed_at=_utc(row.routed_at) if row.routed_at is not None else None,
    )
