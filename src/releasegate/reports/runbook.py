"""The runbook as one page: what an operator needs to run, roll back and escalate a
workflow without ever having read its code.

First what to do in an emergency (stop it, roll it back, check, tell whom), then what
the workflow does and who is who, what goes to a human, what runs where and why, what
normal looks like, the daily and weekly checks, the alerts, the rollback procedure with
its last rehearsal, and how to handle a failed run, messy input and weak output; last
the handover checklist. Every command is the exact line to type, built from the store's
facts by ``domain.runbook``; this module only writes the prose around them.
"""

from __future__ import annotations

from datetime import datetime

from releasegate.domain.handover import REHEARSAL_PERIOD, format_value, rehearsal_summary
from releasegate.domain.runbook import EnvironmentFacts, Runbook, cmd
from releasegate.reports.page import (
    Block,
    Grid,
    Items,
    Page,
    Para,
    Section,
    Shell,
    Text,
    code,
    html,
    markdown,
    strong,
    text,
)


def _when(at: datetime | None) -> str:
    return "-" if at is None else f"{at:%Y-%m-%d %H:%M} UTC"


def _short(version_id: str | None) -> str:
    return "nothing" if version_id is None else version_id[:12]


def _names(names: tuple[str, ...] | list[str]) -> str:
    return ", ".join(names) or "nobody named"


def _people(rb: Runbook) -> str:
    found = [n for n in (rb.care_owner, *rb.responders) if n]
    return ", ".join(dict.fromkeys(found)) or "nobody (name a care owner and responders)"


def _emergency(rb: Runbook) -> Section:
    wf = rb.workflow
    main = rb.env(rb.main_env)
    if main.version_id is None:
        return Section(
            "In an emergency",
            (
                Para(
                    text(
                        f"Nothing runs in {rb.main_env} yet: no version serves users there, "
                        "so there is nothing to pause or roll back. Call the change owner, "
                        f"{rb.change_owner or 'nobody named'}.",
                    )
                ),
            ),
        )
    steps: list[Text] = [
        text(
            "Stop the workflow if it is doing harm: ",
            code(main.pause_command(wf)),
            ". Every request then goes to the application's human fallback; the version "
            "stays in place. Undo with ",
            code(main.resume_command(wf)),
            ".",
        ),
    ]
    if main.rollout is not None:
        steps.append(
            text(
                f"If the new version of the rollout causes it ({main.rollout}), stop the rollout: ",
                code(main.abort_command(wf)),
                ". The stable version serves every request again; nothing else changes.",
            )
        )
    if main.rollback_to is not None:
        steps.append(
            text(
                "Roll back if the last change caused it: ",
                code(main.rollback_command(wf) or ""),
                f" moves {rb.main_env} from {_short(main.version_id)} back to ",
                strong(_short(main.rollback_to)),
                ". The full procedure is under Rollback below.",
            )
        )
    else:
        steps.append(
            text(
                f"There is no earlier version to roll back {rb.main_env} to "
                f"({main.rollback_to_reason}): keep it paused and call the change owner, "
                f"{rb.change_owner or 'nobody named'}.",
            )
        )
    steps.append(
        text(
            "Check what runs: ",
            code(main.resolve_command(wf)),
            " prints the version id (and says when it is paused, or who a rollout serves).",
        )
    )
    steps.append(
        text(
            f"Tell the care owner and the responders ({_people(rb)}) and the change owner "
            f"({rb.change_owner or 'nobody named'}); say what you saw and what you did.",
        )
    )
    return Section("In an emergency", (Items(tuple(steps), numbered=True),))


def _about(rb: Runbook) -> Section:
    state = rb.stage
    stage = text(
        "Stage: ",
        strong(state.stage),
        (
            f" since {state.current.handover_date.isoformat()}, set by {state.current.actor}"
            + (" (forced past a failing checklist)" if state.current.forced else "")
            if state.current
            else " (never set)"
        ),
        (
            f"; {state.scheduled.stage} from {state.scheduled.handover_date.isoformat()}"
            if state.scheduled
            else ""
        ),
        ".",
    )
    volume = (
        f"The application calls it about {rb.runs_per_day:,.0f} times a day in {rb.main_env} "
        "(the typical day of the last four weeks); each call is recorded as a run."
        if rb.runs_per_day
        else f"No runs were recorded in {rb.main_env} in the last four weeks."
    )
    return Section(
        "What this workflow does",
        (
            Para(text(rb.description or "No description in the workflow file.")),
            Para(
                text(
                    "Model: ",
                    code(rb.model or "unknown"),
                    f". Stakes: {rb.stakes} (high: releases need a named approver). ",
                    volume,
                )
            ),
            Para(stage),
        ),
    )


