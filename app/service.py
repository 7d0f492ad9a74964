"""The services between the HTTP API (or any other front end) and the store and engine.

`Service` holds the store and a `ZoneIndex` over the zones in it. The index is never stale: every
use reads the store's zone-change token first, which every process on the database sees move, and
rebuilds the index when it moved. So a zone written through one worker is used by the next check
in every worker.

`ReportBatch` is a batch of reports as columns (ids, positions, times as UTC nanoseconds,
uncertainties, parties): what the engine takes, built once per request. Domain `Report` objects are
only made when the batch is stored, so a stateless check of 1e5 positions never builds 1e5 Python
objects beyond the parsed JSON.

Findings go out as GeoJSON Point features written from the engine's columns
(`app.findings.FindingColumns`). Stored incursions come from a `ViolationLog`, which keeps them up
to date between calls instead of judging every stored report again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from app.domain import Report, Verdict, Zone, ZoneKind
from app.engine import Judged, SetAside, ZoneIndex
from app.errors import InvalidInput, InvalidParameter, InvalidReport, InvalidZone
from app.findings import FindingColumns
from app.geojson import zones_from_geojson
from app.incursions import ViolationLog
from app.scenario import GEODATA, load_scenario
from app.store import AuditEntry, BBox, NotFound, Store
from app.tracks import track_events, track_summary
from app.validate import join_path

__all__ = [
    "MAX_DISTANCE_M",
    "MAX_TIME",
    "MIN_TIME",
    "Checked",
    "Filed",
    "ReportBatch",
    "Service",
    "Shape",
    "Track",
    "check_time",
    "check_zone",
    "parse_zones",
    "to_us",
]

JSON = dict[str, Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
#: Times the engine can hold: it counts nanoseconds in 64 bits (years 1677 to 2262). Anything
#: outside is refused on the way in, so that a stored zone can never break the index.
MIN_TIME = datetime(1678, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2262, 1, 1, tzinfo=UTC)
MIN_US = (MIN_TIME - _EPOCH) // _US
MAX_US = (MAX_TIME - _EPOCH) // _US
#: No two points on Earth are farther apart (half the equator, rounded up): a larger uncertainty
#: or warning distance means nothing and only feeds overflows to the geometry.
MAX_DISTANCE_M = 20_037_509.0


def to_us(moment: datetime) -> int:
    """Exact microseconds since 1970 UTC of an aware datetime."""
    return (moment - _EPOCH) // _US


def check_time(moment: datetime, field: str, error: type[InvalidInput] = InvalidParameter) -> None:
    """Refuse a time the engine cannot hold (before 1678 or from 2262), naming `field`."""
    if not MIN_TIME <= moment < MAX_TIME:
        raise error(
            f"{moment.isoformat()} is out of the supported range "
            f"[{MIN_TIME.date().isoformat()}, {MAX_TIME.date().isoformat()})",
            field=field,
        )


def check_zone(zone: Zone, index: int | None = None) -> None:
    """Refuse what validation lets through but the service cannot hold (times, huge distances)."""
    base = "" if index is None else f"features/{index}"
    try:
        check_time(zone.valid_from, join_path(base, "properties", "valid_from"), InvalidZone)
        if zone.valid_to is not None:
            check_time(zone.valid_to, join_path(base, "properties", "valid_to"), InvalidZone)
        if zone.warning_distance_m > MAX_DISTANCE_M:
            raise InvalidZone(
                f"must be at most {MAX_DISTANCE_M:.0f} m (half the equator), "
                f"got {zone.warning_distance_m:g}",
                field=join_path(base, "properties", "warning_distance_m"),
            )
    except InvalidZone as exc:
        exc.index = index
        raise


def parse_zones(obj: Any) -> tuple[list[Zone], list[str]]:
    """Zones from a Feature or a non-empty FeatureCollection, with notes on what was repaired.

    Raises:
        InvalidGeoJSON, InvalidGeometry, InvalidZone: naming the field and feature index.
    """
    zones, notes = zones_from_geojson(obj)
    collection = isinstance(obj, Mapping) and obj.get("type") == "FeatureCollection"
    for i, zone in enumerate(zones):
        check_zone(zone, i if collection else None)
    return zones, notes


# -- report batches ---------------------------------------------------------------------------


class Shape(StrEnum):
    """What the reports of a batch came as, which decides how fields are named in messages."""

    COLLECTION = "collection"  # features/3/properties/party
    FEATURE = "feature"  # properties/party
    OBJECT = "object"  # party (a bare {"lon", "lat", ...} object)
    STORED = "stored"  # reports read back from the store (valid already)

    def feature_index(self, i: int) -> int | None:
        """The feature index to put in an error, if the batch has one."""
        return i if self is Shape.COLLECTION else None

    def property_path(self, i: int, name: str) -> str:
        """Where property `name` of report `i` is in the request body."""
        if self is Shape.COLLECTION:
            return join_path("features", i, "properties", name)
        if self is Shape.FEATURE:
            return join_path("properties", name)
        return name

    def position_path(self, i: int) -> str:
        """Where the position of report `i` is in the request body."""
        if self is Shape.COLLECTION:
            return join_path("features", i, "geometry", "coordinates")
        if self is Shape.FEATURE:
            return "geometry/coordinates"
        return "lon"


@dataclass(frozen=True, slots=True, eq=False)
class ReportBatch:
    """Validated reports as columns, in input order (see the module docstring)."""

    ids: np.ndarray  # object array of str
    lon: np.ndarray
    lat: np.ndarray
    time_ns: np.ndarray  # int64, UTC nanoseconds
    uncertainty_m: np.ndarray
    party: np.ndarray  # object array of str
    unit: np.ndarray  # object array of str or None
    shape: Shape
    build_reports: Callable[[], list[Report]] = field(repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def findings(self, judged: Judged, index: ZoneIndex) -> FindingColumns:
        """The findings of `index.judge` on this batch, as columns."""
        return FindingColumns.of(
            judged,
            index,
            ids=self.ids,
            lon=self.lon,
            lat=self.lat,
            time_ns=self.time_ns,
            party=self.party,
        )

    def reports(self) -> list[Report]:
        """The batch as domain reports (built on demand: only storing needs them)."""
        return self.build_reports()

    def frame(self) -> pd.DataFrame:
        """The input frame of `ZoneIndex.check`, with `unit` for tracks."""
        return pd.DataFrame(
            {
                "id": self.ids,
                "lon": self.lon,
                "lat": self.lat,
                "observed_at": utc_index(self.time_ns),
                "uncertainty_m": self.uncertainty_m,
                "party": self.party,
                "unit": self.unit,
            }
        )

    @classmethod
    def from_reports(cls, reports: Sequence[Report], shape: Shape = Shape.STORED) -> ReportBatch:
        """A batch of parsed reports; refuses times and uncertainties the service cannot hold."""
        reports = list(reports)
        us = np.array([to_us(r.observed_at) for r in reports], dtype=np.int64)
        uncertainty = np.array([r.uncertainty_m for r in reports], dtype=np.float64)
        check_batch_limits(us, uncertainty, shape)
        return cls(
            ids=np.array([r.id for r in reports], dtype=object),
            lon=np.array([r.lon for r in reports], dtype=np.float64),
            lat=np.array([r.lat for r in reports], dtype=np.float64),
            time_ns=us * 1000,
            uncertainty_m=uncertainty,
            party=np.array([r.party for r in reports], dtype=object),
            unit=np.array([r.unit for r in reports], dtype=object),
            shape=shape,
            build_reports=lambda: reports,
        )


def check_batch_limits(us: np.ndarray, uncertainty: np.ndarray, shape: Shape) -> None:
    """Refuse the first report whose time or uncertainty the service cannot hold."""
    bad_time = (us < MIN_US) | (us >= MAX_US)
    bad_u = uncertainty > MAX_DISTANCE_M
    bad = np.flatnonzero(bad_time | bad_u)
    if not len(bad):
        return
    i = int(bad[0])
    if bad_time[i]:
        moment = _EPOCH + timedelta(microseconds=int(us[i]))
        try:
            check_time(moment, shape.property_path(i, "observed_at"), InvalidReport)
        except InvalidReport as exc:
            exc.index = shape.feature_index(i)
            raise
    raise InvalidReport(
        f"must be at most {MAX_DISTANCE_M:.0f} m (half the equator), got {uncertainty[i]:g}",
        field=shape.property_path(i, "uncertainty_m"),
        index=shape.feature_index(i),
    )


# -- answers ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checked:
    """What a check found: finding features, and warnings about the input (swapped lat/lon)."""

    findings: list[JSON]
    warnings: list[str]
    violations: int


@dataclass(frozen=True, slots=True)
class Filed:
    """What storing a batch did: ids stored and duplicate, in input order, and the check."""

    stored: list[str]
    duplicates: list[str]
    checked: Checked


@dataclass(frozen=True, slots=True)
class Track:
    """A unit's reports in time order, its zone events and its per-zone summary."""

    reports: list[Report]
    events: list[JSON]
    summary: list[JSON]


