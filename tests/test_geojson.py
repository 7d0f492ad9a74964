"""GeoJSON to domain and back: zone and report features, batches, findings, round trips."""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
import shapely
from hypothesis import given
from hypothesis import strategies as st
from shapely import MultiPolygon, Polygon

from app.domain import (
    Confidence,
    Finding,
    Report,
    ReportKind,
    Verdict,
    Zone,
    ZoneKind,
)
from app.errors import InvalidGeoJSON, InvalidGeometry, InvalidInput, InvalidReport, InvalidZone
from app.geojson import (
    finding_to_feature,
    report_from_feature,
    report_from_object,
    report_to_feature,
    reports_from_geojson,
    slugify,
    zone_from_feature,
    zone_to_feature,
    zones_from_geojson,
)
from tests import factories
from tests.factories import collection, point_feature

BAKU = timezone(timedelta(hours=4))
RING = [[46.5, 39.6], [46.9, 39.6], [46.9, 39.9], [46.5, 39.9], [46.5, 39.6]]


#: The zone of responsibility's properties, as `zone_feature` writes them by default.
ZONE_PROPERTIES: dict[str, Any] = {
    "name": "Russian peacekeeping zone",
    "kind": "peacekeeping",
    "authorized_parties": ["RU-PK", "NK"],
    "valid_from": "2020-11-10T00:00:00+04:00",
    "agreement": "Trilateral statement of 10 November 2020",
}


def zone_feature(**properties: Any) -> dict[str, Any]:
    """The zone of responsibility over RING; a property given as ... is left out."""
    return factories.zone_feature("rpk", ring=copy.deepcopy(RING), **(ZONE_PROPERTIES | properties))


def report_feature(**properties: Any) -> dict[str, Any]:
    """A report of troops at Farukh; a property given as ... is left out."""
    defaults = {"observed_at": "2022-03-24T06:00:00+04:00", "uncertainty_m": 250, "kind": "troops"}
    return point_feature(46.78, 39.83, id="farukh-1", **(defaults | properties))


def via_json(obj: dict[str, Any]) -> Any:
    return orjson.loads(orjson.dumps(obj))


# --- zones ----------------------------------------------------------------------------------------


def test_zone_feature_is_parsed_into_a_zone() -> None:
    zone, notes = zone_from_feature(zone_feature(valid_to="2024-06-01T00:00:00Z", version=2))
    assert zone.id == "rpk"
    assert zone.name == "Russian peacekeeping zone"
    assert zone.kind is ZoneKind.PEACEKEEPING
    assert zone.authorized_parties == frozenset({"RU-PK", "NK"})
    assert zone.valid_from == datetime(2020, 11, 9, 20, tzinfo=UTC)
    assert zone.valid_to == datetime(2024, 6, 1, tzinfo=UTC)
    assert zone.warning_distance_m == 1000.0
    assert zone.agreement == "Trilateral statement of 10 November 2020"
    assert zone.source is None
    assert zone.version == 2
    assert zone.geometry.equals(Polygon(RING))
    assert notes == []


def test_zone_defaults_apply_to_missing_and_null_optionals() -> None:
    feature = zone_feature(
        authorized_parties=None,
        valid_to=None,
        warning_distance_m=None,
        boundary_uncertainty_m=None,
    )
    zone, _ = zone_from_feature(feature)
    assert zone.authorized_parties == frozenset()
    assert zone.valid_to is None
    assert zone.warning_distance_m == 1000.0
    assert zone.boundary_uncertainty_m == 0.0  # an exact line
    assert zone.version == 1


def test_unknown_zone_properties_are_ignored_not_refused() -> None:
    zone, _ = zone_from_feature(zone_feature(fill="#ff0000", osm_id=123))
    assert zone.id == "rpk"


def test_numeric_zone_id_is_made_a_string() -> None:
    feature = zone_feature()
    feature["id"] = 17
    zone, _ = zone_from_feature(feature)
    assert zone.id == "17"


def test_zone_id_from_properties_when_the_feature_has_none() -> None:
    feature = zone_feature(id="lachin")
    del feature["id"]
    zone, notes = zone_from_feature(feature)
    assert zone.id == "lachin"
    assert notes == []


