"""Where and when a zone write can change incidents: the regions whose reports to judge again.

A zone write (a new zone, a new version, a retirement) changes what is in force only where the
zone's versions *as in force* differ before and after it: a new version cuts the versions
before it at its `valid_from`, a retirement ends the zone at `at`. `changed_regions` compares
the two sets of effective versions of one zone instant by instant and gives, for every period
in which the zone's content differs (geometry, authorised parties, boundary uncertainty or
name), the bounding box of the old and the new geometry, widened by how far a `possible`
finding can reach outside a polygon. Reports outside every region keep the findings they had,
so incidents only need recomputing for the units and unit-less reports found in the regions.

Pure: the stores query their reports by these boxes and periods (the PostGIS store through
its GiST indexes) inside the zone write's transaction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import shapely

from app.alerts.incidents import (
    ZONE_CHANGED_CAUSE,
    IncidentRecords,
    Touched,
    keep_incidents,
)
from app.domain import Zone

__all__ = [
    "Region",
    "ZoneChangeRecords",
    "changed_regions",
    "follow_zone_changes",
    "widen_bounds",
]

#: Metres in one degree of latitude, rounded down (110,574 m at the equator, more elsewhere):
#: dividing by it over-estimates degrees, so a widened box never falls short.
_M_PER_DEG_LAT = 110_000.0


@dataclass(frozen=True, slots=True)
class Region:
    """Reports observed in ``[start, end)`` (`end` None: open) inside `bounds` (min lon, min
    lat, max lon, max lat; min lon > max lon never happens: a box reaching 180° is the whole
    range of longitudes)."""

    start: datetime
    end: datetime | None
    bounds: tuple[float, float, float, float]


def widen_bounds(
    bounds: tuple[float, float, float, float], metres: float
) -> tuple[float, float, float, float]:
    """`bounds` grown by at least `metres` on every side (all longitudes near a pole, or when
    the box would cross 180°: over-wide boxes cost a few reports, never a missed one)."""
    minx, miny, maxx, maxy = bounds
    dlat = metres / _M_PER_DEG_LAT
    miny, maxy = max(miny - dlat, -90.0), min(maxy + dlat, 90.0)
    widest = max(abs(miny), abs(maxy))
    cos = math.cos(math.radians(widest)) if widest < 89.0 else 0.0
    if cos <= 0.0:
        return (-180.0, miny, 180.0, maxy)
    dlon = dlat / cos
    minx, maxx = minx - dlon, maxx + dlon
    if minx < -180.0 or maxx > 180.0:
        return (-180.0, miny, 180.0, maxy)
    return (minx, miny, maxx, maxy)


def _content(zone: Zone) -> tuple[Any, ...]:
    """What of a version decides findings that make incidents (and the name they carry)."""
    return (
        shapely.to_wkb(zone.geometry, hex=True),
        zone.authorized_parties,
        zone.boundary_uncertainty_m,
        zone.name,
    )


def _in_force(versions: Sequence[Zone], at: datetime) -> Zone | None:
    for zone in versions:
        if zone.valid_from <= at and (zone.valid_to is None or at < zone.valid_to):
            return zone
    return None


def changed_regions(
    before: Sequence[Zone], after: Sequence[Zone], report_reach_m: float
) -> list[Region]:
    """The periods and boxes in which one zone's effective versions differ (see module).

    `before` and `after` are the versions of one zone id with their *effective* validity (as
    `Store.zones_for_index` gives them: no two overlap); `report_reach_m` is the largest
    uncertainty of any stored report, which with the zone's own boundary uncertainty bounds
    how far outside a polygon a `possible` finding lies.
    """
    cuts: set[datetime] = set()
    for zone in (*before, *after):
        cuts.add(zone.valid_from)
        if zone.valid_to is not None:
            cuts.add(zone.valid_to)
    times = sorted(cuts)
    regions: list[Region] = []
    for k, start in enumerate(times):
        end = times[k + 1] if k + 1 < len(times) else None
        old, new = _in_force(before, start), _in_force(after, start)
        if old is None and new is None:
            continue
        if old is not None and new is not None and _content(old) == _content(new):
            continue
        present = [z for z in (old, new) if z is not None]
        minx, miny, maxx, maxy = shapely.total_bounds([z.geometry for z in present])
        reach = report_reach_m + max(z.boundary_uncertainty_m for z in present)
        bounds = widen_bounds((float(minx), float(miny), float(maxx), float(maxy)), reach)
        last = regions[-1] if regions else None
        if last is not None and last.end == start and last.bounds == bounds:
            regions[-1] = Region(last.start, end, bounds)  # one query for both periods
        else:
            regions.append(Region(start, end, bounds))
    return regions


# -- inside a store's zone-write transaction ----------------------------------------------------


class ZoneChangeRecords(IncidentRecords, Protocol):
    """What `follow_zone_changes` needs from a store, inside its zone-write transaction."""

    def effective_zones(self, zone_ids: Sequence[str]) -> dict[str, list[Zone]]:
        """The versions of these zones in force at some instant, with their effective
        validity, as the transaction sees them."""
        ...

    def uncertainty_reach(self) -> float:
        """At least the largest `uncertainty_m` of any stored report (metres)."""
        ...

    def reports_in(self, region: Region) -> list[tuple[str, str | None, str, datetime]]:
        """(party, unit, id, observed_at) of the reports (latest versions, retracted ones left
        out) observed in the region's period with their point in its box: found by index."""
        ...


def follow_zone_changes(
    records: ZoneChangeRecords, before: Mapping[str, Sequence[Zone]], now: datetime
) -> int:
    """Recompute the incidents a zone write can change, after the write, in its transaction.

    `before` holds each written zone's effective versions as they were before the write (none
    for a new zone). The units and unit-less reports with a report in a changed region are
    recomputed as a report write would (`keep_incidents`, from their earliest such report
    on): incidents still supported keep their ids, those no longer supported close with
    `close_reason` ``zone-changed``, and new ones open. Returns how many events were appended.
    """
    after = records.effective_zones(sorted(before))
    reach = records.uncertainty_reach()
    touched = Touched()
    for zone_id, old in before.items():
        for region in changed_regions(old, after.get(zone_id, []), reach):
            for party, unit, report_id, at in records.reports_in(region):
                touched.add_sighting(party, unit, report_id, at)
    return keep_incidents(records, touched, ZONE_CHANGED_CAUSE, now)
