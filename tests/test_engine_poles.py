"""Zones at the poles, along the antimeridian and beyond the engine's reach.

Zones that touch a pole or the antimeridian are judged, and checked against the independent
geodesic reference (tests/oracle.py). Zones that reach too far from their centre for the local
projection (the world, a hemisphere, pole to pole) are refused by validation and, if a store holds
one anyway, set aside by the index without stopping any other zone. Validation and the engine decide
with the same `zone_reach`.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Point, Polygon, box

from app.depth import ZoneBoundary
from app.engine import ZoneIndex
from app.errors import InvalidGeometry
from app.geodesy import MAX_REACH_DEG, UnjudgeableZone, zone_reach
from app.io import FileProblem
from app.io.zones import read_zones
from app.validate import validate_zone_geometry
from tests.factories import make_zone, reports_df
from tests.oracle import depth_tolerance, oracle_covers, oracle_depth


def validated(ring: list[list[float]]) -> Polygon | MultiPolygon:
    """The zone as validation would store it."""
    geometry, _ = validate_zone_geometry({"type": "Polygon", "coordinates": [ring]})
    return geometry


POLAR = {
    "north-pole-edge": [[0, 80], [90, 80], [90, 90], [0, 90], [0, 80]],
    "south-pole-vertex": [[10, -80], [60, -80], [35, -90], [10, -80]],
    "half-way-round-the-pole": [[0, 80], [180, 80], [180, 85], [0, 85], [0, 80]],
    # Found by the search below: an edge on +180 with nothing across it is a real boundary.
    "pole-corner-on-180": [[180, 90], [179.9, 90], [180, 89.9], [180, 90]],
    "touching-180": [[170, 10], [180, 10], [180, 20], [170, 20], [170, 10]],
}


def _probes(geometry: Polygon, seed: int) -> list[tuple[float, float]]:
    """Random points in and around the zone, its vertices and points next to the pole."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = geometry.bounds
    pad_x, pad_y = 0.2 * (maxx - minx), 0.2 * (maxy - miny)
    lon = np.clip(rng.uniform(minx - pad_x, maxx + pad_x, 8), -180, 180)
    lat = np.clip(rng.uniform(miny - pad_y, maxy + pad_y, 8), -90, 90)
    points = list(zip(lon.tolist(), lat.tolist(), strict=True))
    vertices = shapely.get_coordinates(geometry)
    points += [tuple(c) for c in vertices[:-1]]
    # Just inside the middle of every edge, where the nearest boundary is that edge.
    inner = np.array(geometry.representative_point().coords[0])
    middles = (vertices[:-1] + vertices[1:]) / 2
    points += [tuple(m + 1e-3 * (inner - m)) for m in middles]
    pole = 90.0 if maxy > 0 else -90.0
    points += [(float(minx + maxx) / 2, pole), (float(minx), pole - math.copysign(1e-4, pole))]
    return points


@pytest.mark.parametrize("name", list(POLAR))
def test_zone_at_a_pole_or_on_180_is_judged_as_the_geodesic_reference_says(name: str) -> None:
    geometry = validated(POLAR[name])
    assert isinstance(geometry, Polygon)  # no antimeridian cut: the reference sees the same edges
    index = ZoneIndex([make_zone(geometry, name)])
    assert index.set_aside == ()
    points = _probes(geometry, seed=len(name))
    batch = index.check(reports_df(points), include_outside=True)
    assert len(batch) == len(points)
    for (lon, lat), depth, verdict in zip(points, batch["depth_m"], batch["verdict"], strict=True):
        reference = oracle_depth(lon, lat, geometry)
        assert abs(depth - reference) <= depth_tolerance(reference), (lon, lat, depth, reference)
        assert (verdict == "inside") == oracle_covers(lon, lat, geometry), (lon, lat)
        # The single-report path gives the same answer.
        (alone,) = index.check(reports_df([(lon, lat)]), include_outside=True)["depth_m"]
        assert abs(alone - reference) <= depth_tolerance(reference), (lon, lat, alone, reference)


UNJUDGEABLE = {
    "world": [[-180, -90], [180, -90], [180, 90], [-180, 90], [-180, -90]],
    "hemisphere": [[0, -90], [180, -90], [180, 90], [0, 90], [0, -90]],
    "pole-to-pole": [[10, -90], [20, -90], [20, 90], [10, 90], [10, -90]],
    "continent": [[0, -60], [170, -60], [170, 60], [0, 60], [0, -60]],
}


@pytest.mark.parametrize("name", list(UNJUDGEABLE))
def test_zone_beyond_reach_is_refused_naming_its_farthest_position(name: str) -> None:
    ring = UNJUDGEABLE[name]
    with pytest.raises(InvalidGeometry, match="cannot be judged") as refused:
        validated(ring)
    field = refused.value.field or ""
    assert field.startswith("coordinates/0/")
    # The position named is one the reach measures beyond the limit.
    lon, lat = ring[int(field.rsplit("/", 1)[1])]
    reach = zone_reach(Polygon(ring))
    assert not reach.judgeable
    centre = np.radians(reach.centre)
    cos_angle = math.sin(centre[1]) * math.sin(math.radians(lat)) + math.cos(centre[1]) * math.cos(
        math.radians(lat)
    ) * math.cos(math.radians(lon) - centre[0])
    assert math.degrees(math.acos(max(-1.0, min(1.0, cos_angle)))) > MAX_REACH_DEG


