"""Files in and out: zones and reports from the files analysts have, findings and data back out.

Reading (`read_zones`, `read_reports`), by the file's extension:

- GeoJSON (`.geojson`, `.json`): through `app.geojson`, the parser of the HTTP API, so the
  messages name the same paths ("features/3/properties/valid_from"). A legacy `crs` member that
  names another CRS than WGS84 sends the file through GDAL instead, to be transformed.
- GeoPackage (`.gpkg`), Shapefile (`.shp`), FlatGeobuf (`.fgb`): through pyogrio. A layer is
  chosen by `layer=`, else the only layer, else the only one of the right geometry (polygons for
  zones, points for reports). Shapefile field names cut to 10 characters ("authorized",
  "warning_di") are recognised. Zones get the same validation as GeoJSON zones, with a vectorised
  fast path that accepts only what the GeoJSON validation would accept unchanged.
- CSV (`.csv`, `.tsv`, `.txt`), read in chunks and validated column by column with numpy, never
  row by row: columns are found by common names (`CSV_NAMES`: lon/lng/longitude/x,
  lat/latitude/y, observed_at/time/date/..., party/actor, ...) unless named by `CsvColumns`. The
  first bad row is named as a spreadsheet shows it: the header is row 1, the first data row row 2
  (a quoted field that spans lines shifts the count). Zones can be read from a CSV with a WKT
  `geometry` (or `wkt`) column, as `write_zones` writes them.
- ACLED exports: a CSV with ACLED's columns (`ACLED_COLUMNS`; recognised by `event_id_cnty`,
  `event_date`, `actor1`, `latitude`, `longitude`). See `read_reports` for how its columns become
  reports, and `ACLED_UNCERTAINTY_M` for the radii given to `geo_precision`.

Coordinate reference systems: whatever CRS a file declares is transformed to WGS84 lon/lat
(vertices are transformed; edges are then straight in lon/lat, as RFC 7946 draws them). A file
that declares none is taken as WGS84 only when its coordinates fit (longitudes in [-180, 180],
latitudes in [-90, 90]); otherwise it is refused, unless `crs=` says what it is. CSV coordinates
are WGS84 unless `crs=` is given.

Every problem is a `FileProblem`: one line naming the file, the row or feature, and what is wrong.

Writing (`write_findings`, `write_zones`, `write_reports`) to GeoJSON, CSV or GeoPackage. Files
are written beside the target and renamed into place, so a failed write leaves no half file.
Times are ISO 8601 text with their offset in every format: a GeoPackage DateTime keeps only
milliseconds, which would change report times on a round trip. Zone geometries go to CSV as WKT
with every digit, and zone `authorized_parties` as codes joined by commas.
"""

from __future__ import annotations

import csv
import dataclasses
import fnmatch
import hashlib
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import mapping

from app.domain import Confidence, Report, ReportKind, Zone
from app.errors import InvalidInput, TruceError
from app.geojson import (
    report_to_feature,
    reports_from_geojson,
    zone_from_feature,
    zone_to_feature,
)
from app.service import (
    MAX_DISTANCE_M,
    MAX_TIME,
    MAX_US,
    MIN_TIME,
    MIN_US,
    check_zone,
    parse_zones,
    to_us,
)

__all__ = [
    "ACLED_COLUMNS",
    "ACLED_KINDS",
    "ACLED_UNCERTAINTY_M",
    "CSV_NAMES",
    "FINDINGS_COLUMNS",
    "OUT_FORMATS",
    "CsvColumns",
    "FileProblem",
    "ProgressFn",
    "ReadOptions",
    "ReportTable",
    "input_format",
    "output_format",
    "parse_party_map",
    "read_reports",
    "read_zones",
    "write_findings",
    "write_reports",
    "write_zones",
]

Float = npt.NDArray[np.float64]
#: Called as `progress(step, done, total)` while a step runs; `total` None when unknown.
ProgressFn = Callable[[str, int, int | None], None]
InFormat = Literal["geojson", "gpkg", "shp", "fgb", "csv"]
OutFormat = Literal["geojson", "csv", "gpkg"]

OUT_FORMATS: tuple[OutFormat, ...] = ("geojson", "csv", "gpkg")
_IN_SUFFIXES: dict[str, InFormat] = {
    ".geojson": "geojson",
    ".json": "geojson",
    ".gpkg": "gpkg",
    ".shp": "shp",
    ".fgb": "fgb",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
}
_OUT_SUFFIXES: dict[str, OutFormat] = {
    ".geojson": "geojson",
    ".json": "geojson",
    ".csv": "csv",
    ".gpkg": "gpkg",
}
_FORMAT_NAMES = {
    "geojson": "GeoJSON",
    "gpkg": "GeoPackage",
    "shp": "Shapefile",
    "fgb": "FlatGeobuf",
    "csv": "CSV",
}

#: Rows per CSV chunk: large enough for numpy to pay off, small enough to show progress.
CHUNK_ROWS = 200_000
#: Features per chunk when writing GeoJSON and CSV.
WRITE_CHUNK = 100_000
#: Features per GeoPackage write: each append reopens the file and updates its spatial index.
GPKG_CHUNK = 500_000
_NS_PER_US = 1000

#: Column names looked for in a CSV (and in the attribute table of a point file), first match
#: wins, compared without letter case and surrounding spaces.
CSV_NAMES: dict[str, tuple[str, ...]] = {
    "lon": ("lon", "lng", "long", "longitude", "x"),
    "lat": ("lat", "latitude", "y"),
    "time": (
        "observed_at",
        "observed_a",  # observed_at cut to 10 characters in a Shapefile
        "time",
        "datetime",
        "date",
        "timestamp",
        "observed",
        "when",
    ),
    "party": ("party", "actor"),
    "id": ("id", "report_id"),
    "uncertainty": (
        "uncertainty_m",
        "uncertainty",
        "uncertaint",  # cut to 10 characters in a Shapefile
        "radius_m",
        "accuracy_m",
        "accuracy",
    ),
    "unit": ("unit", "unit_id", "track"),
    "kind": ("kind",),
    "source": ("source",),
    "confidence": ("confidence",),
    "notes": ("notes", "note", "description"),
}

#: The 31 columns of an ACLED CSV export.
ACLED_COLUMNS: tuple[str, ...] = (
    "event_id_cnty",
    "event_date",
    "year",
    "time_precision",
    "disorder_type",
    "event_type",
    "sub_event_type",
    "actor1",
    "assoc_actor_1",
    "inter1",
    "actor2",
    "assoc_actor_2",
    "inter2",
    "interaction",
    "civilian_targeting",
    "iso",
    "region",
    "country",
    "admin1",
    "admin2",
    "admin3",
    "location",
    "latitude",
    "longitude",
    "geo_precision",
    "source",
    "source_scale",
    "notes",
    "fatalities",
    "tags",
    "timestamp",
)
_ACLED_REQUIRED = (
    "event_id_cnty",
    "event_date",
    "actor1",
    "latitude",
    "longitude",
    "geo_precision",
)
_ACLED_MARKERS = frozenset({"event_id_cnty", "event_date", "actor1", "latitude", "longitude"})

#: ACLED `geo_precision` to an uncertainty radius in metres. ACLED's codebook: 1 = the event's
#: town or village is known and its coordinates are used; 2 = the event was near a town or in a
#: part of a region, and the nearest town's coordinates are used; 3 = only a larger region is
#: known (a province), and its capital's coordinates are used. The radii are ours: 2 km covers a
#: village or small town, 10 km the surroundings of a town, 50 km a province of the region
#: (Karabakh's districts are 30-60 km across). They are deliberately generous: a radius too small
#: would turn a vague report into a sure `inside`.
ACLED_UNCERTAINTY_M: dict[int, float] = {1: 2_000.0, 2: 10_000.0, 3: 50_000.0}

