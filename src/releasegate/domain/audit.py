"""The audit log as a hash chain: editing or dropping any past event is detectable.

Each event's hash covers its own content and the previous event's hash, so
changing one event breaks it and every link after it, and a gap in ``seq`` shows
a deleted event. Deleting the newest events leaves a shorter, still-valid chain,
so the store also records the head (last seq and hash) and ``verify_chain``
checks against it. Times are hashed as UTC with microseconds, so the same
instant read back from any database in any offset hashes the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from releasegate.domain.identity import canonical_json, content_hash

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEvent:
    """One entry of the log. ``hash`` = event_hash of every other field."""

    seq: int
    at: datetime
    kind: str
    actor: str
    workflow: str | None
    subject: str | None
    payload: Mapping[str, Any]
    prev_hash: str
    hash: str

    def __post_init__(self) -> None:
        _require_aware(self.at)


@dataclass(frozen=True)
class ChainBreak:
    """The first problem found, and the seq of the event where it shows."""

    seq: int
    reason: str

    def __str__(self) -> str:
        return f"event {self.seq}: {self.reason}"


def event_hash(
    seq: int,
    at: datetime,
    kind: str,
    actor: str,
    workflow: str | None,
    subject: str | None,
    payload: Mapping[str, Any],
    prev_hash: str,
) -> str:
    """sha256 over the canonical JSON of every field but the hash itself."""
    _require_aware(at)
    return content_hash(
        {
            "seq": seq,
            "at": _iso(at),
            "kind": kind,
            "actor": actor,
            "workflow": workflow,
            "subject": subject,
            "payload": _plain(payload),
            "prev_hash": prev_hash,
        }
    )


def chain_event(
    prev: AuditEvent | None,
    *,
    seq: int,
    at: datetime,
    kind: str,
    actor: str,
    workflow: str | None,
    subject: str | None,
    payload: Mapping[str, Any],
) -> AuditEvent:
    """The event that follows ``prev`` (None for the first), hashed and linked.

    The payload is stored as the plain JSON copy that was hashed, so the event
    can be serialized as is, and later edits to the caller's dict cannot leak in.
    """
    expected = 1 if prev is None else prev.seq + 1
    if seq != expected:
        raise ValueError(f"audit event seq must be {expected}, got {seq}")
    _require_aware(at)
    at = at.astimezone(UTC)
    stored: dict[str, Any] = json.loads(canonical_json(_plain(payload)))
    prev_hash = GENESIS if prev is None else prev.hash
    digest = event_hash(seq, at, kind, actor, workflow, subject, stored, prev_hash)
    return AuditEvent(seq, at, kind, actor, workflow, subject, stored, prev_hash, digest)


def verify_chain(
    events: Iterable[AuditEvent], *, head: tuple[int, str] | None = None
) -> ChainBreak | None:
    """The first break in ``events`` (given in seq order, as read), or None if intact.

    ``head`` is the (last seq, last hash) the store recorded apart from the
    events; without it, removing the newest events cannot be told from a
    shorter log. The walk streams, so a log of any length fits in memory.
    """
    last_seq, last_hash = 0, GENESIS
    hash_at_head: str | None = GENESIS if head is not None and head[0] == 0 else None
    for e in events:
        if _recompute(e) != e.hash:
            return ChainBreak(e.seq, "hash mismatch: the event's content was altered")
        if e.seq < 1:
            return ChainBreak(e.seq, f"invalid seq {e.seq}: the first event is 1")
        if e.seq == last_seq:
            return ChainBreak(e.seq, f"duplicate event {e.seq}")
        if e.seq <= last_seq:
            return ChainBreak(e.seq, f"out of order: event {e.seq} comes after event {last_seq}")
        if e.seq > last_seq + 1:
            return ChainBreak(e.seq, f"missing event(s) {_span(last_seq + 1, e.seq - 1)}")
        if e.prev_hash != last_hash:
            link = "the genesis hash" if last_seq == 0 else f"event {last_seq}"
            return ChainBreak(e.seq, f"prev_hash does not match {link}")
        last_seq, last_hash = e.seq, e.hash
        if head is not None and e.seq == head[0]:
            hash_at_head = e.hash
    if head is None:
        return None
    head_seq, head_hash = head
    if last_seq < head_seq:
        return ChainBreak(head_seq, f"head mismatch: events after {last_seq} were removed")
    if hash_at_head != head_hash:
        return ChainBreak(head_seq, f"head mismatch: event {head_seq} is not the recorded head")
    if last_seq > head_seq:
        return ChainBreak(
            head_seq + 1,
            f"head mismatch: event {head_seq + 1} is past the recorded head {head_seq}",
        )
    return None


def _recompute(e: AuditEvent) -> str:
    return event_hash(e.seq, e.at, e.kind, e.actor, e.workflow, e.subject, e.payload, e.prev_hash)


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}..{last}"


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"audit times must be timezone-aware (UTC), got naive {at.isoformat()}")


def _iso(at: datetime) -> str:
    """One fixed rendering: UTC, microseconds always present, ``+00:00`` offset."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _plain(value: Any) -> Any:
    """Any mapping or sequence as dicts and lists, which canonical_json accepts."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
