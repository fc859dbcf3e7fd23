"""A rehearsal's record: which mutations count as caught, its score and its result."""

from __future__ import annotations

from datetime import UTC, datetime

from releasegate.domain.rehearsal import MutationOutcome, Rehearsal, result_of

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rehearsal(*mutations: MutationOutcome) -> Rehearsal:
    return Rehearsal("h", "wf", "staging", "a" * 64, "finished", "al", T0, T0, mutations=mutations)


def test_only_evidence_that_clears_every_check_lets_a_mutation_through() -> None:
    caught = MutationOutcome("m", "", verdict="fail")
    assert caught.is_caught and not caught.is_escaped and not caught.is_inconclusive
    held = MutationOutcome("m", "", verdict="hold")  # too few cases to tell: not caught
    assert held.is_inconclusive and not held.is_caught and not held.is_escaped
    for verdict in ("pass", "needs-approval"):  # an approver's signature is not the suite's
        through = MutationOutcome("m", "", verdict=verdict)
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
    assert r.mutation_score == 1 / 3
    assert [m.name for m in r.escaped] == ["b"]
    assert [m.name for m in r.inconclusive] == ["c"]


def test_restoring_comes_before_the_suites_strength() -> None:
    assert result_of(is_restored=True, escaped=0) == "passed"
    assert result_of(is_restored=True, escaped=2) == "suite-too-weak"
    assert result_of(is_restored=True, escaped=0, inconclusive=1) == "suite-too-weak"
    assert result_of(is_restored=False, escaped=0) == "not-restored"
    assert result_of(is_restored=False, escaped=1) == "not-restored"
