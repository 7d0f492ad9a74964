"""Strict queries: an unknown query parameter is a 400 naming it, on every route that reads
the query; `bbox` on `/incursions`; `POST /check` says which time it judged undated reports at."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.settings import Settings
from tests.api.support import assert_problem, auth
from tests.factories import PARUKH, collection, point_feature

ADMIN = auth("admin")
VIEWER = auth("viewer")
PATH_VALUES = {
    "party": "AZE",
    "unit": "parukh-group",
    "zone_id": "nk-pk-zone",
    "collectionId": "reports",
    "featureId": "2022-03-26-ru-mod-1",
    "report_id": "2022-03-24-arm-side-1",
    "subscription_id": "no-such-subscription",
    "incident_id": "1",
}


def _get_routes_with_query() -> list[tuple[str, frozenset[str]]]:
    """Every GET route of the OpenAPI document that takes query parameters, with their names."""
    document = create_app(Settings(_env_file=None)).openapi()
    routes = []
    for path, operations in document["paths"].items():
        get = operations.get("get")
        if get is None:
            continue
        names = frozenset(p["name"] for p in get.get("parameters", []) if p["in"] == "query")
        if names:
            routes.append((path.format(**PATH_VALUES), names))
    return sorted(routes)


GET_ROUTES = _get_routes_with_query()


def test_the_list_endpoints_are_among_the_routes_checked() -> None:
    paths = {path for path, _ in GET_ROUTES}
    assert {"/zones", "/reports", "/incursions", "/tracks", "/tracks/AZE", "/map"} <= paths
    assert {"/", "/collections/reports/items"} <= paths
    # Every list endpoint takes `limit`, the short ones without pages too.
    for path in ("/parties", "/zones/nk-pk-zone/history", "/audit"):
        assert "limit" in dict(GET_ROUTES)[path]
    assert "limit" in dict(GET_ROUTES)["/reports/2022-03-24-arm-side-1/history"]


@pytest.mark.parametrize(("path", "names"), GET_ROUTES, ids=[p for p, _ in GET_ROUTES])
def test_an_unknown_query_parameter_is_a_400_naming_it(
    client: TestClient, path: str, names: frozenset[str]
) -> None:
    problem = assert_problem(client.get(f"{path}?bogus=1", headers=ADMIN), 400, "bogus")
    assert "bogus" in problem["detail"]
    # A misspelling of a parameter the route takes is named too, and the right names listed.
    name = sorted(names)[0]
    problem = assert_problem(client.get(f"{path}?{name}x=1", headers=ADMIN), 400, f"{name}x")
    assert name in problem["detail"]


def test_a_misspelt_report_filter_is_refused_not_ignored(client: TestClient) -> None:
    assert_problem(client.get("/reports?partyy=AZE", headers=VIEWER), 400, "partyy")
    assert client.get("/reports?party=AZE", headers=VIEWER).status_code == 200


def test_post_check_refuses_an_unknown_parameter_too(client: TestClient) -> None:
    body = point_feature(*PARUKH)
    assert_problem(client.post("/check?include_outsid=true", json=body, headers=VIEWER), 400)
    assert client.post("/check?include_outside=true", json=body, headers=VIEWER).status_code == 200


def test_the_documentation_pages_still_answer(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/health?probe=1").status_code == 200  # probes stay plain


def test_incursions_filter_by_bbox(client: TestClient) -> None:
    every = client.get("/incursions", headers=VIEWER).json()
    assert every["numberMatched"] > 0
    lons = sorted(f["geometry"]["coordinates"][0] for f in every["features"])
    middle = lons[len(lons) // 2]
    west = client.get("/incursions", params={"bbox": f"40,35,{middle},45"}, headers=VIEWER).json()
    expected = [f for f in every["features"] if f["geometry"]["coordinates"][0] <= middle]
    assert 0 < len(expected) < len(every["features"]) or len(set(lons)) == 1
    assert west["features"] == expected and west["numberMatched"] == len(expected)
    far = client.get("/incursions", params={"bbox": "10,10,11,11"}, headers=VIEWER).json()
    assert far["features"] == [] and far["numberMatched"] == 0
    assert_problem(client.get("/incursions?bbox=1,2,3", headers=VIEWER), 400, "bbox")


def test_check_without_observed_at_says_when_it_judged(client: TestClient) -> None:
    before = datetime.now(UTC)
    answer: dict[str, Any] = client.post(
        "/check",
        json=collection(
            point_feature(*PARUKH, observed_at="2022-03-25T10:00:00+04:00"),
            point_feature(*PARUKH, observed_at=None),
        ),
        headers=VIEWER,
    ).json()
    judged_at = datetime.fromisoformat(answer["judged_at"])
    assert before <= judged_at <= datetime.now(UTC)
    [warning] = [w for w in answer["warnings"] if "observed_at" in w]
    assert "features/1" in warning and "features/0" not in warning
    assert answer["judged_at"] in warning
    # The dated report at Parukh is judged in March 2022; the undated one today, when the
    # zone of responsibility (ended 2023) is no longer in force.
    assert {f["properties"]["report_id"] for f in answer["features"]} == {"0"}
    dated = client.post(
        "/check",
        json=point_feature(*PARUKH, observed_at="2022-03-25T10:00:00+04:00"),
        headers=VIEWER,
    ).json()
    assert dated["judged_at"] is None
    assert not [w for w in dated["warnings"] if "observed_at" in w]
