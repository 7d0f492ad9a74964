"""The collections of Truce's OGC API – Features, over the `Service`; no HTTP here.

Every collection answers the same four questions (`Collection`): its metadata (id, title,
queryables), its extent, a page of items for an `ItemsQuery` (filter, time window, limit,
cursor), and one item by its feature id. To publish another collection (incidents, say), write
a class with these members and add it in `make_collections`: the routes, `/conformance`,
`/queryables` and the OpenAPI document need no change.

Paging is by a stable key, never by offset: reports by (observed_at, id) in the store's keyset
(`Store.select_reports`); the collections held in memory by a key of their own (zones by id and
version, incursions by report time, report and zone, reference features by their place in the
file). A cursor is the key of the last (or first) item of a page, so a page never repeats or
skips an item whatever is added between two requests.

Time (`datetime`) means, per collection: the reports' and incursions' `observed_at`; the
validity of zones (the versions in force at the instant, or at some time in the interval, with
their *effective* end: a later version cuts an earlier one off); the validity of observation
posts; nothing for places and the line of contact (they have no time, so every one matches).
Without `datetime`, zones are every version ever stored, as filed (the history, as `GET
/zones?at=all`): a filter on `version` or `valid_from` picks among them.
"""

from __future__ import annotations

import base64
import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson
import shapely
from shapely.geometry.base import BaseGeometry

from app.cql import GEOMETRY, Queryable
from app.domain import ReportKind, Verdict, Zone, ZoneKind
from app.geojson import report_to_feature, zone_to_feature
from app.predicate import (
    Compare,
    IsNull,
    Or,
    Predicate,
    PropertyType,
    all_of,
    evaluate,
    time_window,
)
from app.scenario import REFERENCE_LAYERS, load_scenario
from app.service import Service
from app.store import BadCursor, BBox, NotFound, UnknownZone

__all__ = [
    "Collection",
    "Extent",
    "ItemsPage",
    "ItemsQuery",
    "ReferenceCollection",
    "finite_bbox",
    "make_collections",
]


@dataclass(frozen=True, slots=True)
class Extent:
    """A collection's box (lon/lat) and time interval (None: open or unknown)."""

    bbox: BBox | None
    start: datetime | None
    end: datetime | None


@dataclass(frozen=True, slots=True)
class ItemsQuery:
    """What `/items` asks: a filter (with any bbox in it), a half-open time window
    `[since, until)`, a page size, and a cursor (`after` or `before`, from a link)."""

    where: Predicate | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    after: str | None = None
    before: str | None = None


@dataclass(frozen=True, slots=True)
class ItemsPage:
    """A page of features (each with its `id`), how many match in all, and the cursors of the
    next and previous pages (None when there is none)."""

    features: list[dict[str, Any]]
    matched: int
    next: str | None
    prev: str | None


class Collection(Protocol):
    """What a collection of the OGC API answers (see the module docstring)."""

    id: str
    title: str
    description: str
    geometry_type: str
    queryables: Mapping[str, Queryable]

    def extent(self) -> Extent:
        """Its box and time interval."""
        ...

    def items(self, query: ItemsQuery) -> ItemsPage:
        """A page of its features."""
        ...

    def item(self, feature_id: str) -> dict[str, Any]:
        """One feature by its id; `NotFound` when there is none."""
        ...


def _q(kind: PropertyType, text: str, enum: Sequence[str] | None = None) -> Queryable:
    return Queryable(kind, text, None if enum is None else tuple(enum))


# -- cursors ------------------------------------------------------------------------------------


def _encode(key: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).rstrip(b"=").decode("ascii")


def _decode(cursor: str, field_name: str) -> tuple[Any, ...]:
    try:
        value = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        raise BadCursor("not a cursor from this server", field=field_name) from None
    if not isinstance(value, list) or not all(
        isinstance(v, str | int | float) and not isinstance(v, bool) for v in value
    ):
        raise BadCursor("not a cursor from this server", field=field_name)
    return tuple(value)


# -- collections held in memory --------------------------------------------------------------


@dataclass
class _Rows:
    """A collection in memory, sorted by key: the feature ids, the columns filters read, the
    geometries, and how to write the features at some positions (only those of a page are)."""

    ids: list[str]
    keys: list[tuple[Any, ...]]
    columns: dict[str, list[Any]]
    geometries: list[BaseGeometry | None]
    features: Callable[[Sequence[int]], list[dict[str, Any]]]


