"""Vector files (GeoPackage, Shapefile, FlatGeobuf, GeoJSON with a CRS) through pyogrio.

A layer is chosen, geometries are transformed to WGS84, and a point layer gives reports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS, Transformer

from app.batch import ReportBatch
from app.io.acled import party_mapper
from app.io.cells import Chunk
from app.io.chunks import ChunkColumns, assemble, check_positions, validate_chunk
from app.io.columns import CSV_NAMES, ColumnPlan, find_column, resolve_column
from app.io.crs import fits_lonlat, is_wgs84, parse_crs, range_text
from app.io.options import ProgressFn, ReadOptions
from app.io.problems import file_problem


def _choose_layer(path: Path, wanted: str, layer: str | None) -> str | None:
    try:
        layers = pyogrio.list_layers(path)
    except Exception as exc:
        raise file_problem(path, f"cannot be read: {_gdal_message(exc)}") from None
    names = [str(row[0]) for row in layers]
    if layer is not None:
        if layer not in names:
            raise file_problem(path, f"has no layer {layer!r}; its layers: {', '.join(names)}")
        return layer
    if len(names) <= 1:
        return names[0] if names else None
    kinds = {"zones": ("Polygon", "MultiPolygon"), "reports": ("Point",)}[wanted]
    fitting = [str(row[0]) for row in layers if str(row[1]).replace(" Z", "") in kinds]
    if len(fitting) == 1:
        return fitting[0]
    listed = ", ".join(f"{row[0]} ({row[1]})" for row in layers)
    raise file_problem(path, f"has several layers ({listed}); say which with --layer")


def _gdal_message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.replace("; It might help to specify the correct driver", "")


def read_vector(
    path: Path, wanted: str, options: ReadOptions, progress: ProgressFn
) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """Attributes (without geometry), geometries in WGS84 lon/lat, and notes."""
    layer = _choose_layer(path, wanted, options.layer)
    step = f"reading {path.name}"
    progress(step, 0, None)
    try:
        frame = pyogrio.read_dataframe(path, layer=layer, datetime_as_string=True)
    except Exception as exc:
        raise file_problem(path, f"cannot be read: {_gdal_message(exc)}") from None
    progress(step, 1, 1)
    notes: list[str] = []
    geometry = np.asarray(frame.geometry.array, dtype=object) if "geometry" in frame else None
    if geometry is None:
        raise file_problem(path, "has no geometry column")
    crs = frame.crs
    bounds = shapely.total_bounds(geometry)
    if crs is None:
        if options.crs is not None:
            crs = parse_crs(options.crs, path)
        elif fits_lonlat(bounds):
            notes.append(
                f"{path.name}: declares no CRS; its coordinates fit longitudes and latitudes, "
                "so they are taken as WGS84"
            )
        else:
            raise file_problem(
                path,
                f"declares no CRS and its coordinates ({range_text(bounds)}) are not longitudes "
                "and latitudes; give the file a CRS (a .prj for a Shapefile) or pass --crs, "
                "such as --crs EPSG:32638",
            )
    if crs is not None and not is_wgs84(CRS.from_user_input(crs)):
        transformer = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        geometry = shapely.transform(
            geometry,
            lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])),
        )
        coords = shapely.get_coordinates(geometry)
        if len(coords) and not np.isfinite(coords).all():
            raise file_problem(path, f"some coordinates cannot be transformed from {crs} to WGS84")
        notes.append(f"{path.name}: transformed from {CRS.from_user_input(crs).name} to WGS84")
    attributes = pd.DataFrame(frame.drop(columns="geometry"))
    return attributes, geometry, notes


def vector_reports(path: Path, options: ReadOptions, progress: ProgressFn) -> ReportBatch:
    """Reports from a GDAL layer (GeoPackage, Shapefile, FlatGeobuf, GeoJSON with a CRS)."""
    attributes, geometry, notes = read_vector(path, "reports", options, progress)
    n = len(attributes)
    chunk = Chunk(path, attributes.reset_index(drop=True), lambda i: f"feature {i}")
    types = shapely.get_type_id(geometry) if n else np.empty(0, np.int64)
    not_point = np.flatnonzero((types != 0) | shapely.is_empty(geometry))
    if len(not_point):
        i = int(not_point[0])
        got = "no geometry" if geometry[i] is None else f"a {geometry[i].geom_type}"
        raise chunk.fail(i, f"a report must be a Point, got {got}")
    lon = shapely.get_x(geometry).astype(np.float64)
    lat = shapely.get_y(geometry).astype(np.float64)
    check_positions(chunk, lon, lat, None, projected_hint=False)
    header = [str(c) for c in attributes.columns]
    found = {
        field: resolve_column(path, header, getattr(options.columns, field, None), field)
        for field in ("time", "party", "id", "uncertainty", "unit")
    }
    if found["party"] is None:
        raise file_problem(path, f"has no party column (looked for {'/'.join(CSV_NAMES['party'])})")
    if found["time"] is None and options.default_observed_at is None:
        raise file_problem(
            path, f"has no time column (looked for {'/'.join(CSV_NAMES['time'])}); give --at"
        )
    used = {c for c in found.values() if c is not None}
    plan = ColumnPlan(
        lon="(geometry)",
        lat="(geometry)",
        party=str(found["party"]),
        time=found["time"],
        id=found["id"],
        uncertainty=found["uncertainty"],
        unit=found["unit"],
        kind=find_column(header, CSV_NAMES["kind"]),
        source=find_column(header, CSV_NAMES["source"]),
        confidence=find_column(header, CSV_NAMES["confidence"]),
        notes=find_column(header, CSV_NAMES["notes"]),
        extra=[],
    )
    used |= {c for c in (plan.kind, plan.source, plan.confidence, plan.notes) if c is not None}
    if options.keep_extra:
        plan.extra = [c for c in header if c not in used]
    out = ChunkColumns()
    step = f"validating reports of {path.name}"
    progress(step, 0, n)
    if n:
        validate_chunk(chunk, plan, options, out, None, party_mapper(None), {}, (lon, lat))
        out.labels.append(np.arange(n))
    progress(step, n, n)
    table = assemble(path, out, "feature")
    table.messages += notes
    return table
