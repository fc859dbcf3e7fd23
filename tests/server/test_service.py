"""``releasegate serve`` run like a service: JSON logs with request ids and never a secret,
a graceful stop on SIGTERM that drains the request in flight, and exit codes a supervisor
(systemd, Docker) reads. A real ``serve`` process over an embedded store."""

from __future__ import annotations

import io
import json
import logging
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from releasegate.server.app import create_app
from releasegate.server.logs import JsonFormatter, RequestContext
from releasegate.store.engine import Store
from tests.helpers import ok_json, rg
from tests.server.conftest import run_server
from tests.server.served import Served, serve


@pytest.fixture
def project(tmp_path: Path) -> Path:
    ok_json(rg(tmp_path, "init", "--json"))
    return tmp_path


def token(cwd: Path, name: str, role: str) -> str:
    made = ok_json(rg(cwd, "token", "create", "--name", name, "--role", role, "--json"))
    return str(made["token"])


def access_lines(served: Served) -> list[dict[str, Any]]:
    return [r for r in served.records() if r["logger"] == "releasegate.access"]


def test_json_logs_name_each_request_and_never_a_secret(project: Path) -> None:
    viewer, operator = token(project, "vera", "viewer"), token(project, "otto", "operator")
    stranger = "rg_0123456789abcdef_" + "A" * 43
    served = serve(project, "--log-format", "json")
    try:
        with httpx.Client(base_url=served.url, timeout=60) as c:
            listed = c.get(
                f"/v1/workflows?token={viewer}",
                headers={"Authorization": f"Bearer {viewer}", "X-Request-ID": "trace-1"},
            )
            posted = c.post(
                "/v1/runs",
                json={"runs": [], "token": operator, "note": f"Bearer {viewer}"},
                headers={"Authorization": f"Bearer {operator}"},
            )
            refused = c.get("/v1/workflows", headers={"Authorization": f"Bearer {stranger}"})
            missing = c.get(f"/v1/versions/{viewer}", headers={"Authorization": f"Bearer {viewer}"})
    finally:
        code = served.stop()
    assert code == 0, served.logs()
    assert (listed.status_code, posted.status_code, refused.status_code) == (200, 422, 401)
    logs = served.logs()
    for secret in (viewer, operator, stranger):
        assert secret.rsplit("_", 1)[1] not in logs
    records = served.records()  # every line of both streams is one JSON object
    assert any(r["message"].startswith("Started server process") for r in records)
    by_id = {r["request_id"]: r for r in access_lines(served)}
    first = by_id["trace-1"]
    assert first["method"] == "GET"
    assert first["route"] == "/v1/workflows"  # the template: no query string
    assert first["status"] == 200
    assert first["token"] == "vera"
    assert first["token_id"] == viewer.split("_")[1]
    assert first["client"] == "127.0.0.1"
    assert first["duration_ms"] > 0
    assert first["level"] == "info" and first["time"].endswith("Z")
    for response, status, who in ((posted, 422, "otto"), (refused, 401, None)):
        line = by_id[response.headers["x-request-id"]]
        assert (line["status"], line.get("token")) == (status, who)
    assert by_id[missing.headers["x-request-id"]]["route"] == "/v1/versions/{version}"


def test_text_logs_are_the_default(project: Path) -> None:
    served = serve(project)
    try:
        r = httpx.get(f"{served.url}/v1/workflows", headers={"X-Request-ID": "abc-123"})
    finally:
        assert served.stop() == 0
    assert r.status_code == 401
    assert "releasegate serve: http://127.0.0.1" in served.err.read_text()
    line = next(x for x in served.out.read_text().splitlines() if "abc-123" in x)
    assert "INFO releasegate.access: GET /v1/workflows 401" in line
    assert "request_id=abc-123" in line


