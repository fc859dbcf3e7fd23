"""Naming things on the command line: version ids, prefixes, ``workflow@env``, who acts.

Every front resolves references the same way, so a prefix that works in
``show`` works in ``promote``, and an ambiguous one is refused, not guessed.
"""

from __future__ import annotations

import getpass
import json
import os
from typing import Any

from releasegate.errors import InputError, NotFoundError
from releasegate.store.engine import Conn
from releasegate.store.environments import EnvironmentRepo
from releasegate.store.versions import VersionRecord, VersionRepo
from releasegate.store.workflows import WorkflowRecord

MIN_PREFIX = 6
MAX_REASON = 2000


def forced_reason(reason: str, *, force: bool, recorded_with: str) -> str:
    """``--reason`` stripped; InputError when it is over ``MAX_REASON`` characters, or
    empty with ``--force`` (a forced change is recorded with why, and ``recorded_with``)."""
    reason = reason.strip()
    if len(reason) > MAX_REASON:
        raise InputError(f"the reason is over {MAX_REASON} characters", field="--reason")
    if force and not reason:
        raise InputError(
            f"--force needs a reason: it is recorded with {recorded_with}", field="--reason"
        )
    return reason


def actor() -> str:
    """Who is acting: ``RELEASEGATE_ACTOR``, else the login name."""
    name = os.environ.get("RELEASEGATE_ACTOR")
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def os_user() -> str:
    """The login running this process, whatever ``RELEASEGATE_ACTOR`` or ``--as`` say."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def find_version(conn: Conn, ref: str) -> VersionRecord:
    """A full id, a unique prefix of 6+ characters, or ``workflow@env``."""
    if "@" in ref:
        workflow, env = ref.split("@", 1)
        current = EnvironmentRepo(conn).current(workflow, env)
        if current is None:
            raise NotFoundError(f"nothing runs in {workflow}@{env} yet", field="version")
        found = VersionRepo(conn).find(current[0])
        if found is None:
            raise NotFoundError(f"{workflow}@{env} points at a missing version {current[0][:12]}")
        return found
    ref = ref.strip().lower()
    if len(ref) < MIN_PREFIX:
        raise InputError(
            f"'{ref}' is too short: give at least {MIN_PREFIX} characters of a version id",
            field="version",
        )
    hits = VersionRepo(conn).by_prefix(ref)
    if not hits:
        raise NotFoundError(
            f"no version '{ref}'",
            field="version",
            hint="list versions with `releasegate versions WORKFLOW`",
        )
    if len(hits) > 1:
        raise InputError(
            f"'{ref}' matches several versions: " + ", ".join(h.version_id[:12] for h in hits),
            field="version",
            hint="give more characters",
        )
    return hits[0]


def find_run(conn: Conn, ref: str, field: str = "RUN_ID") -> dict[str, Any]:
    """A production run by id or unique prefix, as a dict of its columns (epoch times),
    with its attributes parsed."""
    from releasegate.store.runs import RunRepo  # not at the top: a cold `resolve` needs no runs

    run = RunRepo(conn).get(ref)
    if run is None:
        matches = RunRepo(conn).by_prefix(ref)
        if len(matches) > 1:
            hint = "matches: " + ", ".join(matches)
            raise InputError(f"run prefix '{ref}' is ambiguous", field=field, hint=hint)
        run = RunRepo(conn).get(matches[0]) if matches else None
    if run is None:
        hint = "runs arrive by the SDK or `releasegate runs import`"
        raise NotFoundError(f"no run '{ref}'", field=field, hint=hint)
    if run.get("attributes_json"):
        run["attributes"] = json.loads(run["attributes_json"])
    return run


def check_env(wf: WorkflowRecord, env: str) -> None:
    """An environment the workflow declares, or an input error listing the ones it has."""
    if env not in wf.environments:
        raise InputError(
            f"workflow '{wf.name}' has no environment '{env}'",
            field="--env",
            hint="environments: " + ", ".join(wf.environments),
        )
