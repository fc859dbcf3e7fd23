"""Policy proposals: a floor change proposed by one person, approved by another, and the
policy it makes (``release.policy_changes``). A proposal is written once and decided
once: ``decide`` is a compare-and-swap on its state, so two approvers approve it once."""

from __future__ import annotations

from sqlalchemy import Connection, and_, insert, select, update

from releasegate.domain.ratchet import APPROVED, PROPOSED, PolicyProposal
from releasegate.store import tables as t
from releasegate.store.rows import now, record, values


class ProposalRepo:
    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, proposal: PolicyProposal) -> None:
        self.conn.execute(insert(t.policy_proposals).values(**values(proposal, t.policy_proposals)))

    def get(self, proposal_id: str) -> PolicyProposal | None:
        row = self.conn.execute(
            select(t.policy_proposals).where(t.policy_proposals.c.proposal_id == proposal_id)
        ).first()
        return None if row is None else record(PolicyProposal, row, changes=tuple)

    def by_prefix(self, prefix: str) -> list[str]:
        rows = self.conn.execute(
            select(t.policy_proposals.c.proposal_id)
            .where(t.policy_proposals.c.proposal_id.startswith(prefix, autoescape=True))
            .limit(5)
        ).all()
        return [r[0] for r in rows]

    def list(self, workflow: str, env: str | None = None) -> list[PolicyProposal]:
        p = t.policy_proposals.c
        where = (
            p.workflow == workflow if env is None else and_(p.workflow == workflow, p.env == env)
        )
        rows = self.conn.execute(
            select(t.policy_proposals).where(where).order_by(p.created_at, p.proposal_id)
        ).all()
        return [record(PolicyProposal, r, changes=tuple) for r in rows]

    def approved_into(self, workflow: str, env: str, policy_id: str) -> PolicyProposal | None:
        """The approved proposal that made ``policy_id`` the policy of ``workflow@env``."""
        p = t.policy_proposals.c
        row = self.conn.execute(
            select(t.policy_proposals)
            .where(
                and_(
                    p.workflow == workflow,
                    p.env == env,
                    p.policy_id == policy_id,
                    p.state == APPROVED,
                )
            )
            .order_by(p.decided_at.desc())
            .limit(1)
        ).first()
        return None if row is None else record(PolicyProposal, row, changes=tuple)

    def decide(self, proposal_id: str, *, state: str, approver: str, note: str) -> bool:
        """Move a proposal out of ``proposed``; False (nothing written) if it already was."""
        p = t.policy_proposals.c
        done = self.conn.execute(
            update(t.policy_proposals)
            .where(and_(p.proposal_id == proposal_id, p.state == PROPOSED))
            .values(state=state, approver=approver, note=note, decided_at=now())
        )
        return done.rowcount == 1
