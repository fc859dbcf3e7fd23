"""Pairwise compare: both orders, position bias cancelled, every judgement cached."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from releasegate.errors import InputError, PrerequisiteError, SuiteError
from releasegate.release.compare import CompareOutcome, compare, read_judge
from releasegate.release.evaluate import evaluate
from releasegate.release.register import register
from releasegate.store.engine import Store
from tests.helpers import Project
from tests.runner.test_judge import KEY_ENV, JudgeServer, block

N_CASES = 6


def answer(message: str, manifest: dict[str, Any]) -> str:
    """The workflows compared: ``generation.style`` says how much they bother to say."""
    style = manifest["generation"]["style"]
    if style == "flaky" and "case 2" in message:
        raise TimeoutError("upstream took too long")
    if style == "short":
        return f"{message}: ok"
    return f"{message}: here is a complete answer with the details you asked for"


def prefers_longer(prompt: str) -> str:
    a, b = block(prompt, "response_a"), block(prompt, "response_b")
    winner = "A" if len(a) > len(b) else "B" if len(b) > len(a) else "tie"
    return json.dumps({"winner": winner, "reason": f"{winner} says more"})


def always_a(prompt: str) -> str:
    return 'Looking at both: {"winner": "A", "reason": "the first one reads well"}'


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-judge-test")


@pytest.fixture
def judge_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[JudgeServer]:
    running = JudgeServer(monkeypatch, prefers_longer)
    yield running
    running.server.stop()


class Setup:
    """Two versions (long and short answers) of one workflow, a suite, and a judge file."""

    def __init__(self, store: Store, root: Path, server: JudgeServer) -> None:
        self.store, self.root, self.server = store, root, server
        project = Project(root=root, fn="tests.release.test_compare:answer")
        self.ids = {
            style: register(store, project.workflow(style, style=style)).version_id
            for style in ("long", "short", "flaky")
        }
        rows = [{"id": f"c{i}", "input": f"question case {i}"} for i in range(N_CASES)]
        (root / "cases.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        self.suite = root / "suite.yaml"
        self.suite.write_text(
            yaml.safe_dump(
                {
                    "suite": "answers",
                    "workflow": "router",
                    "cases": "cases.jsonl",
                    "scorers": [{"type": "regex", "params": {"pattern": "ok"}}],
                }
            )
        )
        self.judge = self.judge_file("Which response answers more completely?")

    def judge_file(self, rubric: str, name: str = "judge.yaml") -> Path:
        path = self.root / name
        path.write_text(yaml.safe_dump({"model": self.server.model(), "rubric": rubric}))
        return path

    def eval(self, *styles: str) -> None:
        for style in styles:
            evaluate(self.store, self.ids[style], self.suite)

    def compare(self, candidate: str, baseline: str, judge: Path | None = None) -> CompareOutcome:
        return compare(
            self.store, self.ids[candidate], self.ids[baseline], self.suite, judge or self.judge
        )


@pytest.fixture
def setup(store: Store, tmp_path: Path, judge_server: JudgeServer) -> Setup:
    made = Setup(store, tmp_path, judge_server)
    made.eval("long", "short")
    return made


def counts(outcome: CompareOutcome) -> dict[str, int]:
    d = outcome.to_dict()
    return {k: d[k] for k in ("n", "wins", "losses", "ties", "inconsistent", "not_judged")}


def test_a_judge_that_prefers_the_better_answer_wins_in_both_orders(setup: Setup) -> None:
    won = setup.compare("long", "short")
    assert counts(won) == {
        "n": N_CASES,
        "wins": N_CASES,
        "losses": 0,
        "ties": 0,
        "inconsistent": 0,
        "not_judged": 0,
    }
    assert won.n_called == 2 * N_CASES
    prompts = [r.body["messages"][-1]["content"] for r in setup.server.server.requests]
    long_first = [p for p in prompts if "complete answer" in block(p, "response_a")]
    assert len(long_first) == N_CASES  # each case was asked once in each order
    rate = won.to_dict()["win_rate"]
    assert rate["estimate"] == 1.0 and rate["method"] == "wilson"
    assert 0.5 < rate["low"] < 1.0 and rate["high"] == 1.0
    case = won.to_dict()["cases"][0]
    assert case["candidate_first"] == {
        "winner": "A",
        "prefers": "candidate",
        "reason": "A says more",
        "error": None,
    }
    assert case["baseline_first"]["winner"] == "B"

    lost = setup.compare("short", "long")
    assert (lost.count("loss"), lost.count("win"), lost.inconsistent) == (N_CASES, 0, 0)
    assert lost.to_dict()["win_rate"]["estimate"] == 0.0


def test_a_judge_that_always_picks_position_a_gives_ties_not_wins(setup: Setup) -> None:
    setup.server.answer = always_a
    biased = setup.compare("long", "short")
    assert counts(biased) == {
        "n": N_CASES,
        "wins": 0,
        "losses": 0,
        "ties": N_CASES,
        "inconsistent": N_CASES,
        "not_judged": 0,
    }
    rate = biased.to_dict()["win_rate"]
    assert rate["estimate"] == 0.5 and rate["low"] == rate["high"] == 0.5  # all ties
    assert all("position bias" in c.note for c in biased.cases)


def test_a_rerun_asks_nothing_and_a_changed_judge_asks_again(setup: Setup) -> None:
    first = setup.compare("long", "short")
    calls = setup.server.calls
    again = setup.compare("long", "short")
    assert (again.n_called, again.n_cached, setup.server.calls) == (0, 2 * N_CASES, calls)
    assert again.to_dict()["cases"] == first.to_dict()["cases"]
    assert again.judge == first.judge and again.to_dict()["judge_usage"]["calls"] == 0

    other = setup.compare("long", "short", setup.judge_file("Which is kinder?", "kind.yaml"))
    assert other.n_called == 2 * N_CASES and other.judge["identity"] != first.judge["identity"]
    assert other.judge["rubric_hash"] != first.judge["rubric_hash"]
    swapped = setup.compare("short", "long")  # another pair is another judgement
    assert swapped.n_called == 2 * N_CASES


def test_an_unreadable_judgement_is_not_counted_and_is_asked_again(setup: Setup) -> None:
    setup.server.answer = lambda p: "hmm" if "case 3" in p else prefers_longer(p)
    partial = setup.compare("long", "short")
    assert counts(partial)["n"] == N_CASES - 1 and partial.count("win") == N_CASES - 1
    (bad,) = partial.errors
    assert bad.case_id == "c3" and "no JSON object with 'winner'" in bad.note
    setup.server.answer = prefers_longer
    healed = setup.compare("long", "short")
    assert healed.n_called == 2 and healed.count("win") == N_CASES


def test_an_output_that_is_an_error_loses_without_asking_the_judge(setup: Setup) -> None:
    setup.eval("flaky")
    outcome = setup.compare("flaky", "short")
    (c2,) = [c for c in outcome.cases if c.case_id == "c2"]
    assert c2.outcome == "loss" and c2.judgements == ()
    assert c2.note.startswith("the candidate's output is an error: TimeoutError")
    assert outcome.n_called == 2 * (N_CASES - 1)


def test_a_missing_eval_names_the_eval_to_run(
    store: Store, tmp_path: Path, judge_server: JudgeServer
) -> None:
    made = Setup(store, tmp_path, judge_server)
    made.eval("short")
    with pytest.raises(PrerequisiteError) as info:
        made.compare("long", "short")
    short = made.ids["long"][:12]
    assert f"no completed eval of {short} on suite 'answers'" in info.value.message
    assert info.value.hint == f"run `releasegate eval {short} --suite {made.suite}`"
    assert judge_server.calls == 0


@pytest.mark.parametrize(
    ("doc", "field", "line", "reason"),
    [
        ({"rubric": "x"}, "model", 1, "is required"),
        ({"model": {"name": "j"}, "rubric": "x"}, "model.revision", 1, "must be pinned"),
        ({"model": {"name": "j", "revision": "1"}}, "rubric", 1, "is required"),
        ({"model": {"name": "j", "revision": "1"}, "rubric": "x", "scale": "1-5"}, "scale", 5, ""),
        ({"model": {"name": "j", "digest": "d"}, "rubric": "x", "prompt": "{response_a}"},
         "prompt", 5, "must contain {response_b}"),
    ],
)  # fmt: skip
def test_a_bad_judge_file_names_file_line_and_field(
    tmp_path: Path, doc: dict[str, Any], field: str, line: int, reason: str
) -> None:
    path = tmp_path / "judge.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(InputError) as info:
        read_judge(path)
    assert (info.value.source, info.value.field, info.value.line) == (str(path), field, line)
    assert reason in info.value.reason


def test_a_missing_judge_key_is_refused_before_any_call(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(PrerequisiteError) as info:
        setup.compare("long", "short")
    assert info.value.message == (
        f"the judge needs an API key: environment variable {KEY_ENV} is not set"
    )
    assert setup.server.calls == 0


def test_the_same_version_or_a_suite_of_another_workflow_is_refused(
    setup: Setup, tmp_path: Path
) -> None:
    with pytest.raises(InputError) as same:
        setup.compare("long", "long")
    assert same.value.field == "BASELINE"
    assert same.value.message.endswith(
        f"CANDIDATE and BASELINE are the same version {setup.ids['long'][:12]}"
    )
    other = tmp_path / "other.yaml"
    other.write_text(setup.suite.read_text().replace("workflow: router", "workflow: billing"))
    with pytest.raises(SuiteError) as info:
        compare(setup.store, setup.ids["long"], setup.ids["short"], other, setup.judge)
    assert (info.value.source, info.value.field) == (str(other), "workflow")
    assert info.value.reason == (
        f"suite is for workflow 'billing', version {setup.ids['long'][:12]} is 'router'"
    )
    assert setup.server.calls == 0


def test_an_interrupted_compare_keeps_what_was_judged_and_resumes(setup: Setup) -> None:
    def stop_after_three(done: int, total: int) -> None:
        if done == 3:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C, as asyncio.run handles it

    with pytest.raises(KeyboardInterrupt) as info:
        compare(
            setup.store,
            setup.ids["long"],
            setup.ids["short"],
            setup.suite,
            setup.judge,
            concurrency=1,
            progress=stop_after_three,
        )
    assert str(info.value) == "3 new judgements kept; re-run to resume"
    resumed = setup.compare("long", "short")
    assert (resumed.n_cached, resumed.n_called) == (3, 2 * N_CASES - 3)
    assert resumed.count("win") == N_CASES


def test_two_compares_of_the_same_pair_at_once_both_finish(setup: Setup) -> None:
    """The second to write keeps what the first stored instead of failing on it."""
    first: list[CompareOutcome] = []

    def race(done: int, total: int) -> None:
        if not first:  # before this compare asks anything, another one runs to the end
            other = threading.Thread(target=lambda: first.append(setup.compare("long", "short")))
            other.start()
            other.join()

    late = compare(
        setup.store, setup.ids["long"], setup.ids["short"], setup.suite, setup.judge, progress=race
    )
    assert first[0].n_called == late.n_called == 2 * N_CASES
    assert late.to_dict()["cases"] == first[0].to_dict()["cases"]
    again = setup.compare("long", "short")
    assert (again.n_called, again.n_cached) == (0, 2 * N_CASES)


def test_two_cases_of_the_same_content_share_one_question_per_order(setup: Setup) -> None:
    """A case added twice under two ids is one cache row per order: asked once, not twice."""
    rows = [{"id": f"c{i}", "input": f"question case {i}"} for i in range(N_CASES)]
    rows.append({"id": "c0-again", "input": "question case 0"})
    (setup.root / "twins.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    setup.suite = setup.root / "twins.yaml"
    setup.suite.write_text(
        (setup.root / "suite.yaml").read_text().replace("cases.jsonl", "twins.jsonl")
    )
    setup.eval("long", "short")

    won = setup.compare("long", "short")
    assert setup.server.calls == won.n_called == 2 * N_CASES  # the twin adds no request
    assert won.n_cached == 2 and won.to_dict()["judge_usage"]["calls"] == 2 * N_CASES
    assert counts(won)["n"] == won.count("win") == N_CASES + 1
    by_id = {c["case_id"]: c for c in won.to_dict()["cases"]}
    assert {**by_id["c0-again"], "case_id": "c0"} == by_id["c0"]

    again = setup.compare("long", "short")
    assert (again.n_called, again.n_cached) == (0, 2 * (N_CASES + 1))
    assert setup.server.calls == 2 * N_CASES
    assert again.to_dict()["cases"] == won.to_dict()["cases"]
