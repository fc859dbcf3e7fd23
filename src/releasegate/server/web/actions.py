"""The dashboard's buttons: approve, promote, roll back, pause, resume, advance or abort a
rollout; log out.

A button opens a confirmation page (GET, nothing changes) naming what will happen; its
form POSTs with the session's CSRF token. The POST checks the token and the role, then
calls the same service the CLI and the API call, acting as the session's identity (an
approval carries it; nobody approves their own change, the service says so). The
result is a page: what was done, or the refusal's message (409, 403...), never a
traceback. Each button is shown only to the roles that may press it.
"""

from __future__ import annotations

from typing import NamedTuple

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from releasegate.domain.access import Identity, Role
from releasegate.errors import InputError
from releasegate.monitor.alerts import resend_due
from releasegate.release.pause import pause, resume
from releasegate.release.promote import approve, promote, rollback
from releasegate.release.rollout import abort, advance
from releasegate.server.web import COOKIE, SECURITY_HEADERS, checked, form, page, session

router = APIRouter()
NOTE_LIMIT = 2000


class Action(NamedTuple):
    title: str
    role: Role
    fields: tuple[str, ...]
    """The fields that name what it acts on (hidden in the confirmation form)."""
    says: str
    """What it does, as a sentence over the fields."""


ACTIONS: dict[str, Action] = {
    "approve": Action(
        "Approve",
        Role.APPROVER,
        ("version", "env"),
        "Sign the approval of version {version} for {env} as yourself.",
    ),
    "promote": Action(
        "Promote",
        Role.OPERATOR,
        ("version", "env"),
        "Move {env} to version {version}, if its gate passed and its approvals are on record.",
    ),
    "rollback": Action(
        "Roll back",
        Role.OPERATOR,
        ("workflow", "env"),
        "Move {workflow}@{env} back to the version that ran there before.",
    ),
    "advance": Action(
        "Advance the rollout",
        Role.OPERATOR,
        ("workflow", "env"),
        "Move the rollout in {workflow}@{env} to its next step of traffic, by hand "
        "(from its last step, the candidate becomes the environment's version).",
    ),
    "pause": Action(
        "Pause",
        Role.OPERATOR,
        ("workflow", "env"),
        "Pause {workflow}@{env}: every request goes to the human fallback until it is resumed; "
        "the responders are told the reason.",
    ),
    "resume": Action(
        "Resume",
        Role.OPERATOR,
        ("workflow", "env"),
        "Lift the pause of {workflow}@{env}: its version serves requests again.",
    ),
    "abort": Action(
        "Abort the rollout",
        Role.OPERATOR,
        ("workflow", "env"),
        "Stop the rollout in {workflow}@{env}: the stable version serves everything again.",
    ),
}


def _action(name: str) -> Action:
    found = ACTIONS.get(name)
    if found is None:
        raise InputError(
            f"no action '{name}'", field="action", hint="one of: " + ", ".join(ACTIONS)
        )
    return found


def _targets(action: Action, values: dict[str, str]) -> dict[str, str]:
    out = {}
    for f in action.fields:
        value = values.get(f, "").strip()
        if not value or len(value) > 200:
            raise InputError(f"the form needs a {f}", field=f)
        out[f] = value
    return out


@router.get("/confirm/{name}")
def confirm(request: Request, name: str) -> HTMLResponse:
    s = session(request)
    action = _action(name)
    targets = _targets(action, dict(request.query_params))
    return page(
        request,
        "confirm.html",
        s=s,
        name=name,
        action=action,
        targets=targets,
        says=action.says.format(**targets),
        allowed=s.may(action.role.label),
    )


@router.post("/actions/{name}")
async def act(request: Request, name: str) -> HTMLResponse:
    action = _action(name)
    fields = await form(request)
    s = await run_in_threadpool(checked, request, fields, action.role)
    targets = _targets(action, fields)
    note = fields.get("note", "").strip()[:NOTE_LIMIT]
    done = await run_in_threadpool(_do, request, name, targets, note, s.identity)
    return page(request, "done.html", s=s, action=action, says=done)


def _do(request: Request, name: str, t: dict[str, str], note: str, who: Identity) -> str:
    """Call the service; a sentence of what it did (a refusal raises, rendered as a page)."""
    store = request.app.state.store
    if name == "approve":
        a = approve(store, t["version"], t["env"], approver=who.name, note=note,
                    token_id=who.token_id)  # fmt: skip
        return f"{a.approver} approved {a.version_id[:12]} for {a.env} (as {a.role})."
    if name in ("promote", "rollback"):
        if name == "promote":
            moved = promote(store, t["version"], t["env"], who=who.name)
        else:
            moved = rollback(store, t["workflow"], t["env"], reason=note, who=who.name)
        where = f"{moved.workflow}@{moved.env}"
        if not moved.changed:
            return f"{where} already runs {moved.version_id[:12]}: nothing changed."
        before = moved.previous_id[:12] if moved.previous_id else "nothing"
        return f"{where} now runs {moved.version_id[:12]} (was {before}): {moved.action}."
    if name in ("pause", "resume"):
        if name == "pause":
            change = pause(store, t["workflow"], t["env"], reason=note, who=who.name)
        else:
            change = resume(store, t["workflow"], t["env"], who=who.name)
        sent = resend_due(store, change.workflow, change.env)  # the pause's alert, at once
        told = f" {len(sent)} alert(s) sent." if sent else ""
        return f"{t['workflow']}@{t['env']} is {change.action} ({change.version_id[:12]}).{told}"
    if name == "advance":
        r = advance(store, t["workflow"], t["env"], who=who.name)
        if r.state == "completed":
            return f"The rollout completed: {t['workflow']}@{t['env']} runs {r.canary_id[:12]}."
        return f"The rollout in {t['workflow']}@{t['env']} serves {r.weight:g}% now."
    stopped = abort(store, t["workflow"], t["env"], who=who.name, reason=note)
    return (
        f"The rollout of {stopped.canary_id[:12]} in {t['workflow']}@{t['env']} was aborted: "
        f"{stopped.stable_id[:12]} serves everything again."
    )


@router.post("/logout")
async def logout(request: Request) -> Response:
    fields = await form(request)
    s = await run_in_threadpool(checked, request, fields, Role.VIEWER)
    # a session from the identity provider's sign-in: the login page offers to sign out there
    there = (s.identity.token_id or "").startswith("oidc:")
    target = "/web/login?signed_out=1" if there else "/web/login"
    out = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    out.delete_cookie(COOKIE, path="/web", httponly=True, samesite="strict")
    return out
