"""End to end over real HTTP: uvicorn on a loopback port, a real database, real processes.

Durability (an acknowledged report survives SIGKILL), concurrent writers in two processes, an index
that is never stale across workers and servers, the body limits, and a big check. The tests that
write run on both stores (`make_db`: a SQLite file, or a fresh PostGIS database).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import orjson
import pytest

from tests.api.support import (
    KEYS,
    REPO,
    SERVER_MAX_BODY,
    SERVER_MAX_FEATURES,
    Server,
    auth,
    running_server,
    start_server,
)
from tests.factories import PARUKH, collection, point_feature, zone_feature
from tests.postgis import create_database, drop_database, worker_database_name

VIEWER = auth("viewer")
OBSERVER = auth("observer")
ADMIN = auth("admin")


def walk_ids(base: str, **params: Any) -> list[str]:
    """Every report id, following the `next` links."""
    ids: list[str] = []
    url: str | None = f"{base}/reports"
    query: dict[str, Any] | None = {"limit": 500, **params}
    with httpx.Client(timeout=30, headers=VIEWER) as client:
        while url is not None:
            page = client.get(url, params=query).json()
            ids += [f["id"] for f in page["features"]]
            href = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
            # Links are relative unless the server is told its public URL.
            url = None if href is None else urljoin(base, href)
            query = None  # the next link carries everything
    return ids


def test_health_and_content_types_over_http(http: httpx.Client) -> None:
    health = http.get("/health")
    assert health.json()["status"] == "ok" and health.json()["version"]
    assert http.get("/zones", headers=VIEWER).headers["content-type"] == "application/geo+json"
    problem = http.get("/zones/nobody", headers=VIEWER)
    assert problem.status_code == 404
    assert problem.headers["content-type"] == "application/problem+json"


def test_over_the_body_limit_by_length_or_by_stream_is_413(http: httpx.Client) -> None:
    body = b'{"type": "FeatureCollection", "features": [' + b" " * SERVER_MAX_BODY + b"]}"
    declared = http.post("/check", content=body, headers=VIEWER)
    assert declared.status_code == 413
    assert declared.json()["field"] == "body"

    def stream() -> Iterator[bytes]:
        for i in range(0, len(body), 64 * 1024):
            yield body[i : i + 64 * 1024]

    with httpx.Client(base_url=http.base_url, timeout=30) as fresh:
        streamed = fresh.post("/reports", content=stream(), headers=OBSERVER)
    assert streamed.status_code == 413
    assert streamed.headers["content-type"] == "application/problem+json"
    assert http.get("/health").status_code == 200


def test_over_the_feature_limit_is_413(http: httpx.Client) -> None:
    many = collection(*(point_feature(*PARUKH) for _ in range(SERVER_MAX_FEATURES + 1)))
    response = http.post("/check", json=many, headers=VIEWER)
    assert response.status_code == 413
    assert response.json()["field"] == "features"


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_an_acknowledged_report_survives_sigkill(
    make_db: Callable[[str], Path | str], tmp_path: Path
) -> None:
    db, log = make_db("sigkill"), tmp_path / "uvicorn.log"
    first = start_server(db, log)
    try:
        batch = collection(*(point_feature(*PARUKH, id=f"durable-{i}") for i in range(100)))
        assert httpx.post(f"{first.url}/reports", json=batch, headers=OBSERVER).status_code == 201
        single = point_feature(*PARUKH, id="durable-single")
        response = httpx.post(f"{first.url}/reports", json=single, headers=OBSERVER)
        assert response.status_code == 201
    finally:
        first.kill(signal.SIGKILL)  # no shutdown, no checkpoint, connections left open
    assert first.process.returncode == -signal.SIGKILL

    with running_server(db, log) as second:
        ids = set(walk_ids(second.url))
    assert {f"durable-{i}" for i in range(100)} | {"durable-single"} <= ids
    assert len(ids) == 101 + 13  # and the scenario, loaded once


CLIENT = """
import sys, httpx
base, key, name = sys.argv[1:4]
with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=60) as client:
    for b in range(20):
        features = [
            {"type": "Feature", "id": f"{name}-{b}-{i}",
             "geometry": {"type": "Point", "coordinates": [46.0 + i / 1000, 39.0 + b / 1000]},
             "properties": {"party": "AZE", "observed_at": "2022-04-01T00:00:00Z"}}
            for i in range(50)
        ]
        # Both clients also send the same shared reports: each must be stored once.
        features.append({"type": "Feature", "id": f"shared-{b}",
             "geometry": {"type": "Point", "coordinates": [46.5, 39.5]},
             "properties": {"party": "ARM", "observed_at": "2022-04-02T00:00:00Z"}})
        response = client.post("/reports", json={"type": "FeatureCollection",
                                                 "features": features})
        assert response.status_code in (200, 201), response.text
