"""GeoJSON (RFC 7946) to domain types and back: zones, reports, findings.

Parsing checks everything through `app.validate` and refuses bad input with a `TruceError` whose
`field` is a path into the document: "properties/valid_from" for a single Feature,
"features/3/geometry/coordinates/0/5" (and `index` 3) inside a FeatureCollection. Zone parsing also
returns notes on what it repaired or assumed. Writing produces plain dicts of JSON types, ready for
orjson; datetimes are ISO 8601 with their offset.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from shapely.geometry.base import BaseGeometry

from app.domain import (
    DEFAULT_WARNING_DISTANCE_M,
    Confidence,
    Finding,
    Report,
    ReportKind,
    Zone,
    ZoneKind,
)
from app.errors import (
    InvalidGeoJSON,
    InvalidGeometry,
    InvalidInput,
    InvalidReport,
    InvalidZone,
    TruceError,
)
from app.limits import check_zone
from app.validate import (
    MAX_CODE_CHARS,
    MAX_EXTRA_BYTES,
    MAX_NOTES_CHARS,
    MAX_PARTIES,
    check_id,
    check_latitude,
    check_longitude,
    check_party,
    check_uncertainty,
    check_validity_period,
    describe,
    join_path,
    optional_string,
    parse_enum,
    parse_number,
    parse_position,
    parse_timestamp,
    required_string,
    validate_zone_geometry,
)

__all__ = [
    "finding_to_feature",
    "check_extra",
    "geometry_to_geojson",
    "parse_zones",
    "report_from_feature",
    "report_from_object",
    "report_to_feature",
    "reports_from_geojson",
    "slugify",
    "zone_from_feature",
    "zone_to_feature",
    "zones_from_geojson",
]

JSON = dict[str, Any]
IdFactory = Callable[[int | None], str]

_REPORT_PROPERTIES = frozenset(
    {"party", "observed_at", "uncertainty_m", "kind", "unit", "source", "confidence", "notes"}
)


# --- helpers --------------------------------------------------------------------------------------


def _prefix(index: int | None) -> str:
    return "" if index is None else f"features/{index}"


def _with_index(exc: TruceError, index: int | None) -> None:
    # Inner checks know the path but not always the index; the batch position is added here.
    if exc.index is None:
        exc.index = index


def _feature(
    obj: object, path: str, error: type[InvalidInput]
) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """Check that `obj` is a Feature; return it and its properties (null reads as {})."""
    if not isinstance(obj, Mapping):
        raise error(f"expected a GeoJSON Feature, got {describe(obj)}", field=path)
    kind = obj.get("type")
    if kind != "Feature":
        got = repr(kind) if isinstance(kind, str) else describe(kind)
        raise error(f"expected type 'Feature', got {got}", field=join_path(path, "type"))
    properties = obj.get("properties")
    if properties is None:
        return obj, {}
    if not isinstance(properties, Mapping):
        raise error(
            f"must be an object or null, got {describe(properties)}",
            field=join_path(path, "properties"),
        )
    return obj, properties


def _features(obj: Mapping[str, Any]) -> Sequence[Any]:
    features = obj.get("features")
    if isinstance(features, str | bytes) or not isinstance(features, Sequence):
        raise InvalidGeoJSON(
            f"a FeatureCollection needs an array of features, got {describe(features)}",
            field="features",
        )
    return features


def _identifier(
    value: object, field: str, error: type[InvalidInput], *, path_safe: bool = False
) -> str | None:
    """A GeoJSON id (RFC 7946 §3.2): a string, or a whole number kept as its exact decimal text."""
    return check_id(value, field, error=error, path_safe=path_safe)


def slugify(name: str) -> str:
    """An id-like slug of a zone name: "Lachin corridor" -> "lachin-corridor".

    Accents are folded to ASCII; a name with no ASCII letters or digits at all gets "zone-" and
    a short hash of the name, so the same name always gives the same id.
    """
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")
    return slug or "zone-" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]


def _isoformat(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _point(lon: float, lat: float) -> JSON:
    return {"type": "Point", "coordinates": [lon, lat]}


def geometry_to_geojson(geometry: BaseGeometry) -> JSON:
    """A shapely geometry as a GeoJSON geometry dict with lists (not tuples) of coordinates."""

    def lists(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [lists(item) for item in value]
        return value

    mapped = geometry.__geo_interface__
    if "coordinates" not in mapped:
        raise InvalidGeometry(f"cannot write a {geometry.geom_type} as a zone geometry")
    return {"type": mapped["type"], "coordinates": lists(mapped["coordinates"])}


# --- zones ----------------------------------------------------------------------------------------


def zone_from_feature(
    feature: Mapping[str, Any], index: int | None = None
) -> tuple[Zone, list[str]]:
    """Parse one zone Feature into a `Zone`, with notes on what was repaired or assumed.

    The Feature's "id" (a string, or a number made a string; else `properties.id`) names the
    zone; without one, an id is derived from the name and a note says so. Properties: `name`,
    `kind` and `valid_from` are required; `authorized_parties` (default []), `valid_to`
    (null = open, after `valid_from`), `warning_distance_m` (≥ 0, default 1000),
    `boundary_uncertainty_m` (≥ 0, default 0), `agreement`,
    `source` and `version` (≥ 1, default 1) are optional. Other properties are ignored. With
    `index`, fields are prefixed "features/{index}/" and errors carry the index.

    Raises:
        InvalidZone, InvalidGeometry, InvalidGeoJSON: naming the bad field.
    """
    try:
        return _zone_from_feature(feature, _prefix(index))
    except TruceError as exc:
        _with_index(exc, index)
        raise


def _zone_from_feature(feature: object, base: str) -> tuple[Zone, list[str]]:
    feature, properties = _feature(feature, base, InvalidZone)

    def at(name: str) -> str:
        return join_path(base, "properties", name)

    name = required_string(properties.get("name"), at("name"), error=InvalidZone)
    if properties.get("kind") is None:
        raise InvalidZone("is required", field=at("kind"))
    kind = parse_enum(properties["kind"], ZoneKind, at("kind"), error=InvalidZone)

    if properties.get("valid_from") is None:
        raise InvalidZone("is required", field=at("valid_from"))
    valid_from = parse_timestamp(properties["valid_from"], at("valid_from"), error=InvalidZone)
    valid_to = None
    if properties.get("valid_to") is not None:
        valid_to = parse_timestamp(properties["valid_to"], at("valid_to"), error=InvalidZone)
        check_validity_period(valid_from, valid_to, at("valid_to"))

    parties = properties.get("authorized_parties")
    if parties is None:
        parties = []
    if isinstance(parties, str | bytes) or not isinstance(parties, Sequence):
        raise InvalidZone(
            f"must be an array of party codes, got {describe(parties)}",
            field=at("authorized_parties"),
        )
    if len(parties) > MAX_PARTIES:
        raise InvalidZone(
            f"at most {MAX_PARTIES} parties, got {len(parties):,}", field=at("authorized_parties")
        )
    authorized = frozenset(
        required_string(
            party,
            join_path(at("authorized_parties"), i),
            error=InvalidZone,
            max_chars=MAX_CODE_CHARS,
        )
        for i, party in enumerate(parties)
    )

    warning = properties.get("warning_distance_m")
    warning_distance_m = (
        DEFAULT_WARNING_DISTANCE_M
        if warning is None
        else parse_number(warning, at("warning_distance_m"), minimum=0.0, error=InvalidZone)
    )
    boundary = properties.get("boundary_uncertainty_m")
    boundary_uncertainty_m = (
        0.0
        if boundary is None
        else parse_number(boundary, at("boundary_uncertainty_m"), minimum=0.0, error=InvalidZone)
    )
    version = 1
    if properties.get("version") is not None:
        number = parse_number(properties["version"], at("version"), minimum=1, error=InvalidZone)
        if not number.is_integer():
            raise InvalidZone(f"must be a whole number, got {number}", field=at("version"))
        version = int(number)

    notes: list[str] = []
    id_path = join_path(base, "id")
    zone_id = _identifier(feature.get("id"), id_path, InvalidZone, path_safe=True)
    if zone_id is None:
        zone_id = _identifier(properties.get("id"), at("id"), InvalidZone, path_safe=True)
    if zone_id is None:
        zone_id = slugify(name)
        notes.append(f"{id_path}: no id given; derived {zone_id!r} from the name")

    if feature.get("geometry") is None:
        raise InvalidGeometry(
            "a zone needs a Polygon or MultiPolygon geometry, got null",
            field=join_path(base, "geometry"),
        )
    geometry, geometry_notes = validate_zone_geometry(
        feature["geometry"], path=join_path(base, "geometry")
    )
    zone = Zone(
        id=zone_id,
        name=name,
        kind=kind,
        geometry=geometry,
        valid_from=valid_from,
        valid_to=valid_to,
        authorized_parties=authorized,
        warning_distance_m=warning_distance_m,
        boundary_uncertainty_m=boundary_uncertainty_m,
        agreement=optional_string(properties.get("agreement"), at("agreement"), error=InvalidZone),
        source=optional_string(properties.get("source"), at("source"), error=InvalidZone),
        version=version,
    )
    return zone, notes + geometry_notes


def zones_from_geojson(obj: Mapping[str, Any]) -> tuple[list[Zone], list[str]]:
    """Parse a zone Feature or a non-empty FeatureCollection of them, with all their notes.

    The same (id, version) twice in one collection is refused: it would be two answers for one
    zone version.

    Raises:
        InvalidGeoJSON: for an object that is neither, or an empty collection; and whatever
            `zone_from_feature` raises, with the feature's index.
    """
    if not isinstance(obj, Mapping):
        raise InvalidGeoJSON(
            f"expected a GeoJSON Feature or FeatureCollection, got {describe(obj)}"
        )
    kind = obj.get("type")
    if kind == "Feature":
        zone, zone_notes = zone_from_feature(obj)
        return [zone], zone_notes
    if kind != "FeatureCollection":
        got = repr(kind) if isinstance(kind, str) else describe(kind)
        raise InvalidGeoJSON(
            f"expected a Feature or FeatureCollection of zones, got {got}", field="type"
        )
    features = _features(obj)
    if not features:
        raise InvalidGeoJSON("the FeatureCollection is empty; it has no zone", field="features")
    zones: list[Zone] = []
    notes: list[str] = []
    seen: dict[tuple[str, int], int] = {}
    for i, feature in enumerate(features):
        zone, zone_notes = zone_from_feature(feature, i)
        first = seen.setdefault((zone.id, zone.version), i)
        if first != i:
            raise InvalidZone(
                f"zone {zone.id!r} version {zone.version} is also feature {first}",
                field=join_path(_prefix(i), "id"),
                index=i,
            )
        zones.append(zone)
        notes += zone_notes
    return zones, notes


def parse_zones(obj: Any) -> tuple[list[Zone], list[str]]:
    """`zones_from_geojson`, also held to `app.limits` (times and distances the engine can hold).

    This is how every front end (HTTP, files) reads zones.

    Raises:
        InvalidGeoJSON, InvalidGeometry, InvalidZone: naming the field and feature index.
    """
    zones, notes = zones_from_geojson(obj)
    collection = isinstance(obj, Mapping) and obj.get("type") == "FeatureCollection"
    for i, zone in enumerate(zones):
        check_zone(zone, i if collection else None)
    return zones, notes


def zone_to_feature(zone: Zone) -> JSON:
    """A zone as a GeoJSON Feature that `zone_from_feature` reads back to an equal zone."""
    return {
        "type": "Feature",
        "id": zone.id,
        "geometry": geometry_to_geojson(zone.geometry),
        "properties": {
            "name": zone.name,
            "kind": zone.kind.value,
            "authorized_parties": sorted(zone.authorized_parties),
            "valid_from": _isoformat(zone.valid_from),
            "valid_to": _isoformat(zone.valid_to),
            "warning_distance_m": zone.warning_distance_m,
            "boundary_uncertainty_m": zone.boundary_uncertainty_m,
            "agreement": zone.agreement,
            "source": zone.source,
            "version": zone.version,
        },
    }


# --- reports --------------------------------------------------------------------------------------


def _default_id(index: int | None) -> str:
    return str(0 if index is None else index)


def _report(
    *,
    report_id: str,
    lon: float,
    lat: float,
    properties: Mapping[str, Any],
    base: str,
    extra: dict[str, object],
    default_observed_at: datetime | None,
) -> Report:
    """Build a report from its position and the report properties found under `base`."""

    def at(name: str) -> str:
        return join_path(base, name)

    party = check_party(properties.get("party"), at("party"))
    observed = properties.get("observed_at")
    if observed is None:
        if default_observed_at is None:
            raise InvalidReport("is required", field=at("observed_at"))
        observed_at = default_observed_at
    else:
        observed_at = parse_timestamp(observed, at("observed_at"), error=InvalidReport)
    kind = properties.get("kind")
    confidence = properties.get("confidence")
    return Report(
        id=report_id,
        party=party,
        observed_at=observed_at,
        lon=lon,
        lat=lat,
        uncertainty_m=check_uncertainty(properties.get("uncertainty_m"), at("uncertainty_m")),
        kind=(
            ReportKind.OTHER
            if kind is None
            else parse_enum(kind, ReportKind, at("kind"), error=InvalidReport)
        ),
        unit=optional_string(
            properties.get("unit"), at("unit"), error=InvalidReport, max_chars=MAX_CODE_CHARS
        ),
        source=optional_string(properties.get("source"), at("source"), error=InvalidReport),
        confidence=(
            None
            if confidence is None
            else parse_enum(confidence, Confidence, at("confidence"), error=InvalidReport)
        ),
        notes=optional_string(
            properties.get("notes"), at("notes"), error=InvalidReport, max_chars=MAX_NOTES_CHARS
        ),
        extra=check_extra(extra, base),
    )


def check_extra(extra: dict[str, object], base: str) -> dict[str, object]:
    """A report's other properties, if they are at most `MAX_EXTRA_BYTES` as compact JSON."""
    if not extra:
        return extra
    try:
        size = len(orjson.dumps(extra))
    except TypeError:  # nested too deep, or an integer beyond 64 bits: it cannot be kept
        raise InvalidReport(
            "the properties other than the report's fields cannot be kept: integers must fit "
            "in 64 bits (send bigger ones as strings)",
            field=base or "properties",
        ) from None
    if size > MAX_EXTRA_BYTES:
        raise InvalidReport(
            f"the properties other than the report's fields take {size:,} bytes as JSON; "
            f"at most {MAX_EXTRA_BYTES:,} are kept",
            field=base or "properties",
        )
    return extra


