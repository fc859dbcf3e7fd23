"""The human review queue: list the runs to read, mark each good or bad, make a case.

``review_queue`` reads a period's runs and applies ``domain.review_queue``'s rules;
``mark_run`` records a reviewer's verdict (one review per run and reviewer: marking
again updates it, and the update is audited with what it replaced); ``review_to_case``
turns a review into a suite case through ``suite add-case --from-run``'s path, with
the review named in the case's metadata and in the suite change's reason;
``review_log`` is the period's reviews with their numbers, which the memo and the
runbook quote. Not to be confused with ``release.review``, the governance review.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from releasegate.domain.review_queue import (
    DEFAULT_SEED,
    Period,
    Queue,
    QueueRules,
    Review,
    ReviewStats,
    RunSummary,
    build_queue,
    checked_text,
    choose_sample,
    flagged_reasons,
    parse_period,
    parse_verdict,
    queued_ids,
    review_stats,
    sample_draw,
)
from releasegate.domain.sent_code import SentCodePolicy
from releasegate.errors import InputError, NotFoundError, RefusedError, SuiteError
from releasegate.release.refs import actor as default_actor
from releasegate.release.refs import check_env, find_run
from releasegate.store.audit import AuditRepo
from releasegate.store.engine import Store
from releasegate.store.reviews import ReviewRepo
from releasegate.store.workflows import WorkflowRepo

if TYPE_CHECKING:
    from releasegate.release.suites import AddedCase, StoredCase


def _period(period: str | Period | None, now: datetime | None) -> Period:
    if isinstance(period, Period):
        return period
    return parse_period(period, now or datetime.now(UTC))


def _queue_runs(
    repo: ReviewRepo, workflow: str, env: str, start: float, end: float, rules: QueueRules
) -> tuple[list[RunSummary], tuple[int, int] | None]:
    """The runs the queue is built from, and (runs, edited runs) of the period when those
    are not every run of it: under the default seed, only the runs that may be queued
    (flagged, or the draw stored with the run below the share) and the period's counts."""
    if rules.seed != DEFAULT_SEED:
        return repo.period_runs(workflow, env, start, end), None
    runs = repo.queue_candidates(
        workflow, env, start, end, feedback_below=rules.feedback_below, share=rules.sample_share
    )
    return runs, repo.period_counts(workflow, env, start, end)


def review_queue(
    store: Store,
    workflow: str,
    env: str = "production",
    *,
    period: str | Period | None = None,
    rules: QueueRules | None = None,
    limit: int = 50,
    after: str | None = None,
    now: datetime | None = None,
) -> Queue:
    """The runs of ``workflow``@``env`` to review over ``period`` (default the last 7
    days), a page of ``limit`` after the cursor ``after``."""
    rules = rules or QueueRules()
    span = _period(period, now)
    start, end = span.start.timestamp(), span.end.timestamp()
    with store.read() as conn:
        wf = WorkflowRepo(conn).get(workflow)
        check_env(wf, env)
        runs, counted = _queue_runs(ReviewRepo(conn), workflow, env, start, end, rules)
        reviewed = ReviewRepo(conn).reviewed_ids(workflow, env, start, end)
    # the draws are the domain's, taken again of the candidates: the stored one only chose
    sample_ids, _ = choose_sample(((r.run_id, r.started_at) for r in runs), workflow, rules)
    return build_queue(
        workflow=workflow,
        env=env,
        period=span,
        rules=rules,
        runs=runs,
        sample_ids=sample_ids,
        reviewed=reviewed,
        limit=limit,
        after=after,
        counted=counted,
    )


class RunTexts(NamedTuple):
    input: str | None
    output: str | None


def run_texts(store: Store, run_ids: Sequence[str], limit: int = 2000) -> dict[str, RunTexts]:
    """The input and output of each run a page shows (None when not stored), cut at
    ``limit`` characters, with anything that looks like a credential masked."""
    from releasegate.domain.masking import mask_secrets

    def cut(text: str | None) -> str | None:
        if text is None:
            return None
        text = mask_secrets(text)
        return text if len(text) <= limit else text[:limit] + "…"

    with store.read() as conn:
        found = ReviewRepo(conn).texts(run_ids)
    return {k: RunTexts(cut(a), cut(b)) for k, (a, b) in found.items()}


