"""Blob writes and reads through ``store.blobs``, and the demo end to end.

``python benchmarks/bench_blobs.py [--runs N] [--pg URL] [--demo]`` writes and reads three
kinds of blob through the store's blob API (``put`` / ``get``), each kind ``--runs`` times
in a fresh store, every blob new (so no write is skipped as a duplicate):

- ``prompt 4 KB``: customer-support text (banking77 queries when the dataset is present
  beside the project, else generated sentences), the size of a prompt file;
- ``text 1 MB``: the same kind of text, a large few-shot file or label list;
- ``index 16 MB``: float32 embeddings (384 dimensions, normal values), a retrieval index:
  nearly incompressible.

It prints one table per store (SQLite in a temp project; with ``--pg``, a fresh PostgreSQL
database): MB/s written and read (median wall), CPU seconds per MB (median), and the ratio
of each to the physical floor measured on the same machine in the same run: writing the
bytes to a file with ``fsync`` and reading them back (``floor``), plus the bytes the store
kept per byte given (``stored/given``, from ``store.blobs.stored_size`` when it has one).
With ``--demo`` it also times ``releasegate demo`` (wall and CPU of the process, median of
``--runs``). The machine is shared: compare CPU figures; wall time is mostly waiting.
Speed lives here, never in test asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from releasegate.store.engine import Location, Store

BANKING77 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "banking77" / "train.csv"
KINDS = (("prompt 4 KB", 4 * 1024, "text"), ("text 1 MB", 1 << 20, "text"),
         ("index 16 MB", 16 << 20, "index"))  # fmt: skip
BIN = Path(sys.executable).parent


def _corpus() -> str:
    if BANKING77.exists():
        with BANKING77.open(newline="", encoding="utf-8") as fh:
            return "\n".join(row[0] for row in csv.reader(fh))
    rng = np.random.default_rng(7)
    words = ["card", "lost", "transfer", "refund", "pending", "top up", "exchange rate", "fee"]
    return "\n".join(" ".join(rng.choice(words, 12)) for _ in range(20_000))


def _blob(kind: str, size: int, n: int, text: str) -> bytes:
    """The ``n``th blob of a kind: a unique header, then ``size`` bytes of its content."""
    head = f"# blob {n} {time.time_ns()}\n".encode()
    if kind == "text":
        start = (n * 7919) % max(1, len(text) - 1)
        body = (text[start:] + text).encode()
        while len(body) < size:
            body += body
        return head + body[:size]
    rng = np.random.default_rng(n)
    return head + rng.standard_normal(size // 4, dtype=np.float32).tobytes()


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    c0, t0 = _cpu(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, _cpu() - c0


def _floor(data: bytes, where: Path) -> tuple[float, float]:
    """Write with fsync, then read back: the file system's time for these bytes."""
    path = where / "floor.bin"

    def write() -> None:
        with path.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    w, _ = _timed(write)
    r, _ = _timed(path.read_bytes)
    path.unlink()
    return w, r


@contextlib.contextmanager
def _store(pg: str | None) -> Iterator[Store]:
    root = Path(tempfile.mkdtemp(prefix="rg-bench-blobs-"))
    home = root / ".releasegate"
    try:
        if pg is None:
            store = Store.open(root)
            try:
                yield store
            finally:
                store.close()
            return
        from bench_loop import temp_pg_database

        with temp_pg_database(pg) as url:
            loc = Location(url=url, blob_root=home / "blobs", is_embedded=False, home=home)
            store = Store.open(location=loc)
            try:
                yield store
            finally:
                store.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bench_store(label: str, pg: str | None, runs: int, text: str) -> None:
    print(f"\n{label}: median of {runs}, MB/s wall (CPU s per MB); floor = file + fsync")
    head = f"{'blob':<13} {'write MB/s':>10} {'cpu s/MB':>9} {'read MB/s':>10} {'cpu s/MB':>9}"
    print(f"{head} {'w/floor':>8} {'r/floor':>8} {'stored/given':>13}")
    with _store(pg) as store:
        for name, size, kind in KINDS:
            w_wall, w_cpu, r_wall, r_cpu, fw, fr, kept = [], [], [], [], [], [], []
            for n in range(runs):
                data = _blob(kind, size, n, text)
                mb = len(data) / 1e6
                digest = hashlib.sha256(data).hexdigest()
                wall, cpu = _timed(lambda data=data: store.blobs.put(data))
                w_wall.append(wall)
                w_cpu.append(cpu / mb)
                wall, cpu = _timed(lambda digest=digest: store.blobs.get(digest))
                r_wall.append(wall)
                r_cpu.append(cpu / mb)
                assert store.blobs.get(digest) == data
                a, b = _floor(data, Path(tempfile.gettempdir()))
                fw.append(a)
                fr.append(b)
                stored = getattr(store.blobs, "stored_size", None)
                kept.append(stored(digest) / len(data) if stored else 1.0)
            mb = (size + 30) / 1e6
            wm, rm = statistics.median(w_wall), statistics.median(r_wall)
            print(
                f"{name:<13} {mb / wm:>10.1f} {statistics.median(w_cpu):>9.4f} "
                f"{mb / rm:>10.1f} {statistics.median(r_cpu):>9.4f} "
                f"{wm / statistics.median(fw):>8.1f} {rm / statistics.median(fr):>8.1f} "
                f"{statistics.median(kept):>13.2f}"
            )


def bench_demo(runs: int) -> None:
    walls, cpus = [], []
    for _ in range(runs):
        where = Path(tempfile.mkdtemp(prefix="rg-bench-demo-"))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(
            [str(BIN / "releasegate"), "demo", "--dir", str(where / "demo")],
            check=True,
            capture_output=True,
        )
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        shutil.rmtree(where, ignore_errors=True)
    print(
        f"\nreleasegate demo: median of {runs}: {statistics.median(walls):.2f} s wall, "
        f"{statistics.median(cpus):.2f} s CPU (runs: "
        + ", ".join(f"{w:.2f}/{c:.2f}" for w, c in zip(walls, cpus, strict=True))
        + ")"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--pg", help="a PostgreSQL admin URL, e.g. postgresql+psycopg://postgres@127.0.0.1:5432"
    )
    parser.add_argument("--demo", action="store_true", help="also time `releasegate demo`")
    args = parser.parse_args()
    text = _corpus()
    bench_store("SQLite", None, args.runs, text)
    if args.pg:
        bench_store("PostgreSQL", args.pg, args.runs, text)
    if args.demo:
        bench_demo(args.runs)


if __name__ == "__main__":
    main()
