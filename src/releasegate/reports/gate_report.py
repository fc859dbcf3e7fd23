"""Gate reports: the decision record rendered for the people and tools that act on it.

The input is the JSON report ``release.gate.gate`` stores with every decision, so
a report can be re-rendered from the store at any time. Markdown is for the
approver (a pull-request comment: decision and reasons first, then the evidence),
JUnit XML is for CI test tabs, and summary lines are for the terminal. Model
outputs and case inputs are untrusted text: everything is escaped for its target
and long values are cut, so a report always renders and always parses.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

from releasegate.domain.masking import mask_secrets

CELL_LIMIT = 200
JUNIT_TEXT_LIMIT = 2000
DIFF_LINE_LIMIT = 400
MUST_PASS_LIMIT = 25
FLAKY_LIMIT = 25
SUMMARY_REASONS = 4

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~])")
_CODE_SPAN = re.compile(r"(`[^`\n]+`)")
_BACKTICKS = re.compile(r"`+")
# Characters XML 1.0 cannot carry at all, even escaped (control codes from model output).
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_LEAD = {
    "pass": "Every check passed: this version may be promoted to {env}.",
    "fail": "This version may not be promoted to {env}: {n} check(s) failed.",
    "hold": "The gate cannot decide yet: evidence is missing or too weak. "
    "Do this, then run the gate again:",
    "needs-approval": "The evidence cleared every check; promotion to {env} waits for sign-off.",
}


# -- text helpers ----------------------------------------------------------------------------


def _text(value: Any) -> str:
    """Case inputs and expectations may be structured; show them as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("\r\n", "\n").replace("\r", "\n")
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _line(value: Any, limit: int = 160) -> str:
    """One terminal line: whitespace and line breaks collapsed, then cut."""
    return _cut(" ".join(_text(value).split()), limit)


def _md(value: Any, *, table: bool = False, limit: int | None = None) -> str:
    """Untrusted text as inert Markdown: no HTML, no emphasis, no broken table rows."""
    text = _text(value)
    if limit is not None:
        text = _cut(text, limit)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return text.replace("\n", "<br>" if table else " ")


def _prose(value: Any, *, table: bool = False) -> str:
    """Our own messages: keep their `command` spans as code, escape the rest."""
    parts = _CODE_SPAN.split(_text(value))
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(part.replace("|", "\\|") if table else part)
        else:
            out.append(_md(part, table=table))
    return "".join(out)


def _code(value: Any) -> str:
    """Text for inside a `code span`: spans cannot hold backticks or line breaks."""
    return " ".join(_text(value).replace("`", "'").split()) or "?"


def _num(x: Any, *, signed: bool = False) -> str:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return "—"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def _interval(d: Mapping[str, Any] | None, *, signed: bool = False) -> str:
    if not d:
        return "—"
    key = "delta" if "delta" in d else "estimate"
    s = signed
    return (
        f"{_num(d.get(key), signed=s)} [{_num(d.get('low'), signed=s)}, "
        f"{_num(d.get('high'), signed=s)}]"
    )


def _short(version: Mapping[str, Any] | None) -> str | None:
    return str(version.get("id", ""))[:12] if version else None


def _fence(lines: Sequence[str]) -> str:
    """A code fence longer than any backtick run inside, so the block cannot be closed early."""
    longest = max((len(m) for line in lines for m in _BACKTICKS.findall(line)), default=0)
    return "`" * max(3, longest + 1)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


# -- markdown --------------------------------------------------------------------------------


def _title(r: Mapping[str, Any]) -> list[str]:
    verdict = str(r.get("verdict", "unknown"))
    where = _md(f"{r.get('workflow', '?')}@{r.get('env', '?')}")
    cand, base = _short(r.get("version")), _short(r.get("baseline"))
    versus = f"`{cand}` vs `{base}`" if base else f"`{cand}` (first release, no baseline)"
    lines = [f"## Release gate **{verdict.upper()}** · {where} · {versus}", ""]
    version = r.get("version") or {}
    about = []
    if version.get("owner"):
        about.append(f"by {_md(version['owner'])}")
    if version.get("reason"):
        about.append(f"“{_md(version['reason'], limit=CELL_LIMIT)}”")
    if r.get("stakes"):
        about.append(f"stakes: {_md(r['stakes'])}")
    if about:
        lines += ["Candidate " + " · ".join(about), ""]
    model = r.get("model") or {}
    if model:
        pin = model.get("digest") or model.get("revision")
        shown = f"Model: {_md(model.get('runtime', '?'))} `{_code(model.get('name'))}`"
        shown += f" pinned at `{_code(pin)}`" if model.get("pinned") and pin else ""
        shown += "" if model.get("pinned") else " · **not pinned**"
        lines += [shown, ""]
    return lines


