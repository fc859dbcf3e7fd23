"""``/metrics``: the server's own counters in the Prometheus text format (prometheus-client).

Requests by route template and status, their latency, runs landed and access refusals.
Each app has its own registry (two apps in one process do not collide). With
``--workers N`` the workers share one count: ``serve`` points ``PROMETHEUS_MULTIPROC_DIR``
at a directory it creates (and removes when it stops), each worker writes its counts
there (prometheus-client's multiprocess mode), and whichever worker answers a scrape sums
them all, so one scrape shows the whole server.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = CONTENT_TYPE_LATEST
SHARED_DIR = "PROMETHEUS_MULTIPROC_DIR"
"""Where the workers of one server write their counts (prometheus-client's variable)."""


class Metrics:
    def __init__(self) -> None:
        shared = bool(os.environ.get(SHARED_DIR))
        self.registry = CollectorRegistry(auto_describe=True)
        # shared: the counts live in the directory's files, read back by the collector
        own = None if shared else self.registry
        if shared:
            MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        self.requests = Counter(
            "releasegate_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
            registry=own,
        )
        self.latency = Histogram(
            "releasegate_http_request_duration_seconds",
            "Time to answer a request, by method and route template.",
            ("method", "route"),
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=own,
        )
        self.runs = Counter(
            "releasegate_runs_landed",
            "Production runs landed by POST /v1/runs.",
            registry=own,
        )
        self.refusals = Counter(
            "releasegate_access_refused",
            "Requests refused for their token (401) or role (403).",
            ("status",),
            registry=own,
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        pair = self._children.get(key)
        if pair is None:  # labels() is a locked lookup: once per method, route and status
            counted = self.requests.labels(method, route, str(status))
            pair = (counted, self.latency.labels(method, route))
            self._children[key] = pair
        pair[0].inc()
        pair[1].observe(seconds)

    def refused(self, status: int) -> None:
        self.refusals.labels(str(status)).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
