"""The verdict rule of DESIGN.md applied to whole arrays of reports at once.

`ZoneIndex` is built once from every zone version. `check` takes a frame of reports and returns one
row per (report, zone in force) pair that is not `outside`: which zone, how deep, which verdict,
whether it is a violation. The work is per zone (a few hundred), never per report:

- candidates: reports whose time falls in the zone's validity and whose position lies in the zone's
  envelope widened by its warning distance and the largest uncertainty (a sorted-longitude slice
  and a latitude mask, no geometry objects);
- containment: `shapely.intersects_xy` on the prepared lon/lat polygon, which for a point is
  exactly `covers` (boundary counts as inside);
- depth: `ZoneBoundary.distance`, the geodesic distance to the boundary, pruned at the largest
  distance that can still change the verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import shapely

from app.depth import ZoneBoundary
from app.domain import Finding, Report, Verdict, Zone
from app.geodesy import Float, degree_margins

VERDICTS = np.array([v.value for v in Verdict], dtype=object)
INSIDE, POSSIBLE, APPROACHING, OUTSIDE = range(4)
NS_MAX = np.iinfo(np.int64).max

FINDING_COLUMNS = [
    "report",
    "report_id",
    "zone",
    "zone_id",
    "zone_version",
    "zone_name",
    "verdict",
    "violation",
    "depth_m",
    "party",
    "observed_at",
]


def _ns(at: datetime | None) -> int:
    return NS_MAX if at is None else int(pd.Timestamp(at).as_unit("ns").value)


def verdict_codes(depth_m: Float, uncertainty_m: Float, warning_m: Float) -> np.ndarray:
    """The rule's verdict for each depth, as indices into `VERDICTS`."""
    return np.select(
        [depth_m >= uncertainty_m, depth_m > -uncertainty_m, -depth_m <= warning_m],
        [INSIDE, POSSIBLE, APPROACHING],
        default=OUTSIDE,
    )


@dataclass(frozen=True, slots=True)
class _Reports:
    """The columns of a report frame that the rule needs, as plain arrays."""

    lon: Float
    lat: Float
    time_ns: np.ndarray
    uncertainty_m: Float
    party: np.ndarray
    ids: np.ndarray

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> _Reports:
        observed = pd.to_datetime(frame["observed_at"])
        if observed.dt.tz is None:
            raise ValueError("observed_at must be timezone-aware")
        observed = observed.dt.tz_convert("UTC")
        n = len(frame)
        uncertainty = (
            frame["uncertainty_m"].to_numpy(np.float64) if "uncertainty_m" in frame else np.zeros(n)
        )
        ids = (
            frame["id"].astype(str).to_numpy(object)
            if "id" in frame
            else np.arange(n).astype(str).astype(object)
        )
        return cls(
            lon=frame["lon"].to_numpy(np.float64),
            lat=frame["lat"].to_numpy(np.float64),
            time_ns=pd.DatetimeIndex(observed).as_unit("ns").asi8,
            uncertainty_m=uncertainty,
            party=frame["party"].astype(str).to_numpy(object),
            ids=ids,
        )


