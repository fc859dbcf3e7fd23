from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from releasegate.reports.gate_report import render_junit, render_markdown, render_summary_lines

CAND = "3f9c2a7e1b4d8c6a5f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a"
BASE = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
SUITE = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e"
POLICY = "90f090f090f090f090f090f090f090f090f090f090f090f090f090f090f090f0"
PROMPT_DIFF = [
    "prompts.system:",
    "--- a/prompts.system",
    "+++ b/prompts.system",
    "@@ -1,3 +1,3 @@",
    " You route support tickets.",
    "-Answer with one label.",
    "+Answer with one label & a <reason>.",
    " Be brief.",
]


def _iv(estimate: float, low: float, high: float, n: int = 200) -> dict[str, Any]:
    return {
        "estimate": estimate,
        "low": low,
        "high": high,
        "se": (high - low) / 3.92,
        "n": n,
        "method": "wilson",
    }


def _base_report() -> dict[str, Any]:
    return {
        "decision_id": "0d1e2c3a4b5c6d7e8f9001122334455a",
        "created_at": "2025-05-02T10:15:00+00:00",
        "workflow": "support-triage",
        "env": "production",
        "stakes": "high",
        "version": {
            "id": CAND,
            "owner": "maria",
            "reason": "shorter system prompt",
            "parent_id": BASE,
            "track": "release",
            "created_at": "2025-05-02T09:00:00+00:00",
        },
        "baseline": {"id": BASE, "owner": "dev", "reason": "initial"},
        "suite": {"id": SUITE, "name": "banking77-smoke", "cases": 200},
        "eval": {"eval_id": "ev-77aa", "epochs": 1},
        "policy": {
            "id": POLICY,
            "workflow": "support-triage",
            "env": "production",
            "floors": {"accuracy": 0.8},
            "must_pass": True,
            "max_regression": [{"metric": "accuracy", "margin": 0.02}],
            "budgets": {"latency_p95_ms": 1500.0, "cost_per_case_usd": None},
            "approvals": {"required": None, "business_for": ["model", "tools"]},
        },
        "change": {
            "class": "wording",
            "first_release": False,
            "classes": ["wording"],
            "diff": list(PROMPT_DIFF),
        },
        "metrics": [
            {
                "name": "accuracy",
                "candidate": _iv(0.831, 0.796, 0.866),
                "baseline": _iv(0.812, 0.776, 0.848),
                "comparison": {
                    "delta": 0.019,
                    "low": -0.004,
                    "high": 0.042,
                    "mde": 0.015,
                    "n": 200,
                    "method": "paired-bootstrap",
                    "p_value": 0.11,
                    "worse": False,
                    "better": False,
                },
                "floor": 0.8,
            }
        ],
        "must_pass": {"total": 12, "failures": []},
        "budgets": {"latency_p95_ms": 812.25, "cost_per_case_usd": 0.00012},
        "approvals": {
            "needed": {"named": 1, "business": False},
            "given": [{"approver": "lee", "role": "approver"}],
        },
    }


@pytest.fixture
def passing_report() -> dict[str, Any]:
    r = _base_report()
    r["verdict"] = "pass"
    r["reasons"] = ["every check passed"]
    r["checks"] = [
        {"name": "must-pass", "status": "ok", "detail": "all 12 must-pass cases passed"},
        {"name": "floor accuracy", "status": "ok", "detail": "0.831 [0.796, 0.866] >= floor 0.800"},
        {
            "name": "regression accuracy",
            "status": "ok",
            "detail": "delta +0.019 [-0.004, +0.042] (paired-bootstrap, n=200): non-inferior "
            "within 0.020 (mde 0.015)",
        },
        {"name": "budget latency p95", "status": "ok", "detail": "812.2 ms <= 1500.0 ms"},
        {
            "name": "approvals",
            "status": "ok",
            "detail": "needs 1 named approver(s); given: lee (approver)",
        },
    ]
    return r


