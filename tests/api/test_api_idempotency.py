"""`Idempotency-Key` on `POST /reports` and `POST /zones`: a retry is never a second copy."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from app.service import Service
from app.store import SQLiteStore
from tests.api.support import assert_problem, auth
from tests.factories import FAR, PARUKH, collection, point_feature, zone_feature

OBSERVER = auth("observer")
ADMIN = auth("admin")


def keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


def stored_count(client: TestClient) -> int:
    service: Service = client.app.state.service  # type: ignore[attr-defined]
    return service.store.count_reports()


def test_a_retried_report_without_an_id_is_stored_once_and_answered_the_same(
    client: TestClient,
) -> None:
    before = stored_count(client)
    report = point_feature(*PARUKH)  # no id: each plain POST would get a fresh UUID
    first = client.post("/reports", json=report, headers=keyed(OBSERVER, "retry-1"))
    again = client.post("/reports", json=report, headers=keyed(OBSERVER, "retry-1"))
    assert first.status_code == 201
    assert again.status_code == 201 and again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert stored_count(client) == before + 1
    # Without the key the same body is a second report: what the header is for.
    assert client.post("/reports", json=report, headers=OBSERVER).status_code == 201
    assert stored_count(client) == before + 2


def test_the_same_key_with_another_body_is_a_422_problem(client: TestClient) -> None:
    headers = keyed(OBSERVER, "reused")
    assert client.post("/reports", json=point_feature(*FAR), headers=headers).status_code == 201
    before = stored_count(client)
    problem = assert_problem(
        client.post("/reports", json=point_feature(*PARUKH), headers=headers),
        422,
        "Idempotency-Key",
    )
    assert "another request" in problem["detail"]
    assert stored_count(client) == before


def test_keys_belong_to_their_api_key(client: TestClient) -> None:
    before = stored_count(client)
    report = point_feature(*FAR)
    assert client.post("/reports", json=report, headers=keyed(OBSERVER, "k")).status_code == 201
    other = client.post("/reports", json=report, headers=keyed(ADMIN, "k"))
    assert other.status_code == 201 and "Idempotent-Replayed" not in other.headers
    assert stored_count(client) == before + 2


def test_concurrent_retries_store_the_batch_once(client: TestClient) -> None:
    before = stored_count(client)
    batch = collection(*(point_feature(*FAR) for _ in range(50)))
    headers = keyed(OBSERVER, "concurrent")
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda _: client.post("/reports", json=batch, headers=headers), range(8))
        )
    assert [a.status_code for a in answers] == [201] * 8
    assert len({a.content for a in answers}) == 1
    assert sum("Idempotent-Replayed" not in a.headers for a in answers) == 1
    assert stored_count(client) == before + 50


def test_a_refused_request_keeps_nothing_so_a_corrected_one_may_use_the_key(
    client: TestClient,
) -> None:
    headers = keyed(OBSERVER, "fix-and-retry")
    bad = point_feature(*FAR, observed_at=None)
    assert_problem(client.post("/reports", json=bad, headers=headers), 422)
    # The same (refused) body again is judged again, not replayed from a store.
    assert_problem(client.post("/reports", json=bad, headers=headers), 422)
    # The key was not kept for the refused body, so the corrected one runs under it.
    assert client.post("/reports", json=point_feature(*FAR), headers=headers).status_code == 201


def test_a_retried_zone_creation_is_answered_201_again_not_409(client: TestClient) -> None:
    zone = zone_feature("idem-zone")
    first = client.post("/zones", json=zone, headers=keyed(ADMIN, "zone-1"))
    again = client.post("/zones", json=zone, headers=keyed(ADMIN, "zone-1"))
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["Location"] == first.headers["Location"] == "/zones/idem-zone"
    history = client.get("/zones/idem-zone/history", headers=auth("viewer")).json()
    assert len(history["features"]) == 1
    # Without a key a re-sent zone is still the conflict it always was.
    assert_problem(client.post("/zones", json=zone, headers=ADMIN), 409)


@pytest.mark.parametrize("key", ["", " ", "x" * 256, "del\x7f", "tab\there"])
def test_a_malformed_key_is_a_400_problem_and_stores_nothing(client: TestClient, key: str) -> None:
    before = stored_count(client)
    answer = client.post("/reports", json=point_feature(*FAR), headers=keyed(OBSERVER, key))
    assert_problem(answer, 400, "Idempotency-Key")
    assert stored_count(client) == before


def test_answers_expire_and_abandoned_claims_are_taken_over(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    with SQLiteStore(tmp_path / "idem.sqlite") as store:
        now = datetime.now(UTC)
        assert store.claim_idempotency_key("a", "k", "f1", now - timedelta(hours=24)) is None
        running = store.claim_idempotency_key("a", "k", "f1", now - timedelta(hours=24))
        assert running is not None and running.status is None and running.fingerprint == "f1"
        store.finish_idempotency_key("a", "k", 201, b"{}", [("content-type", "x/y")])
        done = store.claim_idempotency_key("a", "k", "f1", now - timedelta(hours=24))
        assert done is not None and (done.status, done.body) == (201, b"{}")
        assert done.headers == (("content-type", "x/y"),)
        # Another actor's key of the same name is its own.
        assert store.claim_idempotency_key("b", "k", "f2", now - timedelta(hours=24)) is None
        # Past the retention, the answer is forgotten and the key can be claimed afresh.
        later = datetime.now(UTC) + timedelta(seconds=1)
        assert store.claim_idempotency_key("a", "k", "f3", later) is None
        store.release_idempotency_key("a", "k")
        assert store.claim_idempotency_key("a", "k", "f4", now - timedelta(hours=24)) is None


def test_the_header_is_in_the_openapi_document(make_client: Callable[..., TestClient]) -> None:
    document = make_client().get("/openapi.json").json()
    for path in ("/reports", "/zones"):
        names = [p["name"] for p in document["paths"][path]["post"].get("parameters", [])]
        assert "Idempotency-Key" in names