@pytest.mark.parametrize("name", list(UNJUDGEABLE))
def test_the_engine_will_not_measure_a_zone_beyond_reach(name: str) -> None:
    with pytest.raises(UnjudgeableZone, match="cannot be judged"):
        ZoneBoundary(Polygon(UNJUDGEABLE[name]))


BROKEN = {
    "world": box(-180, -90, 180, 90),
    "hemisphere": Polygon(UNJUDGEABLE["hemisphere"]),
    "a point": Point(46.8, 40.0),
    "empty": Polygon(),
    "not finite": Polygon([(46.0, 40.0), (47.0, float("nan")), (47.0, 41.0)]),
}


def test_zones_that_cannot_be_indexed_are_set_aside_and_the_others_judged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = make_zone(box(46.5, 39.8, 47.0, 40.2), "good")
    broken = [make_zone(g, name) for name, g in BROKEN.items()]
    with caplog.at_level(logging.ERROR, logger="truce.engine"):
        index = ZoneIndex([broken[0], good, *broken[1:]])
    assert [z.zone_id for z in index.set_aside] == list(BROKEN)
    assert all(z.reason for z in index.set_aside)
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "truce.engine")
    assert all(repr(name) in logged for name in BROKEN)
    assert [z.id for z in index.zones] == ["good"]

    # The good zone answers exactly as it does alone, in batches and one report at a time.
    points = [(46.75, 40.0), (46.5005, 40.0), (46.49, 40.0), (-100.0, -80.0)]
    alone = ZoneIndex([good]).check(reports_df(points), include_outside=True)
    together = index.check(reports_df(points), include_outside=True)
    assert together["zone_id"].tolist() == ["good"] * len(points)
    np.testing.assert_array_equal(together["depth_m"], alone["depth_m"])
    assert together["verdict"].tolist() == alone["verdict"].tolist()
    single = index.check(reports_df(points[:1]))
    assert single["verdict"].tolist() == ["inside"]


def test_zone_with_a_time_the_index_cannot_hold_is_set_aside() -> None:
    ancient = make_zone(
        box(46.5, 39.8, 47.0, 40.2), "ancient", valid_from=datetime(1, 1, 1, tzinfo=UTC)
    )
    index = ZoneIndex([ancient, make_zone(box(10, 10, 11, 11), "fine")])
    assert [z.zone_id for z in index.set_aside] == ["ancient"]
    assert len(index) == 1


# -- a search for degenerate zones -----------------------------------------------------------------


@st.composite
def degenerate_rings(draw: st.DrawFn) -> list[list[float]]:
    """Rings near poles and the antimeridian, from nanometres to continents, some at a pole."""
    lon0 = draw(st.one_of(st.sampled_from([-180.0, 180.0, 0.0, 179.9]), st.floats(-180, 180)))
    lat0 = draw(st.one_of(st.sampled_from([-90.0, 90.0, 89.9, -89.99, 0.0]), st.floats(-90, 90)))
    scale = draw(st.sampled_from([1e-9, 1e-6, 1e-3, 0.1, 1.0, 10.0, 30.0, 60.0]))
    ring = []
    for _ in range(draw(st.integers(3, 7))):
        if draw(st.integers(0, 5)) == 0:  # a vertex at a pole
            lon, lat = draw(st.floats(-180, 180)), draw(st.sampled_from([-90.0, 90.0]))
        else:
            lon = lon0 + scale * draw(st.floats(-1, 1))
            lat = lat0 + scale * draw(st.floats(-1, 1))
        ring.append([min(max(lon, -180.0), 180.0), min(max(lat, -90.0), 90.0)])
    return ring


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    degenerate_rings(),
    st.lists(st.tuples(st.floats(-1.5, 1.5), st.floats(-1.5, 1.5)), min_size=2, max_size=2),
)
def test_every_accepted_zone_is_indexed_and_measured_as_the_reference_says(
    ring: list[list[float]], offsets: list[tuple[float, float]]
) -> None:
    try:
        geometry = validated(ring)
    except InvalidGeometry:
        return  # refused with a reason: nothing stored, nothing to judge
    index = ZoneIndex([make_zone(geometry)])
    assert index.set_aside == ()
    minx, miny, maxx, maxy = geometry.bounds
    inside = geometry.representative_point()
    width, height = max(maxx - minx, 1e-3), max(maxy - miny, 1e-3)
    points = [
        (
            min(max(inside.x + dx * width, -180.0), 180.0),
            min(max(inside.y + dy * height, -90.0), 90.0),
        )
        for dx, dy in offsets
    ]
    depth = index.check(reports_df(points), include_outside=True)["depth_m"].to_numpy()
    assert np.isfinite(depth).all()
    if isinstance(geometry, Polygon):  # the reference counts antimeridian cuts as boundary
        for (lon, lat), found in zip(points, depth, strict=True):
            reference = oracle_depth(lon, lat, geometry)
            assert abs(found - reference) <= depth_tolerance(reference), (lon, lat, found)


# -- zones read from files take the same test ------------------------------------------------------


@pytest.mark.parametrize("name", ["world", "hemisphere"])
def test_zone_file_beyond_reach_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / "zones.csv"
    wkt = Polygon(UNJUDGEABLE[name]).wkt
    path.write_text(
        "id,name,kind,valid_from,wkt\n"
        f'far,Far,buffer,2020-01-01T00:00:00+00:00,"{wkt}"\n'
        f'near,Near,buffer,2020-01-01T00:00:00+00:00,"{box(46.5, 39.8, 47.0, 40.2).wkt}"\n',
        encoding="utf-8",
    )
    with pytest.raises(FileProblem, match="cannot be judged"):
        read_zones(path)
