"""The interactive map: zones by kind, reference layers, reports, findings and tracks, offline.

Built by plain functions, in two steps:

1. `prepare(data, query)` turns zones, reports, parties and reference layers into a `MapModel`:
   plain arrays and GeoJSON, computed with whole-array calls (the engine's `check`, the track
   functions, numpy and pandas), never a Python loop over reports. 100,000 reports take a few
   seconds.
2. `build_map(model)` makes the folium map. Zones, reference layers and the legend are folium
   objects; reports, findings and tracks travel as one compact columnar JSON that
   `app/static/truce/map.js` turns into markers, clusters and a time slider in the browser.

`map_html` renders the page with its assets linked under `/static/` (for the API) or inlined (for
a standalone file, `write_map_html`). Nothing here reaches the network; the only files read are
the assets themselves (see `app.assets`).

What the map shows, and how (the legend on the map says the same):

- zones in force at the slider's time, styled by kind (colour and dash pattern); popups give
  name, kind, authorized parties, validity, warning distance, agreement and source;
- reference layers: the line of contact and observation posts (each shown while in force), and
  place labels with both names; an outline basemap from every zone and line, for orientation
  when there are no tiles (the default: no tile server is contacted unless `tiles` names one);
- reports: fill colour by party, shape by kind, outline dash by source, opacity by confidence;
  plain reports cluster; violations are larger with a red halo and never cluster with the rest;
  `approaching` reports carry an amber ring; `possible` ones get their uncertainty circle;
- tracks: each unit's path in time order, with `entered` / `exited` events;
- a time slider over every moment when something changes (a report, a zone version, a line),
  with a window ("everything before", or the last hour, day, week...), and play.
"""

from __future__ import annotations

import html
import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import branca.element
import folium
import folium.plugins
import numpy as np
import orjson
import pandas as pd
import shapely
from folium.template import Template

from app import assets
from app.domain import Party, Report, ReportKind, Verdict, Zone, ZoneKind
from app.engine import FINDING_COLUMNS, VERDICTS, ZoneIndex
from app.scenario import GEODATA, Scenario, load_scenario
from app.store.base import Store, iter_report_pages
from app.tracks import track_events, track_summary

#: The most reports one map page carries; past this the page says it is truncated.
MAX_MAP_REPORTS = 250_000

__all__ = [
    "OFFLINE_TILES",
    "REPORT_SHAPES",
    "ZONE_STYLES",
    "MapData",
    "MapModel",
    "MapQuery",
    "ZoneStyle",
    "build_map",
    "is_offline",
    "map_html",
    "prepare",
    "write_map_html",
]

#: `tiles` values that mean "no tile server": the outline basemap from geodata only.
OFFLINE_TILES = frozenset({"", "none", "offline"})

VIOLATION_COLOR = "#d7191c"
WARNING_COLOR = "#f0a000"
OUTLINE_COLOR = "#8a8f98"
#: Above this many violations (or warnings) in the map's range, they cluster among themselves
#: (in red or amber clusters, apart from the plain reports) so that the page stays responsive.
UNCLUSTERED_MAX = 3000
#: Status of a report on the map, from its findings: the highest applies.
PLAIN, AUTHORIZED_IN, WARNING, VIOLATION = range(4)
STATUS_NAMES = ("plain", "authorized", "warning", "violation")
#: Per status: the marker's size in pixels and its SVG view box (room for the halo or ring).
MARKER_SIZES = {PLAIN: (16, 22), AUTHORIZED_IN: (16, 22), WARNING: (20, 28), VIOLATION: (26, 32)}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


# --- styles -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZoneStyle:
    """How a zone kind is drawn: told apart by colour *and* dash pattern (colour-blind safe)."""

    color: str
    dash: str | None
    weight: float
    fill_opacity: float
    label: str

    def leaflet(self) -> dict[str, Any]:
        """The Leaflet path options."""
        return {
            "color": self.color,
            "weight": self.weight,
            "opacity": 0.95,
            "dashArray": self.dash,
            "fillColor": self.color,
            "fillOpacity": self.fill_opacity,
        }


ZONE_STYLES: dict[ZoneKind, ZoneStyle] = {
    ZoneKind.PEACEKEEPING: ZoneStyle("#2166ac", None, 2.5, 0.12, "Peacekeeping zone"),
    ZoneKind.CORRIDOR: ZoneStyle("#762a83", "10 5", 3.0, 0.22, "Corridor"),
    ZoneKind.BUFFER: ZoneStyle("#8c510a", "2 5", 2.5, 0.15, "Buffer zone"),
    ZoneKind.CONTROL: ZoneStyle("#4d4d4d", "12 4 3 4", 2.0, 0.06, "Area of control"),
    ZoneKind.DEMILITARIZED: ZoneStyle("#1b7837", "6 3", 2.5, 0.12, "Demilitarized zone"),
    ZoneKind.EXCLUSION: ZoneStyle("#c51b7d", None, 3.5, 0.20, "Exclusion zone"),
}


def _polygon_path(points: Iterable[tuple[float, float]]) -> str:
    return "M" + "L".join(f"{x:.1f} {y:.1f}" for x, y in points) + "Z"


def _star(n: int, outer: float, inner: float) -> str:
    return _polygon_path(
        (
            10 + (outer if i % 2 == 0 else inner) * math.sin(math.pi * i / n),
            10 - (outer if i % 2 == 0 else inner) * math.cos(math.pi * i / n),
        )
        for i in range(2 * n)
    )


