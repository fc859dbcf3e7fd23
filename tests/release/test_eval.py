"""Evaluation: cached by (version, case, scorer, epoch), resumable after Ctrl-C, errors counted."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from releasegate.domain.results import CaseOutput, Score
from releasegate.errors import SuiteError
from releasegate.release.evaluate import eval_precision, evaluate
from releasegate.release.gate import gate
from releasegate.release.register import register
from releasegate.store.engine import Store
from releasegate.store.evals import OutputRepo, ScoreRepo
from tests.helpers import Project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path)


def count(store: Store, sql: str) -> int:
    with store.read() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


def test_a_rerun_makes_no_calls_and_epochs_multiply_calls(store: Store, project: Project) -> None:
    vid = register(store, project.workflow("v1")).version_id
    first = evaluate(store, vid, project.suite(n=40))
    assert (first.n_called, first.n_cached) == (40, 0)
    again = evaluate(store, vid, project.suite(n=40))
    assert (again.n_called, again.n_cached) == (0, 40)
    assert again.summary["metrics"] == first.summary["metrics"]
    three = evaluate(store, vid, project.suite(n=40), epochs=3)
    assert (three.n_called, three.n_cached) == (80, 40)  # epoch 0 is reused
    assert three.summary["epochs"] == 3 and three.summary["flaky"] == []
    fresh = evaluate(store, vid, project.suite(n=40), use_cache=False)
    assert fresh.n_called == 40


def test_huge_epochs_and_audit_limits_are_bad_input_not_an_overflow(
    store: Store, project: Project
) -> None:
    # 10**20 overflowed SQLite's integer (a traceback, exit 70); a negative limit read all
    from releasegate.errors import InputError
    from releasegate.release.audit import audit_log

    vid = register(store, project.workflow("v1")).version_id
    with pytest.raises(InputError, match="must be 1 to 10,000"):
        evaluate(store, vid, project.suite(n=2), epochs=10**20)
    for limit in (10**20, -5, 0):
        with pytest.raises(InputError, match="--limit: expected 1 or more"):
            audit_log(store, limit=limit)
    assert len(audit_log(store, limit=1)) == 1


def test_two_cases_of_the_same_content_share_one_call(store: Store, project: Project) -> None:
    from tests.helpers import cases

    vid = register(store, project.workflow("v1")).version_id
    twin = {**cases(1)[0], "id": "twin-of-c000"}  # an incident added twice under two ids
    outcome = evaluate(store, vid, project.suite(n=20, extra=[twin]), epochs=2)
    assert outcome.n_called == 40 and outcome.summary["cases"] == 21
    assert outcome.summary["metrics"]["accuracy"]["n"] == 21
    again = evaluate(store, vid, project.suite(n=20, extra=[twin]), epochs=2)
    assert again.n_called == 0


def test_a_changed_case_is_the_only_one_run_again(store: Store, project: Project) -> None:
    vid = register(store, project.workflow("v1")).version_id
    evaluate(store, vid, project.suite(n=40))
    extra = [{"id": "new", "input": "easy fresh #fraud", "expected": "fraud"}]
    grown = evaluate(store, vid, project.suite(n=40, extra=extra, name="s2"))
    assert (grown.n_called, grown.n_cached) == (1, 40)
    assert grown.suite_changed


def test_interrupted_eval_keeps_what_finished_and_resumes(
    store: Store, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.fn = "tests.release.fns:interrupt_after"
    monkeypatch.setenv("RG_TEST_COUNTER", str(tmp_path / "calls"))
    monkeypatch.setenv("RG_TEST_INTERRUPT_AT", "30")
    vid = register(store, project.workflow("v1")).version_id
    suite = project.suite(n=80)
    with pytest.raises(KeyboardInterrupt):
        evaluate(store, vid, suite, concurrency=1)
    kept = count(store, "SELECT count(*) FROM outputs WHERE error IS NULL")
    assert kept == 29
    assert count(store, "SELECT count(*) FROM eval_runs WHERE status = 'interrupted'") == 1
    assert count(store, "SELECT count(*) FROM eval_runs WHERE status = 'completed'") == 0
    monkeypatch.setenv("RG_TEST_INTERRUPT_AT", "0")
    resumed = evaluate(store, vid, suite, concurrency=4)
    assert (resumed.n_called, resumed.n_cached) == (51, 29)
    assert resumed.summary["metrics"]["accuracy"]["estimate"] == 1.0


def test_provider_errors_are_counted_not_silent_and_retried_next_time(
    store: Store, project: Project
) -> None:
    project.fn = "tests.release.fns:flaky_io"
    vid = register(store, project.workflow("v1")).version_id
    extra = [{"id": "boom-1", "input": "easy boom #fraud", "expected": "fraud", "must_pass": True}]
    outcome = evaluate(store, vid, project.suite(n=20, extra=extra))
    assert outcome.summary["errors"]["count"] == 1
    assert outcome.summary["errors"]["examples"][0]["error"].startswith("TimeoutError")
    failure = outcome.summary["must_pass"]["failures"][0]
    assert failure["case_id"] == "boom-1" and "upstream took too long" in failure["detail"]
    assert outcome.summary["metrics"]["accuracy"]["estimate"] == pytest.approx(20 / 21)
    again = evaluate(store, vid, project.suite(n=20, extra=extra))
    assert again.n_called == 1  # the errored case is tried again, the rest come from cache


def test_a_case_without_the_expected_a_scorer_needs_fails_before_any_write(
    store: Store, project: Project
) -> None:
    vid = register(store, project.workflow("v1")).version_id
    extra = [{"id": "no-answer", "input": "easy #fraud"}]
    with pytest.raises(SuiteError, match="case 'no-answer' has no 'expected'") as err:
        evaluate(store, vid, project.suite(n=8, extra=extra))
    assert err.value.source is not None and err.value.source.endswith("suite.yaml")
    assert count(store, "SELECT count(*) FROM eval_runs") == 0
    assert count(store, "SELECT count(*) FROM suites") == 0
    assert count(store, "SELECT count(*) FROM outputs") == 0


# -- clusters, epochs and flaky cases --------------------------------------------------------

_CALLS: dict[str, int] = {}
_CALLS_LOCK = threading.Lock()


def noisy(message: str) -> str:
    """'wrong' cases are always wrong; 'flip' cases are right on odd calls, wrong on even."""
    label = message.rsplit("#", 1)[-1].strip()
    if message.startswith("wrong"):
        return "other"
    if message.startswith("flip"):
        with _CALLS_LOCK:
            n = _CALLS[message] = _CALLS.get(message, 0) + 1
        return label if n % 2 else "other"
    return label


def rows(kinds: list[str], token: str, clusters: list[str] | None = None) -> list[dict[str, Any]]:
    out = []
    for i, kind in enumerate(kinds):
        row: dict[str, Any] = {
            "id": f"{kind}-{i:02d}",
            "input": f"{kind} {token} {i} #fraud",
            "expected": "fraud",
        }
        if clusters is not None:
            row["cluster"] = clusters[i]
        out.append(row)
    return out


T11 = 2.200985160091639  # scipy.stats.t.ppf(0.975, 11)


def test_a_clustered_suite_reports_a_wider_interval_and_names_its_clusters(
    store: Store, project: Project
) -> None:
    project.fn = "tests.release.test_eval:noisy"
    vid = register(store, project.workflow("v1")).version_id
    kinds = ["wrong"] * 24 + ["easy"] * 24  # 12 incidents of 4: the first 6 all wrong
    clusters = [f"incident-{i // 4}" for i in range(48)]
    plain = evaluate(store, vid, project.suite(n=0, extra=rows(kinds, "cl"), name="plain"))
    naive = plain.summary["metrics"]["accuracy"]
    assert naive["method"] == "wilson" and plain.summary["clusters"] is None
    clustered = evaluate(
        store, vid, project.suite(n=0, extra=rows(kinds, "cl", clusters), name="clustered")
    )
    assert clustered.n_called == 0  # a cluster label is not a reason to call the model again
    assert clustered.suite_id != plain.suite_id
    acc = clustered.summary["metrics"]["accuracy"]
    se = math.sqrt(12 / 11 * (12 * 2.0**2) / 48**2)  # cluster residual sums are +-2
    assert acc["method"] == "clustered (12 clusters, CR1, t_11)"
    assert acc["estimate"] == 0.5 and acc["n"] == 48
    assert acc["se"] == pytest.approx(se, abs=1e-6)
    assert (acc["low"], acc["high"]) == pytest.approx((0.5 - T11 * se, 0.5 + T11 * se), abs=1e-6)
    assert acc["high"] - acc["low"] > 2 * (naive["high"] - naive["low"])
    assert clustered.summary["metrics"]["pass_rate"]["method"] == acc["method"]
    assert clustered.summary["clusters"] == 12

    outcome = gate(store, vid, "staging")  # the gate reads the same clustered intervals
    by_name = {m["name"]: m for m in outcome.report.to_json()["metrics"]}
    assert by_name["accuracy"]["candidate"]["method"] == acc["method"]
    assert by_name["accuracy"]["candidate"]["low"] == pytest.approx(acc["low"], abs=1e-6)


def test_epoch_advice_and_flaky_cases_from_a_known_epoch_matrix(
    store: Store, project: Project
) -> None:
    project.fn = "tests.release.test_eval:noisy"
    vid = register(store, project.workflow("v1")).version_id
    kinds = ["easy"] * 8 + ["wrong"] * 8 + ["flip"] * 4
    suite = project.suite(n=0, extra=rows(kinds, "ep"))
    outcome = evaluate(store, vid, suite, epochs=2, concurrency=1)
    s = outcome.summary
    # case means 1 (8), 0 (8), 0.5 (4): var(ddof=1) = 4/19; within = 4 * 0.5 / 20 = 0.1
    within, between = 0.1, 4 / 19 - 0.1 / 2
    assert math.ceil(within / (0.1 * between)) == 7  # 6.23: the first k with within/k <= 10%
    assert set(s["epoch_advice"]) == {"accuracy", "pass_rate"}  # macro_f1 is a corpus metric
    advice = s["epoch_advice"]["accuracy"]
    assert advice["epochs"] == 7 and advice["observed_epochs"] == 2
    assert advice["within_var"] == pytest.approx(within, abs=1e-6)
    assert advice["between_var"] == pytest.approx(between, abs=1e-6)

    def se(k: int) -> float:
        return math.sqrt((between + within / k) / 20)

    assert advice["text"] == (
        f"run 7 epochs (SE {se(7):.4g}, now {se(2):.4g} at 2): "
        "past 7, epoch noise is under 10% of case spread"
    )
    assert s["flaky_total"] == 4
    assert s["flaky"] == [
        {"case_id": f"flip-{i}", "passed": 1, "epochs": 2, "per_epoch": [1, 0]}
        for i in (16, 17, 18, 19)
    ]
    # averaged pass rates on 20 cases: Wilson on the cases, not a collapsing bootstrap
    assert s["metrics"]["accuracy"]["method"] == "wilson"

    single = evaluate(store, vid, suite)
    assert single.summary["epoch_advice"] == {} and single.summary["flaky"] == []


def test_eval_precision_reads_old_and_new_summaries() -> None:
    new = {
        "clusters": 12,
        "epoch_advice": {"accuracy": {"epochs": 3, "text": "run 3 epochs"}},
        "flaky": [{"case_id": "a", "passed": 1, "epochs": 2, "per_epoch": [0, 1]}],
        "flaky_total": 7,
    }
    assert eval_precision(new) == new
    assert eval_precision({"flaky": ["a", "b"]}) == {
        "clusters": None,
        "epoch_advice": {},
        "flaky": [{"case_id": "a", "per_epoch": []}, {"case_id": "b", "per_epoch": []}],
        "flaky_total": 2,
    }


# -- two evals at once -----------------------------------------------------------------------


def test_two_evals_of_the_same_version_at_once_both_finish(store: Store, project: Project) -> None:
    """The second to write keeps the outputs and scores the first stored, not a conflict."""
    vid = register(store, project.workflow("v1")).version_id
    suite = project.suite(n=20)
    first: list[Any] = []

    def race(done: int, total: int) -> None:
        if not first:  # this eval has read an empty cache; another one runs to the end now
            other = threading.Thread(target=lambda: first.append(evaluate(store, vid, suite)))
            other.start()
            other.join()

    late = evaluate(store, vid, suite, progress=race)
    assert first[0].n_called == late.n_called == 20  # both paid: neither saw the other's cache
    assert late.summary["metrics"] == first[0].summary["metrics"]
    assert count(store, "SELECT count(*) FROM eval_runs WHERE status = 'completed'") == 2
    assert count(store, "SELECT count(*) FROM outputs") == 20
    scores = count(store, "SELECT count(*) FROM scores")
    assert scores > 0
    again = evaluate(store, vid, suite)
    assert (again.n_called, again.n_cached) == (0, 20)
    assert again.summary["metrics"] == first[0].summary["metrics"]
    assert count(store, "SELECT count(*) FROM scores") == scores


def test_a_writer_of_outputs_and_scores_another_writer_holds_waits_then_keeps_them(
    store: Store, project: Project
) -> None:
    """The rows a second eval writes while the first one's transaction is open: on
    PostgreSQL its insert waits on the first's uncommitted keys, then skips them."""
    vid = register(store, project.workflow("v1")).version_id
    out = CaseOutput("fraud", None, 1.0, 1, 1, 0.0, None)
    outputs = [("h2", 0, out), ("h1", 0, out)]
    scores = [("h2", 0, "acc", Score(1.0, True, "")), ("h1", 0, "acc", Score(1.0, True, ""))]
    landed: list[int] = []
    failed: list[BaseException] = []

    def second() -> None:
        try:
            with store.write() as conn:
                OutputRepo(conn).put_many(vid, outputs[::-1])
                landed.append(ScoreRepo(conn).put_many(vid, scores[::-1]))
        except BaseException as exc:
            failed.append(exc)

    with store.write() as conn:
        OutputRepo(conn).put_many(vid, outputs)
        landed.append(ScoreRepo(conn).put_many(vid, scores))
        other = threading.Thread(target=second)
        other.start()
        other.join(timeout=0.5)
        assert other.is_alive()  # it waits for this transaction
    other.join()
    assert failed == [] and landed == [2, 0]
    assert count(store, "SELECT count(*) FROM outputs") == 2
    assert count(store, "SELECT count(*) FROM scores") == 2