def _page(rows: _Rows, keep: np.ndarray, query: ItemsQuery) -> ItemsPage:
    """Keyset paging over the kept rows (already sorted by key)."""
    positions = np.flatnonzero(keep)
    keys = [rows.keys[i] for i in positions]
    limit = query.limit
    try:
        if query.before is not None:
            end = bisect.bisect_left(keys, _decode(query.before, "before"))
            start = max(end - limit, 0)
        elif query.after is not None:
            start = bisect.bisect_right(keys, _decode(query.after, "after"))
            end = start + limit
        else:
            start, end = 0, limit
    except TypeError:  # a key of other types than this collection's
        raise BadCursor(
            "not a cursor from this server", field="before" if query.before else "after"
        ) from None
    end = min(end, len(keys))
    chosen = positions[start:end]
    features = rows.features(chosen.tolist())
    next_cursor = _encode(keys[end - 1]) if end < len(keys) and end > start else None
    prev_cursor = _encode(keys[start]) if start > 0 and end > start else None
    return ItemsPage(features, len(keys), next_cursor, prev_cursor)


def _find(rows: _Rows, feature_id: str, title: str) -> dict[str, Any]:
    for position, candidate in enumerate(rows.ids):
        if candidate == feature_id:
            return rows.features([position])[0]
    raise NotFound(f"no feature {feature_id!r} in {title}", field="featureId")


def _bbox_of(geometries: Sequence[BaseGeometry | None]) -> BBox | None:
    present = [g for g in geometries if g is not None and not g.is_empty]
    if not present:
        return None
    minx, miny, maxx, maxy = shapely.total_bounds(np.array(present, dtype=object))
    return float(minx), float(miny), float(maxx), float(maxy)


class ZonesCollection:
    """Zones: every version as filed, or those in force in `datetime` (with their effective
    end); each feature is one version, id ``<zone id>@v<version>``."""

    id = "zones"
    title = "Zones"
    description = (
        "Ceasefire zones, one feature per version: every version as filed, or with datetime the "
        "versions in force at that instant or during that interval (with their effective "
        "valid_to: a later version cuts an earlier one off). The version queryable picks among "
        "them."
    )
    geometry_type = "MultiPolygon"
    queryables: Mapping[str, Queryable] = {
        "zone_id": _q(PropertyType.STRING, "the zone's id"),
        "name": _q(PropertyType.STRING, "the zone's name"),
        "kind": _q(PropertyType.STRING, "the kind of zone", [k.value for k in ZoneKind]),
        "version": _q(PropertyType.INTEGER, "the version's number (1 = as first agreed)"),
        "valid_from": _q(PropertyType.DATETIME, "start of validity"),
        "valid_to": _q(PropertyType.DATETIME, "end of validity (null: open)"),
        "warning_distance_m": _q(PropertyType.NUMBER, "approach warning distance, metres"),
        "agreement": _q(PropertyType.STRING, "the text that created the zone"),
        "source": _q(PropertyType.STRING, "where the geometry comes from"),
    }

    def __init__(self, service: Service) -> None:
        """Zones of `service`'s store."""
        self.service = service

    @staticmethod
    def feature_id(zone: Zone) -> str:
        """``<zone id>@v<version>``: unique over every version."""
        return f"{zone.id}@v{zone.version}"

    def _rows(self, zones: list[Zone]) -> _Rows:
        zones = sorted(zones, key=lambda z: (z.id, z.version))

        def features(positions: Sequence[int]) -> list[dict[str, Any]]:
            out = []
            for zone in (zones[i] for i in positions):
                feature = zone_to_feature(zone)
                feature["id"] = self.feature_id(zone)
                feature["properties"] = {"zone_id": zone.id, **feature["properties"]}
                out.append(feature)
            return out

        columns: dict[str, list[Any]] = {
            "zone_id": [z.id for z in zones],
            "name": [z.name for z in zones],
            "kind": [z.kind.value for z in zones],
            "version": [z.version for z in zones],
            "valid_from": [z.valid_from for z in zones],
            "valid_to": [z.valid_to for z in zones],
            "warning_distance_m": [z.warning_distance_m for z in zones],
            "agreement": [z.agreement for z in zones],
            "source": [z.source for z in zones],
        }
        return _Rows(
            [self.feature_id(z) for z in zones],
            [(z.id, z.version) for z in zones],
            columns,
            [z.geometry for z in zones],
            features,
        )

    def extent(self) -> Extent:
        """Every version's box; from the first start to the last end (open if one is)."""
        zones = self.service.list_zones(None, all_versions=True)
        if not zones:
            return Extent(None, None, None)
        ends = [z.valid_to for z in zones]
        return Extent(
            _bbox_of([z.geometry for z in zones]),
            min(z.valid_from for z in zones),
            None if any(e is None for e in ends) else max(e for e in ends if e is not None),
        )

    def items(self, query: ItemsQuery) -> ItemsPage:
        """Zone versions by zone id and version."""
        since, until = query.since, query.until
        if since is None and until is None:
            zones = self.service.list_zones(None, all_versions=True)
            window = None
        else:
            zones = self.service.store.zones_for_index()
            window = time_window("valid_from", "valid_to", since, until)
        rows = self._rows(zones)
        keep = evaluate(all_of([window, query.where]), rows.columns, rows.geometries)
        return _page(rows, keep, query)

    def item(self, feature_id: str) -> dict[str, Any]:
        """One version, ``<zone id>@v<version>``; a bare zone id is its latest version."""
        zone_id, marker, number = feature_id.rpartition("@v")
        if marker and zone_id and number.isdigit():
            try:
                versions = self.service.zone_history(zone_id)
            except UnknownZone:
                versions = []
            for zone in versions:
                if zone.version == int(number):
                    return self._rows([zone]).features([0])[0]
        try:
            return self._rows([self.service.get_zone(feature_id)]).features([0])[0]
        except UnknownZone:
            raise NotFound(f"no feature {feature_id!r} in Zones", field="featureId") from None