def _who(rb: Runbook) -> Section:
    rows = [
        (
            "change owner",
            rb.change_owner or "nobody named",
            "changes the workflow, registers versions",
        ),
        ("care owner", rb.care_owner or "nobody named", "operates it day to day, receives alerts"),
        ("approvers", _names(rb.approvers), "approve a release for production"),
        ("business approvers", _names(rb.business), "approve model and tool changes"),
        ("responders", _names(rb.responders), "receive alerts; may pause it"),
    ]
    return Section(
        "Who is who",
        (
            Grid(
                ("role", "who", "what they do"),
                tuple((text(r), text(strong(n)), text(d)) for r, n, d in rows),
            ),
            Para(text("Nobody approves their own change; the gate counts approvals so.")),
        ),
    )


def _escalation(rb: Runbook) -> Section:
    wf, main = rb.workflow, rb.env(rb.main_env)
    to_human = [text(line[:1].upper() + line[1:] + ".") for line in rb.escalations] or [
        text("Nothing: the workflow escalates no request to a person on its own.")
    ]
    to_people = [
        text(f"Alerts go to {_people(rb)}: see Alerts below."),
        text(
            "Call the change owner, ",
            strong(rb.change_owner or "nobody named"),
            ", when the cause is a change (a version, a prompt, a model) or a rollback is "
            "not possible.",
        ),
    ]
    stops = [
        text(
            "A person pauses it: ",
            code(main.pause_command(wf)),
            " (audited, the responders are alerted). While paused, the application sends "
            "every request to its human fallback.",
        ),
        *(
            text(
                f"{rb.main_env} pauses on its own (",
                code(cmd("monitor", wf, "--env", rb.main_env)),
                " or ",
                code(cmd("rollout", "check", wf, "--env", rb.main_env)),
                f" does it, audited and alerted) when {rule}; only a person resumes it.",
            )
            for rule in rb.pause_rules
        ),
        text(
            "A canary rollout aborts on its own when its live runs are worse than the "
            "stable version's: ",
            code(cmd("rollout", "check", wf, "--env", rb.main_env)),
            " (exit 1 when it aborted).",
        ),
        text(
            "Nothing reaches an environment without passing the gate; "
            "a version running outside the gate alerts at once."
        ),
    ]
    return Section(
        "Escalation: what goes to a human, what stops it",
        (
            Para(text(strong("Requests that go to a human:"))),
            Items(tuple(to_human)),
            Para(text(strong("Who is told:"))),
            Items(tuple(to_people)),
            Para(text(strong("What stops the workflow:"))),
            Items(tuple(stops)),
        ),
    )


def _env_row(rb: Runbook, e: EnvironmentFacts) -> tuple[Text, ...]:
    if e.version_id is None:
        return (text(e.env), text("nothing"), text("-"), text("-"), text(e.rollback_to_reason))
    moved = f"{e.move_action} by {e.moved_by}, {_when(e.moved_at)}" if e.move_action else "-"
    gate = (
        f"{e.verdict} on {_when(e.decided_at)}"
        + (f", {e.change_class} change" if e.change_class else "")
        + (f"; approved by {', '.join(e.approved_by)}" if e.approved_by else "")
        if e.verdict
        else "no gate decision"
    )
    notes = []
    if e.paused_reason:
        notes.append(f"PAUSED by {e.paused_by} since {_when(e.paused_at)}: {e.paused_reason}")
    if e.rollout:
        notes.append(e.rollout)
    why = e.version_reason or "no reason given"
    return (
        text(strong(e.env)),
        text(code(e.version_id[:12])),
        text(moved + (f" ({e.move_reason})" if e.move_reason else "")),
        text(gate),
        text(why + ("; " + "; ".join(notes) if notes else "")),
    )


def _where(rb: Runbook) -> Section:
    blocks: list[Block] = [
        Grid(
            ("environment", "version", "last change", "gate decision", "why"),
            tuple(_env_row(rb, e) for e in rb.environments),
        )
    ]
    for e in rb.environments:
        report = e.gate_report_command()
        if report is not None:
            blocks.append(Para(text(f"The gate's full report for {e.env}: ", code(report), ".")))
    blocks.append(
        Para(
            text(
                "Every change, with who made it and why: ",
                code(cmd("history", rb.workflow, "--env", rb.main_env)),
                " and ",
                code(cmd("audit", "log")),
                ".",
            )
        )
    )
    return Section("What runs where, and why", tuple(blocks))


