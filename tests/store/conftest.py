"""The store suite runs against both stores: `store` is a SQLiteStore file or a PostGISStore
database (emptied for the test), with the same tests and the same answers expected."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from app.store import SQLiteStore, Store, open_store
from app.store.postgis import postgres_conninfo

STORES = ("sqlite", "postgis")


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database of each store."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'truce.db'}"
    url: str = request.getfixturevalue("postgis_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An empty store of each kind."""
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def reopen(store_url: str) -> Iterator[Callable[[], Store]]:
    """Open more stores on the test's database (as other processes would); closed at the end."""
    opened: list[Store] = []

    def make() -> Store:
        other = open_store(store_url)
        opened.append(other)
        return other

    yield make
    for other in opened:
        other.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A SQLiteStore, for what only SQLite has (its file, its pragmas, its locks)."""
    with SQLiteStore(tmp_path / "truce.db") as opened:
        yield opened


#: What the database itself raises when it refuses a statement, in each store.
RAW_ERRORS = (sqlite3.DatabaseError, psycopg.Error)


@pytest.fixture
def raw_execute(store_url: str) -> Callable[[str], None]:
    """Run one SQL statement on the test's database behind the store's back (and commit)."""

    def run(statement: str) -> None:
        if store_url.startswith("sqlite:"):
            conn = sqlite3.connect(store_url.removeprefix("sqlite:///"), isolation_level=None)
            try:
                conn.execute(statement)
            finally:
                conn.close()
            return
        conninfo, _ = postgres_conninfo(store_url)
        with psycopg.connect(conninfo, autocommit=True) as pg:
            pg.execute(statement.encode())

    return run
