"""Webhook subscriptions: what they are, how they are validated, and which events they take.

A subscription names a URL, the event types it wants (none: every type) and filters on the
event's `data` (zones, parties, verdicts, a minimum depth). Its signing secret (``whsec_`` and
32 random bytes in base64, as Standard Webhooks 1.0 writes them) is shown once, when it is made.

Delivery state lives on the subscription too: its `cursor` (the id of the last event delivered
or passed over by its filters), the attempts at the event after it, and `state`: ``active``, or
``failed`` once an event has failed for longer than the retry window (72 h); a replay makes it
active again.

SSRF policy (docs/alerts.md): only ``http`` and ``https`` URLs with a host and no user info;
link-local (169.254/16, fe80::/10, where cloud metadata services answer), multicast, reserved
and unspecified addresses are always refused, at creation for literal addresses and at every
delivery for the addresses a name resolves to. Loopback and private addresses are allowed by
default (tests and receivers on the same network); `TRUCE_WEBHOOK_PRIVATE_TARGETS=false` refuses
them too.
"""

from __future__ import annotations

import base64
import ipaddress
import math
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from app.alerts.events import EVENT_TYPES, Event, EventFilter
from app.errors import InvalidInput

__all__ = [
    "DEFAULT_RETRY_WINDOW",
    "MAX_URL_LENGTH",
    "VERDICTS",
    "DeliveryAttempt",
    "InvalidSubscription",
    "Subscription",
    "SubscriptionSpec",
    "backoff",
    "blocked_address",
    "check_spec",
    "matches",
    "new_secret",
]

MAX_URL_LENGTH = 2048
#: Failing deliveries are retried for this long, then the subscription is held as failed.
DEFAULT_RETRY_WINDOW = timedelta(hours=72)
#: Verdicts an event's data may carry (only violations open incidents: inside and possible).
VERDICTS = ("inside", "possible")
_MAX_FILTER_ITEMS = 1000


