"""Request bodies: the size limit, JSON decoding, and running big bodies off the event loop.

- `BodyLimit` is a pure ASGI middleware: a declared `Content-Length` over the limit is refused
  before a byte of the body is read, and a body without one (chunked) is counted as it streams
  and refused as soon as it passes the limit. Either way the answer is a 413 problem. A body sent
  with `Content-Encoding: gzip` is inflated as it streams, never more than the limit plus one
  chunk at a time, and the limit applies to what it inflates to: a gzip bomb is refused (413)
  after the limit, not after memory runs out. Any other content coding is a 415.
- `read_json_body` takes a body only in a JSON media type (`application/json`,
  `application/geo+json`, any `application/...+json`; a body with no Content-Type at all is read
  as JSON, as command-line clients often send none); anything else is a 415.
- `load_json` decodes with orjson straight from the bytes. JSON has no NaN or Infinity, so a body
  carrying them is not JSON and gets a 400 that says where.
- `load_document` (zone and report bodies) also refuses what orjson lets pass silently: the same
  key twice in one object (orjson keeps the last; 422 naming the key's path), nesting deeper than
  `MAX_DEPTH` (400), and it keeps whole-number ids exact (orjson reads integers beyond 64 bits
  as floats, which would store "1.18e+21" for 1180591620717411303424). The checks cost one
  orjson write of the document and two byte counts: the body's colons outside strings are the
  keys it has, and the document written back has as many unless a key was repeated. Only when the
  counts differ, or a colon may hide in a `\\u003a` escape, is the body read again with the
  standard library, which sees every key and reads integers exactly; `with_exact_ids` does the
  same when an id is refused (a float id may be a big integer that orjson could not hold).
- Decoding 1e5 features makes about a million small objects; the cyclic garbage collector would
  run over them many times while they are made, which triples the time. `gc_paused` holds it off
  for the duration of one big body (none of those objects form cycles; they are freed by
  reference counting as soon as the request is done).
"""

from __future__ import annotations

import gc
import json
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import problem
from app.errors import InvalidInput, InvalidJSON, PayloadTooLarge, UnsupportedMediaType
from app.validate import MAX_DEPTH

