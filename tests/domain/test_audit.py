from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from releasegate.domain.audit import (
    GENESIS,
    AuditEvent,
    ChainBreak,
    chain_event,
    event_hash,
    verify_chain,
)

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
KINDS = ["version.registered", "eval.completed", "gate.decided", "approval.granted"]


def make_chain(n: int) -> list[AuditEvent]:
    events: list[AuditEvent] = []
    prev: AuditEvent | None = None
    for i in range(1, n + 1):
        prev = chain_event(
            prev,
            seq=i,
            at=T0 + timedelta(minutes=i),
            kind=KINDS[i % len(KINDS)],
            actor="ana" if i % 2 else "ci",
            workflow="support-triage" if i % 3 else None,
            subject=f"v{i:03d}",
            payload={"step": i, "score": 0.5 + i / 100, "tags": ["a", "b"]},
        )
        events.append(prev)
    return events


def head_of(events: list[AuditEvent]) -> tuple[int, str]:
    return (events[-1].seq, events[-1].hash) if events else (0, GENESIS)


def rechain(events: list[AuditEvent]) -> list[AuditEvent]:
    """What a careful forger does: renumber and rehash everything."""
    out: list[AuditEvent] = []
    prev: AuditEvent | None = None
    for i, e in enumerate(events, start=1):
        prev = chain_event(
            prev,
            seq=i,
            at=e.at,
            kind=e.kind,
            actor=e.actor,
            workflow=e.workflow,
            subject=e.subject,
            payload=e.payload,
        )
        out.append(prev)
    return out


# -- building -------------------------------------------------------------------------------


def test_an_intact_chain_verifies() -> None:
    events = make_chain(6)
    assert verify_chain(events) is None
    assert verify_chain(events, head=head_of(events)) is None
    assert events[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:], strict=False))


def test_an_empty_chain_verifies() -> None:
    assert verify_chain([]) is None
    assert verify_chain([], head=(0, GENESIS)) is None


def test_the_hash_covers_every_field_and_is_stable() -> None:
    [e] = make_chain(1)
    again = event_hash(1, e.at, e.kind, e.actor, e.workflow, e.subject, e.payload, GENESIS)
    assert again == e.hash and len(e.hash) == 64
    assert event_hash(2, e.at, e.kind, e.actor, e.workflow, e.subject, e.payload, GENESIS) != (
        e.hash
    )


def test_the_same_instant_in_another_offset_hashes_the_same() -> None:
    cet = timezone(timedelta(hours=1))
    args: tuple[Any, ...] = ("k", "a", None, None, {"x": 1}, GENESIS)
    assert event_hash(1, T0, *args) == event_hash(1, T0.astimezone(cet), *args)


def test_chain_event_stores_utc_and_a_detached_payload() -> None:
    payload: dict[str, Any] = {"nested": {"n": 1.0}, "items": (1, 2)}
    e = chain_event(
        None,
        seq=1,
        at=T0.astimezone(timezone(timedelta(hours=-5))),
        kind="policy.changed",
        actor="ana",
        workflow="support-triage",
        subject=None,
        payload=payload,
    )
    payload["nested"]["n"] = 2
    assert e.at.utcoffset() == timedelta(0) and e.at == T0
    assert e.payload == {"nested": {"n": 1}, "items": [1, 2]}
    assert verify_chain([e]) is None


def test_seq_must_follow_the_previous_event() -> None:
    kw: dict[str, Any] = dict(at=T0, kind="k", actor="a", workflow=None, subject=None, payload={})
    with pytest.raises(ValueError, match="must be 1"):
        chain_event(None, seq=2, **kw)
    first = chain_event(None, seq=1, **kw)
    for bad in (1, 3):
        with pytest.raises(ValueError, match="must be 2"):
            chain_event(first, seq=bad, **kw)


def test_naive_times_are_rejected() -> None:
    naive = datetime(2025, 3, 1, 9, 30)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="timezone-aware"):
        chain_event(
            None, seq=1, at=naive, kind="k", actor="a", workflow=None, subject=None, payload={}
        )
    with pytest.raises(ValueError, match="timezone-aware"):
        event_hash(1, naive, "k", "a", None, None, {}, GENESIS)
    [e] = make_chain(1)
    with pytest.raises(ValueError, match="timezone-aware"):
        dataclasses.replace(e, at=naive)


# -- tampering: examples ----------------------------------------------------------------------


def test_altered_payload_names_the_event() -> None:
    events = make_chain(5)
    events[2] = dataclasses.replace(events[2], payload={"step": 3, "score": 1.0})
    assert verify_chain(events) == ChainBreak(3, "hash mismatch: the event's content was altered")


def test_deleted_events_name_the_gap() -> None:
    events = make_chain(8)
    del events[3:6]
    assert verify_chain(events) == ChainBreak(7, "missing event(s) 4..6")
    assert verify_chain(make_chain(3)[1:]) == ChainBreak(2, "missing event(s) 1")


def test_deleting_the_newest_events_is_caught_by_the_head() -> None:
    events = make_chain(5)
    head = head_of(events)
    assert verify_chain(events[:3]) is None  # without a head it cannot be told
    assert verify_chain(events[:3], head=head) == ChainBreak(
        5, "head mismatch: events after 3 were removed"
    )
    assert verify_chain([], head=head) == ChainBreak(
        5, "head mismatch: events after 0 were removed"
    )


