"""An independent geodesic reference for the engine's rule (docs/rule.md, "How the tests check it").

Nothing here imports the engine. The distance from a point P to a zone's boundary is computed the
slow, obvious way: every boundary edge is the straight line X(t) = A + t (B - A) in lon/lat (as
RFC 7946 and shapely define it), the geodesic distance (WGS84, `pyproj.Geod.inv`) from P to X(t)
is sampled densely over t in [0, 1] for all edges at once, and the minimum is refined by a
vectorised golden-section search around every sample that could still hold the minimum.

Why the refinement is safe: the geodesic distance from P is 1-Lipschitz in arc length, so along an
edge no point lies closer to P than (value at its nearest sample) - (arc length to that sample).
Every sample whose value minus one sample step of arc length is not above the best value found is
refined over the bracket [previous sample, next sample]; within so short a bracket the distance to
a (nearly straight) curve is unimodal, and 64 golden-section steps shrink the bracket by ~1e-13,
far below a millimetre even for edges 100 km long.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

GEOD = Geod(ellps="WGS84")

#: Samples are spaced at most this far apart (metres, roughly) along an edge before refinement.
SAMPLE_SPACING_M = 250.0
MIN_SAMPLES_PER_EDGE = 17
MAX_SAMPLES_PER_EDGE = 4001
GOLDEN_ITERATIONS = 64
#: Arc length of a lon/lat step vs the geodesic between its ends: a safety factor for the bound.
ARC_SAFETY = 1.05

_INV_PHI = (np.sqrt(5.0) - 1.0) / 2.0


def geodesic_inv(
    lon1: npt.ArrayLike, lat1: npt.ArrayLike, lon2: npt.ArrayLike, lat2: npt.ArrayLike
) -> np.ndarray:
    """Geodesic distances (m, WGS84) between broadcastable arrays of positions."""
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (lon1, lat1, lon2, lat2)))
    shape = arrays[0].shape
    flat = [np.ascontiguousarray(a).ravel().copy() for a in arrays]
    if flat[0].size == 0:
        return np.zeros(shape)
    _, _, dist = GEOD.inv(*flat)
    return np.asarray(dist, dtype=float).reshape(shape)


def boundary_rings(geometry: BaseGeometry) -> Iterator[np.ndarray]:
    """Every ring (exterior and holes) of a Polygon or MultiPolygon, as (n, 2) lon/lat arrays."""
    if isinstance(geometry, Polygon):
        polygons = [geometry]
    elif isinstance(geometry, MultiPolygon):
        polygons = list(geometry.geoms)
    else:
        raise TypeError(f"not a (multi)polygon: {geometry.geom_type}")
    for polygon in polygons:
        yield np.asarray(polygon.exterior.coords, dtype=float)[:, :2]
        for interior in polygon.interiors:
            yield np.asarray(interior.coords, dtype=float)[:, :2]


def boundary_edges(geometry: BaseGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Start and end points (each (m, 2) lon/lat) of every boundary edge of the geometry."""
    starts, ends = [], []
    for ring in boundary_rings(geometry):
        starts.append(ring[:-1])
        ends.append(ring[1:])
    return np.concatenate(starts), np.concatenate(ends)