def _check_default(default_observed_at: datetime | None) -> None:
    if default_observed_at is not None and default_observed_at.utcoffset() is None:
        raise ValueError("default_observed_at must be timezone-aware")


def report_from_feature(
    feature: Mapping[str, Any],
    index: int | None = None,
    *,
    default_observed_at: datetime | None = None,
    assign_id: IdFactory = _default_id,
) -> Report:
    """Parse one report: a Feature with a Point geometry and the report's properties.

    The id is the Feature's "id" (a string, or a number made a string; else `properties.id`),
    else `assign_id(index)`, by default the index in the collection ("0" for a lone Feature).
    `party` is required; `observed_at` too unless `default_observed_at` is given (it must carry
    a UTC offset). An altitude in the position is dropped. Properties that are not report fields
    are kept in `Report.extra`. With `index`, fields are prefixed "features/{index}/".

    Raises:
        InvalidReport, InvalidGeometry, InvalidGeoJSON: naming the bad field.
    """
    _check_default(default_observed_at)
    try:
        return _report_from_feature(feature, index, default_observed_at, assign_id)
    except TruceError as exc:
        _with_index(exc, index)
        raise


def _report_from_feature(
    feature: object,
    index: int | None,
    default_observed_at: datetime | None,
    assign_id: IdFactory,
) -> Report:
    base = _prefix(index)
    feature, properties = _feature(feature, base, InvalidReport)
    geometry = feature.get("geometry")
    where = join_path(base, "geometry")
    if not isinstance(geometry, Mapping):
        raise InvalidGeometry(
            f"a report needs a Point geometry, got {describe(geometry)}", field=where
        )
    if geometry.get("type") != "Point":
        kind = geometry.get("type")
        got = repr(kind) if isinstance(kind, str) else describe(kind)
        raise InvalidGeometry(
            f"a report must be a Point, got {got}", field=join_path(where, "type")
        )
    lon, lat, _ = parse_position(geometry.get("coordinates"), join_path(where, "coordinates"))

    report_id = _identifier(feature.get("id"), join_path(base, "id"), InvalidReport)
    if report_id is None:
        report_id = _identifier(
            properties.get("id"), join_path(base, "properties", "id"), InvalidReport
        )
    extra = {k: v for k, v in properties.items() if k not in _REPORT_PROPERTIES and k != "id"}
    return _report(
        report_id=assign_id(index) if report_id is None else report_id,
        lon=lon,
        lat=lat,
        properties=properties,
        base=join_path(base, "properties"),
        extra=extra,
        default_observed_at=default_observed_at,
    )


