"""``mask_secrets``: credentials out, the rest of the sentence kept readable."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from releasegate.domain.masking import mask_secrets


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("key sk-proj-abcdefghij0123456789 leaked", "key *** leaked"),
        ("Authorization: Bearer abc.def-ghi_123", "Authorization: Bearer ***"),
        ('{"api_key": "hunter2hunter2", "n": 1}', '{"api_key": "***", "n": 1}'),
        ("GET /v1?api_key=abc123&x=1", "GET /v1?api_key=***&x=1"),
        ("password: pw-1234 token=t0k3n", "password: *** token=***"),
        ("postgresql://app:s3cret@db:5432/rg", "postgresql://app:***@db:5432/rg"),
        ("ghp_abcdefghijklmnopqrstuvwxyz0123", "***"),
        ("AKIAABCDEFGHIJKLMNOP in the log", "*** in the log"),
        ("xoxb-1234567890-abcdefgh", "***"),
    ],
)
def test_credentials_are_masked(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "no JSON object with 'score' in the judge's answer: 'I think it is fine'",
        "HTTP 429 Too Many Requests (rate_limit_exceeded)",
        "tokens in 120, tokens out 30; the key point is politeness",
        "ask-me-later is a label",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert mask_secrets(text) == text


@given(st.text(max_size=200))
def test_masking_is_idempotent(text: str) -> None:
    once = mask_secrets(text)
    assert mask_secrets(once) == once


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789", min_size=12, max_size=40))
@example(secret="Authorizatio")  # a prefix of the header name itself: CI found it
def test_a_key_never_survives_in_an_echoed_error(secret: str) -> None:
    for template in (
        "401: invalid key sk-{}",
        "Authorization: Bearer {}",
        '{{"error": {{"api_key": "{}"}}}}',
        "url?token={}&a=1",
    ):
        text = template.format(secret)
        # The words around the slot may hold the secret themselves ('Authorizatio'): only
        # the copy in the slot must go.
        around = template.format("***")
        assert mask_secrets(text).count(secret) <= around.count(secret)
