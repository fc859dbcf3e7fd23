"""The SDK against a server: resolve and runs over HTTP, for services on other hosts.

``Client(url=..., token=...)`` (or ``RELEASEGATE_URL`` and ``RELEASEGATE_TOKEN``) keeps
everything the local client does, the TTL cache, the deadline and the last known
fallback of ``Resolver``, the queue, batches, spill and replay of ``RunWriter``, and
swaps only the two calls that reach the store: ``GET /v1/resolve/{workflow}/{env}`` and
``POST /v1/runs?atomic=false`` (a bad value in one run does not lose the others, as
locally). HTTP is httpx's, one keep-alive connection pool per client.

What the server answers maps back onto the error tree: a 404 or 400 is raised to the
application (``NotFoundError``, ``InputError``), as locally; a 401 or 403 is raised as
``UnauthorizedError`` or ``ForbiddenError`` (a token problem is not an outage to ride
out); anything else (a 5xx, no answer) is the store being unavailable: resolve serves
the last known version, and runs wait in the queue or the spill file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from releasegate.errors import (
    AnswerLostError,
    ForbiddenError,
    InputError,
    NotFoundError,
    PrerequisiteError,
    ReleasegateError,
    StoreUnavailableError,
    UnauthorizedError,
)

if TYPE_CHECKING:
    from releasegate.monitor.ingest import IngestResult
    from releasegate.release.resolve import Resolved

RAISED: dict[int, type[ReleasegateError]] = {
    400: InputError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    413: InputError,
    422: InputError,
}
"""Statuses the application hears about; any other failure is an outage (fallback, spill)."""


class Remote:
    """A releasegate server, as the SDK's store (and the CLI's, through ``call``).

    ``errors`` maps an error status to the error raised (``RAISED``: the SDK's); a status
    it does not name is an outage, ``StoreUnavailableError``."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float,
        errors: Mapping[int, type[ReleasegateError]] = RAISED,
    ) -> None:
        try:
            import httpx
        except ModuleNotFoundError:
            raise PrerequisiteError(
                "the SDK needs httpx to reach a server (RELEASEGATE_URL)",
                hint="pip install 'releasegate[client]'",
            ) from None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self._errors = (httpx.HTTPError,)
        self._timeouts = (httpx.TimeoutException,)
        self.timeout = timeout
        self.raised = errors

    def resolve(self, workflow: str, env: str) -> Resolved:
        from releasegate.release.resolve import Resolved, Route

        body = self.call("GET", f"/v1/resolve/{quote(workflow, safe='')}/{quote(env, safe='')}")
        route = body.get("rollout")
        return Resolved(
            body["workflow"],
            body["env"],
            body["version_id"],
            body["manifest"],
            rollout=None if route is None else Route(**route),
            paused=body.get("paused_reason"),
        )

    def ingest(self, batch: list[dict[str, Any]]) -> IngestResult:
        """Land ``batch`` on the server, keeping the good runs of a batch with a bad one."""
        import orjson

        from releasegate.domain.runs import Rejection
        from releasegate.monitor.ingest import IngestResult

        body = self.call(
            "POST",
            "/v1/runs",
            content=orjson.dumps(batch, default=str),
            params={"atomic": "false"},
        )
        return IngestResult(
            received=int(body["received"]),
            landed=int(body["landed"]),
            duplicates=int(body["duplicates"]),
            rejected=[
                Rejection(r["index"], r.get("line"), r.get("run_id"), r.get("field"), r["reason"])
                for r in body.get("rejected", [])
            ],
            rejected_total=int(body.get("rejected_total", 0)),
            texts_dropped=int(body.get("texts_dropped", 0)),
        )

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, *, text: bool = False, **kwargs: Any) -> Any:
        """The JSON body of a 2xx answer to ``method path`` (its text with ``text``; httpx's
        ``json=``, ``params=`` or ``content=`` in ``kwargs``); an error answer raised as
        ``raised`` maps its status, with the server's message and hint; no answer within
        ``timeout`` seconds is ``StoreUnavailableError``."""
        try:
            r = self._http.request(
                method, path, headers={"Content-Type": "application/json"}, **kwargs
            )
        except self._errors as exc:
            check = "is it running and reachable? (RELEASEGATE_URL, RELEASEGATE_TIMEOUT)"
            if not isinstance(exc, self._timeouts):
                why = f"({type(exc).__name__}: {exc})"
            elif method == "GET":
                why = f"within {self.timeout:g} s"
            else:  # sent, and no answer: the change may have been made
                raise AnswerLostError(
                    f"the server at {self.url} did not answer {method} {path} within "
                    f"{self.timeout:g} s: it may or may not have been done",
                    hint="look before sending it again",
                ) from None
            raise StoreUnavailableError(
                f"the server at {self.url} did not answer {why}", hint=check
            ) from None
        if 200 <= r.status_code < 300:
            if text:
                return r.text
            try:
                return r.json()
            except ValueError:  # a proxy's page, another service on that port
                raise StoreUnavailableError(
                    f"the server at {self.url} answered {r.status_code} with something "
                    f"that is not JSON ({r.headers.get('content-type') or 'no content type'})",
                    hint="is RELEASEGATE_URL a releasegate server?",
                ) from None
        try:
            body = r.json()
        except ValueError:  # a proxy's page, not the server's error shape
            body = None
        message, hint = r.text[:200].strip() or r.reason_phrase, None
        if isinstance(body, dict) and body.get("error"):
            message, hint = str(body["error"]), body.get("hint") or None
        raise self.error(r.status_code, message, hint)

    def error(self, status: int, message: str, hint: str | None = None) -> ReleasegateError:
        """The error an answer of ``status`` stands for (``raised``), naming the server."""
        return self.raised.get(status, StoreUnavailableError)(
            f"{message} (the server at {self.url} answered {status})", hint=hint
        )
