"""The human review queue: which production runs a person should read, and why.

A run enters the queue of its workflow and environment for each reason that holds:
it was ``escalated`` to a human, its output was ``edited``, its ``feedback`` was below
the threshold (``bad_feedback``), or it fell in the rotating random ``sample``. The
sample is decided by a hash of the seed, the run's ISO week and its id, so two
reviewers (and two server replicas) see the same sample without coordinating, a run's
membership never changes, and each week's sample is a fresh draw. A run anyone has
reviewed leaves the queue. The order is by reason (escalated first), then newest
first; pages continue after a cursor, so a page is stable while others review.

Also here: a review's verdict, the review record, and the review log's numbers
(coverage of the queue, edit rate, share marked bad). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from releasegate.domain.monitoring import parse_duration
from releasegate.errors import InputError

REASONS = ("escalated", "bad_feedback", "edited", "sample")
"""Why a run is in the queue, in the order the queue lists them."""
VERDICTS = ("good", "bad")
MAX_PAGE = 500
MAX_TEXT = 20_000
"""The longest corrected expected output or note a review keeps (characters)."""
_RANK = {reason: i for i, reason in enumerate(REASONS)}
_EPOCH_DAY = date(1970, 1, 1)
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$", re.IGNORECASE)


DEFAULT_SEED = "releasegate"
"""The sample's seed unless a reviewer asks for another: each run's draw under it is kept
beside the run (the store's ``runs.sample_draw``), so a period's sample is read, not
hashed run by run."""


@dataclass(frozen=True)
class QueueRules:
    """What puts a run in the queue: feedback below ``feedback_below`` (feedback is −1..1;
    0 means "negative feedback"), and a ``sample_share`` of the runs (at most
    ``sample_max`` a period), drawn with ``seed``."""

    feedback_below: float = 0.0
    sample_share: float = 0.02
    sample_max: int = 50
    seed: str = DEFAULT_SEED

    def __post_init__(self) -> None:
        if not -1.0 < self.feedback_below <= 1.0:
            raise InputError(
                f"feedback threshold {self.feedback_below:g} is outside (-1, 1]",
                field="--feedback-below",
                hint="feedback is a number from -1 to 1; 0 queues the negative ones",
            )
        if not 0.0 <= self.sample_share <= 1.0:
            raise InputError(
                f"sample share {self.sample_share:g} is outside 0..1",
                field="--sample",
                hint="e.g. 0.02 reviews a random 2% of the runs",
            )
        if self.sample_max < 0:
            raise InputError("the sample's size limit must be 0 or more", field="--sample-max")

    def as_dict(self) -> dict[str, Any]:
        return {
            "feedback_below": self.feedback_below,
            "sample_share": self.sample_share,
            "sample_max": self.sample_max,
            "seed": self.seed,
        }


class Period(NamedTuple):
    label: str
    start: datetime
    end: datetime

    def as_dict(self) -> dict[str, str]:
        return {"label": self.label, "start": self.start.isoformat(), "end": self.end.isoformat()}


def parse_period(text: str | None, now: datetime) -> Period:
    """``7d`` (the last 7 days up to ``now``; the default), ``2026-W49`` (an ISO week) or
    a date (its ISO week); InputError naming ``--period`` otherwise."""
    text = (text or "7d").strip()
    week = _WEEK.match(text)
    try:
        if week:
            monday = date.fromisocalendar(int(week.group(1)), int(week.group(2)), 1)
            return _week_of(monday)
        if text[:1].isdigit() and "-" in text:
            return _week_of(date.fromisoformat(text))
        span = parse_duration(text)
    except ValueError as exc:
        raise InputError(
            f"'{text}' is not a period: {exc}" if "duration" not in str(exc) else str(exc),
            field="--period",
            hint="write 7d (the last 7 days), 2026-W49 (an ISO week) or a date (its week)",
        ) from None
    return Period(f"last {text}", now - span, now)


def _week_of(day: date) -> Period:
    monday = day - timedelta(days=day.isoweekday() - 1)
    start = datetime(monday.year, monday.month, monday.day, tzinfo=UTC)
    iso = monday.isocalendar()
    return Period(f"{iso.year}-W{iso.week:02d}", start, start + timedelta(days=7))


def iso_week(at: float) -> str:
    """The ISO week (``2026-W49``) of an epoch time, in UTC."""
    return _week_of_day(int(at // 86400))


@lru_cache(maxsize=4096)
def _week_of_day(day: int) -> str:
    """The ISO week of the ``day``-th day since 1970-01-01 (a week's runs share 7 days:
    the sample's draw looks each up once, not once per run)."""
    iso = (_EPOCH_DAY + timedelta(days=day)).isocalendar()
    return f"{iso.year}-W{iso.week:02d}"


def sample_draw(seed: str, workflow: str, run_id: str, started_at: float) -> float:
    """The run's draw in [0, 1): it is in the sample when below the share. A hash, not a
    random generator, so every process draws the same number for the same run."""
    key = f"{seed}\x1f{workflow}\x1f{iso_week(started_at)}\x1f{run_id}".encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


class RunSummary(NamedTuple):
    """What the queue reads of a run (no texts)."""

    run_id: str
    started_at: float
    version_id: str
    status: str
    escalated: bool
    edited: bool
    feedback: float | None
    label: str | None


def flagged_reasons(run: RunSummary, rules: QueueRules) -> tuple[str, ...]:
    """The reasons other than the sample that put ``run`` in the queue."""
    out = []
    if run.escalated:
        out.append("escalated")
    if run.feedback is not None and run.feedback < rules.feedback_below:
        out.append("bad_feedback")
    if run.edited:
        out.append("edited")
    return tuple(out)


def choose_sample(
    ids: Iterable[tuple[str, float]], workflow: str, rules: QueueRules
) -> tuple[set[str], int]:
    """The sampled run ids among ``(run_id, started_at)``: those whose draw is below the
    share, the lowest ``sample_max`` draws when more are; and how many runs there were."""
    drawn: list[tuple[float, str]] = []
    total = 0
    share = rules.sample_share
    for run_id, started_at in ids:
        total += 1
        if share <= 0:
            continue
        d = sample_draw(rules.seed, workflow, run_id, started_at)
        if d < share:
            drawn.append((d, run_id))
    drawn.sort()
    return {run_id for _, run_id in drawn[: rules.sample_max]}, total


def queued_ids(runs: Iterable[RunSummary], sample_ids: set[str], rules: QueueRules) -> set[str]:
    """The ids of the runs with a reason to be read (``build_queue``'s items, reviewed or
    not): flagged, or in the sample."""
    return {r.run_id for r in runs if r.run_id in sample_ids or flagged_reasons(r, rules)}


@dataclass(frozen=True)
class QueueItem:
    run_id: str
    started_at: datetime
    version_id: str
    status: str
    reasons: tuple[str, ...]
    feedback: float | None
    label: str | None
    escalated: bool
    edited: bool

    @property
    def cursor(self) -> str:
        """Where a page that ends here continues: the item's place in the order."""
        return f"{_RANK[self.reasons[0]]}:{self.started_at.timestamp():.6f}:{self.run_id}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "version_id": self.version_id,
            "status": self.status,
            "reasons": list(self.reasons),
            "feedback": self.feedback,
            "label": self.label,
            "escalated": self.escalated,
            "edited": self.edited,
        }


def _order(item: QueueItem) -> tuple[int, float, str]:
    return (_RANK[item.reasons[0]], -round(item.started_at.timestamp(), 6), item.run_id)


def _cursor_key(cursor: str) -> tuple[int, float, str]:
    try:
        rank, started, run_id = cursor.split(":", 2)
        if int(rank) not in _RANK.values() or not run_id:
            raise ValueError
        return (int(rank), -float(started), run_id)
    except ValueError:
        raise InputError(
            f"'{cursor[:80]}' is not a queue cursor",
            field="after",
            hint="pass the `next` value of the page before",
        ) from None


@dataclass(frozen=True)
class ReasonCount:
    reason: str
    runs: int


@dataclass(frozen=True)
class Queue:
    """A page of the queue of ``workflow``@``env`` over ``period``, and its totals."""

    workflow: str
    env: str
    period: Period
    rules: QueueRules
    runs: int
    """Runs in the period (what the sample share is of)."""
    queued: int
    """Runs with a reason to be read, reviewed or not."""
    reviewed: int
    """Of those, the ones someone has reviewed (they left the queue)."""
    open: int
    """Still to review."""
    sampled: int
    by_reason: tuple[ReasonCount, ...]
    items: tuple[QueueItem, ...]
    next: str | None
    """The cursor of the next page, or None on the last."""
    edited: int = 0
    """Runs of the period a person edited (queued or not): the edit rate's numerator."""
    queued_ids: frozenset[str] = field(default=frozenset(), repr=False)
    """Every queued run's id, reviewed or not (the review log's coverage is of these)."""

    @property
    def sample_note(self) -> str:
        share = self.sampled / self.runs if self.runs else 0.0
        return (
            f"a random {self.rules.sample_share:.1%} of runs, at most {self.rules.sample_max} "
            f"(seed {self.rules.seed!r}, redrawn each ISO week): {self.sampled} of "
            f"{self.runs:,} runs = {share:.2%} of traffic"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "env": self.env,
            "period": self.period.as_dict(),
            "rules": self.rules.as_dict(),
            "runs": self.runs,
            "queued": self.queued,
            "reviewed": self.reviewed,
            "open": self.open,
            "coverage": self.reviewed / self.queued if self.queued else None,
            "sampled": self.sampled,
            "sample_share": self.sampled / self.runs if self.runs else None,
            "sample_note": self.sample_note,
            "by_reason": {c.reason: c.runs for c in self.by_reason},
            "items": [i.as_dict() for i in self.items],
            "next": self.next,
        }


def check_page(limit: int) -> int:
    """A page size of the queue, 1..MAX_PAGE (InputError naming ``--limit`` else)."""
    if not 1 <= limit <= MAX_PAGE:
        raise InputError(f"the page size must be 1..{MAX_PAGE}", field="--limit")
    return limit


def build_queue(
    *,
    workflow: str,
    env: str,
    period: Period,
    rules: QueueRules,
    runs: Sequence[RunSummary],
    sample_ids: set[str],
    reviewed: set[str],
    limit: int = 50,
    after: str | None = None,
    counted: tuple[int, int] | None = None,
) -> Queue:
    """The queue from every run of the period, the sampled ids among them
    (``choose_sample``) and the ids already reviewed: one item per queued run, with every
    reason that holds. ``counted``: (runs, edited runs) of the period, when ``runs``
    holds only the runs that may be queued (flagged or in the sample)."""
    check_page(limit)
    seen: dict[str, QueueItem] = {}
    edited = 0
    for run in runs:
        edited += 1 if run.edited else 0
        reasons = flagged_reasons(run, rules)
        if run.run_id in sample_ids:
            reasons += ("sample",)
        if not reasons or run.run_id in seen:
            continue
        seen[run.run_id] = QueueItem(
            run_id=run.run_id,
            started_at=datetime.fromtimestamp(run.started_at, UTC),
            version_id=run.version_id,
            status=run.status,
            reasons=reasons,
            feedback=run.feedback,
            label=run.label,
            escalated=bool(run.escalated),
            edited=bool(run.edited),
        )
    counts = {reason: 0 for reason in REASONS}
    for item in seen.values():
        for reason in item.reasons:
            counts[reason] += 1
    done = {run_id for run_id in seen if run_id in reviewed}
    waiting = sorted((i for i in seen.values() if i.run_id not in done), key=_order)
    if after:
        key = _cursor_key(after)
        waiting = [i for i in waiting if _order(i) > key]
    page = tuple(waiting[:limit])
    return Queue(
        workflow=workflow,
        env=env,
        period=period,
        rules=rules,
        runs=len(runs) if counted is None else counted[0],
        queued=len(seen),
        reviewed=len(done),
        open=len(seen) - len(done),
        sampled=sum(1 for i in seen.values() if "sample" in i.reasons),
        by_reason=tuple(ReasonCount(r, counts[r]) for r in REASONS),
        items=page,
        next=page[-1].cursor if len(waiting) > limit else None,
        edited=edited if counted is None else counted[1],
        queued_ids=frozenset(seen),
    )


def parse_verdict(text: str, field: str = "verdict") -> str:
    value = text.strip().lower()
    if value not in VERDICTS:
        raise InputError(f"unknown verdict '{text}'", field=field, hint="good or bad")
    return value


def checked_text(text: str | None, field: str) -> str | None:
    """A corrected output or a note: None when absent, refused when over MAX_TEXT."""
    if text is None:
        return None
    if len(text) > MAX_TEXT:
        raise InputError(f"the {field} is over {MAX_TEXT:,} characters", field=field)
    return text


@dataclass(frozen=True)
class Review:
    """One person's review of one run: the verdict, a corrected expected output, a note,
    why the run was in the queue then, and the suite case made from it (if any)."""

    review_id: str
    run_id: str
    workflow: str
    env: str
    version_id: str
    run_started_at: float
    reviewer: str
    verdict: str
    expected: str | None
    note: str
    reasons: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    case_id: str | None = None
    case_suite_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "review_id": self.review_id,
            "run_id": self.run_id,
            "workflow": self.workflow,
            "env": self.env,
            "version_id": self.version_id,
            "run_started_at": datetime.fromtimestamp(self.run_started_at, UTC).isoformat(),
            "reviewer": self.reviewer,
            "verdict": self.verdict,
            "expected": self.expected,
            "note": self.note,
            "reasons": list(self.reasons),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "case_id": self.case_id,
            "case_suite_id": self.case_suite_id,
        }


