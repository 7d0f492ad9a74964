"""Tracks: a unit's reports in time order, and when it entered, crossed and left each zone.

A unit is a (party, unit) pair. Its state in a zone follows the findings with hysteresis
(docs/rule.md, "Tracks"): it turns *in* at an `inside` finding and *out* only at an `approaching`
or `outside` one, or at a report with no finding for the zone (far from it, or the zone not in
force); a `possible` finding keeps the state, so jitter along a boundary gives no events. From the
state sequence come `entered` and `exited` events (an exit carries the dwell since its entry),
dwell times and withdrawal; a unit still in a zone and not reported for `stale_after` as of
`now` is `stale`. A `crossed` event marks a straight lon/lat segment between two consecutive
reports of a unit that passes through a zone in force that neither report is in.

Everything is computed for all units and zones at once: pandas group shifts and forward fills
for the states, one `shapely.STRtree` query over every segment for the crossings.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import shapely

from app.domain import TrackEventKind, Verdict, Zone
from app.geodesy import GEOD

__all__ = [
    "DEFAULT_RETURN_DISTANCE_M",
    "EVENT_COLUMNS",
    "SUMMARY_COLUMNS",
    "UNIT_COLUMNS",
    "track_events",
    "track_summary",
    "track_units",
]

DEFAULT_RETURN_DISTANCE_M = 1000.0
KEYS = ["party", "unit", "zone_id"]
EVENT_COLUMNS = [*KEYS, "kind", "at", "report_id", "dwell_s"]
SUMMARY_COLUMNS = [
    *KEYS,
    "state",
    "entered_at",
    "last_exited_at",
    "last_report_at",
    "dwell_s",
    "inside_now",
    "withdrawn",
    "initial_lon",
    "initial_lat",
    "distance_to_initial_m",
    "back_at_initial",
]
UNIT_COLUMNS = ["party", "unit", "reports", "last_report_id", "last_report_at", "lon", "lat"]

#: States of a unit in a zone, as the summary writes them.
IN, OUT, STALE = "in", "out", "stale"

# What a finding does to the state: turn it in, keep it, or turn it out.
_TURN_IN, _KEEP, _TURN_OUT = 1.0, 0.0, -1.0


def _units(reports: pd.DataFrame) -> pd.DataFrame:
    """The reports that belong to a unit, with their row position as `report`, in track order."""
    units = reports.assign(report=np.arange(len(reports)))
    units = units[units["unit"].notna()].copy()
    units["observed_at"] = pd.to_datetime(units["observed_at"], utc=True)
    if "id" not in units.columns:
        units["id"] = units["report"].astype(str)
    return units.sort_values(["party", "unit", "observed_at", "report"], kind="stable")


def _grid(reports: pd.DataFrame, findings: pd.DataFrame) -> pd.DataFrame:
    """One row per (unit report, zone the unit was ever inside), with its hysteresis state.

    Only zones with an `inside` finding can ever hold a unit, so only those are laid out.
    """
    units = _units(reports)
    found = findings[findings["report"].isin(units["report"])]
    verdict = found["verdict"].astype(str).to_numpy()
    codes = pd.DataFrame(
        {
            "report": found["report"].to_numpy(),
            "zone_id": found["zone_id"].to_numpy(),
            "code": np.select(
                [verdict == Verdict.INSIDE.value, verdict == Verdict.POSSIBLE.value],
                [_TURN_IN, _KEEP],
                default=_TURN_OUT,
            ),
        }
    )
    # Versions of one zone never overlap in time, but keep one row a pair whatever the input.
    codes = codes.groupby(["report", "zone_id"], sort=False)["code"].max().reset_index()
    entering = codes[codes["code"] == _TURN_IN].merge(units[["report", "party", "unit"]])
    touched = entering[KEYS].drop_duplicates()
    grid = units.merge(touched, on=["party", "unit"])
    grid = grid.merge(codes, on=["report", "zone_id"], how="left")
    grid["code"] = grid["code"].fillna(_TURN_OUT)  # no finding: far from the zone or not in force
    grid = grid.sort_values([*KEYS, "observed_at", "report"], kind="stable").reset_index(drop=True)
    # One integer a (unit, zone) track: grouping by it is much faster than by three strings.
    changed = np.zeros(len(grid), dtype=bool)
    for key in KEYS:
        values = grid[key].to_numpy()
        changed[1:] |= values[1:] != values[:-1]
    grid["track"] = np.cumsum(changed)
    # Hysteresis: a `possible` finding (0) keeps the state of the report before it.
    state = grid["code"].where(grid["code"] != _KEEP)
    state = state.groupby(grid["track"], sort=False).ffill().fillna(_TURN_OUT)
    grid["present"] = (state > 0).to_numpy()
    return grid


def _stale_rows(
    grid: pd.DataFrame, now: datetime | None, stale_after: timedelta | None
) -> pd.DataFrame:
    """The last row of each (unit, zone) whose unit is in and was last reported long enough ago."""
    last = grid.groupby("track", sort=False).tail(1)
    if now is None or stale_after is None:
        return last.iloc[:0]
    due = last["observed_at"] + pd.Timedelta(stale_after)
    return last[last["present"].to_numpy(bool) & (due <= pd.Timestamp(now)).to_numpy(bool)]


def _crossings(
    reports: pd.DataFrame, findings: pd.DataFrame, zones: Sequence[Zone]
) -> pd.DataFrame:
    """`crossed` events: consecutive reports of a unit whose segment meets a zone neither is in.

    In force means the zone's validity overlaps the time between the two reports; "in" means a
    finding `inside` or `possible` for the zone, so that jitter along a boundary is no crossing.
    """
    units = _units(reports)
    same = (units["party"].to_numpy() == np.roll(units["party"].to_numpy(), 1)) & (
        units["unit"].to_numpy() == np.roll(units["unit"].to_numpy(), 1)
    )
    if len(same):
        same[0] = False
    lon, lat = units["lon"].to_numpy(np.float64), units["lat"].to_numpy(np.float64)
    b = np.flatnonzero(same)
    a = b - 1
    moved = (lon[a] != lon[b]) | (lat[a] != lat[b])
    a, b = a[moved], b[moved]
    if not len(a) or not zones:
        return pd.DataFrame({c: [] for c in EVENT_COLUMNS})
    coords = np.stack([np.column_stack([lon[a], lat[a]]), np.column_stack([lon[b], lat[b]])], 1)
    segments = shapely.linestrings(coords)
    geometries = np.array([z.geometry for z in zones], dtype=object)
    # The tree holds the segments and the zones ask it: shapely prepares each query geometry,
    # so each zone's polygon is prepared once for all the segments near it.
    zone, segment = shapely.STRtree(segments).query(geometries, predicate="intersects")
    times = pd.DatetimeIndex(units["observed_at"]).as_unit("ns").asi8
    start, end = times[a[segment]], times[b[segment]]
    valid_from = np.array([pd.Timestamp(z.valid_from).value for z in zones], np.int64)[zone]
    never = np.iinfo(np.int64).max
    valid_to = np.array(
        [never if z.valid_to is None else pd.Timestamp(z.valid_to).value for z in zones], np.int64
    )[zone]
    in_force = (valid_from <= end) & (start < valid_to)
    segment, zone = segment[in_force], zone[in_force]
    # Zones by id (a zone's versions share one), and the (report, zone) pairs a unit is in at:
    # integer keys, so that many hits are filtered without building a frame of them.
    ids, zone_code = np.unique(np.array([z.id for z in zones], dtype=object), return_inverse=True)
    code = zone_code[zone]
    verdict = findings["verdict"].astype(str).to_numpy()
    kept = (verdict == Verdict.INSIDE.value) | (verdict == Verdict.POSSIBLE.value)
    kept_code = np.searchsorted(ids, findings["zone_id"].to_numpy()[kept].astype(object))
    kept_code = np.minimum(kept_code, len(ids) - 1)
    known = ids[kept_code] == findings["zone_id"].to_numpy()[kept]
    span = len(ids)
    held = findings["report"].to_numpy(np.int64)[kept][known] * span + kept_code[known]
    report = units["report"].to_numpy(np.int64)
    before, after = report[a[segment]], report[b[segment]]
    free = ~np.isin(before * span + code, held) & ~np.isin(after * span + code, held)
    # One event a (segment, zone id), however many versions of the zone it met.
    pairs = np.unique(np.column_stack([segment[free], code[free]]), axis=0)
    rows_b = units.iloc[b[pairs[:, 0]]]
    hits = pd.DataFrame(
        {
            "party": rows_b["party"].to_numpy(),
            "unit": rows_b["unit"].to_numpy(),
            "zone_id": ids[pairs[:, 1]],
            "at": pd.to_datetime(times[b[pairs[:, 0]]], utc=True),
            "report_id": rows_b["id"].astype(str).to_numpy(),
        }
    )
    return hits.assign(kind=TrackEventKind.CROSSED.value, dwell_s=np.nan)[EVENT_COLUMNS]


def track_events(
    reports: pd.DataFrame,
    findings: pd.DataFrame,
    *,
    zones: Sequence[Zone] = (),
    now: datetime | None = None,
    stale_after: timedelta | None = None,
) -> pd.DataFrame:
    """`entered`, `exited`, `crossed` and `stale` events for every unit and zone, in time order.

    `reports` needs `party`, `unit`, `lon`, `lat`, `observed_at` and, for the events' report ids,
    `id` (the frame given to `ZoneIndex.check`); `findings` is what `check` returned for it.
    Crossings are looked for among `zones` (the zone versions, e.g. `ZoneIndex.zones`); stale
    events only when both `now` and `stale_after` are given. An exit carries `dwell_s`, the
    seconds since the entry it ends; a stale event is at the time the unit became stale.
    """
    grid = _grid(reports, findings)
    groups = grid.groupby("track", sort=False)
    before = groups["present"].shift(fill_value=False).astype(bool)
    entered = grid["present"] & ~before
    exited = ~grid["present"] & before
    entry_at = grid["observed_at"].where(entered).groupby(grid["track"], sort=False).ffill()
    grid["dwell_s"] = np.where(exited, (grid["observed_at"] - entry_at).dt.total_seconds(), np.nan)
    grid["kind"] = np.select(
        [entered, exited], [TrackEventKind.ENTERED.value, TrackEventKind.EXITED.value], default=""
    )
    changes = grid[grid["kind"] != ""].rename(columns={"observed_at": "at", "id": "report_id"})
    stale = _stale_rows(grid, now, stale_after).rename(columns={"id": "report_id"})
    stale = stale.assign(
        kind=TrackEventKind.STALE.value,
        at=stale["observed_at"] + pd.Timedelta(stale_after or timedelta(0)),
        dwell_s=np.nan,
    )
    parts = [changes[EVENT_COLUMNS], stale[EVENT_COLUMNS], _crossings(reports, findings, zones)]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame({c: [] for c in EVENT_COLUMNS})
    events = pd.concat(parts, ignore_index=True)
    events["report_id"] = events["report_id"].astype(str)
    events["at"] = pd.to_datetime(events["at"], utc=True)
    events = events.sort_values(["party", "unit", "at", "zone_id"], kind="stable")
    return events.reset_index(drop=True)[EVENT_COLUMNS]


def track_summary(
    reports: pd.DataFrame,
    findings: pd.DataFrame,
    *,
    return_distance_m: float = DEFAULT_RETURN_DISTANCE_M,
    now: datetime | None = None,
    stale_after: timedelta | None = None,
) -> pd.DataFrame:
    """Per unit and zone it was ever inside: its state, first entry, last exit, dwell, withdrawal.

    - `state`: `in`, `out`, or `stale` (in, and not reported for `stale_after` as of `now`);
    - `dwell_s`: seconds spent in, from each entry to the exit that follows it (or to the unit's
      latest report while it is still in);
    - `withdrawn`: the unit's state after its latest report is out;
    - `initial_lon/lat`: the unit's position in its latest report before it first entered (none
      when its very first report is already in);
    - `back_at_initial`: withdrawn and its latest position within `return_distance_m` of that.
    """
    grid = _grid(reports, findings)
    groups = grid.groupby("track", sort=False)
    before = groups["present"].shift(fill_value=False).astype(bool)
    # Each row's time until the unit's next report: time spent in the state of this row.
    following = groups["observed_at"].shift(-1)
    span = (following - grid["observed_at"]).dt.total_seconds().fillna(0.0)
    grid["dwell_s"] = np.where(grid["present"], span, 0.0)
    grid["entered_at"] = grid["observed_at"].where(grid["present"] & ~before)
    grid["exited_at"] = grid["observed_at"].where(~grid["present"] & before)
    first_entry = grid.index.to_series().where(grid["present"]).groupby(grid["track"])
    first_in = first_entry.transform("min")
    is_initial = grid.index.to_series() == first_in - 1
    grid["initial_lon"] = grid["lon"].where(is_initial)
    grid["initial_lat"] = grid["lat"].where(is_initial)

    summary = grid.groupby("track", sort=False).agg(
        party=("party", "first"),
        unit=("unit", "first"),
        zone_id=("zone_id", "first"),
        entered_at=("entered_at", "min"),
        last_exited_at=("exited_at", "max"),
        last_report_at=("observed_at", "last"),
        dwell_s=("dwell_s", "sum"),
        inside_now=("present", "last"),
        lon=("lon", "last"),
        lat=("lat", "last"),
        initial_lon=("initial_lon", "max"),
        initial_lat=("initial_lat", "max"),
    )
    summary["withdrawn"] = ~summary["inside_now"]
    stale = _stale_rows(grid, now, stale_after)["track"]
    summary["state"] = np.where(summary["inside_now"], IN, OUT)
    summary.loc[summary.index.isin(stale), "state"] = STALE
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
    return summary.reset_index(drop=True)[SUMMARY_COLUMNS]


def track_units(reports: pd.DataFrame) -> pd.DataFrame:
    """One row per unit: its party, unit, number of reports, and its latest report and position."""
    units = _units(reports)
    last = units.groupby(["party", "unit"], sort=True).agg(
        reports=("report", "size"),
        last_report_id=("id", "last"),
        last_report_at=("observed_at", "last"),
        lon=("lon", "last"),
        lat=("lat", "last"),
    )
    last["last_report_id"] = last["last_report_id"].astype(str)
    return last.reset_index()[UNIT_COLUMNS]
