"""PostgreSQL databases for the tests: made fresh, with PostGIS, and dropped afterwards.

The server is the one at `TRUCE_TEST_POSTGRES_URL` (default: the machine's PostgreSQL on
127.0.0.1:5432 as `postgres`, which `make test` installs and starts). Each pytest worker gets a
database of its own for the session; each test empties it first (`reset_database`), which is far
cheaper than creating a database per test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from app.store.postgis import PostGISStore

ADMIN_URL = os.environ.get(
    "TRUCE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

# Everything a test may have written; meta's counters go back to 0.
_TABLES = (
    "audit",
    "zones",
    "reports",
    "report_ids",
    "report_versions",
    "api_keys",
    "parties",
    "idempotency",
    "events",
    "incidents",
    "subscriptions",
    "deliveries",
    "units",
)


def database_url(name: str, admin_url: str = ADMIN_URL, query: str = "pool_timeout=5") -> str:
    """The URL of database `name` on the server of `admin_url`."""
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", query, ""))


def create_database(name: str, admin_url: str = ADMIN_URL) -> str:
    """A new, empty database `name` (dropped first if a crashed run left it); its URL."""
    drop_database(name, admin_url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(name, admin_url)


def drop_database(name: str, admin_url: str = ADMIN_URL) -> None:
    """Drop database `name` if it exists, closing its connections."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def migrated_database(name: str, admin_url: str = ADMIN_URL) -> str:
    """A new database with Truce's schema (and PostGIS) in it; its URL."""
    url = create_database(name, admin_url)
    PostGISStore(url, listen=False).close()
    return url


def reset_database(url: str) -> None:
    """Empty every table of a migrated database, as if it had just been created."""
    parts = urlsplit(url)
    with psycopg.connect(urlunsplit((*parts[:3], "", "")), autocommit=True) as conn:
        conn.execute(
            sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                sql.SQL(", ").join(sql.Identifier(t) for t in _TABLES)
            )
        )
        conn.execute(
            "UPDATE meta SET value = 0 "
            "WHERE key IN ('zones_token', 'report_position', 'parties_token')"
        )


def worker_database_name(prefix: str) -> str:
    """A database name of this pytest worker (xdist's gw0, gw1... or `main`) and process."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{prefix}_{worker}_{os.getpid()}"


@contextmanager
def session_database(prefix: str) -> Iterator[str]:
    """A migrated database for this worker's session, dropped at the end."""
    name = worker_database_name(prefix)
    url = migrated_database(name)
    try:
        yield url
    finally:
        drop_database(name)