def test_missing_zone_id_is_derived_from_the_name_with_a_note() -> None:
    feature = zone_feature(name="Lachin corridor (5 km)")
    del feature["id"]
    zone, notes = zone_from_feature(feature)
    assert zone.id == "lachin-corridor-5-km"
    assert len(notes) == 1
    assert notes[0].startswith("id: ")
    assert "lachin-corridor-5-km" in notes[0]


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Lachin corridor", "lachin-corridor"),
        ("  Ağdam / Aghdam district ", "agdam-aghdam-district"),
        ("Kəlbəcər", "klbcr"),
    ],
)
def test_slug_of_a_name(name: str, slug: str) -> None:
    assert slugify(name) == slug


def test_slug_of_a_name_without_ascii_is_stable_and_not_empty() -> None:
    slug = slugify("Лачинский коридор")
    assert slug.startswith("zone-")
    assert len(slug) > len("zone-")
    assert slugify("Лачинский коридор") == slug
    assert slugify("Шуша") != slug


def test_geometry_notes_come_back_with_the_geometry_path() -> None:
    feature = zone_feature()
    feature["geometry"]["coordinates"] = [RING[:-1]]
    _, notes = zone_from_feature(feature, index=4)
    assert len(notes) == 1
    assert notes[0].startswith("features/4/geometry/coordinates/0: ")
    assert "not closed" in notes[0]


def test_clockwise_zone_ring_is_accepted_and_stored_counter_clockwise() -> None:
    feature = zone_feature()
    feature["geometry"]["coordinates"] = [RING[::-1]]
    zone, _ = zone_from_feature(feature)
    assert isinstance(zone.geometry, Polygon)
    assert shapely.is_ccw(zone.geometry.exterior)


