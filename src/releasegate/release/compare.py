"""Compare: a candidate against a baseline, case by case, by a pairwise judge.

Both versions need a completed eval on the suite, because their cached outputs
are what is compared: compare never calls a workflow's model. Each case is
judged in both orders (runner/pairwise.py). Every judgement is cached in the
``scores`` table under the candidate, keyed by the judge's identity, the
baseline, the order and both outputs, so a re-run asks the judge nothing and a
changed judge, rubric, prompt or output asks again. Failed judgements are not
cached and not counted; an interrupted compare keeps the ones answered. The
win rate (ties count half) gets a 95% interval from domain.stats: Wilson when
there are no ties, a bootstrap otherwise.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from releasegate.domain.document import Document, Fields, undotted
from releasegate.domain.identity import content_hash, sha256_bytes
from releasegate.domain.results import Case, CaseOutput, Score
from releasegate.domain.sent_code import SentCodePolicy
from releasegate.domain.stats import Interval, mean_interval
from releasegate.domain.suite import Suite
from releasegate.errors import InputError, PrerequisiteError
from releasegate.release.evaluate import find_suite_version, read_suite
from releasegate.release.loaders import load_yaml
from releasegate.runner.engine import Progress
from releasegate.runner.pairwise import (
    ORDERS,
    OUTCOME_VALUE,
    Judgement,
    Order,
    Outcome,
    PairwiseJudge,
    combine,
)
from releasegate.runner.scorers import ParamError
from releasegate.store.engine import Conn, Store
from releasegate.store.evals import EvalRepo, OutputRepo, ScoreRepo
from releasegate.store.versions import VersionRecord

EPOCH = 0  # the first epoch's output of each version is compared


@dataclass(frozen=True)
class CaseVerdict:
    """One case: the combined outcome (None when it could not be judged) and why."""

    case_id: str
    outcome: Outcome | None
    is_consistent: bool
    judgements: tuple[Judgement, ...]  # candidate_first, baseline_first; empty if not asked
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "outcome": self.outcome,
            "consistent": self.is_consistent,
            "note": self.note,
            **{
                j.order: {
                    "winner": j.winner or None,
                    "prefers": j.prefers,
                    "reason": j.reason,
                    "error": j.error,
                }
                for j in self.judgements
            },
        }


@dataclass(frozen=True)
class CompareOutcome:
    candidate_id: str
    baseline_id: str
    workflow: str
    suite_id: str
    suite_name: str
    judge: Mapping[str, Any]
    cases: tuple[CaseVerdict, ...]
    win_rate: Interval | None  # None when no case could be judged
    n_called: int
    n_cached: int
    usage: Mapping[str, Any]

    def count(self, outcome: Outcome) -> int:
        return sum(1 for c in self.cases if c.outcome == outcome)

    @property
    def n(self) -> int:
        return sum(1 for c in self.cases if c.outcome is not None)

    @property
    def inconsistent(self) -> int:
        return sum(1 for c in self.cases if c.outcome is not None and not c.is_consistent)

    @property
    def errors(self) -> tuple[CaseVerdict, ...]:
        return tuple(c for c in self.cases if c.outcome is None)

    def to_dict(self) -> dict[str, Any]:
        iv = self.win_rate
        return {
            "candidate_id": self.candidate_id,
            "baseline_id": self.baseline_id,
            "workflow": self.workflow,
            "suite_id": self.suite_id,
            "suite": self.suite_name,
            "judge": dict(self.judge),
            "n": self.n,
            "wins": self.count("win"),
            "losses": self.count("loss"),
            "ties": self.count("tie"),
            "inconsistent": self.inconsistent,
            "not_judged": len(self.errors),
            "win_rate": None
            if iv is None
            else {
                "estimate": round(iv.estimate, 6),
                "low": round(iv.low, 6),
                "high": round(iv.high, 6),
                "n": iv.n,
                "method": iv.method,
            },
            "called": self.n_called,
            "cached": self.n_cached,
            "judge_usage": dict(self.usage),
            "cases": [c.to_dict() for c in self.cases],
        }


class _Pair(NamedTuple):
    case: Case
    candidate: str
    baseline: str
    keys: Mapping[Order, str]

    def slot(self, order: Order) -> tuple[str, str]:
        """The judgement's cache row (case content, key): cases of one content share it."""
        return self.case.case_hash, self.keys[order]