@pytest.fixture
def failing_report() -> dict[str, Any]:
    r = _base_report()
    r["verdict"] = "fail"
    r["metrics"][0]["candidate"] = _iv(0.771, 0.733, 0.809)
    r["metrics"][0]["comparison"].update(
        delta=-0.041, low=-0.066, high=-0.016, worse=True, p_value=0.002
    )
    r["must_pass"] = {
        "total": 12,
        "failures": [
            {
                "case_id": "refund-angry-01",
                "input": "I want my money back | NOW\nor else",
                "expected": "refund",
                "output": "card_arrival <b>maybe</b> & more",
                "detail": "exact: expected 'refund'",
                "epochs_failed": 1,
            },
            {
                "case_id": "lost-card-03",
                "input": {"text": "lost my card", "lang": "en"},
                "expected": "lost_or_stolen_card",
                "output": "x" * 1000,
                "detail": "exact: mismatch",
                "epochs_failed": 1,
            },
        ],
    }
    r["reasons"] = [
        "must-pass: 2 of 12 must-pass cases failed: refund-angry-01, lost-card-03",
        "floor accuracy: 0.771 [0.733, 0.809] < floor 0.800",
        "regression accuracy: delta -0.041 [-0.066, -0.016] (paired-bootstrap, n=200): "
        "regressed by more than the margin 0.020",
    ]
    r["checks"] = [
        {
            "name": "must-pass",
            "status": "fail",
            "detail": "2 of 12 must-pass cases failed: refund-angry-01, lost-card-03",
        },
        {
            "name": "floor accuracy",
            "status": "fail",
            "detail": "0.771 [0.733, 0.809] < floor 0.800",
        },
        {
            "name": "regression accuracy",
            "status": "fail",
            "detail": "delta -0.041 [-0.066, -0.016] (paired-bootstrap, n=200): regressed by "
            "more than the margin 0.020",
        },
        {"name": "budget latency p95", "status": "ok", "detail": "812.2 ms <= 1500.0 ms"},
        {
            "name": "approvals",
            "status": "hold",
            "detail": "needs 1 named approver(s); given: none yet",
        },
    ]
    r["approvals"]["given"] = []
    return r


@pytest.fixture
def hold_report() -> dict[str, Any]:
    r = _base_report()
    missing = (
        f"{CAND[:12]} was not evaluated on the current suite ({SUITE[:12]}): run "
        f"`releasegate eval {CAND[:12]} --suite FILE`"
    )
    r.update(
        verdict="hold",
        baseline=None,
        suite=None,
        eval=None,
        metrics=[],
        must_pass=None,
        budgets=None,
        reasons=[f"evaluation: {missing}"],
        change={
            "class": "model",
            "first_release": True,
            "classes": ["model", "wording"],
            "diff": [],
        },
        checks=[
            {"name": "evaluation", "status": "hold", "detail": missing},
            {
                "name": "approvals",
                "status": "hold",
                "detail": "needs 1 named approver(s) and the business approver; given: none yet",
            },
        ],
        approvals={"needed": {"named": 1, "business": True}, "given": []},
    )
    return r


def _section(md: str, heading: str) -> str:
    start = md.index(f"### {heading}")
    end = md.find("\n### ", start + 1)
    return md[start:] if end == -1 else md[start:end]


def _table_rows(md: str) -> list[str]:
    return [line for line in md.splitlines() if line.startswith("| ")]


def _cells(row: str) -> int:
    """Cells as a Markdown table sees them: split on pipes that are not escaped."""
    return len(re.findall(r"(?<!\\)\|", row)) - 1


# -- markdown --------------------------------------------------------------------------------


def test_pass_title_decision_and_metric_row(passing_report: dict[str, Any]) -> None:
    md = render_markdown(passing_report)
    title = md.splitlines()[0]
    assert "**PASS**" in title
    assert "support-triage@production" in title
    assert f"`{CAND[:12]}` vs `{BASE[:12]}`" in title
    assert CAND[:13] not in title
    decision = _section(md, "Decision")
    assert "every check passed" in decision
    assert f"`releasegate promote {CAND[:12]} --env production`" in decision
    assert (
        "| accuracy (floor 0.800) | 0.812 [0.776, 0.848] | 0.831 [0.796, 0.866] "
        "| +0.019 [-0.004, +0.042] | 0.015 | paired-bootstrap, n=200 |"
    ) in md
    assert "latency p95 812.2 ms (budget 1500.0 ms)" in md
    assert "Change class: **wording**" in md
    assert "Must-pass failures" not in md


