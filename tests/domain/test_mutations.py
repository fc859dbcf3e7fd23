"""Mutations are pure, deterministic, never touch their input, and skip (saying why) what
a provider does not read."""

from __future__ import annotations

import copy
from typing import Any

from releasegate.domain.manifest import version_id
from releasegate.domain.mutations import MUTATIONS, mutants

ROUTER: dict[str, Any] = {
    "workflow": "triage",
    "model": {"provider": "embedding-router", "name": "multilingual-e5-small"},
    "prompts": {
        "system": "Route each message.",
        "templates": {"input": "{input}"},
        "labels": {
            "card_lost": ["I lost my card", "My card was stolen"],
            "complaint": ["I want to complain", "Your service is awful"],
            "fees": "What fees do you charge?",
        },
    },
    "generation": {"temperature": 0.01, "min_confidence": 0.3},
    "tools": [],
}
LLM: dict[str, Any] = {
    "workflow": "drafter",
    "model": {"provider": "openai", "name": "gpt-4o-mini"},
    "prompts": {
        "system": "Always answer in French. Be brief and polite to the customer.",
        "templates": {"user": "{input}"},
    },
    "generation": {"temperature": 0.2},
    "tools": [
        {
            "name": "lookup_order",
            "description": "Find an order",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}, "n": {"type": "integer"}},
                "required": ["order_id"],
            },
        }
    ],
}


def by_name(manifest: dict[str, Any]) -> dict[str, Any]:
    return {m.name: m for m in mutants(manifest)}


def test_the_router_gets_label_temperature_and_truncation_mutations_and_skips_the_rest() -> None:
    before = copy.deepcopy(ROUTER)
    got = by_name(ROUTER)
    assert before == ROUTER  # the input is never changed
    assert list(got) == list(MUTATIONS)
    skipped = {n: m.skipped for n, m in got.items() if not m.is_applied}
    assert skipped == {
        "drop-key-instruction": "the embedding-router provider does not read prompts.system",
        "break-tool-schema": "the embedding-router provider does not read tools",
    }
    labels = got["swap-labels"].manifest["prompts"]["labels"]
    assert labels["card_lost"] == ROUTER["prompts"]["labels"]["complaint"]
    assert labels["complaint"] == ROUTER["prompts"]["labels"]["card_lost"]
    shuffled = got["shuffle-labels"].manifest["prompts"]["labels"]
    assert all(shuffled[k] != v for k, v in ROUTER["prompts"]["labels"].items())
    assert got["raise-temperature"].manifest["generation"]["temperature"] == 0.1
    assert got["raise-temperature"].description == "temperature 0.01 -> 0.1"
    cut = got["truncate-prompt"].manifest["prompts"]["labels"]
    assert cut == {
        "card_lost": ["I lost my card"],
        "complaint": ["I want to complain"],
        "fees": "What fees do you charge?",
    }


def test_an_llm_gets_instruction_temperature_tool_and_truncation_mutations() -> None:
    got = by_name(LLM)
    assert got["drop-key-instruction"].manifest["prompts"]["system"] == (
        "Be brief and polite to the customer."
    )
    assert "Always answer in French." in got["drop-key-instruction"].description
    assert got["swap-labels"].skipped == "the openai provider does not read prompts.labels"
    assert got["raise-temperature"].manifest["generation"]["temperature"] == 1.5
    params = got["break-tool-schema"].manifest["tools"][0]["parameters"]
    assert params["properties"] == {"order_id": {"type": "integer"}, "n": {"type": "string"}}
    assert "required" not in params
    assert got["truncate-prompt"].manifest["prompts"]["system"] == "Always answer in French. Be"


def test_every_applied_mutant_is_a_new_version_and_the_same_every_time() -> None:
    for manifest in (ROUTER, LLM):
        first = [m for m in mutants(manifest) if m.is_applied]
        ids = {version_id(m.manifest) for m in first}
        assert len(ids) == len(first) and version_id(manifest) not in ids
        assert [version_id(m.manifest) for m in mutants(manifest) if m.is_applied] == [
            version_id(m.manifest) for m in first
        ]


def test_what_a_version_lacks_is_skipped_and_said() -> None:
    bare = {
        "workflow": "w",
        "model": {"provider": "openai", "name": "m"},
        "prompts": {},
        "generation": {"temperature": 1.8},
        "tools": [],
    }
    skipped = {m.name: m.skipped for m in mutants(bare)}
    assert skipped["drop-key-instruction"] == "the version has no system prompt"
    assert skipped["raise-temperature"] == "the temperature is already 1.8"
    assert skipped["break-tool-schema"] == "the version declares no tools"
    assert skipped["truncate-prompt"] == "the openai version has no prompt text this cuts"
    one_label = copy.deepcopy(ROUTER)
    one_label["prompts"]["labels"] = {"a": "x", "b": "y"}
    got = by_name(one_label)
    assert got["swap-labels"].is_applied
    assert got["shuffle-labels"].skipped == "the version describes fewer than 3 labels"
    assert got["truncate-prompt"].skipped == "every label already has a single description"