def read_judge(path: Path) -> PairwiseJudge:
    """A judge file (``model``, ``rubric``, optional ``prompt``); errors name file, line, field."""
    return _judge(load_yaml(path, InputError))


def _judge(doc: Document) -> PairwiseJudge:
    f = Fields(doc, InputError).only("model", "rubric", "prompt")
    f.get("model", dict, required=True)
    f.get("rubric", str, required=True)
    f.get("prompt", str)
    try:
        return PairwiseJudge(f.value)
    except ParamError as exc:
        doc.fail(InputError, exc.reason, undotted(exc.param))


def judgement_key(
    judge_id: str, baseline_id: str, order: Order, candidate: str, baseline: str
) -> str:
    """The ``scorer_id`` a judgement is cached under: everything its answer depends on."""
    return content_hash(
        {
            "pairwise": judge_id,
            "baseline": baseline_id,
            "order": order,
            "candidate_output": sha256_bytes(candidate.encode("utf-8")),
            "baseline_output": sha256_bytes(baseline.encode("utf-8")),
        }
    )


def _check_evals(
    conn: Conn, suite: Suite, suite_path: Path, versions: Sequence[VersionRecord]
) -> None:
    missing = [
        v.version_id[:12]
        for v in versions
        if EvalRepo(conn).latest(v.version_id, suite.suite_id) is None
    ]
    if missing:
        which = " and ".join(missing)
        raise PrerequisiteError(
            f"no completed eval of {which} on suite '{suite.name}' ({suite.suite_id[:12]}); "
            "compare judges the outputs an eval produced",
            hint=" and ".join(f"run `releasegate eval {m} --suite {suite_path}`" for m in missing),
        )


def read_judge_text(text: str, source: str, *, policy: SentCodePolicy) -> PairwiseJudge:
    """A judge file sent as text (over the server), under the same limits as a file and
    checked against what the server allows its model to call (``check_sent``)."""
    from releasegate.domain import untrusted
    from releasegate.release.loaders import check_sent, max_input_bytes, parse_yaml

    untrusted.check_size(len(text.encode("utf-8")), max_input_bytes(), source, InputError)
    doc = parse_yaml(text, source, InputError)
    check_sent(doc, policy)  # the judge's host and key variable, before it is built
    return _judge(doc)


class ComparePlan(NamedTuple):
    """A compare checked and read from the store, its questions not yet asked."""

    candidate: VersionRecord
    baseline: VersionRecord
    suite: Suite
    judge: PairwiseJudge
    decided: dict[str, CaseVerdict]
    pairs: list[_Pair]
    found: dict[tuple[str, str], Judgement]
    asks: dict[tuple[str, str], tuple[_Pair, Order]]
    concurrency: int


def compare(
    store: Store,
    candidate_ref: str,
    baseline_ref: str,
    suite_path: Path,
    judge_path: Path,
    *,
    concurrency: int = 8,
    progress: Progress | None = None,
) -> CompareOutcome:
    """Judge the candidate against the baseline on every case of the suite, both orders.

    Ctrl-C keeps the judgements already answered (a re-run asks only the rest), and a
    judgement another compare stored meanwhile is kept, not written twice.
    """
    check_concurrency(concurrency)
    suite = read_suite(suite_path)
    judge = read_judge(judge_path)
    planned = plan_compare(
        store, candidate_ref, baseline_ref, suite, judge, suite_path, concurrency=concurrency
    )
    return judge_plan(store, planned, progress=progress)


