"""Suite plan: cases needed for the policy's margin, from a stored pilot, computed by hand.

The router in ``tests.release.fns`` fails known cases: ``sloppy`` every "hard" case
(i % 4 == 1), ``broken`` every fraud case (i % 4 == 0). On 40 cases each gets 0.75, and
against each other they disagree on 20 cases, 10 each way.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from statistics import NormalDist

import pytest
import sqlalchemy as sa
import yaml

from releasegate.domain.calibration import exact_binary_rates
from releasegate.domain.power import epochs_needed
from releasegate.errors import InputError, NotFoundError, PrerequisiteError, SuiteError
from releasegate.release.evaluate import evaluate
from releasegate.release.gate import gate
from releasegate.release.plan import plan
from releasegate.release.promote import promote
from releasegate.release.register import register
from releasegate.store.engine import Store
from tests.helpers import Project
from tests.runner.test_judge import KEY_ENV, JudgeServer, block

Z = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.9)  # mde = Z * se, 90% pass power


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path)  # policy: accuracy may not regress by more than 0.1


def needed(n: int, se: float, margin: float) -> int:
    """Smallest size with ``mde + 0.5 / size <= margin`` (pass/fail data pays the gate's
    continuity correction of half a case), then grown until the gate's exact pass rate for
    an equal-quality candidate as noisy as the pilot reaches 90%."""
    size = math.ceil(n * (Z * se / margin) ** 2 - 1e-9)
    while Z * se * math.sqrt(n / size) + 0.5 / size > margin:
        size += 1
    discordant = se * se * n / 2  # each way
    while exact_binary_rates(size, (margin,), discordant, discordant)[0].passes < 0.9:
        size += 1
    return max(n, size)


def test_a_plan_needs_a_stored_pilot(store: Store, project: Project) -> None:
    vid = register(store, project.workflow("v1", mode="broken")).version_id
    suite = project.suite(n=40)
    with pytest.raises(PrerequisiteError) as err:
        plan(store, vid, suite, env="staging")
    assert err.value.message == (
        f"{vid[:12]} has no eval on suite 'router-core' ({_suite_id(store, project)}) to plan from"
    )
    assert err.value.hint == f"run `releasegate eval {vid[:12]} --suite {suite}` first"


def _suite_id(store: Store, project: Project) -> str:
    from releasegate.release.evaluate import read_suite

    return read_suite(project.root / "suite.yaml").suite_id[:12]


def test_without_a_baseline_the_candidates_own_variance_sizes_the_suite(
    store: Store, project: Project
) -> None:
    vid = register(store, project.workflow("v1", mode="broken")).version_id
    suite = project.suite(n=40)
    evaluate(store, vid, suite)
    out = plan(store, vid, suite, env="staging")
    assert out.basis == "candidate" and out.baseline_id is None and out.env == "staging"
    (acc,) = out.metrics  # the policy gates accuracy only
    se = math.sqrt(0.75 * 0.25 / 40)
    assert acc.metric == "accuracy" and acc.margin == 0.1 and acc.n_pilot == 40
    assert acc.sd == pytest.approx(math.sqrt(0.75 * 0.25))
    assert acc.mde == pytest.approx(Z * se)
    assert acc.n_needed == needed(40, se, 0.1) == 217
    assert (acc.n_more, acc.verdict) == (177, "add 177 cases")
    assert acc.text.startswith("pilot of 40 cases (sd of scores 0.433, mde 0.2219)")
    assert acc.advice is None
    assert any("no baseline (nothing else runs in staging)" in n for n in out.notes)
    assert any("the pilot ran 1 epoch" in n for n in out.notes)

    loose = plan(store, vid, suite, env="staging", margin=0.25)  # --margin overrides
    assert loose.metrics[0].n_needed == 40 and loose.metrics[0].verdict == "enough"
    every = plan(store, vid, suite, margin=0.1)  # no env: every metric the suite measures
    assert [m.metric for m in every.metrics] == ["accuracy", "macro_f1", "pass_rate"]
    assert every.metrics[0].n_needed == 217 and every.policy_id is None
    assert every.metrics[1].sd is None  # a corpus metric has no per-case spread


def test_paired_against_the_running_version_with_its_eval(store: Store, project: Project) -> None:
    suite = project.suite(n=40)
    base = register(store, project.workflow("base", mode="sloppy")).version_id
    evaluate(store, base, suite)
    assert gate(store, base, "staging").decision.passed
    promote(store, base, "staging")
    cand = register(store, project.workflow("cand", mode="broken")).version_id
    evaluate(store, cand, suite)

    out = plan(store, cand, suite, env="staging")
    assert out.basis == "paired" and out.baseline_id == base
    (acc,) = out.metrics
    se = math.sqrt(20) / 40  # McNemar: (b + c - (c - b)**2 / n) / n**2 with b = c = 10
    assert acc.sd == pytest.approx(math.sqrt(0.5))  # half the cases disagree, delta 0
    assert acc.mde == pytest.approx(Z * se)
    assert acc.n_needed == needed(40, se, 0.1) == 536
    assert acc.verdict == "add 496 cases"
    assert "50.0% discordant" in acc.text
    # the same pair named with --baseline, without an environment
    named = plan(store, cand, suite, baseline_ref=base[:12], margin=0.1)
    assert named.basis == "paired" and named.metrics[0].n_needed == 536


def test_a_baseline_without_an_eval_falls_back_to_the_candidate(
    store: Store, project: Project
) -> None:
    suite = project.suite(n=40)
    base = register(store, project.workflow("base", mode="sloppy")).version_id
    cand = register(store, project.workflow("cand", mode="broken")).version_id
    evaluate(store, cand, suite)
    out = plan(store, cand, suite, baseline_ref=base, margin=0.1)
    assert out.basis == "candidate" and out.baseline_id == base
    assert out.metrics[0].n_needed == 217
    assert any(f"run `releasegate eval {base[:12]} --suite" in n for n in out.notes)
    with store.read() as conn:  # a plan writes nothing, and calls no model
        evals = conn.execute(sa.text("SELECT count(*) FROM eval_runs")).scalar_one()
    assert evals == 1


_CALLS: dict[str, int] = {}
_LOCK = threading.Lock()


def flips(message: str) -> str:
    """'wrong' cases are always wrong; 'flip' cases are right on odd calls, wrong on even."""
    label = message.rsplit("#", 1)[-1].strip()
    if message.startswith("wrong"):
        return "other"
    if message.startswith("flip"):
        with _LOCK:
            n = _CALLS[message] = _CALLS.get(message, 0) + 1
        return label if n % 2 else "other"
    return label


def test_epoch_advice_comes_from_the_pilots_epochs(store: Store, project: Project) -> None:
    project.fn = "tests.release.test_plan:flips"
    vid = register(store, project.workflow("v1")).version_id
    kinds = ["easy"] * 8 + ["wrong"] * 8 + ["flip"] * 4
    extra = [
        {"id": f"{k}-{i}", "input": f"{k} plan {i} #fraud", "expected": "fraud"}
        for i, k in enumerate(kinds)
    ]
    suite = project.suite(n=0, extra=extra)
    evaluate(store, vid, suite, epochs=2, concurrency=1)
    out = plan(store, vid, suite, env="staging")
    (acc,) = out.metrics
    matrix = [[1.0, 1.0]] * 8 + [[0.0, 0.0]] * 8 + [[1.0, 0.0]] * 4
    expected = epochs_needed(matrix, margin=0.1)
    assert acc.advice == expected and acc.advice_basis == "candidate"
    assert out.epochs == 2 and not any("the pilot ran 1 epoch" in n for n in out.notes)
    row = out.to_dict()["metrics"][0]
    assert row["epoch_advice"]["epochs"] == expected.epochs
    assert row["epoch_advice"]["text"] == expected.text


def test_bad_input_says_which_option(store: Store, project: Project) -> None:
    vid = register(store, project.workflow("v1")).version_id
    suite = project.suite(n=8)
    evaluate(store, vid, suite)
    cases: list[tuple[dict[str, object], str, str]] = [
        ({"margin": 0.0}, "--margin", "must be more than 0 and less than 1, got 0.0"),
        ({"margin": 1.5}, "--margin", "must be more than 0 and less than 1, got 1.5"),
        ({"env": "staging", "power": 1.0}, "--power", "must be more than 0 and less than 1"),
        ({}, "--margin", "no margin to plan for"),
        ({"env": "qa"}, "--env", "workflow 'router' has no environment 'qa'"),
        ({"baseline_ref": vid, "margin": 0.1}, "--baseline", "is the version being planned"),
    ]
    for kwargs, field, message in cases:
        with pytest.raises(InputError) as err:
            plan(store, vid, suite, **kwargs)  # type: ignore[arg-type]
        assert err.value.field == field
        assert message in err.value.message
    with pytest.raises(NotFoundError):
        plan(store, "ffffffffffff", suite, margin=0.1)


def test_a_suite_of_another_workflow_is_refused_naming_both(store: Store, project: Project) -> None:
    vid = register(store, project.workflow("v1")).version_id
    suite = project.suite(n=8)
    suite.write_text(suite.read_text().replace("workflow: router", "workflow: billing"))
    with pytest.raises(SuiteError) as err:
        plan(store, vid, suite, margin=0.1)
    assert (err.value.source, err.value.field) == (str(suite), "workflow")
    assert err.value.reason == f"suite is for workflow 'billing', version {vid[:12]} is 'router'"


@pytest.fixture
def judge_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[JudgeServer]:
    monkeypatch.setenv(KEY_ENV, "sk-judge-test")
    running = JudgeServer(monkeypatch, lambda prompt: json.dumps({"score": 1, "reason": "ok"}))
    yield running
    running.server.stop()


def test_a_missing_judge_verdict_asks_for_the_eval_and_calls_no_model(
    store: Store, project: Project, judge_server: JudgeServer
) -> None:
    vid = register(store, project.workflow("v1")).version_id
    suite = project.suite(n=8)
    doc = yaml.safe_load(suite.read_text())
    params = {"model": judge_server.model(), "rubric": "Routes it.", "scale": "pass_fail"}
    doc["scorers"].append({"type": "judge", "name": "polite", "params": params})
    suite.write_text(yaml.safe_dump(doc, sort_keys=False))
    # the judge cannot read its own answer on one case: an error, which is never cached
    judge_server.answer = lambda prompt: (
        "no idea"
        if block(prompt, "input") == "easy message 2 #complaint"
        else json.dumps({"score": 1, "reason": "ok"})
    )
    evaluate(store, vid, suite)
    assert judge_server.calls == 8
    judge_server.answer = lambda prompt: json.dumps({"score": 1, "reason": "ok"})

    with pytest.raises(PrerequisiteError) as err:
        plan(store, vid, suite, margin=0.1)
    assert judge_server.calls == 8  # the plan asked the judge nothing
    assert err.value.message == (
        f"{vid[:12]} has no cached 'polite' verdict for case 'c002' epoch 0, "
        "and a plan calls no model"
    )
    assert err.value.hint == (
        f"run `releasegate eval {vid[:12]} --suite {suite} --epochs 1`: "
        "it asks the judge only for the missing verdicts"
    )

    evaluate(store, vid, suite)  # as the hint says: one call, for the missing verdict
    assert judge_server.calls == 9
    out = plan(store, vid, suite, margin=0.1)
    assert "polite" in [m.metric for m in out.metrics] and judge_server.calls == 9
