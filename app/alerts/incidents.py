"""Incidents: violation episodes, recomputed from the stored reports in every report write.

An incident is one violation episode of a (party, unit, zone), or of a single report that has no
unit. A unit's episodes follow the hysteresis of tracks (`app.tracks`, docs/rule.md): among its
*violating* findings for the zone (the party is not authorised there), an `inside` one turns the
unit in, a `possible` one keeps its state, and anything else (`approaching`, `outside`, no
finding, or a finding of an authorised party) turns it out. So an incident opens at an `inside`
violation, jitter along the boundary (`inside`, `possible`, `inside`) stays one incident, and the
report that turns the unit out closes it (`close_reason` ``exited``). A report without a unit is
its own incident for each zone it violates (`inside` or `possible`): opened and closed at once
(``single-report``), as nothing can follow it.

`keep_incidents` runs inside the transaction of a report write: it recomputes the episodes of
every (party, unit) the write touched, and of every unit-less report it touched, from the
reports as they now stand (latest versions, retracted ones left out), matches them with the
stored incidents (the same key, sharing the most reports: ids stay stable across corrections
and late reports), and writes the differences and their events. A stored incident that no
episode supports any more (its reports were retracted or corrected away) is closed with the
write's cause as its `close_reason`. Nothing of it is kept when the write rolls back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np
import pandas as pd

from app.alerts.events import INCIDENT_CLOSED, INCIDENT_OPENED, INCIDENT_UPDATED
from app.batch import ReportBatch
from app.domain import Report, Verdict
from app.engine import ZoneIndex

__all__ = [
    "CAUSES",
    "Incident",
    "IncidentRecords",
    "Touched",
    "episodes",
    "incident_payload",
    "keep_incidents",
    "reconcile",
    "stale_payload",
]

OPEN, CLOSED = "open", "closed"
#: Why an incident closed: the unit turned out, a single report, or the write that took its
#: reports away (a correction or a retraction).
EXITED, SINGLE = "exited", "single-report"
#: The causes a report write gives `keep_incidents`: they become the `close_reason` of an
#: incident that loses all its reports.
CAUSES = ("reports", "corrected", "retracted")

# What a finding does to a unit's state in a zone (as in app.tracks).
_TURN_IN, _KEEP, _TURN_OUT = 1.0, 0.0, -1.0


@dataclass(frozen=True)
class Incident:
    """One violation episode, as stored (`id` 0 before it is)."""

    id: int
    party: str
    unit: str | None
    zone_id: str
    zone_name: str
    state: str
    opened_at: datetime
    last_seen_at: datetime
    closed_at: datetime | None
    close_reason: str | None
    verdict: str
    depth_m: float
    deepest_report_id: str
    last_report_id: str
    report_ids: tuple[str, ...]
    #: The report of a unit-less incident (None for a unit's): part of its key.
    report_key: str | None = None
    #: The `last_seen_at` that a `track.stale` event was written for (once per staleness).
    stale_at: datetime | None = None

    @property
    def last_observed_at(self) -> datetime:
        """When the incident's latest report was observed (the report that closed it when the
        unit turned out)."""
        if self.close_reason == EXITED and self.closed_at is not None:
            return self.closed_at
        return self.last_seen_at

    @property
    def key(self) -> tuple[str, str | None, str, str | None]:
        """What identifies an episode's series: (party, unit, zone, unit-less report)."""
        return (self.party, self.unit, self.zone_id, self.report_key)

    def content(self) -> tuple[Any, ...]:
        """Everything a change of which is worth an `incident.updated` event."""
        return (
            self.zone_name,
            self.state,
            self.opened_at,
            self.last_seen_at,
            self.closed_at,
            self.close_reason,
            self.verdict,
            self.depth_m,
            self.deepest_report_id,
            self.last_report_id,
            self.report_ids,
        )


def _iso(at: datetime | None) -> str | None:
    return None if at is None else pd.Timestamp(at).tz_convert("UTC").isoformat()


