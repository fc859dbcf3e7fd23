"""Gate policy: parsed from a workflow's ``policy:`` section, and who must approve what."""

from __future__ import annotations

import pytest

from releasegate.domain.document import Fields
from releasegate.domain.pinning import BlessedModel, ToolGrant
from releasegate.domain.policy import (
    ApprovalNeed,
    Policy,
    Regression,
    default_policy,
    parse_policy,
    policy_from_content,
    required_approvals,
)
from releasegate.errors import PolicyError
from releasegate.release.loaders import parse_yaml

SOURCE = "support-triage.yaml"
HEAD = "workflow: support-triage\nstakes: high\npolicy:\n  production:\n"

FULL = HEAD + (
    "    floors:\n"
    "      accuracy: 0.9\n"
    "      macro_f1: 1\n"
    "    must_pass: false\n"
    "    max_regression:\n"
    "      - metric: accuracy\n"
    "        margin: 0.02\n"
    "      - metric: macro_f1\n"
    "        margin: 0.05\n"
    "    budgets:\n"
    "      latency_p95_ms: 800\n"
    "      cost_per_case_usd: 0.002\n"
    "    approvals:\n"
    "      required: 2\n"
    "      business_for: [model, tools, retrieval]\n"
)


def parse(text: str) -> Policy:
    doc = parse_yaml(text, SOURCE, PolicyError)
    fields = Fields(doc, PolicyError, ("policy", "production"))
    return parse_policy(fields, workflow="support-triage", env="production")


def error_of(body: str) -> str:
    with pytest.raises(PolicyError) as err:
        parse(HEAD + body)
    return str(err.value)


def test_every_field_is_read() -> None:
    policy = parse(FULL)
    assert policy == Policy(
        workflow="support-triage",
        env="production",
        floors={"accuracy": 0.9, "macro_f1": 1.0},
        must_pass=False,
        regressions=(Regression("accuracy", 0.02), Regression("macro_f1", 0.05)),
        latency_p95_ms=800.0,
        cost_per_case_usd=0.002,
        approvers_required=2,
        business_for=("model", "tools", "retrieval"),
    )


def test_an_empty_section_keeps_the_defaults() -> None:
    policy = parse(HEAD + "    floors: {}\n")
    assert policy.must_pass is True
    assert policy.regressions == ()
    assert policy.approvers_required is None
    assert policy.business_for == ("model", "tools")
    assert (policy.latency_p95_ms, policy.cost_per_case_usd) == (None, None)


def test_a_single_max_regression_mapping_defaults_to_accuracy() -> None:
    policy = parse(HEAD + "    max_regression:\n      margin: 0.03\n")
    assert policy.regressions == (Regression("accuracy", 0.03),)


def test_the_default_policy_guards_accuracy_within_two_points() -> None:
    policy = default_policy("support-triage", "production")
    assert policy.must_pass is True
    assert policy.regressions == (Regression("accuracy", 0.02),)


def test_policy_content_round_trips_and_identifies_the_policy() -> None:
    policy = parse(FULL)
    assert policy_from_content(policy.content()) == policy
    assert policy_from_content(policy.content()).policy_id == policy.policy_id
    looser = parse(FULL.replace("margin: 0.02", "margin: 0.03"))
    assert looser.policy_id != policy.policy_id


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            "    max_regression:\n      metric: accuracy\n      margin: -0.1\n",
            "support-triage.yaml:7: field 'policy.production.max_regression.margin': "
            "must be between 0.0 and 1.0, got -0.1",
            id="negative margin",
        ),
        pytest.param(
            "    max_regression:\n      - metric: accuracy\n        margin: 0.02\n"
            "      - metric: macro_f1\n        margin: 2\n",
            "support-triage.yaml:9: field 'policy.production.max_regression[1].margin': "
            "must be between 0.0 and 1.0, got 2.0",
            id="margin above 1",
        ),
        pytest.param(
            "    max_regression:\n      metric: accuracy\n      limit: 0.1\n",
            "support-triage.yaml:7: field 'policy.production.max_regression.limit': "
            "unknown field 'limit'\n  hint: allowed here: metric, margin",
            id="unknown regression field",
        ),
        pytest.param(
            "    approvals:\n      business_for: [model, prompts]\n",
            "support-triage.yaml:6: field 'policy.production.approvals.business_for[1]': "
            "unknown change class 'prompts'\n  hint: one of: config, model, retrieval, tools, "
            "wording",
            id="unknown change class",
        ),
        pytest.param(
            "    approvals:\n      required: -1\n",
            "support-triage.yaml:6: field 'policy.production.approvals.required': "
            "must be 0 or more",
            id="negative approvals",
        ),
        pytest.param(
            "    approvals:\n      required: yes\n",
            "support-triage.yaml:6: field 'policy.production.approvals.required': "
            "expected an integer, got true/false",
            id="approvals count is a boolean",
        ),
        pytest.param(
            "    floors:\n      accuracy: -0.5\n",
            "support-triage.yaml:6: field 'policy.production.floors.accuracy': "
            "must be between 0.0 and 1.0, got -0.5",
            id="negative floor",
        ),
        pytest.param(
            "    budgets:\n      latency_p95_ms: fast\n",
            "support-triage.yaml:6: field 'policy.production.budgets.latency_p95_ms': "
            "expected a number, got a string",
            id="budget not a number",
        ),
        pytest.param(
            "    budgets:\n      tokens: 100\n",
            "support-triage.yaml:6: field 'policy.production.budgets.tokens': "
            "unknown field 'tokens'\n  hint: allowed here: latency_p95_ms, cost_per_case_usd",
            id="unknown budget",
        ),
        pytest.param(
            "    floors: {accuracy: 0.9}\n    max_regresion: {margin: 0.1}\n",
            "support-triage.yaml:6: field 'policy.production.max_regresion': "
            "unknown field 'max_regresion'\n"
            "  hint: allowed here: floors, must_pass, max_regression, budgets, approvals, "
            "blessed_models, allowed_tools, rollout, pause_on",
            id="unknown field",
        ),
    ],
)
def test_bad_policy_names_file_line_and_field(body: str, expected: str) -> None:
    assert error_of(body) == expected


