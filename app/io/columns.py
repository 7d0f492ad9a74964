"""CSV columns: the header, the common names (`CSV_NAMES`), which column gives which field."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from app.io.acled import ACLED_MARKERS, ACLED_REQUIRED
from app.io.options import ReadOptions
from app.io.problems import file_problem

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


def csv_header(path: Path) -> tuple[str, list[str]]:
    """The delimiter and the column names of a CSV file."""
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as handle:
            first = handle.readline()
    except UnicodeDecodeError as exc:
        raise file_problem(
            path, f"is not UTF-8 text (byte {exc.start} of the first line)"
        ) from None
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    delimiter = max(counts, key=lambda d: counts[d])
    if counts[delimiter] == 0:
        delimiter = ","
    header = next(csv.reader([first], delimiter=delimiter), [])
    header = [name.strip() for name in header]
    if not any(header):
        raise file_problem(path, "has no header row: the first line must name the columns")
    return delimiter, header


def find_column(header: Sequence[str], names: Sequence[str]) -> str | None:
    """The first header name matching one of `names` (lower case, blanks ignored)."""
    lookup: dict[str, str] = {}
    for name in header:
        lookup.setdefault(name.strip().lower(), name)
    for name in names:
        if name in lookup:
            return lookup[name]
    return None


def resolve_column(path: Path, header: Sequence[str], given: str | None, field: str) -> str | None:
    """The column for `field`: the one given (which must exist), else by `CSV_NAMES`."""
    if given is not None:
        found = find_column(header, [given.strip().lower()])
        if found is None:
            raise file_problem(
                path,
                f"has no column {given!r} (given for {field}); its columns: {', '.join(header)}",
            )
        return found
    return find_column(header, CSV_NAMES[field])


@dataclasses.dataclass
class ColumnPlan:
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
        """The file columns the plan reads."""
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


def csv_plan(path: Path, header: list[str], options: ReadOptions) -> ColumnPlan:
    """Which CSV column is which report field (ACLED exports by their own names)."""
    lowered = {name.strip().lower() for name in header}
    given = options.columns
    if lowered >= ACLED_MARKERS:
        missing = [c for c in ACLED_REQUIRED if c not in lowered]
        if missing:
            raise file_problem(
                path, f"looks like an ACLED export but lacks column(s) {', '.join(missing)}"
            )

        def col(name: str) -> str | None:
            return find_column(header, [name])

        named = {"event_id_cnty", "event_date", "actor1", "latitude", "longitude"}
        named |= {"geo_precision", "source", "notes", "sub_event_type"}
        kept = ["fatalities", "time_precision", "event_type", "sub_event_type", "actor1"]
        extra = [c for c in header if c.strip().lower() not in named or c in kept]
        if not options.keep_extra:  # checking needs none of them
            extra = []
        return ColumnPlan(
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
        field: resolve_column(path, header, getattr(given, field), field)
        for field in ("lon", "lat", "time", "party", "id", "uncertainty", "unit")
    }
    for field, what in (("lon", "longitude"), ("lat", "latitude"), ("party", "party")):
        if found[field] is None:
            names = "/".join(CSV_NAMES[field])
            option = {"lon": "--lon-column", "lat": "--lat-column", "party": "--party-column"}
            raise file_problem(
                path,
                f"has no {what} column (looked for {names}; name it with {option[field]}); "
                f"its columns: {', '.join(header)}",
            )
    if found["time"] is None and options.default_observed_at is None:
        raise file_problem(
            path,
            f"has no time column (looked for {'/'.join(CSV_NAMES['time'])}; name it with "
            f"--time-column, or give --at for every report); its columns: {', '.join(header)}",
        )
    kind = find_column(header, CSV_NAMES["kind"])
    source = find_column(header, CSV_NAMES["source"])
    confidence = find_column(header, CSV_NAMES["confidence"])
    notes = find_column(header, CSV_NAMES["notes"])
    used = {c for c in (*found.values(), kind, source, confidence, notes) if c is not None}
    extra = [c for c in header if c not in used] if options.keep_extra else []
    return ColumnPlan(
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
