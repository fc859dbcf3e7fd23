"""Signals in the Prometheus text exposition format (version 0.0.4).

For teams that already run Prometheus and Grafana: ``releasegate monitor --prometheus``
prints this for the node exporter's textfile collector, and the server will serve it
at ``/metrics``. One gauge family per fact, labelled by workflow, env and signal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

FAMILIES = (
    ("value", "Current window value of a releasegate monitor signal."),
    ("reference", "Reference window value of the signal."),
    ("statistic", "The signal's test statistic (PSI, chi-square, MMD^2, z)."),
    ("threshold", "The threshold the statistic is compared with at these sample sizes."),
    ("samples", "Runs in the current window behind the signal."),
    ("alert", "1 when the signal alerts, 0 when it does not, -1 when the sample is too small."),
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: Any) -> str | None:
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    return repr(f)


def exposition(workflow: str, env: str, signals: Iterable[Mapping[str, Any]]) -> str:
    """The exposition text for one workflow and environment's signals."""
    rows = list(signals)
    lines: list[str] = []
    for family, help_text in FAMILIES:
        name = f"releasegate_signal_{family}"
        body = []
        for s in rows:
            labels = (
                f'workflow="{_escape(workflow)}",env="{_escape(env)}",'
                f'signal="{_escape(str(s["name"]))}"'
            )
            if family == "alert":
                status = s.get("status")
                value: str | None = {"alert": "1", "ok": "0"}.get(str(status), "-1")
            elif family == "samples":
                value = _number(s.get("n"))
            elif family == "statistic":
                stat = s.get("statistic")
                value = _number(stat.get("value") if isinstance(stat, Mapping) else stat)
            else:
                value = _number(s.get(family))
            if value is not None:
                body.append(f"{name}{{{labels}}} {value}")
        if body:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", *body]
    return "\n".join(lines) + "\n"
