"""Corrections and retractions over HTTP: `GET/PUT/DELETE /reports/{id}`, its history, the 409
of a changed re-send, and /incursions, /reports, /tracks following the latest version at once."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import httpx
from fastapi.testclient import TestClient

from app.api.models import ReportCorrected
from tests.api.support import assert_problem, auth
from tests.factories import FAR, PARUKH, collection, point_feature

OBSERVER = auth("observer")
VIEWER = auth("viewer")
ADMIN = auth("admin")

Client = TestClient | httpx.Client


def incursion_ids(client: Client) -> set[str]:
    response = client.get("/incursions", params={"limit": 10_000}, headers=VIEWER)
    assert response.status_code == 200, response.text
    return {f["properties"]["report_id"] for f in response.json()["features"]}


def listed(client: Client, **params: Any) -> dict[str, dict[str, Any]]:
    response = client.get("/reports", params={"limit": 10_000, **params}, headers=VIEWER)
    assert response.status_code == 200, response.text
    return {f["id"]: f for f in response.json()["features"]}


def path(report_id: str) -> str:
    return "/reports/" + quote(report_id, safe="")


def test_corrections_remove_and_create_incursions_at_once(http: httpx.Client) -> None:
    """On the real server, which has answered /incursions before: the incremental path."""
    tag = uuid.uuid4().hex[:8]
    wrong, missed = f"wrong-{tag}", f"missed-{tag}"
    filed = http.post(
        "/reports",
        json=collection(
            point_feature(*PARUKH, id=wrong, party="AZE"),  # a violation, misattributed
            point_feature(*PARUKH, id=missed, party="RU-PK"),  # authorized: no violation
        ),
        headers=OBSERVER,
    )
    assert filed.status_code == 201, filed.text
    before = incursion_ids(http)
    assert wrong in before and missed not in before

    fixed = http.put(path(wrong), json=point_feature(*PARUKH, party="RU-PK"), headers=OBSERVER)
    assert fixed.status_code == 200, fixed.text
    answer = ReportCorrected.model_validate(fixed.json())
    assert answer.changed and answer.version == 2
    assert not any(f.properties.violation for f in answer.findings.features)
    made = http.put(path(missed), json=point_feature(*PARUKH, party="AZE"), headers=OBSERVER)
    assert made.status_code == 200, made.text
    assert made.json()["findings"]["violations"] == 1

    after = incursion_ids(http)
    assert wrong not in after and missed in after
    assert after - {missed} == before - {wrong}  # nothing else moved

    http.delete(path(missed), params={"reason": "a duplicate of OP 7"}, headers=OBSERVER)
    assert missed not in incursion_ids(http)


def test_read_correct_retract_and_history(client: TestClient) -> None:
    report_id = "Պ/7 ü"  # any script, and a slash: percent-encoded in every link
    feature = point_feature(*PARUKH, id=report_id, unit="bn-9", notes="first")
    assert client.post("/reports", json=feature, headers=OBSERVER).status_code == 201
    incursion_ids(client)  # the log has caught up before the changes

    got = client.get(path(report_id), headers=VIEWER)
    assert got.status_code == 200, got.text
    assert got.json()["id"] == report_id
    assert got.json()["properties"]["version"] == 1
    assert not got.json()["properties"]["retracted"]
    links = {link["rel"]: link["href"] for link in got.json()["links"]}
    assert links["self"].endswith("/reports/%D5%8A/7%20%C3%BC")
    assert client.get(links["version-history"], headers=VIEWER).status_code == 200

    moved = point_feature(*FAR, id=report_id, unit="bn-9", notes="second")
    corrected = client.put(path(report_id), json=moved, headers=OBSERVER)
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["report"]["properties"]["notes"] == "second"
    again = client.put(path(report_id), json=moved, headers=OBSERVER)
    assert again.json()["changed"] is False and again.json()["version"] == 2

    assert listed(client)[report_id]["properties"]["notes"] == "second"
    assert report_id not in incursion_ids(client)
    track = client.get("/tracks/AZE/bn-9", headers=VIEWER).json()
    assert [f["geometry"]["coordinates"] for f in track["reports"]["features"]] == [list(FAR)]

    retracted = client.delete(path(report_id), params={"reason": "wrong unit"}, headers=OBSERVER)
    assert retracted.status_code == 200, retracted.text
    assert retracted.json()["properties"]["retracted"] is True
    assert report_id not in listed(client)
    assert client.get("/tracks/AZE/bn-9", headers=VIEWER).status_code == 404
    read = client.get(path(report_id), headers=VIEWER).json()["properties"]
    assert (read["version"], read["retracted"], read["retraction_reason"]) == (
        3,
        True,
        "wrong unit",
    )

    history = client.get(path(report_id) + "/history", headers=VIEWER)
    assert history.status_code == 200
    versions = [f["properties"] for f in history.json()["features"]]
    assert [(v["version"], v["notes"], v["retracted"]) for v in versions] == [
        (1, "first", False),
        (2, "second", False),
        (3, "second", True),
    ]

    audit = client.get("/audit", headers=ADMIN).json()
    entries = audit["entries"] if isinstance(audit, dict) else audit
    mine = [(e["action"], e["actor"]) for e in entries if e["target"] == report_id]
    assert [action for action, _ in mine] == ["report.version", "report.retract"]

    # The commit-order feed shows the correction and the retraction too.
    feed = client.get("/reports", params={"filed_after": 0, "limit": 10_000}, headers=VIEWER)
    mine_in_feed = [
        (f["properties"]["version"], f["properties"]["retracted"])
        for f in feed.json()["features"]
        if f["id"] == report_id
    ]
    assert mine_in_feed == [(1, False), (2, False), (3, True)]

    assert_problem(
        client.delete(path(report_id), params={"reason": "again"}, headers=OBSERVER), 409, "id"
    )
    assert_problem(client.put(path(report_id), json=moved, headers=OBSERVER), 409, "id")


def test_a_changed_resend_is_a_409_pointing_to_put_and_refuses_the_batch(
    client: TestClient,
) -> None:
    report_id = "op 7/0600"
    first = point_feature(*PARUKH, id=report_id)
    assert client.post("/reports", json=first, headers=OBSERVER).status_code == 201
    same = client.post("/reports", json=first, headers=OBSERVER)
    assert same.status_code == 200 and same.json()["duplicates"] == [report_id]

    changed = point_feature(*PARUKH, id=report_id, party="ARM")
    batch = collection(point_feature(*FAR, id="innocent"), changed)
    problem = assert_problem(client.post("/reports", json=batch, headers=OBSERVER), 409)
    assert problem["index"] == 1
    assert f"PUT /reports/{quote(report_id, safe='')}" in problem["detail"]
    assert "innocent" not in listed(client)  # all or nothing
    assert listed(client)[report_id]["properties"]["party"] == "AZE"


def test_unknown_reports_bad_bodies_and_roles(client: TestClient) -> None:
    for method, url in (
        ("GET", path("nope")),
        ("GET", path("nope") + "/history"),
        ("DELETE", path("nope") + "?reason=x"),
    ):
        assert_problem(client.request(method, url, headers=OBSERVER), 404, "id")
    assert_problem(
        client.put(path("nope"), json=point_feature(*PARUKH), headers=OBSERVER), 404, "id"
    )
    assert client.post("/reports", json=point_feature(*PARUKH, id="r"), headers=OBSERVER)
    assert_problem(
        client.put(path("r"), json=point_feature(*PARUKH, id="other"), headers=OBSERVER), 422, "id"
    )
    assert_problem(
        client.put(path("r"), json=collection(point_feature(*PARUKH)), headers=OBSERVER),
        422,
        "type",
    )
    bad = client.put(path("r"), json=point_feature(46.8, 95.0), headers=OBSERVER)
    assert_problem(bad, 422, "geometry/coordinates")
    assert_problem(client.delete(path("r"), headers=OBSERVER), 400, "reason")
    assert_problem(client.delete(path("r") + "?reason=%20", headers=OBSERVER), 400, "reason")
    assert client.delete(path("r") + "?reason=x", headers=VIEWER).status_code == 403
    assert client.put(path("r"), json=point_feature(*FAR), headers=VIEWER).status_code == 403
    assert client.get(path("r"), headers=VIEWER).json()["properties"]["version"] == 1
