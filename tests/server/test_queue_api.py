"""The review queue over a real uvicorn on loopback (SQLite and PostgreSQL): the queue and
the log for a viewer, a review as the token's identity (operator), `as` refused, an
unknown run 404, the same review again 409, a review made a case of the current suite."""

from __future__ import annotations

import html
import json
from pathlib import Path

from releasegate.monitor.ingest import ingest_dicts
from releasegate.release.audit import audit_log
from tests.release.test_review_queue import runs
from tests.server.conftest import Live

WF = "/v1/workflows/router/environments/staging"


def seed(live: Live) -> None:
    rows = [{**r, "env": "staging", "version_id": live.v1} for r in runs(live.v1)]
    assert ingest_dicts(live.store, rows, source="http").landed == 60


def reviews_stored(live: Live) -> int:
    return len([e for e in audit_log(live.store) if e.kind.startswith("review.")])


def test_queue_review_and_case_over_http(live: Live, tmp_path: Path) -> None:
    seed(live)
    with live.client("viewer") as c:
        q = c.get(f"{WF}/queue", params={"limit": 5})
        assert q.status_code == 200, q.text
        body = q.json()
        assert body["items"][0]["run_id"] == "run-000" and body["next"]
        assert body["items"][0]["reasons"][0] == "escalated"
        page2 = c.get(f"{WF}/queue", params={"limit": 5, "after": body["next"]}).json()
        assert page2["items"][0]["run_id"] not in {i["run_id"] for i in body["items"]}
        bad = c.get(f"{WF}/queue", params={"period": "yesterday"})
        assert bad.status_code == 400 and "period" in bad.json()["error"]
        assert c.get("/v1/workflows/router/environments/moon/queue").status_code == 400
        assert c.get("/v1/workflows/nope/environments/staging/queue").status_code == 404
        refused = c.post("/v1/reviews", json={"run": "run-010", "verdict": "bad"})
        assert refused.status_code == 403
    assert reviews_stored(live) == 0

    with live.client("operator") as c:
        posed = c.post("/v1/reviews", json={"run": "run-010", "verdict": "bad", "as": "bob"})
        assert posed.status_code == 422 and "'as' is refused" in posed.text
        missing = c.post("/v1/reviews", json={"run": "nope", "verdict": "bad"})
        assert missing.status_code == 404 and "no run 'nope'" in missing.json()["error"]
        meh = c.post("/v1/reviews", json={"run": "run-010", "verdict": "meh"})
        assert meh.status_code == 400 and "unknown verdict" in meh.json()["error"]
        assert reviews_stored(live) == 0

        done = c.post(
            "/v1/reviews",
            json={"run": "run-010", "verdict": "bad", "expected": "fraud", "note": "missed"},
        )
        assert done.status_code == 200, done.text
        review = done.json()
        assert review["reviewer"] == "operator" and review["updated"] is False
        again = c.post(
            "/v1/reviews",
            json={"run": "run-010", "verdict": "bad", "expected": "fraud", "note": "missed"},
        )
        assert again.status_code == 409 and "nothing to change" in again.json()["error"]

        made = c.post("/v1/reviews/case", json={"run": "run-010"})
        assert made.status_code == 200, made.text
        assert made.json()["review_id"] == review["review_id"]
        twice = c.post("/v1/reviews/case", json={"run": "run-010"})
        assert twice.status_code == 409
        queue = c.get(f"{WF}/queue").json()
        assert "run-010" not in {i["run_id"] for i in queue["items"]}
        assert queue["reviewed"] == 1
        log = c.get(f"{WF}/reviews").json()
        assert log["stats"]["bad"] == 1 and log["stats"]["cases"] == 1
        assert log["reviews"][0]["case_id"] == made.json()["case_id"]

    case = json.loads(made.json()["appended"])  # the stored suite has it; no file was touched
    assert case["expected"] == "fraud" and case["metadata"]["review_id"] == review["review_id"]
    assert made.json()["cases_file"] is None
    events = [e for e in audit_log(live.store) if e.kind.startswith("review.")]
    assert [(e.kind, e.actor) for e in events] == [
        ("review.marked", "operator"),
        ("review.case_added", "operator"),
    ]
    assert events[0].payload["token_id"]


def test_the_queue_page_reviews_and_makes_a_case(live: Live, tmp_path: Path) -> None:
    from tests.server.test_web import HOSTILE, csrf, logged_in

    rows = [{**r, "env": "staging", "version_id": live.v1} for r in runs(live.v1)]
    rows[0]["output"] = HOSTILE  # run-000, the first in the queue
    assert ingest_dicts(live.store, rows, source="http").landed == 60
    page = "/web/workflows/router/queue?env=staging"
    with logged_in(live, "viewer") as c:
        shown = c.get(page)
        assert shown.status_code == 200
        assert "run-000" in shown.text and "escalated" in shown.text
        assert HOSTILE not in shown.text and "&lt;script&gt;" in shown.text
        assert 'action="/web/queue/mark"' not in shown.text  # a viewer reads, no forms
        workflow = c.get("/web/workflows/router")
        assert 'href="/web/workflows/router/queue"' in workflow.text
    with logged_in(live, "operator") as c:
        shown = c.get(page)
        assert 'action="/web/queue/mark"' in shown.text
        token = csrf(shown.text)
        form = {"run": "run-010", "verdict": "bad", "expected": "fraud", "case": "1",
                "workflow": "router", "env": "staging"}  # fmt: skip
        forged = c.post("/web/queue/mark", data=form)
        assert forged.status_code == 403 and reviews_stored(live) == 0
        done = c.post("/web/queue/mark", data={**form, "csrf": token})
        assert done.status_code == 200, done.text
        assert "operator marked run run-010 bad with a corrected output." in done.text
        assert "Added case case-81 to the current suite" in done.text
        assert 'href="/web/workflows/router/queue?env=staging"' in done.text
        again = c.post("/web/queue/mark", data={**form, "csrf": token, "case": ""})
        assert again.status_code == 409 and "nothing to change" in again.text
        shown = c.get(page)
        assert "run-010</code> <span" not in shown.text  # left the queue
        assert "case-81" in shown.text  # in the log, with its case
        good_form = {**form, "run": "run-007", "verdict": "good", "expected": "", "case": ""}
        good = c.post("/web/queue/mark", data={**good_form, "csrf": token})
        assert good.status_code == 200
        shown = c.get(page)
        assert 'class="make-case"' in shown.text
        made = c.post("/web/queue/case", data={"run": "run-007", "csrf": token})
        assert made.status_code == 200 and "Added case case-82" in made.text
    shown_line = made.text.split("its line there is: ", 1)[1].split("</p>", 1)[0]
    case = json.loads(html.unescape(shown_line))
    assert case["expected"] == "complaint" and case["metadata"]["reviewer"] == "operator"
