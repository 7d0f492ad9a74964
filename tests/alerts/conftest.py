"""Fixtures of the alert tests: a store of each kind (the store suite's fixtures, both stores)
and an in-memory event log that tests of delivery alone append to."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from app.alerts.events import Event
from tests.store.conftest import reopen, store, store_url

__all__ = ["MemoryLog", "event_log", "reopen", "store", "store_url"]


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
