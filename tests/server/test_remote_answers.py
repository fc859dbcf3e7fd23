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
    def _answer(self) -> None:
        body = b"<html><body>Sign in</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def not_releasegate() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
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
