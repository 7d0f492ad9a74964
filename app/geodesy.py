"""Metres on the WGS84 ellipsoid: local projections, their distortion bounds, boundary segments.

The engine measures depth in two steps: a conformal projection centred on each zone finds the
candidate nearest boundary points cheaply, then the exact geodesic (Karney, via pyproj.Geod)
measures the distance to a point that lies exactly on the lon/lat boundary. This module holds the
pieces of that which know about the Earth and nothing about zones or reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyproj
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

GEOD = pyproj.Geod(ellps="WGS84")

# Shortest metres in one degree of latitude (at the equator) and longitude (times cos(lat)):
# used to turn a distance in metres into a conservative extent in degrees.
MIN_METRES_PER_DEG_LAT = 110_574.0
METRES_PER_DEG_LON_EQUATOR = 111_320.0
# Smallest radius of curvature of the ellipsoid (meridional, at the equator): turning metres into
# an angle with it over-estimates the angle, which keeps the distortion bounds conservative.
MIN_RADIUS_M = 6_335_439.0

# Long lon/lat edges become curves in any projection: cut them to at most this many degrees so
# that a chord stays within centimetres of the curve it stands for.
DENSIFY_DEG = 0.01

# How far (great-circle degrees) a zone's boundary may reach from the centre of its projection.
# The depth search leans on the stereographic scale bounds of `scale_spread`, measured up to about
# 54° (6,000 km); 45° (5,000 km) leaves room for every report that is still near the zone. A zone
# inside such a cap is also sure to lie on the cap's side of its boundary: the cap cannot hold both
# poles, and no lon/lat polygon holds a pole in its interior. The contract asks for zones up to
# 1,000 km across; a hemisphere, the world or a ring from pole to pole reaches 90° or more.
MAX_REACH_DEG = 45.0
# Boundary samples for the reach: far closer than the limit's own precision needs.
REACH_SAMPLE_DEG = 0.1

Float = NDArray[np.float64]


class UnjudgeableZone(ValueError):
    """A zone whose depth the engine cannot measure; validation refuses such zones up front."""


def local_projection(lon: float, lat: float) -> pyproj.Transformer:
    """Return an oblique stereographic projection of the ellipsoid centred on (lon, lat), in metres.

    Stereographic because it is conformal (small neighbourhoods keep their shape, so the nearest
    boundary point in the plane is the nearest on the ellipsoid to second order) and its scale
    grows only as 1 + c²/4 with the angular distance c from the centre, alike in every direction.
    PROJ's `sterea` (the double projection through the conformal sphere) keeps that property on the
    ellipsoid; its `stere` does not in oblique aspects (scale changes to first order in c).
    """
    return pyproj.Transformer.from_pipeline(
        "+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=rad"
        f" +step +proj=sterea +lat_0={lat!r} +lon_0={lon!r} +k_0=1 +ellps=WGS84"
    )


def scale_spread(angle_rad: Float | float) -> Float:
    """Bound the scale of the local projection within `angle_rad` of its centre (k ≥ 1 there).

    On the sphere k = 2 / (1 + cos c); on the ellipsoid PROJ's `sterea` stays within twice that
    excess over 1 (measured against its own scale factors, in the tests), hence the factor 2.5.
    """
    c = np.minimum(angle_rad, 3.0)
    k = 2.0 / (1.0 + np.cos(c))
    return np.asarray(1.0 + 2.5 * (k - 1.0) + 1e-9, dtype=np.float64)


def sphere_centre(geometry: BaseGeometry) -> tuple[float, float]:
    """Centre of a geometry's vertices as a mean of unit vectors (right across the antimeridian)."""
    xy = np.radians(shapely.get_coordinates(geometry))
    lon, lat = xy[:, 0], xy[:, 1]
    v = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)]).mean(axis=1)
    return float(np.degrees(np.arctan2(v[1], v[0]))), float(
        np.degrees(np.arctan2(v[2], np.hypot(v[0], v[1])))
    )


