"""``releasegate resolve``, the one command deploy scripts call on every start.

It answers without loading Typer (and the pydantic adapters it brings): the
exact form ``resolve WORKFLOW --env ENV [--json]`` is parsed with argparse
here; anything else (``--help``, a typo) goes to the full Typer app, which
gives the same command with the same behaviour and messages.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def run_resolve(workflow: str, env: str, as_json: bool) -> None:
    from releasegate.release.resolve import resolve
    from releasegate.store.engine import Store

    found = resolve(Store.open(create=False), workflow, env)
    if as_json:
        payload = {
            "workflow": workflow,
            "env": env,
            "version_id": found.version_id,
            "manifest": found.manifest,
        }
        sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    else:
        sys.stdout.write(found.version_id + "\n")


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
    try:
        args = parser.parse_args(list(argv[1:]))
    except _Unparsed:
        return False
    from releasegate.cli._errors import guarded

    guarded(lambda: run_resolve(args.workflow, args.env, args.as_json))
