"""The API over a real uvicorn on loopback, on SQLite and PostgreSQL: every endpoint's
answer, the one error shape with its status, and nothing written on any error."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from releasegate.release.audit import audit_log
from releasegate.release.resolve import resolve
from releasegate.store.engine import Store
from tests.helpers import Project
from tests.server.conftest import Live


def is_error(r: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    """``r`` is the one error shape with ``status``, its message holding ``fragments``."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"ok", "status", "error", "hint", "errors"}
    assert body["ok"] is False and body["status"] == status
    for f in fragments:
        assert f in body["error"], body
    return body


def events(live: Live) -> list[tuple[int, str]]:
    return [(e.seq, e.kind) for e in audit_log(live.store)]


def run(live: Live, i: int, **over: Any) -> dict[str, Any]:
    return {
        "run_id": f"r-{i:05d}",
        "workflow": "router",
        "env": "staging",
        "version_id": live.v1,
        "started_at": datetime(2026, 12, 1, 10, 0, tzinfo=UTC).isoformat(),
        "latency_ms": 120 + i,
        "status": "ok",
        **over,
    }


def test_health_readiness_metrics_and_the_published_spec(live: Live) -> None:
    with live.client() as c:
        assert c.get("/healthz").json() == {"ok": True}
        given = c.get("/healthz", headers={"X-Request-ID": "lb-7f3a:42"})
        assert given.headers["x-request-id"] == "lb-7f3a:42"
        made = c.get("/v1/workflows", headers={"X-Request-ID": "no spaces <b>"})
        assert made.status_code == 401 and len(made.headers["x-request-id"]) == 16
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ok"] is True
        assert ready.json()["schema"] == ready.json()["expected"]
        spec = c.get("/openapi.json").json()
        assert "/v1/runs" in spec["paths"] and "/v1/resolve/{workflow}/{env}" in spec["paths"]
        assert "HTTPBearer" in spec["components"]["securitySchemes"]
        assert c.get("/docs").status_code == 200
        metrics = c.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert 'releasegate_http_requests_total{method="GET",route="/readyz",status="200"} 1.0' in (
            metrics.text
        )


def test_the_views_are_the_clis_json(live: Live) -> None:
    with live.client("viewer") as c:
        wfs = c.get("/v1/workflows").json()
        assert [w["workflow"] for w in wfs] == ["router"]
        staging = next(e for e in wfs[0]["environments"] if e["env"] == "staging")
        assert staging["version_id"] == live.v1 and staging["paused"] is False
        assert c.get("/v1/workflows/router").json()["stakes"] == "high"
        envs = c.get("/v1/workflows/router/environments").json()
        assert {e["env"]: e["version_id"] for e in envs} == {"staging": live.v1, "production": None}
        versions = c.get("/v1/workflows/router/versions").json()
        assert [v["version_id"] for v in versions] == [live.v1, live.v2]
        assert versions[0]["environments"] == ["staging"]
        shown = c.get(f"/v1/versions/{live.v2[:12]}").json()
        assert shown["version_id"] == live.v2 and shown["decisions"][0]["verdict"] == (
            "needs-approval"
        )
        assert c.get("/v1/versions/router@staging").json()["version_id"] == live.v1
        resolved = c.get("/v1/resolve/router/staging").json()
        expected = resolve(live.store, "router", "staging")
        assert resolved["version_id"] == expected.version_id == live.v1
        assert resolved["manifest"] == expected.manifest
        assert (resolved["paused"], resolved["fallback"], resolved["rollout"]) == (
            False,
            False,
            None,
        )
        history = c.get("/v1/workflows/router/environments/staging/history").json()
        assert [(h["action"], h["version_id"]) for h in history] == [("promote", live.v1)]
        log = c.get("/v1/audit", params={"limit": 3}).json()
        assert [e["seq"] for e in log] == [s for s, _ in events(live)[-3:]]
        assert c.get("/v1/audit/verify").json()["ok"] is True


def test_unknown_names_are_404_and_bad_references_400(live: Live) -> None:
    with live.client("viewer") as c:
        is_error(c.get("/v1/workflows/nope"), 404, "no workflow 'nope'")
        is_error(c.get("/v1/workflows/nope/versions"), 404, "no workflow 'nope'")
        is_error(c.get("/v1/versions/abcdef123456"), 404, "no version 'abcdef123456'")
        is_error(c.get("/v1/resolve/router/production"), 404, "nothing runs in router@production")
        is_error(c.get("/v1/resolve/router/moon"), 400, "moon")
        short = is_error(c.get("/v1/versions/abc"), 400, "too short")
        assert short["errors"] == [
            {"field": "version", "message": short["errors"][0]["message"], "index": None}
        ]
        is_error(c.get("/v1/nothing-here"), 404, "no such endpoint")
        is_error(c.delete("/v1/workflows"), 405)
        is_error(c.get("/v1/audit", params={"limit": "many"}), 422, "limit")