_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


def utc_index(time_ns: np.ndarray) -> pd.DatetimeIndex:
    """UTC nanoseconds as timezone-aware times (a view, with no parsing or conversion)."""
    return pd.DatetimeIndex(np.asarray(time_ns, dtype=np.int64).view("M8[ns]"), dtype=_UTC_NS)


def judge(index: ZoneIndex, batch: ReportBatch, *, include_outside: bool = False) -> Judged:
    """The engine's findings for a batch, straight from its columns."""
    return index.judge(
        batch.lon,
        batch.lat,
        batch.time_ns,
        batch.party,
        batch.uncertainty_m,
        include_outside=include_outside,
    )


def _records(frame: pd.DataFrame) -> list[JSON]:
    """A frame as JSON records: times in ISO 8601, NaN and NaT as null, numpy scalars as Python."""
    out: dict[str, list[Any]] = {}
    for name in frame.columns:
        column = frame[name]
        if isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(column):
            out[name] = [None if pd.isna(t) else t.isoformat() for t in column]
        else:
            out[name] = [
                None if isinstance(v, float) and v != v else v  # NaN is the only x != x
                for v in column.astype(object).tolist()
            ]
    names = list(out)
    return [dict(zip(names, values, strict=True)) for values in zip(*out.values(), strict=True)]


