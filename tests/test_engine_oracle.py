"""The engine applies the rule exactly: depth against an independent geodesic reference.

The reference (tests/oracle.py) is checked first on its own, against facts that hold on the
ellipsoid and against a second, unrelated method; then the engine's `depth_m`, verdict and
violation are compared with it for zones from 100 m to 1,000 km across, all over the Earth.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from functools import cache

import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

from app.batch import ReportBatch
from app.domain import Report
from app.engine import ZoneIndex
from tests.factories import AT, EPOCH, make_zone, reports_df
from tests.oracle import (
    allowed_verdicts,
    brute_force_distance,
    depth_tolerance,
    distance_to_edges,
    geodesic_distance_to_boundary,
    geodesic_inv,
    offset,
    oracle_covers,
    oracle_depth,
    oracle_verdict,
    points_near_edge,
    regular_polygon,
)

# ---------------------------------------------------------------------------------------------
# The oracle on its own
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lat", [1e-5, 0.001, 0.02, 0.45, -0.0003, -0.3])
def test_oracle_equator_edge_is_meridian_arc(lat: float) -> None:
    # The equator and the meridians are geodesics meeting at right angles: the nearest point of
    # an equatorial edge to a point above its interior is the foot of the meridian.
    d = distance_to_edges(10.3, lat, np.array([[10.0, 0.0]]), np.array([[10.9, 0.0]]))
    assert d == pytest.approx(geodesic_inv(10.3, 0.0, 10.3, lat), abs=1e-6)


def test_oracle_point_on_the_line_beyond_the_edge_is_distance_to_endpoint() -> None:
    # Along one geodesic (equator, meridian) the nearest point of a segment is its end.
    d = distance_to_edges(12.0, 0.0, np.array([[10.0, 0.0]]), np.array([[11.0, 0.0]]))
    assert d == pytest.approx(geodesic_inv(12.0, 0.0, 11.0, 0.0), abs=1e-6)
    d = distance_to_edges(-70.0, -61.0, np.array([[-70.0, -60.0]]), np.array([[-70.0, -60.5]]))
    assert d == pytest.approx(geodesic_inv(-70.0, -61.0, -70.0, -60.5), abs=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_oracle_matches_brute_force_on_one_long_edge(seed: int) -> None:
    # Points at least 100 m from an edge up to ~100 km long: the minimum over 1e5 samples is
    # then within ~1 mm of the truth and never below it.
    rng = np.random.default_rng(seed)
    lat0 = rng.uniform(-80, 80)
    lon0 = rng.uniform(-170, 170)
    a = np.array([lon0, lat0])
    b = a + rng.uniform(-0.6, 0.6, 2) * [1 / np.cos(np.radians(lat0)), 1]
    for _ in range(3):
        p = a + rng.uniform(-0.3, 1.3) * (b - a) + rng.normal(0, 0.02, 2)
        d = distance_to_edges(p[0], p[1], a[None], b[None])
        brute = brute_force_distance(p[0], p[1], a, b)
        if brute < 100:
            continue
        assert d <= brute + 1e-6
        assert d == pytest.approx(brute, abs=2e-3)


def _aeqd_distance_to_boundary(
    lon: float, lat: float, geometry: BaseGeometry, step_deg: float
) -> float:
    """A second, unrelated method: azimuthal equidistant projection centred on the point.

    There every distance *from the centre* is the exact geodesic distance; the lon/lat edges are
    densified (points exactly on them) so that the chords stand for the curves to micrometres.
    """
    aeqd = CRS.from_proj4(f"+proj=aeqd +lat_0={lat!r} +lon_0={lon!r} +ellps=WGS84 +units=m")
    to_plane = Transformer.from_crs("EPSG:4326", aeqd, always_xy=True)
    boundary = shapely.segmentize(geometry.boundary, step_deg)
    projected = shapely.transform(boundary, lambda xy: np.column_stack(to_plane.transform(*xy.T)))
    return float(shapely.distance(Point(0.0, 0.0), projected))


@pytest.mark.parametrize(
    ("centre", "radius_m", "n", "probe"),
    [
        ((20.0, 78.0), 500_000.0, 32, (0.25, 0.97)),
        ((160.0, -75.0), 300_000.0, 20, (0.1, 1.02)),
        ((46.7, 40.0), 50_000.0, 6, (0.7, 0.995)),
    ],
    ids=["78N-1000km", "75S-600km", "midlat-100km"],
)
def test_oracle_matches_an_azimuthal_equidistant_projection(
    centre: tuple[float, float], radius_m: float, n: int, probe: tuple[float, float]
) -> None:
    polygon = regular_polygon(*centre, radius_m, n)
    azimuth_fraction, radius_fraction = probe
    x, y = offset(*centre, 360.0 * azimuth_fraction, radius_m * radius_fraction)
    reference = _aeqd_distance_to_boundary(x, y, polygon, step_deg=2e-4)
    assert geodesic_distance_to_boundary(x, y, polygon) == pytest.approx(reference, abs=0.01)


def test_oracle_is_zero_on_the_boundary() -> None:
    square = Polygon([(30.25, 10.5), (30.75, 10.5), (30.75, 11.0), (30.25, 11.0)])
    assert geodesic_distance_to_boundary(30.75, 10.5, square) == 0.0
    assert geodesic_distance_to_boundary(30.5, 10.5, square) < 1e-6
    diagonal = Polygon([(30.25, 10.5), (30.75, 10.75), (30.25, 11.0)])
    assert geodesic_distance_to_boundary(30.5, 10.625, diagonal) < 1e-6


def test_oracle_measures_holes_and_every_part() -> None:
    outer = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
    hole = [(0.4, 0.4), (0.6, 0.4), (0.6, 0.6), (0.4, 0.6)]
    with_hole = Polygon(outer, [hole])
    # In the hole: outside, and the nearest boundary is the hole's ring.
    assert not oracle_covers(0.5, 0.45, with_hole)
    assert geodesic_distance_to_boundary(0.5, 0.45, with_hole) == pytest.approx(
        geodesic_inv(0.5, 0.45, 0.5, 0.4), rel=1e-9
    )
    assert oracle_depth(0.5, 0.45, with_hole) < 0
    parts = MultiPolygon([Polygon(outer), Polygon([(2, 0), (3, 0), (3, 1), (2, 1)])])
    assert geodesic_distance_to_boundary(2.1, 0.5, parts) == pytest.approx(
        geodesic_inv(2.1, 0.5, 2.0, 0.5), rel=1e-6
    )


def test_oracle_verdict_follows_the_rule() -> None:
    assert oracle_verdict(0.0, 0.0, 1000) == "inside"
    assert oracle_verdict(100.0, 100.0, 1000) == "inside"
    assert oracle_verdict(99.9, 100.0, 1000) == "possible"
    assert oracle_verdict(-99.9, 100.0, 1000) == "possible"
    assert oracle_verdict(-100.0, 100.0, 1000) == "approaching"
    assert oracle_verdict(-1000.0, 100.0, 1000) == "approaching"
    assert oracle_verdict(-1000.1, 100.0, 1000) == "outside"
    assert oracle_verdict(-1e-9, 0.0, 0.0) == "outside"


# ---------------------------------------------------------------------------------------------
# Zones all over the Earth: engine depth against the oracle
# ---------------------------------------------------------------------------------------------


def _rect(lon0: float, lat0: float, lon1: float, lat1: float) -> Polygon:
    return Polygon([(lon0, lat0), (lon1, lat0), (lon1, lat1), (lon0, lat1)])


def _square_m(lon: float, lat: float, side_m: float) -> Polygon:
    """A square about `side_m` across, vertices on the diagonals of (lon, lat)."""
    return regular_polygon(lon, lat, side_m / np.sqrt(2.0), 4, rotation=45.0)


OUTER = [(30.0, -10.1), (30.1, -10.1), (30.1, -10.0), (30.0, -10.0)]
HOLE = [(30.03, -10.07), (30.07, -10.07), (30.07, -10.03), (30.03, -10.03)]

ZONES: dict[str, Polygon | MultiPolygon] = {
    "equator-100m": _square_m(0.0, 0.0, 100.0),
    "equator-1000km": regular_polygon(10.0, 0.3, 500_000.0, 32, rotation=3.0),
    "midlat-100m-farukh": _square_m(46.83, 39.86, 100.0),
    "midlat-1000km": regular_polygon(46.7, 40.0, 500_000.0, 32, rotation=5.0),
    "midlat-long-thin-corridor": Polygon(
        [(45.70, 39.52), (46.55, 39.78), (46.545, 39.82), (45.695, 39.565)]
    ),
    "78N-1000km": regular_polygon(20.0, 78.0, 500_000.0, 32),
    "80N-parallel-edges-100km": _rect(10.0, 79.6, 14.9, 80.4),
    "80N-100m": _square_m(-40.0, 79.9, 100.0),
    "75S-600km": regular_polygon(160.0, -75.0, 300_000.0, 20, rotation=7.0),
    "80S-100m": _square_m(100.0, -79.9, 100.0),
    "utm-42E-border": _rect(41.5, 37.0, 42.5, 37.8),
    "utm-6E-border-100m": _square_m(6.0, 51.0, 100.0),
    "south-capetown-40km": regular_polygon(18.4, -33.9, 20_000.0, 7, rotation=11.0),
    "south-800km": regular_polygon(-58.4, -34.6, 400_000.0, 26),
    "near-antimeridian-fiji": regular_polygon(179.0, -17.8, 80_000.0, 8),
    "hole": Polygon(OUTER, [HOLE]),
    "multipolygon": MultiPolygon(
        [_rect(126.9, 37.9, 127.0, 38.0), _rect(127.05, 37.9, 127.15, 38.0)]
    ),
    "concave-chevron": Polygon(
        [(35.0, 33.0), (35.6, 33.3), (36.2, 33.0), (36.2, 33.5), (35.6, 33.8), (35.0, 33.5)]
    ),
}


def _edge_probes(
    polygon: Polygon, edges: Iterable[int], ring: int = 0, t: float = 0.5, deep_m: float = 2000.0
) -> dict[str, tuple[float, float]]:
    """Labelled points on both sides of chosen edges: shallow, deep, near outside, far outside."""
    offsets = {"in3m": 3.0, "out3m": -3.0, "in1m": 1.0, "out30cm": -0.3, "deep": deep_m}
    offsets |= {"out300m": -300.0, "out4km": -4000.0}
    out = {}
    for e in edges:
        pts = points_near_edge(polygon, ring, e, list(offsets.values()), t=t)
        for label, p in zip(offsets, pts, strict=True):
            out[f"r{ring}e{e}-{label}"] = p
    return out


@cache
def _probes(name: str) -> dict[str, tuple[float, float]]:
    geom = ZONES[name]
    if name == "hole":
        probes = {"hole-centre": (30.05, -10.05), "hole-near-ring": (30.05, -10.0695)}
        probes |= {"between-rings": (30.015, -10.05)}
        probes |= _edge_probes(geom, [0, 2], ring=1, deep_m=800.0)
        probes |= _edge_probes(geom, [1], ring=0, deep_m=800.0)
        probes["vertex-of-hole"] = HOLE[2]
        return probes
    if name == "multipolygon":
        probes = {"gap-middle": (127.025, 37.95), "gap-near-east": (127.049, 37.95)}
        probes |= {"in-west": (126.95, 37.95), "in-east": (127.1, 37.95)}
        for i, part in enumerate(geom.geoms):
            probes |= {f"part{i}-{k}": v for k, v in _edge_probes(part, [1, 3]).items()}
        return probes
    poly = geom
    ring = np.asarray(poly.exterior.coords)
    n = len(ring) - 1
    shortest_edge = geodesic_inv(ring[:-1, 0], ring[:-1, 1], ring[1:, 0], ring[1:, 1]).min()
    deep = min(2000.0, 0.3 * shortest_edge)
    edges = sorted({0, n // 4, n // 2, (3 * n) // 4})
    probes = _edge_probes(poly, edges, deep_m=deep)
    probes |= _edge_probes(poly, [1], t=0.23, deep_m=deep)
    probes["vertex"] = tuple(poly.exterior.coords[1])
    c = poly.representative_point()
    probes["deep-centre"] = (c.x, c.y)
    probes["far-out-50km"] = points_near_edge(poly, 0, 0, [-50_000.0])[0]
    return probes


CASES = [(name, label) for name in ZONES for label in _probes(name)]


@cache
def _index(name: str) -> ZoneIndex:
    return ZoneIndex([make_zone(ZONES[name], name)])


@cache
def _findings(name: str) -> pd.DataFrame:
    probes = _probes(name)
    frame = reports_df(probes.values(), ids=list(probes))
    return _index(name).check(frame, include_outside=True).set_index("report_id")


@pytest.mark.parametrize(("zone", "probe"), CASES, ids=[f"{z}:{p}" for z, p in CASES])
def test_depth_matches_geodesic_reference(zone: str, probe: str) -> None:
    geometry = ZONES[zone]
    lon, lat = _probes(zone)[probe]
    reference = oracle_depth(lon, lat, geometry)
    # The construction itself: a probe placed inside is covered, one placed outside is not.
    if "-in" in probe or "deep" in probe or probe.startswith("in-"):
        assert reference > 0, f"test construction: {probe} should be inside"
    if "-out" in probe or probe.startswith(("far-out", "hole-", "gap-")):
        assert reference < 0, f"test construction: {probe} should be outside"

    findings = _findings(zone)
    assert probe in findings.index, f"{zone}:{probe} missing from include_outside findings"
    row = findings.loc[probe]
    engine = float(row["depth_m"])
    tolerance = depth_tolerance(reference)
    assert abs(engine - reference) <= tolerance, (
        f"{zone}:{probe} at ({lon!r}, {lat!r}): engine depth_m={engine!r}, "
        f"geodesic reference={reference!r}, error={engine - reference:+.4f} m "
        f"> tolerance {tolerance:.3f} m"
    )
    # u = 0: inside exactly when covered; approaching/outside by the warning distance.
    covered = oracle_covers(lon, lat, geometry)
    assert (row["verdict"] == "inside") == covered, (zone, probe, row["verdict"], covered)
    assert row["verdict"] in allowed_verdicts(reference, 0.0, 1000.0, tolerance)
    assert bool(row["violation"]) == covered  # AZE is not authorized


@pytest.mark.parametrize("zone", list(ZONES))
def test_each_probe_alone_gets_its_batch_answer(zone: str) -> None:
    # A lone report takes the engine's scalar path (single checks); the test above the array path.
    together = _findings(zone)
    for probe, (lon, lat) in _probes(zone).items():
        frame = reports_df([(lon, lat)], ids=[probe])
        alone = _index(zone).check(frame, include_outside=True).set_index("report_id")
        assert len(alone) == 1
        row, expected = alone.loc[probe], together.loc[probe]
        assert row["verdict"] == expected["verdict"], (zone, probe)
        assert row["violation"] == expected["violation"], (zone, probe)
        assert row["depth_m"] == expected["depth_m"], (zone, probe)  # to the last bit


def test_exactly_on_vertex_and_edge_is_inside_with_depth_zero() -> None:
    # Dyadic coordinates: the edge points lie exactly on the lon/lat lines.
    poly = Polygon([(30.25, 10.5), (30.75, 10.75), (30.75, 11.25), (30.25, 11.0)])
    points = {
        "vertex": (30.75, 10.75),
        "diagonal-edge": (30.5, 10.625),
        "meridian-edge": (30.75, 11.0),
        "first-vertex": (30.25, 10.5),
    }
    for lon, lat in points.values():
        assert oracle_covers(lon, lat, poly)
        assert geodesic_distance_to_boundary(lon, lat, poly) < 1e-6
    index = ZoneIndex([make_zone(poly)])
    found = index.check(reports_df(points.values(), ids=list(points))).set_index("report_id")
    assert set(found.index) == set(points)
    for label in points:
        assert found.loc[label, "verdict"] == "inside", label
        assert bool(found.loc[label, "violation"]), label
        assert 0.0 <= found.loc[label, "depth_m"] <= 0.5, (label, found.loc[label, "depth_m"])


def test_one_ulp_outside_a_vertex_is_not_inside() -> None:
    # Near (0, 0) one ulp of a coordinate is far below a nanometre and the geodesic distance to
    # the vertex rounds to 0 m; the point is still not covered. With u = 0 it must not be
    # `inside` (P is in Z exactly when shapely.covers holds): its depth must be negative, not
    # -0.0 (which satisfies depth >= u).
    poly = Polygon([(0.0, 0.0), (0.001, 0.0005), (0.001, 0.0015), (0.0, 0.001)])
    points = {
        "west-of-origin-vertex": (np.nextafter(0.0, -1.0), 0.0),
        "south-of-origin-vertex": (0.0, np.nextafter(0.0, -1.0)),
        "east-of-top-vertex": (np.nextafter(0.001, 1.0), 0.0015),
        "north-of-top-vertex": (0.001, np.nextafter(0.0015, 1.0)),
    }
    for lon, lat in points.values():
        assert not oracle_covers(lon, lat, poly)
    index = ZoneIndex([make_zone(poly)])
    frame = reports_df(points.values(), ids=list(points))
    found = index.check(frame, include_outside=True).set_index("report_id")
    wrong = {
        label: (found.loc[label, "verdict"], repr(found.loc[label, "depth_m"]))
        for label in points
        if found.loc[label, "verdict"] == "inside" or not found.loc[label, "depth_m"] < 0
    }
    assert not wrong, f"uncovered points judged inside / with depth >= 0: {wrong}"


def test_multipolygon_reports_one_finding_per_zone_not_per_part() -> None:
    probes = _probes("multipolygon")
    found = _findings("multipolygon")
    assert len(found) == len(probes)
    assert found.index.is_unique


# ---------------------------------------------------------------------------------------------
# Verdicts and violations: every branch of the rule, judged by the oracle's depth
# ---------------------------------------------------------------------------------------------

SQUARE = _rect(46.40, 39.50, 46.50, 39.60)  # ~8.6 km x 11 km near the Lachin corridor


def _at_depth(depth_m: float, edge: int = 0) -> tuple[float, float]:
    """A point about `depth_m` (+ inside) from the middle of one of SQUARE's edges."""
    return points_near_edge(SQUARE, 0, edge, [depth_m])[0]


