"""Zones over HTTP: listing in force, creating, versions, retirement, history, and bad zones."""

from __future__ import annotations

import copy

import pytest
from fastapi.testclient import TestClient

from app.api.models import Feature, Page, ZoneCollection
from tests.api.support import auth
from tests.factories import T, collection, point_feature, zone_feature

ADMIN = auth("admin")
VIEWER = auth("viewer")


def zone_ids(client: TestClient, **params: str) -> list[str]:
    response = client.get("/zones", params=params, headers=VIEWER)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/geo+json"
    Page.model_validate(response.json())
    return [f["id"] for f in response.json()["features"]]


def test_zones_in_force_at_a_time(client: TestClient) -> None:
    assert zone_ids(client, at=T) == ["nk-lachin-corridor", "nk-pk-zone"]
    # 15 Nov 2020: before the Aghdam hand-over, with the first zone of responsibility.
    assert zone_ids(client, at="2020-11-15T12:00:00+04:00") == [
        "nk-handover-aghdam",
        "nk-handover-kalbajar",
        "nk-handover-lachin",
        "nk-pk-zone",
    ]
    # An unencoded "+" in a query string arrives as a space: read as meant.
    raw = client.get("/zones?at=2020-11-15T12:00:00+04:00", headers=VIEWER)
    assert [f["id"] for f in raw.json()["features"]] == zone_ids(
        client, at="2020-11-15T12:00:00+04:00"
    )
    versions = client.get("/zones", params={"at": T}, headers=VIEWER).json()["features"]
    assert {f["id"]: f["properties"]["version"] for f in versions} == {
        "nk-lachin-corridor": 1,
        "nk-pk-zone": 2,
    }


def test_zones_default_to_now_and_all_lists_every_version(client: TestClient) -> None:
    assert zone_ids(client) == []  # the scenario's zones all ended in September 2023
    assert len(zone_ids(client, at="all")) == 8


def test_zones_filter_by_kind_and_bbox(client: TestClient) -> None:
    assert zone_ids(client, at="all", kind="corridor") == ["nk-lachin-corridor"] * 2
    # A box around Stepanakert meets the zone of responsibility and the 1994 line.
    assert set(zone_ids(client, at=T, bbox="46.7,39.8,46.8,39.85")) == {"nk-pk-zone"}
    assert zone_ids(client, at=T, bbox="10,10,11,11") == []


