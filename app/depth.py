"""Geodesic distance from many points to one zone's boundary, in metres on WGS84.

The boundary is made of straight lon/lat edges (RFC 7946), densified so that each is nearly
straight in the zone's local stereographic projection. For every point we

1. project it and take the segments of the K boundary samples nearest to it (a KD-tree over points
   sampled along the boundary);
2. put the foot of the planar perpendicular on the best segment back on the *lon/lat* segment and
   measure the exact geodesic (Karney) to it: a distance to a real boundary point, never shorter
   than the truth and longer only to second order in the planar error (well under a centimetre);
   other candidates are measured too when the projection's distortion (`scale_spread`) leaves
   them a chance to be nearer;
3. prove that no segment outside the candidates can be nearer by more than the tolerance: such a
   segment has no sample among the K, so its chord lies at least sqrt(d_K² − h²/4) away, h being
   the sample spacing. The few points this does not settle ask for more samples, and the fewer
   still unsettled get an exact R-tree search of every segment within reach.

All of it works on whole arrays of points; nothing loops over points in Python.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from app.geodesy import (
    GEOD,
    MIN_RADIUS_M,
    Float,
    UnjudgeableZone,
    boundary_segments,
    local_projection,
    scale_spread,
    subdivide,
    zone_reach,
)


@contextmanager
def _omp_threads_unless_chosen(threads: str) -> Iterator[None]:
    """Set `OMP_NUM_THREADS` for the block only, unless the user set it; then put it back."""
    chosen = os.environ.get("OMP_NUM_THREADS")
    if chosen is None:
        os.environ["OMP_NUM_THREADS"] = threads
    try:
        yield
    finally:
        if chosen is None:
            os.environ.pop("OMP_NUM_THREADS", None)


# pykdtree parallelises every query with OpenMP; for the per-zone batches here the team's start-up
# costs more than it saves (6x slower on a loaded 2-core machine), and the engine already spreads
# zones over threads. pykdtree carries its own copy of libgomp, which reads OMP_NUM_THREADS once,
# when it is loaded: so one thread is asked for during the import only, and the user's environment
# (and every other OpenMP library) is left as it was. An OMP_NUM_THREADS the user set still wins;
# so does whatever pykdtree started with if something imported it before this module.
with _omp_threads_unless_chosen("1"):
    from pykdtree.kdtree import KDTree

# Nearest samples asked of the KD-tree: a few for every point, more for the few points those do
# not settle; what is still unsettled gets an exact R-tree search of the segments within reach.
NEIGHBOURS = (8, 48)
# Spacing (m) of the sample points indexed along segments: any point of a segment is within half
# of it of an indexed sample, which bounds how much closer a segment not found can be. Most
# segments are shorter (their ends are samples); the few long ones are cut to the usual length.
MAX_SAMPLE_SPACING_M = 200.0
MIN_SAMPLE_SPACING_M = 5.0
# Planar slack (m) for chords standing in for the slightly curved projected edges (0.01° chords
# stay within millimetres to centimetres of their curve).
CHORD_SLACK_M = 0.05


def tolerance_m(distance_m: Float | float) -> Float:
    """Half the contract's tolerance, max(0.5 m, 0.1 %): what a segment left unmeasured may cost."""
    return np.asarray(0.5 * np.maximum(0.5, 1e-3 * distance_m), dtype=np.float64)


