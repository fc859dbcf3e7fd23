"""Orphan blobs: stored files no version refers to, collected by ``gc``.

A registration writes its blobs in the version's own transaction, so it leaves none; a
store can still hold some from before (a release whose register stored them first, then
failed, or an older blob directory moved in). ``collect_orphan_blobs`` finds the blobs
no version's manifest names (``domain.manifest.referenced_blobs``) and deletes them in
one write transaction that registrations wait for, so none is deleted under a version
being registered. Not audited: blobs are content, not decisions, and the versions that
named them are untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

from releasegate.domain.manifest import referenced_blobs
from releasegate.store.engine import Conn, Store
from releasegate.store.versions import VersionRepo


@dataclass(frozen=True)
class OrphanBlobs:
    dry_run: bool
    digests: tuple[str, ...]
    """``sha256:...`` of each blob collected (or, dry, that would be)."""
    size: int
    """Their bytes, as given (before compression)."""

    def to_dict(self) -> dict[str, object]:
        return {"dry_run": self.dry_run, "digests": list(self.digests), "bytes": self.size}


def collect_orphan_blobs(store: Store, *, dry_run: bool = False) -> OrphanBlobs:
    """Delete every blob no version refers to (``dry_run``: only list them)."""
    with store.write() as conn:
        store.blobs.hold_writers(conn)  # first: every version committed before it is seen
        found = store.blobs.orphans(conn, _referenced(conn))
        if not dry_run:
            store.blobs.delete(conn, (digest for digest, _ in found))
    digests = tuple(f"sha256:{digest}" for digest, _ in found)
    return OrphanBlobs(dry_run, digests, sum(size for _, size in found))


def _referenced(conn: Conn) -> set[str]:
    names: set[str] = set()
    for manifest in VersionRepo(conn).manifests():
        names |= referenced_blobs(manifest)
    return names