def _distance_along(
    lon: float, lat: float, a: np.ndarray, b: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """Geodesic distance from P to X(t) = a + t (b - a), elementwise over rows of a, b, t."""
    x = a[:, 0] + t * (b[:, 0] - a[:, 0])
    # Rounding may put X(t) on an edge ending at a pole an ulp past it, where Geod gives NaN.
    y = np.clip(a[:, 1] + t * (b[:, 1] - a[:, 1]), -90.0, 90.0)
    return geodesic_inv(lon, lat, x, y)


def distance_to_edges(lon: float, lat: float, starts: np.ndarray, ends: np.ndarray) -> float:
    """Minimum geodesic distance (m) from (lon, lat) to the lon/lat-straight edges starts->ends."""
    starts = np.asarray(starts, dtype=float).reshape(-1, 2)
    ends = np.asarray(ends, dtype=float).reshape(-1, 2)
    lengths = geodesic_inv(starts[:, 0], starts[:, 1], ends[:, 0], ends[:, 1])
    counts = np.clip(
        np.ceil(lengths / SAMPLE_SPACING_M).astype(int) + 1,
        MIN_SAMPLES_PER_EDGE,
        MAX_SAMPLES_PER_EDGE,
    )
    # One flat array of samples over all edges: edge index and t of each sample.
    edge = np.repeat(np.arange(len(starts)), counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    k = np.arange(edge.size) - first[edge]
    t = k / (counts[edge] - 1)
    a, b = starts[edge], ends[edge]
    values = _distance_along(lon, lat, a, b, t)
    best = float(values.min())

    # Arc length of one sample step on each edge (bounded via the geodesic between neighbours).
    x = a[:, 0] + t * (b[:, 0] - a[:, 0])
    y = a[:, 1] + t * (b[:, 1] - a[:, 1])
    step = np.zeros_like(values)
    same_edge = edge[1:] == edge[:-1]
    chord = geodesic_inv(x[:-1], y[:-1], x[1:], y[1:])
    step[:-1] = np.where(same_edge, chord, 0.0)
    step[1:] = np.maximum(step[1:], np.where(same_edge, chord, 0.0))
    candidates = np.flatnonzero(values - ARC_SAFETY * step <= best)

    dt = 1.0 / (counts[edge[candidates]] - 1)
    lo = np.clip(t[candidates] - dt, 0.0, 1.0)
    hi = np.clip(t[candidates] + dt, 0.0, 1.0)
    ca, cb = a[candidates], b[candidates]
    c = hi - _INV_PHI * (hi - lo)
    d = lo + _INV_PHI * (hi - lo)
    fc = _distance_along(lon, lat, ca, cb, c)
    fd = _distance_along(lon, lat, ca, cb, d)
    for _ in range(GOLDEN_ITERATIONS):
        # Left: the minimum lies in [lo, d], old c becomes the new d, a new c is probed.
        # Right: the minimum lies in [c, hi], old d becomes the new c, a new d is probed.
        left = fc <= fd
        lo, hi = np.where(left, lo, c), np.where(left, d, hi)
        probe = np.where(left, hi - _INV_PHI * (hi - lo), lo + _INV_PHI * (hi - lo))
        fp = _distance_along(lon, lat, ca, cb, probe)
        c, d = np.where(left, probe, d), np.where(left, c, probe)
        fc, fd = np.where(left, fp, fd), np.where(left, fc, fp)
    ends_lo = _distance_along(lon, lat, ca, cb, lo)
    ends_hi = _distance_along(lon, lat, ca, cb, hi)
    refined = np.minimum(np.minimum(fc, fd), np.minimum(ends_lo, ends_hi))
    return float(min(best, refined.min()))


def geodesic_distance_to_boundary(lon: float, lat: float, geometry: BaseGeometry) -> float:
    """Unsigned geodesic distance (m, WGS84) from (lon, lat) to the boundary of a (multi)polygon.

    The boundary is every ring, holes included, with edges straight in lon/lat.
    """
    starts, ends = boundary_edges(geometry)
    return distance_to_edges(float(lon), float(lat), starts, ends)


def oracle_covers(lon: float, lat: float, geometry: BaseGeometry) -> bool:
    """Whether the zone holds the point, by the rule's own definition (shapely.covers, lon/lat)."""
    return bool(shapely.covers(geometry, shapely.Point(float(lon), float(lat))))


def oracle_depth(lon: float, lat: float, geometry: BaseGeometry) -> float:
    """Signed depth per the rule: + distance to the boundary when covered, - when not."""
    distance = geodesic_distance_to_boundary(lon, lat, geometry)
    return distance if oracle_covers(lon, lat, geometry) else -distance


def oracle_verdict(depth: float, u: float, warning: float) -> str:
    """The verdict the rule gives for a signed depth, an uncertainty radius and a warning."""
    if depth >= u:
        return "inside"
    if -u < depth < u:
        return "possible"
    if -depth <= warning:
        return "approaching"
    return "outside"


def depth_tolerance(reference: float) -> float:
    """The contract's tolerance on depth_m: max(0.5 m, 0.1 %)."""
    return max(0.5, 1e-3 * abs(reference))


def allowed_verdicts(depth: float, u: float, warning: float, tolerance: float) -> set[str]:
    """Verdicts compatible with a reference depth known only to +- tolerance."""
    return {oracle_verdict(d, u, warning) for d in (depth - tolerance, depth, depth + tolerance)}


def brute_force_distance(
    lon: float, lat: float, a: npt.ArrayLike, b: npt.ArrayLike, samples: int = 100_001
) -> float:
    """Minimum over `samples` evenly spaced points of one edge: a slow check of the oracle."""
    t = np.linspace(0.0, 1.0, samples)
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    return float(geodesic_inv(lon, lat, a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])).min())


