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
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np
import pandas as pd

from app.alerts.events import INCIDENT_CLOSED, INCIDENT_OPENED, INCIDENT_UPDATED
from app.batch import ReportBatch
from app.domain import Report, Verdict
from app.engine import ZoneIndex

__all__ = [
    "CAUSES",
    "STALE_LOOKBACK",
    "STALE_UNITS_PER_SWEEP",
    "ZONE_CHANGED_CAUSE",
    "Held",
    "Incident",
    "IncidentRecords",
    "Touched",
    "TrackRow",
    "episodes",
    "held_stale_payload",
    "incident_payload",
    "keep_incidents",
    "reconcile",
    "stale_payload",
    "track_row",
    "zones_held",
]

OPEN, CLOSED = "open", "closed"
#: Why an incident closed: the unit turned out, a single report, or the write that took its
#: reports away (a correction or a retraction).
EXITED, SINGLE = "exited", "single-report"
#: The causes a write gives `keep_incidents`: they become the `close_reason` of an incident
#: that loses all its reports (a report write: ``superseded``); a zone write (a new zone, a
#: new version, a retirement) is ``zone-changed``.
CAUSES = ("reports", "corrected", "retracted", "zone-changed")
ZONE_CHANGED_CAUSE = "zone-changed"
#: Close reasons of incidents that no episode supports any more: such an incident is left as
#: it is by later recomputations (unless an episode takes it back, reopening it).
_UNSUPPORTED = frozenset({"corrected", "retracted", "superseded", ZONE_CHANGED_CAUSE})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

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


def held_stale_payload(
    party: str,
    unit: str,
    held: Held,
    report_id: str,
    observed_at: datetime,
    stale_after: timedelta,
) -> dict[str, Any]:
    """The payload of a `track.stale` event for a unit in a zone without an open incident (its
    party is authorised there): as `stale_payload`, with no incident and the last finding."""
    return {
        "incident_id": None,
        "party": party,
        "unit": unit,
        "zone_id": held.zone_id,
        "zone_name": held.zone_name,
        "verdict": held.verdict,
        "depth_m": held.depth_m,
        "report_id": report_id,
        "observed_at": _iso(observed_at),
        "stale_after_s": stale_after.total_seconds(),
    }


# -- episodes from reports ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Found:
    """The reports, in track order, and their findings, one per (report, zone id)."""

    ids: np.ndarray  # report ids (object), in track order
    party: np.ndarray
    unit: np.ndarray  # object, None for a report without a unit
    time_ns: np.ndarray
    # Findings: report (position in the arrays above), zone id, name, verdict, depth, code.
    report: np.ndarray
    zone_id: np.ndarray
    zone_name: np.ndarray
    verdict: np.ndarray
    depth_m: np.ndarray
    code: np.ndarray


#: What incidents read of a stored report: id, party, unit (or None), lon, lat, observed_at
#: (microseconds since 1970, UTC) and uncertainty_m. Plain tuples: a window of a long track
#: is read without building domain objects.
TrackRow = tuple[str, str, str | None, float, float, int, float]


def track_row(report: Report) -> TrackRow:
    """A domain report as a `TrackRow`."""
    return (
        report.id,
        report.party,
        report.unit,
        report.lon,
        report.lat,
        (report.observed_at - _EPOCH) // timedelta(microseconds=1),
        report.uncertainty_m,
    )