#: ACLED `sub_event_type` to a report kind; any other is `other`.
ACLED_KINDS: dict[str, ReportKind] = {
    "armed clash": ReportKind.TROOPS,
    "government regains territory": ReportKind.TROOPS,
    "non-state actor overtakes territory": ReportKind.TROOPS,
    "non-violent transfer of territory": ReportKind.TROOPS,
    "shelling/artillery/missile attack": ReportKind.ARTILLERY,
    "air/drone strike": ReportKind.STRIKE,
    "remote explosive/landmine/ied": ReportKind.STRIKE,
    "grenade": ReportKind.STRIKE,
    "headquarters or base established": ReportKind.FORTIFICATION,
}

#: Columns of the findings written by `write_findings` (CSV adds lon and lat first).
FINDINGS_COLUMNS = [
    "report_id",
    "zone_id",
    "zone_name",
    "verdict",
    "violation",
    "depth_m",
    "party",
    "observed_at",
]
_ZONE_FIELDS: dict[str, tuple[str, ...]] = {
    "id": ("id", "zone_id"),
    "name": ("name",),
    "kind": ("kind",),
    "authorized_parties": ("authorized_parties", "authorized", "parties"),
    "valid_from": ("valid_from", "valid_fro"),
    "valid_to": ("valid_to",),
    "warning_distance_m": ("warning_distance_m", "warning_di", "warning_m"),
    "agreement": ("agreement",),
    "source": ("source",),
    "version": ("version",),
}
_WKT_NAMES = ("geometry", "wkt", "geom", "the_geom")
_TRIANGLE = {"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]]}


class FileProblem(InvalidInput):
    """A file that cannot be read as asked: the message names the file, the row and the problem."""

    title = "Unreadable file"


def _problem(path: Path, message: str, where: str | None = None) -> FileProblem:
    return FileProblem(f"{path.name}: {where}: {message}" if where else f"{path.name}: {message}")


def _no_progress(step: str, done: int, total: int | None) -> None:
    return None


@dataclasses.dataclass(frozen=True)
class CsvColumns:
    """Names of the CSV columns to use, overriding the names looked for in `CSV_NAMES`."""

    lon: str | None = None
    lat: str | None = None
    time: str | None = None
    party: str | None = None
    id: str | None = None
    uncertainty: str | None = None
    unit: str | None = None


@dataclasses.dataclass(frozen=True)
class ReadOptions:
    """How to read a file of reports or zones.

    - `columns`: CSV column names to use instead of the common names;
    - `crs`: the CRS of coordinates in a file that declares none (a CSV's x/y, a Shapefile
      without .prj), e.g. "EPSG:32638";
    - `layer`: the layer of a GeoPackage (or other multi-layer file);
    - `party_map`: ACLED `actor1` names (or fnmatch patterns such as "Military Forces of
      Azerbaijan*") to party codes; actors not in it keep their name as their party;
    - `default_observed_at`: the time of reports that have none (no time column, an empty
      cell, a feature without `observed_at`); without it they are refused;
    - `timezone`: the zone (IANA name or "+04:00") of times written without a UTC offset;
      without it such times are refused;
    - `keep_extra`: keep the other columns as `Report.extra` (for storing, not for checking);
    - `content_ids`: give reports without an id one derived from their content (so importing a
      file twice stores it once) instead of their row ("row-7") or feature number.
    """

    columns: CsvColumns = CsvColumns()
    crs: str | None = None
    layer: str | None = None
    party_map: Mapping[str, str] | None = None
    default_observed_at: datetime | None = None
    timezone: str | None = None
    keep_extra: bool = False
    content_ids: bool = False


# --- formats and sniffing -------------------------------------------------------------------------


def input_format(path: Path) -> InFormat:
    """The format of an input file, from its extension."""
    found = _IN_SUFFIXES.get(path.suffix.lower())
    if found is None:
        known = ", ".join(sorted(_IN_SUFFIXES))
        raise _problem(path, f"unknown file type {path.suffix or '(no extension)'!r}; use {known}")
    return found


def output_format(path: Path, fmt: str | None = None) -> OutFormat:
    """The format to write: `fmt` when given, else from the extension of `path`."""
    if fmt is not None:
        name = fmt.lower().lstrip(".")
        if name == "json":
            name = "geojson"
        for known in OUT_FORMATS:
            if name == known:
                return known
        raise FileProblem(f"unknown output format {fmt!r}; use one of {', '.join(OUT_FORMATS)}")
    found = _OUT_SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise _problem(
            path,
            f"cannot tell the output format from {path.suffix or 'no extension'!r}; "
            "use .geojson, .csv or .gpkg, or give the format",
        )
    return found


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"SQLite format 3\x00", "a SQLite database (such as a GeoPackage)"),
    (b"fgb\x03", "a FlatGeobuf file"),
    (b"\x00\x00\x27\x0a", "a Shapefile"),
    (b"PK\x03\x04", "a ZIP archive (or an .xlsx or .docx document)"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office document (.xls, .doc)"),
)
_EXPECTED_MAGIC: dict[str, bytes] = {
    "gpkg": b"SQLite format 3\x00",
    "fgb": b"fgb\x03",
    "shp": b"\x00\x00\x27\x0a",
}


def _looks_like(head: bytes) -> str:
    """What the first bytes of a file look like, for messages."""
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if b"\x00" in head:
        return "binary data"
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text[:1] in (b"{", b"["):
        return "JSON text"
    return "text"


def _sniff(path: Path, fmt: InFormat) -> bytes:
    """Refuse a missing or empty file, or one whose content is not what its extension says."""
    if not path.exists():
        raise _problem(path, "no such file")
    if path.is_dir():
        raise _problem(path, "is a directory, not a file")
    try:
        with path.open("rb") as handle:
            head = handle.read(65536)
    except OSError as exc:
        raise _problem(path, f"cannot be read: {exc.strerror or exc}") from None
    if not head.strip(b" \t\r\n\xef\xbb\xbf"):
        raise _problem(path, "the file is empty")
    what = _looks_like(head)
    name = _FORMAT_NAMES[fmt]
    magic = _EXPECTED_MAGIC.get(fmt)
    if magic is not None and not head.startswith(magic):
        raise _problem(path, f"is not a {name} file: it looks like {what}")
    if fmt == "geojson" and what != "JSON text":
        raise _problem(path, f"is not a GeoJSON file: it looks like {what}")
    if fmt == "csv" and what not in ("text", "JSON text"):
        raise _problem(path, f"is not a CSV file: it looks like {what}")
    if fmt == "csv" and what == "JSON text":
        raise _problem(path, "is not a CSV file: it looks like JSON text (name it .geojson?)")
    return head


# --- CRS ------------------------------------------------------------------------------------------


def _is_wgs84(crs: CRS) -> bool:
    try:
        return crs.to_epsg() == 4326 or crs.equals(CRS.from_user_input("OGC:CRS84"))
    except Exception:  # pyproj may fail on exotic definitions; transform them then
        return False


def _parse_crs(value: str, path: Path) -> CRS:
    try:
        return CRS.from_user_input(value)
    except Exception as exc:
        raise _problem(path, f"unknown CRS {value!r}: {exc}") from None


def _fits_lonlat(bounds: Sequence[float]) -> bool:
    minx, miny, maxx, maxy = (float(b) for b in bounds)
    if not all(math.isfinite(b) for b in (minx, miny, maxx, maxy)):
        return True  # nothing to judge by (no features): nothing to transform either
    return -180.0 <= minx <= maxx <= 180.0 and -90.0 <= miny <= maxy <= 90.0


def _range_text(bounds: Sequence[float]) -> str:
    minx, miny, maxx, maxy = (float(b) for b in bounds)
    return f"x {minx:.6g} to {maxx:.6g}, y {miny:.6g} to {maxy:.6g}"


# --- vector files (GeoPackage, Shapefile, FlatGeobuf, GeoJSON with a CRS) -------------------------