@dataclass(frozen=True)
class Marked:
    """A review as recorded, and the one it replaced (the same reviewer's, or None)."""

    review: Review
    previous: Review | None

    @property
    def is_update(self) -> bool:
        return self.previous is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.review.as_dict(),
            "updated": self.is_update,
            "previous": None if self.previous is None else self.previous.as_dict(),
        }


def mark_run(
    store: Store,
    run_ref: str,
    verdict: str,
    *,
    expected: str | None = None,
    note: str = "",
    who: str | None = None,
    os_user: str | None = None,
    token_id: str | None = None,
    rules: QueueRules | None = None,
) -> Marked:
    """Record ``who``'s verdict on a run (id or unique prefix). Marking a run again
    replaces that reviewer's review, audited with the verdict it replaced; a review that
    changes nothing is refused (RefusedError) and writes nothing."""
    verdict = parse_verdict(verdict)
    expected = checked_text(expected, "expected")
    note = checked_text(note.strip(), "note") or ""
    who = who or default_actor()
    rules = rules or QueueRules()
    with store.write() as conn:
        run = find_run(conn, run_ref)
        repo = ReviewRepo(conn)
        previous = repo.get(run["run_id"], who, lock=True)
        summary_reasons = _reasons(run, rules)
        at = datetime.now(UTC)
        review = Review(
            review_id=previous.review_id if previous else uuid.uuid4().hex,
            run_id=run["run_id"],
            workflow=run["workflow"],
            env=run["env"],
            version_id=run["version_id"],
            run_started_at=float(run["started_at"]),
            reviewer=who,
            verdict=verdict,
            expected=expected,
            note=note,
            reasons=summary_reasons,
            created_at=previous.created_at if previous else at,
            updated_at=at,
            case_id=previous.case_id if previous else None,
            case_suite_id=previous.case_suite_id if previous else None,
        )
        if previous is not None:
            if (previous.verdict, previous.expected, previous.note) == (verdict, expected, note):
                raise RefusedError(
                    f"{who} already marked run {run['run_id']} {verdict} with this "
                    "correction and note: nothing to change",
                    hint=f"`releasegate queue log {run['workflow']} --env {run['env']}`",
                )
            repo.replace(review)
        else:
            repo.add(review)
        payload: dict[str, Any] = {
            "run_id": review.run_id,
            "env": review.env,
            "version_id": review.version_id,
            "verdict": verdict,
            "expected": expected,
            "note": note,
            "reasons": list(summary_reasons),
            "review_id": review.review_id,
        }
        if previous is not None:
            payload["previous"] = {
                "verdict": previous.verdict,
                "expected": previous.expected,
                "note": previous.note,
            }
        if os_user is not None:
            payload["os_user"] = os_user
        if token_id is not None:
            payload["token_id"] = token_id
        AuditRepo(conn).append(
            kind="review.updated" if previous else "review.marked",
            actor=who,
            workflow=review.workflow,
            subject=review.run_id,
            payload=payload,
        )
    return Marked(review, previous)


def _reasons(run: dict[str, Any], rules: QueueRules) -> tuple[str, ...]:
    """Why the run is in its queue now (empty when it is not)."""
    summary = RunSummary(
        run["run_id"],
        float(run["started_at"]),
        run["version_id"],
        run["status"],
        bool(run["escalated"]),
        bool(run["edited"]),
        run["feedback"],
        run["label"],
    )
    reasons = flagged_reasons(summary, rules)
    draw = sample_draw(rules.seed, run["workflow"], run["run_id"], float(run["started_at"]))
    if draw < rules.sample_share:
        reasons += ("sample",)
    return reasons


