"""ZoneBoundary's search tiers: whichever tier settles a point, the distance is the oracle's."""

import numpy as np
import pytest
import shapely

import app.depth
from app.depth import ZoneBoundary
from tests.oracle import depth_tolerance, geodesic_distance_to_boundary


def spiky_zone() -> shapely.Polygon:
    # A star with per-vertex radial noise: many segments at nearly the same distance from a point,
    # the case where a few nearest samples cannot prove the answer.
    rng = np.random.default_rng(3)
    angle = np.linspace(0, 2 * np.pi, 600, endpoint=False)
    radius = 0.05 * (1 + 0.3 * np.sin(5 * angle)) * rng.uniform(0.85, 1.0, angle.size)
    return shapely.Polygon(
        np.column_stack([46.8 + radius * np.cos(angle) / 0.77, 40.0 + radius * np.sin(angle)])
    )


@pytest.mark.parametrize(
    "tiers", [(1,), (2, 4), (8, 48)], ids=["rtree-mostly", "two-kd-tiers", "default"]
)
def test_every_search_tier_gives_the_oracle_distance(
    monkeypatch: pytest.MonkeyPatch, tiers: tuple[int, ...]
) -> None:
    monkeypatch.setattr(app.depth, "NEIGHBOURS", tiers)
    zone = spiky_zone()
    rng = np.random.default_rng(11)
    lon = 46.8 + rng.uniform(-0.08, 0.08, 60)
    lat = 40.0 + rng.uniform(-0.06, 0.06, 60)
    found = ZoneBoundary(zone).distance(lon, lat)
    for x, y, d in zip(lon, lat, found, strict=True):
        reference = geodesic_distance_to_boundary(x, y, zone)
        assert d == pytest.approx(reference, abs=depth_tolerance(reference))


def test_with_a_limit_near_points_are_exact_and_far_ones_beyond_it() -> None:
    zone = spiky_zone()
    east_x, east_y = shapely.get_coordinates(zone.exterior)[0]  # the vertex at angle 0
    lon, lat = np.array([east_x + 0.003, 47.5]), np.array([east_y, 40.0])  # ~250 m; ~50 km out
    found = ZoneBoundary(zone).distance(lon, lat, limit_m=1000.0)
    near = geodesic_distance_to_boundary(lon[0], lat[0], zone)
    assert near < 1000.0 and found[0] == pytest.approx(near, abs=depth_tolerance(near))
    assert found[1] > 1000.0


@pytest.mark.parametrize(
    "tiers", [(1,), (2, 4), (8, 48)], ids=["rtree-mostly", "two-kd-tiers", "default"]
)
@pytest.mark.parametrize("limit_m", [np.inf, 0.0, 300.0, 3000.0])
def test_one_point_at_a_time_gives_the_array_distance(
    monkeypatch: pytest.MonkeyPatch, tiers: tuple[int, ...], limit_m: float
) -> None:
    # `distance_one` (the scalar path of single checks) repeats `distance` step for step.
    monkeypatch.setattr(app.depth, "NEIGHBOURS", tiers)
    boundary = ZoneBoundary(spiky_zone())
    rng = np.random.default_rng(12)
    lon = 46.8 + rng.uniform(-0.08, 0.08, 40)
    lat = 40.0 + rng.uniform(-0.06, 0.06, 40)
    together = boundary.distance(lon, lat, limit_m)
    for x, y, d in zip(lon, lat, together, strict=True):
        alone = boundary.distance_one(float(x), float(y), limit_m)
        if d > limit_m:  # beyond the limit, only "beyond" is promised
            assert alone > limit_m
        else:
            assert alone == d  # the same steps on the same numbers
