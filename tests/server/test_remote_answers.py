"""RELEASEGATE_URL naming something that is not a releasegate server (a proxy's login
page, another service on that port): a 2xx that is not the JSON asked for is one line and
exit 2 for the CLI, an outage for the SDK, never a traceback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from releasegate.errors import StoreUnavailableError
from releasegate.sdk.remote import Remote
from tests.helpers import rg


class _Page(BaseHTTPRequestHandler):
    body = b"<html><body>Sign in</body></html>"
    content_type = "text/html"

    def _answer(self) -> None:
        body = self.body
        self.send_response(200)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


class _OtherJson(_Page):
    body = b'{"status": "ok"}'
    content_type = "application/json"


@pytest.fixture
def not_releasegate() -> Iterator[str]:
    yield from _serve(_Page)


@pytest.fixture
def other_json() -> Iterator[str]:
    yield from _serve(_OtherJson)


def _serve(handler: type[_Page]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_cli_on_a_page_that_is_not_json_is_one_line_exit_2(
    not_releasegate: str, tmp_path: Path
) -> None:
    done = rg(tmp_path, "versions", "router", "--json", env={"RELEASEGATE_URL": not_releasegate})
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: the server at {not_releasegate} answered 200 with")


def test_the_sdk_on_a_page_that_is_not_json_hears_an_outage(not_releasegate: str) -> None:
    remote = Remote(not_releasegate, "rg_x_y", timeout=5)
    try:
        with pytest.raises(StoreUnavailableError, match="not JSON"):
            remote.resolve("router", "production")
    finally:
        remote.close()


@pytest.mark.parametrize(
    "argv",
    [
        ("versions", "router"),
        ("show", "abc123"),
        ("resolve", "router", "--env", "production"),
        ("audit", "verify"),
        ("token", "list"),
    ],
)
def test_the_cli_on_json_that_is_not_the_verbs_document_is_one_line_exit_2(
    other_json: str, tmp_path: Path, argv: tuple[str, ...]
) -> None:
    done = rg(tmp_path, *argv, env={"RELEASEGATE_URL": other_json, "RELEASEGATE_TOKEN": "rg_x"})
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: the server at {other_json} answered a document")
