"""A rollback rehearsal: its record, its states, and what its result means.

``rehearse WORKFLOW --env ENV`` degrades the environment's current version on purpose
(``domain.mutations``), gates each variant, deploys the worst one, detects the
regression, rolls back and checks the original serves again. The record says where it
is, so a crash is undone by the next run: ``running`` (variants being built and gated,
the environment untouched), ``deployed`` (a variant serves: a crash here leaves the
environment to put back on ``original_id``), then ``finished`` or, when a later run found
it crashed and put the original back, ``undone``. The result is ``passed`` (the original
serves again and the gate caught every mutation), ``suite-too-weak`` (restored, but the
gate let a mutation through, or held one it could not tell from the original),
``not-restored`` (the rollback did not bring the original
back) or ``interrupted`` (it crashed; undone by a later run).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

RehearsalState = Literal["running", "deployed", "finished", "undone"]
RehearsalResult = Literal["passed", "suite-too-weak", "not-restored", "interrupted"]
STATES: tuple[str, ...] = ("running", "deployed", "finished", "undone")
RESULTS: tuple[str, ...] = ("passed", "suite-too-weak", "not-restored", "interrupted")
LET_THROUGH = ("pass", "needs-approval")
"""Gate verdicts whose evidence cleared every check: the suite did not catch the variant."""


@dataclass(frozen=True)
class MutationOutcome:
    """One degraded variant: applied or skipped (and why), and what the gate made of it."""

    name: str
    description: str
    skipped: str | None = None  # why the mutation does not apply; None when applied
    version_id: str | None = None
    verdict: str | None = None  # the gate's: pass | fail | hold | needs-approval
    score: float | None = None  # the suite's primary metric for the variant
    reasons: tuple[str, ...] = ()  # the gate's reasons (why it was stopped)
    proposed: tuple[str, ...] = ()  # `releasegate suite add-case ...` lines that would catch it
    detection: str = ""  # for the deployed variant: what found it (the gate, replayed runs)

    @property
    def is_applied(self) -> bool:
        return self.skipped is None

    @property
    def is_caught(self) -> bool:
        """The gate failed the variant: its evidence showed it worse (a killed mutant)."""
        return self.is_applied and self.verdict == "fail"

    @property
    def is_inconclusive(self) -> bool:
        """The gate held the variant without showing it worse: the suite cannot tell it
        from the original (too few cases for the margin), so it is not caught either."""
        return self.is_applied and self.verdict == "hold"

    @property
    def is_escaped(self) -> bool:
        """The gate's evidence let the degraded variant through (``pass``, or
        ``needs-approval``: only a human's signature stood in its way): the suite is too
        weak for it."""
        return self.is_applied and self.verdict in LET_THROUGH

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "skipped": self.skipped,
            "version_id": self.version_id,
            "verdict": self.verdict,
            "score": self.score,
            "reasons": list(self.reasons),
            "proposed": list(self.proposed),
            "detection": self.detection,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MutationOutcome:
        return cls(
            name=str(d["name"]),
            description=str(d.get("description", "")),
            skipped=d.get("skipped"),
            version_id=d.get("version_id"),
            verdict=d.get("verdict"),
            score=d.get("score"),
            reasons=tuple(d.get("reasons", ())),
            proposed=tuple(d.get("proposed", ())),
            detection=str(d.get("detection", "")),
        )


@dataclass(frozen=True)
class Rehearsal:
    """One rehearsal of ``workflow@env``, as stored (``store.rehearsals.RehearsalRepo``)."""

    rehearsal_id: str
    workflow: str
    env: str
    original_id: str  # what the environment served when the rehearsal began
    state: str  # one of STATES
    actor: str
    started_at: datetime
    updated_at: datetime
    suite_id: str | None = None
    deployed_id: str | None = None  # the variant put in the environment, once deployed
    result: str | None = None  # one of RESULTS once finished or undone
    finished_at: datetime | None = None
    time_to_detect_s: float | None = None  # deploy -> regression detected
    time_to_revert_s: float | None = None  # regression detected -> original serving again
    is_restored: bool | None = None  # resolve served the original after the rollback
    mutations: tuple[MutationOutcome, ...] = ()
    runner: Mapping[str, Any] = field(default_factory=dict)  # pid, host: is it still alive?

    @property
    def is_running(self) -> bool:
        return self.state in ("running", "deployed")

    @property
    def is_passed(self) -> bool:
        return self.result == "passed"

    @property
    def applied(self) -> tuple[MutationOutcome, ...]:
        return tuple(m for m in self.mutations if m.is_applied)

    @property
    def escaped(self) -> tuple[MutationOutcome, ...]:
        """The mutations the gate let through."""
        return tuple(m for m in self.mutations if m.is_escaped)

    @property
    def inconclusive(self) -> tuple[MutationOutcome, ...]:
        """The mutations the gate held without showing them worse."""
        return tuple(m for m in self.mutations if m.is_inconclusive)

    @property
    def mutation_score(self) -> float | None:
        """Share of gated mutations the gate failed (None when none was gated); a held or
        passed one counts as not caught."""
        gated = [m for m in self.applied if m.verdict is not None]
        if not gated:
            return None
        return sum(m.is_caught for m in gated) / len(gated)


def result_of(*, is_restored: bool, escaped: int, inconclusive: int = 0) -> str:
    """A finished rehearsal's result: restoring comes first, then the suite's strength
    (too weak when it let a mutation through or could not tell one from the original)."""
    if not is_restored:
        return "not-restored"
    return "suite-too-weak" if escaped or inconclusive else "passed"
