"""A streaming replica serves the reads; its lag never makes a check use a stale zone.

The test makes its own primary (initdb on a free port) and a replica of it (pg_basebackup into a
temporary directory, started on another port), and pauses the replica's replay to make the lag
as long as it needs: what the replica does not have yet is then plainly missing from lists,
while single reads and checks, which go to the primary, have it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.settings import Settings
from app.store.postgis import PostGISStore
from tests.api.support import API_KEYS, auth
from tests.factories import point_feature, zone_feature
from tests.pgcluster import Cluster, free_port, temporary_cluster, temporary_root, wait_until

VIEWER = auth("viewer")
ADMIN = auth("admin")
OBSERVER = auth("observer")


@pytest.fixture(scope="module")
def primary_and_replica() -> Iterator[tuple[Cluster, Cluster]]:
    with temporary_cluster() as primary:
        PostGISStore(primary.url(), listen=False).close()  # the schema, replicated from now on
        root = temporary_root()
        replica = primary.replica(root, free_port())
        try:
            yield primary, replica
        finally:
            replica.stop("immediate")
            shutil.rmtree(root, ignore_errors=True)


def _replay(replica: Cluster, paused: bool) -> None:
    with psycopg.connect(replica.url(), autocommit=True) as conn:
        conn.execute(f"SELECT pg_wal_replay_{'pause' if paused else 'resume'}()")


def _zone_ids(response: Any) -> set[str]:
    return {feature["id"] for feature in response.json()["features"]}


def test_reads_come_from_the_replica_and_checks_never_from_a_lagging_one(
    primary_and_replica: tuple[Cluster, Cluster],
) -> None:
    primary, replica = primary_and_replica
    with psycopg.connect(replica.url()) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
    settings = Settings(
        _env_file=None,
        database_url=primary.url(query="pool_timeout=5"),
        database_read_url=replica.url(query="pool_timeout=5"),
        api_keys=API_KEYS,
        load_scenario=True,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        # Once the replica has replayed the scenario, lists from it show it.
        wait_until(
            lambda: (
                "nk-pk-zone"
                in _zone_ids(client.get("/zones?at=2022-03-24T00:00:00Z", headers=VIEWER))
            ),
            what="the scenario on the replica",
        )
        where = point_feature(44.05, 41.05, observed_at=None)
        assert client.post("/check", json=where, headers=VIEWER).json()["features"] == []

        _replay(replica, paused=True)
        try:
            created = client.post("/zones", json=zone_feature("fresh", 44.0, 41.0), headers=ADMIN)
            assert created.status_code == 201, created.text
            filed = client.post(
                "/reports", json=point_feature(44.05, 41.05, id="lagging"), headers=OBSERVER
            )
            assert filed.status_code == 201, filed.text
            # The replica lags: the list of zones (a read) does not have the zone yet...
            assert "fresh" not in _zone_ids(
                client.get("/zones?at=2022-03-24T00:00:00Z", headers=VIEWER)
            )
            assert "lagging" not in {
                f["id"] for f in client.get("/reports", headers=VIEWER).json()["features"]
            }
            # ...but the check judges against the primary's zones, and single reads see writes.
            found = client.post("/check", json=where, headers=VIEWER).json()["features"]
            assert [(f["properties"]["zone_id"], f["properties"]["violation"]) for f in found] == [
                ("fresh", True)
            ]
            assert client.get("/zones/fresh", headers=VIEWER).status_code == 200
            assert client.get("/reports/lagging", headers=VIEWER).status_code == 200
        finally:
            _replay(replica, paused=False)
        wait_until(
            lambda: (
                "fresh" in _zone_ids(client.get("/zones?at=2022-03-24T00:00:00Z", headers=VIEWER))
            ),
            what="the zone on the replica after replay resumed",
        )
        reports = client.get("/reports", headers=VIEWER).json()["features"]
        assert "lagging" in {f["id"] for f in reports}


def test_a_write_sent_to_the_replica_is_refused_as_read_only(
    primary_and_replica: tuple[Cluster, Cluster],
) -> None:
    from app.store.base import ReadOnlyStorage

    store = PostGISStore(primary_and_replica[1].url(), listen=False, migrate=False)
    try:
        with pytest.raises(ReadOnlyStorage):
            store.check_writable()
        assert store.count_reports() >= 0  # reads go on
    finally:
        store.close()