__all__ = [
    "GC_PAUSE_BYTES",
    "INLINE_BYTES",
    "BodyLimit",
    "check_feature_count",
    "gc_paused",
    "load_document",
    "load_json",
    "read_json_body",
    "run_sized",
    "with_exact_ids",
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


def _refuse(status: int, exc: PayloadTooLarge | UnsupportedMediaType, scope: Scope) -> ASGIApp:
    slug = "payload-too-large" if status == 413 else "unsupported-media-type"
    return problem(
        status,
        type_="urn:truce:problem:" + slug,
        title=exc.title,
        detail=exc.detail,
        instance=scope.get("path"),
        field=exc.field,
        # The unread body makes the connection unusable: say so.
        headers={"Connection": "close"},
    )


class _Inflate:
    """Inflates a gzip body chunk by chunk, refusing it once it passes `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.produced = 0
        self.inflater = zlib.decompressobj(wbits=31)  # gzip framing only

    def __call__(self, chunk: bytes, last: bool) -> bytes:
        try:
            # At most one byte past the limit is made: enough to know the body is too large.
            out = self.inflater.decompress(chunk, self.limit - self.produced + 1)
            if last and not self.inflater.unconsumed_tail:
                out += self.inflater.flush()
        except zlib.error as exc:
            raise InvalidJSON(
                f"the body is not valid gzip (Content-Encoding: gzip): {exc}", field="body"
            ) from None
        self.produced += len(out)
        if self.produced > self.limit or self.inflater.unconsumed_tail:
            raise _too_large(f"over {self.limit:,} bytes once inflated", self.limit)
        if self.inflater.unused_data:
            raise InvalidJSON("the body has data after the end of its gzip stream", field="body")
        if last and not self.inflater.eof:
            raise InvalidJSON("the gzip body ends before its gzip stream does", field="body")
        return out


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413, by Content-Length and by counting; inflate
    gzip bodies, holding what they inflate to to the same limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        """Wrap `app`."""
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length and the coding, then count what actually arrives."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = 0
        coding = ""
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0  # the server refuses a malformed length itself
            elif name == b"content-encoding":
                coding = value.decode("latin-1").strip().lower()
        if declared > self.max_bytes:
            exc = _too_large(f"{declared:,} bytes", self.max_bytes)
            await _refuse(413, exc, scope)(scope, receive, send)
            return
        inflate: _Inflate | None = None
        if coding in ("gzip", "x-gzip"):
            inflate = _Inflate(self.max_bytes)
            # What the app reads is the inflated body: its length and coding are no longer known.
            scope = {
                **scope,
                "headers": [
                    (name, value)
                    for name, value in scope["headers"]
                    if name not in (b"content-encoding", b"content-length")
                ],
            }
        elif coding not in ("", "identity"):
            refused = UnsupportedMediaType(
                f"the body's Content-Encoding is {coding!r}; only gzip (or none) is read",
                field="Content-Encoding",
            )
            await _refuse(415, refused, scope)(scope, receive, send)
            return

        received = 0
        limit = self.max_bytes

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                received += len(body)
                if received > limit:
                    # Raised into the handler that reads the body; the error handlers answer.
                    raise _too_large(f"over {limit:,} bytes", limit)
                if inflate is not None:
                    message = {**message, "body": inflate(body, not message.get("more_body"))}
            return message

        await self.app(scope, counted, send)


#: Media types read as JSON, beside any application/...+json.
JSON_MEDIA_TYPES = frozenset({"application/json", "application/geo+json"})


def check_content_type(value: str | None) -> None:
    """Refuse (415) a Content-Type that is not JSON, or JSON in a charset other than UTF-8.

    No Content-Type at all is read as JSON (a documented choice: command-line clients often
    send none).
    """
    if value is None or not value.strip():
        return
    media, _, parameters = value.partition(";")
    media = media.strip().lower()
    if not (
        media in JSON_MEDIA_TYPES or (media.startswith("application/") and media.endswith("+json"))
    ):
        raise UnsupportedMediaType(
            f"the body is declared as {media!r}; send JSON as application/json "
            "(or application/geo+json)",
            field="Content-Type",
        )
    for parameter in parameters.split(";"):
        name, _, charset = parameter.partition("=")
        charset = charset.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            raise UnsupportedMediaType(
                f"JSON is read as UTF-8 only, not {charset!r}", field="Content-Type"
            )


async def read_json_body(request: Request) -> bytes:
    """The request's body, if its Content-Type says JSON (else 415)."""
    check_content_type(request.headers.get("content-type"))
    return await request.body()


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


class _Keys(dict[str, Any]):
    """An object in which a key was repeated (`repeated` names it)."""

    repeated: str = ""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    marked = _Keys(obj)
    for key, _ in pairs:
        if key in seen:
            marked.repeated = key
            break
        seen.add(key)
    return marked


def _constant(name: str) -> Any:
    raise InvalidJSON(f"{name} is not a JSON number", field="body")


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")  # as in a JSON Pointer (RFC 6901)


def _repeated_key(obj: Any) -> str | None:
    """The path of the first repeated key in a document read with `_pairs`, or None."""
    stack: list[tuple[Any, str]] = [(obj, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, _Keys):
            return f"{path}/{_escape(value.repeated)}".lstrip("/")
        if isinstance(value, dict):
            items = list(value.items())
            stack += [(v, f"{path}/{_escape(k)}") for k, v in reversed(items)]
        elif isinstance(value, list):
            stack += [(v, f"{path}/{i}") for i, v in reversed(list(enumerate(value)))]
    return None


def _too_deep(obj: Any) -> str:
    """The path of the first value nested deeper than `MAX_DEPTH`."""
    stack: list[tuple[Any, str, int]] = [(obj, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            return path.lstrip("/") or "body"
        if isinstance(value, dict):
            stack += [(v, f"{path}/{_escape(k)}", depth + 1) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(v, f"{path}/{i}", depth + 1) for i, v in enumerate(value)]
    return "body"


# orjson writes at most 254 levels: a document wrapped in this many arrays writes iff it is no
# deeper than MAX_DEPTH.
_WRAPS = 254 - MAX_DEPTH


def load_document(body: bytes) -> Any:
    """A zone or report body: `load_json`, with repeated keys refused (422), nesting deeper than
    `MAX_DEPTH` refused (400), and whole-number ids read exactly (see the module docstring)."""
    obj = load_json(body)
    wrapped = obj
    for _ in range(_WRAPS):
        wrapped = [wrapped]
    try:
        written = orjson.dumps(wrapped)
    except TypeError:  # orjson's recursion limit: the document is nested too deep
        raise InvalidJSON(
            f"nested deeper than {MAX_DEPTH} levels of arrays and objects", field=_too_deep(obj)
        ) from None
    if body.count(b":") == written.count(b":") and b"\\u003" not in body:
        return obj
    return _load_exact(body)


def _load_exact(body: bytes) -> Any:
    """The body read by the standard library: every key seen, integers exact (see
    `load_document`)."""
    try:
        exact = json.loads(body, object_pairs_hook=_pairs, parse_constant=_constant)
    except ValueError as exc:  # orjson read it, so only a number too long for Python's int
        raise InvalidJSON(
            f"the request body has a number too long to read: {exc}", field="body"
        ) from None
    path = _repeated_key(exact)
    if path is not None:
        raise InvalidInput(
            "this key is repeated in its object; JSON leaves the meaning of a repeated key open, "
            "so send it once",
            field=path,
        )
    return exact


def with_exact_ids(body: bytes, obj: Any, parse: Callable[[Any], T]) -> T:
    """`parse(obj)`; if it refuses an id, parse the body again as read exactly and answer that.

    orjson reads an integer beyond 64 bits as a float, which an id may not be; read exactly, it
    is the whole number it was sent as. Other refusals come out the same either way. This costs
    nothing on the way in (no search for numeric ids) and a second reading only for a body that
    is refused anyway or has such an id.
    """
    try:
        return parse(obj)
    except InvalidInput as exc:
        if exc.field is None or not (exc.field == "id" or exc.field.endswith("/id")):
            raise
    return parse(_load_exact(body))


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
