"""`app.mapview.season`: the pure functions a view is cut with, against plain Python."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from app.mapview import season
from app.mapview.style import PLAIN, VIOLATION, WARNING


def test_a_window_is_half_open_like_the_store() -> None:
    t = np.array([10, 20, 20, 30, 40])
    assert season.window(t, 20, 40) == slice(1, 4)
    assert season.window(t, None, 20) == slice(0, 1)
    assert season.window(t, 41, None) == slice(5, 5)
    assert season.window(t, 30, 10) == slice(3, 3)  # an empty window, never a negative one


def test_cells_count_each_report_once_in_its_grid_cell() -> None:
    rng = np.random.default_rng(4)
    n = 2_000
    lon, lat = rng.uniform(46.2, 47.4, n), rng.uniform(39.5, 40.5, n)
    party = rng.integers(-1, 3, n)  # -1: a party of no column
    status = rng.choice([PLAIN, WARNING, VIOLATION], n)
    certain = rng.random(n) < 0.5
    size = season.cell_size(10)
    cells = season.cells(lon, lat, party, status, certain, 3, size)
    expected: dict[tuple[int, int], Counter[str]] = {}
    for i in range(n):
        key = (math.floor(lon[i] / size), math.floor(lat[i] / size))
        c = expected.setdefault(key, Counter())
        c["count"] += 1
        c["lon"] += lon[i]
        if party[i] >= 0:
            c[f"p{party[i]}"] += 1
        if status[i] == VIOLATION:
            c["inside" if certain[i] else "possible"] += 1
        if status[i] == WARNING:
            c["warnings"] += 1
    assert len(cells.count) == len(expected) and cells.count.sum() == n
    for k in range(len(cells.count)):
        key = (math.floor(cells.lon[k] / size), math.floor(cells.lat[k] / size))
        c = expected[key]
        assert cells.count[k] == c["count"]
        assert cells.lon[k] == pytest.approx(c["lon"] / c["count"])
        assert (cells.inside[k], cells.possible[k], cells.warnings[k]) == (
            c["inside"],
            c["possible"],
            c["warnings"],
        )
        assert cells.by_party[k].tolist() == [c["p0"], c["p1"], c["p2"]]


def test_a_cell_is_48_pixels_at_every_zoom() -> None:
    # 256-pixel tiles: the world is 256 * 2**z pixels wide.
    assert season.cell_size(0) == pytest.approx(48 * 360 / 256)
    assert season.cell_size(12) == pytest.approx(season.cell_size(11) / 2)
    with pytest.raises(ValueError):
        season.cells(np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1, bool), 1, 0)


def test_tracks_keep_their_ends_and_drop_what_the_tolerance_hides() -> None:
    # Unit 0 walks a straight line of 5 points, with one 0.01 degree detour; unit 1 has one report.
    lon = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 5.0, 0.0])
    lat = np.array([0.0, 0.0, 0.01, 0.0, 0.0, 5.0, 1.0])
    track = np.array([0, 0, 0, 0, 0, 1, -1])
    fine = season.simplify_tracks(lon, lat, track, 0.001)
    coarse = season.simplify_tracks(lon, lat, track, 0.05)
    assert fine.track.tolist() == coarse.track.tolist() == [0, 1]
    assert np.diff(fine.offsets).tolist() == [5, 1]  # the detour is seen at 0.001 degrees
    assert np.diff(coarse.offsets).tolist() == [2, 1]  # and hidden at 0.05: the ends remain
    assert (coarse.lon[:2].tolist(), coarse.lat[:2].tolist()) == ([0.0, 0.4], [0.0, 0.0])
    assert (coarse.lon[2], coarse.lat[2]) == (5.0, 5.0)  # a one-report track stays a point


def test_slider_stops_are_thinned_by_rounding_up_and_keep_the_fixed_moments() -> None:
    times = np.arange(0, 86400 * 3, 7)  # a report every 7 s for three days
    fixed = np.array([5, 100_003])
    stops = season.thin_steps(times, fixed, 500)
    assert len(stops) <= 500 + len(fixed)
    assert {5, 100_003} <= set(stops.tolist())
    # Rounded up: every report time has a stop at or after it, within one rounding step.
    after = stops[np.searchsorted(stops, times)]
    assert (after >= times).all() and (after - times).max() < 3600
    assert season.thin_steps(np.array([3, 1, 3]), np.array([2]), 10).tolist() == [1, 2, 3]


def test_a_wandering_season_of_tracks_is_capped_in_vertices() -> None:
    rng = np.random.default_rng(9)
    walk = rng.normal(0, 0.004, (40_000, 2)).cumsum(axis=0)
    track = np.repeat(np.arange(8), 5_000)
    plain = season.simplify_tracks(walk[:, 0], walk[:, 1], track, 0.004)
    capped = season.simplify_tracks_within(walk[:, 0], walk[:, 1], track, 0.004, 2_000)
    assert len(plain.lon) > 2_000  # a random walk keeps most vertices at a small tolerance
    assert 16 <= len(capped.lon) <= 2_000  # every track keeps its two ends
    assert capped.track.tolist() == list(range(8))
    firsts = capped.offsets[:-1]
    assert capped.lon[firsts].tolist() == walk[np.arange(8) * 5_000, 0].tolist()


def test_tracks_that_jump_at_every_step_are_still_capped() -> None:
    rng = np.random.default_rng(2)
    n = 30_000
    lon, lat = rng.uniform(0, 10, n), rng.uniform(0, 10, n)  # every step a jump of degrees
    track = np.repeat(np.arange(3), n // 3)
    capped = season.simplify_tracks_within(lon, lat, track, 0.001, 1_000)
    assert len(capped.lon) <= 1_000 + 3
    assert capped.offsets[-1] == len(capped.lon) and capped.track.tolist() == [0, 1, 2]
    ends = capped.offsets[1:] - 1
    assert capped.lon[ends].tolist() == lon[[n // 3 - 1, 2 * n // 3 - 1, n - 1]].tolist()
