"""Who may do what over the server: API tokens and the roles they carry.

A token reads ``rg_<token_id>_<secret>``: the id is public (listings, audit events name
it), the secret is 32 random bytes shown once and stored only as its SHA-256 digest
(a high-entropy secret needs no slow hash; a stolen table gives no usable token).
Roles are ranked, each including the ones below it::

    viewer < builder < operator < approver < admin

viewer reads; builder registers and evaluates; operator sends runs, promotes, rolls
back, pauses and resumes; approver also signs approvals; admin also manages tokens.
An endpoint declares the lowest role it needs (``allows``). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any, NamedTuple

from releasegate.errors import InputError


class Role(IntEnum):
    VIEWER = 0
    BUILDER = 1
    OPERATOR = 2
    APPROVER = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str, field: str = "--role") -> Role:
        try:
            return cls[value.strip().upper()]
        except KeyError:
            raise InputError(
                f"unknown role '{value}'", field=field, hint="one of: " + ", ".join(ROLES)
            ) from None


ROLES = tuple(r.label for r in Role)
"""The role names, lowest first."""


def allows(held: Role, needed: Role) -> bool:
    """Whether a token of role ``held`` may call an endpoint that needs ``needed``."""
    return held >= needed


def parse_role_map(text: str, field: str) -> dict[str, Role]:
    """``group=role,...`` (``*`` for anyone the identity provider vouches for) as a map;
    InputError naming ``field`` for a pair without ``=`` or an unknown role."""
    found: dict[str, Role] = {}
    for pair in (p.strip() for p in text.split(",")):
        if not pair:
            continue
        value, sep, role = pair.rpartition("=")
        if not sep or not value.strip():
            raise InputError(f"{pair!r} is not value=role", field=field, hint="e.g. ops=operator")
        found[value.strip()] = Role.parse(role, field)
    return found


def role_from_claim(claim: object, roles: dict[str, Role]) -> Role | None:
    """The highest role ``roles`` gives any value of an identity's claim (a string or a
    list of them), or its ``*`` entry; None when it gives none."""
    values = [claim] if isinstance(claim, str) else claim if isinstance(claim, list) else []
    given = [roles[v] for v in values if isinstance(v, str) and v in roles]
    if "*" in roles:
        given.append(roles["*"])
    return max(given, default=None)


PREFIX = "rg_"
_TOKEN = re.compile(r"^rg_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")


class NewToken(NamedTuple):
    token_id: str
    secret: str
    """The whole token, ``rg_<id>_<secret>``: shown once, never stored."""
    secret_hash: str


def new_token() -> NewToken:
    """A fresh token: its public id, the full token to hand over once, and what to store."""
    token_id = secrets.token_hex(8)
    raw = secrets.token_urlsafe(32)  # 43 characters
    return NewToken(token_id, f"{PREFIX}{token_id}_{raw}", hash_secret(raw))


def hash_secret(raw: str) -> str:
    return hashlib.sha256(raw.encode("ascii")).hexdigest()


class Presented(NamedTuple):
    token_id: str
    raw: str


def parse_token(value: str) -> Presented | None:
    """The id and secret of a presented token, or None when it is not one of ours."""
    m = _TOKEN.match(value.strip())
    return None if m is None else Presented(m.group(1), m.group(2))


def secret_matches(raw: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented secret with the stored digest."""
    return hmac.compare_digest(hash_secret(raw), stored_hash)


def check_name(name: str) -> str:
    """A token's name is the identity it acts as (the approver of an approval)."""
    name = name.strip()
    if not _NAME.match(name):
        raise InputError(
            f"'{name}' is not a usable token name",
            field="--name",
            hint="1-100 letters, digits and . _ @ + -, starting with a letter or digit "
            "(the name is who the token acts as, e.g. bob or ci-deploy)",
        )
    return name


@dataclass(frozen=True)
class Token:
    """A stored token, without its secret."""

    token_id: str
    name: str
    role: Role
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "token_id": self.token_id,
            "name": self.name,
            "role": self.role.label,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
            "revoked_by": self.revoked_by,
            "active": self.is_active,
        }


@dataclass(frozen=True)
class Identity:
    """Who a request acts as: the token's name and role (``token_id`` for the record)."""

    name: str
    role: Role
    token_id: str
