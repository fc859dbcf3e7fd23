"""The project's data-handling rules: found, read (once per change of the file), applied.

The rules live in ``data-rules.yaml`` in the project directory (``RELEASEGATE_DIR`` or
the current one), or in the file ``RELEASEGATE_DATA_RULES`` names; without one the
defaults of ``domain/data_class.py`` apply. A malformed file is an input error naming
the file, line and field (exit 2), raised before anything is written. ``register``
warns with ``version_violations``, the gate turns them into its ``data-class`` check,
ingest drops the run texts of a class that may not store them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from releasegate.domain.data_class import RULES_FILE, DataRules, Violation, parse_rules, violations
from releasegate.errors import InputError, PolicyError
from releasegate.release.loaders import load_yaml

RULES_ENV = "RELEASEGATE_DATA_RULES"


def rules_path(project_dir: Path | None = None) -> Path | None:
    """The rules file in force: the one ``RELEASEGATE_DATA_RULES`` names (it must exist),
    else ``data-rules.yaml`` in the project directory if there is one, else None."""
    named = os.environ.get(RULES_ENV, "").strip()
    if named:
        path = Path(named)
        if not path.is_file():
            raise InputError(
                f"names '{named}', which is not a file",
                field=RULES_ENV,
                hint="point it at a data rules file (see docs/data-rules.md), or unset it",
            )
        return path
    base = project_dir if project_dir is not None else Path(os.environ.get("RELEASEGATE_DIR", "."))
    found = base / RULES_FILE
    return found if found.is_file() else None


def load_rules(project_dir: Path | None = None) -> DataRules:
    """The rules in force (the defaults without a file); re-read when the file changes."""
    path = rules_path(project_dir)
    if path is None:
        return DataRules()
    stat = path.stat()
    return _load(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int, size: int) -> DataRules:
    return parse_rules(load_yaml(Path(path), PolicyError))


def version_violations(
    manifest: Mapping[str, Any], data_class: str, rules: DataRules | None = None
) -> tuple[Violation, ...]:
    """Where ``manifest`` would send ``data_class`` data that the rules forbid."""
    return violations(manifest, data_class, rules if rules is not None else load_rules())
