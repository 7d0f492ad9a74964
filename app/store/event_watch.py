"""`EventWatchers`: the callbacks a store calls when it learns that events were committed.

A stream of the event log (`GET /events`) should wake when an event commits, not poll for it.
Each store tells its watchers what it hears: the PostGIS store every commit of every process,
by the `NOTIFY` its listener already follows for zone changes; the SQLite store the commits of
its own process, at once after each one (other processes' commits are left to a poll).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["EventWatchers"]

log = logging.getLogger("truce.store")


class EventWatchers:
    """Callbacks given the id of the latest event known to be committed (from any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[int], None]] = []

    def add(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Call `callback(event_id)` from now on; returns the function that stops it."""
        with self._lock:
            self._callbacks.append(callback)

        def remove() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return remove

    def tell(self, event_id: int) -> None:
        """Tell every watcher; a failing one is logged, never raised into the writer."""
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(event_id)
            except Exception:  # a watcher's bug must not fail a committed write
                log.exception("an event watcher failed")
