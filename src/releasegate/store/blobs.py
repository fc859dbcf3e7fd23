"""Content-addressed files beside the database: prompts, indexes, reports' inputs.

A blob's name is its sha256, written to a temporary file and renamed into
place, so a crash never leaves a half-written blob under a real name. A
read-only, full or forbidden blob directory is a StoreError naming it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from releasegate.store.faults import from_os_error


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        digest = digest.removeprefix("sha256:")
        return self.root / digest[:2] / digest[2:]

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists():
            return digest
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        except OSError as exc:
            self._raise_fault(exc)
            raise
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                self._raise_fault(exc)
            raise
        return digest

    def get(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except OSError as exc:
            self._raise_fault(exc)
            raise

    def _raise_fault(self, exc: OSError) -> None:
        """Raise the StoreError a file-system fault means; return if it is another error."""
        fault = from_os_error(exc, f"the blob store {self.root}")
        if fault is not None:
            raise fault from exc

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()
