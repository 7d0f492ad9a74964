"""Events: durable, numbered records of what a subscriber may want pushed.

(A stand-in for the events contract of the `alerts` branch; replaced when it is merged.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["EVENT_TYPES", "Event"]

#: Every event type, in the order docs list them.
EVENT_TYPES = (
    "incident.opened",
    "incident.updated",
    "incident.closed",
    "track.stale",
    "zone.changed",
)


@dataclass(frozen=True, slots=True)
class Event:
    """One event of the log: its id (increasing in commit order), type, time and data."""

    id: int
    type: str
    created_at: datetime
    data: dict[str, Any] = field(default_factory=dict)
