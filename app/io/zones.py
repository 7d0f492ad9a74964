"""Reading zones (`read_zones`), validated as the HTTP API validates them.

From GeoJSON, vector files, or a CSV with a WKT geometry column (as `write_zones` writes it).
"""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import shapely
from pyproj import Transformer
from shapely.geometry import mapping

from app.domain import Zone
from app.errors import TruceError
from app.geodesy import zone_reach
from app.geojson import parse_zones, zone_from_feature
from app.io.cells import plain_value
from app.io.columns import csv_header
from app.io.crs import is_wgs84, parse_crs
from app.io.formats import input_format, sniff
from app.io.geojson_files import declares_other_crs, load_json
from app.io.options import ProgressFn, ReadOptions, no_progress
from app.io.problems import file_problem
from app.io.vector import read_vector
from app.limits import check_zone

_ZONE_FIELDS: dict[str, tuple[str, ...]] = {
    "id": ("id", "zone_id"),
    "name": ("name",),
    "kind": ("kind",),
    "authorized_parties": ("authorized_parties", "authorized", "parties"),
    "valid_from": ("valid_from", "valid_fro"),
    "valid_to": ("valid_to",),
    "warning_distance_m": ("warning_distance_m", "warning_di", "warning_m"),
    # Shapefile field names stop at 10 characters.
    "boundary_uncertainty_m": ("boundary_uncertainty_m", "boundary_u", "boundary_m"),
    "agreement": ("agreement",),
    "source": ("source",),
    "version": ("version",),
}


_WKT_NAMES = ("geometry", "wkt", "geom", "the_geom")