def offset(lon: float, lat: float, azimuth: float, distance: float) -> tuple[float, float]:
    """The point `distance` metres from (lon, lat) along the geodesic at `azimuth` degrees."""
    x, y, _ = GEOD.fwd(lon, lat, azimuth, distance)
    return float(x), float(y)


def edge_normal_azimuth(
    a: npt.ArrayLike, b: npt.ArrayLike, t: float = 0.5
) -> tuple[float, float, float]:
    """The point X(t) on the lon/lat edge a->b and the azimuth of the edge's tangent there.

    Returns (lon, lat, azimuth of the direction of travel a->b at X(t)).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    x = a + t * (b - a)
    h = 1e-7
    x2 = a + min(t + h, 1.0) * (b - a)
    x1 = a + max(t - h, 0.0) * (b - a)
    az, _, _ = GEOD.inv(x1[0], x1[1], x2[0], x2[1])
    return float(x[0]), float(x[1]), float(az)


def regular_polygon(
    lon: float, lat: float, radius_m: float, n: int, rotation: float = 0.0
) -> Polygon:
    """A polygon whose n vertices lie `radius_m` (geodesic) from the centre; edges not densified."""
    az = rotation + np.arange(n) * 360.0 / n
    x, y, _ = GEOD.fwd(np.full(n, lon), np.full(n, lat), az, np.full(n, radius_m))
    return Polygon(list(zip(np.asarray(x), np.asarray(y), strict=True)))


def inward_azimuth(ring_is_ccw: bool, is_hole: bool, travel_azimuth: float) -> float:
    """Azimuth pointing into the polygon from an edge of a ring, given the ring's orientation.

    The interior lies left of an exterior ring travelled counter-clockwise (lon/lat keeps the
    map's handedness: east = +x, north = +y) and right of a counter-clockwise hole.
    """
    left = ring_is_ccw != is_hole
    return travel_azimuth - 90.0 if left else travel_azimuth + 90.0


def points_near_edge(
    polygon: Polygon, ring: int, edge: int, offsets_m: Iterable[float], t: float = 0.5
) -> list[tuple[float, float]]:
    """Points at signed geodesic offsets (+ = into the polygon) from X(t) of one edge of a ring.

    `ring` 0 is the exterior, 1.. the holes. The offset is taken perpendicular to the lon/lat
    edge's local direction; at 0 the point is X(t) itself (on the edge up to rounding).
    """
    rings = [polygon.exterior, *polygon.interiors]
    coords = np.asarray(rings[ring].coords)[:, :2]
    a, b = coords[edge], coords[edge + 1]
    x, y, travel = edge_normal_azimuth(a, b, t)
    inward = inward_azimuth(bool(shapely.is_ccw(rings[ring])), ring > 0, travel)
    out = []
    for off in offsets_m:
        if off == 0:
            out.append((x, y))
        elif off > 0:
            out.append(offset(x, y, inward, off))
        else:
            out.append(offset(x, y, inward + 180.0, -off))
    return out