RULE_CASES = [
    # (label, nominal depth, u, warning, party, expected verdict, expected violation)
    ("deep-inside", 500.0, 100.0, 1000.0, "AZE", "inside", True),
    ("deep-inside-authorized", 500.0, 100.0, 1000.0, "RU-PK", "inside", False),
    ("inside-no-uncertainty", 2.0, 0.0, 1000.0, "AZE", "inside", True),
    ("inside-by-more-than-u", 160.0, 150.0, 1000.0, "ARM", "inside", True),
    ("straddle-inside", 50.0, 100.0, 1000.0, "AZE", "possible", True),
    ("straddle-outside", -50.0, 100.0, 1000.0, "AZE", "possible", True),
    ("straddle-outside-authorized", -50.0, 100.0, 1000.0, "RU-PK", "possible", False),
    ("straddle-big-disc", 300.0, 500.0, 1000.0, "ARM", "possible", True),
    ("outside-beyond-u", -140.0, 120.0, 1000.0, "AZE", "approaching", False),
    ("approaching-no-u", -2.0, 0.0, 1000.0, "AZE", "approaching", False),
    ("approaching-near-warning", -990.0, 0.0, 1000.0, "AZE", "approaching", False),
    ("approaching-custom-warning", -1500.0, 0.0, 2000.0, "AZE", "approaching", False),
    ("outside-past-warning", -1010.0, 0.0, 1000.0, "AZE", "outside", False),
    ("outside-custom-warning", -2100.0, 0.0, 2000.0, "AZE", "outside", False),
    ("outside-zero-warning", -5.0, 0.0, 0.0, "AZE", "outside", False),
    ("outside-past-warning-with-u", -1300.0, 200.0, 1000.0, "AZE", "outside", False),
]


