"""Keys and roles: the whole matrix over real HTTP, public read, stored keys, and no key in logs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.api.auth import hash_key
from app.settings import Settings
from tests.api.support import KEYS, WRONG_KEY, Server, auth
from tests.factories import FAR, PARUKH, point_feature, zone_feature

ROLES = [None, "wrong", "viewer", "observer", "admin"]
RANK = {"viewer": 0, "observer": 1, "admin": 2}


@dataclass(frozen=True)
class Endpoint:
    """One route of the API, with a request that succeeds for a key of the role it needs."""

    operation: str
    method: str
    path: str  # "{u}" is replaced by a name unique to the test case
    need: str | None  # the role needed; None for none
    ok: int
    body: Callable[[str], Any] | None = None
    zone_first: bool = False  # create zone "z-{u}" with the admin key first
    report_first: bool = False  # file report "r-{u}" with the observer key first


ENDPOINTS = [
    Endpoint("health", "GET", "/health", None, 200),
    Endpoint("ready", "GET", "/ready", None, 200),
    Endpoint("listZones", "GET", "/zones?at=all", "viewer", 200),
    Endpoint("createZones", "POST", "/zones", "admin", 201, lambda u: zone_feature(f"new-{u}")),
    Endpoint("getZone", "GET", "/zones/nk-pk-zone", "viewer", 200),
    Endpoint(
        "createZoneVersion",
        "PUT",
        "/zones/z-{u}",
        "admin",
        200,
        lambda u: zone_feature(f"z-{u}", size=0.2),
        zone_first=True,
    ),
    Endpoint(
        "retireZone", "DELETE", "/zones/z-{u}?at=2030-01-01T00:00:00Z", "admin", 200, None, True
    ),
    Endpoint("getZoneHistory", "GET", "/zones/nk-pk-zone/history", "viewer", 200),
    Endpoint(
        "createReports",
        "POST",
        "/reports",
        "observer",
        201,
        lambda u: point_feature(*PARUKH, id=f"r-{u}"),
    ),
    Endpoint("listReports", "GET", "/reports", "viewer", 200),
    Endpoint("getReport", "GET", "/reports/2022-03-26-ru-mod-1", "viewer", 200),
    Endpoint("getReportHistory", "GET", "/reports/2022-03-26-ru-mod-1/history", "viewer", 200),
    Endpoint(
        "correctReport",
        "PUT",
        "/reports/r-{u}",
        "observer",
        200,
        lambda u: point_feature(*FAR),
        report_first=True,
    ),
    Endpoint(
        "retractReport",
        "DELETE",
        "/reports/r-{u}?reason=test",
        "observer",
        200,
        report_first=True,
    ),
    Endpoint("check", "POST", "/check", "viewer", 200, lambda u: point_feature(*PARUKH)),
    Endpoint("listIncursions", "GET", "/incursions", "viewer", 200),
    Endpoint("listIncidents", "GET", "/incidents", "viewer", 200),
    Endpoint("getIncident", "GET", "/incidents/1", "viewer", 200),
    Endpoint("streamEvents", "GET", "/events?after=0&follow=false", "viewer", 200),
    Endpoint("getTrack", "GET", "/tracks/AZE/parukh-group", "viewer", 200),
    Endpoint("listTracks", "GET", "/tracks", "viewer", 200),
    Endpoint("listPartyTracks", "GET", "/tracks/AZE", "viewer", 200),
    Endpoint("listAudit", "GET", "/audit", "admin", 200),
    Endpoint("listParties", "GET", "/parties", "viewer", 200),
    Endpoint("putParty", "PUT", "/parties/p-{u}", "admin", 201, lambda u: {"name": f"Party {u}"}),
    Endpoint(
        "createSubscription",
        "POST",
        "/subscriptions",
        "admin",
        201,
        lambda u: {"url": f"https://alerts.example.org/{u}"},
    ),
    Endpoint("listSubscriptions", "GET", "/subscriptions", "admin", 200),
    Endpoint("getSubscription", "GET", "/subscriptions/999999", "admin", 404),
    Endpoint("deleteSubscription", "DELETE", "/subscriptions/999999", "admin", 404),
    Endpoint("listDeliveries", "GET", "/subscriptions/999999/deliveries", "admin", 404),
    Endpoint("replaySubscription", "POST", "/subscriptions/999999/replay?since=1", "admin", 404),
    Endpoint("getMap", "GET", "/map?at=2022-03-26T00:00:00Z", "viewer", 200),
    Endpoint("getMapCells", "GET", "/map/data/cells?zoom=8", "viewer", 200),
    Endpoint("getMapReports", "GET", "/map/data/reports?bbox=46,39,47,41", "viewer", 200),
    Endpoint("getMapTracks", "GET", "/map/data/tracks?zoom=12", "viewer", 200),
    Endpoint("getMapEvents", "GET", "/map/data/events", "viewer", 200),
    Endpoint("getMapReport", "GET", "/map/data/reports/2022-03-26-ru-mod-1", "viewer", 200),
    Endpoint("getLandingPage", "GET", "/", None, 200),
    Endpoint("getConformance", "GET", "/conformance", "viewer", 200),
    Endpoint("listCollections", "GET", "/collections", "viewer", 200),
    Endpoint("getCollection", "GET", "/collections/zones", "viewer", 200),
    Endpoint("getQueryables", "GET", "/collections/reports/queryables", "viewer", 200),
    Endpoint("getFeatures", "GET", "/collections/incursions/items?limit=2", "viewer", 200),
    Endpoint("getFeature", "GET", "/collections/zones/items/nk-pk-zone@v1", "viewer", 200),
]


def expected(endpoint: Endpoint, role: str | None, public_read: bool = False) -> int:
    if endpoint.need is None:
        return endpoint.ok
    if role is None:
        return endpoint.ok if public_read and endpoint.need == "viewer" else 401
    if role == "wrong":
        return 401
    return endpoint.ok if RANK[role] >= RANK[endpoint.need] else 403


def cases(roles: list[str | None], public_read: bool = False) -> list[Any]:
    """(endpoint, role) test cases; those that get the map need its assets (else it answers 503)."""
    return [
        pytest.param(
            endpoint,
            role,
            id=f"{endpoint.operation}-{role}",
            marks=[pytest.mark.map_assets]
            if endpoint.path.startswith("/map") and expected(endpoint, role, public_read) == 200
            else [],
        )
        for role in roles
        for endpoint in ENDPOINTS
    ]


def send(client: httpx.Client | TestClient, endpoint: Endpoint, role: str | None) -> Any:
    unique = f"{endpoint.operation}-{role}".lower()
    if endpoint.zone_first:
        created = client.post("/zones", json=zone_feature(f"z-{unique}"), headers=auth("admin"))
        assert created.status_code == 201, created.text
    if endpoint.report_first:
        filed = client.post(
            "/reports", json=point_feature(*PARUKH, id=f"r-{unique}"), headers=auth("observer")
        )
        assert filed.status_code in (200, 201), filed.text
    body = None if endpoint.body is None else endpoint.body(unique)
    return client.request(
        endpoint.method, endpoint.path.format(u=unique), json=body, headers=auth(role)
    )


def test_every_route_is_in_the_matrix(client: TestClient) -> None:
    operations = {
        op["operationId"]
        for path in client.get("/openapi.json").json()["paths"].values()
        for op in path.values()
    }
    assert operations == {e.operation for e in ENDPOINTS}


@pytest.mark.parametrize(("endpoint", "role"), cases(ROLES))
def test_auth_matrix_over_http(http: httpx.Client, endpoint: Endpoint, role: str | None) -> None:
    response = send(http, endpoint, role)
    assert response.status_code == expected(endpoint, role), response.text
    if response.status_code in (401, 403):
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["field"] == "X-API-Key"
    if response.status_code == 401:
        assert response.headers["www-authenticate"].startswith("ApiKey")


@pytest.mark.parametrize(("endpoint", "role"), cases([None, "wrong", "viewer"], public_read=True))
def test_public_read_opens_reads_but_never_writes(
    make_client: Callable[..., TestClient], endpoint: Endpoint, role: str | None
) -> None:
    client = make_client(public_read=True)
    response = send(client, endpoint, role)
    assert response.status_code == expected(endpoint, role, public_read=True), response.text


def test_keys_stored_in_the_database_work_until_revoked(client: TestClient) -> None:
    store = client.app.state.service.store  # type: ignore[attr-defined]
    record = store.add_key(hash_key("field-team-secret"), "observer", "field team", "admin")
    headers = {"X-API-Key": "field-team-secret"}
    filed = client.post("/reports", json=point_feature(*PARUKH, id="ft-1"), headers=headers)
    assert filed.status_code == 201
    assert client.post("/zones", json=zone_feature("ft"), headers=headers).status_code == 403
    actors = [e["actor"] for e in client.get("/audit", headers=auth("admin")).json()["entries"]]
    assert actors[-1] == f"key:{record.id}:field team"

    store.revoke_key(record.id, "admin")
    assert client.get("/zones", headers=headers).status_code == 401


def test_the_audit_log_names_settings_keys_without_revealing_them(client: TestClient) -> None:
    client.post("/reports", json=point_feature(*PARUKH, id="a-1"), headers=auth("observer"))
    entry = client.get("/audit", headers=auth("admin")).json()["entries"][-1]
    assert entry["action"] == "reports.add"
    assert entry["actor"].startswith("settings-key:observer:")
    assert KEYS["observer"] not in entry["actor"]


def test_settings_never_show_a_key() -> None:
    settings = Settings(_env_file=None, api_keys="s3cret-value:admin")
    assert "s3cret-value" not in repr(settings)
    assert "s3cret-value" not in str(settings.model_dump())


def test_the_server_log_holds_no_key(server: Server, http: httpx.Client) -> None:
    for role in ("viewer", "observer", "admin", "wrong"):
        http.get("/zones", headers=auth(role))
    http.get("/zones", params={"bbox": "bad"}, headers=auth("viewer"))
    log = server.log.read_text()
    assert "GET /zones" in log  # the access log is on
    for secret in (*KEYS.values(), WRONG_KEY):
        assert secret not in log