def _next_step(r: Mapping[str, Any]) -> str | None:
    cand, env = _short(r.get("version")), _code(r.get("env", "ENV"))
    return {
        "pass": f"Next: `releasegate promote {cand} --env {env}`.",
        "fail": "Next: fix what failed (see Checks and Must-pass failures), register the fix "
        "as a new version, evaluate it and gate it again.",
        "hold": f"Then: `releasegate gate {cand} --env {env}`.",
        "needs-approval": f"Next: an approver other than the author runs "
        f"`releasegate approve {cand} --env {env} --as NAME`.",
    }.get(str(r.get("verdict")))


def _decision(r: Mapping[str, Any]) -> list[str]:
    verdict = str(r.get("verdict", "unknown"))
    checks = r.get("checks") or []
    failed = sum(1 for c in checks if c.get("status") == "fail")
    lead = _LEAD.get(verdict, "Verdict: {verdict}.").format(
        env=_md(r.get("env", "?")), n=failed, verdict=_md(verdict)
    )
    lines = ["### Decision", "", f"**{verdict.upper()}**: {lead}", ""]
    lines += [f"- {_prose(reason)}" for reason in r.get("reasons") or []]
    step = _next_step(r)
    if step:
        lines += ["", step]
    return lines + [""]


def _change(r: Mapping[str, Any]) -> list[str]:
    change = r.get("change") or {}
    lines = ["### What changed", ""]
    if change.get("first_release") or not r.get("baseline"):
        cls = change.get("class")
        lines.append(
            f"First release to {_md(r.get('env', '?'))}: nothing runs there yet, so "
            "there is no diff and no paired comparison"
            + (f" (change class `{cls}`)." if cls else ".")
        )
        return lines + [""]
    classes = [str(c) for c in change.get("classes") or []]
    cls = change.get("class")
    head = f"Change class: **{_md(cls)}**" if cls else "No change to the manifest"
    if len(classes) > 1:
        head += " (touches " + ", ".join(f"`{c}`" for c in classes) + ")"
    lines += [head + ".", ""]
    diff = [str(line) for line in change.get("diff") or []]
    if diff:
        shown = diff[:DIFF_LINE_LIMIT]
        fence = _fence(shown)
        lines += [fence + "diff", *shown, fence]
        if len(diff) > len(shown):
            lines.append(f"… {len(diff) - len(shown)} more diff lines not shown.")
        lines.append("")
    return lines


def _metrics(r: Mapping[str, Any]) -> list[str]:
    metrics = r.get("metrics") or []
    lines = ["### Metrics", ""]
    if not metrics:
        return lines + ["No metrics: the candidate has no evaluation on the current suite.", ""]
    lines += [
        _row(["metric", "baseline", "candidate", "delta [95% CI]", "MDE", "method"]),
        _row(["---"] * 6),
    ]
    for m in metrics:
        name = _md(m.get("name", "?"), table=True)
        if isinstance(m.get("floor"), int | float):
            name += f" (floor {_num(m['floor'])})"
        comp = m.get("comparison")
        cand = m.get("candidate") or {}
        delta, mde = "—", "—"
        source = cand
        if comp:
            delta = _interval(comp, signed=True)
            if comp.get("worse"):
                delta += " **worse**"
            elif comp.get("better"):
                delta += " better"
            mde = _num(comp.get("mde"))
            source = comp
        method = _md(source.get("method", "—"), table=True)
        if source.get("n") is not None:
            method += f", n={source['n']}"
        lines.append(
            _row([name, _interval(m.get("baseline")), _interval(cand), delta, mde, method])
        )
    lines.append("")
    clustered = [
        m
        for m in metrics
        if str((m.get("candidate") or {}).get("method", "")).startswith("clustered")
    ]
    if clustered:
        method = _md((clustered[0].get("candidate") or {}).get("method"))
        note = (
            f"Cases share clusters, so the candidate's intervals are cluster-robust ({method}): "
            "cases in one cluster count as one independent unit."
        )
        if any(m.get("comparison") for m in clustered):
            note += " The paired comparison still treats every case as independent."
        lines += [note, ""]
    budgets = r.get("budgets")
    if budgets:
        limits = ((r.get("policy") or {}).get("budgets")) or {}
        lat, cost = budgets.get("latency_p95_ms"), budgets.get("cost_per_case_usd")
        lat_limit, cost_limit = limits.get("latency_p95_ms"), limits.get("cost_per_case_usd")
        parts = []
        if isinstance(lat, int | float):
            parts.append(
                f"latency p95 {lat:.1f} ms"
                + (f" (budget {lat_limit:.1f} ms)" if lat_limit is not None else "")
            )
        if isinstance(cost, int | float):
            parts.append(
                f"cost per case ${cost:.6f}"
                + (f" (budget ${cost_limit:.6f})" if cost_limit is not None else "")
            )
        if parts:
            lines += ["Candidate " + " · ".join(parts) + ".", ""]
    return lines


