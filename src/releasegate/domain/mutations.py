"""Mutations: deliberately degraded copies of a version's manifest, for a rehearsal.

Each mutation is a pure function of a manifest: it returns the changed copy and says
what it changed, or says why it does not apply (the provider does not read that part,
or the version has none of it). Which part a provider reads is ``READS``: the
embedding router routes by its label descriptions, input template and softmax
temperature and never reads a system prompt or tools; an OpenAI-compatible model reads
the system prompt, the templates, the temperature and the tools. A Python callable (or a
plugin provider) may read anything in its manifest, so every part it has applies.
Everything is deterministic: the same manifest gives the same variants, so the same ids.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MUTATIONS: tuple[str, ...] = (
    "drop-key-instruction",
    "swap-labels",
    "shuffle-labels",
    "raise-temperature",
    "break-tool-schema",
    "truncate-prompt",
)
PARTS = frozenset({"system", "labels", "templates", "temperature", "tools"})
READS: Mapping[str, frozenset[str]] = {
    "embedding-router": frozenset({"labels", "templates", "temperature"}),
    "openai": frozenset({"system", "templates", "temperature", "tools"}),
}
"""What each provider reads of a manifest; a provider not listed may read any part."""
RAISED_TEMPERATURE = 1.5
"""An LLM's temperature after ``raise-temperature`` (OpenAI's range is 0 to 2)."""
ROUTER_TEMPERATURE_FACTOR = 10.0
"""The embedding router's softmax temperature is multiplied by this: an order of magnitude
flatter, so confidences fall and more messages escalate or land on the wrong label."""
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_WRONG_TYPE = {"string": "integer", "integer": "string", "number": "string", "boolean": "string"}


@dataclass(frozen=True)
class Mutant:
    """One mutation of one manifest: the degraded copy, or why it does not apply."""

    name: str
    description: str
    manifest: Mapping[str, Any] | None = None
    skipped: str | None = None

    @property
    def is_applied(self) -> bool:
        return self.manifest is not None


def provider_of(manifest: Mapping[str, Any]) -> str:
    model = manifest.get("model")
    return str(model.get("provider", "")) if isinstance(model, Mapping) else ""


def _reads(manifest: Mapping[str, Any], part: str) -> str | None:
    """None when the provider reads ``part``; else why the mutation is skipped."""
    provider = provider_of(manifest)
    if part in READS.get(provider, PARTS):
        return None
    return f"the {provider} provider does not read {_PART_NAMES[part]}"


_PART_NAMES = {
    "system": "prompts.system",
    "labels": "prompts.labels",
    "templates": "prompts.templates",
    "temperature": "generation.temperature",
    "tools": "tools",
}


def _prompts(m: dict[str, Any]) -> dict[str, Any]:
    prompts = m.get("prompts")
    return prompts if isinstance(prompts, dict) else {}


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def drop_key_instruction(manifest: Mapping[str, Any]) -> Mutant:
    """The system prompt without its first sentence (the instruction it opens with)."""
    name = "drop-key-instruction"
    if (why := _reads(manifest, "system")) is not None:
        return Mutant(name, "", skipped=why)
    m = copy.deepcopy(dict(manifest))
    system = _prompts(m).get("system")
    if not isinstance(system, str) or not system.strip():
        return Mutant(name, "", skipped="the version has no system prompt")
    sentences = [s for s in _SENTENCE.split(system.strip()) if s.strip()]
    key, rest = sentences[0], sentences[1:]
    if rest:
        m["prompts"]["system"] = " ".join(rest)
    else:
        del m["prompts"]["system"]
    return Mutant(name, f"dropped '{_short(key)}' from the system prompt", m)


def _labels(manifest: Mapping[str, Any], name: str, least: int) -> tuple[dict[str, Any], Mutant]:
    """A copy of the manifest and its labels, or (empty, the skip) when they don't apply."""
    if (why := _reads(manifest, "labels")) is not None:
        return {}, Mutant(name, "", skipped=why)
    m = copy.deepcopy(dict(manifest))
    labels = _prompts(m).get("labels")
    if not isinstance(labels, dict) or len(labels) < least:
        return {}, Mutant(name, "", skipped=f"the version describes fewer than {least} labels")
    return m, Mutant(name, "")


def swap_labels(manifest: Mapping[str, Any]) -> Mutant:
    """The descriptions of the first two labels (in sorted order) exchanged."""
    m, skip = _labels(manifest, "swap-labels", 2)
    if not m:
        return skip
    labels = m["prompts"]["labels"]
    a, b = sorted(labels)[:2]
    labels[a], labels[b] = labels[b], labels[a]
    return Mutant(skip.name, f"swapped the descriptions of '{a}' and '{b}'", m)


