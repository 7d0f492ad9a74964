"""`/map/data/…` over both stores: what the map draws for a view, checked against the reference
(tests/oracle.py on pyproj.Geod) and plain Python arithmetic on the same seeded reports."""

from __future__ import annotations

import gzip
import math
import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.scenario import load_scenario
from tests.api.support import assert_problem, auth
from tests.factories import point_feature
from tests.oracle import oracle_depth, oracle_verdict

VIEWER = auth("viewer")
T0 = datetime(2022, 3, 25, tzinfo=UTC)
#: Around Parukh and the zone of responsibility's south-eastern edge.
BOX = (46.55, 39.75, 47.05, 40.15)


def _seed(client: TestClient, n: int = 60, seed: int = 12) -> list[dict[str, Any]]:
    """`n` reports with units, spread over the box and three days, stored through the API."""
    rng = random.Random(seed)
    features = []
    for k in range(n):
        features.append(
            point_feature(
                round(rng.uniform(BOX[0], BOX[2]), 6),
                round(rng.uniform(BOX[1], BOX[3]), 6),
                id=f"seed-{k}",
                party=rng.choice(["AZE", "ARM", "RU-PK"]),
                observed_at=(T0 + timedelta(seconds=rng.randrange(3 * 86400))).isoformat(),
                uncertainty_m=rng.choice([0, 50, 400, 1500]),
                unit=f"unit-{k % 5}",
            )
        )
    response = client.post(
        "/reports",
        json={"type": "FeatureCollection", "features": features},
        headers=auth("observer"),
    )
    assert response.status_code in (200, 201), response.text
    return features


def _reference() -> dict[str, dict[str, Any]]:
    """Every stored report (scenario + seeded) with the reference's violation: 'inside',
    'possible' or None, by id (u = the report's uncertainty + the zone's boundary's)."""
    scenario = load_scenario()
    rows: dict[str, dict[str, Any]] = {}
    for r in scenario.reports:
        rows[r.id] = {
            "lon": r.lon,
            "lat": r.lat,
            "t": r.observed_at,
            "party": r.party,
            "u": r.uncertainty_m,
        }
    return rows


def _judge(rows: dict[str, dict[str, Any]]) -> dict[str, str | None]:
    zones = load_scenario().zones
    verdicts: dict[str, str | None] = {}
    for report_id, r in rows.items():
        found: set[str] = set()
        for z in zones:
            if not z.in_force(r["t"]) or r["party"] in z.authorized_parties:
                continue
            depth = oracle_depth(r["lon"], r["lat"], z.geometry)
            found.add(
                oracle_verdict(depth, r["u"] + z.boundary_uncertainty_m, z.warning_distance_m)
            )
        verdicts[report_id] = (
            "inside" if "inside" in found else "possible" if "possible" in found else None
        )
    return verdicts


@pytest.fixture
def seeded(client: TestClient) -> dict[str, dict[str, Any]]:
    rows = _reference()
    for f in _seed(client):
        p = f["properties"]
        rows[f["id"]] = {
            "lon": f["geometry"]["coordinates"][0],
            "lat": f["geometry"]["coordinates"][1],
            "t": datetime.fromisoformat(p["observed_at"]),
            "party": p["party"],
            "u": float(p["uncertainty_m"]),
        }
    return rows


def _get(client: TestClient, kind: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/map/data/{kind}", params=params, headers=VIEWER)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_cells_count_what_the_reference_finds_in_each_cell(
    client: TestClient, seeded: dict[str, dict[str, Any]]
) -> None:
    zoom = 12
    size = 48 * 360 / (256 * 2**zoom)
    verdicts = _judge(seeded)
    expected: dict[tuple[int, int], Counter[str]] = defaultdict(Counter)
    for report_id, r in seeded.items():
        key = (math.floor(r["lon"] / size), math.floor(r["lat"] / size))
        expected[key]["count"] += 1
        expected[key][f"party:{r['party']}"] += 1
        if verdicts[report_id] is not None:
            expected[key][str(verdicts[report_id])] += 1
    answer = _get(client, "cells", zoom=zoom)
    cells = answer["cells"]
    codes = [p["code"] for p in answer["parties"]]
    got: dict[tuple[int, int], Counter[str]] = {}
    for k in range(len(cells["count"])):
        key = (math.floor(cells["lon"][k] / size), math.floor(cells["lat"][k] / size))
        counter: Counter[str] = Counter(count=cells["count"][k])
        counter["inside"] = cells["inside"][k]
        counter["possible"] = cells["possible"][k]
        for j, code in enumerate(codes):
            counter[f"party:{code}"] = cells["byParty"][k * len(codes) + j]
        got[key] = +counter  # zero counts dropped, as in `expected`
    assert got == {key: +c for key, c in expected.items()}
    assert answer["counts"]["reports"] == len(seeded)
    inside = sum(v == "inside" for v in verdicts.values())
    possible = sum(v == "possible" for v in verdicts.values())
    assert (answer["counts"]["violationsInside"], answer["counts"]["violationsPossible"]) == (
        inside,
        possible,
    )


