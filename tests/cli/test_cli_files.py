"""The file commands: check, import, export and keys, through typer's runner and as a subprocess.

Binary fixtures (GeoPackage, Shapefile, FlatGeobuf) are written here from geodata/ with geopandas.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import typer
from typer.testing import CliRunner, Result

import app.io as io_module
from app.cli import register
from app.domain import ReportKind
from app.geojson import reports_from_geojson
from app.io import (
    ACLED_COLUMNS,
    ACLED_UNCERTAINTY_M,
    FileProblem,
    ReadOptions,
    parse_party_map,
    read_reports,
    read_zones,
    write_zones,
)
from app.scenario import GEODATA, load_scenario
from app.store import open_store
from tests.scenario_facts import scenario_facts

ROOT = Path(__file__).resolve().parents[2]
ACLED = ROOT / "tests" / "data" / "acled_sample.csv"
ZONES = GEODATA / "zones.geojson"
REPORTS = GEODATA / "reports.geojson"
PARTY_MAP = [
    "Military Forces of Azerbaijan*=AZE",
    "Military Forces of Artsakh*=NK",
    "Military Forces of Armenia*=ARM",
    "Military Forces of Russia (2000-) Peacekeeping Contingent=RU-PK",
]

runner = CliRunner()


def build_app() -> typer.Typer:
    app = typer.Typer(no_args_is_help=True, add_completion=False)

    @app.command()
    def version() -> None:
        print("test")

    register(app)
    return app


APP = build_app()


def invoke(*args: str) -> object:
    return runner.invoke(APP, [*args, "--no-progress"] if args[0] != "keys" else list(args))


def error_lines(result: object) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]  # type: ignore[attr-defined]


def assert_one_clear_error(result: object, *fragments: str) -> str:
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    errors = error_lines(result)
    assert len(errors) == 1, result.output  # type: ignore[attr-defined]
    assert "Traceback" not in result.output  # type: ignore[attr-defined]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The scenario's zones and reports in every readable format."""
    d = tmp_path_factory.mktemp("scenario")
    zones = gpd.read_file(ZONES)
    zones["authorized_parties"] = zones["authorized_parties"].map(",".join)
    reports = gpd.read_file(REPORTS)
    out: dict[str, Path] = {"zones.geojson": ZONES, "reports.geojson": REPORTS}
    for suffix, driver in ((".gpkg", "GPKG"), (".fgb", "FlatGeobuf"), (".shp", "ESRI Shapefile")):
        zones.to_file(d / f"zones{suffix}", driver=driver)
        reports.to_file(d / f"reports{suffix}", driver=driver)
        out[f"zones{suffix}"] = d / f"zones{suffix}"
        out[f"reports{suffix}"] = d / f"reports{suffix}"
    scenario = load_scenario()
    write_zones(scenario.zones, d / "zones.csv")
    out["zones.csv"] = d / "zones.csv"
    frame = pd.DataFrame(reports.drop(columns="geometry"))
    frame.insert(1, "lon", reports.geometry.x)
    frame.insert(2, "lat", reports.geometry.y)
    frame.to_csv(d / "reports.csv", index=False)
    out["reports.csv"] = d / "reports.csv"
    return out


def findings_of(path: Path) -> set[tuple[str, str, str, bool]]:
    if path.suffix == ".csv":
        frame = pd.read_csv(path, dtype={"report_id": str})
    else:
        frame = pd.DataFrame(gpd.read_file(path).drop(columns="geometry"))
    return {
        (str(r.report_id), str(r.zone_id), str(r.verdict), bool(r.violation))
        for r in frame.itertuples()
    }


