"""Stored incursions, tracks and the audit log over HTTP, on the founding scenario."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from app.api.models import AuditPage, Page, TrackOut
from tests.api.support import auth
from tests.factories import PARUKH, point_feature, zone_feature

VIEWER = auth("viewer")
ADMIN = auth("admin")


def incursions(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/incursions", params=params, headers=VIEWER)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/geo+json"
    Page.model_validate(response.json())
    return list(response.json()["features"])


def test_incursions_are_the_stored_violations(client: TestClient) -> None:
    found = incursions(client)
    assert found
    assert all(f["properties"]["violation"] for f in found)
    assert {f["properties"]["zone_id"] for f in found} == {"nk-pk-zone"}
    # NK and RU-PK are authorized in the zone of responsibility: never incursions there.
    assert {f["properties"]["party"] for f in found} == {"AZE"}
    times = [f["properties"]["observed_at"] for f in found]
    assert times == sorted(times)


def test_incursions_filter_by_time_party_and_zone(client: TestClient) -> None:
    every = incursions(client)
    late = incursions(client, since="2022-03-27T00:00:00+04:00")
    assert 0 < len(late) < len(every)
    assert all(f["properties"]["observed_at"] >= "2022-03-26T20:00:00" for f in late)
    assert incursions(client, party="NK") == []
    assert incursions(client, zone="nk-lachin-corridor") == []
    assert incursions(client, zone="nk-pk-zone") == every
    assert incursions(client, datetime="../2022-03-24T00:00:00Z") == []


def test_incursions_follow_new_reports_and_paginate(client: TestClient) -> None:
    before = len(incursions(client))
    client.post("/reports", json=point_feature(*PARUKH, id="new-1"), headers=auth("observer"))
    assert len(incursions(client)) == before + 1
    page = client.get("/incursions", params={"limit": 2}, headers=VIEWER).json()
    assert page["numberReturned"] == 2 and page["numberMatched"] == before + 1
    assert [link["rel"] for link in page["links"]] == ["self", "next"]


def test_a_new_zone_finds_incursions_among_old_reports(client: TestClient) -> None:
    # A buffer around Parukh, authorizing nobody, in force during the incident.
    zone = zone_feature("parukh-buffer", 46.78, 39.99, 0.05, authorized=[])
    client.post("/zones", json=zone, headers=ADMIN)
    parties = {f["properties"]["party"] for f in incursions(client, zone="parukh-buffer")}
    assert parties == {"AZE", "NK", "RU-PK"}


def test_a_track_tells_entry_exit_and_withdrawal(client: TestClient) -> None:
    response = client.get("/tracks/AZE/parukh-group", headers=VIEWER)
    assert response.status_code == 200, response.text
    track = TrackOut.model_validate(response.json())
    assert len(track.reports.features) >= 3
    times = [f.properties["observed_at"] for f in track.reports.features if f.properties]
    assert times == sorted(times)
    kinds = [e.kind.value for e in track.events if e.zone_id == "nk-pk-zone"]
    assert kinds[0] == "entered"
    [summary] = [s for s in track.summary if s.zone_id == "nk-pk-zone"]
    assert summary.entered_at is not None and summary.dwell_s > 0


def test_an_unknown_track_is_404(client: TestClient) -> None:
    response = client.get("/tracks/AZE/nobody", headers=VIEWER)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_the_audit_log_records_every_write_in_order(client: TestClient) -> None:
    client.post("/zones", json=zone_feature("audited"), headers=ADMIN)
    client.delete("/zones/audited", headers=ADMIN)
    client.post("/reports", json=point_feature(*PARUKH, id="audited-1"), headers=auth("observer"))
    page = client.get("/audit", params={"limit": 1000}, headers=ADMIN).json()
    AuditPage.model_validate(page)
    actions = [(e["action"], e["target"]) for e in page["entries"]]
    assert actions[0][1] == "nk-1994-line"  # the scenario, loaded first
    assert actions[-3:] == [
        ("zone.create", "audited"),
        ("zone.retire", "audited"),
        ("reports.add", "reports"),
    ]
    ids = [e["id"] for e in page["entries"]]
    first = client.get("/audit", params={"limit": 4}, headers=ADMIN).json()
    rest = client.get(first["links"][1]["href"], headers=ADMIN).json()
    assert [e["id"] for e in first["entries"] + rest["entries"][:2]] == ids[:6]
