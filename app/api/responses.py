"""Response classes that write JSON with orjson: plain JSON, GeoJSON and RFC 9457 problems.

Each takes either a JSON-able value or bytes already rendered (big answers are rendered in a worker
thread, off the event loop, and handed over as bytes).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse

__all__ = [
    "GEOJSON",
    "PROBLEM_JSON",
    "GeoJSONResponse",
    "ORJSONResponse",
    "ProblemResponse",
    "dumps",
]

GEOJSON = "application/geo+json"
PROBLEM_JSON = "application/problem+json"


def dumps(content: Any) -> bytes:
    """JSON bytes; numpy scalars and arrays are written as numbers and lists."""
    return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


class ORJSONResponse(JSONResponse):
    """`application/json`, written by orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Bytes pass as they are; anything else is serialised."""
        if isinstance(content, bytes):
            return content
        return dumps(content)


class GeoJSONResponse(ORJSONResponse):
    """`application/geo+json` (RFC 7946)."""

    media_type = GEOJSON


class ProblemResponse(ORJSONResponse):
    """`application/problem+json` (RFC 9457)."""

    media_type = PROBLEM_JSON
