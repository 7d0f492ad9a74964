"""Request bodies to domain input: report batches and zones, with errors that name the field.

Reports come as a Point Feature, a FeatureCollection of them, or (for `POST /check`) a bare
`{"lon", "lat", ...}` object. `app.geojson` parses and checks one feature at a time, with a precise
message for every fault, at about 30 µs a feature: 3 s for 1e5. So a FeatureCollection first takes
a fast path that checks whole columns at once: the structure by the set of types in each column,
positions with numpy, times by parsing each distinct string once, enums and party codes by their
distinct values. It accepts exactly what the per-feature parser accepts or less: whenever a column
is not plainly valid, the whole collection goes through `app.geojson`, which finds the first bad
feature and says what is wrong with it (or, for the unusual but valid, such as numeric ids or
altitudes, parses it). `tests/api/test_api_parsing.py` holds the two paths to the same answers.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import numpy as np

from app.batch import ReportBatch, Shape
from app.domain import Confidence, Report, ReportKind, Zone
from app.errors import InvalidGeoJSON, InvalidReport, TruceError
from app.geojson import check_extra, reports_from_geojson
from app.geojson import parse_zones as parse_zone_document
from app.limits import NS_PER_US, first_breach, to_us
from app.validate import (
    CONTROL_CHARACTERS,
    MAX_CODE_CHARS,
    MAX_ID_CHARS,
    MAX_NOTES_CHARS,
    MAX_TEXT_CHARS,
    check_id,
    describe,
    parse_enum,
)

__all__ = ["IdFactory", "index_ids", "parse_reports", "parse_zones"]

IdFactory = Callable[[int | None], str]

# The report properties that are fields of `Report`; any other property goes to `Report.extra`.
_FIELDS = frozenset(
    {"id", "party", "observed_at", "uncertainty_m", "kind", "unit", "source", "confidence", "notes"}
)
_NONE = type(None)
_STRINGS = {str, _NONE}


def index_ids(index: int | None) -> str:
    """The default report id: the index in the collection ("0" for a lone feature)."""
    return str(0 if index is None else index)


def parse_reports(
    obj: Any,
    *,
    default_observed_at: datetime | None,
    assign_id: IdFactory = index_ids,
    allow_object: bool = True,
) -> ReportBatch:
    """Reports from a parsed JSON body, validated, as a `ReportBatch`.

    `default_observed_at` stands in for a missing `observed_at` (None: it is required);
    `assign_id(index)` names reports sent without an id; `allow_object` admits the bare
    `{"lon", "lat", ...}` form.

    Raises:
        InvalidGeoJSON, InvalidGeometry, InvalidReport: naming the field and feature index.
    """
    if not isinstance(obj, Mapping):
        raise InvalidGeoJSON(
            f"expected a GeoJSON Feature or FeatureCollection, got {describe(obj)}", field="body"
        )
    kind = obj.get("type")
    if kind == "FeatureCollection":
        features = obj.get("features")
        if isinstance(features, list):
            batch = _fast_collection(features, default_observed_at, assign_id)
            if batch is not None:
                return batch
        shape = Shape.COLLECTION
    elif kind == "Feature":
        shape = Shape.FEATURE
    elif kind is None and allow_object and ("lon" in obj or "lat" in obj):
        shape = Shape.OBJECT
    else:
        got = repr(kind) if isinstance(kind, str) else describe(kind)
        expected = "a Feature, a FeatureCollection or an object with lon and lat"
        if not allow_object:
            expected = "a Feature or a FeatureCollection of reports"
        raise InvalidGeoJSON(f"expected {expected}, got {got}", field="type")
    reports = reports_from_geojson(
        obj, default_observed_at=default_observed_at, assign_id=assign_id
    )
    return ReportBatch.from_reports(reports, shape)


def _fast_collection(
    features: list[Any], default_observed_at: datetime | None, assign_id: IdFactory
) -> ReportBatch | None:
    """The batch, if every column is plainly valid; else None (the careful parser decides)."""
    try:
        return _columns(features, default_observed_at, assign_id)
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError, TruceError):
        # Unhashable values, unparseable times, bad enum values...: all for the careful parser.
        return None


def _types(values: list[Any]) -> set[type]:
    return set(map(type, values))


def _columns(  # one straight pass over the columns reads best as one function
    features: list[Any], default_observed_at: datetime | None, assign_id: IdFactory
) -> ReportBatch | None:
    n = len(features)
    if n == 0:
        return _empty()
    # Structure: every feature a Feature with a Point and an object of properties.
    if _types(features) != {dict} or {f.get("type") for f in features} != {"Feature"}:
        return None
    geometries = [f.get("geometry") for f in features]
    props: list[dict[str, Any]] = [f.get("properties") for f in features]
    if _types(geometries) != {dict} or _types(props) != {dict}:
        return None
    if {g.get("type") for g in geometries} != {"Point"}:
        return None
    coordinates = [g.get("coordinates") for g in geometries]
    if _types(coordinates) != {list} or set(map(len, coordinates)) != {2}:
        return None  # altitudes and malformed positions: the careful parser
    if not _types(list(itertools.chain.from_iterable(coordinates))) <= {int, float}:
        return None  # bool is not a number here, nor are strings
    xy = np.array(coordinates, dtype=np.float64)
    lon, lat = np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1])
    if not (np.isfinite(xy).all() and (np.abs(lon) <= 180).all() and (np.abs(lat) <= 90).all()):
        return None

    parties = [p.get("party") for p in props]
    if any(type(v) is not str or not v.strip() or len(v) > MAX_CODE_CHARS for v in set(parties)):
        return None

    observed = [p.get("observed_at") for p in props]
    moments: dict[str | None, datetime] = {}
    for value in set(observed):
        if value is None:
            if default_observed_at is None:
                return None
            moments[None] = default_observed_at
        elif type(value) is str:
            moment = datetime.fromisoformat(value.strip())  # as parse_timestamp does
            if moment.tzinfo is None or moment.utcoffset() is None:
                return None
            moments[value] = moment
        else:
            return None
    us_of = {value: to_us(moment) for value, moment in moments.items()}
    us = np.array([us_of[v] for v in observed], dtype=np.int64)

    raw_u = [p.get("uncertainty_m") for p in props]
    if not _types(raw_u) <= {int, float, _NONE}:
        return None
    uncertainty = np.array(raw_u, dtype=np.float64)  # null becomes NaN: JSON has no NaN
    uncertainty[np.isnan(uncertainty)] = 0.0
    if not (np.isfinite(uncertainty).all() and (uncertainty >= 0).all()):
        return None
    if first_breach(us, uncertainty) is not None:
        return None  # the careful path names the report and the limit

    kinds = [p.get("kind") for p in props]
    kind_of: dict[Any, ReportKind] = {None: ReportKind.OTHER}
    for value in set(kinds) - {None}:
        kind_of[value] = parse_enum(value, ReportKind, "kind", error=InvalidReport)
    confidences = [p.get("confidence") for p in props]
    confidence_of: dict[Any, Confidence | None] = {None: None}
    for value in set(confidences) - {None}:
        confidence_of[value] = parse_enum(value, Confidence, "confidence", error=InvalidReport)
    units = [p.get("unit") for p in props]
    sources = [p.get("source") for p in props]
    notes = [p.get("notes") for p in props]
    if not (_types(units) | _types(sources) | _types(notes)) <= _STRINGS:
        return None
    fits = _fit(units, MAX_CODE_CHARS) and _fit(sources, MAX_TEXT_CHARS)
    if not (fits and _fit(notes, MAX_NOTES_CHARS)):
        return None  # the careful parser names the report and the field
    for i, p in enumerate(props):
        if not _FIELDS.issuperset(p):
            check_extra(
                {k: v for k, v in p.items() if k not in _FIELDS},
                Shape.COLLECTION.property_path(i, "").rstrip("/"),
            )

    raw_ids = [f.get("id") for f in features]
    id_types = _types(raw_ids)
    if not id_types <= _STRINGS:
        return None  # numeric ids: the careful parser writes them as strings
    given = set(raw_ids) - {None}
    if any(not v.strip() or len(v) > MAX_ID_CHARS for v in given):
        return None
    if CONTROL_CHARACTERS.search("".join(given)):
        return None
    ids: list[str] = raw_ids  # the Nones are replaced below
    if _NONE in id_types:
        ids = list(raw_ids)
        for i, value in enumerate(raw_ids):
            if value is None:
                if props[i].get("id") is not None:
                    return None  # an id among the properties: the careful parser reads it
                ids[i] = assign_id(i)

    def build() -> list[Report]:
        return [
            Report(
                id=report_id,
                party=party,
                observed_at=moments[when],
                lon=x,
                lat=y,
                uncertainty_m=u,
                kind=kind_of[kind],
                unit=unit,
                source=source,
                confidence=confidence_of[confidence],
                notes=note,
                extra={k: v for k, v in p.items() if k not in _FIELDS},
            )
            for report_id, party, when, x, y, u, kind, unit, source, confidence, note, p in zip(
                ids,
                parties,
                observed,
                lon.tolist(),
                lat.tolist(),
                uncertainty.tolist(),
                kinds,
                units,
                sources,
                confidences,
                notes,
                props,
                strict=True,
            )
        ]

    return ReportBatch(
        ids=np.array(ids, dtype=object),
        lon=lon,
        lat=lat,
        time_ns=us * NS_PER_US,
        uncertainty_m=uncertainty,
        party=np.array(parties, dtype=object),
        unit=np.array(units, dtype=object),
        origin=Shape.COLLECTION,
        build_reports=build,
    )


def _fit(values: list[str | None], max_chars: int) -> bool:
    """Whether every string among `values` (None aside) has at most `max_chars` characters."""
    distinct = set(values)
    distinct.discard(None)
    return not distinct or max(map(len, distinct)) <= max_chars  # type: ignore[arg-type]


def _empty() -> ReportBatch:
    return ReportBatch.from_reports([], Shape.COLLECTION)


def parse_zones(obj: Any) -> tuple[list[Zone], list[str]]:
    """Zones from a request body: a Feature or a non-empty FeatureCollection (see
    `app.geojson.parse_zones`); a body that is no JSON object is refused naming the body."""
    if not isinstance(obj, Mapping):
        raise InvalidGeoJSON(
            f"expected a zone Feature or FeatureCollection, got {describe(obj)}", field="body"
        )
    return parse_zone_document(obj)


def feature_for_path(obj: Any, path_id: str, what: str) -> Mapping[str, Any]:
    """One `what` Feature (a zone or a report) for the resource `path_id` named by the URL path.

    Its id, if it has one (`id` or `properties/id`), must be the path's; without one it gets the
    path's, since the parser would otherwise derive or assign another.
    """
    if not isinstance(obj, Mapping) or obj.get("type") != "Feature":
        got = describe(obj) if not isinstance(obj, Mapping) else repr(obj.get("type"))
        raise InvalidGeoJSON(f"expected one {what} Feature, got {got}", field="type")
    given = check_id(obj.get("id"), "id", error=InvalidGeoJSON)
    if given is None:
        properties = obj.get("properties")
        if isinstance(properties, Mapping):
            given = check_id(properties.get("id"), "properties/id", error=InvalidGeoJSON)
    if given is None:
        return {**obj, "id": path_id}
    if given != path_id:
        raise InvalidGeoJSON(
            f"the feature's id {given!r} is not the {what} {path_id!r} of the path", field="id"
        )
    return obj


def parse_zone_version(obj: Any, zone_id: str) -> tuple[Zone, list[str]]:
    """A new version of zone `zone_id` from a Feature; its id, if it has one, must match."""
    zones, notes = parse_zone_document(feature_for_path(obj, zone_id, "zone"))
    return zones[0], notes
