"""The audit log as a keyed hash chain: editing, dropping or re-signing events is detectable.

Each event's digest is HMAC-SHA256(key, prev_digest || canonical JSON of every other
field, its ``key_id`` included), so changing one event breaks it and every link after
it, a gap in ``seq`` shows a deleted event, and someone who can write the database
but does not hold the key (kept outside it, see ``store/audit_keys.py``) cannot
recompute a chain that verifies. Events written before the chain was keyed have
``key_id`` None and a plain sha256 digest; they may only open the log, and the first
keyed event (``audit.keyed``) anchors them by naming their count and last digest.
A key is replaced by an ``audit.key_rotated`` event signed with the old key that
names the new one. Deleting the newest events leaves a shorter, valid chain: the store
records the head, and ``verify_chain(..., against=...)`` checks a head exported before.
Times are hashed as UTC with microseconds, so the same instant read back from any
database in any offset hashes the same.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import Any, NamedTuple

from releasegate.domain.identity import canonical_json, content_hash
from releasegate.errors import InputError

GENESIS = "0" * 64
MOVES = {  # event -> history action
    "env.promoted": "promote",
    "env.rolled_back": "rollback",
    "env.rehearsed": "rehearsal",  # a rehearsal deployed a variant its gate stopped
}
KEYED = "audit.keyed"  # the first keyed event after unkeyed ones; anchors them
ROTATED = "audit.key_rotated"  # signed with the old key, names the new one
MIN_SECRET = 32  # characters


@dataclass(frozen=True)
class AuditEvent:
    """One entry of the log. ``hash`` is its digest (see the module docstring)."""

    seq: int
    at: datetime
    kind: str
    actor: str
    workflow: str | None
    subject: str | None
    payload: Mapping[str, Any]
    prev_hash: str
    hash: str
    key_id: str | None = None

    def __post_init__(self) -> None:
        _require_aware(self.at)

    def to_dict(self) -> dict[str, Any]:
        """``audit log --json``'s record (and ``GET /v1/audit``'s): every field, ``at`` ISO."""
        return {**asdict(self), "at": self.at.isoformat()}


@dataclass(frozen=True)
class ChainBreak:
    """The first problem found, and the seq of the event where it shows (None: no one event)."""

    seq: int | None
    reason: str

    def __str__(self) -> str:
        return self.reason if self.seq is None else f"event {self.seq}: {self.reason}"


class Head(NamedTuple):
    """A point of the chain: its last seq and that event's digest (``0:GENESIS`` when empty)."""

    seq: int
    digest: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.digest}"


def parse_head(text: str, *, field: str = "--against") -> Head:
    """``SEQ:DIGEST`` as ``audit head`` prints it."""
    m = re.fullmatch(r"\s*(\d+):([0-9a-f]{64})\s*", text)
    if m is None:
        raise InputError(
            f"expected SEQ:DIGEST (a 64-hex digest), got '{text[:80]}'",
            field=field,
            hint="use what `releasegate audit head` printed, e.g. 42:3f9a...",
        )
    return Head(int(m.group(1)), m.group(2))


# -- keys -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditKey:
    """One secret; its id is derived from it, so an id can never name the wrong secret."""

    secret: bytes = field(repr=False)

    @cached_property
    def key_id(self) -> str:
        return key_id_of(self.secret)


def key_id_of(secret: bytes) -> str:
    return "k" + hashlib.sha256(b"releasegate audit key id\0" + secret).hexdigest()[:15]


@dataclass(frozen=True)
class Keyring:
    """Every key that may have signed the chain, oldest first; the newest signs after a rotation."""

    keys: tuple[AuditKey, ...]
    source: str

    def get(self, key_id: str) -> AuditKey | None:
        return self._by_id.get(key_id)

    @cached_property
    def _by_id(self) -> dict[str, AuditKey]:
        return {k.key_id: k for k in self.keys}

    @property
    def newest(self) -> AuditKey:
        return self.keys[-1]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(k.key_id for k in self.keys)