BAD_ZONES: dict[str, tuple[dict[str, Any], type[InvalidInput], str, str]] = {
    "missing name": (zone_feature(name=...), InvalidZone, "properties/name", "is required"),
    "blank name": (zone_feature(name="  "), InvalidZone, "properties/name", "must not be empty"),
    "name not a string": (zone_feature(name=7), InvalidZone, "properties/name", "got number 7"),
    "missing kind": (zone_feature(kind=...), InvalidZone, "properties/kind", "is required"),
    "unknown kind": (
        zone_feature(kind="safe zone"),
        InvalidZone,
        "properties/kind",
        "'safe zone' is not one of peacekeeping, buffer",
    ),
    "missing valid_from": (
        zone_feature(valid_from=...),
        InvalidZone,
        "properties/valid_from",
        "is required",
    ),
    "naive valid_from": (
        zone_feature(valid_from="2020-11-10T00:00:00"),
        InvalidZone,
        "properties/valid_from",
        "datetime has no UTC offset",
    ),
    "naive valid_to": (
        zone_feature(valid_to="2024-01-01T00:00:00"),
        InvalidZone,
        "properties/valid_to",
        "datetime has no UTC offset",
    ),
    "valid_to before valid_from": (
        zone_feature(valid_to="2020-11-01T00:00:00+04:00"),
        InvalidZone,
        "properties/valid_to",
        "must be after valid_from",
    ),
    "valid_to equal to valid_from": (
        zone_feature(valid_to="2020-11-09T20:00:00Z"),
        InvalidZone,
        "properties/valid_to",
        "must be after valid_from",
    ),
    "authorized_parties a string": (
        zone_feature(authorized_parties="RU-PK"),
        InvalidZone,
        "properties/authorized_parties",
        "must be an array",
    ),
    "authorized party not a string": (
        zone_feature(authorized_parties=["RU-PK", 3]),
        InvalidZone,
        "properties/authorized_parties/1",
        "must be a string",
    ),
    "warning distance as text": (
        zone_feature(warning_distance_m="1 km"),
        InvalidZone,
        "properties/warning_distance_m",
        "must be a number",
    ),
    "negative warning distance": (
        zone_feature(warning_distance_m=-10),
        InvalidZone,
        "properties/warning_distance_m",
        "at least 0",
    ),
    "version 0": (zone_feature(version=0), InvalidZone, "properties/version", "at least 1"),
    "fractional version": (
        zone_feature(version=1.5),
        InvalidZone,
        "properties/version",
        "whole number",
    ),
    "agreement not a string": (
        zone_feature(agreement={"title": "x"}),
        InvalidZone,
        "properties/agreement",
        "must be a string or null",
    ),
    "Point where a polygon is expected": (
        zone_feature() | {"geometry": {"type": "Point", "coordinates": [46.7, 39.8]}},
        InvalidGeometry,
        "geometry/type",
        "must be a Polygon or MultiPolygon, got 'Point'",
    ),
    "null geometry": (
        zone_feature() | {"geometry": None},
        InvalidGeometry,
        "geometry",
        "needs a Polygon or MultiPolygon",
    ),
    "bow-tie": (
        zone_feature()
        | {"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1]]]}},
        InvalidGeometry,
        "geometry/coordinates/0",
        "Self-intersection",
    ),
    "empty id": (zone_feature() | {"id": ""}, InvalidZone, "id", "must not be empty"),
    "boolean id": (zone_feature() | {"id": True}, InvalidZone, "id", "must be a string"),
    "properties not an object": (
        zone_feature() | {"properties": ["rpk"]},
        InvalidZone,
        "properties",
        "must be an object",
    ),
    "not a Feature": (
        {"type": "Polygon", "coordinates": [RING]},
        InvalidZone,
        "type",
        "expected type 'Feature', got 'Polygon'",
    ),
}


@pytest.mark.parametrize(
    ("feature", "error", "field", "phrase"), BAD_ZONES.values(), ids=BAD_ZONES.keys()
)
def test_bad_zone_feature_is_refused_naming_the_field(
    feature: dict[str, Any], error: type[InvalidInput], field: str, phrase: str
) -> None:
    with pytest.raises(error) as caught:
        zone_from_feature(feature)
    assert caught.value.field == field
    assert phrase in caught.value.message
    assert caught.value.index is None


@pytest.mark.parametrize(
    ("feature", "error", "field", "phrase"), BAD_ZONES.values(), ids=BAD_ZONES.keys()
)
def test_bad_zone_in_a_collection_names_its_index(
    feature: dict[str, Any], error: type[InvalidInput], field: str, phrase: str
) -> None:
    good = zone_feature()
    other = zone_feature() | {"id": "other"}
    with pytest.raises(error) as caught:
        zones_from_geojson(collection(good, other, feature))
    assert caught.value.index == 2
    assert caught.value.field == f"features/2/{field}"
    assert caught.value.detail.startswith(f"features/2/{field}: ")
    assert phrase in caught.value.message


def test_out_of_range_position_in_a_collection_has_the_full_path() -> None:
    bad = zone_feature() | {"id": "bad"}
    bad["geometry"]["coordinates"][0][3] = [46.5, 95.2]
    with pytest.raises(InvalidGeometry) as caught:
        zones_from_geojson(collection(zone_feature(), bad))
    assert caught.value.index == 1
    assert str(caught.value) == (
        "features/1/geometry/coordinates/0/3: latitude 95.2 is out of range [-90, 90]"
    )


def test_zone_collection_is_parsed_in_order_with_all_notes() -> None:
    second = zone_feature(name="Lachin corridor", kind="corridor")
    del second["id"]
    zones, notes = zones_from_geojson(collection(zone_feature(), second))
    assert [z.id for z in zones] == ["rpk", "lachin-corridor"]
    assert [z.kind for z in zones] == [ZoneKind.PEACEKEEPING, ZoneKind.CORRIDOR]
    assert len(notes) == 1
    assert notes[0].startswith("features/1/id: ")


def test_single_zone_feature_is_accepted_as_a_batch_of_one() -> None:
    zones, _ = zones_from_geojson(zone_feature())
    assert [z.id for z in zones] == ["rpk"]


def test_empty_zone_collection_is_refused() -> None:
    with pytest.raises(InvalidGeoJSON) as caught:
        zones_from_geojson(collection())
    assert caught.value.field == "features"
    assert "empty" in caught.value.message


@pytest.mark.parametrize(
    ("obj", "field", "phrase"),
    [
        ({"type": "FeatureCollection"}, "features", "needs an array of features"),
        ({"type": "Polygon", "coordinates": [RING]}, "type", "got 'Polygon'"),
        ({"features": []}, "type", "got null"),
    ],
)
def test_non_zone_geojson_is_refused(obj: dict[str, Any], field: str, phrase: str) -> None:
    with pytest.raises(InvalidGeoJSON) as caught:
        zones_from_geojson(obj)
    assert caught.value.field == field
    assert phrase in caught.value.message


def test_same_zone_version_twice_in_a_collection_is_refused() -> None:
    with pytest.raises(InvalidZone) as caught:
        zones_from_geojson(collection(zone_feature(), zone_feature(name="again")))
    assert caught.value.index == 1
    assert caught.value.field == "features/1/id"
    assert "also feature 0" in caught.value.message


def test_two_versions_of_a_zone_in_a_collection_are_accepted() -> None:
    zones, _ = zones_from_geojson(collection(zone_feature(), zone_feature(version=2)))
    assert [z.version for z in zones] == [1, 2]


# --- reports --------------------------------------------------------------------------------------


def test_report_feature_is_parsed_into_a_report() -> None:
    feature = report_feature(unit="3rd bn", confidence="High", notes="seen from OP-7")
    report = report_from_feature(feature)
    assert report == Report(
        id="farukh-1",
        party="AZE",
        observed_at=datetime(2022, 3, 24, 2, tzinfo=UTC),
        lon=46.78,
        lat=39.83,
        uncertainty_m=250.0,
        kind=ReportKind.TROOPS,
        unit="3rd bn",
        confidence=Confidence.HIGH,
        notes="seen from OP-7",
    )
    assert report.extra == {}


def test_report_defaults() -> None:
    feature = report_feature(uncertainty_m=..., kind=...)
    del feature["id"]
    report = report_from_feature(feature, 5)
    assert report.id == "5"
    assert report.uncertainty_m == 0.0
    assert report.kind is ReportKind.OTHER
    assert report.confidence is None


def test_extra_report_properties_are_kept_in_extra() -> None:
    report = report_from_feature(report_feature(acled_id="ARM123", fatalities=0))
    assert report.extra == {"acled_id": "ARM123", "fatalities": 0}


def test_numeric_report_id_is_made_a_string() -> None:
    assert report_from_feature(report_feature() | {"id": 42}).id == "42"


def test_altitude_of_a_report_is_dropped() -> None:
    feature = report_feature()
    feature["geometry"]["coordinates"] = [46.78, 39.83, 1450.0]
    report = report_from_feature(feature)
    assert (report.lon, report.lat) == (46.78, 39.83)


def test_missing_observed_at_takes_the_default_when_given() -> None:
    now = datetime(2022, 3, 25, 12, tzinfo=BAKU)
    report = report_from_feature(report_feature(observed_at=...), default_observed_at=now)
    assert report.observed_at == now
    given_time = report_from_feature(report_feature(), default_observed_at=now)
    assert given_time.observed_at == datetime(2022, 3, 24, 2, tzinfo=UTC)


def test_naive_default_observed_at_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        report_from_feature(report_feature(), default_observed_at=datetime(2022, 3, 25))


BAD_REPORTS: dict[str, tuple[dict[str, Any], type[InvalidInput], str, str]] = {
    "missing party": (report_feature(party=...), InvalidReport, "properties/party", "required"),
    "empty party": (report_feature(party=""), InvalidReport, "properties/party", "not be empty"),
    "party not a string": (
        report_feature(party=["AZE"]),
        InvalidReport,
        "properties/party",
        "must be a string, got an array",
    ),
    "missing observed_at": (
        report_feature(observed_at=...),
        InvalidReport,
        "properties/observed_at",
        "is required",
    ),
    "naive observed_at": (
        report_feature(observed_at="2022-03-24T06:00:00"),
        InvalidReport,
        "properties/observed_at",
        "datetime has no UTC offset",
    ),
    "garbled observed_at": (
        report_feature(observed_at="yesterday"),
        InvalidReport,
        "properties/observed_at",
        "not an RFC 3339 date-time",
    ),
    "negative uncertainty": (
        report_feature(uncertainty_m=-1),
        InvalidReport,
        "properties/uncertainty_m",
        "at least 0",
    ),
    "uncertainty as text": (
        report_feature(uncertainty_m="500"),
        InvalidReport,
        "properties/uncertainty_m",
        "must be a number",
    ),
    "unknown kind": (
        report_feature(kind="tank"),
        InvalidReport,
        "properties/kind",
        "'tank' is not one of troops",
    ),
    "unknown confidence": (
        report_feature(confidence="certain"),
        InvalidReport,
        "properties/confidence",
        "is not one of low, medium, high",
    ),
    "unit not a string": (
        report_feature(unit=3),
        InvalidReport,
        "properties/unit",
        "must be a string or null",
    ),
    "LineString where a point is expected": (
        report_feature()
        | {"geometry": {"type": "LineString", "coordinates": [[46.7, 39.8], [46.8, 39.9]]}},
        InvalidGeometry,
        "geometry/type",
        "must be a Point, got 'LineString'",
    ),
    "null geometry": (
        report_feature() | {"geometry": None},
        InvalidGeometry,
        "geometry",
        "needs a Point geometry, got null",
    ),
    "lon 181": (
        report_feature() | {"geometry": {"type": "Point", "coordinates": [181, 39.8]}},
        InvalidGeometry,
        "geometry/coordinates",
        "longitude 181 is out of range",
    ),
    "lat -91": (
        report_feature() | {"geometry": {"type": "Point", "coordinates": [46.7, -91]}},
        InvalidGeometry,
        "geometry/coordinates",
        "latitude -91 is out of range",
    ),
    "NaN latitude": (
        report_feature() | {"geometry": {"type": "Point", "coordinates": [46.7, math.nan]}},
        InvalidGeometry,
        "geometry/coordinates/1",
        "not a finite number",
    ),
    "coordinate as a string": (
        report_feature() | {"geometry": {"type": "Point", "coordinates": ["1.5", 39.8]}},
        InvalidGeometry,
        "geometry/coordinates/0",
        "must be a number, got string '1.5'",
    ),
    "empty coordinates": (
        report_feature() | {"geometry": {"type": "Point", "coordinates": []}},
        InvalidGeometry,
        "geometry/coordinates",
        "needs 2 numbers",
    ),
    "blank id": (report_feature() | {"id": " "}, InvalidReport, "id", "must not be empty"),
}


@pytest.mark.parametrize(
    ("feature", "error", "field", "phrase"), BAD_REPORTS.values(), ids=BAD_REPORTS.keys()
)
def test_bad_report_feature_is_refused_naming_the_field(
    feature: dict[str, Any], error: type[InvalidInput], field: str, phrase: str
) -> None:
    with pytest.raises(error) as caught:
        report_from_feature(feature)
    assert caught.value.field == field
    assert phrase in caught.value.message


@pytest.mark.parametrize(
    ("feature", "error", "field", "phrase"), BAD_REPORTS.values(), ids=BAD_REPORTS.keys()
)
def test_bad_report_in_a_collection_names_its_index(
    feature: dict[str, Any], error: type[InvalidInput], field: str, phrase: str
) -> None:
    with pytest.raises(error) as caught:
        reports_from_geojson(collection(report_feature(), report_feature(), feature))
    assert caught.value.index == 2
    assert caught.value.field == f"features/2/{field}"
    assert phrase in caught.value.message


def test_report_collection_ids_default_to_the_feature_index() -> None:
    first, second = report_feature(), report_feature()
    del second["id"]
    reports = reports_from_geojson(collection(first, second))
    assert [r.id for r in reports] == ["farukh-1", "1"]


def test_report_ids_can_be_assigned_by_the_caller() -> None:
    feature = report_feature()
    del feature["id"]
    reports = reports_from_geojson(collection(feature), assign_id=lambda i: f"new-{i}")
    assert reports[0].id == "new-0"


def test_empty_report_collection_gives_no_reports() -> None:
    assert reports_from_geojson(collection()) == []


def test_bare_report_object_as_post_check_takes_it() -> None:
    obj = {"lon": 46.78, "lat": 39.83, "party": "ARM", "uncertainty_m": 50, "post": "OP-7"}
    now = datetime(2022, 3, 24, tzinfo=UTC)
    [report] = reports_from_geojson(obj, default_observed_at=now)
    assert (report.id, report.party, report.lon, report.lat) == ("0", "ARM", 46.78, 39.83)
    assert report.observed_at == now
    assert report.uncertainty_m == 50.0
    assert report.extra == {"post": "OP-7"}


@pytest.mark.parametrize(
    ("changes", "error", "field", "phrase"),
    [
        ({"lat": 91}, InvalidGeometry, "lat", "latitude 91 is out of range"),
        ({"lon": "46.7"}, InvalidGeometry, "lon", "must be a number"),
        ({"lon": None}, InvalidReport, "lon", "is required"),
        ({"party": None}, InvalidReport, "party", "is required"),
        ({"observed_at": "2022-03-24 06:00"}, InvalidReport, "observed_at", "no UTC offset"),
    ],
)
def test_bad_bare_report_object_is_refused_naming_the_key(
    changes: dict[str, Any], error: type[InvalidInput], field: str, phrase: str
) -> None:
    obj = {"lon": 46.78, "lat": 39.83, "party": "ARM", "observed_at": "2022-03-24T06:00:00Z"}
    with pytest.raises(error) as caught:
        report_from_object(obj | changes)
    assert caught.value.field == field
    assert phrase in caught.value.message


@pytest.mark.parametrize(
    ("obj", "phrase"),
    [
        ({"type": "Point", "coordinates": [46.7, 39.8]}, "got 'Point'"),
        ({"party": "AZE"}, "got null"),
    ],
)
def test_non_report_geojson_is_refused(obj: dict[str, Any], phrase: str) -> None:
    with pytest.raises(InvalidGeoJSON) as caught:
        reports_from_geojson(obj)
    assert caught.value.field == "type"
    assert phrase in caught.value.message


def test_parsing_does_not_modify_the_input() -> None:
    feature = report_feature(extra_field=[1, 2])
    zone = zone_feature()
    zone["geometry"]["coordinates"] = [RING[::-1][:-1]]
    before = copy.deepcopy((feature, zone))
    report_from_feature(feature)
    zone_from_feature(zone)
    assert (feature, zone) == before


# --- writing --------------------------------------------------------------------------------------


def test_finding_feature_has_the_properties_of_the_design() -> None:
    finding = Finding(
        report_id="farukh-1",
        zone_id="rpk",
        zone_name="Russian peacekeeping zone",
        verdict=Verdict.POSSIBLE,
        violation=True,
        depth_m=-123.456789,
        party="AZE",
        observed_at=datetime(2022, 3, 24, 6, tzinfo=BAKU),
        lon=46.78,
        lat=39.83,
    )
    feature = via_json(finding_to_feature(finding))
    assert feature["type"] == "Feature"
    assert feature["geometry"] == {"type": "Point", "coordinates": [46.78, 39.83]}
    assert feature["properties"] == {
        "report_id": "farukh-1",
        "zone_id": "rpk",
        "zone_name": "Russian peacekeeping zone",
        "verdict": "possible",
        "violation": True,
        "depth_m": -123.46,
        "party": "AZE",
        "observed_at": "2022-03-24T06:00:00+04:00",
    }


def test_zone_feature_is_plain_json_with_the_zone_fields() -> None:
    zone, _ = zone_from_feature(zone_feature(valid_to="2024-06-01T00:00:00Z"))
    feature = via_json(zone_to_feature(zone))
    assert feature["id"] == "rpk"
    assert feature["geometry"]["type"] == "Polygon"
    assert feature["properties"]["authorized_parties"] == ["NK", "RU-PK"]
    assert feature["properties"]["valid_from"] == "2020-11-10T00:00:00+04:00"
    assert feature["properties"]["valid_to"] == "2024-06-01T00:00:00+00:00"
    assert feature["properties"]["kind"] == "peacekeeping"


def test_split_antimeridian_zone_round_trips_without_notes() -> None:
    feature = zone_feature()
    feature["geometry"]["coordinates"] = [[[170, -16], [-178, -17], [-179, -12], [175, -11]]]
    zone, notes = zone_from_feature(feature)
    assert isinstance(zone.geometry, MultiPolygon)
    assert any("antimeridian" in note for note in notes)
    again, again_notes = zone_from_feature(via_json(zone_to_feature(zone)))
    assert again == zone
    assert again_notes == []


# --- round trips ----------------------------------------------------------------------------------

OFFSETS = st.sampled_from(
    [UTC, BAKU, timezone(timedelta(hours=-5, minutes=-30)), timezone(timedelta(hours=13))]
)
MOMENTS = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=OFFSETS
)
#: Free text: anything but U+0000, which every text property refuses (no PostgreSQL text holds it).
WORDS = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=20
).filter(str.strip)
OPTIONAL_WORDS = st.none() | WORDS
#: Ids: any script, no control characters; a zone id is also a URL path segment (no "/").
IDS = st.text(
    st.characters(exclude_categories=("Cc", "Zl", "Zp", "Cs"), exclude_characters="/"),
    min_size=1,
    max_size=20,
).filter(lambda text: bool(text.strip()) and text not in (".", ".."))