def report_from_object(
    obj: Mapping[str, Any],
    index: int | None = None,
    *,
    default_observed_at: datetime | None = None,
    assign_id: IdFactory = _default_id,
) -> Report:
    """Parse a bare report object, `{"lon": .., "lat": .., "party": .., ...}`, as POST /check takes.

    The fields are those of a report Feature's properties, beside `lon`, `lat` and an optional
    `id`; other keys go to `Report.extra`. Paths name the keys ("lat", "observed_at").

    Raises:
        InvalidReport, InvalidGeometry: naming the bad field.
    """
    _check_default(default_observed_at)
    base = _prefix(index)
    try:
        if not isinstance(obj, Mapping):
            raise InvalidReport(f"expected a report object, got {describe(obj)}", field=base)
        for key in ("lon", "lat"):
            if obj.get(key) is None:
                raise InvalidReport("is required", field=join_path(base, key))
        lon = check_longitude(obj["lon"], join_path(base, "lon"))
        lat = check_latitude(obj["lat"], join_path(base, "lat"))
        report_id = _identifier(obj.get("id"), join_path(base, "id"), InvalidReport)
        extra = {k: v for k, v in obj.items() if k not in _REPORT_PROPERTIES | {"id", "lon", "lat"}}
        return _report(
            report_id=assign_id(index) if report_id is None else report_id,
            lon=lon,
            lat=lat,
            properties=obj,
            base=base,
            extra=extra,
            default_observed_at=default_observed_at,
        )
    except TruceError as exc:
        _with_index(exc, index)
        raise


