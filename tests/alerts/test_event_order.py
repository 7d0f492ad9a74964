"""Event ids in commit order under concurrent writers: a reader that pages by id while
several threads write never skips an event nor sees one twice (both stores)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from app.store import Store
from tests.factories import AT, make_report, make_zone, square

WRITERS = 4
WRITES = 12


def test_a_reader_paging_by_id_sees_every_event_once(
    store: Store, reopen: Callable[[], Store]
) -> None:
    store.add_zones([make_zone(square(46.0, 39.0, 0.1), zone_id="z")], "admin")
    start = store.last_event_id()
    writers = [reopen() for _ in range(WRITERS)]  # other processes' stores, in effect
    seen: list[int] = []
    done = threading.Event()
    failures: list[BaseException] = []

    def write(n: int, writer: Store) -> None:
        try:
            for i in range(WRITES):
                # A unit-less report inside: an incident opened and closed, two events.
                writer.add_reports([make_report(f"w{n}-{i}", 46.05, 39.05, observed_at=AT)], "w")
        except BaseException as exc:  # reported below
            failures.append(exc)

    def read() -> None:
        position = start
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            finished = done.is_set()
            for event in store.events_after(position, 7):
                seen.append(event.id)
                position = event.id
            if finished and not store.events_after(position, 1):
                return
            time.sleep(0.001)

    reader = threading.Thread(target=read)
    reader.start()
    threads = [threading.Thread(target=write, args=(n, w)) for n, w in enumerate(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    done.set()
    reader.join(timeout=60)
    assert not failures, failures
    everything = [e.id for e in store.events_after(start, 10_000)]
    assert len(everything) == WRITERS * WRITES * 2
    assert seen == everything  # each once, in id order, none skipped