def _rate(value: float | None) -> str:
    return format_value(value, "share")


def _normal(rb: Runbook) -> Section:
    blocks: list[Block] = []
    if rb.example_input is not None:
        blocks.append(Para(text("A normal input: ", code(rb.example_input))))
        blocks.append(Para(text("and its output: ", code(rb.example_output or "(none recorded)"))))
    else:
        blocks.append(Para(text("No recent input was recorded (run texts may be withheld).")))
    if rb.top_labels:
        total = sum(n for _, n in rb.top_labels)
        blocks.append(
            Para(
                text(
                    "Most frequent outputs in the last four weeks: "
                    + ", ".join(f"{label} ({n:,})" for label, n in rb.top_labels)
                    + f" ({total:,} runs among these)."
                )
            )
        )
    err, esc = rb.error_rate, rb.escalation_rate
    if err.typical is not None:
        blocks.append(
            Para(
                text(
                    f"On a normal day {_rate(err.typical)} of runs fail "
                    f"({_rate(err.low)} to {_rate(err.high)} on 8 days in 10) and "
                    f"{_rate(esc.typical)} are escalated to a human "
                    f"({_rate(esc.low)} to {_rate(esc.high)}), over {err.days} days "
                    "with enough runs."
                )
            )
        )
    return Section("Normal input and output", tuple(blocks))


def _tracked(rb: Runbook) -> Section:
    rows = []
    for n in rb.tracked:
        rng = (
            "-"
            if n.low is None or n.high is None
            else f"{format_value(n.low, n.unit)} to {format_value(n.high, n.unit)}"
        )
        target = (
            "none"
            if n.target is None
            else f"{'at most' if n.direction == 'max' else 'at least'} "
            f"{format_value(n.target, n.unit)}"
        )
        rows.append(
            (
                text(strong(n.label)),
                text(format_value(n.typical, n.unit)),
                text(rng),
                text(target),
                text(n.source),
            )
        )
    return Section(
        "Tracked numbers",
        (
            Grid(("number", "typical", "normal range", "target", "from"), tuple(rows)),
            Para(
                text(
                    "The normal range of a number from runs is the 10th to 90th percentile "
                    "of its daily values (days with at least 20 runs), so about 2 days in 10 "
                    "fall outside it by construction: read it, do not page on it. For the "
                    "quality from the gate it is the 95% interval of the suite's estimate. "
                    "Paging is the monitor's job (Alerts below)."
                )
            ),
        ),
    )


def _checks(rb: Runbook) -> Section:
    wf = rb.workflow
    daily = [cmd("monitor", wf, "--env", e.env) for e in rb.environments if e.version_id]
    daily += [cmd("rollout", "status", wf, "--env", e.env) for e in rb.environments if e.rollout]
    daily.append(cmd("audit", "verify"))
    weekly = [
        cmd("report", "memo", wf),
        cmd("review", wf),
        cmd("report", "handover", wf),
        cmd("report", "runbook", wf),
    ]
    return Section(
        "Daily and weekly checks",
        (
            Para(text(strong("Daily"), " (exit 1 means look now: an alert, or the audit broken):")),
            Shell(tuple(daily)),
            Para(
                text(
                    strong("Weekly"),
                    ": the stability memo (what changed, how it ran, what to do), the "
                    "governance review (exit 1 when something needs action, each with the "
                    "command that fixes it), the handover checklist, and this page again:",
                )
            ),
            Shell(tuple(weekly)),
        ),
    )


