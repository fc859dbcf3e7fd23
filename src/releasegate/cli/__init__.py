"""The ``releasegate`` command line: a thin front over the release services."""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # project-local python providers and scorers
    if sys.argv[1:] == ["--version"]:  # answered before the commands are imported
        from releasegate import __version__

        print(f"releasegate {__version__}")
        return
    from releasegate.cli._resolve import fast_resolve

    if fast_resolve(sys.argv[1:]):  # exits itself when it ran
        return
    from releasegate.cli.app import app

    app()
