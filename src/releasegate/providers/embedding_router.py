"""Zero-shot routing by embedding similarity: the demo workflow's "model".

A version's prompt describes each label with one or more phrasings; a message
goes to the label whose closest description is most similar to it. Scores pass
through a softmax with a temperature, so "confidence" means the same thing as
for an LLM classifier, and a message the model is unsure about is escalated to
a human instead of guessed. The algorithm is fixed because the demo data and
its v1/v2/v3 prompts are tuned against it; only the manifest changes behaviour.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np
import numpy.typing as npt

from releasegate.domain.results import CaseOutput
from releasegate.errors import ManifestError
from releasegate.providers.base import ProviderContext

# e5 cosines sit in a narrow band (~0.75-0.90), so these defaults escalate almost every
# message; the demo versions set temperature 0.01 and min_confidence 0.3.
DEFAULT_TEMPERATURE = 0.05
DEFAULT_MIN_CONFIDENCE = 0.5
DEFAULT_ESCALATE_LABEL = "human"
INPUT_KEYS = ("message", "text", "input")


class Routing(NamedTuple):
    """One routing decision, before it becomes a CaseOutput."""

    label: str
    predicted: str
    confidence: float
    is_escalated: bool


def _number(section: Mapping[str, Any], key: str, default: float) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ManifestError(f"must be a number, got {value!r}", field=f"generation.{key}")
    return float(value)


def _parse_labels(prompts: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    labels = prompts.get("labels")
    if not isinstance(labels, Mapping) or not labels:
        raise ManifestError(
            "the embedding router needs a non-empty mapping of label -> description(s)",
            field="prompts.labels",
            hint="prompts: {labels: {card_lost: ['I lost my card', ...], ...}}",
        )
    parsed: dict[str, tuple[str, ...]] = {}
    for label, value in labels.items():
        field = f"prompts.labels.{label}"
        if not isinstance(label, str) or not label.strip():
            raise ManifestError("label names must be non-empty strings", field="prompts.labels")
        descriptions = [value] if isinstance(value, str) else value
        if not isinstance(descriptions, list) or not descriptions:
            raise ManifestError("give a description or a non-empty list of them", field=field)
        for i, text in enumerate(descriptions):
            if not isinstance(text, str) or not text.strip():
                where = field if isinstance(value, str) else f"{field}[{i}]"
                raise ManifestError(
                    f"descriptions must be non-empty strings, got {text!r}", field=where
                )
        parsed[label] = tuple(descriptions)
    return parsed


def _parse_template(prompts: Mapping[str, Any]) -> str:
    templates = prompts.get("templates", {})
    if templates is None:
        return "{input}"
    if not isinstance(templates, Mapping):
        raise ManifestError("must be a mapping of template name -> text", field="prompts.templates")
    template = templates.get("input", "{input}")
    if not isinstance(template, str):
        raise ManifestError("must be a string", field="prompts.templates.input")
    try:
        template.format(input="")
    except (KeyError, IndexError, ValueError) as exc:
        raise ManifestError(
            f"cannot be rendered with only {{input}}: {exc!r}",
            field="prompts.templates.input",
            hint="use '{input}' for the message and double braces '{{ }}' for literal ones",
        ) from exc
    return template


class EmbeddingRouter:
    """Routes a customer message to one of the prompt's labels, or to a human."""

    kind: ClassVar[str] = "embedding-router"

    def __init__(self, manifest: Mapping[str, Any], context: ProviderContext) -> None:
        prompts = manifest.get("prompts")
        if not isinstance(prompts, Mapping):
            raise ManifestError("the embedding router needs a prompts section", field="prompts")
        generation = manifest.get("generation") or {}
        if not isinstance(generation, Mapping):
            raise ManifestError("must be a mapping", field="generation")

        self.labels = _parse_labels(prompts)
        self.template = _parse_template(prompts)
        self.temperature = _number(generation, "temperature", DEFAULT_TEMPERATURE)
        if self.temperature <= 0:
            raise ManifestError("must be greater than 0", field="generation.temperature")
        self.min_confidence = _number(generation, "min_confidence", DEFAULT_MIN_CONFIDENCE)
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ManifestError("must be between 0 and 1", field="generation.min_confidence")
        escalate = generation.get("escalate_label", DEFAULT_ESCALATE_LABEL)
        if not isinstance(escalate, str) or not escalate.strip():
            raise ManifestError("must be a non-empty string", field="generation.escalate_label")
        if escalate in self.labels:
            raise ManifestError(
                f"'{escalate}' is also a label, so escalations could not be told apart",
                field="generation.escalate_label",
            )
        self.escalate_label = escalate

        self._embedder = context.embedder
        self._names = list(self.labels)
        self._descriptions = [d for ds in self.labels.values() for d in ds]
        # Descriptions are grouped by label, so a label's score is a reduceat max.
        sizes = [len(ds) for ds in self.labels.values()]
        self._starts = np.cumsum([0, *sizes[:-1]])
        self._matrix: npt.NDArray[np.float32] | None = None
        self._cost_ms: dict[str, float] = {}  # rendered input -> ms to embed it alone

    def render(self, case_input: Any) -> str:
        """The text that gets embedded: the message through the input template."""
        return self.template.format(input=_message(case_input))

    def warm(self, inputs: Sequence[Any]) -> None:
        """Embed every description in one batch, and every distinct input alone, timed."""
        self._description_matrix()
        texts = list(dict.fromkeys(self.render(i) for i in inputs if _has_message(i)))
        if texts:
            costs = self._embedder.measure(texts, kind="query")
            self._cost_ms.update(zip(texts, costs, strict=True))

    async def complete(self, case_input: Any) -> CaseOutput:
        """Route one case; latency is what serving this one message costs on this CPU.

        That is the message's own embedding, measured alone (``Embedder.measure``: once
        per text, on one thread, in CPU time, so neither the memo nor a busy machine
        changes it), plus the CPU time of routing it. A batch's wall time divided by its
        size would be neither per message nor independent of what else the machine runs.
        """
        try:
            text = self.render(case_input)
            if text not in self._cost_ms:  # not warmed: measuring here would block the loop
                await asyncio.to_thread(self.warm, [text])
            started = time.thread_time()
            routing = self.route(text)
            latency_ms = (time.thread_time() - started) * 1000.0 + self._cost_ms[text]
        except (TypeError, ValueError) as exc:
            return CaseOutput(text="", error=f"{type(exc).__name__}: {exc}")
        return CaseOutput(
            text=routing.label,
            data={
                "label": routing.label,
                "predicted": routing.predicted,
                "confidence": routing.confidence,
                "escalated": routing.is_escalated,
            },
            latency_ms=round(latency_ms, 3),
            tokens_in=len(text.split()),
            tokens_out=1,
            cost_usd=0.0,
        )

    def route(self, text: str) -> Routing:
        """Route one rendered message (synchronous; embeds it if not warmed)."""
        query = self._embedder.embed([text], kind="query")[0]
        sims = self._description_matrix() @ query
        scores = np.maximum.reduceat(sims, self._starts).astype(np.float64)
        logits = (scores - scores.max()) / self.temperature
        probs = np.exp(logits) / np.exp(logits).sum()
        best = int(np.argmax(probs))
        predicted = self._names[best]
        confidence = round(float(probs[best]), 4)
        is_escalated = float(probs[best]) < self.min_confidence
        label = self.escalate_label if is_escalated else predicted
        return Routing(label, predicted, confidence, is_escalated)

    def _description_matrix(self) -> npt.NDArray[np.float32]:
        if self._matrix is None:
            self._matrix = self._embedder.embed(self._descriptions, kind="passage")
        return self._matrix


def _has_message(case_input: Any) -> bool:
    try:
        _message(case_input)
    except TypeError:
        return False
    return True


def _message(case_input: Any) -> str:
    if isinstance(case_input, str):
        return case_input
    if isinstance(case_input, Mapping):
        for key in INPUT_KEYS:
            value = case_input.get(key)
            if isinstance(value, str):
                return value
    raise TypeError(
        "the embedding router needs a string input or a mapping with a string "
        f"'message', 'text' or 'input', got {type(case_input).__name__}"
    )
