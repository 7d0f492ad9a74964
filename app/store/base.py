"""The storage interface: what the service needs from a database, in domain types only.

Two implementations are planned: `SQLiteStore` (an embedded file, the default) and a PostGIS
store for several processes or machines. Nothing here names SQL, so both can keep the promises
below in their own way.

Promises every implementation keeps:

- **Nothing is overwritten.** A zone change is a new version row; retiring a zone is a new
  version whose `valid_to` is the retirement time. A report's correction or retraction is a new
  version row. Reports and audit entries are never updated or deleted. (Revoking an API key
  sets its `revoked_at` once; and a registered party is replaced by its new version, whose every
  change is written whole in the audit log.)
- **Versions.** A zone's versions are numbered 1, 2, 3 ... in the order they were stored. The
  *current* version is the latest one. Each version carries its own `valid_from`/`valid_to`, but
  a later version supersedes an earlier one from the later version's `valid_from` on, so a
  version's *effective* validity is
  ``[valid_from, min(valid_to, valid_from of every later version))``.
  At most one version of a zone is therefore in force at any instant, and a retirement (a new
  version ending at the retirement time) cuts every earlier version off as well: nothing
  outlives a retirement. Queries about a time (`list_zones(at=...)`, `zones_for_index()`) return
  versions with this effective `valid_to`; `get_zone`, `zone_history` and
  `list_zones(all_versions=True)` return versions exactly as they were filed.
- **Idempotent reports.** A report's `id` identifies it: re-sending an id that is already stored
  with the *same content* as one of its versions (or repeating an id inside one batch with the
  same content) gives a duplicate, which is reported back and not stored again, so a client
  retrying after a lost answer cannot create a second report. Re-sending it with *different*
  content raises `Conflict` (naming the report's index in the batch) and stores nothing of the
  batch: a change is filed as a correction (`correct_report`, or `update_reports`).
- **Report versions.** A report's versions are numbered 1, 2, 3 ... in the order stored;
  version 1 is the report as first filed. A correction is the next version; a retraction is a
  last version that copies the content retracted, with a reason, after which the report takes
  no more versions. Every read of reports (`list_reports`, `get_reports_for_track`) gives each
  report's latest version and leaves retracted reports out; `report_history` gives them all.
  Versions and retractions take positions in the same commit order as new reports
  (`reports_after`).
- **All or nothing.** Every write method runs in one transaction; when it raises, nothing of it
  is stored.
- **Audit.** Every write appends one audit entry per zone (or one per report batch, or per key)
  in the same transaction, naming the actor (the API key's label or id, as the caller chooses):
  a write that fails leaves no entry, a batch of nothing but duplicates still leaves one
  ("stored 0, duplicates n"), an empty batch leaves none.
- **Events.** Every write that changes a zone appends a ``zone.changed`` event, and every report
  write that opens, updates or closes an incident appends its ``incident.*`` events, in the same
  transaction (`app.alerts.events`): nothing is in the log of a write that did not commit, and
  nothing committed is missing. Event ids grow in commit order (`events_after`).
- **Time.** Datetimes must be timezone-aware (naive ones raise `ValueError`); they come back
  in UTC. Report time filters are half-open like validity periods: ``since <= t < until``.
- **Errors.** `UnknownZone` (from `app.errors`), `Conflict`, `UnknownKey`, `BadCursor`; and
  `Unavailable` when the storage itself fails, by cause: `Busy` (locked by other writers),
  `StorageFull` (no space left), `ReadOnlyStorage` (the file or its file system cannot be
  written), `StorageIOError` (the disk failed or the file cannot be opened), `Unreachable`
  (a database server that is down, or the connection to it was lost). Nothing of a write that
  raises is stored, and reads keep working where the cause allows (they do when full or
  read-only). `ValueError` for arguments that no caller should pass (naive datetimes, a zone
  that ends before it starts, a bad bbox, an unknown role).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from app.alerts.events import Event
from app.alerts.incidents import Incident
from app.alerts.subscriptions import DeliveryAttempt, Subscription, SubscriptionSpec
from app.domain import Party, Report, Zone, ZoneKind
from app.errors import InvalidInput, TruceError, UnknownZone
from app.predicate import Predicate
from app.roles import ROLES

#: A bounding box in lon/lat: (min lon, min lat, max lon, max lat). A box whose min lon is
#: greater than its max lon crosses the antimeridian (as in OGC API bbox parameters).
BBox = tuple[float, float, float, float]

__all__ = [
    "ROLES",
    "AuditEntry",
    "BBox",
    "BadCursor",
    "Busy",
    "Conflict",
    "IdempotentAnswer",
    "KeyRecord",
    "NotFound",
    "ReadOnlyStorage",
    "Store",
    "StorageFull",
    "StorageIOError",
    "StoreError",
    "Unavailable",
    "COLUMN_CHUNK",
    "ReportColumns",
    "ReportSelection",
    "ReportVersion",
    "IncidentFilter",
    "UnknownIncident",
    "UnknownKey",
    "UnknownReport",
    "UnknownSubscription",
    "UnknownZone",
    "Unreachable",
    "UnsupportedDatabase",
    "hash_key",
    "iter_report_pages",
]


class StoreError(TruceError):
    """Base of the errors that only storage raises (`UnknownZone` comes from `app.errors`)."""

    title = "Storage error"


class Conflict(StoreError):
    """The write contradicts what is stored (an existing zone id, a zone already retired...)."""

    title = "Conflict"


class NotFound(StoreError):
    """The thing asked for is not stored."""

    title = "Not found"


class UnknownKey(NotFound):
    """No API key with this id."""

    title = "Unknown API key"


class UnknownReport(NotFound):
    """No report with this id."""

    title = "Unknown report"


class UnknownIncident(NotFound):
    """No incident with this id."""

    title = "Unknown incident"


class UnknownSubscription(NotFound):
    """No (undeleted) webhook subscription with this id."""

    title = "Unknown subscription"


class BadCursor(InvalidInput):
    """A pagination cursor that this store did not hand out."""

    title = "Invalid cursor"


class Unavailable(StoreError):
    """The storage cannot serve the request for now; the operator (or time) has to fix it.

    `cause` is a short name for clients and monitoring; `retry_after` says, in seconds, when
    trying again makes sense.
    """

    title = "Storage unavailable"
    cause: ClassVar[str] = "unavailable"
    retry_after: ClassVar[int] = 30


class Busy(Unavailable):
    """The database stayed locked by other writers for longer than the store waits; retry."""

    title = "Database busy"
    cause = "busy"
    retry_after = 1


class StorageFull(Unavailable):
    """The database's disk (or quota) is full: no write can succeed until space is freed."""

    title = "Insufficient storage"
    cause = "disk-full"
    retry_after = 60


