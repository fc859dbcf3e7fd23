"""The runbook, the handover checklist and the stage, on a store the demo loop built.

The store is built once per dialect (SQLite and PostgreSQL) by the demo's own steps on
its own data and model: v1 to staging, v2 through the gate to staging and production,
a rollback on staging and v2 again, two weeks of the demo's simulated production runs
and the monitor's alerts. Each test gets a copy. The tests read the runbook back: its
numbers against the runs and the gate, its commands typed as they stand.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from releasegate.cli.demo import FILES, simulated_runs
from releasegate.store.engine import Location, Store
from tests.conftest import dialect_store
from tests.helpers import project_copy, rg
from tests.monitor.test_monitor import Hook, hook  # noqa: F401 (the fixture)

WF = "support-triage"


@dataclass
class Demo:
    root: Path
    url: str
    env: dict[str, str]
    v1: str = ""
    v2: str = ""
    runs: list[dict[str, Any]] = field(default_factory=list)

    def rg(self, *args: str) -> subprocess.CompletedProcess[str]:
        return rg(self.root, *args, env=self.env)

    def ok(self, *args: str) -> Any:
        result = self.rg(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def typed(self, line: str) -> subprocess.CompletedProcess[str]:
        """A command line as the runbook prints it, typed into a shell."""
        words = shlex.split(line, comments=True)
        assert words[0] == "releasegate", line
        return self.rg(*words[1:])


def location(root: Path, url: str) -> Location:
    home = root / ".releasegate"
    home.mkdir(exist_ok=True)
    return Location(
        url=url, blob_root=home / "blobs", is_embedded=url.startswith("sqlite"), home=home
    )


def build_demo(root: Path, url: str) -> Demo:
    """The demo's loop (``cli/demo.py`` steps 1-7, without the broken v3) on ``url``."""
    from releasegate.monitor.ingest import import_jsonl
    from releasegate.monitor.service import monitor
    from releasegate.release.evaluate import evaluate
    from releasegate.release.gate import gate
    from releasegate.release.promote import approve, promote, rollback
    from releasegate.release.register import register

    data = resources.files("releasegate.demo") / "data"
    for name in FILES:
        (root / name).write_bytes((data / name).read_bytes())
    store = Store.open(location=location(root, url))
    try:
        suite = root / "suite.yaml"
        v1 = register(
            store, root / "v1.yaml", reason="first routing prompt", who="alice"
        ).version_id
        evaluate(store, v1, suite, who="alice")
        gate(store, v1, "staging", who="ci")
        approve(store, v1, "staging", approver="bob", note="first release reviewed")
        approve(store, v1, "staging", approver="dana", note="business sign-off")
        promote(store, v1, "staging", who="alice")
        v2 = register(
            store, root / "v2.yaml", reason="describe each team with real phrasings", who="alice"
        ).version_id
        evaluate(store, v2, suite, who="alice")
        gate(store, v2, "staging", who="ci")
        approve(store, v2, "staging", approver="bob", note="wording change reviewed")
        promote(store, v2, "staging", who="alice")
        gate(store, v2, "production", who="ci")
        approve(store, v2, "production", approver="carol", note="reviewed the staging report")
        approve(store, v2, "production", approver="dana", note="business sign-off")
        promote(store, v2, "production", who="alice")
        rollback(store, WF, "staging", who="oncall-support", reason="rollback rehearsal")
        promote(store, v2, "staging", who="alice")
        runs = simulated_runs(root, v2, time.time())
        (root / "production-runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
        import_jsonl(store, root / "production-runs.jsonl")
        monitor(store, WF, "production", embeddings=False)
    finally:
        store.close()
    return Demo(root, url, {}, v1, v2, runs)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def golden(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Demo]:
    root = tmp_path_factory.mktemp(f"demo-{request.param}")
    with dialect_store(request, root) as (url, env):
        demo = build_demo(root, url)
        demo.env = env
        yield demo


@pytest.fixture
def demo(golden: Demo, tmp_path: Path) -> Iterator[Demo]:
    """A copy of the golden project: files, audit key and database."""
    with project_copy(golden.root, golden.url, tmp_path / "project") as (url, env):
        yield Demo(tmp_path / "project", url, env, golden.v1, golden.v2, golden.runs)


def section(markdown: str, title: str) -> str:
    """The text of one ``## title`` section of the runbook."""
    start = markdown.index(f"\n## {title}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end > 0 else None]


def shell_lines(text: str) -> list[str]:
    """The lines of every ```sh block in ``text``."""
    return [
        line
        for block in re.findall(r"```sh\n(.*?)\n```", text, re.DOTALL)
        for line in block.splitlines()
    ]


def daily_p95_median(runs: list[dict[str, Any]]) -> float:
    by_day: dict[int, list[float]] = {}
    for r in runs:
        by_day.setdefault(int(r["started_at"] // 86400), []).append(r["latency_ms"])
    daily = [float(np.quantile(v, 0.95)) for v in by_day.values() if len(v) >= 20]
    return float(np.median(daily))


def test_the_runbook_quotes_the_stores_figures(demo: Demo) -> None:
    result = demo.rg("report", "runbook", WF)
    assert result.returncode == 0, result.stderr
    page = result.stdout
    where = section(page, "What runs where, and why")
    assert f"`{demo.v2[:12]}`" in where and "approved by carol, dana" in where
    # the tracked numbers are the runs' and the gate's
    tracked = section(page, "Tracked numbers")
    assert f"{daily_p95_median(demo.runs):,.0f} ms" in tracked
    assert "at most 250 ms" in tracked and "at most $0.00100" in tracked
    gate = json.loads(
        demo.rg("report", "gate", demo.v2, "--env", "production", "--format", "json").stdout
    )
    accuracy = next(m for m in gate["metrics"] if m["name"] == "accuracy")
    assert f"| {accuracy['candidate']['estimate']:.3f} |" in tracked
    # failures: the reason, how many, the latest failed run
    failed = [r for r in demo.runs if r["status"] == "error"]
    failures = section(page, "When a run fails")
    assert f"| upstream timeout | {len(failed)} | `{failed[-1]['run_id']}` |" in failures
    shown = demo.typed(f"releasegate runs show {failed[-1]['run_id']} --json")
    assert json.loads(shown.stdout)["failure_reason"] == "upstream timeout"
    # who is who, from the workflow file
    assert "| change owner | **alice** |" in page and "| care owner | **ops-team** |" in page
    # every command of the daily and weekly checks exists and runs on this store
    for line in shell_lines(section(page, "Daily and weekly checks")):
        assert demo.typed(line).returncode in (0, 1), line  # 1: an alert, or not ready
    assert "**Last rehearsal:** never rehearsed." in page
    assert f"`releasegate rehearse {WF} --env staging`" in section(page, "Rollback")


def test_the_rollback_commands_of_the_runbook_work_as_typed(demo: Demo) -> None:
    page = demo.rg("report", "runbook", WF).stdout
    rollback = section(page, "Rollback")
    staging = rollback[rollback.index("**staging**") : rollback.index("**production**")]
    lines = shell_lines(staging)
    assert lines[0].startswith(f"releasegate rollback {WF} --env staging ")
    facts = demo.ok("report", "runbook", WF)  # the same commands, for scripts
    assert facts["commands"]["staging"]["rollback"] == lines[0]
    assert facts["commands"]["production"]["rollback"] is None
    assert facts["environments"][0]["rollback_to"] == demo.v1
    assert lines[1].endswith(f"# prints {demo.v1}")
    assert demo.typed(lines[0]).returncode == 0
    assert demo.typed(lines[1]).stdout.strip() == demo.v1
    history = demo.ok("history", WF, "--env", "staging")
    assert history[-1]["action"] == "rollback" and history[-1]["reason"] == "INCIDENT: what you saw"
    # production never ran anything before v2: the page says so and gives the pause instead
    production = rollback[rollback.index("**production**") :]
    assert "No rollback possible" in production
    pause, resolve = shell_lines(production)
    assert demo.typed(pause).returncode == 0
    resolved = demo.typed(resolve + " --json")
    assert json.loads(resolved.stdout)["paused"] is True
    # the next runbook shows the pause, and the emergency steps still name real commands
    again = demo.rg("report", "runbook", WF).stdout
    assert "PAUSED by alice" in section(again, "What runs where, and why")
    emergency = section(again, "In an emergency")
    resume = re.search(r"Undo with `(releasegate resume [^`]+)`", emergency)
    assert resume is not None and demo.typed(resume.group(1)).returncode == 0


def test_handover_lists_each_check_with_evidence_and_says_no(demo: Demo) -> None:
    result = demo.rg("report", "handover", WF, "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["ready"] is False
    assert report["failing"] == ["alerts", "rollback_rehearsed"]
    checks = {c["key"]: c for c in report["checks"]}
    assert checks["owners"]["evidence"] == "change owner: alice; care owner: ops-team"
    assert checks["runs_recorded"]["evidence"] == (
        f"{len(demo.runs):,} runs in the last 28 days, versions {demo.v2[:12]}"
    )
    assert "no route" in checks["alerts"]["evidence"] and checks["alerts"]["fix"]
    assert checks["rollback_rehearsed"]["evidence"] == "never rehearsed"
    text = demo.rg("report", "handover", WF)
    assert text.returncode == 1 and "not ready: 2 of 7 checks fail" in text.stdout


def test_stage_routine_is_refused_until_forced_and_every_set_is_audited(demo: Demo) -> None:
    assert demo.ok("stage", "show", WF)["stage"] == "experiment"
    events = len(demo.ok("audit", "log"))
    refused = demo.rg("stage", "set", WF, "routine", "--date", "2026-12-18")
    assert refused.returncode == 1
    assert (
        "not ready for routine operation" in refused.stderr and "never rehearsed" in refused.stderr
    )
    no_reason = demo.rg("stage", "set", WF, "routine", "--force")
    assert no_reason.returncode == 2 and "--force needs a reason" in no_reason.stderr
    assert len(demo.ok("audit", "log")) == events  # nothing written by either
    assert demo.ok("stage", "show", WF)["current"] is None

    pilot = demo.ok("stage", "set", WF, "pilot", "--date", "2026-01-05")
    assert pilot["previous"] == "experiment" and pilot["readiness"] is None
    forced = demo.ok(
        "stage",
        "set",
        WF,
        "routine",
        "--date",
        "2026-01-06",
        "--force",
        "--reason",
        "alerts next week",
    )
    assert forced["forced"] is True and forced["failing"] == ["alerts", "rollback_rehearsed"]
    shown = demo.ok("stage", "show", WF)
    assert shown["stage"] == "routine" and shown["current"]["care_owner"] == "ops-team"
    assert shown["current"]["reason"] == "alerts next week"
    again = demo.rg(
        "stage", "set", WF, "routine", "--date", "2026-01-06", "--force", "--reason", "x"
    )
    assert again.returncode == 1 and "nothing to change" in again.stderr
    log = demo.ok("audit", "log")
    stage_events = [e for e in log if e["kind"] == "workflow.stage_set"]
    assert [e["payload"]["stage"] for e in stage_events] == ["pilot", "routine"]
    assert stage_events[-1]["payload"]["failing"] == ["alerts", "rollback_rehearsed"]
    assert demo.rg("audit", "verify").returncode == 0
    # a later date is scheduled, not in effect; the runbook says both
    demo.ok("stage", "set", WF, "pilot", "--date", "2099-01-01")
    shown = demo.ok("stage", "show", WF)
    assert shown["stage"] == "routine" and shown["scheduled"]["stage"] == "pilot"
    page = demo.rg("report", "runbook", WF).stdout
    assert "Stage: **routine** since 2026-01-06" in page and "pilot from 2099-01-01" in page
    handover = json.loads(demo.rg("report", "handover", WF, "--json").stdout)
    assert "nothing_pending" in handover["failing"]


def test_the_html_runbook_is_one_escaped_file(demo: Demo) -> None:
    out = demo.root / "out" / "runbook.html"
    result = demo.rg("report", "runbook", WF, "--format", "html", "--out", str(out))
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert f"releasegate rollback {WF} --env staging" in page
    assert "p&lt;1e-12" in page  # an alert's message, escaped
    bad = demo.rg("report", "runbook", WF, "--format", "pdf")
    assert bad.returncode == 2 and "unknown format 'pdf'" in bad.stderr


def test_unknown_workflow_is_bad_input(demo: Demo) -> None:
    for argv in (
        ("report", "runbook", "nope"),
        ("report", "handover", "nope"),
        ("stage", "show", "nope"),
    ):
        result = demo.rg(*argv)
        assert result.returncode == 2 and "no workflow 'nope'" in result.stderr, argv


def test_routes_that_fired_and_a_real_rehearsal_make_it_ready_for_routine(
    demo: Demo, request: pytest.FixtureRequest
) -> None:
    from releasegate.release.rehearse import rehearse

    url = request.getfixturevalue("hook")  # a webhook receiver on loopback
    doc = yaml.safe_load((demo.root / "v2.yaml").read_text())
    doc["monitor"] = {
        "routes": [{"webhook": {"url": f"{url}/ops"}}],
        "rules": [{"signal": "escalation_rate", "above": 0.001}],
    }
    (demo.root / "v2-routed.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    registered = demo.ok("register", "v2-routed.yaml", "--reason", "alerts to the ops hook")
    assert registered["version_id"] == demo.v2  # metadata only: the same version
    checks = {
        c["key"]: c
        for c in json.loads(demo.rg("report", "handover", WF, "--json").stdout)["checks"]
    }
    assert "never delivered through webhook" in checks["alerts"]["evidence"]
    assert "rules that never fired: escalation_rate" in checks["alerts"]["evidence"]
    # the rule fires through the real route on loopback
    watched = demo.rg("monitor", WF, "--env", "production", "--no-embeddings", "--no-quality")
    assert watched.returncode == 1, watched.stderr
    assert [body["signal"] for path, body in Hook.received if path == "/ops"] == ["escalation_rate"]
    # a real rehearsal on staging: a degraded variant, gated, deployed, rolled back
    store = Store.open(location=location(demo.root, demo.url))
    try:
        rehearsed = rehearse(store, WF, "staging", names=("shuffle-labels",), who="oncall-support")
    finally:
        store.close()
    assert rehearsed.rehearsal.result == "passed", rehearsed
    report = json.loads(demo.rg("report", "handover", WF, "--json").stdout)
    assert report["ready"] is True, report["failing"]
    assert demo.rg("report", "handover", WF).returncode == 0
    done = demo.ok("stage", "set", WF, "routine", "--reason", "handed to ops-team")
    assert done["forced"] is False and done["readiness"]["ready"] is True
    page = demo.rg("report", "runbook", WF).stdout
    rollback = section(page, "Rollback")
    assert "**Last rehearsal:** 20" in rollback and "on staging: passed" in rollback
    assert "go to webhook and the terminal" in section(page, "Alerts")
    assert "| escalation_rate | above 0.001" not in page and "`escalation_rate`" in page
    assert "Stage: **routine** since" in page


def test_stage_show_says_a_scheduled_stage_was_forced_and_why() -> None:
    from datetime import UTC, date, datetime

    from releasegate.cli.cmd_handover import stage_lines
    from releasegate.domain.handover import StageRecord, StageState

    def rec(stage: str, on: date, forced: bool, reason: str) -> StageRecord:
        failing = ("alerts",) if forced else ()
        at = datetime(2026, 12, 1, tzinfo=UTC)
        return StageRecord(WF, stage, on, "alice", "ops", "root", reason, forced, failing, at)

    state = StageState(
        WF,
        rec("pilot", date(2026, 12, 1), False, ""),
        rec("routine", date(2026, 12, 20), True, "alerts next week"),
    )
    current, scheduled = stage_lines(state.as_dict())
    assert "forced" not in current
    assert scheduled == (
        "scheduled: routine from 2026-12-20 (set by root); forced past: alerts; "
        "reason: alerts next week"
    )


def test_a_workflow_that_runs_nowhere_yet_gets_an_honest_page(tmp_path: Path) -> None:
    data = resources.files("releasegate.demo") / "data"
    for name in ("v1.yaml", "suite.yaml", "messages.jsonl"):
        (tmp_path / name).write_bytes((data / name).read_bytes())
    assert rg(tmp_path, "register", "v1.yaml").returncode == 0
    page = rg(tmp_path, "report", "runbook", WF)
    assert page.returncode == 0, page.stderr
    emergency = section(page.stdout, "In an emergency")
    assert "Nothing runs in production yet" in emergency and "releasegate pause" not in emergency
    report = json.loads(rg(tmp_path, "report", "handover", WF, "--json").stdout)
    assert report["failing"] == [
        "tracked_numbers",
        "alerts",
        "escalation",
        "rollback_rehearsed",
        "runs_recorded",
    ]  # escalation: read from the version that runs, and none does
    tracked = next(c for c in report["checks"] if c["key"] == "tracked_numbers")
    assert "not measured yet, target at least 0.700" in tracked["evidence"]  # the policy's floor
    assert rg(tmp_path, "stage", "set", WF, "routine").returncode == 1


def test_the_checklist_wraps_under_its_text_at_80_columns(
    capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from releasegate.cli.cmd_handover import checklist
    from releasegate.domain.handover import CheckLine, Readiness

    monkeypatch.setenv("COLUMNS", "80")
    fix = "`releasegate monitor support-triage --env staging`"
    long = "; ".join(f"tracked number {i} with its target and range" for i in range(6))
    checklist(
        Readiness(
            WF,
            datetime(2026, 12, 3, tzinfo=UTC),
            (
                CheckLine("tracked", "tracked numbers", True, long, ""),
                CheckLine("alerts", "alerts fired", False, "no route", f"fire one: {fix}"),
            ),
        ).as_dict()  # fmt: skip
    )
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[0].startswith(" yes tracked numbers: ") and lines[1].startswith("     number 1")
    fixes = [line for line in lines if "fix:" in line]
    assert fixes and fixes[0].startswith("     fix: ")
    assert "--env" in " ".join(lines) and fix in " ".join(line.strip() for line in lines)
