"""Errors as RFC 9457 problems: limits, routes, storage trouble, bugs; and the OpenAPI contract."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from app.store import Busy
from tests.api.support import assert_problem, auth
from tests.factories import PARUKH, collection, point_feature, zone_feature

VIEWER = auth("viewer")
OBSERVER = auth("observer")


def test_a_body_over_the_limit_by_content_length_is_413(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(max_body_bytes=1000)
    body = orjson.dumps(collection(*(point_feature(*PARUKH) for _ in range(20))))
    assert len(body) > 1000
    problem = assert_problem(client.post("/check", content=body, headers=VIEWER), 413, "body")
    assert "1,000 bytes" in problem["detail"]
    # Within the limit all is well.
    assert client.post("/check", json=point_feature(*PARUKH), headers=VIEWER).status_code == 200


def test_a_streamed_body_over_the_limit_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_body_bytes=1000)

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked
        yield b'{"type": "FeatureCollection", "features": ['
        for i in range(50):
            yield (b", " if i else b"") + orjson.dumps(point_feature(*PARUKH))
        yield b"]}"

    response = client.post("/reports", content=chunks(), headers=OBSERVER)
    assert_problem(response, 413, "body")
    store = client.app.state.service.store  # type: ignore[attr-defined]
    assert store.count_reports() == 13


def test_too_many_features_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_features=3)
    four = collection(*(point_feature(*PARUKH) for _ in range(4)))
    for path, headers in (("/check", VIEWER), ("/reports", OBSERVER)):
        problem = assert_problem(client.post(path, json=four, headers=headers), 413, "features")
        assert "at most 3" in problem["detail"]
    zones = collection(*(zone_feature(f"z{i}") for i in range(4)))
    assert_problem(client.post("/zones", json=zones, headers=auth("admin")), 413, "features")
    three = collection(*(point_feature(*PARUKH) for _ in range(3)))
    assert client.post("/check", json=three, headers=VIEWER).status_code == 200


def test_unknown_routes_and_methods_are_problems(client: TestClient) -> None:
    assert "/nowhere" in assert_problem(client.get("/nowhere"), 404)["detail"]
    assert assert_problem(client.get("/zones/nk-pk-zone/nothing", headers=VIEWER), 404)
    problem = assert_problem(client.patch("/zones/nk-pk-zone", headers=auth("admin")), 405)
    assert "PATCH" in problem["detail"]


def test_a_locked_database_is_503_with_retry_after(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = client.app.state.service.store  # type: ignore[attr-defined]

    def busy(*args: Any, **kwargs: Any) -> None:
        raise Busy("the database stayed locked by another writer for 30 s; try again")

    monkeypatch.setattr(store, "add_reports", busy)
    response = client.post("/reports", json=point_feature(*PARUKH), headers=OBSERVER)
    assert_problem(response, 503)
    assert response.headers["retry-after"] == "1"


def test_a_bug_is_a_500_problem_that_tells_nothing_inside(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = client.app.state.service  # type: ignore[attr-defined]

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service, "check", broken)
    problem = assert_problem(
        client.post("/check", json=point_feature(*PARUKH), headers=VIEWER), 500
    )
    assert "secret" not in problem["detail"]
    assert problem["type"] == "about:blank"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/check", b"{"),
        ("POST", "/reports", b"null"),
        ("POST", "/reports", b'"a string"'),
        ("POST", "/reports", b'{"type": "FeatureCollection", "features": {"a": 1}}'),
        ("POST", "/reports", b'{"type": "FeatureCollection", "features": [null]}'),
        ("POST", "/reports", b'{"type": "Feature", "geometry": {"type": "Point"}}'),
        ("POST", "/check", b'{"type": "Feature", "geometry": {"coordinates": [[[1]]]}}'),
        ("POST", "/check", b'{"lon": 1e400, "lat": 1}'),
        ("POST", "/check", b'{"lon": 18446744073709551616, "lat": 1, "party": "A"}'),
        ("POST", "/check", b"[" * 2000 + b"]" * 2000),
        ("POST", "/zones", b'{"type": "Feature", "geometry": {"type": "Polygon"}}'),
        ("POST", "/zones", b'{"type": "Feature", "properties": {"name": 1}}'),
        ("POST", "/zones", b'{"type": "MultiPolygon", "coordinates": [[]]}'),
        ("PUT", "/zones/nk-pk-zone", b'{"type": "Feature", "id": 5}'),
        ("GET", "/zones?at=2022-13-45T00:00:00Z", None),
        ("GET", "/incursions?zone=&since=x", None),
        ("GET", "/incidents?after=x&limit=0", None),
        ("GET", "/incidents/0", None),
        ("GET", "/events?types=&min_depth=nan", None),
        ("GET", "/audit?after=-1", None),
        ("GET", "/reports?bbox=1,2,3,4,5,6", None),
        ("DELETE", "/zones/nk-pk-zone?at=never", None),
    ],
)
def test_bad_input_is_a_4xx_problem_never_a_500(
    client: TestClient, method: str, path: str, body: bytes | None
) -> None:
    response = client.request(method, path, content=body, headers=auth("admin"))
    assert 400 <= response.status_code < 500, response.text
    problem = assert_problem(response, response.status_code)
    assert problem["detail"]


def test_every_route_is_documented(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operations = [(path, op) for path, item in spec["paths"].items() for op in item.values()]
    assert len(operations) == 44
    for path, operation in operations:
        assert operation.get("operationId"), path
        assert operation.get("description"), path  # the handler's docstring
        ok = [code for code in operation["responses"] if code.startswith("2")]
        assert ok, path
        assert any(
            # A stream (SSE) describes its items (OpenAPI 3.2 `itemSchema`).
            "schema" in content or "itemSchema" in content
            for code in ok
            for content in operation["responses"][code].get("content", {}).values()
        ), path
        if path not in ("/health", "/ready", "/"):
            assert {"401", "403"} <= set(operation["responses"]), path
    assert "X-API-Key" in str(spec["components"]["securitySchemes"])