class ReadOnlyStorage(Unavailable):
    """The database file, or the file system holding it, cannot be written."""

    title = "Database is read-only"
    cause = "read-only"
    retry_after = 60


class StorageIOError(Unavailable):
    """The disk failed (an I/O error), or the database file cannot be opened."""

    title = "Storage I/O error"
    cause = "io-error"
    retry_after = 30


class Unreachable(Unavailable):
    """The database server cannot be reached (down, restarting, or the connection was lost).

    Nothing of the write that raised is stored; the store reconnects by itself once the server
    is back.
    """

    title = "Database unreachable"
    cause = "unreachable"
    retry_after = 2


class UnsupportedDatabase(StoreError):
    """A database URL whose scheme no store implements (yet)."""

    title = "Unsupported database"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One write: who (`actor`) did what (`action`) to what (`target`), and when (`at`, UTC).

    `id` increases with every entry and is the cursor for `Store.audit_log(after=...)`.
    Actions: ``zone.create``, ``zone.version``, ``zone.retire``, ``reports.add``,
    ``report.version`` (a correction; the target is the report id), ``report.retract``,
    ``key.create``, ``key.revoke``, ``party.create``, ``party.update`` (the target is the code,
    the detail the party as written, in JSON), ``auth.throttle`` (a client address sent too many
    wrong keys; the target is the address).
    """

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: str | None = None


def hash_key(secret: str) -> str:
    """The SHA-256 hex digest under which a key is stored (`Store.add_key`, `find_key`)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """An API key as stored: only the hash of the secret, never the secret itself."""

    id: int
    key_hash: str
    role: str
    label: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        """Whether the key may still be used."""
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class ReportVersion:
    """One version of a stored report: its content, number, when it was filed, and whether it
    is the report's retraction (then `report` is the content retracted and `reason` says why)."""

    report: Report
    version: int
    filed_at: datetime
    retracted: bool = False
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ReportSelection:
    """One page of `Store.select_reports`: the reports in (observed_at, id) order, whether more
    lie beyond the page in the direction it was asked for, and the cursors at its first and last
    report (None for an empty page), to ask for the pages before and after it."""

    reports: list[Report]
    more: bool
    first: str | None
    last: str | None


