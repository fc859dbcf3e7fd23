"""Reading input files into Documents: YAML with a line for every value, JSONL by line.

This is the only place that reads user files, so every parse error, in any file
kind, comes out as an InputError with the file and line. The parsing itself, and
its limits on untrusted text, live in ``domain/untrusted.py``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from releasegate.domain import untrusted
from releasegate.domain.document import Document
from releasegate.domain.sent_code import SentCodePolicy, refusals
from releasegate.errors import InputError, SentCodeRefusedError, SuiteError


def parse_yaml(text: str, source: str, error: type[InputError] = InputError) -> Document:
    """A YAML text as a Document, under ``domain/untrusted``'s limits."""
    return untrusted.parse_yaml(text, source, error)


def check_sent(doc: Document, policy: SentCodePolicy) -> None:
    """Refuse a document sent to the server that names code, a model host or a key
    variable the server's operator does not allow (``domain/sent_code``), before anything
    in it is imported, pinned or called: SentCodeRefusedError (403), naming each place."""
    found = refusals(doc.data, policy)
    if found:
        first = found[0]
        where = "; ".join(
            f"{doc.source}:{doc.line_of(r.path)}: {r.field}: {r.message}" for r in found
        )
        raise SentCodeRefusedError(where, hint=first.hint)


def max_input_bytes() -> int:
    """The size cap of a YAML or JSON input file: ``RELEASEGATE_MAX_INPUT_BYTES`` or 10 MB."""
    raw = os.environ.get("RELEASEGATE_MAX_INPUT_BYTES", "").strip()
    if not raw:
        return untrusted.MAX_INPUT_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise InputError(
            f"RELEASEGATE_MAX_INPUT_BYTES must be a whole number of bytes above 0, got {raw!r}",
            field="RELEASEGATE_MAX_INPUT_BYTES",
        )
    return value


def read_text(path: Path, error: type[InputError] = InputError, *, what: str = "file") -> str:
    """A YAML or JSON input file's text: refused when missing, over the size cap or not UTF-8."""
    try:
        untrusted.check_size(path.stat().st_size, max_input_bytes(), str(path), error)
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{what} not found", source=str(path)) from None
    except IsADirectoryError:
        raise error(f"expected a {what}, found a directory", source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise error(f"not UTF-8 text ({exc.reason})", source=str(path)) from None


def load_yaml(path: Path, error: type[InputError] = InputError) -> Document:
    return parse_yaml(read_text(path, error), str(path), error)


def parse_jsonl(text: str, source: str, error: type[InputError] = InputError) -> list[Document]:
    records: list[Document] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        data = untrusted.parse_json(raw, source, error, line=number)
        records.append(Document(data=data, source=source, lines={(): number}, base_line=number))
    return records


def load_jsonl(path: Path, error: type[InputError] = InputError) -> list[Document]:
    return parse_jsonl(read_text(path, error), str(path), error)


def suite_files(path: Path) -> dict[str, str]:
    """The cases file a suite file names, by the relative path it names it with -> its
    text, read from beside it as ``read_suite`` reads it: what ``read_suite_text`` takes as
    ``files`` (the CLI sends them to a server). A cases file not there is left out: the
    server it is sent to says so, as a local run would."""
    doc = load_yaml(path, SuiteError)
    rel = doc.data.get("cases") if isinstance(doc.data, dict) else None
    if not isinstance(rel, str) or not (path.parent / rel).is_file():
        return {}
    return {rel: (path.parent / rel).read_text(encoding="utf-8")}


def sent_suite(path: Path) -> dict[str, Any]:
    """A suite file as a server takes it (``eval``, ``suite add-case``, ``suite plan``,
    ``queue case``): its text as ``suite``, its name as typed as ``source``, and its cases
    file in ``files`` (``suite_files``); a missing or bad suite file is the local message."""
    files = suite_files(path)
    return {"suite": path.read_text(encoding="utf-8"), "source": str(path), "files": files}
