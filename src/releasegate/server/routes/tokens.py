"""API tokens over HTTP, for admins: list, create (the secret in this one answer), revoke.
The same service as ``releasegate token create|list|revoke``, audited as the admin."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from releasegate.domain.access import Identity, Role
from releasegate.release.tokens import create_token, list_tokens, revoke_token
from releasegate.server.access import requires
from releasegate.server.errors import ERROR_RESPONSES
from releasegate.server.routes import Json

router = APIRouter(responses={**ERROR_RESPONSES, 409: {"description": "Refused: the answer is no"}})
Admin = Annotated[Identity, Depends(requires(Role.ADMIN))]


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, description="Who the token acts as")
    role: str = Field(description="viewer, builder, operator, approver or admin")


@router.get("/v1/tokens", tags=["tokens"], summary="Active API tokens, never a secret (admin)")
def tokens(request: Request, _: Admin, revoked: bool = False) -> Json:
    found = list_tokens(request.app.state.store, include_revoked=revoked)
    return Json([t.to_dict() for t in found])


@router.post(
    "/v1/tokens", tags=["tokens"], summary="Create a token; `token` is shown this once (admin)"
)
def create(request: Request, body: TokenBody, who: Admin) -> Json:
    made = create_token(request.app.state.store, body.name, body.role, who=who.name)
    return Json(made.to_dict(), status_code=201, headers={"Cache-Control": "no-store"})


@router.delete(
    "/v1/tokens/{token}", tags=["tokens"], summary="Revoke a token by name or id (admin)"
)
def revoke(request: Request, token: str, who: Admin) -> Json:
    done = revoke_token(request.app.state.store, token, who=who.name)
    request.app.state.gatekeeper.forget()  # a revoked token stops in this process at once
    return Json(done.to_dict())
