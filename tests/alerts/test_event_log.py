"""The event log over both stores: zone.changed in the zone write's transaction, paging by id."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from app.alerts.events import EVENT_TYPES, ZONE_CHANGED, Event, EventFilter
from app.store import Conflict, Store
from tests.factories import make_zone, square


def _zone_events(store: Store) -> list[tuple[str, int, str]]:
    return [
        (e.data["zone_id"], e.data["version"], e.data["change"])
        for e in store.events_after(0, types=[ZONE_CHANGED])
    ]


def test_an_empty_log_has_no_events(store: Store) -> None:
    assert store.last_event_id() == 0
    assert store.events_after(0) == []


def test_every_zone_write_appends_one_zone_changed_event(store: Store) -> None:
    store.add_zones([make_zone(zone_id="a"), make_zone(zone_id="b")], "admin")
    store.new_zone_version(make_zone(square(46.1, 39.1), zone_id="a", name="A moved"), "admin")
    store.retire_zone("b", datetime(2030, 1, 1, tzinfo=UTC), "admin")
    assert _zone_events(store) == [
        ("a", 1, "created"),
        ("b", 1, "created"),
        ("a", 2, "updated"),
        ("b", 2, "retired"),
    ]
    events = store.events_after(0)
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert len({e.id for e in events}) == 4
    assert store.last_event_id() == events[-1].id
    assert events[2].data["name"] == "A moved"
    for event in events:
        assert event.type == ZONE_CHANGED
        assert event.created_at.tzinfo is not None
        assert abs(datetime.now(UTC) - event.created_at) < timedelta(minutes=5)


def test_a_zone_write_that_fails_appends_nothing(store: Store) -> None:
    store.add_zones([make_zone(zone_id="a")], "admin")
    before = store.last_event_id()
    with pytest.raises(Conflict):
        store.add_zones([make_zone(zone_id="c"), make_zone(zone_id="a")], "admin")
    with pytest.raises(Conflict):
        store.retire_zone("a", datetime(1990, 1, 1, tzinfo=UTC), "admin")
    assert store.last_event_id() == before
    assert _zone_events(store) == [("a", 1, "created")]


def test_seeding_announces_every_zone_version(store: Store) -> None:
    zones = [make_zone(zone_id="a"), make_zone(zone_id="a", version=2), make_zone(zone_id="b")]
    assert store.seed(zones, [], "seed")
    assert _zone_events(store) == [("a", 1, "created"), ("a", 2, "updated"), ("b", 1, "created")]


def test_events_page_by_id_and_filter_by_type(store: Store) -> None:
    store.add_zones([make_zone(zone_id=f"z{n}") for n in range(5)], "admin")
    first = store.events_after(0, limit=2)
    rest = store.events_after(first[-1].id, limit=10)
    assert [e.data["zone_id"] for e in [*first, *rest]] == [f"z{n}" for n in range(5)]
    assert store.events_after(0, types=["incident.opened"]) == []
    assert store.events_after(0, types=[]) == []
    with pytest.raises(ValueError, match="unknown event type"):
        store.events_after(0, types=["zone.exploded"])


def test_other_processes_see_the_events(store: Store, reopen: Callable[[], Store]) -> None:
    other = reopen()
    store.add_zones([make_zone(zone_id="a")], "admin")
    assert [e.data["zone_id"] for e in other.events_after(0)] == ["a"]


def test_filters_read_zone_party_verdict_and_depth() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    incident = Event(
        1,
        "incident.opened",
        at,
        {"zone_id": "z", "party": "AZE", "verdict": "inside", "depth_m": 120.0},
    )
    zone = Event(2, ZONE_CHANGED, at, {"zone_id": "z", "version": 1, "change": "created"})
    assert EventFilter().matches(incident) and EventFilter().matches(zone)
    assert EventFilter(types=frozenset({"incident.opened"})).matches(incident)
    assert not EventFilter(types=frozenset({"incident.closed"})).matches(incident)
    assert EventFilter(zones=frozenset({"z"})).matches(zone)
    assert not EventFilter(zones=frozenset({"y"})).matches(incident)
    assert EventFilter(parties=frozenset({"AZE"})).matches(incident)
    assert not EventFilter(parties=frozenset({"AZE"})).matches(zone)
    assert not EventFilter(verdicts=frozenset({"possible"})).matches(incident)
    assert EventFilter(min_depth_m=120.0).matches(incident)
    assert not EventFilter(min_depth_m=120.5).matches(incident)
    assert not EventFilter(min_depth_m=0.0).matches(zone)
    assert len(EVENT_TYPES) == 5
