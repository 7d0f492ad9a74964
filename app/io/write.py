"""Writing findings, zones and reports to GeoJSON, CSV or GeoPackage.

Files are written beside the target and renamed into place: a failed write leaves no half file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd
import shapely

from app.domain import Report, Zone
from app.engine import FINDING_FIELDS
from app.geojson import (
    report_to_feature,
    zone_to_feature,
)
from app.io.cells import is_missing
from app.io.formats import OutFormat, output_format
from app.io.options import ProgressFn, no_progress
from app.limits import iso_utc

Float = npt.NDArray[np.float64]


#: Features per chunk when writing GeoJSON and CSV.
WRITE_CHUNK = 100_000


#: Features per GeoPackage write: each append reopens the file and updates its spatial index.
GPKG_CHUNK = 500_000


@contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` that replaces it when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.part{os.getpid()}{path.suffix}")
    if temporary.exists():
        temporary.unlink()
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def _write_geojson(
    path: Path,
    features: Callable[[int, int], list[dict[str, Any]]],
    n: int,
    step: str,
    progress: ProgressFn,
) -> None:
    with _replacing(path) as temporary, temporary.open("wb") as handle:
        handle.write(b'{"type":"FeatureCollection","features":[\n')
        progress(step, 0, n)
        for start in range(0, n, WRITE_CHUNK):
            stop = min(n, start + WRITE_CHUNK)
            if start:
                handle.write(b",\n")
            handle.write(b",\n".join(orjson.dumps(f) for f in features(start, stop)))
            progress(step, stop, n)
        handle.write(b"\n]}\n")


def _point_wkb(lon: Float, lat: Float) -> np.ndarray:
    """WKB points (little-endian, 21 bytes each) straight from coordinates, no shapely objects."""
    n = len(lon)
    record = np.empty(n, dtype=[("order", "u1"), ("type", "<u4"), ("x", "<f8"), ("y", "<f8")])
    record["order"], record["type"], record["x"], record["y"] = 1, 1, lon, lat
    raw = record.tobytes()
    out = np.empty(n, dtype=object)
    out[:] = [raw[i : i + 21] for i in range(0, 21 * n, 21)]
    return out


def _gpkg_column(values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind in "fiub":
        return array
    out = np.empty(len(array), dtype=object)
    out[:] = [None if is_missing(v) else v for v in array.tolist()]
    return out


def _write_gpkg(
    path: Path,
    frame: pd.DataFrame,
    wkb: np.ndarray,
    layer: str,
    geometry_type: str,
    step: str,
    progress: ProgressFn,
) -> None:
    """A GeoPackage layer in WGS84, written with pyogrio's raw writer (no GeoDataFrame)."""
    from pyogrio.raw import write

    n = len(frame)
    names = [str(c) for c in frame.columns]
    with _replacing(path) as temporary:
        progress(step, 0, n)
        for start in range(0, max(n, 1), GPKG_CHUNK):
            stop = min(n, start + GPKG_CHUNK)
            write(
                str(temporary),
                wkb[start:stop],
                [_gpkg_column(frame[c].to_numpy()[start:stop]) for c in names],
                names,
                layer=layer,
                driver="GPKG",
                geometry_type=geometry_type,
                crs="EPSG:4326",
                promote_to_multi=False,
                append=start > 0,
            )
            progress(step, stop, n)


def write_findings(
    findings: pd.DataFrame,
    path: Path,
    fmt: OutFormat | None = None,
    progress: ProgressFn | None = None,
) -> None:
    """Write findings: a frame with `app.engine.FINDING_FIELDS` (observed_at UTC), `lon` and `lat`.

    GeoJSON: Point features of docs/data-model.md; CSV: lon, lat and the properties;
    GeoPackage: a Point layer "findings". `depth_m` is rounded to centimetres.
    """
    progress = progress or no_progress
    fmt = fmt or output_format(path)
    n = len(findings)
    step = f"writing {path.name}"
    observed = pd.DatetimeIndex(findings["observed_at"]).tz_convert("UTC").as_unit("ns").asi8
    table = pd.DataFrame(
        {
            "report_id": findings["report_id"].astype(object).to_numpy(),
            "zone_id": findings["zone_id"].to_numpy(object),
            "zone_name": findings["zone_name"].to_numpy(object),
            "verdict": findings["verdict"].to_numpy(object),
            "violation": findings["violation"].to_numpy(bool),
            "depth_m": np.round(findings["depth_m"].to_numpy(np.float64), 2),
            "party": findings["party"].to_numpy(object),
            "observed_at": iso_utc(observed),
        },
        columns=list(FINDING_FIELDS),
    )
    lon = findings["lon"].to_numpy(np.float64)
    lat = findings["lat"].to_numpy(np.float64)
    if fmt == "geojson":
        columns = list(table.columns)

        def features(start: int, stop: int) -> list[dict[str, Any]]:
            values = [table[c].iloc[start:stop].tolist() for c in columns]
            return [
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [x, y]},
                    "properties": dict(zip(columns, row, strict=True)),
                }
                for x, y, *row in zip(
                    lon[start:stop].tolist(), lat[start:stop].tolist(), *values, strict=True
                )
            ]

        _write_geojson(path, features, n, step, progress)
    elif fmt == "csv":
        _write_csv(
            path, pd.concat([pd.DataFrame({"lon": lon, "lat": lat}), table], axis=1), step, progress
        )
    else:
        _write_gpkg(path, table, _point_wkb(lon, lat), "findings", "Point", step, progress)