def test_the_scenario_alone_counts_7_inside_and_4_possible(client: TestClient) -> None:
    counts = _get(client, "cells", zoom=8)["counts"]
    assert counts["reports"] == 13
    assert (counts["violationsInside"], counts["violationsPossible"]) == (7, 4)


def test_reports_in_a_view_and_window_are_those_the_reference_puts_there(
    client: TestClient, seeded: dict[str, dict[str, Any]]
) -> None:
    box = (46.7, 39.85, 46.95, 40.05)
    since, until = T0 + timedelta(hours=12), T0 + timedelta(days=2)
    answer = _get(
        client,
        "reports",
        bbox=",".join(map(str, box)),
        since=since.isoformat(),
        until=until.isoformat(),
    )
    expected = {
        report_id
        for report_id, r in seeded.items()
        if box[0] <= r["lon"] <= box[2] and box[1] <= r["lat"] <= box[3] and since <= r["t"] < until
    }
    assert expected  # the view holds some
    assert set(answer["reports"]["id"]) == expected
    assert answer["matched"] == len(expected) and answer["truncated"] is False
    verdicts = _judge({k: seeded[k] for k in expected})
    r = answer["reports"]
    violating = {i for i, s in zip(r["id"], r["status"], strict=True) if s == 3}
    certain = {i for i, c in zip(r["id"], r["certain"], strict=True) if c}
    assert violating == {k for k, v in verdicts.items() if v is not None}
    assert certain == {k for k, v in verdicts.items() if v == "inside"}
    assert r["t"] == sorted(r["t"])


def test_a_view_with_more_than_limit_reports_says_it_is_truncated(
    client: TestClient, seeded: dict[str, dict[str, Any]]
) -> None:
    answer = _get(client, "reports", limit=10)
    assert len(answer["reports"]["id"]) == 10
    assert answer["truncated"] is True and answer["matched"] == len(seeded)
    # The first ten in time order, each with its findings' offsets.
    assert answer["reports"]["t"] == sorted(answer["reports"]["t"])
    assert len(answer["findings"]["offsets"]) == 11


def test_tracks_are_simplified_to_the_zoom(client: TestClient) -> None:
    close = _get(client, "tracks", zoom=18)["tracks"]
    far = _get(client, "tracks", zoom=4)["tracks"]
    k = close["unit"].index("parukh-group")
    vertices = close["offsets"][k + 1] - close["offsets"][k]
    unit = [r for r in load_scenario().reports if r.unit == "parukh-group"]
    assert len(unit) >= 3 and vertices == len(unit)  # every position: none is redundant
    first = min(unit, key=lambda r: r.observed_at)
    start = close["offsets"][k]
    assert (close["lon"][start], close["lat"][start]) == (round(first.lon, 5), round(first.lat, 5))
    k = far["unit"].index("parukh-group")
    assert far["offsets"][k + 1] - far["offsets"][k] == 2  # a straight line from first to last


def test_events_are_the_entries_and_exits_in_the_window(client: TestClient) -> None:
    events = _get(client, "events")
    assert list(zip(events["kind"], events["zone"], events["unit"], strict=True)) == [
        ("entered", "nk-pk-zone", "parukh-group")
    ]
    before = _get(client, "events", until="2022-03-24T01:00:00Z")
    assert before["t"] == []


def test_an_unchanged_view_is_a_304_and_a_write_changes_the_etag(client: TestClient) -> None:
    first = client.get("/map/data/cells", params={"zoom": 9}, headers=VIEWER)
    etag = first.headers["etag"]
    again = client.get(
        "/map/data/cells", params={"zoom": 9}, headers={**VIEWER, "If-None-Match": etag}
    )
    assert again.status_code == 304 and again.content == b""
    other = client.get(
        "/map/data/cells", params={"zoom": 10}, headers={**VIEWER, "If-None-Match": etag}
    )
    assert other.status_code == 200  # another query, another tag
    client.post("/reports", json=point_feature(46.8, 40.0, id="late-1"), headers=auth("observer"))
    after = client.get(
        "/map/data/cells", params={"zoom": 9}, headers={**VIEWER, "If-None-Match": etag}
    )
    assert after.status_code == 200 and after.headers["etag"] != etag
    assert after.json()["counts"]["reports"] == first.json()["counts"]["reports"] + 1


