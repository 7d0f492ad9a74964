"""The zone import rule (`app.zone_import`) and `Service.import_zones`, which applies it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from shapely.geometry import box

from app.domain import Zone, ZoneKind
from app.service import Service
from app.store import Conflict, SQLiteStore
from app.zone_import import plan_zone_import, same_zone

T0 = datetime(2020, 11, 10, tzinfo=UTC)


def zone(zone_id: str, version: int = 1, name: str = "Zone", size: float = 0.1) -> Zone:
    return Zone(
        id=zone_id,
        name=name,
        kind=ZoneKind.BUFFER,
        geometry=box(46.0, 39.0, 46.0 + size, 39.0 + size),
        valid_from=T0,
        version=version,
    )


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    store = SQLiteStore(tmp_path / "truce.sqlite")
    yield Service(store)
    store.close()


def test_same_zone_ignores_the_version_and_an_empty_agreement() -> None:
    a = zone("a")
    assert same_zone(a, replace(a, version=5, agreement=""))
    assert not same_zone(a, replace(a, name="Other"))
    assert not same_zone(a, zone("a", size=0.2))
    assert not same_zone(a, replace(a, authorized_parties=frozenset({"RU-PK"})))
    # A line found to be known less (or more) precisely is a change: a new version.
    assert not same_zone(a, replace(a, boundary_uncertainty_m=2000.0))


def test_a_plan_creates_first_versions_adds_later_ones_and_skips_what_is_stored() -> None:
    stored = [zone("a", 1), zone("a", 2, name="A2")]
    incoming = [zone("b", 2, name="B2"), zone("a", 2, name="A2"), zone("a", 3, name="A3")]
    incoming.append(zone("b", 1))
    plan = plan_zone_import(incoming, {"a": stored})
    assert [(z.id, z.version) for z in plan.create] == [("b", 1)]
    assert [(z.id, z.version) for z in plan.add] == [("a", 3), ("b", 2)]
    assert plan.duplicates == ["a v2"]


def test_a_plan_refuses_a_changed_version_that_reuses_a_stored_number() -> None:
    incoming = [zone("a", 1), zone("a", 2, name="changed")]
    with pytest.raises(Conflict, match=r"'a' version 2 differs.*next version number \(4\)") as exc:
        plan_zone_import(incoming, {"a": [zone("a", 1), zone("a", 2), zone("a", 3)]})
    assert exc.value.index == 1 and exc.value.field == "properties/version"


def test_importing_twice_stores_once(service: Service) -> None:
    zones = [zone("a", 1), zone("a", 2, name="A2"), zone("b", 1)]
    first = service.import_zones(zones, "test")
    assert [(z.id, z.version) for z in first.created] == [("a", 1), ("b", 1)]
    assert [(z.id, z.version) for z in first.added] == [("a", 2)]
    again = service.import_zones(zones, "test")
    assert (again.created, again.added) == ([], [])
    assert again.duplicates == ["a v1", "a v2", "b v1"]
    assert [z.name for z in service.zone_history("a")] == ["Zone", "A2"]


def test_a_refused_import_stores_nothing(service: Service) -> None:
    service.import_zones([zone("a", 1)], "test")
    with pytest.raises(Conflict):
        service.import_zones([zone("new", 1), zone("a", 1, name="changed")], "test")
    assert [z.id for z in service.list_zones(None)] == ["a"]


def test_an_import_moves_the_zone_index(service: Service) -> None:
    before = service.index()
    service.import_zones([zone("a", 1)], "test")
    after = service.index()
    assert after is not before and list(after.zone_ids) == ["a"]
    service.import_zones([zone("a", 1)], "test")  # a duplicate: nothing stored
    assert service.index() is after