def _write_csv(path: Path, frame: pd.DataFrame, step: str, progress: ProgressFn) -> None:
    n = len(frame)
    with _replacing(path) as temporary, temporary.open("w", encoding="utf-8", newline="") as handle:
        progress(step, 0, n)
        for start in range(0, max(n, 1), WRITE_CHUNK):
            stop = min(n, start + WRITE_CHUNK)
            frame.iloc[start:stop].to_csv(
                handle, index=False, header=start == 0, lineterminator="\n"
            )
            progress(step, stop, n)


def _zone_table(zones: Sequence[Zone]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [z.id for z in zones],
            "version": np.array([z.version for z in zones], dtype=np.int64),
            "name": [z.name for z in zones],
            "kind": [z.kind.value for z in zones],
            "authorized_parties": [",".join(sorted(z.authorized_parties)) for z in zones],
            "valid_from": [z.valid_from.isoformat() for z in zones],
            "valid_to": [None if z.valid_to is None else z.valid_to.isoformat() for z in zones],
            "warning_distance_m": np.array([z.warning_distance_m for z in zones], dtype=np.float64),
            "boundary_uncertainty_m": np.array(
                [z.boundary_uncertainty_m for z in zones], dtype=np.float64
            ),
            "agreement": [z.agreement for z in zones],
            "source": [z.source for z in zones],
        }
    )


def write_zones(
    zones: Sequence[Zone],
    path: Path,
    fmt: OutFormat | None = None,
    progress: ProgressFn | None = None,
) -> None:
    """Write zone versions: GeoJSON as the API writes them, CSV with WKT, a GeoPackage layer."""
    progress = progress or no_progress
    fmt = fmt or output_format(path)
    step = f"writing {path.name}"
    if fmt == "geojson":
        _write_geojson(
            path, lambda a, b: [zone_to_feature(z) for z in zones[a:b]], len(zones), step, progress
        )
        return
    table = _zone_table(zones)
    geometry = np.array([z.geometry for z in zones], dtype=object)
    if fmt == "csv":
        table["geometry"] = shapely.to_wkt(geometry, rounding_precision=-1) if len(zones) else []
        _write_csv(path, table, step, progress)
    else:
        wkb = np.asarray(shapely.to_wkb(geometry), dtype=object)
        _write_gpkg(path, table, wkb, "zones", "Unknown", step, progress)


def write_reports(
    reports: Sequence[Report],
    path: Path,
    fmt: OutFormat | None = None,
    progress: ProgressFn | None = None,
) -> None:
    """Write reports: GeoJSON as the API writes them; CSV and GeoPackage with one column per field.

    The keys of `Report.extra` become columns after the report's fields (values that are not
    text or numbers as JSON text).
    """
    progress = progress or no_progress
    fmt = fmt or output_format(path)
    step = f"writing {path.name}"
    if fmt == "geojson":
        _write_geojson(
            path,
            lambda a, b: [report_to_feature(r) for r in reports[a:b]],
            len(reports),
            step,
            progress,
        )
        return
    columns: dict[str, Any] = {
        "id": [r.id for r in reports],
        "lon": np.array([r.lon for r in reports], dtype=np.float64),
        "lat": np.array([r.lat for r in reports], dtype=np.float64),
        "observed_at": [r.observed_at.isoformat() for r in reports],
        "party": [r.party for r in reports],
        "uncertainty_m": np.array([r.uncertainty_m for r in reports], dtype=np.float64),
        "kind": [r.kind.value for r in reports],
        "unit": [r.unit for r in reports],
        "source": [r.source for r in reports],
        "confidence": [None if r.confidence is None else r.confidence.value for r in reports],
        "notes": [r.notes for r in reports],
    }
    keys = sorted({k for r in reports for k in r.extra} - set(columns) - {"geometry"})
    for key in keys:
        columns[key] = [_cell(r.extra.get(key)) for r in reports]
    table = pd.DataFrame(columns)
    if fmt == "csv":
        _write_csv(path, table, step, progress)
    else:
        wkb = _point_wkb(table["lon"].to_numpy(np.float64), table["lat"].to_numpy(np.float64))
        _write_gpkg(
            path, table.drop(columns=["lon", "lat"]), wkb, "reports", "Point", step, progress
        )


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    return orjson.dumps(value).decode()
