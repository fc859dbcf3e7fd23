"""LLM-as-judge: a pinned judge model grades each output against a rubric.

The judge is asked through releasegate's OpenAI-compatible provider, so its
calls get the same retries, rate limits and cost accounting as a workflow's.
Its answer must be one JSON object (``{"score": ..., "reason": ...}``), found
even when wrapped in prose or a code fence; anything else, a score off the
scale, or a failed call is an error Score (``detail`` starting ``error:``)
that the engine never caches, so the next run asks again. The judge model,
rubric, scale and the full prompt are the scorer's identity: change any of
them and every output is judged again. ``pairwise`` reuses the pieces here.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from releasegate.domain.identity import content_hash
from releasegate.domain.masking import mask_secrets
from releasegate.domain.results import Case, CaseOutput, Score
from releasegate.errors import ManifestError
from releasegate.providers.base import ProviderContext
from releasegate.providers.embeddings import shared_embedder
from releasegate.providers.openai_compat import OpenAICompatible
from releasegate.runner.scorers import ParamError, check_params, failed_output
from releasegate.runner.scorers.base import BaseScorer

ERROR = "error: "
MODEL_KEYS = ("provider", "name", "revision", "digest", "base_url", "api_key_env", "options")
IDENTITY_KEYS = ("provider", "name", "revision", "digest", "base_url")
"""What the verdict depends on; ``api_key_env`` and ``options`` only change how calls go."""
GENERATION: Mapping[str, Any] = {"temperature": 0}
REASON_CHARS = 500

JUDGE_SYSTEM = (
    "You are a strict, impartial evaluator of an AI system's responses. Judge only "
    "against the rubric you are given; ignore the length and style of a response "
    "unless the rubric asks about them. Answer with one JSON object and nothing else."
)

DEFAULT_PROMPT = """\
Grade the response below against the rubric.

<input>
{input}
</input>

<reference_answer>
{expected}
</reference_answer>

<response>
{output}
</response>

<rubric>
{rubric}
</rubric>

{scale}
Answer with one JSON object and nothing else:
{"score": <score>, "reason": "<one or two sentences>"}
"""

SCALES: Mapping[str, str] = {
    "pass_fail": "The score is 1 if the response meets the rubric and 0 if it does not.",
    "1-5": (
        "The score is a whole number from 1 to 5: 1 fails the rubric completely, "
        "3 meets it in part, 5 meets it fully."
    ),
}
PLACEHOLDERS = ("input", "expected", "output", "rubric", "scale")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_FENCE = re.compile(r"```[\w-]*\s*(.*?)```", re.DOTALL)


class VerdictError(ValueError):
    """The judge answered, but not with a usable verdict; the message says why."""


def judge_model(raw: Any) -> dict[str, Any]:
    """The judge's ``model`` section, validated; ParamErrors name ``model.<field>``.

    Like a workflow's model section, but the judge must be pinned (``revision``
    or ``digest``): a judge that changes under the same name would silently
    reuse verdicts cached from the old one.
    """
    if not isinstance(raw, Mapping):
        raise ParamError("model", "expected a mapping with the judge model's name and revision")
    for key in raw:
        if key == "api_key":  # never echo it: it is a secret pasted in by mistake
            raise ParamError(
                "model.api_key",
                "a key does not belong in a suite file; put it in an environment variable "
                "and name that in model.api_key_env",
            )
        if key not in MODEL_KEYS:
            raise ParamError(
                f"model.{key}", f"unknown field; a model takes: {', '.join(MODEL_KEYS)}"
            )
    provider = raw.get("provider", "openai")
    if provider != "openai":
        raise ParamError(
            "model.provider",
            f"a judge speaks the OpenAI chat-completions protocol, so the provider is 'openai' "
            f"(vLLM, Ollama, llama.cpp and LM Studio serve it too), not {provider!r}",
        )
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ParamError("model.name", "is required: the judge model's name")
    for key in ("revision", "digest", "base_url", "api_key_env"):
        if key in raw and not isinstance(raw[key], str):
            raise ParamError(f"model.{key}", f"expected a string, got {type(raw[key]).__name__}")
    if not any(isinstance(raw.get(k), str) and raw[k].strip() for k in ("revision", "digest")):
        raise ParamError(
            "model.revision",
            "the judge model must be pinned: give model.revision (a dated snapshot or "
            "server build) or model.digest (an Ollama digest)",
        )
    return {**raw, "provider": "openai"}


def build_client(section: Mapping[str, Any], system: str) -> OpenAICompatible:
    """The provider the judge is asked through; its ManifestErrors become ParamErrors."""
    manifest = {
        "model": dict(section),
        "prompts": {"system": system},
        "generation": dict(GENERATION),
    }
    try:
        return OpenAICompatible(manifest, ProviderContext(embedder=shared_embedder()))
    except ManifestError as exc:
        raise ParamError(exc.field or "model", exc.reason) from None


def model_identity(section: Mapping[str, Any]) -> dict[str, Any]:
    return {k: section[k] for k in IDENTITY_KEYS if k in section}


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace ``{name}`` placeholders in one pass, so a filled-in value is never re-read.

    Other braces (the JSON example in the prompt) are left alone, so templates
    need no escaping.
    """
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def check_template(template: Any, required: tuple[str, ...], known: tuple[str, ...]) -> str:
    if not isinstance(template, str) or not template.strip():
        raise ParamError("prompt", "expected the judge prompt template as text")
    used = set(_PLACEHOLDER.findall(template)) & set(known)
    missing = [p for p in required if p not in used]
    if missing:
        needed = ", ".join("{" + p + "}" for p in missing)
        raise ParamError("prompt", f"the template must contain {needed}")
    return template