def _regular(n: int, radius: float) -> str:
    return _polygon_path(
        (10 + radius * math.sin(2 * math.pi * i / n), 10 - radius * math.cos(2 * math.pi * i / n))
        for i in range(n)
    )


#: The marker shape of each report kind: an SVG path in a 20 × 20 box centred on (10, 10).
REPORT_SHAPES: dict[ReportKind, str] = {
    ReportKind.TROOPS: "M3 10a7 7 0 1 0 14 0a7 7 0 1 0 -14 0Z",
    ReportKind.VEHICLE: "M3.8 3.8H16.2V16.2H3.8Z",
    ReportKind.STRIKE: _star(8, 9.0, 4.0),
    ReportKind.DRONE: "M10 2.2L18 16.8H2Z",
    ReportKind.ARTILLERY: "M10 1.8L18.2 10L10 18.2L1.8 10Z",
    ReportKind.FORTIFICATION: _regular(5, 8.2),
    ReportKind.OTHER: "M7.6 3H12.4V7.6H17V12.4H12.4V17H7.6V12.4H3V7.6H7.6Z",
}

#: Outline dash patterns that tell sources apart (most frequent source first); the rest share
#: the last, thin one.
SOURCE_DASHES = ("", "3.5 1.8", "1.2 1.6", "5 1.6 1.2 1.6", "7 2.5", "0.6 2.4")
CONFIDENCE_OPACITY = {"low": 0.5, "medium": 0.8, "high": 1.0, None: 0.8}
#: Colours for parties that the party list does not know (Okabe–Ito and Tol, past the first 5).
FALLBACK_COLORS = ("#56B4E9", "#F0E442", "#882255", "#44AA99", "#332288", "#999933", "#AA4499")
#: The slider's window choices, in seconds (0 = everything before the slider's time).
WINDOWS = (
    (0, "everything before"),
    (3600, "last hour"),
    (6 * 3600, "last 6 hours"),
    (86400, "last day"),
    (7 * 86400, "last 7 days"),
    (30 * 86400, "last 30 days"),
)


def is_offline(tiles: str | None) -> bool:
    """Whether `tiles` asks for no tile server (None, "", "none", "offline")."""
    return tiles is None or tiles.strip().lower() in OFFLINE_TILES


# --- inputs -----------------------------------------------------------------------------------


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
    (`line_of_contact`, `observation_posts`, `places`, or others, drawn plainly).
    """

    zones: Sequence[Zone]
    reports: Sequence[Report]
    parties: Sequence[Party] = ()
    layers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

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


# --- small helpers ----------------------------------------------------------------------------


def _seconds(moment: datetime) -> int:
    return (moment - _EPOCH) // _SECOND


def _iso(seconds: float | None) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "open"
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%d %H:%M UTC")


def _time_or_none(value: object) -> int | None:
    """Seconds of an ISO 8601 string or datetime in a reference layer's properties, or None."""
    if value is None:
        return None
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    return _seconds(moment)


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _table(rows: Iterable[tuple[str, object]]) -> str:
    cells = "".join(
        f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows if v not in (None, "")
    )
    return f"<table>{cells}</table>"


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
            (r.observed_at - _EPOCH) // micro,
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


# --- step 1: the model ------------------------------------------------------------------------


def prepare(
    data: MapData, query: MapQuery | None = None, *, now: datetime | None = None
) -> MapModel:
    """Filter, judge and lay out everything the map shows (see `MapQuery` for the filters).

    Reports are judged by the engine against every zone version in `data.zones`; tracks and
    their events come from `app.tracks`. `now` (default: the clock) is where a map with no
    reports and no times opens.
    """
    query = query or MapQuery()
    now_s = _seconds(now or datetime.now(UTC))
    frame = _report_frame(data.reports)
    if query.since is not None:
        frame = frame[frame["observed_at"] >= pd.Timestamp(query.since)]
    if query.until is not None:
        frame = frame[frame["observed_at"] < pd.Timestamp(query.until)]
    if query.party is not None:
        frame = frame[frame["party"] == query.party]
    frame = frame.sort_values(["observed_at", "id"], kind="stable").reset_index(drop=True)

    zones = list(data.zones)
    findings = (
        ZoneIndex(zones).check(frame)
        if zones and len(frame)
        else pd.DataFrame({c: [] for c in FINDING_COLUMNS})
    )
    if query.zone is not None:
        frame, findings = _keep_zone(frame, findings, query.zone)
        zones = [z for z in zones if z.id == query.zone]

    start, end, opening = _range(frame["t"].to_numpy(np.int64), query, now_s, zones)
    drawn = [z for z in zones if _overlaps(z, start, end)]
    layers = {name: _reference_layer(name, layer) for name, layer in data.layers.items()}
    steps = _steps(frame["t"].to_numpy(np.int64), drawn, layers, start, end, opening)

    frame["status"], frame["possible"] = _status(len(frame), findings)
    track_input = frame.assign(id=np.arange(len(frame)))
    events = track_events(track_input, findings)
    summary = track_summary(track_input, findings)
    parties = party_colors(data.parties, frame["party"].unique().tolist())
    sources = frame["source"].value_counts().index.tolist()

    zone_layers = _zone_layers(drawn, parties)
    return MapModel(
        query=query,
        start=start,
        end=end,
        opening=opening,
        steps=steps,
        zones=zone_layers,
        zones_at_opening=[(z.id, z.version) for z in drawn if _in_force(z, opening)],
        layers=layers,
        outlines=_outlines(data.zones, data.layers),
        parties=parties,
        reports=frame,
        findings=findings.reset_index(drop=True),
        events=events,
        summary=summary,
        sources=sources,
        bounds=_bounds(drawn, frame, layers),
        counts={
            "reports": len(frame),
            "violations": int((frame["status"] == VIOLATION).sum()),
            "warnings": int((frame["status"] == WARNING).sum()),
            "possible": int(frame["possible"].sum()),
            "zones": len(drawn),
            "units": int(frame[["party", "unit"]].dropna().drop_duplicates().shape[0]),
        },
    )


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
        lows.append(_seconds(query.since))
    elif len(times):
        lows.append(int(times.min()))
    if query.until is not None:
        highs.append(_seconds(query.until - timedelta(microseconds=1)))
    elif len(times):
        highs.append(int(times.max()))
    if query.at is not None:
        lows.append(_seconds(query.at))
        highs.append(_seconds(query.at))
    if not lows and not highs:
        starts = [_zone_seconds(z)[0] for z in zones]
        if not starts or any(_in_force(z, now_s) for z in zones):
            return now_s, now_s, now_s
        return min(starts), max(starts), max(starts)
    start = min(lows) if lows else min(highs)
    end = max(highs) if highs else max(start, now_s)
    end = max(end, start)
    opening = _seconds(query.at) if query.at is not None else end
    return start, end, opening


