"""`track.stale`: a unit still in an open incident that has not been reported for a while.

A silent unit inside a zone is what an operator most needs to hear about (lost contact, or a
tracker switched off where it should not be), and no report write can notice silence: a sweep
does, `sweep_stale_tracks`, run every `TRUCE_STALE_SWEEP_S` in each service process
(`run_stale_sweeps`). The store writes each event once per sighting (`Store.mark_stale_tracks`),
in one write transaction, so several processes sweeping together never repeat one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from app.alerts.events import Event
from app.store import Store, StoreError

__all__ = ["DEFAULT_TRACK_STALE_AFTER", "run_stale_sweeps", "sweep_stale_tracks"]

log = logging.getLogger("truce.alerts")

#: The default of `TRUCE_TRACK_STALE_AFTER`: that of `TRUCE_STALE_AFTER` (24 h), so the event
#: is raised when `/tracks` starts to call the unit `stale`, never at another moment.
DEFAULT_TRACK_STALE_AFTER = timedelta(hours=24)


def sweep_stale_tracks(
    store: Store, now: datetime, stale_after: timedelta = DEFAULT_TRACK_STALE_AFTER
) -> list[Event]:
    """Write a `track.stale` event for each unit in an open incident whose last sighting is
    `stale_after` or more before `now` and has none yet; returns the events written."""
    if stale_after <= timedelta(0):
        raise ValueError("stale_after must be positive")
    return store.mark_stale_tracks(now, stale_after)


async def run_stale_sweeps(
    store: Store,
    every_s: float,
    stale_after: timedelta,
    stop: asyncio.Event,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Sweep every `every_s` seconds until `stop` is set (or the task is cancelled).

    A sweep runs in a worker thread (the store blocks); a storage failure is logged and the
    next sweep tries again, so an unavailable database never ends the loop.
    """
    while not stop.is_set():
        try:
            events = await asyncio.to_thread(sweep_stale_tracks, store, clock(), stale_after)
            if events:
                log.info("%d track.stale event(s) written", len(events))
        except StoreError as exc:
            log.warning("stale-track sweep failed: %s", exc)
        try:
            await asyncio.wait_for(stop.wait(), timeout=every_s)
        except TimeoutError:
            continue
