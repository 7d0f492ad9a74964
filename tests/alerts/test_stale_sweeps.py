"""The stale-track sweep: the function, its loop (bounded, cancellable, survives failures), and
the service running it from its lifespan."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.alerts.events import TRACK_STALE, Event
from app.alerts.stale import DEFAULT_TRACK_STALE_AFTER, run_stale_sweeps, sweep_stale_tracks
from app.settings import Settings
from app.store import Busy, Store
from tests.factories import AT, make_report, make_zone, square


def _open_incident(store: Store) -> None:
    store.add_zones([make_zone(square(46.0, 39.0, 0.1), zone_id="z")], "admin")
    store.add_reports([make_report("s1", 46.05, 39.05, unit="u1", observed_at=AT)], "obs")


def test_sweep_stale_tracks_uses_the_default_and_refuses_nonsense(store: Store) -> None:
    _open_incident(store)
    assert sweep_stale_tracks(store, AT + DEFAULT_TRACK_STALE_AFTER - timedelta(seconds=1)) == []
    (event,) = sweep_stale_tracks(store, AT + DEFAULT_TRACK_STALE_AFTER)
    assert event.data["stale_after_s"] == 86_400.0
    with pytest.raises(ValueError, match="positive"):
        sweep_stale_tracks(store, AT, timedelta(0))


def test_the_loop_sweeps_until_stopped(store: Store) -> None:
    _open_incident(store)

    async def scenario() -> list[Event]:
        stop = asyncio.Event()
        task = asyncio.create_task(
            run_stale_sweeps(
                store, 0.02, timedelta(hours=1), stop, clock=lambda: AT + timedelta(days=1)
            )
        )
        deadline = time.monotonic() + 10
        while not store.events_after(0, types=[TRACK_STALE]):
            assert time.monotonic() < deadline, "no sweep within 10 s"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # a few more sweeps: nothing new to say
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        return store.events_after(0, types=[TRACK_STALE])

    assert len(asyncio.run(scenario())) == 1


class _Flaky:
    """A store whose first sweeps fail as a busy database does."""

    def __init__(self) -> None:
        self.calls = 0

    def mark_stale_tracks(self, now: datetime, stale_after: timedelta) -> list[Event]:
        self.calls += 1
        if self.calls <= 2:
            raise Busy("locked")
        return []


def test_a_failing_sweep_does_not_end_the_loop() -> None:
    flaky = _Flaky()

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_stale_sweeps(flaky, 0.01, timedelta(hours=1), stop))  # type: ignore[arg-type]
        deadline = time.monotonic() + 10
        while flaky.calls < 4:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        task.cancel()  # cancellable too
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5)

    asyncio.run(scenario())
    assert flaky.calls >= 4


def test_the_service_sweeps_from_its_lifespan(make_client: Any) -> None:
    # The founding scenario leaves units inside zones in 2022: long stale by now.
    client: TestClient = make_client(stale_sweep_s=0.05, track_stale_after="PT1H")
    store = client.app.state.service.store  # type: ignore[attr-defined]
    deadline = time.monotonic() + 20
    while not (stale := store.events_after(0, types=[TRACK_STALE])):
        assert time.monotonic() < deadline, "no track.stale within 20 s"
        time.sleep(0.05)
    time.sleep(0.3)  # more sweeps: each sighting is announced once
    again = store.events_after(0, types=[TRACK_STALE])
    assert len({e.data["incident_id"] for e in again}) == len(again) >= len(stale)
    assert all(e.data["stale_after_s"] == 3600.0 for e in again)


def test_the_stale_settings() -> None:
    assert Settings(_env_file=None).track_stale_after_or_default == timedelta(hours=24)
    assert Settings(_env_file=None, stale_after="PT2H").track_stale_after_or_default == timedelta(
        hours=2
    )
    custom = Settings(_env_file=None, track_stale_after="900")
    assert custom.track_stale_after_or_default == timedelta(minutes=15)
    assert Settings(_env_file=None, track_stale_after="").track_stale_after is None
