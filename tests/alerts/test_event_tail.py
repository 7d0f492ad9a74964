"""`EventTail`: one watcher per process wakes the streams when the log moves."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from app.alerts.tail import EventTail
from app.store import Conflict, SQLiteStore, Store
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


def test_the_store_tells_its_watchers_of_committed_events_only(store: Store) -> None:
    heard: list[int] = []
    unwatch = store.watch_events(heard.append)
    store.add_zones([make_zone(zone_id="a")], "admin")
    with pytest.raises(Conflict):  # rolled back: nothing to tell
        store.add_zones([make_zone(zone_id="b"), make_zone(zone_id="a")], "admin")
    store.add_zones([make_zone(zone_id="c")], "admin")
    # PostGIS hears its notifications on the listener's thread: wait for them (bounded).
    deadline = time.monotonic() + 10
    while (not heard or max(heard) < 2) and time.monotonic() < deadline:
        time.sleep(0.01)
    unwatch()
    assert max(heard) == store.last_event_id() == 2
    assert set(heard) <= {0, 1, 2}  # 0: the listener's catching up, on PostGIS
    store.add_zones([make_zone(zone_id="d")], "admin")
    time.sleep(0.3)
    assert max(heard) == 2  # no longer watched


def _woken_without_polling(tail_store: Store, writer: Store) -> int:
    """Run a tail whose polls are ten minutes apart; a waiter must still wake when `writer`
    commits an event (only the store's event watch can tell it so soon)."""

    async def scenario() -> int:
        tail = EventTail(tail_store, poll_s=600, fallback_s=600)
        stop = asyncio.Event()
        task = asyncio.create_task(tail.run(stop))
        await asyncio.sleep(0.2)  # the first poll is done
        position = tail.latest
        waiter = asyncio.create_task(tail.wait_past(position, timeout_s=600))
        await asyncio.to_thread(writer.add_zones, [make_zone(zone_id="w")], "admin")
        await asyncio.wait_for(waiter, timeout=20)
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        return tail.latest

    return asyncio.run(scenario())


def test_a_commit_of_this_process_wakes_the_streams_without_a_poll(store: Store) -> None:
    assert _woken_without_polling(store, store) == store.last_event_id() == 1


def test_a_commit_of_another_process_wakes_them_on_postgis(
    store: Store, reopen: Callable[[], Store]
) -> None:
    if isinstance(store, SQLiteStore):
        # A file has no notifications between processes: the tail keeps its short poll.
        assert not store.events_heard_everywhere()
        return
    assert store.events_heard_everywhere()
    other = reopen()  # another process's store on the same database
    assert _woken_without_polling(store, other) == store.last_event_id() == 1
