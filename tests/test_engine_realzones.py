"""Real zones that no one here drew: Natural Earth's Cyprus U.N. Buffer Zone and UNDOF Zone.

The data is Natural Earth's public-domain layer, kept in geodata/sources/natural-earth.
Seeded random points inside and near each zone are judged by the engine and compared with the
independent geodesic reference (tests/oracle.py) and with shapely.covers.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from app.engine import ZoneIndex
from tests.factories import make_zone, reports_df
from tests.oracle import (
    depth_tolerance,
    offset,
    oracle_covers,
    oracle_depth,
)

DATA = Path(__file__).resolve().parents[1] / "geodata" / "sources" / "natural-earth"
DISPUTED = DATA / "ne_10m_admin_0_disputed_areas.geojson"
NAMES = ["Cyprus U.N. Buffer Zone", "UNDOF Zone"]
AUTHORIZED = {"Cyprus U.N. Buffer Zone": "UNFICYP", "UNDOF Zone": "UNDOF"}


@cache
def _geometry(name: str) -> BaseGeometry:
    features = json.loads(DISPUTED.read_text(encoding="utf-8"))["features"]
    matches = [f for f in features if f["properties"].get("BRK_NAME") == name]
    assert len(matches) == 1, f"{name!r} appears {len(matches)} times in {DISPUTED.name}"
    geometry = shape(matches[0]["geometry"])
    assert geometry.is_valid, name
    return geometry


@cache
def _index() -> ZoneIndex:
    zones = [
        make_zone(_geometry(name), f"ne-{i}", name=name, authorized=frozenset({AUTHORIZED[name]}))
        for i, name in enumerate(NAMES)
    ]
    return ZoneIndex(zones)


def _sample_points(name: str, seed: int) -> dict[str, tuple[float, float]]:
    """Seeded points: inside (uniform in the zone), near the boundary on both sides, vertices."""
    geometry = _geometry(name)
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = geometry.bounds
    points: dict[str, tuple[float, float]] = {}
    while len(points) < 25:
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if oracle_covers(x, y, geometry):
            points[f"inside-{len(points)}"] = (float(x), float(y))
    boundary = geometry.boundary
    for i in range(40):
        on = shapely.line_interpolate_point(boundary, rng.uniform(), normalized=True)
        distance = float(10 ** rng.uniform(-1.0, np.log10(3000.0)))
        points[f"near-{i}-{distance:.1f}m"] = offset(on.x, on.y, rng.uniform(0, 360), distance)
    coords = shapely.get_coordinates(geometry)
    for k in rng.choice(len(coords), size=10, replace=False):
        points[f"vertex-{k}"] = (float(coords[k, 0]), float(coords[k, 1]))
    return points


def _check(points: dict[str, tuple[float, float]]) -> pd.DataFrame:
    frame = reports_df(points.values(), ids=list(points), party="XX")
    return _index().check(frame, include_outside=True)


@pytest.mark.parametrize("name", NAMES)
def test_real_zone_depth_matches_geodesic_reference(name: str) -> None:
    geometry = _geometry(name)
    points = _sample_points(name, seed=20221120)
    found = _check(points)
    found = found[found["zone_name"] == name].set_index("report_id")
    assert set(found.index) == set(points)
    failures = []
    for label, (lon, lat) in points.items():
        reference = oracle_depth(lon, lat, geometry)
        engine = float(found.loc[label, "depth_m"])
        if abs(engine - reference) > depth_tolerance(reference):
            failures.append(
                f"{label} ({lon!r}, {lat!r}): engine {engine:.4f} m, reference {reference:.4f} m"
            )
    assert not failures, f"{name}: {len(failures)} depths off:\n" + "\n".join(failures)


@pytest.mark.parametrize("name", NAMES)
def test_real_zone_inside_exactly_when_covered(name: str) -> None:
    geometry = _geometry(name)
    points = _sample_points(name, seed=7)
    found = _check(points)
    found = found[found["zone_name"] == name].set_index("report_id")
    for label, (lon, lat) in points.items():
        covered = oracle_covers(lon, lat, geometry)
        row = found.loc[label]
        assert (row["verdict"] == "inside") == covered, (label, row["verdict"], row["depth_m"])
        assert (row["depth_m"] >= 0) == covered, (label, row["depth_m"])
        assert bool(row["violation"]) == covered, label
        if label.startswith("vertex"):
            assert row["verdict"] == "inside"
            assert row["depth_m"] <= 0.5


def test_nicosia_buffer_strip_is_inside() -> None:
    # In Nicosia the buffer zone is a strip a few hundred metres to ~1.5 km wide through the
    # city (Natural Earth 1:10m); this point is on it, between the two halves of the city.
    name = NAMES[0]
    geometry = _geometry(name)
    nicosia = (33.360, 35.163)
    assert oracle_covers(*nicosia, geometry)
    reference = oracle_depth(*nicosia, geometry)
    assert 0 < reference < 1000.0, "the strip is narrow: every point of it is near its edge"
    frame = reports_df([nicosia], ids=["nicosia"], party="TUR", uncertainty_m=0.0)
    found = _index().check(frame)
    assert list(found["zone_name"]) == [name]
    row = found.iloc[0]
    assert row["verdict"] == "inside"
    assert bool(row["violation"])
    assert abs(row["depth_m"] - reference) <= depth_tolerance(reference)
    # The peacekeepers themselves are authorized there.
    ok = _index().check(reports_df([nicosia], party="UNFICYP"))
    assert list(ok["verdict"]) == ["inside"]
    assert not ok["violation"].any()
    # A disc wider than the strip straddles its edges.
    wide = _index().check(reports_df([nicosia], party="TUR", uncertainty_m=2 * reference + 10))
    assert list(wide["verdict"]) == ["possible"]
    assert wide["violation"].all()


def test_real_zones_do_not_see_each_others_reports() -> None:
    # Cyprus and the Golan are ~300 km apart: without include_outside each point finds only its
    # own zone, with its own name, id and authorized party.
    labels, points = [], []
    for prefix, name, seed in (("c", NAMES[0], 1), ("g", NAMES[1], 2)):
        for label, p in _sample_points(name, seed).items():
            if label.startswith("inside"):
                labels.append(f"{prefix}-{label}")
                points.append(p)
    assert len(points) == 50
    found = _index().check(reports_df(points, ids=labels, party="UNDOF"))
    assert len(found) == len(points)
    for row in found.itertuples(index=False):
        expected = NAMES[0] if row.report_id.startswith("c-") else NAMES[1]
        assert row.zone_name == expected
        assert row.verdict == "inside"
        assert row.violation == (expected == NAMES[0])
