"""The audit log as users see it: list events, verify the chain, export its head, rotate the key.

``audit_verify`` walks the chain once in one snapshot: every digest with the keys kept
outside the database, the recorded head, optionally a head exported earlier, and then
what the chain says happened (environment moves, approvals, registrations) against the
tables, so a change made by SQL shows even where the chain itself is intact.
``AuditWatch`` runs that same verification in the background for the dashboard, whose
page must not wait for a walk that grows with the chain.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from releasegate.domain.audit import (
    GENESIS,
    ROTATED,
    AuditEvent,
    ChainBreak,
    ChainWalk,
    Head,
    Keyring,
    Replay,
    compare_state,
    verify_chain,
)
from releasegate.errors import AuditBrokenError, InputError, RefusedError
from releasegate.release.refs import actor as default_actor
from releasegate.store import audit_keys
from releasegate.store.audit import AuditRepo
from releasegate.store.engine import Store

log = logging.getLogger("releasegate.audit")


@dataclass(frozen=True)
class Verified:
    """What ``audit verify`` found: the head it walked to, and the first break if any."""

    events: int
    head: Head
    unkeyed: int
    key_ids: tuple[str, ...]
    against: Head | None
    broken: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.broken is None

    def to_dict(self) -> dict[str, Any]:
        """What ``audit verify --json`` prints."""
        return {
            "ok": self.ok,
            "events": self.events,
            "head": self.head._asdict(),
            "against": None if self.against is None else self.against._asdict(),
            "unkeyed_events": self.unkeyed,
            "key_ids": list(self.key_ids),
            "broken": None if self.broken is None else asdict(self.broken),
        }


@dataclass(frozen=True)
class HeadInfo:
    seq: int
    digest: str
    key_id: str | None
    at: str | None

    @property
    def head(self) -> Head:
        return Head(self.seq, self.digest)

    def to_dict(self) -> dict[str, Any]:
        """What ``audit head --json`` prints: the fields and the head as ``SEQ:DIGEST``."""
        return {**asdict(self), "head": str(self.head)}


@dataclass(frozen=True)
class Rotated:
    previous_key_id: str | None
    key_id: str
    seq: int
    key_file: str

    def to_dict(self) -> dict[str, Any]:
        """What ``audit rotate-key --json`` prints (the key file is named ``keys`` there)."""
        return {
            "previous_key_id": self.previous_key_id,
            "key_id": self.key_id,
            "seq": self.seq,
            "keys": self.key_file,
        }


def audit_log(
    store: Store,
    *,
    workflow: str | None = None,
    limit: int | None = None,
) -> list[AuditEvent]:
    if limit is not None and not 1 <= limit <= 2**62:  # -5 read everything; 10**20 overflowed
        raise InputError(f"--limit: expected 1 or more, got {limit}", field="--limit")
    with store.read() as conn:
        return AuditRepo(conn).events(workflow=workflow, limit=limit)


def audit_verify(store: Store, *, against: Head | None = None) -> Verified:
    """Chain, head, exported head, then the tables against what the chain says (module doc)."""
    keys = store.audit_keys() or Keyring((), f"no audit key: {audit_keys.describe(_home(store))}")
    walk = ChainWalk()
    replay = Replay()
    with store.snapshot() as conn:
        recorded = AuditRepo(conn).head()
        try:
            broken = verify_chain(
                replay.feed(AuditRepo(conn).stream()),
                head=recorded,
                keys=keys,
                against=against,
                walk=walk,
            )
        except AuditBrokenError as exc:  # an unreadable event: the walk stops there
            broken = ChainBreak(exc.seq, "its payload is not valid JSON: it was altered")
        if broken is None and recorded is None and walk.events:
            broken = ChainBreak(
                None,
                f"the head record is missing (the events read up to {walk.head.seq}): it was "
                "deleted outside releasegate, and removing the newest events could not be told",
            )
        if broken is None:
            state = AuditRepo(conn).state()
            broken = compare_state(
                replay,
                environments=state.environments,
                approvals=state.approvals,
                versions=state.versions,
                history=state.history,
                decisions=state.decisions,
                paused=state.paused,
            )
    return Verified(walk.events, walk.head, walk.unkeyed, tuple(walk.key_ids), against, broken)


def audit_head(store: Store) -> HeadInfo:
    """The recorded head, for export to write-once storage or a CI log."""
    with store.read() as conn:
        recorded = AuditRepo(conn).head()
        if recorded is None:
            if AuditRepo(conn).count():
                raise AuditBrokenError(
                    "the audit log's head record is missing: it was deleted outside releasegate",
                    hint="run `releasegate audit verify`; restore the head you exported with "
                    "`releasegate audit restore-head SEQ:DIGEST`",
                )
            return HeadInfo(0, GENESIS, None, None)
        event = AuditRepo(conn).event(recorded[0]) if recorded[0] else None
    return HeadInfo(
        recorded[0],
        recorded[1],
        event.key_id if event else None,
        event.at.isoformat() if event else None,
    )


def rotate_key(store: Store, *, who: str | None = None) -> Rotated:
    """A new key signs from here on; the event that says so is signed with the old one.

    With a key file, the new key is appended to it (the old ones stay: verifying needs
    them). With RELEASEGATE_AUDIT_KEY, the caller adds the new secret at its end first.
    """
    who = who or default_actor()
    home = _home(store)
    with store.write() as conn:
        old = AuditRepo(conn).chain_key_id()
        keys = store.audit_keys(create=True)
        assert keys is not None
        if audit_keys.key_file(home) is not None:
            audit_keys.add_key(home)
            keys = store.audit_keys()
            assert keys is not None
        elif keys.newest.key_id == old:
            audit_keys.add_key(home)  # raises, saying how to add a key to the variable
        new = keys.newest.key_id
        event = AuditRepo(conn).append(
            kind=ROTATED,
            actor=who,
            workflow=None,
            subject=new,
            payload={"new_key_id": new, "previous_key_id": old},
        )
    return Rotated(old, new, event.seq, keys.source)


def restore_head(store: Store, head: Head) -> Verified:
    """Write back a deleted head record, from a head exported earlier, once the chain agrees.

    The events must verify up to ``head`` and end there: a head that is not the last
    event would hide removed events, so it is refused.
    """
    with store.write() as conn:
        if AuditRepo(conn).head() is not None:
            raise RefusedError(
                "the audit log's head record is in place; nothing to restore",
                hint="`releasegate audit verify` checks it",
            )
        keys = store.audit_keys() or Keyring((), audit_keys.describe(_home(store)))
        walk = ChainWalk()
        broken = verify_chain(AuditRepo(conn).stream(), keys=keys, against=head, walk=walk)
        if broken is None and walk.head != head:
            broken = ChainBreak(
                walk.head.seq,
                f"the log goes on past {head.seq} to {walk.head.seq}: restore the newest "
                "head you exported, or check what was added after it",
            )
        if broken is not None:
            raise AuditBrokenError(
                f"not restored: {broken}", seq=broken.seq, hint="nothing was written"
            )
        AuditRepo(conn).set_head(head.seq, head.digest)
    return audit_verify(store)


def _home(store: Store) -> Path:
    return store.location.home


@dataclass(frozen=True)
class Watched:
    """The dashboard's view of the chain: the newest whole-chain verification that finished,
    when it finished, and how far the recorded head is past what it verified."""

    verified: Verified
    at: datetime
    head: Head
    """The recorded head when this was read."""
    running: bool
    """A verification of the whole chain is running now (in the background)."""
    error: str | None = None
    """The last background verification failed to run (not a break: the store's fault)."""

    @property
    def pending(self) -> int:
        """Events recorded after the head the verification walked to: not verified yet."""
        return max(0, self.head.seq - self.verified.head.seq)


class AuditWatch:
    """The whole chain verified in the background, for a page that must stay fast.

    ``audit_verify`` walks every event, so its time grows with the chain. ``latest`` runs it
    inline only the first time; after that it returns the newest finished verification at
    once and starts another in a background thread (one at a time) when the recorded head
    has moved past what was verified or the verification is older than ``max_age``. It
    weakens nothing: every verification is the whole ``audit verify`` (chain, keys, head,
    tables against the chain), and ``Watched`` says when it ran and how many newer events
    it has not seen yet. ``releasegate audit verify`` still verifies everything when run.
    """

    def __init__(self, store: Store, *, max_age: timedelta = timedelta(minutes=5)) -> None:
        self.store = store
        self.max_age = max_age
        self._lock = threading.Lock()
        self._first = threading.Lock()
        self._last: tuple[Verified, datetime] | None = None
        self._thread: threading.Thread | None = None
        self._error: str | None = None

    def latest(self, *, now: datetime | None = None) -> Watched:
        at = now or datetime.now(UTC)
        head = _recorded(self.store)
        if self._last is None:
            with self._first:  # the first visitors wait for one verification, not one each
                if self._last is None:
                    self._last = (audit_verify(self.store), datetime.now(UTC))
        with self._lock:
            verified, done = self._last
            stale = verified.head != head or at - done >= self.max_age
            running = self._thread is not None and self._thread.is_alive()
            if stale and not running:
                self._thread = threading.Thread(
                    target=self._verify, name="releasegate-audit-verify", daemon=True
                )
                self._thread.start()
                running = True
            return Watched(verified, done, head, running, self._error)

    def wait(self, timeout: float | None = None) -> None:
        """Until the background verification running now (if any) is done."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _verify(self) -> None:
        try:
            verified = audit_verify(self.store)
        except Exception as exc:  # the store's fault: logged and shown, the last result kept
            log.exception("audit: the background verification failed")
            with self._lock:
                self._error = f"{type(exc).__name__}: {exc}"
            return
        with self._lock:
            self._last = (verified, datetime.now(UTC))
            self._error = None


def _recorded(store: Store) -> Head:
    with store.read() as conn:
        recorded = AuditRepo(conn).head()
    return Head(*recorded) if recorded is not None else Head(0, GENESIS)
