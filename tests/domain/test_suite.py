"""Eval suites: the suite id is what an eval measures; a bad suite says where it is wrong."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from releasegate.domain.document import Document
from releasegate.domain.identity import content_hash
from releasegate.domain.suite import Suite, make_case, parse_suite, suite_from_content
from releasegate.errors import SuiteError
from releasegate.release.loaders import parse_jsonl, parse_yaml

SOURCE = "suite.yaml"
CASES: list[dict[str, Any]] = [
    {"id": "refund", "input": "I want my money back", "expected": "billing", "tags": ["money"]},
    {"id": "lost-card", "input": "I lost my card", "expected": "card_lost", "must_pass": True},
    {
        "id": "hello",
        "input": {"text": "hi", "lang": "en"},
        "expected": None,
        "metadata": {"from_run": "r-17"},
    },
]
SCORERS: list[dict[str, Any]] = [
    {"type": "label_accuracy", "name": "accuracy"},
    {"type": "contains", "params": {"case_sensitive": False}, "threshold": 0.5},
]


def suite_data(cases: Any = None, **changes: Any) -> dict[str, Any]:
    return {
        "suite": "triage-core",
        "workflow": "support-triage",
        "description": "Core routing cases.",
        "cases": CASES if cases is None else cases,
        "scorers": SCORERS,
        "thresholds": {"accuracy": 0.8},
        **changes,
    }


def jsonl(rows: list[Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def loader_for(files: Mapping[str, str]) -> Any:
    def load_cases(path: str) -> list[Document]:
        return parse_jsonl(files[path], path, SuiteError)

    return load_cases


def parse(text: str, files: Mapping[str, str] | None = None) -> Suite:
    return parse_suite(parse_yaml(text, SOURCE, SuiteError), loader_for(files or {}))


def suite_of(data: dict[str, Any], files: Mapping[str, str] | None = None) -> Suite:
    return parse(yaml.safe_dump(data, sort_keys=False), files)


BASE = suite_of(suite_data())


def errors_of(text: str, files: Mapping[str, str] | None = None) -> str:
    with pytest.raises(SuiteError) as err:
        parse(text, files)
    return str(err.value)


# -- identity ------------------------------------------------------------------------------


def test_inline_and_jsonl_cases_give_the_same_suite_id() -> None:
    from_file = suite_of(suite_data("cases.jsonl"), {"cases.jsonl": jsonl(CASES)})
    assert from_file.suite_id == BASE.suite_id
    assert [c.case_hash for c in from_file.cases] == [c.case_hash for c in BASE.cases]


def test_blank_lines_and_key_order_in_jsonl_do_not_change_the_id() -> None:
    text = "\n" + "\n\n".join(json.dumps(dict(reversed(list(c.items())))) for c in CASES) + "\n\n"
    assert suite_of(suite_data("cases.jsonl"), {"cases.jsonl": text}).suite_id == BASE.suite_id


def test_description_is_not_part_of_the_suite_id() -> None:
    assert suite_of(suite_data(description="Reworded.")).suite_id == BASE.suite_id


def _case(i: int, **changes: Any) -> list[dict[str, Any]]:
    cases = [dict(c) for c in CASES]
    cases[i].update(changes)
    return cases


SUITE_CHANGES: dict[str, dict[str, Any]] = {
    "case input": suite_data(_case(0, input="I want a refund")),
    "case expected": suite_data(_case(0, expected="refunds")),
    "case must_pass": suite_data(_case(0, must_pass=True)),
    "case tags": suite_data(_case(0, tags=["money", "angry"])),
    "case metadata": suite_data(_case(2, metadata={"from_run": "r-18"})),
    "case id": suite_data(_case(0, id="refund-1")),
    "case order": suite_data(list(reversed(CASES))),
    "case added": suite_data([*CASES, {"id": "new", "input": "where is my parcel"}]),
    "case removed": suite_data(CASES[:2]),
    "scorer param": suite_data(
        scorers=[SCORERS[0], {**SCORERS[1], "params": {"case_sensitive": True}}]
    ),
    "scorer threshold": suite_data(scorers=[SCORERS[0], {**SCORERS[1], "threshold": 0.6}]),
    "scorer type": suite_data(scorers=[{**SCORERS[0], "type": "macro_f1"}, SCORERS[1]]),
    "scorer name": suite_data(
        scorers=[{**SCORERS[0], "name": "acc"}, SCORERS[1]], thresholds={"acc": 0.8}
    ),
    "suite threshold": suite_data(thresholds={"accuracy": 0.85}),
    "no threshold": suite_data(thresholds={}),
    "suite name": suite_data(suite="triage-extended"),
    "workflow": suite_data(workflow="support-router"),
}


@pytest.mark.parametrize("data", SUITE_CHANGES.values(), ids=list(SUITE_CHANGES))
def test_anything_an_eval_measures_changes_the_suite_id(data: dict[str, Any]) -> None:
    assert suite_of(data).suite_id != BASE.suite_id


def test_scorer_threshold_and_default_name_are_recorded() -> None:
    accuracy, contains = BASE.scorers
    assert (accuracy.kind, accuracy.name, dict(accuracy.params)) == (
        "label_accuracy",
        "accuracy",
        {},
    )
    assert (contains.kind, contains.name) == ("contains", "contains")
    assert dict(contains.params) == {"case_sensitive": False, "threshold": 0.5}
    assert BASE.thresholds == {"accuracy": 0.8}
    assert [c.case_id for c in BASE.must_pass] == ["lost-card"]


jsonish = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None)
@given(
    input=jsonish,
    expected=jsonish,
    must_pass=st.booleans(),
    ids=st.tuples(st.text(max_size=8), st.text(max_size=8)),
)
def test_case_hash_ignores_id_and_position_but_not_content(
    input: Any, expected: Any, must_pass: bool, ids: tuple[str, str]
) -> None:
    first = make_case(ids[0], input, expected, must_pass=must_pass)
    second = make_case(ids[1], input, expected, must_pass=must_pass)
    assert first.case_hash == second.case_hash
    assert make_case(ids[0], input, expected, must_pass=not must_pass).case_hash != first.case_hash
    assert make_case(ids[0], [input], expected, must_pass=must_pass).case_hash != first.case_hash
    assert make_case(ids[0], input, [expected], must_pass=must_pass).case_hash != first.case_hash


def test_a_case_keeps_its_hash_when_it_moves_in_the_file() -> None:
    moved = suite_of(suite_data([CASES[2], CASES[0], CASES[1]]))
    by_id = {c.case_id: c.case_hash for c in moved.cases}
    assert by_id == {c.case_id: c.case_hash for c in BASE.cases}


def test_cases_without_ids_are_numbered_by_position() -> None:
    inline = suite_of(suite_data([{"input": "a"}, {"input": "b"}]))
    assert [c.case_id for c in inline.cases] == ["case-1", "case-2"]
    from_file = suite_of(suite_data("c.jsonl"), {"c.jsonl": '{"input": "a"}\n\n{"input": "b"}\n'})
    assert [c.case_id for c in from_file.cases] == ["line-1", "line-3"]


# -- bad input -----------------------------------------------------------------------------

HEAD = "suite: triage-core\nworkflow: support-triage\n"
SCORER = "scorers:\n  - type: equals\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            HEAD + "cases:\n  - id: a\n    input: x\n  - id: b\n    input: y\n"
            "  - id: a\n    input: z\n" + SCORER,
            "suite.yaml:8: field 'cases[2].id': duplicate case id 'a'",
            id="duplicate case id",
        ),
        pytest.param(
            HEAD + "cases:\n  - input: x\n  - id: case-1\n    input: y\n" + SCORER,
            "suite.yaml:5: field 'cases[1].id': duplicate case id 'case-1'",
            id="explicit id equal to a generated one",
        ),
        pytest.param(
            HEAD + "cases:\n  - id: a\n    expected: x\n" + SCORER,
            "suite.yaml:4: field 'cases[0].input': is required",
            id="missing input",
        ),
        pytest.param(
            HEAD + "cases:\n  - id: a\n    input: x\n    weight: 2\n" + SCORER,
            "suite.yaml:6: field 'cases[0].weight': unknown field 'weight'\n"
            "  hint: allowed here: id, input, expected, tags, must_pass, metadata, cluster",
            id="unknown case field",
        ),
        pytest.param(
            HEAD + "cases:\n  - id: a\n    input: x\n    must_pass: yes please\n" + SCORER,
            "suite.yaml:6: field 'cases[0].must_pass': expected true/false, got a string",
            id="must_pass not a boolean",
        ),
        pytest.param(
            HEAD + "cases:\n  - id: a\n    input: x\n" + SCORER + "thresholds:\n  equals: 0.9\n"
            "  f1: 0.5\n",
            "suite.yaml:10: field 'thresholds.f1': no scorer named 'f1'\n  hint: scorers: equals",
            id="threshold without a scorer",
        ),
        pytest.param(
            HEAD + "cases:\n  - id: a\n    input: x\nscorers: []\n",
            "suite.yaml:6: field 'scorers': a suite needs at least one scorer",
            id="no scorers",
        ),
        pytest.param(
            HEAD + "cases:\n  - id: a\n    input: x\n",
            "suite.yaml:1: field 'scorers': is required",
            id="scorers missing",
        ),
        pytest.param(
            HEAD + "cases: []\n" + SCORER,
            "suite.yaml:3: field 'cases': a suite needs at least one case",
            id="no cases",
        ),
        pytest.param(
            HEAD + "cases:\n  - id: a\n    input: x\n" + SCORER + "  - type: equals\n",
            "suite.yaml:8: field 'scorers[1].name': two scorers are named 'equals'; "
            "give one a 'name'",
            id="two scorers with a default name",
        ),
        pytest.param(
            HEAD + "cases:\n  - id: a\n    input: x\nscorers:\n  - type: equals\n    name: m\n"
            "  - type: contains\n    name: m\n",
            "suite.yaml:10: field 'scorers[1].name': two scorers are named 'm'; give one a 'name'",
            id="two scorers with the same name",
        ),
        pytest.param(
            HEAD + "cases:\n  - id: a\n    input: x\nscorers:\n  - name: m\n",
            "suite.yaml:7: field 'scorers[0].type': is required",
            id="scorer without type",
        ),
        pytest.param(
            HEAD + "cases:\n  - id: a\n    input: x\n" + SCORER + "    threshold: high\n",
            "suite.yaml:8: field 'scorers[0].threshold': expected a number, got a string",
            id="threshold not a number",
        ),
        pytest.param(
            HEAD + "cases:\n  - id: a\n    input: x\n" + SCORER + "suites: 1\n",
            "suite.yaml:8: field 'suites': unknown field 'suites'\n"
            "  hint: allowed here: suite, workflow, description, cases, scorers, thresholds",
            id="unknown top-level field",
        ),
    ],
)
def test_bad_suite_names_file_line_and_field(text: str, expected: str) -> None:
    assert errors_of(text) == expected


JSONL_SUITE = HEAD + "cases: cases.jsonl\n" + SCORER


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(
            '{"id": "a", "input": "x"}\n{"id": "b", "input": \n',
            "cases.jsonl:2: malformed JSON: Expecting value (column 22)",
            id="malformed line",
        ),
        pytest.param(
            '{"id": "a", "input": "x"}\n\n{"id": "b", "input": "y"}\n{"id": "a", "input": "z"}\n',
            "cases.jsonl:4: field 'id': duplicate case id 'a'",
            id="duplicate id after a blank line",
        ),
        pytest.param(
            '{"id": "a", "input": "x"}\n{"id": "b", "expected": "y"}\n',
            "cases.jsonl:2: field 'input': is required",
            id="missing input",
        ),
        pytest.param(
            '{"id": "a", "input": "x", "weight": 2}\n',
            "cases.jsonl:1: field 'weight': unknown field 'weight'\n"
            "  hint: allowed here: id, input, expected, tags, must_pass, metadata, cluster",
            id="unknown field",
        ),
        pytest.param(
            '{"id": "a", "input": "x"}\n["b", "y"]\n',
            "cases.jsonl:2: expected a mapping, got a list",
            id="record not an object",
        ),
        pytest.param(
            '{"id": "a", "input": "x", "tags": ["ok", 3]}\n',
            "cases.jsonl:1: field 'tags[1]': expected a string, got an integer",
            id="tag not a string",
        ),
    ],
)
def test_bad_jsonl_case_names_its_line(content: str, expected: str) -> None:
    assert errors_of(JSONL_SUITE, {"cases.jsonl": content}) == expected


def test_an_empty_jsonl_file_is_a_suite_without_cases() -> None:
    assert errors_of(JSONL_SUITE, {"cases.jsonl": "\n\n"}) == (
        "suite.yaml:3: field 'cases': a suite needs at least one case"
    )


# -- clusters ------------------------------------------------------------------------------


def _clustered(*labels: str | int | None) -> list[dict[str, Any]]:
    cases = [dict(c) for c in CASES]
    for case, label in zip(cases, labels, strict=True):
        if label is not None:
            case["cluster"] = label
    return cases


def test_a_cluster_changes_the_suite_id_but_not_the_case_hash() -> None:
    clustered = suite_of(suite_data(_clustered("inc-1", "inc-1", None)))
    assert clustered.suite_id != BASE.suite_id
    assert [c.case_hash for c in clustered.cases] == [c.case_hash for c in BASE.cases]
    assert clustered.clusters == {"refund": "inc-1", "lost-card": "inc-1"}
    relabelled = suite_of(suite_data(_clustered("inc-2", "inc-2", None)))
    assert relabelled.suite_id not in (clustered.suite_id, BASE.suite_id)
    assert BASE.clusters == {} and BASE.cluster_labels() is None and BASE.n_clusters is None


def test_a_suite_without_clusters_keeps_the_id_it_always_had() -> None:
    identity = {
        "suite": BASE.name,
        "workflow": BASE.workflow,
        "cases": [[c.case_id, c.case_hash] for c in BASE.cases],
        "scorers": [s.content() for s in BASE.scorers],
        "thresholds": dict(BASE.thresholds),
    }
    assert BASE.suite_id == content_hash(identity)


def test_cluster_labels_treat_unclustered_cases_as_their_own_cluster() -> None:
    clustered = suite_of(suite_data(_clustered("hello", "hello", None)))
    labels = clustered.cluster_labels()
    assert labels == (("cluster", "hello"), ("cluster", "hello"), ("case", "hello"))
    assert clustered.n_clusters == 2  # a case id never merges with a cluster of that name
    # clusters that nobody shares change nothing about the statistics
    assert suite_of(suite_data(_clustered("a", "b", None))).cluster_labels() is None


def test_clusters_survive_the_store_and_jsonl() -> None:
    clustered = suite_of(suite_data(_clustered("inc-1", 7, "inc-1")))
    assert clustered.clusters == {"refund": "inc-1", "lost-card": "7", "hello": "inc-1"}
    rebuilt = suite_from_content(json.loads(json.dumps(clustered.content())))
    assert rebuilt.suite_id == clustered.suite_id and rebuilt.clusters == clustered.clusters
    rows = _clustered("inc-1", 7, "inc-1")
    from_file = suite_of(suite_data("cases.jsonl"), {"cases.jsonl": jsonl(rows)})
    assert from_file.suite_id == clustered.suite_id


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(
            '{"id": "a", "input": "x", "cluster": ""}\n',
            "cases.jsonl:1: field 'cluster': must not be empty; leave it out for a case of its own",
            id="empty cluster",
        ),
        pytest.param(
            '{"id": "a", "input": "x", "cluster": ["inc-1"]}\n',
            "cases.jsonl:1: field 'cluster': expected a string or an integer, got a list",
            id="cluster not a string",
        ),
    ],
)
def test_bad_cluster_names_its_line(content: str, expected: str) -> None:
    assert errors_of(JSONL_SUITE, {"cases.jsonl": content}) == expected
