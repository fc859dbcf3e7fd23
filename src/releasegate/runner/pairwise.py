"""Pairwise judging: which of two outputs for the same case is better, asked both ways round.

LLM judges favour a position (often the first), so every pair is judged twice:
the candidate as response A, then as response B. Only agreement counts: a win
when both orders prefer the candidate, a loss when both prefer the baseline, a
tie otherwise. A pair whose two orders disagree is order-inconsistent (the
judge's position bias showed) and is a tie, never a win. The judge is built
from the same pinned model section as the ``judge`` scorer, and its model,
rubric and prompt are its identity.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from releasegate.domain.identity import canonical_json, content_hash
from releasegate.domain.masking import mask_secrets
from releasegate.domain.results import Case
from releasegate.runner.scorers import ParamError, check_params
from releasegate.runner.scorers.judge import (
    GENERATION,
    JUDGE_SYSTEM,
    Usage,
    VerdictError,
    as_text,
    build_client,
    check_template,
    fill,
    judge_model,
    model_identity,
    parse_answer,
    reason_of,
)

Order = Literal["candidate_first", "baseline_first"]
Prefers = Literal["candidate", "baseline", "tie"]
Outcome = Literal["win", "loss", "tie"]
ORDERS: tuple[Order, Order] = ("candidate_first", "baseline_first")
PLACEHOLDERS = ("input", "expected", "rubric", "response_a", "response_b")

PAIRWISE_PROMPT = """\
Two responses answer the same input. Decide which one better meets the rubric.

<input>
{input}
</input>

<reference_answer>
{expected}
</reference_answer>

<response_a>
{response_a}
</response_a>

<response_b>
{response_b}
</response_b>

<rubric>
{rubric}
</rubric>

The order of the two responses says nothing about their quality. Answer with one JSON
object and nothing else, where winner is "A", "B" or "tie":
{"winner": "<A|B|tie>", "reason": "<one or two sentences>"}
"""

_VALUE: Mapping[Prefers, float] = {"candidate": 1.0, "baseline": 0.0, "tie": 0.5}
_PREFERS: Mapping[float, Prefers] = {v: k for k, v in _VALUE.items()}
_OUTCOME: Mapping[Prefers, Outcome] = {"candidate": "win", "baseline": "loss", "tie": "tie"}
OUTCOME_VALUE: Mapping[Outcome, float] = {"win": 1.0, "tie": 0.5, "loss": 0.0}
"""For the win rate: a win 1, a tie half, a loss 0."""


@dataclass(frozen=True, slots=True)
class Judgement:
    """The judge's answer to one order of one pair; ``error`` set when there is none."""

    order: Order
    winner: str  # "A", "B" or "tie" as the judge said it; "" on error
    prefers: Prefers | None
    reason: str
    error: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0

    @property
    def value(self) -> float:
        """1 for the candidate, 0 for the baseline, 0.5 for a tie (what the cache stores)."""
        return _VALUE[self.prefers] if self.prefers is not None else 0.0

    def detail(self) -> str:
        return canonical_json(
            {
                "winner": self.winner,
                "reason": self.reason,
                "tokens_in": self.tokens_in,
                "tokens_out": self.tokens_out,
                "cost_usd": self.cost_usd,
            }
        )

    @classmethod
    def from_stored(cls, order: Order, value: float, detail: str) -> Judgement | None:
        """The judgement ``value`` and ``detail`` stored; None if they are not one."""
        prefers = _PREFERS.get(value)
        try:
            info = json.loads(detail)
        except ValueError:
            return None
        if prefers is None or not isinstance(info, dict):
            return None
        return cls(
            order,
            str(info.get("winner", "")),
            prefers,
            str(info.get("reason", "")),
            None,
            int(info.get("tokens_in", 0)),
            int(info.get("tokens_out", 0)),
            float(info.get("cost_usd", 0.0)),
        )


