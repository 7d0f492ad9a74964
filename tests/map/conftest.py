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
from tests.factories import varied_reports
from tests.map.browser import watched  # noqa: F401 (fixtures of the browser tests)
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


#: Reports of the season fixture on top of the scenario's (a month, over the region).
SEASON_REPORTS = 20_000


@pytest.fixture(scope="session")
def season_store(
    tmp_path_factory: pytest.TempPathFactory, scenario: Scenario
) -> Iterator[SQLiteStore]:
    """The scenario and a seeded month of reports around it (one in twenty with a unit)."""
    store = SQLiteStore(tmp_path_factory.mktemp("season") / "truce.sqlite")
    load_into(store, scenario)
    store.add_reports(varied_reports(SEASON_REPORTS, [p.code for p in scenario.parties]), "test")
    yield store
    store.close()


@pytest.fixture(scope="session")
def live_server(scenario_store: SQLiteStore) -> Iterator[LiveServer]:
    """uvicorn in a thread on a free loopback port, serving the scenario's map."""
    yield from _serve(scenario_store)


@pytest.fixture(scope="session")
def season_server(season_store: SQLiteStore) -> Iterator[LiveServer]:
    """A live server of the season's map."""
    yield from _serve(season_store)


def _serve(store: SQLiteStore) -> Iterator[LiveServer]:
    port = free_port()
    config = uvicorn.Config(
        map_app(store), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
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