def _found(rows: Sequence[TrackRow], index: ZoneIndex) -> _Found:
    """Judge `rows` (sorted into track order first) and keep, per (report, zone id), the
    finding that weighs most: inside over possible over the rest (versions of a zone never
    overlap in time, so there is one; this only guards odd inputs)."""
    ordered = sorted(rows, key=lambda r: (r[1], r[2] is not None, r[2] or "", r[5], r[0]))
    ids, party, unit, lon, lat, time_us, uncertainty = zip(*ordered, strict=True)
    id_column = np.array(ids, dtype=object)
    batch = ReportBatch(
        lon=np.array(lon, dtype=np.float64),
        lat=np.array(lat, dtype=np.float64),
        time_ns=np.array(time_us, dtype=np.int64) * 1000,
        uncertainty_m=np.array(uncertainty, dtype=np.float64),
        party=np.array(party, dtype=object),
        unit=np.array(unit, dtype=object),
        ids=id_column,
    )
    judged = index.judge(batch)
    verdict = np.asarray(judged.verdict, dtype=object)
    violation = np.asarray(judged.violation, dtype=bool)
    code = np.select(
        [
            violation & (verdict == Verdict.INSIDE.value),
            violation & (verdict == Verdict.POSSIBLE.value),
        ],
        [_TURN_IN, _KEEP],
        default=_TURN_OUT,
    )
    report = np.asarray(judged.report, dtype=np.int64)
    zone_id = index.zone_ids[judged.zone]
    _, zone_code = (
        np.unique(zone_id.astype(str), return_inverse=True)
        if len(zone_id)
        else (
            None,
            np.empty(0, np.int64),
        )
    )
    order = np.lexsort((-code, zone_code, report))
    pair = report[order] * (int(zone_code.max(initial=0)) + 1) + zone_code[order]
    first = order[np.r_[True, pair[1:] != pair[:-1]]] if len(order) else order
    return _Found(
        ids=id_column,
        party=batch.party,
        unit=batch.unit,
        time_ns=np.asarray(batch.time_ns, dtype=np.int64),
        report=report[first],
        zone_id=zone_id[first],
        zone_name=index.zone_names[judged.zone][first],
        verdict=verdict[first],
        depth_m=np.asarray(judged.depth_m, dtype=np.float64)[first],
        code=code[first],
    )


