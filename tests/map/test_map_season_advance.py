"""A season advanced by the writes since it was judged answers exactly what a season judged whole
answers, over both stores: after new reports, corrections, retractions, zone and party changes,
with writes landing in the middle of a read; and its violations are those of the reference
(tests/oracle.py on pyproj.Geod)."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np
import orjson
import pytest
import shapely

from app.domain import Party, Report, ReportKind
from app.mapview.model import MapQuery
from app.mapview.seasons import Season, SeasonCache
from app.mapview.sources import season_from_service
from app.scenario import Scenario
from app.service import Service
from app.store import Store, open_store
from tests.map.support import load_into
from tests.oracle import oracle_depth, oracle_verdict

T0 = datetime(2022, 3, 25, tzinfo=UTC)
BOX = (46.55, 39.75, 47.05, 40.15)
#: The queries compared after each write: the whole season, one party's, one zone's.
QUERIES = ((None, None), ("AZE", None), (None, "nk-pk-zone"), ("ARM", "nk-pk-zone"))


@pytest.fixture(params=["sqlite", "postgis"])
def store(request: pytest.FixtureRequest, tmp_path: Path, scenario: Scenario) -> Iterator[Store]:
    """The scenario in each store."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'truce.sqlite'}"
    else:
        url = request.getfixturevalue("postgis_url")
    opened = open_store(url)
    load_into(opened, scenario)
    yield opened
    opened.close()


def _reports(rng: random.Random, prefix: str, n: int, times: list[datetime]) -> list[Report]:
    """`n` reports over the box; a third at a time already used (ties in time order), units
    among five (and one new unit), parties among three and a party no one registered."""
    kinds = list(ReportKind)
    made = []
    for k in range(n):
        at = (
            rng.choice(times)
            if times and k % 3 == 0
            else T0 + timedelta(seconds=rng.randrange(3 * 86400), microseconds=rng.randrange(2) * 7)
        )
        made.append(
            Report(
                id=f"{prefix}-{rng.randrange(10**6):06d}-{k}",
                party=rng.choice(["AZE", "ARM", "RU-PK", "XYZ"]),
                observed_at=at,
                lon=round(rng.uniform(BOX[0], BOX[2]), 6),
                lat=round(rng.uniform(BOX[1], BOX[3]), 6),
                uncertainty_m=rng.choice([0.0, 50.0, 400.0, 1500.0]),
                kind=kinds[k % len(kinds)],
                unit=rng.choice([None, "u-1", "u-2", "u-3", "u-4", f"{prefix}-new"]),
                source=rng.choice([None, "OP", "drone", "press"]),
            )
        )
        times.append(at)
    return made


def _answers(season: Season) -> bytes:
    """Everything a client can be answered from a season, as bytes."""
    whole = season.reports(None, None, None, 10**6)
    answers: dict[str, Any] = {
        "reports": whole,
        "window": season.reports((46.6, 39.8, 46.9, 40.1), None, int(T0.timestamp()) + 86400, 50),
        "cells8": season.cells(None, None, None, 8),
        "cells12": season.cells(BOX, int(T0.timestamp()), None, 12),
        "tracks": season.tracks(None, None, None, 11),
        "events": season.events(None, None, None),
        "counts": season.model.counts,
        "sources": season.model.sources,
        "summary": season.model.summary.to_dict("list"),
    }
    page = season.page_model(MapQuery(party=season.model.query.party), now=T0)
    answers["page"] = [page.start, page.end, page.opening, page.steps, page.bounds, page.counts]
    options = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    return orjson.dumps(answers, default=repr, option=options)


def _fresh(service: Service, party: str | None, zone: str | None) -> Season:
    """The season judged whole, by a cache of its own."""
    return season_from_service(service, SeasonCache(), party=party, zone=zone)


def _assert_same_as_fresh(service: Service, cache: SeasonCache) -> None:
    for party, zone in QUERIES:
        kept = season_from_service(service, cache, party=party, zone=zone)
        assert not kept.stale
        assert _answers(kept) == _answers(_fresh(service, party, zone)), (party, zone)


def _reference_counts(store: Store) -> tuple[int, int, int]:
    """(reports, violations inside, violations possible) of every stored report, by the
    reference: each zone version in force, the report's party not authorized."""
    zones = store.zones_for_index()
    reports = []
    after = None
    while True:
        page, after = store.list_reports(limit=1000, after=after)
        reports += page
        if after is None:
            break
    inside = possible = 0
    for r in reports:
        found = set()
        for z in zones:
            if not z.in_force(r.observed_at) or r.party in z.authorized_parties:
                continue
            depth = oracle_depth(r.lon, r.lat, z.geometry)
            u = r.uncertainty_m + z.boundary_uncertainty_m
            found.add(oracle_verdict(depth, u, z.warning_distance_m))
        inside += "inside" in found
        possible += "inside" not in found and "possible" in found
    return len(reports), inside, possible


