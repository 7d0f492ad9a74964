"""A judged season brought up to date with the reports written since it was judged: only the
new and changed reports go through the engine, in one batch; everything else is carried over.

Pure (frames and arrays in, frames out; no I/O): `app.mapview.seasons` reads the changes from
the store's commit-order feed (`Store.reports_after`) and lays the result out (`lay_out`).

A change is the latest version of a report in the feed: a new report or a correction replaces
whatever the season holds under its id (nothing, or the superseded version), a retraction
removes it. Applying a change twice gives what applying it once does, so a season judged from
columns read a little after its feed position, and then advanced from that position, holds each
report once, as its latest version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from app.engine import ZoneIndex
from app.mapview.model import frame_from_columns, judge_rows, unit_tracks, utc_times
from app.mapview.seconds import EPOCH
from app.store.base import ReportColumns, ReportVersion

#: The columns of a judged frame that come from the store (`frame_from_columns`); the rest
#: (status, possible, certain) are laid out again.
BASE_COLUMNS = (
    "id",
    "party",
    "lon",
    "lat",
    "uncertainty_m",
    "kind",
    "unit",
    "source",
    "confidence",
    "notes",
    "observed_at",
    "t",
)
_MICRO = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Changes:
    """What the feed said since a position: the latest content of each report written (as a
    judged frame's base columns, in (observed_at, id) order) and the ids retracted."""

    upserts: pd.DataFrame
    retracted: np.ndarray

    def __len__(self) -> int:
        return len(self.upserts) + len(self.retracted)


def changes_from_versions(versions: Sequence[ReportVersion]) -> Changes:
    """The changes of report versions in commit order: each id's last version wins."""
    latest: dict[str, ReportVersion] = {}
    for version in versions:
        latest[version.report.id] = version
    rows = [
        (
            r.id,
            r.party,
            (r.observed_at - EPOCH) // _MICRO,
            r.lon,
            r.lat,
            r.uncertainty_m,
            r.kind.value,
            r.unit,
            r.source,
            None if r.confidence is None else r.confidence.value,
        )
        for r in (v.report for v in latest.values() if not v.retracted)
    ]
    upserts = frame_from_columns(ReportColumns.from_rows(rows))
    upserts = upserts.sort_values(["observed_at", "id"], kind="stable").reset_index(drop=True)
    retracted = np.array([k for k, v in latest.items() if v.retracted], dtype=object)
    return Changes(upserts, retracted)


@dataclass(frozen=True, slots=True)
class Advanced:
    """A season's judged frame, findings and tracks after changes, and where each row of the
    old frame went (`moved[old row]`: its new row, -1 when it was replaced or removed)."""

    frame: pd.DataFrame
    findings: pd.DataFrame
    events: pd.DataFrame
    summary: pd.DataFrame
    moved: np.ndarray


def advance(
    frame: pd.DataFrame,
    findings: pd.DataFrame,
    events: pd.DataFrame,
    summary: pd.DataFrame,
    changes: Changes,
    index: ZoneIndex,
    party: str | None = None,
) -> Advanced:
    """Apply `changes` to a judged season (a frame of every report of `party`, in time order,
    its findings, and its units' track events and summaries), judging only the changed reports
    with `index` (the one the season was judged with)."""
    new = changes.upserts
    if party is not None:
        new = new[new["party"] == party].reset_index(drop=True)
    changed_ids = np.concatenate([changes.upserts["id"].to_numpy(object), changes.retracted])
    ids = frame["id"].to_numpy(object)
    keep = (
        pd.Index(changed_ids).get_indexer(ids) < 0 if len(changed_ids) else np.ones(len(ids), bool)
    )
    kept_rows = np.flatnonzero(keep)

    # Where the new rows go among the kept ones, in (observed_at, id) order.
    at = _insertion(
        frame["observed_at"].array.asi8[keep],
        ids[keep],
        new["observed_at"].array.asi8,
        new["id"].to_numpy(object),
    )
    new_rows = at + np.arange(len(new))
    is_new = np.zeros(len(kept_rows) + len(new), bool)
    is_new[new_rows] = True
    moved = np.full(len(frame), -1, np.int64)
    moved[kept_rows] = np.flatnonzero(~is_new)

    base = [c for c in BASE_COLUMNS if c in frame.columns]
    merged = pd.DataFrame(
        {c: _interleave(frame[c], keep, new[c], is_new) for c in base},
    )

    # Findings: the kept ones renumbered, the new reports' from the engine, by report.
    old_report = findings["report"].to_numpy(np.int64) if len(findings) else np.empty(0, np.int64)
    f_keep = moved[old_report] >= 0
    new_findings = judge_rows(new, index)
    new_report = new_rows[new_findings["report"].to_numpy(np.int64)]
    kept_report = moved[old_report[f_keep]]
    f_at = np.searchsorted(kept_report, new_report, side="left") + np.arange(len(new_report))
    f_is_new = np.zeros(len(kept_report) + len(new_report), bool)
    f_is_new[f_at] = True
    found = pd.DataFrame(
        {
            c: _interleave(findings[c], f_keep, new_findings[c], f_is_new)
            for c in findings.columns
            if c != "report"
        }
    )
    report = np.empty(len(f_is_new), np.int64)
    report[~f_is_new] = kept_report
    report[f_is_new] = new_report
    found.insert(0, "report", report)
    found = found[list(findings.columns)] if len(findings.columns) else found

    # Tracks: the units of a dropped or new row are laid out again, the others carried over.
    touched = pd.concat([frame.loc[~keep, ["party", "unit"]], new[["party", "unit"]]]).dropna()
    units = pd.MultiIndex.from_frame(touched.drop_duplicates())
    of_units = np.zeros(len(merged), bool)
    if len(units):
        candidates = np.flatnonzero(merged["unit"].isin(units.get_level_values(1)).to_numpy())
        pairs = pd.MultiIndex.from_arrays(
            [
                merged["party"].to_numpy(object)[candidates],
                merged["unit"].to_numpy(object)[candidates],
            ]
        )
        of_units[candidates[pairs.isin(units)]] = True
    fresh_events, fresh_summary = unit_tracks(merged, found, np.flatnonzero(of_units))
    old_events = _other_units(events, units)
    old_events = old_events.assign(report_id=moved[old_events["report_id"].to_numpy(np.int64)])
    return Advanced(
        frame=merged,
        findings=found,
        events=_concat_sorted(old_events, fresh_events, ["party", "unit", "at", "zone_id"]),
        summary=_concat_sorted(
            _other_units(summary, units), fresh_summary, ["party", "unit", "zone_id"]
        ),
        moved=moved,
    )


def _insertion(
    old_t: np.ndarray, old_id: np.ndarray, new_t: np.ndarray, new_id: np.ndarray
) -> np.ndarray:
    """For each new row (sorted by (t, id)), how many old rows (sorted likewise) come before it:
    those of an earlier time, and those of the same time with a smaller id."""
    before = np.searchsorted(old_t, new_t, side="left")
    tied = np.searchsorted(old_t, new_t, side="right") - before
    if not tied.any():
        return before
    # The old rows of each new row's time, compared by id (few: reports of one instant).
    owner = np.repeat(np.arange(len(new_t)), tied)
    starts = np.repeat(before - np.concatenate([[0], np.cumsum(tied)[:-1]]), tied)
    positions = np.arange(len(owner)) + starts
    smaller = old_id[positions] < new_id[owner]
    return before + np.bincount(owner, weights=smaller, minlength=len(new_t)).astype(np.int64)


def _interleave(old: pd.Series, keep: np.ndarray, new: pd.Series, is_new: np.ndarray) -> pd.Series:
    """The kept values of `old` and the values of `new` at the rows `is_new` marks."""
    if isinstance(old.dtype, pd.DatetimeTZDtype):
        values = np.empty(len(is_new), np.int64)
        values[~is_new] = old.array.asi8[keep]
        values[is_new] = new.array.asi8 if len(new) else np.empty(0, np.int64)
        return utc_times(values)
    old_values = old.to_numpy()
    new_values = new.to_numpy()
    if len(new_values) and len(old_values) and old_values.dtype != new_values.dtype:
        dtype = np.result_type(old_values.dtype, new_values.dtype)
    elif len(old_values) or not len(new_values):
        dtype = old_values.dtype
    else:
        dtype = new_values.dtype
    out = np.empty(len(is_new), dtype)
    out[~is_new] = old_values[keep]
    out[is_new] = new_values
    # With its dtype given, pandas does not scan a million objects for dates to infer.
    return pd.Series(out, dtype=out.dtype, copy=False)


def _other_units(frame: pd.DataFrame, units: pd.MultiIndex) -> pd.DataFrame:
    """The rows of `frame` (events or summaries) of units not in `units`."""
    if not len(frame) or not len(units):
        return frame
    mine = pd.MultiIndex.from_arrays(
        [frame["party"].to_numpy(object), frame["unit"].to_numpy(object)]
    ).isin(units)
    return frame[~mine]


def _concat_sorted(old: pd.DataFrame, fresh: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Carried-over rows and fresh ones in `keys` order (stable: a unit's rows are all from one
    of the two, in their own order)."""
    parts = [p for p in (old, fresh) if len(p)]
    if not parts:
        return fresh.reset_index(drop=True)
    if len(parts) == 1:
        return parts[0].reset_index(drop=True)
    both = pd.concat(parts, ignore_index=True)
    return both.sort_values(keys, kind="stable").reset_index(drop=True)