def _choose_layer(path: Path, wanted: str, layer: str | None) -> str | None:
    try:
        layers = pyogrio.list_layers(path)
    except Exception as exc:
        raise _problem(path, f"cannot be read: {_gdal_message(exc)}") from None
    names = [str(row[0]) for row in layers]
    if layer is not None:
        if layer not in names:
            raise _problem(path, f"has no layer {layer!r}; its layers: {', '.join(names)}")
        return layer
    if len(names) <= 1:
        return names[0] if names else None
    kinds = {"zones": ("Polygon", "MultiPolygon"), "reports": ("Point",)}[wanted]
    fitting = [str(row[0]) for row in layers if str(row[1]).replace(" Z", "") in kinds]
    if len(fitting) == 1:
        return fitting[0]
    listed = ", ".join(f"{row[0]} ({row[1]})" for row in layers)
    raise _problem(path, f"has several layers ({listed}); say which with --layer")


def _gdal_message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.replace("; It might help to specify the correct driver", "")


def _read_vector(
    path: Path, wanted: str, options: ReadOptions, progress: ProgressFn
) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """Attributes (without geometry), geometries in WGS84 lon/lat, and notes."""
    layer = _choose_layer(path, wanted, options.layer)
    step = f"reading {path.name}"
    progress(step, 0, None)
    try:
        frame = pyogrio.read_dataframe(path, layer=layer, datetime_as_string=True)
    except Exception as exc:
        raise _problem(path, f"cannot be read: {_gdal_message(exc)}") from None
    progress(step, 1, 1)
    notes: list[str] = []
    geometry = np.asarray(frame.geometry.array, dtype=object) if "geometry" in frame else None
    if geometry is None:
        raise _problem(path, "has no geometry column")
    crs = frame.crs
    bounds = shapely.total_bounds(geometry)
    if crs is None:
        if options.crs is not None:
            crs = _parse_crs(options.crs, path)
        elif _fits_lonlat(bounds):
            notes.append(
                f"{path.name}: declares no CRS; its coordinates fit longitudes and latitudes, "
                "so they are taken as WGS84"
            )
        else:
            raise _problem(
                path,
                f"declares no CRS and its coordinates ({_range_text(bounds)}) are not longitudes "
                "and latitudes; give the file a CRS (a .prj for a Shapefile) or pass --crs, "
                "such as --crs EPSG:32638",
            )
    if crs is not None and not _is_wgs84(CRS.from_user_input(crs)):
        transformer = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        geometry = shapely.transform(
            geometry,
            lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])),
        )
        coords = shapely.get_coordinates(geometry)
        if len(coords) and not np.isfinite(coords).all():
            raise _problem(path, f"some coordinates cannot be transformed from {crs} to WGS84")
        notes.append(f"{path.name}: transformed from {CRS.from_user_input(crs).name} to WGS84")
    attributes = pd.DataFrame(frame.drop(columns="geometry"))
    return attributes, geometry, notes


# --- zones ----------------------------------------------------------------------------------------


def read_zones(
    path: Path, options: ReadOptions | None = None, progress: ProgressFn | None = None
) -> tuple[list[Zone], list[str]]:
    """Zones (every version in the file) and notes on what was repaired, assumed or transformed.

    Zones are validated as the HTTP API validates them (`app.geojson.zone_from_feature` and the
    service's limits); a file with no zone is refused.

    Raises:
        FileProblem: naming the file, the feature or row, and the problem.
    """
    options = options or ReadOptions()
    progress = progress or _no_progress
    fmt = input_format(path)
    _sniff(path, fmt)
    if fmt == "geojson":
        obj = _load_json(path, progress)
        if not _declares_other_crs(obj):
            try:
                zones, notes = parse_zones(obj)
            except TruceError as exc:
                raise _problem(path, exc.detail) from None
            return zones, [f"{path.name}: {note}" for note in notes]
    if fmt == "csv":
        attributes, geometry, notes = _read_wkt_csv(path, options, progress)
        where = "row"
        labels = np.arange(len(attributes)) + 2
    else:
        attributes, geometry, notes = _read_vector(path, "zones", options, progress)
        where = "feature"
        labels = np.arange(len(attributes))
    if not len(attributes):
        raise _problem(path, "has no zone (no features)")
    zones, more = _zones_from_table(path, attributes, geometry, where, labels, progress)
    return zones, notes + more


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


def _read_wkt_csv(
    path: Path, options: ReadOptions, progress: ProgressFn
) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """Zones from a CSV with a WKT geometry column (as `write_zones` writes it)."""
    delimiter, header = _csv_header(path)
    lookup = {name.strip().lower(): name for name in header}
    column = next((lookup[n] for n in _WKT_NAMES if n in lookup), None)
    if column is None:
        raise _problem(
            path, f"has no geometry column for zones: expected one of {', '.join(_WKT_NAMES)} (WKT)"
        )
    progress(f"reading {path.name}", 0, None)
    try:
        numeric = {"warning_distance_m", "warning_di", "warning_m", "version"}
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
        raise _problem(path, f"cannot be read as CSV: {exc}") from None
    progress(f"reading {path.name}", 1, 1)
    text = frame[column].to_numpy(object)
    geometry = np.empty(len(text), dtype=object)
    for i, value in enumerate(text.tolist()):
        if not isinstance(value, str):
            raise _problem(path, f"column {column!r} is empty", f"row {i + 2}")
        try:
            geometry[i] = shapely.from_wkt(value)
        except shapely.errors.GEOSException as exc:
            raise _problem(path, f"column {column!r}: not WKT: {exc}", f"row {i + 2}") from None
    notes: list[str] = []
    if options.crs is not None:
        crs = _parse_crs(options.crs, path)
        if not _is_wgs84(crs):
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


def _plain(value: Any) -> Any:
    """A table cell as a JSON-like value: NaN and NaT to None, numpy scalars to Python."""
    if value is None:
        return None
    if isinstance(value, float | np.floating) and math.isnan(float(value)):
        return None
    if value is pd.NaT:
        return None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def _timestamp_value(value: Any) -> Any:
    """A time cell as an aware datetime when it is one, else as it is (for the message)."""
    value = _plain(value)
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
    value = _plain(value)
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
        return [_plain(v) for v in value]
    return value


