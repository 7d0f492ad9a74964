"""Subscriptions in the SQLite file: the `Store` methods of app/alerts, mixed into `SQLiteStore`.

- One row per subscription carries its delivery state (cursor, attempts, state, the time of the
  next attempt) and its **lease** (`lease_holder`, `lease_expires`, microseconds on this
  machine's clock: every process of a SQLite file runs on one machine). Taking the lease is one
  conditional UPDATE under SQLite's write lock, so of several processes exactly one gets it.
- `deliveries` keeps every attempt; an attempt and the state it leads to are written in one
  transaction, and only while the writer still holds the lease and the subscription was not
  replayed meanwhile (its `generation`).
- Secrets are stored as they are: HMAC signing needs them (the API shows them once).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from app.alerts.subscriptions import DeliveryAttempt, Subscription, SubscriptionSpec
from app.store.base import UnknownSubscription

__all__ = ["SUBSCRIPTIONS_MIGRATION", "SQLiteSubscriptions"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: The schema of this module (one SQLite migration).
SUBSCRIPTIONS_MIGRATION: tuple[str, ...] = (
    """CREATE TABLE subscriptions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL DEFAULT 'webhook',
        url TEXT NOT NULL,
        secret TEXT NOT NULL,
        spec TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        deleted_at INTEGER,
        cursor INTEGER NOT NULL,
        generation INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'active',
        attempts INTEGER NOT NULL DEFAULT 0,
        failing_since INTEGER,
        next_attempt_at INTEGER,
        lease_holder TEXT,
        lease_expires INTEGER
    )""",
    """CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        subscription_id INTEGER NOT NULL REFERENCES subscriptions (id),
        event_id INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        at INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        status INTEGER,
        latency_ms REAL,
        error TEXT,
        webhook_id TEXT NOT NULL
    )""",
    "CREATE INDEX deliveries_by_subscription ON deliveries (subscription_id, id)",
    # One MQTT cursor per database: processes starting together create it once.
    "CREATE UNIQUE INDEX subscriptions_one_mqtt ON subscriptions (kind) "
    "WHERE kind = 'mqtt' AND deleted_at IS NULL",
)

_COLUMNS = (
    "id, kind, url, secret, spec, created_at, created_by, cursor, generation, state, attempts, "
    "failing_since, next_attempt_at"
)


def _us(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def _time(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=us)


def spec_json(spec: SubscriptionSpec) -> bytes:
    """The spec without its URL (a column of its own), as JSON."""
    return orjson.dumps(
        {
            "types": list(spec.types),
            "zones": list(spec.zones),
            "parties": list(spec.parties),
            "verdicts": list(spec.verdicts),
            "min_depth_m": spec.min_depth_m,
            "description": spec.description,
        }
    )


def spec_from(url: str, text: str | bytes) -> SubscriptionSpec:
    """The spec stored by `spec_json`, with its URL."""
    raw: dict[str, Any] = orjson.loads(text)
    return SubscriptionSpec(
        url=url,
        types=tuple(raw.get("types", ())),
        zones=tuple(raw.get("zones", ())),
        parties=tuple(raw.get("parties", ())),
        verdicts=tuple(raw.get("verdicts", ())),
        min_depth_m=raw.get("min_depth_m"),
        description=raw.get("description"),
    )


def _subscription(row: Any) -> Subscription:
    return Subscription(
        id=int(row[0]),
        kind=row[1],
        spec=spec_from(row[2], row[4]),
        secret=row[3],
        created_at=_time(row[5]) or _EPOCH,
        created_by=row[6],
        cursor=int(row[7]),
        generation=int(row[8]),
        state=row[9],
        attempts=int(row[10]),
        failing_since=_time(row[11]),
        next_attempt_at=_time(row[12]),
    )


def _attempt(row: Any) -> DeliveryAttempt:
    return DeliveryAttempt(
        id=int(row[0]),
        subscription_id=int(row[1]),
        event_id=int(row[2]),
        attempt=int(row[3]),
        at=_time(row[4]) or _EPOCH,
        outcome=row[5],
        status=row[6],
        latency_ms=row[7],
        error=row[8],
        webhook_id=row[9],
    )


class SQLiteSubscriptions:
    """The subscription methods of `Store` over the SQLite file of `SQLiteStore`."""

    if TYPE_CHECKING:

        def _write(self) -> AbstractContextManager[sqlite3.Connection]: ...

        def _read(self) -> AbstractContextManager[sqlite3.Connection]: ...

        @staticmethod
        def _audit(
            c: sqlite3.Connection,
            at_us: int,
            actor: str,
            action: str,
            target: str,
            detail: str | None = None,
        ) -> int: ...

    @staticmethod
    def _get(c: sqlite3.Connection, subscription_id: int) -> Subscription:
        row = c.execute(
            f"SELECT {_COLUMNS} FROM subscriptions WHERE id = ? AND deleted_at IS NULL",
            (subscription_id,),
        ).fetchone()
        if row is None:
            raise UnknownSubscription(f"no subscription {subscription_id}", field="subscription_id")
        return _subscription(row)

    def add_subscription(
        self, spec: SubscriptionSpec, secret: str, actor: str, cursor: int, kind: str = "webhook"
    ) -> Subscription:
        """See `Store.add_subscription`."""
        now = _us(datetime.now(UTC))
        with self._write() as c:
            row = c.execute(
                "INSERT INTO subscriptions (kind, url, secret, spec, created_at, created_by, "
                f"cursor) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
                (kind, spec.url, secret, spec_json(spec), now, actor, cursor),
            ).fetchone()
            subscription = _subscription(row)
            self._audit(c, now, actor, "subscription.create", str(subscription.id), spec.url)
        return subscription

    def list_subscriptions(self, kind: str = "webhook") -> list[Subscription]:
        """See `Store.list_subscriptions`."""
        with self._read() as c:
            rows = c.execute(
                f"SELECT {_COLUMNS} FROM subscriptions WHERE kind = ? AND deleted_at IS NULL "
                "ORDER BY id",
                (kind,),
            ).fetchall()
        return [_subscription(row) for row in rows]

    def get_subscription(self, subscription_id: int) -> Subscription:
        """See `Store.get_subscription`."""
        with self._read() as c:
            return self._get(c, subscription_id)

    def delete_subscription(self, subscription_id: int, actor: str) -> None:
        """See `Store.delete_subscription`."""
        now = _us(datetime.now(UTC))
        with self._write() as c:
            self._get(c, subscription_id)
            c.execute(
                "UPDATE subscriptions SET deleted_at = ?, lease_holder = NULL WHERE id = ?",
                (now, subscription_id),
            )
            self._audit(c, now, actor, "subscription.delete", str(subscription_id))

    def replay_subscription(self, subscription_id: int, cursor: int, actor: str) -> Subscription:
        """See `Store.replay_subscription`."""
        now = _us(datetime.now(UTC))
        with self._write() as c:
            self._get(c, subscription_id)
            c.execute(
                "UPDATE subscriptions SET cursor = ?, generation = generation + 1, "
                "state = 'active', attempts = 0, failing_since = NULL, next_attempt_at = NULL "
                "WHERE id = ?",
                (cursor, subscription_id),
            )
            c.execute(
                "INSERT INTO deliveries (subscription_id, event_id, attempt, at, outcome, "
                "webhook_id) VALUES (?, ?, 0, ?, 'replayed', '')",
                (subscription_id, cursor + 1, now),
            )
            self._audit(
                c, now, actor, "subscription.replay", str(subscription_id), f"after {cursor}"
            )
            return self._get(c, subscription_id)

    def list_deliveries(
        self, subscription_id: int, limit: int = 100, after: int | None = None
    ) -> tuple[list[DeliveryAttempt], int]:
        """See `Store.list_deliveries`."""
        with self._read() as c:
            exists = c.execute(
                "SELECT 1 FROM subscriptions WHERE id = ? AND deleted_at IS NULL",
                (subscription_id,),
            ).fetchone()
            if exists is None:
                raise UnknownSubscription(
                    f"no subscription {subscription_id}", field="subscription_id"
                )
            rows = c.execute(
                "SELECT id, subscription_id, event_id, attempt, at, outcome, status, latency_ms, "
                "error, webhook_id FROM deliveries WHERE subscription_id = ? AND id < ? "
                "ORDER BY id DESC LIMIT ?",
                (subscription_id, after if after is not None else 2**63 - 1, limit),
            ).fetchall()
            total = c.execute(
                "SELECT count(*) FROM deliveries WHERE subscription_id = ?", (subscription_id,)
            ).fetchone()[0]
        return [_attempt(row) for row in rows], int(total)

    def lease_subscription(
        self, subscription_id: int, holder: str, ttl_s: float
    ) -> Subscription | None:
        """See `Store.lease_subscription`."""
        now = _us(datetime.now(UTC))
        with self._write() as c:
            row = c.execute(
                "UPDATE subscriptions SET lease_holder = ?, lease_expires = ? "
                "WHERE id = ? AND deleted_at IS NULL AND (lease_holder IS NULL "
                "OR lease_holder = ? OR lease_expires <= ?) "
                f"RETURNING {_COLUMNS}",
                (holder, now + int(ttl_s * 1e6), subscription_id, holder, now),
            ).fetchone()
        return None if row is None else _subscription(row)

    def release_subscription(self, subscription_id: int, holder: str) -> None:
        """See `Store.release_subscription`."""
        with self._write() as c:
            c.execute(
                "UPDATE subscriptions SET lease_holder = NULL, lease_expires = NULL "
                "WHERE id = ? AND lease_holder = ?",
                (subscription_id, holder),
            )

    def record_delivery(
        self,
        subscription: Subscription,
        holder: str,
        made: Sequence[DeliveryAttempt],
        *,
        cursor: int,
        attempts: int,
        state: str = "active",
        failing_since: datetime | None = None,
        next_attempt_at: datetime | None = None,
    ) -> bool:
        """See `Store.record_delivery`."""
        now = _us(datetime.now(UTC))
        with self._write() as c:
            updated = c.execute(
                "UPDATE subscriptions SET cursor = ?, attempts = ?, state = ?, "
                "failing_since = ?, next_attempt_at = ? "
                "WHERE id = ? AND deleted_at IS NULL AND lease_holder = ? "
                "AND lease_expires > ? AND generation = ?",
                (
                    cursor,
                    attempts,
                    state,
                    None if failing_since is None else _us(failing_since),
                    None if next_attempt_at is None else _us(next_attempt_at),
                    subscription.id,
                    holder,
                    now,
                    subscription.generation,
                ),
            ).rowcount
            if not updated:
                return False
            if made:
                c.executemany(
                    "INSERT INTO deliveries (subscription_id, event_id, attempt, at, outcome, "
                    "status, latency_ms, error, webhook_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            subscription.id,
                            attempt.event_id,
                            attempt.attempt,
                            _us(attempt.at),
                            attempt.outcome,
                            attempt.status,
                            attempt.latency_ms,
                            attempt.error,
                            attempt.webhook_id,
                        )
                        for attempt in made
                    ],
                )
        return True