def reports_from_geojson(
    obj: Mapping[str, Any],
    *,
    default_observed_at: datetime | None = None,
    assign_id: IdFactory = _default_id,
) -> list[Report]:
    """Parse reports from a Feature, a FeatureCollection or a bare `{"lon", "lat", ...}` object.

    An empty FeatureCollection gives no reports (an empty day is no error). See
    `report_from_feature` for ids, defaults and `assign_id`.

    Raises:
        InvalidGeoJSON: for an object that is none of these; and whatever the per-report
            parsers raise, with the feature's index in a collection.
    """
    if not isinstance(obj, Mapping):
        raise InvalidGeoJSON(
            f"expected a GeoJSON Feature or FeatureCollection, got {describe(obj)}"
        )
    kind = obj.get("type")
    options: dict[str, Any] = {"default_observed_at": default_observed_at, "assign_id": assign_id}
    if kind == "FeatureCollection":
        return [report_from_feature(f, i, **options) for i, f in enumerate(_features(obj))]
    if kind == "Feature":
        return [report_from_feature(obj, **options)]
    if kind is None and ("lon" in obj or "lat" in obj):
        return [report_from_object(obj, **options)]
    got = repr(kind) if isinstance(kind, str) else describe(kind)
    raise InvalidGeoJSON(
        f"expected a Feature, a FeatureCollection or an object with lon and lat, got {got}",
        field="type",
    )