print("done", flush=True)
"""


@pytest.fixture(scope="module", params=["sqlite", "postgis"])
def make_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Path | str]]:
    """Fresh databases of one store for this module: SQLite files, or PostGIS databases (each
    dropped at the end of the module)."""
    directory = tmp_path_factory.mktemp(request.param)
    made: list[str] = []

    def make(name: str) -> Path | str:
        if request.param == "sqlite":
            return directory / f"{name}.sqlite"
        database = worker_database_name(f"truce_e2e_{name}")
        made.append(database)
        return create_database(database)

    yield make
    for database in made:
        drop_database(database)


@pytest.fixture(scope="module")
def two_workers(
    make_db: Callable[[str], Path | str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server with two worker processes on one database."""
    log = tmp_path_factory.mktemp("workers") / "uvicorn.log"
    with running_server(make_db("workers"), log, workers=2) as server:
        yield server


def test_two_client_processes_writing_at_once_lose_nothing(two_workers: Server) -> None:
    clients = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(CLIENT), two_workers.url, KEYS["observer"], n],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in ("alpha", "beta")
    ]
    for client in clients:
        out, err = client.communicate(timeout=120)
        assert client.returncode == 0 and out.strip() == "done", err
    ids = walk_ids(two_workers.url, since="2022-04-01T00:00:00Z")
    assert len(ids) == len(set(ids))
    expected = {f"{n}-{b}-{i}" for n in ("alpha", "beta") for b in range(20) for i in range(50)}
    assert set(ids) == expected | {f"shared-{b}" for b in range(20)}


def _zones_found(base: str, lon: float, lat: float, party: str = "AZE") -> list[Any]:
    # A new connection each time, so that both workers get asked.
    body = point_feature(lon, lat, party=party, observed_at=None)
    response = httpx.post(
        f"{base}/check", json=body, headers={**VIEWER, "Connection": "close"}, timeout=30
    )
    assert response.status_code == 200, response.text
    return [
        (f["properties"]["zone_id"], f["properties"]["violation"])
        for f in response.json()["features"]
    ]


def test_zone_changes_are_used_at_once_by_every_worker_and_server(
    two_workers: Server, tmp_path: Path
) -> None:
    base = two_workers.url
    where = (44.05, 41.05)
    # A second server on the same database: another process with its own index.
    with running_server(two_workers.db, tmp_path / "other.log") as other:
        for url in (base, other.url):
            assert _zones_found(url, *where) == []
        created = httpx.post(f"{base}/zones", json=zone_feature("fresh", 44.0, 41.0), headers=ADMIN)
        assert created.status_code == 201
        for url in [base] * 12 + [other.url] * 3:
            assert _zones_found(url, *where) == [("fresh", True)]

        allowed = zone_feature("fresh", 44.0, 41.0, authorized=["AZE"])
        assert httpx.put(f"{other.url}/zones/fresh", json=allowed, headers=ADMIN).status_code == 200
        for url in [base] * 12 + [other.url] * 3:
            assert _zones_found(url, *where) == [("fresh", False)]

        assert httpx.delete(f"{base}/zones/fresh", headers=ADMIN).status_code == 200
        for url in [base] * 12 + [other.url] * 3:
            assert _zones_found(url, *where) == []


def test_a_check_of_1e5_positions_over_http(two_workers: Server) -> None:
    features = [
        {
            "type": "Feature",
            "geometry": {
                "type": "Point",
                "coordinates": [46.3 + (i % 1000) / 1000, 39.5 + i / 1e5],
            },
            "properties": {"party": "AZE", "observed_at": "2022-03-24T06:00:00+04:00"},
        }
        for i in range(100_000)
    ]
    body = orjson.dumps(collection(*features))
    response = httpx.post(
        f"{two_workers.url}/check",
        content=body,
        headers={**VIEWER, "Content-Type": "application/geo+json"},
        timeout=60,
    )
    assert response.status_code == 200, response.text[:500]
    answer = orjson.loads(response.content)
    assert answer["numberReturned"] == len(answer["features"]) > 1000
    assert {f["properties"]["zone_id"] for f in answer["features"]} == {
        "nk-pk-zone",
        "nk-lachin-corridor",
    }
    # How fast is bench/bench_http.py's business (target: 1 s).