@pytest.mark.parametrize(
    ("label", "depth", "u", "warning", "party", "verdict", "violation"),
    RULE_CASES,
    ids=[c[0] for c in RULE_CASES],
)
def test_verdict_and_violation_branches(
    label: str, depth: float, u: float, warning: float, party: str, verdict: str, violation: bool
) -> None:
    lon, lat = _at_depth(depth)
    reference = oracle_depth(lon, lat, SQUARE)
    # The construction is far enough from every threshold for the tolerance not to matter.
    assert allowed_verdicts(reference, u, warning, depth_tolerance(reference)) == {verdict}
    zone = make_zone(SQUARE, "lachin", warning_m=warning, authorized=frozenset({"RU-PK"}))
    index = ZoneIndex([zone])
    frame = reports_df([(lon, lat)], party=party, uncertainty_m=u, ids=[label])
    found = index.check(frame)
    if verdict == "outside":
        assert found.empty, found
        found = index.check(frame, include_outside=True)
    assert len(found) == 1, found
    row = found.iloc[0]
    assert row["verdict"] == verdict, (label, row["depth_m"], reference)
    assert bool(row["violation"]) is violation
    assert abs(row["depth_m"] - reference) <= depth_tolerance(reference)
    assert row["report"] == 0
    assert row["report_id"] == label
    assert row["zone"] == 0
    assert row["zone_id"] == "lachin"
    assert row["zone_name"] == zone.name
    assert row["zone_version"] == 1
    assert row["party"] == party
    assert pd.Timestamp(row["observed_at"]) == pd.Timestamp(AT)


