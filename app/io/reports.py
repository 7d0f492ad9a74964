"""Reading reports (`read_reports`) from any supported file, by its extension."""

from __future__ import annotations

from pathlib import Path

from app.io.csv import _read_csv_reports
from app.io.formats import _sniff, input_format
from app.io.geojson import _declares_other_crs, _geojson_reports, _load_json
from app.io.options import ProgressFn, ReadOptions, _no_progress
from app.io.tables import ReportTable
from app.io.vector import _vector_reports


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
