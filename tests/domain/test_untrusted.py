"""Untrusted YAML and JSON: any text either parses to plain data or is an InputError
naming its line; the limits (control characters, depth, aliasing) hold."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from releasegate.domain.untrusted import (
    MAX_DEPTH,
    allowed_alias_ratio,
    parse_json,
    parse_yaml,
    too_deep,
)
from releasegate.errors import InputError, SuiteError

PLAIN = (str, int, float, bool, type(None))


def plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, PLAIN) and plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(plain(v) for v in value)
    return isinstance(value, PLAIN)


YAML_PIECES = st.sampled_from(
    [
        "a", ": ", "- ", "\n", "  ", "&x ", "*x", "<<: ", "[", "]", "{", "}", ", ", "? ",
        "!!binary ", "!!timestamp ", "!!set ", "!foo ", "2024-01-01", "1:30", "0x1f", ".nan",
        "'q'", '"\\x00"', "|\n  t", "---\n", "...\n", "%YAML 1.1\n", "#c", "9" * 5000,
        "\x00", "\x1b", "\t", "\ufeff", "\u2028", "é", "~", "null", "yes",
    ]
)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(YAML_PIECES, max_size=40).map("".join) | st.text(max_size=200))
def test_any_text_is_plain_data_or_an_input_error(text: str) -> None:
    try:
        doc = parse_yaml(text, "f.yaml")
    except InputError as exc:
        assert str(exc).startswith("f.yaml")
        return
    assert plain(doc.data)


def test_an_alias_bomb_is_refused_as_excessive_aliasing() -> None:
    bomb = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"{b}: &{b} [{', '.join(['*' + a] * 9)}]\n"
        for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    )
    with pytest.raises(SuiteError, match="excessive aliasing"):
        parse_yaml(bomb, "s.yaml", SuiteError)


def test_modest_aliasing_and_merge_keys_still_work() -> None:
    text = "base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\nlist: [*b, *b]\n"
    assert parse_yaml(text, "f.yaml").data == {
        "base": {"x": 1, "y": 2},
        "use": {"x": 1, "y": 3},
        "list": [{"x": 1, "y": 2}, {"x": 1, "y": 2}],
    }


def test_the_alias_ratio_follows_yaml_v3() -> None:
    assert allowed_alias_ratio(1000) == 0.99
    assert allowed_alias_ratio(4_000_000) == pytest.approx(0.10)
    assert 0.10 < allowed_alias_ratio(2_000_000) < 0.99


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\nb: x\x00y\n", "f.yaml:2: control character U+0000 (NUL) at column 5"),
        ("a: \x1b[31m\n", "f.yaml:1: control character U+001B (ESC) at column 4"),
        ("a: " + "[" * 101 + "]" * 101, "f.yaml:1: nested deeper than 100 levels"),
        ("a: &x [1, *x]\n", "f.yaml:1: an alias refers to a node that contains it"),
        ("a: !!binary aGk=\n", "f.yaml:1: a value of type binary is not supported here"),
    ],
)
def test_refusals_name_the_line(text: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_yaml(text, "f.yaml")
    assert str(err.value).startswith(message)


def test_depth_up_to_the_limit_is_fine() -> None:
    text = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert parse_yaml(text, "f.yaml").data is not None


def test_unquoted_dates_stay_strings() -> None:
    doc = parse_yaml("a: 2024-01-01\nb: 2024-01-01T10:00:00Z\nc: !!timestamp 2024-02-02\n", "f")
    assert doc.data == {"a": "2024-01-01", "b": "2024-01-01T10:00:00Z", "c": "2024-02-02"}


def test_deep_json_is_refused_with_its_line() -> None:
    ok = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert parse_json(ok, "c.jsonl", line=3) is not None
    for depth in (MAX_DEPTH + 1, 5000):
        with pytest.raises(InputError) as err:
            parse_json("[" * depth + "]" * depth, "c.jsonl", line=3)
        assert str(err.value) == "c.jsonl:3: JSON nested deeper than 100 levels"
    with pytest.raises(InputError, match=r"c.jsonl:2: malformed JSON: .* \(line 2, column 1\)"):
        parse_json('{"a": 1,\n}', "c.jsonl")


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(st.none() | st.integers(), lambda c: st.lists(c) | st.dictionaries(st.text(), c))
)
def test_too_deep_agrees_with_the_nesting(value: Any) -> None:
    def depth(v: Any) -> int:
        if isinstance(v, dict):
            return 1 + max(map(depth, v.values()), default=0)
        if isinstance(v, list):
            return 1 + max(map(depth, v), default=0)
        return 0

    assert too_deep(value, 3) == (depth(value) > 3)
    assert parse_json(json.dumps(value), "x") == value
