"""Fixtures for the API tests: apps in-process (TestClient) and real uvicorn servers.

The founding scenario is loaded once into a template database; each test gets its own copy, so
tests can write freely and still start from the same state in a few milliseconds.

The modules in `BOTH_STORES` run each test twice, over SQLite and over PostGIS (the worker's
database, emptied and loaded with the scenario for the test), with the same answers expected;
`TRUCE_TEST_ALL_STORES=1` does it for every module that uses the in-process client.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.service import Service
from app.settings import Settings
from app.store import SQLiteStore
from app.store.postgis import PostGISStore
from tests.api.support import API_KEYS, SERVER_MAX_BODY, SERVER_MAX_FEATURES, Server, running_server


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with the founding scenario in it, made once."""
    path = tmp_path_factory.mktemp("template") / "truce.sqlite"
    with SQLiteStore(path) as store:
        assert Service(store).load_scenario()
    return path


@pytest.fixture
def db_path(tmp_path: Path, template_db: Path) -> Path:
    """A fresh copy of the scenario database for one test."""
    path = tmp_path / "truce.sqlite"
    shutil.copyfile(template_db, path)
    for suffix in ("-wal", "-shm"):  # normally gone: closing the store checkpoints the WAL
        if Path(f"{template_db}{suffix}").exists():
            shutil.copyfile(f"{template_db}{suffix}", f"{path}{suffix}")
    return path


#: The API modules whose tests run over both stores (the others over SQLite only).
BOTH_STORES = frozenset(
    {
        "test_api_check",
        "test_api_corrections",
        "test_api_idempotency",
        "test_api_incursions",
        "test_api_map_data",
        "test_api_reports",
        "test_api_subscriptions",
        "test_api_tracks",
        "test_api_zones",
    }
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run the tests of `BOTH_STORES` over each store."""
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    every = os.environ.get("TRUCE_TEST_ALL_STORES") == "1"  # every API module, both stores
    if "store_kind" in metafunc.fixturenames and (every or module in BOTH_STORES):
        metafunc.parametrize("store_kind", ["sqlite", "postgis"])


@pytest.fixture
def store_kind() -> str:
    """The store of the test's database (parametrized for the modules of `BOTH_STORES`)."""
    return "sqlite"


@pytest.fixture
def database_url(store_kind: str, request: pytest.FixtureRequest) -> str:
    """The test's database, with the founding scenario in it: a copy of the SQLite template, or
    the worker's PostGIS database emptied and loaded."""
    if store_kind == "sqlite":
        return f"sqlite:///{request.getfixturevalue('db_path')}"
    url: str = request.getfixturevalue("postgis_url")
    store = PostGISStore(url, listen=False)
    try:
        assert Service(store).load_scenario()
    finally:
        store.close()
    return url


@pytest.fixture
def make_settings(database_url: str) -> Callable[..., Settings]:
    """Settings for the test's database, with the three test keys; overrides as keywords."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"database_url": database_url, "api_keys": API_KEYS}
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make


@pytest.fixture
def make_client(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., TestClient]]:
    """Start in-process apps with settings overrides; all are stopped at the end of the test."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        client = TestClient(create_app(make_settings(**overrides)), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """An in-process app over a copy of the scenario database."""
    return make_client()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server for the session, on a fresh database that loads the scenario itself."""
    directory = tmp_path_factory.mktemp("server")
    with running_server(
        directory / "truce.sqlite",
        directory / "uvicorn.log",
        env={
            "TRUCE_MAX_BODY_BYTES": str(SERVER_MAX_BODY),
            "TRUCE_MAX_FEATURES": str(SERVER_MAX_FEATURES),
            # The auth matrix sends wrong keys on purpose, more than the default allows.
            "TRUCE_AUTH_FAILURES": "10000",
        },
    ) as running:
        yield running


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    """An HTTP client for the shared server."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
