"""`POST /check`: the three input forms, defaults, findings as the engine gives them, bad input."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.models import FindingCollection
from app.engine import ZoneIndex
from app.geojson import finding_to_feature
from app.scenario import load_scenario
from tests.api.support import assert_problem, auth
from tests.factories import FAR, PARUKH, T, collection, point_feature, zone_feature

VIEWER = auth("viewer")


def check(client: TestClient, body: Any, **params: str) -> dict[str, Any]:
    response = client.post("/check", json=body, params=params, headers=VIEWER)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/geo+json"
    FindingCollection.model_validate(response.json())
    return dict(response.json())


def test_the_three_forms_give_the_same_finding(client: TestClient) -> None:
    lon, lat = PARUKH
    forms = [
        point_feature(lon, lat),
        collection(point_feature(lon, lat)),
        {"lon": lon, "lat": lat, "party": "AZE", "observed_at": T},
    ]
    answers = [check(client, body)["features"] for body in forms]
    assert answers[0] == answers[1] == answers[2]
    [finding] = answers[0]
    assert finding["geometry"] == {"type": "Point", "coordinates": [lon, lat]}
    properties = finding["properties"]
    assert properties["zone_id"] == "nk-pk-zone"
    assert properties["verdict"] == "inside" and properties["violation"] is True
    assert properties["report_id"] == "0"
    assert properties["observed_at"] == "2022-03-24T02:00:00+00:00"
    assert 0 < properties["depth_m"] < 10_000


def test_report_ids_are_the_feature_id_else_the_index(client: TestClient) -> None:
    body = collection(
        point_feature(*FAR, id="far"), point_feature(*PARUKH), point_feature(*PARUKH, id="named")
    )
    ids = [f["properties"]["report_id"] for f in check(client, body)["features"]]
    assert ids == ["1", "named"]


def test_authorized_parties_are_not_violations(client: TestClient) -> None:
    [finding] = check(client, point_feature(*PARUKH, party="RU-PK"))["features"]
    assert finding["properties"]["verdict"] == "inside"
    assert finding["properties"]["violation"] is False
    assert check(client, point_feature(*PARUKH, party="RU-PK"))["violations"] == 0


def test_without_observed_at_a_report_is_judged_now(client: TestClient) -> None:
    # The scenario's zones have all ended; a zone in force now is the only one to find.
    client.post("/zones", json=zone_feature("now-zone"), headers=auth("admin"))
    lone = point_feature(46.05, 39.05, observed_at=None)
    for body in (lone, collection(lone), {"lon": 46.05, "lat": 39.05, "party": "AZE"}):
        [finding] = check(client, body)["features"]
        assert finding["properties"]["zone_id"] == "now-zone"


def test_include_outside_lists_every_zone_in_force(client: TestClient) -> None:
    assert check(client, point_feature(*FAR))["features"] == []
    found = check(client, point_feature(*FAR), include_outside="true")["features"]
    assert {f["properties"]["zone_id"] for f in found} == {"nk-pk-zone", "nk-lachin-corridor"}
    assert all(f["properties"]["verdict"] == "outside" for f in found)
    assert all(f["properties"]["depth_m"] < -50_000 for f in found)


@pytest.mark.parametrize(
    ("flag", "outside"), [("1", True), ("Yes", True), ("t", True), ("off", False), ("f", False)]
)
def test_include_outside_takes_the_usual_spellings(
    client: TestClient, flag: str, outside: bool
) -> None:
    found = check(client, point_feature(*FAR), include_outside=flag)["features"]
    assert bool(found) is outside


@pytest.mark.parametrize("flag", ["maybe", " true", ""])
def test_include_outside_must_be_a_boolean(client: TestClient, flag: str) -> None:
    response = client.post(
        "/check", json=point_feature(*PARUKH), params={"include_outside": flag}, headers=VIEWER
    )
    problem = assert_problem(response, 400)
    assert problem["field"] == "include_outside"


def test_findings_are_those_of_the_engine_in_finding_to_feature_shape(client: TestClient) -> None:
    reports = load_scenario().reports
    body = collection(
        *(
            point_feature(
                r.lon,
                r.lat,
                id=r.id,
                party=r.party,
                observed_at=r.observed_at.isoformat(),
                uncertainty_m=r.uncertainty_m,
            )
            for r in reports
        )
    )
    # The engine on the same reports and the zone versions that the store indexes.
    store = client.app.state.service.store  # type: ignore[attr-defined]
    expected = [finding_to_feature(f) for f in ZoneIndex(store.zones_for_index()).findings(reports)]
    got = check(client, body)["features"]
    assert len(got) == len(expected) > 5
    for mine, theirs in zip(got, expected, strict=True):
        # The same instant, written in UTC.
        assert mine["properties"]["observed_at"].endswith("+00:00")
        assert datetime.fromisoformat(mine["properties"].pop("observed_at")) == (
            datetime.fromisoformat(theirs["properties"].pop("observed_at"))
        )
        assert mine == theirs


def test_swapped_coordinates_are_judged_as_sent_with_a_warning(client: TestClient) -> None:
    lon, lat = PARUKH
    answer = check(client, collection(point_feature(*FAR), point_feature(lat, lon)))
    assert answer["features"] == []
    [warning] = answer["warnings"]
    assert warning.startswith("features/1/geometry/coordinates: coordinates look swapped")
    lone = check(client, point_feature(lat, lon))["warnings"]
    assert lone[0].startswith("geometry/coordinates: coordinates look swapped")
    # A point near a zone is never called swapped, nor one whose swap is nowhere.
    assert check(client, collection(point_feature(*PARUKH), point_feature(*FAR)))["warnings"] == []


@pytest.mark.parametrize(
    ("body", "status", "field", "words"),
    [
        (b'{"lon": NaN, "lat": 40, "party": "AZE"}', 400, "body", "not valid JSON"),
        (
            b'{"type": "Feature", "geometry": {"type": "Point", "coordinates": [46.8, Infinity]}}',
            400,
            "body",
            "not valid JSON",
        ),
        (b'{"lon": 46.8, "lat": 40', 400, "body", "not valid JSON"),
        (b"", 400, "body", "empty"),
        (b"\xff\xfe", 400, "body", "not valid JSON"),
        (b'{"lon": "NaN", "lat": 40, "party": "AZE"}', 422, "lon", "got string 'NaN'"),
        (b'{"lon": 46.8, "lat": 40}', 422, "party", "is required"),
        (b'{"lon": 46.8, "lat": -91, "party": "AZE"}', 422, "lat", "out of range"),
        (b"[1, 2]", 422, "body", "expected a GeoJSON Feature"),
        (b'{"type": "Polygon", "coordinates": []}', 422, "type", "expected a Feature"),
        (b'{"type": "FeatureCollection"}', 422, "features", "array of features"),
    ],
)
def test_bad_checks_are_problems_naming_the_field(
    client: TestClient, body: bytes, status: int, field: str | None, words: str
) -> None:
    response = client.post("/check", content=body, headers=VIEWER)
    assert response.status_code == status, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["status"] == status
    assert problem["field"] == field
    assert words in problem["detail"]


@pytest.mark.parametrize(
    ("feature", "field", "words"),
    [
        (point_feature(*PARUKH, party=None), "properties/party", "is required"),
        (point_feature(46.8, 91.0), "geometry/coordinates", "latitude 91 is out of range"),
        (
            point_feature(*PARUKH, observed_at="2022-03-24 06:00"),
            "properties/observed_at",
            "offset",
        ),
        (point_feature(*PARUKH, observed_at=12), "properties/observed_at", "must be an RFC 3339"),  # type: ignore[arg-type]
        (point_feature(True, 40.0), "geometry/coordinates/0", "must be a number"),  # type: ignore[arg-type]
        (
            {**point_feature(*PARUKH), "geometry": {"type": "Polygon", "coordinates": []}},
            "geometry/type",
            "must be a Point",
        ),
        ({**point_feature(*PARUKH), "geometry": None}, "geometry", "needs a Point"),
        ({**point_feature(*PARUKH), "type": "Feture"}, "type", "expected type 'Feature'"),
        ({**point_feature(*PARUKH), "properties": []}, "properties", "must be an object"),
    ],
)
def test_the_first_bad_feature_of_a_collection_is_named(
    client: TestClient, feature: dict[str, Any], field: str, words: str
) -> None:
    body = collection(
        point_feature(*PARUKH), point_feature(*FAR), feature, point_feature(*PARUKH, party=None)
    )
    response = client.post("/check", json=body, headers=VIEWER)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["index"] == 2
    assert problem["field"] == f"features/2/{field}"
    assert words in problem["detail"]
