"""One translation of errors to exit codes and stderr, for every command.

``EXIT_CODES`` maps the error tree (``releasegate.errors``) to the CLI's exit codes;
the exception classes know nothing of exit codes. stdout stays pure for ``--json``;
messages go to stderr. Exit 1 only ever means "the answer is no" (a RefusedError or a
failed gate); anything we did not expect gets a traceback and 70, so CI can tell a bug
from a verdict. ``run_command`` is what the ``@command`` decorator calls.

``STATUS_ERRORS`` is the same mapping for a server's answers (``RELEASEGATE_URL``,
``_remote.py``): each error status stands for the error the services raised there, so a
verb exits with the code it would have locally.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

from releasegate.errors import (
    AnswerLostError,
    ForbiddenError,
    InputError,
    NotFoundError,
    PrerequisiteError,
    RefusedError,
    ReleasegateError,
    SchemaOutdatedError,
    ServerBugError,
    StoreError,
    StoreUnavailableError,
    UnauthorizedError,
    nearest,
)

DONE = 0
NO = 1
"""The answer is no: a gate failed, a promotion was refused, an alert fired, the audit broke."""
BAD_INPUT = 2
BUG = 70
INTERRUPTED = 130

# the nearest class in an error's MRO decides; a ReleasegateError below none of these is a bug
EXIT_CODES: dict[type[ReleasegateError], int] = {
    RefusedError: NO,
    InputError: BAD_INPUT,
    StoreError: BAD_INPUT,
    SchemaOutdatedError: BAD_INPUT,
    PrerequisiteError: BAD_INPUT,
}


# a server's error status (its one error shape, docs/server.md) as the error raised here, so
# EXIT_CODES decides; a status not named (a proxy's 502, 504) is the server being unusable
STATUS_ERRORS: dict[int, type[ReleasegateError]] = {
    400: InputError,  # 2: bad input, an unknown environment
    404: NotFoundError,  # 2: an unknown workflow, version or decision
    413: InputError,  # 2: a body over the server's limit
    422: InputError,  # 2: a field of the wrong shape, a rejected run record
    409: RefusedError,  # 1: the answer is no (a promotion refused, a self-approval)
    401: UnauthorizedError,  # 1: no token, or one unknown or revoked
    403: ForbiddenError,  # 1: the token's role is too low
    503: StoreUnavailableError,  # 2: the server's store cannot be used now
    500: ServerBugError,  # 70: a bug in the server (its log has the traceback)
}


def exit_code(exc: ReleasegateError) -> int:
    """The exit code ``exc`` ends a command with (``EXIT_CODES``, by its nearest class)."""
    return nearest(EXIT_CODES, exc, BUG)


def fail(exc: ReleasegateError) -> NoReturn:
    from rich.console import Console
    from rich.markup import escape

    code = exit_code(exc)
    console = Console(stderr=True, highlight=False)
    label = "refused" if code == NO else "error"
    console.print(f"[bold red]{label}:[/] {escape(exc.message)}", soft_wrap=True)
    if exc.hint:
        console.print(f"  [dim]hint:[/] {escape(exc.hint)}")
    if code == BAD_INPUT and not isinstance(exc, AnswerLostError):
        console.print("  [dim]nothing was written[/]")
    sys.exit(code)


def run_command(body: Callable[[], int | None]) -> NoReturn:
    """Run a command's body and exit with its code (None is 0), or with the error's."""
    try:
        code = body()
    except ReleasegateError as exc:
        fail(exc)
    except KeyboardInterrupt as exc:
        msg = str(exc) or "interrupted"
        print(f"interrupted: {msg}; the store is consistent", file=sys.stderr)
        sys.exit(INTERRUPTED)
    except SystemExit:
        raise
    except OSError as exc:
        from releasegate.release.store_access import file_fault

        fault = file_fault(exc, "a file")  # read-only, full, permissions: not a bug
        if fault is None:
            _bug()
        fail(fault)
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as exc:
        _unreadable_answer(exc)
    except Exception:
        _bug()
    sys.exit(code or DONE)


def _unreadable_answer(exc: Exception) -> NoReturn:
    """Through a server, the verb only renders the server's answer: a document it cannot
    read (another JSON service on that port, a server of another release) is the server's
    fault, one line and exit 2; locally it is a bug."""
    from releasegate.cli._remote import server_url

    url = server_url()
    if url is None:
        _bug()
    fail(  # not "nothing was written": a change sent may have been made there
        AnswerLostError(
            f"the server at {url.rstrip('/')} answered a document this command cannot read "
            f"({type(exc).__name__}: {str(exc)[:100]})",
            hint="is RELEASEGATE_URL a releasegate server of this release? "
            "(a change sent may have been made: look before sending it again)",
        )
    )


def _bug() -> NoReturn:
    traceback.print_exc()
    print(
        "\nthis is a bug in releasegate (exit 70); please report it with the traceback above",
        file=sys.stderr,
    )
    sys.exit(BUG)
