"""The audit key lives outside the database, so whoever can write the database cannot re-sign.

Where it is read from, first found wins:
``RELEASEGATE_AUDIT_KEY`` (the secrets themselves, separated by commas or spaces, newest
last), ``RELEASEGATE_AUDIT_KEY_FILE`` (a file of them), else ``audit.key`` in the
store's home (``.releasegate/``). ``init``, or the first audited write of a store with no
keyed event yet, creates the file (mode 0600). Rotation appends a key to the file; every
older key stays in it, since verifying needs each key that ever signed.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from releasegate.domain.audit import AuditKey, Keyring, parse_keys
from releasegate.errors import AuditKeyError

ENV_KEY = "RELEASEGATE_AUDIT_KEY"
ENV_FILE = "RELEASEGATE_AUDIT_KEY_FILE"
FILE_NAME = "audit.key"
HEADER = (
    "# releasegate audit keys: keep this file secret, outside the database, and backed up.\n"
    "# One key a line, newest last; verifying the audit log needs every key that ever signed.\n"
)


def key_file(home: Path) -> Path | None:
    """The file keys are read from (None when they come from RELEASEGATE_AUDIT_KEY)."""
    if os.environ.get(ENV_KEY, "").strip():
        return None
    named = os.environ.get(ENV_FILE, "").strip()
    return Path(named).expanduser() if named else home / FILE_NAME


def describe(home: Path) -> str:
    path = key_file(home)
    return ENV_KEY if path is None else str(path)


def load(home: Path, *, create: bool = False) -> Keyring | None:
    """The keyring, or None when there is no key (and ``create`` is off)."""
    value = os.environ.get(ENV_KEY, "").strip()
    if value:
        return parse_keys(value, ENV_KEY)
    path = key_file(home)
    assert path is not None
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if not create:
            return None
        return _create(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditKeyError(
            f"cannot read the audit key file: {exc}", source=str(path), hint=_hint()
        ) from None
    return parse_keys(text, str(path))


def add_key(home: Path) -> tuple[AuditKey, Path]:
    """A new key appended to the key file (created if absent); refuses for RELEASEGATE_AUDIT_KEY."""
    path = key_file(home)
    if path is None:
        raise AuditKeyError(
            f"the audit keys come from {ENV_KEY}, which releasegate cannot append to",
            hint=f"add a new secret at the end of {ENV_KEY} (keep the old ones), e.g. from "
            "python -c 'import secrets; print(secrets.token_hex(32))', "
            "then run `releasegate audit rotate-key` again",
        )
    old = load(home, create=True)
    assert old is not None
    key = AuditKey(secrets.token_hex(32).encode("ascii"))
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text += "\n"
    _write_private(path, text + _line(key), replace=True)
    return key, path


def _create(path: Path) -> Keyring:
    key = AuditKey(secrets.token_hex(32).encode("ascii"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(path, HEADER + _line(key), replace=False)
    except FileExistsError:  # another process created it first: use theirs
        pass
    except OSError as exc:
        raise AuditKeyError(
            f"cannot create the audit key file: {exc}", source=str(path), hint=_hint()
        ) from None
    return parse_keys(path.read_text(encoding="utf-8"), str(path))


def _line(key: AuditKey) -> str:
    at = datetime.now(UTC).isoformat(timespec="seconds")
    return f"{key.secret.decode('ascii')}  # {key.key_id}, created {at}\n"


def _write_private(path: Path, text: str, *, replace: bool) -> None:
    """Written whole to a 0600 temporary file, then moved into place (never half a key)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if it exists: two first writers keep one key
    finally:
        tmp.unlink(missing_ok=True)


def _hint() -> str:
    return (
        f"set {ENV_FILE} to the key file (or {ENV_KEY} to the key); "
        "`releasegate init` creates .releasegate/audit.key"
    )