def test_footer_names_every_record(passing_report: dict[str, Any]) -> None:
    footer = render_markdown(passing_report).split("\n---\n")[-1]
    for ident in (passing_report["decision_id"], SUITE, POLICY, "ev-77aa", "banking77-smoke"):
        assert ident in footer


def test_fail_shows_reasons_diff_and_must_pass_cases(failing_report: dict[str, Any]) -> None:
    md = render_markdown(failing_report)
    assert "**FAIL**" in md.splitlines()[0]
    decision = _section(md, "Decision")
    assert "3 check(s) failed" in decision
    for reason in ("refund-angry-01, lost-card-03", "floor accuracy", "regressed by more than"):
        assert reason in decision.replace("\\", "")
    # the diff is shown verbatim, in a diff block
    assert "```diff\n" + "\n".join(PROMPT_DIFF) + "\n```" in md
    assert "| -0.041 [-0.066, -0.016] **worse** |" in md
    mp = _section(md, "Must-pass failures (2 of 12)")
    assert "`refund-angry-01`" in mp and "`lost-card-03`" in mp
    assert "card\\_arrival &lt;b&gt;maybe&lt;/b&gt; &amp; more" in mp
    assert "I want my money back \\| NOW<br>or else" in mp
    assert '{"lang": "en", "text": "lost my card"}' in mp
    long_cell = re.search(r"x{50,}…", mp)
    assert long_cell is not None and len(long_cell.group()) <= 200
    checks = _section(md, "Checks")
    assert "| must-pass | **FAIL** |" in checks
    assert "| approvals | **HOLD** |" in checks


def test_table_rows_keep_their_shape_whatever_the_text(failing_report: dict[str, Any]) -> None:
    failing_report["checks"][0]["detail"] = "a | b\nc `x | y` <script>"
    failing_report["metrics"][0]["name"] = "acc|uracy"
    md = render_markdown(failing_report)
    widths = {"metric": 6, "check": 3, "case": 5}
    for row in _table_rows(md):
        header = next((h for h in widths if row.startswith(f"| {h} |")), None)
        if header:
            expected = widths[header]
        assert _cells(row) == expected, row
    assert "<script>" not in md


def test_hold_puts_what_to_do_first(hold_report: dict[str, Any]) -> None:
    md = render_markdown(hold_report)
    title = md.splitlines()[0]
    assert "**HOLD**" in title and "first release" in title
    decision = _section(md, "Decision")
    assert md.index("### Decision") < md.index("### What changed") < md.index("### Metrics")
    assert "cannot decide yet" in decision
    # the command in the reason stays a runnable code span
    assert f"`releasegate eval {CAND[:12]} --suite FILE`" in decision
    assert f"`releasegate gate {CAND[:12]} --env production`" in decision
    assert "First release to production" in _section(md, "What changed")
    assert "```diff" not in md
    assert "No metrics" in md
    assert "Needed: 1 named approver(s) and the business approver." in md
    assert "Given: none yet." in md
    assert "suite: none" in md and "eval: none" in md


def test_needs_approval_says_who_signs_how(passing_report: dict[str, Any]) -> None:
    passing_report.update(verdict="needs-approval", reasons=["missing the business approver"])
    md = render_markdown(passing_report)
    assert "**NEEDS-APPROVAL**" in md.splitlines()[0]
    assert f"`releasegate approve {CAND[:12]} --env production --as NAME`" in md
    assert "missing the business approver" in _section(md, "Decision")