@pytest.fixture(scope="session")
def reference(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> set:
    out = tmp_path_factory.mktemp("reference") / "findings.geojson"
    result = invoke("check", str(REPORTS), "--zones", str(ZONES), "--out", str(out))
    assert result.exit_code == 0, result.output
    found = findings_of(out)
    assert any(v for *_, v in found)
    return found


# --- check ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("zones", ["geojson", "gpkg", "fgb", "shp", "csv"])
def test_check_gives_the_same_findings_whatever_the_zones_format(
    files: dict[str, Path], reference: set[tuple[str, str, str, bool]], zones: str, tmp_path: Path
) -> None:
    out = tmp_path / "findings.geojson"
    result = invoke(
        "check", str(REPORTS), "--zones", str(files[f"zones.{zones}"]), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert findings_of(out) == reference


@pytest.mark.parametrize("reports", ["csv", "gpkg", "fgb", "shp"])
def test_check_gives_the_same_findings_whatever_the_reports_format(
    files: dict[str, Path], reference: set[tuple[str, str, str, bool]], reports: str, tmp_path: Path
) -> None:
    out = tmp_path / "findings.geojson"
    result = invoke("check", str(files[f"reports.{reports}"]), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert findings_of(out) == reference


@pytest.mark.parametrize("suffix", [".geojson", ".csv", ".gpkg"])
def test_findings_are_written_in_every_output_format(
    reference: set[tuple[str, str, str, bool]], suffix: str, tmp_path: Path
) -> None:
    out = tmp_path / f"findings{suffix}"
    result = invoke("check", str(REPORTS), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert findings_of(out) == reference
    if suffix == ".csv":
        columns = pd.read_csv(out).columns.tolist()
        assert columns[:2] == ["lon", "lat"]
        assert {"report_id", "zone_id", "verdict", "violation", "depth_m"} <= set(columns)


def test_check_prints_violations_deepest_incursions_and_units_not_withdrawn() -> None:
    result = invoke("check", str(REPORTS))
    assert result.exit_code == 0, result.output
    for title in ("Violations by zone and party", "Deepest incursions", "not withdrawn"):
        assert title in result.stdout
    assert "parukh-group" in result.stdout


def test_fail_on_violation_exits_with_one_and_without_it_zero() -> None:
    assert invoke("check", str(REPORTS), "--fail-on-violation").exit_code == 1
    assert invoke("check", str(REPORTS)).exit_code == 0


def test_check_against_zones_in_the_database(tmp_path: Path, store_url: str) -> None:
    url = store_url
    assert invoke("import", "zones", str(ZONES), "--database-url", url).exit_code == 0
    out = tmp_path / "f.geojson"
    result = invoke(
        "check", str(REPORTS), "--zones", "db", "--database-url", url, "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert any(violation for *_, violation in findings_of(out))


def test_zones_db_without_a_database_is_one_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none.sqlite'}"
    result = invoke("check", str(REPORTS), "--zones", "db", "--database-url", url)
    assert_one_clear_error(result, "no database")


def test_register_replaces_an_existing_check_command() -> None:
    names = [c.name or c.callback.__name__ for c in APP.registered_commands]
    assert names.count("check") == 1
    assert "the old check ran" not in invoke("check", str(REPORTS)).output


def test_csv_reports_without_time_take_the_at_time(tmp_path: Path) -> None:
    csv = tmp_path / "r.csv"
    csv.write_text("x,y,actor\n46.80,40.01,AZE\n")
    result = invoke("check", str(csv), "--at", "2022-03-25T00:00:00+04:00")
    assert result.exit_code == 0, result.output
    assert "violations: 1 inside (certain), 0 possible" in result.stdout


def test_csv_columns_can_be_named(tmp_path: Path) -> None:
    csv = tmp_path / "r.csv"
    csv.write_text("E,N,when_seen,who\n46.80,40.01,2022-03-25T00:00:00Z,AZE\n")
    result = invoke(
        "check",
        str(csv),
        "--lon-column",
        "E",
        "--lat-column",
        "N",
        "--time-column",
        "when_seen",
        "--party-column",
        "who",
    )
    assert result.exit_code == 0, result.output
    assert "violations: 1 inside (certain), 0 possible" in result.stdout


def test_naive_times_are_refused_unless_a_timezone_is_given(tmp_path: Path) -> None:
    csv = tmp_path / "r.csv"
    csv.write_text("lon,lat,time,party\n46.80,40.01,2022-03-25 10:00,AZE\n")
    assert_one_clear_error(invoke("check", str(csv)), "r.csv: row 2", "no UTC offset")
    result = invoke("check", str(csv), "--timezone", "+04:00")
    assert result.exit_code == 0, result.output
    table = read_reports(csv, ReadOptions(timezone="Asia/Baku"))
    assert pd.Timestamp(table.time_ns[0], tz="UTC") == pd.Timestamp("2022-03-25T06:00:00Z")


# --- bad input: one clear line, exit code 2 -------------------------------------------------------


GOOD_ROWS = "id,lon,lat,observed_at,party\na,46.80,40.01,2022-03-25T00:00:00Z,AZE\n"


@pytest.mark.parametrize(
    ("name", "content", "fragments"),
    [
        (
            "swapped.csv",
            GOOD_ROWS + "b,40.01,46.80,2022-03-25T00:00:00Z,AZE\n",
            ["swapped.csv: row 3", "look swapped", "--allow-swapped"],
        ),
        (
            "swapped_range.csv",
            "id,lon,lat,observed_at,party\na,35.0,139.7,2022-03-25T00:00:00Z,AZE\n",
            ["swapped_range.csv: row 2", "look swapped", "139.7"],
        ),
        (
            "text.csv",
            GOOD_ROWS + "b,46.8,forty,2022-03-25T00:00:00Z,AZE\n",
            ["text.csv: row 3", "column 'lat'", "'forty' is not a number"],
        ),
        ("empty.csv", "", ["empty.csv: the file is empty"]),
        ("blank.geojson", "  \n", ["blank.geojson: the file is empty"]),
        ("header.csv", "lon,lat,party,observed_at\n,,,\n", []),
        (
            "missing_party.csv",
            GOOD_ROWS + "b,46.8,40.0,2022-03-25T00:00:00Z,\n",
            ["missing_party.csv: row 3", "column 'party' is empty"],
        ),
        (
            "bad_time.csv",
            GOOD_ROWS + "b,46.8,40.0,yesterday,AZE\n",
            ["bad_time.csv: row 3", "'yesterday' is not an ISO 8601 date-time"],
        ),
        (
            "projected.csv",
            "id,x,y,observed_at,party\na,612345.5,4431234.5,2022-03-25T00:00:00Z,AZE\n",
            ["projected.csv: row 2", "out of range", "--crs"],
        ),
        ("nolon.csv", "a,b,party\n1,2,AZE\n", ["nolon.csv: has no longitude column"]),
        ("csv.geojson", GOOD_ROWS, ["csv.geojson: is not a GeoJSON file", "text"]),
        ("bad.geojson", '{"type": "FeatureCollection", "features": [', ["is not valid JSON"]),
        ("text.gpkg", GOOD_ROWS, ["text.gpkg: is not a GeoPackage file: it looks like text"]),
        ("text.shp", GOOD_ROWS, ["text.shp: is not a Shapefile file"]),
        ("text.fgb", GOOD_ROWS, ["text.fgb: is not a FlatGeobuf file"]),
        ("json.csv", '{"type": "FeatureCollection"}', ["json.csv: is not a CSV file", "JSON"]),
        ("reports.xlsx", GOOD_ROWS, ["unknown file type '.xlsx'"]),
        (
            "bad_point.geojson",
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "features": [
                        {
                            "type": "Feature",
                            "geometry": {"type": "Point", "coordinates": [46.8, 95.0]},
                            "properties": {"party": "AZE", "observed_at": "2022-03-25T10:00:00Z"},
                        }
                    ],
                }
            ),
            ["bad_point.geojson: features/0/geometry/coordinates", "latitude 95"],
        ),
    ],
)
def test_bad_report_files_are_one_clear_line(
    tmp_path: Path, name: str, content: str, fragments: list[str]
) -> None:
    path = tmp_path / name
    path.write_text(content)
    result = invoke("check", str(path))
    if name == "header.csv":  # a header and a blank row: no reports, which is no error
        assert result.exit_code == 0, result.output
        assert "0 reports" in result.stdout
        return
    assert_one_clear_error(result, *fragments)


def test_a_geopackage_named_csv_is_refused(files: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "reports.csv"
    path.write_bytes(files["reports.gpkg"].read_bytes())
    assert_one_clear_error(
        invoke("check", str(path)), "reports.csv: is not a CSV file: it looks like a SQLite"
    )


def test_a_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    assert_one_clear_error(invoke("check", str(tmp_path / "nope.csv")), "nope.csv: no such file")


def test_swapped_positions_can_be_taken_as_written(tmp_path: Path) -> None:
    path = tmp_path / "swapped.csv"
    path.write_text(GOOD_ROWS + "b,40.01,46.80,2022-03-25T00:00:00Z,AZE\n")
    assert invoke("check", str(path), "--allow-swapped").exit_code == 0


def test_the_first_bad_row_is_named_in_a_later_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(io_module, "CHUNK_ROWS", 1000)
    rows = ["id,lon,lat,observed_at,party"]
    rows += [f"r{i},46.5,40.1,2022-03-25T00:00:00Z,AZE" for i in range(3000)]
    rows[2501] = "r2500,46.5,oops,2022-03-25T00:00:00Z,AZE"
    rows[2801] = "r2800,46.5,nope,2022-03-25T00:00:00Z,AZE"
    path = tmp_path / "big.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(FileProblem, match=r"big.csv: row 2502: column 'lat': 'oops'"):
        read_reports(path)


def test_reading_a_large_csv_reports_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(io_module, "CHUNK_ROWS", 500)
    rows = ["id,lon,lat,observed_at,party"]
    rows += [f"r{i},46.5,40.1,2022-03-25T00:00:00Z,AZE" for i in range(5000)]
    path = tmp_path / "big.csv"
    path.write_text("\n".join(rows) + "\n")
    calls: list[tuple[str, int, int | None]] = []
    table = read_reports(path, progress=lambda *call: calls.append(call))
    assert len(table) == 5000
    reading = [c for c in calls if c[0] == "reading big.csv"]
    assert len(reading) > 5
    assert reading[-1][1] == reading[-1][2] == path.stat().st_size


def test_a_self_intersecting_zone_in_a_geopackage_names_the_feature(tmp_path: Path) -> None:
    bowtie = shapely.Polygon([(46.0, 40.0), (46.1, 40.1), (46.1, 40.0), (46.0, 40.1)])
    good = shapely.box(46.2, 40.0, 46.3, 40.1)
    frame = gpd.GeoDataFrame(
        {
            "id": ["good", "bad"],
            "name": ["Good", "Bowtie"],
            "kind": ["buffer", "buffer"],
            "valid_from": ["2020-11-10T00:00:00+03:00"] * 2,
        },
        geometry=[good, bowtie],
        crs="EPSG:4326",
    )
    path = tmp_path / "zones.gpkg"
    frame.to_file(path)
    result = invoke("check", str(REPORTS), "--zones", str(path))
    assert_one_clear_error(result, "zones.gpkg: feature 1", "Self-intersection")


def test_a_zone_without_valid_from_names_the_column(tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame(
        {"id": ["z"], "name": ["Z"], "kind": ["buffer"]},
        geometry=[shapely.box(46.2, 40.0, 46.3, 40.1)],
        crs="EPSG:4326",
    )
    path = tmp_path / "zones.fgb"
    frame.to_file(path)
    result = invoke("check", str(REPORTS), "--zones", str(path))
    assert_one_clear_error(result, "zones.fgb: feature 0: column 'valid_from': is required")


# --- CRS ------------------------------------------------------------------------------------------


def test_zones_in_utm_are_transformed_back_to_lon_lat(tmp_path: Path) -> None:
    zones = gpd.read_file(ZONES)
    zones["authorized_parties"] = zones["authorized_parties"].map(",".join)
    path = tmp_path / "zones_utm.gpkg"
    zones.to_crs(32638).to_file(path)
    found, notes = read_zones(path)
    original = load_scenario().zones
    assert len(found) == len(original)
    for got, want in zip(found, original, strict=True):
        assert got.id == want.id
        a, b = shapely.get_coordinates(got.geometry), shapely.get_coordinates(want.geometry)
        assert a.shape == b.shape
        assert np.abs(a - b).max() < 1e-6
    assert any("transformed" in note for note in notes)


def test_reports_in_utm_are_transformed_back_to_lon_lat(tmp_path: Path) -> None:
    reports = gpd.read_file(REPORTS)
    path = tmp_path / "reports_utm.gpkg"
    reports.to_crs(32638).to_file(path)
    table = read_reports(path)
    assert np.abs(table.lon - reports.geometry.x.to_numpy()).max() < 1e-6
    assert np.abs(table.lat - reports.geometry.y.to_numpy()).max() < 1e-6


def test_a_file_without_crs_and_projected_coordinates_is_refused(tmp_path: Path) -> None:
    zones = gpd.read_file(ZONES).to_crs(32638).set_crs(None, allow_override=True)
    zones["authorized_parties"] = zones["authorized_parties"].map(",".join)
    path = tmp_path / "zones.shp"
    zones.to_file(path)
    assert not path.with_suffix(".prj").exists()
    result = invoke("check", str(REPORTS), "--zones", str(path))
    assert_one_clear_error(result, "zones.shp: declares no CRS", "--crs")
    result = invoke("check", str(REPORTS), "--zones", str(path), "--crs", "EPSG:32638")
    assert result.exit_code == 0, result.output


def test_a_file_without_crs_whose_coordinates_fit_is_taken_as_wgs84(tmp_path: Path) -> None:
    zones = gpd.read_file(ZONES).set_crs(None, allow_override=True)
    zones["authorized_parties"] = zones["authorized_parties"].map(",".join)
    path = tmp_path / "zones.shp"
    zones.to_file(path)
    found, notes = read_zones(path)
    assert len(found) == 8
    assert any("declares no CRS" in note for note in notes)


def test_csv_coordinates_in_a_given_crs_are_transformed(tmp_path: Path) -> None:
    lon, lat = 46.8011, 40.0194
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, 32638, always_xy=True).transform(lon, lat)
    path = tmp_path / "utm.csv"
    path.write_text(f"x,y,observed_at,party\n{x!r},{y!r},2022-03-25T00:00:00Z,AZE\n")
    table = read_reports(path, ReadOptions(crs="EPSG:32638"))
    assert abs(table.lon[0] - lon) < 1e-6 and abs(table.lat[0] - lat) < 1e-6


# --- ACLED ----------------------------------------------------------------------------------------


def test_acled_sample_has_the_31_columns() -> None:
    header = ACLED.read_text().splitlines()[0].split(",")
    assert tuple(header) == ACLED_COLUMNS


def test_acled_rows_become_reports_through_the_party_map() -> None:
    table = read_reports(ACLED, ReadOptions(party_map=parse_party_map(PARTY_MAP), keep_extra=True))
    assert len(table) == 11
    reports = {r.id: r for r in table.reports()}
    first = reports["TRC90001"]
    assert first.party == "AZE"
    assert first.observed_at == pd.Timestamp("2022-03-24T00:00:00Z")
    assert first.observed_at.utcoffset() is not None
    assert first.uncertainty_m == ACLED_UNCERTAINTY_M[1] == 2000
    assert first.kind is ReportKind.TROOPS
    assert first.source == "Armenpress; Ministry of Defence of Azerbaijan"
    assert "Farrukh (Parukh)" in (first.notes or "")
    assert first.extra["fatalities"] == 0
    assert reports["TRC90002"].extra["fatalities"] == 3
    assert reports["TRC90003"].uncertainty_m == 10_000
    assert reports["TRC90003"].kind is ReportKind.STRIKE
    assert reports["TRC90010"].uncertainty_m == 50_000
    assert reports["TRC90005"].party == "RU-PK"
    assert reports["TRC90006"].party == "NK"
    assert reports["TRC90006"].kind is ReportKind.ARTILLERY
    # an actor that is not in the map keeps its name, and a note says so
    assert reports["TRC90008"].party == "Protesters (Azerbaijan)"
    assert any("Protesters (Azerbaijan)" in m for m in table.messages)


def test_acled_check_finds_the_march_2022_incursion(tmp_path: Path) -> None:
    out = tmp_path / "f.csv"
    args = ["check", str(ACLED), "--out", str(out)]
    for item in PARTY_MAP:
        args += ["--party-map", item]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    found = pd.read_csv(out)
    hits = found[found["violation"] & (found["report_id"] == "TRC90001")]
    assert set(hits["zone_id"]) == {"nk-pk-zone"}
    assert (found.loc[found["report_id"] == "TRC90005", "violation"] == False).all()  # noqa: E712


def test_party_map_from_a_json_file(tmp_path: Path) -> None:
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"Military Forces of Azerbaijan (2003-)": "AZE"}))
    mapping = parse_party_map([str(path), "Protesters (Azerbaijan)=AZE-CIV"])
    table = read_reports(ACLED, ReadOptions(party_map=mapping))
    assert {"AZE", "AZE-CIV"} <= set(table.party.tolist())


@pytest.mark.parametrize("bad", ["nope.json", "no-equals-sign"])
def test_a_bad_party_map_is_one_clear_line(bad: str) -> None:
    result = invoke("check", str(ACLED), "--party-map", bad)
    assert_one_clear_error(result, "--party-map")


def test_acled_dates_in_acled_s_own_format(tmp_path: Path) -> None:
    text = ACLED.read_text().replace("2022-03-24", "24 March 2022", 1)
    path = tmp_path / "acled.csv"
    path.write_text(text)
    table = read_reports(path)
    assert pd.Timestamp(int(table.time_ns[0]), tz="UTC") == pd.Timestamp("2022-03-24T00:00:00Z")


def test_acled_bad_geo_precision_names_the_row(tmp_path: Path) -> None:
    lines = ACLED.read_text().splitlines()
    lines[3] = lines[3].replace(",40.0053,46.8172,2,", ",40.0053,46.8172,7,")
    path = tmp_path / "acled.csv"
    path.write_text("\n".join(lines) + "\n")
    assert_one_clear_error(invoke("check", str(path)), "acled.csv: row 4", "geo_precision")


# --- import, export, round trips ------------------------------------------------------------------


def db(tmp_path: Path, name: str = "truce.sqlite") -> str:
    return f"sqlite:///{tmp_path / name}"


def stored_zones(url: str) -> list[tuple]:
    with open_store(url) as store:  # type: ignore[attr-defined]
        zones = store.list_zones(all_versions=True)
    return [
        (
            z.id,
            z.version,
            z.name,
            z.kind,
            z.valid_from,
            z.valid_to,
            z.authorized_parties,
            z.warning_distance_m,
            z.agreement,
            z.source,
            shapely.to_wkb(z.geometry),
        )
        for z in zones
    ]


def stored_reports(url: str) -> list:
    with open_store(url) as store:  # type: ignore[attr-defined]
        reports, _ = store.list_reports(limit=10_000)
    return sorted(reports, key=lambda r: r.id)


def test_import_zones_then_again_reports_duplicates(tmp_path: Path, store_url: str) -> None:
    url = store_url
    result = invoke("import", "zones", str(ZONES), "--database-url", url)
    assert result.exit_code == 0, result.output
    assert "6 zone(s) created, 2 new version(s)" in result.stdout
    again = invoke("import", "zones", str(ZONES), "--database-url", url)
    assert again.exit_code == 0, again.output
    assert "0 zone(s) created, 0 new version(s), 8 duplicate(s)" in again.stdout
    assert len(stored_zones(url)) == 8


def test_import_zones_refuses_a_changed_version(tmp_path: Path, store_url: str) -> None:
    url = store_url
    assert invoke("import", "zones", str(ZONES), "--database-url", url).exit_code == 0
    obj = json.loads(ZONES.read_text())
    obj["features"][0]["properties"]["name"] = "Renamed"
    changed = tmp_path / "changed.geojson"
    changed.write_text(json.dumps(obj))
    result = invoke("import", "zones", str(changed), "--database-url", url)
    assert_one_clear_error(result, "nk-1994-line", "differs", "version")
    obj["features"][0]["properties"]["version"] = 2
    changed.write_text(json.dumps(obj))
    result = invoke("import", "zones", str(changed), "--database-url", url)
    assert result.exit_code == 0, result.output
    assert "1 new version(s)" in result.stdout


def test_import_reports_then_again_reports_duplicates(tmp_path: Path, store_url: str) -> None:
    url = store_url
    assert invoke("import", "zones", str(ZONES), "--database-url", url).exit_code == 0
    result = invoke("import", "reports", str(REPORTS), "--database-url", url)
    assert result.exit_code == 0, result.output
    assert "13 stored, 0 duplicate(s)" in result.stdout
    facts = scenario_facts(load_scenario())
    inside, possible = len(facts.inside), len(facts.violations - facts.inside)
    assert f"violations against the stored zones: {inside} inside, {possible} possible" in (
        result.stdout
    )
    again = invoke("import", "reports", str(REPORTS), "--database-url", url)
    assert "0 stored, 13 duplicate(s)" in again.stdout


def test_import_csv_without_ids_is_idempotent(tmp_path: Path, store_url: str) -> None:
    url = store_url
    path = tmp_path / "r.csv"
    path.write_text(
        "lon,lat,observed_at,party,unit\n"
        "46.80,40.01,2022-03-25T00:00:00Z,AZE,u1\n"
        "46.81,40.02,2022-03-26T00:00:00Z,AZE,u1\n"
    )
    assert "2 stored" in invoke("import", "reports", str(path), "--database-url", url).stdout
    assert (
        "0 stored, 2 duplicate(s)"
        in invoke("import", "reports", str(path), "--database-url", url).stdout
    )
    ids = [r.id for r in stored_reports(url)]
    assert all(i.startswith("h-") for i in ids)


def test_import_acled_keeps_source_notes_and_fatalities(tmp_path: Path, store_url: str) -> None:
    url = store_url
    args = ["import", "reports", str(ACLED), "--database-url", url]
    for item in PARTY_MAP:
        args += ["--party-map", item]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    reports = {r.id: r for r in stored_reports(url)}
    assert len(reports) == 11
    assert reports["TRC90002"].extra["fatalities"] == 3
    assert reports["TRC90002"].extra["actor1"] == "Military Forces of Azerbaijan (2003-)"
    assert reports["TRC90002"].source == "Armenpress"


def test_import_refuses_swapped_positions_against_stored_zones(tmp_path: Path) -> None:
    url = db(tmp_path)
    assert invoke("import", "zones", str(ZONES), "--database-url", url).exit_code == 0
    path = tmp_path / "swapped.csv"
    path.write_text(GOOD_ROWS + "b,40.01,46.80,2022-03-25T00:00:00Z,AZE\n")
    result = invoke("import", "reports", str(path), "--database-url", url)
    assert_one_clear_error(result, "swapped.csv: row 3", "look swapped")
    assert stored_reports(url) == []


@pytest.mark.parametrize("fmt", ["geojson", "csv", "gpkg"])
def test_export_then_import_gives_the_same_zones(tmp_path: Path, fmt: str) -> None:
    first, second = db(tmp_path, "a.sqlite"), db(tmp_path, "b.sqlite")
    assert invoke("import", "zones", str(ZONES), "--database-url", first).exit_code == 0
    out = tmp_path / f"zones.{fmt}"
    result = invoke("export", "zones", "--out", str(out), "--database-url", first)
    assert result.exit_code == 0, result.output
    result = invoke("import", "zones", str(out), "--database-url", second)
    assert result.exit_code == 0, result.output
    assert stored_zones(second) == stored_zones(first)


@pytest.mark.parametrize("fmt", ["geojson", "csv", "gpkg"])
def test_export_then_import_gives_the_same_reports(
    tmp_path: Path, fmt: str, store_url: str
) -> None:
    # From each store out to a file, and back into a SQLite file.
    first, second = store_url, db(tmp_path, "b.sqlite")
    assert invoke("import", "reports", str(REPORTS), "--database-url", first).exit_code == 0
    out = tmp_path / f"reports.{fmt}"
    result = invoke("export", "reports", "--out", str(out), "--database-url", first)
    assert result.exit_code == 0, result.output
    result = invoke("import", "reports", str(out), "--database-url", second)
    assert result.exit_code == 0, result.output
    before, after = stored_reports(first), stored_reports(second)
    assert after == before
    assert [r.extra.get("placement") for r in after] == [r.extra.get("placement") for r in before]


def test_export_reports_filters_by_party_and_time(tmp_path: Path, store_url: str) -> None:
    url = store_url
    assert invoke("import", "reports", str(REPORTS), "--database-url", url).exit_code == 0
    out = tmp_path / "aze.geojson"
    result = invoke(
        "export", "reports", "--out", str(out), "--database-url", url,
        "--party", "AZE", "--since", "2022-03-25T00:00:00+04:00",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    reports = reports_from_geojson(json.loads(out.read_text()))
    assert reports and all(r.party == "AZE" for r in reports)
    assert all(r.observed_at >= pd.Timestamp("2022-03-25T00:00:00+04:00") for r in reports)


@pytest.mark.parametrize("fmt", ["geojson", "csv", "gpkg"])
def test_export_incursions(
    tmp_path: Path, fmt: str, reference: set[tuple[str, str, str, bool]]
) -> None:
    url = db(tmp_path)
    assert invoke("import", "zones", str(ZONES), "--database-url", url).exit_code == 0
    assert invoke("import", "reports", str(REPORTS), "--database-url", url).exit_code == 0
    out = tmp_path / f"incursions.{fmt}"
    result = invoke("export", "incursions", "--out", str(out), "--database-url", url)
    assert result.exit_code == 0, result.output
    assert findings_of(out) == {f for f in reference if f[3]}
    only = tmp_path / f"only.{fmt}"
    result = invoke(
        "export", "incursions", "--out", str(only), "--database-url", url,
        "--zone", "nk-lachin-corridor",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert {f[1] for f in findings_of(only)} <= {"nk-lachin-corridor"}


def test_export_format_option_and_bad_format(tmp_path: Path) -> None:
    url = db(tmp_path)
    assert invoke("import", "zones", str(ZONES), "--database-url", url).exit_code == 0
    out = tmp_path / "zones.data"
    result = invoke("export", "zones", "--out", str(out), "--format", "csv", "--database-url", url)
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("id,version,name")
    result = invoke("export", "zones", "--out", str(out), "--database-url", url)
    assert_one_clear_error(result, "cannot tell the output format")


# --- keys -----------------------------------------------------------------------------------------


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    url = db(tmp_path)
    result = runner.invoke(
        APP, ["keys", "create", "--role", "observer", "--label", "op", "--database-url", url]
    )
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert len(secret) >= 40 and "shown only this once" in result.stderr
    digest = hashlib.sha256(secret.encode()).hexdigest()
    with open_store(url) as store:  # type: ignore[attr-defined]
        record = store.find_key(digest)
        assert record is not None and record.role == "observer"
    listed = runner.invoke(APP, ["keys", "list", "--database-url", url])
    assert listed.exit_code == 0, listed.output
    assert "observer" in listed.stdout and secret not in listed.output
    revoked = runner.invoke(APP, ["keys", "revoke", str(record.id), "--database-url", url])
    assert revoked.exit_code == 0, revoked.output
    with open_store(url) as store:  # type: ignore[attr-defined]
        assert store.find_key(digest) is None
    unknown = runner.invoke(APP, ["keys", "revoke", "999", "--database-url", url])
    assert_one_clear_error(unknown)


def test_keys_create_refuses_an_unknown_role(tmp_path: Path) -> None:
    result = runner.invoke(APP, ["keys", "create", "--role", "god", "--database-url", db(tmp_path)])
    assert result.exit_code == 2 and "Traceback" not in result.output


# --- as a subprocess ------------------------------------------------------------------------------


TRUCE = [sys.executable, "-c", "from app.cli import main; main()"]


def test_subprocess_check_and_errors(tmp_path: Path) -> None:
    command = TRUCE
    out = tmp_path / "f.gpkg"
    done = subprocess.run(
        [*command, "check", str(REPORTS), "--out", str(out), "--fail-on-violation"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "Deepest incursions" in done.stdout
    assert findings_of(out)
    bad = tmp_path / "bad.csv"
    bad.write_text(GOOD_ROWS + "b,46.8,forty,2022-03-25T00:00:00Z,AZE\n")
    done = subprocess.run(
        [*command, "check", str(bad)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: bad.csv: row 3")
    assert "Traceback" not in done.stderr


def test_subprocess_import_export_round_trip(tmp_path: Path) -> None:
    command = TRUCE
    url = db(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args, "--database-url", url],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )

    assert run("import", "zones", str(ZONES)).returncode == 0
    assert run("import", "reports", str(REPORTS)).returncode == 0
    out = tmp_path / "reports.csv"
    assert run("export", "reports", "--out", str(out)).returncode == 0
    assert len(pd.read_csv(out)) == 13


def test_reimport_with_update_corrects_the_reports_and_export_follows(tmp_path: Path) -> None:
    url = db(tmp_path)
    assert invoke("import", "zones", str(ZONES), "--database-url", url).exit_code == 0
    # A first party map that takes the peacekeepers for Azerbaijani forces.
    wrong = [*PARTY_MAP[:3], "Military Forces of Russia (2000-) Peacekeeping Contingent=AZE"]

    def import_acled(party_map: list[str], *extra: str) -> Result:
        args = ["import", "reports", str(ACLED), "--database-url", url, *extra]
        for item in party_map:
            args += ["--party-map", item]
        return invoke(*args)

    def exported() -> set[str]:
        out = tmp_path / "incursions.csv"
        result = invoke("export", "incursions", "--out", str(out), "--database-url", url)
        assert result.exit_code == 0, result.output
        return {f[0] for f in findings_of(out)}

    assert import_acled(wrong).exit_code == 0
    before = exported()
    assert "TRC90005" in before  # the false violation

    refused = import_acled(PARTY_MAP)
    assert refused.exit_code != 0
    assert "--update" in refused.output and "TRC90005" in refused.output
    assert exported() == before  # nothing of the batch was stored

    updated = import_acled(PARTY_MAP, "--update")
    assert updated.exit_code == 0, updated.output
    assert "1 corrected" in updated.stdout and "10 duplicate(s)" in updated.stdout
    assert exported() == before - {"TRC90005"}
    with open_store(url) as store:  # type: ignore[attr-defined]
        history = store.report_history("TRC90005")
    assert [(v.version, v.report.party) for v in history] == [(1, "AZE"), (2, "RU-PK")]
    again = import_acled(PARTY_MAP, "--update")  # unchanged now: duplicates only
    assert "0 corrected" in again.stdout and "11 duplicate(s)" in again.stdout
