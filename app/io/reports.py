"""Reading reports (`read_reports`) from any supported file, by its extension."""

from __future__ import annotations

from pathlib import Path

from app.batch import ReportBatch
from app.io.csv import read_csv_reports
from app.io.formats import input_format, sniff
from app.io.geojson_files import declares_other_crs, geojson_reports, load_json
from app.io.options import ProgressFn, ReadOptions, no_progress
from app.io.vector import vector_reports


def read_reports(
    path: Path, options: ReadOptions | None = None, progress: ProgressFn | None = None
) -> ReportBatch:
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
    progress = progress or no_progress
    fmt = input_format(path)
    sniff(path, fmt)
    if fmt == "csv":
        table = read_csv_reports(path, options, progress)
    elif fmt == "geojson":
        obj = load_json(path, progress)
        if declares_other_crs(obj):
            table = vector_reports(path, options, progress)
        else:
            table = geojson_reports(path, obj, options)
    else:
        table = vector_reports(path, options, progress)
    if options.content_ids:
        table.ensure_content_ids()
    return table
