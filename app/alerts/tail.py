"""`EventTail`: one watcher of the event log per service process, for every stream in it.

Each `GET /events` stream could poll the store itself, but a hundred idle dashboards would then
ask a hundred times per interval. Instead one task per process knows the latest event id and
wakes the streams waiting when it moves; a woken stream reads its events itself, from its own
position, so each still gets every event once and in order.

The latest id comes, without polling, from the store's event watch (`Store.watch_events`): the
PostGIS store hears every process's commits through LISTEN/NOTIFY, the SQLite store its own
process's commits as they happen. A poll of the latest id stays as the net under it: every
`fallback_s` while the store hears every process (a notification lost with a dropped
connection is caught up within that), every `poll_s` when it does not (SQLite: the commits of
other processes on the same file).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from app.store import Store, StoreError

__all__ = ["EventTail"]

log = logging.getLogger("truce.alerts")


class EventTail:
    """The latest event id of a store, watched; streams wait here for the log to move."""

    def __init__(self, store: Store, poll_s: float, fallback_s: float = 5.0) -> None:
        self._store = store
        self._poll_s = poll_s
        self._fallback_s = max(fallback_s, poll_s)
        self.latest = 0
        self._moved = asyncio.Event()

    def _advance(self, latest: int) -> None:
        """Note the latest id (ids only grow) and wake the streams waiting on this round."""
        if latest > self.latest:
            self.latest = latest
            moved, self._moved = self._moved, asyncio.Event()
            moved.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until `stop` is set; a storage failure is logged and the watch goes on."""
        loop = asyncio.get_running_loop()

        def heard(event_id: int) -> None:  # called from the store's threads
            with suppress(RuntimeError):  # the loop has closed: nobody is waiting any more
                loop.call_soon_threadsafe(self._advance, event_id)

        unwatch = self._store.watch_events(heard)
        try:
            while not stop.is_set():
                try:
                    latest = await asyncio.to_thread(self._store.last_event_id)
                except StoreError as exc:
                    log.warning("event log watch failed: %s", exc)
                else:
                    self._advance(latest)
                everywhere = self._store.events_heard_everywhere()
                try:
                    await asyncio.wait_for(
                        stop.wait(), timeout=self._fallback_s if everywhere else self._poll_s
                    )
                except TimeoutError:
                    continue
        finally:
            unwatch()

    async def wait_past(self, position: int, timeout_s: float) -> None:
        """Return once the log holds an event after `position`, or after `timeout_s`."""
        if self.latest > position:
            return
        moved = self._moved
        try:
            await asyncio.wait_for(moved.wait(), timeout=timeout_s)
        except TimeoutError:
            return
