"""The weekly stability memo, as Markdown and as a self-contained HTML page.

Written for the operator who owns the workflow and never read its code: first what
needs doing, then per environment what changed, how it ran against the week before,
which signals drifted, which alerts fired, cost, and the charts. The data comes from
``monitor.memo.build_memo``; this module only renders it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

CHART_SIGNALS = ("error_rate", "latency_p95", "cost_per_task", "escalation_rate", "label_mix")
"""The signals charted, in the order the memo shows them."""
STATUS_MARK = {"alert": "ALERT", "ok": "ok", "insufficient": "too few runs"}


def _fmt(value: Any, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        if unit == "%":
            return f"{value * 100:.1f}%"
        if unit == "$":
            return f"${value:.5f}" if value < 1 else f"${value:,.2f}"
        if unit == "ms":
            return f"{value:,.0f} ms"
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _unit(name: str) -> str:
    if name.endswith("_rate") or name == "quality":
        return "%"
    if name.startswith("cost"):
        return "$"
    if name.startswith("latency"):
        return "ms"
    return ""


def signal_value(value: float | None, name: str) -> str:
    """A signal's value as people read it: rates in %, latency in ms, cost in USD."""
    return _fmt(None if value is None else float(value), _unit(name))


def _signal_rows(signals: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for s in signals:
        name = str(s["name"])
        rows.append(
            [
                str(s["name"]),
                signal_value(s.get("value"), name),
                signal_value(s.get("reference"), name),
                STATUS_MARK.get(str(s.get("status")), str(s.get("status"))),
                str(s.get("detail", "")),
            ]
        )
    return rows


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return out


def nothing_to_do(memo: Mapping[str, Any]) -> str:
    """The line when there is no action: "too few runs to judge" is not "all is well"."""
    if memo.get("status") == "insufficient":
        verdict = str(memo.get("verdict") or "too few runs to judge")
        return verdict[:1].upper() + verdict[1:] + ": nothing could be judged this week."
    return "Nothing needs doing: no alerts, no drift, no changes."


def charts(env: Mapping[str, Any]) -> list[tuple[str, str]]:
    """An environment's charts (name, SVG) in ``CHART_SIGNALS`` order, however its mapping
    is ordered (a JSON answer's keys are sorted)."""
    rank = {name: i for i, name in enumerate(CHART_SIGNALS)}
    return sorted(env["charts"].items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))


def render_markdown(memo: Mapping[str, Any], chart_dir: str | None = "charts") -> str:
    """The memo as Markdown; charts are linked as ``chart_dir/<env>-<signal>.svg``."""
    out = [
        f"# {memo['workflow']}: stability memo, week {memo['week']}",
        "",
        f"{memo['start'][:10]} to {memo['end'][:10]} · generated {memo['generated_at'][:16]}Z",
        "",
        "## Recommended actions",
        "",
    ]
    actions = memo.get("actions") or [nothing_to_do(memo)]
    out += [f"{i}. {a}" for i, a in enumerate(actions, 1)]
    for env in memo["environments"]:
        name = env["env"]
        out += ["", f"## {name}", ""]
        runs, prev = env["runs"], env["runs_previous"]
        out.append(
            f"**{runs:,} runs** this week (previous week {prev:,}); "
            f"running {env['running'] or 'nothing'}."
        )
        cost = env["cost"]
        out.append(
            f"Cost {_fmt(cost['total'], '$')} ({_fmt(cost['per_task'], '$')} per task; "
            f"previous week {_fmt(cost['per_task_previous'], '$')} per task)."
        )
        out += ["", "### What changed", ""]
        if env["changes"]:
            out += [
                f"- {c['at'][:16]}Z {c['action']} to `{c['version_id'][:12]}` by {c['actor']}"
                + (f" ({c['reason']})" if c.get("reason") else "")
                for c in env["changes"]
            ]
        else:
            out.append("- No promotions or rollbacks.")
        out += ["", "### Signals against the reference", ""]
        out.append(f"Reference: {env['reference']}.")
        out.append("")
        out += _md_table(
            ["signal", "this week", "reference", "status", "detail"], _signal_rows(env["signals"])
        )
        if env.get("review"):
            out += [
                "",
                "### Human review",
                "",
                env["review"]["summary"][:1].upper() + env["review"]["summary"][1:] + ".",
            ]
        out += ["", "### Alerts and incidents", ""]
        if env["alerts"]:
            out += [f"- {a['at'][:16]}Z **{a['severity']}** {a['message']}" for a in env["alerts"]]
        else:
            out.append("- None.")
        if chart_dir and env.get("charts"):
            out += ["", "### Trends", ""]
            out += [f"![{n}]({chart_dir}/{name}-{n}.svg)" for n, _ in charts(env)]
    return "\n".join(out) + "\n"


