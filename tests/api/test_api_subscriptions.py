"""`/subscriptions`: create (secret shown once), list, read, delete, deliveries, replay; bad
input as problems naming the field; and a zone change delivered, signed, to a real receiver."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from tests.alerts.receiver import receiver
from tests.api.support import assert_problem, auth
from tests.factories import zone_feature

ADMIN = auth("admin")
FAST = {
    "webhook_lease_s": 2.0,
    "webhook_retry_base_s": 0.05,
    "webhook_retry_cap_s": 0.2,
    "webhook_timeout_s": 1.0,
}


def _wait(check: Callable[[], Any], timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_subscription_shows_its_secret_once_and_can_be_read_listed_and_deleted(
    client: TestClient, store_kind: str
) -> None:
    made = client.post(
        "/subscriptions",
        json={
            "url": "https://alerts.example.org/hook",
            "types": ["incident.opened"],
            "parties": ["AZE"],
            "min_depth_m": 50,
        },
        headers=ADMIN,
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 40
    assert made.headers["location"] == f"/subscriptions/{body['id']}"
    assert body["types"] == ["incident.opened"] and body["min_depth_m"] == 50
    one = client.get(f"/subscriptions/{body['id']}", headers=ADMIN).json()
    assert "secret" not in one or one["secret"] is None
    assert one["state"] == "active" and one["parties"] == ["AZE"]
    listed = client.get("/subscriptions", headers=ADMIN).json()
    assert [s["id"] for s in listed["subscriptions"]] == [body["id"]]
    assert listed["numberMatched"] == 1
    assert client.delete(f"/subscriptions/{body['id']}", headers=ADMIN).status_code == 200
    assert_problem(client.get(f"/subscriptions/{body['id']}", headers=ADMIN), 404)
    assert client.get("/subscriptions", headers=ADMIN).json()["numberMatched"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.org/x"}, "url"),
        ({"url": "http://169.254.169.254/latest/meta-data"}, "url"),
        ({"url": "http://user:pw@example.org/"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": 7}, "url"),
        ({"url": "https://example.org/", "types": ["incident.exploded"]}, "types/0"),
        ({"url": "https://example.org/", "verdicts": ["inside", "approaching"]}, "verdicts/1"),
        ({"url": "https://example.org/", "min_depth_m": "deep"}, "min_depth_m"),
        ({"url": "https://example.org/", "zones": "nk-pk-zone"}, "zones"),
        ({"url": "https://example.org/", "parties": [""]}, "parties/0"),
    ],
)
def test_bad_subscriptions_are_problems_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    assert_problem(client.post("/subscriptions", json=body, headers=ADMIN), 422, field)


def test_unknown_subscriptions_and_bad_parameters_are_problems(client: TestClient) -> None:
    assert_problem(client.get("/subscriptions/999", headers=ADMIN), 404)
    assert_problem(client.delete("/subscriptions/999", headers=ADMIN), 404)
    assert_problem(client.get("/subscriptions/999/deliveries", headers=ADMIN), 404)
    assert_problem(client.post("/subscriptions/999/replay?since=1", headers=ADMIN), 404)
    made = client.post("/subscriptions", json={"url": "https://example.org/"}, headers=ADMIN)
    sub = made.json()["id"]
    assert_problem(
        client.post(f"/subscriptions/{sub}/replay?since=yesterday", headers=ADMIN), 400, "since"
    )
    assert client.post(f"/subscriptions/{sub}/replay", headers=ADMIN).status_code in (400, 422)
    assert client.get(f"/subscriptions/{sub}/deliveries?limit=0", headers=ADMIN).status_code in (
        400,
        422,
    )
    assert client.get("/subscriptions", headers=auth("observer")).status_code == 403


def test_a_zone_change_reaches_a_real_receiver_signed_and_is_replayed_with_the_same_id(
    make_client: Callable[..., TestClient], store_kind: str
) -> None:
    client = make_client(**FAST)
    with receiver(["refuse"]) as hook:
        made = client.post(
            "/subscriptions", json={"url": hook.url, "types": ["zone.changed"]}, headers=ADMIN
        ).json()
        created = client.post("/zones", json=zone_feature("hook-zone"), headers=ADMIN)
        assert created.status_code == 201, created.text
        first = hook.wait_for(1)[0]
        payload = Webhook(made["secret"]).verify(first.body, first.headers)
        assert payload["type"] == "zone.changed"
        assert payload["data"]["zone_id"] == "hook-zone"
        sub_url = f"/subscriptions/{made['id']}"
        deliveries = _wait(
            lambda: (
                (d := client.get(f"{sub_url}/deliveries", headers=ADMIN).json())["numberMatched"]
                >= 2
                and d
            )
        )
        outcomes = [(a["outcome"], a["status"]) for a in deliveries["deliveries"]]
        assert outcomes == [("delivered", 204), ("retry", 503)]
        assert {a["webhook_id"] for a in deliveries["deliveries"]} == {first.headers["webhook-id"]}
        replayed = client.post(f"{sub_url}/replay?since={payload['id']}", headers=ADMIN)
        assert replayed.status_code == 202, replayed.text
        again = hook.wait_for(2)[1]
        assert again.headers["webhook-id"] == first.headers["webhook-id"]
        assert Webhook(made["secret"]).verify(again.body, again.headers) == payload
