"""Evals the server runs for its callers: each in its own thread, off the event loop.

``POST /v1/versions/{version}/evals`` checks and records the eval as running
(``release.evaluate.start_evaluation``: bad input is answered before anything runs),
then hands it here; ``run_evaluation`` runs it to its end in a daemon thread (at most
``limit`` at once, the rest wait their turn), so neither the event loop nor the
request threads wait on a model. The eval's row is its state for every replica; this
process only adds the progress it sees. A server stopped mid-eval leaves the row
"running" with its pid, and the next reader marks it interrupted
(``release.interrupted``), as for a killed CLI.
"""

from __future__ import annotations

import logging
import threading
from typing import NamedTuple

from releasegate.errors import ReleasegateError
from releasegate.release.evaluate import StartedEval, run_evaluation
from releasegate.release.store_access import Store

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