def test_violation_needs_inside_or_possible_and_an_unauthorized_party() -> None:
    zone = make_zone(SQUARE, "lachin", authorized=frozenset({"RU-PK", "ARM"}))
    points = [_at_depth(400.0), _at_depth(-30.0), _at_depth(-600.0)]
    parties = ["AZE", "ARM", "RU-PK"]
    rows = [(p, party) for p in points for party in parties]
    frame = reports_df(
        [p for p, _ in rows],
        party=[party for _, party in rows],
        uncertainty_m=50.0,
        ids=[f"{i}" for i in range(len(rows))],
    )
    found = ZoneIndex([zone]).check(frame).set_index("report_id")
    assert len(found) == len(rows)
    for i, (p, party) in enumerate(rows):
        verdict = oracle_verdict(oracle_depth(*p, SQUARE), 50.0, 1000.0)
        row = found.loc[str(i)]
        assert row["verdict"] == verdict
        assert bool(row["violation"]) == (verdict in {"inside", "possible"} and party == "AZE")


def test_report_row_position_is_the_input_position() -> None:
    points = [_at_depth(-5000.0), _at_depth(300.0), _at_depth(-8000.0), _at_depth(-200.0)]
    found = ZoneIndex([make_zone(SQUARE)]).check(reports_df(points, ids=["a", "b", "c", "d"]))
    assert list(zip(found["report"], found["report_id"], strict=True)) == [(1, "b"), (3, "d")]


