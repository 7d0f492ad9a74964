"""The OGC API – Features routes and the landing page, in-process over the scenario database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from tests.api.support import assert_problem, auth

VIEWER = auth("viewer")
QGIS_NEEDS = {
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
}


def test_the_landing_page_is_json_for_clients_and_html_for_browsers(client: TestClient) -> None:
    as_json = client.get("/", headers={"Accept": "application/json"})
    assert as_json.headers["content-type"] == "application/json"
    rels = {link["rel"]: link for link in as_json.json()["links"]}
    assert rels["service-desc"]["type"] == "application/vnd.oai.openapi+json;version=3.0"
    assert rels["service-desc"]["href"] == "/openapi.json"
    assert rels["data"]["href"] == "/collections"
    assert {"conformance", "service-doc", "status"} <= set(rels)
    data = as_json.json()["data"]
    assert data["reports"] == 13 and data["first_report_at"].startswith("2022-03-24")
    browser = client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert browser.headers["content-type"].startswith("text/html")
    assert 'href="/map"' in browser.text and "2022-03-24" in browser.text
    assert "default-src 'self'" in browser.headers["content-security-policy"]
    assert client.get("/").headers["content-type"] == "application/json"  # curl: */*
    assert client.get("/?f=html").headers["content-type"].startswith("text/html")
    assert_problem(client.get("/?f=xml"), 400, "f")


def test_conformance_declares_what_qgis_needs(client: TestClient) -> None:
    declared = set(client.get("/conformance", headers=VIEWER).json()["conformsTo"])
    assert declared >= QGIS_NEEDS


def test_links_come_from_the_public_url_never_from_host(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(public_url="https://truce.example.org/api")
    headers = {**VIEWER, "Host": "evil.example"}
    landing = client.get("/", headers=headers).json()
    page = client.get("/collections/reports/items?limit=2", headers=headers).json()
    collections = client.get("/collections", headers=headers).json()
    hrefs = [link["href"] for link in landing["links"] + page["links"]]
    hrefs += [link["href"] for c in collections["collections"] for link in c["links"]]
    assert hrefs and all(h.startswith("https://truce.example.org/api/") for h in hrefs), hrefs


def test_every_collection_has_an_extent_and_items(client: TestClient) -> None:
    collections = client.get("/collections", headers=VIEWER).json()["collections"]
    ids = [c["id"] for c in collections]
    assert ids == [
        "zones",
        "reports",
        "incursions",
        "line-of-contact",
        "observation-posts",
        "places",
    ]
    reports = next(c for c in collections if c["id"] == "reports")
    assert reports["extent"]["temporal"]["interval"] == [
        ["2022-03-24T02:00:00+00:00", "2022-03-28T08:00:00+00:00"]
    ]
    minx, miny, maxx, maxy = reports["extent"]["spatial"]["bbox"][0]
    assert 46 < minx <= maxx < 47 and 40 < miny <= maxy < 40.1


def test_unknown_parameters_are_the_ogc_400(client: TestClient) -> None:
    problem = assert_problem(
        client.get("/collections/zones/items?sortby=name", headers=VIEWER), 400, "sortby"
    )
    assert problem["type"].endswith("/req/core/query-param-unknown")


def test_zones_datetime_picks_the_versions_in_force(client: TestClient) -> None:
    every = client.get("/collections/zones/items", headers=VIEWER).json()
    native = client.get("/zones?at=all", headers=VIEWER).json()
    assert every["numberMatched"] == len(native["features"]) == 8
    then = client.get(
        "/collections/zones/items?datetime=2022-03-25T00:00:00Z", headers=VIEWER
    ).json()
    at = client.get("/zones?at=2022-03-25T00:00:00Z", headers=VIEWER).json()
    assert sorted(f["properties"]["zone_id"] for f in then["features"]) == sorted(
        f["id"] for f in at["features"]
    )
    versions = client.get(
        "/collections/zones/items", params={"filter": "version = 2"}, headers=VIEWER
    ).json()
    assert {f["id"] for f in versions["features"]} == {"nk-lachin-corridor@v2", "nk-pk-zone@v2"}


def test_paging_follows_next_and_prev_links(client: TestClient) -> None:
    seen: list[str] = []
    url: str | None = "/collections/reports/items?limit=4"
    pages = []
    while url:
        page = client.get(url, headers=VIEWER).json()
        pages.append(page)
        seen += [f["id"] for f in page["features"]]
        url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
    assert len(seen) == len(set(seen)) == 13 and len(pages) == 4
    back = next(link["href"] for link in pages[2]["links"] if link["rel"] == "prev")
    previous = client.get(back, headers=VIEWER).json()
    assert [f["id"] for f in previous["features"]] == [f["id"] for f in pages[1]["features"]]
    assert "before" in parse_qs(urlsplit(back).query)


def test_a_feature_by_id_and_a_missing_one(client: TestClient) -> None:
    got = client.get("/collections/incursions/items?limit=1", headers=VIEWER).json()
    fid = got["features"][0]["id"]
    one = client.get(f"/collections/incursions/items/{fid}", headers=VIEWER)
    assert one.status_code == 200 and one.json()["id"] == fid
    assert_problem(client.get("/collections/zones/items/nope", headers=VIEWER), 404)
    assert_problem(client.get("/collections/nope/items", headers=VIEWER), 404, "collectionId")


def test_filters_and_bbox_answer_as_the_native_routes(client: TestClient) -> None:
    items = client.get(
        "/collections/incursions/items",
        params={"filter": "party = 'AZE' AND verdict = 'inside'", "bbox": "46.79,40.0,46.82,40.02"},
        headers=VIEWER,
    ).json()
    native = client.get(
        "/incursions", params={"party": "AZE", "bbox": "46.79,40.0,46.82,40.02"}, headers=VIEWER
    ).json()
    expected = {
        (f["properties"]["report_id"], f["properties"]["zone_id"])
        for f in native["features"]
        if f["properties"]["verdict"] == "inside"
    }
    got = {(f["properties"]["report_id"], f["properties"]["zone_id"]) for f in items["features"]}
    assert got == expected and expected


@pytest.mark.parametrize(
    "params",
    [
        {"filter": "party = 'x'' OR 1=1 --'"},
        {"filter": "party = 'x' OR 1=1"},
        {"filter": "'; DROP TABLE reports; --"},
        {"filter": "(" * 3000 + "party = 'x'" + ")" * 3000},
        {"filter": "party = '" + "é" * 9000 + "'"},
        {"filter": "S_INTERSECTS(geometry, POLYGON((0 0, 1 1, 1 0, 0 1, 0 0)))"},
        {"filter": "party = 'x'", "filter-lang": "cql2-json"},
        {"filter-crs": "EPSG:3857", "filter": "party = 'x'"},
        {"datetime": "2022-03-25T00:00:00Z/2022-03-24T00:00:00Z"},
        {"bbox": "1,2,3"},
        {"after": "!!!"},
        {"after": "WzEsMl0", "before": "WzEsMl0"},
        {"limit": "0"},
    ],
)
@pytest.mark.parametrize("collection", ["reports", "incursions", "zones", "places"])
def test_hostile_queries_are_400_or_an_answer_never_500(
    client: TestClient, collection: str, params: dict[str, str]
) -> None:
    response = client.get(f"/collections/{collection}/items", params=params, headers=VIEWER)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert_problem(response, 400)
    elif "filter" in params:
        assert response.json()["numberMatched"] in (0, len(response.json()["features"])) or (
            "S_INTERSECTS" in params["filter"]
        )
    # The reports are all still there.
    assert client.get("/reports", headers=VIEWER).json()["numberReturned"] == 13


def test_queryables_are_a_json_schema(client: TestClient) -> None:
    response = client.get("/collections/reports/queryables", headers=VIEWER)
    assert response.headers["content-type"] == "application/schema+json"
    schema = response.json()
    assert schema["properties"]["observed_at"] == {
        "title": "when it was observed",
        "type": "string",
        "format": "date-time",
    }
    assert "troops" in schema["properties"]["kind"]["enum"]
    assert schema["properties"]["geometry"]["format"] == "geometry-point"


def test_docs_say_how_to_install_their_assets_when_missing(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app import assets

    monkeypatch.setattr(assets, "missing_docs_assets", lambda: ["vendor/redoc/x.js"])
    for path in ("/docs", "/redoc"):
        response = client.get(path)
        assert response.status_code == 503 and "make assets" in response.text


@pytest.mark.map_assets
def test_docs_link_only_this_server(client: TestClient) -> None:
    for path in ("/docs", "/redoc"):
        page = client.get(path)
        assert page.status_code == 200
        assert "https://" not in page.text and "http://" not in page.text, page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]


def test_a_new_collection_needs_no_new_route(client: TestClient) -> None:
    # Incidents will be one more entry in make_collections: any object with the members of
    # app.ogc.collections.Collection is listed, described, paged and filtered by the same routes.
    from app.ogc.collections import ReferenceCollection

    client.get("/collections", headers=VIEWER)  # the app makes its collections on first use
    made = client.app.state.ogc_collections  # type: ignore[attr-defined]
    made["incidents"] = ReferenceCollection.from_geojson(
        "incidents",
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "id": f"i-{n}",
                    "geometry": {"type": "Point", "coordinates": [46.8 + n / 100, 40.0]},
                    "properties": {"party": ("AZE", "NK")[n % 2], "reports": n},
                }
                for n in range(5)
            ],
        },
    )
    ids = [c["id"] for c in client.get("/collections", headers=VIEWER).json()["collections"]]
    assert ids[-1] == "incidents"
    found = client.get(
        "/collections/incidents/items",
        params={"filter": "party = 'AZE' AND reports >= 2", "limit": 1},
        headers=VIEWER,
    ).json()
    assert found["numberMatched"] == 2 and [f["id"] for f in found["features"]] == ["i-2"]
    queryables = client.get("/collections/incidents/queryables", headers=VIEWER).json()
    assert queryables["properties"]["reports"]["type"] == "number"


def test_answers_validate_against_their_documented_models(client: TestClient) -> None:
    from app.api.models import CollectionOut, Collections, Conformance, LandingPage, Page

    LandingPage.model_validate(client.get("/").json())
    Conformance.model_validate(client.get("/conformance", headers=VIEWER).json())
    Collections.model_validate(client.get("/collections", headers=VIEWER).json())
    CollectionOut.model_validate(client.get("/collections/zones", headers=VIEWER).json())
    for collection in ("zones", "reports", "incursions", "places"):
        Page.model_validate(client.get(f"/collections/{collection}/items", headers=VIEWER).json())


def test_the_requests_qgis_sends(client: TestClient) -> None:
    # QGIS's OAPIF provider: the landing page as JSON, its service-desc and data links, the
    # conformance, the collections, then items with a page size, a bbox, the layer's CRS and a
    # filter in CQL2 text with double-quoted property names.
    landing = client.get("/", headers={"Accept": "application/json"}).json()
    rels = {link["rel"]: link["href"] for link in landing["links"]}
    api = client.get(rels["service-desc"], headers={"Accept": "application/json"}).json()
    items = api["paths"]["/collections/{collectionId}/items"]["get"]["parameters"]
    limit = next(p for p in items if p["name"] == "limit")["schema"]
    assert (limit["default"], limit["maximum"]) == (100, 10_000)
    assert {"filter", "filter-lang", "bbox", "datetime", "crs"} <= {p["name"] for p in items}
    assert client.get(rels["conformance"], headers=VIEWER).status_code == 200
    assert client.get(rels["data"], headers=VIEWER).status_code == 200
    page = client.get(
        "/collections/incursions/items",
        params={
            "limit": 1000,
            "bbox": "46.0,39.5,47.5,40.5",
            "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
            "filter": '("party" = \'AZE\') AND ("depth_m" > 0)',
            "filter-lang": "cql2-text",
        },
        headers=VIEWER,
    )
    assert page.status_code == 200, page.text
    assert page.headers["content-crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
    features = page.json()["features"]
    assert features and all(
        f["properties"]["party"] == "AZE" and f["properties"]["depth_m"] > 0 for f in features
    )


def test_a_time_compares_as_an_instant_whatever_its_offset(client: TestClient) -> None:
    first = client.get("/collections/incursions/items?limit=1", headers=VIEWER).json()
    feature = first["features"][0]
    when = feature["properties"]["observed_at"]  # UTC
    shifted = datetime.fromisoformat(when).astimezone(timezone(timedelta(hours=4))).isoformat()
    same = client.get(
        "/collections/incursions/items",
        params={"filter": f"observed_at = TIMESTAMP('{shifted}')"},
        headers=VIEWER,
    ).json()
    assert feature["id"] in {f["id"] for f in same["features"]}
    assert all(f["properties"]["observed_at"] == when for f in same["features"])


def test_f_json_is_taken_and_other_encodings_refused(client: TestClient) -> None:
    for path in ("/conformance", "/collections", "/collections/zones/items"):
        assert client.get(f"{path}?f=json", headers=VIEWER).status_code == 200
        assert_problem(client.get(f"{path}?f=xml", headers=VIEWER), 400, "f")