@st.composite
def zones(draw: st.DrawFn) -> Zone:
    lon = draw(st.floats(-175, 175))
    lat = draw(st.floats(-80, 80))
    radius = draw(st.floats(0.001, 4))
    n = draw(st.integers(3, 10))
    ring = [
        [lon + radius * math.cos(2 * math.pi * i / n), lat + radius * math.sin(2 * math.pi * i / n)]
        for i in range(n)
    ]
    if draw(st.booleans()):
        ring.reverse()
    geometry: dict[str, Any] = {"type": "Polygon", "coordinates": [ring]}
    if draw(st.booleans()):
        geometry = {"type": "MultiPolygon", "coordinates": [[ring]]}
    valid_from = draw(MOMENTS)
    valid_to = draw(st.none() | st.timedeltas(timedelta(seconds=1), timedelta(days=4000)))
    feature = {
        "type": "Feature",
        "id": draw(IDS),
        "geometry": geometry,
        "properties": {
            "name": draw(WORDS),
            "kind": draw(st.sampled_from(ZoneKind)).value,
            "authorized_parties": draw(st.lists(WORDS, max_size=3)),
            "valid_from": valid_from.isoformat(),
            "valid_to": None if valid_to is None else (valid_from + valid_to).isoformat(),
            "warning_distance_m": draw(st.floats(0, 1e5)),
            "boundary_uncertainty_m": draw(st.just(0.0) | st.floats(0, 1e5)),
            "agreement": draw(OPTIONAL_WORDS),
            "source": draw(OPTIONAL_WORDS),
            "version": draw(st.integers(1, 50)),
        },
    }
    zone, _ = zone_from_feature(feature)
    return zone


