"""`GET /tracks`, `GET /tracks/{party}` and a unit's events over HTTP, on the founding scenario."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from app.api.models import TrackOut, TrackUnits
from tests.api.support import assert_problem, auth
from tests.factories import collection, point_feature

VIEWER = auth("viewer")
OBSERVER = auth("observer")
ZONE = "nk-pk-zone"
HOUR = timedelta(hours=1)


def units(client: TestClient, path: str = "/tracks", **params: Any) -> dict[str, Any]:
    response = client.get(path, params=params, headers=VIEWER)
    assert response.status_code == 200, response.text
    TrackUnits.model_validate(response.json())
    return dict(response.json())


def file(client: TestClient, *features: dict[str, Any]) -> None:
    response = client.post("/reports", json=collection(*features), headers=OBSERVER)
    assert response.status_code == 201, response.text


def test_tracks_list_every_unit_with_its_latest_report_and_state(client: TestClient) -> None:
    page = units(client)
    listed = {(u["party"], u["unit"]): u for u in page["units"]}
    assert page["numberMatched"] == len(listed) == page["numberReturned"]
    parukh = listed[("AZE", "parukh-group")]
    answer = client.get("/tracks/AZE/parukh-group", headers=VIEWER).json()
    track = TrackOut.model_validate(answer)
    latest = answer["reports"]["features"][-1]
    assert parukh["last_report_id"] == latest["id"]
    assert parukh["reports"] == len(answer["reports"]["features"])
    assert [parukh["lon"], parukh["lat"]] == latest["geometry"]["coordinates"]
    by_zone = {s.zone_id: s.state for s in track.summary}
    assert parukh["zones"] == by_zone and ZONE in by_zone
    keys = list(listed)
    assert keys == sorted(keys)


def test_a_partys_tracks_are_its_units_only(client: TestClient) -> None:
    every = units(client)["units"]
    aze = units(client, "/tracks/AZE")["units"]
    assert aze and {u["party"] for u in aze} == {"AZE"}
    assert aze == [u for u in every if u["party"] == "AZE"]
    assert units(client, "/tracks/NOBODY")["units"] == []


def test_tracks_filter_by_zone_bbox_and_time_and_paginate(client: TestClient) -> None:
    file(client, point_feature(44.0, 41.5, id="o-1", unit="elsewhere", party="ARM"))
    every = units(client)["units"]
    assert len(every) >= 2
    assert units(client, bbox="43.9,41.4,44.1,41.6")["units"] == [
        u for u in every if u["unit"] == "elsewhere"
    ]
    in_zone = units(client, zone=ZONE)["units"]
    assert in_zone == [u for u in every if ZONE in u["zones"]]
    assert units(client, zone="no-such-zone")["units"] == []
    far = units(client, bbox="10,10,11,11")
    assert far["units"] == [] and far["numberMatched"] == 0
    assert units(client, datetime="../2000-01-01T00:00:00Z")["units"] == []
    first = units(client, limit=1)
    assert first["numberReturned"] == 1 and first["numberMatched"] == len(every)
    assert any(link["rel"] == "next" for link in first["links"])


def test_a_unit_inside_and_silent_is_stale_and_one_that_left_is_out(
    make_client: Any,
) -> None:
    client = make_client(stale_after="PT1H")
    t0 = datetime(2022, 3, 24, 6, tzinfo=UTC)
    inside, outside = (46.75, 39.9), (44.0, 41.5)  # in the zone of responsibility; far away
    file(
        client,
        point_feature(*outside, id="s-1", unit="silent", observed_at=t0.isoformat()),
        point_feature(*inside, id="s-2", unit="silent", observed_at=(t0 + HOUR).isoformat()),
        point_feature(*inside, id="l-1", unit="left", observed_at=t0.isoformat()),
        point_feature(*outside, id="l-2", unit="left", observed_at=(t0 + HOUR).isoformat()),
    )
    states = {u["unit"]: u["zones"].get(ZONE) for u in units(client, "/tracks/AZE")["units"]}
    assert states["silent"] == "stale"  # in since 2022, not reported for more than an hour
    assert states["left"] == "out"
    track = client.get("/tracks/AZE/silent", headers=VIEWER).json()
    events = [e for e in track["events"] if e["zone_id"] == ZONE]
    assert [e["kind"] for e in events] == ["entered", "stale"]
    assert datetime.fromisoformat(events[1]["at"]) == t0 + 2 * HOUR
    assert [s["state"] for s in track["summary"] if s["zone_id"] == ZONE] == ["stale"]


def test_a_unit_crossing_a_zone_between_two_reports_gets_a_crossed_event(
    client: TestClient,
) -> None:
    west, east = (46.0, 39.95), (47.8, 39.95)  # both outside every zone; the segment is not
    file(
        client,
        point_feature(*west, id="c-1", unit="jumper", observed_at="2022-03-24T06:00:00Z"),
        point_feature(*east, id="c-2", unit="jumper", observed_at="2022-03-24T07:00:00Z"),
    )
    events = client.get("/tracks/AZE/jumper", headers=VIEWER).json()["events"]
    assert [(e["kind"], e["zone_id"], e["report_id"]) for e in events] == [("crossed", ZONE, "c-2")]


def test_an_unknown_track_listing_parameter_is_refused(client: TestClient) -> None:
    assert_problem(client.get("/tracks?unit=x", headers=VIEWER), 400, "unit")
