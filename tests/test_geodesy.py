"""The projection bounds the depth search relies on, checked against PROJ's own scale factors."""

import math

import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
from shapely.geometry import Polygon, box

from app.engine import ZoneIndex
from app.geodesy import (
    MAX_REACH_DEG,
    MIN_RADIUS_M,
    boundary_segments,
    expanded_bounds,
    local_projection,
    scale_spread,
    sphere_centre,
    zone_reach,
)
from tests.factories import make_zone


@pytest.mark.parametrize("centre_lat", [-89.0, -75.0, -33.0, 0.0, 40.0, 80.0, 89.9])
def test_scale_spread_bounds_the_local_projection_scale_everywhere_within_reach(
    centre_lat: float,
) -> None:
    # The scale of the app's own projection, measured: a 1 m geodesic step, projected.
    to_plane = local_projection(10.0, centre_lat)
    geod = pyproj.Geod(ellps="WGS84")
    rng = np.random.default_rng(7)
    n = 4000
    dist = rng.uniform(0, 6_000_000, n)
    lon, lat, _ = geod.fwd(
        np.full(n, 10.0), np.full(n, centre_lat), rng.uniform(-180, 180, n), dist
    )
    lon2, lat2, _ = geod.fwd(lon, lat, rng.uniform(-180, 180, n), np.ones(n))
    x1, y1 = to_plane.transform(lon, lat)
    x2, y2 = to_plane.transform(lon2, lat2)
    scale = np.hypot(x2 - x1, y2 - y1)
    assert np.all(scale <= scale_spread(dist / MIN_RADIUS_M) + 1e-6)
    assert np.all(scale >= 1 - 1e-6)  # k_0 = 1 at the centre is the smallest scale


def test_boundary_segments_drop_the_antimeridian_cut() -> None:
    east = box(170.0, -10.0, 180.0, 10.0)
    west = box(-180.0, -10.0, -170.0, 10.0)
    segments = boundary_segments(shapely.MultiPolygon([east, west]))
    on_cut = (np.abs(segments.start[:, 0]) == 180) & (segments.start[:, 0] == segments.end[:, 0])
    assert not on_cut.any()
    assert len(segments.start) > 0


def test_boundary_segments_keep_an_edge_on_180_with_nothing_across_it() -> None:
    # The zone ends at +180: its edge there is a real boundary, not a cut.
    segments = boundary_segments(box(170.0, -10.0, 180.0, 10.0))
    on_180 = (segments.start[:, 0] == 180) & (segments.end[:, 0] == 180)
    assert on_180.any()
    covered = segments.start[on_180, 1].min(), segments.end[on_180, 1].max()
    assert min(covered) == -10.0 and max(covered) == 10.0


def test_boundary_segments_never_pass_a_pole() -> None:
    # 0.01° steps summed from 80 to 90 overshoot 90 by an ulp unless clipped.
    segments = boundary_segments(box(0.0, 80.0, 90.0, 90.0))
    assert segments.start[:, 1].max() == 90.0
    assert segments.end[:, 1].max() == 90.0


@pytest.mark.parametrize(
    ("geometry", "judgeable"),
    [
        (box(46.5, 39.5, 47.0, 40.0), True),
        (box(0.0, 80.0, 90.0, 90.0), True),  # touches the north pole: judged
        (box(10.0, -20.0, 40.0, 20.0), True),  # about 3,300 km from its centre at the corners
        (box(-180.0, -90.0, 180.0, 90.0), False),
        (box(0.0, -90.0, 180.0, 90.0), False),
        (box(10.0, -90.0, 20.0, 90.0), False),  # a thin strip from pole to pole
        (box(0.0, -40.0, 90.0, 40.0), False),
    ],
)
def test_zone_reach_measures_the_boundary_from_the_projection_centre(
    geometry: shapely.Geometry, judgeable: bool
) -> None:
    reach = zone_reach(geometry)
    assert reach.judgeable is judgeable
    assert (reach.angle_deg <= MAX_REACH_DEG) is judgeable
    # The farthest point is on the boundary and as far as reported.
    assert shapely.distance(geometry.boundary, shapely.Point(reach.farthest)) < 1e-9
    lon0, lat0 = np.radians(reach.centre)
    lon1, lat1 = np.radians(reach.farthest)
    _, _, metres = pyproj.Geod(ellps="WGS84").inv(*reach.centre, *reach.farthest)
    assert math.degrees(metres / 6_371_008.8) == pytest.approx(reach.angle_deg, abs=0.3)