def test_runs_land_all_or_none_as_runs_import(live: Live) -> None:
    batch = [run(live, i) for i in range(50)]
    with live.client("operator") as c:
        landed = c.post("/v1/runs", json=batch)
        assert landed.status_code == 200, landed.text
        assert (landed.json()["received"], landed.json()["landed"]) == (50, 50)
        again = c.post("/v1/runs", json={"runs": batch}).json()
        assert (again["landed"], again["duplicates"]) == (0, 50)
        before = events(live)
        bad = [run(live, 100 + i) for i in range(10)]
        bad[3]["latency_ms"] = "slow"
        bad[7]["workflow"] = "nope"
        refused = is_error(c.post("/v1/runs", json=bad), 422, "rejected, nothing landed")
        assert [e["index"] for e in refused["errors"]] == [3]  # the parser stops the batch first
        assert refused["errors"][0]["field"] == "latency_ms"
        unknown = [run(live, 200), run(live, 201, workflow="nope")]
        refused = is_error(c.post("/v1/runs", json=unknown), 422, "nothing landed")
        assert [e["index"] for e in refused["errors"]] == [1]
        is_error(c.post("/v1/runs", content=b"[{"), 400, "malformed JSON")
        is_error(c.post("/v1/runs", json={"run_id": "x"}), 422, "array of run objects")
        is_error(c.post("/v1/runs", json=[1, 2]), 422, "array of run objects")
        deep = b"[" * 5000 + b"]" * 5000
        is_error(c.post("/v1/runs", content=deep), 400)
        assert events(live) == before  # nothing written by any refused batch
        partial = c.post("/v1/runs", params={"atomic": "false"}, json=bad[:5])
        assert partial.status_code == 200, partial.text
        kept = partial.json()
        assert (kept["landed"], [r["index"] for r in kept["rejected"]]) == (4, [3])
    shown = httpx.get(f"{live.url}/metrics").text
    assert "releasegate_runs_landed_total 54.0" in shown


def test_an_oversized_body_is_413_and_lands_nothing(live: Live, store_url: str) -> None:
    from releasegate.server.app import Settings, create_app
    from tests.server.conftest import run_server

    app = create_app(live.store, Settings(max_body_bytes=10_000, token_ttl=0))
    batch = [run(live, i) for i in range(200)]
    for url in run_server(app):
        headers = {"Authorization": f"Bearer {live.tokens['operator']}"}
        r = httpx.post(f"{url}/v1/runs", json=batch, headers=headers)
        is_error(r, 413, "over the server's limit of 10,000 bytes")

        def chunks() -> Any:  # no Content-Length: counted as it arrives
            body = json.dumps(batch).encode()
            for i in range(0, len(body), 4096):
                yield body[i : i + 4096]

        r = httpx.post(f"{url}/v1/runs", content=chunks(), headers=headers)
        is_error(r, 413, "over the server's limit")
        small = httpx.post(f"{url}/v1/runs", json=batch[:5], headers=headers)
        assert small.json()["landed"] == 5
    with live.client("viewer") as c:
        assert c.get("/v1/workflows").status_code == 200


def test_approve_then_promote_as_the_tokens_identity(live: Live) -> None:
    with live.client("bob") as bob:
        done = bob.post(
            f"/v1/versions/{live.v2[:12]}/approve", json={"env": "staging", "note": "ok"}
        )
        assert done.status_code == 200, done.text
        assert (done.json()["approver"], done.json()["role"]) == ("bob", "approver")
    granted = [e for e in audit_log(live.store) if e.kind == "approval.granted"][-1]
    assert granted.actor == "bob" and granted.payload["token_id"] in live.tokens["bob"]
    with live.client("operator") as op:
        moved = op.post(f"/v1/versions/{live.v2}/promote", json={"env": "staging"})
        assert moved.status_code == 200, moved.text
        assert (moved.json()["previous_id"], moved.json()["version_id"]) == (live.v1, live.v2)
        assert op.get("/v1/resolve/router/staging").json()["version_id"] == live.v2
        back = op.post(
            "/v1/workflows/router/environments/staging/rollback", json={"reason": "INC-1"}
        )
        assert back.json()["version_id"] == live.v1
        paused = op.post(
            "/v1/workflows/router/environments/staging/pause", json={"reason": "incident 42"}
        )
        assert paused.status_code == 200 and paused.json()["paused"] is True
        resolved = op.get("/v1/resolve/router/staging").json()
        assert (resolved["paused"], resolved["paused_reason"]) == (True, "incident 42")
        again = op.post("/v1/workflows/router/environments/staging/pause", json={"reason": "again"})
        is_error(again, 409, "already paused")
        assert op.post("/v1/workflows/router/environments/staging/resume").json()["action"] == (
            "resumed"
        )
    history = [(e.actor, e.kind) for e in audit_log(live.store)][-5:]
    assert history == [
        ("bob", "approval.granted"),
        ("operator", "env.promoted"),
        ("operator", "env.rolled_back"),
        ("operator", "env.paused"),
        ("operator", "env.resumed"),
    ]
    with live.client("viewer") as c:
        assert c.get("/v1/audit/verify").json()["ok"] is True


