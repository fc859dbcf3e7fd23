"""API tokens for the server: create (the secret shown once), list, revoke, authenticate.

Creating and revoking a token are audited (``token.created``, ``token.revoked``: the
token's id, name and role, never its secret). ``authenticate`` turns a presented
``Authorization: Bearer`` value into an ``Identity`` or an ``UnauthorizedError`` whose
message says why without echoing the value; ``authorize`` checks the role.
``record_refusal`` writes the ``access.refused`` audit event every 401 and 403 gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from releasegate.domain.access import (
    Identity,
    Role,
    Token,
    allows,
    check_name,
    new_token,
    parse_token,
    secret_matches,
)
from releasegate.errors import (
    ForbiddenError,
    NotFoundError,
    RefusedError,
    UnauthorizedError,
    WriteConflictError,
)
from releasegate.release.refs import actor as default_actor
from releasegate.store.audit import AuditRepo
from releasegate.store.engine import Store
from releasegate.store.tokens import TokenRepo

REFUSED = "access.refused"


@dataclass(frozen=True)
class Created:
    """A new token: the record, and the secret to hand over (shown this once)."""

    token: Token
    secret: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.token.to_dict(), "token": self.secret}


def create_token(store: Store, name: str, role: str, *, who: str | None = None) -> Created:
    """A new token acting as ``name`` with ``role``; refused while one of that name is active."""
    name = check_name(name)
    ranked = Role.parse(role)
    who = who or default_actor()
    fresh = new_token()
    token = Token(fresh.token_id, name, ranked, datetime.now(UTC), who)
    with store.write() as conn:
        repo = TokenRepo(conn)
        existing = repo.find(name)
        if existing is not None and existing.is_active and existing.name == name:
            raise WriteConflictError(
                f"an active token named '{name}' exists",
                hint=f"revoke it first (`releasegate token revoke {name}`) or pick another name",
            )
        repo.add(token, fresh.secret_hash)
        AuditRepo(conn).append(
            kind="token.created",
            actor=who,
            workflow=None,
            subject=token.token_id,
            payload={"name": name, "role": ranked.label},
        )
    return Created(token, fresh.secret)


def list_tokens(store: Store, *, include_revoked: bool = False) -> list[Token]:
    with store.read() as conn:
        return TokenRepo(conn).list(include_revoked=include_revoked)


def revoke_token(store: Store, ref: str, *, who: str | None = None) -> Token:
    """Revoke the active token named ``ref`` (or with id ``ref``); it stops working at once
    (a server caching tokens stops taking it within its cache time)."""
    who = who or default_actor()
    at = datetime.now(UTC)
    with store.write() as conn:
        repo = TokenRepo(conn)
        found = repo.find(ref.strip())
        if found is None:
            raise NotFoundError(
                f"no token '{ref}'", field="TOKEN", hint="`releasegate token list` shows them"
            )
        if not repo.revoke(found.token_id, at=at, by=who):
            raise RefusedError(f"token {found.token_id} ({found.name}) is already revoked")
        AuditRepo(conn).append(
            kind="token.revoked",
            actor=who,
            workflow=None,
            subject=found.token_id,
            payload={"name": found.name, "role": found.role.label},
        )
    return Token(
        found.token_id, found.name, found.role, found.created_at, found.created_by, at, who
    )


BEARER = "bearer "


def authenticate(store: Store, header: str | None) -> Identity:
    """Who an ``Authorization`` header value acts as; ``UnauthorizedError`` saying why not."""
    if not header:
        raise UnauthorizedError(
            "no API token: send 'Authorization: Bearer <token>'",
            hint="an admin creates one with `releasegate token create --name NAME --role ROLE`",
        )
    if not header[: len(BEARER)].lower() == BEARER:
        raise UnauthorizedError("the Authorization header is not 'Bearer <token>'")
    presented = parse_token(header[len(BEARER) :])
    if presented is None:
        raise UnauthorizedError(
            "the token is malformed: a releasegate token reads rg_<id>_<secret>"
        )
    with store.read() as conn:
        found = TokenRepo(conn).verify(presented.token_id)
    if found is None or not secret_matches(presented.raw, found[1]):
        raise UnauthorizedError(f"token {presented.token_id} is not valid")
    token = found[0]
    if not token.is_active:
        raise UnauthorizedError(f"token {token.token_id} ({token.name}) was revoked")
    return Identity(token.name, token.role, token.token_id)


def authorize(identity: Identity, needed: Role) -> None:
    """``ForbiddenError`` unless ``identity``'s role reaches ``needed``."""
    if not allows(identity.role, needed):
        raise ForbiddenError(
            f"{identity.name} has role {identity.role.label}; this needs {needed.label} or above",
            hint="an admin can create a token with a higher role",
        )


def record_refusal(
    store: Store,
    *,
    who: str,
    token_id: str | None,
    status: int,
    reason: str,
    method: str,
    path: str,
) -> None:
    """The ``access.refused`` audit event of a 401 or 403: who, what they asked, why not."""
    with store.write() as conn:
        AuditRepo(conn).append(
            kind=REFUSED,
            actor=who,
            workflow=None,
            subject=token_id,
            payload={
                "status": status,
                "reason": reason[:500],
                "method": method[:20],
                "path": path[:500],
            },
        )
