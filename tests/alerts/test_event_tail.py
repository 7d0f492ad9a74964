"""`EventTail`: one watcher per process wakes the streams when the log moves."""

from __future__ import annotations

import asyncio
import time

from app.alerts.tail import EventTail
from app.store import Store
from tests.factories import make_zone


def test_waiters_wake_when_the_log_moves_and_time_out_otherwise(store: Store) -> None:
    async def scenario() -> tuple[float, float, int]:
        tail = EventTail(store, 0.02)
        stop = asyncio.Event()
        task = asyncio.create_task(tail.run(stop))
        await asyncio.sleep(0.1)
        start = time.monotonic()
        await tail.wait_past(0, timeout_s=0.3)  # nothing in the log: the timeout
        idle = time.monotonic() - start
        waiter = asyncio.create_task(tail.wait_past(0, timeout_s=30))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(store.add_zones, [make_zone(zone_id="a")], "admin")
        start = time.monotonic()
        await asyncio.wait_for(waiter, timeout=10)
        woken = time.monotonic() - start
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        return idle, woken, tail.latest

    idle, woken, latest = asyncio.run(scenario())
    assert idle >= 0.29
    assert woken < 5
    assert latest == store.last_event_id() == 1