# --- validity periods ---

FROM = datetime(2020, 11, 10, 20, 0, tzinfo=UTC)
TO = datetime(2024, 1, 1, tzinfo=UTC)
PLUS4 = timezone(timedelta(hours=4))


VALIDITY_CASES = [
    ("at-valid-from", FROM, True),
    ("just-before-valid-from", FROM - timedelta(microseconds=1), False),
    ("well-before", datetime(2019, 1, 1, tzinfo=UTC), False),
    ("during", datetime(2022, 3, 25, tzinfo=UTC), True),
    ("just-before-valid-to", TO - timedelta(microseconds=1), True),
    ("at-valid-to-exclusive", TO, False),
    ("at-valid-to-other-offset", TO.astimezone(PLUS4), False),
    (
        "before-valid-to-other-offset",
        datetime(2024, 1, 1, 3, 0, tzinfo=timezone(timedelta(hours=4))),
        True,
    ),
    ("after", datetime(2025, 1, 1, tzinfo=UTC), False),
]


@pytest.mark.parametrize(
    ("label", "at", "in_force"), VALIDITY_CASES, ids=[c[0] for c in VALIDITY_CASES]
)
def test_only_zones_in_force_are_judged(label: str, at: datetime, in_force: bool) -> None:
    zone = make_zone(SQUARE, "lachin", valid_from=FROM, valid_to=TO)
    frame = reports_df([_at_depth(500.0)], observed_at=at, ids=[label])
    index = ZoneIndex([zone])
    for include_outside in (False, True):
        found = index.check(frame, include_outside=include_outside)
        assert len(found) == (1 if in_force else 0), (label, include_outside)
    if in_force:
        assert found.iloc[0]["verdict"] == "inside"


