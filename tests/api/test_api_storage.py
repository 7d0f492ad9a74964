"""Storage trouble over real HTTP: a full disk (507) and a read-only database (503), `/ready`.

The server runs in its own process on loopback; the disk is a real 8 MiB tmpfs that the test fills,
and the read-only database a real read-only bind mount (both need root: skipped elsewhere, saying
why). The answers must name the cause, say when to retry, close the connection cleanly, lose
nothing acknowledged, and recover without a restart when space comes back.
"""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.scenario import GEODATA
from app.service import Service
from app.store import SQLiteStore
from app.store.base import ReadOnlyStorage, StorageFull, StorageIOError, Unreachable
from tests.api.support import assert_problem, auth, running_server
from tests.factories import PARUKH, collection, point_feature
from tests.storage_mounts import can_mount, fill, read_only_view, small_tmpfs

OBSERVER = auth("observer")
NOTES = "seen moving east along the road from the heights; " * 20  # ~1 KiB a report


def reports(prefix: str, n: int) -> dict[str, Any]:
    return collection(
        *(
            point_feature(*PARUKH, id=f"{prefix}-{i}", unit=f"u{i % 7}", notes=NOTES)
            for i in range(n)
        )
    )


def stored_ids(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM reports")}


def raw_exchange(url: str, request: bytes) -> tuple[bytes, bool]:
    """Send one keep-alive request on a raw socket; the answer, and whether the server closed.

    A clean close is an end of file after the whole answer; a reset raises.
    """
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while True:
            chunk = sock.recv(65536)  # ConnectionResetError here is the failure
            if not chunk:
                return received, True
            received += chunk
            head, _, body = received.partition(b"\r\n\r\n")
            length = [
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ]
            if length and len(body) >= length[0] and b"connection: close" not in head.lower():
                return received, False  # complete, and the server keeps the connection


def post_request(url: str, path: str, body: bytes, key: str) -> bytes:
    host = url.removeprefix("http://")
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: keep-alive\r\n\r\n"
    ).encode() + body


def assert_storage_problem(response: httpx.Response, status: int, cause: str) -> dict[str, Any]:
    problem = assert_problem(response, status)
    assert problem["cause"] == cause
    assert int(response.headers["retry-after"]) > 0
    assert response.headers["connection"] == "close"
    return problem


@can_mount
def test_a_full_disk_is_507_loses_nothing_and_recovers_without_restart(tmp_path: Path) -> None:
    with (
        small_tmpfs(tmp_path / "fs") as fs,
        running_server(fs / "truce.sqlite", tmp_path / "server.log") as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        scenario = stored_ids(server.db)
        acknowledged: set[str] = set()
        answer = http.post("/reports", json=reports("before", 100), headers=OBSERVER)
        assert answer.status_code == 201, answer.text
        acknowledged.update(f"before-{i}" for i in range(100))
        assert http.get("/ready").status_code == 200

        filler = fill(fs)
        refused = None
        for n in range(40):  # the WAL may hold a batch or two more; bounded
            answer = http.post("/reports", json=reports(f"full{n}", 100), headers=OBSERVER)
            if answer.status_code == 201:
                acknowledged.update(f"full{n}-{i}" for i in range(100))
                continue
            refused = answer
            break
        assert refused is not None, "the disk never filled"
        problem = assert_storage_problem(refused, 507, "disk-full")
        assert "disk is full" in problem["detail"]

        ready = http.get("/ready")
        assert_storage_problem(ready, 503, "disk-full")
        assert http.get("/health").json()["status"] == "ok"  # liveness: do not restart it
        reads = http.get("/reports", params={"limit": 5}, headers=auth("viewer"))
        assert reads.status_code == 200 and reads.json()["features"]

        # The refusal closes the connection cleanly (end of file, not a reset).
        raw, closed = raw_exchange(
            server.url,
            post_request(
                server.url,
                "/reports",
                httpx.Request("POST", "/", json=reports("raw", 100)).read(),
                OBSERVER["X-API-Key"],
            ),
        )
        assert raw.startswith(b"HTTP/1.1 507") and closed
        assert stored_ids(server.db) - scenario == acknowledged

        filler.unlink()
        assert http.get("/ready").status_code == 200
        answer = http.post("/reports", json=reports("after", 100), headers=OBSERVER)
        assert answer.status_code == 201, answer.text
        acknowledged.update(f"after-{i}" for i in range(100))
        assert server.process.poll() is None  # the same server, never restarted
        assert stored_ids(server.db) - scenario == acknowledged


@can_mount
def test_a_read_only_database_is_503_and_reads_still_work(tmp_path: Path) -> None:
    source = tmp_path / "rw"
    source.mkdir()
    # Filled by a writer that keeps the file open, as another host or container would.
    with SQLiteStore(source / "truce.sqlite") as writer:
        Service(writer).load_scenario(GEODATA)
        with (
            read_only_view(source, tmp_path / "ro") as ro,
            running_server(ro / "truce.sqlite", tmp_path / "server.log") as server,
            httpx.Client(base_url=server.url, timeout=30) as http,
        ):
            answer = http.post("/reports", json=reports("ro", 3), headers=OBSERVER)
            problem = assert_storage_problem(answer, 503, "read-only")
            assert "read-only" in problem["detail"]
            assert_storage_problem(http.get("/ready"), 503, "read-only")
            assert http.get("/health").status_code == 200
            listed = http.get("/reports", params={"limit": 1000}, headers=auth("viewer"))
            assert listed.status_code == 200
            assert len(listed.json()["features"]) == writer.count_reports()
            zones = http.get("/zones", params={"at": "all"}, headers=auth("viewer"))
            assert zones.status_code == 200 and zones.json()["features"]
            checked = http.post("/check", json=point_feature(*PARUKH), headers=auth("viewer"))
            assert checked.status_code == 200
            assert not {i for i in stored_ids(source / "truce.sqlite") if i.startswith("ro-")}


def test_ready_is_200_with_a_writable_store(client: TestClient) -> None:
    answer = client.get("/ready")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ready"}
    assert answer.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("error", "status", "cause"),
    [
        (StorageFull("the database's disk is full"), 507, "disk-full"),
        (ReadOnlyStorage("the database is read-only"), 503, "read-only"),
        (StorageIOError("the database's disk failed"), 503, "io-error"),
        (Unreachable("the database cannot be reached"), 503, "unreachable"),
    ],
)
def test_storage_errors_name_their_cause_and_close_the_connection(
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    status: int,
    cause: str,
) -> None:
    store = client.app.state.service.store  # type: ignore[attr-defined]

    def fail(*args: Any, **kwargs: Any) -> None:
        raise error

    monkeypatch.setattr(store, "add_reports", fail)
    monkeypatch.setattr(store, "check_writable", fail)
    answer = client.post("/reports", json=point_feature(*PARUKH), headers=OBSERVER)
    problem = assert_problem(answer, status)
    assert problem["cause"] == cause and str(error) in problem["detail"]
    assert answer.headers["connection"] == "close"
    assert int(answer.headers["retry-after"]) >= 1
    ready = assert_problem(client.get("/ready"), 503)
    assert ready["cause"] == cause and str(error) in ready["detail"]


def test_a_body_over_the_limit_closes_the_connection(client: TestClient) -> None:
    limit = client.app.state.settings.max_body_bytes  # type: ignore[attr-defined]
    # Sent without a length up front (chunks), so the limit is found while counting.
    body = iter([b"[" + b" " * (limit + 10) + b"]"])
    answer = client.post("/reports", content=body, headers=OBSERVER)
    assert_problem(answer, 413)
    assert answer.headers["connection"] == "close"
