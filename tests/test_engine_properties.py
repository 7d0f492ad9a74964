"""Properties of the engine over random zones anywhere on Earth (|lat| <= 80) and points near them.

- the verdict and violation follow from depth, uncertainty, warning distance and party by the rule;
- the sign of depth is shapely.covers on lon/lat;
- depth agrees with the independent geodesic reference (tests/oracle.py);
- the answer does not depend on the order of the zones nor on how reports are batched;
- exactly the zones in force at each report's time are judged;
- a lone report (the scalar path) gets the answer it gets in a batch (the array path).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

import app.engine
from app.domain import Zone
from app.engine import ZoneIndex, verdict_code, verdict_codes
from tests.factories import make_zone, reports_df
from tests.oracle import (
    depth_tolerance,
    edge_normal_azimuth,
    offset,
    oracle_depth,
    oracle_verdict,
)

PARTIES = ["AZE", "ARM", "RU-PK", "NK"]
DATES = [datetime(y, 1, 1, tzinfo=UTC) for y in (2019, 2020, 2021, 2022, 2023)]
# Lon/lat segments of at most this many degrees are at most ~95 km long anywhere.
MAX_EDGE_DEG = 0.85

COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much],
}


@st.composite
def zone_geometries(
    draw: st.DrawFn,
    lon: float | None = None,
    lat: float | None = None,
    max_radius_m: float = 500_000.0,
    min_radius_m: float = 50.0,
) -> Polygon:
    """A star-shaped (or convex) polygon 100 m .. 2 x max_radius_m across, |lat| <= ~85.

    Vertices are placed by angle around the centre in lon/lat (so the ring is simple), and edges
    longer than ~95 km are cut at points on the same lon/lat line (the zone is unchanged).
    """
    if lon is None:
        lon = draw(st.floats(-150.0, 150.0))
    if lat is None:
        lat = draw(st.floats(-80.0, 80.0))
    radius = 10 ** draw(st.floats(math.log10(min_radius_m), math.log10(max_radius_m)))
    n = draw(st.integers(3, 12))
    gaps = np.array(draw(st.lists(st.floats(0.3, 1.0), min_size=n, max_size=n)))
    theta = draw(st.floats(0.0, 2 * math.pi)) + 2 * math.pi * np.cumsum(gaps) / gaps.sum()
    scale = np.array(draw(st.lists(st.floats(0.4, 1.0), min_size=n, max_size=n)))
    dlat = radius * scale * np.sin(theta) / 110_574.0
    dlon = radius * scale * np.cos(theta) / (111_320.0 * math.cos(math.radians(lat)))
    polygon = Polygon(np.column_stack([lon + dlon, lat + dlat]))
    if draw(st.booleans()):
        polygon = polygon.convex_hull
    polygon = shapely.segmentize(polygon, MAX_EDGE_DEG)
    assume(polygon.is_valid and polygon.area > 0)
    return polygon


@st.composite
def points_near(
    draw: st.DrawFn, polygon: Polygon, count: int, max_offset_m: float | None = None
) -> list[tuple[float, float]]:
    """Points near the boundary (both sides, 1 cm .. ~2 sizes away), on vertices, and around."""
    ring = np.asarray(polygon.exterior.coords)
    minx, miny, maxx, maxy = polygon.bounds
    size_m = max(1.0, 111_000.0 * (maxy - miny))
    out = []
    for _ in range(count):
        kind = draw(st.sampled_from(["edge", "edge", "edge", "vertex", "box"]))
        if kind == "vertex":
            out.append(tuple(ring[draw(st.integers(0, len(ring) - 2))]))
        elif kind == "box":
            x = draw(st.floats(minx - 0.3 * (maxx - minx), maxx + 0.3 * (maxx - minx)))
            y = draw(st.floats(miny - 0.3 * (maxy - miny), maxy + 0.3 * (maxy - miny)))
            out.append((x, y))
        else:
            e = draw(st.integers(0, len(ring) - 2))
            t = draw(st.floats(0.0, 1.0))
            x, y, travel = edge_normal_azimuth(ring[e], ring[e + 1], t)
            far = math.log10(max_offset_m or 2 * size_m)
            distance = 10 ** draw(st.floats(-2.0, far))
            side = draw(st.sampled_from([90.0, -90.0]))
            out.append(offset(x, y, travel + side, distance))
    return out


def _covers(geometry: BaseGeometry, points: Sequence[tuple[float, float]]) -> np.ndarray:
    xy = np.asarray(points, dtype=float)
    return shapely.covers(geometry, shapely.points(xy))


def _assert_sign(geometry: BaseGeometry, lon: float, lat: float, depth_m: float) -> None:
    """depth_m >= 0 exactly when shapely.covers holds (and < 0, not -0.0, when it does not)."""
    covered = bool(shapely.covers(geometry, shapely.Point(lon, lat)))
    ok = depth_m >= 0.0 if covered else (depth_m < 0.0 and math.copysign(1.0, depth_m) < 0)
    assert ok, (
        f"point ({lon!r}, {lat!r}) covered={covered} but engine depth_m={depth_m!r}; "
        f"reference={oracle_depth(lon, lat, geometry)!r}; zone {geometry.wkt}"
    )


# ---------------------------------------------------------------------------------------------


@settings(max_examples=80, **COMMON)
@given(data=st.data())
def test_verdict_violation_and_sign_follow_the_rule(data: st.DataObject) -> None:
    polygon = data.draw(zone_geometries())
    points = data.draw(points_near(polygon, 12))
    n = len(points)
    u = data.draw(
        st.lists(
            st.one_of(st.just(0.0), st.floats(0.0, 3000.0)),
            min_size=n,
            max_size=n,
        )
    )
    parties = data.draw(st.lists(st.sampled_from(PARTIES), min_size=n, max_size=n))
    authorized = frozenset(data.draw(st.sets(st.sampled_from(PARTIES), max_size=2)))
    warning = data.draw(st.one_of(st.just(1000.0), st.floats(0.0, 20_000.0)))
    zone = make_zone(polygon, "z", authorized=authorized, warning_m=warning)
    frame = reports_df(points, party=parties, uncertainty_m=u)
    index = ZoneIndex([zone])

    every = index.check(frame, include_outside=True)
    assert sorted(every["report"]) == list(range(n)), "one row per report for an in-force zone"
    every = every.sort_values("report")
    covered = _covers(polygon, points)
    depth = every["depth_m"].to_numpy()
    assert np.all(np.isfinite(depth))
    for i, row in enumerate(every.itertuples(index=False)):
        assert row.report_id == f"r{i}"
        _assert_sign(polygon, *points[i], row.depth_m)
        expected = oracle_verdict(row.depth_m, u[i], warning)
        assert row.verdict == expected, (points[i], row.depth_m, u[i], warning)
        in_or_possible = expected in {"inside", "possible"}
        assert bool(row.violation) == (in_or_possible and parties[i] not in authorized)
        if u[i] == 0.0:
            assert (row.verdict == "inside") == bool(covered[i])

    listed = index.check(frame)
    not_outside = every[every["verdict"] != "outside"]
    assert list(listed["report"]) == list(not_outside["report"])
    assert list(listed["verdict"]) == list(not_outside["verdict"])
    np.testing.assert_allclose(listed["depth_m"], not_outside["depth_m"], rtol=0, atol=1e-6)


@settings(max_examples=30, **COMMON)
@given(data=st.data())
def test_depth_agrees_with_geodesic_reference(data: st.DataObject) -> None:
    # Mostly big zones (100 m .. 1,000 km across, a third 400 km or more),
    # points mostly within 10 km of an edge.
    polygon = data.draw(
        zone_geometries(min_radius_m=data.draw(st.sampled_from([50.0, 5000.0, 200_000.0])))
    )
    points = data.draw(points_near(polygon, 5, max_offset_m=10_000.0))
    frame = reports_df(points)
    found = ZoneIndex([make_zone(polygon)]).check(frame, include_outside=True)
    found = found.sort_values("report")
    assert len(found) == len(points)
    for (lon, lat), engine in zip(points, found["depth_m"], strict=True):
        reference = oracle_depth(lon, lat, polygon)
        assert abs(engine - reference) <= depth_tolerance(reference), (
            f"point ({lon!r}, {lat!r}) zone {polygon.wkt}: engine depth_m={engine!r}, "
            f"reference={reference!r}, error={engine - reference:+.4f} m"
        )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Zone], pd.DataFrame]:
    """2-4 overlapping zone versions with validity periods, and reports at various times."""
    lon = draw(st.floats(-150.0, 150.0))
    lat = draw(st.floats(-78.0, 78.0))
    k = draw(st.integers(2, 4))
    zones = []
    for j in range(k):
        dlon, dlat = draw(st.floats(-0.05, 0.05)), draw(st.floats(-0.05, 0.05))
        polygon = draw(zone_geometries(lon + dlon, lat + dlat, max_radius_m=20_000.0))
        start = draw(st.integers(0, len(DATES) - 1))
        end = draw(st.one_of(st.none(), st.integers(start + 1, len(DATES))))
        zones.append(
            make_zone(
                polygon,
                f"z{j}",
                valid_from=DATES[start],
                valid_to=None if end is None or end == len(DATES) else DATES[end],
                authorized=frozenset(draw(st.sets(st.sampled_from(PARTIES), max_size=2))),
                warning_m=draw(st.sampled_from([0.0, 500.0, 1000.0, 5000.0])),
                version=draw(st.integers(1, 3)),
                # Zones with and without boundary uncertainty, in one batch.
                boundary_uncertainty_m=draw(st.sampled_from([0.0, 0.0, 300.0, 3000.0])),
            )
        )
    points = []
    for z in zones:
        points += draw(points_near(z.geometry, 4))
    n = len(points)
    frame = reports_df(
        points,
        observed_at=draw(
            st.lists(
                st.sampled_from(DATES + [datetime(2024, 6, 1, tzinfo=UTC)]), min_size=n, max_size=n
            )
        ),
        party=draw(st.lists(st.sampled_from(PARTIES), min_size=n, max_size=n)),
        uncertainty_m=draw(st.lists(st.floats(0.0, 2000.0), min_size=n, max_size=n)),
    )
    return zones, frame


def _keyed(found: pd.DataFrame) -> dict[tuple[str, str], tuple]:
    keys = list(zip(found["report_id"], found["zone_id"], strict=True))
    assert len(set(keys)) == len(keys), "one row per (report, zone)"
    values = zip(
        found["verdict"], found["depth_m"], found["violation"], found["zone_version"], strict=True
    )
    return dict(zip(keys, values, strict=True))


def _assert_same(a: dict, b: dict, tolerance_m: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for key in a:
        va, vb = a[key], b[key]
        assert va[0] == vb[0], (key, va, vb)
        assert abs(va[1] - vb[1]) <= tolerance_m, (key, va, vb)
        assert bool(va[2]) == bool(vb[2]), (key, va, vb)
        assert va[3] == vb[3], (key, va, vb)


@settings(max_examples=40, **COMMON)
@given(scenario=scenarios(), data=st.data(), include_outside=st.booleans())
def test_zone_order_does_not_matter(
    scenario: tuple[list[Zone], pd.DataFrame], data: st.DataObject, include_outside: bool
) -> None:
    zones, frame = scenario
    permuted = data.draw(st.permutations(zones))
    index, other = ZoneIndex(zones), ZoneIndex(permuted)
    a = index.check(frame, include_outside=include_outside)
    b = other.check(frame, include_outside=include_outside)
    _assert_same(_keyed(a), _keyed(b))
    for found, idx in ((a, index), (b, other)):
        for row in found.itertuples(index=False):
            assert idx.zones[row.zone].id == row.zone_id
            assert idx.zones[row.zone].version == row.zone_version


@settings(max_examples=40, **COMMON)
@given(scenario=scenarios(), data=st.data(), include_outside=st.booleans())
def test_batching_does_not_matter(
    scenario: tuple[list[Zone], pd.DataFrame], data: st.DataObject, include_outside: bool
) -> None:
    zones, frame = scenario
    split = data.draw(st.integers(0, len(frame)))
    index = ZoneIndex(zones)
    whole = index.check(frame, include_outside=include_outside)
    first = index.check(frame.iloc[:split].reset_index(drop=True), include_outside=include_outside)
    second = index.check(frame.iloc[split:].reset_index(drop=True), include_outside=include_outside)
    _assert_same(_keyed(whole), _keyed(pd.concat([first, second])))
    # `report` is the row position within the batch that was checked.
    shifted = np.concatenate([first["report"], second["report"] + split])
    assert sorted(shifted) == sorted(whole["report"])
    for found, base in ((first, 0), (second, split)):
        for row in found.itertuples(index=False):
            assert frame["id"].iloc[base + row.report] == row.report_id


@settings(max_examples=40, **COMMON)
@given(scenario=scenarios())
def test_exactly_the_zones_in_force_are_judged(scenario: tuple[list[Zone], pd.DataFrame]) -> None:
    zones, frame = scenario
    found = ZoneIndex(zones).check(frame, include_outside=True)
    got = set(zip(found["report"], found["zone_id"], strict=True))
    expected = {
        (i, z.id)
        for i, at in enumerate(frame["observed_at"])
        for z in zones
        if z.in_force(at.to_pydatetime())
    }
    assert got == expected
    for row in found.itertuples(index=False):
        zone = zones[row.zone]
        u = frame["uncertainty_m"].iloc[row.report] + zone.boundary_uncertainty_m
        reference = oracle_verdict(row.depth_m, u, zone.warning_distance_m)
        assert row.verdict == reference
        lon, lat = frame["lon"].iloc[row.report], frame["lat"].iloc[row.report]
        _assert_sign(zone.geometry, lon, lat, row.depth_m)


@settings(max_examples=40, **COMMON)
@given(scenario=scenarios(), include_outside=st.booleans())
def test_one_report_at_a_time_is_the_batch_answer(
    scenario: tuple[list[Zone], pd.DataFrame], include_outside: bool
) -> None:
    # A lone report takes the engine's scalar path; a batch takes the array path.
    zones, frame = scenario
    index = ZoneIndex(zones)
    whole = index.check(frame, include_outside=include_outside)
    alone = [
        index.check(frame.iloc[[i]].reset_index(drop=True), include_outside=include_outside)
        for i in range(len(frame))
    ]
    assert all((found["report"] == 0).all() for found in alone)
    # The same steps on the same numbers: the same depth to the last bit.
    _assert_same(_keyed(whole), _keyed(pd.concat(alone)), tolerance_m=0.0)


@settings(max_examples=40, **COMMON)
@given(scenario=scenarios(), include_outside=st.booleans())
def test_the_many_reports_path_gives_the_few_reports_answer(
    scenario: tuple[list[Zone], pd.DataFrame], include_outside: bool
) -> None:
    # Below SMALL_BATCH_CELLS one (zone × report) mask finds the candidates; above, each zone
    # takes a slice of the reports sorted by longitude (or, with include_outside, every report
    # in force). Forcing the second on small scenarios compares the two.
    zones, frame = scenario
    index = ZoneIndex(zones)
    few = index.check(frame, include_outside=include_outside)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(app.engine, "SMALL_BATCH_CELLS", 0)
        many = index.check(frame, include_outside=include_outside)
    _assert_same(_keyed(few), _keyed(many))


@settings(max_examples=300, **COMMON)
@given(
    depth=st.floats(-1e4, 1e4) | st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 100.0, -100.0]),
    u=st.floats(0.0, 2000.0) | st.just(100.0),
    warning=st.floats(0.0, 5000.0) | st.just(100.0),
)
def test_scalar_and_array_verdicts_agree(depth: float, u: float, warning: float) -> None:
    expected = int(verdict_codes(np.array([depth]), np.array([u]), np.array([warning]))[0])
    assert verdict_code(depth, u, warning) == expected
