"""Request bodies: the size limit, JSON decoding, and running big bodies off the event loop.

- `BodyLimit` is a pure ASGI middleware: a declared `Content-Length` over the limit is refused
  before a byte of the body is read, and a body without one (chunked) is counted as it streams
  and refused as soon as it passes the limit. Either way the answer is a 413 problem.
- `load_json` decodes with orjson straight from the bytes. JSON has no NaN or Infinity, so a body
  carrying them is not JSON and gets a 400 that says where.
- Decoding 1e5 features makes about a million small objects; the cyclic garbage collector would
  run over them many times while they are made, which triples the time. `gc_paused` holds it off
  for the duration of one big body (none of those objects form cycles; they are freed by
  reference counting as soon as the request is done).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import problem
from app.errors import InvalidJSON, PayloadTooLarge

__all__ = [
    "GC_PAUSE_BYTES",
    "INLINE_BYTES",
    "BodyLimit",
    "check_feature_count",
    "gc_paused",
    "load_json",
    "run_sized",
]

T = TypeVar("T")

#: Bodies up to this size are handled on the event loop (a thread hop costs more than the work).
INLINE_BYTES = 16 * 1024
#: Bodies from this size are decoded with the cyclic garbage collector held off.
GC_PAUSE_BYTES = 1024 * 1024

_gc_lock = threading.Lock()
_gc_holders = 0
_gc_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector; nested and concurrent uses are counted."""
    global _gc_holders, _gc_was_enabled
    with _gc_lock:
        if _gc_holders == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_holders += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0 and _gc_was_enabled:
                gc.enable()


def _too_large(size: str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is {size}; at most {limit:,} bytes are accepted", field="body"
    )


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413, by Content-Length and by counting."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        """Wrap `app`."""
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length, then count what actually arrives."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0  # the server refuses a malformed length itself
                if declared > self.max_bytes:
                    exc = _too_large(f"{declared:,} bytes", self.max_bytes)
                    response = problem(
                        413,
                        type_="urn:truce:problem:payload-too-large",
                        title=exc.title,
                        detail=exc.detail,
                        instance=scope.get("path"),
                        field=exc.field,
                        # The unread body makes the connection unusable: say so.
                        headers={"Connection": "close"},
                    )
                    await response(scope, receive, send)
                    return
                break

        received = 0
        limit = self.max_bytes

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised into the handler that reads the body; the error handlers answer.
                    raise _too_large(f"over {limit:,} bytes", limit)
            return message

        await self.app(scope, counted, send)


def load_json(body: bytes) -> Any:
    """Decode a JSON body with orjson, or refuse it with a 400 that says where it breaks."""
    if not body.strip():
        raise InvalidJSON("the request body is empty; expected JSON", field="body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson says where ("unexpected character: line 1 column 42 (char 41)"); NaN and
        # Infinity end up here as well, as JSON has no such numbers.
        raise InvalidJSON(
            f"the request body is not valid JSON (NaN and Infinity are not JSON numbers): {exc}",
            field="body",
        ) from None


def check_feature_count(obj: Any, max_features: int) -> None:
    """Refuse a FeatureCollection with more than `max_features` features (413)."""
    if isinstance(obj, dict) and obj.get("type") == "FeatureCollection":
        features = obj.get("features")
        if isinstance(features, list) and len(features) > max_features:
            raise PayloadTooLarge(
                f"{len(features):,} features; at most {max_features:,} are accepted per request",
                field="features",
            )


async def run_sized(size: int, work: Callable[[], T], *, inline: bool = False) -> T:
    """Run `work` for a body of `size` bytes: on the event loop when allowed and small, else in a
    worker thread; with the garbage collector held off for big bodies."""

    def paused() -> T:
        with gc_paused():
            return work()

    if inline and size <= INLINE_BYTES:
        return work()
    return await run_in_threadpool(paused if size >= GC_PAUSE_BYTES else work)
