"""The map of a season, server side: pure functions over report columns (arrays in, aggregates
out). No I/O, no pandas: what `/map/data/…` and the standalone file need to answer for a view
(a bbox, a time window, a zoom) in milliseconds over a million reports.

Reports are kept in time order, so a time window is two binary searches (`window`); the view
is a mask over the window's slice (`in_view`); at low zoom the view is counted per grid cell
(`cells`), violations inside (certain) apart from possible ones, and by party; tracks are
simplified to the zoom (`simplify_tracks`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely

from app.mapview.style import VIOLATION, WARNING

BBox = tuple[float, float, float, float]

#: Web Mercator's 256-pixel tiles: the width of the world at zoom z is 256 * 2**z pixels.
_TILE_PX = 256
#: A cell is this many pixels wide on screen: big enough to read its count.
CELL_PX = 48
#: Tracks are simplified to this many pixels (below it a vertex cannot be seen).
TRACK_TOLERANCE_PX = 1.5
#: The most track vertices one answer carries: a season's units wander at every scale (a walk
#: keeps most of its vertices at any tolerance), so past this the tolerance is doubled.
MAX_TRACK_VERTICES = 20_000


def window(t: np.ndarray, since: int | None, until: int | None) -> slice:
    """The rows of time-ordered `t` (seconds) with since <= t < until (None: open)."""
    lo = 0 if since is None else int(np.searchsorted(t, since, side="left"))
    hi = len(t) if until is None else int(np.searchsorted(t, until, side="left"))
    return slice(lo, max(lo, hi))


def in_view(lon: np.ndarray, lat: np.ndarray, bbox: BBox | None) -> np.ndarray:
    """Which points fall in `bbox` (west, south, east, north; edges included); all for None."""
    if bbox is None:
        return np.ones(len(lon), bool)
    west, south, east, north = bbox
    return (lon >= west) & (lon <= east) & (lat >= south) & (lat <= north)


def degrees_per_pixel(zoom: float) -> float:
    """Degrees of longitude per screen pixel at `zoom` (Web Mercator)."""
    return float(360.0 / (_TILE_PX * 2.0**zoom))


def cell_size(zoom: float) -> float:
    """The side of a grid cell in degrees at `zoom`: `CELL_PX` pixels wide on screen."""
    return CELL_PX * degrees_per_pixel(zoom)


@dataclass(frozen=True, slots=True)
class Cells:
    """Counts per occupied grid cell: where to draw it (the mean of its reports, so a cell's
    marker sits on its reports, not on the grid), how many reports, violations inside and
    possible apart, warnings, and reports per party (`by_party[:, k]` for party code k)."""

    lon: np.ndarray
    lat: np.ndarray
    count: np.ndarray
    inside: np.ndarray
    possible: np.ndarray
    warnings: np.ndarray
    by_party: np.ndarray


def cells(
    lon: np.ndarray,
    lat: np.ndarray,
    party: np.ndarray,
    status: np.ndarray,
    certain: np.ndarray,
    n_parties: int,
    size: float,
) -> Cells:
    """Reports counted per square cell of `size` degrees (in lon/lat: cells are aligned on the
    grid through (0, 0), so the same report falls in the same cell whatever the view).

    `party` holds codes 0..n_parties-1 (negative: unknown, counted in no party column);
    `status` the report statuses (`VIOLATION`, `WARNING` ...); `certain` whether a violation
    is `inside` (else a violating report is only `possible`).
    """
    if size <= 0 or not math.isfinite(size):
        raise ValueError("size must be a positive number of degrees")
    if not len(lon):
        empty_f = np.empty(0, np.float64)
        empty_i = np.empty(0, np.int64)
        return Cells(
            empty_f, empty_f, empty_i, empty_i, empty_i, empty_i, np.zeros((0, n_parties), np.int64)
        )
    column = np.floor(lon / size).astype(np.int64)
    row = np.floor(lat / size).astype(np.int64)
    keys = (row - row.min()) * (column.max() - column.min() + 1) + (column - column.min())
    occupied, which = np.unique(keys, return_inverse=True)
    k = len(occupied)
    count = np.bincount(which, minlength=k)
    violation = status == VIOLATION
    by_party = np.zeros((k, n_parties), np.int64)
    known = (party >= 0) & (party < n_parties)
    np.add.at(by_party, (which[known], party[known].astype(np.int64)), 1)
    return Cells(
        lon=np.bincount(which, weights=lon, minlength=k) / count,
        lat=np.bincount(which, weights=lat, minlength=k) / count,
        count=count,
        inside=np.bincount(which, weights=violation & certain, minlength=k).astype(np.int64),
        possible=np.bincount(which, weights=violation & ~certain, minlength=k).astype(np.int64),
        warnings=np.bincount(which, weights=status == WARNING, minlength=k).astype(np.int64),
        by_party=by_party,
    )


@dataclass(frozen=True, slots=True)
class Tracks:
    """Simplified paths: track `track[k]` is the vertices `offsets[k]:offsets[k + 1]`."""

    track: np.ndarray
    offsets: np.ndarray
    lon: np.ndarray
    lat: np.ndarray


def simplify_tracks(
    lon: np.ndarray, lat: np.ndarray, track: np.ndarray, tolerance: float
) -> Tracks:
    """Each track's points (rows of one `track` code, in time order; negative codes: no track)
    as one line, simplified by `tolerance` degrees (Douglas-Peucker, shapely), whole arrays.

    A track of one point stays a point (a line of one vertex).
    """
    keep = track >= 0
    lon, lat, track = lon[keep], lat[keep], track[keep]
    if not len(track):
        empty = np.empty(0, np.float64)
        return Tracks(np.empty(0, np.int64), np.zeros(1, np.int64), empty, empty)
    # Stable: time order is kept inside each track.
    order = np.argsort(track, kind="stable")
    lon, lat, track = lon[order], lat[order], track[order]
    codes, starts, sizes = np.unique(track, return_index=True, return_counts=True)
    lines_at = sizes >= 2
    # shapely needs two vertices a line: single points get theirs doubled, then undoubled.
    doubled = np.repeat(np.arange(len(track)), np.where(np.repeat(lines_at, sizes), 1, 2))
    index = np.repeat(np.arange(len(codes)), np.where(lines_at, sizes, 2))
    coords = np.column_stack([lon[doubled], lat[doubled]])
    lines = shapely.linestrings(coords, indices=index)
    simple = shapely.simplify(lines, tolerance, preserve_topology=False)
    xy, part = shapely.get_coordinates(simple, return_index=True)
    counts = np.bincount(part, minlength=len(codes))
    # Undouble the single points.
    first_of_line = np.concatenate([[0], np.cumsum(counts)[:-1]])
    drop = np.zeros(len(xy), bool)
    single = np.flatnonzero(~lines_at)
    drop[first_of_line[single] + 1] = True
    counts[single] = 1
    xy = xy[~drop]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    del starts
    return Tracks(codes.astype(np.int64), offsets, xy[:, 0], xy[:, 1])


def simplify_tracks_within(
    lon: np.ndarray, lat: np.ndarray, track: np.ndarray, tolerance: float, most: int
) -> Tracks:
    """`simplify_tracks` with `tolerance`, doubled (up to 8 times) until at most `most`
    vertices remain; past that, every k-th vertex of each track (each keeps its ends).

    Each doubling simplifies the previous result, not the original: a few passes over the
    survivors instead of over every point (the drift stays under twice the last tolerance,
    well below what a drawn line shows at the zoom)."""
    lines = simplify_tracks(lon, lat, track, tolerance)
    for _ in range(8):
        if len(lines.lon) <= most:
            return lines
        tolerance *= 2
        lines = simplify_tracks(
            lines.lon, lines.lat, np.repeat(lines.track, np.diff(lines.offsets)), tolerance
        )
    if len(lines.lon) <= most:
        return lines
    # Tracks that jump far at every step survive any tolerance: keep every k-th vertex of each,
    # and its last.
    stride = -(-len(lines.lon) // most)
    position = np.arange(len(lines.lon)) - np.repeat(lines.offsets[:-1], np.diff(lines.offsets))
    last = np.zeros(len(lines.lon), bool)
    last[lines.offsets[1:] - 1] = True
    keep = (position % stride == 0) | last
    counts = np.add.reduceat(keep, lines.offsets[:-1]) if len(lines.track) else np.empty(0)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Tracks(lines.track, offsets, lines.lon[keep], lines.lat[keep])


def thin_steps(times: np.ndarray, fixed: np.ndarray, most: int) -> np.ndarray:
    """The slider's stops: every distinct report time when there are at most `most`, else the
    times rounded up to the smallest of (1 min, 10 min, 1 h, 6 h, 1 day) that leaves at most
    `most` (rounding up: a stop then shows every report up to it); with the `fixed` moments
    (zone and line changes, the range's ends) always kept."""
    distinct = np.unique(times)
    if len(distinct) > most:
        for step in (60, 600, 3600, 6 * 3600, 86400, 7 * 86400):
            rounded = np.unique(-(-distinct // step) * step)
            if len(rounded) <= most:
                break
        distinct = rounded
    return np.unique(np.concatenate([distinct.astype(np.int64), fixed.astype(np.int64)]))
