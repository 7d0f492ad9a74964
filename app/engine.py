"""The verdict rule of docs/rule.md applied to whole arrays of reports at once.

`ZoneIndex` is built once from every zone version. `check` takes a frame of reports and returns one
row per (report, zone in force) pair that is not `outside`: which zone, how deep, which verdict,
whether it is a violation. `judge` does the same on an `app.batch.ReportBatch`'s columns,
without pandas, for hot paths. The work is per zone (a few hundred), never per report:

- candidates: reports whose time falls in the zone's validity and whose position lies in the zone's
  envelope widened by its warning distance and the largest uncertainty (a sorted-longitude slice
  and a latitude mask, no geometry objects);
- containment: `shapely.intersects_xy` on the prepared lon/lat polygon, which for a point is
  exactly `covers` (boundary counts as inside);
- depth: `ZoneBoundary.distance`, the geodesic distance to the boundary, pruned at the largest
  distance that can still change the verdict.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import shapely
from shapely.geometry import MultiPolygon, Polygon

from app.batch import ReportBatch
from app.depth import ZoneBoundary
from app.domain import Finding, Report, Verdict, Zone
from app.geodesy import Float, UnjudgeableZone, expanded_bounds

log = logging.getLogger("truce.engine")

VERDICTS = np.array([v.value for v in Verdict], dtype=object)
INSIDE, POSSIBLE, APPROACHING, OUTSIDE = range(4)
NS_MAX = np.iinfo(np.int64).max
_TINY = float(np.finfo(np.float64).smallest_subnormal)
# Below this many reports × zones, one boolean mask finds the candidates faster than sorting.
SMALL_BATCH_CELLS = 1_000_000
# Below this many (report, zone) candidates, threads cost more than they save.
PARALLEL_MIN_PAIRS = 20_000

#: What a finding says, as the files and the API write it (and `Finding` holds it).
FINDING_FIELDS = (
    "report_id",
    "zone_id",
    "zone_name",
    "verdict",
    "violation",
    "depth_m",
    "party",
    "observed_at",
)
#: The columns of `ZoneIndex.check`: `FINDING_FIELDS` with the report's and zone's positions in
#: the inputs, and the zone version.
FINDING_COLUMNS = ["report", "report_id", "zone", "zone_id", "zone_version", *FINDING_FIELDS[2:]]


def _ns(at: datetime | None) -> int:
    return NS_MAX if at is None else int(pd.Timestamp(at).as_unit("ns").value)


def verdict_codes(depth_m: Float, uncertainty_m: Float, warning_m: Float) -> np.ndarray:
    """The rule's verdict for each depth, as indices into `VERDICTS`."""
    return np.select(
        [depth_m >= uncertainty_m, depth_m > -uncertainty_m, -depth_m <= warning_m],
        [INSIDE, POSSIBLE, APPROACHING],
        default=OUTSIDE,
    )


def verdict_code(depth_m: float, uncertainty_m: float, warning_m: float) -> int:
    """`verdict_codes` for one depth, on Python floats."""
    if depth_m >= uncertainty_m:
        return INSIDE
    if depth_m > -uncertainty_m:
        return POSSIBLE
    return APPROACHING if -depth_m <= warning_m else OUTSIDE


@dataclass(frozen=True, slots=True)
class Judged:
    """Findings as parallel arrays, ordered by report then zone: the engine's own answer.

    `report` are row positions in the input, `zone` positions in `ZoneIndex.zones`.
    """

    report: np.ndarray
    zone: np.ndarray
    depth_m: Float
    verdict: np.ndarray  # verdict names, as in `VERDICTS`
    violation: np.ndarray

    def __len__(self) -> int:
        return len(self.report)

    def select(self, keep: np.ndarray) -> Judged:
        """The findings where `keep` (a boolean mask) holds."""
        return Judged(
            self.report[keep],
            self.zone[keep],
            self.depth_m[keep],
            self.verdict[keep],
            self.violation[keep],
        )


def _no_findings() -> Judged:
    none = np.empty(0, np.int64)
    return Judged(none, none.copy(), np.empty(0), VERDICTS[none], np.empty(0, bool))


@dataclass(frozen=True, slots=True)
class SetAside:
    """A zone version the index could not prepare, and why: it takes part in no check."""

    zone_id: str
    version: int
    reason: str


