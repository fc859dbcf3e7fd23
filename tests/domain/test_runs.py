"""Production runs: a bad record is named by line or index, field and reason; good ones
get a stable id, so importing the same file twice cannot double-count."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from releasegate.cli._errors import exit_code  # the exit code every front reports
from releasegate.domain.runs import (
    FIELDS,
    HAS_FEEDBACK,
    IS_EDITED,
    IS_ERROR,
    IS_ESCALATED,
    IS_NEGATIVE_FEEDBACK,
    REQUIRED,
    BatchResult,
    Rejection,
    RunRecord,
    parse_batch,
    parse_jsonl,
    parse_run,
    parse_values,
    run_dict,
)
from releasegate.errors import InputError

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
VERSION = "3f" * 32
ABSENT = object()


def record(**changes: Any) -> dict[str, Any]:
    """A valid run as a JSONL line would carry it; ABSENT drops a field."""
    base: dict[str, Any] = {
        "run_id": "r-1",
        "workflow": "support-triage",
        "version_id": VERSION,
        "env": "production",
        "started_at": "2025-06-01T11:59:00Z",
        "ended_at": "2025-06-01T11:59:01.250Z",
        "status": "ok",
        "tokens_in": 120,
        "tokens_out": 30,
        "model": "gpt-4o-mini",
        "output": "billing",
        "label": "billing",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ABSENT}


def reject(obj: Any, **kwargs: Any) -> Rejection:
    result = parse_batch([obj], now=NOW, **kwargs)
    assert result.accepted == [] and len(result.rejected) == 1, result
    return result.rejected[0]


def test_a_valid_record_parses_with_defaults_and_computed_latency() -> None:
    run = parse_run(record(), now=NOW, source="jsonl")
    assert isinstance(run, RunRecord)
    assert (run.run_id, run.workflow, run.version_id, run.env) == (
        "r-1",
        "support-triage",
        VERSION,
        "production",
    )
    assert run.started_at == datetime(2025, 6, 1, 11, 59, tzinfo=UTC)
    assert run.ended_at == datetime(2025, 6, 1, 11, 59, 1, 250000, tzinfo=UTC)
    assert run.started_at.tzinfo is UTC
    assert run.latency_ms == 1250.0
    assert (run.tokens_in, run.tokens_out, run.retries) == (120, 30, 0)
    assert (run.status, run.failure_reason, run.is_error) == ("ok", None, False)
    assert (run.escalated, run.edited, run.feedback, run.cost_usd) == (False, False, None, None)
    assert (run.model, run.provider, run.operation, run.label) == (
        "gpt-4o-mini",
        None,
        None,
        "billing",
    )
    assert (run.input, run.output, run.attributes, run.source) == (None, "billing", {}, "jsonl")


def test_every_field_can_be_given() -> None:
    full = record(
        latency_ms=900.5,
        status="error",
        failure_reason="provider timeout",
        cost_usd=0.0031,
        provider="openai",
        operation="chat",
        retries=2,
        escalated=True,
        edited=True,
        feedback=-0.5,
        input="where is my refund?",
        attributes={"tenant": "acme", "tier": 2, "beta": True, "score": 0.5, "note": None},
        arm="canary",
    )
    assert set(full) == set(FIELDS)
    run = parse_run(full, now=NOW)
    assert run.latency_ms == 900.5  # a measured latency wins over end - start
    assert (run.status, run.failure_reason, run.is_error) == ("error", "provider timeout", True)
    assert (run.cost_usd, run.retries, run.escalated, run.edited, run.feedback) == (
        0.0031,
        2,
        True,
        True,
        -0.5,
    )
    assert run.attributes == full["attributes"]
    assert run.source == "sdk"
    assert run.arm == "canary"


def test_the_arm_is_stable_or_canary_and_leaves_ids_of_other_runs_alone() -> None:
    expected = "field 'arm': expected 'stable', 'canary' or 'shadow', got 'blue'"
    with pytest.raises(InputError, match=expected):
        parse_run(record(run_id=ABSENT, arm="blue"), now=NOW)
    plain = parse_run(record(run_id=ABSENT), now=NOW)
    assert plain.arm is None
    assert plain.run_id == parse_run(record(run_id=ABSENT, arm=None), now=NOW).run_id
    assert plain.run_id != parse_run(record(run_id=ABSENT, arm="stable"), now=NOW).run_id


def test_iso_times_with_offsets_and_epoch_seconds_agree() -> None:
    iso = parse_run(record(), now=NOW)
    offset = parse_run(
        record(started_at="2025-06-01T13:59:00+02:00", ended_at="2025-06-01 11:59:01.25+00:00"),
        now=NOW,
    )
    epoch = parse_run(record(started_at=iso.started_epoch, ended_at=iso.ended_epoch), now=NOW)
    assert iso == offset == epoch
    assert parse_run(record(started_at=int(iso.started_epoch)), now=NOW) == iso


def test_latency_alone_gives_the_end() -> None:
    run = parse_run(record(ended_at=ABSENT, latency_ms=2500), now=NOW)
    assert run.latency_ms == 2500.0
    assert run.ended_at == datetime(2025, 6, 1, 11, 59, 2, 500000, tzinfo=UTC)


@pytest.mark.parametrize("field", REQUIRED)
def test_each_missing_required_field_is_named(field: str) -> None:
    for missing in (ABSENT, None):
        bad = reject(record(**{field: missing}))
        assert bad.field == field
        assert bad.reason.startswith("is required")


def test_end_or_latency_is_required() -> None:
    bad = reject(record(ended_at=ABSENT))
    assert (bad.field, bad.reason) == ("ended_at", "is required (or give latency_ms)")


def test_an_error_needs_a_failure_reason() -> None:
    bad = reject(record(status="error"))
    assert (bad.field, bad.reason) == ("failure_reason", "is required when status is 'error'")
    run = parse_run(record(retries=1, failure_reason="first call timed out"), now=NOW)
    assert run.status == "ok" and run.failure_reason == "first call timed out"


BAD_VALUES = [
    ("run_id", "", "expected a non-empty string, got ''"),
    ("run_id", True, "expected a non-empty string, got true"),
    ("run_id", "x" * 300, "is 300 characters long, more than 256"),
    ("workflow", 7, "expected a non-empty string, got 7"),
    ("workflow", "", "expected a non-empty string, got ''"),
    ("version_id", "abc", "expected a 64-hex version id, got 'abc'"),
    ("version_id", "g" * 64, "expected a 64-hex version id"),
    ("version_id", 42, "expected a 64-hex version id, got 42"),
    ("version_id", "3f3f3f3f3f3f", "is a short id; send the full 64-hex id"),
    ("env", ["prod"], "expected a non-empty string, got a list"),
    ("started_at", "yesterday", "expected an ISO-8601 time or epoch seconds, got 'yesterday'"),
    ("started_at", "2025-06-01T11:59:00", "has no UTC offset; add 'Z' or '+00:00'"),
    ("started_at", 1748779140000, "looks like epoch milliseconds or nanoseconds"),
    ("started_at", True, "expected an ISO-8601 time or epoch seconds, got true"),
    ("started_at", 5, "is 1970-01-01T00:00:05Z, before 2000: a clock that was never set?"),
    ("started_at", math.nan, "is not a number"),
    ("ended_at", {"t": 1}, "expected an ISO-8601 time or epoch seconds, got a mapping"),
    ("latency_ms", -1, "expected a finite number >= 0, got -1"),
    ("latency_ms", "fast", "expected a number, got 'fast'"),
    ("latency_ms", math.inf, "expected a finite number >= 0, got inf"),
    ("status", "success", "expected 'ok' or 'error', got 'success'"),
    ("status", 1, "expected 'ok' or 'error', got 1"),
    ("failure_reason", "", "expected a non-empty string, got ''"),
    ("failure_reason", 500, "expected a non-empty string, got 500"),
    ("tokens_in", -1, "expected an integer >= 0, got -1"),
    ("tokens_in", 1.5, "expected an integer >= 0, got 1.5"),
    ("tokens_in", "12", "expected an integer >= 0, got '12'"),
    ("tokens_in", True, "expected an integer >= 0, got true"),
    ("tokens_out", 2**60, "expected an integer below 9007199254740992, got"),
    ("cost_usd", -0.1, "expected a finite number >= 0, got -0.1"),
    ("cost_usd", "free", "expected a number, got 'free'"),
    ("cost_usd", math.nan, "expected a finite number >= 0, got nan"),
    ("cost_usd", 10**400, "expected a finite number >= 0, got an integer of 1329 bits"),
    ("retries", -2, "expected an integer >= 0, got -2"),
    ("retries", 1.0, "expected an integer >= 0, got 1"),
    ("escalated", "yes", "expected true/false, got 'yes'"),
    ("escalated", 1, "expected true/false, got 1"),
    ("edited", "no", "expected true/false, got 'no'"),
    ("feedback", 2, "expected in [-1, 1], got 2"),
    ("feedback", -1.5, "expected in [-1, 1], got -1.5"),
    ("feedback", True, "expected a number, got true"),
    ("feedback", "good", "expected a number, got 'good'"),
    ("model", "", "expected a non-empty string, got ''"),
    ("provider", 7, "expected a non-empty string, got 7"),
    ("operation", ["chat"], "expected a non-empty string, got a list"),
    ("label", "", "expected a non-empty string, got ''"),
    ("arm", "blue", "expected 'stable', 'canary' or 'shadow', got 'blue'"),
    ("arm", 1, "expected 'stable', 'canary' or 'shadow', got 1"),
    ("input", 5, "expected a string (or JSON object/list), got 5"),
    ("output", True, "expected a string (or JSON object/list), got true"),
    ("attributes", ["a"], "expected a mapping, got a list"),
]


@pytest.mark.parametrize(("field", "value", "reason"), BAD_VALUES)
def test_each_bad_value_is_rejected_with_field_and_reason(
    field: str, value: Any, reason: str
) -> None:
    bad = reject(record(**{field: value}))
    assert bad.field == field
    assert reason in bad.reason


def values(obj: dict[str, Any]) -> tuple[Any, ...]:
    """A record as the SDK hands it to its writer: its values in FIELDS order."""
    return tuple(obj.get(name) for name in FIELDS)


@pytest.mark.parametrize(("field", "value", "reason"), BAD_VALUES)
def test_the_sdk_values_of_a_bad_record_are_refused_with_the_same_words(
    field: str, value: Any, reason: str
) -> None:
    bad = record(**{field: value})
    as_dict = parse_batch([record(run_id="a"), bad], now=NOW, source="sdk")
    as_values = parse_values([values(record(run_id="a")), values(bad)], now=NOW, source="sdk")
    assert as_values == as_dict
    assert [r.describe("sdk") for r in as_values.rejected] == [
        r.describe("sdk") for r in as_dict.rejected
    ]
    assert reason in as_values.rejected[0].reason


def test_the_sdk_values_of_good_records_make_the_same_runs() -> None:
    records = [
        record(),
        record(run_id=ABSENT, started_at=1748779140.5, ended_at=ABSENT, latency_ms=12.5),
        record(run_id="r-2", attributes={"tenant": "acme"}, arm="canary", escalated=True),
        record(run_id="r-3", retries=ABSENT, tokens_in=ABSENT, cost_usd=0.002, feedback=-1),
        record(run_id="r-4", status="error", failure_reason="timeout", version_id=VERSION.upper()),
    ]
    as_dict = parse_batch(records, now=NOW, source="sdk")
    assert as_dict.ok and len(as_dict.accepted) == len(records)
    assert parse_values([values(r) for r in records], now=NOW, source="sdk") == as_dict
    spilled = [run_dict(values(r)) for r in records]  # what a spill file holds
    assert parse_batch(spilled, now=NOW, source="sdk") == as_dict


def test_every_field_has_a_bad_value_case() -> None:
    assert {f for f, _, _ in BAD_VALUES} == set(FIELDS)


@pytest.mark.parametrize(
    ("attributes", "field", "reason"),
    [
        ({"a": [1]}, "attributes.a", "expected a string, number, true/false or null, got a list"),
        ({"a": {"b": 1}}, "attributes.a", "got a mapping"),
        ({"a": math.inf}, "attributes.a", "expected a finite number, got inf"),
        ({"a": 2**64}, "attributes.a", "integer out of the 64-bit range"),
    ],
)
def test_attributes_hold_json_scalars_only(attributes: Any, field: str, reason: str) -> None:
    bad = reject(record(attributes=attributes))
    assert bad.field == field
    assert reason in bad.reason


def test_unknown_fields_are_rejected_not_swallowed() -> None:
    bad = reject(record(escalted=True))  # a typo must not silently drop the escalation
    assert (bad.field, bad.reason) == (
        "escalted",
        "unknown field; put extra data under 'attributes'",
    )


def test_a_record_that_is_not_an_object() -> None:
    assert reject([1, 2]).reason == "expected a JSON object, got a list"
    assert reject("run").field is None


def test_version_ids_are_normalised_to_lowercase() -> None:
    assert parse_run(record(version_id=VERSION.upper()), now=NOW).version_id == VERSION


def test_structured_input_and_output_are_kept_as_json_text() -> None:
    run = parse_run(record(input={"text": "hi", "lang": "en"}, output=["a", 1]), now=NOW)
    assert json.loads(run.input or "") == {"text": "hi", "lang": "en"}
    assert run.input == '{"lang":"en","text":"hi"}'
    assert run.output == '["a",1]'


def test_integer_run_ids_become_strings() -> None:
    assert parse_run(record(run_id=1234), now=NOW).run_id == "1234"


# --- clock skew -------------------------------------------------------------------------


def test_a_start_in_the_future_beyond_tolerance_is_clock_skew() -> None:
    bad = reject(record(started_at="2025-06-01T12:06:00Z", ended_at="2025-06-01T12:06:01Z"))
    assert bad.field == "started_at"
    assert bad.reason == (
        "is 6 min ahead of the receiving clock (tolerance 5 min): the reporting host's "
        "clock is fast, or the time is not UTC"
    )


def test_a_start_slightly_ahead_is_within_tolerance() -> None:
    run = parse_run(
        record(started_at="2025-06-01T12:04:00Z", ended_at="2025-06-01T12:04:30Z"), now=NOW
    )
    assert run.latency_ms == 30000.0


def test_the_tolerance_is_configurable() -> None:
    late = record(started_at="2025-06-01T12:00:30Z", ended_at="2025-06-01T12:00:40Z")
    bad = reject(late, max_skew=timedelta(seconds=10))
    assert bad.reason.startswith("is 30 s ahead of the receiving clock (tolerance 10 s)")
    assert parse_batch([late], now=NOW).ok


def test_an_end_in_the_future_is_clock_skew() -> None:
    bad = reject(record(ended_at="2025-06-01T14:00:00Z"))
    assert bad.field == "ended_at"
    assert bad.reason.startswith("is 2 h ahead of the receiving clock")


def test_an_end_before_the_start_is_rejected() -> None:
    bad = reject(record(ended_at="2025-06-01T11:58:57.5Z"))
    assert (bad.field, bad.reason) == (
        "ended_at",
        "is 2.5 s before started_at: a clock went back?",
    )


def test_a_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_run(record(), now=datetime(2025, 6, 1))  # noqa: DTZ001


# --- batches ----------------------------------------------------------------------------


def test_a_batch_with_one_bad_record_reports_exactly_that_record() -> None:
    objs = [record(run_id=f"r-{i}") for i in range(5)]
    objs[3]["tokens_in"] = -4
    result = parse_batch(objs, now=NOW)
    assert not result.ok
    assert result.rejected == [
        Rejection(3, None, "r-3", "tokens_in", "expected an integer >= 0, got -4")
    ]
    assert result.rejected_count == 1
    assert [r.run_id for r in result.accepted] == ["r-0", "r-1", "r-2", "r-4"]
    error = result.error("POST /api/runs")
    assert isinstance(error, InputError)
    assert str(error).startswith(
        "POST /api/runs: 1 record(s) rejected, nothing imported:\n"
        "  POST /api/runs[3] (run r-3): field 'tokens_in': expected an integer >= 0, got -4"
    )


def test_a_clean_batch_has_no_error() -> None:
    result = parse_batch([record(run_id="a"), record(run_id="b")], now=NOW, source="http")
    assert result.ok and result.error("x") is None
    assert {r.source for r in result.accepted} == {"http"}


def test_rejections_are_capped_but_counted() -> None:
    result = parse_batch([{"nope": 1}] * 50, now=NOW, max_rejections=10)
    assert len(result.rejected) == 10 and result.rejected_count == 50
    error = result.error("runs.jsonl")
    assert error is not None and error.message.endswith("... and 40 more")


def test_an_unknown_source_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="source must be one of"):
        parse_batch([], now=NOW, source="kafka")


def test_exact_repeats_in_a_batch_are_dropped_and_counted() -> None:
    result = parse_batch([record(), record(), record(run_id="r-2")], now=NOW)
    assert result.ok and result.duplicates == 1
    assert [r.run_id for r in result.accepted] == ["r-1", "r-2"]


def test_a_run_id_reused_with_other_content_is_rejected() -> None:
    result = parse_batch([record(), record(tokens_in=999)], now=NOW)
    assert result.rejected == [
        Rejection(1, None, "r-1", "run_id", "already used by record 0 with different content")
    ]


# --- JSONL ------------------------------------------------------------------------------


def lines(*objs: Any) -> list[str]:
    return [o if isinstance(o, str) else json.dumps(o) for o in objs]


def test_jsonl_rejections_carry_their_line_numbers() -> None:
    text = lines(
        record(run_id="a"),
        "",
        '{"run_id": "b", "workflow": ',
        record(run_id="c", status="maybe"),
        "   ",
        record(run_id="d"),
        "[1]",
    )
    result = parse_jsonl(text, now=NOW)
    assert [(r.line, r.index, r.run_id, r.field) for r in result.rejected] == [
        (3, 1, None, None),
        (4, 2, "c", "status"),
        (7, 4, None, None),
    ]
    assert result.rejected[0].reason == "malformed JSON: Expecting value (column 29)"
    assert result.rejected[2].reason == "expected a JSON object, got a list"
    assert [r.run_id for r in result.accepted] == ["a", "d"]
    assert all(r.source == "jsonl" for r in result.accepted)
    message = str(result.error("runs.jsonl"))
    assert (
        "  runs.jsonl:4 (run c): field 'status': expected 'ok' or 'error', got 'maybe'" in message
    )
    assert message.startswith("runs.jsonl:3: 3 record(s) rejected, nothing imported:")


def test_parse_run_raises_an_input_error_naming_file_line_and_field() -> None:
    with pytest.raises(InputError) as caught:
        parse_run(record(feedback=3), now=NOW, where="runs.jsonl", line=12)
    error = caught.value
    assert (error.source, error.line, error.field, exit_code(error)) == (
        "runs.jsonl",
        12,
        "feedback",
        2,
    )
    assert str(error) == "runs.jsonl:12: field 'feedback': expected in [-1, 1], got 3"


def test_jsonl_accepts_bytes_crlf_and_a_byte_order_mark() -> None:
    raw = "\ufeff" + json.dumps(record(run_id="a")) + "\r\n" + json.dumps(record(run_id="b"))
    as_bytes = raw.encode("utf-8").splitlines(keepends=True)
    assert [r.run_id for r in parse_jsonl(as_bytes, now=NOW).accepted] == ["a", "b"]
    assert [r.run_id for r in parse_jsonl(raw.splitlines(), now=NOW).accepted] == ["a", "b"]
    bad = parse_jsonl([b"\xff\xfe{}"], now=NOW).rejected[0]
    assert bad.line == 1 and bad.reason.startswith(("not UTF-8 text", "malformed JSON"))


def test_json_that_python_refuses_to_read_is_a_rejection_too() -> None:
    huge = '{"tokens_in": ' + "9" * 5000 + "}"
    deep = "[" * 100_000 + "]" * 100_000
    result = parse_jsonl([huge, deep], now=NOW)
    assert [(r.line, r.reason.split(":")[0]) for r in result.rejected] == [
        (1, "unreadable JSON"),
        (2, "JSON nested deeper than 100 levels"),
    ]


# --- stable ids -------------------------------------------------------------------------


def test_records_without_run_id_get_a_stable_content_id() -> None:
    no_id = record(run_id=ABSENT)
    first = parse_run(no_id, now=NOW)
    again = parse_run(dict(reversed(list(no_id.items()))), now=NOW + timedelta(days=3))
    epoch = parse_run(
        record(run_id=ABSENT, started_at=first.started_epoch, ended_at=first.ended_epoch), now=NOW
    )
    via_http = parse_run(no_id, now=NOW, source="http")
    assert len(first.run_id) == 32 and int(first.run_id, 16) >= 0
    assert first.run_id == again.run_id == epoch.run_id == via_http.run_id
    for change in (
        {"output": "card_lost"},
        {"tokens_in": 121},
        {"ended_at": "2025-06-01T11:59:01.251Z"},
        {"attributes": {"tenant": "acme"}},
        {"feedback": 0.0},
        {"model": ABSENT},
    ):
        assert parse_run(record(run_id=ABSENT, **change), now=NOW).run_id != first.run_id, change


def test_importing_the_same_file_twice_gives_the_same_ids() -> None:
    text = lines(*(record(run_id=ABSENT, tokens_in=i) for i in range(20)))
    once = parse_jsonl(text, now=NOW)
    twice = parse_jsonl(text + text, now=NOW)
    assert once.ok and twice.ok and twice.duplicates == 20
    assert [r.run_id for r in once.accepted] == [r.run_id for r in twice.accepted]
    assert len({r.run_id for r in once.accepted}) == 20


@settings(max_examples=50, deadline=None)
@given(
    order=st.permutations(list(record(run_id=ABSENT))),
    attrs=st.dictionaries(
        st.text(max_size=5), st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5), max_size=4
    ),
)
def test_the_derived_id_ignores_key_order(order: list[str], attrs: dict[str, Any]) -> None:
    base = record(run_id=ABSENT, attributes=attrs)
    shuffled = {k: base[k] for k in order} | {"attributes": dict(reversed(list(attrs.items())))}
    assert parse_run(shuffled, now=NOW).run_id == parse_run(base, now=NOW).run_id


def test_the_same_run_through_two_fronts_has_the_same_content() -> None:
    from releasegate.domain.runs import same_content

    sdk, http = (parse_run(record(), now=NOW, source=s) for s in ("sdk", "http"))
    assert sdk != http and same_content(sdk, http)
    assert not same_content(sdk, parse_run(record(edited=True), now=NOW))


def test_batch_result_is_a_value() -> None:
    result = BatchResult([], [])
    assert result.ok and result.duplicates == 0 and result.error() is None


# --- text that is not valid UTF-8 -------------------------------------------------------

LONE = "\ud83d"  # the first half of an emoji's UTF-16 pair, as JSON's "\ud83d" decodes


def test_a_jsonl_line_with_a_lone_surrogate_is_rejected_naming_line_and_field() -> None:
    good, bad = json.dumps(record(run_id="a")), json.dumps(record(run_id="b", input="hi " + LONE))
    assert '"hi \\ud83d"' in bad  # what a JavaScript client cutting a string writes
    encoded = json.dumps(record(run_id="c", label="?")).encode().replace(b"?", b"\xed\xa0\xbd")
    result = parse_jsonl([good.encode(), bad.encode(), encoded], now=NOW)
    assert [(r.line, r.run_id, r.field) for r in result.rejected] == [
        (2, "b", "input"),
        (3, "c", "label"),  # encoded in the bytes: json.loads decodes with 'surrogatepass'
    ]
    assert result.rejected[0].reason == (
        "not valid UTF-8 text: lone surrogate '\\ud83d' at character 4 "
        "(a string cut between the two halves of a UTF-16 pair?)"
    )
    assert [r.run_id for r in result.accepted] == ["a"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"workflow": "triage" + LONE}, "workflow"),
        ({"env": LONE}, "env"),
        ({"model": "gpt" + LONE}, "model"),
        ({"provider": LONE}, "provider"),
        ({"operation": LONE}, "operation"),
        ({"label": LONE}, "label"),
        ({"status": "error", "failure_reason": "timeout " + LONE}, "failure_reason"),
        ({"output": LONE}, "output"),
        ({"input": {"messages": [{"content": "hi" + LONE}]}}, "input"),
        ({"output": {"k" + LONE: 1}}, "output"),
        ({"attributes": {"tenant": "acme" + LONE}}, "attributes.tenant"),
        ({"attributes": {"ten" + LONE: "acme"}}, "attributes.ten\\ud83d"),
    ],
)
def test_a_lone_surrogate_in_any_string_of_an_http_batch_is_named(
    changes: dict[str, Any], field: str
) -> None:
    result = parse_batch([record(run_id="ok"), record(run_id="bad", **changes)], now=NOW)
    [bad] = result.rejected
    assert (bad.index, bad.run_id, bad.field) == (1, "bad", field)
    assert bad.reason.startswith("not valid UTF-8 text: lone surrogate '\\ud83d' at character")


def test_a_rejection_for_bad_text_can_itself_be_printed_and_sent() -> None:
    result = parse_batch([record(run_id="r" + LONE), record(**{"note" + LONE: 1})], now=NOW)
    assert [(r.run_id, r.field) for r in result.rejected] == [
        ("r\\ud83d", "run_id"),
        ("r-1", "note\\ud83d"),
    ]
    message = str(result.error("POST /api/runs"))
    assert message.encode("utf-8")  # what the CLI prints and the server sends
    assert "POST /api/runs[0] (run r\\ud83d): field 'run_id': not valid UTF-8 text" in message


def test_text_beyond_ascii_is_fine_including_a_whole_surrogate_pair() -> None:
    line = json.dumps(record(input="où est mon remboursement ? \U0001f600", label="facturación"))
    assert "\\ud83d\\ude00" in line  # json.dumps escapes the emoji as a UTF-16 pair
    [run] = parse_jsonl([line], now=NOW).accepted
    assert run.input == "où est mon remboursement ? \U0001f600"
    assert run.label == "facturación"


def test_sdk_structured_input_that_json_cannot_hold_is_a_rejection_not_a_crash() -> None:
    when = datetime(2025, 6, 1, tzinfo=UTC)
    for value, reason in (
        ({"asked_at": when}, "Object of type datetime is not JSON serializable"),
        ({1: "a", "b": 2}, "'<' not supported between instances of"),
    ):
        bad = reject(record(input=value), source="sdk")
        assert bad.field == "input"
        assert bad.reason.startswith("cannot be stored as JSON text: " + reason)


def test_blank_lines_of_any_kind_are_skipped() -> None:
    rows = [b"\n", json.dumps(record(run_id="a")).encode() + b"\r\n", b"  \t\r\n", b""]
    result = parse_jsonl(rows, now=NOW)
    assert result.ok and [r.run_id for r in result.accepted] == ["a"]


def test_run_facts_judge_a_record() -> None:
    assert IS_ERROR.holds("error") and not IS_ERROR.holds("ok")
    assert IS_ESCALATED.holds(True) and not IS_EDITED.holds(False)
    assert IS_NEGATIVE_FEEDBACK.holds(-0.1)
    assert not IS_NEGATIVE_FEEDBACK.holds(0.0) and not IS_NEGATIVE_FEEDBACK.holds(None)
    assert HAS_FEEDBACK.holds(0.0) and not HAS_FEEDBACK.holds(None)
