"""The alert tests run over both stores: store-level ones with the store suite's fixtures,
HTTP ones with the API suite's (every test that takes `store_kind` runs over each store); and
an in-memory event log for the tests of delivery alone."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from app.alerts.events import Event
from tests.api.conftest import (
    client,
    database_url,
    db_path,
    make_client,
    make_settings,
    template_db,
)
from tests.store.conftest import reopen, store, store_url

__all__ = [
    "MemoryLog",
    "event_log",
    "client",
    "database_url",
    "db_path",
    "make_client",
    "make_settings",
    "reopen",
    "store",
    "store_url",
    "template_db",
]


@pytest.fixture(params=["sqlite", "postgis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """Each store, for the HTTP tests."""
    return str(request.param)


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
