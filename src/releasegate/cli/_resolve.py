"""``releasegate resolve``, the one command deploy scripts call on every start.

It answers without loading Typer (and the pydantic adapters it brings): the
exact form ``resolve WORKFLOW --env ENV [--json]`` is parsed with argparse
here; anything else (``--help``, a typo) goes to the full Typer app, which
gives the same command with the same behaviour and messages.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Sequence
from typing import Any


def run_resolve(workflow: str, env: str, as_json: bool, timeout: float = 2.0) -> None:
    """Print what runs in ``env``; if the store fails or does not answer within ``timeout``
    seconds, the last version this project resolved there (with a warning on stderr),
    from ``.releasegate/last-known.json`` (the file the SDK keeps too). Through a server
    (``RELEASEGATE_URL``) it asks ``GET /v1/resolve`` within ``timeout``; no answer is
    exit 2 (the server keeps its own last known version)."""
    from releasegate.cli._remote import server
    from releasegate.errors import InputError

    if not timeout > 0:
        raise InputError("must be a positive number of seconds", field="--timeout")
    srv = server(timeout=timeout)
    if srv is not None:
        found = srv.get("v1", "resolve", workflow, env)
        cause, source = f"the server at {srv.url} could not read its store", ""
    else:
        found, cause, source = _resolve_locally(workflow, env, timeout)
    if found["fallback"]:
        sys.stderr.write(
            f"warning: {cause}; this is the last version known to run in {workflow}@{env}{source}\n"
        )
    if found["paused"]:
        sys.stderr.write(
            f"warning: {workflow}@{env} is paused ({found['paused_reason']}): the application "
            f"sends every request to its human fallback until `releasegate resume`\n"
        )
    route = found["rollout"]
    if route is not None:  # the id printed is the stable version's: say who else is served
        who = (
            "runs in shadow, served to nobody"
            if route["mode"] == "shadow"
            else f"gets {route['weight']:g}% of requests, the version printed the rest"
        )
        sys.stderr.write(
            f"note: a rollout runs in {workflow}@{env}: {route['canary_id'][:12]} {who} "
            f"(`releasegate rollout status {workflow} --env {env}`)\n"
        )
    if as_json:
        sys.stdout.write(json.dumps(found, indent=2, sort_keys=True, default=str) + "\n")
    else:
        sys.stdout.write(found["version_id"] + "\n")


def _resolve_locally(workflow: str, env: str, timeout: float) -> tuple[dict[str, Any], str, str]:
    """The ``resolve --json`` document from the project's store, and, for when it is the
    last known version, what failed and where that version was read from."""
    import logging

    from releasegate.release.resolve import LAST_KNOWN, Resolver
    from releasegate.release.store_access import locate, open_store

    location = locate()
    resolver = Resolver(
        lambda: open_store(create=False, location=location),
        ttl=0.0,
        deadline=timeout,
        fallback_file=location.home / LAST_KNOWN,
    )
    resolver.where = "the store" if location.is_embedded else "the database"
    logging.getLogger("releasegate.resolve").disabled = True  # said once, by the caller
    found = resolver(workflow, env)
    cause = f"{resolver.where} {resolver.last_cause}"
    return found.to_dict(), cause, f" (from {location.home / LAST_KNOWN})"


class _Unparsed(Exception):
    """Not the plain form: let Typer handle it."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _Unparsed(message)


def fast_resolve(argv: Sequence[str]) -> bool:
    """Run ``resolve`` if ``argv`` is its plain form; False means "use the full CLI"."""
    if not argv or argv[0] != "resolve" or any(a in ("-h", "--help") for a in argv):
        return False
    parser = _Parser(prog="releasegate resolve", add_help=False)
    parser.add_argument("workflow")
    parser.add_argument("--env", required=True)
    parser.add_argument("--json", action="store_true", dest="as_json")
    parser.add_argument("--timeout", type=float, default=2.0)
    try:
        args = parser.parse_args(list(argv[1:]))
    except _Unparsed:
        return False
    from releasegate.cli._errors import run_command

    run_command(functools.partial(run_resolve, args.workflow, args.env, args.as_json, args.timeout))