def _prepare(zone: Zone) -> ZoneBoundary:
    """The zone's boundary, after checking everything else the index reads from it."""
    if not isinstance(zone.geometry, Polygon | MultiPolygon) or zone.geometry.is_empty:
        raise UnjudgeableZone(f"not a polygon or multipolygon: {zone.geometry.geom_type}")
    if not np.isfinite(shapely.get_coordinates(zone.geometry)).all():
        raise UnjudgeableZone("the geometry has coordinates that are not finite numbers")
    # The index keeps both times as nanoseconds: a time out of that range fails here, not later.
    _ns(zone.valid_from)
    _ns(zone.valid_to)
    return ZoneBoundary(zone.geometry)


class ZoneIndex:
    """Every zone version, indexed for the verdict rule. Immutable: rebuild when zones change."""

    def __init__(self, zones: Sequence[Zone], *, threads: int | None = None) -> None:
        """Prepare each zone's polygon and boundary once; `threads` work on zones in parallel.

        A zone that cannot be prepared (validation refuses such zones, but a store may hold one
        written before that or by hand) is set aside: logged, listed in `set_aside`, and left
        out, so that it can stop neither start-up nor any other zone's checks.
        """
        kept: list[Zone] = []
        self._boundaries: list[ZoneBoundary] = []
        set_aside: list[SetAside] = []
        for zone in zones:
            try:
                boundary = _prepare(zone)
            except Exception as exc:  # any failure of one zone must not take the others down
                reason = str(exc) or type(exc).__name__
                set_aside.append(SetAside(str(zone.id), zone.version, reason))
                log.error("zone %r version %s set aside: %s", zone.id, zone.version, reason)
                continue
            kept.append(zone)
            self._boundaries.append(boundary)
        self.zones: tuple[Zone, ...] = tuple(kept)
        self.set_aside: tuple[SetAside, ...] = tuple(set_aside)
        self._threads = threads or min(4, os.cpu_count() or 1)
        self._geometries = np.array([z.geometry for z in self.zones], dtype=object)
        shapely.prepare(self._geometries)
        self._bounds = shapely.bounds(self._geometries).reshape(-1, 4)
        self._extent = (
            *self._bounds[:, :2].min(axis=0, initial=np.inf).tolist(),
            *self._bounds[:, 2:].max(axis=0, initial=-np.inf).tolist(),
        )
        self._valid_from = np.array([_ns(z.valid_from) for z in self.zones], dtype=np.int64)
        self._valid_to = np.array([_ns(z.valid_to) for z in self.zones], dtype=np.int64)
        self.zone_ids = np.array([z.id for z in self.zones], dtype=object)
        self.zone_names = np.array([z.name for z in self.zones], dtype=object)
        self._versions = np.array([z.version for z in self.zones], dtype=np.int64)
        self._warning = np.array([z.warning_distance_m for z in self.zones], dtype=np.float64)
        # Added to every report's uncertainty in the zone's verdicts (docs/rule.md).
        self.boundary_uncertainty_m = np.array(
            [z.boundary_uncertainty_m for z in self.zones], dtype=np.float64
        )
        self._authorized = [np.array(sorted(z.authorized_parties), object) for z in self.zones]
        self._allowed = [frozenset(z.authorized_parties) for z in self.zones]
        self._last_boxes: tuple[float, Float, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.zones)

    def check(self, reports: pd.DataFrame, *, include_outside: bool = False) -> pd.DataFrame:
        """Findings for every report against every zone in force at its `observed_at`.

        `reports` needs columns `lon`, `lat`, `observed_at` (timezone-aware) and `party`;
        `uncertainty_m` (default 0) and `id` (default: the row position) are optional. With
        `include_outside`, every in-force pair is returned, `outside` ones included.
        """
        r = ReportBatch.from_frame(reports)
        return self._frame(r, self.judge(r, include_outside=include_outside))

    def judge(self, r: ReportBatch, *, include_outside: bool = False) -> Judged:
        """`check` on a batch's columns, as positions into it: no pandas, for hot paths."""
        max_u = float(r.uncertainty_m.max(initial=0.0))
        if len(r.lon) == 1:
            zones = np.flatnonzero(self._near(r, max_u, include_outside)[:, 0])
            return self._judge_one(r, zones.tolist(), include_outside)
        work = self._candidates(r, max_u, include_outside)

        def judge_zone(item: tuple[int, np.ndarray]) -> tuple[np.ndarray, ...]:
            return self._judge_zone(item[0], item[1], r, max_u, include_outside)

        if sum(len(idx) for _, idx in work) >= PARALLEL_MIN_PAIRS and self._threads > 1:
            # shapely, pyproj, pykdtree and numpy release the GIL in their array calls.
            with ThreadPoolExecutor(self._threads) as pool:
                parts = list(pool.map(judge_zone, work))
        else:
            parts = [judge_zone(item) for item in work]
        if not parts:
            return _no_findings()
        report, zone, depth, verdict, violation = (
            np.concatenate(column) for column in zip(*parts, strict=True)
        )
        order = np.lexsort((zone, report))
        return Judged(
            report[order],
            zone[order],
            depth[order],
            VERDICTS[verdict[order]],
            violation[order],
        )

    def swapped(
        self, reports: ReportBatch, judged_reports: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Reports with no finding whose (lat, lon), read as (lon, lat), lies in a zone in force.

        A swap is the commonest coordinate error and would hide an incursion. `judged_reports` are
        the reports that have a finding (`Judged.report`). Returns those reports and, for each,
        the first zone its exchanged position lies in.
        """
        far = np.ones(len(reports), dtype=bool)
        far[judged_reports] = False
        if not far.any():
            return judged_reports[:0], judged_reports[:0]
        exchanged = reports.swapped()
        x, y = exchanged.lon, exchanged.lat
        minx, miny, maxx, maxy = self._extent
        candidates = np.flatnonzero(
            far & (x != y) & (x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy)
        )
        if not len(candidates):
            return candidates, candidates
        near = exchanged.take(candidates)
        near.uncertainty_m = np.zeros(len(candidates))  # where it would lie, not where it may
        found = self.judge(near)
        found = found.select(found.depth_m >= 0.0)
        first = np.unique(found.report, return_index=True)[1]
        return candidates[found.report[first]], found.zone[first]

    def _candidates(
        self, r: ReportBatch, max_u: float, include_outside: bool
    ) -> list[tuple[int, np.ndarray]]:
        """(zone, reports) for each zone in force whose verdict some of the reports can change."""
        n = len(r.lon)
        if n * len(self.zones) <= SMALL_BATCH_CELLS:
            zone, report = np.nonzero(self._near(r, max_u, include_outside))  # by zone, then report
            if not len(zone):
                return []
            starts = np.flatnonzero(np.diff(zone, prepend=-1))
            return list(zip(zone[starts].tolist(), np.split(report, starts[1:]), strict=True))
        found = []
        if include_outside:  # every report in force, near or not
            t = r.time_ns
            for j in range(len(self.zones)):
                idx = np.flatnonzero((t >= self._valid_from[j]) & (t < self._valid_to[j]))
                if len(idx):
                    found.append((j, idx))
            return found
        # Many reports: each zone takes a slice of the reports sorted by longitude.
        boxes, wraps = self._boxes(max_u)
        by_lon = np.argsort(r.lon)
        lon_sorted = r.lon[by_lon]
        lo = np.searchsorted(lon_sorted, boxes[:, 0], side="left")
        hi = np.searchsorted(lon_sorted, boxes[:, 2], side="right")
        for j in range(len(self.zones)):
            idx = np.arange(n) if wraps[j] else by_lon[lo[j] : hi[j]]
            t = r.time_ns[idx]
            keep = (r.lat[idx] >= boxes[j, 1]) & (r.lat[idx] <= boxes[j, 3])
            keep &= (t >= self._valid_from[j]) & (t < self._valid_to[j])
            if keep.any():
                found.append((j, idx[keep]))
        return found

    def _near(self, r: ReportBatch, max_u: float, include_outside: bool) -> np.ndarray:
        """A (zone × report) mask of the candidates of `_candidates`, for a few reports (it
        takes zones × reports bytes)."""
        t = r.time_ns[None, :]
        mask: np.ndarray = (t >= self._valid_from[:, None]) & (t < self._valid_to[:, None])
        if not include_outside:
            boxes, wraps = self._boxes(max_u)
            lon, lat = r.lon[None, :], r.lat[None, :]
            mask &= (lon >= boxes[:, 0:1]) & (lon <= boxes[:, 2:3]) | wraps[:, None]
            mask &= (lat >= boxes[:, 1:2]) & (lat <= boxes[:, 3:4])
        return mask

    def _boxes(self, max_u: float) -> tuple[Float, np.ndarray]:
        """Zone envelopes widened by warning distance + boundary uncertainty + `max_u`, and
        which wrap around ±180°.

        The last answer is kept: single checks mostly come with the same uncertainty.
        """
        last = self._last_boxes
        if last is not None and last[0] == max_u:
            return last[1], last[2]
        boxes = expanded_bounds(self._bounds, self._warning + self.boundary_uncertainty_m + max_u)
        # A box that wraps around the antimeridian takes every longitude: rare, and still right.
        wraps = (boxes[:, 0] < -180.0) | (boxes[:, 2] > 180.0)
        self._last_boxes = (max_u, boxes, wraps)
        return boxes, wraps

    def _judge_one(self, r: ReportBatch, zones: list[int], include_outside: bool) -> Judged:
        """`judge` of one report against its candidate `zones`, on Python floats.

        A lone check is the API's hot path, where numpy's fixed cost per call on arrays of one
        would be most of the time. The rule is the one of `_judge_zone` (tests hold the two paths
        to the same answers).
        """
        lon, lat = float(r.lon[0]), float(r.lat[0])
        report_u, party = float(r.uncertainty_m[0]), r.party[0]
        found = []
        for j in zones:
            warning = float(self._warning[j])
            u = report_u + float(self.boundary_uncertainty_m[j])
            covered = shapely.intersects_xy(self._geometries[j], lon, lat)
            limit = math.inf if covered or include_outside else max(warning, u)
            away = self._boundaries[j].distance_one(lon, lat, limit)
            # Not covered is strictly outside, even one ulp away where the distance rounds to 0.
            depth = away if covered else -max(away, _TINY)
            code = verdict_code(depth, u, warning)
            if code != OUTSIDE or include_outside:
                violation = code <= POSSIBLE and party not in self._allowed[j]
                found.append((j, depth, code, violation))
        if not found:
            return _no_findings()
        zones_found, depths, codes, violations = (list(c) for c in zip(*found, strict=True))
        return Judged(
            np.zeros(len(found), np.int64),
            np.array(zones_found, np.int64),
            np.array(depths, np.float64),
            VERDICTS[codes],
            np.array(violations, bool),
        )

    def _judge_zone(
        self, j: int, idx: np.ndarray, r: ReportBatch, max_u: float, include_outside: bool
    ) -> tuple[np.ndarray, ...]:
        """(report indices, zone indices, depths, verdict codes, violations) for zone `j`."""
        lon, lat = r.lon[idx], r.lat[idx]
        # u per (report, zone) pair: the report's own plus the zone's boundary uncertainty.
        boundary_u = float(self.boundary_uncertainty_m[j])
        u = r.uncertainty_m[idx] + boundary_u
        covered = shapely.intersects_xy(self._geometries[j], lon, lat)
        depth = np.empty(len(idx))
        boundary = self._boundaries[j]
        depth[covered] = boundary.distance(lon[covered], lat[covered])
        outside = ~covered
        limit = np.inf if include_outside else max(self._warning[j], max_u + boundary_u)
        # Not covered is strictly outside, even one ulp away where the distance rounds to 0 m.
        away = boundary.distance(lon[outside], lat[outside], limit)
        depth[outside] = -np.maximum(away, _TINY)
        verdict = verdict_codes(depth, u, np.full(len(idx), self._warning[j]))
        keep = np.ones(len(idx), bool) if include_outside else verdict != OUTSIDE
        idx, depth, verdict = idx[keep], depth[keep], verdict[keep]
        unauthorized = ~np.isin(r.party[idx], self._authorized[j])
        violation = unauthorized & (verdict <= POSSIBLE)
        return idx, np.full(len(idx), j), depth, verdict, violation.astype(bool)

    def _frame(self, r: ReportBatch, judged: Judged) -> pd.DataFrame:
        """The findings frame of `check`."""
        report, zone = judged.report, judged.zone
        return pd.DataFrame(
            {
                "report": report,
                "report_id": r.report_ids(report).astype(str).astype(object),
                "zone": zone,
                "zone_id": self.zone_ids[zone],
                "zone_version": self._versions[zone],
                "zone_name": self.zone_names[zone],
                "verdict": judged.verdict,
                "violation": judged.violation,
                "depth_m": judged.depth_m,
                "party": r.party[report],
                "observed_at": pd.to_datetime(r.time_ns[report], utc=True),
            },
            columns=FINDING_COLUMNS,
        )

    def findings(
        self, reports: Sequence[Report], *, include_outside: bool = False
    ) -> list[Finding]:
        """Findings for domain reports, as domain `Finding` objects.

        Part of the Python API for scripts and notebooks (the service and the command line use
        `judge` and `check` on columns instead): `check` for a few reports, one object each.
        """
        rows = self.check(
            ReportBatch.from_reports(reports).frame(), include_outside=include_outside
        )
        return self.as_findings(rows, reports)

    def as_findings(self, rows: pd.DataFrame, reports: Sequence[Report]) -> list[Finding]:
        """Rows of `check` (run on `reports`, in that order) as domain findings (Python API)."""
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
