"""`truce db copy` carries webhook subscriptions (ids, secrets, cursors, filters) and every
delivery attempt from SQLite into PostGIS; ids go on after the copied ones."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from app.alerts.subscriptions import DeliveryAttempt, check_spec, new_secret
from app.store import SQLiteStore
from app.store.copy import copy_sqlite_to_postgis
from app.store.postgis import PostGISStore


def test_subscriptions_and_their_attempts_are_copied_with_their_ids(
    tmp_path: Path, postgis_url: str
) -> None:
    path = tmp_path / "truce.sqlite"
    with SQLiteStore(path) as sqlite:
        spec = check_spec("https://a.example.org/h", types=["incident.opened"], min_depth_m=5)
        kept = sqlite.add_subscription(spec, new_secret(), "admin", cursor=0)
        gone = sqlite.add_subscription(check_spec("https://b.example.org/"), new_secret(), "a", 0)
        sqlite.delete_subscription(gone.id, "admin")
        held = sqlite.lease_subscription(kept.id, "me", 30)
        assert held is not None
        attempt = DeliveryAttempt(
            0,
            kept.id,
            1,
            1,
            datetime(2026, 1, 1, tzinfo=UTC),
            "delivered",
            204,
            3.5,
            None,
            "evt_1",
        )
        assert sqlite.record_delivery(held, "me", [attempt], cursor=1, attempts=0)
        expected = sqlite.get_subscription(kept.id)
        expected_attempts = sqlite.list_deliveries(kept.id)
    with PostGISStore(postgis_url, listen=False) as postgis:
        copied = copy_sqlite_to_postgis(path, postgis)
        assert copied.rows["subscriptions"] == 2
        assert postgis.get_subscription(kept.id) == expected
        assert [s.id for s in postgis.list_subscriptions()] == [kept.id]
        assert postgis.list_deliveries(kept.id) == expected_attempts
        # The lease did not come along: a deliverer of the new database takes it at once.
        assert postgis.lease_subscription(kept.id, "other", 30) is not None
        later = postgis.add_subscription(spec, new_secret(), "admin", cursor=1)
        assert later.id == gone.id + 1