def _at(ns: Any) -> datetime:
    """A UTC datetime from nanoseconds (report times are whole microseconds)."""
    return _EPOCH + timedelta(microseconds=int(ns) // 1000)


def _utc(ns: np.ndarray) -> list[datetime]:
    return [_at(v) for v in ns]


def _single_report_episodes(found: _Found) -> list[Incident]:
    lone = np.array([u is None for u in found.unit], dtype=bool)
    keep = np.flatnonzero(lone[found.report] & (found.code != _TURN_OUT))
    rows = found.report[keep]
    times = _utc(found.time_ns[rows])
    return [  # one per incident, not per report
        Incident(
            id=0,
            party=str(found.party[row]),
            unit=None,
            zone_id=str(found.zone_id[k]),
            zone_name=str(found.zone_name[k]),
            state=CLOSED,
            opened_at=at,
            last_seen_at=at,
            closed_at=at,
            close_reason=SINGLE,
            verdict=str(found.verdict[k]),
            depth_m=float(found.depth_m[k]),
            deepest_report_id=str(found.ids[row]),
            last_report_id=str(found.ids[row]),
            report_ids=(str(found.ids[row]),),
            report_key=str(found.ids[row]),
        )
        for k, row, at in zip(keep, rows, times, strict=True)
    ]


def _unit_episodes(found: _Found) -> list[Incident]:
    """Episodes of every unit, by the hysteresis of tracks, all units and zones at once."""
    n = len(found.ids)
    has_unit = np.array([u is not None for u in found.unit], dtype=bool)
    entering = (found.code == _TURN_IN) & has_unit[found.report]
    if not entering.any():
        return []
    # Units as integers (reports are in track order, so a unit's reports are contiguous).
    key = np.array([f"{p}\x1f{u!r}" for p, u in zip(found.party, found.unit, strict=True)], object)
    new_unit = np.r_[True, key[1:] != key[:-1]]
    unit_of = np.cumsum(new_unit) - 1
    unit_start = np.flatnonzero(new_unit)
    unit_end = np.r_[unit_start[1:], n]
    zones, zone_code = np.unique(found.zone_id.astype(str), return_inverse=True)
    span = len(zones)
    # The (unit, zone) tracks: every zone a unit was ever inside.
    tracks = np.unique(unit_of[found.report[entering]] * span + zone_code[entering])
    track_unit, track_zone = tracks // span, tracks % span
    lengths = unit_end[track_unit] - unit_start[track_unit]
    # Grid: one row per (track, report of its unit), in track then time order.
    track_of = np.repeat(np.arange(len(tracks)), lengths)
    offsets = np.arange(len(track_of)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    row = unit_start[track_unit][track_of] + offsets
    # Each grid row's finding for its track's zone (none: out).
    finding_key = found.report * span + zone_code
    by_key = np.argsort(finding_key, kind="stable")
    wanted = row * span + track_zone[track_of]
    # (There are findings: some report enters.)
    at = np.minimum(np.searchsorted(finding_key[by_key], wanted), len(by_key) - 1)
    hit = finding_key[by_key][at] == wanted
    finding = np.where(hit, by_key[at], -1)
    code = np.where(hit, found.code[np.maximum(finding, 0)], _TURN_OUT)
    # Hysteresis: a `possible` (0) keeps the state of the row before it in the same track; a
    # track starts out.
    start = np.r_[True, track_of[1:] != track_of[:-1]]
    value = np.where(start & (code == _KEEP), _TURN_OUT, code)
    valid = start | (code != _KEEP)
    last_valid = np.maximum.accumulate(np.where(valid, np.arange(len(code)), 0))
    present = value[last_valid] > 0
    before = np.r_[False, present[:-1]] & ~start
    opening = present & ~before
    closing = ~present & before
    # An episode's rows are contiguous: its present rows, then the row that closes it, if any.
    episode = np.where(present | closing, np.cumsum(opening), 0)
    rows = np.flatnonzero(episode > 0)
    number = episode[rows]
    first = rows[np.r_[True, number[1:] != number[:-1]]]
    last = rows[np.r_[number[1:] != number[:-1], True]]
    closed = closing[last]
    last_in = np.where(closed, last - 1, last)
    depth = np.where(finding >= 0, found.depth_m[np.maximum(finding, 0)], -np.inf)
    inside_rows = rows[present[rows]]
    ranked = inside_rows[np.lexsort((-depth[inside_rows], episode[inside_rows]))]
    deepest = ranked[np.r_[True, episode[ranked][1:] != episode[ranked][:-1]]]
    times = found.time_ns
    out = []
    spans = zip(first, last, last_in, deepest, closed, strict=True)
    for a, b, inside_end, deep, is_closed in spans:  # one per episode, not per report
        report_rows = row[a : b + 1]
        deep_finding = finding[deep]
        out.append(
            Incident(
                id=0,
                party=str(found.party[row[a]]),
                unit=str(found.unit[row[a]]),
                zone_id=str(zones[track_zone[track_of[a]]]),
                zone_name=str(found.zone_name[finding[inside_end]]),
                state=CLOSED if is_closed else OPEN,
                opened_at=_at(times[row[a]]),
                last_seen_at=_at(times[row[inside_end]]),
                closed_at=_at(times[row[b]]) if is_closed else None,
                close_reason=EXITED if is_closed else None,
                verdict=str(found.verdict[deep_finding]),
                depth_m=float(found.depth_m[deep_finding]),
                deepest_report_id=str(found.ids[row[deep]]),
                last_report_id=str(found.ids[row[b]]),
                report_ids=tuple(str(i) for i in found.ids[report_rows]),
            )
        )
    return out


def episodes(rows: Sequence[TrackRow], index: ZoneIndex) -> list[Incident]:
    """Every violation episode among `rows` (units' tracks from a point where they are out of
    every zone, and unit-less reports), unsaved (`id` 0), by key and opening time."""
    if not rows or not len(index):
        return []
    found = _found(rows, index)
    out = _unit_episodes(found) + _single_report_episodes(found)
    return sorted(
        out, key=lambda i: (i.party, i.unit or "", i.zone_id, i.report_key or "", i.opened_at)
    )


#: How many of a unit's latest reports a stale sweep judges to know which zones hold it: a
#: zone entered earlier, with only `possible` findings in all of these, counts as left.
STALE_LOOKBACK = 256
#: At most this many units are looked at by one sweep (oldest sightings first; the rest wait
#: for the next), so a sweep after a large import holds the write lock briefly.
STALE_UNITS_PER_SWEEP = 500


@dataclass(frozen=True)
class Held:
    """A zone a unit is in at its last report (tracks' hysteresis), with that report's finding."""

    zone_id: str
    zone_name: str
    verdict: str
    depth_m: float


def zones_held(rows: Sequence[TrackRow], index: ZoneIndex) -> list[Held]:
    """The zones one unit is *in* after `rows` (its latest reports), as tracks say: by verdict,
    whoever is authorised (`inside` turns it in, `possible` keeps the state, anything else turns
    it out). A zone whose findings in `rows` are all `possible` counts as out: the unit never
    entered it within them (so `rows` should reach back to the last report that decides)."""
    if not rows or not len(index):
        return []
    ordered = sorted(rows, key=lambda r: (r[5], r[0]))
    ids, party, unit, lon, lat, time_us, uncertainty = zip(*ordered, strict=True)
    batch = ReportBatch(
        lon=np.array(lon, dtype=np.float64),
        lat=np.array(lat, dtype=np.float64),
        time_ns=np.array(time_us, dtype=np.int64) * 1000,
        uncertainty_m=np.array(uncertainty, dtype=np.float64),
        party=np.array(party, dtype=object),
        unit=np.array(unit, dtype=object),
        ids=np.array(ids, dtype=object),
    )
    judged = index.judge(batch)
    verdict = np.asarray(judged.verdict, dtype=object)
    report = np.asarray(judged.report, dtype=np.int64)
    zone_id = index.zone_ids[judged.zone].astype(str)
    last = len(ordered) - 1
    held = []
    for zone in np.unique(zone_id[report == last]):  # one per zone the last report is near
        mine = zone_id == zone
        # Its reports with a finding `inside` or `possible` (one each: versions never overlap).
        decided = report[mine & (verdict == Verdict.INSIDE.value)]
        kept = report[mine & (verdict == Verdict.POSSIBLE.value)]
        present = np.union1d(decided, kept)
        if last not in present or not len(decided):
            continue
        # In: every report since the last `inside` one is `possible` for the zone (a report
        # with no finding, or an `approaching`/`outside` one, would have turned it out).
        since = int(decided.max())
        if len(present[present >= since]) != last - since + 1:
            continue
        at_last = np.flatnonzero(mine & (report == last))[0]
        held.append(
            Held(
                zone_id=str(zone),
                zone_name=str(index.zone_names[judged.zone][at_last]),
                verdict=str(verdict[at_last]),
                depth_m=float(np.asarray(judged.depth_m, dtype=np.float64)[at_last]),
            )
        )
    return held


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
        if incident.id in matched or (
            incident.state == CLOSED and incident.close_reason in _UNSUPPORTED
        ):
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
    """What a report write touched: units (party, unit) with the earliest time touched, and
    reports without a unit (ids)."""

    units: dict[tuple[str, str], datetime] = field(default_factory=dict)
    lone_reports: set[str] = field(default_factory=set)
    #: The latest time touched of each unit: its window's reports are read up to there, and
    #: `AHEAD` more after it (a unit left out of `until`: every report from its start on).
    until: dict[tuple[str, str], datetime] = field(default_factory=dict)
    #: The reports of the units, as given (`keep_incidents` judges them to leave out the units
    #: a write of new reports cannot change).
    reports: list[Report] = field(default_factory=list)

    #: How many reports after `until` a store reads for each unit (see `IncidentRecords`).
    AHEAD = 4

    def add(self, reports: Iterable[Report]) -> Touched:
        """Note each report's unit and time (or, without a unit, the report itself)."""
        for report in reports:
            self.reports.append(report)
            if report.unit is None:
                self.lone_reports.add(report.id)
                continue
            key = (report.party, report.unit)
            earliest = self.units.get(key)
            if earliest is None or report.observed_at < earliest:
                self.units[key] = report.observed_at
            latest = self.until.get(key)
            if latest is None or report.observed_at > latest:
                self.until[key] = report.observed_at
        return self

    def add_sighting(self, party: str, unit: str | None, report_id: str, at: datetime) -> None:
        """Note one report by its parts (a report found by place, or an incident's key)."""
        if unit is None:
            self.lone_reports.add(report_id)
            return
        earliest = self.units.get((party, unit))
        if earliest is None or at < earliest:
            self.units[(party, unit)] = at

    def __bool__(self) -> bool:
        return bool(self.units or self.lone_reports)


class IncidentRecords(Protocol):
    """What `keep_incidents` needs from a store, inside its write transaction."""

    def current_reports(self, touched: Touched) -> list[TrackRow]:
        """The latest versions (retracted left out) of the touched units' reports observed at
        or after the time `touched.units` gives each, and of the touched unit-less reports.

        For a unit in `touched.until`, only those observed up to that time and, after it, the
        first `Touched.AHEAD` in track order (observed_at, id); for the others, all."""
        ...

    def stored_incidents(self, touched: Touched) -> list[Incident]:
        """The stored incidents of the touched unit-less reports, and those of the touched
        units that are open or ended (`closed_at`, else `last_seen_at`) at or after the time
        `touched.units` gives (more may come: `keep_incidents` narrows them)."""
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

    def note_uncertainty(self, metres: float) -> None:
        """Remember that a stored report has this uncertainty (the reach of zone changes,
        `app.alerts.zone_changes`, must cover the largest)."""
        ...

    def note_units(self, latest: dict[tuple[str, str], tuple[int, str] | None]) -> None:
        """Keep each touched unit's latest report (observed_at in µs, id) for the stale
        sweeps: a report given replaces the one kept only when later; None: the store looks
        the latest up (or forgets the unit when it has no report left)."""
        ...


def _end(incident: Incident) -> datetime | None:
    """Until when an incident held its unit in the zone (None: it still does)."""
    if incident.state == OPEN:
        return None
    if incident.close_reason == EXITED and incident.closed_at is not None:
        return incident.closed_at
    return incident.last_seen_at


def _window(stored: list[Incident], touched: Touched) -> list[Incident]:
    """Narrow each touched unit to the reports that can change its episodes, and keep the
    stored incidents of that window.

    A unit's episodes can only change from the earliest report the write touched on, except
    that an episode in progress then began earlier: the window starts at the opening of every
    stored incident that still held the unit at the window's start, repeated until none does
    (so at the start every zone's state is out, and hysteresis can start from out). Incidents
    that ended before are left as they are. `touched.units` is set to the window starts.
    """
    kept = []
    by_unit: dict[tuple[str, str], list[Incident]] = {}
    for incident in stored:
        if incident.unit is None:
            kept.append(incident)
        else:
            by_unit.setdefault((incident.party, incident.unit), []).append(incident)
    for key, start in touched.units.items():
        mine = by_unit.get(key, [])
        while True:
            spanning = [
                i
                for i in mine
                if i.opened_at < start and ((end := _end(i)) is None or end >= start)
            ]
            if not spanning:
                break
            start = min(i.opened_at for i in spanning)
        touched.units[key] = start
        kept.extend(i for i in mine if (end := _end(i)) is None or end >= start)
    return kept


def _leave_quiet_units(touched: Touched, stored: list[Incident], index: ZoneIndex) -> None:
    """Narrow a write of new reports (not a correction or a retraction) to its *loud* reports:
    those with a violating finding (inside or possible), or within a stored incident of their
    unit (from its opening to its end, both included; an open incident has no end). A unit
    without any is taken out of `touched`; the others' windows are set to run from their
    first loud report to their last (`touched.units`, `touched.until`), to be widened and
    ended as any window is.

    Why the quiet reports change nothing: outside its incidents, a unit is out of every zone
    (each zone's hysteresis is out there: no report turned it in, or one turned it out
    again); a report without a violating finding turns every zone out where it falls, which
    is where each zone already was, so the states after it, and the episodes, are what they
    were; one that falls within a loud report's window is read with the window. This spares
    the read and the judgement of the units' tracks for most of a batch (a batch of 1e4
    touches thousands of units, a few of them in a zone, usually with one report there).
    """
    if not touched.units or not len(index):
        return
    spans: dict[tuple[str, str], list[tuple[datetime, datetime | None]]] = {}
    for incident in stored:
        if incident.unit is not None:
            key = (incident.party, incident.unit)
            spans.setdefault(key, []).append((incident.opened_at, _end(incident)))
    first: dict[tuple[str, str], datetime] = {}
    last: dict[tuple[str, str], datetime] = {}

    def loud(key: tuple[str, str], at: datetime) -> None:
        if key not in first or at < first[key]:
            first[key] = at
        if key not in last or at > last[key]:
            last[key] = at

    for report in touched.reports:
        if report.unit is None:
            continue
        key, at = (report.party, report.unit), report.observed_at
        if any(start <= at and (end is None or at <= end) for start, end in spans.get(key, ())):
            loud(key, at)
    rows = [track_row(r) for r in touched.reports if r.unit is not None]
    if rows:
        found = _found(rows, index)
        violating = np.unique(found.report[found.code != _TURN_OUT])
        for row in violating:
            loud((str(found.party[row]), str(found.unit[row])), _at(found.time_ns[row]))
    touched.units = {key: at for key, at in first.items() if key in touched.units}
    touched.until = {key: last[key] for key in touched.units}


def _cut_tails(
    rows: list[TrackRow], stored: list[Incident], touched: Touched, index: ZoneIndex
) -> tuple[list[TrackRow], list[Incident], set[tuple[str, str]]]:
    """End each unit's window after the write's latest report of it, at the first time after
    that at which every report of the unit has no violating finding (rows read: up to
    `touched.until` and `Touched.AHEAD` after). Returns the rows and stored incidents of the
    windows, and the units whose end was not among the rows read (to be read whole).

    Why the rest cannot change: such reports turn every zone out, as they did before the
    write (a finding depends on the report and the zones only), so every episode of the unit
    ends there at the latest, before and after the write, and what follows starts from out
    on both sides: the stored incidents opened after the end are left out of the matching, as
    they stay. Spares reading and judging the rest of each track in every write.
    """
    if not rows or not touched.until or not len(index):
        return rows, stored, set()  # no zones: no episodes, whatever the rows
    found = _found(rows, index)
    loud = np.zeros(len(found.ids), dtype=bool)
    loud[found.report[found.code != _TURN_OUT]] = True
    has_unit = np.array([u is not None for u in found.unit], dtype=bool)
    key = np.array([f"{p}\x1f{u}" for p, u in zip(found.party, found.unit, strict=True)], object)
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], len(key)]
    keep = np.ones(len(key), dtype=bool)
    cut: dict[tuple[str, str], datetime] = {}
    unread: set[tuple[str, str]] = set()
    for a, b in zip(starts, ends, strict=True):
        if not has_unit[a]:
            continue
        unit = (str(found.party[a]), str(found.unit[a]))
        until = touched.until.get(unit)
        if until is None:
            continue
        times = found.time_ns[a:b]
        after = np.flatnonzero(times > (until - _EPOCH) // timedelta(microseconds=1) * 1000)
        complete = len(after) < Touched.AHEAD  # every report after `until` was read
        end = None
        for t in np.unique(times[after]):
            at_t = after[times[after] == t]
            if (complete or at_t[-1] + 1 < len(times)) and not loud[a + at_t].any():
                end = t
                break
        if end is None:
            if not complete:
                unread.add(unit)
            continue
        keep[a:b] = times <= end
        cut[unit] = _at(end)
    kept_ids = set(found.ids[keep].tolist())
    rows = [r for r in rows if r[0] in kept_ids or r[2] is None]
    stored = [
        i
        for i in stored
        if i.unit is None or (end := cut.get((i.party, i.unit))) is None or i.opened_at <= end
    ]
    return rows, stored, unread


def _widen(records: IncidentRecords, touched: Touched) -> list[Incident]:
    """The stored incidents of the touched windows, their starts widened (see `_window`)."""
    while True:  # until the windows hold still (usually once: nothing spans their start)
        starts = dict(touched.units)
        stored = _window(records.stored_incidents(touched), touched)
        if touched.units == starts:
            return stored


def _note_sightings(records: IncidentRecords, touched: Touched, cause: str) -> None:
    """Tell the store the reach of the write's reports and its units' last sightings (read
    before `keep_incidents` narrows the windows, which then no longer run to a track's end).

    New reports can only move a unit's last sighting later: the latest of the write is
    offered; a correction or a retraction may move it back: the store looks it up.
    """
    if touched.reports:
        records.note_uncertainty(max(report.uncertainty_m for report in touched.reports))
    if not touched.units:
        return
    latest: dict[tuple[str, str], tuple[int, str] | None] = dict.fromkeys(touched.units)
    if cause == "reports":
        for report in touched.reports:
            if report.unit is not None:
                key = (report.party, report.unit)
                seen = ((report.observed_at - _EPOCH) // timedelta(microseconds=1), report.id)
                if (known := latest[key]) is None or seen > known:
                    latest[key] = seen
    records.note_units(latest)


def keep_incidents(records: IncidentRecords, touched: Touched, cause: str, now: datetime) -> int:
    """Bring the touched units' incidents in line with their reports, with their events.

    Returns how many events were appended.
    """
    if not touched:
        return 0
    if cause != ZONE_CHANGED_CAUSE:  # a zone write moves no report
        _note_sightings(records, touched, cause)
    index = records.zone_index()
    if cause == "reports":
        # Which units can change needs only the incidents that end after the earliest report
        # of each (no widening): the windows are then the loud reports'.
        _leave_quiet_units(touched, records.stored_incidents(touched), index)
    stored = _widen(records, touched)
    rows, stored, unread = _cut_tails(records.current_reports(touched), stored, touched, index)
    if unread:  # an end beyond the reports read ahead: those units' tracks whole
        whole = Touched(units={k: touched.units[k] for k in unread})
        rows = [r for r in rows if r[2] is None or (r[1], r[2]) not in unread]
        rows.extend(records.current_reports(whole))
    computed = episodes(rows, index)
    written = 0
    for change in reconcile(stored, computed, cause, now):
        incident_id = records.save_incident(change.incident, change.new)
        saved = replace(change.incident, id=incident_id)
        for event_type in change.events:
            shown = _as_open(saved) if event_type == INCIDENT_OPENED else saved
            records.append_event(event_type, incident_payload(shown), incident_id, saved.zone_id)
            written += 1
    return written
