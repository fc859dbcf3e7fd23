"""One translation of errors to exit codes and stderr, for every command.

stdout stays pure for ``--json``; messages go to stderr. Exit 1 only ever
means "the answer is no" (a RefusedError or a failed gate); anything we did
not expect gets a traceback and 70, so CI can tell a bug from a verdict.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

from releasegate.errors import ReleasegateError

INTERRUPTED = 130
BUG = 70


def fail(exc: ReleasegateError) -> NoReturn:
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True, highlight=False)
    label = "refused" if exc.exit_code == 1 else "error"
    console.print(f"[bold red]{label}:[/] {escape(exc.message)}", soft_wrap=True)
    if exc.hint:
        console.print(f"  [dim]hint:[/] {escape(exc.hint)}")
    if exc.exit_code == 2 and label == "error":
        console.print("  [dim]nothing was written[/]")
    sys.exit(exc.exit_code)


def guarded(run: Callable[[], object]) -> NoReturn:
    try:
        run()
    except ReleasegateError as exc:
        fail(exc)
    except KeyboardInterrupt as exc:
        msg = str(exc) or "interrupted"
        print(f"interrupted: {msg}; the store is consistent", file=sys.stderr)
        sys.exit(INTERRUPTED)
    except SystemExit:
        raise
    except OSError as exc:
        from releasegate.store.faults import from_os_error

        fault = from_os_error(exc, "a file")  # read-only, full, permissions: not a bug
        if fault is None:
            _bug()
        fail(fault)
    except Exception:
        _bug()
    sys.exit(0)


def _bug() -> NoReturn:
    traceback.print_exc()
    print(
        "\nthis is a bug in releasegate (exit 70); please report it with the traceback above",
        file=sys.stderr,
    )
    sys.exit(BUG)