_TRIANGLE = {"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]]}


def read_zones(
    path: Path, options: ReadOptions | None = None, progress: ProgressFn | None = None
) -> tuple[list[Zone], list[str]]:
    """Zones (every version in the file) and notes on what was repaired, assumed or transformed.

    Zones are validated as the HTTP API validates them (`app.geojson.zone_from_feature` and
    `app.limits`); a file with no zone is refused.

    Raises:
        FileProblem: naming the file, the feature or row, and the problem.
    """
    options = options or ReadOptions()
    progress = progress or no_progress
    fmt = input_format(path)
    sniff(path, fmt)
    if fmt == "geojson":
        obj = load_json(path, progress)
        if not declares_other_crs(obj):
            try:
                zones, notes = parse_zones(obj)
            except TruceError as exc:
                raise file_problem(path, exc.detail) from None
            return zones, [f"{path.name}: {note}" for note in notes]
    if fmt == "csv":
        attributes, geometry, notes = _read_wkt_csv(path, options, progress)
        where = "row"
        labels = np.arange(len(attributes)) + 2
    else:
        attributes, geometry, notes = read_vector(path, "zones", options, progress)
        where = "feature"
        labels = np.arange(len(attributes))
    if not len(attributes):
        raise file_problem(path, "has no zone (no features)")
    zones, more = _zones_from_table(path, attributes, geometry, where, labels, progress)
    return zones, notes + more


def _read_wkt_csv(
    path: Path, options: ReadOptions, progress: ProgressFn
) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """Zones from a CSV with a WKT geometry column (as `write_zones` writes it)."""
    delimiter, header = csv_header(path)
    lookup = {name.strip().lower(): name for name in header}
    column = next((lookup[n] for n in _WKT_NAMES if n in lookup), None)
    if column is None:
        raise file_problem(
            path, f"has no geometry column for zones: expected one of {', '.join(_WKT_NAMES)} (WKT)"
        )
    progress(f"reading {path.name}", 0, None)
    try:
        numeric = {
            "warning_distance_m",
            "warning_di",
            "warning_m",
            "boundary_uncertainty_m",
            "boundary_u",
            "boundary_m",
            "version",
        }
        frame = pd.read_csv(
            path,
            sep=delimiter,
            dtype={name: str for name in header if name.strip().lower() not in numeric},
            keep_default_na=False,
            na_values=[""],
            encoding="utf-8-sig",
            skip_blank_lines=False,
        )
    except (ValueError, UnicodeDecodeError, csv.Error) as exc:
        raise file_problem(path, f"cannot be read as CSV: {exc}") from None
    progress(f"reading {path.name}", 1, 1)
    text = frame[column].to_numpy(object)
    geometry = np.empty(len(text), dtype=object)
    for i, value in enumerate(text.tolist()):
        if not isinstance(value, str):
            raise file_problem(path, f"column {column!r} is empty", f"row {i + 2}")
        try:
            geometry[i] = shapely.from_wkt(value)
        except shapely.errors.GEOSException as exc:
            raise file_problem(path, f"column {column!r}: not WKT: {exc}", f"row {i + 2}") from None
    notes: list[str] = []
    if options.crs is not None:
        crs = parse_crs(options.crs, path)
        if not is_wgs84(crs):
            transformer = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
            geometry = shapely.transform(
                geometry, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
            )
    return frame.drop(columns=column), geometry, notes


def _zone_columns(attributes: pd.DataFrame) -> dict[str, str]:
    lookup = {str(name).strip().lower(): str(name) for name in attributes.columns}
    found: dict[str, str] = {}
    for field, names in _ZONE_FIELDS.items():
        for name in names:
            if name in lookup:
                found[field] = lookup[name]
                break
    return found


def _timestamp_value(value: Any) -> Any:
    """A time cell as an aware datetime when it is one, else as it is (for the message)."""
    value = plain_value(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
        if re.match(r"^\d{4}/\d\d/\d\d", text):  # GDAL's "2020/11/10 00:00:00+00" (Shapefile)
            try:
                stamp = pd.Timestamp(text.replace("/", "-", 2))
            except ValueError:
                return value
            return stamp.to_pydatetime()
    return value


def _parties_value(value: Any) -> Any:
    value = plain_value(value)
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return orjson.loads(text)
            except orjson.JSONDecodeError:
                return value
        return [p.strip() for p in re.split(r"[,;]", text) if p.strip()]
    if isinstance(value, list | tuple | np.ndarray):
        return [plain_value(v) for v in value]
    return value


def _id_value(value: Any) -> Any:
    value = plain_value(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _zones_from_table(
    path: Path,
    attributes: pd.DataFrame,
    geometry: np.ndarray,
    where: str,
    labels: np.ndarray,
    progress: ProgressFn,
) -> tuple[list[Zone], list[str]]:
    columns = _zone_columns(attributes)
    converters: dict[str, Callable[[Any], Any]] = {
        "valid_from": _timestamp_value,
        "valid_to": _timestamp_value,
        "authorized_parties": _parties_value,
        "id": _id_value,
    }
    values = {
        field: [converters.get(field, plain_value)(v) for v in attributes[column].tolist()]
        for field, column in columns.items()
    }
    fast = _fast_geometries(geometry)
    zones: list[Zone] = []
    notes: list[str] = []
    seen: dict[tuple[str, int], int] = {}
    step = f"validating zones of {path.name}"
    for i in range(len(attributes)):
        at = f"{where} {labels[i]}"
        properties = {field: column[i] for field, column in values.items() if field != "id"}
        feature: dict[str, Any] = {"type": "Feature", "properties": properties}
        if "id" in values and values["id"][i] is not None:
            feature["id"] = values["id"][i]
        good = fast[i]
        if good is not None:
            feature["geometry"] = _TRIANGLE
        elif geometry[i] is None or shapely.is_empty(geometry[i]):
            raise file_problem(path, "has no geometry; a zone needs a Polygon or MultiPolygon", at)
        else:
            feature["geometry"] = mapping(geometry[i])
        try:
            zone, zone_notes = zone_from_feature(feature)
            if good is not None:
                zone = dataclasses.replace(zone, geometry=good)
            check_zone(zone)
        except TruceError as exc:
            raise file_problem(path, _table_detail(exc), at) from None
        first = seen.setdefault((zone.id, zone.version), i)
        if first != i:
            raise file_problem(
                path,
                f"zone {zone.id!r} version {zone.version} is also {where} {labels[first]}",
                at,
            )
        zones.append(zone)
        notes += [f"{path.name}: {at}: {note}" for note in zone_notes]
        if i % 50 == 0 or i == len(attributes) - 1:
            progress(step, i + 1, len(attributes))
    return zones, notes


def _table_detail(exc: TruceError) -> str:
    """A validation message for a table row: "column 'valid_from': ..." for a property."""
    field = exc.field or ""
    if field.startswith("properties/"):
        name = field.removeprefix("properties/").split("/")[0]
        return f"column {name!r}: {exc.message}"
    if field == "id":
        return f"column 'id': {exc.message}"
    return exc.detail


def _fast_geometries(geometry: np.ndarray) -> list[Any]:
    """Per zone, its geometry when GeoJSON validation would take it unchanged, else None.

    That is: a Polygon or MultiPolygon without altitudes, every coordinate a finite longitude
    and latitude, no repeated consecutive position, no edge jumping more than 180° of longitude
    (the antimeridian), valid by GEOS, every polygon of positive area, and within the engine's
    reach (`zone_reach`). The result is oriented as the validation orients it (exteriors
    counter-clockwise). Anything else goes through the full validation, which repairs it or says
    exactly what is wrong.
    """
    found: list[Any] = [None] * len(geometry)
    if not len(geometry):
        return found
    present = np.array(
        [g is not None and g.geom_type in ("Polygon", "MultiPolygon") for g in geometry]
    )
    idx = np.flatnonzero(present)
    if not len(idx):
        return found
    geoms = geometry[idx]
    ok = ~shapely.has_z(geoms) & ~shapely.is_empty(geoms)
    parts, part_of = shapely.get_parts(geoms, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    zone_of_coord = part_of[ring_part[ring_of]]
    lon, lat = coords[:, 0], coords[:, 1]
    bad = ~(np.isfinite(lon) & np.isfinite(lat))
    bad |= (np.abs(lon) > 180.0) | (np.abs(lat) > 90.0)
    np.logical_and.at(ok, zone_of_coord[bad], False)
    same_ring = ring_of[1:] == ring_of[:-1]
    repeated = same_ring & (lon[1:] == lon[:-1]) & (lat[1:] == lat[:-1])
    jump = same_ring & (np.abs(np.diff(lon)) > 180.0)
    np.logical_and.at(ok, zone_of_coord[1:][repeated | jump], False)
    np.logical_and.at(ok, part_of[shapely.area(parts) <= 0.0], False)
    candidates = np.flatnonzero(ok)
    valid = shapely.is_valid(geoms[candidates])
    for j in candidates[valid]:
        if zone_reach(geoms[j]).judgeable:  # else the full validation refuses it, saying why
            found[int(idx[j])] = shapely.orient_polygons(geoms[j], exterior_cw=False)
    return found
