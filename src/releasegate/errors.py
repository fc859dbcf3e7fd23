"""Every error releasegate raises, in one tree, translated once per front.

The exit codes beside the tree are the CLI's; it maps them from these classes in one
table (``releasegate.cli._errors.EXIT_CODES``), and the classes carry no codes.

    ReleasegateError
    ├── InputError            exit 2   bad file, field or argument (.source .line .field)
    │   ├── ManifestError     a workflow file
    │   ├── SuiteError        a suite file
    │   ├── PolicyError       a policy section or file
    │   ├── NotFoundError     an id or name that does not exist
    │   ├── SDKUsageError     a call of the runtime SDK that cannot work (wrong arguments)
    │   ├── PinMismatchError  what would run is not what the version pinned
    │   └── AuditKeyError     the audit key is missing, unreadable or not the chain's
    ├── RefusedError          exit 1   the answer is no
    │   ├── PromotionRefusedError
    │   ├── StaleAliasError   another writer moved the environment first
    │   ├── WriteConflictError another writer created the same row first
    │   ├── SelfApprovalError
    │   ├── RolloutRefusedError  a rollout cannot do that now (advance after abort, a second one)
    │   ├── RehearsalRefusedError  production without --allow-production; a second one at once
    │   ├── UnauthorizedError  the server: no token, or one unknown or revoked (HTTP 401)
    │   │   └── IdentityProviderError  the identity provider's keys or discovery document
    │   │                              cannot be read (a token from it cannot be checked)
    │   ├── ForbiddenError    the server: the token's role is too low (HTTP 403)
    │   ├── AuditBrokenError  the audit log cannot be read or extended as it stands
    │   └── BlobCorruptError  a stored blob's bytes no longer match its digest
    ├── StoreError            exit 2   the store cannot be used as given (one line: cause, store)
    │   │                              read-only, full, locked, unreachable, unreadable
    │   ├── StoreConflictError  a transient conflict with another writer (retried first)
    │   └── StoreUnavailableError  the SDK could not reach the store (nor serve a last known answer)
    │       ├── RunsNotStoredError  flush()/close() could neither store nor spill some runs
    │       └── AnswerLostError  a change sent to a server got no answer in time: it may be done
    ├── SchemaOutdatedError   exit 2   the store needs `releasegate db upgrade`
    ├── PrerequisiteError     exit 2   an optional dependency is missing
    └── ServerBugError        exit 70  a server (RELEASEGATE_URL) answered 500: its log has why

A failed gate is a value (``decision.passed is False``), never an exception.
Scorer and provider failures inside an eval are recorded per case, not raised.
"""

from __future__ import annotations

from collections.abc import Mapping


class ReleasegateError(Exception):
    """Base of every error releasegate raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class InputError(ReleasegateError):
    """Bad input: the message names the file, line and field when there is one."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.source = source
        self.line = line
        self.field = field
        where = source or ""
        if source and line is not None:
            where = f"{source}:{line}"
        prefix = where
        if field:
            prefix = f"{where}: field '{field}'" if where else f"field '{field}'"
        full = f"{prefix}: {message}" if prefix else message
        super().__init__(full, hint=hint)
        self.reason = message


class ManifestError(InputError):
    """A workflow file is malformed or refers to something missing."""


class SuiteError(InputError):
    """A suite file or its cases are malformed."""


class PolicyError(InputError):
    """A gate policy is malformed."""


class NotFoundError(InputError):
    """A version, workflow, suite or environment that does not exist."""


class SDKUsageError(InputError):
    """The runtime SDK was called in a way that cannot work (a bad argument or option)."""


class PinMismatchError(InputError):
    """A version's pin no longer matches this machine: its code or weights changed.

    ``pinned`` and ``found`` are the two digests; nothing was run or written.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str,
        pinned: str,
        found: str,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, field=field, hint=hint)
        self.pinned = pinned
        self.found = found


class AuditKeyError(InputError):
    """The audit key (kept outside the database) is missing, unreadable or not the chain's."""


class RefusedError(ReleasegateError):
    """The system said no (exit 1): a promotion, an approval, an audit check."""


class PromotionRefusedError(RefusedError):
    """The version has not earned this environment (no eval, no gate, no approval...)."""


class StaleAliasError(RefusedError):
    """The environment moved since the caller looked: no lost update."""


class WriteConflictError(RefusedError):
    """Another writer inserted the same row at the same moment; looking again resolves it."""


class SelfApprovalError(RefusedError):
    """Nobody approves their own change."""


class RolloutRefusedError(RefusedError):
    """A rollout cannot do that now: advance after an abort, a second one on one environment."""


class RehearsalRefusedError(RefusedError):
    """A rehearsal cannot run: production without ``--allow-production``, or one already runs."""


class UnauthorizedError(RefusedError):
    """A server request without a usable token: none, malformed, unknown or revoked."""


class IdentityProviderError(UnauthorizedError):
    """The identity provider's discovery document or keys cannot be read, so its tokens
    cannot be checked: a 401 on the API, a 502 on the dashboard's sign-in."""


class ForbiddenError(RefusedError):
    """A server request whose token's role is below what the endpoint needs."""


class SentCodeRefusedError(ForbiddenError):
    """A document sent to the server names code, a host or a key variable its operator
    does not let a sent document use (``domain/sent_code``)."""


class PauseRefusedError(RefusedError):
    """Pausing an environment already paused, or resuming one that is not."""


class StoreError(ReleasegateError):
    """The store cannot be used as given (read-only, full, locked past the timeout,
    unreachable, unreadable); the message names the cause and the store."""


class StoreConflictError(StoreError):
    """Another writer conflicted (serialization failure, deadlock, busy); a retry resolves it."""


class StoreUnavailableError(StoreError):
    """The SDK could not reach the store in time, and had no last known answer to serve."""


class RunsNotStoredError(StoreUnavailableError):
    """``flush()`` or ``close()`` could neither store nor spill some runs (``.report``)."""

    def __init__(self, message: str, *, report: object, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.report = report


class AnswerLostError(StoreUnavailableError):
    """A change was sent to the server (``RELEASEGATE_URL``) and no answer came within the
    deadline: the server may have made it, so nobody can say that nothing was written."""


class AuditBrokenError(RefusedError):
    """The audit log was changed outside releasegate so that it cannot be read or extended."""

    def __init__(self, message: str, *, seq: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.seq = seq


class BlobCorruptError(RefusedError):
    """A blob's stored bytes do not match its digest (changed or damaged outside releasegate);
    ``digest`` names it. The bytes are never returned."""

    def __init__(self, message: str, *, digest: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.digest = digest


class SchemaOutdatedError(ReleasegateError):
    """The store's schema is older (or newer) than this release of releasegate."""


class PrerequisiteError(ReleasegateError):
    """An optional dependency is missing; the message says what to install."""


class ServerBugError(ReleasegateError):
    """The server the CLI talks to (``RELEASEGATE_URL``) answered 500: a bug there, whose
    traceback is in the server's log (the CLI says so in one line and exits 70)."""


def nearest(
    table: Mapping[type[ReleasegateError], int], exc: ReleasegateError, default: int
) -> int:
    """What a front's ``table`` maps ``exc`` to, by the nearest class in its MRO (the CLI's
    exit codes, the server's HTTP statuses); ``default`` when none of them is listed."""
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
    return default
