"""The automatic-pause rule without I/O: the ``pause_on:`` section (every bad value named by
file, line and field), when a ceiling is shown exceeded, and the rule's stated error rate
computed exactly over the binomial."""

from __future__ import annotations

from datetime import timedelta

import pytest
from scipy import stats

from releasegate.domain.document import Fields
from releasegate.domain.pausing import (
    PauseOn,
    RateCount,
    WindowRates,
    lower_bound,
    pause_reason,
    severe,
)
from releasegate.domain.policy import parse_policy, policy_from_content
from releasegate.errors import PolicyError
from releasegate.release.loaders import parse_yaml

OK = "      error_rate: 0.5\n"
HEAD = "workflow: router\npolicy:\n  production:\n    pause_on:\n"


def parse(body: str) -> PauseOn | None:
    doc = parse_yaml(HEAD + body, "router.yaml", PolicyError)
    fields = Fields(doc, PolicyError, ("policy", "production"))
    return parse_policy(fields, workflow="router", env="production").pause_on


def test_the_section_parses_and_round_trips_through_the_policy_content() -> None:
    got = parse("      error_rate: 0.5\n      escalation_rate: 0.3\n      window: 30m\n")
    assert got == PauseOn({"error_rate": 0.5, "escalation_rate": 0.3}, timedelta(minutes=30))
    doc = parse_yaml(HEAD + "      error_rate: 0.5\n", "router.yaml", PolicyError)
    pol = parse_policy(
        Fields(doc, PolicyError, ("policy", "production")), workflow="router", env="production"
    )
    assert policy_from_content(pol.content()) == pol
    bare = parse_yaml(
        "workflow: router\npolicy:\n  production:\n    floors: {}\n", "r", PolicyError
    )
    plain = parse_policy(Fields(bare, PolicyError, ("policy", "production")), workflow="r", env="p")
    assert plain.pause_on is None and "pause_on" not in plain.content()  # older ids hold


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ("      error_rte: 0.5\n", "policy.production.pause_on.error_rte", "unknown signal"),
        ("      latency_p95: 900\n", "policy.production.pause_on.latency_p95", "not a rate"),
        ("      error_rate: 1.5\n", "policy.production.pause_on.error_rate", "above 0 and below 1"),
        ("      error_rate: 0\n", "policy.production.pause_on.error_rate", "above 0 and below 1"),
        ("      error_rate: high\n", "policy.production.pause_on.error_rate", "expected a ceiling"),
        ("      error_rate: true\n", "policy.production.pause_on.error_rate", "expected a ceiling"),
        ("      window: 1h\n", "policy.production.pause_on", "at least one rate"),
        (OK + "      window: soon\n", "policy.production.pause_on.window", "not a duration"),
        (OK + "      min_runs: 0\n", "policy.production.pause_on.min_runs", "at least 1"),
        (OK + "      alpha: 0.7\n", "policy.production.pause_on.alpha", "below 0.5"),
    ],
)  # fmt: skip
def test_a_bad_section_names_the_field_and_its_line(body: str, field: str, says: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse(body)
    err = caught.value
    assert err.field == field and says in str(err)
    assert err.source == "router.yaml" and err.line is not None and err.line >= 4


def test_a_rate_well_beyond_the_ceiling_is_shown_and_one_near_it_is_not() -> None:
    rule = PauseOn({"error_rate": 0.5})
    (breach,) = severe({"error_rate": RateCount(35, 50)}, rule)  # 70% of 50 runs
    assert breach.lower_bound > 0.5 and breach.rate == 0.7
    assert severe({"error_rate": RateCount(28, 50)}, rule) == ()  # 56%: not shown
    assert severe({"error_rate": RateCount(49, 49)}, rule) == ()  # under min_runs
    assert severe({}, rule) == ()  # no runs: nothing to show
    assert "error_rate 70.0% (35 of 50 runs) is above its ceiling 50%" in pause_reason(
        (breach,), "monitor"
    )


def test_window_rates_count_feedback_only_among_runs_with_feedback() -> None:
    counts = WindowRates(200, 10, 20, 30, 40, 25).counts()
    assert counts["negative_feedback_rate"] == RateCount(25, 40)
    assert counts["error_rate"] == RateCount(10, 200)
    two = PauseOn({"error_rate": 0.5, "negative_feedback_rate": 0.3}, min_runs=20)
    assert [b.signal for b in severe(counts, two)] == ["negative_feedback_rate"]
    assert severe(counts, two)[0].alpha == pytest.approx(0.005)  # Bonferroni over the rules


@pytest.mark.parametrize("n", [50, 200, 1000])
@pytest.mark.parametrize("ceiling", [0.05, 0.3, 0.5])
def test_a_rate_at_the_ceiling_is_paused_at_most_alpha_per_check(n: int, ceiling: float) -> None:
    """Exact: the chance that Binomial(n, ceiling) errors make the rule fire."""
    rule = PauseOn({"error_rate": ceiling}, min_runs=1)
    fires = [k for k in range(n + 1) if severe({"error_rate": RateCount(k, n)}, rule)]
    chance = float(stats.binom.sf(fires[0] - 1, n, ceiling)) if fires else 0.0
    assert chance <= rule.alpha
    # and it is not vacuous: 20 points beyond the ceiling fires nearly always at 200+ runs
    if n >= 200:
        worse = ceiling + 0.2
        assert float(stats.binom.sf(fires[0] - 1, n, worse)) > 0.9


def test_the_lower_bound_is_clopper_pearsons() -> None:
    assert lower_bound(0, 100, 0.01) == 0.0
    assert lower_bound(100, 100, 0.01) == pytest.approx(0.01 ** (1 / 100))
