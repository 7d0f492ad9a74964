"""The event log's vocabulary: what an event is, its types, and the payloads of each type.

Pure: no HTTP and no storage here, so the stores, the stream (`GET /events`), webhooks and MQTT
all read the same definitions. An event is written in the same transaction as the change that
caused it, with an id that grows in commit order (see `Store.events_after`): a reader that
keeps the last id it saw and asks for the ones after it never misses nor repeats an event.

Payloads (`Event.data`, JSON):

- ``incident.opened``, ``incident.updated``, ``incident.closed``: the incident after the change,
  `incident_payload`: ``incident_id``, ``party``, ``unit`` (null for a report without a unit),
  ``zone_id``, ``zone_name``, ``verdict`` (``inside``/``possible``: that of its deepest finding),
  ``depth_m`` (its deepest point, metres inside the zone), ``report_id`` and ``observed_at``
  (the latest report of the incident), ``state`` (``open``/``closed``), ``opened_at``,
  ``last_seen_at``, ``closed_at``, ``close_reason``, ``deepest_report_id``, ``reports``.
- ``track.stale``: a unit still in an open incident and not reported since: ``incident_id``,
  ``party``, ``unit``, ``zone_id``, ``zone_name``, ``verdict``, ``depth_m`` (the incident's),
  ``report_id`` and ``observed_at`` (the unit's last report), ``stale_after_s``.
- ``zone.changed``: ``zone_id``, ``version``, ``change`` (``created``/``updated``/``retired``),
  ``name``.

Filters of subscriptions and of the stream read ``zone_id``, ``party``, ``verdict`` and
``depth_m``; a payload without one of them (``zone.changed`` has no party) passes a filter on it
only when that filter is not set (`matches`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "EVENT_TYPES",
    "INCIDENT_CLOSED",
    "INCIDENT_OPENED",
    "INCIDENT_UPDATED",
    "TRACK_STALE",
    "ZONE_CHANGED",
    "ZONE_CHANGES",
    "Event",
    "EventFilter",
    "check_types",
    "zone_changed_payload",
]

INCIDENT_OPENED = "incident.opened"
INCIDENT_UPDATED = "incident.updated"
INCIDENT_CLOSED = "incident.closed"
TRACK_STALE = "track.stale"
ZONE_CHANGED = "zone.changed"

#: Every event type, in the order the docs list them.
EVENT_TYPES = (INCIDENT_OPENED, INCIDENT_UPDATED, INCIDENT_CLOSED, TRACK_STALE, ZONE_CHANGED)

#: What a `zone.changed` event says happened to the zone.
ZONE_CHANGES = ("created", "updated", "retired")


@dataclass(frozen=True)
class Event:
    """One entry of the event log: its id (grows in commit order), type, when it was written
    (UTC) and its JSON payload."""

    id: int
    type: str
    created_at: datetime
    data: dict[str, Any]


def check_types(types: Collection[str]) -> None:
    """Raise `ValueError` naming the first type that is not an event type."""
    for name in types:
        if name not in EVENT_TYPES:
            raise ValueError(f"unknown event type {name!r}; known: {', '.join(EVENT_TYPES)}")


def zone_changed_payload(zone_id: str, version: int, change: str, name: str) -> dict[str, Any]:
    """The payload of a `zone.changed` event."""
    if change not in ZONE_CHANGES:
        raise ValueError(f"change must be one of {', '.join(ZONE_CHANGES)}")
    return {"zone_id": zone_id, "version": version, "change": change, "name": name}


@dataclass(frozen=True)
class EventFilter:
    """Which events a reader wants: types, zones, parties, verdicts, a minimum depth.

    Empty collections and None mean "any". A filter on a key keeps only events whose payload
    has a value for it that passes (a `zone.changed` event has no party: a parties filter drops
    it); `min_depth_m` keeps events whose ``depth_m`` is at least that many metres.
    """

    types: frozenset[str] = frozenset()
    zones: frozenset[str] = frozenset()
    parties: frozenset[str] = frozenset()
    verdicts: frozenset[str] = frozenset()
    min_depth_m: float | None = None

    def matches(self, event: Event) -> bool:
        """Whether `event` passes every filter that is set."""
        if self.types and event.type not in self.types:
            return False
        return self.matches_data(event.data)

    def matches_data(self, data: Mapping[str, Any]) -> bool:
        """Whether a payload passes the zone, party, verdict and depth filters."""
        if self.zones and data.get("zone_id") not in self.zones:
            return False
        if self.parties and data.get("party") not in self.parties:
            return False
        if self.verdicts and data.get("verdict") not in self.verdicts:
            return False
        if self.min_depth_m is not None:
            depth = data.get("depth_m")
            if not isinstance(depth, int | float) or depth < self.min_depth_m:
                return False
        return True
