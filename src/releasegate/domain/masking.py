"""Secrets out of texts we quote: judge answers, route errors, anything a server echoed.

A compromised or misconfigured endpoint can echo the key it was sent back in an error
or an answer; releasegate quotes such texts into reports, JUnit files and the terminal.
``mask_secrets`` replaces what looks like a credential with ``***`` and keeps the rest
readable: API keys (``sk-...``, ``sk-proj-...``, ``ghp_...``, ``xox?-...``, ``AKIA...``),
``Bearer``/``Basic`` tokens, the values of ``key=value`` and ``"key": "value"`` pairs whose
key names a secret (api_key, token, password, secret, authorization), and passwords in URLs.
Pure and idempotent: masking a masked text changes nothing.
"""

from __future__ import annotations

import re

MASK = "***"

_KEY_NAMES = (
    r"(?:api[_-]?key|apikey|x-api-key|access[_-]?token|refresh[_-]?token|auth[_-]?token|"
    r"token|secret|client[_-]?secret|password|passwd|pwd|authorization)"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer abc / Basic abc (the scheme kept, the credential masked)
    (re.compile(r"(?i)\b(bearer|basic)(\s+)(?!\*\*\*)[A-Za-z0-9._~+/=-]{6,}"), r"\1\2" + MASK),
    # "api_key": "value" / 'token': 'value' (JSON or Python reprs)
    (
        re.compile(r"(?i)([\"']" + _KEY_NAMES + r"[\"']\s*:\s*[\"'])(?!\*\*\*)[^\"']+([\"'])"),
        r"\1" + MASK + r"\2",
    ),
    # api_key=value, token: value, password = value (query strings, logs, env dumps)
    (
        re.compile(
            r"(?i)(\b" + _KEY_NAMES + r"\b\s*[=:]\s*)"
            r"(?![\"'{\[])(?!\*\*\*)(?!(?:bearer|basic)\s)[^\s&,;\"']+"
        ),
        r"\1" + MASK,
    ),
    # user:password@host in URLs
    (re.compile(r"(://[^/\s:@]+:)(?!\*\*\*)[^@\s/]+(@)"), r"\1" + MASK + r"\2"),
    # well-known key shapes, wherever they stand
    (re.compile(r"\bsk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{8,}"), MASK),
    (re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{16,}"), MASK),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{8,}"), MASK),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), MASK),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{30,}"), MASK),
    (re.compile(r"\bhf_[A-Za-z0-9]{20,}"), MASK),
)


def mask_secrets(text: str) -> str:
    """``text`` with every credential-looking part replaced by ``***``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def mask_url(text: str) -> str:
    """``scheme://user:secret@host`` -> ``scheme://user:***@host``, a secret holding ``@`` too.

    For one URL we could not parse (a malformed database URL): everything between the first
    ``:`` after the scheme and the last ``@`` is the secret.
    """
    head, sep, rest = text.partition("://")
    if not sep or "@" not in rest:
        return text
    creds, at, tail = rest.rpartition("@")
    user, colon, _ = creds.partition(":")
    return f"{head}://{user}{':***' if colon else ''}{at}{tail}"
