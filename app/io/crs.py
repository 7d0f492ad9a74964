"""Coordinate reference systems: parsing a CRS, telling WGS84, whether coordinates fit lon/lat."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from pyproj import CRS

from app.io.problems import file_problem


def is_wgs84(crs: CRS) -> bool:
    """Whether `crs` is WGS84 longitude/latitude (EPSG:4326 or OGC:CRS84)."""
    try:
        return crs.to_epsg() == 4326 or crs.equals(CRS.from_user_input("OGC:CRS84"))
    except Exception:  # pyproj may fail on exotic definitions; transform them then
        return False


def parse_crs(value: str, path: Path) -> CRS:
    """A CRS from user text ("EPSG:32638", WKT, PROJ), refused naming the file."""
    try:
        return CRS.from_user_input(value)
    except Exception as exc:
        raise file_problem(path, f"unknown CRS {value!r}: {exc}") from None


def fits_lonlat(bounds: Sequence[float]) -> bool:
    """Whether bounds fit longitudes in [-180, 180] and latitudes in [-90, 90]."""
    minx, miny, maxx, maxy = (float(b) for b in bounds)
    if not all(math.isfinite(b) for b in (minx, miny, maxx, maxy)):
        return True  # nothing to judge by (no features): nothing to transform either
    return -180.0 <= minx <= maxx <= 180.0 and -90.0 <= miny <= maxy <= 90.0


def range_text(bounds: Sequence[float]) -> str:
    """Bounds as text for a message."""
    minx, miny, maxx, maxy = (float(b) for b in bounds)
    return f"x {minx:.6g} to {maxx:.6g}, y {miny:.6g} to {maxy:.6g}"