@dataclass(frozen=True)
class ReviewStats:
    """The review log's numbers over a period: how much of the queue people read, how
    often outputs were edited in production, and how often a reviewer found them bad."""

    runs: int
    edited: int
    queued: int
    reviewed: int
    """Queued runs someone reviewed."""
    reviews: int
    """Runs reviewed, queued or not."""
    bad: int
    """Runs whose latest review says bad."""
    corrected: int
    cases: int
    reviewers: tuple[str, ...] = field(default=())

    @property
    def coverage(self) -> float | None:
        return self.reviewed / self.queued if self.queued else None

    @property
    def edit_rate(self) -> float | None:
        return self.edited / self.runs if self.runs else None

    @property
    def bad_share(self) -> float | None:
        return self.bad / self.reviews if self.reviews else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "edited": self.edited,
            "edit_rate": self.edit_rate,
            "queued": self.queued,
            "reviewed": self.reviewed,
            "coverage": self.coverage,
            "reviews": self.reviews,
            "bad": self.bad,
            "bad_share": self.bad_share,
            "corrected": self.corrected,
            "cases": self.cases,
            "reviewers": list(self.reviewers),
            "summary": self.sentence(),
        }

    def sentence(self) -> str:
        """One line for the memo and the runbook."""

        def pct(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.0%}"

        return (
            f"review coverage {pct(self.coverage)} ({self.reviewed} of {self.queued} queued "
            f"runs reviewed); edit rate {pct(self.edit_rate)} ({self.edited:,} of "
            f"{self.runs:,} runs edited); marked bad {pct(self.bad_share)} ({self.bad} of "
            f"{self.reviews} reviewed); {self.cases} turned into suite cases"
        )


def review_stats(
    *,
    runs: int,
    edited: int,
    queued_ids: set[str],
    reviews: Sequence[Review],
    queued: int | None = None,
) -> ReviewStats:
    """The numbers of ``reviews`` (every review of the period's runs, any order) against
    the period's queue: a run reviewed by several people counts once, by its latest
    verdict. ``queued``: how many runs are queued, when ``queued_ids`` holds only some of
    them (every reviewed one among them)."""
    latest: dict[str, Review] = {}
    for r in sorted(reviews, key=lambda r: r.updated_at):
        latest[r.run_id] = r
    return ReviewStats(
        runs=runs,
        edited=edited,
        queued=len(queued_ids) if queued is None else queued,
        reviewed=sum(1 for run_id in latest if run_id in queued_ids),
        reviews=len(latest),
        bad=sum(1 for r in latest.values() if r.verdict == "bad"),
        corrected=sum(1 for r in latest.values() if r.expected is not None),
        cases=sum(1 for r in reviews if r.case_id is not None),
        reviewers=tuple(sorted({r.reviewer for r in reviews})),
    )
