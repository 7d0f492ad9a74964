"""A zone's boundary uncertainty in the rule: u = the report's `uncertainty_m` + the zone's
`boundary_uncertainty_m` (docs/rule.md), checked against the independent reference.

- each (report, zone) pair is judged with its own u, in one batch of zones with different ones;
- the verdict moves only one way as u grows: `inside` -> `possible`, `approaching`/`outside` ->
  `possible`, and never back;
- u = 0 gives the answers of a zone without the field;
- a report far beyond the warning distance, but within the boundary uncertainty, is still found.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import app.engine
from app.engine import ZoneIndex
from tests.factories import make_zone, reports_df, square
from tests.oracle import allowed_verdicts, depth_tolerance, offset, oracle_depth, oracle_verdict
from tests.test_engine_properties import COMMON, PARTIES, points_near, zone_geometries

BOUNDARY_U = st.one_of(st.just(0.0), st.floats(0.0, 10_000.0), st.sampled_from([500.0, 2000.0]))


@settings(max_examples=40, **COMMON)
@given(data=st.data())
def test_each_pair_is_judged_with_report_plus_zone_uncertainty(data: st.DataObject) -> None:
    polygons = [data.draw(zone_geometries(46.8, 40.0, max_radius_m=20_000.0)) for _ in range(2)]
    boundary = [data.draw(BOUNDARY_U) for _ in polygons]
    warning = [data.draw(st.sampled_from([0.0, 1000.0, 5000.0])) for _ in polygons]
    zones = [
        make_zone(p, f"z{j}", warning_m=w, boundary_uncertainty_m=b, authorized={"RU-PK"})
        for j, (p, w, b) in enumerate(zip(polygons, warning, boundary, strict=True))
    ]
    points = data.draw(points_near(polygons[0], 6)) + data.draw(points_near(polygons[1], 6))
    n = len(points)
    u = data.draw(st.lists(st.floats(0.0, 3000.0), min_size=n, max_size=n))
    parties = data.draw(st.lists(st.sampled_from(PARTIES), min_size=n, max_size=n))
    found = ZoneIndex(zones).check(
        reports_df(points, uncertainty_m=u, party=parties), include_outside=True
    )
    assert len(found) == 2 * n
    for row in found.itertuples(index=False):
        i, j = int(row.report), int(row.zone)
        reference = oracle_depth(*points[i], polygons[j])
        assert abs(row.depth_m - reference) <= depth_tolerance(reference)
        total_u = u[i] + boundary[j]
        # The verdict is the rule's for the engine's depth, and one the reference allows.
        assert row.verdict == oracle_verdict(row.depth_m, total_u, warning[j])
        assert row.verdict in allowed_verdicts(
            reference, total_u, warning[j], depth_tolerance(reference)
        )
        in_or_possible = row.verdict in {"inside", "possible"}
        assert bool(row.violation) == (in_or_possible and parties[i] != "RU-PK")


@settings(max_examples=40, **COMMON)
@given(data=st.data())
def test_the_verdict_moves_only_towards_possible_as_boundary_uncertainty_grows(
    data: st.DataObject,
) -> None:
    polygon = data.draw(zone_geometries(max_radius_m=50_000.0))
    points = data.draw(points_near(polygon, 10))
    u = data.draw(st.lists(st.floats(0.0, 2000.0), min_size=len(points), max_size=len(points)))
    steps = sorted(data.draw(st.lists(BOUNDARY_U, min_size=2, max_size=4)))
    frame = reports_df(points, uncertainty_m=u)
    verdicts = []
    for b in [0.0, *steps]:
        zone = make_zone(polygon, warning_m=1000.0, boundary_uncertainty_m=b)
        found = ZoneIndex([zone]).check(frame, include_outside=True).sort_values("report")
        verdicts.append(found["verdict"].tolist())
    for before, after in zip(verdicts, verdicts[1:], strict=False):
        for was, now in zip(before, after, strict=True):
            assert now == was or now == "possible", (was, now)
    # `possible` never turns back into anything else.
    for i in range(len(points)):
        seen = [v[i] for v in verdicts]
        if "possible" in seen:
            assert set(seen[seen.index("possible") :]) == {"possible"}


@settings(max_examples=30, **COMMON)
@given(data=st.data())
def test_zero_boundary_uncertainty_gives_the_answers_of_a_zone_without_it(
    data: st.DataObject,
) -> None:
    polygon = data.draw(zone_geometries(max_radius_m=50_000.0))
    points = data.draw(points_near(polygon, 10))
    u = data.draw(st.lists(st.floats(0.0, 2000.0), min_size=len(points), max_size=len(points)))
    frame = reports_df(points, uncertainty_m=u)
    plain = make_zone(polygon)
    assert plain.boundary_uncertainty_m == 0.0
    explicit = make_zone(polygon, boundary_uncertainty_m=0.0)
    a = ZoneIndex([plain]).check(frame, include_outside=True)
    b = ZoneIndex([explicit]).check(frame, include_outside=True)
    assert a.equals(b)
    for row in a.itertuples(index=False):
        assert row.verdict == oracle_verdict(row.depth_m, u[row.report], 1000.0)


@settings(max_examples=30, **COMMON)
@given(data=st.data())
def test_zone_uncertainty_is_the_same_as_adding_it_to_every_report(data: st.DataObject) -> None:
    polygon = data.draw(zone_geometries(max_radius_m=50_000.0))
    points = data.draw(points_near(polygon, 10))
    b = data.draw(BOUNDARY_U)
    u = data.draw(st.lists(st.floats(0.0, 2000.0), min_size=len(points), max_size=len(points)))
    with_zone = ZoneIndex([make_zone(polygon, boundary_uncertainty_m=b)]).check(
        reports_df(points, uncertainty_m=u)
    )
    with_reports = ZoneIndex([make_zone(polygon)]).check(
        reports_df(points, uncertainty_m=[x + b for x in u])
    )
    assert with_zone["verdict"].tolist() == with_reports["verdict"].tolist()
    assert with_zone["report"].tolist() == with_reports["report"].tolist()


@pytest.mark.parametrize("many", [False, True])
@pytest.mark.parametrize("alone", [False, True])
def test_a_report_beyond_the_warning_distance_but_within_the_boundary_uncertainty_is_possible(
    many: bool, alone: bool
) -> None:
    # 3 km east of the square's east edge: outside with a 0 m warning distance, unless the
    # zone's line may be 5 km off. The candidates must be widened by the boundary uncertainty.
    zone = make_zone(square(46.7, 39.8, 0.1), warning_m=0.0, boundary_uncertainty_m=5000.0)
    far = offset(46.8, 39.85, 90.0, 3000.0)
    points = [far] if alone else [far, (10.0, 10.0)]
    frame = reports_df(points)
    index = ZoneIndex([zone])
    with pytest.MonkeyPatch.context() as patch:
        if many:
            patch.setattr(app.engine, "SMALL_BATCH_CELLS", 0)
        found = index.check(frame)
    assert found["report"].tolist() == [0]
    assert found["verdict"].tolist() == ["possible"] and bool(found["violation"].iloc[0])
    reference = oracle_depth(*far, zone.geometry)
    assert found["depth_m"].iloc[0] == pytest.approx(reference, abs=depth_tolerance(reference))
    assert oracle_verdict(reference, 5000.0, 0.0) == "possible"
    # Without the boundary uncertainty the same report is not listed at all.
    assert ZoneIndex([replace(zone, boundary_uncertainty_m=0.0)]).check(frame).empty


def test_deep_inside_stays_inside_until_the_uncertainty_reaches_the_depth() -> None:
    zone = make_zone(square(46.7, 39.8, 0.1))
    centre = (46.75, 39.85)
    reference = oracle_depth(*centre, zone.geometry)
    frame = reports_df([centre], uncertainty_m=100.0)
    below = reference - 100.0 - 2 * depth_tolerance(reference)
    above = reference - 100.0 + 2 * depth_tolerance(reference)
    for b, expected in [(0.0, "inside"), (below, "inside"), (above, "possible")]:
        found = ZoneIndex([replace(zone, boundary_uncertainty_m=b)]).check(frame)
        assert found["verdict"].tolist() == [expected], b
    assert np.isclose(reference, 4_260.0, rtol=0.05)  # half the square's 0.1° of latitude-ish
