"""Roles × endpoints: every endpoint refuses a missing, malformed, unknown or revoked token
(401) and every role below its own (403), audits each refusal with who and why, writes
nothing else, and never shows a secret. A route added without a role fails here."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import pytest
import sqlalchemy as sa

from releasegate.domain.access import ROLES, Role
from releasegate.release.audit import audit_log
from releasegate.release.tokens import REFUSED
from releasegate.server.app import create_app
from releasegate.store.engine import Store
from tests.server.conftest import Live


class Endpoint(NamedTuple):
    method: str
    path: str
    needs: Role
    body: Any = None


def endpoints(live: Live) -> list[Endpoint]:
    wf = "/v1/workflows/router/environments/staging"
    return [
        Endpoint("GET", "/v1/workflows", Role.VIEWER),
        Endpoint("GET", "/v1/workflows/router", Role.VIEWER),
        Endpoint("GET", "/v1/workflows/router/environments", Role.VIEWER),
        Endpoint("GET", "/v1/workflows/router/versions", Role.VIEWER),
        Endpoint("GET", f"/v1/versions/{live.v1}", Role.VIEWER),
        Endpoint("GET", f"{wf}/history", Role.VIEWER),
        Endpoint("GET", "/v1/resolve/router/staging", Role.VIEWER),
        Endpoint("GET", "/v1/audit", Role.VIEWER),
        Endpoint("GET", f"/v1/blobs/{'0' * 64}", Role.VIEWER),
        Endpoint("GET", "/v1/audit/verify", Role.VIEWER),
        Endpoint("POST", "/v1/runs", Role.OPERATOR, []),
        Endpoint("POST", f"/v1/versions/{live.v2}/promote", Role.OPERATOR, {"env": "staging"}),
        Endpoint("POST", f"{wf}/rollback", Role.OPERATOR, {}),
        Endpoint("POST", f"{wf}/pause", Role.OPERATOR, {"reason": "x"}),
        Endpoint("POST", f"{wf}/resume", Role.OPERATOR),
        Endpoint("POST", f"/v1/versions/{live.v2}/approve", Role.APPROVER, {"env": "staging"}),
        Endpoint("GET", f"{wf}/rollout", Role.VIEWER),
        Endpoint("POST", f"{wf}/rollout/advance", Role.OPERATOR),
        Endpoint("POST", f"{wf}/rollout/abort", Role.OPERATOR, {}),
        Endpoint("POST", f"{wf}/rollout/check", Role.OPERATOR),
        Endpoint("GET", f"/v1/versions/{live.v2}/gate", Role.VIEWER),
        Endpoint("GET", "/v1/decisions/abcdef", Role.VIEWER),
        Endpoint("POST", "/v1/traces", Role.OPERATOR, {"resourceSpans": []}),
        Endpoint("GET", "/v1/tokens", Role.ADMIN),
        Endpoint("POST", "/v1/tokens", Role.ADMIN, {"name": "eve", "role": "admin"}),
        Endpoint("DELETE", "/v1/tokens/bob", Role.ADMIN),
        Endpoint("POST", "/v1/versions", Role.BUILDER, {"document": "workflow: x"}),
        Endpoint("POST", f"/v1/versions/{live.v2}/evals", Role.BUILDER, {}),
        Endpoint("GET", "/v1/evals/abcdef", Role.VIEWER),
        Endpoint("GET", f"{wf}/queue", Role.VIEWER),
        Endpoint("GET", f"{wf}/reviews", Role.VIEWER),
        Endpoint("POST", "/v1/reviews", Role.OPERATOR, {"run": "nope", "verdict": "good"}),
        Endpoint("POST", "/v1/reviews/case", Role.OPERATOR, {"run": "nope"}),
        Endpoint("POST", f"/v1/versions/{live.v2}/gate", Role.BUILDER, {"env": "staging"}),
        Endpoint("GET", "/v1/runs/r-00001", Role.VIEWER),
        Endpoint("GET", f"{wf}/monitor?embeddings=false&quality=false", Role.VIEWER),
        Endpoint("POST", f"{wf}/monitor", Role.OPERATOR, {"embeddings": False, "quality": False}),
        Endpoint("GET", "/v1/workflows/router/memo", Role.VIEWER),
        Endpoint("GET", "/v1/workflows/router/runbook", Role.VIEWER),
        Endpoint("GET", "/v1/workflows/router/handover", Role.VIEWER),
        Endpoint("GET", "/v1/review", Role.VIEWER),
        Endpoint("POST", "/v1/review", Role.OPERATOR, {}),
        Endpoint("GET", f"/v1/versions/{live.v1}/diff/{live.v2}", Role.VIEWER),
        Endpoint("GET", "/v1/workflows/router/stage", Role.VIEWER),
        Endpoint("POST", "/v1/workflows/router/stage", Role.OPERATOR, {"stage": "pilot"}),
        Endpoint("GET", "/v1/workflows/router/policy", Role.VIEWER),
        Endpoint(
            "POST",
            f"{wf}/policy/proposals",
            Role.BUILDER,
            {"floor": ["accuracy=0.6"], "reason": "x"},
        ),
        Endpoint("POST", "/v1/policy/proposals/abc/approve", Role.APPROVER, {}),
        Endpoint(
            "POST", "/v1/suites/cases", Role.BUILDER, {"suite": "x", "reason": "y", "input": "z"}
        ),
        Endpoint("POST", f"/v1/versions/{live.v2}/plan", Role.VIEWER, {"suite": "x"}),
        Endpoint(
            "POST",
            f"/v1/versions/{live.v2}/compare",
            Role.BUILDER,
            {"baseline": live.v1, "suite": "x", "judge": "y"},
        ),
        Endpoint("POST", f"{wf}/rehearse", Role.OPERATOR, {}),
        Endpoint("POST", f"{wf}/rollout/shadow-replay", Role.OPERATOR, {}),
        Endpoint("GET", "/v1/jobs/abcdef", Role.VIEWER),
    ]


PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}


def test_every_route_is_in_the_matrix_or_public(store: Store) -> None:
    """Read from the published spec: every operation is public or tested below, and every
    one that is not public declares the bearer token."""
    spec = create_app(store).openapi()
    matrix = endpoints(Live("", store, {}, "0" * 64, "1" * 64))
    seen = set()
    for path, operations in spec["paths"].items():
        pattern = re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", path) + "$")
        for method, op in operations.items():
            hits = [
                e
                for e in matrix
                if e.method == method.upper() and pattern.match(e.path.split("?")[0])
            ]
            if (method.upper(), path) in PUBLIC:
                assert not op.get("security"), path
                continue
            assert hits, f"{method.upper()} {path} has no role test"
            assert op.get("security") == [{"HTTPBearer": []}], path
            seen.update((e.method, e.path) for e in hits)
    assert seen == {(e.method, e.path) for e in matrix}


def state(live: Live) -> dict[str, Any]:
    """Everything a request could change, but the audit log's refusal events."""
    with live.store.read() as conn:
        tables = {
            name: sorted(map(tuple, conn.execute(sa.text(f"SELECT * FROM {name}")).all()), key=repr)
            for name in (
                "environments",
                "env_history",
                "approvals",
                "runs",
                "alerts",
                "rollouts",
                "api_tokens",
                "versions",
                "eval_runs",
                "gate_decisions",
                "suites",
                "run_reviews",
                "workflow_stages",
                "policies",
                "policy_proposals",
                "jobs",
            )
        }
    tables["audit"] = [(e.seq, e.kind) for e in audit_log(live.store) if e.kind != REFUSED]
    return tables