def report_to_feature(report: Report) -> JSON:
    """A report as a Point Feature that `report_from_feature` reads back to an equal report.

    `Report.extra` is written among the properties, under the report's own fields.
    """
    properties: JSON = dict(report.extra)
    properties.update(
        {
            "party": report.party,
            "observed_at": _isoformat(report.observed_at),
            "uncertainty_m": report.uncertainty_m,
            "kind": report.kind.value,
            "unit": report.unit,
            "source": report.source,
            "confidence": None if report.confidence is None else report.confidence.value,
            "notes": report.notes,
        }
    )
    return {
        "type": "Feature",
        "id": report.id,
        "geometry": _point(report.lon, report.lat),
        "properties": properties,
    }


def finding_to_feature(finding: Finding) -> JSON:
    """A finding as a Point Feature at its report, with the properties of docs/data-model.md.

    `depth_m` is rounded to centimetres: the rule is only good to 0.5 m, and more digits would
    read as precision that is not there. Python API (with `ZoneIndex.findings`); the service
    writes the same features from columns (`FindingColumns.features`, tested against this).
    """
    return {
        "type": "Feature",
        "geometry": _point(finding.lon, finding.lat),
        "properties": {
            "report_id": finding.report_id,
            "zone_id": finding.zone_id,
            "zone_name": finding.zone_name,
            "verdict": finding.verdict.value,
            "violation": finding.violation,
            "depth_m": round(finding.depth_m, 2),
            "party": finding.party,
            "observed_at": _isoformat(finding.observed_at),
        },
    }
