"""Limits that keep one client from taking the service from the others.

- `ReadTimeout`, a pure ASGI middleware: while a request body is still arriving, every read of it
  must come within `TRUCE_READ_TIMEOUT_S` (as nginx's `client_body_timeout`: the time between two
  reads, so a big body on a slow but working link still gets through). A client that stops
  sending gets a 408 problem and the connection is closed. (The request head has its own timeout
  in `app.api.protocol`.)
- `HeavyLimiter`: at most `TRUCE_HEAVY_REQUESTS` heavy requests (the map, incursions, checks and
  report batches with bodies over `TRUCE_HEAVY_BODY_BYTES`) run at once in a process; the next
  waits up to `TRUCE_HEAVY_WAIT_S` for a turn and is then answered 503 with `Retry-After`. Single
  checks never wait for a turn, so their latency stays their own. A turn is taken after the key
  is checked and the body read, so neither anonymous nor slow clients can hold one.
- `AuthThrottle`: after `TRUCE_AUTH_FAILURES` wrong keys from one client address within
  `TRUCE_AUTH_WINDOW_S`, that address's keyed requests get 429 with `Retry-After` until the window
  has moved past its failures (a right key too: checking it would be one more guess). Crossing
  the limit is written to the audit log (`auth.throttle`), once per window. Addresses are the
  peer's as the server sees them: behind a proxy, run uvicorn with its `--forwarded-allow-ips`.

Everything here is per process: with `--workers N` each worker keeps its own counts and turns.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.body import run_sized
from app.api.errors import problem
from app.errors import TruceError
from app.settings import Settings
from app.store import Store

__all__ = [
    "AuthThrottle",
    "HeavyLimiter",
    "Overloaded",
    "ReadTimeout",
    "RequestTimeout",
    "TooManyFailures",
    "heavy_turn",
    "register_limit_handlers",
    "run_limited",
]

log = logging.getLogger("truce.api")

T = TypeVar("T")


class RequestTimeout(TruceError):
    """The client stopped sending its request body for longer than the read timeout."""

    title = "Request timeout"


class Overloaded(TruceError):
    """Too many heavy requests are running; the client should retry after `retry_after` s."""

    title = "Service overloaded"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManyFailures(TruceError):
    """Too many wrong API keys from this client address; retry after `retry_after` s."""

    title = "Too many failed authentications"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, field="X-API-Key")
        self.retry_after = retry_after


# -- the body's read timeout ------------------------------------------------------------------


class ReadTimeout:
    """Refuse with 408 a request whose body stops arriving for `timeout_s` seconds."""

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        """Wrap `app`."""
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time each read of the body until its last part has come."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = False
        timeout_s = self.timeout_s

        async def timed() -> Message:
            nonlocal body_done
            if body_done:
                # After the body, a read waits for the client to go away (streamed answers):
                # that may take as long as it likes.
                return await receive()
            try:
                async with asyncio.timeout(timeout_s):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    f"the request body stopped arriving for {timeout_s:g} s", field="body"
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        await self.app(scope, timed, send)


# -- heavy requests ---------------------------------------------------------------------------


class HeavyLimiter:
    """Turns for heavy requests: `turns` at once, a wait of at most `wait_s` for one."""

    def __init__(self, turns: int, wait_s: float) -> None:
        """The semaphore is made on first use, in the event loop that serves the app."""
        self.turns = turns
        self.wait_s = wait_s
        self._semaphore: asyncio.Semaphore | None = None

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold a turn for the `with` block; `Overloaded` (503) when none comes in time."""
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.turns)
        semaphore = self._semaphore
        try:
            async with asyncio.timeout(self.wait_s):
                await semaphore.acquire()
        except TimeoutError:
            raise Overloaded(
                f"{self.turns} heavy requests (map, incursions, big checks or batches) are "
                "already running; try again shortly",
                retry_after=max(1, math.ceil(self.wait_s)),
            ) from None
        try:
            yield
        finally:
            semaphore.release()


def _limiter(request: Request) -> HeavyLimiter:
    limiter: HeavyLimiter | None = getattr(request.app.state, "heavy", None)
    if limiter is None:
        settings: Settings = request.app.state.settings
        limiter = HeavyLimiter(settings.heavy_requests, settings.heavy_wait_s)
        request.app.state.heavy = limiter
    return limiter


async def heavy_turn(request: Request) -> AsyncIterator[None]:
    """A dependency for heavy routes: the handler runs while it holds a turn."""
    async with _limiter(request).turn():
        yield


