"""The services between the HTTP API (or any other front end) and the store and engine.

`Service` holds the store and a `ZoneIndex` over the zones in it. The index is never stale: every
use reads the store's zone-change token first, which every process on the database sees move, and
rebuilds the index when it moved. So a zone written through one worker is used by the next check
in every worker.

Reports come in as an `app.batch.ReportBatch` (columns, built once per request), and what the
engine and the store can hold is checked in `app.limits`: this module only puts them together.

Findings go out as GeoJSON Point features written from the engine's columns
(`app.findings.FindingColumns`). Stored incursions come from a `ViolationLog`, which keeps them up
to date between calls instead of judging every stored report again.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from app.batch import ReportBatch
from app.domain import Party, Report, Verdict, Zone, ZoneKind
from app.engine import Judged, SetAside, ZoneIndex
from app.errors import InvalidParameter
from app.findings import FindingColumns
from app.incursions import ViolationLog
from app.limits import check_time, check_zone, to_us
from app.parties import PartyRegistry, check_party, resolve_batch
from app.scenario import GEODATA, load_scenario
from app.store import (
    REPORT_PAGE,
    AuditEntry,
    BBox,
    NotFound,
    ReportVersion,
    Store,
    UnknownZone,
    iter_report_pages,
)
from app.tracks import track_events, track_summary, track_units
from app.zone_import import ZoneImport, plan_zone_import

__all__ = ["MAX_REASON_CHARS", "Checked", "Corrected", "Filed", "Service", "Track", "Updated"]

#: The longest retraction reason taken, in characters.
MAX_REASON_CHARS = 2000

JSON = dict[str, Any]


# -- answers ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checked:
    """What a check found: finding features, and warnings about the input (swapped lat/lon)."""

    findings: list[JSON]
    warnings: list[str]
    violations: int
    #: The violations counted by certainty: `inside` apart from `possible`.
    violations_by_verdict: dict[str, int] = field(
        default_factory=lambda: {"inside": 0, "possible": 0}
    )


@dataclass(frozen=True, slots=True)
class Filed:
    """What storing a batch did: ids stored and duplicate, in input order, and the check."""

    stored: list[str]
    duplicates: list[str]
    checked: Checked


@dataclass(frozen=True, slots=True)
class Corrected:
    """What a correction did: the latest version, whether it is new, and its check."""

    version: ReportVersion
    changed: bool
    checked: Checked


@dataclass(frozen=True, slots=True)
class Updated:
    """What filing a batch with corrections did: ids stored, corrected and duplicate."""

    stored: list[str]
    corrected: list[ReportVersion]
    duplicates: list[str]


@dataclass(frozen=True, slots=True)
class Track:
    """A unit's reports in time order, its zone events and its per-zone summary."""

    reports: list[Report]
    events: list[JSON]
    summary: list[JSON]


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


