"""Evaluate: one version on one suite, with every metric's interval written down.

The suite file is registered on the way in (a changed suite becomes the
workflow's current suite and is audited), scorers and the provider are built
before anything is written, so bad input leaves the store untouched. The
summary keeps what a reader of the gate report needs: intervals (clustered when
cases share a cluster), must-pass failures with their outputs, flaky cases with
their passes per epoch, how many epochs the observed noise calls for, latency,
tokens and cost.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from releasegate.domain.masking import mask_secrets
from releasegate.domain.power import EpochAdvice, epochs_needed, flaky_cases, metric_interval
from releasegate.domain.results import Case, CaseOutput
from releasegate.domain.sent_code import SentCodePolicy
from releasegate.domain.stats import Interval, aggregate_interval, average_epochs
from releasegate.domain.suite import Suite, parse_suite, suite_from_content
from releasegate.errors import InputError, NotFoundError, SuiteError, WriteConflictError
from releasegate.providers import build_provider, prices
from releasegate.providers.base import Provider, ProviderContext
from releasegate.providers.embeddings import DEFAULT_MODEL, Embedder, backend_for
from releasegate.release.interrupted import mark_interrupted, running_marker
from releasegate.release.pins import check_pins
from releasegate.release.refs import actor as default_actor
from releasegate.release.refs import find_version
from releasegate.release.retry import retrying
from releasegate.runner.engine import CaseRun, EngineResult, Progress, run_suite
from releasegate.runner.scorers import build_scorer
from releasegate.runner.scorers.base import Scorer
from releasegate.store.audit import AuditRepo
from releasegate.store.embeddings import EmbeddingRepo
from releasegate.store.engine import Conn, Store
from releasegate.store.evals import EvalRecord, EvalRepo
from releasegate.store.suites import SuiteRepo
from releasegate.store.versions import VersionRecord

MAX_EPOCHS = 10_000
"""Samples per case at most (more overflowed the database's integer)."""

PASS_RATE = "pass_rate"
FLAKY_LIMIT = 50
"""Flaky cases listed in a summary; ``flaky_total`` counts them all."""


@dataclass(frozen=True)
class EvalOutcome:
    eval_id: str
    version_id: str
    workflow: str
    suite_id: str
    suite_name: str
    summary: Mapping[str, Any]
    n_called: int
    n_cached: int
    suite_changed: bool

    def to_dict(self) -> dict[str, Any]:
        """What ``eval --json`` prints: the ids, the model calls and the summary's metrics."""
        return {
            "eval_id": self.eval_id,
            "version_id": self.version_id,
            "suite_id": self.suite_id,
            "called": self.n_called,
            "cached": self.n_cached,
            "suite_changed": self.suite_changed,
            **self.summary,
        }


def read_suite_text(
    text: str, source: str, files: Mapping[str, str], *, policy: SentCodePolicy
) -> Suite:
    """A suite sent as text (over the server), under the same limits as a file; its cases
    file comes from ``files`` (relative path -> text), never from this machine's disk."""
    import posixpath

    from releasegate.domain import untrusted
    from releasegate.release.loaders import check_sent, max_input_bytes, parse_jsonl, parse_yaml

    untrusted.check_size(len(text.encode("utf-8")), max_input_bytes(), source, SuiteError)
    doc = parse_yaml(text, source, SuiteError)
    check_sent(doc, policy)  # a python scorer, a judge's host: before any is built
    given = {posixpath.normpath(k): v for k, v in files.items()}

    def load_cases(rel: str) -> list[Any]:
        found = given.get(posixpath.normpath(rel))
        if found is None:
            raise SuiteError(
                f"cases file '{rel}' not found",
                source=source,
                line=doc.line_of(("cases",)),
                field="cases",
                hint=f"send it in 'files' as {rel!r}",
            )
        untrusted.check_size(len(found.encode("utf-8")), max_input_bytes(), rel, SuiteError)
        return parse_jsonl(found, rel, SuiteError)

    return parse_suite(doc, load_cases)


def read_suite(path: Path) -> Suite:
    # here, not at the top: the monitor's quality sample builds scorers from a stored suite
    # and never parses one, so it need not import the YAML parser
    from releasegate.release.loaders import load_jsonl, load_yaml

    doc = load_yaml(path, SuiteError)

    def load_cases(rel: str) -> list[Any]:
        target = path.parent / rel
        if not target.exists():
            raise SuiteError(
                f"cases file '{rel}' not found",
                source=str(path),
                line=doc.line_of(("cases",)),
                field="cases",
            )
        return load_jsonl(target, SuiteError)

    return parse_suite(doc, load_cases)


def register_suite(
    store: Store, suite: Suite, *, who: str, reason: str = "", replacing: str | None = None
) -> bool:
    """Store the suite and make it current for its workflow; True if that changed anything.
    With ``replacing``, only over that current suite: another one there (a writer grew it
    meanwhile) is a WriteConflictError, so the caller grows the new one instead."""
    with store.write() as conn:
        current = SuiteRepo(conn).current_id(suite.workflow, lock=replacing is not None)
        if replacing is not None and current != replacing:
            raise WriteConflictError(
                f"the current suite of {suite.workflow} changed while a case was added to it"
            )
        _store_suite_in(conn, suite)
        if current == suite.suite_id:
            return False
        SuiteRepo(conn).make_current(suite.workflow, suite.suite_id, reason)
        AuditRepo(conn).append(
            kind="suite.changed",
            actor=who,
            workflow=suite.workflow,
            subject=suite.suite_id,
            payload={
                "name": suite.name,
                "previous": current,
                "reason": reason,
                "cases": len(suite.cases),
                "source": suite.source,
            },
        )
        return True


def find_suite_version(conn: Conn, ref: str, suite: Suite, suite_path: Path) -> VersionRecord:
    """The version ``ref`` names, refused when the suite is for another workflow."""
    version = find_version(conn, ref)
    if suite.workflow != version.workflow:
        raise SuiteError(
            f"suite is for workflow '{suite.workflow}', version "
            f"{version.version_id[:12]} is '{version.workflow}'",
            source=str(suite_path),
            field="workflow",
        )
    return version


def build_scorers(suite: Suite) -> list[tuple[str, Scorer]]:
    built = []
    for spec in suite.scorers:
        try:
            scorer = build_scorer(spec.kind, spec.params, spec.name)
        except InputError as exc:
            field = f"scorers[{suite.scorers.index(spec)}].{exc.field or 'type'}"
            raise SuiteError(
                exc.reason, source=suite.source or None, line=spec.line, field=field, hint=exc.hint
            ) from None
        built.append((scorer.identity(), scorer))
    return built


_EMBEDDERS: weakref.WeakKeyDictionary[Store, dict[str, Embedder]] = weakref.WeakKeyDictionary()


def embedder_for(store: Store, model: str = DEFAULT_MODEL) -> Embedder:
    """One embedder per store and model: vectors persist in that store, never in another."""
    found = _EMBEDDERS.get(store, {}).get(model)
    if found is None:
        backend = backend_for(model)
        found = Embedder(cache=EmbeddingRepo(store.engine), backend=backend)
        _EMBEDDERS.setdefault(store, {})[model] = found
    return found


def check_expectations(suite: Suite, scorers: Sequence[tuple[str, Scorer]]) -> None:
    """Fail before anything is written when a case lacks the ``expected`` a scorer needs."""
    blank = CaseOutput(text="")
    for case in suite.cases:
        if case.expected is not None:
            continue
        for _, scorer in scorers:
            if scorer.kind == "python":  # user code: never call it on a made-up output
                continue
            try:
                scorer.score(case, blank)
            except InputError as exc:
                raise SuiteError(
                    f"case '{case.case_id}' has no 'expected', which scorer '{scorer.name}' "
                    f"needs ({exc.reason})",
                    source=suite.source or None,
                    field="expected",
                ) from None


def pricing_of(provider: Provider, manifest: Mapping[str, Any]) -> prices.Pricing:
    """How this eval's cost was computed, kept in its summary so a price edit is traceable."""
    pricing = getattr(provider, "pricing", None)
    return pricing if isinstance(pricing, prices.Pricing) else prices.for_manifest(manifest)


def make_provider(store: Store, manifest: Mapping[str, Any]) -> Provider:
    return build_provider(manifest, ProviderContext(embedder=embedder_for(store)))


def check_options(epochs: int, concurrency: int) -> None:
    if not 1 <= epochs <= MAX_EPOCHS:  # more overflowed the database's integer
        raise InputError(f"must be 1 to {MAX_EPOCHS:,}", field="--epochs")
    if concurrency < 1:
        raise InputError("must be 1 or more", field="--concurrency")


def evaluate(
    store: Store,
    version_ref: str,
    suite_path: Path,
    *,
    epochs: int = 1,
    concurrency: int = 8,
    use_cache: bool = True,
    progress: Progress | None = None,
    who: str | None = None,
) -> EvalOutcome:
    check_options(epochs, concurrency)
    suite = read_suite(suite_path)
    with store.read() as conn:
        version = find_suite_version(conn, version_ref, suite, suite_path)
    return evaluate_suite(
        store,
        version,
        suite,
        epochs=epochs,
        concurrency=concurrency,
        use_cache=use_cache,
        progress=progress,
        who=who,
    )


def evaluate_suite(
    store: Store,
    version: VersionRecord,
    suite: Suite,
    *,
    epochs: int = 1,
    concurrency: int = 8,
    use_cache: bool = True,
    progress: Progress | None = None,
    who: str | None = None,
    make_current: bool = True,
) -> EvalOutcome:
    started = start_evaluation(
        store,
        version,
        suite,
        epochs=epochs,
        concurrency=concurrency,
        use_cache=use_cache,
        who=who,
        make_current=make_current,
    )
    return run_evaluation(store, started, progress=progress)


@dataclass(frozen=True)
class StartedEval:
    """An eval checked and recorded as running (``start_evaluation``), not yet run."""

    eval_id: str
    version: VersionRecord
    suite: Suite
    scorers: list[tuple[str, Scorer]]
    provider: Provider
    epochs: int
    concurrency: int
    use_cache: bool
    who: str
    suite_changed: bool


def start_evaluation(
    store: Store,
    version: VersionRecord,
    suite: Suite,
    *,
    epochs: int = 1,
    concurrency: int = 8,
    use_cache: bool = True,
    who: str | None = None,
    make_current: bool = True,
) -> StartedEval:
    """Everything an eval checks before it calls a model (scorers, expectations, the
    provider, the pins), then the suite registered and the eval recorded as ``running``
    by this process: bad input raises here with nothing written, and the eval id is known
    before the (long) run, which ``run_evaluation`` does."""
    who = who or default_actor()
    scorers = build_scorers(suite)
    check_expectations(suite, scorers)
    provider = make_provider(store, version.manifest)  # bad manifests fail before any write
    # edited code or re-pulled weights must never be credited to this version's id
    check_pins(store, version)
    mark_interrupted(store)  # an eval killed before this one is not left "running"
    changed = register_suite(store, suite, who=who) if make_current else _store_suite(store, suite)
    eval_id = uuid.uuid4().hex
    with store.write() as conn:
        EvalRepo(conn).start(
            eval_id=eval_id,
            version_id=version.version_id,
            suite_id=suite.suite_id,
            epochs=epochs,
            summary={"running": running_marker()},
        )
    return StartedEval(
        eval_id,
        version,
        suite,
        scorers,
        provider,
        epochs,
        concurrency,
        use_cache,
        who,
        changed,
    )


def run_evaluation(
    store: Store, started: StartedEval, *, progress: Progress | None = None
) -> EvalOutcome:
    """Run a started eval to its end: completed (audited), or failed / interrupted."""
    eval_id, version, suite, scorers = (
        started.eval_id,
        started.version,
        started.suite,
        started.scorers,
    )
    provider, epochs, who = started.provider, started.epochs, started.who
    try:
        result = run_suite(
            store,
            version_id=version.version_id,
            suite=suite,
            provider=provider,
            scorers=scorers,
            epochs=epochs,
            concurrency=started.concurrency,
            use_cache=started.use_cache,
            progress=progress,
        )
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        why = {"error": mask_secrets(str(exc) or type(exc).__name__)} if status == "failed" else {}
        with store.write() as conn:
            EvalRepo(conn).finish(
                eval_id, status=status, n_cases=0, n_errors=0, n_cached=0, summary=why
            )
        raise
    summary = summarize(suite, [s for _, s in scorers], result.runs, epochs)
    summary["cost_usd"]["priced_by"] = pricing_of(provider, version.manifest).as_dict()
    judged = {
        scorer.name: usage.as_dict()
        for _, scorer in scorers
        if (usage := getattr(scorer, "usage", None)) is not None and usage.calls
    }
    if judged:  # what this eval paid its judges (a cached verdict costs nothing again)
        summary["cost_usd"]["judges"] = judged
        summary["cost_usd"]["judges_total"] = round(sum(u["cost_usd"] for u in judged.values()), 6)
    stored = {
        **summary,
        OUTCOME: {"called": result.n_called, "suite_changed": started.suite_changed},
    }
    retrying(
        lambda: _record_completed(store, eval_id, version, suite, stored, result, epochs, who),
        what="eval finish",
    )
    return EvalOutcome(
        eval_id,
        version.version_id,
        version.workflow,
        suite.suite_id,
        suite.name,
        summary,
        result.n_called,
        result.n_cached,
        started.suite_changed,
    )


OUTCOME = "outcome"
"""The key of a completed eval's stored summary that keeps what ``eval --json`` says
beside the summary (model calls made, whether the suite changed), so any process can
answer the document again (``eval_document``)."""


def eval_document(record: EvalRecord) -> dict[str, Any]:
    """A completed eval's ``eval --json`` document, from its stored row."""
    summary = dict(record.summary)
    outcome = summary.pop(OUTCOME, {})
    return {
        "eval_id": record.eval_id,
        "version_id": record.version_id,
        "suite_id": record.suite_id,
        "called": outcome.get("called"),
        "cached": record.n_cached,
        "suite_changed": outcome.get("suite_changed"),
        **summary,
    }


def _record_completed(
    store: Store,
    eval_id: str,
    version: VersionRecord,
    suite: Suite,
    summary: dict[str, Any],
    result: EngineResult,
    epochs: int,
    who: str,
) -> None:
    """One transaction: the eval is completed and its audit event appended (retried whole)."""
    with store.write() as conn:
        EvalRepo(conn).finish(
            eval_id,
            status="completed",
            n_cases=len(suite.cases),
            n_errors=summary["errors"]["count"],
            n_cached=result.n_cached,
            summary=summary,
        )
        AuditRepo(conn).append(
            kind="eval.completed",
            actor=who,
            workflow=version.workflow,
            subject=version.version_id,
            payload={
                "eval_id": eval_id,
                "suite_id": suite.suite_id,
                "epochs": epochs,
                "cases": len(suite.cases),
                "metrics": {k: v["estimate"] for k, v in summary["metrics"].items()},
                "called": result.n_called,
                "cached": result.n_cached,
            },
        )


def _store_suite(store: Store, suite: Suite) -> bool:
    with store.write() as conn:
        _store_suite_in(conn, suite)
    return False


def _store_suite_in(conn: Conn, suite: Suite) -> None:
    if not SuiteRepo(conn).exists(suite.suite_id):  # content() re-serialises every case
        SuiteRepo(conn).add_if_missing(
            suite_id=suite.suite_id,
            name=suite.name,
            workflow=suite.workflow,
            description=suite.description,
            content=suite.content(),
        )


def stored_suite(store: Store, suite_id: str) -> Suite:
    with store.read() as conn:
        rec = SuiteRepo(conn).get(suite_id)
    return suite_from_content(rec.content, rec.description)


# -- turning runs into numbers -------------------------------------------------------------


@dataclass(frozen=True)
class CaseTable:
    """Per-case, epoch-averaged values of every metric, in suite order.

    ``matrices`` keeps the ``(cases, epochs)`` scores they were averaged from (errored runs
    score 0); ``clusters`` labels each case when cases share a cluster (else None).
    """

    cases: tuple[Case, ...]
    values: Mapping[str, npt.NDArray[np.float64]]
    aggregates: Mapping[str, Callable[[npt.NDArray[np.int64]], float]]
    matrices: Mapping[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    clusters: tuple[Hashable, ...] | None = None

    @property
    def n_clusters(self) -> int | None:
        return None if self.clusters is None else len(set(self.clusters))

    def is_rate(self, name: str) -> bool:
        """Every epoch of every case scored 0 or 1: the metric is a pass rate."""
        m = self.matrices.get(name)
        return m is not None and bool(np.all((m == 0.0) | (m == 1.0)))


def case_table(
    suite: Suite, scorers: Sequence[Scorer], runs: Sequence[CaseRun], epochs: int
) -> CaseTable:
    index = {c.case_id: i for i, c in enumerate(suite.cases)}  # ids are unique; twins share a hash
    n = len(suite.cases)
    raw: dict[str, npt.NDArray[np.float64]] = {s.name: np.zeros((n, epochs)) for s in scorers}
    passed = np.zeros((n, epochs))
    outputs: list[list[CaseOutput | None]] = [[None] * epochs for _ in range(n)]
    for run in runs:
        i = index[run.case.case_id]
        for name, score in run.scores.items():
            raw[name][i, run.epoch] = score.value
        passed[i, run.epoch] = 1.0 if run.passed else 0.0
        outputs[i][run.epoch] = run.output
    raw[PASS_RATE] = passed
    values = {name: average_epochs(m) for name, m in raw.items()}
    aggregates: dict[str, Callable[[npt.NDArray[np.int64]], float]] = {}
    all_cases = [c for c in suite.cases for _ in range(epochs)]
    all_outputs = [o for row in outputs for o in row if o is not None]
    every_epoch = len(all_outputs) == len(all_cases)  # so case i's rows are i*epochs + e
    for s in scorers:
        if s.aggregate(all_cases, all_outputs) is None:
            continue  # a mean-of-cases metric
        on_rows = getattr(s, "on_rows", None)
        if on_rows is not None and every_epoch:
            rows_of = on_rows(all_cases, all_outputs)

            def fast(
                idx: npt.NDArray[np.int64], rows_of: Callable[[Any], float] = rows_of
            ) -> float:
                rows = (np.asarray(idx)[:, None] * epochs + np.arange(epochs)).ravel()
                return float(rows_of(rows))

            aggregates[s.name] = fast
            continue

        def fn(idx: npt.NDArray[np.int64], s: Scorer = s) -> float:
            cs = [suite.cases[i] for i in idx for _ in range(epochs)]
            os_ = [o for i in idx for o in outputs[i] if o is not None]
            return float(s.aggregate(cs, os_) or 0.0)

        aggregates[s.name] = fn
    return CaseTable(suite.cases, values, aggregates, raw, suite.cluster_labels())


def metric_intervals(table: CaseTable) -> dict[str, Interval]:
    """Every metric's 95% interval, by the rules of ``domain.power.metric_interval``.

    A corpus metric (macro-F1) is bootstrapped over cases even in a clustered suite.
    """
    out: dict[str, Interval] = {}
    for name, vals in table.values.items():
        if name in table.aggregates:
            out[name] = aggregate_interval(table.aggregates[name], len(table.cases), resamples=1000)
        else:
            out[name] = metric_interval(vals, clusters=table.clusters, is_rate=table.is_rate(name))
    return out


def epoch_advice(table: CaseTable) -> dict[str, EpochAdvice]:
    """Per-case metric -> how many epochs its within-case noise calls for (2+ epochs only)."""
    out: dict[str, EpochAdvice] = {}
    for name, matrix in table.matrices.items():
        if name in table.aggregates or matrix.shape[0] < 2 or matrix.shape[1] < 2:
            continue
        out[name] = epochs_needed(matrix)
    return out


def advice_dict(advice: EpochAdvice) -> dict[str, Any]:
    return {
        "epochs": advice.epochs,
        "observed_epochs": advice.observed_epochs,
        "within_var": round(advice.within_var, 6),
        "between_var": round(advice.between_var, 6),
        "se_now": round(advice.se_now, 6),
        "se_recommended": round(advice.se_recommended, 6),
        "se_floor": round(advice.se_floor, 6),
        "text": advice.text,
    }


def flaky_table(table: CaseTable) -> list[dict[str, Any]]:
    """Cases whose pass/fail differed between epochs, with each epoch's pass (1) or fail (0)."""
    passed = table.matrices.get(PASS_RATE)
    if passed is None or passed.shape[1] < 2:
        return []
    ids = [c.case_id for c in table.cases]
    row = {cid: i for i, cid in enumerate(ids)}
    out = []
    for cid in flaky_cases(passed, ids):
        per_epoch = [int(v) for v in passed[row[cid]]]
        out.append(
            {
                "case_id": cid,
                "passed": sum(per_epoch),
                "epochs": len(per_epoch),
                "per_epoch": per_epoch,
            }
        )
    return out


def eval_precision(summary: Mapping[str, Any]) -> dict[str, Any]:
    """What a gate report shows about an eval's precision, from its stored summary.

    Summaries written before these fields existed give empty values, and their flaky case
    ids (plain strings then) come without per-epoch passes.
    """
    flaky = [
        f if isinstance(f, Mapping) else {"case_id": str(f), "per_epoch": []}
        for f in summary.get("flaky") or []
    ]
    return {
        "clusters": summary.get("clusters"),
        "epoch_advice": dict(summary.get("epoch_advice") or {}),
        "flaky": flaky,
        "flaky_total": int(summary.get("flaky_total", len(flaky))),
    }


def _interval_dict(iv: Interval) -> dict[str, Any]:
    return {
        "estimate": round(iv.estimate, 6),
        "low": round(iv.low, 6),
        "high": round(iv.high, 6),
        "se": round(iv.se, 6),
        "n": iv.n,
        "method": iv.method,
    }


def summarize(
    suite: Suite, scorers: Sequence[Scorer], runs: Sequence[CaseRun], epochs: int
) -> dict[str, Any]:
    table = case_table(suite, scorers, runs, epochs)
    metrics = {k: _interval_dict(v) for k, v in metric_intervals(table).items()}
    advice = {k: advice_dict(v) for k, v in epoch_advice(table).items()}
    flaky = flaky_table(table)
    latencies = np.array([r.output.latency_ms for r in runs if r.output.error is None] or [0.0])
    errors = [r for r in runs if r.output.error is not None]
    cost = float(sum(r.output.cost_usd for r in runs))
    by_case: dict[str, list[CaseRun]] = {}
    for r in runs:
        by_case.setdefault(r.case.case_id, []).append(r)
    must_fail = []
    for case in suite.must_pass:
        bad = [r for r in by_case.get(case.case_id, []) if not r.passed]
        if bad:
            r = bad[0]
            detail = "; ".join(
                f"{k}: {s.detail or s.value}" for k, s in r.scores.items() if not s.passed
            )
            must_fail.append(
                {
                    "case_id": case.case_id,
                    "input": case.input,
                    "expected": case.expected,
                    "output": r.output.text,
                    "detail": mask_secrets(r.output.error or detail),
                    "epochs_failed": len(bad),
                }
            )
    thresholds = {
        m: {
            "floor": floor,
            "estimate": metrics[m]["estimate"],
            "ok": metrics[m]["estimate"] >= floor,
        }
        for m, floor in suite.thresholds.items()
        if m in metrics
    }
    return {
        "suite_id": suite.suite_id,
        "suite": suite.name,
        "epochs": epochs,
        "cases": len(suite.cases),
        "metrics": metrics,
        "thresholds": thresholds,
        "must_pass": {"total": len(suite.must_pass), "failures": must_fail},
        "latency_ms": {
            "p50": round(float(np.percentile(latencies, 50)), 3),
            "p95": round(float(np.percentile(latencies, 95)), 3),
        },
        "tokens": {
            "input": sum(r.output.tokens_in for r in runs),
            "output": sum(r.output.tokens_out for r in runs),
        },
        "cost_usd": {"total": round(cost, 6), "per_case": round(cost / max(1, len(runs)), 8)},
        "errors": {
            "count": len(errors),
            "examples": [
                {"case_id": r.case.case_id, "error": mask_secrets(r.output.error or "")}
                for r in errors[:5]
            ],
        },
        "clusters": table.n_clusters,
        "epoch_advice": advice,
        "flaky": flaky[:FLAKY_LIMIT],
        "flaky_total": len(flaky),
    }


def eval_status(store: Store, eval_id: str) -> dict[str, Any]:
    """Where an eval stands, from its row (any process can answer): ``status`` running,
    completed, failed or interrupted (its process died: ``release.interrupted``), why it
    failed, and, once completed, its ``eval --json`` document as ``result``."""
    mark_interrupted(store)  # an eval whose process died is shown as what it is
    with store.read() as conn:
        found = EvalRepo(conn).find(eval_id)
        if found is None:
            raise NotFoundError(f"no eval '{eval_id}'", field="eval_id")
        version = find_version(conn, found.version_id)
    done = found.status == "completed"
    interrupted = found.summary.get("interrupted") if found.status == "interrupted" else None
    return {
        "eval_id": found.eval_id,
        "version_id": found.version_id,
        "workflow": version.workflow,
        "suite_id": found.suite_id,
        "epochs": found.epochs,
        "status": found.status,
        "started_at": found.started_at.isoformat(),
        "finished_at": None if found.finished_at is None else found.finished_at.isoformat(),
        "error": found.summary.get("error") if found.status == "failed" else None,
        "interrupted": interrupted,
        "result": eval_document(found) if done else None,
    }


def suite_for(store: Store, version_ref: str, suite_id: str | None = None) -> Suite:
    """A stored suite to evaluate ``version_ref`` on: ``suite_id``, or its workflow's current."""
    with store.read() as conn:
        repo = SuiteRepo(conn)
        if suite_id is None:
            workflow = find_version(conn, version_ref).workflow
            suite_id = repo.current_id(workflow)
            if suite_id is None:
                raise InputError(
                    f"workflow '{workflow}' has no suite yet",
                    field="suite",
                    hint="send the suite file's text in 'suite'",
                )
        elif not repo.exists(suite_id):
            raise NotFoundError(f"no suite '{suite_id}'", field="suite_id")
    return stored_suite(store, suite_id)