def test_versions_answer_for_their_own_period() -> None:
    # Version 1 is the square until the handover; version 2 is the square's eastern half after.
    handover = datetime(2020, 12, 1, tzinfo=UTC)
    east = _rect(46.45, 39.50, 46.50, 39.60)
    v1 = make_zone(SQUARE, "lachin", valid_from=EPOCH, valid_to=handover, version=1)
    v2 = make_zone(east, "lachin", valid_from=handover, version=2)
    west_point = (46.42, 39.55)
    index = ZoneIndex([v1, v2])
    times = [handover - timedelta(seconds=1), handover, datetime(2030, 1, 1, tzinfo=UTC)]
    frame = reports_df([west_point] * 3, observed_at=times, ids=["before", "at", "later"])
    found = index.check(frame, include_outside=True).set_index("report_id")
    assert sorted(found.index) == ["at", "before", "later"]
    assert found.loc["before", "zone_version"] == 1
    assert found.loc["before", "verdict"] == "inside"
    assert found.loc["before", "zone"] == 0
    for label in ("at", "later"):
        assert found.loc[label, "zone_version"] == 2
        assert found.loc[label, "zone"] == 1
        assert found.loc[label, "verdict"] != "inside"
        reference = oracle_depth(*west_point, east)
        assert abs(found.loc[label, "depth_m"] - reference) <= depth_tolerance(reference)


