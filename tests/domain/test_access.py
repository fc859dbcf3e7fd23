"""Tokens and roles, pure: the format, the hash, the ranking, the names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from releasegate.domain.access import (
    ROLES,
    Role,
    allows,
    check_name,
    hash_secret,
    new_token,
    parse_token,
    secret_matches,
)
from releasegate.errors import InputError


def test_a_new_token_parses_back_and_only_its_digest_is_kept() -> None:
    made = new_token()
    presented = parse_token(made.secret)
    assert presented is not None and presented.token_id == made.token_id
    assert secret_matches(presented.raw, made.secret_hash)
    assert presented.raw not in made.secret_hash and made.secret_hash == hash_secret(presented.raw)
    assert new_token().secret != made.secret


@given(st.text(max_size=80))
def test_anything_else_is_not_a_token(value: str) -> None:
    assert parse_token(value) is None


def test_a_changed_secret_does_not_match() -> None:
    made = new_token()
    presented = parse_token(made.secret)
    assert presented is not None
    flipped = ("B" if presented.raw[0] == "A" else "A") + presented.raw[1:]
    assert not secret_matches(flipped, made.secret_hash)


def test_roles_are_ranked_and_each_includes_those_below() -> None:
    assert ROLES == ("viewer", "builder", "operator", "approver", "admin")
    assert allows(Role.ADMIN, Role.VIEWER) and allows(Role.OPERATOR, Role.OPERATOR)
    assert not allows(Role.OPERATOR, Role.APPROVER) and not allows(Role.VIEWER, Role.BUILDER)
    assert Role.parse(" Approver ") is Role.APPROVER
    with pytest.raises(InputError, match="unknown role 'root'"):
        Role.parse("root")


@pytest.mark.parametrize("bad", ["", " ", "-bob", "bob smith", "x" * 101, "bob\tx", "bob/x"])
def test_a_token_name_is_a_plain_identity(bad: str) -> None:
    with pytest.raises(InputError, match="not a usable token name"):
        check_name(bad)


def test_a_token_name_may_be_an_email_or_a_service() -> None:
    assert check_name(" bob@example.com ") == "bob@example.com"
    assert check_name("ci-deploy.prod") == "ci-deploy.prod"
