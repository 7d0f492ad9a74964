"""Writers of `app.io`: zones, reports and findings out to GeoJSON, CSV and GeoPackage.

Zones and reports go out and back in through `app.io`'s own readers (a round trip must lose
nothing the domain holds); what a writer puts in a file is also read here with the standard
library and pyogrio, so that a reader and a writer cannot agree on a mistake.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyogrio
import pytest
import shapely

from app.domain import Confidence, ReportKind, Zone, ZoneKind
from app.engine import FINDING_FIELDS
from app.io import (
    OUT_FORMATS,
    FileProblem,
    output_format,
    read_reports,
    read_zones,
    write_findings,
    write_reports,
    write_zones,
)
from tests.factories import make_report, make_zone, random_reports, square

BAKU = timezone(timedelta(hours=4))
SUFFIXES = {"geojson": ".geojson", "csv": ".csv", "gpkg": ".gpkg"}


def zones_to_write() -> list[Zone]:
    hole = shapely.Polygon(
        shapely.box(46.0, 39.0, 47.0, 40.0).exterior.coords,
        [shapely.box(46.4, 39.4, 46.6, 39.6).exterior.coords[::-1]],
    )
    return [
        make_zone(
            square(46.123456789, 39.987654321, size=0.3),
            "pk",
            kind=ZoneKind.PEACEKEEPING,
            valid_from=datetime(2020, 11, 10, tzinfo=BAKU),
            authorized={"RU-PK", "NK"},
            agreement="Trilateral statement",
            source="drawn for the test",
        ),
        make_zone(
            square(46.123456789, 39.987654321, size=0.2),
            "pk",
            kind=ZoneKind.PEACEKEEPING,
            valid_from=datetime(2020, 11, 20, tzinfo=BAKU),
            valid_to=datetime(2024, 6, 12, tzinfo=UTC),
            authorized={"RU-PK"},
            version=2,
        ),
        make_zone(
            hole, "ring", kind=ZoneKind.BUFFER, warning_m=2500.0, boundary_uncertainty_m=1234.5
        ),
    ]


def test_every_output_format_has_a_suffix_that_selects_it() -> None:
    assert set(OUT_FORMATS) == set(SUFFIXES)
    for fmt, suffix in SUFFIXES.items():
        assert output_format(Path(f"out{suffix}")) == fmt


def test_an_unknown_output_suffix_is_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileProblem, match="out.xlsx"):
        write_reports([make_report()], tmp_path / "out.xlsx")
    assert not (tmp_path / "out.xlsx").exists()


@pytest.mark.parametrize("fmt", list(SUFFIXES))
def test_zones_written_then_read_are_the_same_zones(tmp_path: Path, fmt: str) -> None:
    zones = zones_to_write()
    path = tmp_path / f"zones{SUFFIXES[fmt]}"
    write_zones(zones, path)
    back, _ = read_zones(path)
    assert [(z.id, z.version) for z in back] == [(z.id, z.version) for z in zones]
    for written, read in zip(zones, back, strict=True):
        assert read.name == written.name and read.kind is written.kind
        assert read.authorized_parties == written.authorized_parties
        assert read.valid_from == written.valid_from and read.valid_to == written.valid_to
        assert read.warning_distance_m == written.warning_distance_m
        assert read.boundary_uncertainty_m == written.boundary_uncertainty_m
        assert read.agreement == written.agreement and read.source == written.source
        assert shapely.equals_exact(read.geometry.normalize(), written.geometry.normalize(), 0)


@pytest.mark.parametrize("fmt", list(SUFFIXES))
def test_reports_written_then_read_are_the_same_reports(tmp_path: Path, fmt: str) -> None:
    reports = random_reports(200, seed=11, prefix="w")
    path = tmp_path / f"reports{SUFFIXES[fmt]}"
    write_reports(reports, path)
    back = read_reports(path)
    assert len(back) == len(reports)
    assert back.lon.tolist() == [r.lon for r in reports]
    assert back.lat.tolist() == [r.lat for r in reports]
    assert back.party.tolist() == [r.party for r in reports]


def test_report_csv_holds_every_field_with_times_to_the_microsecond(tmp_path: Path) -> None:
    report = make_report(
        "r-1",
        46.8011,
        40.0194,
        observed_at=datetime(2022, 3, 24, 6, 0, 0, 123456, tzinfo=BAKU),
        uncertainty_m=250.0,
        kind=ReportKind.TROOPS,
        unit="3rd bn",
        source="OP-7",
        confidence=Confidence.HIGH,
        notes='seen, "clearly"',
        extra={"fatalities": 2, "tags": ["a", "b"]},
    )
    path = tmp_path / "reports.csv"
    write_reports([report], path)
    with path.open(encoding="utf-8", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["id"] == "r-1" and row["party"] == "AZE"
    assert datetime.fromisoformat(row["observed_at"]) == report.observed_at
    assert row["observed_at"].endswith("+04:00")  # the offset as given, not only UTC
    assert (float(row["lon"]), float(row["lat"])) == (46.8011, 40.0194)
    assert (row["kind"], row["unit"], row["source"]) == ("troops", "3rd bn", "OP-7")
    assert row["confidence"] == "high" and row["notes"] == 'seen, "clearly"'
    assert row["fatalities"] == "2" and json.loads(row["tags"]) == ["a", "b"]


def findings_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "report_id": ["r1", "r2"],
            "zone_id": ["pk", "lachin"],
            "zone_name": ["Zone of responsibility", "Lachin corridor"],
            "verdict": ["inside", "approaching"],
            "violation": [True, False],
            "depth_m": [4012.3456, -812.004],
            "party": ["AZE", "ARM"],
            "observed_at": pd.to_datetime(
                ["2022-03-24T06:00:00.000123+04:00", "2022-03-25T00:00:00Z"],
                utc=True,
                format="ISO8601",
            ),
            "lon": [46.808, 46.55],
            "lat": [40.012, 39.64],
        }
    )


@pytest.mark.parametrize("fmt", list(SUFFIXES))
def test_findings_are_written_with_their_columns_depth_to_the_centimetre(
    tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / f"findings{SUFFIXES[fmt]}"
    write_findings(findings_frame(), path)
    if fmt == "geojson":
        features = json.loads(path.read_text(encoding="utf-8"))["features"]
        rows = [f["properties"] for f in features]
        points = [tuple(f["geometry"]["coordinates"]) for f in features]
    elif fmt == "csv":
        table = pd.read_csv(path)
        rows = table.to_dict("records")
        points = list(zip(table["lon"], table["lat"], strict=True))
    else:
        frame = pyogrio.read_dataframe(path, layer="findings")
        rows = frame.drop(columns="geometry").to_dict("records")
        points = [(p.x, p.y) for p in frame.geometry]
    assert set(FINDING_FIELDS) <= set(rows[0])
    assert [r["report_id"] for r in rows] == ["r1", "r2"]
    assert [float(r["depth_m"]) for r in rows] == [4012.35, -812.0]
    assert [bool(r["violation"]) for r in rows] == [True, False]
    assert [r["verdict"] for r in rows] == ["inside", "approaching"]
    assert [datetime.fromisoformat(str(r["observed_at"])) for r in rows] == [
        datetime(2022, 3, 24, 2, 0, 0, 123, tzinfo=UTC),
        datetime(2022, 3, 25, tzinfo=UTC),
    ]
    assert points == [(46.808, 40.012), (46.55, 39.64)]


def test_a_write_replaces_a_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "reports.geojson"
    write_reports(random_reports(50, seed=3), path)
    write_reports([make_report("only")], path)
    features = json.loads(path.read_text(encoding="utf-8"))["features"]
    assert [f["id"] for f in features] == ["only"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports.geojson"]  # no temporary left
