"""GeoJSON files: loaded, and their reports parsed by `app.geojson` (the HTTP API's parser).

A legacy `crs` member naming another CRS than WGS84 sends the file through GDAL instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from pyproj import CRS

from app.errors import TruceError
from app.geojson import (
    reports_from_geojson,
)
from app.io.chunks import _check_limits
from app.io.crs import _is_wgs84
from app.io.errors import _problem
from app.io.options import ProgressFn, ReadOptions
from app.io.tables import ReportTable
from app.io.times import _NS_PER_US


def _declares_other_crs(obj: Any) -> bool:
    """Whether a GeoJSON object has a legacy `crs` member naming a CRS other than WGS84."""
    crs = obj.get("crs") if isinstance(obj, Mapping) else None
    if not isinstance(crs, Mapping):
        return False
    properties = crs.get("properties")
    name = properties.get("name") if isinstance(properties, Mapping) else None
    if not isinstance(name, str):
        return False
    try:
        return not _is_wgs84(CRS.from_user_input(name))
    except Exception:
        return True  # GDAL will say what it makes of it


def _load_json(path: Path, progress: ProgressFn) -> Any:
    step = f"reading {path.name}"
    progress(step, 0, None)
    try:
        obj = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise _problem(path, f"is not valid JSON: {exc}") from None
    except OSError as exc:
        raise _problem(path, f"cannot be read: {exc.strerror or exc}") from None
    progress(step, 1, 1)
    return obj


def _geojson_reports(path: Path, obj: Any, options: ReadOptions) -> ReportTable:
    placeholder = "\x00"

    def assign(index: int | None) -> str:
        if options.content_ids:
            return placeholder
        return str(0 if index is None else index)

    try:
        reports = reports_from_geojson(
            obj, default_observed_at=options.default_observed_at, assign_id=assign
        )
    except TruceError as exc:
        raise _problem(path, exc.detail) from None
    table = ReportTable.from_reports(path, reports)
    _check_limits(path, table.time_ns // _NS_PER_US, table.uncertainty_m, table.where)
    bad = np.flatnonzero((np.abs(table.lat) > 90) | (np.abs(table.lon) > 180))
    if len(bad):  # the parser refused these already; kept as a guard
        raise _problem(path, "coordinates out of range", table.where(int(bad[0])))
    if options.content_ids and any(r.id == placeholder for r in reports):
        table.ids = np.array([None if r.id == placeholder else r.id for r in reports], object)
        table.parsed = None
        table.kind = np.array([r.kind.value for r in reports], dtype=object)
        table.source = np.array([r.source for r in reports], dtype=object)
        table.confidence = np.array(
            [None if r.confidence is None else r.confidence.value for r in reports], dtype=object
        )
        table.notes = np.array([r.notes for r in reports], dtype=object)
        keys = sorted({k for r in reports for k in r.extra})
        table.extra = {k: np.array([r.extra.get(k) for r in reports], dtype=object) for k in keys}
    return table