def test_no_access_log_writes_no_request_line(project: Path) -> None:
    served = serve(project, "--no-access-log")
    try:
        r = httpx.get(f"{served.url}/v1/workflows", headers={"X-Request-ID": "abc-123"})
    finally:
        assert served.stop() == 0
    assert r.status_code == 401 and r.headers["x-request-id"] == "abc-123"
    assert "releasegate serve: http://127.0.0.1" in served.err.read_text()
    assert "abc-123" not in served.logs()


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """What the server logs, as the JSON lines ``--log-format json`` writes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestContext())
    logger = logging.getLogger("releasegate")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_a_bug_is_a_500_whose_traceback_is_logged_once_with_its_request_id(
    store: Store, captured: io.StringIO
) -> None:
    secret = "rg_0123456789abcdef_" + "B" * 43
    app = create_app(store)

    def broken() -> None:
        raise RuntimeError(f"a bug that names {secret}")

    app.add_api_route("/v1/broken", broken)
    for url in run_server(app):
        r = httpx.get(f"{url}/v1/broken", headers={"X-Request-ID": "bug-1"}, timeout=60)
        assert r.status_code == 500
        assert r.headers["x-request-id"] == "bug-1"
        assert r.json()["error"] == "internal error; the server log has the details"
        assert "Traceback" not in r.text and secret not in r.text
    text = captured.getvalue()
    assert "B" * 43 not in text
    records = [json.loads(line) for line in text.splitlines()]
    errors = [r for r in records if r["level"] == "error"]
    assert len(errors) == 1, records
    assert errors[0]["request_id"] == "bug-1"
    assert "Traceback" in errors[0]["error"]
    assert "RuntimeError: a bug that names rg_0123456789abcdef_[redacted]" in errors[0]["error"]
    (line,) = [r for r in records if r["logger"] == "releasegate.access"]
    assert (line["request_id"], line["status"], line["route"]) == ("bug-1", 500, "/v1/broken")


# -- graceful shutdown ---------------------------------------------------------------------


def start_upload(served: Served, operator: str, body: bytes) -> socket.socket:
    """A POST /v1/runs whose headers and first byte are sent: in flight until the rest is."""
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=60)
    head = (
        f"POST /v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {operator}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body[:1])
    return sock


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def wait_until_refused(port: int, deadline_s: float = 30) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if refused(port):
            return True
        time.sleep(0.05)
    return False


def read_response(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_sigterm_drains_the_request_in_flight_then_exits_0(project: Path) -> None:
    operator = token(project, "otto", "operator")
    served = serve(project, "--log-format", "json", "--graceful-timeout", "60")
    body = b"[" + b" " * 1000 + b"]"
    sock = start_upload(served, operator, body)
    try:
        with httpx.Client(base_url=served.url) as c:  # the upload is being served
            c.get("/healthz")
        served.process.send_signal(signal.SIGTERM)
        assert wait_until_refused(served.port), "the port still takes connections"
        assert served.process.poll() is None, "serve did not wait for the request in flight"
        sock.sendall(body[1:])
        answer = read_response(sock)
    finally:
        sock.close()
    assert served.wait() == 0, served.logs()
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["received"] == 0
    statuses = [(r["route"], r["status"]) for r in access_lines(served)]
    assert ("/v1/runs", 200) in statuses


def test_a_request_past_the_graceful_timeout_is_cut_and_serve_still_exits_0(
    project: Path,
) -> None:
    operator = token(project, "otto", "operator")
    served = serve(project, "--log-format", "json", "--graceful-timeout", "1")
    sock = start_upload(served, operator, b"[" + b" " * 1000 + b"]")  # the rest never comes
    try:
        with httpx.Client(base_url=served.url) as c:
            c.get("/healthz")
        assert served.stop() == 0, served.logs()
        answer = read_response(sock)
    except ConnectionResetError:
        answer = b""
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
    assert b"the server stopped before this request finished" in answer
    assert any("timeout graceful shutdown exceeded" in r["message"] for r in served.records())


def test_sigint_stops_it_the_same_way(project: Path) -> None:
    served = serve(project)
    served.process.send_signal(signal.SIGINT)
    assert served.wait() == 0, served.logs()
    assert "Finished server process" in served.logs()


def test_bad_log_options_are_exit_2_before_listening(project: Path) -> None:
    r = rg(project, "serve", "--log-format", "xml")
    assert r.returncode == 2
    assert "'xml' is not one of text, json" in r.stderr
    r = rg(project, "serve", "--graceful-timeout", "-1")
    assert r.returncode == 2
    assert "--graceful-timeout" in r.stderr


# -- /metrics across workers ---------------------------------------------------------------


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus text exposition (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def test_one_scrape_counts_the_requests_of_every_worker(project: Path) -> None:
    tmp = project / "tmp"
    tmp.mkdir()
    served = serve(project, "--workers", "2", "--log-format", "json", env={"TMPDIR": str(tmp)})
    try:
        (shared,) = tmp.glob("releasegate-metrics-*")  # made by serve for its workers
        sent = 0
        pids: set[int] = set()
        while len(pids) < 2 and sent < 2000:  # new connections until both workers answered
            for _ in range(20):
                assert httpx.get(f"{served.url}/v1/workflows").status_code == 401
                sent += 1
            pids = {r["pid"] for r in access_lines(served) if r.get("route") == "/v1/workflows"}
        assert len(pids) == 2, f"one worker answered all {sent} requests"
        assert {int(p.stem.rsplit("_", 1)[1]) for p in shared.glob("counter_*.db")} >= pids
        for _ in range(4):  # whichever worker answers the scrape, it counts them all
            text = httpx.get(f"{served.url}/metrics").text
            assert (
                sample(
                    text,
                    "releasegate_http_requests_total",
                    method="GET",
                    route="/v1/workflows",
                    status="401",
                )
                == sent
            )
            assert sample(text, "releasegate_access_refused_total", status="401") == sent
    finally:
        code = served.stop()
    assert code == 0, served.logs()
    assert list(tmp.iterdir()) == []  # serve removed its metrics directory