def test_an_approval_names_no_one_but_the_token_and_nobody_approves_their_own(live: Live) -> None:
    before = events(live)
    with live.client("bob") as bob:
        for key in ("as", "approver"):
            r = bob.post(f"/v1/versions/{live.v2}/approve", json={"env": "staging", key: "carol"})
            is_error(r, 422, f"'{key}' is refused over the server")
        is_error(bob.post(f"/v1/versions/{live.v2}/approve", json={}), 422, "env")
        r = bob.post(
            f"/v1/versions/{live.v2}/approve",
            content=b"{",
            headers={"content-type": "application/json"},
        )
        is_error(r, 400, "malformed")
        r = bob.post(f"/v1/versions/{live.v2}/approve", json={"env": "moon"})
        is_error(r, 400, "moon")
    with live.client("alice") as alice:  # alice owns v2
        r = alice.post(f"/v1/versions/{live.v2}/approve", json={"env": "staging"})
        is_error(r, 409, "nobody approves their own change")
    with live.client("approver") as other:  # a token whose name is no approver of the workflow
        r = other.post(f"/v1/versions/{live.v2}/approve", json={"env": "staging"})
        is_error(r, 409, "not an approver")
    with live.client("operator") as op:
        is_error(op.post(f"/v1/versions/{live.v2}/promote", json={"env": "staging"}), 409)
    assert events(live) == before


def test_the_local_approval_records_the_os_user_beside_as(live: Live) -> None:
    from releasegate.release.promote import approve
    from releasegate.release.refs import os_user

    approve(live.store, live.v2, "staging", approver="carol", os_user=os_user())
    granted = [e for e in audit_log(live.store) if e.kind == "approval.granted"][-1]
    assert granted.actor == "carol" and granted.payload["os_user"] == os_user()


def test_a_rollout_over_the_api(live: Live) -> None:
    from releasegate.release.promote import approve

    approve(live.store, live.v2, "staging", approver="bob")
    with live.client("operator") as op:
        wf = "/v1/workflows/router/environments/staging"
        is_error(op.get(f"{wf}/rollout"), 409, "no rollout ever ran")
        started = op.post(
            f"/v1/versions/{live.v2}/promote",
            json={"env": "staging", "canary": 10, "steps": [10, 50, 100]},
        )
        assert started.status_code == 200, started.text
        assert (started.json()["canary_id"], started.json()["weight"]) == (live.v2, 10)
        assert op.get(f"{wf}/rollout").json()["state"] == "running"
        assert op.get("/v1/resolve/router/staging").json()["rollout"]["canary_id"] == live.v2
        # no canary run yet: the check holds the step, so an advance by hand is refused
        is_error(op.post(f"{wf}/rollout/advance"), 409, "not eligible to advance")
        assert op.get(f"{wf}/rollout").json()["weight"] == 10
        checked = op.post(f"{wf}/rollout/check")
        assert checked.status_code == 200 and "alerts_sent" in checked.json()
        stopped = op.post(f"{wf}/rollout/abort", json={"reason": "INC-7"})
        assert stopped.json()["state"] == "aborted" and "INC-7" in stopped.json()["reason"]
        is_error(op.post(f"{wf}/rollout/advance"), 409)
        assert op.get("/v1/resolve/router/staging").json()["version_id"] == live.v1
    kinds = [(e.actor, e.kind) for e in audit_log(live.store)][-2:]
    assert kinds == [("operator", "rollout.started"), ("operator", "rollout.aborted")], kinds


def test_gate_reports_over_the_api(live: Live) -> None:
    with live.client("viewer") as c:
        report = c.get(f"/v1/versions/{live.v2[:12]}/gate", params={"env": "staging"})
        assert report.status_code == 200, report.text
        body = report.json()
        assert body["verdict"] == "needs-approval"
        again = c.get(f"/v1/decisions/{body['decision_id'][:12]}").json()
        assert again["decision_id"] == body["decision_id"]
        is_error(c.get(f"/v1/versions/{live.v2}/gate"), 422, "env")
        is_error(c.get(f"/v1/versions/{live.v2}/gate", params={"env": "production"}), 404)
        is_error(c.get("/v1/decisions/abcdef"), 404, "no gate decision")