async def run_limited(
    request: Request, size: int, work: Callable[[], T], *, inline: bool = False
) -> T:
    """`run_sized` for a body of `size` bytes, holding a heavy turn when the body is big."""
    settings: Settings = request.app.state.settings
    if size <= settings.heavy_body_bytes:
        return await run_sized(size, work, inline=inline)
    async with _limiter(request).turn():
        return await run_sized(size, work, inline=inline)


# -- failed authentication --------------------------------------------------------------------


class AuthThrottle:
    """Wrong keys per client address in a sliding window; over the limit, 429."""

    #: Addresses tracked at most; past that, those with no failure in the window are dropped.
    MAX_ADDRESSES = 10_000

    def __init__(
        self,
        failures: int,
        window_s: float,
        audit: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`audit(address, detail)` is called once when an address crosses the limit."""
        self.failures = failures
        self.window_s = window_s
        self._audit = audit
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._audited: dict[str, float] = {}

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._seen.get(address)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._seen[address]
        return times

    def check(self, address: str) -> None:
        """Raise `TooManyFailures` while `address` is over the limit."""
        now = self._clock()
        times = self._recent(address, now)
        if len(times) >= self.failures:
            wait = times[len(times) - self.failures] + self.window_s - now
            raise TooManyFailures(
                f"too many wrong API keys from this address ({len(times)} in "
                f"{self.window_s:g} s); try again in {math.ceil(wait)} s",
                retry_after=max(1, math.ceil(wait)),
            )

    def failed(self, address: str) -> None:
        """Count a wrong key from `address`; audit the moment it reaches the limit."""
        now = self._clock()
        if address not in self._seen and len(self._seen) >= self.MAX_ADDRESSES:
            self._forget_idle(now)
        times = self._recent(address, now)
        times.append(now)
        self._seen[address] = times
        if len(times) >= self.failures:
            last = self._audited.get(address)
            if last is None or last <= now - self.window_s:
                self._audited[address] = now
                if self._audit is not None:
                    self._audit(
                        address,
                        f"{len(times)} wrong API keys in {self.window_s:g} s; "
                        f"refused for up to {self.window_s:g} s",
                    )

    def _forget_idle(self, now: float) -> None:
        for address in list(self._seen):
            self._recent(address, now)
        for address, at in list(self._audited.items()):
            if at <= now - self.window_s:
                del self._audited[address]
        if len(self._seen) >= self.MAX_ADDRESSES:
            # Still full of active addresses: forget the oldest half rather than grow.
            for address in list(self._seen)[: self.MAX_ADDRESSES // 2]:
                del self._seen[address]


def store_auditor(store: Store) -> Callable[[str, str], None]:
    """An `AuthThrottle` audit callback that writes to `store` off the event loop."""
    pending: set[asyncio.Future[None]] = set()

    def write(address: str, detail: str) -> None:
        log.warning("throttling failed authentication from %s: %s", address, detail)

        def record() -> None:
            store.add_audit_entry("throttle", "auth.throttle", address, detail)

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            record()
            return
        future = loop.run_in_executor(None, record)
        pending.add(future)

        def done(f: asyncio.Future[None]) -> None:
            pending.discard(f)
            if not f.cancelled() and f.exception() is not None:
                log.error("could not audit the throttling of %s: %s", address, f.exception())

        future.add_done_callback(done)

    return write


# -- answers ----------------------------------------------------------------------------------


def _answer(
    request: Request, status: int, exc: TruceError, slug: str, headers: dict[str, str]
) -> Response:
    return problem(
        status,
        headers=headers,
        type_=f"urn:truce:problem:{slug}",
        title=exc.title,
        detail=exc.detail,
        instance=request.url.path,
        field=exc.field,
    )


async def _on_timeout(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestTimeout)
    # The rest of the body will not be read: the connection cannot carry another request.
    return _answer(request, 408, exc, "request-timeout", {"Connection": "close"})


async def _on_overloaded(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Overloaded)
    return _answer(request, 503, exc, "overloaded", {"Retry-After": str(exc.retry_after)})


async def _on_throttled(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TooManyFailures)
    return _answer(request, 429, exc, "too-many-failures", {"Retry-After": str(exc.retry_after)})


def register_limit_handlers(app: FastAPI) -> None:
    """Answer the errors of this module with their problems (408, 503, 429)."""
    handlers: dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
        RequestTimeout: _on_timeout,
        Overloaded: _on_overloaded,
        TooManyFailures: _on_throttled,
    }
    for cls, handler in handlers.items():
        app.add_exception_handler(cls, handler)