def test_diff_containing_a_fence_cannot_close_the_block(passing_report: dict[str, Any]) -> None:
    passing_report["change"]["diff"] = ["prompts.system:", "-use ```json", "+use ````json"]
    md = render_markdown(passing_report)
    assert "`````diff\n" in md
    assert "\n+use ````json\n`````\n" in md


def test_long_diffs_are_cut_with_a_note(passing_report: dict[str, Any]) -> None:
    passing_report["change"]["diff"] = [f"+line {i}" for i in range(1000)]
    md = render_markdown(passing_report)
    assert "+line 399\n```" in md
    assert "600 more diff lines not shown" in md


# -- junit -----------------------------------------------------------------------------------


def _suite(xml: str) -> ET.Element:
    root = ET.fromstring(xml)
    suites = root.findall("testsuite")
    assert len(suites) == 1
    return suites[0]


def test_junit_pass(passing_report: dict[str, Any]) -> None:
    xml = render_junit(passing_report)
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    suite = _suite(xml)
    assert suite.get("name") == "releasegate gate support-triage@production"
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("5", "0", "0")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases][:2] == ["must-pass", "floor accuracy"]
    assert {c.get("classname") for c in cases} == {"gate.checks"}
    assert not suite.findall(".//failure") and not suite.findall(".//skipped")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["verdict"] == "pass" and props["version_id"] == CAND


def test_junit_fail_counts_and_must_pass_cases(failing_report: dict[str, Any]) -> None:
    root = ET.fromstring(render_junit(failing_report))
    suite = _suite(render_junit(failing_report))
    # 5 checks (3 fail, 1 hold) + 2 must-pass cases
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("7", "5", "1")
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("7", "5", "1")
    assert len(suite.findall("testcase")) == 7
    assert len(suite.findall(".//failure")) == 5 and len(suite.findall(".//skipped")) == 1
    mp = [c for c in suite.findall("testcase") if c.get("classname") == "gate.must_pass"]
    assert [c.get("name") for c in mp] == ["refund-angry-01", "lost-card-03"]
    failure = mp[0].find("failure")
    assert failure is not None
    # ElementTree gives back exactly the text that went in: it was escaped, not mangled
    assert failure.get("message") == "expected: refund; got: card_arrival <b>maybe</b> & more"
    assert failure.text is not None
    assert "input: I want my money back | NOW\nor else" in failure.text
    assert "output: card_arrival <b>maybe</b> & more" in failure.text
    held = [c for c in suite.findall("testcase") if c.find("skipped") is not None]
    assert [c.get("name") for c in held] == ["approvals"]


def test_junit_hold_without_baseline(hold_report: dict[str, Any]) -> None:
    suite = _suite(render_junit(hold_report))
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("2", "0", "2")
    props = {p.get("name") for p in suite.iter("property")}
    assert "baseline_id" not in props and "verdict" in props


def test_junit_survives_control_characters(failing_report: dict[str, Any]) -> None:
    failing_report["must_pass"]["failures"][0]["output"] = "ok\x1b[31m\x00 < & >"
    failing_report["checks"][0]["detail"] = 'quote " and\nnewline'
    suite = _suite(render_junit(failing_report))
    first = suite.find("testcase/failure")
    assert first is not None and first.get("message") == 'quote " and\nnewline'
    texts = [f.text or "" for f in suite.iter("failure")]
    assert any("ok\ufffd[31m\ufffd < & >" in t for t in texts)


# -- summary ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["passing_report", "failing_report", "hold_report"])
def test_summary_is_short_and_says_what_next(name: str, request: pytest.FixtureRequest) -> None:
    report = request.getfixturevalue(name)
    lines = render_summary_lines(report)
    assert 3 <= len(lines) <= 8
    assert lines[0].startswith(f"gate {report['verdict'].upper()}  support-triage@production")
    assert any(report["reasons"][0][:40] in line for line in lines)
    assert any(line.startswith("next: ") for line in lines)
    assert report["decision_id"] in lines[-1]
    assert all("\n" not in line for line in lines)


