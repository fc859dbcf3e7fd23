"""State changes: approve, promote, roll back, pause, resume. Each calls the service the
CLI calls, acting as the token's identity (``who``); the services check the rules
(a passing gate, approvals on record, nobody approving their own change, no lost update)
and audit the change. An approval carries the token's identity: a body naming another
approver (``as``, ``approver``) is refused with 422, and nothing is written."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from releasegate.domain.access import Identity, Role
from releasegate.release.pause import pause as pause_env
from releasegate.release.pause import resume as resume_env
from releasegate.release.promote import approve as do_approve
from releasegate.release.promote import promote as do_promote
from releasegate.release.promote import rollback as do_rollback
from releasegate.server.access import requires
from releasegate.server.errors import ERROR_RESPONSES
from releasegate.server.routes import Json

router = APIRouter(responses={**ERROR_RESPONSES, 409: {"description": "Refused: the answer is no"}})
Operator = Annotated[Identity, Depends(requires(Role.OPERATOR))]
Approver = Annotated[Identity, Depends(requires(Role.APPROVER))]
IMPERSONATION = ("as", "as_", "approver", "reviewer", "who", "actor")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Signed(_Body):
    """A body signed by the token's identity: naming another signer is refused (422)."""

    @model_validator(mode="before")
    @classmethod
    def _no_impersonation(cls, data: Any) -> Any:
        if isinstance(data, dict):
            named = sorted(k for k in data if k in IMPERSONATION)
            if named:
                raise ValueError(
                    f"'{named[0]}' is refused over the server: an approval or a review "
                    "carries the identity of the token that sends it"
                )
        return data


class ApproveBody(Signed):
    env: str = Field(min_length=1, max_length=100, description="The environment approved for")
    note: str = Field("", max_length=2000, description="A note for the record")


class PromoteBody(_Body):
    env: str = Field(min_length=1, max_length=100)
    canary: float | None = Field(
        None, gt=0, le=100, description="Start a rollout: this % of traffic gets the version"
    )
    steps: list[float] | None = Field(
        None, description="The rollout's ramp, e.g. [5, 25, 50, 100] (default: the policy's)"
    )
    shadow: bool = Field(False, description="Start a shadow rollout (served to nobody)")


class RollbackBody(_Body):
    to: str | None = Field(
        None, description="A version that ran here before (default: the previous)"
    )
    reason: str = Field("", max_length=2000)


class PauseBody(_Body):
    reason: str = Field(min_length=1, max_length=2000)


@router.post(
    "/v1/versions/{version}/approve",
    tags=["actions"],
    summary="Approve a version for an environment as the token's identity (approver)",
)
def approve(request: Request, version: str, body: ApproveBody, who: Approver) -> Json:
    done = do_approve(
        request.app.state.store,
        version,
        body.env,
        approver=who.name,
        note=body.note,
        token_id=who.token_id,
    )
    return Json(done)


@router.post(
    "/v1/versions/{version}/promote",
    tags=["actions"],
    summary="Move an environment to a version that earned it, or start a rollout (operator)",
)
def promote(request: Request, version: str, body: PromoteBody, who: Operator) -> Json:
    store = request.app.state.store
    if body.canary is None and body.steps is None and not body.shadow:
        return Json(do_promote(store, version, body.env, who=who.name))
    from releasegate.release.rollout import Checked, rollout_dict, start

    started = start(
        store,
        version,
        body.env,
        canary_pct=body.canary,
        steps=tuple(body.steps) if body.steps is not None else None,
        shadow=body.shadow,
        who=who.name,
    )
    return Json(rollout_dict(Checked(started, None, 0)))


@router.post(
    "/v1/workflows/{workflow}/environments/{env}/rollback",
    tags=["actions"],
    summary="Move an environment back to the previous version, or `to` (operator)",
)
def rollback(request: Request, workflow: str, env: str, body: RollbackBody, who: Operator) -> Json:
    moved = do_rollback(
        request.app.state.store, workflow, env, to=body.to, reason=body.reason, who=who.name
    )
    return Json(moved)


@router.post(
    "/v1/workflows/{workflow}/environments/{env}/pause",
    tags=["actions"],
    summary="Send every request of an environment to the human fallback (operator)",
)
def pause(request: Request, workflow: str, env: str, body: PauseBody, who: Operator) -> Json:
    change = pause_env(request.app.state.store, workflow, env, reason=body.reason, who=who.name)
    return Json(_paused(request, change))


@router.post(
    "/v1/workflows/{workflow}/environments/{env}/resume",
    tags=["actions"],
    summary="Lift an environment's pause (operator)",
)
def resume(request: Request, workflow: str, env: str, who: Operator) -> Json:
    change = resume_env(request.app.state.store, workflow, env, who=who.name)
    return Json(_paused(request, change))


def _paused(request: Request, change: Any) -> dict[str, Any]:
    """``pause``/``resume --json``: the change, and the alerts sent at once (as the CLI)."""
    from releasegate.monitor.alerts import resend_due

    sent = resend_due(request.app.state.store, change.workflow, change.env)
    data: dict[str, Any] = change.as_dict()
    data["alerts_sent"] = [{"message": a.message, "routed": a.routed} for a in sent]
    return data