def parse_keys(text: str, source: str) -> Keyring:
    """Secrets one per line (or separated by commas), ``#`` comments; newest last."""
    keys: list[AuditKey] = []
    for n, line in enumerate(text.splitlines(), start=1):
        for token in line.split("#", 1)[0].replace(",", " ").split():
            if len(token) < MIN_SECRET:
                raise InputError(
                    f"an audit key must be at least {MIN_SECRET} characters, got {len(token)}",
                    source=source,
                    line=n,
                    hint="make one with `releasegate audit rotate-key`, "
                    "or: python -c 'import secrets; print(secrets.token_hex(32))'",
                )
            key = AuditKey(token.encode("utf-8"))
            if key not in keys:
                keys.append(key)
    if not keys:
        raise InputError("holds no audit key", source=source, hint="run `releasegate init`")
    return Keyring(tuple(keys), source)


# -- digests --------------------------------------------------------------------------------


def _body(e: AuditEvent) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "at": _iso(e.at),
        "kind": e.kind,
        "actor": e.actor,
        "workflow": e.workflow,
        "subject": e.subject,
        "payload": _plain(e.payload),
    }


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
    """The unkeyed (legacy) digest: sha256 over the canonical JSON of every other field."""
    return _unkeyed_hash(
        AuditEvent(seq, at, kind, actor, workflow, subject, payload, prev_hash, "")
    )


def _unkeyed_hash(e: AuditEvent) -> str:
    return content_hash({**_body(e), "prev_hash": e.prev_hash})


def keyed_hash(key: AuditKey, e: AuditEvent) -> str:
    """HMAC-SHA256(key, prev_hash || canonical JSON of every other field and the key id);
    ``e``'s own ``hash`` and ``key_id`` are not read."""
    body = {**_body(e), "key_id": key.key_id}
    message = e.prev_hash.encode("ascii") + canonical_json(body).encode("utf-8")
    return hmac.digest(key.secret, message, "sha256").hex()


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
    key: AuditKey | None = None,
) -> AuditEvent:
    """The event that follows ``prev`` (None for the first), signed with ``key`` and linked.

    Without a key the digest is the legacy unkeyed one (kept for tests of old stores).
    The payload is stored as the plain JSON copy that was hashed, so the event can be
    serialized as is, and later edits to the caller's dict cannot leak in.
    """
    expected = 1 if prev is None else prev.seq + 1
    if seq != expected:
        raise ValueError(f"audit event seq must be {expected}, got {seq}")
    _require_aware(at)
    at = at.astimezone(UTC)
    stored: dict[str, Any] = json.loads(canonical_json(_plain(payload)))
    prev_hash = GENESIS if prev is None else prev.hash
    unsigned = AuditEvent(seq, at, kind, actor, workflow, subject, stored, prev_hash, "")
    if key is None:
        return replace(unsigned, hash=_unkeyed_hash(unsigned))
    return replace(unsigned, hash=keyed_hash(key, unsigned), key_id=key.key_id)


def anchor_payload(prev: AuditEvent) -> dict[str, Any]:
    """What the first keyed event after unkeyed ones says about them."""
    return {"unkeyed_events": prev.seq, "unkeyed_head": prev.hash}


# -- verifying ------------------------------------------------------------------------------


@dataclass
class ChainWalk:
    """What a walk saw besides the first break: the head, unkeyed events, keys used."""

    events: int = 0
    head: Head = Head(0, GENESIS)
    unkeyed: int = 0
    key_ids: list[str] = field(default_factory=list)


