"""Zones the engine cannot judge are refused before they are stored; one that is stored anyway
(written past validation) is set aside, named in `/health`, and stops nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import Polygon, box

from app.domain import Zone, ZoneKind
from app.store import open_store
from tests.api.support import assert_problem, auth
from tests.factories import PARUKH, point_feature, zone_feature
from tests.oracle import oracle_depth

WORLD = [[-180, -90], [180, -90], [180, 90], [-180, 90], [-180, -90]]
HEMISPHERE = [[0, -90], [180, -90], [180, 90], [0, 90], [0, -90]]
POLE_TO_POLE = [[10, -90], [20, -90], [20, 90], [10, 90], [10, -90]]
CONTINENT = [[0, -60], [170, -60], [170, 60], [0, 60], [0, -60]]

UNJUDGEABLE = {
    "world": (WORLD, "geometry/coordinates/0/2"),
    "hemisphere": (HEMISPHERE, "geometry/coordinates/0/2"),
    "pole to pole": (POLE_TO_POLE, "geometry/coordinates/0/2"),
    "continent": (CONTINENT, "geometry/coordinates/0/2"),
}


def every_version(client: TestClient) -> list[tuple[str, int]]:
    """(id, version) of every zone version stored."""
    body = client.get("/zones", params={"at": "all"}, headers=auth("viewer")).json()
    return sorted((f["id"], f["properties"]["version"]) for f in body["features"])


@pytest.mark.parametrize(("ring", "field"), UNJUDGEABLE.values(), ids=UNJUDGEABLE.keys())
def test_zone_beyond_the_engines_reach_is_refused_and_not_stored(
    client: TestClient, ring: list[list[float]], field: str
) -> None:
    before = every_version(client)
    response = client.post("/zones", json=zone_feature("too-big", ring=ring), headers=auth("admin"))
    problem = assert_problem(response, 422, field)
    assert "cannot be judged" in problem["detail"]
    assert every_version(client) == before
    # Everything else still answers.
    assert (
        client.post("/check", json=point_feature(*PARUKH), headers=auth("viewer")).status_code
        == 200
    )


def test_collection_with_one_unjudgeable_zone_stores_none_of_it(client: TestClient) -> None:
    before = every_version(client)
    body = {
        "type": "FeatureCollection",
        "features": [zone_feature("fine"), zone_feature("world", ring=WORLD)],
    }
    problem = assert_problem(
        client.post("/zones", json=body, headers=auth("admin")),
        422,
        "features/1/geometry/coordinates/0/2",
    )
    assert problem["index"] == 1
    assert every_version(client) == before


def test_zone_at_the_north_pole_is_stored_and_judged(client: TestClient) -> None:
    ring = [[0, 80], [90, 80], [90, 90], [0, 90], [0, 80]]
    created = client.post("/zones", json=zone_feature("polar", ring=ring), headers=auth("admin"))
    assert created.status_code == 201, created.text
    report = point_feature(45.0, 89.0, observed_at="2022-03-24T06:00:00+00:00")
    found = client.post("/check", json=report, headers=auth("viewer")).json()
    (finding,) = [f for f in found["features"] if f["properties"]["zone_id"] == "polar"]
    reference = oracle_depth(45.0, 89.0, Polygon(ring))
    assert finding["properties"]["verdict"] == "inside"
    assert finding["properties"]["depth_m"] == pytest.approx(reference, abs=0.5)


def _stored_past_validation(zone_id: str, geometry: shapely.Geometry) -> Zone:
    return Zone(
        id=zone_id,
        name=f"Zone {zone_id}",
        kind=ZoneKind.BUFFER,
        geometry=geometry,
        valid_from=datetime(2020, 1, 1, tzinfo=UTC),
        authorized_parties=frozenset({"RU-PK"}),
    )


@pytest.mark.parametrize("store_kind", ["sqlite", "postgis"])
def test_zone_stored_past_validation_is_set_aside_and_the_rest_keeps_working(
    database_url: str, make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    # Written through the store, past the API's validation, as an older Truce might have.
    world = box(-180, -90, 180, 90)
    store = open_store(database_url)
    try:
        store.add_zones([_stored_past_validation("world", world)], actor="test")
    finally:
        store.close()

    with caplog.at_level(logging.ERROR, logger="truce.engine"):
        client = make_client()  # starts: the index is built at start-up
    assert any("'world'" in r.getMessage() for r in caplog.records if r.name == "truce.engine")

    health = client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "degraded"
    assert [(z["id"], z["version"]) for z in body["zones_set_aside"]] == [("world", 1)]
    assert "cannot be judged" in body["zones_set_aside"][0]["reason"]

    # Checks, filing, incursions, tracks and the map answer for the other zones as before.
    found = client.post("/check", json=point_feature(*PARUKH), headers=auth("viewer"))
    assert found.status_code == 200
    zones = {f["properties"]["zone_id"] for f in found.json()["features"]}
    assert zones and "world" not in zones
    filed = client.post(
        "/reports", json=point_feature(*PARUKH, id="r-pole", unit="u1"), headers=auth("observer")
    )
    assert filed.status_code in (200, 201), filed.text
    for path in ("/incursions", "/tracks/AZE/u1", "/reports", "/map"):
        assert client.get(path, headers=auth("viewer")).status_code == 200, path


def test_health_is_plain_ok_when_every_zone_is_indexed(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert "zones_set_aside" not in response.json()


def test_new_version_beyond_reach_is_refused_and_the_zone_keeps_its_history(
    client: TestClient,
) -> None:
    assert client.post("/zones", json=zone_feature("sq"), headers=auth("admin")).status_code == 201
    history = client.get("/zones/sq/history", headers=auth("viewer")).json()
    response = client.put(
        "/zones/sq", json=zone_feature("sq", ring=HEMISPHERE), headers=auth("admin")
    )
    assert_problem(response, 422, "geometry/coordinates/0/2")
    assert client.get("/zones/sq/history", headers=auth("viewer")).json() == history