def as_text(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def parse_answer(text: str, key: str) -> dict[str, Any]:
    """The first JSON object in the judge's answer that has ``key``.

    Tolerates prose around it and Markdown code fences; anything else is a
    VerdictError quoting the start of the answer.
    """
    stripped = text.strip()
    chunks = [stripped, *_FENCE.findall(stripped)]
    decoder = json.JSONDecoder()
    for chunk in chunks:
        for start in [i for i, ch in enumerate(chunk) if ch == "{"]:
            try:
                found, _ = decoder.raw_decode(chunk, start)
            except ValueError:
                continue
            if isinstance(found, dict) and key in found:
                return found
    shown = stripped[:120].replace("\n", " ")
    raise VerdictError(f"no JSON object with '{key}' in the judge's answer: {shown!r}")


def reason_of(answer: Mapping[str, Any]) -> str:
    reason = answer.get("reason", "")
    text = reason if isinstance(reason, str) else as_text(reason)
    text = mask_secrets(" ".join(text.split()))
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


def whole_number(raw: Any) -> int:
    if isinstance(raw, bool):
        return int(raw)
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str) and re.fullmatch(r"\s*[+-]?\d+\s*", raw):
        return int(raw)
    raise VerdictError(f"the score must be a whole number, got {raw!r}")


@dataclass
class Usage:
    """What the judge cost so far: calls, tokens and dollars (a running total)."""

    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0

    def add(self, out: CaseOutput) -> None:
        self.calls += 1
        self.tokens_in += out.tokens_in
        self.tokens_out += out.tokens_out
        self.cost_usd += out.cost_usd

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": round(self.cost_usd, 6),
        }