def check_concurrency(concurrency: int) -> None:
    if concurrency < 1:
        raise InputError("must be 1 or more", field="--concurrency")


def plan_compare(
    store: Store,
    candidate_ref: str,
    baseline_ref: str,
    suite: Suite,
    judge: PairwiseJudge,
    suite_path: Path,
    *,
    concurrency: int = 8,
) -> ComparePlan:
    """Everything ``compare`` checks and reads before it asks the judge: the versions, their
    evals on the suite, the cached judgements, the judge's key (every refusal is here)."""
    check_concurrency(concurrency)
    hashes = {c.case_hash for c in suite.cases}
    with store.read() as conn:
        candidate = find_suite_version(conn, candidate_ref, suite, suite_path)
        baseline = find_suite_version(conn, baseline_ref, suite, suite_path)
        if candidate.version_id == baseline.version_id:
            raise InputError(
                f"CANDIDATE and BASELINE are the same version {candidate.version_id[:12]}",
                field="BASELINE",
            )
        _check_evals(conn, suite, suite_path, (candidate, baseline))
        cand_out = OutputRepo(conn).get_many(candidate.version_id, hashes)
        base_out = OutputRepo(conn).get_many(baseline.version_id, hashes)
        stored = ScoreRepo(conn).get_many(candidate.version_id)

    judge_id = judge.identity()
    decided: dict[str, CaseVerdict] = {}
    pairs: list[_Pair] = []
    for case in suite.cases:
        c, b = cand_out.get((case.case_hash, EPOCH)), base_out.get((case.case_hash, EPOCH))
        ruled = _by_rule(case, c, b)
        if ruled is not None:
            decided[case.case_id] = ruled
            continue
        assert c is not None and b is not None  # _by_rule decides every other case
        keys = {o: judgement_key(judge_id, baseline.version_id, o, c.text, b.text) for o in ORDERS}
        pairs.append(_Pair(case, c.text, b.text, keys))

    found: dict[tuple[str, str], Judgement] = {}
    asks: dict[tuple[str, str], tuple[_Pair, Order]] = {}  # one question per cache row
    for pair in pairs:
        for order in ORDERS:
            slot = pair.slot(order)
            if slot in found or slot in asks:  # a case of the same content asked it already
                continue
            row = stored.get((slot[0], EPOCH, slot[1]))
            hit = Judgement.from_stored(order, row.value, row.detail) if row is not None else None
            if hit is not None:
                found[slot] = hit
            else:
                asks[slot] = (pair, order)
    if asks and not os.environ.get(judge.api_key_env):
        raise PrerequisiteError(
            f"the judge needs an API key: environment variable {judge.api_key_env} is not set",
            hint="set it, or name another variable in the judge file's model.api_key_env",
        )
    return ComparePlan(candidate, baseline, suite, judge, decided, pairs, found, asks, concurrency)


def judge_plan(
    store: Store, planned: ComparePlan, *, progress: Progress | None = None
) -> CompareOutcome:
    """Ask the judge what ``planned`` did not find cached, keep the answers, and count."""
    candidate, suite, judge = planned.candidate, planned.suite, planned.judge
    decided, pairs, found = dict(planned.decided), planned.pairs, dict(planned.found)
    todo = list(planned.asks.values())
    n_cached = len(ORDERS) * len(pairs) - len(todo)  # as in eval, a twin counts as cached
    if todo:
        fresh: dict[tuple[str, str], Judgement] = {}
        try:
            asyncio.run(_ask_all(judge, todo, planned.concurrency, progress, n_cached, fresh))
        except KeyboardInterrupt:
            kept = _keep(store, candidate.version_id, todo, fresh)
            raise KeyboardInterrupt(f"{kept} new judgements kept; re-run to resume") from None
        _keep(store, candidate.version_id, todo, fresh)
        found.update(fresh)

    for pair in pairs:
        decided[pair.case.case_id] = _verdict(pair.case, [found[pair.slot(o)] for o in ORDERS])
    verdicts = tuple(decided[c.case_id] for c in suite.cases)
    counted = [OUTCOME_VALUE[v.outcome] for v in verdicts if v.outcome is not None]
    return CompareOutcome(
        candidate_id=candidate.version_id,
        baseline_id=planned.baseline.version_id,
        workflow=candidate.workflow,
        suite_id=suite.suite_id,
        suite_name=suite.name,
        judge=judge.describe(),
        cases=verdicts,
        win_rate=mean_interval(counted) if counted else None,
        n_called=len(todo),
        n_cached=n_cached,
        usage=judge.usage.as_dict(),
    )