def _in_bbox(lon: np.ndarray, lat: np.ndarray, bbox: BBox) -> np.ndarray:
    """Which positions lie in `bbox` (edges included); min lon > max lon crosses 180°."""
    minx, miny, maxx, maxy = bbox
    in_lat = (lat >= miny) & (lat <= maxy)
    if minx <= maxx:
        return np.asarray(in_lat & (lon >= minx) & (lon <= maxx), dtype=bool)
    return np.asarray(in_lat & ((lon >= minx) | (lon <= maxx)), dtype=bool)


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
        self._parties: tuple[tuple[int, int], PartyRegistry] | None = None
        self._violations = ViolationLog(store, lambda: self._current().token, self._violations_of)
        # One zone's versions indexed alone, for `GET /reports?zone=`.
        self._zone_indexes: dict[tuple[Any, ...], ZoneIndex] = {}

    # -- the index ------------------------------------------------------------------------

    def index(self) -> ZoneIndex:
        """The zone index, rebuilt first if any process changed the zones since it was built."""
        return self._current().index

    def indexed(self) -> tuple[int, ZoneIndex]:
        """The zone index (as `index`) with the zones token it was built under."""
        current = self._current()
        return current.token, current.index

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

    def import_zones(self, zones: Sequence[Zone], actor: str) -> ZoneImport:
        """Store zones read from a file: new zones, and new versions of stored ones.

        Versions already stored are skipped as duplicates, and a changed version that reuses a
        stored number is refused (`Conflict`) before anything is stored: the rule of
        `app.zone_import`, which `truce import zones` follows.
        """
        histories: dict[str, list[Zone]] = {}
        for zone_id in sorted({zone.id for zone in zones}):
            try:
                histories[zone_id] = self.store.zone_history(zone_id)
            except UnknownZone:
                histories[zone_id] = []
        plan = plan_zone_import(zones, histories)
        created = self.add_zones(plan.create, actor) if plan.create else []
        added = [self.new_zone_version(zone, actor) for zone in plan.add]
        return ZoneImport(created, added, plan.duplicates)

    # -- parties --------------------------------------------------------------------------

    def parties(self) -> list[Party]:
        """The registered parties, by code."""
        return self.store.list_parties()

    def party_registry(self) -> PartyRegistry:
        """The registered parties as a resolver, read again only when the store's parties token
        moved (every worker sees a change at once; single checks skip the read and rebuild)."""
        token = self.store.parties_token()
        cached = self._parties
        if cached is not None and cached[0] == token:
            return cached[1]
        # The token is read before the parties: a write in between costs one more read later.
        registry = PartyRegistry(self.store.list_parties())
        self._parties = (token, registry)
        return registry

    def party_code(self, value: str | None) -> str | None:
        """The registered code that `value` names (as in a batch), else `value` as given: a
        filter on an unknown party simply matches nothing."""
        if value is None:
            return None
        return self.party_registry().resolve(value) or value

    def put_party(self, party: Party, actor: str) -> tuple[Party, bool]:
        """Register or replace a party (validated by `check_party`); returns it and whether it
        is new. Audited in the same transaction."""
        others = [p for p in self.store.list_parties() if p.code != party.code]
        return self.store.put_party(check_party(party, others), actor)

    def resolve_parties(self, batch: ReportBatch) -> ReportBatch:
        """`batch` with each party as its registered code (`app.parties.resolve_batch`).

        Refuses an unknown party naming the report, the value and the codes. With no party
        registered, every party is taken as sent.
        """
        return resolve_batch(self.party_registry(), batch)

    # -- reports --------------------------------------------------------------------------

    def check(self, batch: ReportBatch, *, include_outside: bool = False) -> Checked:
        """Findings for a batch against the zones in force at each report's time; parties are
        resolved to their codes first (`resolve_parties`)."""
        return self._check(self.resolve_parties(batch), include_outside=include_outside)

    def _check(self, batch: ReportBatch, *, include_outside: bool = False) -> Checked:
        indexed = self._current()
        if not len(batch):
            return Checked([], [], 0)
        judged = indexed.index.judge(batch, include_outside=include_outside)
        warnings = self._swapped(indexed, batch, judged)
        violating = judged.verdict[judged.violation]
        return Checked(
            FindingColumns.of(judged, indexed.index, batch).features(),
            warnings,
            int(judged.violation.sum()),
            {
                "inside": int(np.count_nonzero(violating == "inside")),
                "possible": int(np.count_nonzero(violating == "possible")),
            },
        )

    def _swapped(self, indexed: _Indexed, batch: ReportBatch, judged: Judged) -> list[str]:
        """Warnings for reports far from every zone whose (lat, lon) would lie inside one.

        Such a report is kept as sent (it may be right), but the sender is told, since a swap is
        the commonest coordinate error and would hide an incursion.
        """
        index = indexed.index
        reports, zones = index.swapped(batch, judged.report[judged.verdict != Verdict.OUTSIDE])
        warnings = []
        for i, zone_id in zip(reports.tolist(), index.zone_ids[zones].tolist(), strict=True):
            lon, lat = float(batch.lon[i]), float(batch.lat[i])
            warnings.append(
                f"{batch.where(i)}: coordinates look swapped: "
                f"[{lon:g}, {lat:g}] is far from every zone in force, but [{lat:g}, {lon:g}] "
                f"lies in zone {zone_id!r}; the report was taken as sent "
                "(GeoJSON positions are [longitude, latitude])"
            )
        return warnings

    def add_reports(self, batch: ReportBatch, actor: str, *, findings: bool = True) -> Filed:
        """Check a batch, then store it all or nothing; re-sent ids come back as duplicates.

        Parties are stored as their registered codes (`resolve_parties`). Without `findings`
        (a caller that answers none, as the MQTT bridge) the check is skipped: `checked` is
        empty; what is stored, and its incidents, are the same.
        """
        batch = self.resolve_parties(batch)
        # Checked first: if anything in the check failed, nothing would be stored.
        checked = self._check(batch) if findings else Checked([], [], 0)
        stored, duplicates = self.store.add_reports(batch.reports(), actor)
        return Filed([r.id for r in stored], duplicates, checked)

    def update_reports(self, reports: Sequence[Report], actor: str, update: bool = True) -> Updated:
        """Store reports, all or nothing; with `update`, those stored with other content are
        filed as their next version (else they raise `Conflict`)."""
        if update:
            stored, corrected, duplicates = self.store.update_reports(reports, actor)
        else:
            stored, duplicates = self.store.add_reports(reports, actor)
            corrected = []
        return Updated([r.id for r in stored], corrected, duplicates)

    def get_report(self, report_id: str) -> ReportVersion:
        """A report's latest version (its retraction, if it was retracted)."""
        return self.store.get_report(report_id)

    def report_history(self, report_id: str) -> list[ReportVersion]:
        """Every version of a report, oldest first."""
        return self.store.report_history(report_id)

    def correct_report(self, batch: ReportBatch, actor: str) -> Corrected:
        """Check the one report of `batch`, then store it as the next version of its id.

        Content equal to the latest version stores nothing (`changed` is false).
        """
        if len(batch) != 1:
            raise ValueError("a correction is one report")
        checked = self.check(batch)
        version, changed = self.store.correct_report(batch.reports()[0], actor)
        return Corrected(version, changed, checked)

    def retract_report(self, report_id: str, reason: str, actor: str) -> ReportVersion:
        """Retract a report, with a reason a reader can understand (not blank)."""
        if not reason.strip():
            raise InvalidParameter("a retraction needs a reason", field="reason")
        if len(reason) > MAX_REASON_CHARS:
            raise InvalidParameter(
                f"the reason is {len(reason)} characters long; at most {MAX_REASON_CHARS}",
                field="reason",
            )
        if any(ord(ch) < 32 and ch not in "\t\n" for ch in reason):
            raise InvalidParameter("the reason holds a control character", field="reason")
        return self.store.retract_report(report_id, reason, actor)

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
        zone: str | None = None,
    ) -> tuple[list[Report], str | None]:
        """One page of stored reports by (observed_at, id), and the next page's cursor.

        `party` may be a code or an alias of a registered party (`party_code`). `zone` keeps the
        reports of the page that have a finding (`inside`, `possible` or `approaching`) in that
        zone, judged against the zones as they stand now: such a page may hold fewer than
        `limit` reports, or none, and still have a next one.
        """
        page, cursor = self.store.list_reports(
            since=since,
            until=until,
            party=self.party_code(party),
            bbox=bbox,
            unit=unit,
            limit=limit,
            after=after,
        )
        if zone is not None:
            page = self._with_finding_in(zone, page)
        return page, cursor

    def count_reports(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        party: str | None = None,
        bbox: BBox | None = None,
        unit: str | None = None,
        zone: str | None = None,
    ) -> int:
        """How many reports `list_reports` lists over all its pages (`numberMatched`).

        Without `zone` the store counts them; with it, every matching report is judged against
        that zone (a pass over them, as `/incursions` makes once per zone change).
        """
        code = self.party_code(party)
        if zone is None:
            return self.store.count_matching_reports(
                since=since, until=until, party=code, bbox=bbox, unit=unit
            )
        count, cursor = 0, None
        while True:
            page, cursor = self.store.list_reports(
                since=since,
                until=until,
                party=code,
                bbox=bbox,
                unit=unit,
                limit=REPORT_PAGE,
                after=cursor,
            )
            count += len(self._with_finding_in(zone, page))
            if cursor is None:
                return count

    def _with_finding_in(self, zone: str, reports: list[Report]) -> list[Report]:
        """The reports that have a finding (not `outside`) in every version of `zone`."""
        versions = [z for z in self._current().index.zones if z.id == zone]
        if not versions or not reports:
            return []
        index = self._zone_index(zone, versions)
        judged = index.judge(ReportBatch.from_reports(reports))
        keep = np.unique(judged.report)
        return [reports[i] for i in keep.tolist()]

    def _zone_index(self, zone: str, versions: list[Zone]) -> ZoneIndex:
        """An index of one zone's versions, kept until that zone changes."""
        key = (zone, tuple((z.version, z.valid_from, z.valid_to) for z in versions))
        found = self._zone_indexes.get(key)
        if found is None:
            if len(self._zone_indexes) >= 32:
                self._zone_indexes.clear()
            found = self._zone_indexes[key] = ZoneIndex(versions, threads=1)
        return found

    def incursions(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        party: str | None = None,
        zone: str | None = None,
        bbox: BBox | None = None,
        verdict: str | None = None,
    ) -> FindingColumns:
        """Stored reports' violations, ordered by report time, report id and zone id;
        `verdict` (`inside` or `possible`) keeps one certainty.

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
            keep.append(found.party == self.party_code(party))
        if zone is not None:
            keep.append(found.zone_id == zone)
        if bbox is not None:
            keep.append(_in_bbox(found.lon, found.lat, bbox))
        if verdict is not None:
            keep.append(found.verdict == verdict)
        return found.take(np.logical_and.reduce(keep)) if keep else found

    def _violations_of(self, reports: Sequence[Report]) -> tuple[int, FindingColumns]:
        """The violations among `reports`, and the zone token of the index that found them."""
        indexed = self._current()
        batch = ReportBatch.from_reports(reports)
        judged = indexed.index.judge(batch)
        violations = judged.select(judged.violation)
        return indexed.token, FindingColumns.of(violations, indexed.index, batch)

    # -- tracks ---------------------------------------------------------------------------

    def track(
        self,
        party: str,
        unit: str,
        *,
        now: datetime | None = None,
        stale_after: timedelta | None = None,
    ) -> Track:
        """A unit's reports, its zone events (entered, exited, crossed, stale) and summary.

        Staleness is judged as of `now` (default: the clock) when `stale_after` is given.
        """
        reports = self.store.get_reports_for_track(party, unit)
        if not reports:
            raise NotFound(f"no reports of unit {unit!r} of party {party!r}", field="unit")
        frame, rows, zones = self._track_input(reports)
        now = now or datetime.now(UTC)
        events = track_events(frame, rows, zones=zones, now=now, stale_after=stale_after)
        summary = track_summary(frame, rows, now=now, stale_after=stale_after)
        return Track(reports, _records(events), _records(summary))

    def tracks(
        self,
        *,
        party: str | None = None,
        zone: str | None = None,
        bbox: BBox | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        now: datetime | None = None,
        stale_after: timedelta | None = None,
    ) -> list[JSON]:
        """Every unit (of `party`), by party and unit: its latest report and position, and its
        state (`in`, `out`, `stale`) in each zone it was ever inside.

        `zone` keeps units that were ever inside that zone; `bbox` and `since`/`until` keep units
        whose latest report lies in the box and the time range.
        """
        reports = [
            r
            for page in iter_report_pages(self.store, party=party)
            for r in page
            if r.unit is not None
        ]
        if not reports:
            return []
        frame, rows, _ = self._track_input(reports)
        units = track_units(frame)
        summary = track_summary(frame, rows, now=now or datetime.now(UTC), stale_after=stale_after)
        keep = np.ones(len(units), dtype=bool)
        if since is not None:
            keep &= (units["last_report_at"] >= pd.Timestamp(since)).to_numpy(bool)
        if until is not None:
            keep &= (units["last_report_at"] < pd.Timestamp(until)).to_numpy(bool)
        if bbox is not None:
            keep &= _in_bbox(units["lon"].to_numpy(), units["lat"].to_numpy(), bbox)
        if zone is not None:
            met = summary.loc[summary["zone_id"] == zone, ["party", "unit"]]
            keep &= pd.MultiIndex.from_frame(units[["party", "unit"]]).isin(
                pd.MultiIndex.from_frame(met)
            )
        states: dict[tuple[str, str], dict[str, str]] = {}
        for p, u, z, state in summary[["party", "unit", "zone_id", "state"]].itertuples(
            index=False
        ):  # one row per (unit, zone), not per report
            states.setdefault((p, u), {})[z] = state
        records = _records(units[keep])
        for record in records:
            record["zones"] = states.get((record["party"], record["unit"]), {})
        return records

    def _track_input(
        self, reports: Sequence[Report]
    ) -> tuple[pd.DataFrame, pd.DataFrame, tuple[Zone, ...]]:
        """Reports as the engine's frame, their findings, and the zones crossings are sought in."""
        index = self.index()
        batch = ReportBatch.from_reports(reports)
        frame = batch.frame()
        return frame, index.check(frame), index.zones

    # -- audit and start-up ---------------------------------------------------------------

    def audit_log(self, limit: int = 100, after: int | None = None) -> list[AuditEntry]:
        """Audit entries oldest first, after the entry with id `after`."""
        return self.store.audit_log(limit=limit, after=after)

    def count_audit(self, after: int | None = None) -> int:
        """How many audit entries come after the one with id `after` (`numberMatched`)."""
        return self.store.count_audit(after)

    def load_scenario(self, directory: Path = GEODATA, actor: str = "scenario") -> bool:
        """Load a scenario directory (default `geodata/`) into an empty database, all or nothing.

        Returns whether it loaded anything: a database that has zones or reports is left alone,
        and of several workers starting at once on a new database, one loads it (`Store.seed`).
        """
        if self.store.list_zones() or self.store.count_reports():
            return False  # the common case, known without reading the scenario
        scenario = load_scenario(directory)
        # The scenario's reports are held to its own parties, as any batch would be.
        reports = scenario.reports
        if scenario.parties and reports:
            registry = PartyRegistry(scenario.parties)
            reports = resolve_batch(registry, ReportBatch.from_reports(reports)).reports()
        return self.store.seed(scenario.zones, reports, actor, scenario.parties)
