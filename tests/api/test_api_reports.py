"""Reports over HTTP: filing (idempotent, all or nothing), listing with filters and pages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.models import Page, ReportsFiled
from tests.api.support import auth
from tests.factories import FAR, PARUKH, T, collection, point_feature

OBSERVER = auth("observer")
VIEWER = auth("viewer")
SCENARIO_REPORTS = 13


def count(client: TestClient) -> int:
    return int(client.app.state.service.store.count_reports())  # type: ignore[attr-defined]


def test_a_filed_report_is_stored_checked_and_a_resend_is_a_duplicate(client: TestClient) -> None:
    report = point_feature(*PARUKH, id="op-7-0600", unit="parukh-group", uncertainty_m=100)
    response = client.post("/reports", json=report, headers=OBSERVER)
    assert response.status_code == 201, response.text
    filed = ReportsFiled.model_validate(response.json())
    assert filed.stored == ["op-7-0600"] and filed.duplicates == []
    [finding] = filed.findings.features
    assert finding.properties.zone_id == "nk-pk-zone"
    assert finding.properties.violation and finding.properties.report_id == "op-7-0600"

    again = client.post("/reports", json=report, headers=OBSERVER)
    assert again.status_code == 200
    assert again.json()["stored"] == [] and again.json()["duplicates"] == ["op-7-0600"]
    assert count(client) == SCENARIO_REPORTS + 1


def test_reports_without_an_id_get_a_uuid(client: TestClient) -> None:
    response = client.post(
        "/reports", json=collection(point_feature(*PARUKH), point_feature(*FAR)), headers=OBSERVER
    )
    assert response.status_code == 201
    stored = response.json()["stored"]
    assert len(stored) == 2 and all(uuid.UUID(s).version == 4 for s in stored)
    assert response.json()["findings"]["features"][0]["properties"]["report_id"] == stored[0]


def test_a_batch_with_one_bad_feature_stores_nothing(client: TestClient) -> None:
    bad = point_feature(46.8, 95.0, id="bad")
    batch = collection(
        point_feature(*PARUKH, id="good-0"), point_feature(*PARUKH, id="good-1"), bad
    )
    response = client.post("/reports", json=batch, headers=OBSERVER)
    assert response.status_code == 422
    problem = response.json()
    assert problem["index"] == 2
    assert problem["field"] == "features/2/geometry/coordinates"
    assert "latitude 95 is out of range" in problem["detail"]
    assert count(client) == SCENARIO_REPORTS
    listed = client.get("/reports", params={"limit": 1000}, headers=VIEWER).json()
    assert listed["numberReturned"] == SCENARIO_REPORTS


@pytest.mark.parametrize(
    ("feature", "field", "words"),
    [
        (point_feature(*PARUKH, observed_at=None), "properties/observed_at", "is required"),
        (point_feature(*PARUKH, party=None), "properties/party", "is required"),
        (point_feature(*PARUKH, party="  "), "properties/party", "must not be empty"),
        (
            point_feature(*PARUKH, observed_at="2022-03-24T06:00:00"),
            "properties/observed_at",
            "offset",
        ),
        (
            point_feature(*PARUKH, observed_at="1200-01-01T00:00:00Z"),
            "properties/observed_at",
            "range",
        ),
        (point_feature(*PARUKH, uncertainty_m=-5), "properties/uncertainty_m", "at least 0"),
        (point_feature(*PARUKH, uncertainty_m=1e300), "properties/uncertainty_m", "at most"),
        (point_feature(*PARUKH, kind="tank"), "properties/kind", "is not one of"),
        (point_feature(200.0, 40.0), "geometry/coordinates", "longitude 200 is out of range"),
        (point_feature("46.8", 40.0), "geometry/coordinates/0", "must be a number"),  # type: ignore[arg-type]
        (point_feature(*PARUKH, id=""), "id", "must not be empty"),
        (
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
            },
            "geometry/type",
            "must be a Point",
        ),
    ],
)
def test_bad_reports_are_422_naming_the_field_alone_and_in_a_batch(
    client: TestClient, feature: dict[str, Any], field: str, words: str
) -> None:
    for body, prefix, index in (
        (feature, "", None),
        (collection(point_feature(*PARUKH, id="fine-0"), feature), "features/1/", 1),
    ):
        response = client.post("/reports", json=body, headers=OBSERVER)
        assert response.status_code == 422, response.text
        problem = response.json()
        assert response.headers["content-type"] == "application/problem+json"
        assert problem["field"] == prefix + field
        assert problem["index"] == index
        assert words in problem["detail"]
    assert count(client) == SCENARIO_REPORTS


def test_reports_are_features_not_bare_objects(client: TestClient) -> None:
    body = {"lon": 46.8, "lat": 40.0, "party": "AZE", "observed_at": T}
    response = client.post("/reports", json=body, headers=OBSERVER)
    assert response.status_code == 422
    assert response.json()["field"] == "type"


def test_swapped_coordinates_are_stored_with_a_warning(client: TestClient) -> None:
    lon, lat = PARUKH
    batch = collection(point_feature(*FAR, id="far"), point_feature(lat, lon, id="swapped"))
    response = client.post("/reports", json=batch, headers=OBSERVER)
    assert response.status_code == 201
    [warning] = response.json()["warnings"]
    assert warning.startswith("features/1/geometry/coordinates: coordinates look swapped")
    assert "nk-pk-zone" in warning
    assert response.json()["stored"] == ["far", "swapped"]


def test_an_empty_collection_stores_nothing_and_is_no_error(client: TestClient) -> None:
    response = client.post("/reports", json=collection(), headers=OBSERVER)
    assert response.status_code == 200
    assert response.json()["stored"] == [] and response.json()["findings"]["features"] == []


def _walk(client: TestClient, params: dict[str, Any]) -> list[str]:
    response = client.get("/reports", params=params, headers=VIEWER)
    seen: list[str] = []
    while True:
        assert response.status_code == 200, response.text
        page = response.json()
        Page.model_validate(page)
        assert page["numberReturned"] == len(page["features"])
        seen += [f["id"] for f in page["features"]]
        nexts = [link["href"] for link in page["links"] if link["rel"] == "next"]
        if not nexts:
            return seen
        response = client.get(nexts[0], headers=VIEWER)


def test_pagination_walks_every_report_once(client: TestClient) -> None:
    start = datetime(2022, 4, 1, tzinfo=UTC)
    batch = collection(
        *(
            point_feature(
                46.0 + i / 1000,
                39.0,
                id=f"walk-{i:03d}",
                # Several reports share a time: the cursor orders by (time, id).
                observed_at=(start + timedelta(minutes=i // 3)).isoformat(),
                party="ARM" if i % 2 else "AZE",
            )
            for i in range(250)
        )
    )
    assert client.post("/reports", json=batch, headers=OBSERVER).status_code == 201
    seen = _walk(client, {"limit": 37})
    assert len(seen) == len(set(seen)) == 250 + SCENARIO_REPORTS
    arm = _walk(client, {"limit": 10, "party": "ARM", "since": start.isoformat()})
    assert arm == [f"walk-{i:03d}" for i in range(1, 250, 2)]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # The scenario's 13 reports run from 24 March 06:00 to 28 March 12:00 (+04:00).
        ({"since": "2022-03-26T00:00:00+04:00"}, 7),
        ({"until": "2022-03-26T00:00:00+04:00"}, 6),
        ({"since": "2022-03-25T00:00:00+04:00", "until": "2022-03-26T00:00:00+04:00"}, 4),
        ({"datetime": "2022-03-25T00:00:00+04:00/2022-03-26T00:00:00+04:00"}, 4),
        ({"datetime": "../2022-03-26T00:00:00+04:00"}, 6),
        ({"datetime": "2022-03-26T00:00:00+04:00/.."}, 7),
        ({"datetime": "2022-03-24T06:00:00+04:00"}, 1),  # an instant
        ({"datetime": "2022-03-28T12:00:00+04:00"}, 2),  # both ends of a closed interval
        ({"party": "AZE"}, 11),
        ({"party": "NOBODY"}, 0),
        ({"bbox": "46.79,40.0,46.82,40.02"}, 10),
    ],
)
def test_report_filters(client: TestClient, params: dict[str, str], expected: int) -> None:
    assert len(_walk(client, params)) == expected


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "2022-03-26"}, "since"),  # a date without an offset
        ({"until": "soon"}, "until"),
        ({"since": "2022-03-26T00:00:00Z", "until": "2022-03-25T00:00:00Z"}, "until"),
        ({"datetime": "2022-03-26T00:00:00Z/2022-03-25T00:00:00Z"}, "datetime"),
        ({"datetime": "a/b/c"}, "datetime"),
        ({"datetime": "../..", "since": "2022-03-26T00:00:00Z"}, "datetime"),
        ({"after": "not-a-cursor"}, "after"),
        ({"limit": "100000"}, "limit"),
        ({"bbox": "nan,1,2,3"}, "bbox"),
    ],
)
def test_bad_report_parameters_are_400(
    client: TestClient, params: dict[str, str], field: str
) -> None:
    response = client.get("/reports", params=params, headers=VIEWER)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field


def test_numeric_ids_and_extra_properties_survive(client: TestClient) -> None:
    report = point_feature(*PARUKH, id=42, placement="by the road", unit="u-1", confidence="HIGH")
    assert client.post("/reports", json=report, headers=OBSERVER).json()["stored"] == ["42"]
    [stored] = [
        f for f in client.get("/reports", params={"unit": "u-1"}, headers=VIEWER).json()["features"]
    ]
    assert stored["id"] == "42"
    assert stored["properties"]["placement"] == "by the road"
    assert stored["properties"]["confidence"] == "high"
    assert stored["properties"]["observed_at"] == "2022-03-24T02:00:00+00:00"


@pytest.mark.parametrize("name", ["notes", "source", "unit", "party"])
def test_nul_in_a_text_property_is_422_naming_it_on_every_store(
    client: TestClient, name: str
) -> None:
    # PostgreSQL's text cannot hold U+0000: both stores refuse it alike, before storing.
    feature = point_feature(*PARUKH, id="with-nul", **{name: "a\x00b"})
    answer = client.post("/reports", json=feature, headers=OBSERVER)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == f"properties/{name}"
    assert client.get("/reports/with-nul", headers=VIEWER).status_code == 404


def test_nul_in_a_path_or_a_filter_finds_nothing_on_every_store(client: TestClient) -> None:
    assert client.get("/reports/a%00b", headers=VIEWER).status_code == 404
    assert client.get("/zones/a%00b", headers=VIEWER).status_code == 404
    page = client.get("/reports", params={"party": "A\x00ZE", "unit": "u\x00"}, headers=VIEWER)
    assert page.status_code == 200 and page.json()["features"] == []
