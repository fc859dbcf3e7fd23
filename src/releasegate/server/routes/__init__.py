"""The server's routes, one module per concern: ``read`` (GET views), ``runs`` (ingestion)
and ``actions`` (state changes). Each answers with the service's JSON through ``Json``."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class Json(Response):
    """A JSON body rendered by orjson (dataclasses, datetimes and numpy values included)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=str, option=orjson.OPT_SERIALIZE_NUMPY)
