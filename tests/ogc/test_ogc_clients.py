"""Clients nobody here wrote, against a real uvicorn on loopback: GDAL's OGC API – Features
driver (through pyogrio's bundled GDAL) and OWSLib. Their answers must match the native API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyogrio
import pytest

from app.domain import Report
from app.service import Service
from app.store import SQLiteStore
from tests.api.support import KEYS, Server, auth, running_server

VIEWER = auth("viewer")

pytestmark = pytest.mark.skipif(
    "OAPIF" not in pyogrio.list_drivers(), reason="this GDAL has no OAPIF driver"
)


@pytest.fixture(autouse=True)
def gdal_sends_the_key(tmp_path: Path) -> Iterator[None]:
    """GDAL sends the viewer key in X-API-Key (as QGIS's "API header" authentication does),
    from a header file (GDAL_HTTP_HEADERS is replaced by the driver's own Accept header)."""
    headers = tmp_path / "headers.txt"
    headers.write_text(f"X-API-Key: {KEYS['viewer']}\n")
    pyogrio.set_gdal_config_options({"GDAL_HTTP_HEADER_FILE": str(headers)})
    yield
    pyogrio.set_gdal_config_options({"GDAL_HTTP_HEADER_FILE": None})


def oapif(server: Server) -> str:
    return f"OAPIF:{server.url}/"


def native(http: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    response = http.get(path, params={"limit": 10_000, **params}, headers=VIEWER)
    assert response.status_code == 200, response.text
    features: list[dict[str, Any]] = response.json()["features"]
    return features


def test_gdal_lists_every_collection(server: Server) -> None:
    layers = {str(name): str(kind) for name, kind in pyogrio.list_layers(oapif(server))}
    assert layers == {
        "zones": "Polygon",
        "reports": "Point",
        "incursions": "Point",
        "line-of-contact": "LineString",
        "observation-posts": "Point",
        "places": "Point",
    }


def test_gdal_reads_every_collection_as_the_native_api_lists_it(
    server: Server, http: httpx.Client
) -> None:
    zones = pyogrio.read_dataframe(oapif(server), layer="zones")
    every = native(http, "/zones", at="all")
    assert sorted(zip(zones["zone_id"], zones["version"], strict=True)) == sorted(
        (f["id"], f["properties"]["version"]) for f in every
    )
    reports = pyogrio.read_dataframe(oapif(server), layer="reports")
    listed = native(http, "/reports")
    assert sorted(reports["id"]) == sorted(f["id"] for f in listed)
    by_id = {f["id"]: f for f in listed}
    for row in reports.itertuples():
        assert row.party == by_id[row.id]["properties"]["party"]
        assert (row.geometry.x, row.geometry.y) == tuple(by_id[row.id]["geometry"]["coordinates"])
    incursions = pyogrio.read_dataframe(oapif(server), layer="incursions")
    found = native(http, "/incursions")
    assert sorted(zip(incursions["report_id"], incursions["zone_id"], strict=True)) == sorted(
        (f["properties"]["report_id"], f["properties"]["zone_id"]) for f in found
    )
    depth = dict(
        zip(
            incursions["report_id"] + "@" + incursions["zone_id"],
            incursions["depth_m"],
            strict=True,
        )
    )
    for f in found:
        key = f"{f['properties']['report_id']}@{f['properties']['zone_id']}"
        assert depth[key] == f["properties"]["depth_m"]
    for layer, count in (("places", 27), ("observation-posts", 9), ("line-of-contact", 2)):
        assert len(pyogrio.read_dataframe(oapif(server), layer=layer)) == count


def test_gdal_pages_through_a_collection(server: Server, http: httpx.Client) -> None:
    # A 3-feature page size (the driver's PAGE_SIZE open option) makes GDAL follow next
    # links for the 13 reports: 5 pages.
    before = len(server.log.read_text().splitlines())
    reports = pyogrio.read_dataframe(oapif(server), layer="reports", PAGE_SIZE=3)
    assert len(reports) == len(set(reports["id"])) == len(native(http, "/reports")) == 13
    requests = server.log.read_text().splitlines()[before:]
    pages = [r for r in requests if "/collections/reports/items" in r and "limit=3" in r]
    assert len(pages) >= 5, requests
    assert sum("after=" in r for r in pages) >= 4


def test_gdal_bbox_datetime_and_a_filter_pushed_to_the_server(
    server: Server, http: httpx.Client
) -> None:
    box = (46.79, 40.0, 46.81, 40.02)
    in_box = pyogrio.read_dataframe(oapif(server), layer="reports", bbox=box)
    listed = native(http, "/reports", bbox=",".join(map(str, box)))
    assert sorted(in_box["id"]) == sorted(f["id"] for f in listed) and len(listed) > 0
    later = pyogrio.read_dataframe(
        oapif(server), layer="reports", where="observed_at >= '2022-03-26T00:00:00Z'"
    )
    since = native(http, "/reports", since="2022-03-26T00:00:00Z")
    assert sorted(later["id"]) == sorted(f["id"] for f in since) and 0 < len(since) < 13
    before = len(server.log.read_text().splitlines())
    inside = pyogrio.read_dataframe(
        oapif(server), layer="incursions", where="party = 'AZE' AND verdict = 'inside'"
    )
    expected = [
        f
        for f in native(http, "/incursions", party="AZE")
        if f["properties"]["verdict"] == "inside"
    ]
    assert len(inside) == len(expected) > 0
    requests = server.log.read_text().splitlines()[before:]
    # The filter went to the server as CQL text, not evaluated by GDAL alone.
    assert any("/collections/incursions/items" in r and "filter=" in r for r in requests)


def test_a_filter_nested_too_deep_is_refused_and_the_server_lives_on(
    server: Server, http: httpx.Client
) -> None:
    # cql2-rs overflows its stack (ending the process) past ~2,000 nested parentheses: the
    # server must refuse such a filter before parsing it, and keep serving.
    deep = "(" * 4000 + "party = 'x'" + ")" * 4000
    response = http.get("/collections/reports/items", params={"filter": deep}, headers=VIEWER)
    assert response.status_code == 400 and response.json()["field"] == "filter"
    assert http.get("/health").status_code == 200
    assert server.process.poll() is None


def test_the_readme_ogr2ogr_line_through_pyogrio(server: Server, tmp_path: Path) -> None:
    # ogr2ogr -f GPKG incursions.gpkg OAPIF:<url>/ incursions, through the same GDAL.
    frame = pyogrio.read_dataframe(oapif(server), layer="incursions")
    out = tmp_path / "incursions.gpkg"
    pyogrio.write_dataframe(frame, out, layer="incursions", driver="GPKG")
    back = pyogrio.read_dataframe(out)
    assert len(back) == len(frame) > 0
    assert set(back["verdict"]) <= {"inside", "possible"}


def test_owslib_reads_landing_conformance_collections_queryables_and_items(
    server: Server,
) -> None:
    from owslib.ogcapi.features import Features

    api = Features(server.url, headers={"X-API-Key": KEYS["viewer"]})
    links = {link["rel"] for link in api.links}
    assert {"service-desc", "data", "conformance"} <= links
    assert "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text" in api.conformance()["conformsTo"]
    ids = [c["id"] for c in api.collections()["collections"]]
    assert ids[:3] == ["zones", "reports", "incursions"]
    queryables = api.collection_queryables("incursions")
    assert queryables["properties"]["verdict"]["enum"] == ["inside", "possible"]
    items = api.collection_items("reports", filter="party = 'NK'", limit=50)
    assert items["numberMatched"] == 1
    assert {f["properties"]["party"] for f in items["features"]} == {"NK"}


# -- a season: 1e5 reports paged through next links -----------------------------------------------


@pytest.fixture(scope="module")
def season(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int]]:
    directory = tmp_path_factory.mktemp("season")
    db = directory / "truce.sqlite"
    start = datetime(2022, 3, 1, tzinfo=UTC)
    n = 100_000
    with SQLiteStore(db) as store:
        Service(store).load_scenario()
        # Many reports share a time, so the (observed_at, id) key must break ties.
        reports = [
            Report(
                id=f"s-{i:06d}",
                party=("AZE", "ARM", "RU-PK")[i % 3],
                observed_at=start + timedelta(minutes=i // 7),
                lon=46.2 + (i % 1000) / 1000,
                lat=39.5 + (i % 997) / 997,
            )
            for i in range(n)
        ]
        store.add_reports(reports, "bench")
        total = store.count_reports()
    with running_server(db, directory / "uvicorn.log") as server:
        yield server, total


def test_paging_a_season_of_reports_returns_each_once(season: tuple[Server, int]) -> None:
    server, total = season
    seen: list[str] = []
    url: str | None = f"{server.url}/collections/reports/items?limit=10000"
    with httpx.Client(timeout=120, headers=VIEWER) as http:
        while url:
            page = http.get(url)
            assert page.status_code == 200, page.text
            body = page.json()
            assert body["numberMatched"] == total
            seen += [f["id"] for f in body["features"]]
            url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
            if url and url.startswith("/"):
                url = server.url + url
    assert len(seen) == len(set(seen)) == total


def test_a_filtered_season_through_gdal(season: tuple[Server, int]) -> None:
    server, _ = season
    frame = pyogrio.read_dataframe(f"OAPIF:{server.url}/", layer="reports", where="party = 'ARM'")
    assert len(frame) == len(set(frame["id"])) == 33_333  # the sample has no ARM report
