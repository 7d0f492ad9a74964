"""Response classes that write JSON with orjson: plain JSON, GeoJSON and RFC 9457 problems.

Each takes either a JSON-able value or bytes already rendered (big answers are rendered in a worker
thread, off the event loop, and handed over as bytes).

`CacheHeaders` marks what caches may keep: every GET answer varies with `X-API-Key` (a public
read and a keyed one differ), and an answer to a request that carried a key is `private`, for
that client alone, never for a shared cache.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "GEOJSON",
    "PROBLEM_JSON",
    "CacheHeaders",
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


class CacheHeaders:
    """Add `Vary: X-API-Key` to GET and HEAD answers, and `Cache-Control: private` to those of
    requests that carried a key (pure ASGI: streaming answers pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap `app`."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Mark the answer's headers as it starts."""
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        keyed = any(name == b"x-api-key" for name, _ in scope["headers"])

        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.add_vary_header("X-API-Key")
                control = headers.get("cache-control")
                if keyed and control is None:
                    headers["Cache-Control"] = "private"
                elif keyed and not {"private", "no-store"} & _directives(control):
                    headers["Cache-Control"] = f"private, {control}"
            await send(message)

        await self.app(scope, receive, marked)


def _directives(value: str | None) -> set[str]:
    return {part.strip().split("=")[0].lower() for part in (value or "").split(",")}
