from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from releasegate.domain.audit import (
    GENESIS,
    KEYED,
    ROTATED,
    AuditEvent,
    AuditKey,
    ChainBreak,
    ChainWalk,
    Decided,
    Head,
    Keyring,
    Replay,
    anchor_payload,
    chain_event,
    compare_state,
    event_hash,
    parse_head,
    parse_keys,
    verify_chain,
)
from releasegate.errors import InputError

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


# -- keyed chains -----------------------------------------------------------------------------

KEY = AuditKey(b"k" * 40)
NEW_KEY = AuditKey(b"n" * 40)
RING = Keyring((KEY,), "test keys")


def keyed_chain(n: int, key: AuditKey = KEY, prev: AuditEvent | None = None) -> list[AuditEvent]:
    events: list[AuditEvent] = []
    start = 1 if prev is None else prev.seq + 1
    for i in range(start, start + n):
        prev = chain_event(
            prev,
            seq=i,
            at=T0 + timedelta(minutes=i),
            kind=KINDS[i % len(KINDS)],
            actor="ana",
            workflow="support-triage",
            subject=f"v{i:03d}",
            payload={"step": i, "env": "production"},
            key=key,
        )
        events.append(prev)
    return events


def test_a_keyed_chain_verifies_only_with_its_key() -> None:
    events = keyed_chain(4)
    assert all(e.key_id == KEY.key_id for e in events)
    assert verify_chain(events, keys=RING, head=head_of(events)) is None
    brk = verify_chain(events, keys=Keyring((NEW_KEY,), "elsewhere"))
    assert brk == ChainBreak(
        1, f"signed with audit key {KEY.key_id}, which is not among the keys here (elsewhere)"
    )


def test_the_key_id_is_derived_from_the_secret() -> None:
    assert KEY.key_id == AuditKey(b"k" * 40).key_id != NEW_KEY.key_id
    assert KEY.key_id.startswith("k") and len(KEY.key_id) == 16
    assert "k" * 40 not in repr(KEY)


def test_an_unkeyed_forgery_of_a_keyed_chain_is_caught() -> None:
    events = keyed_chain(3)
    forged = rechain([dataclasses.replace(e, key_id=None) for e in events])
    assert verify_chain(forged) is None  # without keys nothing tells
    brk = verify_chain(forged, keys=RING, head=head_of(forged))
    assert brk is not None and brk.seq == 3 and "no signed event anchors them" in brk.reason
    tail = chain_event(
        events[-1],
        seq=4,
        at=T0,
        kind="env.promoted",
        actor="mallory",
        workflow="w",
        subject="x",
        payload={},
    )
    brk = verify_chain([*events, tail], keys=RING)
    assert brk is not None and brk.seq == 4 and brk.reason.startswith("not signed with")


def test_unkeyed_events_must_be_anchored_by_the_first_keyed_one() -> None:
    legacy = make_chain(3)
    anchor = chain_event(
        legacy[-1],
        seq=4,
        at=T0,
        kind=KEYED,
        actor="releasegate",
        workflow=None,
        subject=None,
        payload=anchor_payload(legacy[-1]),
        key=KEY,
    )
    events = [*legacy, anchor, *keyed_chain(2, prev=anchor)]
    walk = ChainWalk()
    assert verify_chain(events, keys=RING, head=head_of(events), walk=walk) is None
    assert (walk.events, walk.unkeyed, walk.key_ids) == (6, 3, [KEY.key_id])
    no_anchor = [*legacy, *keyed_chain(2, prev=legacy[-1])]
    brk = verify_chain(no_anchor, keys=RING)
    assert brk is not None and brk.seq == 4 and "does not anchor the 3 unkeyed" in brk.reason


def rotation(prev: AuditEvent, old: AuditKey, new: AuditKey) -> AuditEvent:
    return chain_event(
        prev,
        seq=prev.seq + 1,
        at=T0,
        kind=ROTATED,
        actor="ana",
        workflow=None,
        subject=new.key_id,
        payload={"new_key_id": new.key_id, "previous_key_id": old.key_id},
        key=old,
    )


def test_a_rotation_signed_by_the_old_key_hands_over_to_the_new() -> None:
    first = keyed_chain(2)
    rot = rotation(first[-1], KEY, NEW_KEY)
    after = keyed_chain(2, NEW_KEY, prev=rot)
    both = Keyring((KEY, NEW_KEY), "file")
    walk = ChainWalk()
    assert verify_chain([*first, rot, *after], keys=both, walk=walk) is None
    assert walk.key_ids == [KEY.key_id, NEW_KEY.key_id]
    # a new key without a rotation naming it, or the old key after the rotation: both break
    sneaked = keyed_chain(2, NEW_KEY, prev=first[-1])
    brk = verify_chain([*first, *sneaked], keys=both)
    assert brk is not None and brk.seq == 3 and "no rotation names it" in brk.reason
    stale = keyed_chain(1, KEY, prev=rot)
    brk = verify_chain([*first, rot, *stale], keys=both)
    assert brk is not None and brk.seq == 4 and "no rotation names it" in brk.reason