def _id_value(value: Any) -> Any:
    value = _plain(value)
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
        field: [converters.get(field, _plain)(v) for v in attributes[column].tolist()]
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
            raise _problem(path, "has no geometry; a zone needs a Polygon or MultiPolygon", at)
        else:
            feature["geometry"] = mapping(geometry[i])
        try:
            zone, zone_notes = zone_from_feature(feature)
            if good is not None:
                zone = dataclasses.replace(zone, geometry=good)
            check_zone(zone)
        except TruceError as exc:
            raise _problem(path, _table_detail(exc), at) from None
        first = seen.setdefault((zone.id, zone.version), i)
        if first != i:
            raise _problem(
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
    (the antimeridian), valid by GEOS, and every polygon of positive area. The result is
    oriented as the validation orients it (exteriors counter-clockwise). Anything else goes
    through the full validation, which repairs it or says exactly what is wrong.
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
        found[int(idx[j])] = shapely.orient_polygons(geoms[j], exterior_cw=False)
    return found


# --- reports --------------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class ReportTable:
    """Validated reports as columns, in file order, with where each came from (for messages).

    `frame()` is what `ZoneIndex.check` takes; `reports()` builds domain reports for storing.
    """

    path: Path
    lon: Float
    lat: Float
    time_ns: npt.NDArray[np.int64]
    uncertainty_m: Float
    party: np.ndarray
    unit: np.ndarray
    ids: np.ndarray | None
    labels: np.ndarray
    label: str
    kind: np.ndarray | None = None
    source: np.ndarray | None = None
    confidence: np.ndarray | None = None
    notes: np.ndarray | None = None
    extra: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    parsed: list[Report] | None = None
    messages: list[str] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lon)

    def where(self, i: int) -> str:
        """Where report `i` is in its file: "row 7", "feature 3" or "features/3"."""
        if self.label == "features/":
            return f"features/{self.labels[i]}"
        return f"{self.label} {self.labels[i]}"

    def report_ids(self, idx: np.ndarray) -> np.ndarray:
        """The ids of reports `idx` (for a file without ids: "row-7", "feature-3")."""
        if self.ids is not None:
            return np.asarray(self.ids[idx], dtype=object)
        prefix = "row-" if self.label == "row" else "feature-"
        return np.array([f"{prefix}{n}" for n in self.labels[idx].tolist()], dtype=object)

    def frame(self, start: int = 0, stop: int | None = None) -> pd.DataFrame:
        """Reports `start:stop` as the input frame of `ZoneIndex.check` (without ids)."""
        window = slice(start, stop)
        ns = self.time_ns[window]
        return pd.DataFrame(
            {
                "lon": self.lon[window],
                "lat": self.lat[window],
                "observed_at": pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize("UTC"),
                "uncertainty_m": self.uncertainty_m[window],
                "party": self.party[window],
                "unit": self.unit[window],
            }
        )

    def ensure_content_ids(self) -> None:
        """Give reports without an id one derived from their content ("h-" and 20 hex digits)."""
        if self.ids is not None and not any(v is None for v in self.ids.tolist()):
            return
        iso = _iso_utc(self.time_ns)
        made = np.empty(len(self), dtype=object)
        columns = [self.party, iso, self.lon, self.lat, self.uncertainty_m, self.unit]
        for extra in (self.kind, self.source, self.notes):
            if extra is not None:
                columns.append(extra)
        for i, row in enumerate(zip(*(c.tolist() for c in columns), strict=True)):
            digest = hashlib.sha256(repr(row).encode("utf-8")).hexdigest()
            made[i] = f"h-{digest[:20]}"
        if self.ids is None:
            self.ids = made
        else:
            given = np.asarray(self.ids, dtype=object)
            missing = np.array([v is None for v in given.tolist()], dtype=bool)
            self.ids = np.where(missing, made, given)

    def reports(self, start: int = 0, stop: int | None = None) -> list[Report]:
        """Reports `start:stop` as domain reports (ids must be set: see `ensure_content_ids`)."""
        if self.parsed is not None:
            return self.parsed[start:stop]
        window = slice(start, stop)
        n = len(self.lon[window])
        ids = self.report_ids(np.arange(len(self))[window])
        stamps = pd.DatetimeIndex(self.time_ns[window].view("M8[ns]")).tz_localize("UTC")

        def column(values: np.ndarray | None) -> list[Any]:
            return [None] * n if values is None else values[window].tolist()

        extras = {name: values[window].tolist() for name, values in self.extra.items()}
        kinds, confidences = column(self.kind), column(self.confidence)
        out = []
        for i, (rid, party, when, lon, lat, u, unit, source, notes) in enumerate(
            zip(
                ids.tolist(),
                self.party[window].tolist(),
                stamps.to_pydatetime().tolist(),
                self.lon[window].tolist(),
                self.lat[window].tolist(),
                self.uncertainty_m[window].tolist(),
                self.unit[window].tolist(),
                column(self.source),
                column(self.notes),
                strict=True,
            )
        ):
            extra = {k: v[i] for k, v in extras.items() if v[i] is not None}
            out.append(
                Report(
                    id=rid,
                    party=party,
                    observed_at=when,
                    lon=lon,
                    lat=lat,
                    uncertainty_m=u,
                    kind=ReportKind.OTHER if kinds[i] is None else ReportKind(kinds[i]),
                    unit=unit,
                    source=source,
                    confidence=None if confidences[i] is None else Confidence(confidences[i]),
                    notes=notes,
                    extra=extra,
                )
            )
        return out

    @classmethod
    def from_reports(cls, path: Path, reports: Sequence[Report]) -> ReportTable:
        """A table over reports already parsed (GeoJSON), labelled by feature index."""
        us = np.array([to_us(r.observed_at) for r in reports], dtype=np.int64)
        return cls(
            path=path,
            lon=np.array([r.lon for r in reports], dtype=np.float64),
            lat=np.array([r.lat for r in reports], dtype=np.float64),
            time_ns=us * _NS_PER_US,
            uncertainty_m=np.array([r.uncertainty_m for r in reports], dtype=np.float64),
            party=np.array([r.party for r in reports], dtype=object),
            unit=np.array([r.unit for r in reports], dtype=object),
            ids=np.array([r.id for r in reports], dtype=object),
            labels=np.arange(len(reports)),
            label="features/",
            parsed=list(reports),
        )


_STRINGS = np.dtypes.StringDType(na_object=None)


def read_reports(
    path: Path, options: ReadOptions | None = None, progress: ProgressFn | None = None
) -> ReportTable:
    """Reports from a file, validated as the HTTP API validates them.

    For a CSV, columns are found by `CSV_NAMES` or by `options.columns`; `lon`, `lat` and
    `party` are required, and so is the time unless `options.default_observed_at` is given.
    Times need a UTC offset unless `options.timezone` says which zone they are in.

    For an ACLED export:

    - `event_id_cnty` is the report id;
    - `event_date` (ISO "2022-03-24" or ACLED's "24 March 2022") is `observed_at`, taken as
      midnight UTC of that day; ACLED gives no time of day, and its `time_precision` (1 = the
      day, 2 = the week, 3 = the month is known) is kept with the report;
    - `actor1` is the party, through `options.party_map` (actors not in the map keep their name,
      and a note lists them);
    - `geo_precision` 1 / 2 / 3 gives `uncertainty_m` by `ACLED_UNCERTAINTY_M` (2 / 10 / 50 km);
    - `sub_event_type` gives the kind by `ACLED_KINDS`; `source` and `notes` are the report's;
    - `fatalities` (and, with `keep_extra`, every other column) is kept in `Report.extra`.

    Raises:
        FileProblem: naming the file, the row or feature, and the problem.
    """
    options = options or ReadOptions()
    progress = progress or _no_progress
    fmt = input_format(path)
    _sniff(path, fmt)
    if fmt == "csv":
        table = _read_csv_reports(path, options, progress)
    elif fmt == "geojson":
        obj = _load_json(path, progress)
        if _declares_other_crs(obj):
            table = _vector_reports(path, options, progress)
        else:
            table = _geojson_reports(path, obj, options)
    else:
        table = _vector_reports(path, options, progress)
    if options.content_ids:
        table.ensure_content_ids()
    return table


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


def _check_limits(
    path: Path, us: np.ndarray, uncertainty: np.ndarray, where: Callable[[int], str]
) -> None:
    """Refuse the first time or uncertainty that the service cannot hold, as the API does."""
    bad_time = (us < MIN_US) | (us >= MAX_US)
    bad_u = uncertainty > MAX_DISTANCE_M
    bad = np.flatnonzero(bad_time | bad_u)
    if not len(bad):
        return
    i = int(bad[0])
    if bad_time[i]:
        raise _problem(
            path,
            f"observed_at is out of the supported range [{MIN_TIME.date()}, {MAX_TIME.date()})",
            where(i),
        )
    raise _problem(
        path,
        f"uncertainty_m must be at most {MAX_DISTANCE_M:.0f} m (half the equator), "
        f"got {uncertainty[i]:g}",
        where(i),
    )


# --- CSV ------------------------------------------------------------------------------------------


def _csv_header(path: Path) -> tuple[str, list[str]]:
    """The delimiter and the column names of a CSV file."""
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as handle:
            first = handle.readline()
    except UnicodeDecodeError as exc:
        raise _problem(path, f"is not UTF-8 text (byte {exc.start} of the first line)") from None
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    delimiter = max(counts, key=lambda d: counts[d])
    if counts[delimiter] == 0:
        delimiter = ","
    header = next(csv.reader([first], delimiter=delimiter), [])
    header = [name.strip() for name in header]
    if not any(header):
        raise _problem(path, "has no header row: the first line must name the columns")
    return delimiter, header


def _find_column(header: Sequence[str], names: Sequence[str]) -> str | None:
    lookup: dict[str, str] = {}
    for name in header:
        lookup.setdefault(name.strip().lower(), name)
    for name in names:
        if name in lookup:
            return lookup[name]
    return None


def _resolve(path: Path, header: Sequence[str], given: str | None, field: str) -> str | None:
    if given is not None:
        found = _find_column(header, [given.strip().lower()])
        if found is None:
            raise _problem(
                path,
                f"has no column {given!r} (given for {field}); its columns: {', '.join(header)}",
            )
        return found
    return _find_column(header, CSV_NAMES[field])


