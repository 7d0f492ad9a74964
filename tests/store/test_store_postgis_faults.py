"""The PostGIS store when PostgreSQL fails: a connection killed in the middle of a batch, and a
server restarted under a load of reports over HTTP.

The restart happens on a temporary cluster of the test's own (tests/pgcluster.py); the machine's
server only loses the connection that the first test terminates.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from app.store.base import Unavailable, Unreachable
from app.store.postgis import PostGISStore, postgres_conninfo
from tests.api.support import KEYS, running_server
from tests.factories import make_report
from tests.pgcluster import temporary_cluster, wait_until

T0 = datetime(2022, 3, 24, tzinfo=UTC)


def test_a_batch_whose_connection_is_killed_midway_stores_nothing(postgis_url: str) -> None:
    store = PostGISStore(postgis_url + "&application_name=truce-killed")
    admin = psycopg.connect(postgres_conninfo(postgis_url)[0], autocommit=True)
    try:
        store.add_reports([make_report("before", observed_at=T0)], "op")
        # Two months of reports: the COPY runs long enough to be caught in the act.
        batch = [
            make_report(f"r{i:06d}", observed_at=T0 + timedelta(seconds=20 * i))
            for i in range(200_000)
        ]
        outcome: dict[str, Any] = {}

        def file() -> None:
            try:
                outcome["result"] = store.add_reports(batch, "bulk")
            except Exception as exc:  # checked below
                outcome["error"] = exc

        writer = threading.Thread(target=file)
        writer.start()
        copying = (
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'truce-killed' "
            "AND state = 'active' AND query LIKE 'COPY reports%'"
        )

        def copy_running() -> bool:
            return admin.execute(copying).fetchone() is not None

        wait_until(copy_running, timeout=60, what="the batch's COPY")
        killed = admin.execute(f"SELECT pg_terminate_backend(pid) FROM ({copying}) AS c")
        assert killed.fetchall() == [(True,)]
        writer.join(timeout=60)
        assert "result" not in outcome
        error = outcome["error"]
        assert isinstance(error, Unreachable) and isinstance(error, Unavailable)
        assert error.retry_after > 0
        # All or nothing: none of the batch, and no audit entry for it.
        assert store.count_reports() == 1
        assert [e.detail for e in store.audit_log()] == ["stored 1, duplicates 0"]
        # The pool replaced the connection by itself: the same batch goes in whole now.
        stored, duplicates = store.add_reports(batch[:1000], "bulk")
        assert (len(stored), duplicates) == (1000, [])
        assert store.count_reports() == 1001
    finally:
        admin.close()
        store.close()


def test_a_restart_under_load_gives_503_and_loses_no_acknowledged_report(tmp_path: Path) -> None:
    with temporary_cluster() as cluster:
        url = cluster.url("postgres", query="pool_timeout=1")
        with running_server(url, tmp_path / "uvicorn.log") as server:
            sent = 400
            acknowledged: set[str] = set()
            unavailable: list[httpx.Response] = []
            stored_twice: list[str] = []
            done = threading.Event()

            def post_all() -> None:
                headers = {"X-API-Key": KEYS["observer"], "Connection": "close"}
                with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
                    for i in range(sent):
                        feature = {
                            "type": "Feature",
                            "id": f"load-{i}",
                            "geometry": {"type": "Point", "coordinates": [46.7, 39.8]},
                            "properties": {"party": "AZE", "observed_at": "2022-04-01T00:00:00Z"},
                        }
                        while True:  # a client that retries until acknowledged
                            answer = client.post("/reports", json=feature)
                            if answer.status_code == 503:
                                unavailable.append(answer)
                                continue
                            assert answer.status_code in (200, 201), answer.text
                            if answer.status_code == 201 and f"load-{i}" in acknowledged:
                                stored_twice.append(f"load-{i}")
                            acknowledged.add(f"load-{i}")
                            break
                done.set()

            client = threading.Thread(target=post_all)
            client.start()
            wait_until(lambda: len(acknowledged) >= 50, what="50 acknowledged reports")
            cluster.stop("fast")  # every connection is cut, as in a restart
            wait_until(lambda: len(unavailable) >= 2, what="503 answers during the outage")
            cluster.start()
            client.join(timeout=120)
            assert done.is_set()
            viewer = {"X-API-Key": KEYS["viewer"]}
            ids: list[str] = []
            link: str | None = f"{server.url}/reports?limit=1000&since=2022-04-01T00:00:00Z"
            while link is not None:
                page = httpx.get(link, headers=viewer, timeout=30).json()
                ids += [feature["id"] for feature in page["features"]]
                link = next((x["href"] for x in page["links"] if x["rel"] == "next"), None)
                if link is not None and link.startswith("/"):
                    link = server.url + link
    assert len(acknowledged) == sent and stored_twice == []
    assert sorted(ids) == sorted(acknowledged)  # every acknowledged report, each once
    problem = unavailable[0]
    assert problem.headers["content-type"] == "application/problem+json"
    assert int(problem.headers["Retry-After"]) > 0
    assert problem.json()["status"] == 503