def _zone_seconds(zone: Zone) -> tuple[int, int | None]:
    return _seconds(zone.valid_from), None if zone.valid_to is None else _seconds(zone.valid_to)


def _in_force(zone: Zone, t: int) -> bool:
    begin, stop = _zone_seconds(zone)
    return begin <= t and (stop is None or t < stop)


def _overlaps(zone: Zone, start: int, end: int) -> bool:
    begin, stop = _zone_seconds(zone)
    return begin <= end and (stop is None or stop > start)


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
        changes.extend(t for t in _zone_seconds(zone) if t is not None)
    for layer in layers.values():
        for feature in layer["features"]:
            props = feature["properties"]
            changes.extend(t for t in (props.get("_from"), props.get("_to")) if t is not None)
    moments = np.unique(np.concatenate([times.astype(np.int64), np.array(changes, np.int64)]))
    return moments[(moments >= start) & (moments <= end)]


def _status(n: int, findings: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per report: the highest of PLAIN / AUTHORIZED_IN / WARNING / VIOLATION, and `possible`."""
    status = np.zeros(n, np.int8)
    possible = np.zeros(n, bool)
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
    return status, possible


def _party_label(code: str, parties: Mapping[str, Party]) -> str:
    party = parties.get(code)
    name = f" ({_e(party.name)})" if party and party.name != code else ""
    return f"{_e(code)}{name}"


def zone_popup(zone: Zone, parties: Sequence[Party] = ()) -> str:
    """The popup of a zone version: every field an analyst asks about, HTML-escaped."""
    by_code = {p.code: p for p in parties}
    authorized = ", ".join(_party_label(c, by_code) for c in sorted(zone.authorized_parties))
    begin, stop = _zone_seconds(zone)
    style = ZONE_STYLES[zone.kind]
    return (
        f'<div class="truce-popup"><h4>{_e(zone.name)}</h4>'
        + _table(
            [
                ("Zone", f"{_e(zone.id)} (version {zone.version})"),
                ("Kind", f"{_e(zone.kind.value)} ({_e(style.label)})"),
                ("Authorized parties", authorized or "none"),
                ("Valid from", _e(_iso(begin))),
                ("Valid to", _e(_iso(stop))),
                ("Warning distance", f"{zone.warning_distance_m:,.0f} m"),
                ("Agreement", _e(zone.agreement)),
                ("Source and accuracy", _e(zone.source)),
            ]
        )
        + "</div>"
    )


def _zone_layers(zones: Sequence[Zone], parties: Sequence[Party]) -> dict[ZoneKind, dict[str, Any]]:
    layers: dict[ZoneKind, dict[str, Any]] = {}
    for kind in ZoneKind:
        of_kind = [z for z in zones if z.kind == kind]
        if not of_kind:
            continue
        geometries = shapely.to_geojson(np.array([z.geometry for z in of_kind], dtype=object))
        features = []
        for zone, geometry in zip(of_kind, geometries, strict=True):
            begin, stop = _zone_seconds(zone)
            features.append(
                {
                    "type": "Feature",
                    "id": f"{zone.id}@{zone.version}",
                    "geometry": orjson.loads(geometry),
                    "properties": {
                        "id": zone.id,
                        "version": zone.version,
                        "name": zone.name,
                        "kind": kind.value,
                        "_from": begin,
                        "_to": stop,
                        # Tooltips are HTML: escaped here like the popups.
                        "_label": _e(f"{zone.name} ({kind.value})"),
                        "_popup": zone_popup(zone, parties),
                        "style": ZONE_STYLES[kind].leaflet(),
                    },
                }
            )
        layers[kind] = {"type": "FeatureCollection", "features": features}
    return layers


REFERENCE_STYLES: dict[str, dict[str, Any]] = {
    "line_of_contact": {"color": "#111111", "weight": 3.5, "opacity": 0.9, "dashArray": "1 0"},
    "observation_posts": {
        "color": "#111111",
        "weight": 2,
        "fillColor": "#ffffff",
        "fillOpacity": 1.0,
        "radius": 6,
    },
    "other": {"color": "#555555", "weight": 1.5, "opacity": 0.8, "fillOpacity": 0.1},
}


def place_label(properties: Mapping[str, Any]) -> str:
    """A place's label: both names, in alphabetical order so that neither side's comes first."""
    names = [properties.get("name_hy"), properties.get("name_az")]
    both = sorted({str(n) for n in names if n})
    if not both and properties.get("name"):
        both = [str(properties["name"])]
    return " / ".join(both)


def _reference_popup(name: str, props: Mapping[str, Any]) -> str:
    if name == "places":
        rows: list[tuple[str, object]] = [
            ("Armenian name", _e(props.get("name_hy"))),
            ("Azerbaijani name", _e(props.get("name_az"))),
            ("Note", _e(props.get("note"))),
        ]
        return f'<div class="truce-popup"><h4>{_e(place_label(props))}</h4>{_table(rows)}</div>'
    skip = {"name", "style"}
    rows = [
        (key.replace("_", " ").capitalize(), _e(value))
        for key, value in props.items()
        if key not in skip and not key.startswith("_") and value is not None
    ]
    title = props.get("name") or name.replace("_", " ").capitalize()
    return f'<div class="truce-popup"><h4>{_e(title)}</h4>{_table(rows)}</div>'


def _reference_layer(name: str, layer: Mapping[str, Any]) -> dict[str, Any]:
    """A reference layer with `style`, `_popup`, `_label` and validity `_from`/`_to` added."""
    style = REFERENCE_STYLES.get(name, REFERENCE_STYLES["other"])
    features = []
    for feature in layer.get("features", []):
        props = dict(feature.get("properties") or {})
        label = place_label(props) if name == "places" else str(props.get("name") or "")
        if name == "places":
            props["_html"] = (
                f'<div class="truce-place-label"><span class="truce-place-dot"></span>'
                f"{_e(label)}</div>"
            )
        props.update(
            {
                "_from": _time_or_none(props.get("valid_from")),
                "_to": _time_or_none(props.get("valid_to")),
                "_label": _e(label),
                "_popup": _reference_popup(name, props),
                "style": style,
            }
        )
        features.append({**feature, "properties": props})
    return {"type": "FeatureCollection", "features": features}


def _outlines(zones: Sequence[Zone], layers: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Every zone boundary and reference line once, simplified: a basemap for orientation."""
    geometries = [z.geometry for z in zones]
    for layer in layers.values():
        for feature in layer.get("features", []):
            geometry = feature.get("geometry")
            if geometry and geometry.get("type") in ("LineString", "MultiLineString"):
                geometries.append(shapely.geometry.shape(geometry))
    if not geometries:
        return {"type": "FeatureCollection", "features": []}
    lines = np.array(geometries, dtype=object)
    polygonal = np.isin(shapely.get_type_id(lines), [3, 6])  # Polygon, MultiPolygon
    lines[polygonal] = shapely.boundary(lines[polygonal])
    lines = shapely.set_precision(shapely.simplify(lines, 0.0005), 1e-5)
    unique = list(dict.fromkeys(shapely.to_wkb(lines)))
    shapes = shapely.from_wkb(unique)
    style = {"color": OUTLINE_COLOR, "weight": 1.2, "opacity": 0.9, "fill": False}
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": orjson.loads(g), "properties": {"style": style}}
            for g in shapely.to_geojson(shapes)
        ],
    }


