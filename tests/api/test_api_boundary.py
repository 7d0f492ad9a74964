"""Over HTTP: a zone's `boundary_uncertainty_m` (stored, read back, in the verdict, refused when
bad), certain apart from possible on `/incursions`, `numberMatched` and `zone` on `/reports`,
`numberMatched` on `/audit`, and `limit` on the short listings."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import shape

from app.scenario import load_scenario
from tests.api.support import assert_problem, auth
from tests.factories import T, collection, point_feature, zone_feature
from tests.oracle import offset, oracle_depth, oracle_verdict
from tests.scenario_facts import ScenarioFacts, scenario_facts

ADMIN = auth("admin")
VIEWER = auth("viewer")
FIELD = "properties/boundary_uncertainty_m"


@pytest.fixture(scope="module")
def facts() -> ScenarioFacts:
    return scenario_facts(load_scenario())


# --- the zone field -----------------------------------------------------------------------------


def test_boundary_uncertainty_round_trips_through_create_version_and_history(
    client: TestClient,
) -> None:
    created = client.post(
        "/zones", json=zone_feature("fuzzy", boundary_uncertainty_m=2500), headers=ADMIN
    )
    assert created.status_code == 201, created.text
    assert created.json()["features"][0]["properties"]["boundary_uncertainty_m"] == 2500
    read = client.get("/zones/fuzzy", headers=VIEWER).json()
    assert read["properties"]["boundary_uncertainty_m"] == 2500
    changed = zone_feature("fuzzy", boundary_uncertainty_m=12.25)
    assert client.put("/zones/fuzzy", json=changed, headers=ADMIN).status_code == 200
    history = client.get("/zones/fuzzy/history", headers=VIEWER).json()
    assert [f["properties"]["boundary_uncertainty_m"] for f in history["features"]] == [
        2500,
        12.25,
    ]
    # Left out, it is 0: an exact line.
    client.post("/zones", json=zone_feature("exact", lon=50.0), headers=ADMIN)
    exact = client.get("/zones/exact", headers=VIEWER).json()
    assert exact["properties"]["boundary_uncertainty_m"] == 0
    listed = client.get("/zones", params={"at": "all"}, headers=VIEWER).json()
    assert all("boundary_uncertainty_m" in f["properties"] for f in listed["features"])


def test_the_scenario_zones_are_served_with_their_accuracy(client: TestClient) -> None:
    zone = client.get("/zones/nk-pk-zone", headers=VIEWER).json()
    assert zone["properties"]["boundary_uncertainty_m"] == 2000


def test_a_check_adds_the_zone_uncertainty_to_the_reports(client: TestClient) -> None:
    # 1.5 km east of the square's east edge, reported with 200 m: outside an exact zone
    # (beyond its 1 km warning distance), `possible` when the line may be 2 km off.
    feature = zone_feature("fuzzy", lon=46.0, lat=39.0, size=0.1, boundary_uncertainty_m=2000)
    assert client.post("/zones", json=feature, headers=ADMIN).status_code == 201
    lon, lat = offset(46.1, 39.05, 90.0, 1500.0)
    depth = oracle_depth(lon, lat, shape(feature["geometry"]))
    assert oracle_verdict(depth, 200.0, 1000.0) == "outside"
    assert oracle_verdict(depth, 2200.0, 1000.0) == "possible"
    answer = client.post(
        "/check", json=point_feature(lon, lat, uncertainty_m=200), headers=VIEWER
    ).json()
    (finding,) = [
        f["properties"] for f in answer["features"] if f["properties"]["zone_id"] == "fuzzy"
    ]
    assert finding["verdict"] == "possible" and finding["violation"] is True
    assert finding["depth_m"] == pytest.approx(depth, abs=0.5)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (-1, "at least 0"),
        (-1e-9, "at least 0"),
        ("2000", "must be a number"),
        ("NaN", "must be a number"),
        (1e300, "at most"),
        (True, "must be a number"),
        ([2000], "must be a number"),
    ],
)
def test_a_bad_boundary_uncertainty_is_a_422_naming_the_field(
    client: TestClient, value: Any, words: str
) -> None:
    bad = zone_feature("bad", boundary_uncertainty_m=value)
    for body, field, index in (
        (bad, FIELD, None),
        (collection(zone_feature("fine"), copy.deepcopy(bad)), f"features/1/{FIELD}", 1),
    ):
        problem = assert_problem(client.post("/zones", json=body, headers=ADMIN), 422, field)
        assert problem["index"] == index and words in problem["detail"], problem
    new_version = zone_feature("nk-pk-zone", boundary_uncertainty_m=value)
    put = client.put("/zones/nk-pk-zone", json=new_version, headers=ADMIN)
    assert_problem(put, 422, FIELD)
    assert len(client.get("/zones/nk-pk-zone/history", headers=VIEWER).json()["features"]) == 2
    assert client.get("/zones/bad", headers=VIEWER).status_code == 404
    assert client.get("/zones/fine", headers=VIEWER).status_code == 404


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused_not_stored(client: TestClient, literal: str) -> None:
    text = json.dumps(zone_feature("bad", boundary_uncertainty_m=0)).replace(
        '"boundary_uncertainty_m": 0', f'"boundary_uncertainty_m": {literal}'
    )
    response = client.post(
        "/zones", content=text, headers={**ADMIN, "content-type": "application/json"}
    )
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"
    if response.status_code == 422:
        assert response.json()["field"] == FIELD
    assert client.get("/zones/bad", headers=VIEWER).status_code == 404


# --- certain apart from possible -----------------------------------------------------------------


def test_incursions_count_inside_apart_from_possible(
    client: TestClient, facts: ScenarioFacts
) -> None:
    every = client.get("/incursions", headers=VIEWER).json()
    by_verdict = every["violationsByVerdict"]
    assert by_verdict == {
        "inside": len(facts.inside),
        "possible": len(facts.violations - facts.inside),
    }
    assert by_verdict["inside"] + by_verdict["possible"] == every["numberMatched"]
    for verdict, expected in (
        ("inside", facts.inside),
        ("possible", facts.violations - facts.inside),
    ):
        page = client.get("/incursions", params={"verdict": verdict}, headers=VIEWER).json()
        assert {f["properties"]["report_id"] for f in page["features"]} == expected
        assert {f["properties"]["verdict"] for f in page["features"]} == {verdict}
        assert page["numberMatched"] == len(expected)
        assert page["violationsByVerdict"][verdict] == len(expected)
    # With the other filters, and paged: the counts are of everything matched.
    paged = client.get("/incursions", params={"limit": 2, "party": "AZE"}, headers=VIEWER).json()
    assert paged["numberReturned"] == 2 and paged["violationsByVerdict"] == by_verdict


@pytest.mark.parametrize("value", ["certain", "INSIDE", "approaching", "outside", ""])
def test_a_bad_verdict_filter_is_a_400_naming_it(client: TestClient, value: str) -> None:
    response = client.get("/incursions", params={"verdict": value}, headers=VIEWER)
    assert_problem(response, 400, "verdict")


# --- numberMatched, zone and limit on the listings ---------------------------------------------


def test_reports_say_how_many_match_over_all_pages(client: TestClient) -> None:
    first = client.get("/reports", params={"limit": 5}, headers=VIEWER).json()
    assert first["numberMatched"] == 13 and first["numberReturned"] == 5
    aze = client.get("/reports", params={"party": "AZE"}, headers=VIEWER).json()
    assert aze["numberMatched"] == 11 == len(aze["features"])
    late = client.get("/reports", params={"since": "2022-03-28T00:00:00Z"}, headers=VIEWER).json()
    assert late["numberMatched"] == len(late["features"]) == 2
    # A retraction leaves the count.
    rid = first["features"][0]["id"]
    assert client.delete(f"/reports/{rid}", params={"reason": "test"}, headers=ADMIN).is_success
    assert client.get("/reports", headers=VIEWER).json()["numberMatched"] == 12


def test_reports_filtered_by_zone_are_those_with_a_finding_there(client: TestClient) -> None:
    scenario = load_scenario()
    expected = set()
    for r in scenario.reports:
        for z in scenario.zones:
            if z.id == "nk-pk-zone" and z.in_force(r.observed_at):
                u = r.uncertainty_m + z.boundary_uncertainty_m
                depth = oracle_depth(r.lon, r.lat, z.geometry)
                if oracle_verdict(depth, u, z.warning_distance_m) != "outside":
                    expected.add(r.id)
    assert expected  # the scenario happens in that zone
    found, cursor, matched = set(), None, None
    params: dict[str, Any] = {"zone": "nk-pk-zone", "limit": 4}
    while True:
        page = client.get("/reports", params=params, headers=VIEWER).json()
        if "after" in params:  # counted on the first page only
            assert "numberMatched" not in page
        else:
            matched = page["numberMatched"]
        found |= {f["id"] for f in page["features"]}
        following = [link for link in page["links"] if link["rel"] == "next"]
        if not following:
            break
        assert "zone=nk-pk-zone" in following[0]["href"]
        params = {
            "zone": "nk-pk-zone",
            "limit": 4,
            "after": following[0]["href"].split("after=")[1].split("&")[0],
        }
        cursor = params["after"]
    assert found == expected and matched == len(expected) and cursor is not None
    corridor = client.get("/reports", params={"zone": "nk-lachin-corridor"}, headers=VIEWER)
    assert corridor.json()["numberMatched"] == 0 == len(corridor.json()["features"])
    nowhere = client.get("/reports", params={"zone": "no-such-zone"}, headers=VIEWER).json()
    assert nowhere["features"] == [] and nowhere["numberMatched"] == 0


def test_the_commit_order_feed_takes_no_zone(client: TestClient) -> None:
    response = client.get(
        "/reports", params={"filed_after": 0, "zone": "nk-pk-zone"}, headers=VIEWER
    )
    assert_problem(response, 400, "zone")


def test_audit_says_how_many_entries_match(client: TestClient) -> None:
    first = client.get("/audit", params={"limit": 2}, headers=ADMIN).json()
    total = first["numberMatched"]
    assert first["numberReturned"] == 2 and total > 2
    seen, after = 0, None
    while True:
        params: dict[str, Any] = {"limit": 3} if after is None else {"limit": 3, "after": after}
        page = client.get("/audit", params=params, headers=ADMIN).json()
        assert page["numberMatched"] == total - seen
        seen += len(page["entries"])
        if len(page["entries"]) < 3:
            break
        after = page["entries"][-1]["id"]
    assert seen == total


def test_short_listings_take_a_limit_and_say_how_many_match(client: TestClient) -> None:
    parties = client.get("/parties", params={"limit": 2}, headers=VIEWER).json()
    assert len(parties["parties"]) == 2 == parties["numberReturned"]
    assert parties["numberMatched"] == 5
    history = client.get("/zones/nk-pk-zone/history", params={"limit": 1}, headers=VIEWER).json()
    assert [f["properties"]["version"] for f in history["features"]] == [1]
    assert history["numberMatched"] == 2
    rid = client.get("/reports", params={"limit": 1}, headers=VIEWER).json()["features"][0]["id"]
    body = point_feature(46.81, 40.02, id=rid, observed_at=T)
    assert client.put(f"/reports/{rid}", json=body, headers=ADMIN).is_success
    versions = client.get(f"/reports/{rid}/history", params={"limit": 1}, headers=VIEWER).json()
    assert versions["numberReturned"] == 1 and versions["numberMatched"] == 2
    for path in ("/parties", "/zones/nk-pk-zone/history", f"/reports/{rid}/history"):
        assert_problem(client.get(path, params={"limit": 0}, headers=VIEWER), 400, "limit")


def test_a_check_and_a_filing_count_inside_apart_from_possible(
    client: TestClient, facts: ScenarioFacts
) -> None:
    reports = json.loads((load_scenario_dir() / "reports.geojson").read_text())
    for feature in reports["features"]:
        feature["id"] = f"again-{feature['id']}"
    expected = {"inside": len(facts.inside), "possible": len(facts.violations - facts.inside)}
    checked = client.post("/check", json=reports, headers=VIEWER).json()
    assert checked["violationsByVerdict"] == expected
    assert checked["violations"] == sum(expected.values())
    filed = client.post("/reports", json=reports, headers=ADMIN).json()
    assert filed["findings"]["violationsByVerdict"] == expected
    far = client.post("/check", json=point_feature(10.0, 10.0), headers=VIEWER).json()
    assert far["violationsByVerdict"] == {"inside": 0, "possible": 0}


def load_scenario_dir() -> Any:
    from app.scenario import GEODATA

    return GEODATA


# --- the same over a real server ---------------------------------------------------------------


def test_over_http_verdict_filter_totals_and_the_zone_field(http: Any) -> None:
    every = http.get("/incursions", headers=VIEWER).json()
    totals = every["violationsByVerdict"]
    assert totals["inside"] + totals["possible"] == every["numberMatched"] > 0
    for verdict in ("inside", "possible"):
        page = http.get("/incursions", params={"verdict": verdict}, headers=VIEWER)
        assert page.status_code == 200 and page.headers["content-type"].startswith(
            "application/geo+json"
        )
        body = page.json()
        assert body["numberMatched"] == totals[verdict] == len(body["features"])
        assert all(f["properties"]["verdict"] == verdict for f in body["features"])
    bad = http.get("/incursions", params={"verdict": "sure"}, headers=VIEWER)
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["field"] == "verdict"

    feature = zone_feature("e2e-fuzzy", lon=60.0, lat=10.0, boundary_uncertainty_m=750.5)
    assert http.post("/zones", json=feature, headers=ADMIN).status_code == 201
    read = http.get("/zones/e2e-fuzzy", headers=VIEWER).json()
    assert read["properties"]["boundary_uncertainty_m"] == 750.5
    for value in (-5, "750", 1e300, None):
        bad_zone = zone_feature("e2e-bad", lon=60.0, lat=10.0, boundary_uncertainty_m=value)
        if value is None:
            bad_zone["properties"]["boundary_uncertainty_m"] = float("nan")
            response = http.post(
                "/zones",
                content=json.dumps(bad_zone),  # NaN is not JSON: refused as unreadable
                headers={**ADMIN, "content-type": "application/json"},
            )
            assert response.status_code in (400, 422)
        else:
            response = http.post("/zones", json=bad_zone, headers=ADMIN)
            assert response.status_code == 422
            assert response.json()["field"] == FIELD
        assert response.headers["content-type"] == "application/problem+json"
    assert http.get("/zones/e2e-bad", headers=VIEWER).status_code == 404
    reports = http.get("/reports", params={"limit": 1}, headers=VIEWER).json()
    assert reports["numberMatched"] >= 13 and reports["numberReturned"] == 1