def refusals(live: Live) -> list[dict[str, Any]]:
    return [
        {"actor": e.actor, "subject": e.subject, **e.payload}
        for e in audit_log(live.store)
        if e.kind == REFUSED
    ]


BAD_CREDENTIALS = {
    "none": {},
    "not bearer": {"Authorization": "Basic dXNlcjpwYXNz"},
    "malformed": {"Authorization": "Bearer hunter2"},
    "unknown": {"Authorization": "Bearer rg_0123456789abcdef_" + "A" * 43},
}


def test_every_refusal_is_401_or_403_audited_and_writes_nothing(live: Live) -> None:
    before = state(live)
    expected: list[tuple[str, int, str]] = []
    bodies: list[str] = []
    for e in endpoints(live):
        for label, headers in BAD_CREDENTIALS.items():
            with live.client(**headers) as c:
                r = c.request(e.method, e.path, json=e.body)
            assert r.status_code == 401, (label, e, r.text)
            assert r.json()["ok"] is False and r.json()["status"] == 401
            bodies.append(r.text)
            expected.append(("anonymous", 401, e.path.split("?")[0]))
        with live.client("revoked") as c:
            r = c.request(e.method, e.path, json=e.body)
        assert r.status_code == 401 and "was revoked" in r.json()["error"], (e, r.text)
        bodies.append(r.text)
        expected.append(("anonymous", 401, e.path.split("?")[0]))
        for role in ROLES:
            if Role[role.upper()] >= e.needs:
                continue
            with live.client(role) as c:
                r = c.request(e.method, e.path, json=e.body)
            assert r.status_code == 403, (role, e, r.text)
            assert f"needs {e.needs.label} or above" in r.json()["error"]
            bodies.append(r.text)
            expected.append((role, 403, e.path.split("?")[0]))
    assert state(live) == before
    found = refusals(live)
    assert [(f["actor"], f["status"], f["path"]) for f in found] == expected
    assert all(f["reason"] for f in found)
    revoked = [f for f in found if "was revoked" in f["reason"]]
    assert revoked and all(f["subject"] for f in revoked)  # the token's id, never its secret
    secrets = [t[20:] for t in live.tokens.values()] + ["A" * 43, "hunter2"]
    logged = repr([e.payload for e in audit_log(live.store)])
    for secret in secrets:
        assert secret not in logged
        assert all(secret not in b for b in bodies)
    with live.client() as c:
        assert 'releasegate_access_refused_total{status="403"}' in c.get("/metrics").text


@pytest.mark.parametrize("role", ROLES)
def test_each_role_reaches_what_it_needs(live: Live, role: str) -> None:
    """No 401 or 403 for a role at or above a reading endpoint's own (its answer may still
    be no: no rollout ran yet, no such decision, a query parameter missing)."""
    held = Role[role.upper()]
    for e in endpoints(live):
        if held < e.needs or e.method != "GET":
            continue
        with live.client(role) as c:
            r = c.request(e.method, e.path)
        assert r.status_code not in (401, 403, 500), (role, e, r.text)