def shuffle_labels(manifest: Mapping[str, Any]) -> Mutant:
    """Every label described by the next label's descriptions (sorted order, rotated by
    one): no label keeps its own, and the same manifest always gives the same shuffle."""
    m, skip = _labels(manifest, "shuffle-labels", 3)
    if not m:
        return skip
    labels = m["prompts"]["labels"]
    names = sorted(labels)
    moved = [labels[n] for n in names[1:] + names[:1]]
    for n, descriptions in zip(names, moved, strict=True):
        labels[n] = descriptions
    return Mutant(skip.name, f"rotated the descriptions of {len(names)} labels by one", m)


def raise_temperature(manifest: Mapping[str, Any]) -> Mutant:
    """The temperature raised: to ``RAISED_TEMPERATURE`` for a model, by
    ``ROUTER_TEMPERATURE_FACTOR`` for the embedding router's softmax."""
    name = "raise-temperature"
    if (why := _reads(manifest, "temperature")) is not None:
        return Mutant(name, "", skipped=why)
    m = copy.deepcopy(dict(manifest))
    generation = m.get("generation")
    if not isinstance(generation, dict):
        generation = m["generation"] = {}
    current = generation.get("temperature")
    if isinstance(current, bool) or not isinstance(current, int | float | None):
        return Mutant(name, "", skipped=f"the temperature is not a number ({current!r})")
    if provider_of(manifest) == "embedding-router":
        if current is None:
            return Mutant(name, "", skipped="the version leaves the router's temperature unset")
        raised = float(current) * ROUTER_TEMPERATURE_FACTOR
    elif current is not None and current >= RAISED_TEMPERATURE:
        return Mutant(name, "", skipped=f"the temperature is already {current:g}")
    else:
        raised = RAISED_TEMPERATURE
    generation["temperature"] = raised
    before = "unset" if current is None else f"{current:g}"
    return Mutant(name, f"temperature {before} -> {raised:g}", m)


def break_tool_schema(manifest: Mapping[str, Any]) -> Mutant:
    """The first tool's parameters given the wrong types and no ``required`` list."""
    name = "break-tool-schema"
    if (why := _reads(manifest, "tools")) is not None:
        return Mutant(name, "", skipped=why)
    m = copy.deepcopy(dict(manifest))
    tools = m.get("tools")
    if not isinstance(tools, list) or not tools or not isinstance(tools[0], dict):
        return Mutant(name, "", skipped="the version declares no tools")
    tool = tools[0]
    params = tool.get("parameters")
    props = params.get("properties") if isinstance(params, dict) else None
    if not isinstance(params, dict) or not isinstance(props, dict) or not props:
        return Mutant(name, "", skipped=f"tool '{tool.get('name')}' has no parameters to break")
    changed = []
    for key, schema in sorted(props.items()):
        if isinstance(schema, dict):
            before = schema.get("type", "any")
            after = _WRONG_TYPE.get(str(before), "string")
            schema["type"] = after
            changed.append(f"{key}: {before} -> {after}")
    params.pop("required", None)
    return Mutant(name, f"tool '{tool.get('name')}': {', '.join(changed)}; 'required' dropped", m)


def truncate_prompt(manifest: Mapping[str, Any]) -> Mutant:
    """The prompt cut short: the system prompt to its first half (at a word), or, for a
    router, every label down to its first description."""
    name = "truncate-prompt"
    provider = provider_of(manifest)
    m = copy.deepcopy(dict(manifest))
    prompts = _prompts(m)
    system = prompts.get("system")
    if _reads(manifest, "system") is None and isinstance(system, str) and system.split():
        words = system.split()
        if len(words) < 2:
            return Mutant(name, "", skipped="the system prompt is a single word")
        kept = " ".join(words[: len(words) // 2])
        prompts["system"] = kept
        return Mutant(name, f"system prompt cut from {len(words)} to {len(words) // 2} words", m)
    labels = prompts.get("labels")
    if _reads(manifest, "labels") is None and isinstance(labels, dict):
        cut = 0
        for key, value in labels.items():
            if isinstance(value, list) and len(value) > 1:
                cut += len(value) - 1
                labels[key] = value[:1]
        if cut:
            return Mutant(name, f"every label cut to its first description ({cut} dropped)", m)
        return Mutant(name, "", skipped="every label already has a single description")
    return Mutant(name, "", skipped=f"the {provider} version has no prompt text this cuts")


APPLY: Mapping[str, Callable[[Mapping[str, Any]], Mutant]] = {
    "drop-key-instruction": drop_key_instruction,
    "swap-labels": swap_labels,
    "shuffle-labels": shuffle_labels,
    "raise-temperature": raise_temperature,
    "break-tool-schema": break_tool_schema,
    "truncate-prompt": truncate_prompt,
}


def mutants(manifest: Mapping[str, Any], names: tuple[str, ...] = MUTATIONS) -> list[Mutant]:
    """Every mutation of ``manifest``, in ``names`` order; a mutation whose copy equals the
    manifest (it changed nothing) is skipped too."""
    out = []
    for n in names:
        got = APPLY[n](manifest)
        if got.manifest is not None and got.manifest == manifest:
            got = Mutant(n, "", skipped="it changes nothing in this version")
        out.append(got)
    return out