def test_zone_listing_paginates(client: TestClient) -> None:
    page = client.get("/zones", params={"at": "all", "limit": 3}, headers=VIEWER).json()
    assert page["numberMatched"] == 8 and page["numberReturned"] == 3
    seen = [f["id"] for f in page["features"]]
    while nexts := [link for link in page["links"] if link["rel"] == "next"]:
        page = client.get(nexts[0]["href"], headers=VIEWER).json()
        seen += [f["id"] for f in page["features"]]
    assert len(seen) == 8


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"at": "yesterday"}, "at"),
        ({"at": "2022-03-24T06:00:00"}, "at"),  # naive
        ({"at": "0001-01-01T00:00:00Z"}, "at"),  # out of the supported range
        ({"bbox": "1,2,3"}, "bbox"),
        ({"bbox": "1,2,3,x"}, "bbox"),
        ({"bbox": "0,50,1,40"}, "bbox"),  # min lat > max lat
        ({"kind": "fortress"}, "kind"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_bad_zone_parameters_are_400_naming_the_parameter(
    client: TestClient, params: dict[str, str], field: str
) -> None:
    response = client.get("/zones", params=params, headers=VIEWER)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == field


def test_a_created_zone_reads_back_and_is_used_by_check_at_once(client: TestClient) -> None:
    zone = zone_feature("buffer-a", 46.0, 39.0)
    zone["geometry"]["coordinates"][0].pop()  # unclosed: repaired, and the repair noted
    response = client.post("/zones", json=zone, headers=ADMIN)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/zones/buffer-a"
    created = ZoneCollection.model_validate(response.json())
    assert created.features[0].properties is not None
    assert created.features[0].properties["version"] == 1
    assert any("not closed" in w for w in created.warnings)

    feature = client.get("/zones/buffer-a", headers=VIEWER).json()
    Feature.model_validate(feature)
    assert feature["properties"]["name"] == "Zone buffer-a"
    found = client.post("/check", json=point_feature(46.05, 39.05), headers=VIEWER).json()[
        "features"
    ]
    assert [f["properties"]["zone_id"] for f in found] == ["buffer-a"]


def test_a_batch_of_zones_is_all_or_nothing(client: TestClient) -> None:
    bow_tie = zone_feature("bow-tie")
    bow_tie["geometry"]["coordinates"] = [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]
    response = client.post(
        "/zones", json=collection(zone_feature("good-one"), bow_tie), headers=ADMIN
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["index"] == 1
    assert problem["field"] == "features/1/geometry/coordinates/0"
    assert "Self-intersection" in problem["detail"]
    assert client.get("/zones/good-one", headers=VIEWER).status_code == 404


def test_an_existing_zone_id_is_a_conflict(client: TestClient) -> None:
    response = client.post("/zones", json=zone_feature("nk-pk-zone"), headers=ADMIN)
    assert response.status_code == 409
    assert response.json()["field"] == "id"
    assert "new version" in response.json()["detail"]


def test_put_makes_a_new_version_and_history_keeps_the_old(client: TestClient) -> None:
    client.post("/zones", json=zone_feature("moving"), headers=ADMIN)
    moved = zone_feature("moving", 46.5, valid_from="2021-01-01T00:00:00Z")
    del moved["id"]  # the path names the zone
    response = client.put("/zones/moving", json=moved, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["features"][0]["properties"]["version"] == 2

    history = client.get("/zones/moving/history", headers=VIEWER).json()["features"]
    assert [f["properties"]["version"] for f in history] == [1, 2]
    assert history[0]["geometry"]["coordinates"][0][0] == [46.0, 39.0]
    # Judged by the version in force at each time.
    before = point_feature(46.05, 39.05, observed_at="2020-06-01T00:00:00Z")
    after = point_feature(46.05, 39.05, observed_at="2021-06-01T00:00:00Z")
    checked = client.post("/check", json=collection(before, after), headers=VIEWER).json()
    assert [f["properties"]["report_id"] for f in checked["features"]] == ["0"]


def test_put_refuses_another_zones_id_and_unknown_zones(client: TestClient) -> None:
    response = client.put("/zones/nk-pk-zone", json=zone_feature("other"), headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["field"] == "id"
    response = client.put("/zones/nobody", json=zone_feature("nobody"), headers=ADMIN)
    assert response.status_code == 404
    response = client.put("/zones/nk-pk-zone", json=collection(), headers=ADMIN)
    assert response.status_code == 422


def test_retiring_ends_a_zone_and_keeps_its_history(client: TestClient) -> None:
    client.post("/zones", json=zone_feature("temporary"), headers=ADMIN)
    response = client.delete(
        "/zones/temporary", params={"at": "2021-01-01T00:00:00+00:00"}, headers=ADMIN
    )
    assert response.status_code == 200, response.text
    assert response.json()["properties"]["valid_to"] == "2021-01-01T00:00:00+00:00"
    assert "temporary" in zone_ids(client, at="2020-06-01T00:00:00Z")
    assert "temporary" not in zone_ids(client, at="2021-06-01T00:00:00Z")
    history = client.get("/zones/temporary/history", headers=VIEWER).json()["features"]
    assert [f["properties"]["valid_to"] for f in history] == [None, "2021-01-01T00:00:00+00:00"]

    again = client.delete("/zones/temporary", params={"at": "2022-01-01T00:00:00Z"}, headers=ADMIN)
    assert again.status_code == 409
    assert client.delete("/zones/nobody", headers=ADMIN).status_code == 404


def test_retiring_now_takes_the_zone_out_of_checks_at_once(client: TestClient) -> None:
    client.post("/zones", json=zone_feature("open-ended"), headers=ADMIN)
    now_point = point_feature(46.05, 39.05, observed_at=None)  # judged now
    assert client.post("/check", json=now_point, headers=VIEWER).json()["features"]
    assert client.delete("/zones/open-ended", headers=ADMIN).status_code == 200
    assert client.post("/check", json=now_point, headers=VIEWER).json()["features"] == []


def test_unknown_zone_is_404(client: TestClient) -> None:
    for path in ("/zones/nobody", "/zones/nobody/history"):
        response = client.get(path, headers=VIEWER)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert "nobody" in response.json()["detail"]


def _bad(mutate: str) -> dict[str, object]:
    zone = zone_feature("bad")
    if mutate == "bow-tie":
        zone["geometry"]["coordinates"] = [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]
    elif mutate == "out-of-range":
        zone["geometry"]["coordinates"][0][2] = [46.1, 95.2]
    elif mutate == "point":
        zone["geometry"] = {"type": "Point", "coordinates": [46.0, 39.0]}
    elif mutate == "string-nan":
        zone["geometry"]["coordinates"][0][1] = ["NaN", 39.0]
    elif mutate == "naive":
        zone["properties"]["valid_from"] = "2020-01-01T00:00:00"
    elif mutate == "no-kind":
        del zone["properties"]["kind"]
    elif mutate == "ends-first":
        zone["properties"]["valid_to"] = "2019-01-01T00:00:00Z"
    elif mutate == "far-future":
        zone["properties"]["valid_to"] = "9999-01-01T00:00:00Z"
    elif mutate == "huge-warning":
        zone["properties"]["warning_distance_m"] = 1e300
    return zone


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        ("bow-tie", "geometry/coordinates/0", "Self-intersection"),
        ("out-of-range", "geometry/coordinates/0/2", "latitude 95.2 is out of range"),
        ("point", "geometry/type", "Polygon or MultiPolygon"),
        ("string-nan", "geometry/coordinates/0/1/0", "must be a number, got string 'NaN'"),
        ("naive", "properties/valid_from", "no UTC offset"),
        ("no-kind", "properties/kind", "is required"),
        ("ends-first", "properties/valid_to", "must be after"),
        ("far-future", "properties/valid_to", "out of the supported range"),
        ("huge-warning", "properties/warning_distance_m", "at most"),
    ],
)
def test_bad_zones_are_422_naming_the_field(
    client: TestClient, mutate: str, field: str, words: str
) -> None:
    for body, prefix, index in (
        (_bad(mutate), "", None),
        (collection(zone_feature("fine"), _bad(mutate)), "features/1/", 1),
    ):
        response = client.post("/zones", json=copy.deepcopy(body), headers=ADMIN)
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["field"] == prefix + field
        assert problem["index"] == index
        assert words in problem["detail"]
    assert client.get("/zones/fine", headers=VIEWER).status_code == 404


def test_an_empty_collection_of_zones_is_refused(client: TestClient) -> None:
    response = client.post("/zones", json=collection(), headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["field"] == "features"
    assert "empty" in response.json()["detail"]
