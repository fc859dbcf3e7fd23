"""Evals and jobs the server runs for its callers: each in its own thread, off the event loop.

``POST /v1/versions/{version}/evals`` checks and records the eval as running
(``release.evaluate.start_evaluation``: bad input is answered before anything runs),
then hands it here; ``run_evaluation`` runs it to its end in a daemon thread (at most
``limit`` at once, the rest wait their turn), so neither the event loop nor the
request threads wait on a model. The eval's row is its state for every replica; this
process only adds the progress it sees. A server stopped mid-eval leaves the row
"running" with its pid, and the next reader marks it interrupted
(``release.interrupted``), as for a killed CLI.

``Jobs`` does the same for the verbs that answer 202 with a job (``compare``,
``rehearse``, ``rollout shadow-replay``, a ``gate`` that evaluates first): the route
checks the request and plans the work (bad input answered before anything runs), then
``submit`` records the job (``release.jobs``) and runs the work in a thread; its ``--json``
document, or the error it raised in the server's one shape, lands on the job's row,
which any replica answers ``GET /v1/jobs/{job_id}`` from.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from releasegate.errors import ReleasegateError
from releasegate.release.evaluate import StartedEval, run_evaluation
from releasegate.release.jobs import BEAT_SECONDS, beat_jobs, complete_job, fail_job, start_job
from releasegate.release.store_access import Store
from releasegate.server.errors import INTERNAL, ErrorBody, error_body
from releasegate.server.routes import cli_text

log = logging.getLogger("releasegate.server")


class Progress(NamedTuple):
    done: int
    total: int


class EvalJobs:
    """The evals this process runs, and how far each is."""

    def __init__(self, store: Store, limit: int = 2) -> None:
        self.store = store
        self._slots = threading.BoundedSemaphore(limit)
        self._progress: dict[str, Progress] = {}
        self._lock = threading.Lock()

    def submit(self, started: StartedEval) -> None:
        with self._lock:
            self._progress[started.eval_id] = Progress(0, 0)
        thread = threading.Thread(
            target=self._run, args=(started,), name=f"eval-{started.eval_id[:8]}", daemon=True
        )
        thread.start()

    def progress(self, eval_id: str) -> Progress | None:
        """How far an eval this process runs is (None: not here, or finished)."""
        with self._lock:
            return self._progress.get(eval_id)

    def _run(self, started: StartedEval) -> None:
        eval_id = started.eval_id

        def tick(done: int, total: int) -> None:
            with self._lock:
                self._progress[eval_id] = Progress(done, total)

        try:
            with self._slots:
                run_evaluation(self.store, started, progress=tick)
        except ReleasegateError as exc:  # stored as the eval's error; logged for the operator
            log.warning("releasegate server: eval %s failed: %s", eval_id, exc)
        except Exception:  # a bug: the row says failed, the traceback is in the log
            log.exception("releasegate server: eval %s failed", eval_id)
        finally:
            with self._lock:
                self._progress.pop(eval_id, None)


Tick = Callable[[int, int], None]
Work = Callable[[Tick], Any]
"""A job's work: given a progress callback, it returns the verb's ``--json`` document."""


class Jobs:
    """The jobs this process runs (at most ``limit`` at once), and how far each is."""

    def __init__(self, store: Store, limit: int = 2) -> None:
        self.store = store
        self._slots = threading.BoundedSemaphore(limit)
        self._progress: dict[str, Progress] = {}
        self._lock = threading.Lock()
        self._beating: threading.Thread | None = None

    def submit(self, kind: str, subject: str, who: str, work: Work) -> str:
        """Record the job as running and start it; its id."""
        job_id = start_job(self.store, kind=kind, subject=subject, who=who)
        with self._lock:
            self._progress[job_id] = Progress(0, 0)
            if self._beating is None:
                self._beating = threading.Thread(
                    target=self._beat_while_running, name="jobs-alive", daemon=True
                )
                self._beating.start()
        thread = threading.Thread(
            target=self._run, args=(job_id, work), name=f"{kind}-{job_id[:8]}", daemon=True
        )
        thread.start()
        return job_id

    def progress(self, job_id: str) -> Progress | None:
        """How far a job this process runs is (None: not here, or finished)."""
        with self._lock:
            return self._progress.get(job_id)

    def beat(self) -> None:
        """Write that the jobs this process runs are alive (any replica reads a job
        silent for ``release.jobs.SILENT_AFTER`` as interrupted)."""
        with self._lock:
            running = list(self._progress)
        beat_jobs(self.store, running)

    def _beat_while_running(self) -> None:
        """Beat every ``BEAT_SECONDS`` while this process runs a job; the thread ends with
        the last one (``submit`` starts another), so a process with no job writes nothing
        and no thread outlives the jobs of an app that stopped."""
        while True:
            time.sleep(BEAT_SECONDS)
            with self._lock:
                running = list(self._progress)
                if not running:
                    self._beating = None
                    return
            try:
                beat_jobs(self.store, running)
            except ReleasegateError as exc:  # the store is away: one line, tried next beat
                log.warning(
                    "releasegate server: jobs: could not write that %d running job(s) are "
                    "alive: %s",
                    len(running),
                    exc,
                )

    def _run(self, job_id: str, work: Work) -> None:
        def tick(done: int, total: int) -> None:
            with self._lock:
                self._progress[job_id] = Progress(done, total)

        try:
            with self._slots:
                document = work(tick)
            complete_job(self.store, job_id, cli_text(document))
        except ReleasegateError as exc:  # the caller's answer, in the one shape; logged
            log.warning("releasegate server: job %s failed: %s", job_id, exc)
            self._fail(job_id, error_body(exc))
        except Exception:  # a bug: the job says so, the traceback is in the log
            log.exception("releasegate server: job %s failed", job_id)
            self._fail(job_id, ErrorBody(status=500, error=INTERNAL))
        finally:
            with self._lock:
                self._progress.pop(job_id, None)

    def _fail(self, job_id: str, body: ErrorBody) -> None:
        try:
            fail_job(self.store, job_id, body.model_dump())
        except ReleasegateError:  # the store is gone: logged (the job reads running meanwhile)
            log.exception("releasegate server: job %s: its failure could not be stored", job_id)
