"""Sampled quality: a rotating sample of production runs scored by the suite's own scorers.

Production runs have no expected answer, so only scorers that judge an output on its own
take part: a judge with a rubric, a JSON schema, a regex, a python check. Each window
draws its own seeded sample (the seed is the window's start), so consecutive windows look
at different runs; scores are cached per run, so a judge is paid once per run sampled.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from releasegate.domain.canary import BLOCK_RUNS, Blocks, blocks_of
from releasegate.domain.results import Case, CaseOutput, Score
from releasegate.domain.rollout import Rollout
from releasegate.domain.suite import make_case
from releasegate.errors import ReleasegateError, SuiteError
from releasegate.release.evaluate import build_scorers, stored_suite
from releasegate.runner.scorers import Scorer
from releasegate.store.engine import Store
from releasegate.store.evals import ScoreRepo
from releasegate.store.rollouts import RolloutRepo
from releasegate.store.runs import RunRepo
from releasegate.store.suites import SuiteRepo

RUN_EPOCH = -1
"""Scores of production runs sit in the scores table under this epoch, apart from evals."""


def _needs_expected(scorer: Scorer) -> bool:
    probe = make_case("probe", "probe")
    try:
        scorer.score(probe, CaseOutput(text="", error="probe"))  # errors never call a model
        scorer.score(probe, CaseOutput(text=""))
    except SuiteError:
        return True
    except (ReleasegateError, ValueError, TypeError):
        return False
    return False


def usable_scorers(store: Store, workflow: str) -> list[tuple[str, Scorer]]:
    """The current suite's scorers that can score an output without an expected answer."""
    with store.read() as conn:
        suite_id = SuiteRepo(conn).current_id(workflow)
    if suite_id is None:
        return []
    scorers = build_scorers(stored_suite(store, suite_id))
    return [(sid, s) for sid, s in scorers if s.kind != "judge" and not _needs_expected(s)] + [
        (sid, s) for sid, s in scorers if s.kind == "judge"
    ]


def sampled_quality(
    store: Store,
    workflow: str,
    env: str,
    bounds: tuple[float, float],
    sample: int,
) -> np.ndarray[Any, Any] | None:
    """1/0 per sampled run (passed every usable scorer), or None when nothing can score."""
    if sample <= 0:
        return None
    scorers = usable_scorers(store, workflow)
    if not scorers:
        return None
    with store.read() as conn:
        rows = RunRepo(conn).window(
            workflow, env, *bounds, ["run_id", "version_id", "input", "output", "status"]
        )
    rows = [r for r in rows if r[3] is not None or r[4] != "ok"]
    if not rows:
        return None
    chosen = random.Random(int(bounds[0])).sample(rows, min(sample, len(rows)))
    return np.array(score_runs(store, scorers, chosen))


def score_runs(
    store: Store, scorers: list[tuple[str, Scorer]], rows: Sequence[Sequence[Any]]
) -> list[float]:
    """1/0 per run (passed every scorer) of ``rows`` (run_id, version_id, input, output,
    status); scores are cached per run, so a judge is paid once per run sampled."""
    passes = []
    by_version: dict[str, dict[tuple[str, int, str], Score]] = {}
    for run_id, version_id, text_in, text_out, status in rows:
        key = hashlib.sha256(f"run:{run_id}".encode()).hexdigest()
        if version_id not in by_version:
            with store.read() as conn:
                by_version[version_id] = ScoreRepo(conn).get_many(version_id)
        cached = by_version[version_id]
        case = Case(case_id=run_id, input=text_in, case_hash=key)
        output = CaseOutput(text=text_out or "", error=None if status == "ok" else "run failed")
        fresh = []
        ok = True
        for sid, scorer in scorers:
            hit = cached.get((key, RUN_EPOCH, sid))
            if hit is not None:
                ok = ok and hit.passed
                continue
            score = scorer.score(case, output)
            ok = ok and score.passed
            if not score.detail.startswith("error:") or output.error is not None:
                fresh.append((key, RUN_EPOCH, sid, score))
        if fresh:
            with store.write() as conn:
                ScoreRepo(conn).put_many(version_id, fresh)
        passes.append(1.0 if ok else 0.0)
    return passes


def arm_quality(
    store: Store, r: Rollout, after_seq: int, upto: int, sample: int = 50
) -> Blocks | None:
    """Sampled quality of a canary rollout's arms over the runs after ``after_seq`` up to
    ``upto``: the first ``sample`` runs of each arm with an output (or a failure), in arrival
    order, chosen by arm and order only, never by outcome; each is 1 when it fails a usable
    scorer of the current suite, 0 when it passes, summed in blocks as ``rollout check``
    compares them (``canary.observe_blocks``). None when nothing can score or no run was
    sampled. Pass it to ``release.rollout.check(..., quality=arm_quality)``."""
    scorers = usable_scorers(store, r.workflow)
    if not scorers:
        return None
    with store.read() as conn:
        rows = RolloutRepo(conn).arm_sample(r, after_seq, upto, sample)
    if not rows:
        return None
    failed = 1.0 - np.array(score_runs(store, scorers, [row[1:] for row in rows]))
    return blocks_of([row[0] for row in rows], failed, BLOCK_RUNS)
