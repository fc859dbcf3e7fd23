"""The weekly stability memo's facts: one ISO week of one workflow, every environment.

What ran, what changed, how it ran against the reference and the week before, which
alerts fired, what it cost, and what to do next. Actions are rules over those facts,
so the memo tells an operator the next command, not just the numbers.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from releasegate.errors import InputError
from releasegate.monitor.service import monitor, series, signal_dict
from releasegate.release.review_queue import review_numbers
from releasegate.reports.memo import CHART_SIGNALS
from releasegate.reports.plots import Point, line_chart
from releasegate.store.alerts import AlertRepo
from releasegate.store.engine import Store
from releasegate.store.environments import EnvironmentRepo
from releasegate.store.runs import RunRepo
from releasegate.store.workflows import WorkflowRepo

UNITS = {"latency_p95": "ms", "cost_per_task": "USD", "error_rate": "share"}


def parse_week(text: str | None, today: date | None = None) -> tuple[str, datetime, datetime]:
    """``2026-W47`` (ISO week) or a date inside the week; default: the last full week."""
    if text is None:
        day = (today or datetime.now(UTC).date()) - timedelta(days=7)
    else:
        try:
            if "W" in text.upper():
                year, week = text.upper().split("-W")
                day = date.fromisocalendar(int(year), int(week), 1)
            else:
                day = date.fromisoformat(text)
        except ValueError:
            raise InputError(
                f"'{text}' is not a week", field="--week", hint="write 2026-W47 or a date"
            ) from None
    monday = day - timedelta(days=day.isoweekday() - 1)
    start = datetime(monday.year, monday.month, monday.day, tzinfo=UTC)
    iso = monday.isocalendar()
    return f"{iso.year}-W{iso.week:02d}", start, start + timedelta(days=7)


def _actions(workflow: str, env: dict[str, Any]) -> list[str]:
    name = env["env"]
    out = []
    for v in env["versions"]:
        if not v["gated"]:
            out.append(
                f"{name}: version {v['version_id'][:12]} ran {v['runs']} times without passing "
                f"the gate. Roll back (`releasegate rollback {workflow} --env {name}`) or gate it."
            )
    if env["runs"] == 0 and env["runs_previous"] > 0:
        out.append(
            f"{name}: runs stopped arriving this week ({env['runs_previous']:,} the week "
            "before). Check that the application still records runs (the SDK's client.run, "
            "or `releasegate runs import`)."
        )
    undelivered = [a for a in env["alerts"] if a["delivery"] != "routed"]
    if undelivered:
        last = undelivered[-1]
        why = f" (last error: {last['error']})" if last["error"] else ""
        n = len(undelivered)
        out.append(
            f"{name}: {n} alert{'s' * (n != 1)} not delivered yet{why}. Fix the route; the "
            f"next `releasegate monitor {workflow} --env {name}` sends {'them' if n > 1 else 'it'}."
        )
    for s in env["signals"]:
        if s["status"] != "alert":
            continue
        sig = s["name"]
        if sig in ("input_drift", "label_mix", "novel_inputs"):
            out.append(
                f"{name}: the inputs changed ({s['detail']}). Add recent examples to the suite "
                "(`releasegate suite add-case --from-run RUN_ID`) and re-run the gate."
            )
        elif sig in ("error_rate", "quality", "negative_feedback_rate", "edit_rate"):
            out.append(
                f"{name}: {s['detail']}. Look at this week's failing runs; if the version "
                f"changed this week, consider `releasegate rollback {workflow} --env {name}`."
            )
        elif sig.startswith("latency") or sig.startswith("cost"):
            out.append(f"{name}: {s['detail']}. Check the model provider and prompt length.")
        else:
            out.append(f"{name}: {s['detail']}.")
    return out


def _status(signals: Any) -> str:
    statuses = [s.status for s in signals]
    if "alert" in statuses:
        return "alert"
    return "ok" if any(st != "insufficient" for st in statuses) else "insufficient"


def build_memo(
    store: Store, workflow: str, week: str | None = None, *, embeddings: bool = True
) -> dict[str, Any]:
    """The weekly memo of ``workflow``; ``embeddings=False`` leaves out the embedding drift
    signals (and the model time they take), as ``monitor --no-embeddings`` does."""
    label, start, end = parse_week(week)
    with store.read() as conn:
        wf = WorkflowRepo(conn).get(workflow)
    envs = []
    actions: list[str] = []
    for env in wf.environments:
        with store.read() as conn:
            history = EnvironmentRepo(conn).history(workflow, env)
            cost_rows = RunRepo(conn).window(
                workflow, env, start.timestamp(), end.timestamp(), ["cost_usd"]
            )
            prev_rows = RunRepo(conn).window(
                workflow,
                env,
                (start - timedelta(days=7)).timestamp(),
                start.timestamp(),
                ["cost_usd"],
            )
            alerts = AlertRepo(conn).between(workflow, start, end, env=env)
        running = [h for h in history if h.created_at < end]
        if not running and not cost_rows:
            continue
        result = monitor(
            store,
            workflow,
            env,
            window=timedelta(days=7),
            now=end,
            alert=False,
            embeddings=embeddings,
        )
        charts = {}
        if result.runs_reference:
            points = series(
                store,
                workflow,
                env,
                end=end,
                buckets=14,
                bucket=timedelta(days=1),
                reference=result.reference,
                min_sample=max(10, min(50, result.runs // 14 or 10)),
            )
            refs = {s.name: s.reference for s in result.signals}
            for name in CHART_SIGNALS:
                if name in points:
                    charts[name] = line_chart(
                        name.replace("_", " "),
                        [Point(f"{d:%m-%d}", v, a) for d, v, a in points[name]],
                        reference=refs.get(name) if name != "label_mix" else None,
                        unit=UNITS.get(name, ""),
                    )
        total = sum(c for (c,) in cost_rows if c is not None)
        prev_total = sum(c for (c,) in prev_rows if c is not None)
        entry: dict[str, Any] = {
            "env": env,
            "runs": len(cost_rows),
            "runs_previous": len(prev_rows),
            "running": running[-1].version_id[:12] if running else None,
            "changes": [h.as_dict() for h in history if start <= h.created_at < end],
            "reference": result.reference_note,
            "signals": [signal_dict(s) for s in result.signals],
            "versions": result.versions,
            "status": _status(result.signals),
            "verdict": result.verdict if _status(result.signals) == "insufficient" else None,
            "alerts": [
                {
                    "at": a.created_at.isoformat(),
                    "severity": a.severity,
                    "message": a.message,
                    "delivery": a.status,
                    "attempts": a.attempts,
                    "error": a.last_error,
                }
                for a in alerts
            ],
            "cost": {
                "total": total,
                "per_task": total / len(cost_rows) if cost_rows else None,
                "per_task_previous": prev_total / len(prev_rows) if prev_rows else None,
            },
            "charts": charts,
            "review": review_numbers(store, workflow, env, start, end).as_dict(),
        }
        envs.append(entry)
        actions += _actions(workflow, entry)
    judged = any(e["status"] != "insufficient" for e in envs)
    return {
        "workflow": workflow,
        "week": label,
        "status": "insufficient" if not judged else "alert" if actions else "ok",
        "verdict": (
            None
            if judged
            else "too few runs to judge: "
            + ("; ".join(f"{e['env']}: {e['verdict']}" for e in envs) or "no runs this week")
        ),
        "start": start.isoformat(),
        "end": end.isoformat(),
        "generated_at": datetime.now(UTC).isoformat(),
        "environments": envs,
        "actions": actions,
    }