def incident_payload(incident: Incident) -> dict[str, Any]:
    """The payload of an `incident.*` event (keys: `app.alerts.events`)."""
    return {
        "incident_id": incident.id,
        "party": incident.party,
        "unit": incident.unit,
        "zone_id": incident.zone_id,
        "zone_name": incident.zone_name,
        "verdict": incident.verdict,
        "depth_m": incident.depth_m,
        "report_id": incident.last_report_id,
        "observed_at": _iso(incident.last_observed_at),
        "state": incident.state,
        "opened_at": _iso(incident.opened_at),
        "last_seen_at": _iso(incident.last_seen_at),
        "closed_at": _iso(incident.closed_at),
        "close_reason": incident.close_reason,
        "deepest_report_id": incident.deepest_report_id,
        "reports": len(incident.report_ids),
    }


def stale_payload(incident: Incident, stale_after: timedelta) -> dict[str, Any]:
    """The payload of a `track.stale` event for a unit still in an open incident."""
    return {
        "incident_id": incident.id,
        "party": incident.party,
        "unit": incident.unit,
        "zone_id": incident.zone_id,
        "zone_name": incident.zone_name,
        "verdict": incident.verdict,
        "depth_m": incident.depth_m,
        "report_id": incident.last_report_id,
        "observed_at": _iso(incident.last_seen_at),
        "stale_after_s": stale_after.total_seconds(),
    }


# -- episodes from reports ----------------------------------------------------------------------