#: Rows per chunk when a store reads report columns (`ReportColumns.from_chunks`).
COLUMN_CHUNK = 50_000


@dataclass(frozen=True, slots=True)
class ReportColumns:
    """Reports (latest versions, retracted ones left out) as columns in (observed_at, id)
    order: what a map of a season reads, without a `Report` object per row.

    `t_us` is `observed_at` in microseconds since the epoch (UTC); text columns are object
    arrays (None where a report has no value).
    """

    id: np.ndarray
    party: np.ndarray
    t_us: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    uncertainty_m: np.ndarray
    kind: np.ndarray
    unit: np.ndarray
    source: np.ndarray
    confidence: np.ndarray

    def __len__(self) -> int:
        return len(self.t_us)

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[Any]]) -> ReportColumns:
        """Columns from rows of (id, party, t_us, lon, lat, u, kind, unit, source, confidence)."""
        if not rows:
            empty = np.empty(0, object)
            return cls(
                empty, empty, np.empty(0, np.int64), np.empty(0), np.empty(0), np.empty(0),
                empty, empty, empty, empty,
            )  # fmt: skip
        columns = list(zip(*rows, strict=True))

        def text(k: int) -> np.ndarray:
            values = np.empty(len(rows), object)
            values[:] = columns[k]
            return values

        return cls(
            id=text(0),
            party=text(1),
            t_us=np.fromiter(columns[2], np.int64, len(rows)),
            lon=np.fromiter(columns[3], np.float64, len(rows)),
            lat=np.fromiter(columns[4], np.float64, len(rows)),
            uncertainty_m=np.fromiter(columns[5], np.float64, len(rows)),
            kind=text(6),
            unit=text(7),
            source=text(8),
            confidence=text(9),
        )

    @classmethod
    def from_chunks(cls, chunks: Iterable[Sequence[Sequence[Any]]]) -> ReportColumns:
        """Columns from rows read a chunk at a time (as `from_rows`): each chunk's tuples are
        dropped once read, and each repeating text (party, kind, unit, source, confidence) is
        one string object shared by all its rows. A million rows read whole, each with its own
        copy of "AZE", took 700 MB; read this way, about a third of that."""
        shared: dict[str, str] = {}
        parts = []
        for rows in chunks:
            part = cls.from_rows(rows)
            parts.append(
                replace(part, **{name: _shared(getattr(part, name), shared) for name in _REPEATING})
            )
        if not parts:
            return cls.from_rows([])
        names = [f.name for f in fields(cls)]
        return cls(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in names})


#: The text columns of `ReportColumns` whose values repeat (all but `id`).
_REPEATING = ("party", "kind", "unit", "source", "confidence")


def _shared(values: np.ndarray, table: dict[str, str]) -> np.ndarray:
    """`values` (an object array of str and None) with equal strings made one object."""
    if not len(values):
        return values
    codes, uniques = pd.factorize(values)
    canonical = np.empty(len(uniques) + 1, object)
    canonical[:-1] = [table.setdefault(u, u) for u in uniques.tolist()]
    canonical[-1] = None  # code -1: no value
    shared: np.ndarray = canonical[codes]
    return shared


@dataclass(frozen=True, slots=True)
class IdempotentAnswer:
    """What a write sent with an `Idempotency-Key` was answered (or that it is still running).

    `fingerprint` identifies the request (method, path and body) that first used the key;
    `status` is None while that request is still running, and then `body` and `headers` are
    empty.
    """

    fingerprint: str
    created_at: datetime
    status: int | None = None
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class IncidentFilter:
    """Which incidents `Store.list_incidents` lists: those seen in ``[since, until)`` (opened
    before `until` and last seen at or after `since`), of a zone, a party, a verdict (`inside`,
    `possible`) and a state (`open`, `closed`); None is any."""

    since: datetime | None = None
    until: datetime | None = None
    zone: str | None = None
    party: str | None = None
    verdict: str | None = None
    state: str | None = None


