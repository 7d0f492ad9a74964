"""`GET /incidents` and `GET /incidents/{id}` over both stores, through the in-process app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from app.alerts.events import zone_changed_payload
from app.alerts.incidents import Incident, incident_payload, stale_payload
from app.api.event_models import (
    EventEnvelope,
    IncidentDetail,
    IncidentEvent,
    IncidentEventData,
    IncidentOut,
    IncidentPage,
    TrackStaleData,
    ZoneChangedData,
    ZoneChangedEvent,
)
from app.api.routers.incidents import incident_to_json
from tests.api.support import assert_problem, auth
from tests.factories import collection, point_feature, square, zone_feature
from tests.oracle import depth_tolerance, oracle_depth

ENVELOPE: TypeAdapter[Any] = TypeAdapter(EventEnvelope)

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


def test_the_answers_validate_against_their_models(client: TestClient) -> None:
    _setup(client)
    _track(client)
    page = client.get("/incidents?zone=alert-zone", headers=auth("viewer")).json()
    assert IncidentPage.model_validate(page).numberReturned == 2
    for incident in page["incidents"]:
        detail = client.get(f"/incidents/{incident['id']}", headers=auth("viewer")).json()
        model = IncidentDetail.model_validate(detail)
        assert model.id == incident["id"] and model.timeline
        assert isinstance(model.timeline[0], IncidentEvent)
    # Every event the log holds (zone.changed too) is one of the envelopes.
    stream = client.get("/events?after=0&follow=false", headers=auth("viewer"))
    envelopes = [
        orjson.loads(line.removeprefix("data: "))
        for line in stream.text.splitlines()
        if line.startswith("data: ")
    ]
    kinds = {type(ENVELOPE.validate_python(e)) for e in envelopes}
    assert {IncidentEvent, ZoneChangedEvent} <= kinds


def test_the_payload_models_have_the_keys_the_log_writes() -> None:
    incident = Incident(
        id=1,
        party="AZE",
        unit="u",
        zone_id="z",
        zone_name="Z",
        state="open",
        opened_at=datetime(2024, 5, 1, tzinfo=UTC),
        last_seen_at=datetime(2024, 5, 1, tzinfo=UTC),
        closed_at=None,
        close_reason=None,
        verdict="inside",
        depth_m=1.0,
        deepest_report_id="r",
        last_report_id="r",
        report_ids=("r",),
    )
    assert list(IncidentEventData.model_fields) == list(incident_payload(incident))
    stale = stale_payload(incident, timedelta(hours=1))
    assert list(TrackStaleData.model_fields) == list(stale)
    assert list(ZoneChangedData.model_fields) == list(zone_changed_payload("z", 1, "created", "Z"))
    assert list(IncidentOut.model_fields) == list(incident_to_json(incident))