def _findings(reports: Sequence[Report], index: ZoneIndex) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The reports as a frame (with `report` positions and `unit`) and their findings, one per
    (report, zone id): the one that weighs most (inside over possible over the rest)."""
    batch = ReportBatch.from_reports(reports)
    frame = batch.frame()
    frame["report"] = np.arange(len(frame))
    frame["id"] = np.array([r.id for r in reports], dtype=object)
    frame["unit"] = np.array([r.unit for r in reports], dtype=object)
    found = index.check(frame)
    verdict = found["verdict"].astype(str).to_numpy()
    violation = found["violation"].to_numpy(bool)
    found["code"] = np.select(
        [
            violation & (verdict == Verdict.INSIDE.value),
            violation & (verdict == Verdict.POSSIBLE.value),
        ],
        [_TURN_IN, _KEEP],
        default=_TURN_OUT,
    )
    # Versions of one zone never overlap in time; keep one finding a pair whatever the input.
    found = found.sort_values(
        ["report", "zone_id", "code", "depth_m"], ascending=[True, True, False, False]
    )
    found = found.drop_duplicates(["report", "zone_id"])
    return frame, found


def _utc(ns: np.ndarray) -> list[datetime]:
    return [ts.to_pydatetime() for ts in pd.to_datetime(ns, utc=True)]


def _single_report_episodes(frame: pd.DataFrame, found: pd.DataFrame) -> list[Incident]:
    lone = frame["unit"].isna().to_numpy(bool)
    hits = found[lone[found["report"].to_numpy(np.int64)] & (found["code"] != _TURN_OUT).to_numpy()]
    ids = frame["id"].to_numpy(object)[hits["report"].to_numpy(np.int64)]
    times = _utc(hits["observed_at"].to_numpy("datetime64[ns]").astype(np.int64))
    columns = zip(
        ids,
        hits["party"].to_numpy(object),
        hits["zone_id"].to_numpy(object),
        hits["zone_name"].to_numpy(object),
        hits["verdict"].astype(str).to_numpy(object),
        hits["depth_m"].to_numpy(np.float64),
        times,
        strict=True,
    )
    return [  # one per incident, not per report
        Incident(
            id=0,
            party=str(party),
            unit=None,
            zone_id=str(zone_id),
            zone_name=str(zone_name),
            state=CLOSED,
            opened_at=at,
            last_seen_at=at,
            closed_at=at,
            close_reason=SINGLE,
            verdict=str(verdict),
            depth_m=float(depth),
            deepest_report_id=str(report_id),
            last_report_id=str(report_id),
            report_ids=(str(report_id),),
            report_key=str(report_id),
        )
        for report_id, party, zone_id, zone_name, verdict, depth, at in columns
    ]


def _unit_episodes(frame: pd.DataFrame, found: pd.DataFrame) -> list[Incident]:
    units = frame[frame["unit"].notna()]
    if units.empty:
        return []
    codes = found[["report", "zone_id", "zone_name", "code", "verdict", "depth_m"]]
    entering = codes[codes["code"] == _TURN_IN].merge(units[["report", "party", "unit"]])
    touched = entering[["party", "unit", "zone_id"]].drop_duplicates()
    if touched.empty:
        return []
    grid = units[["report", "id", "party", "unit", "observed_at"]].merge(
        touched, on=["party", "unit"]
    )
    grid = grid.merge(codes, on=["report", "zone_id"], how="left")
    grid["code"] = grid["code"].fillna(_TURN_OUT)
    grid = grid.sort_values(["party", "unit", "zone_id", "observed_at", "id"], kind="stable")
    grid = grid.reset_index(drop=True)
    changed = np.zeros(len(grid), dtype=bool)
    for key in ("party", "unit", "zone_id"):
        values = grid[key].to_numpy()
        changed[1:] |= values[1:] != values[:-1]
    track = np.cumsum(changed)
    state = grid["code"].where(grid["code"] != _KEEP)
    present = (state.groupby(track, sort=False).ffill().fillna(_TURN_OUT) > 0).to_numpy(bool)
    before = np.r_[False, present[:-1]] & ~changed
    opening = present & ~before
    closing = ~present & before
    # An episode's rows are contiguous: its present rows, then the row that closes it, if any.
    episode = np.where(present | closing, np.cumsum(opening), 0)
    rows = np.flatnonzero(episode > 0)
    if not len(rows):
        return []
    number = episode[rows]
    first = rows[np.r_[True, number[1:] != number[:-1]]]
    last = rows[np.r_[number[1:] != number[:-1], True]]
    closed = closing[last]
    last_in = np.where(closed, last - 1, last)
    depth = grid["depth_m"].to_numpy(np.float64)
    # The deepest present row of each episode: sort present rows by (episode, -depth).
    inside_rows = rows[present[rows]]
    order = np.lexsort((-depth[inside_rows], episode[inside_rows]))
    ranked = inside_rows[order]
    deepest = ranked[np.r_[True, episode[ranked][1:] != episode[ranked][:-1]]]
    ids = grid["id"].to_numpy(object)
    times = _utc(grid["observed_at"].to_numpy("datetime64[ns]").astype(np.int64))
    party, unit = grid["party"].to_numpy(object), grid["unit"].to_numpy(object)
    zone_id, zone_name = grid["zone_id"].to_numpy(object), grid["zone_name"].to_numpy(object)
    verdict = grid["verdict"].astype(str).to_numpy(object)
    out = []
    for a, b, inside_end, deep, is_closed in zip(
        first, last, last_in, deepest, closed, strict=True
    ):
        out.append(  # one per episode, not per report
            Incident(
                id=0,
                party=str(party[a]),
                unit=str(unit[a]),
                zone_id=str(zone_id[a]),
                zone_name=str(zone_name[inside_end]),
                state=CLOSED if is_closed else OPEN,
                opened_at=times[a],
                last_seen_at=times[inside_end],
                closed_at=times[b] if is_closed else None,
                close_reason=EXITED if is_closed else None,
                verdict=str(verdict[deep]),
                depth_m=float(depth[deep]),
                deepest_report_id=str(ids[deep]),
                last_report_id=str(ids[b]),
                report_ids=tuple(str(i) for i in ids[a : b + 1]),
            )
        )
    return out


def episodes(reports: Sequence[Report], index: ZoneIndex) -> list[Incident]:
    """Every violation episode among `reports` (whole units' histories and unit-less reports),
    unsaved (`id` 0), by key and opening time."""
    if not reports or not len(index):
        return []
    frame, found = _findings(reports, index)
    found = found[found["zone_id"].notna()]
    out = _unit_episodes(frame, found) + _single_report_episodes(frame, found)
    return sorted(
        out, key=lambda i: (i.party, i.unit or "", i.zone_id, i.report_key or "", i.opened_at)
    )


# -- matching with what is stored ---------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """A stored incident to write (`new` when it is not stored yet) and its events, in order."""

    incident: Incident
    new: bool
    events: tuple[str, ...]


def _as_open(incident: Incident) -> Incident:
    return replace(incident, state=OPEN, closed_at=None, close_reason=None)


def reconcile(
    stored: Sequence[Incident], computed: Sequence[Incident], cause: str, now: datetime
) -> list[Change]:
    """The writes and events that bring `stored` in line with `computed` (same keys)."""
    by_key: dict[tuple[Any, ...], list[Incident]] = {}
    for incident in stored:
        by_key.setdefault(incident.key, []).append(incident)
    changes: list[Change] = []
    matched: set[int] = set()
    for episode in computed:
        candidates = [s for s in by_key.get(episode.key, []) if s.id not in matched]
        shared = set(episode.report_ids)
        best = max(
            candidates,
            key=lambda s: (len(shared.intersection(s.report_ids)), -s.id),
            default=None,
        )
        if best is None or not shared.intersection(best.report_ids):
            changes.append(Change(episode, True, _opening_events(episode)))
            continue
        matched.add(best.id)
        kept = replace(
            episode,
            id=best.id,
            stale_at=best.stale_at if best.last_seen_at == episode.last_seen_at else None,
        )
        if kept.content() == best.content():
            continue
        if best.state == OPEN and kept.state == CLOSED:
            events: tuple[str, ...] = (INCIDENT_CLOSED,)
        else:
            events = (INCIDENT_UPDATED,)
        changes.append(Change(kept, False, events))
    for incident in stored:
        if incident.id in matched or incident.close_reason in ("corrected", "retracted"):
            continue
        reason = cause if cause != "reports" else "superseded"
        if incident.state == OPEN:
            closed = replace(incident, state=CLOSED, closed_at=now, close_reason=reason)
            changes.append(Change(closed, False, (INCIDENT_CLOSED,)))
        else:
            changes.append(
                Change(replace(incident, close_reason=reason), False, (INCIDENT_UPDATED,))
            )
    return changes


def _opening_events(episode: Incident) -> tuple[str, ...]:
    if episode.state == CLOSED:
        return (INCIDENT_OPENED, INCIDENT_CLOSED)
    return (INCIDENT_OPENED,)


# -- inside a store's write transaction ---------------------------------------------------------


@dataclass
class Touched:
    """What a report write touched: units (party, unit), and reports without a unit (ids)."""

    units: set[tuple[str, str]] = field(default_factory=set)
    lone_reports: set[str] = field(default_factory=set)

    def add(self, reports: Iterable[Report]) -> Touched:
        """Note each report's unit (or, without one, the report itself)."""
        for report in reports:
            if report.unit is None:
                self.lone_reports.add(report.id)
            else:
                self.units.add((report.party, report.unit))
        return self

    def __bool__(self) -> bool:
        return bool(self.units or self.lone_reports)


class IncidentRecords(Protocol):
    """What `keep_incidents` needs from a store, inside its write transaction."""

    def current_reports(self, touched: Touched) -> list[Report]:
        """The latest versions (retracted left out) of every report of the touched units, and
        of the touched unit-less reports."""
        ...

    def stored_incidents(self, touched: Touched) -> list[Incident]:
        """The stored incidents of the touched units and unit-less reports."""
        ...

    def zone_index(self) -> ZoneIndex:
        """The zones as this transaction sees them, indexed."""
        ...

    def save_incident(self, incident: Incident, new: bool) -> int:
        """Insert (`new`) or update an incident; returns its id."""
        ...

    def append_event(
        self, event_type: str, data: dict[str, Any], incident_id: int, zone_id: str
    ) -> int:
        """Append an event to the log; returns its id."""
        ...


def keep_incidents(records: IncidentRecords, touched: Touched, cause: str, now: datetime) -> int:
    """Bring the touched units' incidents in line with their reports, with their events.

    Returns how many events were appended.
    """
    if not touched:
        return 0
    computed = episodes(records.current_reports(touched), records.zone_index())
    stored = records.stored_incidents(touched)
    written = 0
    for change in reconcile(stored, computed, cause, now):
        incident_id = records.save_incident(change.incident, change.new)
        saved = replace(change.incident, id=incident_id)
        for event_type in change.events:
            shown = _as_open(saved) if event_type == INCIDENT_OPENED else saved
            records.append_event(event_type, incident_payload(shown), incident_id, saved.zone_id)
            written += 1
    return written
