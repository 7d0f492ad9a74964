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

The package holds one concern a module: `formats` (extensions and sniffing), `crs`, `columns`
(CSV headers and column names), `cells`, `times` and `chunks` (column-by-column validation),
`csv`, `geojson_files` and `vector` (reports from each kind of file), `acled`, `rows`
(`FileRows`: where in the file each report of an `app.batch.ReportBatch` came from), `reports`
and `zones` (the readers), `write` (the writers), `options` and `problems` (`FileProblem`). This
module re-exports their public names.
"""

from app.io.acled import ACLED_COLUMNS, ACLED_KINDS, ACLED_UNCERTAINTY_M, parse_party_map
from app.io.columns import CSV_NAMES
from app.io.csv import CHUNK_ROWS as CHUNK_ROWS
from app.io.formats import OUT_FORMATS, input_format, output_format
from app.io.formats import InFormat as InFormat
from app.io.formats import OutFormat as OutFormat
from app.io.options import CsvColumns, ProgressFn, ReadOptions
from app.io.problems import FileProblem
from app.io.reports import read_reports
from app.io.rows import FileRows
from app.io.write import GPKG_CHUNK as GPKG_CHUNK
from app.io.write import WRITE_CHUNK as WRITE_CHUNK
from app.io.write import write_findings, write_reports, write_zones
from app.io.zones import read_zones

__all__ = [
    "ACLED_COLUMNS",
    "ACLED_KINDS",
    "ACLED_UNCERTAINTY_M",
    "CSV_NAMES",
    "OUT_FORMATS",
    "CsvColumns",
    "FileProblem",
    "ProgressFn",
    "ReadOptions",
    "FileRows",
    "input_format",
    "output_format",
    "parse_party_map",
    "read_reports",
    "read_zones",
    "write_findings",
    "write_reports",
    "write_zones",
]
