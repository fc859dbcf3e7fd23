"""The audit log: hash-chained, signed events appended under the head row's lock.

The head record names the newest event; every append checks it against the events
so a row added or deleted outside releasegate is refused, not chained onto."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

from sqlalchemy import Connection, Row, and_, delete, func, insert, select, update

from releasegate.domain.audit import (
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
from releasegate.errors import (
    AuditBrokenError,
    AuditKeyError,
)
from releasegate.store import tables as t
from releasegate.store.rows import as_utc, now


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
        at=as_utc(row.at),
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
    paused: dict[tuple[str, str], str]  # (workflow, env) -> the reason, while paused


KeysFor = Callable[[bool], Keyring | None]  # create? -> keyring; Store.write passes one


class AuditRepo:
    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def append(
        self,
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
        head, prev = self._head_event(lock=True)
        keys = _keys_for(self.conn)(prev is None or prev.key_id is None)
        if keys is None:
            raise AuditKeyError("no audit key here")  # create=True always yields one
        if prev is not None and prev.key_id is None:
            prev = self._anchor(prev, keys, has_head=head is not None)
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
        return self._insert(event, has_head=head is not None)

    def seal(self) -> AuditEvent | None:
        """Anchor the events of the unkeyed releases now (after an upgrade); None if none."""
        head, prev = self._head_event(lock=True)
        if prev is None or prev.key_id is not None:
            return None
        keys = _keys_for(self.conn)(True)
        if keys is None:
            raise AuditKeyError("no audit key here")
        return self._anchor(prev, keys, has_head=head is not None)

    def _anchor(self, prev: AuditEvent, keys: Keyring, *, has_head: bool) -> AuditEvent:
        """The first keyed event: it names the unkeyed events before it, so they are pinned."""
        return self._insert(
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

    def chain_key_id(self) -> str | None:
        """The id of the key the next event is signed with (None: no keyed event yet)."""
        _, prev = self._head_event(lock=True)
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

    def _head_event(
        self, *, lock: bool = False
    ) -> tuple[tuple[int, str] | None, AuditEvent | None]:
        """The recorded head and its event; refuses, saying what happened, if they disagree."""
        q = select(t.audit_head).where(t.audit_head.c.id == 1)
        if lock and self.conn.dialect.name == "postgresql":
            q = q.with_for_update()
        row = self.conn.execute(q).first()
        e = t.audit_events.c
        newest = self.conn.execute(select(func.max(e.seq))).scalar()
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
        last = self.conn.execute(select(t.audit_events).where(e.seq == head[0])).first()
        if last is None:
            raise AuditBrokenError(
                f"the audit log's newest event ({head[0]}) is missing: it was deleted "
                "outside releasegate; nothing was written",
                seq=head[0],
                hint="run `releasegate audit verify` to see where it broke",
            )
        return head, _event(last)

    def _insert(self, event: AuditEvent, *, has_head: bool) -> AuditEvent:
        self.conn.execute(
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
            self.conn.execute(insert(t.audit_head).values(id=1, seq=event.seq, hash=event.hash))
        else:
            self.conn.execute(
                update(t.audit_head)
                .where(t.audit_head.c.id == 1)
                .values(seq=event.seq, hash=event.hash)
            )
        return event

    def set_head(self, seq: int, digest: str) -> None:
        """Write the head record back (``audit restore-head``, after the chain was checked)."""
        self.conn.execute(delete(t.audit_head).where(t.audit_head.c.id == 1))
        self.conn.execute(insert(t.audit_head).values(id=1, seq=seq, hash=digest))

    def events(
        self,
        *,
        workflow: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEvent]:
        q = select(t.audit_events)
        if workflow:
            q = q.where(t.audit_events.c.workflow == workflow)
        if limit:
            q = q.order_by(t.audit_events.c.seq.desc()).limit(limit)
            return [_event(r) for r in reversed(self.conn.execute(q).all())]
        return [_event(r) for r in self.conn.execute(q.order_by(t.audit_events.c.seq)).all()]

    def stream(self) -> Iterator[AuditEvent]:
        """Every event in seq order, read as the walk goes (an unreadable one raises there)."""
        result = self.conn.execute(select(t.audit_events).order_by(t.audit_events.c.seq))
        for rows in result.partitions(2000):
            for row in rows:
                yield _event(row)

    def event(self, seq: int) -> AuditEvent | None:
        row = self.conn.execute(select(t.audit_events).where(t.audit_events.c.seq == seq)).first()
        return None if row is None else _event(row)

    def head(self) -> tuple[int, str] | None:
        row = self.conn.execute(select(t.audit_head).where(t.audit_head.c.id == 1)).first()
        return None if row is None else (row.seq, row.hash)

    def count(self) -> int:
        return int(self.conn.execute(select(func.count()).select_from(t.audit_events)).scalar_one())

    def registration(self, version_id: str) -> AuditEvent | None:
        """The ``version.registered`` event of a version (where it was registered from)."""
        return self._one("version.registered", version_id, newest=False)

    def _one(self, kind: str, subject: str, *, newest: bool) -> AuditEvent | None:
        """The first (or the newest) event of ``kind`` about ``subject``."""
        seq = t.audit_events.c.seq
        row = self.conn.execute(
            select(t.audit_events)
            .where(and_(t.audit_events.c.kind == kind, t.audit_events.c.subject == subject))
            .order_by(seq.desc() if newest else seq)
            .limit(1)
        ).first()
        return None if row is None else _event(row)

    def suite_source(self, suite_id: str) -> str | None:
        """The file a suite was registered from, as its latest ``suite.changed`` names it."""
        event = self._one("suite.changed", suite_id, newest=True)
        source = None if event is None else event.payload.get("source")
        return source if isinstance(source, str) and source else None

    def keys(self) -> Keyring | None:
        """The audit keys this write transaction signs with (None: no key here yet)."""
        return _keys_for(self.conn)(False)

    def gate_decided(self, version_id: str, decision_id: str) -> AuditEvent | None:
        """The ``gate.decided`` event that names ``decision_id`` (a version has a few)."""
        rows = self.conn.execute(
            select(t.audit_events).where(
                and_(
                    t.audit_events.c.kind == "gate.decided",
                    t.audit_events.c.subject == version_id,
                )
            )
        ).all()
        events = (_event(r) for r in rows)
        return next((e for e in events if e.payload.get("decision_id") == decision_id), None)

    def state(self) -> AuditState:
        env, ap, h, gd = t.environments.c, t.approvals.c, t.env_history.c, t.gate_decisions.c
        history: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for r in self.conn.execute(
            select(h.workflow, h.env, h.action, h.version_id).order_by(h.seq)
        ):
            history.setdefault((r.workflow, r.env), []).append((r.action, r.version_id))
        return AuditState(
            {
                (r.workflow, r.env): r.version_id
                for r in self.conn.execute(select(env.workflow, env.env, env.version_id))
            },
            {
                (r.version_id, r.env, r.approver, r.role)
                for r in self.conn.execute(select(ap.version_id, ap.env, ap.approver, ap.role))
            },
            {r.version_id for r in self.conn.execute(select(t.versions.c.version_id))},
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
                for r in self.conn.execute(
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
            {
                (r.workflow, r.env): r.paused_reason
                for r in self.conn.execute(
                    select(env.workflow, env.env, env.paused_reason).where(
                        env.paused_reason.isnot(None)
                    )
                )
            },
        )


def _keys_for(conn: Connection) -> KeysFor:
    keys_for = conn.get_execution_options().get("releasegate_audit_keys")
    if keys_for is None:
        raise RuntimeError("audit events are written inside Store.write(), which knows the key")
    return keys_for  # type: ignore[no-any-return]