def test_sphere_centre_of_a_zone_across_the_antimeridian_lies_on_it() -> None:
    lon, lat = sphere_centre(
        shapely.MultiPolygon([box(175.0, 0.0, 180.0, 2.0), box(-180.0, 0.0, -175.0, 2.0)])
    )
    assert abs(abs(lon) - 180.0) < 1.0 and 0.5 < lat < 1.5


@pytest.mark.parametrize("lat", [0.0, 45.0, -70.0, 85.0, 89.99])
def test_expanded_bounds_contain_every_point_within_the_distance(lat: float) -> None:
    metres = 5000.0
    minx, miny, maxx, maxy = expanded_bounds(
        np.array([[10.0, lat, 10.0, lat]]), np.array([metres])
    )[0]
    az = np.linspace(-180, 180, 361)
    lon2, lat2, _ = pyproj.Geod(ellps="WGS84").fwd(
        np.full(361, 10.0), np.full(361, lat), az, np.full(361, metres)
    )
    wrapped = (lon2 - minx) % 360 + minx  # compare longitudes on the box's own branch
    assert np.all((wrapped >= minx) & (wrapped <= maxx) | (maxx - minx >= 360))
    assert np.all((lat2 >= miny) & (lat2 <= maxy))


def test_zone_across_the_antimeridian_is_deep_inside_next_to_the_cut() -> None:
    zone = make_zone(
        shapely.MultiPolygon([box(170.0, -5.0, 180.0, 5.0), box(-180.0, -5.0, -170.0, 5.0)])
    )
    reports = pd.DataFrame(
        {
            "lon": [179.999],
            "lat": [0.0],
            "observed_at": [pd.Timestamp("2024-01-01", tz="UTC")],
            "party": ["X"],
        }
    )
    (depth,) = ZoneIndex([zone]).check(reports)["depth_m"]
    _, _, to_edge = pyproj.Geod(ellps="WGS84").inv(179.999, 0.0, 179.999, 5.0)
    assert depth == pytest.approx(to_edge, rel=1e-3)


def test_naive_times_are_refused() -> None:
    zone = make_zone(Polygon([(0, 0), (1, 0), (1, 1)]))
    reports = pd.DataFrame(
        {"lon": [0.5], "lat": [0.2], "observed_at": [pd.Timestamp("2024-01-01")], "party": ["X"]}
    )
    with pytest.raises(ValueError, match="timezone"):
        ZoneIndex([zone]).check(reports)


def test_an_empty_batch_gives_an_empty_frame_with_the_finding_columns() -> None:
    zone = make_zone(Polygon([(0, 0), (1, 0), (1, 1)]))
    empty = pd.DataFrame(
        {"lon": [], "lat": [], "observed_at": pd.to_datetime([], utc=True), "party": []}
    )
    findings = ZoneIndex([zone]).check(empty)
    assert findings.empty and "depth_m" in findings.columns


@pytest.mark.parametrize("batch", [1, 20_000])  # one mask for few reports, sorted slices for many
def test_a_report_across_the_antimeridian_from_a_zone_is_approaching(batch: int) -> None:
    zone = make_zone(box(179.0, -1.0, 179.999, 1.0))
    lon = np.full(batch, -179.9995)
    reports = pd.DataFrame(
        {
            "lon": lon,
            "lat": np.zeros(batch),
            "observed_at": pd.Timestamp("2024-01-01", tz="UTC"),
            "party": "X",
        }
    )
    findings = ZoneIndex([zone]).check(reports)
    _, _, expected = pyproj.Geod(ellps="WGS84").inv(179.999, 0.0, -179.9995, 0.0)
    assert len(findings) == batch
    assert set(findings["verdict"]) == {"approaching"}
    assert findings["depth_m"].to_numpy() == pytest.approx(-expected, abs=0.01)
