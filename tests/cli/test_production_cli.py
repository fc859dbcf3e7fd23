"""``runs import``, ``runs show``, ``monitor`` and ``report memo`` through a real subprocess."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from tests.helpers import Project, ok_json, rg
from tests.monitor.test_monitor import runs


@pytest.fixture
def shipped(tmp_path: Path) -> tuple[Project, str]:
    project = Project(root=tmp_path)
    d = project.root
    vid = ok_json(rg(d, "register", str(project.workflow("v1")), "--json"))["version_id"]
    project.suite()
    assert rg(d, "eval", vid, "--suite", "suite.yaml").returncode == 0
    assert rg(d, "gate", vid, "--env", "staging").returncode == 0
    assert rg(d, "promote", vid, "--env", "staging").returncode == 0
    return project, vid


def write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_import_show_monitor_and_memo(shipped: tuple[Project, str]) -> None:
    project, vid = shipped
    d = project.root
    now = time.time()
    rows = runs(vid, days=7, until=now - 7 * 86400, n=400, shift=False, seed=1)
    rows += runs(vid, days=7, until=now, n=400, shift=True, seed=2)
    write(d / "runs.jsonl", rows)
    imported = ok_json(rg(d, "runs", "import", "runs.jsonl", "--json"))
    assert (imported["landed"], imported["rejected_total"]) == (800, 0)
    again = rg(d, "runs", "import", "runs.jsonl")
    assert again.returncode == 0 and "800 already stored" in again.stdout
    shown = ok_json(rg(d, "runs", "show", "2-399", "--json"))
    assert shown["version_id"] == vid and shown["env"] == "staging"

    quiet = rg(d, "monitor", "router", "--env", "staging", "--no-embeddings", "--no-alert")
    assert quiet.returncode == 0, quiet.stderr  # --no-alert: report only
    assert "error_rate" in quiet.stdout and "reference: the previous 7 days" in quiet.stdout
    loud = rg(d, "monitor", "router", "--env", "staging", "--no-embeddings", "--json")
    assert loud.returncode == 1  # an alert fired: the cron job notices
    report = json.loads(loud.stdout)
    assert {"error_rate", "label_mix"} <= {a["signal"] for a in report["alerts"]}
    prom = rg(d, "monitor", "router", "--env", "staging", "--no-embeddings", "--prometheus")
    assert 'releasegate_signal_alert{workflow="router",env="staging",signal="error_rate"} 1' in (
        prom.stdout
    )
    plotted = rg(d, "monitor", "router", "--env", "staging", "--no-embeddings", "--plot", "charts")
    assert (d / "charts" / "staging-error_rate.svg").read_text().startswith("<svg")
    # still in alert inside the cool-down: exit 1, and it says nobody is paged again yet
    assert plotted.returncode == 1, plotted.stderr
    assert "in alert (cool-down):" in plotted.stdout and "already sent at" in plotted.stdout
    assert "quiet until" in plotted.stdout

    week = time.strftime("%G-W%V", time.gmtime(now))
    memo = ok_json(rg(d, "report", "memo", "router", "--week", week, "--out", "memo", "--json"))
    assert memo["week"] == week and memo["environments"][0]["runs"] > 0
    text = (d / "memo" / "memo.md").read_text()
    assert "## Recommended actions" in text and "## staging" in text
    assert (d / "memo" / "memo.html").read_text().startswith("<!doctype html>")


def test_bad_runs_exit_2_and_land_nothing(shipped: tuple[Project, str]) -> None:
    project, vid = shipped
    d = project.root
    rows = runs(vid, days=1, until=time.time(), n=10, shift=False, seed=3)
    rows[4]["env"] = ""
    rows[6]["started_at"] = time.time() + 3 * 3600  # a clock three hours fast
    write(d / "bad.jsonl", rows)
    bad = rg(d, "runs", "import", "bad.jsonl")
    assert bad.returncode == 2
    assert "bad.jsonl:5" in bad.stderr and "'env'" in bad.stderr
    assert "bad.jsonl:7" in bad.stderr and "3 h ahead of the receiving clock" in bad.stderr
    assert "nothing imported" in bad.stderr
    listed = rg(d, "monitor", "router", "--env", "staging", "--no-embeddings", "--json")
    assert json.loads(listed.stdout)["runs"] == 0


def test_a_run_outside_the_gate_exits_1(shipped: tuple[Project, str]) -> None:
    project, _ = shipped
    d = project.root
    rogue = ok_json(rg(d, "register", str(project.workflow("v2", temperature=0.7)), "--json"))
    rows = runs(rogue["version_id"], days=1, until=time.time(), n=5, shift=False, seed=4)
    write(d / "rogue.jsonl", rows)
    result = rg(d, "runs", "import", "rogue.jsonl")
    assert result.returncode == 1
    assert "outside the gate" in result.stdout and rogue["version_id"][:12] in result.stdout


def test_an_incident_run_becomes_a_suite_case(shipped: tuple[Project, str]) -> None:
    project, vid = shipped
    d = project.root
    row = runs(vid, days=1, until=time.time(), n=1, shift=False, seed=9)[0]
    row.update(run_id="incident-42", input="hard message 999 #fraud", output="transfer")
    write(d / "incident.jsonl", [row])
    assert rg(d, "runs", "import", "incident.jsonl").returncode == 0
    added = ok_json(
        rg(
            d,
            "suite",
            "add-case",
            "suite.yaml",
            "--from-run",
            "incident-4",
            "--expected",
            "fraud",
            "--must-pass",
            "--reason",
            "INC-42: fraud routed to transfers",
            "--json",
        )
    )
    case = json.loads((d / "suite.jsonl").read_text().splitlines()[-1])
    assert case["id"] == added["case_id"] and case["input"] == "hard message 999 #fraud"
    assert case["metadata"]["from_run"] == "incident-42"
    assert case["metadata"]["output"] == "transfer" and case["metadata"]["version_id"] == vid
    both = rg(
        d,
        "suite",
        "add-case",
        "suite.yaml",
        "--input",
        "x",
        "--from-run",
        "incident-42",
        "--reason",
        "r",
    )
    assert both.returncode == 2 and "one" in both.stderr
    gated = rg(d, "gate", vid, "--env", "staging", "--json")
    assert json.loads(gated.stdout)["verdict"] == "hold"  # the grown suite needs a new eval


def test_bad_options_exit_2_and_write_nothing(shipped: tuple[Project, str], tmp_path: Path) -> None:
    project, _ = shipped
    d = project.root
    window = rg(d, "monitor", "router", "--env", "staging", "--window", "a week")
    assert window.returncode == 2 and "--window" in window.stderr
    ref = rg(d, "monitor", "router", "--env", "staging", "--reference", "2026-11-08..2026-11-01")
    assert ref.returncode == 2 and "ends before it starts" in ref.stderr
    write(d / "runs.jsonl", [])
    fmt = rg(d, "runs", "import", "runs.jsonl", "--format", "xml")
    assert fmt.returncode == 2 and "unknown format 'xml'" in fmt.stderr
    elsewhere = tmp_path / "no-store"
    elsewhere.mkdir()
    write(elsewhere / "runs.jsonl", [])
    none = rg(elsewhere, "runs", "import", "runs.jsonl")
    assert none.returncode == 2 and not (elsewhere / ".releasegate").exists()


BANK = [
    f"{ask} {thing}{when}"
    for when in ("", " today", " from the app")
    for ask in (
        "How do I",
        "I want to",
        "Can you help me",
        "Why can't I",
        "Is it possible to",
        "Please tell me how to",
    )
    for thing in (
        "top up my card",
        "order a new debit card",
        "freeze my lost card",
        "send money abroad",
        "change my PIN",
        "see a pending card payment",
        "get a refund for a card payment",
        "verify my identity",
        "close my bank account",
        "exchange euros to dollars",
        "withdraw cash at an ATM",
        "dispute a transaction I don't recognise",
    )
]
PIZZA = [
    "My pizza arrived cold and the cheese was burnt",
    "The delivery driver left my pepperoni pizza at the wrong house",
    "You forgot the garlic bread in my pizza order",
    "Can I change the toppings on the pizza I ordered ten minutes ago?",
    "My margherita pizza was missing half of its basil and mozzarella",
    "The pizza box was crushed and the slices stuck to the lid",
    "I ordered a gluten free pizza crust but got a regular one",
    "Is the pizza oven at your Main Street restaurant open after midnight?",
    "The pizza delivery took two hours, I want my money back for the pizza",
    "Please add extra olives and anchovies to my pizza order\napi_key=sk-abcdefghijklmnop1234",
    "Why does my pizza taste of soap?",
    "The delivery app shows my pizza delivered but nobody came",
]


def test_monitor_lists_the_novel_inputs_and_says_insufficient_for_thin_signals(
    shipped: tuple[Project, str],
) -> None:
    project, vid = shipped
    d = project.root
    now = time.time()
    rng = random.Random(5)
    reference = runs(vid, days=7, until=now - 7 * 86400, n=300, shift=False, seed=1)
    current = runs(vid, days=7, until=now, n=150, shift=False, seed=2)
    for r in reference:
        r["input"] = rng.choice(BANK)
    asked = sorted({str(r["input"]) for r in reference})
    for r in reference[10:50] + current[10:50]:  # feedback on 40 runs a window: too few to judge
        r["feedback"] = rng.choice([-1.0, 1.0])
    for i, r in enumerate(current):  # a bank question the reference asked, or pizza
        r["input"] = PIZZA[i // 6] if i % 6 == 3 and i // 6 < len(PIZZA) else rng.choice(asked)
    write(d / "runs.jsonl", reference + current)
    assert rg(d, "runs", "import", "runs.jsonl").returncode == 0

    shown = rg(d, "monitor", "router", "--env", "staging", "--no-alert")
    assert shown.returncode == 0, shown.stderr
    out = " ".join(shown.stdout.split())  # rich wraps long lines
    assert "novel inputs (farthest from the reference first):" in out
    assert out.count("pizza") >= 5 and "PIN" not in out.split("novel inputs (farthest")[1]
    assert "sk-abcdef" not in out

    report = json.loads(rg(d, "monitor", "router", "--env", "staging", "--json").stdout)
    signals = {s["name"]: s for s in report["signals"]}
    novel = signals["novel_inputs"]
    assert novel["status"] == "alert", novel["detail"]
    assert len(novel["examples"]) >= 10
    assert all("pizza" in e.lower() or "deliver" in e.lower() for e in novel["examples"][:10])
    assert any(e.startswith("Please add extra olives") for e in novel["examples"])
    assert all("\n" not in e and "sk-abcdef" not in e for e in novel["examples"])
    assert any("api_key=***" in e for e in novel["examples"])
    # feedback on 40 runs of each window cannot be judged: it says so, not "ok"
    assert signals["error_rate"]["status"] == "ok"
    thin = signals["negative_feedback_rate"]
    assert thin["status"] == "insufficient" and "40 vs 40 runs, needs 100" in thin["detail"]
    assert "negative_feedback_rate" in shown.stdout and "insufficient" in shown.stdout

    week = time.strftime("%G-W%V", time.gmtime(now))
    assert rg(d, "report", "memo", "router", "--week", week, "--out", "memo").returncode == 0
    memo = (d / "memo" / "memo.md").read_text()
    assert 'novel: "' in memo and "pizza" in memo