def _keep(
    store: Store,
    version_id: str,
    todo: Sequence[tuple[_Pair, Order]],
    fresh: Mapping[tuple[str, str], Judgement],
) -> int:
    """Cache the answered judgements (errors are asked again); how many were new.

    One row per cache slot (``todo`` asks each once), and a row another compare
    stored since this one read the cache is kept as it is (ScoreRepo skips it).
    """
    rows: list[tuple[str, int, str, Score]] = []
    for pair, order in todo:
        j = fresh.get(pair.slot(order))
        if j is not None and j.error is None:
            rows.append(
                (
                    pair.case.case_hash,
                    EPOCH,
                    pair.keys[order],
                    Score(j.value, j.value == 1.0, j.detail()),
                )
            )
    if not rows:
        return 0
    with store.write() as conn:
        return ScoreRepo(conn).put_many(version_id, rows)


def _by_rule(case: Case, c: CaseOutput | None, b: CaseOutput | None) -> CaseVerdict | None:
    """Cases decided without the judge: a missing output, or an output that is an error."""
    if c is None or b is None:
        side = "candidate" if c is None else "baseline"
        return CaseVerdict(case.case_id, None, True, (), f"no {side} output for this case")
    if c.error is not None and b.error is not None:
        return CaseVerdict(case.case_id, None, True, (), "both outputs are errors")
    if c.error is not None:
        return CaseVerdict(
            case.case_id, "loss", True, (), f"the candidate's output is an error: {c.error}"
        )
    if b.error is not None:
        return CaseVerdict(
            case.case_id, "win", True, (), f"the baseline's output is an error: {b.error}"
        )
    return None


def _verdict(case: Case, judgements: Sequence[Judgement]) -> CaseVerdict:
    errors = [f"{j.order}: {j.error}" for j in judgements if j.error is not None]
    if errors:
        return CaseVerdict(case.case_id, None, True, tuple(judgements), "; ".join(errors))
    first, second = (j.prefers for j in judgements)
    assert first is not None and second is not None  # no error, so both preferred something
    combined = combine(first, second)
    note = "" if combined.is_consistent else "the two orders disagree: position bias"
    return CaseVerdict(
        case.case_id, combined.outcome, combined.is_consistent, tuple(judgements), note
    )


async def _ask_all(
    judge: PairwiseJudge,
    todo: Sequence[tuple[_Pair, Order]],
    concurrency: int,
    progress: Progress | None,
    done_before: int,
    fresh: dict[tuple[str, str], Judgement],
) -> None:
    """Ask every judgement in ``todo``, each put in ``fresh`` (by its cache slot) as soon
    as it is answered."""
    slots = asyncio.Semaphore(concurrency)
    total = done_before + len(todo)
    done = done_before
    if progress is not None:
        progress(done, total)

    async def one(pair: _Pair, order: Order) -> None:
        nonlocal done
        async with slots:
            answer = await judge.judge(pair.case, pair.candidate, pair.baseline, order)
        fresh[pair.slot(order)] = answer
        done += 1
        if progress is not None:
            progress(done, total)

    await asyncio.gather(*(one(p, o) for p, o in todo))
