"""Metres on the WGS84 ellipsoid: local projections, their distortion bounds, boundary segments.

The engine measures depth in two steps: a conformal projection centred on each zone finds the
candidate nearest boundary points cheaply, then the exact geodesic (Karney, via pyproj.Geod)
measures the distance to a point that lies exactly on the lon/lat boundary. This module holds the
pieces of that which know about the Earth and nothing about zones or reports.
"""

from __future__ import annotations

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

Float = NDArray[np.float64]


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
    return first, first + step, owner


def boundary_segments(geometry: BaseGeometry) -> Segments:
    """Every ring's edges, densified, without the cuts that RFC 7946 puts along the antimeridian.

    A polygon split at ±180° has edges along the meridian that are not a real boundary: a point
    next to the cut is deep inside the zone, so those edges must not count for the depth.
    """
    coords, ring_index = shapely.get_coordinates(
        shapely.get_rings(shapely.get_parts(geometry)), return_index=True
    )
    same_ring = ring_index[1:] == ring_index[:-1]
    start, end = coords[:-1][same_ring], coords[1:][same_ring]
    on_cut = (np.abs(start[:, 0]) == 180.0) & (start[:, 0] == end[:, 0])
    keep = ~on_cut & np.any(start != end, axis=1)
    start, end = start[keep], end[keep]
    pieces = np.ceil(np.abs(end - start).max(axis=1, initial=0.0) / DENSIFY_DEG)
    start, end, _ = subdivide(start, end, np.maximum(pieces, 1).astype(np.int64))
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