def verify_chain(
    events: Iterable[AuditEvent],
    *,
    head: tuple[int, str] | None = None,
    keys: Keyring | None = None,
    against: Head | None = None,
    walk: ChainWalk | None = None,
) -> ChainBreak | None:
    """The first break in ``events`` (given in seq order, as read), or None if intact.

    ``head`` is the (last seq, last digest) the store recorded apart from the events;
    without it, removing the newest events cannot be told from a shorter log.
    ``keys`` verifies keyed events; given (as the store's verify always does), unkeyed
    events must be followed by the keyed anchor, so a chain re-hashed without the key
    as all-unkeyed fails too. ``against`` is a head exported earlier: that event must
    still be there with that digest. The walk streams, so a log of any length fits.
    """
    w = walk if walk is not None else ChainWalk()
    last_seq, last_hash = 0, GENESIS
    hash_at_head: str | None = GENESIS if head is not None and head[0] == 0 else None
    hash_at_against: str | None = GENESIS if against is not None and against.seq == 0 else None
    current_key: str | None = None
    for e in events:
        brk = _check_digest(e, keys, current_key)
        if brk is not None:
            return brk
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
        is_first_keyed = e.key_id is not None and current_key is None and last_seq > 0
        anchor = {"unkeyed_events": last_seq, "unkeyed_head": last_hash} if is_first_keyed else {}
        if is_first_keyed and (e.kind != KEYED or e.payload != anchor):
            return ChainBreak(
                e.seq,
                f"the first signed event does not anchor the {last_seq} unkeyed event(s) "
                "before it: they were added or rewritten without the audit key",
            )
        if e.key_id is not None:
            current_key = e.key_id
            if e.kind == ROTATED:
                current_key = str(e.payload.get("new_key_id"))
            if current_key not in w.key_ids:
                w.key_ids.append(current_key)
        else:
            w.unkeyed += 1
        last_seq, last_hash = e.seq, e.hash
        w.events += 1
        w.head = Head(last_seq, last_hash)
        if head is not None and e.seq == head[0]:
            hash_at_head = e.hash
        if against is not None and e.seq == against.seq:
            hash_at_against = e.hash
    if keys is not None and last_seq > 0 and current_key is None:
        return ChainBreak(
            last_seq,
            f"events 1..{last_seq} are not signed with an audit key and no signed event "
            "anchors them: the chain was rewritten without the key",
        )
    if against is not None:
        brk = _check_against(against, hash_at_against, last_seq)
        if brk is not None:
            return brk
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


def _check_digest(
    e: AuditEvent, keys: Keyring | None, current_key: str | None
) -> ChainBreak | None:
    altered = ChainBreak(e.seq, "hash mismatch: the event's content was altered")
    if e.key_id is None:
        if current_key is not None:
            return ChainBreak(
                e.seq,
                "not signed with the audit key, though the events before it are: "
                "it was added or rewritten without the key",
            )
        return None if _unkeyed_hash(e) == e.hash else altered
    key = keys.get(e.key_id) if keys is not None else None
    if key is None:
        where = f" ({keys.source})" if keys is not None else ""
        return ChainBreak(
            e.seq, f"signed with audit key {e.key_id}, which is not among the keys here{where}"
        )
    if current_key is not None and e.key_id != current_key:
        return ChainBreak(
            e.seq,
            f"signed with key {e.key_id}, but the chain's key is {current_key} "
            "and no rotation names it",
        )
    if keyed_hash(key, e) != e.hash:
        return ChainBreak(
            e.seq, "hash mismatch: the event's content was altered (or re-signed without the key)"
        )
    return None


def _check_against(against: Head, found: str | None, last_seq: int) -> ChainBreak | None:
    if against.seq > last_seq:
        return ChainBreak(
            against.seq,
            f"the exported head {against.seq} is gone: the log ends at {last_seq}, "
            "so events were removed (truncated or wiped)",
        )
    if found != against.digest:
        return ChainBreak(
            against.seq,
            f"event {against.seq} is not the exported head ({against.digest[:12]}): "
            "the log up to it was rewritten",
        )
    return None


# -- what the chain says happened -----------------------------------------------------------


class Decided(NamedTuple):
    """What a promotion relies on in a gate decision (checks_passed: None in older events)."""

    version_id: str
    env: str
    verdict: str
    suite_id: str
    policy_id: str
    baseline_id: str | None
    checks_passed: bool | None


