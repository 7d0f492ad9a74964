"""What the engine and the store can hold: times, distances, and the checks that refuse the rest.

The engine counts time in nanoseconds in 64 bits (years 1677 to 2262), and no distance on Earth
exceeds half the equator. Everything that comes in (HTTP bodies, files, zones) is held to these
limits here, once, so that a stored zone or report can never break the index.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from app.domain import Zone
from app.errors import InvalidInput, InvalidParameter, InvalidZone
from app.validate import join_path

__all__ = [
    "MAX_DISTANCE_M",
    "MAX_TIME",
    "MAX_US",
    "MIN_TIME",
    "MIN_US",
    "NS_PER_US",
    "Breach",
    "check_batch_limits",
    "check_time",
    "check_zone",
    "first_breach",
    "from_us",
    "iso_utc",
    "to_us",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
NS_PER_US = 1000
#: Times the engine can hold: it counts nanoseconds in 64 bits (years 1677 to 2262). Anything
#: outside is refused on the way in, so that a stored zone can never break the index.
MIN_TIME = datetime(1678, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2262, 1, 1, tzinfo=UTC)
MIN_US = (MIN_TIME - EPOCH) // _US
MAX_US = (MAX_TIME - EPOCH) // _US
#: No two points on Earth are farther apart (half the equator, rounded up): a larger uncertainty
#: or warning distance means nothing and only feeds overflows to the geometry.
MAX_DISTANCE_M = 20_037_509.0


def to_us(moment: datetime) -> int:
    """Exact microseconds since 1970 UTC of an aware datetime."""
    return (moment - EPOCH) // _US


def from_us(us: int) -> datetime:
    """The aware UTC datetime `us` microseconds after 1970 (the inverse of `to_us`)."""
    return EPOCH + timedelta(microseconds=us)


_FEW_TIMES = 16


def iso_utc(time_ns: np.ndarray) -> list[str]:
    """UTC times as `datetime.isoformat()` writes them ("...T02:00:00+00:00", µs when any)."""
    us = np.asarray(time_ns, dtype=np.int64) // NS_PER_US
    if len(us) <= _FEW_TIMES:  # datetime is quicker than numpy's string formatting for a few
        return [from_us(t).isoformat() for t in us.tolist()]
    stamps = us.astype("datetime64[us]")
    whole = us % 1_000_000 == 0
    text = np.where(
        whole,
        np.datetime_as_string(stamps, unit="s"),
        np.datetime_as_string(stamps, unit="us"),
    )
    return [f"{t}+00:00" for t in text.tolist()]


def time_problem(moment: datetime) -> str | None:
    """Why `moment` cannot be held (before 1678 or from 2262), or None."""
    if MIN_TIME <= moment < MAX_TIME:
        return None
    return (
        f"{moment.isoformat()} is out of the supported range "
        f"[{MIN_TIME.date().isoformat()}, {MAX_TIME.date().isoformat()})"
    )


def distance_problem(metres: float) -> str | None:
    """Why a distance of `metres` cannot be held (more than half the equator), or None."""
    if metres <= MAX_DISTANCE_M:
        return None
    return f"must be at most {MAX_DISTANCE_M:.0f} m (half the equator), got {metres:g}"


def check_time(moment: datetime, field: str, error: type[InvalidInput] = InvalidParameter) -> None:
    """Refuse a time the engine cannot hold (before 1678 or from 2262), naming `field`."""
    problem = time_problem(moment)
    if problem is not None:
        raise error(problem, field=field)


def check_zone(zone: Zone, index: int | None = None) -> None:
    """Refuse what validation lets through but the engine cannot hold (times, huge distances)."""
    base = "" if index is None else f"features/{index}"
    try:
        check_time(zone.valid_from, join_path(base, "properties", "valid_from"), InvalidZone)
        if zone.valid_to is not None:
            check_time(zone.valid_to, join_path(base, "properties", "valid_to"), InvalidZone)
        for name in ("warning_distance_m", "boundary_uncertainty_m"):
            problem = distance_problem(getattr(zone, name))
            if problem is not None:
                raise InvalidZone(problem, field=join_path(base, "properties", name))
    except InvalidZone as exc:
        exc.index = index
        raise


@dataclass(frozen=True, slots=True)
class Breach:
    """The first report of a batch beyond the limits: its row, the field, and why."""

    row: int
    field: str
    message: str


def first_breach(us: np.ndarray, uncertainty_m: np.ndarray) -> Breach | None:
    """The first report whose time (µs since 1970 UTC) or uncertainty cannot be held, or None."""
    bad_time = (us < MIN_US) | (us >= MAX_US)
    bad_u = uncertainty_m > MAX_DISTANCE_M
    bad = np.flatnonzero(bad_time | bad_u)
    if not len(bad):
        return None
    i = int(bad[0])
    if bad_time[i]:
        return Breach(i, "observed_at", str(time_problem(from_us(int(us[i])))))
    return Breach(i, "uncertainty_m", str(distance_problem(float(uncertainty_m[i]))))


def check_batch_limits(
    us: np.ndarray, uncertainty_m: np.ndarray, fail: Callable[[int, str, str], Exception]
) -> None:
    """Raise `fail(row, message, field)` for the first report beyond the limits (`first_breach`).

    `fail` says where the report came from: `app.batch.Origin.fail` for a batch, a chunk's
    `fail` for a file being read.
    """
    breach = first_breach(us, uncertainty_m)
    if breach is not None:
        raise fail(breach.row, breach.message, breach.field)