class _Interner:
    """Maps the values of many chunks to one shared object per distinct value (less memory)."""

    def __init__(self) -> None:
        self.codes: dict[Any, int] = {}
        self.values: list[Any] = []

    def add(self, values: np.ndarray) -> npt.NDArray[np.int32]:
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        mapped = np.empty(len(uniques), dtype=np.int32)
        for j, value in enumerate(uniques.tolist()):
            key = None if _missing(value) else value
            code = self.codes.get(key)
            if code is None:
                code = self.codes[key] = len(self.values)
                self.values.append(key)
            mapped[j] = code
        return mapped[codes]

    def take(self, codes: Sequence[np.ndarray]) -> np.ndarray:
        table = np.empty(len(self.values), dtype=object)
        table[:] = self.values
        joined = np.concatenate(codes) if codes else np.empty(0, np.int32)
        return np.asarray(table[joined], dtype=object)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


@dataclasses.dataclass
class _Plan:
    """Which CSV column gives which report field, and how."""

    lon: str
    lat: str
    party: str
    time: str | None
    id: str | None
    uncertainty: str | None
    unit: str | None
    kind: str | None
    source: str | None
    confidence: str | None
    notes: str | None
    extra: list[str]
    acled: bool = False
    geo_precision: str | None = None
    numeric_extra: frozenset[str] = frozenset()

    def columns(self) -> list[str]:
        named = [
            self.lon,
            self.lat,
            self.party,
            self.time,
            self.id,
            self.uncertainty,
            self.unit,
            self.kind,
            self.source,
            self.confidence,
            self.notes,
            self.geo_precision,
            *self.extra,
        ]
        return list(dict.fromkeys(c for c in named if c is not None))


def _csv_plan(path: Path, header: list[str], options: ReadOptions) -> _Plan:
    lowered = {name.strip().lower() for name in header}
    given = options.columns
    if lowered >= _ACLED_MARKERS:
        missing = [c for c in _ACLED_REQUIRED if c not in lowered]
        if missing:
            raise _problem(
                path, f"looks like an ACLED export but lacks column(s) {', '.join(missing)}"
            )

        def col(name: str) -> str | None:
            return _find_column(header, [name])

        named = {"event_id_cnty", "event_date", "actor1", "latitude", "longitude"}
        named |= {"geo_precision", "source", "notes", "sub_event_type"}
        kept = ["fatalities", "time_precision", "event_type", "sub_event_type", "actor1"]
        extra = [c for c in header if c.strip().lower() not in named or c in kept]
        if not options.keep_extra:  # checking needs none of them
            extra = []
        return _Plan(
            lon=col("longitude") or "longitude",
            lat=col("latitude") or "latitude",
            party=col("actor1") or "actor1",
            time=col("event_date"),
            id=col("event_id_cnty"),
            uncertainty=None,
            unit=None,
            kind=col("sub_event_type"),
            source=col("source"),
            confidence=None,
            notes=col("notes"),
            extra=list(dict.fromkeys(extra)),
            acled=True,
            geo_precision=col("geo_precision"),
            numeric_extra=frozenset(
                c for c in extra if c.strip().lower() in ("fatalities", "time_precision")
            ),
        )
    found = {
        field: _resolve(path, header, getattr(given, field), field)
        for field in ("lon", "lat", "time", "party", "id", "uncertainty", "unit")
    }
    for field, what in (("lon", "longitude"), ("lat", "latitude"), ("party", "party")):
        if found[field] is None:
            names = "/".join(CSV_NAMES[field])
            option = {"lon": "--lon-column", "lat": "--lat-column", "party": "--party-column"}
            raise _problem(
                path,
                f"has no {what} column (looked for {names}; name it with {option[field]}); "
                f"its columns: {', '.join(header)}",
            )
    if found["time"] is None and options.default_observed_at is None:
        raise _problem(
            path,
            f"has no time column (looked for {'/'.join(CSV_NAMES['time'])}; name it with "
            f"--time-column, or give --at for every report); its columns: {', '.join(header)}",
        )
    kind = _find_column(header, CSV_NAMES["kind"])
    source = _find_column(header, CSV_NAMES["source"])
    confidence = _find_column(header, CSV_NAMES["confidence"])
    notes = _find_column(header, CSV_NAMES["notes"])
    used = {c for c in (*found.values(), kind, source, confidence, notes) if c is not None}
    extra = [c for c in header if c not in used] if options.keep_extra else []
    return _Plan(
        lon=str(found["lon"]),
        lat=str(found["lat"]),
        party=str(found["party"]),
        time=found["time"],
        id=found["id"],
        uncertainty=found["uncertainty"],
        unit=found["unit"],
        kind=kind,
        source=source,
        confidence=confidence,
        notes=notes,
        extra=extra,
    )


def _rows_of(frame: pd.DataFrame) -> np.ndarray:
    """Spreadsheet row numbers of a CSV chunk: the header is row 1."""
    return np.asarray(frame.index, dtype=np.int64) + 2


def _shown(value: Any) -> str:
    text = str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


class _Chunk:
    """One chunk of a table being validated; errors name `where(i)` for its row `i`."""

    def __init__(self, path: Path, frame: pd.DataFrame, where: Callable[[int], str]) -> None:
        self.path = path
        self.frame = frame
        self.where = where

    def fail(self, i: int, message: str) -> FileProblem:
        return _problem(self.path, message, self.where(i))

    def numbers(self, column: str, *, empty: float | None = None) -> Float:
        """A numeric column as float64; text, NaN or (without `empty`) blanks are refused."""
        series = self.frame[column]
        missing = series.isna().to_numpy()
        if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
            series.dtype
        ):
            values = series.to_numpy(np.float64, na_value=np.nan)
        else:
            text = series.astype(object).where(~missing, None)
            stripped = pd.Series(
                [None if v is None else str(v).strip() for v in text.tolist()], dtype=object
            )
            values = pd.to_numeric(stripped, errors="coerce").to_numpy(np.float64)
            blank = stripped.isna().to_numpy() | (stripped == "").to_numpy()
            missing = missing | blank
            bad = np.flatnonzero(np.isnan(values) & ~missing)
            if len(bad):
                i = int(bad[0])
                raise self.fail(i, f"column {column!r}: {_shown(text.iloc[i])} is not a number")
        if missing.any():
            if empty is None:
                raise self.fail(int(np.flatnonzero(missing)[0]), f"column {column!r} is empty")
            values = np.where(missing, empty, values)
        infinite = np.flatnonzero(~np.isfinite(values))
        if len(infinite):
            i = int(infinite[0])
            raise self.fail(i, f"column {column!r}: {values[i]} is not a finite number")
        return values

    def texts(
        self, column: str | None, *, required: bool = False, exact: bool = False
    ) -> np.ndarray:
        """A text column as an object array of str, None for blanks.

        Values are stripped of surrounding spaces, distinct value by distinct value (so a column
        of a few parties costs one hash pass); `exact` keeps them as they are, which is cheaper
        for columns of unique values (ids, notes).
        """
        n = len(self.frame)
        if column is None:
            return np.full(n, None, dtype=object)
        series = self.frame[column]
        if exact:
            missing = series.isna().to_numpy()
            out = np.asarray(series.astype(object).to_numpy(), dtype=object)
            if missing.any():
                out = out.copy()
                out[missing] = None
        else:
            codes, uniques = pd.factorize(series, use_na_sentinel=True)
            cleaned = np.empty(len(uniques) + 1, dtype=object)
            cleaned[:-1] = [str(v).strip() or None for v in np.asarray(uniques, dtype=object)]
            cleaned[-1] = None  # code -1: missing
            out = cleaned[codes]
        if required:
            blank = np.flatnonzero(pd.isna(out))
            if len(blank):
                raise self.fail(int(blank[0]), f"column {column!r} is empty")
        return out


