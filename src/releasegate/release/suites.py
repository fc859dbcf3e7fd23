"""Suites that learn from incidents: add a case, get a new suite version, gate on it.

Concurrent callers take turns on a lock file beside the suite. The suite file stays the
source of truth: the case is appended to its JSONL
cases file (atomically), and the new content is registered as the workflow's
current suite with the reason recorded, so the next gate (and the next
``eval --suite FILE``) both see it. Inline suites are refused rather than
rewritten, because re-serialising YAML would lose the author's comments.
"""

from __future__ import annotations

import fcntl
import json
import os
import posixpath
import stat
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

from releasegate.domain.document import Document, Fields
from releasegate.domain.results import Case
from releasegate.domain.sent_code import SentCodePolicy
from releasegate.domain.suite import Suite, parse_case
from releasegate.errors import InputError, RefusedError, SuiteError
from releasegate.release.evaluate import (
    build_scorers,
    check_expectations,
    read_suite,
    read_suite_text,
    register_suite,
    stored_suite,
)
from releasegate.release.loaders import load_yaml, parse_yaml
from releasegate.release.refs import actor as default_actor
from releasegate.release.refs import find_run
from releasegate.release.retry import retrying
from releasegate.store.audit import AuditRepo
from releasegate.store.engine import Store
from releasegate.store.suites import SuiteRepo


@dataclass(frozen=True)
class AddedCase:
    case_id: str
    suite_id: str
    previous_id: str | None
    cases: int
    cases_file: Path


class StoredCase(NamedTuple):
    """A case added to the stored suite (``add_case_stored``)."""

    case_id: str
    suite_id: str
    previous_id: str
    cases: int
    line: str
    """Its JSONL line, for the suite's cases file."""


@contextmanager
def locked(suite_path: Path) -> Iterator[None]:
    # a lock file beside the suite, never replaced, so every writer contends on one inode
    lock = suite_path.parent / f".{suite_path.name}.lock"
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def check_reason(reason: str) -> None:
    """A case says why it is added (the incident, the bug): InputError naming ``--reason``."""
    if not reason.strip():
        raise InputError("say why this case is added (the incident, the bug)", field="--reason")


def _register_grown(store: Store, grown: Suite, who: str, reason: str) -> str | None:
    """Register the suite a case grew as the workflow's current one; the id it replaces."""
    with store.read() as conn:
        previous = SuiteRepo(conn).current_id(grown.workflow)
    register_suite(store, grown, who=who, reason=reason)
    return previous


