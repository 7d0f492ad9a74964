"""The founding scenario in geodata/ keeps the facts of docs/scenario-sources.md.

Coordinates below are copied from those sources, not read from geodata/, so that they check the data
rather than repeat it. Only shapely, pyproj and json: the engine is tested elsewhere.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from pyproj import Geod
from shapely.geometry import LinearRing, Point, shape
from shapely.geometry.base import BaseGeometry

REPO = Path(__file__).resolve().parents[1]
GEODATA = REPO / "geodata"
BUILD_SCRIPT = REPO / "scripts" / "build_geodata.py"
NATURAL_EARTH = REPO / "geodata" / "sources" / "natural-earth"
GENERATED = (
    "zones.geojson",
    "line_of_contact.geojson",
    "observation_posts.geojson",
    "places.geojson",
    "reports.geojson",
    "parties.json",
)
GEOD = Geod(ellps="WGS84")

ZONE_KINDS = {"peacekeeping", "buffer", "demilitarized", "corridor", "control", "exclusion"}
REPORT_KINDS = {"troops", "vehicle", "strike", "drone", "artillery", "fortification", "other"}
CONFIDENCES = {"low", "medium", "high"}

# The sources, "The zone of responsibility": (lat, lon) of the places inside and outside it.
INSIDE_ZONE = {
    "Stepanakert": (39.8153, 46.7519),
    "Askeran": (39.9367, 46.8328),
    "Khramort": (40.0053, 46.8172),
    "Parukh": (40.0194, 46.8011),
    "Karaglukh heights": (40.005, 46.797),
    "Khojaly": (39.9111, 46.7892),
    "Martuni": (39.7953, 47.1131),
    "Martakert": (40.2153, 46.8128),
    "Sarsang reservoir": (40.1814, 46.6171),
    "Shosh": (39.7700, 46.7847),
    "Mkhitarishen": (39.7614, 46.7744),
}
OUTSIDE_ZONE = {
    "Shusha": (39.7583, 46.7483),
    "Aghdam": (39.9931, 46.9306),
    "Hadrut": (39.5167, 47.0300),
    "Talish": (40.3814, 46.7408),
    "Sugovushan": (40.327, 46.750),
    "Kalbajar": (40.1067, 46.0383),
    "Lachin": (39.6408, 46.5469),
    "Zabukh": (39.5897, 46.5433),
    "Nor Maragha": (40.0992, 46.8811),
    "Hin Tagher": (39.5075, 46.8236),
    "Kornidzor": (39.5481, 46.5311),
}
HIN_TAGHER = OUTSIDE_ZONE["Hin Tagher"]
LACHIN_TOWN = OUTSIDE_ZONE["Lachin"]
# Midpoints of straight stretches of the corridor's centre lines (the sources), far from the zone
# of responsibility and from bends: Berdzor -> Aghavno (route 1), Mets Shen -> (39.60, 46.58).
CORRIDOR_STRETCHES = {
    1: ((39.641, 46.547), (39.590, 46.543)),
    2: ((39.658, 46.602), (39.60, 46.58)),
}


@cache
def load(name: str) -> Any:
    return json.loads((GEODATA / name).read_text(encoding="utf-8"))


def features(name: str) -> list[dict[str, Any]]:
    return list(load(name)["features"])


def zone(zone_id: str, version: int) -> BaseGeometry:
    found = [
        f
        for f in features("zones.geojson")
        if f["id"] == zone_id and f["properties"]["version"] == version
    ]
    assert len(found) == 1, f"{zone_id} v{version}: {len(found)} features"
    return shape(found[0]["geometry"])


def point(lat_lon: tuple[float, float]) -> Point:
    lat, lon = lat_lon
    return Point(lon, lat)


def aware(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.utcoffset() is not None, f"{text!r} has no UTC offset"
    return value


def distance_to_boundary_m(geom: BaseGeometry, lon: float, lat: float) -> float:
    """Geodesic distance from (lon, lat) to the nearest point of the boundary, to ~0.1 m.

    The boundary is densified to 0.0002 degree (~20 m), so that the nearest vertex is within a
    fraction of a metre of the nearest point for distances of a kilometre or more.
    """
    coords = shapely.get_coordinates(shapely.segmentize(geom.boundary, 0.0002))
    _, _, dist = GEOD.inv(
        np.full(len(coords), lon), np.full(len(coords), lat), coords[:, 0], coords[:, 1]
    )
    return float(np.min(dist))


def polygons(geometry: dict[str, Any]) -> list[list[list[list[float]]]]:
    if geometry["type"] == "Polygon":
        return [geometry["coordinates"]]
    assert geometry["type"] == "MultiPolygon", geometry["type"]
    return list(geometry["coordinates"])


# --- files and parties ------------------------------------------------------------------------


@pytest.mark.parametrize("name", GENERATED)
def test_every_file_parses(name: str) -> None:
    data = load(name)
    if name.endswith(".geojson"):
        assert data["type"] == "FeatureCollection"
        assert data["features"], "empty collection"
        assert all(f["type"] == "Feature" for f in data["features"])
    else:
        assert isinstance(data, list) and data


def test_parties_have_distinct_codes_and_colours() -> None:
    parties = load("parties.json")
    codes = [p["code"] for p in parties]
    assert {"AZE", "ARM", "NK", "RU-PK", "TR"} <= set(codes)
    assert len(set(codes)) == len(codes)
    assert len({p["color"].lower() for p in parties}) == len(parties)
    assert all(p["name"] for p in parties)


def test_zones_and_reports_name_only_known_parties() -> None:
    codes = {p["code"] for p in load("parties.json")}
    for f in features("zones.geojson"):
        assert set(f["properties"]["authorized_parties"]) <= codes, f["id"]
    for f in features("reports.geojson"):
        assert f["properties"]["party"] in codes, f["id"]


# --- zones ------------------------------------------------------------------------------------


def test_zone_properties_follow_the_design() -> None:
    for f in features("zones.geojson"):
        p = f["properties"]
        assert f["id"] and isinstance(f["id"], str)
        assert p["kind"] in ZONE_KINDS, f["id"]
        assert p["name"] and p["agreement"] and p["source"], f["id"]
        assert isinstance(p["version"], int) and p["version"] >= 1
        assert p["warning_distance_m"] >= 0
        start = aware(p["valid_from"])
        if p["valid_to"] is not None:
            assert aware(p["valid_to"]) > start, f["id"]


def test_zone_rings_are_closed_valid_and_counter_clockwise() -> None:
    for f in features("zones.geojson"):
        assert f["geometry"]["type"] in ("Polygon", "MultiPolygon"), f["id"]
        assert shapely.is_valid(shape(f["geometry"])), f["id"]
        for rings in polygons(f["geometry"]):
            for i, ring in enumerate(rings):
                assert ring[0] == ring[-1], f"{f['id']}: ring {i} not closed"
                # RFC 7946: exterior counter-clockwise, holes clockwise.
                assert LinearRing(ring).is_ccw == (i == 0), f"{f['id']}: ring {i} winding"


def test_versions_of_a_zone_follow_each_other_without_overlap() -> None:
    by_id: dict[str, list[dict[str, Any]]] = {}
    for f in features("zones.geojson"):
        by_id.setdefault(f["id"], []).append(f["properties"])
    for zone_id, versions in by_id.items():
        versions.sort(key=lambda p: p["version"])
        assert [p["version"] for p in versions] == list(range(1, len(versions) + 1)), zone_id
        for older, newer in zip(versions, versions[1:], strict=False):
            assert older["valid_to"] is not None, zone_id
            assert aware(older["valid_to"]) <= aware(newer["valid_from"]), zone_id


def test_peacekeepers_are_authorized_in_their_zones_and_azerbaijan_is_not() -> None:
    for f in features("zones.geojson"):
        if f["id"] in ("nk-pk-zone", "nk-lachin-corridor"):
            assert "RU-PK" in f["properties"]["authorized_parties"]
            assert "AZE" not in f["properties"]["authorized_parties"]


@pytest.mark.parametrize("name", sorted(INSIDE_ZONE))
def test_facts_inside_places_are_in_the_zone_of_responsibility(name: str) -> None:
    assert shapely.covers(zone("nk-pk-zone", 2), point(INSIDE_ZONE[name]))


@pytest.mark.parametrize("name", sorted(OUTSIDE_ZONE))
def test_facts_outside_places_are_not_in_the_zone_of_responsibility(name: str) -> None:
    assert not shapely.covers(zone("nk-pk-zone", 2), point(OUTSIDE_ZONE[name]))


def test_hin_tagher_left_the_zone_on_14_december_2020() -> None:
    assert shapely.covers(zone("nk-pk-zone", 1), point(HIN_TAGHER))
    assert not shapely.covers(zone("nk-pk-zone", 2), point(HIN_TAGHER))
    assert zone("nk-pk-zone", 1).covers(zone("nk-pk-zone", 2).buffer(-1e-6))


def test_lachin_town_is_in_corridor_route_1_not_route_2() -> None:
    assert shapely.covers(zone("nk-lachin-corridor", 1), point(LACHIN_TOWN))
    assert not shapely.covers(zone("nk-lachin-corridor", 2), point(LACHIN_TOWN))


def test_aghavno_left_the_corridor_in_august_2022() -> None:
    aghavno = OUTSIDE_ZONE["Zabukh"]
    assert shapely.covers(zone("nk-lachin-corridor", 1), point(aghavno))
    assert not shapely.covers(zone("nk-lachin-corridor", 2), point(aghavno))


@pytest.mark.parametrize("version", [1, 2])
def test_corridor_does_not_touch_shusha(version: int) -> None:
    assert not shapely.covers(zone("nk-lachin-corridor", version), point(OUTSIDE_ZONE["Shusha"]))


@pytest.mark.parametrize("version", sorted(CORRIDOR_STRETCHES))
def test_corridor_reaches_2500_m_from_its_centre_line(version: int) -> None:
    (lat_a, lon_a), (lat_b, lon_b) = CORRIDOR_STRETCHES[version]
    corridor = zone("nk-lachin-corridor", version)
    azimuth, _, length = GEOD.inv(lon_a, lat_a, lon_b, lat_b)
    lon, lat, _ = GEOD.fwd(lon_a, lat_a, azimuth, length / 2)
    assert distance_to_boundary_m(corridor, lon, lat) == pytest.approx(2500, abs=50)
    for side in (-90, 90):  # 5 km wide: the edge lies between 2450 and 2550 m on each side
        near_lon, near_lat, _ = GEOD.fwd(lon, lat, azimuth + side, 2450)
        far_lon, far_lat, _ = GEOD.fwd(lon, lat, azimuth + side, 2550)
        assert shapely.covers(corridor, Point(near_lon, near_lat)), side
        assert not shapely.covers(corridor, Point(far_lon, far_lat)), side


@pytest.mark.parametrize("district", ["aghdam", "kalbajar", "lachin"])
def test_handed_over_districts_do_not_overlap_the_zone(district: str) -> None:
    overlap = zone(f"nk-handover-{district}", 1).intersection(zone("nk-pk-zone", 1))
    area_m2, _ = GEOD.geometry_area_perimeter(overlap) if not overlap.is_empty else (0.0, 0.0)
    assert abs(area_m2) < 10_000  # rounding to 6 decimals may leave slivers of a few m2


@pytest.mark.parametrize(
    ("district", "town"),
    [
        ("aghdam", OUTSIDE_ZONE["Aghdam"]),
        ("aghdam", OUTSIDE_ZONE["Nor Maragha"]),
        ("kalbajar", OUTSIDE_ZONE["Kalbajar"]),
        ("lachin", LACHIN_TOWN),
    ],
)
def test_handed_over_districts_hold_their_towns(district: str, town: tuple[float, float]) -> None:
    assert shapely.covers(zone(f"nk-handover-{district}", 1), point(town))


def test_1994_line_holds_the_districts_and_not_armenia() -> None:
    line_1994 = zone("nk-1994-line", 1)
    for lat_lon in (LACHIN_TOWN, OUTSIDE_ZONE["Kalbajar"], OUTSIDE_ZONE["Shusha"]):
        assert shapely.covers(line_1994, point(lat_lon))
    assert not shapely.covers(line_1994, point((39.511, 46.339)))  # Goris, Armenia


# --- reference layers -------------------------------------------------------------------------


def test_places_hold_every_place_of_facts_with_both_names() -> None:
    places = features("places.geojson")
    assert len(places) >= 26
    ids = [f["properties"]["id"] for f in places]
    assert len(set(ids)) == len(ids)
    assert all(f["id"] == f["properties"]["id"] for f in places)
    assert all(f["properties"]["name_hy"] and f["properties"]["name_az"] for f in places)
    coordinates = {tuple(f["geometry"]["coordinates"]) for f in places}
    for lat, lon in (*INSIDE_ZONE.values(), *OUTSIDE_ZONE.values()):
        assert (lon, lat) in coordinates, (lat, lon)


def test_observation_posts_are_marked_illustrative() -> None:
    posts = features("observation_posts.geojson")
    assert posts
    for f in posts:
        assert f["geometry"]["type"] == "Point"
        assert f["properties"]["illustrative"] is True
        aware(f["properties"]["valid_from"])


def test_line_of_contact_runs_along_the_zone_edge() -> None:
    lines = features("line_of_contact.geojson")
    assert lines
    for f in lines:
        assert f["geometry"]["type"] == "LineString"
        start = aware(f["properties"]["valid_from"])
        version = 1 if start < aware("2020-12-14T00:00:00+04:00") else 2
        edge = zone("nk-pk-zone", version).boundary
        assert edge.buffer(1e-6).covers(shape(f["geometry"])), f["id"]


# --- reports ----------------------------------------------------------------------------------


def test_reports_have_the_required_properties() -> None:
    reports = features("reports.geojson")
    ids = [f["id"] for f in reports]
    assert len(set(ids)) == len(ids)
    for f in reports:
        p = f["properties"]
        assert f["geometry"]["type"] == "Point", f["id"]
        assert p["party"] and p["source"] and p["notes"], f["id"]
        assert aware(p["observed_at"]).year == 2022, f["id"]
        assert isinstance(p["uncertainty_m"], int | float) and p["uncertainty_m"] >= 0
        assert p["kind"] in REPORT_KINDS, f["id"]
        assert p["confidence"] in CONFIDENCES, f["id"]
        assert p["unit"] is None or isinstance(p["unit"], str), f["id"]


def test_every_source_keeps_its_own_reports() -> None:
    sources = {f["properties"]["source"] for f in features("reports.geojson")}
    assert {"Russian MoD", "Azerbaijani MoD", "Armenian side"} <= sources


def parukh_group() -> list[dict[str, Any]]:
    track = [
        f
        for f in features("reports.geojson")
        if f["properties"]["party"] == "AZE" and f["properties"]["unit"] == "parukh-group"
    ]
    return sorted(track, key=lambda f: aware(f["properties"]["observed_at"]))


def test_parukh_group_enters_withdraws_and_is_reported_back() -> None:
    zor = zone("nk-pk-zone", 2)
    inside = [bool(zor.covers(shape(f["geometry"]))) for f in parukh_group()]
    assert len(inside) >= 4
    # before the crossing; inside 24-26 Mar; the claimed withdrawal; the 28 Mar claim
    assert inside == [False, *[True] * (len(inside) - 3), False, True]


def test_claimed_withdrawal_is_back_near_the_initial_position() -> None:
    track = parukh_group()
    lon_0, lat_0 = track[0]["geometry"]["coordinates"]
    lon_w, lat_w = track[-2]["geometry"]["coordinates"]
    assert track[-2]["properties"]["source"] == "Russian MoD"
    assert aware(track[-2]["properties"]["observed_at"]).day == 27
    _, _, metres = GEOD.inv(lon_0, lat_0, lon_w, lat_w)
    assert metres < 1000


def test_karaglukh_claim_of_28_march_is_inside_with_its_whole_uncertainty() -> None:
    last = parukh_group()[-1]
    p = last["properties"]
    assert p["source"] == "Armenian side" and aware(p["observed_at"]).day == 28
    assert p["uncertainty_m"] == 1500
    lon, lat = last["geometry"]["coordinates"]
    zor = zone("nk-pk-zone", 2)
    assert shapely.covers(zor, Point(lon, lat))
    assert distance_to_boundary_m(zor, lon, lat) >= p["uncertainty_m"]


def test_peacekeepers_report_at_parukh_is_inside_and_authorized() -> None:
    peacekeepers = [f for f in features("reports.geojson") if f["properties"]["party"] == "RU-PK"]
    assert peacekeepers
    zor = next(f for f in features("zones.geojson") if f["id"] == "nk-pk-zone")
    assert "RU-PK" in zor["properties"]["authorized_parties"]
    for f in peacekeepers:
        assert shapely.covers(zone("nk-pk-zone", 2), shape(f["geometry"]))


# --- reproducibility --------------------------------------------------------------------------


def test_build_script_reproduces_the_committed_files(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            str(BUILD_SCRIPT),
            "--out",
            str(tmp_path),
            "--natural-earth",
            str(NATURAL_EARTH),
        ],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    for name in GENERATED:
        assert (tmp_path / name).read_bytes() == (GEODATA / name).read_bytes(), name
