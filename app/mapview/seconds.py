"""Moments as whole seconds since the epoch (UTC), the map's unit of time; zone validity in them."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from app.domain import Zone

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


def to_seconds(moment: datetime) -> int:
    """Whole seconds since the epoch of a timezone-aware moment."""
    return (moment - EPOCH) // _SECOND


def format_seconds(seconds: float | None) -> str:
    """Seconds since the epoch as "YYYY-MM-DD HH:MM UTC"; "open" for None or NaN."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "open"
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%d %H:%M UTC")


def seconds_or_none(value: object) -> int | None:
    """Seconds of an ISO 8601 string or datetime in a reference layer's properties, or None."""
    if value is None:
        return None
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    return to_seconds(moment)


def zone_seconds(zone: Zone) -> tuple[int, int | None]:
    """A zone version's validity in seconds: (from, to), `to` None when open-ended."""
    return to_seconds(zone.valid_from), None if zone.valid_to is None else to_seconds(zone.valid_to)


def in_force(zone: Zone, t: int) -> bool:
    """Whether the zone version is in force at second `t`."""
    begin, stop = zone_seconds(zone)
    return begin <= t and (stop is None or t < stop)


def overlaps(zone: Zone, start: int, end: int) -> bool:
    """Whether the zone version is in force at some second from `start` to `end` (inclusive)."""
    begin, stop = zone_seconds(zone)
    return begin <= end and (stop is None or stop > start)
