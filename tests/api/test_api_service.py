"""The service layer: an index that is never stale, safe across threads; times written exactly."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.batch import ReportBatch
from app.domain import Zone
from app.limits import iso_utc, to_us
from app.service import Service
from app.store import SQLiteStore
from tests.factories import PARUKH, make_report, make_zone, square

T = datetime(2022, 3, 24, 2, tzinfo=UTC)


def at(lon: float, lat: float = 39.05, party: str = "AZE") -> ReportBatch:
    return ReportBatch.from_reports([make_report("r", lon, lat, party=party, observed_at=T)])


def zone_ids(service: Service, lon: float) -> list[str]:
    return [f["properties"]["zone_id"] for f in service.check(at(lon)).findings]


@pytest.fixture
def store(db_path: Path) -> Any:
    with SQLiteStore(db_path) as opened:
        yield opened


def test_the_index_is_kept_until_the_zones_change(store: SQLiteStore) -> None:
    service = Service(store)
    first = service.index()
    assert service.index() is first
    store.add_zones([make_zone(square(10.0), "a")], "test")
    assert service.index() is not first
    assert zone_ids(service, 10.05) == ["a"]


def test_a_write_from_another_connection_is_seen_at_once(store: SQLiteStore, db_path: Path) -> None:
    service = Service(store)
    assert zone_ids(service, 20.05) == []
    with SQLiteStore(db_path) as other:  # as another process would
        other.add_zones([make_zone(square(20.0), "b")], "other")
    assert zone_ids(service, 20.05) == ["b"]


class RacingStore:
    """A store where another writer adds a zone just after the index's zones were read."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.race: Zone | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def zones_for_index(self) -> list[Zone]:
        zones = self.store.zones_for_index()
        if self.race is not None:  # written just after the list was read
            self.store.add_zones([self.race], "racer")
            self.race = None
        return zones


def test_a_write_during_a_rebuild_never_leaves_a_stale_index(store: SQLiteStore) -> None:
    racing = RacingStore(store)
    service = Service(racing)  # type: ignore[arg-type]
    store.add_zones([make_zone(square(30.0), "c")], "test")
    racing.race = make_zone(square(40.0), "d")
    assert zone_ids(service, 30.05) == ["c"]
    # The index lacks "d"; it was paired with the token read *before* the zones, so the next
    # use sees the token move and rebuilds. (A token read after would hide "d" for good.)
    assert zone_ids(service, 40.05) == ["d"]


def test_threads_checking_while_zones_change_all_get_answers(store: SQLiteStore) -> None:
    service = Service(store)
    errors: list[BaseException] = []
    stop = threading.Event()

    def check() -> None:
        try:
            while not stop.is_set():
                service.check(at(*PARUKH))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=check) for _ in range(4)]
    for thread in threads:
        thread.start()
    for i in range(10):
        store.add_zones([make_zone(square(50.0 + i), f"t{i}")], "test")
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert zone_ids(service, 59.05) == ["t9"]


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2022, 3, 24, 2, tzinfo=UTC),
        datetime(2022, 3, 24, 2, 0, 0, 500, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(1700, 1, 1, tzinfo=UTC),
        datetime(2261, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
        datetime(2022, 3, 24, 6, tzinfo=UTC) + timedelta(hours=-4),
    ],
)
@pytest.mark.parametrize("n", [1, 100])  # a few are formatted by datetime, many by numpy
def test_times_are_written_as_datetime_writes_them(moment: datetime, n: int) -> None:
    ns = np.full(n, to_us(moment) * 1000, dtype=np.int64)
    assert iso_utc(ns) == [moment.isoformat()] * n
