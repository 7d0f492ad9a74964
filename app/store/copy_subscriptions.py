"""`truce db copy` for webhook subscriptions: SQLite rows into PostGIS, with their ids (the
deliveries' `webhook-id`s and the operators' links keep working), their secrets, cursors and
every delivery attempt; leases are not copied (the new database's deliverers take them)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from app.store.base import StoreError

__all__ = ["copy_subscriptions"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COLUMNS = (
    "id, kind, url, secret, spec, created_at, created_by, deleted_at, cursor, generation, "
    "state, attempts, failing_since, next_attempt_at"
)
_DELIVERY_COLUMNS = (
    "id, subscription_id, event_id, attempt, at, outcome, status, latency_ms, error, webhook_id"
)


def _at(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=us)


def _text(value: str | bytes) -> str:
    # The SQLite store writes the spec as orjson's bytes (a BLOB).
    return value.decode("utf-8") if isinstance(value, bytes) else value


def copy_subscriptions(src: sqlite3.Connection, pg: psycopg.Connection[Any]) -> int:
    """Copy every subscription and delivery attempt, in one transaction; how many subscriptions.

    A target that already holds the same number of subscriptions is taken as copied (a resumed
    copy); one that holds others is refused.
    """
    rows = src.execute(f"SELECT {_COLUMNS} FROM subscriptions ORDER BY id").fetchall()
    found = pg.execute("SELECT count(*) FROM subscriptions").fetchone()
    stored = int(found[0]) if found else 0
    if stored == len(rows):
        return 0
    if stored:
        raise StoreError("the target database holds some subscriptions already")
    deliveries = src.execute(f"SELECT {_DELIVERY_COLUMNS} FROM deliveries ORDER BY id").fetchall()
    with pg.transaction(), pg.cursor() as cur:
        cur.executemany(
            f"INSERT INTO subscriptions ({_COLUMNS}) OVERRIDING SYSTEM VALUE VALUES "
            "(%s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (*r[:4], _text(r[4]), _at(r[5]), r[6], _at(r[7]), *r[8:12], _at(r[12]), _at(r[13]))
                for r in rows
            ],
        )
        cur.executemany(
            f"INSERT INTO deliveries ({_DELIVERY_COLUMNS}) OVERRIDING SYSTEM VALUE VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(*r[:4], _at(r[4]), *r[5:]) for r in deliveries],
        )
        for table in ("subscriptions", "deliveries"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)".encode()
            )
    return len(rows)
