"""`track.stale` for every track gone stale inside a zone (both stores), as DESIGN words it:
a unit *in* a zone (tracks' hysteresis over its verdicts, whoever is authorised there) and not
reported for the set time. An unauthorised unit's event names its open incident; a unit whose
party the zone authorises has no incident, and its event says so (`incident_id` null).

Positions are checked with the independent oracle first; the sweep is compared with what
`/tracks` (app.tracks) calls `stale` at the same instant.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np

from app.alerts.events import TRACK_STALE
from app.domain import Report
from app.service import Service
from app.store import IncidentFilter, Store
from tests.factories import AT, make_report, make_zone, square
from tests.oracle import depth_tolerance, oracle_depth, oracle_verdict

ZONE = square(46.0, 39.0, 0.1)
WARNING_M = 1000.0
DEEP = (46.05, 39.05)
EDGE = (46.0005, 39.05)  # `possible` with 200 m uncertainty
NEAR = (45.995, 39.05)  # approaching
HOUR = timedelta(hours=1)


def _zoned(store: Store) -> Store:
    store.add_zones([make_zone(ZONE, zone_id="z", name="Buffer", warning_m=WARNING_M)], "admin")
    return store


def _report(report_id: str, where: tuple[float, float], hours: float, **kw: Any) -> Report:
    kw.setdefault("unit", "pk-1")
    kw.setdefault("party", "RU-PK")  # authorised in the zone
    return make_report(report_id, *where, observed_at=AT + hours * HOUR, **kw)


def test_the_oracle_agrees_with_the_positions_the_tests_use() -> None:
    assert oracle_verdict(oracle_depth(*DEEP, ZONE), 0, WARNING_M) == "inside"
    assert oracle_verdict(oracle_depth(*EDGE, ZONE), 200, WARNING_M) == "possible"
    assert oracle_verdict(oracle_depth(*NEAR, ZONE), 0, WARNING_M) == "approaching"


def test_an_authorised_unit_gone_stale_in_its_zone_is_announced_once(store: Store) -> None:
    store = _zoned(store)
    store.add_reports([_report("p0", NEAR, 0), _report("p1", DEEP, 1)], "obs")
    assert store.count_incidents(IncidentFilter()) == 0  # RU-PK is authorised there
    assert store.mark_stale_tracks(AT + 1.5 * HOUR, HOUR) == []
    (stale,) = store.mark_stale_tracks(AT + 2 * HOUR, HOUR)
    assert stale.type == TRACK_STALE
    data = stale.data
    assert data["incident_id"] is None
    assert (data["party"], data["unit"], data["zone_id"], data["zone_name"]) == (
        "RU-PK",
        "pk-1",
        "z",
        "Buffer",
    )
    assert data["report_id"] == "p1" and data["verdict"] == "inside"
    assert data["observed_at"] == (AT + HOUR).isoformat()
    reference = oracle_depth(*DEEP, ZONE)
    assert abs(data["depth_m"] - reference) <= depth_tolerance(reference)
    assert store.events_after(stale.id - 1, types=[TRACK_STALE]) == [stale]
    assert store.mark_stale_tracks(AT + 5 * HOUR, HOUR) == []  # once per sighting
    store.add_reports([_report("p2", DEEP, 6)], "obs")  # seen again: stale again later
    assert store.mark_stale_tracks(AT + 6.5 * HOUR, HOUR) == []
    (again,) = store.mark_stale_tracks(AT + 7 * HOUR, HOUR)
    assert again.data["report_id"] == "p2" and again.id > stale.id


def test_a_possible_finding_keeps_the_unit_in_and_leaving_ends_it(store: Store) -> None:
    store = _zoned(store)
    store.add_reports(
        [_report("q0", DEEP, 0), _report("q1", EDGE, 1, uncertainty_m=200.0)]
        + [_report("r0", DEEP, 0, unit="pk-2"), _report("r1", NEAR, 1, unit="pk-2")],
        "obs",
    )
    (stale,) = store.mark_stale_tracks(AT + 3 * HOUR, HOUR)
    assert stale.data["unit"] == "pk-1" and stale.data["report_id"] == "q1"
    assert stale.data["verdict"] == "possible"  # the last report's finding
    assert stale.data["incident_id"] is None


def test_an_unauthorised_unit_is_announced_once_with_its_incident(store: Store) -> None:
    store = _zoned(store)
    store.add_reports([_report("a0", DEEP, 0, party="AZE", unit="az-1")], "obs")
    ((incident_id,),) = [(i.id,) for i in store.list_incidents(IncidentFilter())[0]]
    events = store.mark_stale_tracks(AT + 2 * HOUR, HOUR)
    assert [(e.data["unit"], e.data["incident_id"]) for e in events] == [("az-1", incident_id)]


def test_the_sweep_raises_what_tracks_call_stale(store: Store) -> None:
    """Random walks of authorised and unauthorised units across the zone, some jittering on
    its edge: the first sweep's events are exactly the (unit, zone) pairs `/tracks` calls
    `stale` at the same instant."""
    store = _zoned(store)
    rng = np.random.default_rng(14)
    reports = []
    for k in range(24):
        lon, lat = 45.98 + rng.uniform(0, 0.14), 39.0 + rng.uniform(0, 0.1)
        steps = int(rng.integers(1, 12))
        for step in range(steps):
            lon += rng.normal(0, 0.015)
            lat += rng.normal(0, 0.01)
            reports.append(
                make_report(
                    f"w{k}-{step}",
                    float(lon),
                    float(lat),
                    party=("RU-PK", "AZE")[k % 2],
                    unit=f"walker-{k}",
                    observed_at=AT + timedelta(minutes=int(rng.integers(0, 600))),
                    uncertainty_m=float(rng.choice([0.0, 300.0, 1500.0])),
                )
            )
    store.add_reports(reports, "obs")
    now = AT + 20 * HOUR
    stale_after = 4 * HOUR
    expected = {
        (row["party"], row["unit"], zone)
        for row in Service(store).tracks(now=now, stale_after=stale_after)
        for zone, state in row["zones"].items()
        if state == "stale"
    }
    events = store.mark_stale_tracks(now, stale_after)
    got = {(e.data["party"], e.data["unit"], e.data["zone_id"]) for e in events}
    assert got == expected
    assert {p for p, _, _ in expected} == {"RU-PK", "AZE"}  # both kinds of unit are in it