def angle_from_deg(centre: tuple[float, float], lon: Float, lat: Float) -> Float:
    """Great-circle angle (degrees, on the sphere) from `centre` (lon, lat) to each point."""
    lon0, lat0 = np.radians(centre)
    lon1, lat1 = np.radians(lon), np.radians(lat)
    # The haversine form stays accurate for small angles, where the cosine form does not.
    h = (
        np.sin((lat1 - lat0) / 2) ** 2
        + np.cos(lat0) * np.cos(lat1) * np.sin((lon1 - lon0) / 2) ** 2
    )
    return np.asarray(np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Reach:
    """How far a zone's boundary goes from its projection's centre, and where it goes farthest."""

    centre: tuple[float, float]
    angle_deg: float
    farthest: tuple[float, float]

    @property
    def judgeable(self) -> bool:
        """Whether the engine can measure depths for the zone (the same test everywhere)."""
        return bool(self.angle_deg <= MAX_REACH_DEG)

    def reason(self) -> str:
        """Why the zone cannot be judged, for messages and logs."""
        return (
            f"the zone reaches {self.angle_deg:.1f}° (about {self.angle_deg * 111.2:,.0f} km)"
            f" from its centre (lon {self.centre[0]:.2f}, lat {self.centre[1]:.2f}), at"
            f" lon {self.farthest[0]:.6g}, lat {self.farthest[1]:.6g}; depths can be measured"
            f" only for zones within {MAX_REACH_DEG:g}° (about 5,000 km) of their centre, so a"
            " hemisphere, the world or a zone from pole to pole cannot be judged"
        )


def zone_reach(geometry: BaseGeometry) -> Reach:
    """The `Reach` of a zone: its boundary, sampled every `REACH_SAMPLE_DEG`, from its centre.

    Validation and the engine both decide with this, so they agree on which zones can be judged.
    """
    centre = sphere_centre(geometry)
    xy = shapely.get_coordinates(shapely.segmentize(geometry, REACH_SAMPLE_DEG))
    angle = angle_from_deg(centre, xy[:, 0], xy[:, 1])
    if not len(angle) or not np.isfinite(angle).all():
        return Reach(centre, math.inf, centre)
    far = int(np.argmax(angle))
    return Reach(centre, float(angle[far]), (float(xy[far, 0]), float(xy[far, 1])))


@dataclass(frozen=True, slots=True)
class Segments:
    """A zone's boundary as straight lon/lat segments from `start` to `end` (arrays (n, 2))."""

    start: Float
    end: Float


def subdivide(start: Float, end: Float, pieces: np.ndarray) -> tuple[Float, Float, np.ndarray]:
    """Cut segment i into `pieces[i]` equal parts: their starts, ends and original segment index."""
    owner = np.repeat(np.arange(len(start)), pieces)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    step = (end - start)[owner] / pieces[owner, None]
    first = start[owner] + k[:, None] * step
    last = first + step
    # The last piece ends exactly where its segment does, not an ulp off (past a pole, say).
    last[np.cumsum(pieces)[pieces > 0] - 1] = end[pieces > 0]
    return first, last, owner


def boundary_segments(geometry: BaseGeometry) -> Segments:
    """Every ring's edges, densified, without the cuts that RFC 7946 puts along the antimeridian.

    A polygon split at ±180° has edges along the meridian that are not a real boundary: a point
    next to the cut is deep inside the zone, so those edges must not count for the depth. An edge
    along ±180° is such a cut only where the zone goes on across it, that is where it also covers
    the same place seen from the other side (-lon); a zone that only touches ±180° (or whose
    parts meet along only some of it) keeps the rest as boundary, to the piece (`DENSIFY_DEG`).
    """
    coords, ring_index = shapely.get_coordinates(
        shapely.get_rings(shapely.get_parts(geometry)), return_index=True
    )
    same_ring = ring_index[1:] == ring_index[:-1]
    start, end = coords[:-1][same_ring], coords[1:][same_ring]
    keep = np.any(start != end, axis=1)
    start, end = start[keep], end[keep]
    pieces = np.ceil(np.abs(end - start).max(axis=1, initial=0.0) / DENSIFY_DEG)
    start, end, _ = subdivide(start, end, np.maximum(pieces, 1).astype(np.int64))
    # Steps summed towards a pole may overshoot it by an ulp, where projections and Geod fail.
    start[:, 1] = np.clip(start[:, 1], -90.0, 90.0)
    end[:, 1] = np.clip(end[:, 1], -90.0, 90.0)
    along = np.flatnonzero((np.abs(start[:, 0]) == 180.0) & (start[:, 0] == end[:, 0]))
    if len(along):
        middle = (start[along, 1] + end[along, 1]) / 2
        across = shapely.intersects_xy(geometry, -start[along, 0], middle)
        keep = np.ones(len(start), dtype=bool)
        keep[along[across]] = False
        start, end = start[keep], end[keep]
    return Segments(start=start, end=end)


def expanded_bounds(bounds: Float, metres: Float) -> Float:
    """Bounds (minx, miny, maxx, maxy) widened to surely contain every point within `metres`.

    Longitudes may leave [-180, 180] when the widened box wraps around the antimeridian; a box
    that reaches a pole spans every longitude.
    """
    dlat = metres / MIN_METRES_PER_DEG_LAT
    top = np.minimum(np.maximum(np.abs(bounds[:, 1]), np.abs(bounds[:, 3])) + dlat, 90.0)
    cos_top = np.cos(np.radians(top))
    with np.errstate(divide="ignore"):
        dlon = np.where(cos_top < 1e-6, 360.0, metres / (METRES_PER_DEG_LON_EQUATOR * cos_top))
    dlon = np.minimum(dlon * 1.01, 360.0)
    return np.column_stack(
        [bounds[:, 0] - dlon, bounds[:, 1] - dlat, bounds[:, 2] + dlon, bounds[:, 3] + dlat]
    )