@dataclass(frozen=True)
class ReviewCase:
    """The suite case made from a review."""

    review_id: str
    run_id: str
    reviewer: str
    case_id: str
    suite_id: str
    previous_suite_id: str | None
    cases: int
    cases_file: Path | None
    """The cases file the case was appended to; None when only the stored suite has it."""
    appended: str | None = None
    """Then: the case's line for the suite's cases file, for its owner to append (the
    stored suite's, or a suite sent as text: ``SentSuite``, ``suites.append_sent_case``)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "review_id": self.review_id,
            "run_id": self.run_id,
            "reviewer": self.reviewer,
            "case_id": self.case_id,
            "suite_id": self.suite_id,
            "previous_suite_id": self.previous_suite_id,
            "cases": self.cases,
            "cases_file": None if self.cases_file is None else str(self.cases_file),
            "appended": self.appended,
        }


def review_to_case(
    store: Store,
    run_ref: str,
    *,
    reviewer: str | None = None,
    suite_path: Path | None = None,
    reason: str = "",
    must_pass: bool = False,
    who: str | None = None,
    sent: SentSuite | None = None,
) -> ReviewCase:
    """Add ``reviewer``'s review of a run to a suite as a case (``suite add-case
    --from-run``): the input from the run, the expected output from the review's
    correction (or, for a run marked good, its own output), and the review in the
    case's metadata. The case is appended to ``suite_path``'s cases file; with ``sent``,
    a suite sent as text (``queue case --suite FILE`` through a server), to that suite;
    without either, to the workflow's current suite as the store keeps it (the server's
    way: it never reads or writes a file a suite's registration names, which for a suite
    sent over the API is a path on the sender's machine). The answer then carries the
    line for the suite's cases file (``appended``)."""
    from releasegate.release.suites import add_case, add_case_stored, add_case_text, case_from_run

    who = who or default_actor()
    reviewer = reviewer or who
    with store.read() as conn:
        run = find_run(conn, run_ref)
        review = ReviewRepo(conn).get(run["run_id"], reviewer)
    if review is None:
        raise NotFoundError(
            f"{reviewer} has not reviewed run {run['run_id']}",
            field="run",
            hint=f"mark it first: `releasegate queue mark {run['run_id']} --good|--bad`",
        )
    if review.case_id is not None:
        raise RefusedError(
            f"the review of run {run['run_id']} by {reviewer} is already case "
            f"{review.case_id} of suite {(review.case_suite_id or '')[:12]}",
        )
    if suite_path is not None or sent is not None:
        _check_workflow(run, suite_path, sent)
    case_input, metadata = case_from_run(store, run["run_id"])
    metadata.update(
        {
            "review_id": review.review_id,
            "reviewer": review.reviewer,
            "verdict": review.verdict,
            "reviewed_at": review.updated_at.isoformat(),
            **({"note": review.note} if review.note else {}),
        }
    )
    why = reason.strip() or (
        f"review {review.review_id[:12]}: {review.reviewer} marked run {review.run_id} "
        f"{review.verdict}" + (f" ({review.note})" if review.note else "")
    )
    given = {
        "input": case_input,
        "expected": _expected(review, run),
        "must_pass": must_pass,
        "reason": f"{why} [review {review.review_id[:12]}]" if reason.strip() else why,
        "who": who,
        "metadata": metadata,
    }
    added: AddedCase | StoredCase
    cases_file: Path | None
    with store.write() as conn:  # one maker at a time: a second click is refused
        claim = ReviewRepo(conn).claim_case(review.review_id, time.time(), uuid.uuid4().hex)
    if claim is None:
        raise RefusedError(
            f"the review of run {run['run_id']} by {reviewer} is already being made a case",
            hint=f"`releasegate queue log {run['workflow']} --env {run['env']}` shows it",
        )
    try:
        if sent is not None:
            added, appended = add_case_text(
                store, sent.text, sent.source, sent.files, policy=sent.policy, **given
            )
            cases_file = None
        elif suite_path is None:
            added = add_case_stored(store, run["workflow"], **given)
            cases_file, appended = None, added.line
        else:
            added = add_case(store, suite_path, **given)
            cases_file, appended = added.cases_file, None
    except BaseException:
        with store.write() as conn:
            ReviewRepo(conn).release_case(review.review_id, claim)
        raise
    with store.write() as conn:
        ReviewRepo(conn).set_case(review.review_id, added.case_id, added.suite_id)
        AuditRepo(conn).append(
            kind="review.case_added",
            actor=who,
            workflow=run["workflow"],
            subject=run["run_id"],
            payload={
                "review_id": review.review_id,
                "reviewer": review.reviewer,
                "case_id": added.case_id,
                "suite_id": added.suite_id,
                "previous_suite_id": added.previous_id,
            },
        )
    return ReviewCase(
        review.review_id,
        run["run_id"],
        review.reviewer,
        added.case_id,
        added.suite_id,
        added.previous_id,
        added.cases,
        cases_file,
        appended,
    )


@dataclass(frozen=True)
class SentSuite:
    """A suite sent to the server as text, with its cases file in ``files`` (relative
    path -> text), and what the server lets such a document run."""

    text: str
    source: str
    files: Mapping[str, str]
    policy: SentCodePolicy


