"""The SDK's spill file: runs that could not go to the store wait on disk, not in memory.

Each client appends to its own JSONL file in the spill directory (one run record per
line, the JSON object ``domain.runs.run_dict`` makes of the run's values) and holds a
file lock on it while it is open, so no other process replays a file that is still
being written. A later client (the next start of the application, or this one once the
store answers again) replays every unlocked file through the same validation and
insert as any run, then deletes it. Replay is idempotent: runs are keyed by ``run_id``,
so a file replayed twice (a crash half-way) stores each run once.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from releasegate.domain.runs import RunValues, run_dict

if TYPE_CHECKING:
    from filelock import FileLock

log = logging.getLogger("releasegate.sdk")

SUFFIX = ".jsonl"
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


def _line(record: Mapping[str, Any]) -> bytes:
    """One record as a JSON line; what orjson refuses (NaN kept as NaN, an odd key type)
    goes through the standard library, which keeps NaN so validation still refuses it."""
    for value in record.values():
        if type(value) is float and value != value:
            break
    else:
        try:
            return orjson.dumps(record, default=str, option=_ORJSON_OPTIONS)
        except TypeError:
            pass
    return (json.dumps(record, default=str) + "\n").encode("utf-8")


class Spill:
    """One client's spill file in ``directory`` (created on the first spilled run)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._file_lock: FileLock | None = None
        self._serial = 0

    @property
    def path(self) -> Path | None:
        """The file this client appends to now (None until it spills)."""
        return self._path

    def append(self, runs: Sequence[RunValues]) -> None:
        """Write ``runs`` to the spill file, one JSON object a line; raises OSError if the
        disk refuses."""
        data = b"".join(_line(run_dict(values)) for values in runs)
        with self._lock:
            if self._file is None:
                self._open()
            assert self._file is not None
            self._file.write(data)

    def sync(self) -> None:
        """Hand what was appended to the operating system (it survives this process)."""
        with self._lock:
            if self._file is not None:
                self._file.flush()

    def rotate(self) -> None:
        """Close the current file, so it can be replayed; the next spill starts a new one."""
        with self._lock:
            if self._file is None:
                return
            try:
                self._file.close()
            finally:
                self._file = None
                self._path = None
                if self._file_lock is not None:
                    self._file_lock.release()
                    self._file_lock = None

    close = rotate

    def _open(self) -> None:
        from filelock import FileLock  # imported when a run is first spilled, not at start

        self.directory.mkdir(parents=True, exist_ok=True)
        self._serial += 1
        path = self.directory / f"runs-{os.getpid()}-{id(self):x}-{self._serial}{SUFFIX}"
        file_lock = FileLock(f"{path}.lock", thread_local=False, is_singleton=False)
        file_lock.acquire(timeout=0)
        try:
            self._file = path.open("ab", buffering=1 << 16)
        except BaseException:
            file_lock.release()
            raise
        self._path = path
        self._file_lock = file_lock

    def waiting(self) -> list[Path]:
        """Spill files in the directory, oldest first (any process's, this one's open one too)."""
        try:
            files = [p for p in self.directory.iterdir() if p.suffix == SUFFIX]
        except OSError:
            return []
        return sorted(files, key=_mtime)

    def replay(self, store_batch: Callable[[list[dict[str, Any]]], None], batch_size: int) -> int:
        """Feed every closed, unlocked spill file to ``store_batch`` in batches, deleting each
        file once all of it is stored. Returns how many records were read back. An error of
        ``store_batch`` (the store is down again) stops the replay; the file stays."""
        from filelock import FileLock, Timeout

        replayed = 0
        for path in self.waiting():
            if path == self._path:
                continue  # still being written by this client
            file_lock = FileLock(f"{path}.lock", thread_local=False, is_singleton=False)
            try:
                file_lock.acquire(timeout=0)
            except Timeout:
                continue  # another live process writes or replays it
            try:
                if not path.exists():
                    continue  # replayed by another process meanwhile
                for batch in _batches(path, batch_size):
                    store_batch(batch)
                    replayed += len(batch)
                path.unlink()
            finally:
                file_lock.release()
                _unlink_quietly(Path(f"{path}.lock"))
            log.info("releasegate replayed the spilled runs of %s", path)
        return replayed


def _batches(path: Path, size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError:
                try:
                    record = json.loads(raw)  # NaN, written by the standard library
                except ValueError:
                    # a line cut short by a crash mid-write: nothing to recover from it
                    log.warning("releasegate skipped an unreadable line %s:%d", path, number)
                    continue
            batch.append(record)
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        return
