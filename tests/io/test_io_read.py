"""Readers of `app.io`: reports and zones from CSV, GeoJSON, GeoPackage and ACLED files.

Only the package's public functions are used; fixture files are written here with the standard
library, geopandas or pyogrio, never with `app.io`'s own writers (those are tested in
`test_io_write.py`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Transformer

from app.domain import ZoneKind
from app.io import CsvColumns, FileProblem, ReadOptions, read_reports, read_zones
from tests.factories import T, collection, point_feature, zone_feature

DATA = Path(__file__).resolve().parents[1] / "data"


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_json(path: Path, obj: object) -> Path:
    return write_text(path, json.dumps(obj))


# -- reports from CSV -------------------------------------------------------------------------


def test_csv_columns_are_found_by_their_common_names_and_kept_in_file_order(
    tmp_path: Path,
) -> None:
    path = write_text(
        tmp_path / "reports.csv",
        "longitude,latitude,date,actor\n"
        "46.80,40.01,2022-03-24T06:00:00+04:00,AZE\n"
        "46.55,39.64,2022-03-24T07:00:00+04:00,ARM\n",
    )
    table = read_reports(path)
    assert len(table) == 2
    assert table.lon.tolist() == [46.80, 46.55]
    assert table.lat.tolist() == [40.01, 39.64]
    assert table.party.tolist() == ["AZE", "ARM"]


def test_csv_columns_named_by_the_caller_win_over_common_names(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "reports.csv",
        "lon,lat,east,north,when,side\n0,0,46.8,40.0,2022-03-24T02:00:00Z,NK\n",
    )
    columns = CsvColumns(lon="east", lat="north", time="when", party="side")
    table = read_reports(path, ReadOptions(columns=columns))
    assert (table.lon.tolist(), table.lat.tolist()) == ([46.8], [40.0])
    assert table.party.tolist() == ["NK"]


def test_a_bad_csv_row_is_named_as_a_spreadsheet_shows_it(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "bad.csv",
        "lon,lat,observed_at,party\n"
        "46.8,40.0,2022-03-24T02:00:00Z,AZE\n"
        "46.8,95.0,2022-03-24T02:00:00Z,AZE\n",
    )
    with pytest.raises(FileProblem) as caught:
        read_reports(path)
    message = str(caught.value)
    assert message.startswith("bad.csv: ")
    assert "row 3" in message and "95" in message


def test_csv_without_times_needs_a_default_time(tmp_path: Path) -> None:
    path = write_text(tmp_path / "untimed.csv", "lon,lat,party\n46.8,40.0,AZE\n")
    with pytest.raises(FileProblem, match="untimed.csv"):
        read_reports(path)
    at = datetime(2022, 3, 24, tzinfo=UTC)
    assert len(read_reports(path, ReadOptions(default_observed_at=at))) == 1


def test_csv_times_without_offset_are_refused_unless_a_timezone_is_given(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "naive.csv", "lon,lat,observed_at,party\n46.8,40.0,2022-03-24 06:00,AZE\n"
    )
    with pytest.raises(FileProblem, match="row 2"):
        read_reports(path)
    assert read_reports(path, ReadOptions(timezone="Asia/Baku")).party.tolist() == ["AZE"]


def test_csv_coordinates_in_a_given_crs_come_back_as_lon_lat(tmp_path: Path) -> None:
    # UTM 38N (the scenario's zone) computed here with pyproj, independently of the reader.
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32638", always_xy=True)
    x, y = to_utm.transform(46.8011, 40.0194)
    path = write_text(
        tmp_path / "utm.csv", f"x,y,observed_at,party\n{x!r},{y!r},2022-03-24T02:00:00Z,AZE\n"
    )
    table = read_reports(path, ReadOptions(crs="EPSG:32638"))
    assert table.lon[0] == pytest.approx(46.8011, abs=1e-9)
    assert table.lat[0] == pytest.approx(40.0194, abs=1e-9)


def test_an_unknown_extension_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = write_text(tmp_path / "reports.xlsx", "not a spreadsheet")
    with pytest.raises(FileProblem, match="reports.xlsx"):
        read_reports(path)


# -- reports from GeoJSON and GeoPackage --------------------------------------------------------


def test_geojson_reports_are_read_as_the_api_reads_them(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "reports.geojson",
        collection(point_feature(46.8, 40.0, id="a"), point_feature(46.5, 39.6, party="ARM")),
    )
    table = read_reports(path)
    assert (table.lon.tolist(), table.lat.tolist()) == ([46.8, 46.5], [40.0, 39.6])
    assert table.party.tolist() == ["AZE", "ARM"]


def test_a_bad_geojson_report_names_its_json_path(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "reports.geojson",
        collection(point_feature(46.8, 40.0), point_feature(46.8, 40.0, observed_at="yesterday")),
    )
    with pytest.raises(FileProblem) as caught:
        read_reports(path)
    assert "reports.geojson" in str(caught.value)
    assert "features/1/properties/observed_at" in str(caught.value)


def _reports_frame(lon: list[float], lat: list[float], party: list[str]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"party": party, "observed_at": [T] * len(party)},
        geometry=gpd.points_from_xy(lon, lat),
        crs="EPSG:4326",
    )


def test_geopackage_reports_are_read_through_pyogrio(tmp_path: Path) -> None:
    path = tmp_path / "reports.gpkg"
    _reports_frame([46.8, 46.5], [40.0, 39.6], ["AZE", "ARM"]).to_file(path, engine="pyogrio")
    table = read_reports(path)
    assert (table.lon.tolist(), table.lat.tolist()) == ([46.8, 46.5], [40.0, 39.6])
    assert table.party.tolist() == ["AZE", "ARM"]


def test_a_geopackage_layer_is_chosen_by_name_else_by_its_geometry(tmp_path: Path) -> None:
    path = tmp_path / "mixed.gpkg"
    _reports_frame([46.8], [40.0], ["AZE"]).to_file(path, layer="morning", engine="pyogrio")
    _reports_frame([46.5], [39.6], ["ARM"]).to_file(path, layer="evening", engine="pyogrio")
    assert read_reports(path, ReadOptions(layer="evening")).party.tolist() == ["ARM"]
    with pytest.raises(FileProblem, match="mixed.gpkg"):
        read_reports(path)  # two point layers: which one is not guessed
    zones = gpd.GeoDataFrame(geometry=[shapely.box(46, 39, 47, 40)], crs="EPSG:4326")
    only = tmp_path / "one_point_layer.gpkg"
    _reports_frame([46.8], [40.0], ["NK"]).to_file(only, layer="points", engine="pyogrio")
    zones.to_file(only, layer="areas", engine="pyogrio")
    assert read_reports(only).party.tolist() == ["NK"]


# -- ACLED --------------------------------------------------------------------------------------


def test_acled_rows_become_reports_with_parties_through_the_map() -> None:
    path = DATA / "acled_sample.csv"
    party_map = {"Military Forces of Azerbaijan*": "AZE"}
    table = read_reports(path, ReadOptions(party_map=party_map))
    with path.open(encoding="utf-8") as handle:
        _header, *rows = [line for line in handle.read().splitlines() if line]
    assert len(table) == len(rows)
    # Every row's actor1 that the map matches is AZE; the rest keep their ACLED name.
    assert "AZE" in table.party.tolist()
    assert all(p == "AZE" or not p.startswith("Military Forces of Azerbaijan") for p in table.party)
    assert table.lat[0] == 40.0194 and table.lon[0] == 46.8011  # ACLED: latitude before longitude


def test_acled_bad_geo_precision_names_the_row(tmp_path: Path) -> None:
    lines = (DATA / "acled_sample.csv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    assert "geo_precision" in header
    # Row 2 (the first data row) keeps its other cells; its precision becomes 7.
    first = lines[1].split(",")
    first[header.index("geo_precision")] = "7"
    path = write_text(tmp_path / "acled.csv", "\n".join([lines[0], ",".join(first)]) + "\n")
    with pytest.raises(FileProblem) as caught:
        read_reports(path)
    assert "acled.csv" in str(caught.value) and "row 2" in str(caught.value)


# -- zones --------------------------------------------------------------------------------------


def test_geojson_zones_are_read_with_every_version(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "zones.geojson",
        collection(
            zone_feature("a", kind="corridor"),
            zone_feature("b", 47.0, 40.0, size=0.2, authorized=["RU-PK", "NK"]),
            zone_feature("a", valid_from="2022-01-01T00:00:00Z", version=2),
        ),
    )
    zones, _ = read_zones(path)
    assert [(z.id, z.version) for z in zones] == [("a", 1), ("b", 1), ("a", 2)]
    assert zones[0].kind is ZoneKind.CORRIDOR
    assert zones[1].authorized_parties == frozenset({"RU-PK", "NK"})
    assert zones[1].geometry.equals(shapely.box(47.0, 40.0, 47.2, 40.2))


def test_geopackage_zones_are_validated_like_geojson_zones(tmp_path: Path) -> None:
    good = shapely.box(46.0, 39.0, 46.1, 39.1)
    bowtie = shapely.Polygon([(46, 39), (46.1, 39.1), (46.1, 39), (46, 39.1), (46, 39)])
    frame = gpd.GeoDataFrame(
        {
            "id": ["good", "bowtie"],
            "name": ["Good", "Bow tie"],
            "kind": ["buffer", "buffer"],
            "valid_from": ["2020-11-10T00:00:00+04:00"] * 2,
            "authorized_parties": ["RU-PK", "RU-PK"],
        },
        geometry=[good, bowtie],
        crs="EPSG:4326",
    )
    frame.iloc[:1].to_file(tmp_path / "good.gpkg", engine="pyogrio")
    zones, _ = read_zones(tmp_path / "good.gpkg")
    assert [z.id for z in zones] == ["good"] and zones[0].geometry.equals(good)
    frame.to_file(tmp_path / "both.gpkg", engine="pyogrio")
    with pytest.raises(FileProblem) as caught:
        read_zones(tmp_path / "both.gpkg")
    assert "both.gpkg" in str(caught.value) and "feature 1" in str(caught.value)


def test_csv_zones_are_read_from_wkt(tmp_path: Path) -> None:
    polygon = shapely.box(46.0, 39.0, 46.25, 39.5)
    path = write_text(
        tmp_path / "zones.csv",
        "id,name,kind,valid_from,authorized_parties,geometry\n"
        f'pk,Zone pk,peacekeeping,2020-11-10T00:00:00Z,"RU-PK,NK","{polygon.wkt}"\n',
    )
    (zone,), _ = read_zones(path)
    assert zone.id == "pk" and zone.kind is ZoneKind.PEACEKEEPING
    assert zone.authorized_parties == frozenset({"RU-PK", "NK"})
    assert zone.geometry.equals(polygon)


def test_a_zones_file_without_zones_is_refused(tmp_path: Path) -> None:
    path = write_json(tmp_path / "empty.geojson", collection())
    with pytest.raises(FileProblem, match="empty.geojson"):
        read_zones(path)


def test_zone_rings_are_accepted_in_either_winding_order(tmp_path: Path) -> None:
    feature = zone_feature("cw")
    ring = feature["geometry"]["coordinates"][0]
    feature["geometry"]["coordinates"] = [ring[::-1]]
    (zone,), _ = read_zones(write_json(tmp_path / "cw.geojson", collection(feature)))
    assert zone.geometry.equals(shapely.box(46.0, 39.0, 46.1, 39.1))
    assert bool(np.all(shapely.is_ccw(zone.geometry.exterior)))