def test_an_advanced_season_answers_what_a_judged_one_does(store: Store) -> None:
    service = Service(store)
    cache = SeasonCache()
    rng = random.Random(5)
    times: list[datetime] = []
    store.add_reports(_reports(rng, "a", 40, times), "test")
    _assert_same_as_fresh(service, cache)
    judged = cache.judged

    # New reports: some at times already held, new units, an unregistered party.
    store.add_reports(_reports(rng, "b", 30, times), "test")
    _assert_same_as_fresh(service, cache)
    assert cache.judged == judged and cache.advanced >= 2  # advanced, not judged again

    # Corrections: moved in time and place, to another unit and another party.
    listed, _ = store.list_reports(limit=1000)
    picked = rng.sample([r for r in listed if r.id.startswith(("a-", "b-"))], 6)
    moves: list[dict[str, Any]] = [
        {"lon": 46.75, "lat": 39.83},
        {"observed_at": T0 - timedelta(days=1)},
        {"unit": "u-9"},
        {"party": "RU-PK"},
        {"unit": None, "observed_at": picked[4].observed_at + timedelta(hours=30)},
        {"uncertainty_m": 3000.0, "source": "radio"},
    ]
    for report, move in zip(picked, moves, strict=True):
        store.correct_report(replace(report, **move), "test")
    _assert_same_as_fresh(service, cache)

    # Retractions: among them every report of the unregistered party.
    listed, _ = store.list_reports(limit=1000)
    gone = [r for r in listed if r.party == "XYZ"] + rng.sample(
        [r for r in listed if r.unit == "u-2" and r.party != "XYZ"], 2
    )
    for report in gone:
        store.retract_report(report.id, "test", "test")
    _assert_same_as_fresh(service, cache)
    assert cache.judged == judged
    assert "XYZ" not in {p.code for p in season_from_service(service, cache).model.parties}

    # A zone change re-judges every report (once), and so does a party change.
    zone = store.get_zone("nk-pk-zone")
    store.new_zone_version(
        replace(zone, geometry=shapely.buffer(zone.geometry, 0.01), valid_from=T0), "test"
    )
    _assert_same_as_fresh(service, cache)
    assert cache.judged == 2 * judged  # once for each party's season
    store.put_party(Party(code="XYZ", name="Someone", color="#123456"), "test")
    store.add_reports(_reports(rng, "c", 10, times), "test")
    _assert_same_as_fresh(service, cache)
    assert cache.judged == 3 * judged

    season = season_from_service(service, cache)
    reference = _reference_counts(store)
    counts = season.window_counts(None, None)
    assert (counts["reports"], counts["violationsInside"], counts["violationsPossible"]) == (
        reference
    )


def test_a_season_emptied_by_retractions_advances_and_fills_again(store: Store) -> None:
    service = Service(store)
    cache = SeasonCache()
    rng = random.Random(4)
    times: list[datetime] = []
    store.add_reports(_reports(rng, "a", 5, times), "test")
    _assert_same_as_fresh(service, cache)
    for report in store.list_reports(limit=1000)[0]:
        store.retract_report(report.id, "test", "test")
    _assert_same_as_fresh(service, cache)  # every report retracted: an empty season
    store.add_reports(_reports(rng, "b", 6, times), "test")
    _assert_same_as_fresh(service, cache)  # and from empty, reports again
    assert cache.judged == len({party for party, _ in QUERIES})


def test_a_write_during_a_judgement_is_held_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = Service(store)
    cache = SeasonCache()
    rng = random.Random(8)
    times: list[datetime] = []
    store.add_reports(_reports(rng, "a", 20, times), "test")
    late = _reports(rng, "late", 3, times)
    columns = store.report_columns

    # Written after the season's feed position is read and before its columns are: the
    # columns hold them, and the feed gives them again.
    def read_after_writes(**kwargs: Any) -> Any:
        store.add_reports(late[:2], "test")
        store.correct_report(replace(late[0], lon=46.8, lat=39.9), "test")
        return columns(**kwargs)

    monkeypatch.setattr(store, "report_columns", read_after_writes)
    first = season_from_service(service, cache)
    monkeypatch.setattr(store, "report_columns", columns)
    assert len(first.t) == 13 + 20 + 2
    _assert_same_as_fresh(service, cache)
    assert len(season_from_service(service, cache).t) == 13 + 20 + 2