def test_summary_caps_many_reasons(failing_report: dict[str, Any]) -> None:
    failing_report["reasons"] = [f"reason {i}\nwith a newline" for i in range(10)]
    lines = render_summary_lines(failing_report)
    assert len(lines) == 8
    assert "  (+6 more in the report)" in lines
    assert "  - reason 0 with a newline" in lines


def test_renderers_do_not_mutate_the_report(failing_report: dict[str, Any]) -> None:
    before = copy.deepcopy(failing_report)
    render_markdown(failing_report)
    render_junit(failing_report)
    render_summary_lines(failing_report)
    assert failing_report == before


def test_flaky_must_pass_cases_say_how_often_they_failed(failing_report: dict[str, Any]) -> None:
    failing_report["eval"]["epochs"] = 3
    failing_report["must_pass"]["failures"][0]["epochs_failed"] = 2
    assert "`refund-angry-01` (failed 2 of 3 epochs)" in render_markdown(failing_report)
    failure = _suite(render_junit(failing_report)).find("testcase[@name='refund-angry-01']/failure")
    assert failure is not None and "failed in 2 of 3 epoch(s)" in (failure.text or "")


# -- epochs, flaky cases and clusters --------------------------------------------------------

ADVICE_TEXT = (
    "run 7 epochs (SE 0.08432, now 0.1026 at 2): past 7, epoch noise is under 10% of case spread"
)


def _with_precision(report: dict[str, Any], flaky: int = 2) -> dict[str, Any]:
    report["eval"] = {
        "eval_id": "ev-77aa",
        "epochs": 2,
        "clusters": None,
        "epoch_advice": {"accuracy": {"epochs": 7, "observed_epochs": 2, "text": ADVICE_TEXT}},
        "flaky": [
            {"case_id": f"flip_{i}|x", "passed": 1, "epochs": 2, "per_epoch": [1, 0]}
            for i in range(flaky)
        ],
        "flaky_total": flaky,
    }
    return report


def test_markdown_shows_epoch_advice_and_flaky_cases_with_their_passes(
    passing_report: dict[str, Any],
) -> None:
    md = render_markdown(_with_precision(passing_report))
    section = _section(md, "Epochs and flaky cases (2 epochs per case)")
    assert "- accuracy: run 7 epochs (SE 0.08432, now 0.1026 at 2): past 7, epoch noise" in section
    assert "2 flaky case(s): they passed in some epochs and failed in others." in section
    assert "| `flip_0\\|x` | 1 of 2 | 1 0 |" in section
    assert md.index("### Checks") < md.index("### Epochs and flaky") < md.index("### Approvals")


def test_many_flaky_cases_are_cut_with_a_count(passing_report: dict[str, Any]) -> None:
    md = render_markdown(_with_precision(passing_report, flaky=30))
    section = _section(md, "Epochs and flaky cases")
    assert section.count("| 1 of 2 | 1 0 |") == 25
    assert "… 5 more flaky cases not shown." in section


def test_no_precision_section_without_epochs_or_flaky_cases(
    passing_report: dict[str, Any],
) -> None:
    assert "### Epochs" not in render_markdown(passing_report)  # a report from before
    report = _with_precision(passing_report, flaky=0)
    report["eval"]["epoch_advice"] = {}
    assert "### Epochs" not in render_markdown(report)


def test_clustered_intervals_are_explained_under_the_metrics(
    passing_report: dict[str, Any],
) -> None:
    method = "clustered (12 clusters, CR1, t_11)"
    passing_report["metrics"][0]["candidate"]["method"] = method
    metrics = _section(render_markdown(passing_report), "Metrics")
    assert "cluster-robust (clustered (12 clusters, CR1, t\\_11))" in metrics
    assert "The paired comparison still treats every case as independent." in metrics


def test_bare_flaky_case_ids_still_render(passing_report: dict[str, Any]) -> None:
    report = _with_precision(passing_report, flaky=0)
    report["eval"]["flaky"] = ["c1"]
    assert "| `c1` | ? of ? | — |" in _section(render_markdown(report), "Epochs and flaky")
