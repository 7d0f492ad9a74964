"""`EventTail`: one watcher of the event log per service process, for every stream in it.

Each `GET /events` stream could poll the store itself, but a hundred idle dashboards would then
ask a hundred times per interval. Instead one task per process reads the latest event id every
`poll_s` (one indexed query) and wakes the streams waiting when it moves; a woken stream reads
its events itself, from its own position, so each still gets every event once and in order.
"""

from __future__ import annotations

import asyncio
import logging

from app.store import Store, StoreError

__all__ = ["EventTail"]

log = logging.getLogger("truce.alerts")


class EventTail:
    """The latest event id of a store, watched; streams wait here for the log to move."""

    def __init__(self, store: Store, poll_s: float) -> None:
        self._store = store
        self._poll_s = poll_s
        self.latest = 0
        self._moved = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until `stop` is set; a storage failure is logged and the watch goes on."""
        while not stop.is_set():
            try:
                latest = await asyncio.to_thread(self._store.last_event_id)
            except StoreError as exc:
                log.warning("event log watch failed: %s", exc)
            else:
                if latest != self.latest:
                    self.latest = latest
                    moved, self._moved = self._moved, asyncio.Event()
                    moved.set()  # wakes every stream waiting on this round
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._poll_s)
            except TimeoutError:
                continue

    async def wait_past(self, position: int, timeout_s: float) -> None:
        """Return once the log holds an event after `position`, or after `timeout_s`."""
        if self.latest > position:
            return
        moved = self._moved
        try:
            await asyncio.wait_for(moved.wait(), timeout=timeout_s)
        except TimeoutError:
            return
