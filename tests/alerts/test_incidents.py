"""Incidents over both stores: kept in step with the report writes, with their events.

Positions are chosen against the zone `square(46.0, 39.0, 0.1)` (RU-PK authorised, AZE not);
every depth and verdict the tests rely on is first checked with the independent oracle
(tests/oracle.py), never taken from the engine.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.alerts.events import (
    INCIDENT_CLOSED,
    INCIDENT_OPENED,
    INCIDENT_UPDATED,
    TRACK_STALE,
    ZONE_CHANGED,
)
from app.domain import Report
from app.store import Conflict, IncidentFilter, Store, UnknownIncident
from tests.factories import AT, make_report, make_zone, square
from tests.oracle import depth_tolerance, oracle_depth, oracle_verdict

ZONE = square(46.0, 39.0, 0.1)
WARNING_M = 1000.0
DEEP = (46.05, 39.05)  # the middle: ~4.3 km inside
SHALLOW = (46.08, 39.05)  # ~1.7 km inside
EDGE = (46.0005, 39.05)  # ~43 m inside the west edge: `possible` with 200 m uncertainty
NEAR = (45.995, 39.05)  # ~430 m outside: approaching
FAR = (45.5, 39.05)  # far outside


@pytest.fixture
def zoned(store: Store) -> Store:
    store.add_zones([make_zone(ZONE, zone_id="z", name="Buffer", warning_m=WARNING_M)], "admin")
    return store


def _report(
    report_id: str, where: tuple[float, float], hours: float, unit: str | None = "u1", **kw: Any
) -> Report:
    return make_report(report_id, *where, unit=unit, observed_at=AT + timedelta(hours=hours), **kw)


def _incident_events(store: Store, after: int = 0) -> list[tuple[str, int, str]]:
    return [
        (e.type, e.data["incident_id"], e.data["state"])
        for e in store.events_after(after)
        if e.type != ZONE_CHANGED
    ]


def _all(store: Store, **filters: Any) -> list[Any]:
    return store.list_incidents(IncidentFilter(**filters), limit=1000)[0]


def test_the_oracle_agrees_with_the_positions_the_tests_use() -> None:
    assert oracle_verdict(oracle_depth(*DEEP, ZONE), 0, WARNING_M) == "inside"
    assert oracle_verdict(oracle_depth(*SHALLOW, ZONE), 0, WARNING_M) == "inside"
    assert oracle_verdict(oracle_depth(*EDGE, ZONE), 200, WARNING_M) == "possible"
    assert oracle_verdict(oracle_depth(*NEAR, ZONE), 0, WARNING_M) == "approaching"
    assert oracle_verdict(oracle_depth(*FAR, ZONE), 0, WARNING_M) == "outside"


def test_a_unit_entering_staying_and_leaving(zoned: Store) -> None:
    store = zoned
    start = store.last_event_id()
    store.add_reports([_report("r0", FAR, 0)], "obs")
    assert _incident_events(store, start) == []
    store.add_reports([_report("r1", SHALLOW, 1)], "obs")
    ((kind, incident_id, state),) = _incident_events(store, start)
    assert (kind, state) == (INCIDENT_OPENED, "open")
    store.add_reports([_report("r2", DEEP, 2)], "obs")
    store.add_reports([_report("r3", NEAR, 3)], "obs")
    assert _incident_events(store, start) == [
        (INCIDENT_OPENED, incident_id, "open"),
        (INCIDENT_UPDATED, incident_id, "open"),
        (INCIDENT_CLOSED, incident_id, "closed"),
    ]
    incident = store.get_incident(incident_id)
    assert (incident.party, incident.unit, incident.zone_id) == ("AZE", "u1", "z")
    assert incident.zone_name == "Buffer"
    assert incident.state == "closed" and incident.close_reason == "exited"
    assert incident.opened_at == AT + timedelta(hours=1)
    assert incident.last_seen_at == AT + timedelta(hours=2)
    assert incident.closed_at == AT + timedelta(hours=3)
    assert incident.report_ids == ("r1", "r2", "r3")
    assert incident.deepest_report_id == "r2" and incident.verdict == "inside"
    reference = oracle_depth(*DEEP, ZONE)
    assert abs(incident.depth_m - reference) <= depth_tolerance(reference)
    closed = store.events_after(start, types=[INCIDENT_CLOSED])[-1].data
    assert closed["report_id"] == "r3"
    assert closed["observed_at"] == (AT + timedelta(hours=3)).isoformat()
    assert closed["zone_id"] == "z" and closed["party"] == "AZE" and closed["unit"] == "u1"
    assert closed["verdict"] == "inside"
    assert abs(closed["depth_m"] - reference) <= depth_tolerance(reference)
    # Its timeline: the incident's own events, oldest first.
    assert [e.type for e in store.incident_events(incident_id)] == [
        INCIDENT_OPENED,
        INCIDENT_UPDATED,
        INCIDENT_CLOSED,
    ]


def test_the_same_track_filed_in_one_batch_gives_the_same_incident(zoned: Store) -> None:
    store = zoned
    start = store.last_event_id()
    store.add_reports(
        [_report("r0", FAR, 0), _report("r1", SHALLOW, 1), _report("r2", DEEP, 2)]
        + [_report("r3", NEAR, 3), _report("r4", DEEP, 4)],
        "obs",
    )
    first, second = _all(store)
    assert first.report_ids == ("r1", "r2", "r3") and first.state == "closed"
    assert second.report_ids == ("r4",) and second.state == "open"
    assert [k for k, _, _ in _incident_events(store, start)] == [
        INCIDENT_OPENED,
        INCIDENT_CLOSED,
        INCIDENT_OPENED,
    ]


def test_jitter_along_the_boundary_stays_one_incident(zoned: Store) -> None:
    store = zoned
    start = store.last_event_id()
    steps = [DEEP, EDGE, SHALLOW, EDGE, EDGE, SHALLOW]
    for hour, where in enumerate(steps):
        store.add_reports([_report(f"j{hour}", where, hour, uncertainty_m=200.0)], "obs")
    (incident,) = _all(store)
    assert incident.state == "open"
    assert incident.report_ids == tuple(f"j{n}" for n in range(len(steps)))
    kinds = [k for k, _, _ in _incident_events(store, start)]
    assert kinds == [INCIDENT_OPENED] + [INCIDENT_UPDATED] * (len(steps) - 1)


def test_possible_alone_does_not_open_a_units_incident(zoned: Store) -> None:
    store = zoned
    store.add_reports([_report("p0", EDGE, 0, uncertainty_m=200.0)], "obs")
    assert _all(store) == []


def test_an_authorised_party_opens_nothing(zoned: Store) -> None:
    store = zoned
    store.add_reports([_report("k0", DEEP, 0, party="RU-PK")], "obs")
    assert _all(store) == []


def test_a_report_without_a_unit_is_an_incident_of_its_own(zoned: Store) -> None:
    store = zoned
    start = store.last_event_id()
    store.add_reports(
        [_report("s1", DEEP, 0, unit=None), _report("s2", EDGE, 1, unit=None, uncertainty_m=200)],
        "obs",
    )
    deep, edge = _all(store)
    assert (deep.report_key, deep.unit, deep.close_reason) == ("s1", None, "single-report")
    assert deep.verdict == "inside" and edge.verdict == "possible"
    assert deep.opened_at == deep.closed_at == AT
    kinds = [k for k, _, _ in _incident_events(store, start)]
    assert kinds == [INCIDENT_OPENED, INCIDENT_CLOSED, INCIDENT_OPENED, INCIDENT_CLOSED]
    assert [s for _, _, s in _incident_events(store, start)] == ["open", "closed"] * 2


def test_a_correction_that_moves_the_unit_out_removes_its_incident(zoned: Store) -> None:
    store = zoned
    store.add_reports([_report("c1", DEEP, 0)], "obs")
    (incident,) = _all(store, state="open")
    start = store.last_event_id()
    store.correct_report(_report("c1", FAR, 0), "obs")
    assert _incident_events(store, start) == [(INCIDENT_CLOSED, incident.id, "closed")]
    after = store.get_incident(incident.id)
    assert after.state == "closed" and after.close_reason == "corrected"
    assert _all(store, state="open") == []
    # Corrected back inside: the same incident again, reopened (its id is stable).
    store.correct_report(_report("c1", SHALLOW, 0), "obs")
    (again,) = _all(store)
    assert again.id == incident.id and again.state == "open" and again.close_reason is None


def test_a_correction_through_update_reports_closes_it_too(zoned: Store) -> None:
    store = zoned
    store.add_reports([_report("c1", DEEP, 0, unit=None)], "obs")
    (incident,) = _all(store)
    store.update_reports([_report("c1", FAR, 0, unit=None)], "obs")
    assert store.get_incident(incident.id).close_reason == "corrected"


def test_a_retraction_closes_the_incident(zoned: Store) -> None:
    store = zoned
    store.add_reports([_report("t1", DEEP, 0), _report("t2", DEEP, 1)], "obs")
    (incident,) = _all(store)
    store.retract_report("t2", "misread", "obs")
    kept = store.get_incident(incident.id)
    assert kept.state == "open" and kept.report_ids == ("t1",)
    start = store.last_event_id()
    store.retract_report("t1", "misread", "obs")
    assert _incident_events(store, start) == [(INCIDENT_CLOSED, incident.id, "closed")]
    assert store.get_incident(incident.id).close_reason == "retracted"


def test_a_late_report_keeps_the_incident_id(zoned: Store) -> None:
    store = zoned
    store.add_reports([_report("a1", DEEP, 1), _report("a3", DEEP, 3)], "obs")
    (incident,) = _all(store)
    store.add_reports([_report("a2", SHALLOW, 2)], "obs")
    (same,) = _all(store)
    assert same.id == incident.id and same.report_ids == ("a1", "a2", "a3")
    # A late report outside splits the episode: the first part keeps the id.
    store.add_reports([_report("a25", FAR, 2.5)], "obs")
    first, second = _all(store)
    assert first.id == incident.id and first.report_ids == ("a1", "a2", "a25")
    assert second.id != incident.id and second.report_ids == ("a3",)


def test_a_rolled_back_write_emits_nothing(zoned: Store) -> None:
    store = zoned
    store.add_reports([_report("x1", FAR, 0)], "obs")
    before = store.last_event_id()
    with pytest.raises(Conflict):
        store.add_reports([_report("x2", DEEP, 1), _report("x1", DEEP, 0)], "obs")
    assert store.last_event_id() == before
    assert _all(store) == []
    with pytest.raises(Conflict):
        store.add_reports([_report("y", DEEP, 1), _report("y", FAR, 1)], "obs")
    assert store.last_event_id() == before


def test_stale_tracks_are_announced_once_per_sighting(zoned: Store) -> None:
    store = zoned
    store.add_reports([_report("s1", DEEP, 0), _report("o1", DEEP, 0, unit="u2")], "obs")
    store.add_reports([_report("o2", FAR, 0.5, unit="u2")], "obs")  # u2 is out again
    hour = timedelta(hours=1)
    assert store.mark_stale_tracks(AT + timedelta(minutes=59), hour) == []
    (stale,) = store.mark_stale_tracks(AT + 2 * hour, hour)
    assert stale.type == TRACK_STALE
    assert stale.data["unit"] == "u1" and stale.data["zone_id"] == "z"
    assert stale.data["report_id"] == "s1" and stale.data["stale_after_s"] == 3600.0
    assert store.events_after(stale.id - 1, types=[TRACK_STALE]) == [stale]
    assert store.mark_stale_tracks(AT + 3 * hour, hour) == []
    store.add_reports([_report("s2", DEEP, 4)], "obs")  # seen again: stale again later
    assert store.mark_stale_tracks(AT + 4.5 * hour, hour) == []
    (again,) = store.mark_stale_tracks(AT + 6 * hour, hour)
    assert again.data["report_id"] == "s2" and again.id > stale.id


def test_incident_listing_filters_and_pages(zoned: Store) -> None:
    store = zoned
    store.add_reports(
        [_report(f"u{n}", DEEP, n, unit=f"unit{n}") for n in range(5)]
        + [_report("lone", EDGE, 10, unit=None, uncertainty_m=200.0)],
        "obs",
    )
    assert store.count_incidents(IncidentFilter()) == 6
    assert store.count_incidents(IncidentFilter(verdict="possible")) == 1
    assert store.count_incidents(IncidentFilter(state="closed")) == 1
    assert store.count_incidents(IncidentFilter(zone="nowhere")) == 0
    assert store.count_incidents(IncidentFilter(party="AZE")) == 6
    window = IncidentFilter(since=AT + timedelta(hours=1), until=AT + timedelta(hours=3))
    assert [i.unit for i in _all(store, since=window.since, until=window.until)] == [
        "unit1",
        "unit2",
    ]
    seen: list[int] = []
    cursor = None
    while True:
        page, cursor = store.list_incidents(IncidentFilter(), limit=4, after=cursor)
        seen.extend(i.id for i in page)
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 6
    with pytest.raises(UnknownIncident):
        store.get_incident(10_000)
    with pytest.raises(UnknownIncident):
        store.incident_events(10_000)


def test_incident_depths_agree_with_the_oracle(zoned: Store) -> None:
    store = zoned
    points = [(46.0 + 0.01 * k, 39.0 + 0.007 * k) for k in range(1, 10)]
    store.add_reports([_report(f"d{k}", p, k, unit=None) for k, p in enumerate(points)], "obs")
    incidents = {i.report_key: i for i in _all(store)}
    for k, p in enumerate(points):
        reference = oracle_depth(*p, ZONE)
        assert abs(incidents[f"d{k}"].depth_m - reference) <= depth_tolerance(reference)
    assert len(incidents) == len(points)


def test_a_zone_change_before_a_report_is_seen_by_its_incident(zoned: Store) -> None:
    store = zoned
    store.add_reports([_report("v1", DEEP, 0, unit=None)], "obs")
    store.new_zone_version(
        make_zone(ZONE, zone_id="z", name="Renamed", valid_from=AT + timedelta(hours=1)), "admin"
    )
    store.add_reports([_report("v2", DEEP, 2, unit=None)], "obs")
    names = {i.report_key: i.zone_name for i in _all(store)}
    assert names == {"v1": "Buffer", "v2": "Renamed"}