def _bounds(
    zones: Sequence[Zone], frame: pd.DataFrame, layers: Mapping[str, Mapping[str, Any]]
) -> tuple[float, float, float, float] | None:
    boxes = [shapely.bounds(z.geometry) for z in zones]
    if len(frame):
        boxes.append(
            np.array(
                [frame["lon"].min(), frame["lat"].min(), frame["lon"].max(), frame["lat"].max()]
            )
        )
    if not boxes:
        for layer in layers.values():
            for feature in layer["features"]:
                if feature.get("geometry"):
                    boxes.append(shapely.bounds(shapely.geometry.shape(feature["geometry"])))
    if not boxes:
        return None
    stack = np.vstack(boxes)
    return (
        float(stack[:, 0].min()),
        float(stack[:, 1].min()),
        float(stack[:, 2].max()),
        float(stack[:, 3].max()),
    )


# --- the payload for map.js --------------------------------------------------------------------


def marker_svg(shape: str, fill: str, opacity: str, dash: str, status: int) -> str:
    """The SVG of a report marker; map.js fills the same template from the payload.

    Violations are larger with a red halo; warnings (approaching) carry an amber ring.
    """
    size, box = MARKER_SIZES[status]
    pad = (box - 20) / 2
    ring = ""
    if status == VIOLATION:
        ring = (
            f'<circle cx="10" cy="10" r="14.5" fill="{VIOLATION_COLOR}" fill-opacity="0.25" '
            f'stroke="{VIOLATION_COLOR}" stroke-width="3"/>'
        )
    elif status == WARNING:
        ring = (
            f'<circle cx="10" cy="10" r="12.4" fill="none" stroke="{WARNING_COLOR}" '
            'stroke-width="2.6"/>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="{-pad:g} {-pad:g} {box} {box}">{ring}'
        f'<path d="{shape}" fill="{fill}" fill-opacity="{opacity}" stroke="#1a1a1a" '
        f'stroke-width="1.6" stroke-dasharray="{dash}" stroke-linejoin="round"/></svg>'
    )


def _codes(values: pd.Series, categories: Sequence[object]) -> np.ndarray:
    """Index of each value in `categories` (-1 for missing or unknown)."""
    return pd.Categorical(values, categories=list(dict.fromkeys(categories))).codes.astype(np.int32)