@given(zones())
def test_zone_round_trips_through_geojson(zone: Zone) -> None:
    again, notes = zone_from_feature(via_json(zone_to_feature(zone)))
    assert again == zone
    assert again.geometry == zone.geometry
    assert notes == []


JSON_SCALARS = st.none() | st.booleans() | st.integers(-1000, 1000) | WORDS
RESERVED = {"id", "party", "observed_at", "uncertainty_m", "kind", "unit", "source"}
RESERVED |= {"confidence", "notes"}


@st.composite
def reports(draw: st.DrawFn) -> Report:
    return Report(
        id=draw(IDS),
        party=draw(WORDS),
        observed_at=draw(MOMENTS),
        lon=draw(st.floats(-180, 180)),
        lat=draw(st.floats(-90, 90)),
        uncertainty_m=draw(st.floats(0, 1e6)),
        kind=draw(st.sampled_from(ReportKind)),
        unit=draw(OPTIONAL_WORDS),
        source=draw(OPTIONAL_WORDS),
        confidence=draw(st.none() | st.sampled_from(Confidence)),
        notes=draw(OPTIONAL_WORDS),
        extra=draw(
            st.dictionaries(WORDS.filter(lambda k: k not in RESERVED), JSON_SCALARS, max_size=3)
        ),
    )


@given(reports())
def test_report_round_trips_through_geojson(report: Report) -> None:
    again = report_from_feature(via_json(report_to_feature(report)))
    assert again == report
    assert again.extra == report.extra
    assert again.observed_at.utcoffset() == report.observed_at.utcoffset()


@given(st.lists(reports(), min_size=1, max_size=5))
def test_report_collection_round_trips_in_order(batch: list[Report]) -> None:
    written = collection(*(report_to_feature(r) for r in batch))
    assert reports_from_geojson(via_json(written)) == batch
