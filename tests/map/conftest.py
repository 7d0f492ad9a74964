"""Fixtures for the map tests: the scenario, a store holding it, and a live map server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from app.mapview import MapData
from app.scenario import Scenario, load_scenario
from app.store import SQLiteStore
from tests.map.support import LiveServer, free_port, load_into, map_app


@pytest.fixture(scope="session")
def scenario() -> Scenario:
    return load_scenario()


@pytest.fixture(scope="session")
def scenario_data(scenario: Scenario) -> MapData:
    return MapData.from_scenario(scenario)


@pytest.fixture(scope="session")
def scenario_store(
    tmp_path_factory: pytest.TempPathFactory, scenario: Scenario
) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path_factory.mktemp("map") / "truce.sqlite")
    load_into(store, scenario)
    yield store
    store.close()


@pytest.fixture(scope="session")
def live_server(scenario_store: SQLiteStore) -> Iterator[LiveServer]:
    """uvicorn in a thread on a free loopback port, serving the scenario's map."""
    port = free_port()
    config = uvicorn.Config(
        map_app(scenario_store), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the map server did not start")
        time.sleep(0.02)
    yield LiveServer(f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(timeout=10)
