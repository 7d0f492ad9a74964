"""Step 1: what to show (`MapQuery`), what it is drawn from (`MapData`), and `prepare`, which
filters and judges it into a `MapModel` of plain arrays and GeoJSON."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from app.domain import Party, Report, Verdict, Zone, ZoneKind
from app.engine import FINDING_COLUMNS, ZoneIndex
from app.mapview.layers import bounds, outlines, reference_layer, zone_layers_by_kind
from app.mapview.seconds import EPOCH, in_force, overlaps, to_seconds, zone_seconds
from app.mapview.style import AUTHORIZED_IN, FALLBACK_COLORS, PLAIN, VIOLATION, WARNING
from app.scenario import Scenario
from app.store.base import ReportColumns
from app.tracks import track_events, track_summary


@dataclass(frozen=True, slots=True)
class MapQuery:
    """What to show: the `at`, `since`, `until`, `zone` and `party` of `GET /map`.

    - `since`/`until` (half-open, like the store) choose the reports, and the slider's range;
    - `at` is the moment the map opens on: the zones in force then, the reports up to then;
      without it the map opens at the end of the range;
    - `zone` keeps one zone (all its versions), its findings, the reports that have one, and the
      whole track of every unit that entered or approached it;
    - `party` keeps one party's reports.
    """

    at: datetime | None = None
    since: datetime | None = None
    until: datetime | None = None
    zone: str | None = None
    party: str | None = None

    def __post_init__(self) -> None:
        """Refuse naive datetimes and an empty range."""
        for name in ("at", "since", "until"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware")
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError("until must be after since")


@dataclass(frozen=True, slots=True)
class MapData:
    """What the map is drawn from.

    `zones` are every version the engine should know (a store's `zones_for_index()`, or a
    scenario's zones); `layers` are the reference layers as GeoJSON dicts by name
    (`line_of_contact`, `observation_posts`, `places`, or others, drawn plainly). `index`, when
    given, is a `ZoneIndex` of exactly `zones` (the service's current one) that `prepare` judges
    with instead of building its own.
    """

    zones: Sequence[Zone]
    reports: Sequence[Report]
    parties: Sequence[Party] = ()
    layers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    index: ZoneIndex | None = None
    #: The reports as columns (a store's `report_columns`), instead of `reports`: a season of
    #: a million reports is read and judged without a `Report` object per row.
    columns: ReportColumns | None = None

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> MapData:
        """A scenario's zones, reports, parties and reference layers (`app.scenario`)."""
        return cls(scenario.zones, scenario.reports, scenario.parties, scenario.layers)


@dataclass(slots=True)
class MapModel:
    """Everything the map shows, as plain data (see `prepare`)."""

    query: MapQuery
    #: The slider's range and opening moment, in seconds since the epoch (UTC).
    start: int
    end: int
    opening: int
    #: Every moment the slider stops at: report times, zone and line changes, the range's ends.
    steps: np.ndarray
    #: Zone versions drawn (those in force at some moment of the range), by kind, as GeoJSON.
    zones: dict[ZoneKind, dict[str, Any]]
    #: (zone id, version) of the versions in force at `opening`.
    zones_at_opening: list[tuple[str, int]]
    #: Reference layers with their styles and popups, by name, as GeoJSON.
    layers: dict[str, dict[str, Any]]
    #: Zone boundaries and reference lines, simplified, for the outline basemap.
    outlines: dict[str, Any]
    parties: list[Party]
    #: Reports in time order, as columns; `status` is one of PLAIN ... VIOLATION.
    reports: pd.DataFrame
    #: The engine's findings on `reports` (`report` is the row in `reports`).
    findings: pd.DataFrame
    events: pd.DataFrame
    summary: pd.DataFrame
    sources: list[str]
    bounds: tuple[float, float, float, float] | None
    counts: dict[str, int]


def party_colors(parties: Sequence[Party], codes: Iterable[str]) -> list[Party]:
    """The parties given, then one for every other code seen, with a stable fallback colour."""
    known = {p.code: p for p in parties}
    result = list(parties)
    for code in sorted(set(codes) - set(known)):
        color = FALLBACK_COLORS[zlib.crc32(code.encode("utf-8")) % len(FALLBACK_COLORS)]
        result.append(Party(code=code, name=code, color=color))
    return result


def _report_frame(reports: Sequence[Report]) -> pd.DataFrame:
    """Reports as columns; time as whole seconds and exact nanoseconds (for the engine)."""
    columns = (
        "id",
        "party",
        "us",
        "lon",
        "lat",
        "uncertainty_m",
        "kind",
        "unit",
        "source",
        "confidence",
        "notes",
    )
    micro = timedelta(microseconds=1)
    rows = [
        (
            r.id,
            r.party,
            (r.observed_at - EPOCH) // micro,
            r.lon,
            r.lat,
            r.uncertainty_m,
            r.kind.value,
            r.unit,
            r.source,
            None if r.confidence is None else r.confidence.value,
            r.notes,
        )
        for r in reports
    ]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    us = frame["us"].to_numpy(np.int64)
    frame["observed_at"] = pd.to_datetime(us * 1000, utc=True)
    frame["t"] = us // 1_000_000
    return frame.drop(columns="us").astype({"lon": np.float64, "lat": np.float64})


def frame_from_columns(columns: ReportColumns) -> pd.DataFrame:
    """`_report_frame`'s columns from a store's report columns, whole arrays (no notes: the
    season's popups leave them out; a report's page has them)."""
    us = columns.t_us.astype(np.int64)
    frame = pd.DataFrame(
        {
            "id": columns.id,
            "party": columns.party,
            "lon": columns.lon.astype(np.float64),
            "lat": columns.lat.astype(np.float64),
            "uncertainty_m": columns.uncertainty_m.astype(np.float64),
            "kind": columns.kind,
            "unit": columns.unit,
            "source": columns.source,
            "confidence": columns.confidence,
            "notes": np.full(len(us), None, object),
        }
    )
    frame["observed_at"] = utc_times(us * 1000)
    frame["t"] = us // 1_000_000
    return frame


def utc_times(ns: np.ndarray) -> pd.Series:
    """Nanoseconds since the epoch as UTC datetimes (`pd.to_datetime(ns, utc=True)` goes
    through Python objects: a second a million)."""
    return pd.Series(np.asarray(ns, np.int64).view("M8[ns]")).dt.tz_localize("UTC")


def prepare(
    data: MapData, query: MapQuery | None = None, *, now: datetime | None = None
) -> MapModel:
    """Filter, judge and lay out everything the map shows (see `MapQuery` for the filters).

    Reports are judged by the engine against every zone version in `data.zones` (with
    `data.index` when there is one, else an index built here); tracks and
    their events come from `app.tracks`. `now` (default: the clock) is where a map with no
    reports and no times opens.
    """
    query = query or MapQuery()
    frame, findings = judge_frame(data, query)
    return lay_out(frame, findings, data, query, now=now)


def judge_frame(data: MapData, query: MapQuery) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The reports of `query`'s window and party in (observed_at, id) order, and the engine's
    findings on them (`report`: the row; with `uncertainty_m`, the verdict's u)."""
    frame = (
        _report_frame(data.reports) if data.columns is None else frame_from_columns(data.columns)
    )
    if query.since is not None:
        frame = frame[frame["observed_at"] >= pd.Timestamp(query.since)]
    if query.until is not None:
        frame = frame[frame["observed_at"] < pd.Timestamp(query.until)]
    if query.party is not None:
        frame = frame[frame["party"] == query.party]
    # A store's columns come in this order already: sorting a million rows again would cost a
    # second and a copy of every column.
    if not in_time_order(frame):
        frame = frame.sort_values(["observed_at", "id"], kind="stable")
    frame = frame.reset_index(drop=True)
    zones = list(data.zones)
    if zones and len(frame):
        index = data.index if data.index is not None else ZoneIndex(zones)
        return frame, judge_rows(frame, index)
    return frame, empty_findings()


def in_time_order(frame: pd.DataFrame) -> bool:
    """Whether `frame`'s rows are in (observed_at, id) order, ids strictly growing within one
    time."""
    t = frame["observed_at"].to_numpy()
    if len(t) < 2:
        return True
    if not (t[1:] >= t[:-1]).all():
        return False
    tied = np.flatnonzero(t[1:] == t[:-1])
    ids = frame["id"].to_numpy(object)
    return bool((ids[tied + 1] > ids[tied]).all()) if len(tied) else True


def empty_findings() -> pd.DataFrame:
    """Findings of no report, with every column."""
    return pd.DataFrame({c: [] for c in [*FINDING_COLUMNS, "uncertainty_m"]})


def judge_rows(frame: pd.DataFrame, index: ZoneIndex) -> pd.DataFrame:
    """The engine's findings on `frame` (`ZoneIndex.check`), with the u of each verdict: the
    report's uncertainty plus the zone's boundary uncertainty."""
    if not len(frame) or not index.zones:
        return empty_findings()
    findings = index.check(frame)
    report_u = frame["uncertainty_m"].to_numpy(np.float64)[findings["report"].to_numpy()]
    zone_u = index.boundary_uncertainty_m[findings["zone"].to_numpy(np.int64)]
    findings["uncertainty_m"] = report_u + zone_u
    return findings


def unit_tracks(
    frame: pd.DataFrame, findings: pd.DataFrame, rows: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Track events and summaries (`app.tracks`) of the units of `rows` (row positions of
    `frame`, ascending, every report of each of those units), with each event's `report_id`
    the row of `frame` (int64).

    Units are independent of each other, so the units of a few rows are laid out alone (what
    a season does when reports are added) and give what all the units together would.
    """
    rows = np.asarray(rows, np.int64)
    sub = frame[["party", "unit", "lon", "lat", "observed_at"]].iloc[rows]
    sub = sub.assign(id=rows).reset_index(drop=True)
    position = np.full(len(frame), -1, np.int64)
    position[rows] = np.arange(len(rows))
    if len(findings):
        at = position[findings["report"].to_numpy(np.int64)]
        found = findings[at >= 0].assign(report=at[at >= 0])
    else:
        found = findings
    events = track_events(sub, found)
    events["report_id"] = events["report_id"].astype(np.int64)
    return events, track_summary(sub, found)


def lay_out(
    frame: pd.DataFrame,
    findings: pd.DataFrame,
    data: MapData,
    query: MapQuery,
    *,
    now: datetime | None = None,
    tracks: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> MapModel:
    """The model of judged reports (`judge_frame`'s frame and findings): the zone filter,
    statuses, the slider's range and stops, tracks, parties, counts.

    `tracks` (events and summaries, see `unit_tracks`) are computed here unless given.
    """
    now_s = to_seconds(now or datetime.now(UTC))
    zones = list(data.zones)
    if query.zone is not None:
        frame, findings = _keep_zone(frame, findings, query.zone)
        zones = [z for z in zones if z.id == query.zone]

    times = frame["t"].to_numpy(np.int64)
    start, end, opening = _range(times, query, now_s, zones)
    drawn = [z for z in zones if overlaps(z, start, end)]
    layers = {name: reference_layer(name, layer) for name, layer in data.layers.items()}
    steps = _steps(times, drawn, layers, start, end, opening)

    frame = frame.copy(deep=False)
    frame["status"], frame["possible"], frame["certain"] = _status(len(frame), findings)
    if tracks is None:
        tracks = unit_tracks(frame, findings, np.flatnonzero(frame["unit"].notna().to_numpy()))
    events, summary = tracks
    parties = party_colors(data.parties, frame["party"].unique().tolist())
    sources = _sources(frame["source"])

    zone_layers = zone_layers_by_kind(drawn, parties)
    status = frame["status"].to_numpy(np.int8)
    certain = frame["certain"].to_numpy(bool)
    return MapModel(
        query=query,
        start=start,
        end=end,
        opening=opening,
        steps=steps,
        zones=zone_layers,
        zones_at_opening=[(z.id, z.version) for z in drawn if in_force(z, opening)],
        layers=layers,
        outlines=outlines(data.zones, data.layers),
        parties=parties,
        reports=frame,
        findings=findings.reset_index(drop=True),
        events=events,
        summary=summary,
        sources=sources,
        bounds=bounds(drawn, frame, layers),
        counts={
            "reports": len(frame),
            "violations": int((status == VIOLATION).sum()),
            # Reports with a violation `inside` (certain); the rest of the violations are
            # only `possible`: summaries never mix the two.
            "violations_inside": int(certain.sum()),
            "violations_possible": int(((status == VIOLATION) & ~certain).sum()),
            "warnings": int((status == WARNING).sum()),
            "possible": int(frame["possible"].sum()),
            "zones": len(drawn),
            "units": int(frame[["party", "unit"]].dropna().drop_duplicates().shape[0]),
        },
    )


def _sources(source: pd.Series) -> list[str]:
    """The sources named, most used first (ties by name: the same list however the reports
    came, whole or a few at a time)."""
    counts = source.value_counts()
    if not len(counts):
        return []
    names = counts.index.to_numpy(object).astype(str)
    order = np.lexsort((names, -counts.to_numpy(np.int64)))
    return [str(names[k]) for k in order]


def _keep_zone(
    frame: pd.DataFrame, findings: pd.DataFrame, zone_id: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The reports with a finding in the zone, with every report of the units among them."""
    findings = findings[findings["zone_id"] == zone_id]
    keep = np.zeros(len(frame), bool)
    keep[findings["report"].to_numpy(np.int64)] = True
    units = frame.loc[keep, ["party", "unit"]].dropna().drop_duplicates()
    if len(units):
        unit_rows = frame.reset_index().merge(units, on=["party", "unit"])["index"]
        keep[unit_rows.to_numpy(np.int64)] = True
    new_position = np.cumsum(keep) - 1
    findings = findings.assign(report=new_position[findings["report"].to_numpy(np.int64)])
    return frame[keep].reset_index(drop=True), findings.reset_index(drop=True)


def _range(
    times: np.ndarray, query: MapQuery, now_s: int, zones: Sequence[Zone]
) -> tuple[int, int, int]:
    """The slider's (start, end, opening) in seconds.

    From `since`/`until` where given, else from the reports, widened to take in `at`. With no
    reports and no times at all: now, if a zone is in force now; else the zones' history, from
    the first version's start to the last one's (a map of retired zones still shows them).
    """
    lows: list[int] = []
    highs: list[int] = []
    if query.since is not None:
        lows.append(to_seconds(query.since))
    elif len(times):
        lows.append(int(times.min()))
    if query.until is not None:
        highs.append(to_seconds(query.until - timedelta(microseconds=1)))
    elif len(times):
        highs.append(int(times.max()))
    if query.at is not None:
        lows.append(to_seconds(query.at))
        highs.append(to_seconds(query.at))
    if not lows and not highs:
        starts = [zone_seconds(z)[0] for z in zones]
        if not starts or any(in_force(z, now_s) for z in zones):
            return now_s, now_s, now_s
        return min(starts), max(starts), max(starts)
    start = min(lows) if lows else min(highs)
    end = max(highs) if highs else max(start, now_s)
    end = max(end, start)
    opening = to_seconds(query.at) if query.at is not None else end
    return start, end, opening


def _steps(
    times: np.ndarray,
    zones: Sequence[Zone],
    layers: Mapping[str, Mapping[str, Any]],
    start: int,
    end: int,
    opening: int,
) -> np.ndarray:
    changes: list[int] = [start, end, opening]
    for zone in zones:
        changes.extend(t for t in zone_seconds(zone) if t is not None)
    for layer in layers.values():
        for feature in layer["features"]:
            props = feature["properties"]
            changes.extend(t for t in (props.get("_from"), props.get("_to")) if t is not None)
    # A stable sort of times already in order, and a mask: np.unique sorts a million anew.
    moments = np.sort(
        np.concatenate([times.astype(np.int64), np.array(changes, np.int64)]), kind="stable"
    )
    moments = moments[np.concatenate([[True], moments[1:] != moments[:-1]])]
    kept: np.ndarray = moments[(moments >= start) & (moments <= end)]
    return kept


def _status(n: int, findings: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per report: the highest of PLAIN / AUTHORIZED_IN / WARNING / VIOLATION, `possible`, and
    `certain` (a violation `inside`, not only a possible one)."""
    status = np.zeros(n, np.int8)
    possible = np.zeros(n, bool)
    certain = np.zeros(n, bool)
    if len(findings):
        report = findings["report"].to_numpy(np.int64)
        verdict = findings["verdict"].to_numpy(object)
        rank = np.select(
            [
                findings["violation"].to_numpy(bool),
                verdict == Verdict.APPROACHING.value,
                np.isin(verdict, [Verdict.INSIDE.value, Verdict.POSSIBLE.value]),
            ],
            [VIOLATION, WARNING, AUTHORIZED_IN],
            default=PLAIN,
        ).astype(np.int8)
        np.maximum.at(status, report, rank)
        possible[report[verdict == Verdict.POSSIBLE.value]] = True
        inside = findings["violation"].to_numpy(bool) & (verdict == Verdict.INSIDE.value)
        certain[report[inside]] = True
    return status, possible, certain
