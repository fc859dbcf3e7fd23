"""Rollouts: one row per progressive rollout, and the runs its arms served.

The repository is bound to a connection (the caller's transaction) and takes and returns
``domain.rollout.Rollout``. A rollout changes by compare-and-swap on its revision, and
only while it runs (``save``), so of two checks that both decide to abort exactly one
writes it, and the other learns it lost. ``active`` (unique) keeps one running rollout
per environment. ``arm_sums`` has the database sum the runs a canary rollout's arms served
since a check's cursor, per block of about 64 of them and per arm (a few thousand rows
come back for a million runs); ``shadow_runs`` reads a shadow's runs in arrival order,
straight from the driver into numpy. The domain types and numpy are imported when first
needed: ``resolve`` (the request path) only asks ``route``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from releasegate.domain.identity import canonical_json
from releasegate.domain.runs import IS_EDITED, IS_ERROR, IS_ESCALATED
from releasegate.errors import RolloutRefusedError
from releasegate.store import tables as t
from releasegate.store.rows import as_utc, driver, fetch, marks
from releasegate.store.runs import fact_sql

if TYPE_CHECKING:
    from releasegate.domain.rollout import Rollout, RolloutSums, Waiting
    from releasegate.domain.shadow import ShadowRuns

CHUNK_BLOCKS = 64
"""Blocks summed per query by ``arm_sums`` on SQLite."""
SKEW_S = 300.0
"""Runs may start up to this long before the rollout by their clock and still count."""
MISSING = 9e99
"""No run holds it: a NULL feedback or cost read as it comes back as NaN."""


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

    def shadow_runs(
        self, r: Rollout, after_seq: int, waiting: Sequence[Waiting] = ()
    ) -> ShadowRuns:
        """The shadow runs of ``r`` stored after ``after_seq`` and the stable runs pairing
        can use (those sharing an input hash with a shadow run, or named by one, new or
        ``waiting``, and the newest ``MAX_WAITING``), in arrival order. The database picks
        them: a million served runs beside a few shadow ones are not sent back."""
        import numpy as np

        from releasegate.domain.routing import PAIR_ATTRIBUTE
        from releasegate.domain.shadow import KEY_CHARS, MAX_WAITING, ShadowRuns

        upto = self.last_run_seq()
        cursor = max(upto, after_seq)
        where, params = self._range(r, "shadow")
        span = "seq > ? AND seq <= ?" + where
        bounds = [after_seq, upto, *params]
        named = (
            f"json_extract(attributes_json, '$.\"{PAIR_ATTRIBUTE}\"')"
            if self.conn.dialect.name == "sqlite"
            else f"(attributes_json::json ->> '{PAIR_ATTRIBUTE}')"
        )
        stable = fetch(
            self.conn, f"SELECT COUNT(*) FROM runs WHERE {span} AND arm = 'stable'", bounds
        )[0][0]
        tail = fetch(
            self.conn,
            f"SELECT seq FROM runs WHERE {span} AND arm = 'stable'"
            f" ORDER BY seq DESC LIMIT 1 OFFSET {MAX_WAITING - 1}",
            bounds,
        )
        prefixes = sorted(
            {k[2:] for w in waiting if w.arm == "shadow" for k in w.keys if k[:2] == "i:"}
        )
        ids = sorted({k[2:] for w in waiting if w.arm == "shadow" for k in w.keys if k[:2] == "r:"})
        extra = ""
        if prefixes:
            extra += f" OR substr(input_hash, 1, {KEY_CHARS}) IN ({marks(prefixes)})"
        if ids:
            extra += f" OR run_id IN ({marks(ids)})"
        # a stable run's link is its own id; a shadow run's, the id it names as its twin
        sql = (
            f"SELECT arm, input_hash, CASE WHEN {fact_sql(IS_ERROR)} THEN 1 ELSE 0 END,"
            " latency_ms, COALESCE(cost_usd, ?), label,"
            f" CASE WHEN arm = 'shadow' THEN {named} ELSE run_id END"
            f" FROM runs WHERE {span} AND (arm = 'shadow' OR seq >= ?"
            f" OR input_hash IN (SELECT input_hash FROM runs WHERE {span} AND arm = 'shadow')"
            f" OR run_id IN (SELECT {named} FROM runs WHERE {span} AND arm = 'shadow'){extra})"
            " ORDER BY seq"
        )
        rows = fetch(
            self.conn,
            sql,
            [
                MISSING,
                *bounds,
                int(tail[0][0]) if tail else 0,
                *bounds,
                *bounds,
                *prefixes,
                *ids,
            ],
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
            links=[row[6] or None for row in rows],
            stable_count=int(stable),
        )

    def _range(self, r: Rollout, other_arm: str = "canary") -> tuple[str, list[Any]]:
        """The WHERE clause (after the seq bounds) of the runs the stable arm and
        ``other_arm`` of ``r`` served, and its parameters."""
        # a range of the primary key from the cursor: on SQLite the unary + keeps the
        # planner off the (workflow, env, started_at) index, which would scan every run of
        # the rollout on each check to find the few new ones
        plus = "+" if self.conn.dialect.name == "sqlite" else ""
        where = (
            f" AND {plus}workflow = ? AND {plus}env = ? AND {plus}started_at >= ?"
            f" AND ((arm = '{other_arm}' AND version_id = ?)"
            " OR (arm = 'stable' AND version_id = ?))"
        )
        params = [r.workflow, r.env, r.started_at.timestamp() - SKEW_S, r.canary_id, r.stable_id]
        return where, params

    def first_stable_runs(
        self, r: Rollout, after_seq: int, limit: int = 5000
    ) -> tuple[list[float], list[float]]:
        """Latency and cost (NaN where not given) of the first ``limit`` stable runs after
        ``after_seq``: a reference for a rollout that started without one."""
        where, params = self._range(r)
        sql = f"SELECT latency_ms, cost_usd FROM runs WHERE seq > ?{where} AND arm = 'stable'"
        got = fetch(self.conn, sql + " ORDER BY seq LIMIT ?", [after_seq, *params, limit])
        return [float(x[0]) for x in got], [math.nan if x[1] is None else float(x[1]) for x in got]

    def arm_sums(
        self,
        r: Rollout,
        after_seq: int,
        latency_ref: float | None,
        cost_upper: float | None,
        *,
        labels: bool = False,
    ) -> RolloutSums:
        """The runs each arm of ``r`` served after ``after_seq``, summed by the database per
        block of about ``BLOCK_RUNS`` of them and per arm, for every signal the rollout
        compares: one pass over a primary-key range, a few thousand rows back. ``labels``:
        also the runs per block, label and arm (a second pass), for the label mix."""
        import numpy as np

        from releasegate.domain.canary import BLOCK_RUNS, Blocks
        from releasegate.domain.rollout import RolloutSums

        upto = self.last_run_seq()
        cursor = max(upto, after_seq)
        if upto <= after_seq:
            return RolloutSums({}, 0, 0, cursor)
        where, params = self._range(r)
        # blocks are ranges of seq holding about BLOCK_RUNS of this rollout's runs: the
        # density comes from the newest 10,000 seqs (arms and counts only, never values)
        span = min(10_000, upto - after_seq)
        dense = fetch(
            self.conn,
            "SELECT COUNT(*) FROM runs WHERE seq > ? AND seq <= ?" + where,
            [upto - span, upto, *params],
        )[0][0]
        size = max(1, round(BLOCK_RUNS * span / max(1, int(dense))))
        count = "COUNT(*) FILTER (WHERE {})".format  # cheaper than SUM(CASE ...) per run
        scaled = "(CASE WHEN cost_usd > ? THEN ? ELSE cost_usd END) / ?"  # NULL stays NULL
        # a signal with no reference yet is not compared: its sums are not computed
        slow = count("latency_ms > ?") if latency_ref is not None else "0"
        costs = (
            f"COUNT(cost_usd), SUM({scaled}), SUM(({scaled}) * ({scaled}))"
            if cost_upper is not None
            else "0, 0, 0"
        )
        sql = (
            "SELECT (seq - ?) / ?, CASE WHEN arm = 'canary' THEN 1 ELSE 0 END, COUNT(*),"
            f" {count(fact_sql(IS_ERROR))}, {count(fact_sql(IS_ESCALATED))},"
            f" {count(fact_sql(IS_EDITED))}, COUNT(feedback), {count('feedback < 0')},"
            f" {slow}, {costs}"
            " FROM runs WHERE seq > ? AND seq <= ?" + where + " GROUP BY 1, 2"
        )
        # SQLite: by chunks of CHUNK_BLOCKS blocks, each GROUP BY sorting a few thousand
        # rows in memory (one over the whole range sorts them all in a temp b-tree);
        # PostgreSQL: one query, its hash aggregate given the memory its estimate wants
        rows: list[Any] = []
        step = size * CHUNK_BLOCKS if self.conn.dialect.name == "sqlite" else upto - after_seq
        if self.conn.dialect.name == "postgresql":
            self.conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
        by_label: list[Any] = []
        mix_sql = (
            "SELECT (seq - ?) / ?, label, SUM(CASE WHEN arm = 'canary' THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN arm = 'canary' THEN 0 ELSE 1 END) FROM runs"
            " WHERE seq > ? AND seq <= ?" + where + " AND label IS NOT NULL"
            " GROUP BY 1, 2 ORDER BY 1, 2"
        )
        for lo in range(after_seq, upto, step):
            hi = min(lo + step, upto)
            values = [
                after_seq,
                size,
                *([latency_ref] if latency_ref is not None else []),
                *([cost_upper] * 9 if cost_upper is not None else []),
                lo,
                hi,
                *params,
            ]
            rows.extend(fetch(self.conn, sql, values))
            if labels:
                by_label.extend(fetch(self.conn, mix_sql, [after_seq, size, lo, hi, *params]))
        got = np.array(rows, dtype=np.float64).reshape(-1, 12)
        got = np.nan_to_num(got)  # SUM over no value is NULL
        blocks, first = np.unique(got[:, 0], return_inverse=True)
        is_c = got[:, 1] > 0

        def per_arm(col: int, canary: bool) -> Any:
            out = np.zeros(len(blocks))
            pick = is_c if canary else ~is_c
            out[first[pick]] = got[pick, col]
            return out

        def of(n_col: int, sum_col: int, sq_col: int) -> Blocks:
            return Blocks(
                per_arm(n_col, False).astype(np.int64),
                per_arm(n_col, True).astype(np.int64),
                per_arm(sum_col, False),
                per_arm(sum_col, True),
                per_arm(sq_col, False),
                per_arm(sq_col, True),
            )

        found = {
            "error_rate": of(2, 3, 3),
            "escalation_rate": of(2, 4, 4),
            "edit_rate": of(2, 5, 5),
            "negative_feedback_rate": of(6, 7, 7),
        }
        if latency_ref is not None:
            found["latency_p95"] = of(2, 8, 8)
        if cost_upper is not None:
            found["cost_per_task"] = of(9, 10, 11)
        n_canary = int(got[is_c, 2].sum())
        mix = None
        if labels:
            from releasegate.domain.labelmix import LabelBlocks

            mix = LabelBlocks(
                np.asarray([int(x[0]) for x in by_label], dtype=np.int64),
                [str(x[1]) for x in by_label],
                np.asarray([int(x[2]) for x in by_label], dtype=np.int64),
                np.asarray([int(x[3]) for x in by_label], dtype=np.int64),
            )
        return RolloutSums(found, n_canary, int(got[~is_c, 2].sum()), cursor, mix)

    def arm_sample(
        self, r: Rollout, after_seq: int, upto: int, per_arm: int
    ) -> list[tuple[bool, str, str, str | None, str | None, str]]:
        """The first ``per_arm`` runs of each arm of ``r`` after ``after_seq`` up to ``upto``
        that have an output or failed, in arrival order: (is_canary, run_id, version_id,
        input, output, status). Chosen by arm and order only, never by outcome."""
        where, params = self._range(r)
        found: list[tuple[int, bool, str, str, str | None, str | None, str]] = []
        for arm in ("canary", "stable"):
            sql = (
                "SELECT seq, run_id, version_id, input, output, status FROM runs"
                f" WHERE seq > ? AND seq <= ?{where} AND arm = ?"
                " AND (output IS NOT NULL OR status <> 'ok') ORDER BY seq LIMIT ?"
            )
            for row in fetch(self.conn, sql, [after_seq, upto, *params, arm, per_arm]):
                found.append((int(row[0]), arm == "canary", *row[1:]))
        found.sort()
        return [row[1:] for row in found]
