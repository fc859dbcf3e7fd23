"""API tokens: the server's credentials, stored as SHA-256 digests of their secrets.

``active_name`` (unique) holds the name while the token is active and NULL once it is
revoked, so two creators of the same name at once get one token and a conflict, and a
revoked name can be given to a new token. Records leave as ``domain.access.Token``,
never with the digest (``secret_hash`` is read only by ``verify``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from releasegate.domain.access import Role, Token
from releasegate.store import tables as t
from releasegate.store.rows import as_utc

_PUBLIC = [c for c in t.api_tokens.c if c.name not in ("secret_hash", "active_name")]


def _token(row: Any) -> Token:
    return Token(
        token_id=row.token_id,
        name=row.name,
        role=Role[row.role.upper()],
        created_at=as_utc(row.created_at),
        created_by=row.created_by,
        revoked_at=None if row.revoked_at is None else as_utc(row.revoked_at),
        revoked_by=row.revoked_by,
    )


class TokenRepo:
    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, token: Token, secret_hash: str) -> None:
        """Store an active token; another active token of that name at the same moment
        makes the write fail as a ``WriteConflictError`` (``Store.write``)."""
        self.conn.execute(
            insert(t.api_tokens).values(
                token_id=token.token_id,
                name=token.name,
                active_name=token.name,
                role=token.role.label,
                secret_hash=secret_hash,
                created_at=token.created_at,
                created_by=token.created_by,
            )
        )

    def list(self, *, include_revoked: bool = False) -> list[Token]:
        query = select(*_PUBLIC).order_by(t.api_tokens.c.created_at, t.api_tokens.c.token_id)
        if not include_revoked:
            query = query.where(t.api_tokens.c.revoked_at.is_(None))
        return [_token(r) for r in self.conn.execute(query)]

    def find(self, ref: str) -> Token | None:
        """The active token named ``ref``, else the token with id ``ref`` (even revoked)."""
        c = t.api_tokens.c
        row = self.conn.execute(select(*_PUBLIC).where(c.active_name == ref)).first()
        if row is None:
            row = self.conn.execute(select(*_PUBLIC).where(c.token_id == ref)).first()
        return None if row is None else _token(row)

    def verify(self, token_id: str) -> tuple[Token, str] | None:
        """The token with ``token_id`` and its stored digest, for checking a presented secret."""
        row = self.conn.execute(
            select(t.api_tokens).where(t.api_tokens.c.token_id == token_id)
        ).first()
        return None if row is None else (_token(row), str(row.secret_hash))

    def revoke(self, token_id: str, *, at: datetime, by: str) -> bool:
        """Revoke an active token; False when it was already revoked."""
        c = t.api_tokens.c
        done = self.conn.execute(
            update(t.api_tokens)
            .where(c.token_id == token_id, c.revoked_at.is_(None))
            .values(revoked_at=at, revoked_by=by, active_name=None)
        )
        return bool(done.rowcount)
