"""What every command shares: the Typer apps, the common options, and ``@command``.

A command is a function with a decorator::

    @command(app)
    def promote(version: VersionArg, env: EnvOpt, as_json: JsonOpt = False) -> int | None:
        ...

``@command(group)`` registers the function on a group and runs it through the one
error mapping (``_errors.run_command``): a ``ReleasegateError`` becomes a message on
stderr and its exit code, and what the function returns is the exit code (None is 0,
``NO`` is 1, "the answer is no"). With ``RELEASEGATE_URL`` set (``_remote.py``) a
command runs through the server only if it says it can (``served=True``, it has an
endpoint); any other refuses in one line (exit 2) rather than open a local store, except
those that use no store at all (``served=None``: ``serve``, ``demo``). Command modules
(``cmd_*.py``) import this module and never ``app.py``; ``app.py`` imports them to
assemble the CLI. Services are imported inside the commands, so ``releasegate --help``
loads neither SQLAlchemy nor numpy.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

from releasegate.cli._errors import BAD_INPUT, NO, run_command

if TYPE_CHECKING:
    from rich.console import Console

    from releasegate.release.store_access import Store

__all__ = [
    "BAD_INPUT",
    "NO",
    "Command",
    "EnvOpt",
    "JsonOpt",
    "VersionArg",
    "WorkflowArg",
    "app",
    "audit_app",
    "command",
    "console",
    "db_app",
    "emit",
    "models_app",
    "open_store",
    "out_path",
    "plural",
    "policy_app",
    "queue_app",
    "report_app",
    "rollout_app",
    "runs_app",
    "stage_app",
    "suite_app",
    "token_app",
]

HELP_ORDER = (
    # the loop in the order a person meets it, then the operator's commands, then upkeep;
    # groups (rollout, policy, ...) sit beside the commands they belong with
    "init", "demo",
    "register", "versions", "show", "diff", "suite", "eval", "compare",
    "gate", "approve", "promote", "rollout", "rollback", "resolve", "history",
    "runs", "monitor", "queue", "pause", "resume", "rehearse",
    "review", "policy", "stage", "report",
    "audit", "gc", "models", "db", "serve", "token",
)  # fmt: skip
"""The order ``releasegate --help`` lists the commands in; any not named come last."""


class _Listed(TyperGroup):
    def list_commands(self, ctx: Any) -> list[str]:
        rank = {name: i for i, name in enumerate(HELP_ORDER)}
        return sorted(super().list_commands(ctx), key=lambda n: rank.get(n, len(rank)))


app = typer.Typer(
    cls=_Listed,
    name="releasegate",
    help="The governed release loop for LLM workflows: register, eval, gate, promote, roll back.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
db_app = typer.Typer(help="The store's schema.", no_args_is_help=True)
report_app = typer.Typer(
    help="Documents: gate reports, weekly memos, the runbook, the handover checklist.",
    no_args_is_help=True,
)
stage_app = typer.Typer(
    help="A workflow's stage (experiment, pilot, routine) and its handover date.",
    no_args_is_help=True,
)
suite_app = typer.Typer(help="Eval suites.", no_args_is_help=True)
models_app = typer.Typer(
    help="Local models: what is installed, pinned and blessed.", no_args_is_help=True
)
runs_app = typer.Typer(help="Production runs: import and inspect.", no_args_is_help=True)
rollout_app = typer.Typer(
    help="Progressive rollouts: status, advance, abort, check, shadow-replay.",
    no_args_is_help=True,
)
policy_app = typer.Typer(
    help="Policy changes: propose a floor, approve it (not the proposer), show the history.",
    no_args_is_help=True,
)
token_app = typer.Typer(help="API tokens for `releasegate serve`.", no_args_is_help=True)
queue_app = typer.Typer(
    help="The human review queue: runs to read, marked good or bad, turned into suite cases.",
    no_args_is_help=True,
)
GROUP_NAMES: dict[int, str] = {}
"""A group's name by its ``id``: the verb a command's messages name (``releasegate audit log``)."""
for _name, _group in (
    ("audit", audit_app),
    ("db", db_app),
    ("report", report_app),
    ("suite", suite_app),
    ("models", models_app),
    ("runs", runs_app),
    ("rollout", rollout_app),
    ("policy", policy_app),
    ("stage", stage_app),
    ("token", token_app),
    ("queue", queue_app),
):
    app.add_typer(_group, name=_name)
    GROUP_NAMES[id(_group)] = _name

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
EnvOpt = Annotated[
    str, typer.Option("--env", metavar="ENV", help="Environment, e.g. staging or production.")
]
VersionArg = Annotated[str, typer.Argument(metavar="VERSION")]
WorkflowArg = Annotated[str, typer.Argument(metavar="WORKFLOW")]

F = TypeVar("F", bound=Callable[..., Any])
METAVARS = {"str": "TEXT", "int": "N", "float": "NUMBER", "Path": "PATH"}
_BRACED = re.compile(r"^\{(.*)\}")


class Command(TyperCommand):
    """Help that reads as written: ``VERSION`` in the usage line, not ``{VERSION}``, and
    ``--tag TEXT`` (repeatable), not ``--tag <list[str]>``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperOption) and param.metavar is None and not param.is_flag:
                bare = param.bare_type()
                inner = bare.removeprefix("list[").removesuffix("]")
                param.metavar = METAVARS.get(inner, inner.upper())

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [_BRACED.sub(r"\1", piece) for piece in super().collect_usage_pieces(ctx)]

    def format_options(self, ctx: Any, formatter: Any) -> None:
        """Arguments by their names (``FILE...``), without a Python type beside them."""
        args, opts = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                name = param.metavar or param.name.upper()
                args.append((name + ("..." if param.nargs != 1 else ""), record[1]))
            else:
                opts.append(record)
        for title, rows in (("Arguments", args), ("Options", opts)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def command(
    group: typer.Typer, name: str | None = None, *, served: bool | None = False
) -> Callable[[F], F]:
    """Register the decorated function as a command of ``group``, behind the error mapping;
    ``served``: True when it runs through a server (``RELEASEGATE_URL``), False when it
    refuses to there, None when it touches no store."""

    def register(fn: F) -> F:
        group_name = GROUP_NAMES.get(id(group))
        verb = ["releasegate", *([group_name] if group_name else [])]
        verb.append((name or fn.__name__).replace("_", "-"))

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> None:
            def body() -> int | None:
                if served is False:
                    from releasegate.cli._remote import refuse_without_endpoint

                    refuse_without_endpoint(" ".join(verb))
                result: int | None = fn(*args, **kwargs)
                return result

            run_command(body)

        group.command(name=name, cls=Command)(guarded)
        return fn  # the plain function stays callable (and testable) as written

    return register


def plural(n: int, noun: str) -> str:
    """``1 epoch``, ``3 epochs``: counts read as a person writes them."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def out_path(out: Path | None, alias: Path | None) -> Path | None:
    """``--out`` or, from older scripts, the hidden alias it replaced: every command that
    writes a document names it ``--out`` (``gate --report`` and ``report gate --output``
    still work, hidden from ``--help``)."""
    return out if out is not None else alias


def writable(path: Path, option: str, *, directory: bool = False) -> Path:
    """``path`` once its directory exists and takes a new file (with ``directory``: once
    ``path`` itself is a directory that takes files); checked before a command does its
    work, so a mistyped ``--out`` is exit 2 with nothing written, not a decision stored or a
    memo built and then a failed write."""
    from releasegate.errors import InputError

    folder = path if directory else path.parent
    hint = f"name a {'directory' if directory else 'file in a directory'} you can write"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"{option} {path}: cannot create the directory {folder} ({exc.strerror or exc})",
            hint=hint,
        ) from None
    if not directory and path.is_dir():
        raise InputError(f"{option} {path}: is a directory", hint=hint)
    if not os.access(folder, os.W_OK):
        raise InputError(f"{option} {path}: {folder} is not writable", hint=hint)
    return path


def open_store(create: bool = True) -> Store:
    """The project's store; ``create=False`` for commands that need one to exist."""
    from releasegate.release import store_access

    store = store_access.open_store(create=create)
    moved = store_access.moved_blobs(store)
    if moved is not None:  # an older store's blob directory moved into the database
        console(stderr=True).print(moved, markup=False, highlight=False, soft_wrap=True)
    return store


def emit(payload: Any) -> None:
    """One JSON document on stdout; a dataclass is written field by field."""
    if dataclasses.is_dataclass(payload) and not isinstance(payload, type):
        payload = dataclasses.asdict(payload)
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)