def test_events_past_the_recorded_head_are_reported() -> None:
    events = make_chain(5)
    brk = verify_chain(events, head=head_of(events[:4]))
    assert brk is not None and brk.seq == 5 and brk.reason.startswith("head mismatch")


def test_a_rehashed_event_breaks_the_next_link() -> None:
    events = make_chain(4)
    e = events[1]
    forged = dataclasses.replace(e, actor="mallory")
    forged = dataclasses.replace(
        forged,
        hash=event_hash(
            e.seq, e.at, e.kind, "mallory", e.workflow, e.subject, e.payload, e.prev_hash
        ),
    )
    events[1] = forged
    assert verify_chain(events) == ChainBreak(3, "prev_hash does not match event 2")


def test_reordering_is_detected() -> None:
    events = make_chain(5)
    swapped = [events[0], events[2], events[1], events[3], events[4]]
    # The walk streams in the order given: 3 shows up where 2 belongs.
    assert verify_chain(swapped) == ChainBreak(3, "missing event(s) 2")
    backwards = [events[0], events[1], events[0]]
    assert verify_chain(backwards) == ChainBreak(1, "out of order: event 1 comes after event 2")

    # Contents swapped but seq numbers kept in place: the hashes cover seq.
    relabelled = list(events)
    relabelled[1] = dataclasses.replace(events[2], seq=2)
    relabelled[2] = dataclasses.replace(events[1], seq=3)
    brk = verify_chain(relabelled)
    assert brk == ChainBreak(2, "hash mismatch: the event's content was altered")

    # A forger who rehashes the whole reordered log is only caught by the head.
    forged = rechain(swapped)
    assert verify_chain(forged) is None
    assert verify_chain(forged, head=head_of(events)) == ChainBreak(
        5, "head mismatch: event 5 is not the recorded head"
    )


def test_duplicate_event_is_detected() -> None:
    events = make_chain(3)
    assert verify_chain([*events, events[2]]) == ChainBreak(3, "duplicate event 3")


def test_str_of_a_break_names_the_event() -> None:
    assert str(ChainBreak(4, "missing event(s) 3")) == "event 4: missing event(s) 3"


# -- tampering: properties --------------------------------------------------------------------

FIELDS = ["seq", "at", "kind", "actor", "workflow", "subject", "payload", "prev_hash", "hash"]


def altered(e: AuditEvent, field: str, data: st.DataObject) -> AuditEvent:
    old = getattr(e, field)
    new: Any
    if field == "seq":
        new = data.draw(st.integers(-3, 50).filter(lambda v: v != old))
    elif field == "at":
        delta = data.draw(st.integers(-(10**9), 10**9).filter(bool))
        new = old + timedelta(microseconds=delta)
    elif field in ("kind", "actor"):
        new = data.draw(st.text(max_size=12).filter(lambda v: v != old))
    elif field in ("workflow", "subject"):
        new = data.draw((st.none() | st.text(max_size=12)).filter(lambda v: v != old))
    elif field == "payload":
        key = data.draw(st.sampled_from(["step", "score", "tags", "extra"]))
        value = data.draw(st.integers() | st.text(max_size=5) | st.none())
        new = {**old, key: value}
        if new == old:
            new = {**old, "extra": "x"}
    else:  # prev_hash, hash
        new = data.draw(st.text("0123456789abcdef", min_size=64, max_size=64))
        if new == old:
            new = ("1" if old[0] == "0" else "0") + old[1:]
    return dataclasses.replace(e, **{field: new})


@given(st.data(), st.integers(1, 7), st.sampled_from(FIELDS))
def test_altering_any_field_of_any_event_is_detected(
    data: st.DataObject, n: int, field: str
) -> None:
    events = make_chain(n)
    i = data.draw(st.integers(0, n - 1))
    events[i] = altered(events[i], field, data)
    head = head_of(make_chain(n))
    for h in (None, head):
        brk = verify_chain(events, head=h)
        assert brk is not None
        assert brk.seq == events[i].seq  # the event as it now reads
        assert brk.reason == "hash mismatch: the event's content was altered"


@given(st.integers(1, 7), st.data())
def test_deleting_any_event_is_detected(n: int, data: st.DataObject) -> None:
    events = make_chain(n)
    head = head_of(events)
    i = data.draw(st.integers(0, n - 1))
    deleted = events.pop(i)
    brk = verify_chain(events, head=head)
    assert brk is not None
    if i < len(events):  # a gap: named by the first event after it
        assert brk == ChainBreak(deleted.seq + 1, f"missing event(s) {deleted.seq}")
    else:  # the newest: named by the head
        assert brk == ChainBreak(head[0], f"head mismatch: events after {n - 1} were removed")


@given(st.integers(2, 7), st.data())
def test_any_reordering_is_detected(n: int, data: st.DataObject) -> None:
    events = make_chain(n)
    order = data.draw(st.permutations(range(n)).filter(lambda p: list(p) != sorted(p)))
    shuffled = [events[j] for j in order]
    assert verify_chain(shuffled) is not None
    assert verify_chain(rechain(shuffled), head=head_of(events)) is not None
