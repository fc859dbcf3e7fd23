"""The dashboard's audit verification in the background: the first look verifies the whole
chain at once; later looks answer at once with the newest finished verification, say how
many newer events it has not seen, and a verification started behind them catches both
new events and a tampered old one, as ``audit verify`` does."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from releasegate.release.audit import AuditWatch, audit_verify
from releasegate.release.register import register
from releasegate.store.engine import Store
from tests.helpers import Project


def test_new_events_are_verified_behind_the_page(store: Store, tmp_path: Path) -> None:
    project = Project(root=tmp_path)
    register(store, project.workflow("v1"), reason="honest", who="alice")
    watch = AuditWatch(store)
    first = watch.latest()
    assert first.verified.ok and first.pending == 0 and not first.running
    assert first.verified.head == audit_verify(store).head

    register(store, project.workflow("v2", temperature=0.7), reason="honest too", who="alice")
    seen = watch.latest()  # at once: the last result, and how far the head moved past it
    assert seen.verified == first.verified and seen.pending >= 1 and seen.running
    watch.wait()
    after = watch.latest()
    assert after.verified.ok and after.pending == 0
    assert after.verified.head == audit_verify(store).head


def test_a_tampered_old_event_is_found_at_the_next_verification(
    store: Store, tmp_path: Path
) -> None:
    project = Project(root=tmp_path)
    register(store, project.workflow("v1"), reason="honest", who="alice")
    watch = AuditWatch(store, max_age=timedelta(0))  # every look starts another
    assert watch.latest().verified.ok
    watch.wait()
    with store.write() as conn:
        conn.execute(
            sa.text(
                "UPDATE audit_events SET payload_json = replace(payload_json, 'honest', "
                "'sneaky') WHERE kind = 'version.registered'"
            )
        )
    watch.latest()  # the head did not move; the age starts a verification anyway
    watch.wait()
    broken = watch.latest().verified
    watch.wait()
    assert not broken.ok and broken.broken is not None and "altered" in broken.broken.reason
