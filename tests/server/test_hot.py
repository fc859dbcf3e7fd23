"""``GET /v1/resolve`` from memory (server/hot.py), over a real uvicorn on SQLite and
PostgreSQL: the same bytes as the route, a promotion seen once the TTL has passed, a
revoked token refused (at once through this process, within the token TTL from another),
and every answer counted and timed as the route's."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable

import httpx

from releasegate.release.audit import audit_log
from releasegate.release.tokens import revoke_token
from releasegate.server.app import Settings, create_app
from tests.server.conftest import Live, run_server
from tests.server.test_api import is_error

PATH = "/v1/resolve/router/staging"


def eventually(check: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.05)


def client(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def test_resolve_from_memory_is_the_routes_answer_and_follows_promotions(live: Live) -> None:
    app = create_app(live.store, Settings(token_ttl=60, resolve_ttl=0.3))
    for url in run_server(app):
        with client(url, live.tokens["viewer"]) as viewer:
            first = viewer.get(PATH)  # through the route, which fills both memories
            again = [viewer.get(PATH) for _ in range(5)]
            for answer in again:
                assert answer.status_code == 200
                assert answer.content == first.content
                assert answer.headers["content-type"] == first.headers["content-type"]
            ids = {a.headers["x-request-id"] for a in [first, *again]}
            assert len(ids) == 6 and all(len(i) == 16 for i in ids)
            assert first.json()["version_id"] == live.v1
            with client(url, live.tokens["bob"]) as bob:
                approved = bob.post(f"/v1/versions/{live.v2}/approve", json={"env": "staging"})
                assert approved.status_code == 200, approved.text
            with client(url, live.tokens["operator"]) as op:
                moved = op.post(f"/v1/versions/{live.v2}/promote", json={"env": "staging"})
                assert moved.status_code == 200, moved.text
            eventually(lambda: viewer.get(PATH).json()["version_id"] == live.v2)
            time.sleep(0.4)  # past the TTL: the requests that find it so share one lookup
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(lambda _: viewer.get(PATH), range(64)))
            assert {(a.status_code, a.json()["version_id"]) for a in answers} == {(200, live.v2)}
        shown = httpx.get(f"{url}/metrics").text
    line = 'releasegate_http_requests_total{method="GET",route="/v1/resolve/{workflow}/{env}",'
    counted = [row for row in shown.splitlines() if row.startswith(line + 'status="200"}')]
    assert counted and float(counted[0].split()[-1]) >= 70


def test_a_revoked_token_is_refused_from_memory_too(live: Live) -> None:
    app = create_app(live.store, Settings(token_ttl=0.3, resolve_ttl=60))
    for url in run_server(app):
        with (
            client(url, live.tokens["viewer"]) as viewer,
            client(url, live.tokens["admin"]) as admin,
        ):
            assert [viewer.get(PATH).status_code for _ in range(3)] == [200] * 3
            assert admin.delete("/v1/tokens/viewer").status_code == 200
            is_error(viewer.get(PATH), 401, "was revoked")  # at once, through this process
        with client(url, live.tokens["operator"]) as op:
            assert [op.get(PATH).status_code for _ in range(3)] == [200] * 3
            revoke_token(live.store, "operator")  # as another replica would
            eventually(lambda: op.get(PATH).status_code == 401)
            is_error(op.get(PATH), 401, "was revoked")
    refused = [e for e in audit_log(live.store) if e.kind == "access.refused"]
    refused_ids = {e.subject for e in refused if e.payload["path"] == PATH}
    assert len(refused_ids) == 2
    assert all(
        any(i and i in live.tokens[who] for i in refused_ids) for who in ("viewer", "operator")
    )