def _positions(chunk: _Chunk, plan: _Plan, transformer: Transformer | None) -> tuple[Float, Float]:
    lon = chunk.numbers(plan.lon)
    lat = chunk.numbers(plan.lat)
    if transformer is not None:
        lon, lat = (np.asarray(a, dtype=np.float64) for a in transformer.transform(lon, lat))
    _check_positions(chunk, lon, lat, plan, projected_hint=transformer is None)
    return lon, lat


def _check_positions(
    chunk: _Chunk, lon: Float, lat: Float, plan: _Plan | None, *, projected_hint: bool
) -> None:
    bad_lat = np.abs(lat) > 90.0
    bad_lon = np.abs(lon) > 180.0
    bad = np.flatnonzero(bad_lat | bad_lon)
    if not len(bad):
        return
    i = int(bad[0])
    x, y = float(lon[i]), float(lat[i])
    names = f" (columns {plan.lon!r}, {plan.lat!r})" if plan is not None else ""
    if bad_lat[i] and abs(y) <= 180.0 and abs(x) <= 90.0:
        raise chunk.fail(
            i,
            f"latitude {y:g} is out of range [-90, 90] but would be a longitude, and the "
            f"longitude {x:g} a latitude: the longitude and latitude look swapped{names}",
        )
    what = "latitude" if bad_lat[i] else "longitude"
    value, bound = (y, 90) if bad_lat[i] else (x, 180)
    hint = ""
    if projected_hint and (abs(x) > 1000.0 or abs(y) > 1000.0):
        hint = "; these look like projected coordinates: say their CRS with --crs, e.g. EPSG:32638"
    raise chunk.fail(i, f"{what} {value:g} is out of range [-{bound}, {bound}]{hint}")


_OFFSET = r"(?:[zZ]|[+-]\d\d(?::?\d\d)?)$"


def _times(chunk: _Chunk, column: str | None, options: ReadOptions) -> npt.NDArray[np.int64]:
    """A time column as UTC nanoseconds: ISO 8601 with an offset (or `options.timezone`)."""
    n = len(chunk.frame)
    default = options.default_observed_at
    default_ns = None if default is None else int(pd.Timestamp(default).as_unit("ns").value)
    if column is None:
        if default_ns is None:  # _csv_plan refused this already
            raise chunk.fail(0, "no time column")
        return np.full(n, default_ns, dtype=np.int64)
    series = chunk.frame[column]
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        stamps = pd.DatetimeIndex(series)
        return _time_ns(
            chunk, stamps.tz_convert("UTC"), np.asarray(stamps.isna()), column, default_ns
        )
    missing = series.isna().to_numpy()
    parsed = pd.to_datetime(series, utc=True, format="ISO8601", errors="coerce")
    failed = parsed.isna().to_numpy() & ~missing
    cleaned = series
    if failed.any():  # spaces around the time, or blanks, or not a time at all
        cleaned = series.astype(object).copy()
        cleaned[failed] = [str(v).strip() or None for v in cleaned[failed].tolist()]
        missing = missing | cleaned.isna().to_numpy()
        parsed = parsed.copy()
        parsed[failed] = pd.to_datetime(
            cleaned[failed], utc=True, format="ISO8601", errors="coerce"
        )
    bad = np.flatnonzero(parsed.isna().to_numpy() & ~missing)
    if len(bad):
        i = int(bad[0])
        raise chunk.fail(
            i,
            f"column {column!r}: {_shown(cleaned.iloc[i])} is not an ISO 8601 date-time "
            "such as 2022-03-24T06:00:00+04:00",
        )
    naive = _naive_times(cleaned, missing)
    if naive.any():
        if options.timezone is None:
            i = int(np.flatnonzero(naive)[0])
            raise chunk.fail(
                i,
                f"column {column!r}: {_shown(cleaned.iloc[i])} has no UTC offset; add one "
                "(Z, +04:00) or say the zone of such times with --timezone",
            )
        local = pd.to_datetime(cleaned[naive], format="ISO8601", errors="coerce")
        try:
            localized = local.dt.tz_localize(_tz(options.timezone), ambiguous="raise")
        except Exception as exc:
            raise chunk.fail(int(np.flatnonzero(naive)[0]), f"column {column!r}: {exc}") from None
        parsed = parsed.copy()
        parsed[naive] = localized.dt.tz_convert("UTC")
    return _time_ns(chunk, pd.DatetimeIndex(parsed), missing, column, default_ns)


def _naive_times(cleaned: pd.Series, missing: np.ndarray) -> np.ndarray:
    """Which present times carry no UTC offset.

    Parsing without `utc=True` tells at C speed when the column is uniform (all with an offset,
    or all without); only a column that mixes them is searched with a regular expression.
    """
    try:
        uniform = pd.to_datetime(cleaned, format="ISO8601", errors="coerce")
    except ValueError:  # mixed offsets, or times with and without one
        has_offset = cleaned.fillna("Z").str.contains(_OFFSET, regex=True).to_numpy(bool)
        return np.asarray(~missing & ~has_offset)
    if isinstance(uniform.dtype, pd.DatetimeTZDtype):
        return np.zeros(len(cleaned), dtype=bool)
    return np.asarray(~missing)


def _tz(name: str) -> Any:
    match = re.fullmatch(r"([+-])(\d\d):?(\d\d)", name.strip())
    if match:
        sign = 1 if match[1] == "+" else -1
        return timezone(sign * timedelta(hours=int(match[2]), minutes=int(match[3])))
    return name


def _time_ns(
    chunk: _Chunk,
    stamps: pd.DatetimeIndex,
    missing: np.ndarray,
    column: str,
    default_ns: int | None,
) -> npt.NDArray[np.int64]:
    if missing.any() and default_ns is None:
        i = int(np.flatnonzero(missing)[0])
        raise chunk.fail(i, f"column {column!r} is empty (give --at for reports without a time)")
    us = stamps.as_unit("us").asi8.copy()
    out_of_range = ~missing & ((us < MIN_US) | (us >= MAX_US))
    if out_of_range.any():
        i = int(np.flatnonzero(out_of_range)[0])
        raise chunk.fail(
            i,
            f"column {column!r}: {stamps[i].isoformat()} is out of the supported range "
            f"[{MIN_TIME.date()}, {MAX_TIME.date()})",
        )
    ns = us * _NS_PER_US
    if missing.any() and default_ns is not None:
        ns[missing] = default_ns
    return ns.astype(np.int64)


def _acled_times(chunk: _Chunk, column: str) -> npt.NDArray[np.int64]:
    """ACLED `event_date` (ISO or "24 March 2022") as midnight UTC of that day."""
    text = chunk.texts(column, required=True)
    series = pd.Series(text, dtype=object)
    parsed = pd.to_datetime(series, format="ISO8601", errors="coerce")
    if parsed.dt.tz is not None:
        parsed = parsed.dt.tz_convert(None)
    retry = parsed.isna().to_numpy()
    if retry.any():
        for fmt in ("%d %B %Y", "%d-%B-%Y", "%d %b %Y", "%d/%m/%Y"):
            again = pd.to_datetime(series[retry], format=fmt, errors="coerce")
            parsed[retry] = again
            retry = parsed.isna().to_numpy()
            if not retry.any():
                break
    if retry.any():
        i = int(np.flatnonzero(retry)[0])
        raise chunk.fail(
            i,
            f"column {column!r}: {_shown(text[i])} is not a date "
            "such as 2022-03-24 or 24 March 2022",
        )
    days = pd.DatetimeIndex(parsed).normalize().tz_localize("UTC")
    return _time_ns(chunk, days, np.zeros(len(text), bool), column, None)


def _enum_codes(
    chunk: _Chunk, values: np.ndarray, column: str | None, allowed: Iterable[str]
) -> np.ndarray:
    """Lower-cased enum values; the first one not in `allowed` is refused."""
    allowed = list(allowed)
    lowered = np.array([None if v is None else v.lower() for v in values.tolist()], dtype=object)
    present = pd.notna(lowered)
    wrong = np.flatnonzero(present & ~np.isin(lowered, np.array(allowed, dtype=object)))
    if len(wrong):
        i = int(wrong[0])
        raise chunk.fail(
            i, f"column {column!r}: {_shown(values[i])} is not one of {', '.join(allowed)}"
        )
    return lowered