def add_case(
    store: Store,
    suite_path: Path,
    *,
    input: Any,
    expected: Any = None,
    case_id: str | None = None,
    tags: Sequence[str] = (),
    must_pass: bool = False,
    reason: str = "",
    who: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> AddedCase:
    who = who or default_actor()
    check_reason(reason)
    with locked(suite_path):  # concurrent callers take turns; no case is lost
        suite = read_suite(suite_path)  # validates the file as it is now
        doc = load_yaml(suite_path, SuiteError)
        cases_file = suite_path.parent / cases_ref(doc, str(suite_path))
        record, _ = _record(
            suite,
            str(cases_file),
            _next_line(cases_file.read_text(encoding="utf-8")),
            input=input,
            expected=expected,
            case_id=case_id,
            tags=tags,
            must_pass=must_pass,
            metadata=metadata,
        )
        grown = _with_case(cases_file, record)
        try:
            new_suite = read_suite(suite_path)
            check_expectations(new_suite, build_scorers(new_suite))
        except BaseException:
            grown.restore()
            raise
        grown.commit()
        previous = _register_grown(store, new_suite, who, reason)
        return AddedCase(
            record["id"], new_suite.suite_id, previous, len(new_suite.cases), cases_file
        )


def add_case_text(
    store: Store,
    text: str,
    source: str,
    files: Mapping[str, str],
    *,
    input: Any,
    expected: Any = None,
    case_id: str | None = None,
    tags: Sequence[str] = (),
    must_pass: bool = False,
    reason: str = "",
    who: str | None = None,
    metadata: dict[str, Any] | None = None,
    policy: SentCodePolicy,
) -> tuple[AddedCase, str]:
    """``add_case`` of a suite sent as text (over the server): the same checks, the new
    suite registered as the workflow's current one; the caller's files are not here, so
    it returns the line to append to the cases file (``AddedCase.cases_file`` is the
    path the suite names it by)."""
    who = who or default_actor()
    check_reason(reason)
    suite = read_suite_text(text, source, files, policy=policy)  # validates the suite as it is now
    ref = cases_ref(parse_yaml(text, source, SuiteError), source)
    given = {posixpath.normpath(k): v for k, v in files.items()}
    cases_text = given[posixpath.normpath(ref)]  # read_suite_text found it
    record, _ = _record(
        suite,
        ref,
        _next_line(cases_text),
        input=input,
        expected=expected,
        case_id=case_id,
        tags=tags,
        must_pass=must_pass,
        metadata=metadata,
    )
    line = json.dumps(record, ensure_ascii=False) + "\n"
    kept = cases_text if not cases_text or cases_text.endswith("\n") else cases_text + "\n"
    new_suite = read_suite_text(
        text, source, {**given, posixpath.normpath(ref): kept + line}, policy=policy
    )
    check_expectations(new_suite, build_scorers(new_suite))
    previous = _register_grown(store, new_suite, who, reason)
    added = AddedCase(record["id"], new_suite.suite_id, previous, len(new_suite.cases), Path(ref))
    return added, line


def add_case_stored(
    store: Store,
    workflow: str,
    *,
    input: Any,
    expected: Any = None,
    must_pass: bool = False,
    reason: str = "",
    who: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> StoredCase:
    """``add_case`` of the workflow's current suite as the store keeps it: the server's
    way, which never reads or writes a file a suite's registration names (for a suite sent
    over the API that is a path on the sender's machine). The grown suite becomes current
    only over the one it grew from; a writer that grew it meanwhile makes this grow that
    one instead. The case's line for the suite's cases file comes back with it: only the
    suite's owner can append it there."""
    who = who or default_actor()
    check_reason(reason)

    def grow() -> StoredCase:
        with store.read() as conn:
            current = SuiteRepo(conn).current_id(workflow)
            source = AuditRepo(conn).suite_source(current) if current else None
        if current is None:
            raise RefusedError(
                f"{workflow} has no current suite to add the case to",
                hint="register one: `releasegate eval VERSION --suite FILE`",
            )
        suite = replace(stored_suite(store, current), source=source or "")
        record, case = _record(
            suite,
            f"suite {current[:12]}",
            len(suite.cases) + 1,
            input=input,
            expected=expected,
            case_id=None,
            tags=(),
            must_pass=must_pass,
            metadata=metadata,
        )
        grown = replace(suite, cases=(*suite.cases, case))
        check_expectations(grown, build_scorers(grown))
        register_suite(store, grown, who=who, reason=reason, replacing=current)
        line = json.dumps(record, ensure_ascii=False) + "\n"
        return StoredCase(record["id"], grown.suite_id, current, len(grown.cases), line)

    return retrying(grow, what="add_case")


def _next_line(cases_text: str) -> int:
    return len(cases_text.splitlines()) + 1


def check_case_input(input: Any, from_run: str | None) -> None:
    """A case's input is given one way: ``--input`` or ``--from-run`` (InputError else)."""
    if (input is None) == (from_run is None):
        raise InputError("give the case's input: --input TEXT or --from-run RUN_ID (one)")


def case_input(store: Store, input: Any, from_run: str | None) -> tuple[Any, dict[str, Any] | None]:
    """A case's input and metadata: ``input`` as given, or a production run's (one of them)."""
    check_case_input(input, from_run)
    if from_run is not None:
        return case_from_run(store, from_run)
    return input, None


def append_sent_case(suite_path: Path, files: Mapping[str, str], line: str) -> Path:
    """The client's half of a case a server added (``add_case_text``): ``line``, the
    server's ``appended``, appended atomically to the cases file the suite names (the one
    ``files`` sent), so the file and the suite the server registered are one. Call it
    under ``locked(suite_path)``, held since the suite was read to be sent; a cases file
    that changed since it was sent (an edit by hand meanwhile) is refused, unchanged."""
    [(ref, sent)] = files.items()
    path = suite_path.parent / ref
    now = path.read_text(encoding="utf-8")
    if now != sent:
        raise RefusedError(
            f"{path} changed while the server added the case: it registered the file as "
            f"sent plus one line, and the file was left as it is now",
            hint=f"append this line to {path} by hand, or add the case again: {line.strip()}",
        )
    grown = now if not now or now.endswith("\n") else now + "\n"
    _atomic_write(path, grown + line)
    return path


def cases_ref(doc: Document, source: str) -> str:
    """The JSONL cases file a suite names; a suite with its cases inline is refused."""
    ref = doc.data.get("cases")
    if not isinstance(ref, str):
        raise SuiteError(
            "a case is appended to a JSONL cases file, and this suite has its cases inline",
            source=source,
            line=doc.line_of(("cases",)),
            field="cases",
            hint="move the cases to a .jsonl file and name it in 'cases:'",
        )
    return ref


def _record(
    suite: Suite,
    cases_source: str,
    line: int,
    *,
    input: Any,
    expected: Any,
    case_id: str | None,
    tags: Sequence[str],
    must_pass: bool,
    metadata: dict[str, Any] | None,
) -> tuple[dict[str, Any], Case]:
    """The new case's JSONL record, checked as the cases file's next ``line`` would be,
    and the case it reads as."""
    taken = {c.case_id for c in suite.cases}
    new_id = case_id or _next_id(taken)
    if new_id in taken:
        raise InputError(f"the suite already has a case '{new_id}'", field="--id")
    record: dict[str, Any] = {"id": new_id, "input": input}
    if expected is not None:
        record["expected"] = expected
    if tags:
        record["tags"] = list(tags)
    if must_pass:
        record["must_pass"] = True
    if metadata:
        record["metadata"] = metadata
    case = parse_case(Fields(Document(record, cases_source, {(): line}, line), SuiteError), new_id)
    return record, case


def case_from_run(store: Store, run_ref: str) -> tuple[Any, dict[str, Any]]:
    """A production run's input (parsed back to JSON when it was structured) and the
    provenance a case keeps: run id, version, environment, time and what it answered."""
    with store.read() as conn:
        run = find_run(conn, run_ref, field="--from-run")
    if run["input"] is None:
        raise InputError(
            f"run {run['run_id']} was recorded without its input",
            field="--from-run",
            hint="give the input with --input instead",
        )
    value = case_input_value(run["input"])
    provenance = {
        "from_run": run["run_id"],
        "version_id": run["version_id"],
        "env": run["env"],
        "started_at": run["started_at"],
        "output": run["output"],
        "status": run["status"],
    }
    return value, {k: v for k, v in provenance.items() if v is not None}


def case_input_value(text: str) -> Any:
    """A run's stored text as a case value: parsed back to JSON when it was structured."""
    value: Any = text
    if text[:1] in ("{", "["):
        with suppress(ValueError):
            value = json.loads(text)
    return value


def _next_id(taken: set[str]) -> str:
    n = len(taken) + 1
    while f"case-{n}" in taken:
        n += 1
    return f"case-{n}"


class _Grown:
    """The cases file with one more line, written atomically; restorable until committed."""

    def __init__(self, path: Path, original: str) -> None:
        self.path = path
        self.original = original

    def restore(self) -> None:
        _atomic_write(self.path, self.original)

    def commit(self) -> None:
        self.original = ""


def _with_case(path: Path, record: dict[str, Any]) -> _Grown:
    original = path.read_text(encoding="utf-8")
    text = original if not original or original.endswith("\n") else original + "\n"
    _atomic_write(path, text + json.dumps(record, ensure_ascii=False) + "\n")
    return _Grown(path, original)


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        with suppress(FileNotFoundError):  # keep the file's mode (mkstemp makes it 0600)
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
