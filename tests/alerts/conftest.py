"""Fixtures of the alert tests: a store of each kind, and an event log that tests append to."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.alerts.events import Event
from app.store import SQLiteStore, Store


class MemoryLog:
    """An event log in memory with the store's `events_after` / `last_event_id`, for tests of
    delivery alone (the store's own log is tested with it in the end-to-end tests)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.lock = threading.Lock()

    def append(self, kind: str, **data: object) -> Event:
        with self.lock:
            event = Event(len(self.events) + 1, kind, datetime.now(UTC), dict(data))
            self.events.append(event)
        return event

    def events_after(
        self, after_id: int, limit: int = 1000, types: Sequence[str] | None = None
    ) -> list[Event]:
        with self.lock:
            chosen = [e for e in self.events if e.id > after_id and (not types or e.type in types)]
        return chosen[:limit]

    def last_event_id(self) -> int:
        with self.lock:
            return len(self.events)


@pytest.fixture
def event_log() -> MemoryLog:
    """An empty in-memory event log."""
    return MemoryLog()


@pytest.fixture(params=["sqlite", "postgis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store of each kind."""
    if request.param == "sqlite":
        opened: Store = SQLiteStore(tmp_path / "truce.sqlite")
    else:
        from app.store.postgis import PostGISStore

        opened = PostGISStore(request.getfixturevalue("postgis_url"), listen=False)
    try:
        yield opened
    finally:
        opened.close()