def payload(model: MapModel) -> dict[str, Any]:
    """The columnar JSON that map.js draws reports, findings and tracks from."""
    r = model.reports
    n = len(r)
    parties = [p.code for p in model.parties]
    kinds = [k.value for k in ReportKind]
    confidences = ["low", "medium", "high"]
    unit_codes, units = pd.factorize(r["unit"], sort=True)
    notes = r["notes"].astype(object).where(r["notes"].notna(), None)

    f = model.findings
    zone_labels, zone_codes = [], np.empty(0, np.int64)
    if len(f):
        label = f["zone_name"].astype(str) + " [" + f["zone_id"].astype(str) + " v"
        label = label + f["zone_version"].astype(str) + "]"
        zone_codes, uniques = pd.factorize(label)
        zone_labels = uniques.tolist()
    report_of_finding = f["report"].to_numpy(np.int64)

    tracks, track_index = _tracks(model, parties, list(units))
    events = model.events.sort_values("at", kind="stable")
    event_zone_names = _zone_names_from(model)
    return {
        "start": model.start,
        "end": model.end,
        "opening": model.opening,
        "steps": model.steps,
        "windows": [list(w) for w in WINDOWS],
        "parties": [{"code": p.code, "name": p.name, "color": p.color} for p in model.parties],
        "kinds": kinds,
        "shapes": [REPORT_SHAPES[ReportKind(k)] for k in kinds],
        "sources": model.sources,
        "dashes": [
            SOURCE_DASHES[min(i, len(SOURCE_DASHES) - 1)] for i in range(len(model.sources))
        ],
        "confidences": confidences,
        "opacity": [CONFIDENCE_OPACITY[c] for c in confidences] + [CONFIDENCE_OPACITY[None]],
        "units": [str(u) for u in units],
        "statuses": list(STATUS_NAMES),
        "templates": [
            marker_svg("__SHAPE__", "__FILL__", "__OPACITY__", "__DASH__", s) for s in range(4)
        ],
        "sizes": [MARKER_SIZES[s][0] for s in range(4)],
        "colors": {"violation": VIOLATION_COLOR, "warning": WARNING_COLOR},
        "reports": {
            "id": r["id"].astype(str).tolist(),
            "t": r["t"].to_numpy(np.int64),
            "lon": np.round(r["lon"].to_numpy(np.float64), 6),
            "lat": np.round(r["lat"].to_numpy(np.float64), 6),
            "party": _codes(r["party"], parties),
            "kind": _codes(r["kind"], kinds),
            "source": _codes(r["source"], model.sources),
            "conf": _codes(r["confidence"], confidences),
            "u": np.round(r["uncertainty_m"].to_numpy(np.float64), 1),
            "unit": unit_codes.astype(np.int32),
            "notes": notes.tolist() if notes.notna().any() else None,
            "status": r["status"].to_numpy(np.int8),
            "possible": r["possible"].to_numpy(bool).astype(np.int8),
        },
        "zones": zone_labels,
        "verdicts": [str(v) for v in VERDICTS],
        "findings": {
            "offsets": np.searchsorted(report_of_finding, np.arange(n + 1)).astype(np.int64),
            "zone": np.asarray(zone_codes, np.int32),
            "verdict": _codes(f["verdict"], [str(v) for v in VERDICTS]),
            "depth": np.round(f["depth_m"].to_numpy(np.float64), 1),
            "violation": f["violation"].to_numpy(bool).astype(np.int8),
        },
        "tracks": tracks,
        "events": {
            "t": (events["at"].astype("int64") // 10**9).to_numpy(np.int64)
            if len(events)
            else np.empty(0, np.int64),
            "report": events["report_id"].to_numpy(np.int64),
            "kind": (events["kind"] == "exited").to_numpy(np.int8),
            "zone": [event_zone_names.get(z, z) for z in events["zone_id"].tolist()],
            "track": [
                track_index.get((p, u), -1)
                for p, u in zip(events["party"].tolist(), events["unit"].tolist(), strict=True)
            ],
        },
        "counts": model.counts,
    }


def _zone_names_from(model: MapModel) -> dict[str, str]:
    names = dict(zip(model.findings["zone_id"], model.findings["zone_name"], strict=True))
    for layer in model.zones.values():
        for feature in layer["features"]:
            names.setdefault(feature["properties"]["id"], feature["properties"]["name"])
    return names


def _tracks(
    model: MapModel, parties: list[str], units: list[object]
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], int]]:
    """One entry per unit: its rows in time order and its per-zone summary."""
    r = model.reports
    with_unit = r[r["unit"].notna()]
    if not len(with_unit):
        return [], {}
    rows = with_unit.reset_index().groupby(["party", "unit"], sort=True)["index"].agg(list)
    names = _zone_names_from(model)
    summary: dict[tuple[str, str], list[dict[str, Any]]] = {}
    s = model.summary
    if len(s):
        columns = [s[c].tolist() for c in ("party", "unit", "zone_id")]
        entered = (s["entered_at"].astype("int64") // 10**9).where(s["entered_at"].notna())
        exited = (s["last_exited_at"].astype("int64") // 10**9).where(s["last_exited_at"].notna())
        values = zip(
            *columns,
            entered.tolist(),
            exited.tolist(),
            s["dwell_s"].tolist(),
            s["withdrawn"].tolist(),
            s["back_at_initial"].tolist(),
            s["distance_to_initial_m"].round(0).tolist(),
            strict=True,
        )
        for party, unit, zone_id, enter, leave, dwell, withdrawn, back, distance in values:
            summary.setdefault((party, unit), []).append(
                {
                    "zone": names.get(zone_id, zone_id),
                    "entered": None if pd.isna(enter) else int(enter),
                    "exited": None if pd.isna(leave) else int(leave),
                    "dwell": float(dwell),
                    "withdrawn": bool(withdrawn),
                    "back": bool(back),
                    "distance": None if pd.isna(distance) else float(distance),
                }
            )
    party_index = {code: i for i, code in enumerate(parties)}
    unit_index = {str(u): i for i, u in enumerate(units)}
    tracks: list[dict[str, Any]] = []
    index: dict[tuple[str, str], int] = {}
    for key, positions in rows.items():
        party, unit = cast(tuple[str, str], key)
        index[(party, unit)] = len(tracks)
        tracks.append(
            {
                "party": party_index.get(party, -1),
                "unit": unit_index.get(str(unit), -1),
                "rows": positions,
                "summary": summary.get((party, unit), []),
            }
        )
    return tracks, index


def _script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element (no "</script>", no "<!--")."""
    text = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode("utf-8")
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


# --- step 2: the folium map --------------------------------------------------------------------


class _TruceLayers(folium.elements.JSCSSMixin, branca.element.MacroElement):
    """Hands the payload and the layers it fills to `TruceMap.init` (app/static/truce/map.js)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        window.truce = TruceMap.init({{ this._parent.get_name() }}, {
            {%- for key, layer in this.groups.items() %}
            {{ key }}: {{ layer.get_name() if layer is not none else "null" }},
            {%- endfor %}
            timed: [
                {%- for layer in this.timed %}
                {{ layer.get_name() }},
                {%- endfor %}
            ]
        }, {{ this.payload }}, {{ this.options }});
        {% endmacro %}
        """
    )
    default_js = [("truce_map_js", "/static/truce/map.js")]
    default_css = [("truce_map_css", "/static/truce/map.css")]

    def __init__(
        self,
        groups: dict[str, Any],
        timed: list[Any],
        data: dict[str, Any],
        options: dict[str, Any],
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._name = "TruceLayers"
        self.groups = groups
        self.timed = timed
        self.payload = _script_json(data)
        self.options = _script_json(options)


class _Legend(branca.element.MacroElement):
    """A collapsible legend control (HTML built here, escaped)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
            var legend = L.control({position: {{ this.position|tojson }}});
            legend.onAdd = function () {
                var div = L.DomUtil.create("div", "truce-legend leaflet-bar");
                div.innerHTML = {{ this.html|tojson }};
                L.DomEvent.disableClickPropagation(div);
                L.DomEvent.disableScrollPropagation(div);
                return div;
            };
            legend.addTo({{ this._parent.get_name() }});
        })();
        {% endmacro %}
        """
    )

    def __init__(self, html_text: str, position: str = "topleft") -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._name = "Legend"
        self.html = html_text
        self.position = position


class _OutlineMiniMap(folium.plugins.MiniMap):
    """folium's MiniMap drawing the outline basemap instead of tiles."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }}_layer = L.geoJSON({{ this.outlines|tojson }}, {
                style: function (f) { return f.properties.style; }, interactive: false
            });
            var {{ this.get_name() }} = new L.Control.MiniMap(
                {{ this.get_name() }}_layer, {{ this.options|tojavascript }}
            );
            {{ this._parent.get_name() }}.addControl({{ this.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, outlines: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.outlines = outlines


_BIND_POPUP = folium.JsCode(
    """
    function (feature, layer) {
        var p = feature.properties || {};
        if (p._popup) { layer.bindPopup(p._popup, {maxWidth: 380}); }
        if (p._label) { layer.bindTooltip(p._label, {sticky: true}); }
    }
    """
)

_CLUSTER_ICON = """
    function (cluster) {
        var n = cluster.getChildCount();
        var size = n < 10 ? 30 : n < 100 ? 36 : n < 1000 ? 42 : 48;
        return L.divIcon({
            html: "<div><span>" + n + "</span></div>",
            className: "marker-cluster truce-cluster %s",
            iconSize: L.point(size, size)
        });
    }
"""


def _cluster(name: str, extra_class: str, show: bool = True) -> folium.plugins.MarkerCluster:
    return folium.plugins.MarkerCluster(  # type: ignore[no-untyped-call]
        name=name,
        show=show,
        icon_create_function=_CLUSTER_ICON % extra_class,
        options={
            "chunkedLoading": True,
            "showCoverageOnHover": False,
            "maxClusterRadius": 45,
            "spiderfyOnMaxZoom": True,
            "removeOutsideVisibleBounds": True,
        },
    )


def _zone_swatch(style: ZoneStyle) -> str:
    dash = f' stroke-dasharray="{style.dash}"' if style.dash else ""
    return (
        f'<svg width="30" height="16" viewBox="0 0 30 16"><rect x="2" y="2" width="26" '
        f'height="12" fill="{style.color}" fill-opacity="{max(style.fill_opacity, 0.1)}" '
        f'stroke="{style.color}" stroke-width="{style.weight}"{dash}/></svg>'
    )


def _line_swatch(color: str, weight: float, dash: str | None = None) -> str:
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<svg width="30" height="16" viewBox="0 0 30 16"><line x1="2" y1="8" x2="28" y2="8" '
        f'stroke="{color}" stroke-width="{weight}"{dashed}/></svg>'
    )


def legend_html(model: MapModel) -> str:
    """The legend: zone kinds, reference layers, parties, report kinds, sources, findings."""
    items: list[tuple[str, list[tuple[str, str]]]] = []
    kinds_shown = list(model.zones) or list(ZoneKind)
    items.append(
        (
            "Zones (in force at the slider's time)",
            [(_zone_swatch(ZONE_STYLES[k]), _e(ZONE_STYLES[k].label)) for k in kinds_shown],
        )
    )
    reference = [(_line_swatch(OUTLINE_COLOR, 1.2), "Outlines: every zone and line (basemap)")]
    if "line_of_contact" in model.layers:
        reference.append((_line_swatch("#111111", 3.5), "Line of contact"))
    if "observation_posts" in model.layers:
        reference.append(
            (
                '<svg width="30" height="16"><circle cx="15" cy="8" r="5.5" fill="#fff" '
                'stroke="#111" stroke-width="2"/></svg>',
                "Observation post (illustrative)",
            )
        )
    if "places" in model.layers:
        reference.append(('<span class="truce-place-dot"></span>', "Place: both names, A–Z"))
    items.append(("Reference", reference))
    items.append(
        (
            "Parties (marker colour)",
            [
                (
                    marker_svg(REPORT_SHAPES[ReportKind.TROOPS], _e(p.color), "1", "", PLAIN),
                    _e(f"{p.code}: {p.name}"),
                )
                for p in model.parties
            ],
        )
    )
    items.append(
        (
            "Report kinds (marker shape)",
            [
                (marker_svg(REPORT_SHAPES[k], "#bbbbbb", "1", "", PLAIN), _e(k.value))
                for k in ReportKind
            ],
        )
    )
    if model.sources:
        items.append(
            (
                "Sources (marker outline)",
                [
                    (
                        marker_svg(
                            REPORT_SHAPES[ReportKind.VEHICLE],
                            "#ffffff",
                            "1",
                            SOURCE_DASHES[min(i, len(SOURCE_DASHES) - 1)],
                            PLAIN,
                        ),
                        _e(source),
                    )
                    for i, source in enumerate(model.sources)
                ],
            )
        )
    grey = REPORT_SHAPES[ReportKind.TROOPS]
    items.append(
        (
            "Findings",
            [
                (marker_svg(grey, "#bbbbbb", "1", "", VIOLATION), "Violation: inside or possible"),
                (
                    '<svg width="30" height="16"><circle cx="15" cy="8" r="6.5" fill="#d7191c" '
                    'fill-opacity="0.08" stroke="#d7191c" stroke-width="1.5" '
                    'stroke-dasharray="3 3"/></svg>',
                    "Uncertainty circle of a possible finding",
                ),
                (marker_svg(grey, "#bbbbbb", "1", "", WARNING), "Approaching (warning)"),
                ("Opacity", "low / medium / high confidence"),
            ],
        )
    )
    items.append(
        (
            "Tracks",
            [
                (_line_swatch("#555555", 3, "7 4"), "A unit's path, in time order"),
                ('<span class="truce-event truce-entered">IN</span>', "Entered a zone"),
                ('<span class="truce-event truce-exited">OUT</span>', "Exited a zone"),
            ],
        )
    )
    sections = "".join(
        f'<div class="truce-legend-section"><h5>{_e(title)}</h5>'
        + "".join(
            f'<div class="truce-legend-row"><span class="truce-legend-key">{key}</span>'
            f"<span>{text}</span></div>"
            for key, text in rows
        )
        + "</div>"
        for title, rows in items
    )
    return f"<details open><summary>Legend</summary>{sections}</details>"


_PLACE_LABEL = folium.JsCode(
    """
    function (feature, layer) {
        var p = feature.properties || {};
        layer.setIcon(L.divIcon({className: "truce-place", iconSize: [0, 0], html: p._html}));
        if (p._popup) { layer.bindPopup(p._popup, {maxWidth: 320}); }
    }
    """
)


def build_map(model: MapModel, *, tiles: str | None = None, title: str = "Truce") -> folium.Map:
    """The folium map of a `MapModel`. `tiles`: None (offline outlines), a folium provider
    name ("OpenStreetMap", "CartoDB positron") or a URL template of the user's tile server."""
    offline = is_offline(tiles)
    m = folium.Map(
        location=[0.0, 0.0],
        zoom_start=2,
        tiles=None,
        control_scale=True,
        prefer_canvas=False,
        # Leaflet needs the map's own zoom limits (marker clusters ask for them); folium's
        # max_zoom only reaches a tile layer, and there may be none.
        maxZoom=19,
        minZoom=2,
    )
    if model.bounds is not None:
        west, south, east, north = model.bounds
        m.fit_bounds([[south, west], [north, east]], padding=(30, 30))
    if not offline:
        assert tiles is not None
        attribution = None if "{" not in tiles else f"Tiles: {tiles.split('/')[2]}"
        folium.TileLayer(tiles, name="Tiles", attr=attribution, max_zoom=19).add_to(m)
    folium.GeoJson(model.outlines, name="Outlines (geodata)", interactive=False, show=True).add_to(
        m
    )

    timed: list[Any] = []
    for kind, collection in model.zones.items():
        layer = folium.GeoJson(collection, name=f"Zones: {kind.value}", on_each_feature=_BIND_POPUP)
        layer.add_to(m)
        timed.append(layer)

    for name, collection in model.layers.items():
        if name == "places":
            folium.GeoJson(
                collection,
                name="Places (both names)",
                on_each_feature=_PLACE_LABEL,
                marker=folium.Marker(icon=folium.DivIcon(class_name="truce-place")),
            ).add_to(m)
            continue
        title_of = {"line_of_contact": "Line of contact", "observation_posts": "Observation posts"}
        layer = folium.GeoJson(
            collection,
            name=title_of.get(name, name.replace("_", " ").capitalize()),
            on_each_feature=_BIND_POPUP,
            marker=folium.CircleMarker(radius=6) if name == "observation_posts" else None,
        )
        layer.add_to(m)
        timed.append(layer)

    counts = model.counts
    groups: dict[str, Any] = {
        "reports": _cluster("Reports", "truce-cluster-plain"),
        "violations": folium.FeatureGroup(name="Violations")
        if counts["violations"] <= UNCLUSTERED_MAX
        else _cluster("Violations", "truce-cluster-violation"),
        "warnings": folium.FeatureGroup(name="Warnings (approaching)")
        if counts["warnings"] <= UNCLUSTERED_MAX
        else _cluster("Warnings (approaching)", "truce-cluster-warning"),
        "uncertainty": folium.FeatureGroup(name="Uncertainty (possible)"),
        "tracks": folium.FeatureGroup(name="Tracks"),
    }
    for layer in groups.values():
        layer.add_to(m)
    _TruceLayers(
        groups,
        timed,
        payload(model),
        {"title": title, "offline": offline, "query": _describe(model.query)},
    ).add_to(m)

    folium.plugins.Fullscreen(position="topleft").add_to(m)  # type: ignore[no-untyped-call]
    folium.plugins.MeasureControl(  # type: ignore[no-untyped-call]
        position="topleft",
        primary_length_unit="kilometers",
        secondary_length_unit="meters",
        primary_area_unit="sqkilometers",
        secondary_area_unit="hectares",
    ).add_to(m)
    _Legend(legend_html(model)).add_to(m)  # under the buttons on the left
    minimap_options: dict[str, Any] = {
        "position": "bottomright",
        "toggle_display": True,
        "zoom_level_offset": -4,
        "width": 140,
        "height": 140,
    }
    if offline:
        _OutlineMiniMap(model.outlines, **minimap_options).add_to(m)
    else:
        folium.plugins.MiniMap(  # type: ignore[no-untyped-call]
            tile_layer=folium.TileLayer(tiles, attr="tiles"), **minimap_options
        ).add_to(m)
    folium.plugins.MousePosition(  # type: ignore[no-untyped-call]
        position="bottomright",
        separator=" · ",
        prefix="lon, lat:",
        lng_first=True,
        num_digits=5,
        empty_string="",
    ).add_to(m)
    folium.LayerControl(position="topright", collapsed=True).add_to(m)
    return m


def _describe(query: MapQuery) -> dict[str, str | None]:
    return {
        "at": None if query.at is None else query.at.isoformat(),
        "since": None if query.since is None else query.since.isoformat(),
        "until": None if query.until is None else query.until.isoformat(),
        "zone": query.zone,
        "party": query.party,
    }


def map_html(
    model: MapModel,
    *,
    tiles: str | None = None,
    static_url: str = "/static",
    inline: bool = False,
    title: str = "Truce map",
) -> str:
    """The whole HTML page of the map.

    With `inline`, every script, style sheet and image is in the page itself (a standalone file
    that opens with no network); otherwise they are linked under `static_url`. Raises
    `app.assets.MissingAssets` when inlining and the assets are not installed, and
    `app.assets.UnknownAsset` if an element links a file with no local copy.
    """
    m = build_map(model, tiles=tiles, title=title)
    figure = branca.element.Figure(title=title)
    # No favicon request (it would be the page's only 404).
    figure.header.add_child(branca.element.Element('<link rel="icon" href="data:,">'), name="icon")
    figure.add_child(m)
    assets.localize(figure, static_url)
    page: str = figure.render()
    if inline:
        page = assets.inline_assets(page, static_url)
        # The file itself forbids loads from anywhere (but the tile server, if one is named).
        # 'unsafe-eval': leaflet-measure compiles its templates with `new Function`.
        images = "data:" if is_offline(tiles) else "data: https: http:"
        policy = (
            "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
            "style-src 'unsafe-inline'; "
            f"img-src {images}; font-src data:"
        )
        page = page.replace(
            "<head>", f'<head>\n<meta http-equiv="Content-Security-Policy" content="{policy}">', 1
        )
    return page


def write_map_html(
    path: str | Path,
    data: MapData,
    query: MapQuery | None = None,
    *,
    tiles: str | None = None,
    title: str = "Truce map",
    now: datetime | None = None,
) -> Path:
    """Write the map as one standalone HTML file (assets inline) and return its path.

    This is `truce map --out map.html`: the file opens in a browser with no network (unless
    `tiles` names a tile server).
    """
    target = Path(path)
    page = map_html(prepare(data, query, now=now), tiles=tiles, inline=True, title=title)
    target.write_text(page, encoding="utf-8")
    return target


def map_data_from_store(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    party: str | None = None,
    geodata: Path = GEODATA,
) -> tuple[MapData, bool]:
    """Every zone version and the reports of the range from `store`, parties and reference
    layers from `geodata` (none when it is missing, as in an installed wheel); and whether the
    reports were cut at `MAX_MAP_REPORTS`."""
    reports: list[Report] = []
    pages = iter_report_pages(store, since=since, until=until, party=party)
    for page in pages:
        reports += page
        if len(reports) >= MAX_MAP_REPORTS:
            break
    try:
        scenario = load_scenario(geodata)
        parties, layers = scenario.parties, scenario.layers
    except FileNotFoundError:
        parties, layers = [], {}
    data = MapData(
        zones=store.zones_for_index(),
        reports=reports[:MAX_MAP_REPORTS],
        parties=parties,
        layers=layers,
    )
    return data, len(reports) > MAX_MAP_REPORTS or next(pages, None) is not None