def test_a_write_during_an_advance_is_held_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = Service(store)
    cache = SeasonCache()
    rng = random.Random(9)
    times: list[datetime] = []
    store.add_reports(_reports(rng, "a", 20, times), "test")
    season_from_service(service, cache)
    store.add_reports(_reports(rng, "b", 5, times), "test")
    during = _reports(rng, "during", 4, times)
    feed = store.reports_after
    calls = {"n": 0}

    # Two reports land while the feed is read (after its page), one is retracted.
    def write_while_reading(position: int, limit: int) -> Any:
        answer = feed(position, limit)
        if calls["n"] == 0:
            store.add_reports(during, "test")
            store.retract_report(during[1].id, "gone", "test")
        calls["n"] += 1
        return answer

    monkeypatch.setattr(store, "reports_after", write_while_reading)
    advanced = season_from_service(service, cache)
    assert len(advanced.t) == 13 + 25  # the page read before the writes
    again = season_from_service(service, cache)
    assert len(again.t) == 13 + 25 + 3
    monkeypatch.setattr(store, "reports_after", feed)
    assert (cache.judged, cache.advanced) == (1, 2)
    _assert_same_as_fresh(service, cache)


def test_writes_from_threads_while_the_map_is_read_are_all_held_once(store: Store) -> None:
    service = Service(store)
    cache = SeasonCache()
    rng = random.Random(10)
    times: list[datetime] = []
    batches = [_reports(rng, f"t{k}", 5, times) for k in range(8)]
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for batch in batches:
                store.add_reports(batch, "test")
                store.correct_report(replace(batch[0], uncertainty_m=999.0), "test")
        except BaseException as error:
            errors.append(error)

    writer = threading.Thread(target=write)
    writer.start()
    for _ in range(40):
        season_from_service(service, cache)
        if not writer.is_alive():
            break
    writer.join(60)
    assert not writer.is_alive() and not errors
    season = season_from_service(service, cache)
    assert len(season.t) == 13 + 40
    assert len(set(season.model.reports["id"])) == 13 + 40
    _assert_same_as_fresh(service, cache)


def _season(n: int, basis: tuple[object, ...], position: int = 0) -> Season:
    """A stand-in season of `n` reports (only its size, basis and position matter here)."""
    empty = np.zeros(n)
    return Season(
        cast(Any, None), "", empty, empty, empty, empty, empty, empty, empty, empty, [],
        position=position, basis=basis,
    )  # fmt: skip


def test_a_big_season_is_judged_again_once_in_the_background_while_the_old_one_is_served() -> None:
    cache = SeasonCache(background_from=10)
    query = MapQuery()
    old = cache.get(query, 0, ("z1",), lambda: _season(10, ("z1",)), lambda s: None)
    release = threading.Event()
    builds: list[int] = []

    def slow() -> Season:
        builds.append(1)
        assert release.wait(30)
        return _season(11, ("z2",))

    served = [cache.get(query, 0, ("z2",), slow, lambda s: None) for _ in range(3)]
    assert all(s.stale and s.basis == ("z1",) and len(s.t) == len(old.t) for s in served)
    release.set()
    cache.settle(30)
    assert len(builds) == 1
    fresh = cache.get(query, 0, ("z2",), slow, lambda s: None)
    assert not fresh.stale and fresh.basis == ("z2",) and len(fresh.t) == 11


def test_a_small_season_is_judged_again_on_the_request() -> None:
    cache = SeasonCache(background_from=10)
    query = MapQuery()
    cache.get(query, 0, ("z1",), lambda: _season(9, ("z1",)), lambda s: None)
    again = cache.get(query, 0, ("z2",), lambda: _season(9, ("z2",)), lambda s: None)
    assert not again.stale and again.basis == ("z2",)


def test_an_advance_is_used_only_when_reports_were_written() -> None:
    cache = SeasonCache()
    query = MapQuery()
    cache.get(query, 3, ("z1",), lambda: _season(1, ("z1",), 3), lambda s: None)
    step = lambda s: _season(2, ("z1",), 5)  # noqa: E731
    assert len(cache.get(query, 5, ("z1",), lambda: _season(0, ("z1",)), step).t) == 2
    assert cache.advanced == 1 and cache.judged == 1
    # Nothing written since: the kept season, no advance.
    assert len(cache.get(query, 5, ("z1",), lambda: _season(0, ("z1",)), step).t) == 2
    assert cache.advanced == 1


def test_zone_cuts_never_push_out_the_seasons_they_are_cut_from() -> None:
    cache = SeasonCache(size=1)
    whole, one_zone = MapQuery(), MapQuery(zone="z")
    cache.get(whole, 0, ("z1",), lambda: _season(5, ("z1",)), lambda s: None)
    for zone in ("z", "y"):
        cut = MapQuery(zone=zone)
        cache.get(cut, 0, ("cut",), lambda: _season(1, ("cut",)), lambda s: None, cut=True)
    assert cache.peek(whole) is not None and cache.peek(one_zone) is None  # y pushed z out
    assert cache.judged == 1 and cache.cut == 2
