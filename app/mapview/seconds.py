"""Moments as whole seconds since the epoch (UTC), the map's unit of time; zone validity in them."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from app.domain import Zone

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


def _seconds(moment: datetime) -> int:
    return (moment - _EPOCH) // _SECOND


def _iso(seconds: float | None) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "open"
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%d %H:%M UTC")


def _time_or_none(value: object) -> int | None:
    """Seconds of an ISO 8601 string or datetime in a reference layer's properties, or None."""
    if value is None:
        return None
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    return _seconds(moment)


def _zone_seconds(zone: Zone) -> tuple[int, int | None]:
    return _seconds(zone.valid_from), None if zone.valid_to is None else _seconds(zone.valid_to)


def _in_force(zone: Zone, t: int) -> bool:
    begin, stop = _zone_seconds(zone)
    return begin <= t and (stop is None or t < stop)


def _overlaps(zone: Zone, start: int, end: int) -> bool:
    begin, stop = _zone_seconds(zone)
    return begin <= end and (stop is None or stop > start)