def _seconds(time_ns: np.ndarray) -> list[float]:
    """UTC nanoseconds as POSIX seconds (the form `app.predicate.evaluate` compares)."""
    seconds: list[float] = (np.asarray(time_ns, dtype=np.int64) // 1000 / 1e6).tolist()
    return seconds


class IncursionsCollection:
    """Violations among the stored reports (as `GET /incursions`), one feature per (report,
    zone), id ``<report id>@<zone id>``, in report time order."""

    id = "incursions"
    title = "Incursions"
    description = (
        "Stored reports that violate a zone (inside or possible, party not authorized), judged "
        "against the zones as they now stand; datetime is the report's observed_at."
    )
    geometry_type = "Point"
    queryables: Mapping[str, Queryable] = {
        "report_id": _q(PropertyType.STRING, "the report's id"),
        "zone_id": _q(PropertyType.STRING, "the zone violated"),
        "zone_name": _q(PropertyType.STRING, "the zone's name"),
        "verdict": _q(
            PropertyType.STRING, "inside or possible", [Verdict.INSIDE, Verdict.POSSIBLE]
        ),
        "depth_m": _q(PropertyType.NUMBER, "metres inside the zone (negative: outside)"),
        "party": _q(PropertyType.STRING, "the party's code"),
        "observed_at": _q(PropertyType.DATETIME, "when the report was observed"),
    }

    def __init__(self, service: Service) -> None:
        """Incursions of `service`."""
        self.service = service

    def _rows(self) -> _Rows:
        found = self.service.incursions()
        report_ids = found.report_id.tolist()
        zone_ids = found.zone_id.tolist()
        ids = [f"{r}@{z}" for r, z in zip(report_ids, zone_ids, strict=True)]

        def features(positions: Sequence[int]) -> list[dict[str, Any]]:
            chosen = found.take(np.asarray(positions, dtype=np.intp)).features()
            for feature, position in zip(chosen, positions, strict=True):
                feature["id"] = ids[position]
            return chosen

        times = np.asarray(found.time_ns, dtype=np.int64).tolist()
        columns: dict[str, list[Any]] = {
            "report_id": report_ids,
            "zone_id": zone_ids,
            "zone_name": found.zone_name.tolist(),
            "verdict": found.verdict.tolist(),
            "depth_m": found.depth_m.tolist(),
            "party": found.party.tolist(),
            "observed_at": _seconds(found.time_ns),
        }
        keys = list(zip(times, report_ids, zone_ids, strict=True))
        geometries = list(shapely.points(found.lon, found.lat))
        return _Rows(ids, keys, columns, geometries, features)

    def extent(self) -> Extent:
        """The incursions' box and time range."""
        found = self.service.incursions()
        if not len(found):
            return Extent(None, None, None)
        times = np.asarray(found.time_ns, dtype=np.int64)
        bbox = (
            float(found.lon.min()),
            float(found.lat.min()),
            float(found.lon.max()),
            float(found.lat.max()),
        )
        start = datetime.fromtimestamp(0, UTC) + timedelta(microseconds=int(times.min()) // 1000)
        end = datetime.fromtimestamp(0, UTC) + timedelta(microseconds=int(times.max()) // 1000)
        return Extent(bbox, start, end)

    def items(self, query: ItemsQuery) -> ItemsPage:
        """Incursions by report time, report id and zone id."""
        rows = self._rows()
        window = time_window("observed_at", None, query.since, query.until)
        keep = evaluate(all_of([window, query.where]), rows.columns, rows.geometries)
        return _page(rows, keep, query)

    def item(self, feature_id: str) -> dict[str, Any]:
        """One incursion, ``<report id>@<zone id>``."""
        return _find(self._rows(), feature_id, self.title)


class ReportsCollection:
    """Stored reports (latest versions, retracted ones left out), by (observed_at, id), paged
    and filtered in the store (`Store.select_reports`)."""

    id = "reports"
    title = "Reports"
    description = (
        "Stored reports, each its latest version (retracted ones left out), in observed_at "
        "order; datetime is observed_at."
    )
    geometry_type = "Point"
    queryables: Mapping[str, Queryable] = {
        "id": _q(PropertyType.STRING, "the report's id"),
        "party": _q(PropertyType.STRING, "the party's code"),
        "observed_at": _q(PropertyType.DATETIME, "when it was observed"),
        "uncertainty_m": _q(PropertyType.NUMBER, "radius of uncertainty, metres"),
        "kind": _q(PropertyType.STRING, "what was seen", [k.value for k in ReportKind]),
        "unit": _q(PropertyType.STRING, "the unit (track key)"),
        "source": _q(PropertyType.STRING, "who reported it"),
        "confidence": _q(PropertyType.STRING, "low, medium or high", ["low", "medium", "high"]),
        "notes": _q(PropertyType.STRING, "free text"),
    }

    def __init__(self, service: Service) -> None:
        """Reports of `service`'s store."""
        self.service = service

    def extent(self) -> Extent:
        """The reports' box and time range."""
        bbox, start, end = self.service.store.reports_extent()
        return Extent(bbox, start, end)

    def items(self, query: ItemsQuery) -> ItemsPage:
        """A page of reports from the store's keyset."""
        store = self.service.store
        where = all_of([time_window("observed_at", None, query.since, query.until), query.where])
        selection = store.select_reports(
            where, limit=query.limit, after=query.after, before=query.before
        )
        matched = store.count_reports_where(where)
        if query.before is not None:
            next_cursor = selection.last
            prev_cursor = selection.first if selection.more else None
        else:
            next_cursor = selection.last if selection.more else None
            prev_cursor = selection.first if query.after is not None else None
        return ItemsPage(
            [report_to_feature(r) for r in selection.reports], matched, next_cursor, prev_cursor
        )

    def item(self, feature_id: str) -> dict[str, Any]:
        """One report's latest version (a retracted one is not in the collection)."""
        found = self.service.get_report(feature_id)
        if found.retracted:
            raise NotFound(f"report {feature_id!r} was retracted", field="featureId")
        return report_to_feature(found.report)


# -- reference layers ---------------------------------------------------------------------------

_TITLES = {
    "line_of_contact": "Line of contact",
    "observation_posts": "Observation posts",
    "places": "Places",
}


def _as_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _type_of(values: list[Any]) -> PropertyType | None:
    present = [v for v in values if v is not None]
    if not present:
        return PropertyType.STRING
    if all(isinstance(v, bool) for v in present):
        return PropertyType.BOOLEAN
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return PropertyType.NUMBER
    if all(isinstance(v, str) for v in present):
        if all(_as_time(v) is not None for v in present):
            return PropertyType.DATETIME
        return PropertyType.STRING
    return None  # lists, objects or mixed: not queryable


@dataclass
class ReferenceCollection:
    """A reference layer of the scenario directory (GeoJSON as filed), in file order."""

    id: str
    title: str
    description: str
    features: list[dict[str, Any]]
    geometry_type: str = "Geometry"
    queryables: Mapping[str, Queryable] = field(default_factory=dict)
    _rows: _Rows | None = None

    @classmethod
    def from_geojson(cls, name: str, collection: Mapping[str, Any]) -> ReferenceCollection:
        """The layer `name` from its FeatureCollection."""
        features = []
        for index, raw in enumerate(collection.get("features", [])):
            feature = dict(raw)
            feature["id"] = str(raw.get("id", index))
            feature["properties"] = dict(raw.get("properties") or {})
            features.append(feature)
        names = sorted({key for f in features for key in f["properties"]} - {GEOMETRY})
        queryables: dict[str, Queryable] = {}
        columns: dict[str, list[Any]] = {}
        for key in names:
            values = [f["properties"].get(key) for f in features]
            kind = _type_of(values)
            if kind is None:
                continue
            queryables[key] = _q(kind, key.replace("_", " "))
            if kind is PropertyType.DATETIME:
                columns[key] = [_as_time(v) for v in values]
            elif kind is PropertyType.NUMBER:
                columns[key] = [None if v is None else float(v) for v in values]
            else:
                columns[key] = values
        geometries = [
            None if f.get("geometry") is None else shapely.geometry.shape(f["geometry"])
            for f in features
        ]
        types = {g.geom_type for g in geometries if g is not None}
        title = _TITLES.get(name, name.replace("_", " ").capitalize())
        layer = cls(
            id=name.replace("_", "-"),
            title=title,
            description=f"Reference layer: {title.lower()} (from the scenario's geodata).",
            features=features,
            geometry_type=types.pop() if len(types) == 1 else "Geometry",
            queryables=queryables,
        )
        layer._rows = _Rows(
            [f["id"] for f in features],
            [(i,) for i in range(len(features))],
            columns,
            geometries,
            lambda positions: [features[i] for i in positions],
        )
        return layer

    @property
    def rows(self) -> _Rows:
        """The layer in memory."""
        assert self._rows is not None
        return self._rows

    def _window(self, query: ItemsQuery) -> Predicate | None:
        """Features valid at some time in the window (a layer without `valid_from` has no
        time: every feature matches)."""
        kinds = {k: q.type for k, q in self.queryables.items()}
        if kinds.get("valid_from") is not PropertyType.DATETIME:
            return None
        end = "valid_to" if kinds.get("valid_to") is PropertyType.DATETIME else None
        parts: list[Predicate | None] = []
        if query.until is not None:
            parts.append(Compare("valid_from", "<", query.until))
        if query.since is not None and end is not None:
            parts.append(Or((IsNull(end), Compare(end, ">", query.since))))
        return all_of(parts)

    def extent(self) -> Extent:
        """The layer's box, and its validity when it has one."""
        columns = self.rows.columns
        starts = [v for v in columns.get("valid_from", []) if isinstance(v, datetime)]
        ends = columns.get("valid_to", [])
        start = min(starts) if starts else None
        end = None
        if ends and all(isinstance(v, datetime) for v in ends):
            end = max(ends)
        return Extent(_bbox_of(self.rows.geometries), start, end)

    def items(self, query: ItemsQuery) -> ItemsPage:
        """The layer's features in file order."""
        rows = self.rows
        keep = evaluate(all_of([self._window(query), query.where]), rows.columns, rows.geometries)
        return _page(rows, keep, query)

    def item(self, feature_id: str) -> dict[str, Any]:
        """One feature by its id (or its place in the file when it has none)."""
        return _find(self.rows, feature_id, self.title)


def _reference_layers(geodata: Path) -> list[ReferenceCollection]:
    try:
        layers = load_scenario(geodata).layers
    except FileNotFoundError:
        return []
    return [
        ReferenceCollection.from_geojson(name, layers[name])
        for name in REFERENCE_LAYERS
        if name in layers
    ]


def make_collections(
    service: Service,
    geodata: Path,
    *,
    reference: Callable[[Path], list[ReferenceCollection]] = _reference_layers,
) -> dict[str, Collection]:
    """Every collection, by id, in the order `/collections` lists them: zones, reports,
    incursions, then the reference layers of `geodata` (none when the directory is missing)."""
    collections: list[Collection] = [
        ZonesCollection(service),
        ReportsCollection(service),
        IncursionsCollection(service),
    ]
    collections.extend(reference(geodata))
    return {c.id: c for c in collections}


def finite_bbox(bbox: BBox | None) -> list[float] | None:
    """A box for JSON (None when a bound is not finite)."""
    if bbox is None or not all(math.isfinite(v) for v in bbox):
        return None
    return [float(v) for v in bbox]
