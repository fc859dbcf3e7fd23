"""Gate reports: the decision record rendered for the people and tools that act on it.

The input is the typed report (``domain.gate_report.GateReport``) that
``release.gate.gate`` stores with every decision, so a report can be re-rendered
from the store at any time; its JSON is accepted too, and read into the type first.
Markdown is for the approver (a pull-request comment: decision and reasons first,
then the evidence), JUnit XML is for CI test tabs, and summary lines are for the
terminal. Model outputs and case inputs are untrusted text: everything is escaped
for its target and long values are cut, so a report always renders and always parses.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

from releasegate.domain.decision import Status
from releasegate.domain.gate_report import BaselineInfo, GateReport, VersionInfo
from releasegate.domain.masking import mask_secrets
from releasegate.domain.stats import Interval, PairedComparison

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


def _interval(iv: Interval | PairedComparison | None, *, signed: bool = False) -> str:
    if iv is None:
        return "—"
    s = signed
    value = iv.delta if isinstance(iv, PairedComparison) else iv.estimate
    return f"{_num(value, signed=s)} [{_num(iv.low, signed=s)}, {_num(iv.high, signed=s)}]"


def _short(version: VersionInfo | BaselineInfo | None) -> str | None:
    return version.version_id[:12] if version else None


def _fence(lines: Sequence[str]) -> str:
    """A code fence longer than any backtick run inside, so the block cannot be closed early."""
    longest = max((len(m) for line in lines for m in _BACKTICKS.findall(line)), default=0)
    return "`" * max(3, longest + 1)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


# -- markdown --------------------------------------------------------------------------------


def _title(r: GateReport) -> list[str]:
    verdict = r.verdict.value
    where = _md(f"{r.workflow}@{r.env}")
    cand, base = _short(r.version), _short(r.baseline)
    versus = f"`{cand}` vs `{base}`" if base else f"`{cand}` (first release, no baseline)"
    lines = [f"## Release gate **{verdict.upper()}** · {where} · {versus}", ""]
    about = []
    if r.version.owner:
        about.append(f"by {_md(r.version.owner)}")
    if r.version.reason:
        about.append(f"“{_md(r.version.reason, limit=CELL_LIMIT)}”")
    if r.stakes:
        about.append(f"stakes: {_md(r.stakes)}")
    if about:
        lines += ["Candidate " + " · ".join(about), ""]
    model = r.model
    if model is not None:
        pin = model.digest or model.revision
        shown = f"Model: {_md(model.runtime or '?')} `{_code(model.name)}`"
        shown += f" pinned at `{_code(pin)}`" if model.pinned and pin else ""
        shown += "" if model.pinned else " · **not pinned**"
        lines += [shown, ""]
    return lines


def _next_step(r: GateReport) -> str | None:
    cand, env = _short(r.version), _code(r.env or "ENV")
    return {
        "pass": f"Next: `releasegate promote {cand} --env {env}`.",
        "fail": "Next: fix what failed (see Checks and Must-pass failures), register the fix "
        "as a new version, evaluate it and gate it again.",
        "hold": f"Then: `releasegate gate {cand} --env {env}`.",
        "needs-approval": f"Next: an approver other than the author runs "
        f"`releasegate approve {cand} --env {env} --as NAME`.",
    }.get(r.verdict.value)


def _decision(r: GateReport) -> list[str]:
    verdict = r.verdict.value
    failed = sum(1 for c in r.checks if c.status is Status.FAIL)
    lead = _LEAD.get(verdict, "Verdict: {verdict}.").format(
        env=_md(r.env or "?"), n=failed, verdict=_md(verdict)
    )
    lines = ["### Decision", "", f"**{verdict.upper()}**: {lead}", ""]
    lines += [f"- {_prose(reason)}" for reason in r.reasons]
    step = _next_step(r)
    if step:
        lines += ["", step]
    return lines + [""]


def _change(r: GateReport) -> list[str]:
    change = r.change
    lines = ["### What changed", ""]
    cls = change.change_class
    if change.first_release or r.baseline is None:
        lines.append(
            f"First release to {_md(r.env or '?')}: nothing runs there yet, so "
            "there is no diff and no paired comparison"
            + (f" (change class `{cls}`)." if cls else ".")
        )
        return lines + [""]
    classes = list(change.classes)
    head = f"Change class: **{_md(cls)}**" if cls else "No change to the manifest"
    if len(classes) > 1:
        head += " (touches " + ", ".join(f"`{c}`" for c in classes) + ")"
    lines += [head + ".", ""]
    diff = list(change.diff)
    if diff:
        shown = diff[:DIFF_LINE_LIMIT]
        fence = _fence(shown)
        lines += [fence + "diff", *shown, fence]
        if len(diff) > len(shown):
            lines.append(f"… {len(diff) - len(shown)} more diff lines not shown.")
        lines.append("")
    return lines


def _metrics(r: GateReport) -> list[str]:
    lines = ["### Metrics", ""]
    if not r.metrics:
        return lines + ["No metrics: the candidate has no evaluation on the current suite.", ""]
    lines += [
        _row(["metric", "baseline", "candidate", "delta [95% CI]", "MDE", "method"]),
        _row(["---"] * 6),
    ]
    for m in r.metrics:
        name = _md(m.name or "?", table=True)
        if m.floor is not None:
            name += f" (floor {_num(m.floor)})"
        comp = m.comparison
        delta, mde = "—", "—"
        source: Interval | PairedComparison | None = m.candidate
        if comp is not None:
            delta = _interval(comp, signed=True)
            if comp.worse:
                delta += " **worse**"
            elif comp.better:
                delta += " better"
            mde = _num(comp.mde)
            source = comp
        method = _md(source.method if source is not None and source.method else "—", table=True)
        if source is not None:
            method += f", n={source.n}"
        lines.append(
            _row([name, _interval(m.baseline), _interval(m.candidate), delta, mde, method])
        )
    lines.append("")
    clustered = [
        m
        for m in r.metrics
        if m.candidate is not None and m.candidate.method.startswith("clustered")
    ]
    if clustered:
        method = _md(clustered[0].candidate.method if clustered[0].candidate else "")
        note = (
            f"Cases share clusters, so the candidate's intervals are cluster-robust ({method}): "
            "cases in one cluster count as one independent unit."
        )
        if any(m.comparison for m in clustered):
            note += " The paired comparison still treats every case as independent."
        lines += [note, ""]
    budgets = r.budgets
    if budgets is not None:
        lat, cost = budgets.latency_p95_ms, budgets.cost_per_case_usd
        lat_limit = r.policy.budget("latency_p95_ms")
        cost_limit = r.policy.budget("cost_per_case_usd")
        parts = []
        if lat is not None:
            parts.append(
                f"latency p95 {lat:.1f} ms"
                + (f" (budget {lat_limit:.1f} ms)" if lat_limit is not None else "")
            )
        if cost is not None:
            parts.append(
                f"cost per case ${cost:.6f}"
                + (f" (budget ${cost_limit:.6f})" if cost_limit is not None else "")
            )
        if parts:
            lines += ["Candidate " + " · ".join(parts) + ".", ""]
    return lines


def _checks(r: GateReport) -> list[str]:
    lines = ["### Checks", ""]
    if not r.checks:
        return lines + ["No checks recorded.", ""]
    lines += [_row(["check", "status", "detail"]), _row(["---"] * 3)]
    for c in r.checks:
        status = c.status.value
        shown = f"**{status.upper()}**" if status in ("fail", "hold") else _md(status)
        lines.append(_row([_md(c.name or "?", table=True), shown, _prose(c.detail, table=True)]))
    return lines + [""]


MUST_PASS_IGNORED = "ignored: the {env} policy does not enforce must-pass cases (must_pass: false)"


def _masked(value: Any) -> Any:
    """A quoted text with credentials masked (a judge's answer may echo a key)."""
    return None if value is None else mask_secrets(_text(value))


def _epochs(r: GateReport) -> int | None:
    return r.evaluation.epochs if r.evaluation is not None else None


def _must_pass(r: GateReport) -> list[str]:
    failures = r.must_pass.failures if r.must_pass is not None else ()
    if not failures or r.must_pass is None:
        return []
    epochs = _epochs(r)
    lines = [
        f"### Must-pass failures ({len(failures)} of {r.must_pass.total})",
        "",
        *(
            []
            if r.is_must_pass_enforced
            else [MUST_PASS_IGNORED.format(env=r.env or "?").capitalize() + ".", ""]
        ),
        _row(["case", "input", "expected", "output", "detail"]),
        _row(["---"] * 5),
    ]
    for f in failures[:MUST_PASS_LIMIT]:
        case = f"`{_code(f.case_id)}`".replace("|", "\\|")
        if f.epochs_failed and epochs and epochs > 1:
            case += f" (failed {f.epochs_failed} of {epochs} epochs)"
        lines.append(
            _row(
                [case]
                + [
                    _md(_masked(v), table=True, limit=CELL_LIMIT) or "—"
                    for v in (f.input, f.expected, f.output, f.detail)
                ]
            )
        )
    if len(failures) > MUST_PASS_LIMIT:
        lines.append(
            f"\n… {len(failures) - MUST_PASS_LIMIT} more failed must-pass cases not shown."
        )
    return lines + [""]


def _precision(r: GateReport) -> list[str]:
    """Epoch advice and flaky cases, from the eval the gate read (absent: nothing)."""
    ev = r.evaluation
    if ev is None or (not ev.epoch_advice and not ev.flaky):
        return []
    lines = [f"### Epochs and flaky cases ({ev.epochs} epochs per case)", ""]
    for metric, a in ev.epoch_advice.items():
        lines.append(f"- {_md(metric)}: {_md(a.get('text', ''))}")
    if ev.epoch_advice:
        lines.append("")
    if ev.flaky:
        total = ev.flaky_total or len(ev.flaky)
        lines += [
            f"{total} flaky case(s): they passed in some epochs and failed in others.",
            "",
            _row(["case", "passed", "per epoch (1 pass, 0 fail)"]),
            _row(["---"] * 3),
        ]
        for f in ev.flaky[:FLAKY_LIMIT]:
            case = f"`{_code(f.case_id)}`".replace("|", "\\|")
            per_epoch = " ".join(str(v) for v in f.per_epoch)
            passed = f"{_or_unknown(f.passed)} of {_or_unknown(f.epochs)}"
            lines.append(_row([case, passed, per_epoch or "—"]))
        shown = min(len(ev.flaky), FLAKY_LIMIT)
        if total > shown:
            lines.append(f"\n… {total - shown} more flaky cases not shown.")
        lines.append("")
    return lines


def _or_unknown(value: int | None) -> str:
    return "?" if value is None else str(value)


def _approvals(r: GateReport) -> list[str]:
    need = r.approvals.needed
    wanted = []
    if need.named:
        wanted.append(f"{need.named} named approver(s)")
    if need.business:
        wanted.append("the business approver")
    given = [f"{_md(a.approver or '?')} ({_md(a.role or '?')})" for a in r.approvals.given]
    return [
        "### Approvals",
        "",
        "Needed: "
        + (" and ".join(wanted) if wanted else "none (not required by the policy)")
        + ".",
        "Given: " + (", ".join(given) if given else "none yet") + ".",
        "",
    ]


def _footer(r: GateReport) -> list[str]:
    parts = [f"decision `{_code(r.decision_id)}`"]
    if r.suite is not None:
        parts.append(
            f"suite {_md(r.suite.name or '?')} `{_code(r.suite.suite_id)}` ({r.suite.cases} cases)"
        )
    else:
        parts.append("suite: none")
    parts.append(f"policy `{_code(r.policy.policy_id)}`")
    ev = r.evaluation
    if ev is not None:
        parts.append(f"eval `{_code(ev.eval_id)}` ({ev.epochs} epoch(s))")
    else:
        parts.append("eval: none")
    parts.append(_md(r.created_at.isoformat()))
    return ["---", "", "<sub>" + " · ".join(parts) + "</sub>", ""]


def _typed(report: GateReport | Mapping[str, Any]) -> GateReport:
    """Renderers take the type; a report's JSON (stored, or from a file) is read first."""
    return report if isinstance(report, GateReport) else GateReport.from_json(report)


def render_markdown(report: GateReport | Mapping[str, Any]) -> str:
    """The report an approver reads: the verdict and what to do first, then the evidence."""
    r = _typed(report)
    lines = [
        *_title(r),
        *_decision(r),
        *_change(r),
        *_metrics(r),
        *_checks(r),
        *_must_pass(r),
        *_precision(r),
        *_approvals(r),
        *_footer(r),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


# -- junit -----------------------------------------------------------------------------------


def _xml(value: Any, limit: int = JUNIT_TEXT_LIMIT) -> str:
    return _XML_INVALID.sub("\ufffd", _cut(mask_secrets(_text(value)), limit))


def is_must_pass_enforced(report: GateReport | Mapping[str, Any]) -> bool:
    """Whether the environment's policy gates on must-pass cases (``must_pass: false``
    lets a gate pass with them failing; the report still lists them, marked ignored)."""
    return _typed(report).is_must_pass_enforced


def render_junit(report: GateReport | Mapping[str, Any]) -> str:
    """JUnit XML so CI shows each check and failed must-pass case as a test.

    It agrees with the verdict: a must-pass case that failed where the environment's
    policy does not enforce must-pass (``must_pass: false``) is written as ``skipped``
    with the reason, not as a failure, and the suite carries the property
    ``must_pass_enforced=false``; CI shows it, but not red where the gate passed.
    """
    r = _typed(report)
    suite = ET.Element("testsuite", name=_xml(f"releasegate gate {r.workflow}@{r.env}"))
    suite.set("timestamp", _xml(r.created_at.isoformat()))
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("verdict", r.verdict.value),
        ("decision_id", r.decision_id),
        ("version_id", r.version_id),
        ("baseline_id", r.baseline_id),
        ("suite_id", r.suite.suite_id if r.suite else None),
        ("policy_id", r.policy.policy_id),
        ("model_digest", r.model.digest if r.model else None),
        ("must_pass_enforced", str(r.is_must_pass_enforced).lower()),
    ):
        if value is not None:
            ET.SubElement(props, "property", name=name, value=_xml(value))

    failures = skipped = tests = 0
    for c in r.checks:
        tests += 1
        case = ET.SubElement(
            suite, "testcase", classname="gate.checks", name=_xml(c.name or "?"), time="0"
        )
        detail = _xml(c.detail)
        if c.status is Status.FAIL:
            failures += 1
            ET.SubElement(case, "failure", message=detail, type="fail").text = detail
        elif c.status is Status.HOLD:
            skipped += 1
            ET.SubElement(case, "skipped", message=detail)
    epochs = _epochs(r)
    enforced = r.is_must_pass_enforced
    for f in r.must_pass.failures if r.must_pass is not None else ():
        tests += 1
        case = ET.SubElement(
            suite, "testcase", classname="gate.must_pass", name=_xml(f.case_id or "?"), time="0"
        )
        body = [
            f"input: {_text(f.input)}",
            f"expected: {_text(f.expected)}",
            f"output: {_text(f.output)}",
            f"detail: {_text(f.detail)}",
        ]
        if f.epochs_failed and epochs and epochs > 1:
            body.append(f"failed in {f.epochs_failed} of {epochs} epoch(s)")
        message = (
            f"expected: {_cut(_text(f.expected), CELL_LIMIT)}; "
            f"got: {_cut(_text(f.output), CELL_LIMIT)}"
        )
        if enforced:
            failures += 1
            failure = ET.SubElement(case, "failure", message=_xml(message), type="must_pass")
            failure.text = "\n".join(_xml(line) for line in body)
        else:
            skipped += 1
            ignored = f"{MUST_PASS_IGNORED.format(env=r.env or '?')}; {message}"
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


def render_summary_lines(report: GateReport | Mapping[str, Any]) -> list[str]:
    """A few plain lines for the terminal: verdict, why, and where to go next."""
    r = _typed(report)
    cand, base = _short(r.version), _short(r.baseline)
    env = _line(r.env or "?", 60)
    change = r.change.change_class
    head = f"gate {r.verdict.value.upper()}  {_line(r.workflow or '?', 60)}@{env}  {cand}"
    head += f" vs {base}" if base else " (first release)"
    if change and base:
        head += f"  ({change} change)"
    reasons = [_line(x) for x in r.reasons] or ["no reasons recorded"]
    lines = [head, *(f"  - {x}" for x in reasons[:SUMMARY_REASONS])]
    if len(reasons) > SUMMARY_REASONS:
        lines.append(f"  (+{len(reasons) - SUMMARY_REASONS} more in the report)")
    lines.append(next_step(r))
    lines.append(f"decision: {_line(r.decision_id or '?')}")
    return lines


def next_step(report: GateReport | Mapping[str, Any]) -> str:
    """The one line that says what to run next, as the Markdown report ends."""
    r = _typed(report)
    cand, env = _short(r.version), _line(r.env or "?", 60)
    return {
        "pass": f"next: releasegate promote {cand} --env {env}",
        "fail": "next: fix the failed checks above, register a new version and gate it again",
        "hold": f"next: do the above, then releasegate gate {cand} --env {env}",
        "needs-approval": f"next: releasegate approve {cand} --env {env} --as NAME "
        "(not the author)",
    }.get(r.verdict.value, "next: read the full report")