class ZoneIndex:
    """Every zone version, indexed for the verdict rule. Immutable: rebuild when zones change."""

    def __init__(self, zones: Sequence[Zone]) -> None:
        """Prepare each zone's polygon and boundary once."""
        self.zones: tuple[Zone, ...] = tuple(zones)
        self._geometries = np.array([z.geometry for z in self.zones], dtype=object)
        shapely.prepare(self._geometries)
        self._boundaries = [ZoneBoundary(z.geometry) for z in self.zones]
        self._bounds = shapely.bounds(self._geometries).reshape(-1, 4)
        self._valid_from = np.array([_ns(z.valid_from) for z in self.zones], dtype=np.int64)
        self._valid_to = np.array([_ns(z.valid_to) for z in self.zones], dtype=np.int64)
        self._ids = np.array([z.id for z in self.zones], dtype=object)
        self._names = np.array([z.name for z in self.zones], dtype=object)
        self._versions = np.array([z.version for z in self.zones], dtype=np.int64)
        self._warning = np.array([z.warning_distance_m for z in self.zones], dtype=np.float64)
        self._authorized = [np.array(sorted(z.authorized_parties), object) for z in self.zones]

    def __len__(self) -> int:
        return len(self.zones)

    def check(self, reports: pd.DataFrame, *, include_outside: bool = False) -> pd.DataFrame:
        """Findings for every report against every zone in force at its `observed_at`.

        `reports` needs columns `lon`, `lat`, `observed_at` (timezone-aware) and `party`;
        `uncertainty_m` (default 0) and `id` (default: the row position) are optional. With
        `include_outside`, every in-force pair is returned, `outside` ones included.
        """
        r = _Reports.from_frame(reports)
        by_lon = np.argsort(r.lon, kind="stable")
        lon_sorted = r.lon[by_lon]
        max_u = float(r.uncertainty_m.max(initial=0.0))
        parts = [
            self._check_zone(j, r, by_lon, lon_sorted, max_u, include_outside)
            for j in range(len(self.zones))
        ]
        report_idx = np.concatenate([p[0] for p in parts] or [np.empty(0, np.int64)])
        zone_idx = np.concatenate(
            [np.full(len(p[0]), j) for j, p in enumerate(parts)] or [np.empty(0, np.int64)]
        )
        depth = np.concatenate([p[1] for p in parts] or [np.empty(0)])
        verdict = np.concatenate([p[2] for p in parts] or [np.empty(0, np.int64)])
        violation = np.concatenate([p[3] for p in parts] or [np.empty(0, bool)])
        order = np.lexsort((zone_idx, report_idx))
        report_idx, zone_idx = report_idx[order], zone_idx[order].astype(np.int64)
        return pd.DataFrame(
            {
                "report": report_idx,
                "report_id": r.ids[report_idx],
                "zone": zone_idx,
                "zone_id": self._ids[zone_idx],
                "zone_version": self._versions[zone_idx],
                "zone_name": self._names[zone_idx],
                "verdict": VERDICTS[verdict[order].astype(np.int64)],
                "violation": violation[order].astype(bool),
                "depth_m": depth[order],
                "party": r.party[report_idx],
                "observed_at": pd.to_datetime(r.time_ns[report_idx], utc=True),
            },
            columns=FINDING_COLUMNS,
        )

    def _check_zone(
        self,
        j: int,
        r: _Reports,
        by_lon: np.ndarray,
        lon_sorted: Float,
        max_u: float,
        include_outside: bool,
    ) -> tuple[np.ndarray, Float, np.ndarray, np.ndarray]:
        """(report indices, depths, verdict codes, violations) for zone `j`."""
        if include_outside:
            idx = np.arange(len(r.lon))
        else:
            idx = self._near_envelope(j, by_lon, lon_sorted, max_u, r.lat)
        t = r.time_ns[idx]
        idx = idx[(t >= self._valid_from[j]) & (t < self._valid_to[j])]
        lon, lat, u = r.lon[idx], r.lat[idx], r.uncertainty_m[idx]
        covered = shapely.intersects_xy(self._geometries[j], lon, lat)
        depth = np.empty(len(idx))
        boundary = self._boundaries[j]
        depth[covered] = boundary.distance(lon[covered], lat[covered])
        outside = ~covered
        limit = np.inf if include_outside else max(self._warning[j], max_u)
        depth[outside] = -boundary.distance(lon[outside], lat[outside], limit)
        verdict = verdict_codes(depth, u, np.full(len(idx), self._warning[j]))
        keep = np.ones(len(idx), bool) if include_outside else verdict != OUTSIDE
        idx, depth, verdict = idx[keep], depth[keep], verdict[keep]
        unauthorized = ~np.isin(r.party[idx], self._authorized[j])
        violation = unauthorized & (verdict <= POSSIBLE)
        return idx, depth, verdict, violation

    def _near_envelope(
        self, j: int, by_lon: np.ndarray, lon_sorted: Float, max_u: float, lat: Float
    ) -> np.ndarray:
        """Reports within the zone's envelope widened by everything that can change a verdict."""
        minx, miny, maxx, maxy = self._bounds[j]
        dlon, dlat = degree_margins(
            float(self._warning[j]) + max_u, max(abs(float(miny)), abs(float(maxy)))
        )
        if minx - dlon < -180.0 or maxx + dlon > 180.0:  # the widened envelope wraps around
            idx = np.arange(len(lat))
        else:
            lo = np.searchsorted(lon_sorted, minx - dlon, side="left")
            hi = np.searchsorted(lon_sorted, maxx + dlon, side="right")
            idx = by_lon[lo:hi]
        inside: np.ndarray = idx[(lat[idx] >= miny - dlat) & (lat[idx] <= maxy + dlat)]
        return inside

    def findings(
        self, reports: Sequence[Report], *, include_outside: bool = False
    ) -> list[Finding]:
        """`check` for domain reports, as domain findings."""
        rows = self.check(reports_frame(reports), include_outside=include_outside)
        return self.as_findings(rows, reports)

    def as_findings(self, rows: pd.DataFrame, reports: Sequence[Report]) -> list[Finding]:
        """Rows of `check` (run on `reports_frame(reports)`) as domain findings."""
        columns = (rows[c].tolist() for c in ("report", "zone", "verdict", "violation", "depth_m"))
        found = []
        for i, j, verdict, violation, depth in zip(*columns, strict=True):
            report, zone = reports[i], self.zones[j]
            found.append(
                Finding(
                    report_id=report.id,
                    zone_id=zone.id,
                    zone_name=zone.name,
                    verdict=Verdict(verdict),
                    violation=bool(violation),
                    depth_m=float(depth),
                    party=report.party,
                    observed_at=report.observed_at,
                    lon=report.lon,
                    lat=report.lat,
                )
            )
        return found


def reports_frame(reports: Iterable[Report]) -> pd.DataFrame:
    """The input frame of `ZoneIndex.check` built from domain reports."""
    reports = list(reports)
    return pd.DataFrame(
        {
            "id": [r.id for r in reports],
            "lon": np.array([r.lon for r in reports], dtype=np.float64),
            "lat": np.array([r.lat for r in reports], dtype=np.float64),
            "observed_at": pd.to_datetime([r.observed_at for r in reports], utc=True),
            "uncertainty_m": np.array([r.uncertainty_m for r in reports], dtype=np.float64),
            "party": [r.party for r in reports],
            "unit": [r.unit for r in reports],
        }
    )
