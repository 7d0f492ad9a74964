"""Subscriptions in PostgreSQL: the `Store` methods of app/alerts, mixed into `PostGISStore`.

The same rows as the SQLite store (app/store/sqlite_subscriptions.py), with two differences:

- **Leases on the server's clock** (`clock_timestamp()`): processes on several machines compare
  expiries against one clock, never their own.
- **Delivery state is not written under the writers' lock**: a lease or an attempt is one row
  UPDATE (and one INSERT) of its own, so deliveries never queue behind report batches. Only
  creating, deleting and replaying a subscription, which append to the audit log, take it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg

from app.alerts.subscriptions import DeliveryAttempt, Subscription, SubscriptionSpec
from app.store.base import UnknownSubscription
from app.store.sqlite_subscriptions import spec_from, spec_json

__all__ = ["SUBSCRIPTIONS_MIGRATION", "PostGISSubscriptions"]

#: The schema of this module (one PostGIS migration).
SUBSCRIPTIONS_MIGRATION: tuple[str, ...] = (
    """CREATE TABLE subscriptions (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        kind text NOT NULL DEFAULT 'webhook',
        url text NOT NULL,
        secret text NOT NULL,
        spec jsonb NOT NULL,
        created_at timestamptz NOT NULL,
        created_by text NOT NULL,
        deleted_at timestamptz,
        cursor bigint NOT NULL,
        generation integer NOT NULL DEFAULT 0,
        state text NOT NULL DEFAULT 'active',
        attempts integer NOT NULL DEFAULT 0,
        failing_since timestamptz,
        next_attempt_at timestamptz,
        lease_holder text,
        lease_expires timestamptz
    )""",
    """CREATE TABLE deliveries (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        subscription_id bigint NOT NULL REFERENCES subscriptions (id),
        event_id bigint NOT NULL,
        attempt integer NOT NULL,
        at timestamptz NOT NULL,
        outcome text NOT NULL,
        status integer,
        latency_ms double precision,
        error text,
        webhook_id text NOT NULL
    )""",
    "CREATE INDEX deliveries_by_subscription ON deliveries (subscription_id, id)",
    # One MQTT cursor per database: processes starting together create it once.
    "CREATE UNIQUE INDEX subscriptions_one_mqtt ON subscriptions (kind) "
    "WHERE kind = 'mqtt' AND deleted_at IS NULL",
)

_COLUMNS = (
    "id, kind, url, secret, spec::text, created_at, created_by, cursor, generation, state, "
    "attempts, failing_since, next_attempt_at"
)


def _subscription(row: Any) -> Subscription:
    return Subscription(
        id=int(row[0]),
        kind=row[1],
        spec=spec_from(row[2], row[4]),
        secret=row[3],
        created_at=row[5],
        created_by=row[6],
        cursor=int(row[7]),
        generation=int(row[8]),
        state=row[9],
        attempts=int(row[10]),
        failing_since=row[11],
        next_attempt_at=row[12],
    )


def _attempt(row: Any) -> DeliveryAttempt:
    return DeliveryAttempt(
        id=int(row[0]),
        subscription_id=int(row[1]),
        event_id=int(row[2]),
        attempt=int(row[3]),
        at=row[4],
        outcome=row[5],
        status=row[6],
        latency_ms=row[7],
        error=row[8],
        webhook_id=row[9],
    )


class PostGISSubscriptions:
    """The subscription methods of `Store` over the database of `PostGISStore`."""

    if TYPE_CHECKING:

        def _write(self) -> AbstractContextManager[psycopg.Connection[Any]]: ...

        def _read(
            self, replica: bool = False
        ) -> AbstractContextManager[psycopg.Connection[Any]]: ...

        def _connection(self) -> AbstractContextManager[psycopg.Connection[Any]]: ...

        def _now(self, c: psycopg.Connection[Any]) -> datetime: ...

        @staticmethod
        def _audit(
            c: psycopg.Connection[Any],
            at: datetime,
            actor: str,
            action: str,
            target: str,
            detail: str | None = None,
        ) -> int: ...

    @staticmethod
    def _get(c: psycopg.Connection[Any], subscription_id: int) -> Subscription:
        row = c.execute(
            f"SELECT {_COLUMNS} FROM subscriptions WHERE id = %s AND deleted_at IS NULL",
            (subscription_id,),
        ).fetchone()
        if row is None:
            raise UnknownSubscription(f"no subscription {subscription_id}", field="subscription_id")
        return _subscription(row)

    def add_subscription(
        self, spec: SubscriptionSpec, secret: str, actor: str, cursor: int, kind: str = "webhook"
    ) -> Subscription:
        """See `Store.add_subscription`."""
        with self._write() as c:
            now = self._now(c)
            row = c.execute(
                "INSERT INTO subscriptions (kind, url, secret, spec, created_at, created_by, "
                f"cursor) VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s) RETURNING {_COLUMNS}",
                (kind, spec.url, secret, spec_json(spec).decode(), now, actor, cursor),
            ).fetchone()
            subscription = _subscription(row)
            self._audit(c, now, actor, "subscription.create", str(subscription.id), spec.url)
        return subscription

    def list_subscriptions(self, kind: str = "webhook") -> list[Subscription]:
        """See `Store.list_subscriptions`."""
        with self._read() as c:
            rows = c.execute(
                f"SELECT {_COLUMNS} FROM subscriptions WHERE kind = %s AND deleted_at IS NULL "
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
        with self._write() as c:
            now = self._now(c)
            self._get(c, subscription_id)
            c.execute(
                "UPDATE subscriptions SET deleted_at = %s, lease_holder = NULL WHERE id = %s",
                (now, subscription_id),
            )
            self._audit(c, now, actor, "subscription.delete", str(subscription_id))

    def replay_subscription(self, subscription_id: int, cursor: int, actor: str) -> Subscription:
        """See `Store.replay_subscription`."""
        with self._write() as c:
            now = self._now(c)
            self._get(c, subscription_id)
            c.execute(
                "UPDATE subscriptions SET cursor = %s, generation = generation + 1, "
                "state = 'active', attempts = 0, failing_since = NULL, next_attempt_at = NULL "
                "WHERE id = %s",
                (cursor, subscription_id),
            )
            c.execute(
                "INSERT INTO deliveries (subscription_id, event_id, attempt, at, outcome, "
                "webhook_id) VALUES (%s, %s, 0, %s, 'replayed', '')",
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
            self._get(c, subscription_id)
            rows = c.execute(
                "SELECT id, subscription_id, event_id, attempt, at, outcome, status, latency_ms, "
                "error, webhook_id FROM deliveries WHERE subscription_id = %s AND id < %s "
                "ORDER BY id DESC LIMIT %s",
                (subscription_id, after if after is not None else 2**63 - 1, limit),
            ).fetchall()
            total = c.execute(
                "SELECT count(*) FROM deliveries WHERE subscription_id = %s", (subscription_id,)
            ).fetchone()
        return [_attempt(row) for row in rows], int(total[0]) if total else 0

    def lease_subscription(
        self, subscription_id: int, holder: str, ttl_s: float
    ) -> Subscription | None:
        """See `Store.lease_subscription`."""
        with self._connection() as c, c.transaction():
            row = c.execute(
                "UPDATE subscriptions SET lease_holder = %s, "
                "lease_expires = clock_timestamp() + make_interval(secs => %s) "
                "WHERE id = %s AND deleted_at IS NULL AND (lease_holder IS NULL "
                "OR lease_holder = %s OR lease_expires <= clock_timestamp()) "
                f"RETURNING {_COLUMNS}",
                (holder, ttl_s, subscription_id, holder),
            ).fetchone()
        return None if row is None else _subscription(row)

    def release_subscription(self, subscription_id: int, holder: str) -> None:
        """See `Store.release_subscription`."""
        with self._connection() as c, c.transaction():
            c.execute(
                "UPDATE subscriptions SET lease_holder = NULL, lease_expires = NULL "
                "WHERE id = %s AND lease_holder = %s",
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
        with self._connection() as c, c.transaction():
            updated = c.execute(
                "UPDATE subscriptions SET cursor = %s, attempts = %s, state = %s, "
                "failing_since = %s, next_attempt_at = %s "
                "WHERE id = %s AND deleted_at IS NULL AND lease_holder = %s "
                "AND lease_expires > clock_timestamp() AND generation = %s",
                (
                    cursor,
                    attempts,
                    state,
                    failing_since,
                    next_attempt_at,
                    subscription.id,
                    holder,
                    subscription.generation,
                ),
            ).rowcount
            if not updated:
                return False
            if made:
                c.cursor().executemany(
                    "INSERT INTO deliveries (subscription_id, event_id, attempt, at, outcome, "
                    "status, latency_ms, error, webhook_id) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            subscription.id,
                            attempt.event_id,
                            attempt.attempt,
                            attempt.at,
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