def _alerts(rb: Runbook) -> Section:
    blocks: list[Block] = [
        Para(
            text(
                f"The monitor watches the last {rb.monitor_window} of runs and alerts only "
                f"with at least {rb.min_sample} runs, and not again for the same signal "
                f"within {rb.cooldown}. "
                + (
                    "Every signal also alerts on its own statistical test against the "
                    "reference (error rate, latency, cost, escalations, label mix, drift)."
                    if rb.drift_alerts
                    else "Only the rules below alert (drift alerts are off)."
                )
            )
        ),
    ]
    if rb.rules:
        blocks.append(
            Grid(
                ("signal", "alerts when"),
                tuple((text(code(r.signal)), text(r.condition)) for r in rb.rules),
            )
        )
    else:
        blocks.append(Para(text("No threshold rules are set in the workflow file.")))
    blocks.append(
        Para(
            text(
                f"Alerts name {_people(rb)} and go to "
                + (
                    ", ".join(rb.routes) + " and the terminal of whoever ran the monitor."
                    if rb.routes
                    else "the terminal of whoever ran the monitor only: no route is set."
                )
            )
        )
    )
    if rb.recent_alerts:
        blocks.append(Para(text(strong("Latest alerts:"))))
        blocks.append(
            Items(
                tuple(
                    text(f"{_when(a.at)} {a.env} {a.severity} ({a.delivery}): {a.message}")
                    for a in rb.recent_alerts
                )
            )
        )
    return Section("Alerts", tuple(blocks))


def _rollback(rb: Runbook) -> Section:
    wf = rb.workflow
    blocks: list[Block] = [
        Para(
            text(
                "A rollback moves an environment back to the version that ran there before, "
                "in one step, audited. It needs no new gate: that version passed it there. "
                f"This page was generated at {_when(rb.generated_at)}; if ",
                code(cmd("resolve", wf, "--env", rb.main_env)),
                f" no longer prints {_short(rb.env(rb.main_env).version_id)}, generate it again.",
            )
        )
    ]
    for e in rb.environments:
        if e.version_id is None:
            continue
        blocks.append(Para(text(strong(e.env), f": runs {e.version_id}.")))
        if e.rollback_to is None:
            blocks.append(
                Para(
                    text(
                        f"No rollback possible: {e.rollback_to_reason}. Pause it instead "
                        "and call the change owner:"
                    )
                )
            )
            blocks.append(Shell((e.pause_command(wf), e.resolve_command(wf))))
            continue
        blocks.append(
            Para(
                text(
                    f"Roll back to {e.rollback_to} ({e.rollback_to_reason or 'no reason given'}), "
                    "then check it runs:"
                )
            )
        )
        blocks.append(
            Shell(
                (
                    e.rollback_command(wf) or "",
                    e.resolve_command(wf) + f"   # prints {e.rollback_to}",
                )
            )
        )
        blocks.append(
            Para(
                text(
                    "The same, naming the version (if another promotion happened since): ",
                    code(e.rollback_to_command(wf) or ""),
                    ". An active rollout in the environment is stopped by the rollback.",
                )
            )
        )
    reh = rb.rehearsal
    summary = rehearsal_summary(reh).removeprefix("last rehearsal ")
    blocks.append(Para(text(strong("Last rehearsal:"), " ", summary + ".")))
    if reh is not None and reh.escaped:
        blocks.append(
            Para(
                text(
                    "The gate let these degraded variants through, so the suite is too weak "
                    "for them: "
                    + "; ".join(f"{m.name} ({m.description})" for m in reh.escaped)
                    + ". Cases that would catch them, to review and add:"
                )
            )
        )
        blocks.append(Shell(tuple(line for m in reh.escaped for line in m.proposed)))
    rehearsal_env = next((e.env for e in rb.environments if e.env != rb.main_env), None)
    if rehearsal_env is not None:
        blocks.append(
            Para(
                text(
                    f"Rehearse the rollback at least every {REHEARSAL_PERIOD.days} days: ",
                    code(cmd("rehearse", wf, "--env", rehearsal_env)),
                    " gates deliberately degraded variants, deploys the worst the gate "
                    f"lets through to {rehearsal_env}, rolls back and checks the original "
                    "serves again (exit 1 when it did not, or when the suite let a variant "
                    "through).",
                )
            )
        )
    return Section("Rollback", tuple(blocks))


def _failed(rb: Runbook) -> Section:
    wf = rb.workflow
    blocks: list[Block] = []
    if rb.failures:
        blocks.append(
            Grid(
                ("failure reason (last four weeks)", "runs", "latest run"),
                tuple(
                    (text(f.reason), text(f"{f.runs:,}"), text(code(f.last_run_id)))
                    for f in rb.failures
                ),
            )
        )
        example = rb.failures[0].last_run_id
    else:
        blocks.append(Para(text("No run failed in the last four weeks.")))
        example = "RUN_ID"
    blocks.append(
        Items(
            (
                text(
                    "See what the run got and why it failed: ",
                    code(cmd("runs", "show", example)),
                    ".",
                ),
                text(
                    "Rerun it by sending its input through the application again (the "
                    "SDK records the new run); releasegate keeps the record, it does not "
                    "serve requests."
                ),
                text(
                    "Many failures at once (an upstream timeout, a provider outage) are not "
                    "a prompt problem: pause while the provider recovers, ",
                    code(rb.env(rb.main_env).pause_command(wf)),
                    ", and resume after.",
                ),
            ),
            numbered=True,
        )
    )
    return Section("When a run fails", tuple(blocks))


