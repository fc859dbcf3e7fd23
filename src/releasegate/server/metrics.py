"""``/metrics``: the server's own counters in the Prometheus text format (prometheus-client).

Requests by route template and status, their latency, runs landed and access refusals.
Each app has its own registry (two apps in one process do not collide); with
``--workers N`` each worker answers for itself, so scrape each replica, or run one worker
per container as most deployments do.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "releasegate_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "releasegate_http_request_duration_seconds",
            "Time to answer a request, by method and route template.",
            ("method", "route"),
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=self.registry,
        )
        self.runs = Counter(
            "releasegate_runs_landed",
            "Production runs landed by POST /v1/runs.",
            registry=self.registry,
        )
        self.refusals = Counter(
            "releasegate_access_refused",
            "Requests refused for their token (401) or role (403).",
            ("status",),
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def refused(self, status: int) -> None:
        self.refusals.labels(str(status)).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
