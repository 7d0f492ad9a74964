"""What a caller passes: `ReadOptions`, `CsvColumns`, and the `ProgressFn` reads and writes call."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime

#: Called as `progress(step, done, total)` while a step runs; `total` None when unknown.
ProgressFn = Callable[[str, int, int | None], None]


def no_progress(step: str, done: int, total: int | None) -> None:
    """A `ProgressFn` that shows nothing."""
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