def _messy(rb: Runbook) -> Section:
    wf = rb.workflow
    suite = rb.suite or "the workflow's"
    return Section(
        "Messy input",
        (
            Items(
                (
                    text(
                        "Inputs unlike anything seen before are listed, farthest first, by ",
                        code(cmd("monitor", wf, "--env", rb.main_env)),
                        " (novel inputs, input drift and label mix).",
                    ),
                    text(
                        "The workflow's own answer to an input it is unsure of: "
                        + ("; ".join(rb.escalations) or "none, it always answers")
                        + "."
                    ),
                    text(
                        "Turn a messy input that was handled wrongly into a test case of the "
                        f"{suite} suite, so the next version is gated on it: ",
                        code(
                            cmd(
                                "suite",
                                "add-case",
                                "SUITE_FILE",
                                "--from-run",
                                "RUN_ID",
                                "--expected",
                                "RIGHT_ANSWER",
                                "--reason",
                                "what went wrong",
                            )  # fmt: skip
                        ),
                        " (SUITE_FILE: the suite's YAML file in the project).",
                    ),
                ),
            ),
        ),
    )


def _weak(rb: Runbook) -> Section:
    wf = rb.workflow
    groups = (
        ("escalated to a human", rb.escalated_runs),
        ("edited by a person", rb.edited_runs),
        ("given negative feedback", rb.negative_runs),
    )
    listed = [
        text(f"Latest runs {what}: ", *[p for r in ids for p in (code(r), " ")])
        for what, ids in groups
        if ids
    ] or [text("No run was escalated, edited or given negative feedback in four weeks.")]
    if rb.review is not None:
        listed.append(
            text(
                f"Human review over four weeks: {rb.review.sentence()}. The queue: ",
                code(cmd("queue", "list", wf, "--env", rb.main_env)),
                "; mark a run with ",
                code(cmd("queue", "mark", "RUN_ID", "--good|--bad", "--expected", "X")),
                ".",
            )
        )
    return Section(
        "Weak output",
        (
            Items(tuple(listed)),
            Items(
                (
                    text("Read one: ", code(cmd("runs", "show", "RUN_ID")), "."),
                    text(
                        "If the answer was wrong, add it to the suite (see Messy input) and "
                        "tell the change owner; a fix is a new version that goes through ",
                        code(cmd("gate", "VERSION", "--env", rb.main_env)),
                        ".",
                    ),
                    text(
                        "If many are weak since a change, compare with the week before: ",
                        code(cmd("report", "memo", wf)),
                        ", and roll back if the change caused it.",
                    ),
                ),
                numbered=True,
            ),
        ),
    )


def _handover(rb: Runbook) -> Section:
    r = rb.readiness
    rows = tuple(
        (text(line.title), text(strong("yes" if line.passed else "NO")), text(line.evidence))
        for line in r.lines
    )
    return Section(
        "Handover checklist",
        (
            Para(
                text(
                    strong(r.verdict[:1].upper() + r.verdict[1:]),
                    ". Each line, with its fix: ",
                    code(cmd("report", "handover", rb.workflow)),
                    ".",
                )
            ),
            Grid(("check", "passes", "evidence"), rows),
        ),
    )


def build_page(rb: Runbook) -> Page:
    intro = (
        text(
            f"Generated from the releasegate store at {_when(rb.generated_at)}, for the "
            f"people who operate {rb.workflow}. Every command below can be typed as it stands "
            "in the project directory (or with RELEASEGATE_DATABASE_URL set).",
        ),
    )
    return Page(
        f"{rb.workflow}: runbook",
        intro,
        (
            _emergency(rb),
            _about(rb),
            _who(rb),
            _escalation(rb),
            _where(rb),
            _normal(rb),
            _tracked(rb),
            _checks(rb),
            _alerts(rb),
            _rollback(rb),
            _failed(rb),
            _messy(rb),
            _weak(rb),
            _handover(rb),
        ),
    )


def render_markdown(rb: Runbook) -> str:
    return markdown(build_page(rb))


def render_html(rb: Runbook) -> str:
    return html(build_page(rb))
