"""Tracks: a unit's reports in time order, and when it entered, left and withdrew from each zone.

A unit is a (party, unit) pair. It is *in* a zone at a report when that report's verdict for the
zone is `inside` or `possible`; any other report of the unit (outside, approaching, or the zone not
in force) puts it out. Events, dwell times and withdrawal follow from the in/out sequence, computed
for all units and zones at once with pandas group shifts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from app.domain import TrackEventKind, Verdict
from app.geodesy import GEOD

DEFAULT_RETURN_DISTANCE_M = 1000.0
KEYS = ["party", "unit", "zone_id"]
EVENT_COLUMNS = [*KEYS, "kind", "at", "report_id"]
SUMMARY_COLUMNS = [
    *KEYS,
    "entered_at",
    "last_exited_at",
    "dwell_s",
    "inside_now",
    "withdrawn",
    "initial_lon",
    "initial_lat",
    "distance_to_initial_m",
    "back_at_initial",
]


def _presence(reports: pd.DataFrame, findings: pd.DataFrame) -> pd.DataFrame:
    """One row per (unit report, zone the unit was ever in), with `present` and time order."""
    units = reports.assign(report=np.arange(len(reports)))
    units = units[units["unit"].notna()]
    inside = findings[findings["verdict"].isin([Verdict.INSIDE, Verdict.POSSIBLE])]
    inside = inside[inside["report"].isin(units["report"])][["report", "zone_id"]]
    inside = inside.drop_duplicates()
    touched = inside.merge(units[["report", "party", "unit"]], on="report")[KEYS].drop_duplicates()
    grid = units.merge(touched, on=["party", "unit"])
    grid = grid.merge(inside.assign(present=True), on=["report", "zone_id"], how="left")
    grid["present"] = grid["present"].astype("boolean").fillna(False).astype(bool)
    grid["observed_at"] = pd.to_datetime(grid["observed_at"], utc=True)
    return grid.sort_values([*KEYS, "observed_at", "report"], kind="stable").reset_index(drop=True)


def track_events(reports: pd.DataFrame, findings: pd.DataFrame) -> pd.DataFrame:
    """`entered` and `exited` events for every unit and zone.

    `reports` needs `id`, `party`, `unit`, `observed_at` (the frame given to `ZoneIndex.check`);
    `findings` is what `check` returned for it. An entry is the first report in after one out (or
    the unit's first report); an exit is the first report out after one in.
    """
    grid = _presence(reports, findings)
    before = grid.groupby(KEYS, sort=False)["present"].shift(fill_value=False).astype(bool)
    grid["kind"] = np.select(
        [grid["present"] & ~before, ~grid["present"] & before],
        [TrackEventKind.ENTERED.value, TrackEventKind.EXITED.value],
        default="",
    )
    events = grid[grid["kind"] != ""].rename(columns={"observed_at": "at", "id": "report_id"})
    return events[EVENT_COLUMNS].reset_index(drop=True)


def track_summary(
    reports: pd.DataFrame,
    findings: pd.DataFrame,
    *,
    return_distance_m: float = DEFAULT_RETURN_DISTANCE_M,
) -> pd.DataFrame:
    """Per unit and zone: first entry, last exit, dwell, withdrawal, and return to the start.

    - `dwell_s`: seconds spent in, from each entry to the exit that follows it (or to the unit's
      latest report while it is still in);
    - `withdrawn`: the unit's latest report puts it out of the zone;
    - `initial_lon/lat`: the unit's position in its latest report before it first entered (none
      when its very first report is already in);
    - `back_at_initial`: withdrawn and its latest position within `return_distance_m` of that.
    """
    grid = _presence(reports, findings)
    groups = grid.groupby(KEYS, sort=False)
    before = groups["present"].shift(fill_value=False).astype(bool)
    # Each row's time until the unit's next report: time spent in the state of this row.
    following = groups["observed_at"].shift(-1)
    span = (following - grid["observed_at"]).dt.total_seconds().fillna(0.0)
    grid["dwell_s"] = np.where(grid["present"], span, 0.0)
    grid["entered_at"] = grid["observed_at"].where(grid["present"] & ~before)
    grid["exited_at"] = grid["observed_at"].where(~grid["present"] & before)
    first_entry = grid.index.to_series().where(grid["present"]).groupby([grid[k] for k in KEYS])
    first_in = first_entry.transform("min")
    is_initial = grid.index.to_series() == first_in - 1
    grid["initial_lon"] = grid["lon"].where(is_initial)
    grid["initial_lat"] = grid["lat"].where(is_initial)

    summary = grid.groupby(KEYS, sort=False).agg(
        entered_at=("entered_at", "min"),
        last_exited_at=("exited_at", "max"),
        dwell_s=("dwell_s", "sum"),
        inside_now=("present", "last"),
        lon=("lon", "last"),
        lat=("lat", "last"),
        initial_lon=("initial_lon", "max"),
        initial_lat=("initial_lat", "max"),
    )
    summary["withdrawn"] = ~summary["inside_now"]
    _, _, dist = GEOD.inv(
        summary["lon"].to_numpy(),
        summary["lat"].to_numpy(),
        summary["initial_lon"].fillna(summary["lon"]).to_numpy(),
        summary["initial_lat"].fillna(summary["lat"]).to_numpy(),
    )
    has_initial = summary["initial_lon"].notna()
    summary["distance_to_initial_m"] = np.where(has_initial, dist, np.nan)
    summary["back_at_initial"] = (
        summary["withdrawn"] & has_initial & (summary["distance_to_initial_m"] <= return_distance_m)
    )
    return summary.reset_index()[SUMMARY_COLUMNS]
