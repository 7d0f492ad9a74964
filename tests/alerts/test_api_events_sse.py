"""`GET /events` over real HTTP: uvicorn on loopback, a client that drops and resumes.

Every read is bounded: httpx read timeouts, and a deadline on each wait for an event.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from app.store import open_store
from tests.api.support import Server, auth, running_server
from tests.factories import collection, point_feature, zone_feature

DEEP = (10.05, 10.05)
FAR = (9.5, 10.05)
WAIT_S = 20.0


@dataclass
class Received:
    """What an SSE client parsed: events (id, type, envelope) and comment lines."""

    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)


def _read(lines: Iterator[str], into: Received, until: Any, deadline: float) -> None:
    """Parse SSE lines into `into` until `until(into)` holds (or fail at `deadline`)."""
    fields: dict[str, str] = {}
    for line in lines:
        if time.monotonic() > deadline:
            raise AssertionError(f"no end within {WAIT_S} s; got {into}")
        if line.startswith(":"):
            into.comments.append(line[1:].strip())
        elif line == "":
            if "id" in fields:
                data = orjson.loads(fields["data"])
                into.events.append((int(fields["id"]), fields["event"], data))
            fields = {}
            if until(into):
                return
        else:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
    raise AssertionError(f"the stream ended early; got {into}")


@pytest.fixture
def sse_server(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    db: Path | str = tmp_path / "truce.sqlite"
    if store_kind == "postgis":
        db = str(request.getfixturevalue("postgis_url"))
    env = {"TRUCE_EVENTS_POLL_S": "0.05", "TRUCE_EVENTS_HEARTBEAT_S": "0.3"}
    with running_server(db, tmp_path / "uvicorn.log", env=env) as server:
        yield server


def _file(http: httpx.Client, *features: dict[str, Any]) -> None:
    response = http.post("/reports", json=collection(*features), headers=auth("observer"))
    assert response.status_code in (200, 201), response.text


def _store_ids(server: Server) -> list[int]:
    url = server.db if isinstance(server.db, str) else f"sqlite:///{server.db}"
    store = open_store(url)
    try:
        ids: list[int] = []
        while batch := store.events_after(ids[-1] if ids else 0, 1000):
            ids.extend(e.id for e in batch)
        return ids
    finally:
        store.close()


def test_a_client_that_drops_and_resumes_gets_every_event_once(sse_server: Server) -> None:
    viewer = auth("viewer")
    received = Received()
    with httpx.Client(base_url=sse_server.url, timeout=10) as http:
        response = http.post("/zones", json=zone_feature("sse", 10.0, 10.0), headers=auth("admin"))
        assert response.status_code == 201, response.text
        # The first connection reads the whole log, then the reports filed while it listens.
        with http.stream("GET", "/events?after=0", headers=viewer) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            deadline = time.monotonic() + WAIT_S
            _read(
                lines,
                received,
                lambda r: any(
                    t == "zone.changed" and d["data"]["zone_id"] == "sse" for _, t, d in r.events
                ),
                deadline,
            )
            _file(
                http,
                point_feature(*DEEP, id="a1", unit="u1", observed_at="2024-05-01T01:00:00Z"),
                point_feature(*DEEP, id="a2", unit="u2", observed_at="2024-05-01T01:00:00Z"),
            )
            _read(
                lines,
                received,
                lambda r: any(d["data"].get("report_id") == "a1" for _, _, d in r.events),
                deadline,
            )
        # Dropped. Events written meanwhile wait in the log.
        _file(
            http,
            point_feature(*FAR, id="a3", unit="u1", observed_at="2024-05-01T02:00:00Z"),
            point_feature(*DEEP, id="a4", observed_at="2024-05-01T02:00:00Z"),
        )
        last_seen = received.events[-1][0]
        expected = _store_ids(sse_server)
        assert expected[-1] > last_seen
        # The browser way: the original URL again (after=0), and Last-Event-ID, which wins.
        headers = {**viewer, "Last-Event-ID": str(last_seen)}
        with http.stream("GET", "/events?after=0", headers=headers) as stream:
            deadline = time.monotonic() + WAIT_S
            lines = stream.iter_lines()
            _read(lines, received, lambda r: r.events[-1][0] >= expected[-1], deadline)
            # Idle now: heartbeats keep the connection alive.
            _read(lines, received, lambda r: "heartbeat" in r.comments, deadline)
    ids = [event_id for event_id, _, _ in received.events]
    assert ids == expected  # every event, once, in log order
    for event_id, kind, envelope in received.events:
        assert envelope["id"] == event_id and envelope["type"] == kind
    kinds = [(kind, d["data"].get("report_id")) for _, kind, d in received.events]
    assert ("incident.closed", "a3") in kinds and ("incident.opened", "a4") in kinds


def test_filters_and_bad_requests(sse_server: Server) -> None:
    viewer = auth("viewer")
    with httpx.Client(base_url=sse_server.url, timeout=10) as http:
        http.post("/zones", json=zone_feature("sse", 10.0, 10.0), headers=auth("admin"))
        _file(
            http,
            point_feature(*DEEP, id="b1", unit="u1", observed_at="2024-05-01T01:00:00Z"),
            point_feature(
                *DEEP, id="b2", party="ARM", unit="u9", observed_at="2024-05-01T01:00:00Z"
            ),
        )
        received = Received()
        query = "/events?after=0&types=incident.opened&zones=sse&parties=ARM&min_depth=100"
        with http.stream("GET", query, headers=viewer) as stream:
            deadline = time.monotonic() + WAIT_S
            _read(stream.iter_lines(), received, lambda r: "heartbeat" in r.comments, deadline)
        assert [(t, d["data"]["report_id"]) for _, t, d in received.events] == [
            ("incident.opened", "b2")
        ]
        for bad, name in [
            ("types=zone.exploded", "types"),
            ("verdicts=maybe", "verdicts"),
            ("min_depth=deep", "min_depth"),
            ("after=-1", "after"),
            ("colour=red", "colour"),
        ]:
            response = http.get(f"/events?{bad}", headers=viewer)
            assert response.status_code == 400, (bad, response.text)
            assert response.json()["field"] == name
        response = http.get("/events", headers={**viewer, "Last-Event-ID": "twelve"})
        assert response.status_code == 400 and response.json()["field"] == "Last-Event-ID"
        assert http.get("/events").status_code == 401
