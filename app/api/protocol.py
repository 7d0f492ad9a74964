"""uvicorn's HTTP protocol with limits on request heads: their size and how long they take.

uvicorn's httptools protocol reads a request head of any size (a 32 MB header is buffered before
the app, and so authentication, ever sees it) and waits for it forever (a client that opens a
connection and sends one byte a minute holds it open for good). `GuardedHttpToolsProtocol` adds:

- **a size limit**: a request line and headers over `TRUCE_MAX_HEADER_BYTES` get a 431 problem
  and the connection is closed; at most one read (256 KiB) more than the limit is ever buffered;
- **a head timeout**: a request head must arrive whole within `TRUCE_READ_TIMEOUT_S` of its
  first byte, else the client gets 408 and the connection is closed;
- **an idle timeout from the start**: a connection that sends nothing is closed after the
  keep-alive timeout (`TRUCE_KEEP_ALIVE_S`), as uvicorn closes one idle after a response (it
  sets no timer before the first request). The body's timeout is in `app.api.limits`.

Every connection is its own asyncio protocol, so slow clients cost a socket and a timer each and
never hold up the others. The limits are read from the `TRUCE_*` settings once per process, as
the app's are, so that `truce serve --workers N` gives every worker the same ones (uvicorn names
this class by its import path in each worker).
"""

from __future__ import annotations

import asyncio
from functools import cache
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.api.errors import problem_body
from app.api.responses import dumps
from app.settings import Settings

__all__ = ["PROTOCOL", "GuardedHttpToolsProtocol", "head_limits", "refusal"]

#: The import path that uvicorn's `http` option takes.
PROTOCOL = "app.api.protocol:GuardedHttpToolsProtocol"

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


@cache
def head_limits() -> tuple[int, float]:
    """(largest head in bytes, seconds a head may take), from the settings, read once."""
    settings = Settings()
    return settings.max_header_bytes, settings.read_timeout_s


def refusal(status: int, detail: str, field: str | None = None) -> bytes:
    """A whole HTTP/1.1 problem+json answer that closes the connection, as raw bytes."""
    body = dumps(
        problem_body(
            status,
            type_=f"urn:truce:problem:{'request-timeout' if status == 408 else 'head-too-large'}",
            detail=detail,
            field=field,
        )
    )
    head = (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/problem+json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n" % (status, _REASONS[status], len(body))
    )
    return head + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a size limit and a timeout on request heads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """As uvicorn's, plus the limits and the per-connection head state."""
        super().__init__(*args, **kwargs)
        self._max_head, self._head_timeout = head_limits()
        # Bytes of the current head read so far; None between heads (in a body, or idle).
        self._head_bytes: int | None = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    # -- the head timer ---------------------------------------------------------------------

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self._head_timeout, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._head_bytes is not None and not self.transport.is_closing():
            self._refuse(
                408, f"the request head did not arrive within {self._head_timeout:g} s", None
            )

    def _refuse(self, status: int, detail: str, field: str | None) -> None:
        self._refused = True
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(refusal(status, detail, field))
            self.transport.close()

    # -- protocol events --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """A new connection that sends nothing is closed after the keep-alive timeout, as an
        idle kept-alive one is (uvicorn arms that timer only after a first response)."""
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the timer with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Count the bytes of a head before the parser buffers them, and refuse a big one."""
        if self._refused:
            return
        if self._head_bytes is not None:
            self._head_bytes += len(data)
        super().data_received(data)
        # Still in a head after this read, and over the limit: the parser would keep buffering.
        if self._head_bytes is not None and self._head_bytes > self._max_head:
            self._too_large()

    def _too_large(self) -> None:
        self._refuse(
            431,
            f"the request line and headers are over {self._max_head:,} bytes",
            "headers",
        )

    def on_message_begin(self) -> None:
        """A new request: its head is counted and timed from its first byte."""
        super().on_message_begin()
        if self._head_bytes is None:
            self._head_bytes = 0
        self._arm()

    def on_headers_complete(self) -> None:
        """The head is whole: measure it exactly, then hand the request to the app."""
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        self._head_bytes = None
        self._disarm()
        if size > self._max_head:
            self._too_large()
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        """Nothing after a refusal."""
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        """Nothing after a refusal; the next head is counted from zero."""
        if self._refused:
            return
        super().on_message_complete()
        self._head_bytes = 0

    def on_response_complete(self) -> None:
        """Idle until the next request: the keep-alive timeout applies, not the head's."""
        super().on_response_complete()
        self._disarm()
