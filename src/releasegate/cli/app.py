"""The ``releasegate`` command, assembled: the groups and options live in ``_common``,
each ``cmd_*`` module registers its commands there, and this module imports them;
``--help`` lists them in ``_common.HELP_ORDER``. Nothing imports this module but the
entry point.

Exit codes: 0 done/passed, 1 the answer is no, 2 bad input, 70 a bug (``_errors``).
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from releasegate.cli._common import app

__all__ = ["app"]

# each registers its commands on import (--help lists them in _common.HELP_ORDER)
COMMAND_MODULES = (
    "cmd_project",
    "cmd_versions",
    "cmd_loop",
    "cmd_compare",
    "cmd_production",
    "cmd_rollout",
    "cmd_pause",
    "cmd_rehearse",
    "cmd_review",
    "cmd_queue",
    "cmd_handover",
    "cmd_audit",
    "cmd_suite",
    "cmd_models",
    "cmd_server",
)
for _module in COMMAND_MODULES:
    importlib.import_module(f"releasegate.cli.{_module}")


def _print_version(value: bool) -> None:
    if value:
        from releasegate import __version__

        print(f"releasegate {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            metavar="TOKEN",
            help="API token for the server of RELEASEGATE_URL (default: RELEASEGATE_TOKEN).",
        ),
    ] = None,
) -> None:
    """The governed release loop for LLM workflows: register, eval, gate, promote, roll back."""
    if token is not None:
        from releasegate.cli import _remote

        _remote.token_option = token
