"""Managing subscriptions: what the HTTP API and the command line share (create, replay, the
delivery options of the settings)."""

from __future__ import annotations

from datetime import datetime

from app.alerts.delivery import DeliveryOptions
from app.alerts.subscriptions import Subscription, SubscriptionSpec, new_secret
from app.settings import Settings
from app.store.base import Store

__all__ = ["create_subscription", "cursor_before", "delivery_options", "replay"]


def delivery_options(settings: Settings) -> DeliveryOptions:
    """The delivery options that the settings give."""
    return DeliveryOptions(
        timeout_s=settings.webhook_timeout_s,
        connect_timeout_s=min(settings.webhook_timeout_s, 5.0),
        lease_ttl_s=settings.webhook_lease_s,
        retry_base_s=settings.webhook_retry_base_s,
        retry_cap_s=settings.webhook_retry_cap_s,
        retry_window=settings.webhook_retry_window,
        concurrency=settings.webhook_concurrency,
        private_targets=settings.webhook_private_targets,
    )


def create_subscription(store: Store, spec: SubscriptionSpec, actor: str) -> Subscription:
    """Store a new subscription with a new secret; it gets the events committed from now on."""
    return store.add_subscription(spec, new_secret(), actor, cursor=store.last_event_id())


def cursor_before(store: Store, at: datetime) -> int:
    """The id of the last event written before `at` (0: none), by bisection over the log's ids
    (event times grow with ids: events are written under the writers' lock)."""
    low, high = 0, store.last_event_id()
    # Invariant: the first event after `high` (if any) is at or after `at`; find the least
    # such position.
    while low < high:
        middle = (low + high) // 2
        after = store.events_after(middle, limit=1)
        if not after or after[0].created_at >= at:
            high = middle
        else:
            low = after[0].id
    return low


def replay(store: Store, subscription_id: int, since: int | datetime, actor: str) -> Subscription:
    """Redeliver a subscription's events from event id `since` (included) or from time `since`."""
    store.get_subscription(subscription_id)
    cursor = since - 1 if isinstance(since, int) else cursor_before(store, since)
    return store.replay_subscription(subscription_id, max(cursor, 0), actor)