def test_tokens_over_the_api_for_admins(live: Live) -> None:
    with live.client("admin") as admin:
        made = admin.post("/v1/tokens", json={"name": "carol", "role": "approver"})
        assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
        secret = made.json()["token"]
        listed = admin.get("/v1/tokens").json()
        assert "carol" in [t["name"] for t in listed] and secret[20:] not in repr(listed)
        is_error(admin.post("/v1/tokens", json={"name": "carol", "role": "viewer"}), 409)
        is_error(admin.post("/v1/tokens", json={"name": "dave", "role": "root"}), 400, "root")
        with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {secret}"}) as c:
            assert c.get("/v1/workflows").status_code == 200
            assert admin.delete("/v1/tokens/carol").json()["active"] is False
            is_error(c.get("/v1/workflows"), 401, "was revoked")
        is_error(admin.delete("/v1/tokens/nobody"), 404)
    created = [e for e in audit_log(live.store) if e.kind in ("token.created", "token.revoked")]
    assert [(e.actor, e.kind) for e in created][-2:] == [
        ("admin", "token.created"),
        ("admin", "token.revoked"),
    ]


def test_otlp_traces_land_as_runs(live: Live) -> None:
    import time

    from tests.domain.test_otlp import Telemetry

    app = Telemetry({"service.name": "router-api", "deployment.environment.name": "staging"})
    start = time.time_ns() - 5_000_000_000
    for i in range(3):
        attrs = {"releasegate.version": live.v1, "releasegate.workflow": "router"}
        with app.tracer.start_as_current_span(
            "route", start_time=start + i, end_on_exit=False, attributes=attrs
        ) as span:
            span.end(end_time=start + i + 250_000_000)
    payload = app.payload()
    app.provider.shutdown()
    with live.client("operator") as op:
        landed = op.post("/v1/traces", json=payload)
        assert landed.status_code == 200, landed.text
        assert landed.json()["landed"] == 3
        is_error(op.post("/v1/traces", json=[1]), 422, "JSON object")
        is_error(
            op.post("/v1/traces", content=b"{", headers={"content-type": "application/json"}), 400
        )


def test_the_rollout_check_endpoint_samples_quality_as_the_cli_does(
    store: Store, tmp_path: Path
) -> None:
    from releasegate.release import rollout
    from releasegate.release.tokens import create_token
    from releasegate.server.app import Settings, create_app
    from tests.release.test_rollout import RID
    from tests.release.test_rollout_mix import answered_traffic, quality_pair
    from tests.server.conftest import run_server

    _, v2 = quality_pair(store, Project(root=tmp_path))
    rollout.start(store, v2, "staging", canary_pct=25, who="alice", rollout_id=RID)
    answered_traffic(store, 400, canary_free_text=0.4, seed=1)
    token = create_token(store, "op", "operator").secret
    for url in run_server(create_app(store, Settings(token_ttl=0, resolve_ttl=0))):
        with httpx.Client(base_url=url, timeout=120) as op:
            op.headers["Authorization"] = f"Bearer {token}"
            r = op.post("/v1/workflows/router/environments/staging/rollout/check")
    assert r.status_code == 200, r.text
    reasons = r.json()["outcome"]["reasons"]
    assert not any(x.startswith("quality: no sampled run scored") for x in reasons), reasons
    checked = rollout.status(store, "router", "staging").rollout
    assert checked is not None and "quality" in checked.evidence.states


def test_a_blob_comes_back_checked_whole_or_streamed(live: Live) -> None:
    import hashlib
    import os

    import pytest
    import sqlalchemy as sa

    small, large = b"route it\n" * 100, os.urandom(5 * (1 << 20) + 7)
    digests = [live.store.blobs.put(data) for data in (small, large)]
    with live.client("viewer") as c:
        for digest, data in zip(digests, (small, large), strict=True):
            got = c.get(f"/v1/blobs/{digest}")
            assert got.status_code == 200 and got.content == data
            assert got.headers["content-length"] == str(len(data))
            assert hashlib.sha256(got.content).hexdigest() == digest
        with live.store.write() as conn:
            conn.execute(
                sa.text("UPDATE blob_chunks SET data = :d WHERE seq = :s AND digest = :g"),
                [{"d": b"\x00" * 900, "s": 1, "g": digests[0]},
                 {"d": os.urandom(1 << 20), "s": 3, "g": digests[1]}],
            )  # fmt: skip
        refused = c.get(f"/v1/blobs/{digests[0]}")
        assert refused.status_code == 409
        assert refused.json()["error"].startswith(f"blob sha256:{digests[0]} is corrupt")
        with pytest.raises(httpx.RemoteProtocolError):  # cut short of its Content-Length
            c.get(f"/v1/blobs/{digests[1]}")