def prefers_of(order: Order, winner: str) -> Prefers:
    if winner == "tie":
        return "tie"
    candidate_is_a = order == "candidate_first"
    return "candidate" if (winner == "A") == candidate_is_a else "baseline"


@dataclass(frozen=True, slots=True)
class Combined:
    """Both orders of one pair, combined."""

    outcome: Outcome
    is_consistent: bool

    @property
    def value(self) -> float:
        """For the win rate: a win 1, a tie half, a loss 0."""
        return OUTCOME_VALUE[self.outcome]


def combine(first: Prefers, second: Prefers) -> Combined:
    """Agreement decides; any disagreement between the orders is an inconsistent tie."""
    if first == second:
        return Combined(_OUTCOME[first], True)
    return Combined("tie", False)


def read_winner(text: str) -> tuple[str, str]:
    """``("A" | "B" | "tie", reason)`` from the judge's answer, or a VerdictError."""
    answer = parse_answer(text, "winner")
    raw = answer["winner"]
    winner = raw.strip().upper() if isinstance(raw, str) else None
    if winner == "TIE":
        winner = "tie"
    if winner not in ("A", "B", "tie"):
        raise VerdictError(f'the winner must be "A", "B" or "tie", got {raw!r}')
    return winner, reason_of(answer)


class PairwiseJudge:
    """Asks a pinned judge model which of two responses better meets a rubric."""

    kind: ClassVar[str] = "pairwise_judge"

    def __init__(self, params: Mapping[str, Any]) -> None:
        check_params(params, ("model", "rubric", "prompt"))
        self.section = judge_model(params.get("model"))
        rubric = params.get("rubric")
        if not isinstance(rubric, str) or not rubric.strip():
            raise ParamError("rubric", "is required: what makes one response better, in words")
        self.rubric = rubric
        self.template = check_template(
            params.get("prompt", PAIRWISE_PROMPT), ("response_a", "response_b"), PLACEHOLDERS
        )
        self.client = build_client(self.section, JUDGE_SYSTEM)
        self.usage = Usage()

    @property
    def api_key_env(self) -> str:
        return self.client.api_key_env

    def prompt_hash(self) -> str:
        return content_hash(
            {"system": JUDGE_SYSTEM, "template": self.template, "generation": dict(GENERATION)}
        )

    def identity(self) -> str:
        return content_hash(
            {
                "kind": self.kind,
                "model": model_identity(self.section),
                "rubric": self.rubric,
                "prompt": self.prompt_hash(),
            }
        )

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": self.section["name"],
            "revision": self.section.get("revision"),
            "digest": self.section.get("digest"),
            "base_url": self.section.get("base_url"),
            "rubric_hash": content_hash(self.rubric),
            "prompt_hash": self.prompt_hash(),
            "identity": self.identity(),
        }

    def prompt(self, case: Case, response_a: str, response_b: str) -> str:
        values = {
            "input": as_text(case.input),
            "expected": as_text(case.expected),
            "rubric": self.rubric.strip(),
            "response_a": response_a,
            "response_b": response_b,
        }
        return fill(self.template, values)

    async def judge(self, case: Case, candidate: str, baseline: str, order: Order) -> Judgement:
        """One order of one pair; a failed call or an unreadable answer is an error Judgement."""
        first, second = (
            (candidate, baseline) if order == "candidate_first" else (baseline, candidate)
        )
        answer = await self.client.complete(self.prompt(case, first, second))
        self.usage.add(answer)
        winner, reason, error = "", "", None
        if answer.error is not None:
            error = mask_secrets(f"call failed: {answer.error}")
        else:
            try:
                winner, reason = read_winner(answer.text)
            except VerdictError as exc:
                error = mask_secrets(str(exc))
        return Judgement(
            order,
            winner,
            None if error else prefers_of(order, winner),
            reason,
            error,
            answer.tokens_in,
            answer.tokens_out,
            answer.cost_usd,
        )
