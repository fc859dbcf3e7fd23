"""A rehearsal's record: which mutations count as caught, its score and its result."""

from __future__ import annotations

from datetime import UTC, datetime

from releasegate.domain.rehearsal import MutationOutcome, Rehearsal, result_of

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rehearsal(*mutations: MutationOutcome) -> Rehearsal:
    return Rehearsal("h", "wf", "staging", "a" * 64, "finished", "al", T0, T0, mutations=mutations)


def test_only_a_passing_verdict_lets_a_mutation_through() -> None:
    caught = [MutationOutcome("m", "", verdict=v) for v in ("fail", "hold", "needs-approval")]
    assert all(m.is_caught and not m.is_escaped for m in caught)
    through = MutationOutcome("m", "", verdict="pass")
    assert through.is_escaped and not through.is_caught
    skipped = MutationOutcome("m", "", skipped="no tools", verdict=None)
    assert not skipped.is_applied and not skipped.is_caught and not skipped.is_escaped
    assert MutationOutcome.from_dict(through.to_dict()) == through


def test_the_mutation_score_counts_gated_mutations_only() -> None:
    assert rehearsal().mutation_score is None
    assert rehearsal(MutationOutcome("s", "", skipped="n/a")).mutation_score is None
    r = rehearsal(
        MutationOutcome("a", "", verdict="fail"),
        MutationOutcome("b", "", verdict="pass"),
        MutationOutcome("c", "", verdict="hold"),
        MutationOutcome("d", "", skipped="n/a"),
    )
    assert r.mutation_score == 2 / 3
    assert [m.name for m in r.escaped] == ["b"]


def test_restoring_comes_before_the_suites_strength() -> None:
    assert result_of(is_restored=True, escaped=0) == "passed"
    assert result_of(is_restored=True, escaped=2) == "suite-too-weak"
    assert result_of(is_restored=False, escaped=0) == "not-restored"
    assert result_of(is_restored=False, escaped=1) == "not-restored"
