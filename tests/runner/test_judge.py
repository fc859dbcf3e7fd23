"""The judge scorer against a loopback OpenAI server that answers by a rule.

``JudgeServer`` gives tests/providers/openai_server.py a judge's brain without
editing it: its module-level ``_reply`` is swapped for ``answer(prompt)``.
test_compare.py and the compare CLI test reuse it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from releasegate.domain.results import Case, CaseOutput, Score
from releasegate.errors import SuiteError
from releasegate.release.evaluate import evaluate
from releasegate.release.register import register
from releasegate.runner.pairwise import Judgement
from releasegate.runner.scorers import build_scorer
from releasegate.runner.scorers.judge import JUDGE_SYSTEM, Judge
from releasegate.store.engine import Store
from tests.helpers import Project, judge_suite
from tests.providers import openai_server
from tests.providers.openai_server import FakeOpenAIServer

KEY_ENV = "RG_TEST_JUDGE_KEY"
PINNED = {"name": "m", "revision": "1"}
NO_WAIT = {"timeout_s": 0}
Answer = Callable[[str], str]


class JudgeServer:
    """The fake OpenAI server, answering each request with ``answer(last user message)``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answer: Answer) -> None:
        self.answer = answer
        monkeypatch.setattr(openai_server, "_reply", self._reply)
        self.server = FakeOpenAIServer().start()

    def _reply(self, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        messages = body.get("messages") or []
        user = next(m["content"] for m in reversed(messages) if m.get("role") == "user")
        return {"role": "assistant", "content": self.answer(str(user))}, "stop"

    @property
    def calls(self) -> int:
        return len(self.server.requests)

    def model(self, **extra: Any) -> dict[str, Any]:
        """A judge model section pointing at this server."""
        return {
            "provider": "openai",
            "name": "judge-test",
            "revision": "2024-06-01",
            "base_url": self.server.base_url,
            "api_key_env": KEY_ENV,
            "options": {"timeout_s": 5, "max_retries": 0},
            **extra,
        }


def verdict(score: Any, reason: str = "because") -> str:
    return json.dumps({"score": score, "reason": reason})


def block(prompt: str, tag: str) -> str:
    found = re.search(rf"<{tag}>\n(.*?)\n</{tag}>", prompt, re.DOTALL)
    assert found is not None, f"no <{tag}> in the judge prompt"
    return found.group(1)


def score_in_response(prompt: str) -> str:
    """A judge that gives the score written in the response: 'rated 4' gets 4."""
    return verdict(int(re.findall(r"\d", block(prompt, "response"))[-1]), "read it")


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-judge-test")


@pytest.fixture
def judge_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[JudgeServer]:
    running = JudgeServer(monkeypatch, score_in_response)
    yield running
    running.server.stop()


def make(server: JudgeServer, **params: Any) -> Judge:
    params.setdefault("model", server.model())
    params.setdefault("rubric", "Answers the question politely.")
    scorer = build_scorer("judge", params)
    assert isinstance(scorer, Judge)
    scorer.client.backoff_base_s = 0.01
    return scorer


def judge(scorer: Judge, text: str, *, expected: Any = None) -> Score:
    case = Case(case_id="c1", input="Where is my refund?", expected=expected)
    return asyncio.run(scorer.ascore(case, CaseOutput(text=text)))


def test_pass_fail_scores_one_or_zero(judge_server: JudgeServer) -> None:
    scorer = make(judge_server, scale="pass_fail")
    assert judge(scorer, "answer 1") == Score(1.0, True, "judge pass: read it")
    assert judge(scorer, "answer 0") == Score(0.0, False, "judge fail: read it")
    synchronous = scorer.score(Case("c2", "q"), CaseOutput(text="answer 1"))
    assert synchronous == Score(1.0, True, "judge pass: read it")
    assert judge_server.calls == 3


def test_one_to_five_maps_to_value_and_passes_at_pass_at(judge_server: JudgeServer) -> None:
    default = make(judge_server, scale="1-5")
    assert [(s.value, s.passed) for s in (judge(default, f"rated {n}") for n in (1, 3, 4, 5))] == [
        (0.0, False),
        (0.5, False),
        (0.75, True),
        (1.0, True),
    ]
    assert judge(default, "rated 4").detail == "judge 4/5: read it"
    lenient = make(judge_server, scale="1-5", pass_at=3)
    assert judge(lenient, "rated 3").passed and not judge(lenient, "rated 2").passed
    strict = make(judge_server, scale="1-5", threshold=0.9)
    assert not judge(strict, "rated 4").passed and judge(strict, "rated 5").passed


def test_the_judge_sees_input_expected_output_and_rubric(judge_server: JudgeServer) -> None:
    scorer = make(judge_server, scale="1-5", rubric="Mentions the refund policy.")
    judge(scorer, "rated 5: refunds take 3 days", expected="Refunds take 3 days.")
    body = judge_server.server.requests[-1].body
    assert body["model"] == "judge-test" and body["temperature"] == 0
    assert body["messages"][0] == {"role": "system", "content": JUDGE_SYSTEM}
    prompt = body["messages"][-1]["content"]
    assert block(prompt, "input") == "Where is my refund?"
    assert block(prompt, "reference_answer") == "Refunds take 3 days."
    assert block(prompt, "response") == "rated 5: refunds take 3 days"
    assert block(prompt, "rubric") == "Mentions the refund policy."
    assert "whole number from 1 to 5" in prompt


def test_a_verdict_is_found_in_prose_or_a_code_fence(judge_server: JudgeServer) -> None:
    scorer = make(judge_server)
    for wrapped in (
        'Sure.\n```json\n{"score": 1, "reason": "fine"}\n```\n',
        'My verdict: {"score": "1", "reason": "fine"} -- done',
        '{"note": "thinking"} then {"score": 1.0, "reason": "fine"}',
    ):
        judge_server.answer = functools.partial(lambda text, prompt: text, wrapped)
        assert judge(scorer, "hello") == Score(1.0, True, "judge pass: fine"), wrapped


@pytest.mark.parametrize(
    ("scale", "answer", "reason"),
    [
        ("1-5", "It looks good to me.", "no JSON object with 'score' in the judge's answer"),
        ("1-5", verdict(7), "a 1-5 score must be between 1 and 5, got 7"),
        ("1-5", verdict(0), "a 1-5 score must be between 1 and 5, got 0"),
        ("pass_fail", verdict(3), "a pass/fail score must be 0 or 1, got 3"),
        ("1-5", verdict("high"), "the score must be a whole number, got 'high'"),
        ("1-5", verdict(3.5), "the score must be a whole number, got 3.5"),
    ],
)
def test_an_unusable_verdict_is_an_error_with_the_reason(
    judge_server: JudgeServer, scale: str, answer: str, reason: str
) -> None:
    judge_server.answer = lambda prompt: answer
    score = judge(make(judge_server, scale=scale), "rated 4")
    assert score.detail.startswith(f"error: judge {reason}")
    assert (score.value, score.passed) == (0.0, False)


def test_a_failed_judge_call_is_an_error_after_the_providers_retries(
    judge_server: JudgeServer,
) -> None:
    scorer = make(judge_server, model=judge_server.model(options={"max_retries": 2}))
    judge_server.server.fail_next(3, "server_error")
    score = judge(scorer, "rated 4")
    assert score.detail == (
        "error: judge call failed: HTTP 500 Internal Server Error (server_error) after 3 attempts"
    )
    assert not score.passed and judge_server.calls == 3
    assert scorer.usage.calls == 1


def test_an_empty_output_fails_without_asking_the_judge(judge_server: JudgeServer) -> None:
    assert judge(make(judge_server), "  ") == Score(0.0, False, "empty output")
    failed = asyncio.run(
        make(judge_server).ascore(Case("c1", "q"), CaseOutput(text="", error="timeout"))
    )
    assert failed.detail == "error: timeout" and judge_server.calls == 0


def test_identity_covers_model_rubric_scale_and_prompt(judge_server: JudgeServer) -> None:
    base = make(judge_server, scale="1-5")
    same = make(judge_server, scale="1-5", model=judge_server.model(api_key_env="OTHER_KEY"))
    assert same.identity() == base.identity()  # how calls are made is not what they answer
    changed = {
        "model name": make(judge_server, scale="1-5", model=judge_server.model(name="judge-2")),
        "revision": make(judge_server, scale="1-5", model=judge_server.model(revision="2025")),
        "digest": make(judge_server, scale="1-5", model=judge_server.model(digest="sha256:ab")),
        "rubric": make(judge_server, scale="1-5", rubric="Is short."),
        "scale": make(judge_server, scale="pass_fail"),
        "pass_at": make(judge_server, scale="1-5", pass_at=3),
        "prompt": make(judge_server, scale="1-5", prompt="Grade {output} by {rubric}."),
    }
    ids = {name: s.identity() for name, s in changed.items()}
    assert base.identity() not in ids.values()
    assert len(set(ids.values())) == len(ids)
    assert changed["prompt"].describe()["prompt_hash"] != base.describe()["prompt_hash"]


def test_describe_names_the_judge_for_reports(judge_server: JudgeServer) -> None:
    described = make(judge_server, scale="1-5").describe()
    assert {k: described[k] for k in ("kind", "model", "revision", "digest", "scale")} == {
        "kind": "judge",
        "model": "judge-test",
        "revision": "2024-06-01",
        "digest": None,
        "scale": "1-5",
    }
    assert described["pass_at"] == 4 and len(described["prompt_hash"]) == 64


@pytest.mark.parametrize(
    ("params", "field", "reason"),
    [
        ({"model": None}, "params.model", "expected a mapping"),
        ({"model": {"revision": "1"}}, "params.model.name", "is required"),
        ({"model": {"name": "gpt-x"}}, "params.model.revision", "must be pinned"),
        ({"model": {**PINNED, "provider": "python"}}, "params.model.provider", "'openai'"),
        ({"model": {**PINNED, "api_key": "sk-secret"}}, "params.model.api_key", "variable"),
        ({"model": {**PINNED, "options": NO_WAIT}}, "params.model.options.timeout_s", "than 0"),
        ({"rubric": ""}, "params.rubric", "is required"),
        ({"scale": "1-10"}, "params.scale", "must be one of pass_fail, 1-5"),
        ({"scale": "pass_fail", "pass_at": 4}, "params.pass_at", "only a 1-5 scale"),
        ({"scale": "1-5", "pass_at": 6}, "params.pass_at", "from 1 to 5"),
        ({"scale": "1-5", "pass_at": 4, "threshold": 0.5}, "params.pass_at", "not both"),
        ({"prompt": "Grade it: {rubric}"}, "params.prompt", "must contain {output}"),
        ({"rubrik": "typo"}, "params.rubrik", "unknown param"),
    ],
)  # fmt: skip
def test_bad_params_are_suite_errors_naming_the_param(
    params: dict[str, Any], field: str, reason: str
) -> None:
    full = {"model": PINNED, "rubric": "Is polite.", **params}
    with pytest.raises(SuiteError) as info:
        build_scorer("judge", full)
    assert info.value.field == field
    assert reason in info.value.reason
    assert "sk-secret" not in str(info.value)


# -- through the eval engine: awaited concurrently, cached by identity ---------------------


def reply(message: str) -> str:
    """The workflow under test: its answer carries the score the fake judge will give."""
    return f"answer to {message}"


def write_suite(root: Path, model: dict[str, Any], rubric: str) -> Path:
    rows = [{"id": f"c{i}", "input": f"question rated {i}"} for i in range(1, 6)]
    return judge_suite(root, model, rows, rubric=rubric, scale="1-5")


def test_eval_caches_verdicts_and_asks_again_only_when_the_judge_changes(
    store: Store, tmp_path: Path, judge_server: JudgeServer
) -> None:
    project = Project(root=tmp_path, fn="tests.runner.test_judge:reply")
    vid = register(store, project.workflow("v1")).version_id
    model = judge_server.model()

    def run(
        rubric: str = "Is polite.", use_cache: bool = True, **model_extra: Any
    ) -> tuple[int, Mapping[str, Any]]:
        before = judge_server.calls
        suite = write_suite(tmp_path, {**model, **model_extra}, rubric)
        out = evaluate(store, vid, suite, use_cache=use_cache)
        return judge_server.calls - before, out.summary

    calls, summary = run()
    assert calls == 5
    assert summary["metrics"]["polite"]["estimate"] == pytest.approx(0.5)  # (0+.25+.5+.75+1)/5
    assert run()[0] == 0
    assert run(rubric="Is terse.")[0] == 5
    assert run(revision="2024-07-01")[0] == 5
    assert run()[0] == 0  # the first judge's verdicts are still cached

    judge_server.answer = lambda p: "no idea" if "rated 3" in p else score_in_response(p)
    calls, summary = run(rubric="Is kind.")
    assert calls == 5
    assert summary["must_pass"]["failures"] == []
    judge_server.answer = score_in_response
    assert run(rubric="Is kind.")[0] == 1  # only the error is asked again

    judge_server.answer = lambda p: "no idea" if "rated 5" in p else score_in_response(p)
    assert run(rubric="Is kind.", use_cache=False)[0] == 5
    judge_server.answer = score_in_response
    assert run(rubric="Is kind.")[0] == 1  # --no-cache forgot the older verdict too


def test_an_eval_reports_what_its_judges_cost_and_a_cached_verdict_costs_nothing(
    store: Store, tmp_path: Path, judge_server: JudgeServer
) -> None:
    project = Project(root=tmp_path, fn="tests.runner.test_judge:reply")
    vid = register(store, project.workflow("v1")).version_id
    options = {
        "timeout_s": 5,
        "max_retries": 0,
        "price_per_1k_input": 1.0,
        "price_per_1k_output": 2.0,
    }
    suite = write_suite(tmp_path, judge_server.model(options=options), "Is polite.")
    first = evaluate(store, vid, suite).summary["cost_usd"]
    usage = [r.usage for r in judge_server.server.requests]
    paid = sum(u["prompt_tokens"] * 1.0 + u["completion_tokens"] * 2.0 for u in usage) / 1000
    assert first["judges"]["polite"]["calls"] == 5
    assert first["judges_total"] == pytest.approx(paid, abs=1e-6) and paid > 0
    again = evaluate(store, vid, suite).summary["cost_usd"]
    assert "judges" not in again and judge_server.calls == 5


def test_a_pairwise_judgement_reads_back_from_the_cache_as_it_was_stored() -> None:
    said = Judgement("baseline_first", "A", "baseline", "A is clearer", None, 120, 8, 0.0003)
    assert Judgement.from_stored("baseline_first", said.value, said.detail()) == said
    assert Judgement.from_stored("candidate_first", 0.25, said.detail()) is None  # no preference
    assert Judgement.from_stored("candidate_first", 1.0, "not json") is None
    assert Judgement.from_stored("candidate_first", 1.0, "[]") is None