def test_answers_are_compressed(client: TestClient, seeded: dict[str, dict[str, Any]]) -> None:
    response = client.get("/map/data/reports", headers={**VIEWER, "Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.json()["matched"] == len(seeded)  # httpx decompressed it
    raw = gzip.compress(response.content)
    assert len(raw) < len(response.content)


def test_a_filter_narrows_the_season(client: TestClient) -> None:
    assert _get(client, "cells", zoom=8, party="NK")["counts"]["reports"] == 1
    assert _get(client, "cells", zoom=8, party="XYZ")["counts"]["reports"] == 0
    assert _get(client, "reports", zone="nk-pk-zone")["matched"] >= 11
    response = client.get("/map/data/cells", params={"zone": "nowhere", "zoom": 8}, headers=VIEWER)
    assert_problem(response, 404)


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"bbox": "47,39,46,40"}, 400, "bbox"),  # west > east
        ({"bbox": "46,40,47,39"}, 400, "bbox"),  # south > north
        ({"bbox": "nan,39,47,40"}, 400, "bbox"),
        ({"bbox": "46,39,47,95"}, 400, "bbox"),
        ({"bbox": "46,39,47"}, 400, "bbox"),
        ({"bbox": "1e999,39,47,40"}, 400, "bbox"),
        ({"limit": "0"}, 400, "limit"),
        ({"limit": "1000000000"}, 400, "limit"),
        ({"limit": "ten"}, 400, "limit"),
        ({"since": "yesterday"}, 400, "since"),
        ({"since": "2022-03-28T00:00:00Z", "until": "2022-03-27T00:00:00Z"}, 400, "until"),
        ({"zoom": "3"}, 400, "zoom"),  # reports take no zoom
        ({"colour": "red"}, 400, "colour"),
    ],
)
def test_hostile_parameters_are_problems_naming_the_field(
    client: TestClient, params: dict[str, str], status: int, field: str
) -> None:
    response = client.get("/map/data/reports", params=params, headers=VIEWER)
    assert_problem(response, status, field=field)


@pytest.mark.parametrize("zoom", ["-1", "25", "nan", "inf", "x"])
def test_a_bad_zoom_is_a_400_problem(client: TestClient, zoom: str) -> None:
    response = client.get("/map/data/cells", params={"zoom": zoom}, headers=VIEWER)
    assert_problem(response, 400, field="zoom")


def test_data_routes_need_a_viewer_key(client: TestClient) -> None:
    assert client.get("/map/data/cells", params={"zoom": 8}).status_code == 401


def test_a_reports_notes_come_from_its_own_route_not_the_view(client: TestClient) -> None:
    hostile = '<img src="x" onerror="alert(1)"> and </script>'
    feature = point_feature(46.8, 40.0, id="noted/1", notes=hostile, source="OP-7")
    response = client.post("/reports", json=feature, headers=auth("observer"))
    assert response.status_code in (200, 201), response.text
    view = _get(client, "reports")
    assert view["reports"]["notes"] is None  # a view's answer stays small
    detail = client.get("/map/data/reports/noted%2F1", headers=VIEWER)
    assert detail.status_code == 200
    assert detail.headers["content-type"] == "application/json"
    assert detail.json() == {
        "id": "noted/1",
        "notes": hostile,
        "source": "OP-7",
        "version": 1,
        "retracted": False,
    }
    assert client.get("/map/data/reports/noted%2F1").status_code == 401
    missing = client.get("/map/data/reports/nowhere", headers=VIEWER)
    assert_problem(missing, 404)


def test_the_served_season_after_writes_answers_what_a_new_app_judges(
    client: TestClient, make_client: Any, seeded: dict[str, dict[str, Any]]
) -> None:
    views = [
        ("cells", {"zoom": 9}),
        ("cells", {"zoom": 12, "bbox": ",".join(map(str, BOX)), "party": "AZE"}),
        ("reports", {"limit": 20_000}),
        ("reports", {"zone": "nk-pk-zone", "limit": 20_000}),
        ("tracks", {"zoom": 11}),
        ("events", {}),
    ]
    for kind, params in views:
        _get(client, kind, **params)  # the season judged, and kept
    rng = random.Random(3)
    observer = auth("observer")
    added = [
        point_feature(
            round(rng.uniform(BOX[0], BOX[2]), 6),
            round(rng.uniform(BOX[1], BOX[3]), 6),
            id=f"later-{k}",
            party=rng.choice(["AZE", "ARM"]),
            observed_at=(T0 + timedelta(seconds=rng.randrange(3 * 86400))).isoformat(),
            unit=f"unit-{k % 7}",
        )
        for k in range(12)
    ]
    response = client.post(
        "/reports", json={"type": "FeatureCollection", "features": added}, headers=observer
    )
    assert response.status_code in (200, 201), response.text
    moved = point_feature(46.8, 40.0, id="seed-3", party="AZE", observed_at=T0.isoformat())
    assert client.put("/reports/seed-3", json=moved, headers=observer).status_code == 200
    gone = client.delete("/reports/seed-4", params={"reason": "duplicate"}, headers=observer)
    assert gone.status_code == 200, gone.text

    fresh = make_client()  # a new app: its seasons judged whole from the store
    for kind, params in views:
        assert _get(client, kind, **params) == _get(fresh, kind, **params), (kind, params)
    seasons = client.app.state.seasons  # type: ignore[attr-defined]
    assert seasons.advanced >= 1 and seasons.judged == 2  # the whole season and AZE's
    assert _get(client, "cells", zoom=8)["counts"]["reports"] == len(seeded) + 12 - 1
