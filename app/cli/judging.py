"""Judging a file's reports against zones, in chunks, with a progress bar.

Used by `check` and `import reports` (to count violations and refuse swapped coordinates);
`export incursions` asks the service instead, as `GET /incursions` does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from app.batch import ReportBatch
from app.cli.common import Steps
from app.domain import Zone
from app.engine import FINDING_COLUMNS, ZoneIndex

#: Reports judged per engine call: bounds memory and lets the progress bar move.
CHECK_CHUNK = 500_000


def index_zones(zones: list[Zone], steps: Steps) -> ZoneIndex:
    """A `ZoneIndex` of `zones`, built as a progress step."""
    with steps.step(f"indexing {len(zones)} zone versions"):
        return ZoneIndex(zones)


def judge_reports(index: ZoneIndex, table: ReportBatch, steps: Steps) -> pd.DataFrame:
    """Findings for every report of `table`, with `report_id`, `unit`, `lon` and `lat` added,
    and `uncertainty_m`: the u of the verdict (the report's plus the zone's boundary's)."""
    n = len(table)
    parts = []
    with steps.step(f"checking {n:,} reports against {len(index):,} zone versions", n) as advance:
        for start in range(0, n, CHECK_CHUNK):
            stop = min(n, start + CHECK_CHUNK)
            rows = index.check(table.frame(start, stop))
            rows["report"] += start
            parts.append(rows)
            advance(stop - start)
    findings = (
        pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=FINDING_COLUMNS)
    )
    report = findings["report"].to_numpy(np.int64)
    findings["report_id"] = table.report_ids(report)
    findings["unit"] = table.unit[report]
    findings["lon"] = table.lon[report]
    findings["lat"] = table.lat[report]
    zone = findings["zone"].to_numpy(np.int64)
    findings["uncertainty_m"] = table.uncertainty_m[report] + index.boundary_uncertainty_m[zone]
    return findings


def _swapped(
    index: ZoneIndex, table: ReportBatch, findings: pd.DataFrame
) -> tuple[int, str, int] | None:
    """The first report far from every zone that would lie in one with lon and lat exchanged.

    Returns (report, zone id, how many reports look so), or None.
    """
    reports, zones = index.swapped(table, findings["report"].to_numpy(np.int64))
    if not len(reports):
        return None
    return int(reports[0]), str(index.zone_ids[zones[0]]), len(reports)


def refuse_swapped(index: ZoneIndex, table: ReportBatch, findings: pd.DataFrame) -> None:
    """Raise `FileProblem` when longitude and latitude look swapped (see `_swapped`)."""
    swapped = _swapped(index, table, findings)
    if swapped is None:
        return
    i, zone_id, count = swapped
    lon, lat = float(table.lon[i]), float(table.lat[i])
    more = f" ({count - 1} more report(s) look the same)" if count > 1 else ""
    raise table.origin.fail(
        i,
        "longitude and latitude look swapped: "
        f"lon {lon:g}, lat {lat:g} is far from every zone, but lon {lat:g}, lat {lon:g} lies in "
        f"zone {zone_id!r}{more}; fix the file (or name the columns with --lon-column and "
        "--lat-column), or pass --allow-swapped to take the positions as written",
    )
