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

from app.batch import ReportBatch
from app.errors import TruceError
from app.geojson import reports_from_geojson
from app.io.crs import is_wgs84
from app.io.options import ProgressFn, ReadOptions
from app.io.problems import file_problem
from app.io.rows import FileRows


def declares_other_crs(obj: Any) -> bool:
    """Whether a GeoJSON object has a legacy `crs` member naming a CRS other than WGS84."""
    crs = obj.get("crs") if isinstance(obj, Mapping) else None
    if not isinstance(crs, Mapping):
        return False
    properties = crs.get("properties")
    name = properties.get("name") if isinstance(properties, Mapping) else None
    if not isinstance(name, str):
        return False
    try:
        return not is_wgs84(CRS.from_user_input(name))
    except Exception:
        return True  # GDAL will say what it makes of it


def load_json(path: Path, progress: ProgressFn) -> Any:
    """A JSON file parsed, refused as a `FileProblem` when unreadable."""
    step = f"reading {path.name}"
    progress(step, 0, None)
    try:
        obj = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise file_problem(path, f"is not valid JSON: {exc}") from None
    except OSError as exc:
        raise file_problem(path, f"cannot be read: {exc.strerror or exc}") from None
    progress(step, 1, 1)
    return obj


def geojson_reports(path: Path, obj: Any, options: ReadOptions) -> ReportBatch:
    """The reports of a parsed GeoJSON object, named by JSON pointer ("features/3")."""
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
        raise file_problem(path, exc.detail) from None
    table = ReportBatch.from_reports(reports, FileRows(path, "features/", np.arange(len(reports))))
    bad = np.flatnonzero((np.abs(table.lat) > 90) | (np.abs(table.lon) > 180))
    if len(bad):  # the parser refused these already; kept as a guard
        raise file_problem(path, "coordinates out of range", table.where(int(bad[0])))
    if options.content_ids and any(r.id == placeholder for r in reports):
        table.ids = np.array([None if r.id == placeholder else r.id for r in reports], object)
        table.build_reports = None
        table.kind = np.array([r.kind.value for r in reports], dtype=object)
        table.source = np.array([r.source for r in reports], dtype=object)
        table.confidence = np.array(
            [None if r.confidence is None else r.confidence.value for r in reports], dtype=object
        )
        table.notes = np.array([r.notes for r in reports], dtype=object)
        keys = sorted({k for r in reports for k in r.extra})
        table.extra = {k: np.array([r.extra.get(k) for r in reports], dtype=object) for k in keys}
    return table
