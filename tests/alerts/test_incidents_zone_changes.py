"""Incidents follow zone writes (both stores): a zone created, given a new version (moved,
grown, shrunk, its authorised parties changed) or retired recomputes, in the same transaction,
the incidents of the reports it can change, with their events after its `zone.changed`.

Every verdict a test relies on is decided first by the independent oracle (tests/oracle.py).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import shapely

from app.alerts.events import INCIDENT_CLOSED, INCIDENT_OPENED, INCIDENT_UPDATED, ZONE_CHANGED
from app.alerts.zone_changes import changed_regions, widen_bounds
from app.domain import Report
from app.store import IncidentFilter, Store
from tests.factories import AT, EPOCH, make_report, make_zone, square
from tests.oracle import depth_tolerance, geodesic_inv, oracle_depth, oracle_verdict

WARNING_M = 1000.0
ZONE = square(46.0, 39.0, 0.1)
SHRUNK = square(46.0, 39.0, 0.04)  # the west part only
GROWN = square(46.0, 39.0, 0.2)
DEEP = (46.05, 39.05)  # inside ZONE, outside SHRUNK
EAST = (46.15, 39.05)  # outside ZONE, inside GROWN
WEST = (46.02, 39.02)  # inside all three
NORTH_EAST = (46.07, 39.07)  # inside ZONE and GROWN, deeper in GROWN


def _zone(geometry: Any = ZONE, **kw: Any) -> Any:
    kw.setdefault("name", "Buffer")
    return make_zone(geometry, zone_id="z", warning_m=WARNING_M, **kw)


def _report(
    report_id: str, where: tuple[float, float], hours: float, unit: str | None = "u1", **kw: Any
) -> Report:
    return make_report(report_id, *where, unit=unit, observed_at=AT + timedelta(hours=hours), **kw)


def _verdict(where: tuple[float, float], zone: Any, u: float = 0.0) -> str:
    return oracle_verdict(oracle_depth(*where, zone), u, WARNING_M)


def _events(store: Store, after: int) -> list[tuple[str, Any]]:
    return [(e.type, e.data.get("incident_id")) for e in store.events_after(after)]


def _incidents(store: Store) -> list[Any]:
    return store.list_incidents(IncidentFilter(), limit=1000)[0]


def test_the_oracle_agrees_with_the_positions_the_tests_use() -> None:
    assert _verdict(DEEP, ZONE) == "inside"
    assert _verdict(DEEP, SHRUNK) == "outside"
    assert _verdict(EAST, ZONE) == "outside"
    assert _verdict(EAST, GROWN) == "inside"
    for zone in (ZONE, SHRUNK, GROWN):
        assert _verdict(WEST, zone) == "inside"
    assert _verdict(NORTH_EAST, ZONE) == _verdict(NORTH_EAST, GROWN) == "inside"


def test_a_zone_that_shrinks_away_from_a_unit_closes_its_incident(store: Store) -> None:
    store.add_zones([_zone()], "admin")
    store.add_reports([_report("a1", DEEP, 0), _report("a2", DEEP, 1)], "obs")
    (incident,) = _incidents(store)
    assert incident.state == "open"
    start = store.last_event_id()
    store.new_zone_version(_zone(SHRUNK), "admin")
    assert _events(store, start) == [(ZONE_CHANGED, None), (INCIDENT_CLOSED, incident.id)]
    closed = store.get_incident(incident.id)
    assert closed.state == "closed" and closed.close_reason == "zone-changed"
    assert closed.closed_at is not None and closed.closed_at > datetime.now(UTC) - timedelta(
        minutes=5
    )
    # A later report of the unit, still outside the shrunk zone, changes nothing.
    start = store.last_event_id()
    store.add_reports([_report("a3", DEEP, 2)], "obs")
    assert _events(store, start) == []
    assert [i.id for i in _incidents(store)] == [incident.id]


def test_a_zone_that_grows_over_a_unit_opens_an_incident(store: Store) -> None:
    store.add_zones([_zone()], "admin")
    store.add_reports([_report("b1", EAST, 0), _report("b2", EAST, 1)], "obs")
    assert _incidents(store) == []
    start = store.last_event_id()
    store.new_zone_version(_zone(GROWN), "admin")
    (incident,) = _incidents(store)
    assert _events(store, start) == [(ZONE_CHANGED, None), (INCIDENT_OPENED, incident.id)]
    assert incident.state == "open" and incident.report_ids == ("b1", "b2")
    assert incident.verdict == "inside"
    reference = oracle_depth(*EAST, GROWN)
    assert abs(incident.depth_m - reference) <= depth_tolerance(reference)


def test_allowing_the_party_closes_its_incident_and_forbidding_it_reopens_it(
    store: Store,
) -> None:
    store.add_zones([_zone()], "admin")
    store.add_reports([_report("c1", WEST, 0)], "obs")
    (incident,) = _incidents(store)
    start = store.last_event_id()
    store.new_zone_version(_zone(authorized={"RU-PK", "AZE"}), "admin")
    assert _events(store, start) == [(ZONE_CHANGED, None), (INCIDENT_CLOSED, incident.id)]
    assert store.get_incident(incident.id).close_reason == "zone-changed"
    # Forbidden again: the same episode comes back under the same id.
    start = store.last_event_id()
    store.new_zone_version(_zone(), "admin")
    assert _events(store, start) == [(ZONE_CHANGED, None), (INCIDENT_UPDATED, incident.id)]
    again = store.get_incident(incident.id)
    assert again.state == "open" and again.close_reason is None
    assert [i.id for i in _incidents(store)] == [incident.id]


def test_an_incident_that_still_exists_keeps_its_id_with_its_new_depth(store: Store) -> None:
    store.add_zones([_zone()], "admin")
    store.add_reports([_report("d1", NORTH_EAST, 0)], "obs")
    (incident,) = _incidents(store)
    start = store.last_event_id()
    store.new_zone_version(_zone(GROWN, name="Grown"), "admin")
    assert _events(store, start) == [(ZONE_CHANGED, None), (INCIDENT_UPDATED, incident.id)]
    kept = store.get_incident(incident.id)
    assert kept.state == "open" and kept.zone_name == "Grown"
    reference = oracle_depth(*NORTH_EAST, GROWN)
    assert abs(kept.depth_m - reference) <= depth_tolerance(reference)
    assert reference - oracle_depth(*NORTH_EAST, ZONE) > 1000  # the depth did change


def test_a_zone_created_over_reports_already_filed_opens_their_incidents(store: Store) -> None:
    store.add_reports([_report("e1", DEEP, 0), _report("e2", DEEP, 1, unit=None)], "obs")
    start = store.last_event_id()
    store.add_zones([_zone()], "admin")
    incidents = {i.report_key: i for i in _incidents(store)}
    assert set(incidents) == {None, "e2"}
    assert incidents[None].state == "open" and incidents[None].report_ids == ("e1",)
    assert incidents["e2"].state == "closed" and incidents["e2"].close_reason == "single-report"
    kinds = [t for t, _ in _events(store, start)]
    assert kinds[0] == ZONE_CHANGED
    assert sorted(kinds[1:]) == [INCIDENT_CLOSED, INCIDENT_OPENED, INCIDENT_OPENED]


def test_a_unitless_report_left_outside_is_relabelled_once(store: Store) -> None:
    store.add_zones([_zone()], "admin")
    store.add_reports([_report("f1", DEEP, 0, unit=None)], "obs")
    (incident,) = _incidents(store)
    start = store.last_event_id()
    store.new_zone_version(_zone(SHRUNK), "admin")
    assert _events(store, start) == [(ZONE_CHANGED, None), (INCIDENT_UPDATED, incident.id)]
    assert store.get_incident(incident.id).close_reason == "zone-changed"
    start = store.last_event_id()
    store.new_zone_version(_zone(SHRUNK, name="Shrunk"), "admin")
    assert _events(store, start) == [(ZONE_CHANGED, None)]


def test_retiring_a_zone_closes_at_the_first_report_after(store: Store) -> None:
    store.add_zones([_zone()], "admin")
    store.add_reports([_report(f"g{h}", DEEP, h) for h in range(4)], "obs")
    (incident,) = _incidents(store)
    assert incident.state == "open"
    start = store.last_event_id()
    store.retire_zone("z", AT + timedelta(hours=1, minutes=30), "admin")
    assert _events(store, start) == [(ZONE_CHANGED, None), (INCIDENT_CLOSED, incident.id)]
    closed = store.get_incident(incident.id)
    assert closed.close_reason == "exited" and closed.closed_at == AT + timedelta(hours=2)
    assert closed.last_seen_at == AT + timedelta(hours=1)
    assert closed.report_ids == ("g0", "g1", "g2")


def test_a_report_within_its_uncertainty_of_a_moved_edge_is_found(store: Store) -> None:
    # 1.5 km east of the edge of the zone moved over from the west, with 2 km uncertainty:
    # `possible` (a box around the zone without the uncertainty would miss it).
    near = (46.1 + 0.0174, 39.05)
    moved = ZONE
    store.add_zones([_zone(square(45.5, 39.0, 0.1))], "admin")
    store.add_reports([_report("h1", near, 0, unit=None, uncertainty_m=2000.0)], "obs")
    assert _incidents(store) == []
    assert _verdict(near, moved, 2000.0) == "possible"
    store.new_zone_version(_zone(moved), "admin")
    (incident,) = _incidents(store)
    assert incident.report_key == "h1" and incident.verdict == "possible"


def test_a_change_outside_the_period_of_the_reports_touches_nothing(store: Store) -> None:
    store.add_zones([_zone()], "admin")
    store.add_reports([_report("k1", DEEP, 0)], "obs")
    (incident,) = _incidents(store)
    start = store.last_event_id()
    # The shrunk version is in force only from a week after the report.
    store.new_zone_version(_zone(SHRUNK, valid_from=AT + timedelta(days=7)), "admin")
    assert _events(store, start) == [(ZONE_CHANGED, None)]
    assert store.get_incident(incident.id) == incident


@pytest.mark.parametrize("change", ["shrink", "grow", "allow", "move", "retire"])
def test_after_a_zone_change_incidents_are_as_if_the_zone_had_always_been_so(
    store: Store, change: str
) -> None:
    """Zone `z` is changed after the reports are filed; zone `w` had the changed content from
    the start. Both are judged over the same reports in the same store, so `z`'s incidents
    (those the change closed aside) must be `w`'s (both sides come from the store: the
    scenario tests above pin the verdicts with the oracle)."""
    rng = np.random.default_rng(sorted(("shrink", "grow", "allow", "move", "retire")).index(change))
    reports = []
    for unit in range(20):
        lon, lat = 45.98 + rng.uniform(0, 0.16), 38.99 + rng.uniform(0, 0.12)
        for step in range(8):
            lon += rng.normal(0, 0.02)
            lat += rng.normal(0, 0.01)
            reports.append(
                make_report(
                    f"u{unit}-{step}",
                    float(lon),
                    float(lat),
                    party=("AZE", "ARM")[unit % 2],
                    unit=None if unit >= 17 else f"unit{unit}",
                    observed_at=AT + timedelta(hours=step),
                    uncertainty_m=float(rng.choice([0.0, 300.0, 1500.0])),
                )
            )
    retired_at = AT + timedelta(hours=3, minutes=30)
    changed = {
        "shrink": _zone(SHRUNK),
        "grow": _zone(GROWN),
        "allow": _zone(authorized={"RU-PK", "AZE"}),
        "move": _zone(square(46.05, 39.02, 0.1)),
        "retire": _zone(valid_to=retired_at),
    }[change]

    def episodes(zone_id: str) -> list[tuple[Any, ...]]:
        return sorted(
            (i.party, i.unit or "", i.report_key or "", i.state, i.close_reason or "")
            + (i.report_ids, i.verdict)
            for i in store.list_incidents(IncidentFilter(zone=zone_id), limit=1000)[0]
            if i.close_reason != "zone-changed"
        )

    store.add_zones([_zone(), replace(changed, id="w")], "admin")
    store.add_reports(reports, "obs")
    before = episodes("z")
    if change == "retire":
        store.retire_zone("z", retired_at, "admin")
    else:
        store.new_zone_version(changed, "admin")

    expected = episodes("w")
    assert expected and expected != before  # the walks violate the zone, the change shows
    assert episodes("z") == expected


def test_changed_regions_cover_only_what_changed() -> None:
    v1 = _zone(valid_from=EPOCH)
    # The same content again: nothing to recompute.
    assert changed_regions([v1], [v1], 0.0) == []
    # Retired at `at`: only from `at` on.
    at = AT + timedelta(hours=2)
    (region,) = changed_regions([v1], [_zone(valid_to=at)], 0.0)
    assert (region.start, region.end) == (at, None)
    assert region.bounds == pytest.approx(ZONE.bounds)
    # A new version from `at`: the old one stays before it; both shapes after.
    old = [v1]
    new = [_zone(valid_to=at), _zone(GROWN, valid_from=at)]
    (region,) = changed_regions(old, new, 0.0)
    assert (region.start, region.end) == (at, None)
    assert region.bounds == pytest.approx(GROWN.bounds)


@pytest.mark.parametrize("lat", [0.0, 39.0, 60.0, 85.0])
def test_widened_bounds_reach_at_least_so_far(lat: float) -> None:
    box = (10.0, lat, 10.1, lat + 0.1)
    metres = 5000.0
    minx, miny, maxx, maxy = widen_bounds(box, metres)
    for y in (box[1], box[3]):  # east and west, at both latitudes of the box
        assert geodesic_inv(box[2], y, maxx, y) >= metres
        assert geodesic_inv(minx, y, box[0], y) >= metres
    assert geodesic_inv(10.0, box[3], 10.0, maxy) >= metres
    assert geodesic_inv(10.0, miny, 10.0, box[1]) >= metres
    assert shapely.box(*box).within(shapely.box(minx, miny, maxx, maxy))