@dataclasses.dataclass
class _Columns:
    """Per-chunk validated columns, gathered before they are joined."""

    lon: list[Float] = dataclasses.field(default_factory=list)
    lat: list[Float] = dataclasses.field(default_factory=list)
    time: list[np.ndarray] = dataclasses.field(default_factory=list)
    uncertainty: list[Float] = dataclasses.field(default_factory=list)
    ids: list[np.ndarray] = dataclasses.field(default_factory=list)
    labels: list[np.ndarray] = dataclasses.field(default_factory=list)
    party: _Interner = dataclasses.field(default_factory=_Interner)
    party_codes: list[np.ndarray] = dataclasses.field(default_factory=list)
    small: dict[str, _Interner] = dataclasses.field(default_factory=dict)
    small_codes: dict[str, list[np.ndarray]] = dataclasses.field(default_factory=dict)
    big: dict[str, list[np.ndarray]] = dataclasses.field(default_factory=dict)

    def add_small(self, name: str, values: np.ndarray) -> None:
        interner = self.small.setdefault(name, _Interner())
        self.small_codes.setdefault(name, []).append(interner.add(values))

    def add_big(self, name: str, values: np.ndarray) -> None:
        self.big.setdefault(name, []).append(values)

    def small_column(self, name: str) -> np.ndarray | None:
        if name not in self.small:
            return None
        return self.small[name].take(self.small_codes[name])

    def big_column(self, name: str) -> np.ndarray | None:
        if name not in self.big:
            return None
        parts = self.big[name]
        return np.concatenate(parts) if parts else np.empty(0, dtype=object)


def _party_mapper(mapping: Mapping[str, str] | None) -> Callable[[str], str | None]:
    exact = dict(mapping or {})
    folded = {k.strip().casefold(): v for k, v in exact.items()}
    patterns = [(k.strip().casefold(), v) for k, v in exact.items() if any(c in k for c in "*?[")]

    def lookup(actor: str) -> str | None:
        if actor in exact:
            return exact[actor]
        key = actor.strip().casefold()
        if key in folded:
            return folded[key]
        for pattern, code in patterns:
            if fnmatch.fnmatchcase(key, pattern):
                return code
        return None

    return lookup