def _checks(r: Mapping[str, Any]) -> list[str]:
    checks = r.get("checks") or []
    lines = ["### Checks", ""]
    if not checks:
        return lines + ["No checks recorded.", ""]
    lines += [_row(["check", "status", "detail"]), _row(["---"] * 3)]
    for c in checks:
        status = str(c.get("status", "?"))
        shown = f"**{status.upper()}**" if status in ("fail", "hold") else _md(status)
        lines.append(
            _row(
                [
                    _md(c.get("name", "?"), table=True),
                    shown,
                    _prose(c.get("detail", ""), table=True),
                ]
            )
        )
    return lines + [""]


MUST_PASS_IGNORED = "ignored: the {env} policy does not enforce must-pass cases (must_pass: false)"


def _masked(value: Any) -> Any:
    """A quoted text with credentials masked (a judge's answer may echo a key)."""
    return None if value is None else mask_secrets(_text(value))


def _must_pass(r: Mapping[str, Any]) -> list[str]:
    mp = r.get("must_pass") or {}
    failures = mp.get("failures") or []
    if not failures:
        return []
    epochs = (r.get("eval") or {}).get("epochs")
    lines = [
        f"### Must-pass failures ({len(failures)} of {mp.get('total', '?')})",
        "",
        *(
            []
            if is_must_pass_enforced(r)
            else [MUST_PASS_IGNORED.format(env=r.get("env", "?")).capitalize() + ".", ""]
        ),
        _row(["case", "input", "expected", "output", "detail"]),
        _row(["---"] * 5),
    ]
    for f in failures[:MUST_PASS_LIMIT]:
        case = f"`{_code(f.get('case_id'))}`".replace("|", "\\|")
        if f.get("epochs_failed") and epochs and epochs > 1:
            case += f" (failed {f['epochs_failed']} of {epochs} epochs)"
        lines.append(
            _row(
                [case]
                + [
                    _md(_masked(f.get(k)), table=True, limit=CELL_LIMIT) or "—"
                    for k in ("input", "expected", "output", "detail")
                ]
            )
        )
    if len(failures) > MUST_PASS_LIMIT:
        lines.append(
            f"\n… {len(failures) - MUST_PASS_LIMIT} more failed must-pass cases not shown."
        )
    return lines + [""]


def _precision(r: Mapping[str, Any]) -> list[str]:
    """Epoch advice and flaky cases, from the eval the gate read (absent: nothing)."""
    ev = r.get("eval") or {}
    advice = ev.get("epoch_advice") or {}
    flaky = ev.get("flaky") or []
    if not advice and not flaky:
        return []
    lines = [f"### Epochs and flaky cases ({ev.get('epochs', '?')} epochs per case)", ""]
    for metric, a in advice.items():
        lines.append(f"- {_md(metric)}: {_md(a.get('text', ''))}")
    if advice:
        lines.append("")
    if flaky:
        total = ev.get("flaky_total") or len(flaky)
        lines += [
            f"{total} flaky case(s): they passed in some epochs and failed in others.",
            "",
            _row(["case", "passed", "per epoch (1 pass, 0 fail)"]),
            _row(["---"] * 3),
        ]
        for f in flaky[:FLAKY_LIMIT]:
            if not isinstance(f, Mapping):  # older summaries listed bare case ids
                f = {"case_id": f}
            case = f"`{_code(f.get('case_id'))}`".replace("|", "\\|")
            per_epoch = " ".join(str(int(bool(v))) for v in f.get("per_epoch") or [])
            passed = f"{f.get('passed', '?')} of {f.get('epochs', '?')}"
            lines.append(_row([case, passed, per_epoch or "—"]))
        shown = min(len(flaky), FLAKY_LIMIT)
        if total > shown:
            lines.append(f"\n… {total - shown} more flaky cases not shown.")
        lines.append("")
    return lines