def _expected(review: Review, run: dict[str, Any]) -> Any:
    """The case's expected output: the review's correction; for a run marked good without
    one, what the run answered (parsed back to JSON when it was structured)."""
    if review.expected is not None:
        return review.expected
    from releasegate.release.suites import case_input_value

    if review.verdict == "good" and run["output"] is not None:
        return case_input_value(run["output"])
    return None


def _check_workflow(run: Mapping[str, Any], path: Path | None, sent: SentSuite | None) -> None:
    """Refuse a suite of another workflow than the run's (nothing written): its case would
    gate that workflow on this one's input."""
    from releasegate.release.evaluate import read_suite, read_suite_text

    if sent is not None:
        suite = read_suite_text(sent.text, sent.source, sent.files, policy=sent.policy)
        where = sent.source
    else:
        assert path is not None
        suite, where = read_suite(path), str(path)
    if suite.workflow != run["workflow"]:
        raise InputError(
            f"run {run['run_id']} is of workflow {run['workflow']}, and the suite {where} is "
            f"{suite.workflow}'s: its case would gate {suite.workflow} on another "
            "workflow's input; nothing was written",
            field="suite",
            hint=f"name a suite of {run['workflow']}, or none (its current suite)",
        )


def check_suite_file(path: Path) -> None:
    """Refuse, before anything is written, a suite file ``add-case`` could not grow: one
    that does not parse, or whose cases are inline (SuiteError naming file and line)."""
    from releasegate.release.evaluate import read_suite
    from releasegate.release.loaders import load_yaml
    from releasegate.release.suites import cases_ref

    read_suite(path)
    cases_ref(load_yaml(path, SuiteError), str(path))


@dataclass(frozen=True)
class ReviewLog:
    workflow: str
    env: str
    period: Period
    stats: ReviewStats
    reviews: tuple[Review, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "env": self.env,
            "period": self.period.as_dict(),
            "stats": self.stats.as_dict(),
            "reviews": [r.as_dict() for r in self.reviews],
        }


def review_log(
    store: Store,
    workflow: str,
    env: str = "production",
    *,
    period: str | Period | None = None,
    rules: QueueRules | None = None,
    limit: int = 200,
    now: datetime | None = None,
    queue: Queue | None = None,
) -> ReviewLog:
    """The reviews of ``workflow``@``env``'s runs of the period (latest first, at most
    ``limit``), with the numbers: coverage of the queue, edit rate, share marked bad.
    ``queue``: the period's queue when the caller has it already (any page of it)."""
    if limit < 1:
        raise InputError("the limit must be 1 or more", field="--limit")
    if queue is None:
        queue = review_queue(store, workflow, env, period=period, rules=rules, limit=1, now=now)
    start, end = queue.period.start.timestamp(), queue.period.end.timestamp()
    with store.read() as conn:
        reviews = ReviewRepo(conn).in_period(workflow, env, start, end)
    stats = review_stats(
        runs=queue.runs, edited=queue.edited, queued_ids=set(queue.queued_ids), reviews=reviews
    )
    span = queue.period
    return ReviewLog(workflow, env, span, stats, tuple(reviews[:limit]))


def review_numbers(
    store: Store, workflow: str, env: str, start: datetime, end: datetime
) -> ReviewStats:
    """The review log's numbers for a memo or runbook period: the queue's ids without its
    items (no page is shown, so none is built or ordered)."""
    rules = QueueRules()  # the default seed: each run's draw is stored with it
    lo, hi = start.timestamp(), end.timestamp()
    below = rules.feedback_below
    with store.read() as conn:
        check_env(WorkflowRepo(conn).get(workflow), env)
        repo = ReviewRepo(conn)
        runs, edited = repo.period_counts(workflow, env, lo, hi)
        flagged = repo.flagged_count(workflow, env, lo, hi, feedback_below=below)
        drawn = repo.sample_candidates(workflow, env, lo, hi, share=rules.sample_share)
        reviews = repo.in_period(workflow, env, lo, hi)
        reviewed = repo.summaries(workflow, env, lo, hi, [r.run_id for r in reviews])
    sample_ids, _ = choose_sample(((r.run_id, r.started_at) for r in drawn), workflow, rules)
    # the queue is every flagged run and the sampled ones not flagged already: counted,
    # its ids needed only for the runs someone reviewed
    only_sampled = [r for r in drawn if r.run_id in sample_ids and not flagged_reasons(r, rules)]
    return review_stats(
        runs=runs,
        edited=edited,
        queued_ids=queued_ids(reviewed, sample_ids, rules),
        reviews=reviews,
        queued=flagged + len(only_sampled),
    )