def test_against_an_exported_head() -> None:
    events = keyed_chain(5)
    exported = Head(3, events[2].hash)
    assert verify_chain(events, keys=RING, against=exported) is None
    brk = verify_chain(events[:2], keys=RING, against=exported)
    assert brk is not None and brk.seq == 3 and "is gone" in brk.reason
    other = keyed_chain(5, NEW_KEY)
    brk = verify_chain(other, keys=Keyring((NEW_KEY,), "x"), against=exported)
    assert brk is not None and brk.seq == 3 and "was rewritten" in brk.reason
    assert parse_head(f" 3:{events[2].hash}\n") == exported
    assert str(exported) == f"3:{events[2].hash}"
    with pytest.raises(InputError, match="expected SEQ:DIGEST"):
        parse_head("3:abc")


def test_keys_parse_from_lines_or_commas_newest_last() -> None:
    ring = parse_keys(f"# comment\n{'a' * 32}  # first\n\n{'b' * 40},{'c' * 33}\n", "f")
    assert [k.secret for k in ring.keys] == [b"a" * 32, b"b" * 40, b"c" * 33]
    assert ring.newest.secret == b"c" * 33 and ring.get(ring.ids[0]) == ring.keys[0]
    with pytest.raises(InputError, match="f:2: an audit key must be at least 32"):
        parse_keys("# c\nshort\n", "f")
    with pytest.raises(InputError, match="holds no audit key"):
        parse_keys("# nothing\n", "f")


def test_replay_compares_environments_approvals_and_versions() -> None:
    kw: dict[str, Any] = dict(at=T0, actor="ana", workflow="w")
    e1 = chain_event(None, seq=1, kind="version.registered", subject="v1", payload={}, **kw)
    e2 = chain_event(e1, seq=2, kind="env.promoted", subject="v1", payload={"env": "prod"}, **kw)
    e3 = chain_event(
        e2,
        seq=3,
        kind="approval.granted",
        subject="v1",
        payload={"env": "prod", "role": "approver"},
        at=T0,
        actor="bob",
        workflow="w",
    )
    replay = Replay()
    list(replay.feed([e1, e2, e3]))
    same = dict(environments={("w", "prod"): "v1"}, approvals={("v1", "prod", "bob", "approver")})
    assert compare_state(replay, versions={"v1"}, **same) is None  # type: ignore[arg-type]
    moved = compare_state(
        replay, environments={("w", "prod"): "v2"}, approvals=same["approvals"], versions={"v1"}
    )
    assert moved is not None and moved.seq is None and "w@prod runs v2" in moved.reason
    extra = compare_state(
        replay,
        environments=same["environments"],  # type: ignore[arg-type]
        approvals={("v1", "prod", "bob", "approver"), ("v1", "prod", "eve", "approver")},
        versions={"v1"},
    )
    assert (
        extra is not None
        and "eve's approval of v1 for prod (as approver) is not in" in extra.reason
    )
    wiped = compare_state(Replay(), versions={"v1"}, **same)  # type: ignore[arg-type]
    assert wiped is not None and "the log was wiped" in wiped.reason


@given(st.data(), st.integers(1, 6), st.sampled_from([*FIELDS, "key_id"]))
def test_altering_any_field_of_a_keyed_chain_is_detected(
    data: st.DataObject, n: int, field: str
) -> None:
    events = keyed_chain(n)
    i = data.draw(st.integers(0, n - 1))
    if field == "key_id":
        events[i] = dataclasses.replace(events[i], key_id=data.draw(st.sampled_from([None, "k0"])))
    else:
        events[i] = altered(events[i], field, data)
    assert verify_chain(events, keys=RING, head=head_of(keyed_chain(n))) is not None


def test_replay_compares_history_and_gate_decisions() -> None:
    kw: dict[str, Any] = dict(at=T0, actor="ana", workflow="w")
    e1 = chain_event(
        None,
        seq=1,
        kind="gate.decided",
        subject="v1",
        payload={
            "env": "prod",
            "decision_id": "d1",
            "verdict": "pass",
            "suite_id": "s",
            "policy_id": "p",
            "baseline_id": None,
            "checks_passed": True,
        },
        **kw,
    )
    e2 = chain_event(e1, seq=2, kind="env.promoted", subject="v1", payload={"env": "prod"}, **kw)
    replay = Replay()
    list(replay.feed([e1, e2]))
    base: dict[str, Any] = dict(environments={("w", "prod"): "v1"}, approvals=set(), versions=set())
    ok = compare_state(
        replay,
        history={("w", "prod"): [("promote", "v1")]},
        decisions={"d1": Decided("v1", "prod", "pass", "s", "p", None, True)},
        **base,
    )
    assert ok is None
    forged = compare_state(
        replay, history={("w", "prod"): [("promote", "v0"), ("promote", "v1")]}, **base
    )
    assert forged is not None and "the history of w@prod (promote v0, promote v1)" in forged.reason
    sneaked = compare_state(
        replay,
        decisions={
            "d1": Decided("v1", "prod", "pass", "s", "p", None, True),
            "d2": Decided("v9", "prod", "pass", "s", "p", None, True),
        },
        **base,
    )
    assert sneaked is not None
    assert sneaked.reason.startswith("gate decision d2 (pass for v9 in prod) is not in the audit")
    flipped = compare_state(
        replay, decisions={"d1": Decided("v1", "prod", "pass", "s", "p", None, False)}, **base
    )
    assert flipped is not None and "differs from its event" in flipped.reason
