"""``pause`` and ``resume``: send every request of an environment to the human fallback.

While paused, ``resolve`` (the SDK and ``releasegate resolve``) says so with the reason;
both commands write an audit event and alert the responders (the outbox is sent at once).
Exit codes: 0 done, 1 refused (already paused, not paused), 2 bad input (an unknown
workflow or environment, an empty reason, nothing promoted there): nothing written.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from releasegate.cli._common import EnvOpt, JsonOpt, WorkflowArg, app, command, emit, open_store
from releasegate.cli._remote import server

if TYPE_CHECKING:
    from releasegate.release.pause import PauseChange


def _done(change: PauseChange | dict[str, Any], as_json: bool) -> None:
    """Print what ``pause``/``resume`` did: ``change`` is the server's answer, or the local
    change, whose alerts are sent here (the server sends them itself)."""
    if isinstance(change, dict):
        data = change
    else:
        from releasegate.monitor.alerts import resend_due

        sent = resend_due(open_store(create=False), change.workflow, change.env)
        data = change.as_dict()
        data["alerts_sent"] = [{"message": a.message, "routed": a.routed} for a in sent]
    if as_json:
        emit(data)
        return
    workflow, env, version = data["workflow"], data["env"], data["version_id"][:12]
    where = f"{workflow}@{env}"
    if data["action"] == "paused":
        print(
            f"{where} paused: every request goes to the human fallback "
            f"(version {version} stays in place). Reason: {data['pause']['reason']}"
        )
        print(f"next: `releasegate resume {workflow} --env {env}`")
    else:
        print(f"{where} resumed: version {version} serves requests again")
    for a in data["alerts_sent"]:
        print(f"  alert sent: {', '.join(a['routed'])}", file=sys.stderr)


@command(app, served=True)
def pause(
    workflow: WorkflowArg,
    env: EnvOpt,
    reason: Annotated[
        str, typer.Option(help="Why: the responders and the application are told it.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Pause an environment: resolve says so and the application uses its human fallback."""
    if (srv := server()) is not None:
        where = ("v1", "workflows", workflow, "environments", env)
        _done(srv.post(*where, "pause", body={"reason": reason}), as_json)
        return
    from releasegate.release.pause import pause as pause_env

    _done(pause_env(open_store(create=False), workflow, env, reason=reason), as_json)


@command(app, served=True)
def resume(workflow: WorkflowArg, env: EnvOpt, as_json: JsonOpt = False) -> None:
    """Lift the pause: the environment's version serves requests again."""
    if (srv := server()) is not None:
        _done(srv.post("v1", "workflows", workflow, "environments", env, "resume"), as_json)
        return
    from releasegate.release.pause import resume as resume_env

    _done(resume_env(open_store(create=False), workflow, env), as_json)
