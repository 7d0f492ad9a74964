"""Zone geometry and scalar validation: every bad input is refused with its path and reason."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import shapely
from hypothesis import given
from hypothesis import strategies as st
from pyproj import Geod
from shapely import MultiPolygon, Point, Polygon

from app.domain import Report
from app.errors import InvalidGeometry, InvalidInput, InvalidReport, InvalidZone, TruceError
from app.validate import (
    check_validity_period,
    parse_timestamp,
    validate_position,
    validate_report,
    validate_zone_geometry,
)
from tests.factories import make_report

SQUARE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]
GEOD = Geod(ellps="WGS84")


def polygon(*rings: Any) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


def multipolygon(*polygons: Any) -> dict[str, Any]:
    return {"type": "MultiPolygon", "coordinates": list(polygons)}


def geodesic_area(geometry: Polygon | MultiPolygon) -> float:
    # Densified so that geodesic edges follow the straight lon/lat edges of the zone.
    area, _ = GEOD.geometry_area_perimeter(shapely.segmentize(geometry, 0.01))
    return abs(float(area))


# --- refusals -------------------------------------------------------------------------------------

BAD_GEOMETRIES = {
    "bow-tie": (
        polygon([[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]),
        "coordinates/0",
        "Self-intersection",
    ),
    "self-touching ring": (
        polygon([[0, 0], [2, 0], [1, 1], [2, 2], [0, 2], [1, 1], [0, 0]]),
        "coordinates/0",
        "Self-intersection",
    ),
    "ring vertex touching its own edge": (
        polygon([[0, 0], [4, 0], [4, 4], [2, 0], [0, 4], [0, 0]]),
        "coordinates/0",
        "Self-intersection",
    ),
    "3-position ring": (
        polygon([[0, 0], [1, 0], [0, 0]]),
        "coordinates/0",
        "at least 4 positions",
    ),
    "ring of one repeated position": (
        polygon([[5, 5], [5, 5], [5, 5], [5, 5]]),
        "coordinates/0",
        "at least 4 positions",
    ),
    "collinear ring (zero area)": (
        polygon([[0, 0], [1, 0], [2, 0], [0, 0]]),
        "coordinates/0",
        "invalid geometry",
    ),
    "lon 181": (
        polygon([[0, 0], [1, 0], [181, 1], [0, 1], [0, 0]]),
        "coordinates/0/2",
        "longitude 181 is out of range [-180, 180]",
    ),
    "lon -180.5": (
        polygon([[-180.5, 0], [1, 0], [1, 1], [0, 0]]),
        "coordinates/0/0",
        "longitude -180.5 is out of range",
    ),
    "lat -91": (
        polygon([[0, 0], [1, -91], [1, 1], [0, 1], [0, 0]]),
        "coordinates/0/1",
        "latitude -91 is out of range [-90, 90]",
    ),
    "lat 95.2": (
        polygon([[0, 0], [1, 0], [1, 1], [0, 95.2], [0, 0]]),
        "coordinates/0/3",
        "latitude 95.2 is out of range",
    ),
    "NaN longitude": (
        polygon([[0, 0], [math.nan, 0], [1, 1], [0, 1], [0, 0]]),
        "coordinates/0/1/0",
        "not a finite number",
    ),
    "infinite latitude": (
        polygon([[0, 0], [1, 0], [1, math.inf], [0, 1], [0, 0]]),
        "coordinates/0/2/1",
        "not a finite number",
    ),
    "NaN altitude": (
        polygon([[0, 0, math.nan], [1, 0], [1, 1], [0, 1], [0, 0]]),
        "coordinates/0/0/2",
        "altitude is not a finite number",
    ),
    "number as a string": (
        polygon([[0, 0], ["1.5", 0], [1, 1], [0, 1], [0, 0]]),
        "coordinates/0/1/0",
        "must be a number, got string '1.5'",
    ),
    "boolean coordinate": (
        polygon([[0, 0], [1, True], [1, 1], [0, 1], [0, 0]]),
        "coordinates/0/1/1",
        "must be a number, got boolean true",
    ),
    "null coordinate": (
        polygon([[0, 0], [1, None], [1, 1], [0, 1], [0, 0]]),
        "coordinates/0/1/1",
        "got null",
    ),
    "position of one number": (
        polygon([[0, 0], [1], [1, 1], [0, 1], [0, 0]]),
        "coordinates/0/1",
        "needs 2 numbers",
    ),
    "flat array of numbers": (
        {"type": "Polygon", "coordinates": [0, 0, 1, 1]},
        "coordinates/0",
        "expected a linear ring",
    ),
    "ring missing a nesting level": (
        {"type": "Polygon", "coordinates": [[0, 0], [1, 0], [1, 1], [0, 0]]},
        "coordinates/0/0",
        "expected a position",
    ),
    "empty Polygon coordinates": (
        polygon(),
        "coordinates",
        "at least its exterior ring",
    ),
    "empty MultiPolygon coordinates": (
        multipolygon(),
        "coordinates",
        "at least one polygon",
    ),
    "empty ring": (
        polygon([]),
        "coordinates/0",
        "empty",
    ),
    "empty polygon in a MultiPolygon": (
        multipolygon([SQUARE], []),
        "coordinates/1",
        "at least its exterior ring",
    ),
    "coordinates missing": (
        {"type": "Polygon"},
        "coordinates",
        "missing",
    ),
    "coordinates not an array": (
        {"type": "Polygon", "coordinates": "0 0, 1 0, 1 1"},
        "coordinates",
        "got string",
    ),
    "Point where a polygon is expected": (
        {"type": "Point", "coordinates": [0, 0]},
        "type",
        "must be a Polygon or MultiPolygon, got 'Point'",
    ),
    "no type": (
        {"coordinates": [SQUARE]},
        "type",
        "got null",
    ),
    "hole outside its shell": (
        polygon(SQUARE, [[2, 2], [3, 2], [3, 3], [2, 3], [2, 2]]),
        "coordinates/1",
        "Hole lies outside shell",
    ),
    "overlapping MultiPolygon parts": (
        multipolygon(
            [[[0, 0], [2, 0], [2, 2], [0, 2], [0, 0]]],
            [[[1, 1], [3, 1], [3, 3], [1, 3], [1, 1]]],
        ),
        "coordinates/1",
        "overlaps",
    ),
    "MultiPolygon parts sharing an edge": (
        multipolygon([SQUARE], [[[1, 0], [2, 0], [2, 1], [1, 1], [1, 0]]]),
        "coordinates/1",
        "polygon 1 overlaps or touches polygon 0",
    ),
    "MultiPolygon part nested in another": (
        multipolygon(
            [[[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]]],
            [[[1, 1], [2, 1], [2, 2], [1, 2], [1, 1]]],
        ),
        "coordinates/1",
        "Nested shells",
    ),
    "bow-tie in the second part of a MultiPolygon": (
        multipolygon([SQUARE], [[[5, 5], [6, 6], [6, 5], [5, 6], [5, 5]]]),
        "coordinates/1/0",
        "Self-intersection",
    ),
    "bow-tie across the antimeridian": (
        polygon([[170, 10], [-170, 20], [-170, 10], [170, 20], [170, 10]]),
        "coordinates/0",
        "Self-intersection",
    ),
    "ring around a pole": (
        polygon([[0, 80], [90, 80], [180, 80], [-90, 80], [0, 80]]),
        "coordinates/0",
        "enclose a pole",
    ),
}


@pytest.mark.parametrize(
    ("geometry", "field", "phrase"), BAD_GEOMETRIES.values(), ids=BAD_GEOMETRIES.keys()
)
def test_bad_zone_geometry_is_refused_naming_the_field(
    geometry: dict[str, Any], field: str, phrase: str
) -> None:
    with pytest.raises(InvalidGeometry) as caught:
        validate_zone_geometry(geometry)
    assert caught.value.field == field
    assert phrase in caught.value.message
    assert caught.value.detail.startswith(f"{field}: ")


def test_refusal_location_is_given_in_lon_lat() -> None:
    with pytest.raises(InvalidGeometry) as caught:
        validate_zone_geometry(polygon([[10, 40], [12, 42], [12, 40], [10, 42], [10, 40]]))
    assert "near lon 11, lat 41" in caught.value.message


def test_path_prefix_is_put_before_every_field() -> None:
    bad = polygon([[0, 0], [1, 0], [1, 1], [0, 95.2], [0, 0]])
    with pytest.raises(InvalidGeometry) as caught:
        validate_zone_geometry(bad, path="features/3/geometry")
    assert caught.value.field == "features/3/geometry/coordinates/0/3"
    assert str(caught.value).startswith("features/3/geometry/coordinates/0/3: latitude 95.2")


def test_geometry_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidGeometry, match="got an array"):
        validate_zone_geometry([SQUARE])  # type: ignore[arg-type]


# --- unambiguous repairs --------------------------------------------------------------------------


def test_unclosed_ring_is_closed_with_a_note() -> None:
    geometry, notes = validate_zone_geometry(polygon([[0, 0], [1, 0], [1, 1], [0, 1]]))
    assert geometry.equals(Polygon(SQUARE))
    assert list(geometry.exterior.coords)[0] == list(geometry.exterior.coords)[-1]
    assert len(notes) == 1
    assert notes[0].startswith("coordinates/0: ")
    assert "not closed" in notes[0]


def test_three_unclosed_distinct_positions_become_a_triangle() -> None:
    geometry, notes = validate_zone_geometry(polygon([[0, 0], [1, 0], [0, 1]]))
    assert geometry.area == pytest.approx(0.5)
    assert any("not closed" in note for note in notes)


def test_repeated_consecutive_positions_are_removed_with_a_note() -> None:
    ring = [[0, 0], [1, 0], [1, 0], [1, 1], [0, 1], [0, 1], [0, 1], [0, 0]]
    geometry, notes = validate_zone_geometry(polygon(ring))
    assert len(geometry.exterior.coords) == 5
    assert geometry.equals(Polygon(SQUARE))
    assert notes == ["coordinates/0: removed 3 repeated consecutive position(s)"]


def test_altitude_is_dropped_with_a_note() -> None:
    ring = [[0, 0, 120.0], [1, 0, 80.5], [1, 1], [0, 1, 0], [0, 0, 120.0]]
    geometry, notes = validate_zone_geometry(polygon(ring))
    assert not geometry.has_z
    assert geometry.equals(Polygon(SQUARE))
    assert len(notes) == 1
    assert "altitude of 4 position(s)" in notes[0]


def test_clean_polygon_has_no_notes() -> None:
    geometry, notes = validate_zone_geometry(polygon(SQUARE))
    assert notes == []
    assert isinstance(geometry, Polygon)


def test_multipolygon_of_one_part_stays_a_multipolygon() -> None:
    geometry, _ = validate_zone_geometry(multipolygon([SQUARE]))
    assert isinstance(geometry, MultiPolygon)
    assert len(geometry.geoms) == 1


def test_multipolygon_parts_touching_at_a_point_are_accepted() -> None:
    other = [[1, 1], [2, 1], [2, 2], [1, 2], [1, 1]]
    geometry, _ = validate_zone_geometry(multipolygon([SQUARE], [other]))
    assert geometry.area == pytest.approx(2.0)


# --- winding --------------------------------------------------------------------------------------


def test_clockwise_ring_is_accepted_and_returned_counter_clockwise() -> None:
    clockwise = SQUARE[::-1]
    assert not shapely.is_ccw(shapely.linearrings(clockwise))  # the input really is clockwise
    geometry, notes = validate_zone_geometry(polygon(clockwise))
    assert isinstance(geometry, Polygon)
    assert shapely.is_ccw(geometry.exterior)
    assert geometry.equals(Polygon(SQUARE))
    assert notes == []


def test_holes_are_returned_clockwise_whatever_their_input_winding() -> None:
    shell = [[0, 0], [0, 4], [4, 4], [4, 0], [0, 0]]  # clockwise
    hole = [[1, 1], [2, 1], [2, 2], [1, 2], [1, 1]]  # counter-clockwise
    geometry, _ = validate_zone_geometry(polygon(shell, hole))
    assert shapely.is_ccw(geometry.exterior)
    assert not shapely.is_ccw(geometry.interiors[0])
    assert geometry.area == pytest.approx(15.0)


def test_multipolygon_parts_are_each_returned_counter_clockwise() -> None:
    far = [[10, 10], [10, 11], [11, 11], [11, 10], [10, 10]]  # clockwise
    geometry, _ = validate_zone_geometry(multipolygon([SQUARE[::-1]], [far]))
    assert all(shapely.is_ccw(part.exterior) for part in geometry.geoms)


@st.composite
def star_polygons(draw: st.DrawFn) -> tuple[list[list[float]], float]:
    """A star-shaped (so simple) ring around a centre, in either winding, and its own area."""
    lon = draw(st.floats(-170, 170))
    lat = draw(st.floats(-80, 80))
    radius = draw(st.floats(0.001, 5))
    n = draw(st.integers(3, 12))
    angles = sorted(draw(st.lists(st.floats(0, 2 * math.pi), min_size=n, max_size=n, unique=True)))
    if (
        min(b - a for a, b in zip(angles, angles[1:] + [angles[0] + 2 * math.pi], strict=True))
        < 0.05
    ):
        angles = [2 * math.pi * i / n for i in range(n)]
    ring = [[lon + radius * math.cos(a), lat + radius * math.sin(a)] for a in angles]
    if draw(st.booleans()):
        ring.reverse()
    start = draw(st.integers(0, n - 1))
    ring = ring[start:] + ring[:start]
    return [*ring, ring[0]], Polygon(ring).area


@given(star_polygons())
def test_any_simple_ring_is_accepted_counter_clockwise_with_its_area(
    case: tuple[list[list[float]], float],
) -> None:
    ring, area = case
    geometry, notes = validate_zone_geometry(polygon(ring))
    assert isinstance(geometry, Polygon)
    assert geometry.is_valid
    assert shapely.is_ccw(geometry.exterior)
    assert geometry.area == pytest.approx(area, rel=1e-9)
    assert notes == []


# --- antimeridian ---------------------------------------------------------------------------------

ANTIMERIDIAN_CASES = {
    "rectangle": [[170, 10], [-170, 10], [-170, 20], [170, 20], [170, 10]],
    "rectangle, clockwise": [[170, 10], [170, 20], [-170, 20], [-170, 10], [170, 10]],
    "sloped edges": [[172.5, -18], [-176, -21.25], [-171, -14], [178, -9.5], [172.5, -18]],
    "starting east of it": [[-175, 60], [-175, 62], [179, 63], [176, 61], [-175, 60]],
}


def shifted(ring: Any, by: float) -> list[list[float]]:
    """The ring moved by `by` degrees of longitude, continuously (no wrap at ±180)."""
    out = []
    for lon, lat in ring:
        continuous = lon + 360 if lon < 0 else lon  # every case here lies within 90°E..270°E
        out.append([continuous + by, lat])
    return out


@pytest.mark.parametrize("ring", ANTIMERIDIAN_CASES.values(), ids=ANTIMERIDIAN_CASES.keys())
def test_ring_across_the_antimeridian_is_split_into_parts_touching_180(
    ring: list[list[float]],
) -> None:
    geometry, notes = validate_zone_geometry(polygon(ring))

    assert isinstance(geometry, MultiPolygon)
    assert len(geometry.geoms) == 2
    assert geometry.is_valid
    east, west = sorted(geometry.geoms, key=lambda part: -part.bounds[2])
    assert east.bounds[2] == 180.0
    assert west.bounds[0] == -180.0
    assert all(shapely.is_ccw(part.exterior) for part in geometry.geoms)
    assert any("antimeridian" in note and note.startswith("coordinates: ") for note in notes)

    away = Polygon(shifted(ring, -180.0))  # the same shape around the prime meridian
    assert away.is_valid
    assert geodesic_area(geometry) == pytest.approx(geodesic_area(away), rel=1e-3)
    # And it is the zone, not the rest of the world: the shifted centre, moved back, is inside.
    centre = away.representative_point()
    back = Point(((centre.x + 180 + 180) % 360) - 180, centre.y)
    assert shapely.covers(geometry, back)
    assert not shapely.covers(geometry, Point(0, centre.y))


def test_antimeridian_cut_follows_the_straight_lon_lat_edge() -> None:
    # docs/rule.md: edges are straight in lon/lat, so the edge (170, 0) -> (190, 40) meets 180 at
    # latitude 20 exactly; a great-circle cut would put it elsewhere.
    ring = [[170, 0], [-170, 40], [-165, 40], [-165, 0], [170, 0]]
    geometry, _ = validate_zone_geometry(polygon(ring))
    cut = {(x, y) for x, y in shapely.get_coordinates(geometry).tolist() if abs(x) == 180}
    assert cut == {(180.0, 20.0), (-180.0, 20.0), (180.0, 0.0), (-180.0, 0.0)}


def test_hole_across_the_antimeridian_stays_a_hole_in_the_split_parts() -> None:
    shell = [[170, 10], [-170, 10], [-170, 20], [170, 20], [170, 10]]
    hole = [[175, 12], [175, 18], [-175, 18], [-175, 12], [175, 12]]
    geometry, _ = validate_zone_geometry(polygon(shell, hole))
    assert isinstance(geometry, MultiPolygon)
    assert not shapely.covers(geometry, Point(179, 15))
    assert not shapely.covers(geometry, Point(-179, 15))
    assert shapely.covers(geometry, Point(172, 15))
    assert shapely.covers(geometry, Point(-172, 15))
    away = Polygon(shifted(shell, -180), [shifted(hole, -180)])
    assert geodesic_area(geometry) == pytest.approx(geodesic_area(away), rel=1e-3)


def test_hole_on_one_side_of_the_antimeridian_goes_with_its_part() -> None:
    shell = [[170, 10], [-170, 10], [-170, 20], [170, 20], [170, 10]]
    hole = [[-178, 12], [-175, 12], [-175, 18], [-178, 18], [-178, 12]]
    geometry, _ = validate_zone_geometry(polygon(shell, hole))
    assert not shapely.covers(geometry, Point(-176, 15))
    assert shapely.covers(geometry, Point(176, 15))
    assert sum(len(part.interiors) for part in geometry.geoms) == 1


def test_polygon_ending_on_the_antimeridian_is_not_split() -> None:
    ring = [[170, 10], [180, 10], [180, 20], [170, 20], [170, 10]]
    geometry, notes = validate_zone_geometry(polygon(ring))
    assert isinstance(geometry, Polygon)
    assert geometry.bounds == (170.0, 10.0, 180.0, 20.0)
    assert notes == []


def test_split_multipolygon_is_accepted_again_without_change() -> None:
    first, _ = validate_zone_geometry(polygon(ANTIMERIDIAN_CASES["sloped edges"]))
    again, notes = validate_zone_geometry(shapely.geometry.mapping(first))
    assert again == first
    assert notes == []


# --- positions and scalars ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lon", "lat", "phrase"),
    [
        (181, 0, "longitude 181 is out of range [-180, 180]"),
        (-180.0001, 0, "longitude -180.0001 is out of range"),
        (0, -91, "latitude -91 is out of range [-90, 90]"),
        (0, 90.5, "latitude 90.5 is out of range"),
        (math.nan, 0, "longitude is not a finite number"),
        (0, -math.inf, "latitude is not a finite number"),
        ("1.5", 0, "longitude must be a number, got string '1.5'"),
        (0, None, "latitude must be a number, got null"),
        (False, 0, "longitude must be a number, got boolean false"),
    ],
)
def test_bad_position_is_refused_naming_the_field(lon: object, lat: object, phrase: str) -> None:
    with pytest.raises(InvalidGeometry) as caught:
        validate_position(lon, lat, "geometry/coordinates")
    assert caught.value.field == "geometry/coordinates"
    assert phrase in caught.value.message


@pytest.mark.parametrize(("lon", "lat"), [(-180, -90), (180, 90), (0, 0), (46.75, 39.8)])
def test_position_on_the_edges_of_the_ranges_is_accepted(lon: float, lat: float) -> None:
    validate_position(lon, lat, "x")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-03-24T06:00:00+04:00", datetime(2022, 3, 24, 2, tzinfo=UTC)),
        ("2022-03-24T02:00:00Z", datetime(2022, 3, 24, 2, tzinfo=UTC)),
        ("2022-03-24 02:00:00.5-00:00", datetime(2022, 3, 24, 2, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_timestamps_with_an_offset_are_parsed(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text, "observed_at")
    assert parsed == expected
    assert parsed.utcoffset() is not None


@pytest.mark.parametrize(
    ("value", "phrase"),
    [
        ("2022-03-24T06:00:00", "datetime has no UTC offset"),
        (datetime(2022, 3, 24, 6), "datetime has no UTC offset"),
        ("2022-03-24", "datetime has no UTC offset"),
        ("24/03/2022 06:00", "is not an RFC 3339 date-time"),
        (1648094400, "must be an RFC 3339 date-time string, got number"),
    ],
)
def test_bad_timestamp_is_refused_naming_the_field(value: object, phrase: str) -> None:
    with pytest.raises(InvalidReport) as caught:
        parse_timestamp(value, "properties/observed_at", error=InvalidReport)
    assert caught.value.field == "properties/observed_at"
    assert phrase in caught.value.message


def test_aware_datetime_passes_through() -> None:
    moment = datetime(2020, 11, 20, tzinfo=timezone(timedelta(hours=4)))
    assert parse_timestamp(moment, "x") is moment


@pytest.mark.parametrize("hours", [0, -1])
def test_validity_period_must_end_after_it_starts(hours: int) -> None:
    start = datetime(2020, 11, 10, tzinfo=UTC)
    with pytest.raises(InvalidZone) as caught:
        check_validity_period(start, start + timedelta(hours=hours), "properties/valid_to")
    assert caught.value.field == "properties/valid_to"
    assert "must be after valid_from" in caught.value.message


def test_open_or_later_validity_period_is_accepted() -> None:
    start = datetime(2020, 11, 10, tzinfo=UTC)
    check_validity_period(start, None, "valid_to")
    check_validity_period(start, start + timedelta(seconds=1), "valid_to")


def _report(**changes: Any) -> Report:
    fields = {"report_id": "r1", "lon": 46.9, "observed_at": datetime(2022, 3, 24, 6, tzinfo=UTC)}
    changes = {"report_id" if key == "id" else key: value for key, value in changes.items()}
    return make_report(**(fields | changes))


@pytest.mark.parametrize(
    ("changes", "error", "field", "phrase"),
    [
        ({"party": ""}, InvalidReport, "party", "must not be empty"),
        ({"observed_at": datetime(2022, 3, 24)}, InvalidReport, "observed_at", "no UTC offset"),
        ({"lat": 91.0}, InvalidGeometry, "coordinates", "latitude 91 is out of range"),
        ({"uncertainty_m": -5.0}, InvalidReport, "uncertainty_m", "at least 0"),
        ({"uncertainty_m": math.nan}, InvalidReport, "uncertainty_m", "finite"),
        ({"id": " "}, InvalidReport, "id", "must not be empty"),
    ],
)
def test_report_built_in_code_is_checked_like_parsed_ones(
    changes: dict[str, Any], error: type[InvalidInput], field: str, phrase: str
) -> None:
    with pytest.raises(error) as caught:
        validate_report(_report(**changes), path="rows/7")
    assert caught.value.field == f"rows/7/{field}"
    assert phrase in caught.value.message


def test_good_report_built_in_code_passes() -> None:
    validate_report(_report(uncertainty_m=250.0))


def test_every_error_is_a_truce_error_with_a_detail() -> None:
    error = InvalidZone("is required", field="properties/name", index=2)
    assert isinstance(error, TruceError)
    assert error.detail == "properties/name: is required"
    assert error.index == 2
    assert InvalidZone("no field").detail == "no field"
