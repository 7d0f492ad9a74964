"""Tracks: entered / exited events, dwell, withdrawal and return to the initial position."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from pyproj import Geod

from app.batch import ReportBatch
from app.domain import Report, Zone, ZoneKind
from app.engine import ZoneIndex
from app.tracks import track_events, track_summary
from tests.factories import make_report, make_zone, square

T0 = datetime(2022, 3, 24, tzinfo=UTC)
ZONE = make_zone(
    square(46.0, 40.0, size=0.2), name="Z", kind=ZoneKind.PEACEKEEPING, authorized={"PK"}
)
OUT_EAST = (46.30, 40.10)  # about 8.5 km east of the zone
IN_ZONE = (46.10, 40.10)


def track(*steps: tuple[float, float], unit: str = "u1", party: str = "AZE") -> list[Report]:
    """Reports one hour apart at the given (lon, lat) positions."""
    return [
        make_report(
            f"{unit}-{i}", lon, lat, party=party, unit=unit, observed_at=T0 + timedelta(hours=i)
        )
        for i, (lon, lat) in enumerate(steps)
    ]


def analyse(
    reports: list[Report], zones: Sequence[Zone] = (ZONE,), **kwargs: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = ReportBatch.from_reports(reports).frame()
    findings = ZoneIndex(list(zones)).check(frame)
    return track_events(frame, findings), track_summary(frame, findings, **kwargs)


def test_in_out_in_gives_three_events_in_time_order() -> None:
    events, _ = analyse(track(OUT_EAST, IN_ZONE, IN_ZONE, OUT_EAST, IN_ZONE))
    assert events["kind"].tolist() == ["entered", "exited", "entered"]
    assert events["report_id"].tolist() == ["u1-1", "u1-3", "u1-4"]


def test_dwell_runs_from_entry_to_the_exit_that_follows() -> None:
    _, summary = analyse(track(OUT_EAST, IN_ZONE, IN_ZONE, IN_ZONE, OUT_EAST))
    row = summary.iloc[0]
    assert row["dwell_s"] == pytest.approx(3 * 3600)
    assert row["entered_at"] == pd.Timestamp(T0 + timedelta(hours=1))
    assert row["last_exited_at"] == pd.Timestamp(T0 + timedelta(hours=4))


def test_unit_still_inside_has_not_withdrawn_and_dwell_counts_to_its_latest_report() -> None:
    _, summary = analyse(track(OUT_EAST, IN_ZONE, IN_ZONE))
    row = summary.iloc[0]
    assert not row["withdrawn"] and row["inside_now"]
    assert row["dwell_s"] == pytest.approx(3600)


def test_back_at_initial_position_within_the_given_distance() -> None:
    near_start = (OUT_EAST[0] + 0.005, OUT_EAST[1])  # ~430 m from the start
    _, summary = analyse(track(OUT_EAST, IN_ZONE, near_start))
    row = summary.iloc[0]
    _, _, expected = Geod(ellps="WGS84").inv(*OUT_EAST, *near_start)
    assert row["withdrawn"]
    assert row["distance_to_initial_m"] == pytest.approx(expected, abs=0.01)
    assert row["back_at_initial"]
    _, strict = analyse(track(OUT_EAST, IN_ZONE, near_start), return_distance_m=expected / 2)
    assert not strict.iloc[0]["back_at_initial"]


def test_withdrawn_elsewhere_is_not_back_at_initial() -> None:
    _, summary = analyse(track(OUT_EAST, IN_ZONE, (45.8, 40.1)))
    row = summary.iloc[0]
    assert row["withdrawn"] and not row["back_at_initial"]


def test_unit_first_seen_inside_has_no_initial_position() -> None:
    _, summary = analyse(track(IN_ZONE, OUT_EAST))
    assert np.isnan(summary.iloc[0]["initial_lon"]) and not summary.iloc[0]["back_at_initial"]


def test_units_and_parties_are_tracked_apart() -> None:
    reports = track(OUT_EAST, IN_ZONE, unit="a") + track(IN_ZONE, OUT_EAST, unit="a", party="ARM")
    events, summary = analyse(reports)
    by_party = {p: g["kind"].tolist() for p, g in events.groupby("party")}
    assert by_party == {"AZE": ["entered"], "ARM": ["entered", "exited"]}
    assert len(summary) == 2


def test_a_zone_going_out_of_force_counts_as_leaving_it() -> None:
    ending = Zone(
        **{
            **{f: getattr(ZONE, f) for f in ZONE.__slots__},
            "valid_to": T0 + timedelta(hours=1, minutes=30),
        }
    )
    events, summary = analyse(track(IN_ZONE, IN_ZONE, IN_ZONE), zones=(ending,))
    assert events["kind"].tolist() == ["entered", "exited"]
    assert summary.iloc[0]["withdrawn"]


def test_input_order_does_not_change_the_events() -> None:
    reports = track(OUT_EAST, IN_ZONE, OUT_EAST, IN_ZONE)
    forward, _ = analyse(reports)
    backward, _ = analyse(list(reversed(reports)))
    pd.testing.assert_frame_equal(forward, backward)


def test_reports_without_a_unit_make_no_track() -> None:
    reports = [Report(id="x", party="AZE", observed_at=T0, lon=IN_ZONE[0], lat=IN_ZONE[1])]
    events, summary = analyse(reports)
    assert events.empty and summary.empty
