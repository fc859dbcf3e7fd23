"""The audit log as users see it: list events, and verify the chain end to end."""

from __future__ import annotations

from releasegate.domain.audit import AuditEvent, ChainBreak, verify_chain
from releasegate.store.engine import Store
from releasegate.store.repos import AuditRepo


def audit_log(
    store: Store,
    *,
    workflow: str | None = None,
    limit: int | None = None,
) -> list[AuditEvent]:
    with store.read() as conn:
        return AuditRepo.events(conn, workflow=workflow, limit=limit)


def audit_verify(store: Store) -> tuple[int, ChainBreak | None]:
    """(events checked, first break or None); the head row catches removal of the newest."""
    with store.read() as conn:
        events = AuditRepo.events(conn)
        head = AuditRepo.head(conn)
    return len(events), verify_chain(events, head=head)