CSS = """
body{font-family:system-ui,sans-serif;max-width:980px;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.5rem}h2{border-bottom:1px solid #ddd;padding-bottom:.3rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;font-size:.9rem}
td,th{border-bottom:1px solid #eee;padding:.35rem .5rem;text-align:left;vertical-align:top}
.alert{color:#b91c1c;font-weight:600}.ok{color:#15803d}.insufficient{color:#777}
.charts{display:flex;flex-wrap:wrap;gap:.5rem}.meta{color:#666}
ol li{margin:.3rem 0}
"""


def render_html(memo: Mapping[str, Any]) -> str:
    """The memo as one HTML file with its charts inline."""
    e = escape
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(memo['workflow'])} stability memo {e(memo['week'])}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{e(memo['workflow'])}: stability memo, week {e(memo['week'])}</h1>",
        f"<p class='meta'>{e(memo['start'][:10])} to {e(memo['end'][:10])}</p>",
        "<h2>Recommended actions</h2><ol>",
    ]
    actions = memo.get("actions") or [nothing_to_do(memo)]
    out += [f"<li>{e(a)}</li>" for a in actions]
    out.append("</ol>")
    for env in memo["environments"]:
        cost = env["cost"]
        out += [
            f"<h2>{e(env['env'])}</h2>",
            f"<p><b>{env['runs']:,} runs</b> (previous week {env['runs_previous']:,}); running "
            f"<code>{e(env['running'] or 'nothing')}</code>. Cost {e(_fmt(cost['total'], '$'))} "
            f"({e(_fmt(cost['per_task'], '$'))} per task).</p>",
            "<h3>What changed</h3><ul>",
        ]
        out += [
            f"<li>{e(c['at'][:16])}Z {e(c['action'])} to <code>{e(c['version_id'][:12])}</code>"
            f" by {e(c['actor'])}</li>"
            for c in env["changes"]
        ] or ["<li>No promotions or rollbacks.</li>"]
        out += [
            "</ul><h3>Signals</h3>",
            f"<p class='meta'>Reference: {e(env['reference'])}.</p>",
            "<table><tr><th>signal</th><th>this week</th><th>reference</th><th>status</th>"
            "<th>detail</th></tr>",
        ]
        for s, row in zip(env["signals"], _signal_rows(env["signals"]), strict=True):
            status = str(s.get("status"))
            out.append(
                "<tr>"
                + "".join(
                    f"<td class='{e(status)}'>{e(c)}</td>" if i == 3 else f"<td>{e(c)}</td>"
                    for i, c in enumerate(row)
                )
                + "</tr>"
            )
        out.append("</table>")
        if env.get("review"):
            out.append(f"<h3>Human review</h3><p>{e(env['review']['summary'])}.</p>")
        out.append("<h3>Alerts and incidents</h3><ul>")
        out += [
            f"<li class='alert'>{e(a['at'][:16])}Z {e(a['severity'])}: {e(a['message'])}</li>"
            for a in env["alerts"]
        ] or ["<li>None.</li>"]
        out.append("</ul>")
        if env.get("charts"):
            out.append("<h3>Trends</h3><div class='charts'>")
            out += [svg for _, svg in charts(env)]
            out.append("</div>")
    out.append("</body></html>")
    return "\n".join(out)


def write_memo(memo: dict[str, Any], target: Path) -> dict[str, str]:
    """``memo.md``, a self-contained ``memo.html`` and ``charts/<env>-<signal>.svg``
    (which the Markdown links) in ``target``; returns what was written. ``memo`` is
    ``monitor.memo.build_memo``'s, or the server's answer with its charts
    (``GET /v1/workflows/{workflow}/memo?charts=true``): the same files either way."""
    target.mkdir(parents=True, exist_ok=True)
    for env in memo["environments"]:
        for name, svg in env["charts"].items():
            (target / "charts").mkdir(exist_ok=True)
            (target / "charts" / f"{env['env']}-{name}.svg").write_text(svg)
    (target / "memo.md").write_text(render_markdown(memo))
    (target / "memo.html").write_text(render_html(memo))
    return {"markdown": str(target / "memo.md"), "html": str(target / "memo.html")}
