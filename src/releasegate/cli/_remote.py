"""The CLI against a server: with ``RELEASEGATE_URL`` set, each verb that has an endpoint
sends its request there instead of opening a store, and prints the answer (the verb's
``--json`` document) with the same rendering as locally: the same table or JSON on
stdout, the same exit code. The token is ``--token`` (before the verb) or
``RELEASEGATE_TOKEN``; the deadline is ``RELEASEGATE_TIMEOUT`` seconds (60).

The transport is the SDK's (``sdk/remote.py``, httpx), raising the error a status stands
for by the CLI's table (``_errors.STATUS_ERRORS``), so ``_errors`` turns it into the same
message and exit code as the error raised locally; no answer is one line and exit 2.
Only httpx and the error tree are imported on this path, never the store. A verb with no
endpoint yet refuses (``refuse_without_endpoint``, exit 2) rather than touch a local store
the user did not mean. A verb the server runs as a job (it answers 202: ``compare``,
``rehearse``, ``rollout shadow-replay``, a ``gate`` that evaluates first) is polled
(``Server.finished``) until it ends, with the progress bar on stderr.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from releasegate.errors import InputError

if TYPE_CHECKING:
    from releasegate.sdk.remote import Remote

URL_ENV = "RELEASEGATE_URL"
TOKEN_ENV = "RELEASEGATE_TOKEN"
TIMEOUT_ENV = "RELEASEGATE_TIMEOUT"
DEFAULT_TIMEOUT = 60.0
POLL_SECONDS = 0.5
"""How often a verb the server runs as a job (or an eval) asks how it stands, at most."""
FIRST_POLL_SECONDS = 0.02

_SECONDS = re.compile(r"\d+(\.\d*)?|\.\d+")

token_option: str | None = None
"""``releasegate --token T VERB``: set by the app's callback, before the verb runs."""


def server_url() -> str | None:
    """``RELEASEGATE_URL``, or None when the CLI runs on the local store."""
    return os.environ.get(URL_ENV, "").strip() or None


class Server:
    """The server a verb talks to: ``get``/``post``/``delete`` by path segments (each
    quoted), returning the JSON answer or raising the error its status stands for."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote
        self.url = remote.url

    def get(self, *segments: str, **params: Any) -> Any:
        return self.remote.call("GET", _path(segments), params=_params(params))

    def get_text(self, *segments: str, **params: Any) -> str:
        """A document the server answers as text (Markdown, JUnit XML)."""
        return str(self.remote.call("GET", _path(segments), text=True, params=_params(params)))

    def post(self, *segments: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        return self.remote.call("POST", _path(segments), json=body or {}, params=_params(params))

    def post_raw(self, *segments: str, content: bytes) -> Any:
        return self.remote.call("POST", _path(segments), content=content)

    def delete(self, *segments: str) -> Any:
        return self.remote.call("DELETE", _path(segments))

    def poll(self, *segments: str, tick: Callable[[int, int], None]) -> Any:
        """The state a job or eval at ``segments`` answers once its ``status`` is no longer
        running; its ``progress`` shown by ``tick`` meanwhile. Asked again after 20 ms,
        then twice as long each time up to ``POLL_SECONDS``: a job that ends at once (a
        compare the cache answers) is not held half a second, a long one costs two
        requests a second."""
        import time

        wait = FIRST_POLL_SECONDS
        while True:
            state = self.get(*segments)
            if state["status"] != "running":
                return state
            if state.get("progress"):
                tick(state["progress"]["done"], state["progress"]["total"])
            time.sleep(wait)
            wait = min(wait * 2, POLL_SECONDS)

    def finished(self, started: dict[str, Any], tick: Callable[[int, int], None]) -> Any:
        """The ``--json`` document of the job a 202 answer ``started``, once it ended (its
        progress shown by ``tick`` meanwhile); a failed job raises the error its status
        stands for, as if the request had answered it (the same message and exit code)."""
        state = self.poll("v1", "jobs", started["job_id"], tick=tick)
        if state["status"] == "completed":
            return state["result"]
        error = state.get("error") or {}
        raise self.remote.error(
            int(error.get("status") or 503),
            str(error.get("error") or f"{state['kind']} {state['status']}, no reason recorded"),
            error.get("hint"),
        )


def server(timeout: float | None = None) -> Server | None:
    """The server of ``RELEASEGATE_URL`` (None: run locally), with the deadline
    ``timeout`` or ``RELEASEGATE_TIMEOUT``."""
    url = server_url()
    if url is None:
        return None
    from releasegate.cli._errors import STATUS_ERRORS
    from releasegate.sdk.remote import Remote

    if not url.startswith(("http://", "https://")):
        raise InputError(
            f"'{url}' is not an http:// or https:// URL",
            field=URL_ENV,
            hint="e.g. http://127.0.0.1:8080, or unset it to run locally",
        )
    token = token_option or os.environ.get(TOKEN_ENV, "").strip() or None
    return Server(Remote(url, token, timeout=timeout or _timeout(), errors=STATUS_ERRORS))


def refuse_without_endpoint(verb: str) -> None:
    """Exit 2 when a server is set and ``verb`` has no endpoint: never a local store then."""
    if server_url() is not None:
        raise InputError(
            f"`{verb}` is not available through a server ({URL_ENV} is set): "
            "unset it to run locally"
        )


def refuse_as(
    as_: str | None, what: str, signer: str, *, option: str = "--as", plural: bool = False
) -> None:
    """Through a server a change is signed by the token's name: naming someone with ``--as``
    (or ``option``) is exit 2, nothing sent (``what``: "an approval"; ``signer``:
    "approver"; ``plural``: ``what`` names two things, "a review and its case")."""
    if as_ is not None:
        raise InputError(
            f"refused through a server: {what} {'are' if plural else 'is'} signed by the "
            "token's name",
            field=option,
            hint=f"leave --as out and send it with the {signer}'s own token "
            "(RELEASEGATE_TOKEN or --token)",
        )


def _timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    seconds = float(raw) if _SECONDS.fullmatch(raw) else 0.0
    if not seconds > 0:
        raise InputError(f"'{raw}' is not a positive number of seconds", field=TIMEOUT_ENV)
    return seconds


def _path(segments: tuple[str, ...]) -> str:
    return "/" + "/".join(quote(s, safe="") for s in segments)


def _params(params: dict[str, Any]) -> dict[str, Any]:
    """Query parameters without the unset ones; booleans as the server reads them."""
    return {
        k: ("true" if v else "false") if isinstance(v, bool) else v
        for k, v in params.items()
        if v is not None
    }
