"""`GET /incidents` and `GET /incidents/{id}` over both stores, through the in-process app."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.support import assert_problem, auth
from tests.factories import collection, point_feature, square, zone_feature
from tests.oracle import depth_tolerance, oracle_depth

# Far from every zone of the founding scenario.
LON, LAT = 10.0, 10.0
DEEP = (10.05, 10.05)
SHALLOW = (10.08, 10.05)
FAR = (9.5, 10.05)


def _setup(client: TestClient) -> None:
    response = client.post(
        "/zones", json=zone_feature("alert-zone", LON, LAT), headers=auth("admin")
    )
    assert response.status_code == 201, response.text


def _file(client: TestClient, *features: dict[str, Any]) -> None:
    response = client.post("/reports", json=collection(*features), headers=auth("observer"))
    assert response.status_code in (200, 201), response.text


def _track(client: TestClient) -> None:
    _file(
        client,
        point_feature(*FAR, id="t0", unit="tank-1", observed_at="2024-05-01T00:00:00Z"),
        point_feature(*SHALLOW, id="t1", unit="tank-1", observed_at="2024-05-01T01:00:00Z"),
        point_feature(*DEEP, id="t2", unit="tank-1", observed_at="2024-05-01T02:00:00Z"),
        point_feature(*FAR, id="t3", unit="tank-1", observed_at="2024-05-01T03:00:00Z"),
        point_feature(*DEEP, id="t4", unit="tank-2", observed_at="2024-05-02T00:00:00Z"),
    )


def _ours(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in body["incidents"] if i["zone_id"] == "alert-zone"]


def test_incidents_list_and_detail(client: TestClient) -> None:
    _setup(client)
    _track(client)
    response = client.get("/incidents?zone=alert-zone", headers=auth("viewer"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["numberMatched"] == 2 and body["numberReturned"] == 2
    closed, open_ = body["incidents"]
    assert (closed["unit"], closed["state"], closed["close_reason"]) == (
        "tank-1",
        "closed",
        "exited",
    )
    assert closed["report_ids"] == ["t1", "t2", "t3"]
    assert closed["opened_at"] == "2024-05-01T01:00:00+00:00"
    assert closed["closed_at"] == "2024-05-01T03:00:00+00:00"
    reference = oracle_depth(*DEEP, square(LON, LAT, 0.1))
    assert abs(closed["depth_m"] - reference) <= depth_tolerance(reference)
    assert (open_["unit"], open_["state"], open_["stale"]) == ("tank-2", "open", False)

    detail = client.get(f"/incidents/{closed['id']}", headers=auth("viewer")).json()
    assert [f["id"] for f in detail["reports"]["features"]] == ["t1", "t2", "t3"]
    assert [e["type"] for e in detail["timeline"]] == ["incident.opened", "incident.closed"]
    assert all(e["data"]["incident_id"] == closed["id"] for e in detail["timeline"])


def test_incident_filters_and_paging(client: TestClient) -> None:
    _setup(client)
    _track(client)
    viewer = auth("viewer")
    assert (
        client.get("/incidents?zone=alert-zone&state=open", headers=viewer).json()["numberMatched"]
        == 1
    )
    assert (
        client.get("/incidents?zone=alert-zone&verdict=possible", headers=viewer).json()[
            "numberMatched"
        ]
        == 0
    )
    window = "since=2024-05-01T12:00:00Z&until=2024-05-03T00:00:00Z"
    (only,) = client.get(f"/incidents?zone=alert-zone&{window}", headers=viewer).json()["incidents"]
    assert only["unit"] == "tank-2"
    first = client.get("/incidents?zone=alert-zone&limit=1", headers=viewer).json()
    (link,) = [link for link in first["links"] if link["rel"] == "next"]
    second = client.get(link["href"], headers=viewer).json()
    assert [i["unit"] for i in first["incidents"] + second["incidents"]] == ["tank-1", "tank-2"]
    assert not [link for link in second["links"] if link["rel"] == "next"]


def test_a_retraction_over_http_closes_the_incident(client: TestClient) -> None:
    _setup(client)
    _file(client, point_feature(*DEEP, id="solo", unit="scout", observed_at="2024-06-01T00:00:00Z"))
    (incident,) = _ours(client.get("/incidents?state=open", headers=auth("viewer")).json())
    response = client.delete("/reports/solo?reason=wrong%20unit", headers=auth("observer"))
    assert response.status_code in (200, 204), response.text
    after = client.get(f"/incidents/{incident['id']}", headers=auth("viewer")).json()
    assert (after["state"], after["close_reason"]) == ("closed", "retracted")
    assert after["reports"]["features"][0]["properties"]["retracted"] is True


def test_bad_incident_requests_are_problems(client: TestClient) -> None:
    viewer = auth("viewer")
    assert_problem(client.get("/incidents?colour=red", headers=viewer), 400, "colour")
    assert_problem(client.get("/incidents?state=ajar", headers=viewer), 400, "state")
    assert_problem(client.get("/incidents?verdict=maybe", headers=viewer), 400, "verdict")
    assert_problem(client.get("/incidents?after=%%%", headers=viewer), 400, "after")
    assert_problem(client.get("/incidents?since=yesterday", headers=viewer), 400, "since")
    assert_problem(client.get("/incidents/999999", headers=viewer), 404)
    assert_problem(client.get("/incidents/abc", headers=viewer), 400)
    assert client.get("/incidents").status_code == 401
