"""The server's routes, one module per concern: ``read`` (GET views), ``runs`` (ingestion)
and ``actions`` (state changes). Each answers with the service's JSON through ``Json``;
the builder's verbs (``loop``) and the documents (``documents``) answer through
``CliDocument``, whose body is byte for byte what the CLI verb prints with ``--json``."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import orjson
from starlette.responses import Response


class Json(Response):
    """A JSON body rendered by orjson (dataclasses, datetimes and numpy values included)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=str, option=orjson.OPT_SERIALIZE_NUMPY)


class CliDocument(Response):
    """A JSON body written exactly as the CLI's ``--json`` writes it (``cli._common.emit``:
    sorted keys, two-space indent, ``str`` of what JSON lacks, a final newline), so a client
    prints the body and a script cannot tell the server's answer from a local run."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return cli_text(content).encode("utf-8")


def cli_text(content: Any) -> str:
    """``content`` as the CLI's ``--json`` writes it (``CliDocument``'s body, as text)."""
    if dataclasses.is_dataclass(content) and not isinstance(content, type):
        content = dataclasses.asdict(content)
    return json.dumps(content, indent=2, sort_keys=True, default=str) + "\n"


class Text(Response):
    """A document the CLI prints as text (Markdown, HTML, JUnit XML), byte for byte."""

    def __init__(self, content: str, media_type: str, status_code: int = 200) -> None:
        super().__init__(content, status_code=status_code, media_type=media_type)