def test_batch_frame_of_domain_reports_is_judged_by_check() -> None:
    lon, lat = _at_depth(250.0)
    reports = [
        Report(id="p1", party="AZE", observed_at=AT, lon=lon, lat=lat, uncertainty_m=0.0),
        Report(id="p2", party="RU-PK", observed_at=AT, lon=lon, lat=lat, uncertainty_m=400.0),
        Report(id="p3", party="AZE", observed_at=FROM - timedelta(days=1), lon=lon, lat=lat),
    ]
    zone = make_zone(SQUARE, "lachin", valid_from=FROM)
    found = (
        ZoneIndex([zone]).check(ReportBatch.from_reports(reports).frame()).set_index("report_id")
    )
    assert sorted(found.index) == ["p1", "p2"]
    assert found.loc["p1", "verdict"] == "inside"
    assert bool(found.loc["p1", "violation"])
    assert found.loc["p2", "verdict"] == "possible"
    assert not bool(found.loc["p2", "violation"])


def test_several_zones_give_one_row_per_zone_in_force() -> None:
    a = make_zone(SQUARE, "a")
    b = make_zone(_rect(46.45, 39.55, 46.60, 39.70), "b", authorized=frozenset({"AZE"}))
    c = make_zone(_rect(46.45, 39.55, 46.60, 39.70), "c", valid_to=datetime(2021, 1, 1, tzinfo=UTC))
    p = (46.475, 39.575)  # in a and b (and c, which has ended)
    found = ZoneIndex([a, b, c]).check(reports_df([p])).set_index("zone_id")
    assert sorted(found.index) == ["a", "b"]
    assert bool(found.loc["a", "violation"])
    assert not bool(found.loc["b", "violation"])
    for zone_id, geom in (("a", a.geometry), ("b", b.geometry)):
        reference = oracle_depth(*p, geom)
        assert abs(found.loc[zone_id, "depth_m"] - reference) <= depth_tolerance(reference)
