"""Delivery: events from the log to every subscription, signed, in order, at least once.

How it keeps its promises:

- **At least once, in order.** A subscription's `cursor` is the last event it has had (or that
  its filters passed over); it moves only when the receiver answered 2xx, in the same
  transaction as the attempt is recorded. A process killed between the commit of an event and
  its delivery, or during it, leaves the cursor before the event: the next holder delivers it
  (again, with the same `webhook-id`, so receivers can drop the repeat).
- **One deliverer per subscription.** A lease on the subscription's row (`Store.
  lease_subscription`) with an expiry; it is renewed before every attempt and while idle, and a
  process that lost it writes nothing more (`record_delivery` checks the holder).
- **Retries.** A failed attempt (not 2xx, a timeout, a refused connection) is retried after
  `backoff(n)` (exponential, capped, jittered); the attempt number, the first failure and the
  next attempt's time are stored, so a restart goes on with the same schedule. Once an event
  has failed for the retry window (72 h) the subscription is held as ``failed`` until replayed.
- **Isolation.** One asyncio task per subscription; sends share one bounded semaphore and an
  httpx client with timeouts, and the store is called in worker threads. A slow or dead
  receiver holds its own task only, never checks or other subscriptions.

Standard Webhooks 1.0: headers `webhook-id` (``evt_<event id>``, the same on every retry and
replay), `webhook-timestamp` (the attempt's Unix time) and `webhook-signature` (``v1,`` base64
HMAC-SHA256 of ``id.timestamp.body``, made by the `standardwebhooks` package); body
``{"type", "id", "timestamp", "data"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

import httpx
import orjson
from standardwebhooks.webhooks import Webhook

from app import __version__
from app.alerts.events import Event
from app.alerts.subscriptions import (
    DEFAULT_RETRY_WINDOW,
    DeliveryAttempt,
    Subscription,
    backoff,
    blocked_address,
    matches,
)
from app.store.base import Store, UnknownSubscription

__all__ = [
    "DeliveryOptions",
    "Deliverer",
    "EventLog",
    "Outcome",
    "event_body",
    "signed_headers",
    "webhook_id",
]

log = logging.getLogger("truce.delivery")

#: Deliveries written at once at most (and at most this long after the first of them).
FLUSH_EVENTS = 100
FLUSH_S = 0.1


class EventLog(Protocol):
    """What delivery reads of the event log (the store's `events_after`, `last_event_id`)."""

    def events_after(
        self, after_id: int, limit: int = 1000, types: Sequence[str] | None = None
    ) -> list[Event]:
        """Events with id > `after_id`, ascending, of `types` (every type when None)."""
        ...

    def last_event_id(self) -> int:
        """The id of the last event committed (0 when none)."""
        ...


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    """Timeouts, lease and retry schedule (from `Settings`; tests shorten them)."""

    timeout_s: float = 10.0
    connect_timeout_s: float = 5.0
    lease_ttl_s: float = 30.0
    poll_s: float = 0.05
    refresh_s: float = 1.0
    retry_base_s: float = 1.0
    retry_cap_s: float = 3600.0
    retry_window: timedelta = DEFAULT_RETRY_WINDOW
    concurrency: int = 64
    batch: int = 200
    private_targets: bool = True


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one send came to: the receiver's status (None when none answered) and the error."""

    status: int | None
    latency_ms: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the event counts as delivered (a 2xx answer)."""
        return self.status is not None and 200 <= self.status < 300


def webhook_id(event: Event) -> str:
    """The `webhook-id` of an event: the same for every attempt, subscription and replay."""
    return f"evt_{event.id}"


def event_body(event: Event) -> bytes:
    """The body sent for an event, as Standard Webhooks shapes it (plus the log's `id`)."""
    return orjson.dumps(
        {
            "type": event.type,
            "id": event.id,
            "timestamp": event.created_at.astimezone(UTC).isoformat(),
            "data": event.data,
        }
    )


def signed_headers(secret: str, event: Event, body: bytes, now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for `body`, signed with the subscription's secret."""
    message_id = webhook_id(event)
    return {
        "content-type": "application/json",
        "user-agent": f"Truce/{__version__}",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body),
    }


Sender = Callable[[Subscription, Event], Awaitable[Outcome]]


@dataclass
class _Task:
    task: asyncio.Task[None]
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Deliverer:
    """Delivers every subscription of one `kind` that this process can lease, until stopped."""

    def __init__(
        self,
        store: Store,
        events: EventLog,
        options: DeliveryOptions | None = None,
        *,
        kind: str = "webhook",
        sender: Sender | None = None,
        holder: str | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.options = options or DeliveryOptions()
        self.kind = kind
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._sender = sender
        self._tasks: dict[int, _Task] = {}
        self._client: httpx.AsyncClient | None = None
        self._sends = asyncio.Semaphore(self.options.concurrency)
        self._stopping = False
        self._renewed_at: dict[int, float] = {}
        # Deliveries made but not yet written, per subscription (with the subscription as they
        # leave it, and when the first was made): written together at the end of a batch, every
        # FLUSH_EVENTS or FLUSH_S, or with the next retry. A process killed before writing them
        # sends those events again (same webhook-id): still at least once.
        self._unrecorded: dict[int, list[DeliveryAttempt]] = {}
        self._unrecorded_sub: dict[int, Subscription] = {}
        self._unrecorded_since: dict[int, float] = {}

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; then give up every lease (a restart resumes at once)."""
        timeout = httpx.Timeout(self.options.timeout_s, connect=self.options.connect_timeout_s)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            self._client = client
            try:
                await self._watch(stop)
            finally:
                await self._stop_all()
                self._client = None

    async def _watch(self, stop: asyncio.Event) -> None:
        last_seen = -1
        next_refresh = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_refresh:
                await self._refresh()
                next_refresh = now + self.options.refresh_s
            try:
                last = await asyncio.to_thread(self.events.last_event_id)
            except Exception as exc:  # the store is down: try again, never crash
                log.warning("cannot read the event log: %s", exc)
                last = last_seen
            if last != last_seen:
                last_seen = last
                for entry in self._tasks.values():
                    entry.wake.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.options.poll_s)

    async def _refresh(self) -> None:
        try:
            subscriptions = await asyncio.to_thread(self.store.list_subscriptions, self.kind)
        except Exception as exc:
            log.warning("cannot list subscriptions: %s", exc)
            return
        wanted = {s.id for s in subscriptions}
        for sub_id in list(self._tasks):
            if sub_id not in wanted or self._tasks[sub_id].task.done():
                entry = self._tasks.pop(sub_id)
                entry.task.cancel()
        for sub_id in wanted - set(self._tasks):
            wake = asyncio.Event()
            task = asyncio.create_task(self._serve(sub_id, wake), name=f"deliver-{sub_id}")
            self._tasks[sub_id] = _Task(task, wake)

    async def _stop_all(self) -> None:
        self._stopping = True
        entries = list(self._tasks.items())
        self._tasks.clear()
        for sub_id, entry in entries:
            # Cancelled again until it ends: Python 3.11's wait_for can swallow a cancellation
            # that arrives as its inner wait completes.
            while not entry.task.done():
                entry.task.cancel()
                await asyncio.wait({entry.task}, timeout=0.1)
            held = self._unrecorded_sub.get(sub_id)
            if held is not None:  # a clean stop writes what it delivered
                with contextlib.suppress(Exception):
                    await self._record(held, None, cursor=held.cursor, attempts=0)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.store.release_subscription, sub_id, self.holder)
            held = self._unrecorded_sub.get(sub_id)
            if held is not None:  # a clean stop writes what it delivered
                with contextlib.suppress(Exception):
                    await self._record(held, None, cursor=held.cursor, attempts=0)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.store.release_subscription, sub_id, self.holder)

    async def _sleep(self, wake: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), max(seconds, 0.0))
        wake.clear()

    # -- one subscription --------------------------------------------------------------------

    async def _serve(self, sub_id: int, wake: asyncio.Event) -> None:
        renew_s = self.options.lease_ttl_s / 3
        # The subscription as this task holds it: its lease is renewed (a write) only every
        # third of the lease, not per event; in between, `record_delivery` checks the lease and
        # the generation, so a lost lease or a replay is noticed at the next write.
        held: Subscription | None = None
        while not self._stopping:
            try:
                if held is None or self._lease_due(sub_id):
                    held = await self._lease(sub_id)
                if held is None:  # another process delivers it (or it was deleted)
                    await self._sleep(asyncio.Event(), renew_s)
                    continue
                if held.state != "active":
                    held = None
                    await self._sleep(asyncio.Event(), self.options.refresh_s)
                    continue
                before = held
                held = await self._deliver_batch(held)
                if held is before:  # nothing to send: wait for the next event
                    await self._sleep(wake, renew_s)
            except asyncio.CancelledError:
                raise
            except UnknownSubscription:
                return
            except Exception as exc:  # the store failed: back off, keep the task alive
                log.warning("delivery of subscription %s: %s", sub_id, exc)
                held = None
                await self._sleep(asyncio.Event(), min(renew_s, 1.0))

    def _lease_due(self, sub_id: int) -> bool:
        renewed = self._renewed_at.get(sub_id)
        return renewed is None or time.monotonic() - renewed > self.options.lease_ttl_s / 3

    async def _lease(self, sub_id: int) -> Subscription | None:
        started = time.monotonic()
        sub = await asyncio.to_thread(
            self.store.lease_subscription, sub_id, self.holder, self.options.lease_ttl_s
        )
        if sub is None:
            self._renewed_at.pop(sub_id, None)
        else:
            self._renewed_at[sub_id] = started
        return sub

    async def _deliver_batch(self, sub: Subscription) -> Subscription | None:
        """Deliver the events after the cursor, one batch. Returns `sub` itself when there were
        none, the subscription as it now is after them, or None when it must be leased again
        (lease lost, replayed, held as failed)."""
        types = list(sub.spec.types) or None
        events = await asyncio.to_thread(
            self.events.events_after, sub.cursor, self.options.batch, types
        )
        if not events:
            return sub
        start = sub
        passed: int | None = None
        for event in events:
            if not matches(sub.spec, event):
                passed = event.id
                continue
            current = await self._deliver(sub, event)
            if current is None:
                return None
            sub, passed = current, None
        if passed is not None or self._unrecorded.get(sub.id):
            cursor = sub.cursor if passed is None else passed
            if not await self._record(sub, None, cursor=cursor, attempts=0):
                return None
            sub = replace(sub, cursor=cursor)
        return sub if sub is not start else replace(sub)

    async def _record(
        self,
        sub: Subscription,
        attempt: DeliveryAttempt | None,
        *,
        cursor: int,
        attempts: int,
        state: str = "active",
        failing_since: datetime | None = None,
        next_attempt_at: datetime | None = None,
    ) -> bool:
        """Write the deliveries not yet written, `attempt`, and the delivery state, at once."""
        made = self._unrecorded.pop(sub.id, [])
        self._unrecorded_since.pop(sub.id, None)
        self._unrecorded_sub.pop(sub.id, None)
        if attempt is not None:
            made.append(attempt)
        return await asyncio.to_thread(
            self.store.record_delivery,
            sub,
            self.holder,
            made,
            cursor=cursor,
            attempts=attempts,
            state=state,
            failing_since=failing_since,
            next_attempt_at=next_attempt_at,
        )

    async def _deliver(self, sub: Subscription, event: Event) -> Subscription | None:
        """Send one event until it is delivered; the subscription as it then is, or None."""
        attempts, failing_since = sub.attempts, sub.failing_since
        next_at = sub.next_attempt_at
        renew_s = self.options.lease_ttl_s / 3
        while True:
            while next_at is not None and (wait := (next_at - datetime.now(UTC))) > timedelta(0):
                await asyncio.sleep(min(wait.total_seconds(), renew_s))
                if await self._renewed(sub) is None:
                    return None
            if await self._renewed(sub) is None:
                return None
            attempts += 1
            at = datetime.now(UTC)
            async with self._sends:
                outcome = await self._send(sub, event)
            attempt = DeliveryAttempt(
                id=0,
                subscription_id=sub.id,
                event_id=event.id,
                attempt=attempts,
                at=at,
                outcome="delivered",
                status=outcome.status,
                latency_ms=round(outcome.latency_ms, 3),
                error=outcome.error,
                webhook_id=webhook_id(event),
            )
            if outcome.ok:
                delivered = replace(
                    sub, cursor=event.id, attempts=0, failing_since=None, next_attempt_at=None
                )
                # Written with the next ones (see `_unrecorded`): one write per batch of
                # deliveries rather than per event.
                pending = self._unrecorded.setdefault(sub.id, [])
                pending.append(attempt)
                self._unrecorded_sub[sub.id] = delivered
                first = self._unrecorded_since.setdefault(sub.id, time.monotonic())
                due = len(pending) >= FLUSH_EVENTS or time.monotonic() - first >= FLUSH_S
                if due and not await self._record(delivered, None, cursor=event.id, attempts=0):
                    return None
                return delivered
            now = datetime.now(UTC)
            failing_since = failing_since or at
            if now - failing_since >= self.options.retry_window:
                await self._record(
                    sub,
                    replace(attempt, outcome="failed"),
                    cursor=sub.cursor,
                    attempts=attempts,
                    state="failed",
                    failing_since=failing_since,
                )
                log.warning("subscription %s held as failed at event %s", sub.id, event.id)
                return None
            delay = backoff(
                attempts, base_s=self.options.retry_base_s, cap_s=self.options.retry_cap_s
            )
            next_at = now + timedelta(seconds=delay)
            done = await self._record(
                sub,
                replace(attempt, outcome="retry"),
                cursor=sub.cursor,
                attempts=attempts,
                failing_since=failing_since,
                next_attempt_at=next_at,
            )
            if not done:
                return None

    async def _renewed(self, sub: Subscription) -> Subscription | None:
        if not self._lease_due(sub.id):
            return sub
        fresh = await self._lease(sub.id)
        if fresh is None or fresh.generation != sub.generation or fresh.state != "active":
            return None
        return fresh

    # -- sending ------------------------------------------------------------------------------

    async def _send(self, sub: Subscription, event: Event) -> Outcome:
        if self._sender is not None:
            return await self._sender(sub, event)
        return await self._post(sub, event)

    async def _post(self, sub: Subscription, event: Event) -> Outcome:
        started = time.perf_counter()
        refused = await self._refused_target(sub.spec.url)
        if refused:
            return Outcome(None, 0.0, f"refused: {refused}")
        body = event_body(event)
        headers = signed_headers(sub.secret, event, body, datetime.now(UTC))
        assert self._client is not None
        try:
            response = await self._client.post(sub.spec.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            return Outcome(None, _ms(started), f"timeout: {type(exc).__name__}")
        except httpx.HTTPError as exc:
            return Outcome(None, _ms(started), f"{type(exc).__name__}: {exc}"[:500])
        error = None if 200 <= response.status_code < 300 else response.text[:200] or None
        return Outcome(response.status_code, _ms(started), error)

    async def _refused_target(self, url: str) -> str:
        """Why the URL's host must not be reached now (see the SSRF policy), or ''."""
        host = urlsplit(url).hostname or ""
        try:
            return blocked_address(ipaddress.ip_address(host), self.options.private_targets)
        except ValueError:
            pass
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None)
        except OSError as exc:
            return f"cannot resolve {host!r} ({exc})"
        for info in infos:
            why = blocked_address(
                ipaddress.ip_address(str(info[4][0]).split("%")[0]), self.options.private_targets
            )
            if why:
                return f"{host!r} resolves to {why}"
        return ""


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
