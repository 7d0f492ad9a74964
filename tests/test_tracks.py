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


# -- hysteresis, crossings, staleness ------------------------------------------------------------

EAST_EDGE = 46.2  # the zone's east edge; at 40.1° N a degree of longitude is about 85 km
JITTER_U = 500.0  # metres: reports near the edge are `possible` or `approaching`
POSSIBLE_IN = (EAST_EDGE - 0.002, 40.10)  # ~170 m in: the 500 m disc straddles the edge
POSSIBLE_OUT = (EAST_EDGE + 0.002, 40.10)  # ~170 m out: straddles too
APPROACHING = (EAST_EDGE + 0.008, 40.10)  # ~680 m out: outside the disc, within the warning


def full(
    reports: list[Report],
    zones: Sequence[Zone] = (ZONE,),
    *,
    now: datetime | None = None,
    stale_after: timedelta | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events with crossings looked for among `zones`, and staleness as of `now`."""
    frame = ReportBatch.from_reports(reports).frame()
    findings = ZoneIndex(list(zones)).check(frame)
    when = {"now": now, "stale_after": stale_after}
    return (
        track_events(frame, findings, zones=zones, **when),  # type: ignore[arg-type]
        track_summary(frame, findings, **when),  # type: ignore[arg-type]
    )


def uncertain_track(*steps: tuple[float, float]) -> list[Report]:
    """Reports one hour apart, each with a 500 m uncertainty."""
    return [
        make_report(
            f"u1-{i}",
            lon,
            lat,
            unit="u1",
            uncertainty_m=JITTER_U,
            observed_at=T0 + timedelta(hours=i),
        )
        for i, (lon, lat) in enumerate(steps)
    ]


def verdicts(reports: list[Report]) -> list[str]:
    frame = ReportBatch.from_reports(reports).frame()
    found = ZoneIndex([ZONE]).check(frame, include_outside=True)
    return found.sort_values("report")["verdict"].astype(str).tolist()


def test_jitter_along_a_boundary_gives_no_events() -> None:
    steps = [POSSIBLE_IN, APPROACHING, POSSIBLE_OUT, POSSIBLE_IN, APPROACHING, POSSIBLE_IN] * 5
    reports = uncertain_track(*steps)
    # The track really does jitter: before hysteresis every `possible` counted as in.
    assert set(verdicts(reports)) == {"possible", "approaching"}
    events, summary = full(reports)
    assert events.empty
    assert summary.empty  # never inside: no zone holds the unit


def test_jitter_then_real_crossings_give_one_entry_and_one_exit_each() -> None:
    jitter = [POSSIBLE_IN, APPROACHING, POSSIBLE_OUT]
    steps = [*jitter, IN_ZONE, *jitter, *jitter, IN_ZONE, POSSIBLE_IN, OUT_EAST, *jitter]
    reports = uncertain_track(*steps)
    events, summary = full(reports)
    assert events["kind"].tolist() == ["entered", "exited", "entered", "exited"]
    # In at the deep report, out at the first `approaching` after it (a `possible` keeps it in).
    # Steps 3 and 10 are deep in; 5 is the first `approaching` after 3, 12 the report 8 km out.
    assert events["report_id"].tolist() == ["u1-3", "u1-5", "u1-10", "u1-12"]
    assert events["dwell_s"].tolist()[1::2] == [2 * 3600.0, 2 * 3600.0]
    assert summary.iloc[0]["state"] == "out" and summary.iloc[0]["withdrawn"]
    assert summary.iloc[0]["dwell_s"] == pytest.approx(4 * 3600)


def test_a_possible_report_keeps_a_unit_inside() -> None:
    events, summary = full(uncertain_track(OUT_EAST, IN_ZONE, POSSIBLE_OUT, POSSIBLE_IN))
    assert events["kind"].tolist() == ["entered"]
    assert summary.iloc[0]["state"] == "in" and not summary.iloc[0]["withdrawn"]


def test_a_segment_through_a_zone_between_two_reports_is_a_crossing() -> None:
    west, east = (45.9, 40.1), (46.3, 40.1)  # both outside, the segment cuts the square
    events, summary = full(track(west, east, (46.3, 40.5)))
    assert events[["kind", "zone_id", "report_id"]].values.tolist() == [["crossed", "z", "u1-1"]]
    assert events.iloc[0]["at"] == pd.Timestamp(T0 + timedelta(hours=1))
    assert summary.empty  # crossing is no stay


def test_no_crossing_of_a_zone_not_in_force_then_nor_of_one_a_report_is_in() -> None:
    west, east = (45.9, 40.1), (46.3, 40.1)
    later = make_zone(square(46.0, 40.0, size=0.2), valid_from=T0 + timedelta(days=1))
    events, _ = full(track(west, east), zones=(later,))
    assert events.empty
    # A segment from a report in the zone: an exit, not a crossing.
    events, _ = full(track(IN_ZONE, west))
    assert events["kind"].tolist() == ["entered", "exited"]
    # A segment that ends `possible` near the edge is jitter, not a crossing.
    events, _ = full(uncertain_track((45.9, 40.1), POSSIBLE_OUT))
    assert events.empty


def test_a_unit_inside_and_silent_for_the_set_time_is_stale() -> None:
    reports = track(OUT_EAST, IN_ZONE)  # last report at T0 + 1 h, inside
    last = T0 + timedelta(hours=1)
    day = timedelta(hours=24)
    events, summary = full(reports, now=last + day, stale_after=day)
    assert events["kind"].tolist() == ["entered", "stale"]
    assert events.iloc[1]["at"] == pd.Timestamp(last + day)
    assert events.iloc[1]["report_id"] == "u1-1"
    assert summary.iloc[0]["state"] == "stale"
    # Not yet stale a second earlier; never stale once out.
    early, summary = full(reports, now=last + day - timedelta(seconds=1), stale_after=day)
    assert early["kind"].tolist() == ["entered"] and summary.iloc[0]["state"] == "in"
    gone, summary = full(track(OUT_EAST, IN_ZONE, OUT_EAST), now=last + 10 * day, stale_after=day)
    assert "stale" not in gone["kind"].tolist() and summary.iloc[0]["state"] == "out"