def test_a_change_class_that_is_not_a_string_is_a_policy_error() -> None:
    with pytest.raises(
        PolicyError,
        match=r"^support-triage\.yaml:6: field 'policy\.production\.approvals\.business_for\[1\]'",
    ):
        parse(HEAD + "    approvals:\n      business_for: [model, [tools]]\n")


# -- who must approve ----------------------------------------------------------------------

POLICY = Policy(workflow="support-triage", env="production")


@pytest.mark.parametrize("change_class", [None, "wording", "config", "tools", "retrieval", "model"])
def test_low_stakes_needs_no_approval(change_class: str | None) -> None:
    need = required_approvals(POLICY, "low", change_class)
    assert need == ApprovalNeed(named=0, business=False)
    assert need.is_empty


@pytest.mark.parametrize("change_class", [None, "wording", "config", "retrieval"])
def test_high_stakes_needs_one_named_approver(change_class: str | None) -> None:
    need = required_approvals(POLICY, "high", change_class)
    assert need == ApprovalNeed(named=1, business=False)
    assert not need.is_empty


@pytest.mark.parametrize("change_class", ["model", "tools"])
def test_high_stakes_model_or_tools_change_also_needs_the_business_approver(
    change_class: str,
) -> None:
    assert required_approvals(POLICY, "high", change_class) == ApprovalNeed(named=1, business=True)


def test_explicit_required_count_overrides_the_stakes_default() -> None:
    policy = parse(HEAD + "    approvals:\n      required: 2\n")
    assert required_approvals(policy, "high", "wording") == ApprovalNeed(named=2, business=False)
    assert required_approvals(policy, "low", "model") == ApprovalNeed(named=2, business=False)


def test_required_zero_lets_a_high_stakes_wording_change_through() -> None:
    policy = parse(HEAD + "    approvals:\n      required: 0\n")
    assert required_approvals(policy, "high", "wording").is_empty
    assert required_approvals(policy, "high", "model") == ApprovalNeed(named=0, business=True)


def test_business_for_decides_which_classes_need_the_business_approver() -> None:
    policy = parse(HEAD + "    approvals:\n      business_for: [retrieval]\n")
    assert required_approvals(policy, "high", "retrieval").business is True
    assert required_approvals(policy, "high", "model").business is False


def test_blessed_models_and_allowed_tools_are_read() -> None:
    digest = "sha256:" + "c" * 64
    policy = parse(
        HEAD + "    blessed_models:\n"
        f"      - {{runtime: ollama, name: llama3.2, digest: '{digest}'}}\n"
        "    allowed_tools: [search, {name: refund, parameters: [order_id]}]\n"
    )
    assert policy.blessed == (BlessedModel("ollama", "llama3.2", digest),)
    assert policy.allowed_tools == (ToolGrant("refund", ("order_id",)), ToolGrant("search"))
    assert policy_from_content(policy.content()) == policy
    assert parse(HEAD + "    allowed_tools: []\n").allowed_tools == ()
    assert parse(FULL).blessed is None and parse(FULL).allowed_tools is None


def test_a_blessed_file_needs_a_workflow_file_to_be_read_from() -> None:
    assert error_of("    blessed_models: {file: blessed.yaml}\n") == (
        "support-triage.yaml:5: field 'policy.production.blessed_models.file': "
        "blessed-models files are read only from a workflow file"
    )