@runtime_checkable
class Store(Protocol):
    """Everything the service stores: zones (versioned), reports, API keys and the audit log."""

    # -- zones ------------------------------------------------------------------------------

    def add_zones(self, zones: Sequence[Zone], actor: str) -> list[Zone]:
        """Create zones, each as version 1, all or none.

        Raises `Conflict` when an id is already stored or repeated in `zones`. Returns the zones
        as stored (their `version` set to 1).
        """
        ...

    def new_zone_version(self, zone: Zone, actor: str) -> Zone:
        """Store `zone` as the next version of the stored zone with the same id.

        `zone.version` is ignored; the stored version is the latest plus one, and is returned.
        Raises `UnknownZone` when no zone has this id.
        """
        ...

    def retire_zone(self, zone_id: str, at: datetime, actor: str) -> Zone:
        """Retire a zone from `at` on: store a copy of its latest version with `valid_to = at`.

        Raises `UnknownZone` for an unknown id, and `Conflict` when `at` is not after the latest
        version's `valid_from` or the latest version already ends at or before `at` (a zone is
        retired once; retiring cannot extend a validity).
        """
        ...

    def get_zone(self, zone_id: str) -> Zone:
        """The latest version of a zone, as filed. Raises `UnknownZone`."""
        ...

    def zone_history(self, zone_id: str) -> list[Zone]:
        """Every version of a zone, oldest first, as filed. Raises `UnknownZone`."""
        ...

    def list_zones(
        self,
        at: datetime | None = None,
        bbox: BBox | None = None,
        kind: ZoneKind | str | None = None,
        all_versions: bool = False,
    ) -> list[Zone]:
        """Zones, ordered by id then version.

        - `at` given: the versions in force at `at` under their effective validity (see the
          module docstring), at most one per zone, with the effective `valid_to`;
        - `at` None: the latest version of every zone (retired ones included), or every version
          when `all_versions` is true (`all_versions` is ignored when `at` is given).

        `bbox` keeps zones whose envelope intersects the box; `kind` keeps one kind.
        """
        ...

    def zones_for_index(self) -> list[Zone]:
        """Every version that is in force at some instant, with its effective `valid_to`.

        This is what the engine indexes: it judges each report against the versions with
        `zone.in_force(report.observed_at)`, and the effective validity guarantees that at most
        one version of a zone applies and that none outlives a retirement. Versions wholly
        superseded (empty effective validity) are left out.
        """
        ...

    def zones_changed_token(self) -> int:
        """A number that changes with every zone write, seen by every process on the database.

        Read it *before* `zones_for_index()` and keep it with the index built from those zones;
        when it differs later, rebuild. (Reading it after could pair an old zone list with a new
        token and leave the index stale.)
        """
        ...

    def seed(
        self,
        zones: Sequence[Zone],
        reports: Sequence[Report],
        actor: str,
        parties: Sequence[Party] = (),
    ) -> bool:
        """Fill an empty store with zones (every version), parties and reports, in one transaction.

        Each id's versions are stored in the order of their `version`, numbered from 1. Returns
        False, and writes nothing, when the store already holds a zone or a report: of several
        processes seeding one database at once, exactly one does it. A failure midway leaves the
        store empty, never half-filled.
        """
        ...

    # -- parties ----------------------------------------------------------------------------

    def list_parties(self) -> list[Party]:
        """Every registered party, ordered by code."""
        ...

    def parties_token(self) -> tuple[int, int]:
        """A value that changes whenever a party is registered or replaced (cheap to read)."""
        ...

    def put_party(self, party: Party, actor: str) -> tuple[Party, bool]:
        """Register `party`, or replace the party with its code; returns it and whether it is new.

        One audit entry (``party.create`` or ``party.update``, the party in its detail) in the
        same transaction. The caller validates (`app.parties.check_party`).
        """
        ...

    # -- reports ----------------------------------------------------------------------------

    def add_reports(self, reports: Sequence[Report], actor: str) -> tuple[list[Report], list[str]]:
        """Store a batch of reports, all or nothing.

        Returns ``(stored, duplicate_ids)``: the reports stored, in input order, and one id per
        input report that was a duplicate (its id already stored, or repeated earlier in the
        batch), in input order, so ``len(stored) + len(duplicate_ids) == len(reports)``.
        """
        ...

    def update_reports(
        self, reports: Sequence[Report], actor: str
    ) -> tuple[list[Report], list[ReportVersion], list[str]]:
        """Like `add_reports`, but a stored report sent with different content becomes its next
        version instead of a `Conflict` (what `truce import reports --update` does).

        Returns ``(stored, corrected, duplicate_ids)`` in input order. A retracted report sent
        with different content, or an id repeated in the batch with different content, still
        raises `Conflict`. One ``reports.add`` audit entry for the batch and one
        ``report.version`` entry per correction, all or nothing.
        """
        ...

    def get_report(self, report_id: str) -> ReportVersion:
        """The latest version of a report (its retraction, if retracted). `UnknownReport`."""
        ...

    def latest_reports(self, report_ids: Sequence[str]) -> list[ReportVersion]:
        """The latest version of each report, in the order of `report_ids`, in one query (an
        incident's reports); ids that are not stored are left out."""
        ...

    def correct_report(self, report: Report, actor: str) -> tuple[ReportVersion, bool]:
        """Store `report` as the next version of the stored report with its id.

        Returns the latest version and whether it is new: content equal to the latest version
        stores nothing (a retried correction is not a second one). Raises `UnknownReport`, and
        `Conflict` when the report was retracted. Audited as ``report.version``.
        """
        ...

    def retract_report(self, report_id: str, reason: str, actor: str) -> ReportVersion:
        """Retract a report: a last version that copies the latest content, with `reason`.

        Raises `UnknownReport`, and `Conflict` when it is already retracted. Audited as
        ``report.retract``.
        """
        ...

    def report_history(self, report_id: str) -> list[ReportVersion]:
        """Every version of a report, oldest first (the retraction last). `UnknownReport`."""
        ...

    def list_reports(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        party: str | None = None,
        bbox: BBox | None = None,
        unit: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> tuple[list[Report], str | None]:
        """Reports with ``since <= observed_at < until``, ordered by (observed_at, id).

        Returns one page of at most `limit` reports and the cursor of the next page (None when
        this page is the last). Pass the cursor back as `after`, with the same filters, to get
        the next page; pages never skip or repeat a report, even while reports are added.
        Raises `BadCursor` for a cursor this store did not make.
        """
        ...

    def select_reports(
        self,
        where: Predicate | None,
        *,
        limit: int,
        after: str | None = None,
        before: str | None = None,
    ) -> ReportSelection:
        """Reports (latest versions, retracted ones left out) that `where` keeps, in
        (observed_at, id) order, one page at a time: the first `limit`; or, with `after` (a
        cursor), the first `limit` after it; or, with `before`, the last `limit` before it.

        `where` is an `app.predicate.Predicate` over the report properties `id`, `party`,
        `observed_at`, `uncertainty_m`, `kind`, `unit`, `source`, `confidence`, `notes`, and
        `Intersects` on the report's point; each store renders it to its own query in one place
        (SQLite: `app.store.sqlite_filter.render`) with the semantics of `app.predicate`.
        Keyset paging: pages never skip or repeat a report, whatever is filed meanwhile. Raises
        `BadCursor` for a cursor this store did not make, and `ValueError` for a property it
        does not know.
        """
        ...

    def count_reports_where(self, where: Predicate | None) -> int:
        """How many reports `select_reports` would list with `where`, all pages together."""
        ...

    def reports_extent(self) -> tuple[BBox | None, datetime | None, datetime | None]:
        """The box around the reports `select_reports` lists (lon/lat), and their first and
        last `observed_at`; Nones when there are none."""

    def count_matching_reports(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        party: str | None = None,
        bbox: BBox | None = None,
        unit: str | None = None,
    ) -> int:
        """How many reports `list_reports` lists with these filters, over all its pages (latest
        versions, retracted reports left out): the `numberMatched` of `GET /reports`."""
        ...

    def reports_after(self, position: int, limit: int) -> tuple[list[ReportVersion], int]:
        """Up to `limit` report versions in the order they were stored, after `position` (0:
        the first): new reports (version 1), corrections and retractions alike.

        Returns them and the position to ask from next time (`position` again when there are
        none). Positions must grow in commit order: a reader that keeps its position then sees
        every report stored later exactly once, whatever other writers do meanwhile. (SQLite's
        rowids do, as its writers are serialised. A server database whose transactions commit
        out of order needs more than a sequence: e.g. PostgreSQL's commit order through a lock
        taken by every writer of reports, or positions behind the oldest running transaction.)
        """
        ...

    def get_reports_for_track(self, party: str, unit: str) -> list[Report]:
        """Every report of one unit, ordered by (observed_at, id)."""
        ...

    def report_columns(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        party: str | None = None,
    ) -> ReportColumns:
        """Every report `list_reports` lists with these filters, all pages at once, as columns
        (the map of a season reads them in one query)."""
        ...

    def reports_token(self) -> int:
        """A number that changes with every report write (new report, correction or
        retraction): the newest report position. Cheap: one index probe, no scan."""
        ...

    def count_reports(self) -> int:
        """How many reports are stored (ids, retracted ones included; not versions)."""
        ...

    # -- events -----------------------------------------------------------------------------

    def events_after(
        self, after_id: int, limit: int = 1000, types: Sequence[str] | None = None
    ) -> list[Event]:
        """Up to `limit` events with ids greater than `after_id`, ascending (of `types` only,
        when given).

        Ids grow in commit order: a reader that asks again with the last id it saw gets every
        event committed since exactly once, whatever other writers do meanwhile.
        """
        ...

    def last_event_id(self) -> int:
        """The id of the latest event (0 when the log is empty)."""
        ...

    def watch_events(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Call `callback(event_id)`, from any thread, when this store learns that events up
        to that id were committed; returns the function that stops the calls.

        The PostGIS store hears the commits of every process (LISTEN/NOTIFY) while
        `events_heard_everywhere` is true; the SQLite store those of its own process only.
        """
        ...

    def events_heard_everywhere(self) -> bool:
        """Whether `watch_events` hears every process's commits right now (else a reader must
        also poll `last_event_id` for the commits of other processes)."""
        ...

    def incident_events(self, incident_id: int) -> list[Event]:
        """Every event of one incident, oldest first (its timeline). `UnknownIncident`."""
        ...

    # -- incidents (kept by the report writes, `app.alerts.incidents`) ------------------------

    def list_incidents(
        self, where: IncidentFilter, *, limit: int = 100, after: str | None = None
    ) -> tuple[list[Incident], str | None]:
        """Incidents that `where` keeps, by (opened_at, id): one page and the next cursor (None
        on the last page). Keyset paging; `BadCursor` for a cursor this store did not make."""
        ...

    def count_incidents(self, where: IncidentFilter) -> int:
        """How many incidents `list_incidents` lists with `where`, all pages together."""
        ...

    def get_incident(self, incident_id: int) -> Incident:
        """One incident. Raises `UnknownIncident`."""
        ...

    def mark_stale_tracks(self, now: datetime, stale_after: timedelta) -> list[Event]:
        """Write one `track.stale` event for each open incident last seen at or before
        ``now - stale_after`` that has none yet for that sighting; returns the events written.

        One transaction; several processes sweeping together write each event once.
        """
        ...

    # -- audit ------------------------------------------------------------------------------

    def audit_log(self, limit: int = 100, after: int | None = None) -> list[AuditEntry]:
        """Audit entries oldest first; `after` is the `id` of the last entry already seen."""
        ...

    def count_audit(self, after: int | None = None) -> int:
        """How many audit entries come after the one with id `after` (every one: None)."""
        ...

    def add_audit_entry(
        self, actor: str, action: str, target: str, detail: str | None = None
    ) -> AuditEntry:
        """Append an audit entry for something that is not a write of the store (such as
        ``auth.throttle``), and return it."""
        ...

    # -- idempotency keys -------------------------------------------------------------------
    # The answers to writes sent with an `Idempotency-Key` header, kept for their retries. Not
    # part of the record: entries expire, and the HTTP layer owns what they mean.

    def claim_idempotency_key(
        self, actor: str, key: str, fingerprint: str, expire_before: datetime
    ) -> IdempotentAnswer | None:
        """Claim `key` of `actor` for a request, or return what it is already claimed by.

        First forgets every entry created before `expire_before`. Then, when (actor, key) is
        not stored, stores it as running (with `fingerprint`) and returns None: the caller
        runs the request and then calls `finish_idempotency_key` or `release_idempotency_key`.
        Otherwise returns the stored entry, unchanged. Of concurrent claims, exactly one
        gets None.
        """
        ...

    def finish_idempotency_key(
        self,
        actor: str,
        key: str,
        status: int,
        body: bytes,
        headers: Sequence[tuple[str, str]],
    ) -> None:
        """Store the answer of the request that claimed (actor, key)."""
        ...

    def release_idempotency_key(self, actor: str, key: str) -> None:
        """Forget a running claim (its request failed, so a retry must run it again)."""
        ...

    # -- API keys ---------------------------------------------------------------------------

    def add_key(self, key_hash: str, role: str, label: str, actor: str) -> KeyRecord:
        """Store an API key by the hash of its secret (the caller hashes, e.g. SHA-256).

        Raises `ValueError` for a role not in `ROLES` and `Conflict` for a hash already stored.
        """
        ...

    def find_key(self, key_hash: str) -> KeyRecord | None:
        """The *active* key with this hash, or None (unknown or revoked)."""
        ...

    def list_keys(self) -> list[KeyRecord]:
        """Every key, revoked ones included, oldest first."""
        ...

    def revoke_key(self, key_id: int, actor: str) -> KeyRecord:
        """Revoke a key; revoking a revoked key changes nothing. Raises `UnknownKey`."""
        ...

    # -- subscriptions (app/alerts) -----------------------------------------------------------
    # Webhook (and MQTT) subscriptions with their delivery state, the attempts, and a lease per
    # subscription so that exactly one process delivers it at a time. SQLite:
    # app/store/sqlite_subscriptions.py; PostGIS: app/store/postgis_subscriptions.py.

    def add_subscription(
        self, spec: SubscriptionSpec, secret: str, actor: str, cursor: int, kind: str = "webhook"
    ) -> Subscription:
        """Store a subscription whose delivery starts after event `cursor`; audited as
        ``subscription.create``."""
        ...

    def list_subscriptions(self, kind: str = "webhook") -> list[Subscription]:
        """Every subscription of `kind` not deleted, by id."""
        ...

    def get_subscription(self, subscription_id: int) -> Subscription:
        """One subscription not deleted. Raises `UnknownSubscription`."""
        ...

    def delete_subscription(self, subscription_id: int, actor: str) -> None:
        """Delete a subscription (its attempts are kept). Raises `UnknownSubscription`."""
        ...

    def replay_subscription(self, subscription_id: int, cursor: int, actor: str) -> Subscription:
        """Deliver again every event after `cursor`: the cursor moves there, the state is
        active again and the attempts start over; a ``replayed`` marker is recorded."""
        ...

    def list_deliveries(
        self, subscription_id: int, limit: int = 100, after: int | None = None
    ) -> tuple[list[DeliveryAttempt], int]:
        """Attempts of one subscription, newest first, older than the attempt id `after`
        (paging backwards), and how many there are in all. Raises `UnknownSubscription`."""
        ...

    def lease_subscription(
        self, subscription_id: int, holder: str, ttl_s: float
    ) -> Subscription | None:
        """Take or renew the lease on a subscription for `ttl_s` seconds; None when another
        holder's lease has not expired (or the subscription is deleted)."""
        ...

    def release_subscription(self, subscription_id: int, holder: str) -> None:
        """Give up the lease if `holder` has it."""
        ...

    def record_delivery(
        self,
        subscription: Subscription,
        holder: str,
        made: Sequence[DeliveryAttempt],
        *,
        cursor: int,
        attempts: int,
        state: str = "active",
        failing_since: datetime | None = None,
        next_attempt_at: datetime | None = None,
    ) -> bool:
        """Write attempts (`made`, oldest first) and the subscription's new delivery state, in one
        transaction, if `holder` still has the lease and nobody replayed the subscription since
        `subscription` was read (same generation); else write nothing and return False."""
        ...

    # -- readiness --------------------------------------------------------------------------

    def check_writable(self) -> None:
        """Prove that a write can be stored now, with a real (tiny) write.

        Raises an `Unavailable` that names the cause (disk full, read-only, busy, I/O error);
        returns None when the store can take writes.
        """
        ...

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Release the connections; the store must not be used afterwards."""
        ...


#: Reports read per page when a caller walks every stored report of a range.
REPORT_PAGE = 10_000


def iter_report_pages(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    party: str | None = None,
    page_size: int = REPORT_PAGE,
) -> Iterator[list[Report]]:
    """Every stored report of the range, one `Store.list_reports` page at a time."""
    cursor: str | None = None
    while True:
        page, cursor = store.list_reports(
            since=since, until=until, party=party, limit=page_size, after=cursor
        )
        yield page
        if cursor is None:
            return
