"""Stored incursions kept up to date: the engine's violations on every stored report, always.

`Service.incursions` reads them from a `ViolationLog`, which judges only the reports stored since
its last read and judges everything again when the zones change. Each test compares it with the
engine run from scratch on every stored report.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.batch import ReportBatch
from app.domain import Report
from app.engine import ZoneIndex
from app.findings import FindingColumns
from app.incursions import ViolationLog
from app.service import Service
from app.store import ReportVersion, SQLiteStore, Store, iter_report_pages
from tests.factories import random_reports

START = datetime(2022, 3, 20, tzinfo=UTC)
PARTIES = ["AZE", "ARM", "NK", "RU-PK"]


class CountingStore:
    """A store that counts the reports it hands out through `reports_after`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.handed_out = 0

    def reports_after(self, position: int, limit: int) -> tuple[list[ReportVersion], int]:
        reports, position = self.store.reports_after(position, limit)
        self.handed_out += len(reports)
        return reports, position

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with SQLiteStore(tmp_path / "truce.db") as store:
        service = Service(store)
        assert service.load_scenario()
        yield service


def from_scratch(service: Service) -> set[tuple[str, str, float]]:
    """(report id, zone id, depth) of every violation, by the engine on every stored report."""
    reports = list(_all_reports(service.store))
    index = ZoneIndex(service.store.zones_for_index())
    rows = index.check(ReportBatch.from_reports(reports).frame())
    rows = rows[rows["violation"]]
    return {
        (str(report_id), str(zone_id), round(float(depth), 6))
        for report_id, zone_id, depth in zip(
            rows["report_id"], rows["zone_id"], rows["depth_m"], strict=True
        )
    }


def _all_reports(store: Store) -> Iterator[Report]:
    """Every report's latest version, retracted ones left out."""
    for page in iter_report_pages(store, page_size=1_000):
        yield from page


def kept(found: FindingColumns) -> set[tuple[str, str, float]]:
    return {
        (str(r), str(z), round(float(d), 6))
        for r, z, d in zip(found.report_id, found.zone_id, found.depth_m, strict=True)
    }


def test_incursions_are_the_engines_violations_on_every_stored_report(service: Service) -> None:
    service.store.add_reports(random_reports(3_000, seed=1, prefix="a"), "observer")
    found = service.incursions()
    assert len(found) > 100  # the test means something
    assert kept(found) == from_scratch(service)
    assert found.violation.all()
    columns = (found.time_ns.tolist(), found.report_id.tolist(), found.zone_id.tolist())
    order = list(zip(*columns, strict=True))
    assert order == sorted(order)


def test_filters_select_from_the_same_violations(service: Service) -> None:
    service.store.add_reports(random_reports(2_000, seed=2, prefix="b"), "observer")
    every = service.incursions()
    since, until = START + timedelta(days=2), START + timedelta(days=5)
    some = service.incursions(since=since, until=until, party="AZE", zone="nk-pk-zone")
    expected = (
        (every.time_ns >= since.timestamp() * 1e9)
        & (every.time_ns < until.timestamp() * 1e9)
        & (every.party == "AZE")
        & (every.zone_id == "nk-pk-zone")
    )
    assert 0 < len(some) == int(expected.sum()) < len(every)
    assert kept(some) == kept(every.take(expected))


def test_only_reports_stored_since_the_last_read_are_judged(service: Service) -> None:
    counting = CountingStore(service.store)
    log = ViolationLog(counting, lambda: service._current().token, service._violations_of)  # type: ignore[arg-type]
    service.store.add_reports(random_reports(1_500, seed=3, prefix="c"), "observer")
    first = log.current()
    stored = service.store.count_reports()
    assert counting.handed_out == stored
    assert log.current() is first  # nothing new: nothing read, nothing judged
    assert counting.handed_out == stored
    service.store.add_reports(random_reports(40, seed=4, prefix="d"), "observer")
    assert kept(log.current()) == from_scratch(service)
    assert counting.handed_out == stored + 40


def test_a_zone_change_judges_every_report_again(service: Service) -> None:
    service.store.add_reports(random_reports(1_500, seed=5, prefix="e"), "observer")
    before = service.incursions(zone="nk-pk-zone")
    assert len(before) > 0
    # Retired before the reports: its incursions go, and the others stay as they were.
    service.retire_zone("nk-pk-zone", START, "admin")
    assert len(service.incursions(zone="nk-pk-zone")) == 0
    assert kept(service.incursions()) == from_scratch(service)


def test_zones_changing_while_catching_up_start_it_over(service: Service) -> None:
    service.store.add_reports(random_reports(500, seed=6, prefix="f"), "observer")
    tokens = iter([1, 2, 2])
    judged: list[int] = []

    def judge(reports: list[Report]) -> tuple[int, FindingColumns]:
        judged.append(len(reports))
        _, columns = service._violations_of(reports)
        return 2, columns  # the index moved on to token 2 after the log read token 1

    log = ViolationLog(service.store, lambda: next(tokens), judge, page_size=200)
    found = log.current()
    stored = service.store.count_reports()
    # Token 1 saw its first page judged under token 2 and started over under token 2.
    assert judged[0] == 200 and sum(judged[1:]) == stored
    assert kept(found) == from_scratch(service)
    assert log.current() is found  # caught up under token 2


def test_corrections_and_retractions_replace_only_their_reports_findings(service: Service) -> None:
    counting = CountingStore(service.store)
    log = ViolationLog(counting, lambda: service._current().token, service._violations_of)  # type: ignore[arg-type]
    reports = random_reports(1_500, seed=7, prefix="g")
    service.store.add_reports(reports, "observer")
    first = log.current()
    by_id = {r.id: r for r in reports}
    violating = sorted({str(r) for r in first.report_id} & by_id.keys())
    assert len(violating) > 10
    stored = service.store.count_reports()
    # One violation corrected away (moved far out), one retracted, one report moved into the
    # zone it violates elsewhere, and one corrected twice within one page of the feed.
    gone, retracted, twice = violating[0], violating[1], violating[2]
    quiet = next(r for r in reports if r.id not in violating)
    into = by_id[violating[3]]
    service.store.correct_report(replace(by_id[gone], lon=10.0, lat=10.0), "observer")
    service.store.retract_report(retracted, "double count", "observer")
    service.store.correct_report(
        replace(quiet, party=into.party, lon=into.lon, lat=into.lat, observed_at=into.observed_at),
        "observer",
    )
    service.store.correct_report(replace(by_id[twice], lon=11.0), "observer")
    service.store.correct_report(replace(by_id[twice], lon=12.0, lat=12.0), "observer")
    found = log.current()
    ids = {str(r) for r in found.report_id}
    assert gone not in ids and retracted not in ids and twice not in ids
    assert quiet.id in ids
    assert kept(found) == from_scratch(service)
    assert counting.handed_out == stored + 5  # only the versions were read again