class ZoneBoundary:
    """One zone's boundary, ready to measure geodesic distances from many points at once."""

    def __init__(self, geometry: BaseGeometry) -> None:
        """Project the densified boundary segments once and index points sampled along them.

        Raises:
            UnjudgeableZone: the zone reaches too far from its centre (`zone_reach`), or its
                boundary does not project to finite, distinct points.
        """
        reach = zone_reach(geometry)
        if not reach.judgeable:
            raise UnjudgeableZone(reach.reason())
        segments = boundary_segments(geometry)
        self.start_ll, self.end_ll = segments.start, segments.end
        self.centre = reach.centre
        self._to_plane = local_projection(*self.centre)
        self.start_xy, self.end_xy = self._project_segments(self.start_ll, self.end_ll)
        if not self.size or not (
            np.isfinite(self.start_xy).all() and np.isfinite(self.end_xy).all()
        ):
            # Within the reach this cannot happen; a failure here must still name itself.
            raise UnjudgeableZone("the zone's boundary does not project to finite points")
        # Segments as components, for `_planar` (a zero-length segment divides by 1: t = 0).
        self._ax, self._ay = self.start_xy.T
        self._abx, self._aby = (self.end_xy - self.start_xy).T
        ab2 = self._abx**2 + self._aby**2
        self._ab2 = np.where(ab2 > 0, ab2, 1.0)
        lengths = np.hypot(self._abx, self._aby)
        usual = np.percentile(lengths, 90) if len(lengths) else 0.0
        self.spacing = float(np.clip(usual, MIN_SAMPLE_SPACING_M, MAX_SAMPLE_SPACING_M))
        pieces = np.maximum(1, np.ceil(lengths / self.spacing)).astype(np.int64)
        # Samples at t = 0, 1/n, …, 1 on every segment, both ends included, each naming its own
        # segment: a segment none of whose samples is among the K nearest is then provably far.
        first, last, owner = subdivide(self.start_xy, self.end_xy, pieces)
        self._sample_segment = np.concatenate([owner, owner])
        self._samples = KDTree(np.ascontiguousarray(np.concatenate([first, last])))

    def _project_segments(self, start: Float, end: Float) -> tuple[Float, Float]:
        """Project segment ends, once for each vertex that ends one segment and starts the next."""
        start_xy = self._project(start)
        end_xy = np.empty_like(start_xy)
        follows = np.append(np.all(end[:-1] == start[1:], axis=1), False)
        end_xy[follows] = start_xy[1:][follows[:-1]]
        end_xy[~follows] = self._project(end[~follows])
        return start_xy, end_xy

    @property
    def size(self) -> int:
        """Number of boundary segments."""
        return len(self.start_ll)

    def _project(self, lonlat: Float) -> Float:
        x, y = self._to_plane.transform(lonlat[:, 0], lonlat[:, 1])
        return np.column_stack([x, y])

    def distance(self, lon: Float, lat: Float, limit_m: float = np.inf) -> Float:
        """Geodesic distance (m) from each point to the boundary.

        Points farther than `limit_m` may get any value greater than `limit_m` (often inf): the
        caller only needs to know they are beyond it, and the search is pruned there.
        """
        result = np.full(len(lon), np.inf)
        if len(lon) == 0 or self.size == 0:
            return result
        xy = self._project(np.column_stack([lon, lat]))
        centre_angle = np.hypot(xy[:, 0], xy[:, 1]) / MIN_RADIUS_M  # ρ ≥ R·c in stereographic
        bound = self._search_bound(float(centre_angle.max()), limit_m)
        todo = np.arange(len(lon))
        for k in NEIGHBOURS:
            found, proven = self._nearest_samples(
                lon[todo], lat[todo], xy[todo], centre_angle[todo], bound, k
            )
            result[todo] = found
            todo = todo[~proven]
            if not len(todo):
                return result
        found = result[todo]
        nearer = self._within_reach(lon[todo], lat[todo], xy[todo], centre_angle[todo], found)
        result[todo] = np.minimum(found, nearer)
        return result

    def distance_one(self, lon: float, lat: float, limit_m: float = math.inf) -> float:
        """`distance` for one point: the same steps on Python floats and tiny arrays.

        A lone check is the API's hot path, where numpy's fixed cost per call on arrays of one
        would be most of the time (tests hold it to `distance`).
        """
        if self.size == 0:
            return math.inf
        x, y = self._to_plane.transform(lon, lat)
        xy = np.array([[x, y]])
        centre_angle = math.hypot(x, y) / MIN_RADIUS_M
        bound = self._search_bound(centre_angle, limit_m)
        samples = len(self._sample_segment)
        for neighbours in NEIGHBOURS:
            k = min(neighbours, samples)
            sample_dist, sample = self._samples.query(xy, k=k, distance_upper_bound=bound)
            sample, d_k = sample.reshape(k), float(sample_dist.reshape(k)[-1])
            cand = self._sample_segment[sample[sample < samples]]
            result = self._measure_one(lon, lat, x, y, centre_angle, cand)
            if k == samples or math.isinf(d_k) or self._unbeaten(d_k, centre_angle, result):
                return result
        nearer = self._within_reach(
            np.array([lon]), np.array([lat]), xy, np.array([centre_angle]), np.array([result])
        )
        return min(result, float(nearer[0]))

    def _measure_one(
        self, lon: float, lat: float, x: float, y: float, centre_angle: float, cand: np.ndarray
    ) -> float:
        """`_measure` for one point ((x, y) in the plane) and its candidate segments."""
        if not len(cand):
            return math.inf
        planar, t = self._planar(x, y, cand)
        best = int(np.argmin(planar))
        seg = int(cand[best])
        start, end, at = self.start_ll[seg], self.end_ll[seg], float(t[best])
        foot = start + at * (end - start)
        # Rounding may put a foot on an edge ending at a pole an ulp past it: Geod answers NaN.
        result = float(GEOD.inv(lon, lat, foot[0], min(max(foot[1], -90.0), 90.0))[2])
        chance = self._could_beat(planar, float(planar[best]), centre_angle, result)
        chance[best] = False
        if chance.any():
            n = int(chance.sum())
            other = self._geodesic(np.full(n, lon), np.full(n, lat), cand[chance], t[chance])
            result = min(result, float(other.min()))
        return result

    def _nearest_samples(
        self, lon: Float, lat: Float, xy: Float, centre_angle: Float, bound: float, k: int
    ) -> tuple[Float, np.ndarray]:
        """Distance through the segments of the k nearest samples, and whether that is proven."""
        n, k = len(lon), min(k, len(self._sample_segment))
        sample_dist, sample = self._samples.query(
            np.ascontiguousarray(xy), k=k, distance_upper_bound=bound
        )
        sample_dist, sample = sample_dist.reshape(n, k), sample.reshape(n, k).astype(np.int64)
        found = sample < len(self._sample_segment)
        cand = np.where(found, self._sample_segment[np.where(found, sample, 0)], -1)
        result = self._measure(lon, lat, xy, centre_angle, cand)
        # No sample within the pruning bound: every segment is beyond the limit.
        d_k = sample_dist[:, -1]
        proven = (k == len(self._sample_segment)) | np.isinf(d_k)
        proven |= self._unbeaten(d_k, centre_angle, result)
        return result, proven

    def _search_bound(self, centre_angle: float, limit_m: float) -> float:
        """The planar radius beyond which no sample can be within `limit_m` on the ellipsoid."""
        if not math.isfinite(limit_m):
            return math.inf
        reach = limit_m * float(scale_spread(centre_angle + 2 * limit_m / MIN_RADIUS_M))
        return reach + self.spacing / 2 + CHORD_SLACK_M

    def _unbeaten(
        self, d_k: Float | float, centre_angle: Float | float, result: Float | float
    ) -> np.ndarray | np.bool_:
        """Whether no segment without a sample among the k nearest can beat `result`.

        Such a segment lies at least sqrt(d_k² − h²/4) away in the plane (d_k: the k-th sample's
        distance, h: the sample spacing), and at least that over the worst scale on the
        ellipsoid; if that cannot beat the result by more than the tolerance, the result stands.
        Floats or arrays alike (the one-point and the array paths).
        """
        planar_floor = np.sqrt(np.maximum(d_k**2 - self.spacing**2 / 4, 0.0)) - CHORD_SLACK_M
        with np.errstate(invalid="ignore"):
            spread = scale_spread(centre_angle + 2 * np.minimum(d_k, 1e9) / MIN_RADIUS_M)
            return planar_floor / spread >= result - tolerance_m(result)

    @staticmethod
    def _could_beat(
        planar: Float, best: Float | float, centre_angle: Float | float, result: Float | float
    ) -> np.ndarray:
        """Which candidates, `planar` away in the plane, could beat `result` on the ellipsoid.

        The scale between the point and a candidate nearer than the best planar one is at most
        that of the disc out to the best; shapes broadcast (one point, or points × candidates).
        """
        spread = scale_spread(centre_angle + 2 * np.minimum(best, 1e9) / MIN_RADIUS_M)
        with np.errstate(invalid="ignore"):
            chance: np.ndarray = planar / spread < result - tolerance_m(result)
        return chance

    @cached_property
    def _segment_tree(self) -> shapely.STRtree:
        """The projected segments in an R-tree; built on first need (most zones never need it)."""
        return shapely.STRtree(shapely.linestrings(np.stack([self.start_xy, self.end_xy], axis=1)))

    def _within_reach(
        self, lon: Float, lat: Float, xy: Float, centre_angle: Float, found: Float
    ) -> Float:
        """Distance through every segment that could beat `found` by more than the tolerance."""
        spread = scale_spread(centre_angle + 2 * found / MIN_RADIUS_M)
        reach = (found - tolerance_m(found)) * spread + CHORD_SLACK_M
        point, seg = self._segment_tree.query(
            shapely.points(xy), predicate="dwithin", distance=reach
        )
        order = np.argsort(point, kind="stable")
        point, seg = point[order], seg[order]
        counts = np.bincount(point, minlength=len(lon))
        cand = np.full((len(lon), max(int(counts.max(initial=0)), 1)), -1, dtype=np.int64)
        cand[point, np.arange(len(point)) - np.repeat(np.cumsum(counts) - counts, counts)] = seg
        return self._measure(lon, lat, xy, centre_angle, cand)

    def _measure(
        self, lon: Float, lat: Float, xy: Float, centre_angle: Float, cand: np.ndarray
    ) -> Float:
        """Geodesic distance to the nearest of each point's candidate segments (−1: none).

        The planar best is measured exactly on the ellipsoid; another candidate is measured too
        only when the projection's distortion leaves it a chance to be nearer by more than the
        tolerance.
        """
        planar, t = self._planar(xy[:, 0:1], xy[:, 1:2], np.maximum(cand, 0))
        planar[cand < 0] = np.inf
        best = np.argmin(planar, axis=1)
        rows = np.arange(len(lon))
        result = np.full(len(lon), np.inf)
        has_any = np.isfinite(planar[rows, best])
        result[has_any] = self._geodesic(
            lon[has_any], lat[has_any], cand[has_any, best[has_any]], t[has_any, best[has_any]]
        )
        chance = self._could_beat(
            planar, planar[rows, best][:, None], centre_angle[:, None], result[:, None]
        )
        chance[rows, best] = False
        point, which = np.nonzero(chance)
        if len(point):
            other = self._geodesic(lon[point], lat[point], cand[point, which], t[point, which])
            np.minimum.at(result, point, other)
        return result

    def _planar(self, x: Float | float, y: Float | float, seg: np.ndarray) -> tuple[Float, Float]:
        """Planar distance from points (x, y) to segments `seg`, and the foot's t along each.

        Shapes broadcast: points (n, 1) against segments (n, m), or one point against (m,).
        """
        ax, ay, abx, aby = self._ax[seg], self._ay[seg], self._abx[seg], self._aby[seg]
        t = np.clip(((x - ax) * abx + (y - ay) * aby) / self._ab2[seg], 0.0, 1.0)
        return np.hypot(ax + t * abx - x, ay + t * aby - y), t

    def _geodesic(self, lon: Float, lat: Float, seg: np.ndarray, t: Float) -> Float:
        """Geodesic distance to the point at `t` along each lon/lat segment (on the boundary)."""
        foot = self.start_ll[seg] + t[:, None] * (self.end_ll[seg] - self.start_ll[seg])
        # Rounding may put a foot on an edge ending at a pole an ulp past it: Geod answers NaN.
        _, _, dist = GEOD.inv(lon, lat, foot[:, 0], np.clip(foot[:, 1], -90.0, 90.0))
        return np.asarray(dist, dtype=np.float64)