def _approvals(r: Mapping[str, Any]) -> list[str]:
    approvals = r.get("approvals") or {}
    need = approvals.get("needed") or {}
    wanted = []
    if need.get("named"):
        wanted.append(f"{need['named']} named approver(s)")
    if need.get("business"):
        wanted.append("the business approver")
    given = [
        f"{_md(a.get('approver', '?'))} ({_md(a.get('role', '?'))})"
        for a in approvals.get("given") or []
    ]
    return [
        "### Approvals",
        "",
        "Needed: "
        + (" and ".join(wanted) if wanted else "none (not required by the policy)")
        + ".",
        "Given: " + (", ".join(given) if given else "none yet") + ".",
        "",
    ]


def _footer(r: Mapping[str, Any]) -> list[str]:
    parts = [f"decision `{_code(r.get('decision_id'))}`"]
    suite = r.get("suite")
    if suite:
        parts.append(
            f"suite {_md(suite.get('name', '?'))} `{_code(suite.get('id'))}` "
            f"({suite.get('cases', '?')} cases)"
        )
    else:
        parts.append("suite: none")
    policy = r.get("policy") or {}
    parts.append(f"policy `{_code(policy.get('id'))}`")
    ev = r.get("eval")
    if ev:
        parts.append(f"eval `{_code(ev.get('eval_id'))}` ({ev.get('epochs', '?')} epoch(s))")
    else:
        parts.append("eval: none")
    if r.get("created_at"):
        parts.append(_md(r["created_at"]))
    return ["---", "", "<sub>" + " · ".join(parts) + "</sub>", ""]


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report an approver reads: the verdict and what to do first, then the evidence."""
    lines = [
        *_title(report),
        *_decision(report),
        *_change(report),
        *_metrics(report),
        *_checks(report),
        *_must_pass(report),
        *_precision(report),
        *_approvals(report),
        *_footer(report),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


# -- junit -----------------------------------------------------------------------------------


def _xml(value: Any, limit: int = JUNIT_TEXT_LIMIT) -> str:
    return _XML_INVALID.sub("\ufffd", _cut(mask_secrets(_text(value)), limit))


def is_must_pass_enforced(report: Mapping[str, Any]) -> bool:
    """Whether the environment's policy gates on must-pass cases (``must_pass: false``
    lets a gate pass with them failing; the report still lists them, marked ignored)."""
    return bool((report.get("policy") or {}).get("must_pass", True))


def render_junit(report: Mapping[str, Any]) -> str:
    """JUnit XML so CI shows each check and failed must-pass case as a test.

    It agrees with the verdict: a must-pass case that failed where the environment's
    policy does not enforce must-pass (``must_pass: false``) is written as ``skipped``
    with the reason, not as a failure, and the suite carries the property
    ``must_pass_enforced=false``; CI shows it, but not red where the gate passed.
    """
    r = report
    suite = ET.Element(
        "testsuite", name=_xml(f"releasegate gate {r.get('workflow', '?')}@{r.get('env', '?')}")
    )
    if r.get("created_at"):
        suite.set("timestamp", _xml(r["created_at"]))
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("verdict", r.get("verdict")),
        ("decision_id", r.get("decision_id")),
        ("version_id", (r.get("version") or {}).get("id")),
        ("baseline_id", (r.get("baseline") or {}).get("id")),
        ("suite_id", (r.get("suite") or {}).get("id")),
        ("policy_id", (r.get("policy") or {}).get("id")),
        ("model_digest", (r.get("model") or {}).get("digest")),
        ("must_pass_enforced", str(is_must_pass_enforced(r)).lower()),
    ):
        if value is not None:
            ET.SubElement(props, "property", name=name, value=_xml(value))

    failures = skipped = tests = 0
    for c in r.get("checks") or []:
        tests += 1
        case = ET.SubElement(
            suite, "testcase", classname="gate.checks", name=_xml(c.get("name", "?")), time="0"
        )
        status, detail = c.get("status"), _xml(c.get("detail", ""))
        if status == "fail":
            failures += 1
            ET.SubElement(case, "failure", message=detail, type="fail").text = detail
        elif status == "hold":
            skipped += 1
            ET.SubElement(case, "skipped", message=detail)
    epochs = (r.get("eval") or {}).get("epochs")
    enforced = is_must_pass_enforced(r)
    for f in (r.get("must_pass") or {}).get("failures") or []:
        tests += 1
        case = ET.SubElement(
            suite,
            "testcase",
            classname="gate.must_pass",
            name=_xml(f.get("case_id", "?")),
            time="0",
        )
        body = [
            f"input: {_text(f.get('input'))}",
            f"expected: {_text(f.get('expected'))}",
            f"output: {_text(f.get('output'))}",
            f"detail: {_text(f.get('detail'))}",
        ]
        if f.get("epochs_failed") and epochs and epochs > 1:
            body.append(f"failed in {f['epochs_failed']} of {epochs} epoch(s)")
        message = (
            f"expected: {_cut(_text(f.get('expected')), CELL_LIMIT)}; "
            f"got: {_cut(_text(f.get('output')), CELL_LIMIT)}"
        )
        if enforced:
            failures += 1
            failure = ET.SubElement(case, "failure", message=_xml(message), type="must_pass")
            failure.text = "\n".join(_xml(line) for line in body)
        else:
            skipped += 1
            ignored = f"{MUST_PASS_IGNORED.format(env=r.get('env', '?'))}; {message}"
            ET.SubElement(case, "skipped", message=_xml(ignored))
            ET.SubElement(case, "system-out").text = "\n".join(_xml(line) for line in body)
    ET.SubElement(suite, "system-out").text = "\n".join(
        _xml(line) for line in render_summary_lines(r)
    )

    counts = {
        "tests": str(tests),
        "failures": str(failures),
        "errors": "0",
        "skipped": str(skipped),
        "time": "0",
    }
    for key, value in counts.items():
        suite.set(key, value)
    root = ET.Element("testsuites", {"name": "releasegate", **counts})
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# -- terminal --------------------------------------------------------------------------------


def render_summary_lines(report: Mapping[str, Any]) -> list[str]:
    """A few plain lines for the terminal: verdict, why, and where to go next."""
    r = report
    verdict = str(r.get("verdict", "unknown"))
    cand, base = _short(r.get("version")), _short(r.get("baseline"))
    env = _line(r.get("env", "?"), 60)
    change = (r.get("change") or {}).get("class")
    head = f"gate {verdict.upper()}  {_line(r.get('workflow', '?'), 60)}@{env}  {cand}"
    head += f" vs {base}" if base else " (first release)"
    if change and base:
        head += f"  ({change} change)"
    reasons = [_line(x) for x in r.get("reasons") or []] or ["no reasons recorded"]
    lines = [head, *(f"  - {x}" for x in reasons[:SUMMARY_REASONS])]
    if len(reasons) > SUMMARY_REASONS:
        lines.append(f"  (+{len(reasons) - SUMMARY_REASONS} more in the report)")
    lines.append(next_step(r))
    lines.append(f"decision: {_line(r.get('decision_id', '?'))}")
    return lines


def next_step(report: Mapping[str, Any]) -> str:
    """The one line that says what to run next, as the Markdown report ends."""
    cand, env = _short(report.get("version")), _line(report.get("env", "?"), 60)
    return {
        "pass": f"next: releasegate promote {cand} --env {env}",
        "fail": "next: fix the failed checks above, register a new version and gate it again",
        "hold": f"next: do the above, then releasegate gate {cand} --env {env}",
        "needs-approval": f"next: releasegate approve {cand} --env {env} --as NAME "
        "(not the author)",
    }.get(str(report.get("verdict", "unknown")), "next: read the full report")