def _validate_chunk(
    chunk: _Chunk,
    plan: _Plan,
    options: ReadOptions,
    out: _Columns,
    transformer: Transformer | None,
    party_of: Callable[[str], str | None],
    unmapped: dict[str, int],
    positions: tuple[Float, Float] | None = None,
) -> None:
    lon, lat = positions if positions is not None else _positions(chunk, plan, transformer)
    party = chunk.texts(plan.party, required=True)
    if plan.acled:
        time = _acled_times(chunk, str(plan.time))
        precision = chunk.numbers(str(plan.geo_precision))
        radius = np.full(len(precision), np.nan)
        for level, metres in ACLED_UNCERTAINTY_M.items():
            radius[precision == level] = metres
        wrong = np.flatnonzero(np.isnan(radius))
        if len(wrong):
            i = int(wrong[0])
            raise chunk.fail(
                i,
                f"column {plan.geo_precision!r}: {precision[i]:g} is not 1, 2 or 3 "
                "(ACLED geo_precision)",
            )
        uncertainty = radius
        codes, actors = pd.factorize(party)
        mapped: list[str] = []
        for actor in actors.tolist():
            code = party_of(actor)
            if code is None:
                unmapped[actor] = unmapped.get(actor, 0) + int(
                    np.count_nonzero(codes == len(mapped))
                )
                code = actor
            mapped.append(code)
        party = np.asarray(np.array(mapped, dtype=object)[codes], dtype=object)
        codes, subs = pd.factorize(chunk.texts(plan.kind), use_na_sentinel=True)
        kind_of = np.empty(len(subs) + 1, dtype=object)
        kind_of[:-1] = [ACLED_KINDS.get(str(s).lower(), ReportKind.OTHER).value for s in subs]
        kind_of[-1] = None
        kinds = kind_of[codes]
        out.add_small("kind", kinds)
    else:
        time = _times(chunk, plan.time, options)
        uncertainty = (
            np.zeros(len(lon))
            if plan.uncertainty is None
            else chunk.numbers(plan.uncertainty, empty=0.0)
        )
        negative = np.flatnonzero(uncertainty < 0)
        if len(negative):
            i = int(negative[0])
            raise chunk.fail(
                i, f"column {plan.uncertainty!r}: must be at least 0, got {uncertainty[i]:g}"
            )
        if plan.kind is not None:
            out.add_small(
                "kind",
                _enum_codes(
                    chunk, chunk.texts(plan.kind), plan.kind, (k.value for k in ReportKind)
                ),
            )
        if plan.confidence is not None:
            out.add_small(
                "confidence",
                _enum_codes(
                    chunk,
                    chunk.texts(plan.confidence),
                    plan.confidence,
                    (c.value for c in Confidence),
                ),
            )
        out.add_small("unit", chunk.texts(plan.unit))
    _check_limits(chunk.path, time // _NS_PER_US, uncertainty, chunk.where)
    out.lon.append(lon)
    out.lat.append(lat)
    out.time.append(time)
    out.uncertainty.append(uncertainty)
    out.party_codes.append(out.party.add(party))
    if plan.id is not None:
        ids = chunk.texts(plan.id, exact=True)
        if not options.content_ids:
            blank = np.flatnonzero(pd.isna(ids))
            if len(blank):
                raise chunk.fail(int(blank[0]), f"column {plan.id!r} is empty")
        # numpy's variable-width strings keep ids of up to 15 bytes inline, in 16 bytes each:
        # a quarter of what a million Python str objects take.
        out.ids.append(np.asarray(ids, dtype=_STRINGS))
    if plan.source is not None:
        out.add_small("source", chunk.texts(plan.source))
    if plan.notes is not None:
        out.add_big("notes", chunk.texts(plan.notes, exact=True))
    for name in plan.extra:
        if name in plan.numeric_extra:
            values = chunk.numbers(name, empty=np.nan)
            kept = np.array(
                [
                    None if math.isnan(v) else (int(v) if v.is_integer() else v)
                    for v in values.tolist()
                ],
                dtype=object,
            )
        else:
            kept = _extra_values(chunk.frame[name])
        out.add_big(f"extra:{name}", kept)


def _extra_values(series: pd.Series) -> np.ndarray:
    values = series.astype(object).tolist()
    return np.array([_plain(v) for v in values], dtype=object)


def _read_csv_reports(path: Path, options: ReadOptions, progress: ProgressFn) -> ReportTable:
    delimiter, header = _csv_header(path)
    plan = _csv_plan(path, header, options)
    transformer = None
    if options.crs is not None:
        crs = _parse_crs(options.crs, path)
        if not _is_wgs84(crs):
            transformer = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    text_columns = [
        c
        for c in (plan.party, plan.time, plan.id, plan.unit, plan.kind, plan.source)
        + (plan.confidence, plan.notes)
        if c is not None
    ]
    dtypes: dict[str, Any] = {c: str for c in text_columns}
    for name in plan.extra:
        if name not in plan.numeric_extra:
            dtypes.setdefault(name, str)
    size = path.stat().st_size
    step = f"reading {path.name}"
    out = _Columns()
    unmapped: dict[str, int] = {}
    party_of = _party_mapper(options.party_map)
    progress(step, 0, size)
    try:
        with path.open("rb") as handle:
            reader = pd.read_csv(
                handle,
                sep=delimiter,
                usecols=plan.columns(),
                dtype=dtypes,
                chunksize=CHUNK_ROWS,
                keep_default_na=False,
                na_values=[""],
                skip_blank_lines=False,
                encoding="utf-8-sig",
            )
            for frame in reader:
                rows = _rows_of(frame)
                blank = frame.isna().all(axis=1).to_numpy()
                if blank.any():
                    frame, rows = frame[~blank], rows[~blank]
                    frame = frame.reset_index(drop=True)
                if len(frame):
                    chunk = _Chunk(path, frame, _row_label(rows))
                    _validate_chunk(chunk, plan, options, out, transformer, party_of, unmapped)
                    out.labels.append(rows)
                progress(step, handle.tell(), size)
    except UnicodeDecodeError as exc:
        raise _problem(path, f"is not UTF-8 text (at byte {exc.start} of a block)") from None
    except (pd.errors.ParserError, csv.Error) as exc:
        raise _problem(path, f"cannot be read as CSV: {_parser_message(exc)}") from None
    except ValueError as exc:
        if isinstance(exc, TruceError):
            raise
        raise _problem(path, f"cannot be read as CSV: {_parser_message(exc)}") from None
    progress(step, size, size)
    table = _assemble(path, out, "row")
    if unmapped:
        listed = ", ".join(
            f"{actor!r} ({count})"
            for actor, count in sorted(unmapped.items(), key=lambda kv: -kv[1])[:8]
        )
        more = f" and {len(unmapped) - 8} more" if len(unmapped) > 8 else ""
        table.messages.append(
            f"{path.name}: {len(unmapped)} actor(s) not in the party map kept their name as party: "
            f"{listed}{more}; map them with --party-map 'ACTOR=CODE'"
        )
    return table


def _row_label(rows: np.ndarray) -> Callable[[int], str]:
    def where(i: int) -> str:
        return f"row {rows[i]}"

    return where


def _parser_message(exc: BaseException) -> str:
    text = str(exc).strip()
    match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if match:
        return f"line {match[2]} has {match[3]} fields, the header has {match[1]}"
    return text.splitlines()[0] if text else type(exc).__name__


def _assemble(path: Path, out: _Columns, label: str) -> ReportTable:
    def joined(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
        return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)

    extra: dict[str, np.ndarray] = {}
    for name in list(out.big):
        if name.startswith("extra:"):
            column = out.big_column(name)
            if column is not None:
                extra[name.removeprefix("extra:")] = column
    return ReportTable(
        path=path,
        lon=joined(out.lon, np.float64),
        lat=joined(out.lat, np.float64),
        time_ns=joined(out.time, np.int64),
        uncertainty_m=joined(out.uncertainty, np.float64),
        party=out.party.take(out.party_codes),
        unit=_or_none_column(out.small_column("unit"), sum(len(a) for a in out.lon)),
        ids=joined(out.ids, _STRINGS) if out.ids else None,
        labels=joined(out.labels, np.int64),
        label=label,
        kind=out.small_column("kind"),
        source=out.small_column("source"),
        confidence=out.small_column("confidence"),
        notes=out.big_column("notes"),
        extra=extra,
    )


def _or_none_column(values: np.ndarray | None, n: int) -> np.ndarray:
    return np.full(n, None, dtype=object) if values is None else values


def _vector_reports(path: Path, options: ReadOptions, progress: ProgressFn) -> ReportTable:
    attributes, geometry, notes = _read_vector(path, "reports", options, progress)
    n = len(attributes)
    chunk = _Chunk(path, attributes.reset_index(drop=True), lambda i: f"feature {i}")
    types = shapely.get_type_id(geometry) if n else np.empty(0, np.int64)
    not_point = np.flatnonzero((types != 0) | shapely.is_empty(geometry))
    if len(not_point):
        i = int(not_point[0])
        got = "no geometry" if geometry[i] is None else f"a {geometry[i].geom_type}"
        raise chunk.fail(i, f"a report must be a Point, got {got}")
    lon = shapely.get_x(geometry).astype(np.float64)
    lat = shapely.get_y(geometry).astype(np.float64)
    _check_positions(chunk, lon, lat, None, projected_hint=False)
    header = [str(c) for c in attributes.columns]
    found = {
        field: _resolve(path, header, getattr(options.columns, field, None), field)
        for field in ("time", "party", "id", "uncertainty", "unit")
    }
    if found["party"] is None:
        raise _problem(path, f"has no party column (looked for {'/'.join(CSV_NAMES['party'])})")
    if found["time"] is None and options.default_observed_at is None:
        raise _problem(
            path, f"has no time column (looked for {'/'.join(CSV_NAMES['time'])}); give --at"
        )
    used = {c for c in found.values() if c is not None}
    plan = _Plan(
        lon="(geometry)",
        lat="(geometry)",
        party=str(found["party"]),
        time=found["time"],
        id=found["id"],
        uncertainty=found["uncertainty"],
        unit=found["unit"],
        kind=_find_column(header, CSV_NAMES["kind"]),
        source=_find_column(header, CSV_NAMES["source"]),
        confidence=_find_column(header, CSV_NAMES["confidence"]),
        notes=_find_column(header, CSV_NAMES["notes"]),
        extra=[],
    )
    used |= {c for c in (plan.kind, plan.source, plan.confidence, plan.notes) if c is not None}
    if options.keep_extra:
        plan.extra = [c for c in header if c not in used]
    out = _Columns()
    step = f"validating reports of {path.name}"
    progress(step, 0, n)
    if n:
        _validate_chunk(chunk, plan, options, out, None, _party_mapper(None), {}, (lon, lat))
        out.labels.append(np.arange(n))
    progress(step, n, n)
    table = _assemble(path, out, "feature")
    table.messages += notes
    return table


# --- party maps -----------------------------------------------------------------------------------


def parse_party_map(items: Sequence[str]) -> dict[str, str]:
    """A party map from `--party-map` values: JSON files of {actor: code}, or 'ACTOR=CODE' items.

    Later items win. An actor may be an fnmatch pattern ("Military Forces of Azerbaijan*").
    """
    found: dict[str, str] = {}
    for item in items:
        candidate = Path(item)
        if "=" not in item or (candidate.suffix.lower() == ".json" and candidate.exists()):
            if not candidate.exists():
                raise FileProblem(
                    f"--party-map {item!r}: no such file, and not of the form 'ACTOR=CODE'"
                )
            try:
                obj = orjson.loads(candidate.read_bytes())
            except (OSError, orjson.JSONDecodeError) as exc:
                raise FileProblem(f"{candidate.name}: is not a JSON party map: {exc}") from None
            if not isinstance(obj, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in obj.items()
            ):
                raise FileProblem(
                    f"{candidate.name}: a party map must be a JSON object of actor names to "
                    'party codes, such as {"Military Forces of Azerbaijan (2003-)": "AZE"}'
                )
            found.update({k: v.strip() for k, v in obj.items()})
            continue
        actor, _, code = item.rpartition("=")
        if not actor.strip() or not code.strip():
            raise FileProblem(f"--party-map {item!r}: expected 'ACTOR=CODE' or a JSON file")
        found[actor.strip()] = code.strip()
    return found


# --- writing --------------------------------------------------------------------------------------


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


def _iso_utc(ns: np.ndarray) -> np.ndarray:
    """UTC nanoseconds as ISO 8601 text with "+00:00" (microseconds only when there are some)."""
    us = np.asarray(ns, dtype=np.int64) // _NS_PER_US
    stamps = us.astype("datetime64[us]")
    whole = us % 1_000_000 == 0
    out = np.empty(len(us), dtype=object)
    units: tuple[tuple[np.ndarray, Literal["s", "us"]], ...] = ((whole, "s"), (~whole, "us"))
    for mask, unit in units:
        if mask.all():
            out[:] = [f"{t}+00:00" for t in np.datetime_as_string(stamps, unit=unit).tolist()]
        elif mask.any():
            text = np.datetime_as_string(stamps[mask], unit=unit).tolist()
            out[mask] = [f"{t}+00:00" for t in text]
    return out


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
    out[:] = [None if _missing(v) else v for v in array.tolist()]
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
    """Write findings: a frame with `FINDINGS_COLUMNS` (observed_at UTC), `lon` and `lat`.

    GeoJSON: Point features with the properties of DESIGN.md; CSV: lon, lat and the properties;
    GeoPackage: a Point layer "findings". `depth_m` is rounded to centimetres.
    """
    progress = progress or _no_progress
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
            "observed_at": _iso_utc(observed),
        }
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
    progress = progress or _no_progress
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
    progress = progress or _no_progress
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