class InvalidSubscription(InvalidInput):
    """A subscription whose URL, event types or filters cannot be taken."""

    title = "Invalid subscription"


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """What a client asks for: where to send which events."""

    url: str
    types: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    parties: tuple[str, ...] = ()
    verdicts: tuple[str, ...] = ()
    min_depth_m: float | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Subscription:
    """A stored subscription and its delivery state (the secret is only read to sign)."""

    id: int
    spec: SubscriptionSpec
    secret: str
    created_at: datetime
    created_by: str
    cursor: int
    state: str = "active"
    attempts: int = 0
    failing_since: datetime | None = None
    next_attempt_at: datetime | None = None
    kind: str = "webhook"
    #: Bumped by every replay, so that a deliverer that read the subscription before cannot
    #: move its cursor past the replayed events.
    generation: int = 0


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One attempt at delivering one event to one subscription.

    `outcome`: ``delivered`` (a 2xx), ``retry`` (another attempt is planned), ``failed`` (the
    retry window is over: the subscription is held), ``replayed`` (a marker: the operator asked
    for a redelivery from `event_id` on).
    """

    id: int
    subscription_id: int
    event_id: int
    attempt: int
    at: datetime
    outcome: str
    status: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    webhook_id: str = field(default="")


def new_secret() -> str:
    """A signing secret as Standard Webhooks writes it: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def blocked_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address, private: bool) -> str:
    """Why deliveries must not go to `address` (empty when they may); `private` allows loopback
    and private networks."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return blocked_address(address.ipv4_mapped, private)
    if address.is_link_local:
        return "a link-local address (where cloud metadata services answer)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_reserved:
        return "a reserved address"
    if not private and (address.is_loopback or address.is_private):
        return "a loopback or private address (TRUCE_WEBHOOK_PRIVATE_TARGETS is false)"
    return ""


def _check_url(value: Any, private: bool) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidSubscription("must be an http or https URL", field="url")
    url = value.strip()
    if len(url) > MAX_URL_LENGTH:
        raise InvalidSubscription(f"is longer than {MAX_URL_LENGTH} characters", field="url")
    if not url.isascii() or any(c.isspace() or ord(c) < 32 for c in url):
        raise InvalidSubscription(
            "must be ASCII with no spaces or control characters (percent-encode the rest)",
            field="url",
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidSubscription(f"is not a URL ({exc})", field="url") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidSubscription(
            f"must use http or https, not {parts.scheme or 'no scheme'!r}", field="url"
        )
    host = parts.hostname
    if not host:
        raise InvalidSubscription("has no host", field="url")
    if parts.username is not None or parts.password is not None:
        raise InvalidSubscription(
            "must not carry user info (the signature authenticates Truce)", field="url"
        )
    if parts.fragment:
        raise InvalidSubscription("must not have a #fragment", field="url")
    if port == 0:
        raise InvalidSubscription("port 0 is not a port", field="url")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        why = blocked_address(address, private)
        if why:
            raise InvalidSubscription(f"points at {why}", field="url")
    return url


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise InvalidSubscription("must be a list of strings", field=name)
    if len(value) > _MAX_FILTER_ITEMS:
        raise InvalidSubscription(f"has more than {_MAX_FILTER_ITEMS} items", field=name)
    out: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip() or len(item) > 256:
            raise InvalidSubscription(
                "must be a non-empty string of at most 256 characters", field=f"{name}/{index}"
            )
        if item not in out:
            out.append(item)
    return tuple(out)


def check_spec(
    url: Any,
    types: Any = None,
    zones: Any = None,
    parties: Any = None,
    verdicts: Any = None,
    min_depth_m: Any = None,
    description: Any = None,
    *,
    private_targets: bool = True,
) -> SubscriptionSpec:
    """Validate a subscription as sent; `InvalidSubscription` names the field at fault."""
    checked_url = _check_url(url, private_targets)
    checked_types = _strings(types, "types")
    for index, kind in enumerate(checked_types):
        if kind not in EVENT_TYPES:
            raise InvalidSubscription(
                f"{kind!r} is not an event type; known: {', '.join(EVENT_TYPES)}",
                field=f"types/{index}",
            )
    checked_verdicts = _strings(verdicts, "verdicts")
    for index, verdict in enumerate(checked_verdicts):
        if verdict not in VERDICTS:
            raise InvalidSubscription(
                f"{verdict!r} is not a violation verdict; known: {', '.join(VERDICTS)}",
                field=f"verdicts/{index}",
            )
    depth: float | None = None
    if min_depth_m is not None:
        if isinstance(min_depth_m, bool) or not isinstance(min_depth_m, int | float):
            raise InvalidSubscription("must be a number of metres", field="min_depth_m")
        depth = float(min_depth_m)
        if not math.isfinite(depth) or abs(depth) > 1e7:
            raise InvalidSubscription(
                "must be a finite number of metres within ±10,000 km", field="min_depth_m"
            )
    if description is not None and (not isinstance(description, str) or len(description) > 1024):
        raise InvalidSubscription(
            "must be a string of at most 1024 characters", field="description"
        )
    return SubscriptionSpec(
        url=checked_url,
        types=checked_types,
        zones=_strings(zones, "zones"),
        parties=_strings(parties, "parties"),
        verdicts=checked_verdicts,
        min_depth_m=depth,
        description=description,
    )


def event_filter(spec: SubscriptionSpec) -> EventFilter:
    """The subscription's filters as the event log's `EventFilter` (the stream's filters too)."""
    return EventFilter(
        types=frozenset(spec.types),
        zones=frozenset(spec.zones),
        parties=frozenset(spec.parties),
        verdicts=frozenset(spec.verdicts),
        min_depth_m=spec.min_depth_m,
    )


def matches(spec: SubscriptionSpec, event: Event) -> bool:
    """Whether `event` is for this subscription: its type, and every filter it sets (as
    `EventFilter.matches`: an event without the key of a filter that is set does not pass)."""
    return event_filter(spec).matches(event)


def backoff(
    attempt: int,
    *,
    base_s: float = 1.0,
    cap_s: float = 3600.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2, ...): exponential, capped,
    with "equal jitter" (half fixed, half random), so that receivers coming back are not hit by
    every sender at once while the wait never collapses to nothing."""
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt - 1, 62))
    draw = (rng or random).random()
    return ceiling / 2 + draw * ceiling / 2


def event_types(types: Sequence[str]) -> tuple[str, ...]:
    """The types a subscription with `types` takes (every type when empty)."""
    return tuple(types) if types else EVENT_TYPES