# -- the service ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Indexed:
    token: int
    index: ZoneIndex


class Service:
    """Zones, reports, checks, incursions, tracks and the audit log over one `Store`.

    Thread-safe: the store is, and the index is swapped whole under a lock.
    """

    def __init__(self, store: Store) -> None:
        """Serve `store`; the zone index is built on first use."""
        self.store = store
        self._lock = threading.Lock()
        self._indexed: _Indexed | None = None
        self._violations = ViolationLog(store, lambda: self._current().token, self._violations_of)

    # -- the index ------------------------------------------------------------------------

    def index(self) -> ZoneIndex:
        """The zone index, rebuilt first if any process changed the zones since it was built."""
        return self._current().index

    def zones_set_aside(self) -> tuple[SetAside, ...]:
        """Zones the latest index had to leave out (`ZoneIndex.set_aside`); reads no store."""
        indexed = self._indexed
        return () if indexed is None else indexed.index.set_aside

    def _current(self) -> _Indexed:
        token = self.store.zones_changed_token()
        indexed = self._indexed
        if indexed is not None and indexed.token == token:
            return indexed
        with self._lock:
            indexed = self._indexed
            if indexed is not None and indexed.token == token:
                return indexed  # another thread rebuilt it meanwhile
            # The token is read *before* the zones: a write in between leaves an index newer
            # than its token, which only costs one more rebuild, never a stale index.
            token = self.store.zones_changed_token()
            zones = self.store.zones_for_index()
            indexed = _Indexed(token, ZoneIndex(zones))
            # Tokens only grow: never replace a newer index by an older one.
            if self._indexed is None or self._indexed.token <= token:
                self._indexed = indexed
            return indexed

    # -- zones ----------------------------------------------------------------------------

    def list_zones(
        self,
        at: datetime | None,
        bbox: BBox | None = None,
        kind: ZoneKind | None = None,
        all_versions: bool = False,
    ) -> list[Zone]:
        """Zones in force at `at`, or every version with `all_versions` (see `Store`)."""
        return self.store.list_zones(at=at, bbox=bbox, kind=kind, all_versions=all_versions)

    def get_zone(self, zone_id: str) -> Zone:
        """The latest version of a zone, as filed."""
        return self.store.get_zone(zone_id)

    def zone_history(self, zone_id: str) -> list[Zone]:
        """Every version of a zone, oldest first."""
        return self.store.zone_history(zone_id)

    def add_zones(self, zones: Sequence[Zone], actor: str) -> list[Zone]:
        """Create zones (each as version 1), all or none."""
        for i, zone in enumerate(zones):
            check_zone(zone, i if len(zones) > 1 else None)
        return self.store.add_zones(zones, actor)

    def new_zone_version(self, zone: Zone, actor: str) -> Zone:
        """Store `zone` as the next version of the zone with its id."""
        check_zone(zone)
        return self.store.new_zone_version(zone, actor)

    def retire_zone(self, zone_id: str, at: datetime, actor: str) -> Zone:
        """Retire a zone from `at` on; its history stays."""
        check_time(at, "at")
        return self.store.retire_zone(zone_id, at, actor)

    # -- reports --------------------------------------------------------------------------

    def check(self, batch: ReportBatch, *, include_outside: bool = False) -> Checked:
        """Findings for a batch against the zones in force at each report's time."""
        indexed = self._current()
        if not len(batch):
            return Checked([], [], 0)
        judged = judge(indexed.index, batch, include_outside=include_outside)
        warnings = self._swapped(indexed, batch, judged)
        return Checked(
            batch.findings(judged, indexed.index).features(),
            warnings,
            int(judged.violation.sum()),
        )

    def _swapped(self, indexed: _Indexed, batch: ReportBatch, judged: Judged) -> list[str]:
        """Warnings for reports far from every zone whose (lat, lon) would lie inside one.

        Such a report is kept as sent (it may be right), but the sender is told, since a swap is
        the commonest coordinate error and would hide an incursion.
        """
        index = indexed.index
        reports, zones = index.swapped(
            batch.lon,
            batch.lat,
            batch.time_ns,
            batch.party,
            judged.report[judged.verdict != Verdict.OUTSIDE],
        )
        warnings = []
        for i, zone_id in zip(reports.tolist(), index.zone_ids[zones].tolist(), strict=True):
            lon, lat = float(batch.lon[i]), float(batch.lat[i])
            warnings.append(
                f"{batch.shape.position_path(i)}: coordinates look swapped: "
                f"[{lon:g}, {lat:g}] is far from every zone in force, but [{lat:g}, {lon:g}] "
                f"lies in zone {zone_id!r}; the report was taken as sent "
                "(GeoJSON positions are [longitude, latitude])"
            )
        return warnings

    def add_reports(self, batch: ReportBatch, actor: str) -> Filed:
        """Check a batch, then store it all or nothing; re-sent ids come back as duplicates."""
        # Checked first: if anything in the check failed, nothing would be stored.
        checked = self.check(batch)
        stored, duplicates = self.store.add_reports(batch.reports(), actor)
        return Filed([r.id for r in stored], duplicates, checked)

    def list_reports(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        party: str | None = None,
        bbox: BBox | None = None,
        unit: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> tuple[list[Report], str | None]:
        """One page of stored reports by (observed_at, id), and the next page's cursor."""
        return self.store.list_reports(
            since=since, until=until, party=party, bbox=bbox, unit=unit, limit=limit, after=after
        )

    def incursions(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        party: str | None = None,
        zone: str | None = None,
    ) -> FindingColumns:
        """Stored reports' violations, ordered by report time, report id and zone id.

        Judged against the zones as they stand now, so a zone corrected later corrects its
        incursions too (`ViolationLog` keeps them up to date between calls).
        """
        found = self._violations.current()  # in that order
        keep = []
        if since is not None:
            keep.append(found.time_ns >= to_us(since) * 1000)
        if until is not None:
            keep.append(found.time_ns < to_us(until) * 1000)
        if party is not None:
            keep.append(found.party == party)
        if zone is not None:
            keep.append(found.zone_id == zone)
        return found.take(np.logical_and.reduce(keep)) if keep else found

    def _violations_of(self, reports: Sequence[Report]) -> tuple[int, FindingColumns]:
        """The violations among `reports`, and the zone token of the index that found them."""
        indexed = self._current()
        batch = ReportBatch.from_reports(reports)
        judged = judge(indexed.index, batch)
        return indexed.token, batch.findings(judged.select(judged.violation), indexed.index)

    def track(self, party: str, unit: str) -> Track:
        """A unit's reports, its zone entries and exits, and whether it withdrew."""
        reports = self.store.get_reports_for_track(party, unit)
        if not reports:
            raise NotFound(f"no reports of unit {unit!r} of party {party!r}", field="unit")
        batch = ReportBatch.from_reports(reports)
        frame = batch.frame()
        rows = self.index().check(frame)
        return Track(
            reports,
            _records(track_events(frame, rows)),
            _records(track_summary(frame, rows)),
        )

    # -- audit and start-up ---------------------------------------------------------------

    def audit_log(self, limit: int = 100, after: int | None = None) -> list[AuditEntry]:
        """Audit entries oldest first, after the entry with id `after`."""
        return self.store.audit_log(limit=limit, after=after)

    def load_scenario(self, directory: Path = GEODATA, actor: str = "scenario") -> bool:
        """Load a scenario directory (default `geodata/`) into an empty database, all or nothing.

        Returns whether it loaded anything: a database that has zones or reports is left alone,
        and of several workers starting at once on a new database, one loads it (`Store.seed`).
        """
        if self.store.list_zones() or self.store.count_reports():
            return False  # the common case, known without reading the scenario
        scenario = load_scenario(directory)
        return self.store.seed(scenario.zones, scenario.reports, actor)
