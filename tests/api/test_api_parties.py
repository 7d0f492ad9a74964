"""Registered parties over HTTP: matching through codes and aliases, refusals, `PUT /parties`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.scenario import load_scenario
from app.service import Service
from app.store import SQLiteStore
from tests.api.support import API_KEYS, assert_problem, auth
from tests.factories import PARUKH, collection, point_feature

VIEWER = auth("viewer")
OBSERVER = auth("observer")
ADMIN = auth("admin")

#: The zone of the Russian peacekeepers, where only they (and NK) may be.
PK_ZONE = "nk-pk-zone"


def findings_in(answer: dict[str, Any], zone_id: str) -> list[dict[str, Any]]:
    return [f["properties"] for f in answer["features"] if f["properties"]["zone_id"] == zone_id]


def test_parties_of_the_scenario_are_listed(client: TestClient) -> None:
    response = client.get("/parties", headers=VIEWER)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = load_scenario().parties
    assert body["numberMatched"] == len(expected)
    assert [p["code"] for p in body["parties"]] == sorted(p.code for p in expected)
    rupk = next(p for p in body["parties"] if p["code"] == "RU-PK")
    assert rupk["color"].lower() == "#009e73"
    assert "Russian peacekeepers" in rupk["aliases"]


def test_a_lower_case_code_is_judged_as_the_party(client: TestClient) -> None:
    answers = {}
    for party in ("RU-PK", "ru-pk", " Ru-Pk "):
        response = client.post("/check", json=point_feature(*PARUKH, party=party), headers=VIEWER)
        assert response.status_code == 200, response.text
        answers[party] = response.json()
    for party, answer in answers.items():
        [finding] = findings_in(answer, PK_ZONE)
        assert finding["verdict"] == "inside", party
        assert finding["violation"] is False, party
        assert finding["party"] == "RU-PK", party
    # An Azerbaijani report at the same place is a violation: the zone is judged, not skipped.
    aze = client.post("/check", json=point_feature(*PARUKH, party="aze"), headers=VIEWER).json()
    assert findings_in(aze, PK_ZONE)[0]["violation"] is True


def test_aliases_and_patterns_resolve_and_are_stored_as_the_code(client: TestClient) -> None:
    body = collection(
        point_feature(*PARUKH, id="by-name", party="russian PEACEKEEPERS"),
        point_feature(*PARUKH, id="by-acled", party="Military Forces of Azerbaijan (2003-)"),
        point_feature(*PARUKH, id="by-code", party="NK"),
    )
    filed = client.post("/reports", json=body, headers=OBSERVER)
    assert filed.status_code == 201, filed.text
    violations = {
        f["properties"]["report_id"]: f["properties"]
        for f in filed.json()["findings"]["features"]
        if f["properties"]["zone_id"] == PK_ZONE
    }
    assert violations["by-name"]["party"] == "RU-PK"
    assert violations["by-name"]["violation"] is False
    assert violations["by-acled"]["party"] == "AZE"
    assert violations["by-acled"]["violation"] is True
    stored = client.get("/reports", params={"party": "RU-PK"}, headers=VIEWER).json()
    assert "by-name" in [f["id"] for f in stored["features"]]
    azerbaijani = client.get("/reports", params={"party": "AZE"}, headers=VIEWER).json()
    assert "by-acled" in [f["id"] for f in azerbaijani["features"]]


def test_an_unknown_party_is_refused_naming_the_value_and_the_codes(client: TestClient) -> None:
    before = client.get("/reports", params={"limit": 1000}, headers=VIEWER).json()["features"]
    audit_before = client.get("/audit", params={"limit": 1000}, headers=ADMIN).json()["entries"]
    body = collection(
        point_feature(*PARUKH, id="ok-1", party="AZE"),
        point_feature(*PARUKH, id="ok-2", party="ARM"),
        point_feature(*PARUKH, id="bad", party="Russian peacekeeprs"),
    )
    refused = client.post("/reports", json=body, headers=OBSERVER)
    problem = assert_problem(refused, 422, "features/2/properties/party")
    assert problem["index"] == 2
    assert "'Russian peacekeeprs'" in problem["detail"]
    for code in ("AZE", "ARM", "NK", "RU-PK", "TR"):
        assert code in problem["detail"]
    # Nothing of the batch is stored, and no audit entry says otherwise.
    after = client.get("/reports", params={"limit": 1000}, headers=VIEWER).json()["features"]
    assert after == before
    audit_after = client.get("/audit", params={"limit": 1000}, headers=ADMIN).json()["entries"]
    assert audit_after == audit_before
    # A check refuses it in the same words, for every form of input.
    assert_problem(
        client.post("/check", json=point_feature(*PARUKH, party="XYZ"), headers=VIEWER),
        422,
        "properties/party",
    )
    bare = {"lon": PARUKH[0], "lat": PARUKH[1], "party": "XYZ"}
    assert_problem(client.post("/check", json=bare, headers=VIEWER), 422, "party")


def test_put_party_registers_it_and_turns_its_aliases_on(client: TestClient) -> None:
    unknown = client.post("/check", json=point_feature(*PARUKH, party="OSCE"), headers=VIEWER)
    assert_problem(unknown, 422, "properties/party")
    body = {"name": "OSCE monitors", "colour": "#112233", "aliases": ["OSCE SMM*"]}
    created = client.put("/parties/OSCE", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    assert created.json() == {
        "code": "OSCE",
        "name": "OSCE monitors",
        "color": "#112233",
        "aliases": ["OSCE SMM*"],
    }
    answer = client.post(
        "/check", json=point_feature(*PARUKH, party="osce smm team 4"), headers=VIEWER
    )
    assert answer.status_code == 200, answer.text
    assert findings_in(answer.json(), PK_ZONE)[0]["party"] == "OSCE"
    replaced = client.put("/parties/OSCE", json={**body, "aliases": []}, headers=ADMIN)
    assert replaced.status_code == 200, replaced.text
    again = client.post(
        "/check", json=point_feature(*PARUKH, party="osce smm team 4"), headers=VIEWER
    )
    assert_problem(again, 422, "properties/party")


def test_put_party_is_admin_only_and_audited(client: TestClient) -> None:
    body = {"name": "Observers", "color": "#445566"}
    for headers in (VIEWER, OBSERVER):
        assert client.put("/parties/OBS", json=body, headers=headers).status_code == 403
    assert client.put("/parties/OBS", json=body).status_code == 401
    codes = [p["code"] for p in client.get("/parties", headers=VIEWER).json()["parties"]]
    assert "OBS" not in codes
    assert client.put("/parties/OBS", json=body, headers=ADMIN).status_code == 201
    entry = client.get("/audit", params={"limit": 1000}, headers=ADMIN).json()["entries"][-1]
    assert entry["action"] == "party.create"
    assert entry["target"] == "OBS"
    assert "#445566" in entry["detail"]
    assert entry["actor"]


def test_put_party_refuses_bad_fields_naming_them(client: TestClient) -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("OBS", {"name": "x", "color": "red"}, "color"),
        ("OBS", {"name": "  "}, "name"),
        ("OBS", {"name": "x", "aliases": ["ok", ""]}, "aliases/1"),
        # "Russian peacekeepers" already names RU-PK: a value must name one party.
        ("OBS", {"name": "x", "aliases": ["russian peacekeepers"]}, "aliases/0"),
        ("AZE", {"name": "x", "aliases": ["RU-PK"]}, "aliases/0"),
        ("a*b", {"name": "x"}, "code"),
    ]
    for code, body, field in cases:
        assert_problem(client.put(f"/parties/{code}", json=body, headers=ADMIN), 422, field)
    # A body that is not the model is a 400 naming the member.
    assert_problem(
        client.put("/parties/OBS", json={"name": "x", "colr": "#000000"}, headers=ADMIN),
        400,
        "colr",
    )
    codes = [p["code"] for p in client.get("/parties", headers=VIEWER).json()["parties"]]
    assert "OBS" not in codes


def test_with_no_party_registered_every_party_is_taken_as_sent(
    tmp_path: Path, make_client: Callable[..., TestClient]
) -> None:
    # A database with the scenario's zones but no party: as a new user's database would be.
    path = tmp_path / "empty-registry.sqlite"
    scenario = load_scenario()
    with SQLiteStore(path) as store:
        assert store.seed(scenario.zones, [], "test")
        assert Service(store).parties() == []
    client = make_client(database_url=f"sqlite:///{path}", api_keys=API_KEYS)
    empty = {"parties": [], "numberMatched": 0, "numberReturned": 0}
    assert client.get("/parties", headers=VIEWER).json() == empty
    answer = client.post("/check", json=point_feature(*PARUKH, party="ru-pk"), headers=VIEWER)
    assert answer.status_code == 200, answer.text
    [finding] = findings_in(answer.json(), PK_ZONE)
    assert finding["party"] == "ru-pk"  # taken as sent: not the code, so a violation
    assert finding["violation"] is True
    # Registering a party turns matching on.
    put = client.put("/parties/RU-PK", json={"name": "Peacekeepers"}, headers=ADMIN)
    assert put.status_code == 201, put.text
    answer = client.post("/check", json=point_feature(*PARUKH, party="ru-pk"), headers=VIEWER)
    assert findings_in(answer.json(), PK_ZONE)[0]["violation"] is False
    refused = client.post("/check", json=point_feature(*PARUKH, party="AZE"), headers=VIEWER)
    assert "RU-PK" in assert_problem(refused, 422, "properties/party")["detail"]


def test_the_map_takes_the_registered_colours(db_path: Path) -> None:
    from app.mapview import map_data_from_service

    with SQLiteStore(db_path) as store:
        service = Service(store)
        rupk = next(p for p in service.parties() if p.code == "RU-PK")
        service.put_party(dataclasses.replace(rupk, color="#abcdef"), "test")
        data, _ = map_data_from_service(service)
    colours = {p.code: p.color for p in data.parties}
    assert colours["RU-PK"] == "#abcdef"
    assert colours["AZE"].lower() == "#0072b2"


def test_filters_take_an_alias_as_the_code(client: TestClient) -> None:
    by_code = client.get("/reports", params={"party": "AZE", "limit": 1000}, headers=VIEWER)
    by_alias = client.get("/reports", params={"party": "azerbaijan", "limit": 1000}, headers=VIEWER)
    ids = [f["id"] for f in by_code.json()["features"]]
    assert ids
    assert [f["id"] for f in by_alias.json()["features"]] == ids
    nobody = client.get("/reports", params={"party": "nobody"}, headers=VIEWER)
    assert nobody.status_code == 200
    assert nobody.json()["features"] == []