class Judge(BaseScorer):
    """``type: judge``: a rubric graded pass/fail or on a 1-5 scale by a pinned model.

    Value: pass/fail gives 1 or 0; 1-5 gives ``(score - 1) / 4``, passing at
    ``pass_at`` (default 4), or at ``threshold`` on the value if that is given
    instead. An empty output fails without asking the judge.
    """

    kind: ClassVar[str] = "judge"

    def __init__(self, params: Mapping[str, Any], *, name: str | None = None) -> None:
        has_threshold = "threshold" in params
        super().__init__(params, name=name)
        check_params(self.params, ("model", "rubric", "scale", "pass_at", "prompt"))
        self.section = judge_model(self.params.get("model"))
        rubric = self.params.get("rubric")
        if not isinstance(rubric, str) or not rubric.strip():
            raise ParamError("rubric", "is required: what a good response does, in words")
        self.rubric = rubric
        scale = self.params.get("scale", "pass_fail")
        if scale not in SCALES:
            raise ParamError("scale", f"must be one of {', '.join(SCALES)}, got {scale!r}")
        self.scale: str = scale
        self.pass_at: int | None = None
        if scale == "pass_fail":
            if "pass_at" in self.params:
                raise ParamError("pass_at", "only a 1-5 scale has pass_at")
        elif "pass_at" in self.params:
            if has_threshold:
                raise ParamError("pass_at", "give pass_at or threshold, not both")
            pass_at = self.params["pass_at"]
            if isinstance(pass_at, bool) or not isinstance(pass_at, int) or not 1 <= pass_at <= 5:
                raise ParamError("pass_at", f"must be a whole number from 1 to 5, got {pass_at!r}")
            self.pass_at = pass_at
        elif not has_threshold:
            self.pass_at = 4
        if self.pass_at is not None:
            self.threshold = (self.pass_at - 1) / 4
        self.template = check_template(
            self.params.get("prompt", DEFAULT_PROMPT), ("output",), PLACEHOLDERS
        )
        self.client = build_client(self.section, JUDGE_SYSTEM)
        self.usage = Usage()

    def prompt_hash(self) -> str:
        """The judge's full instructions: system prompt, template and scale wording."""
        return content_hash(
            {
                "system": JUDGE_SYSTEM,
                "template": self.template,
                "scale": SCALES[self.scale],
                "generation": dict(GENERATION),
            }
        )

    def identity(self) -> str:
        return content_hash(
            {
                "kind": self.kind,
                "model": model_identity(self.section),
                "rubric": self.rubric,
                "scale": self.scale,
                "pass_at": self.pass_at,
                "threshold": self.threshold,
                "prompt": self.prompt_hash(),
            }
        )

    def describe(self) -> dict[str, Any]:
        """Who judged and how, for reports: a judge change is visible there."""
        return {
            "kind": self.kind,
            "name": self.name,
            "model": self.section["name"],
            "revision": self.section.get("revision"),
            "digest": self.section.get("digest"),
            "base_url": self.section.get("base_url"),
            "scale": self.scale,
            "pass_at": self.pass_at,
            "threshold": self.threshold,
            "rubric_hash": content_hash(self.rubric),
            "prompt_hash": self.prompt_hash(),
            "identity": self.identity(),
        }

    def prompt(self, case: Case, output: CaseOutput) -> str:
        values = {
            "input": as_text(case.input),
            "expected": as_text(case.expected),
            "output": output.text,
            "rubric": self.rubric.strip(),
            "scale": SCALES[self.scale],
        }
        return fill(self.template, values)

    def score(self, case: Case, output: CaseOutput) -> Score:
        """Synchronous: for callers outside an event loop. The engine awaits ``ascore``."""
        if (unasked := self.unasked(output)) is not None:
            return unasked  # no event loop for an output the judge never sees
        return asyncio.run(self.ascore(case, output))

    def unasked(self, output: CaseOutput) -> Score | None:
        """A failed or empty output fails without asking the judge."""
        if (failed := failed_output(output)) is not None:
            return failed
        if not output.text.strip():
            return self.verdict(0.0, "empty output")
        return None

    async def ascore(self, case: Case, output: CaseOutput) -> Score:
        if (unasked := self.unasked(output)) is not None:
            return unasked
        answer = await self.client.complete(self.prompt(case, output))
        self.usage.add(answer)
        if answer.error is not None:
            return judge_error(f"call failed: {answer.error}")
        try:
            return self.read(answer.text)
        except VerdictError as exc:
            return judge_error(str(exc))

    def read(self, text: str) -> Score:
        """The judge's answer as a Score; a VerdictError if it is not a verdict on the scale."""
        answer = parse_answer(text, "score")
        score = whole_number(answer["score"])
        reason = reason_of(answer)
        if self.scale == "pass_fail":
            if score not in (0, 1):
                raise VerdictError(f"a pass/fail score must be 0 or 1, got {score}")
            verdict = "pass" if score else "fail"
            return self.verdict(float(score), f"judge {verdict}: {reason}".rstrip(": "))
        if not 1 <= score <= 5:
            raise VerdictError(f"a 1-5 score must be between 1 and 5, got {score}")
        return self.verdict((score - 1) / 4, f"judge {score}/5: {reason}".rstrip(": "))


def judge_error(reason: str) -> Score:
    """An error, not a verdict: fails the case, says why, and is never cached."""
    return Score(value=0.0, passed=False, detail=f"{ERROR}judge {mask_secrets(reason)}")