@dataclass
class Replay:
    """Environments (and their history), approvals, gate decisions and versions as the
    chain's events left them."""

    environments: dict[tuple[str, str], str] = field(default_factory=dict)
    history: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict)
    approvals: set[tuple[str, str, str, str]] = field(default_factory=set)  # version env who role
    decisions: dict[str, Decided] = field(default_factory=dict)
    versions: set[str] = field(default_factory=set)
    paused: dict[tuple[str, str], str] = field(default_factory=dict)  # -> the pause's reason

    def feed(self, events: Iterable[AuditEvent]) -> Iterator[AuditEvent]:
        """Pass ``events`` through, replaying each (so one read serves verify and replay)."""
        for e in events:
            self.apply(e)
            yield e

    def apply(self, e: AuditEvent) -> None:
        env = e.payload.get("env") if isinstance(e.payload, Mapping) else None
        if e.kind in MOVES and e.workflow and e.subject and env:
            self.environments[(e.workflow, str(env))] = e.subject
            self.history.setdefault((e.workflow, str(env)), []).append((MOVES[e.kind], e.subject))
        elif (decided := decided_of(e)) is not None:
            self.decisions[str(e.payload.get("decision_id"))] = decided
        elif e.kind == "approval.granted" and e.subject and env:
            self.approvals.add((e.subject, str(env), e.actor, str(e.payload.get("role"))))
        elif e.kind == "version.registered" and e.subject:
            self.versions.add(e.subject)
        elif e.kind == "env.paused" and e.workflow and env:
            self.paused[(e.workflow, str(env))] = str(e.payload.get("reason"))
        elif e.kind == "env.resumed" and e.workflow and env:
            self.paused.pop((e.workflow, str(env)), None)


def decided_of(e: AuditEvent) -> Decided | None:
    """What a ``gate.decided`` event says was decided (None for any other event)."""
    env = e.payload.get("env") if isinstance(e.payload, Mapping) else None
    if e.kind != "gate.decided" or not e.subject or not env:
        return None
    p = e.payload
    passed = p.get("checks_passed")
    return Decided(
        e.subject,
        str(env),
        str(p.get("verdict")),
        str(p.get("suite_id") or ""),
        str(p.get("policy_id")),
        p.get("baseline_id"),
        None if passed is None else bool(passed),
    )


class Vouched(StrEnum):
    """Whether a gate decision's own audit event vouches for it (``vouch``)."""

    YES = "yes"
    MISSING = "missing"  # no gate.decided event names the decision
    DIFFERS = "differs"  # the event records another verdict, suite, policy or baseline
    UNSIGNED = "unsigned"  # the event is not signed with an audit key here (or was altered)


def vouch(event: AuditEvent | None, decision: Decided, keys: Keyring | None) -> Vouched:
    """Does ``event`` (the decision's ``gate.decided``) prove ``decision`` was written by
    releasegate? Its digest must verify with a key here, so nobody without the key can
    forge one; the rest of the chain is ``verify_chain``'s business."""
    said = None if event is None else decided_of(event)
    if event is None or said is None:
        return Vouched.MISSING
    key = keys.get(event.key_id) if keys is not None and event.key_id is not None else None
    if key is None or not hmac.compare_digest(keyed_hash(key, event), event.hash):
        return Vouched.UNSIGNED
    if said.checks_passed is None:
        decision = decision._replace(checks_passed=None)  # an older event did not record it
    return Vouched.YES if said == decision else Vouched.DIFFERS


