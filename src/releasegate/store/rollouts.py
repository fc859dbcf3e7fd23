"""Rollouts: one row per progressive rollout, and the runs its arms served.

The repository is bound to a connection (the caller's transaction) and takes and returns
``domain.rollout.Rollout``. A rollout changes by compare-and-swap on its revision, and
only while it runs (``save``), so of two checks that both decide to abort exactly one
writes it, and the other learns it lost. ``active`` (unique) keeps one running rollout
per environment. ``arm_runs`` reads the runs served under a rollout since a check's
cursor, in arrival order, straight from the driver into numpy. The domain types and
numpy are imported when first needed: ``resolve`` (the request path) only asks ``route``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from releasegate.domain.identity import canonical_json
from releasegate.domain.runs import IS_EDITED, IS_ERROR, IS_ESCALATED
from releasegate.errors import RolloutRefusedError
from releasegate.store import tables as t
from releasegate.store.rows import as_utc, driver
from releasegate.store.runs import fact_sql

if TYPE_CHECKING:
    from releasegate.domain.rollout import ArmRuns, Rollout
    from releasegate.domain.shadow import ShadowRuns

SKEW_S = 300.0
"""Runs may start up to this long before the rollout by their clock and still count."""
MISSING = 9e99
"""No run holds it: a NULL feedback or cost read as it comes back as NaN."""
T = TypeVar("T")


def _active_key(r: Rollout) -> str | None:
    return f"{r.workflow}@{r.env}" if r.is_running else None


def _values(r: Rollout) -> dict[str, Any]:
    return {
        "step": r.step,
        "mode": r.mode,
        "weight": r.weight,
        "state": r.state,
        "active": _active_key(r),
        "evidence_json": canonical_json(r.evidence.to_dict()),
        "reason": r.reason,
        "revision": r.revision,
        "updated_at": r.updated_at,
        "step_started_at": r.step_started_at,
    }


class ActiveRoute(NamedTuple):
    """The few fields of a running rollout that routing needs."""

    rollout_id: str
    stable_id: str
    canary_id: str
    weight: float
    mode: str
    """``canary`` (``weight``% of keys get it) or ``shadow`` (nobody is served it)."""


def _rollout(row: Any) -> Rollout:
    from releasegate.domain.rollout import Evidence, Rollout, rollout_policy_from_content

    return Rollout(
        rollout_id=row.rollout_id,
        workflow=row.workflow,
        env=row.env,
        stable_id=row.stable_id,
        canary_id=row.canary_id,
        policy=rollout_policy_from_content(json.loads(row.policy_json)),
        step=row.step,
        state=row.state,
        started_at=as_utc(row.started_at),
        updated_at=as_utc(row.updated_at),
        step_started_at=as_utc(row.step_started_at),
        evidence=Evidence.from_dict(json.loads(row.evidence_json)),
        actor=row.actor,
        reason=row.reason,
        revision=row.revision,
        mode=row.mode,
    )


class RolloutRepo:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, r: Rollout) -> None:
        """Store a new rollout; RolloutRefusedError if one already runs there."""
        try:
            with self.conn.begin_nested():
                self.conn.execute(
                    insert(t.rollouts).values(
                        rollout_id=r.rollout_id,
                        workflow=r.workflow,
                        env=r.env,
                        stable_id=r.stable_id,
                        canary_id=r.canary_id,
                        steps_json=json.dumps(list(r.steps)),
                        policy_json=canonical_json(r.policy.content()),
                        actor=r.actor,
                        started_at=r.started_at,
                        **_values(r),
                    )
                )
        except IntegrityError:
            raise RolloutRefusedError(
                f"a rollout already runs in {r.workflow}@{r.env}",
                hint=f"see `releasegate rollout status {r.workflow} --env {r.env}`; "
                "advance or abort it first",
            ) from None

    def get(self, rollout_id: str) -> Rollout | None:
        row = self.conn.execute(
            select(t.rollouts).where(t.rollouts.c.rollout_id == rollout_id)
        ).first()
        return None if row is None else _rollout(row)

    def active(self, workflow: str, env: str) -> Rollout | None:
        """The running rollout of ``workflow@env`` (one unique-index lookup), or None."""
        row = self.conn.execute(
            select(t.rollouts).where(t.rollouts.c.active == f"{workflow}@{env}")
        ).first()
        return None if row is None else _rollout(row)

    def canaries(self) -> list[tuple[str, str, str]]:
        """(workflow, env, canary version id) of every running rollout."""
        r = t.rollouts.c
        rows = self.conn.execute(
            select(r.workflow, r.env, r.canary_id).where(r.active.is_not(None))
        ).all()
        return [(w, env, c) for w, env, c in rows]

    def was_candidate(self, workflow: str, env: str, version_id: str) -> bool:
        """Was this version the candidate (canary or shadow) of any rollout of ``env``?"""
        r = t.rollouts.c
        q = select(r.rollout_id).where(
            r.workflow == workflow, r.env == env, r.canary_id == version_id
        )
        return self.conn.execute(q.limit(1)).first() is not None

    def route(self, workflow: str, env: str) -> ActiveRoute | None:
        """Who routes where under the running rollout of ``workflow@env`` (the resolver's
        one extra indexed lookup), or None."""
        c = t.rollouts.c
        row = self.conn.execute(
            select(c.rollout_id, c.stable_id, c.canary_id, c.weight, c.mode).where(
                c.active == f"{workflow}@{env}"
            )
        ).first()
        return None if row is None else ActiveRoute(*row)

    def latest(self, workflow: str, env: str) -> Rollout | None:
        """The newest rollout of ``workflow@env``, running or ended."""
        c = t.rollouts.c
        row = self.conn.execute(
            select(t.rollouts)
            .where(and_(c.workflow == workflow, c.env == env))
            .order_by(c.started_at.desc(), c.rollout_id.desc())
            .limit(1)
        ).first()
        return None if row is None else _rollout(row)

    def save(self, r: Rollout, *, expected_revision: int) -> bool:
        """Write ``r`` over the stored rollout if it still runs at ``expected_revision``;
        False when another writer changed it first (nothing written)."""
        c = t.rollouts.c
        done = self.conn.execute(
            update(t.rollouts)
            .where(
                and_(
                    c.rollout_id == r.rollout_id,
                    c.revision == expected_revision,
                    c.state == "running",
                )
            )
            .values(**_values(r))
        )
        return done.rowcount == 1

    def last_run_seq(self) -> int:
        """The newest stored run's sequence: a new rollout reads runs after it."""
        return int(self.conn.execute(select(func.coalesce(func.max(t.runs.c.seq), 0))).scalar_one())

    def reference_runs(
        self, workflow: str, env: str, version_id: str, before: float, limit: int = 5000
    ) -> tuple[list[float], list[float]]:
        """Latency and cost (NaN where not given) of the newest ``limit`` runs of the
        version in the environment before ``before``: the stable's normal, for the check."""
        sql = (
            "SELECT latency_ms, cost_usd FROM runs WHERE workflow = ? AND env = ?"
            " AND started_at < ? AND version_id = ? ORDER BY started_at DESC LIMIT ?"
        )
        raw, mark = driver(self.conn)
        cur = raw.cursor()
        try:
            cur.execute(sql.replace("?", mark), (workflow, env, before, version_id, limit))
            rows = cur.fetchall()
        finally:
            cur.close()
        latency = [float(r[0]) for r in rows]
        cost = [float("nan") if r[1] is None else float(r[1]) for r in rows]
        return latency, cost

    def _since(
        self, r: Rollout, after_seq: int, columns: str, other_arm: str, read: Callable[[Any], T]
    ) -> tuple[T, int]:
        """``read`` of a cursor over ``columns`` (``?`` marks take ``MISSING``) of the runs
        the stable arm and ``other_arm`` of ``r`` served after ``after_seq``, in arrival
        order; and the sequence read up to."""
        # a range of the primary key from the cursor: on SQLite the unary + keeps the
        # planner off the (workflow, env, started_at) index, which would scan every run of
        # the rollout on each check to find the few new ones
        plus = "+" if self.conn.dialect.name == "sqlite" else ""
        sql = (
            f"SELECT {columns}"
            f" FROM runs WHERE seq > ? AND seq <= ? AND {plus}workflow = ? AND {plus}env = ?"
            f" AND {plus}started_at >= ?"
            f" AND ((arm = '{other_arm}' AND version_id = ?)"
            " OR (arm = 'stable' AND version_id = ?)) ORDER BY seq"
        )
        upto = self.last_run_seq()
        raw, mark = driver(self.conn)
        cur = raw.cursor()
        try:
            cur.execute(
                sql.replace("?", mark),
                (
                    *([MISSING] * columns.count("?")),
                    after_seq,
                    upto,
                    r.workflow,
                    r.env,
                    r.started_at.timestamp() - SKEW_S,
                    r.canary_id,
                    r.stable_id,
                ),
            )
            return read(cur), max(upto, after_seq)
        finally:
            cur.close()

    def arm_runs(self, r: Rollout, after_seq: int) -> ArmRuns:
        """The runs each arm of ``r`` served after ``after_seq``, in arrival order."""
        import numpy as np

        from releasegate.domain.rollout import ArmRuns

        # the arm and three facts travel as one small integer: half the fields to convert
        # per run (as RunRepo's window does), and seq not at all (read once, as the bound)
        packed = (
            "CASE WHEN arm = 'canary' THEN 1 ELSE 0 END"
            f" + CASE WHEN {fact_sql(IS_ERROR)} THEN 2 ELSE 0 END"
            f" + CASE WHEN {fact_sql(IS_ESCALATED)} THEN 4 ELSE 0 END"
            f" + CASE WHEN {fact_sql(IS_EDITED)} THEN 8 ELSE 0 END"
        )
        read = np.dtype(
            [("packed", "i1"), ("feedback", "f8"), ("latency_ms", "f8"), ("cost_usd", "f8")]
        )
        got, cursor = self._since(
            r,
            after_seq,
            f"{packed}, COALESCE(feedback, ?), latency_ms, COALESCE(cost_usd, ?)",
            "canary",
            lambda cur: np.fromiter(cur, dtype=read),
        )
        flags = got["packed"]
        feedback = got["feedback"].copy()
        feedback[feedback >= MISSING] = np.nan
        cost = got["cost_usd"].copy()
        cost[cost >= MISSING] = np.nan
        arms = np.where(flags & 1, "canary", "stable").tolist()
        return ArmRuns(
            arms=arms,
            error=((flags & 2) > 0).astype(np.float64),
            escalated=((flags & 4) > 0).astype(np.float64),
            edited=((flags & 8) > 0).astype(np.float64),
            feedback=feedback,
            latency_ms=got["latency_ms"],
            cost_usd=cost,
            cursor=cursor,
        )

    def shadow_runs(self, r: Rollout, after_seq: int) -> ShadowRuns:
        """The stable runs and the shadow runs of ``r`` stored after ``after_seq``, in
        arrival order, with what pairing them by input needs."""
        import numpy as np

        from releasegate.domain.shadow import ShadowRuns

        rows, cursor = self._since(
            r,
            after_seq,
            f"arm, input_hash, CASE WHEN {fact_sql(IS_ERROR)} THEN 1 ELSE 0 END,"
            " latency_ms, COALESCE(cost_usd, ?), label",
            "shadow",
            lambda cur: cur.fetchall(),
        )
        cost = np.array([row[4] for row in rows], dtype=np.float64)
        cost[cost >= MISSING] = np.nan
        return ShadowRuns(
            arms=[row[0] for row in rows],
            keys=[row[1] or None for row in rows],
            error=np.array([row[2] for row in rows], dtype=np.float64),
            latency_ms=np.array([row[3] for row in rows], dtype=np.float64),
            cost_usd=cost,
            labels=[row[5] for row in rows],
            cursor=cursor,
        )