def compare_state(
    replay: Replay,
    *,
    environments: Mapping[tuple[str, str], str],
    approvals: Iterable[tuple[str, str, str, str]],
    versions: Iterable[str],
    history: Mapping[tuple[str, str], list[tuple[str, str]]] | None = None,
    decisions: Mapping[str, Decided] | None = None,
    paused: Mapping[tuple[str, str], str] | None = None,
) -> ChainBreak | None:
    """The first difference between the tables and what the chain says, or None.

    Environments, approvals, versions, environment history and pauses must match both ways; a
    gate decision must have its event (events may outlive decisions, never the reverse).
    Each comparison yields its differences in words, lazily, in this order.
    """
    given = set(approvals)
    differences: tuple[Iterable[str], ...] = (
        _environment_differences(replay.environments, environments),
        (
            f"{who}'s approval of {vid[:12]} for {env} (as {role}) is not in the audit log: "
            "it was written or changed outside releasegate, or the log was wiped"
            for vid, env, who, role in sorted(given - replay.approvals)
        ),
        (
            f"the audit log records {who}'s approval of {vid[:12]} for {env} (as {role}), "
            "but that approval is gone: it was deleted or changed outside releasegate"
            for vid, env, who, role in sorted(replay.approvals - given)
        ),
        (
            f"version {vid[:12]} is registered, but its registration is not in the audit log: "
            "it was added outside releasegate, or the log was wiped"
            for vid in sorted(set(versions) - replay.versions)
        ),
        (
            f"the history of {wf}@{env} ({_moves(rows)}) is not what the audit log "
            f"records ({_moves(said)}): it was edited outside releasegate"
            for (wf, env), rows in sorted((history or {}).items())
            if rows != (said := replay.history.get((wf, env), []))
        ),
        _decision_differences(replay.decisions, decisions or {}),
        () if paused is None else _pause_differences(replay.paused, paused),
    )
    for found in differences:
        for message in found:
            return ChainBreak(None, message)
    return None


def _pause_differences(
    said: Mapping[tuple[str, str], str], tables: Mapping[tuple[str, str], str]
) -> Iterator[str]:
    for wf, env in sorted(set(said) | set(tables)):
        reason, recorded = tables.get((wf, env)), said.get((wf, env))
        if reason == recorded:
            continue
        if recorded is None:
            yield (
                f"{wf}@{env} is paused ({reason}), but the audit log records no such pause: "
                "it was set outside releasegate, or the log was wiped"
            )
        elif reason is None:
            yield (
                f"the audit log records {wf}@{env} paused ({recorded}), but it is not: the "
                "pause was lifted outside releasegate (resume with `releasegate resume`)"
            )
        else:
            yield (
                f"{wf}@{env} is paused ({reason}), but the audit log records the reason "
                f"({recorded}): it was changed outside releasegate"
            )


def _environment_differences(
    said: Mapping[tuple[str, str], str], tables: Mapping[tuple[str, str], str]
) -> Iterator[str]:
    for (wf, env), vid in sorted(tables.items()):
        moved_to = said.get((wf, env))
        if moved_to is None:
            yield (
                f"{wf}@{env} runs {vid[:12]}, but no promotion or rollback in the audit log "
                "put anything there: it was set outside releasegate, or the log was wiped"
            )
        elif moved_to != vid:
            yield (
                f"{wf}@{env} runs {vid[:12]}, but the audit log last moved it to "
                f"{moved_to[:12]}: it was moved outside releasegate"
            )
    for (wf, env), moved_to in sorted(said.items()):
        if (wf, env) not in tables:
            yield (
                f"the audit log moved {wf}@{env} to {moved_to[:12]}, but nothing runs there: "
                "the environment was removed outside releasegate"
            )


def _decision_differences(
    said: Mapping[str, Decided], tables: Mapping[str, Decided]
) -> Iterator[str]:
    for decision_id, row in sorted(tables.items()):
        event = said.get(decision_id)
        if event is not None and event.checks_passed is None:
            row = row._replace(checks_passed=None)  # an older event did not record it
        if event != row:
            what = "is not in the audit log" if event is None else "differs from its event"
            yield (
                f"gate decision {decision_id} ({row.verdict} for {row.version_id[:12]} in "
                f"{row.env}) {what}: it was written outside releasegate"
            )


def _moves(rows: list[tuple[str, str]]) -> str:
    shown = ", ".join(f"{action} {vid[:12]}" for action, vid in rows[-3:])
    return ("..., " if len(rows) > 3 else "") + shown if rows else "none"


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
