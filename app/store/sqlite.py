"""`SQLiteStore`: the `Store` in one embedded SQLite file, the default for a single server.

Choices, and why:

- **WAL mode**, so readers never wait for a writer and a writer never waits for readers.
- **`synchronous=FULL` by default**: each commit fsyncs the WAL before `add_reports` returns, so a
  report acknowledged with 201 survives a power cut, not only a killed process. `NORMAL` keeps
  acknowledged writes across SIGKILL (the WAL is already in the OS) but may lose the last commits
  on power loss; it can be chosen with ``?synchronous=normal`` when fsync is slow. The fsync is
  per transaction, so a batch of 1e5 reports pays it once.
- **`BEGIN IMMEDIATE` for every write**: the write lock is taken up front, so two writers queue on
  the busy timeout instead of one failing with "database is locked" when it upgrades a read lock.
  The timeout (30 s) also covers writers in other processes.
- **One connection per thread** (and per process, after a fork): the FastAPI threadpool calls the
  store from many threads, and a sqlite3 connection must not be shared by concurrent callers.
- **Times as integer microseconds since 1970 UTC**: exact, ordered correctly by plain integer
  comparison whatever offset the client used, and cheap to index. They come back as UTC.
- **Geometry as WKB** (`shapely.to_wkb`) with the envelope in four REAL columns for bbox filters;
  the PostGIS store keeps a geometry column with a GiST index instead.
- **Bulk reports**: a batch is one `executemany` in one transaction, in id order, with a 128 MiB
  page cache for batches of 10,000 or more; duplicates are found with the write lock held, so
  two processes sending the same id store it once. 1e5 reports take about 1.4 s on a new file.
- **bbox on reports** is a filter on the time-ordered scan (no spatial index, which would slow
  ingest): fast when it matches often or with since/until, a full scan when it matches nothing.
- **Immutability in the schema**: triggers refuse UPDATE and DELETE on zones, reports and the
  audit log, so "nothing is ever overwritten" does not rest on this module alone.
- **Storage failures by name**: a full disk, a read-only file, a lock held too long and a failing
  disk are raised as `StorageFull`, `ReadOnlyStorage`, `Busy` and `StorageIOError` (the HTTP
  layer answers 507/503 with `Retry-After`); nothing is kept of the failed transaction, reads go
  on, and the same connections write again once the cause is gone. `check_writable` proves a
  write for `/ready`. Online copies are in `app.store.sqlite_backup`.
- **Schema migrations**: a `schema_version` table and the `MIGRATIONS` list; a file from a newer
  Truce is refused instead of being misread.
"""

from __future__ import annotations

import base64
import math
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import shapely

from app.alerts.events import TRACK_STALE, ZONE_CHANGED, Event, check_types, zone_changed_payload
from app.alerts.incidents import (
    STALE_LOOKBACK,
    STALE_UNITS_PER_SWEEP,
    Incident,
    Touched,
    TrackRow,
    held_stale_payload,
    keep_incidents,
    stale_payload,
    zones_held,
)
from app.alerts.zone_changes import Region, follow_zone_changes
from app.domain import Confidence, Party, Report, ReportKind, Zone, ZoneKind
from app.engine import ZoneIndex
from app.predicate import Predicate
from app.store.base import (
    COLUMN_CHUNK,
    ROLES,
    AuditEntry,
    BadCursor,
    BBox,
    Busy,
    Conflict,
    IdempotentAnswer,
    IncidentFilter,
    KeyRecord,
    ReadOnlyStorage,
    ReportColumns,
    ReportSelection,
    ReportVersion,
    StorageFull,
    StorageIOError,
    Store,
    StoreError,
    Unavailable,
    UnknownIncident,
    UnknownKey,
    UnknownReport,
    UnknownZone,
)
from app.store.event_watch import EventWatchers
from app.store.sqlite_filter import REPORT_COLUMNS, register_functions, render
from app.store.sqlite_subscriptions import SUBSCRIPTIONS_MIGRATION, SQLiteSubscriptions

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
#: The id of the last event appended by this thread's write transaction (0: none), told to the
#: watchers once it commits. Per thread, as each thread has its own connection.
_appended = threading.local()
# Well under SQLite's smallest default limit on bound parameters (999 before 3.32).
_IN_CHUNK = 900
# Page cache per connection, in KiB (negative, as SQLite takes it). Each thread has its own
# connection, so the everyday cache stays modest; a big batch of reports gets a large one for
# its transaction: its index pages then stay in memory instead of being spilled to the WAL and
# read back, which halves the time of a 1e5-report batch.
_CACHE_KIB = -16_384
_BIG_BATCH = 10_000
_BIG_BATCH_CACHE_KIB = -131_072
_SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA")


def _immutable(table: str) -> tuple[str, str]:
    return (
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} rows are never overwritten'); END",
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} rows are never deleted'); END",
    )


#: The schema, one tuple of statements per version; append, never edit a released one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # A counter per name; `zones_token` changes with every zone write.
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        "INSERT INTO meta (key, value) VALUES ('zones_token', 0)",
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at INTEGER NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            detail TEXT
        )""",
        # `seq` is only the physical order; a version is (zone_id, version).
        """CREATE TABLE zones (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            zone_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            geometry BLOB NOT NULL,
            minx REAL, miny REAL, maxx REAL, maxy REAL,
            valid_from INTEGER NOT NULL,
            valid_to INTEGER,
            authorized_parties TEXT NOT NULL,
            warning_distance_m REAL NOT NULL,
            agreement TEXT,
            source TEXT,
            audit_id INTEGER NOT NULL REFERENCES audit (id),
            UNIQUE (zone_id, version)
        )""",
        # Every report links to the audit entry of its batch: who filed it and when.
        """CREATE TABLE reports (
            id TEXT PRIMARY KEY,
            party TEXT NOT NULL,
            observed_at INTEGER NOT NULL,
            lon REAL NOT NULL,
            lat REAL NOT NULL,
            uncertainty_m REAL NOT NULL,
            kind TEXT NOT NULL,
            unit TEXT,
            source TEXT,
            confidence TEXT,
            notes TEXT,
            extra TEXT,
            audit_id INTEGER NOT NULL REFERENCES audit (id)
        )""",
        "CREATE INDEX reports_by_time ON reports (observed_at, id)",
        # Pages filtered by party walk this index in page order instead of sorting the party.
        "CREATE INDEX reports_by_party ON reports (party, observed_at, id)",
        "CREATE INDEX reports_by_track ON reports (party, unit, observed_at, id)",
        """CREATE TABLE api_keys (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            key_hash TEXT NOT NULL UNIQUE,
            role TEXT NOT NULL,
            label TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            created_by TEXT NOT NULL,
            revoked_at INTEGER,
            revoked_by TEXT
        )""",
        *_immutable("zones"),
        *_immutable("reports"),
        *_immutable("audit"),
        "CREATE TRIGGER api_keys_no_delete BEFORE DELETE ON api_keys "
        "BEGIN SELECT RAISE(ABORT, 'api_keys rows are never deleted'); END",
    ),
    # report versions: corrections and retractions, as new rows (a `reports` row is version 1
    # and stays as filed). `seq` shares one commit-order sequence with the rowids of `reports`:
    # both are the positions of `reports_after`. A retraction copies the content retracted.
    (
        """CREATE TABLE report_versions (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL,
            version INTEGER NOT NULL,
            retracted INTEGER NOT NULL,
            reason TEXT,
            party TEXT NOT NULL,
            observed_at INTEGER NOT NULL,
            lon REAL NOT NULL,
            lat REAL NOT NULL,
            uncertainty_m REAL NOT NULL,
            kind TEXT NOT NULL,
            unit TEXT,
            source TEXT,
            confidence TEXT,
            notes TEXT,
            extra TEXT,
            audit_id INTEGER NOT NULL REFERENCES audit (id),
            UNIQUE (id, version)
        )""",
        *_immutable("report_versions"),
    ),
    (
        # parties: the registry (app.parties). A change replaces the row; every change is in
        # the audit log with the party as written, so the history is kept there.
        """CREATE TABLE parties (
            code TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            color TEXT NOT NULL,
            aliases TEXT NOT NULL,
            audit_id INTEGER NOT NULL REFERENCES audit (id)
        )""",
        "CREATE TRIGGER parties_no_delete BEFORE DELETE ON parties "
        "BEGIN SELECT RAISE(ABORT, 'parties rows are never deleted'); END",
    ),
    (
        # How far a zone's drawn line may be from the agreed one: part of the rule's u.
        "ALTER TABLE zones ADD COLUMN boundary_uncertainty_m REAL NOT NULL DEFAULT 0",
    ),
    (
        # The event log (app.alerts.events): appended in the transaction of the change that
        # caused each event; writers are serialised, so ids grow in commit order.
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            type TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            incident_id INTEGER,
            zone_id TEXT,
            data TEXT NOT NULL
        )""",
        "CREATE INDEX events_by_incident ON events (incident_id, id)",
        *_immutable("events"),
        # Incidents (app.alerts.incidents): derived from the reports and kept in step with them
        # in the same transactions, so rows change; their history is in `events`. A report
        # without a unit is its own incident: `report_key` is its id (NULL for units).
        """CREATE TABLE incidents (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            party TEXT NOT NULL,
            unit TEXT,
            report_key TEXT,
            zone_id TEXT NOT NULL,
            zone_name TEXT NOT NULL,
            state TEXT NOT NULL,
            opened_at INTEGER NOT NULL,
            last_seen_at INTEGER NOT NULL,
            closed_at INTEGER,
            close_reason TEXT,
            verdict TEXT NOT NULL,
            depth_m REAL NOT NULL,
            deepest_report_id TEXT NOT NULL,
            last_report_id TEXT NOT NULL,
            report_ids TEXT NOT NULL,
            stale_at INTEGER
        )""",
        "CREATE INDEX incidents_by_unit ON incidents (party, unit)",
        "CREATE INDEX incidents_by_report ON incidents (report_key)",
        "CREATE INDEX incidents_by_time ON incidents (opened_at, id)",
        "CREATE INDEX incidents_open ON incidents (state, last_seen_at)",
    ),
    # webhook subscriptions, their delivery attempts and leases (app/store/sqlite_subscriptions)
    SUBSCRIPTIONS_MIGRATION,
    (
        # Units and their last sighting (latest report), kept by every report write, for the
        # stale sweeps of tracks in a zone their party is authorised in (no incident to mark).
        # `stale_at`: the sighting a sweep has looked at. Filled from the reports stored, as
        # looked at already: sightings from before this version raise no event.
        """CREATE TABLE units (
            party TEXT NOT NULL,
            unit TEXT NOT NULL,
            last_at INTEGER NOT NULL,
            last_report_id TEXT NOT NULL,
            stale_at INTEGER,
            PRIMARY KEY (party, unit)
        )""",
        "CREATE INDEX units_by_sighting ON units (last_at)",
        """INSERT INTO units (party, unit, last_at, last_report_id, stale_at)
        SELECT party, unit, observed_at, id, observed_at FROM (
            SELECT party, unit, observed_at, id, row_number() OVER (
                PARTITION BY party, unit ORDER BY observed_at DESC, id DESC
            ) AS k FROM (
                SELECT party, unit, observed_at, id FROM reports
                WHERE unit IS NOT NULL AND id NOT IN (SELECT id FROM report_versions)
                UNION ALL SELECT party, unit, observed_at, id FROM report_versions AS v
                WHERE unit IS NOT NULL AND NOT retracted
                AND version = (SELECT max(version) FROM report_versions WHERE id = v.id)
            )
        ) WHERE k = 1""",
    ),
)

_ZONE_COLUMNS = (
    "zone_id, version, name, kind, geometry, valid_from, valid_to, authorized_parties, "
    "warning_distance_m, agreement, source, boundary_uncertainty_m"
)
_REPORT_COLUMNS = (
    "id, party, observed_at, lon, lat, uncertainty_m, kind, unit, source, confidence, notes, extra"
)
_KEY_COLUMNS = "id, key_hash, role, label, created_at, created_by, revoked_at, revoked_by"

# Versions with their effective end: the earliest of their own `valid_to` and the `valid_from`
# of every later version of the same zone (see app/store/base.py). NULL means open.
_EFFECTIVE_ZONES = """
WITH later AS (
    SELECT *, MIN(valid_from) OVER (
        PARTITION BY zone_id ORDER BY version
        ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING
    ) AS next_from
    FROM zones
), effective AS (
    SELECT zone_id, version, name, kind, geometry, valid_from,
        CASE
            WHEN next_from IS NULL THEN valid_to
            WHEN valid_to IS NULL OR next_from < valid_to THEN next_from
            ELSE valid_to
        END AS valid_to,
        authorized_parties, warning_distance_m, agreement, source, boundary_uncertainty_m,
        minx, miny, maxx, maxy
    FROM later
)
SELECT zone_id, version, name, kind, geometry, valid_from, valid_to, authorized_parties,
    warning_distance_m, agreement, source, boundary_uncertainty_m
FROM effective
"""


# -- conversions ------------------------------------------------------------------------------


def _to_us(at: datetime, what: str = "datetime") -> int:
    """Microseconds since 1970 UTC; refuses naive datetimes, whose instant is unknown."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {at.isoformat()}")
    return (at - _EPOCH) // _US


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _opt_from_us(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=us)


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _zone_values(zone: Zone) -> tuple[Any, ...]:
    """A zone's columns after `zone_id, version`, up to and without `audit_id`."""
    valid_from = _to_us(zone.valid_from, "valid_from")
    valid_to = None if zone.valid_to is None else _to_us(zone.valid_to, "valid_to")
    if valid_to is not None and valid_to <= valid_from:
        raise ValueError(f"zone {zone.id!r}: valid_to must be later than valid_from")
    minx, miny, maxx, maxy = (_finite_or_none(float(b)) for b in zone.geometry.bounds)
    return (
        zone.name,
        str(zone.kind),
        bytes(shapely.to_wkb(zone.geometry)),
        minx,
        miny,
        maxx,
        maxy,
        valid_from,
        valid_to,
        orjson.dumps(sorted(zone.authorized_parties)).decode(),
        float(zone.warning_distance_m),
        zone.agreement,
        zone.source,
        float(zone.boundary_uncertainty_m),
    )


def _zones_from_rows(rows: Sequence[Sequence[Any]]) -> list[Zone]:
    # One vectorised WKB parse for the whole list.
    geometries = shapely.from_wkb([row[4] for row in rows]) if rows else []
    return [
        Zone(
            id=row[0],
            version=row[1],
            name=row[2],
            kind=ZoneKind(row[3]),
            geometry=geometry,
            valid_from=_from_us(row[5]),
            valid_to=_opt_from_us(row[6]),
            authorized_parties=frozenset(orjson.loads(row[7])),
            warning_distance_m=row[8],
            agreement=row[9],
            source=row[10],
            boundary_uncertainty_m=row[11],
        )
        for row, geometry in zip(rows, geometries, strict=True)
    ]


def _report_values(report: Report) -> tuple[Any, ...]:
    """A report's columns in `_REPORT_COLUMNS` order (the batch's audit id is appended later)."""
    return (
        report.id,
        report.party,
        _to_us(report.observed_at, "observed_at"),
        report.lon,
        report.lat,
        report.uncertainty_m,
        str(report.kind),
        report.unit,
        report.source,
        None if report.confidence is None else str(report.confidence),
        report.notes,
        orjson.dumps(report.extra).decode() if report.extra else None,
    )


def _report_from_row(row: Sequence[Any]) -> Report:
    return Report(
        id=row[0],
        party=row[1],
        observed_at=_EPOCH + timedelta(microseconds=row[2]),
        lon=row[3],
        lat=row[4],
        uncertainty_m=row[5],
        kind=ReportKind(row[6]),
        unit=row[7],
        source=row[8],
        confidence=None if row[9] is None else Confidence(row[9]),
        notes=row[10],
        extra={} if row[11] is None else orjson.loads(row[11]),
    )


def _event_from_row(row: Sequence[Any]) -> Event:
    """A row of (id, type, created_at, data) as an `Event`."""
    return Event(int(row[0]), row[1], _from_us(row[2]), orjson.loads(row[3]))


def _same_content(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Whether two rows in `_REPORT_COLUMNS` order hold the same report (ids aside).

    `extra` is JSON text: compared as values when the texts differ (key order is not content).
    """
    if tuple(a[1:11]) != tuple(b[1:11]):
        return False
    if a[11] == b[11]:
        return True
    return bool((orjson.loads(a[11]) if a[11] else {}) == (orjson.loads(b[11]) if b[11] else {}))


def _prefixed(table: str) -> str:
    """`_REPORT_COLUMNS` qualified by a table alias."""
    return ", ".join(f"{table}.{name}" for name in _REPORT_COLUMNS.split(", "))


def _report_filters(
    since: datetime | None,
    until: datetime | None,
    party: str | None,
    bbox: BBox | None,
    unit: str | None,
) -> tuple[list[str], list[Any]]:
    """The WHERE clauses and parameters of a listing of reports (`list_reports`)."""
    where: list[str] = []
    params: list[Any] = []
    if since is not None:
        where.append("observed_at >= ?")
        params.append(_to_us(since, "since"))
    if until is not None:
        where.append("observed_at < ?")
        params.append(_to_us(until, "until"))
    if party is not None:
        where.append("party = ?")
        params.append(party)
    if unit is not None:
        where.append("unit = ?")
        params.append(unit)
    if bbox is not None:
        sql, values = _bbox_filter(bbox, "lon", "lat", "lon", "lat")
        where.append(sql)
        params.extend(values)
    return where, params


def _current_reports(where: Sequence[str], params: Sequence[Any]) -> tuple[str, list[Any]]:
    """A query for every report's latest version, retracted reports left out, under `where`.

    Two arms: reports never changed (the common case, served by the indexes of `reports`) and
    the latest versions of changed ones. With an ORDER BY, SQLite merges the arms.
    """
    condition = "".join(f" AND {clause}" for clause in where)
    query = (
        f"SELECT {_REPORT_COLUMNS} FROM reports "
        f"WHERE id NOT IN (SELECT id FROM report_versions){condition} "
        f"UNION ALL SELECT {_REPORT_COLUMNS} FROM report_versions AS v WHERE NOT v.retracted "
        "AND v.version = (SELECT max(version) FROM report_versions WHERE id = v.id)"
        f"{condition}"
    )
    return query, [*params, *params]


def _versions_from_rows(rows: Sequence[Sequence[Any]]) -> list[ReportVersion]:
    """Rows of (version, retracted, reason, filed at, *report columns) as `ReportVersion`s."""
    # A batch's reports share one filing time: each time is converted once.
    times: dict[int, datetime] = {}
    versions = []
    for row in rows:
        filed_at = times.get(row[3])
        if filed_at is None:
            filed_at = times[row[3]] = _from_us(row[3])
        versions.append(
            ReportVersion(_report_from_row(row[4:]), row[0], filed_at, bool(row[1]), row[2])
        )
    return versions


def _quote_id(report_id: str) -> str:
    """A report id as it goes in a URL path (percent-encoded, `/` included)."""
    return quote(report_id, safe="")


@dataclass(slots=True)
class _Known:
    """What is stored of one report id while a batch is filed."""

    contents: list[tuple[Any, ...]]  # every version's content, oldest first (no retraction)
    latest: int = 1
    retracted: bool = False


def _key_from_row(row: Sequence[Any]) -> KeyRecord:
    return KeyRecord(
        id=row[0],
        key_hash=row[1],
        role=row[2],
        label=row[3],
        created_at=_from_us(row[4]),
        created_by=row[5],
        revoked_at=_opt_from_us(row[6]),
        revoked_by=row[7],
    )


def _bbox_filter(bbox: BBox, minx: str, miny: str, maxx: str, maxy: str) -> tuple[str, list[float]]:
    """SQL that keeps envelopes intersecting `bbox`; a box with min lon > max lon crosses 180°."""
    try:
        qminx, qminy, qmaxx, qmaxy = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise ValueError("bbox must be four numbers: min lon, min lat, max lon, max lat") from None
    if not all(math.isfinite(v) for v in (qminx, qminy, qmaxx, qmaxy)) or qminy > qmaxy:
        raise ValueError("bbox must be finite with min lat <= max lat")
    lat = f"{maxy} >= ? AND {miny} <= ?"
    if qminx <= qmaxx:
        return f"({lat} AND {maxx} >= ? AND {minx} <= ?)", [qminy, qmaxy, qminx, qmaxx]
    # Across the antimeridian the box is [qminx, 180] plus [-180, qmaxx].
    return f"({lat} AND ({maxx} >= ? OR {minx} <= ?))", [qminy, qmaxy, qminx, qmaxx]


def _encode_cursor(observed_at_us: int, report_id: str) -> str:
    raw = orjson.dumps([observed_at_us, report_id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except (ValueError, TypeError):
        raise BadCursor("not a cursor from this server", field="after") from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], int)
        or not isinstance(value[1], str)
        or not -(2**63) <= value[0] < 2**63  # what SQLite's integers hold
    ):
        raise BadCursor("not a cursor from this server", field="after")
    return value[0], value[1]


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite gave up on a lock ("database is locked"), rather than failing otherwise."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _unavailable(exc: sqlite3.Error) -> Unavailable | None:
    """The `Unavailable` that a failure of the storage itself stands for, else None.

    Only causes outside the request are translated (a full disk, a read-only file, a lock held
    too long, a failing disk): the client can do nothing but wait, and the answer says so. Other
    errors (a constraint, a bug in a statement) stay what they are.
    """
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code == sqlite3.SQLITE_FULL:
        return StorageFull(
            "the database's disk is full: nothing can be written until space is freed "
            "(reads still work)"
        )
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM):
        return ReadOnlyStorage(
            "the database is read-only (its file or file system cannot be written): "
            "nothing can be written (reads still work)"
        )
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return Busy("the database is locked by another writer; try again")
    if code in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN):
        return StorageIOError(f"the database's disk failed ({exc}); try again later")
    return None


@contextmanager
def _storage_errors() -> Iterator[None]:
    """Raise SQLite's failures of the storage itself as `Unavailable` (see `_unavailable`)."""
    try:
        yield
    except sqlite3.Error as exc:
        translated = _unavailable(exc)
        if translated is None:
            raise
        raise translated from exc


#: Below this many free bytes on the database's file system, `check_writable` reports the disk
#: full: a WAL that must grow, or a checkpoint, would fail soon, even if a tiny write still fits.
MIN_FREE_BYTES = 1 << 20


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def sort_batch(
    reports: Sequence[Report],
    values: Sequence[tuple[Any, ...]],
    known: dict[str, _Known],
    *,
    update: bool,
) -> tuple[list[int], list[int], list[str]]:
    """Sort a batch against the ids already stored (`known`), for both stores: the indexes of
    new reports, the indexes of corrections (`update` only), and the ids that are duplicates.
    Raises `Conflict` for an id twice in the batch with different content, a retracted id, or
    changed content without `update`."""
    first_at: dict[str, int] = {}
    stored_at: list[int] = []
    corrected_at: list[int] = []
    duplicates: list[str] = []
    for index, report in enumerate(reports):
        row = values[index]
        first = first_at.get(report.id)
        if first is not None:
            if not _same_content(values[first], row):
                raise Conflict(
                    f"report {report.id!r} appears twice in the batch with different "
                    f"content (first at index {first}); send one version",
                    field="id",
                    index=index,
                )
            duplicates.append(report.id)
            continue
        first_at[report.id] = index
        stored = known.get(report.id)
        if stored is None:
            stored_at.append(index)
        elif any(_same_content(content, row) for content in stored.contents):
            duplicates.append(report.id)
        elif stored.retracted:
            raise Conflict(
                f"report {report.id!r} was retracted and takes no new version; "
                "file it under a new id",
                field="id",
                index=index,
            )
        elif update:
            corrected_at.append(index)
        else:
            raise Conflict(
                f"report {report.id!r} is already stored with different content; to "
                f"correct it, send the new version with PUT /reports/{_quote_id(report.id)}",
                field="id",
                index=index,
            )
    return stored_at, corrected_at, duplicates


# -- incidents --------------------------------------------------------------------------------

_INCIDENT_COLUMNS = (
    "id, party, unit, report_key, zone_id, zone_name, state, opened_at, last_seen_at, "
    "closed_at, close_reason, verdict, depth_m, deepest_report_id, last_report_id, report_ids, "
    "stale_at"
)


def _incident_from_row(row: Sequence[Any]) -> Incident:
    return Incident(
        id=int(row[0]),
        party=row[1],
        unit=row[2],
        report_key=row[3],
        zone_id=row[4],
        zone_name=row[5],
        state=row[6],
        opened_at=_from_us(row[7]),
        last_seen_at=_from_us(row[8]),
        closed_at=_opt_from_us(row[9]),
        close_reason=row[10],
        verdict=row[11],
        depth_m=float(row[12]),
        deepest_report_id=row[13],
        last_report_id=row[14],
        report_ids=tuple(orjson.loads(row[15])),
        stale_at=_opt_from_us(row[16]),
    )


def _incident_values(incident: Incident) -> tuple[Any, ...]:
    """An incident's columns after `id`, in `_INCIDENT_COLUMNS` order."""
    return (
        incident.party,
        incident.unit,
        incident.report_key,
        incident.zone_id,
        incident.zone_name,
        incident.state,
        _to_us(incident.opened_at),
        _to_us(incident.last_seen_at),
        None if incident.closed_at is None else _to_us(incident.closed_at),
        incident.close_reason,
        incident.verdict,
        incident.depth_m,
        incident.deepest_report_id,
        incident.last_report_id,
        orjson.dumps(list(incident.report_ids)).decode(),
        None if incident.stale_at is None else _to_us(incident.stale_at),
    )


def _incident_filters(where: IncidentFilter) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if where.since is not None:
        clauses.append("last_seen_at >= ?")
        params.append(_to_us(where.since, "since"))
    if where.until is not None:
        clauses.append("opened_at < ?")
        params.append(_to_us(where.until, "until"))
    for column in ("zone", "party", "verdict", "state"):
        value = getattr(where, column)
        if value is not None:
            clauses.append(f"{'zone_id' if column == 'zone' else column} = ?")
            params.append(value)
    return clauses, params


#: The `meta` key of the largest report uncertainty (whole metres, rounded up), the reach of
#: zone changes (`app.alerts.zone_changes`); computed on first use, raised by report writes.
_REACH_KEY = "uncertainty_reach_m"
#: Reaches are capped here: more than half the Earth's circumference reaches everywhere.
_REACH_CAP_M = 40_000_000


class _Incidents:
    """`app.alerts.incidents.IncidentRecords` (and `ZoneChangeRecords`) in one SQLite write
    transaction. `cache_index` off: a zone write's index is not kept, as its transaction may
    still roll back (the token it was built at would then come back with other zones)."""

    def __init__(
        self, store: SQLiteStore, c: sqlite3.Connection, now_us: int, cache_index: bool = True
    ) -> None:
        self._store, self._c, self._now_us = store, c, now_us
        self._cache_index = cache_index

    def current_reports(self, touched: Touched) -> list[TrackRow]:
        rows: list[Any] = []
        for (party, unit), since in sorted(touched.units.items()):
            until = touched.until.get((party, unit))
            where = ["party = ?", "unit = ?", "observed_at >= ?"]
            if until is None:
                query, params = _current_reports(where, [party, unit, _to_us(since)])
                rows.extend(self._c.execute(query, params))
                continue
            # The window up to `until`, and the AHEAD reports after it in track order.
            query, params = _current_reports(
                [*where, "observed_at <= ?"], [party, unit, _to_us(since), _to_us(until)]
            )
            rows.extend(self._c.execute(query, params))
            query, params = _current_reports(
                ["party = ?", "unit = ?", "observed_at > ?"], [party, unit, _to_us(until)]
            )
            rows.extend(
                self._c.execute(
                    f"SELECT * FROM ({query}) ORDER BY observed_at, id LIMIT {Touched.AHEAD}",
                    params,
                )
            )
        for chunk in _chunks(sorted(touched.lone_reports), _IN_CHUNK // 2):
            marks = ",".join("?" * len(chunk))
            query, params = _current_reports([f"id IN ({marks})", "unit IS NULL"], list(chunk))
            rows.extend(self._c.execute(query, params))
        # id, party, unit, lon, lat, observed_at (µs), uncertainty_m
        return [(r[0], r[1], r[7], r[3], r[4], r[2], r[5]) for r in rows]

    def stored_incidents(self, touched: Touched) -> list[Incident]:
        rows: list[Any] = []
        select = f"SELECT {_INCIDENT_COLUMNS} FROM incidents"
        for (party, unit), since in sorted(touched.units.items()):
            rows.extend(
                self._c.execute(
                    f"{select} WHERE party = ? AND unit = ? "
                    "AND (state = 'open' OR coalesce(closed_at, last_seen_at) >= ?)",
                    (party, unit, _to_us(since)),
                )
            )
        for chunk in _chunks(sorted(touched.lone_reports), _IN_CHUNK):
            marks = ",".join("?" * len(chunk))
            rows.extend(self._c.execute(f"{select} WHERE report_key IN ({marks})", chunk))
        return [_incident_from_row(row) for row in rows]

    def zone_index(self) -> ZoneIndex:
        if not self._cache_index:
            return ZoneIndex(self._store._zones_for_index(self._c), threads=1)
        return self._store._zone_index_in(self._c)

    def note_uncertainty(self, metres: float) -> None:
        self._c.execute(
            "UPDATE meta SET value = ? WHERE key = ? AND value < ?",
            (reach := min(math.ceil(metres), _REACH_CAP_M), _REACH_KEY, reach),
        )

    def uncertainty_reach(self) -> float:
        row = self._c.execute("SELECT value FROM meta WHERE key = ?", (_REACH_KEY,)).fetchone()
        if row is not None:
            return float(row[0])
        # First use on this database: one pass over the reports, then kept up by every write.
        widest = self._c.execute(
            "SELECT max(coalesce((SELECT max(uncertainty_m) FROM reports), 0), "
            "coalesce((SELECT max(uncertainty_m) FROM report_versions), 0))"
        ).fetchone()[0]
        reach = min(math.ceil(widest), _REACH_CAP_M)
        self._c.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (_REACH_KEY, reach))
        return float(reach)

    def note_units(self, latest: dict[tuple[str, str], tuple[int, str] | None]) -> None:
        later = [(p, u, at, rid) for (p, u), last in latest.items() if last for at, rid in [last]]
        found = []
        for party, unit in (key for key, last in latest.items() if last is None):
            rows = _unit_tail(self._c, party, unit, 1)
            if rows:
                found.append((party, unit, rows[0][5], rows[0][0]))
            else:
                self._c.execute("DELETE FROM units WHERE party = ? AND unit = ?", (party, unit))
        upsert = (
            "INSERT INTO units (party, unit, last_at, last_report_id) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (party, unit) DO UPDATE SET last_at = excluded.last_at, "
            "last_report_id = excluded.last_report_id"
        )
        self._c.executemany(
            upsert + " WHERE (excluded.last_at, excluded.last_report_id) "
            "> (units.last_at, units.last_report_id)",
            later,
        )
        self._c.executemany(upsert, found)

    def effective_zones(self, zone_ids: Sequence[str]) -> dict[str, list[Zone]]:
        found: dict[str, list[Zone]] = {}
        for chunk in _chunks(sorted(zone_ids), _IN_CHUNK):
            query = (
                _EFFECTIVE_ZONES + f" WHERE zone_id IN ({','.join('?' * len(chunk))}) "
                "AND (valid_to IS NULL OR valid_to > valid_from) ORDER BY zone_id, version"
            )
            for zone in _zones_from_rows(self._c.execute(query, list(chunk)).fetchall()):
                found.setdefault(zone.id, []).append(zone)
        return found

    def reports_in(self, region: Region) -> list[tuple[str, str | None, str, datetime]]:
        # No spatial index on SQLite's reports (it would slow every batch): the time index
        # bounds the walk to the changed period, the box filters it.
        where, params = ["observed_at >= ?"], [_to_us(region.start)]
        if region.end is not None:
            where.append("observed_at < ?")
            params.append(_to_us(region.end))
        box, values = _bbox_filter(region.bounds, "lon", "lat", "lon", "lat")
        query, args = _current_reports([*where, box], [*params, *values])
        return [(r[1], r[7], r[0], _from_us(r[2])) for r in self._c.execute(query, args)]

    def save_incident(self, incident: Incident, new: bool) -> int:
        values = _incident_values(incident)
        if new:
            cursor = self._c.execute(
                f"INSERT INTO incidents ({_INCIDENT_COLUMNS.removeprefix('id, ')}) "
                f"VALUES ({','.join('?' * len(values))})",
                values,
            )
            return int(cursor.lastrowid or 0)
        names = _INCIDENT_COLUMNS.removeprefix("id, ").split(", ")
        self._c.execute(
            f"UPDATE incidents SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?",
            (*values, incident.id),
        )
        return incident.id

    def append_event(
        self, event_type: str, data: dict[str, Any], incident_id: int, zone_id: str
    ) -> int:
        return SQLiteStore._append_event(
            self._c, self._now_us, event_type, data, incident_id=incident_id, zone_id=zone_id
        )


def _unit_tail(c: sqlite3.Connection, party: str, unit: str, count: int) -> list[TrackRow]:
    """A unit's latest `count` reports (latest versions, retracted left out), newest first."""
    query, params = _current_reports(["party = ?", "unit = ?"], [party, unit])
    rows = c.execute(f"{query} ORDER BY observed_at DESC, id DESC LIMIT ?", [*params, count])
    return [(r[0], r[1], r[7], r[3], r[4], r[2], r[5]) for r in rows]


def _encode_incident_cursor(opened_at_us: int, incident_id: int) -> str:
    raw = orjson.dumps([opened_at_us, incident_id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode_incident_cursor(cursor: str) -> tuple[int, int]:
    try:
        value = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        raise BadCursor("not a cursor from this server", field="after") from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and -(2**63) <= v < 2**63 for v in value)
    ):
        raise BadCursor("not a cursor from this server", field="after")
    return value[0], value[1]


# -- the store --------------------------------------------------------------------------------


class SQLiteStore(SQLiteSubscriptions, Store):
    """The `Store` in one SQLite file (created with its schema on first open).

    Safe to share between threads (each thread gets its own connection) and between processes
    on the same machine (SQLite's file locks; writers queue for up to `busy_timeout_s`). Not for
    network file systems, where WAL does not work: use PostGIS there.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout_s: float = 30.0,
    ) -> None:
        """Open (and create or migrate) the database file at `path`.

        `synchronous` is SQLite's setting for WAL mode: FULL (default, durable on power loss),
        NORMAL (durable across process crashes only) or EXTRA.
        """
        self.path = Path(path)
        if str(path) == ":memory:" or not str(path):
            raise ValueError("SQLiteStore needs a file path (WAL and several connections)")
        self._synchronous = synchronous.upper()
        if self._synchronous not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}")
        if not (math.isfinite(busy_timeout_s) and busy_timeout_s >= 0):
            raise ValueError(f"busy_timeout must be seconds >= 0, got {busy_timeout_s}")
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._writer = threading.Lock()
        self._writer_pid = os.getpid()
        # Every connection opened, with the process that opened it (see `close`).
        self._connections: list[tuple[int, sqlite3.Connection]] = []
        self._closed = False
        # The zone index incidents are judged with, and the zone token it was built at.
        self._incident_index: tuple[int, ZoneIndex] | None = None
        self._event_watchers = EventWatchers()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._open_schema()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connections and transactions -----------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout_s,
            # Autocommit at the driver level: this module writes BEGIN/COMMIT itself, so that
            # writes are BEGIN IMMEDIATE and reads spanning statements see one snapshot.
            isolation_level=None,
            # The connection is only used by its own thread; `close()` may run elsewhere.
            check_same_thread=False,
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA cache_size = {_CACHE_KIB}")
        # truce_like and truce_intersects_xy, for filters (app.store.sqlite_filter).
        register_functions(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError("the store is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        # A connection inherited through fork() must not be used by the child.
        if conn is None or self._local.pid != os.getpid():
            conn = self._connect()
            self._local.conn = conn
            self._local.pid = os.getpid()
            with self._lock:
                self._connections.append((os.getpid(), conn))
        return conn

    def _busy(self) -> Busy:
        return Busy(
            f"the database stayed locked by another writer for {self._busy_timeout_s} s; try again"
        )

    @contextmanager
    def _transaction(self, mode: str) -> Iterator[sqlite3.Connection]:
        # A full disk, a read-only file or a failing disk becomes an `Unavailable` that names it.
        with _storage_errors():
            conn = self._conn()
            try:
                conn.execute(f"BEGIN {mode}")
            except sqlite3.OperationalError as exc:
                if _is_busy(exc):
                    raise self._busy() from exc
                raise
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # Some errors (disk full, I/O) end the transaction themselves.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: the write lock is taken at BEGIN, waiting up to busy_timeout.

        This process's threads queue on a lock of their own first: SQLite's busy handler polls
        with sleeps of up to 100 ms, which serves waiting writers late and in no order (p99 of a
        single report near a second under 16 concurrent writers); the lock lets them through one
        at a time as soon as the last is done, and leaves the busy handler to other processes.
        Both waits together stay within busy_timeout.
        """
        deadline = time.monotonic() + self._busy_timeout_s
        writer = self._writer_lock()
        if not writer.acquire(timeout=self._busy_timeout_s):
            raise self._busy()
        appended = 0
        try:
            conn = self._conn()
            left_ms = int(max(deadline - time.monotonic(), 0.0) * 1000)
            conn.execute(f"PRAGMA busy_timeout = {left_ms}")
            _appended.last = 0
            try:
                with self._transaction("IMMEDIATE") as c:
                    yield c
                appended = _appended.last  # committed: its events can be read now
            finally:
                _appended.last = 0
                with suppress(sqlite3.Error):  # never hide the transaction's own error
                    conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        finally:
            writer.release()
        if appended:
            self._event_watchers.tell(appended)

    def _writer_lock(self) -> threading.Lock:
        """The process's writer lock; after fork() a new one (the parent's may be held)."""
        if self._writer_pid != os.getpid():
            self._writer, self._writer_pid = threading.Lock(), os.getpid()
        return self._writer

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:
        """A read transaction: its statements see one snapshot, and it never blocks writers."""
        return self._transaction("DEFERRED")

    def _open_schema(self) -> None:
        conn = self._conn()
        mode = self._set_wal(conn)
        if mode != "wal":
            raise StoreError(f"cannot put {self.path} in WAL mode (journal_mode is {mode})")
        with self._read() as c:
            version = self._schema_version(c)
        if version < len(MIGRATIONS):
            with self._write() as c:
                # Another process may have migrated while this one waited for the lock.
                version = self._schema_version(c)
                if version == 0:
                    c.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                for number in range(version + 1, len(MIGRATIONS) + 1):
                    for statement in MIGRATIONS[number - 1]:
                        c.execute(statement)
                    c.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this Truce "
                f"({len(MIGRATIONS)}); upgrade Truce"
            )

    def _set_wal(self, conn: sqlite3.Connection) -> str:
        """Put the file in WAL mode (a no-op once it is); returns the journal mode now in force.

        Switching a new file to WAL needs an exclusive lock and SQLite answers "database is
        locked" at once instead of waiting on the busy timeout, so processes that open a new file
        together retry here.
        """
        deadline = time.monotonic() + self._busy_timeout_s
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @staticmethod
    def _schema_version(c: sqlite3.Connection) -> int:
        exists = c.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if exists is None:
            return 0
        return int(c.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])

    # -- readiness ------------------------------------------------------------------------

    def check_writable(self, timeout_s: float = 2.0) -> None:
        """Prove that the store can take a write now (see `Store.check_writable`).

        Three checks, cheapest first: the file system is not mounted read-only; it has at least
        `MIN_FREE_BYTES` free (a tiny write can still fit in a WAL that was reset while a batch
        cannot); and a real write is committed, with its fsync, to a row kept for this purpose
        (`meta.ready_probe`, the time of the last probe), which finds read-only files, locks
        and disk errors. The probe waits at most `timeout_s` for other writers (then `Busy`):
        a readiness probe must answer quickly.
        """
        try:
            stat = os.statvfs(self.path.parent)
            free = shutil.disk_usage(self.path.parent).free
        except OSError as exc:
            raise StorageIOError(f"the database's file system cannot be read ({exc})") from exc
        if stat.f_flag & os.ST_RDONLY:
            raise ReadOnlyStorage(
                "the database's file system is mounted read-only: nothing can be written "
                "(reads still work)"
            )
        if free < MIN_FREE_BYTES:
            raise StorageFull(
                f"the database's disk is full ({free} bytes free, {MIN_FREE_BYTES} needed): "
                "nothing can be written until space is freed (reads still work)"
            )
        writer = self._writer_lock()
        if not writer.acquire(timeout=timeout_s):
            raise Busy(f"other writers held the database for {timeout_s} s; try again")
        try:
            with _storage_errors():
                conn = self._conn()
                conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
                try:
                    with self._transaction("IMMEDIATE") as c:
                        c.execute(
                            "INSERT INTO meta (key, value) VALUES ('ready_probe', ?) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                            (self._now_us(),),
                        )
                finally:
                    with suppress(sqlite3.Error):
                        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        finally:
            writer.release()

    def close(self) -> None:
        """Close every connection this store opened, in every thread."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        pid = os.getpid()
        for owner, conn in connections:
            # A connection inherited through fork() belongs to the parent: closing it here could
            # release the parent's locks, so it is left alone.
            if owner == pid:
                conn.close()

    @staticmethod
    def _audit(
        c: sqlite3.Connection,
        at_us: int,
        actor: str,
        action: str,
        target: str,
        detail: str | None = None,
    ) -> int:
        cursor = c.execute(
            "INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
            (at_us, actor, action, target, detail),
        )
        return int(cursor.lastrowid or 0)

    @staticmethod
    def _now_us() -> int:
        return _to_us(datetime.now(UTC))

    # -- zones ----------------------------------------------------------------------------

    def add_zones(self, zones: Sequence[Zone], actor: str) -> list[Zone]:
        """Create zones, each as version 1, all or none (see `Store.add_zones`)."""
        seen: set[str] = set()
        for index, zone in enumerate(zones):
            if zone.id in seen:
                raise Conflict(f"zone {zone.id!r} appears twice", field="id", index=index)
            seen.add(zone.id)
        # Serialise before taking the write lock, to hold it briefly.
        values = [_zone_values(zone) for zone in zones]
        if not zones:
            return []
        with self._write() as c:
            existing = self._existing(c, "SELECT DISTINCT zone_id FROM zones", "zone_id", seen)
            for index, zone in enumerate(zones):
                if zone.id in existing:
                    raise Conflict(
                        f"zone {zone.id!r} already exists; send a new version instead",
                        field="id",
                        index=index,
                    )
            now = self._now_us()
            for zone, row in zip(zones, values, strict=True):
                audit_id = self._audit(c, now, actor, "zone.create", zone.id, "version 1")
                self._insert_zone(c, zone.id, 1, row, audit_id)
                self._zone_event(c, now, zone.id, 1, "created", zone.name)
            self._bump_zones_token(c)
            self._follow_zones(c, now, {zone.id: [] for zone in zones})
        return [replace(zone, version=1) for zone in zones]

    def seed(
        self,
        zones: Sequence[Zone],
        reports: Sequence[Report],
        actor: str,
        parties: Sequence[Party] = (),
    ) -> bool:
        """Fill an empty store in one transaction (see `Store.seed`)."""
        ordered = sorted(zones, key=lambda z: (z.id, z.version))
        zone_rows = [_zone_values(zone) for zone in ordered]
        report_rows = [_report_values(report) for report in reports]
        filled = "SELECT EXISTS (SELECT 1 FROM zones) OR EXISTS (SELECT 1 FROM reports)"
        # Asked first without the write lock: a filled store (the usual start) needs no write,
        # so a server can still start, and serve reads, over a read-only database.
        with self._read() as c:
            if c.execute(filled).fetchone()[0]:
                return False
        with self._write() as c:
            # Asked again inside the write transaction: no other process can seed meanwhile.
            if c.execute(filled).fetchone()[0]:
                return False
            now = self._now_us()
            versions: dict[str, int] = {}
            for zone, row in zip(ordered, zone_rows, strict=True):
                version = versions[zone.id] = versions.get(zone.id, 0) + 1
                action = "zone.create" if version == 1 else "zone.version"
                audit_id = self._audit(c, now, actor, action, zone.id, f"version {version}")
                self._insert_zone(c, zone.id, version, row, audit_id)
                change = "created" if version == 1 else "updated"
                self._zone_event(c, now, zone.id, version, change, zone.name)
            if ordered:
                self._bump_zones_token(c)
            for party in parties:
                self._put_party(c, now, party, actor)
            if reports:
                self._insert_reports(c, reports, report_rows, actor)
        return True

    def new_zone_version(self, zone: Zone, actor: str) -> Zone:
        """Store `zone` as the next version of its id (see `Store.new_zone_version`)."""
        row = _zone_values(zone)
        with self._write() as c:
            version = self._latest_version(c, zone.id) + 1
            now = self._now_us()
            before = _Incidents(self, c, now, cache_index=False).effective_zones([zone.id])
            audit_id = self._audit(c, now, actor, "zone.version", zone.id, f"version {version}")
            self._insert_zone(c, zone.id, version, row, audit_id)
            self._zone_event(c, now, zone.id, version, "updated", zone.name)
            self._bump_zones_token(c)
            self._follow_zones(c, now, {zone.id: before.get(zone.id, [])})
        return replace(zone, version=version)

    def retire_zone(self, zone_id: str, at: datetime, actor: str) -> Zone:
        """Store a copy of the latest version ending at `at` (see `Store.retire_zone`)."""
        at_us = _to_us(at, "at")
        with self._write() as c:
            version = self._latest_version(c, zone_id)
            valid_from, valid_to = c.execute(
                "SELECT valid_from, valid_to FROM zones WHERE zone_id = ? AND version = ?",
                (zone_id, version),
            ).fetchone()
            if at_us <= valid_from:
                raise Conflict(
                    f"zone {zone_id!r} version {version} starts at "
                    f"{_from_us(valid_from).isoformat()}; it cannot be retired at or before that",
                    field="at",
                )
            if valid_to is not None and valid_to <= at_us:
                raise Conflict(
                    f"zone {zone_id!r} already ends at {_from_us(valid_to).isoformat()}",
                    field="at",
                )
            now = self._now_us()
            before = _Incidents(self, c, now, cache_index=False).effective_zones([zone_id])
            audit_id = self._audit(
                c,
                now,
                actor,
                "zone.retire",
                zone_id,
                f"version {version + 1}, valid_to {at.astimezone(UTC).isoformat()}",
            )
            # Copied in SQL: the retired version is the latest one, unchanged but for valid_to.
            c.execute(
                """INSERT INTO zones (zone_id, version, name, kind, geometry, minx, miny, maxx,
                    maxy, valid_from, valid_to, authorized_parties, warning_distance_m, agreement,
                    source, boundary_uncertainty_m, audit_id)
                SELECT zone_id, version + 1, name, kind, geometry, minx, miny, maxx, maxy,
                    valid_from, ?, authorized_parties, warning_distance_m, agreement, source,
                    boundary_uncertainty_m, ?
                FROM zones WHERE zone_id = ? AND version = ?""",
                (at_us, audit_id, zone_id, version),
            )
            self._bump_zones_token(c)
            rows = c.execute(
                f"SELECT {_ZONE_COLUMNS} FROM zones WHERE zone_id = ? AND version = ?",
                (zone_id, version + 1),
            ).fetchall()
            retired = _zones_from_rows(rows)[0]
            self._zone_event(c, now, zone_id, version + 1, "retired", retired.name)
            self._follow_zones(c, now, {zone_id: before.get(zone_id, [])})
        return retired

    def get_zone(self, zone_id: str) -> Zone:
        """The latest version of a zone, as filed; `UnknownZone` if none."""
        with self._read() as c:
            rows = c.execute(
                f"SELECT {_ZONE_COLUMNS} FROM zones WHERE zone_id = ? "
                "ORDER BY version DESC LIMIT 1",
                (zone_id,),
            ).fetchall()
        if not rows:
            raise UnknownZone(f"no zone with id {zone_id!r}", field="id")
        return _zones_from_rows(rows)[0]

    def zone_history(self, zone_id: str) -> list[Zone]:
        """Every version of a zone, oldest first; `UnknownZone` if none."""
        with self._read() as c:
            rows = c.execute(
                f"SELECT {_ZONE_COLUMNS} FROM zones WHERE zone_id = ? ORDER BY version",
                (zone_id,),
            ).fetchall()
        if not rows:
            raise UnknownZone(f"no zone with id {zone_id!r}", field="id")
        return _zones_from_rows(rows)

    def list_zones(
        self,
        at: datetime | None = None,
        bbox: BBox | None = None,
        kind: ZoneKind | str | None = None,
        all_versions: bool = False,
    ) -> list[Zone]:
        """Zones by id and version, filtered (see `Store.list_zones`)."""
        where: list[str] = []
        params: list[Any] = []
        if bbox is not None:
            sql, values = _bbox_filter(bbox, "minx", "miny", "maxx", "maxy")
            where.append(sql)
            params.extend(values)
        if kind is not None:
            where.append("kind = ?")
            params.append(str(ZoneKind(kind)))
        if at is not None:
            at_us = _to_us(at, "at")
            where.append("valid_from <= ? AND (valid_to IS NULL OR ? < valid_to)")
            params.extend([at_us, at_us])
            query = _EFFECTIVE_ZONES
        elif all_versions:
            query = f"SELECT {_ZONE_COLUMNS} FROM zones"
        else:
            query = f"SELECT {_ZONE_COLUMNS} FROM zones AS z"
            where.append("version = (SELECT max(version) FROM zones WHERE zone_id = z.zone_id)")
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY zone_id, version"
        with self._read() as c:
            rows = c.execute(query, params).fetchall()
        return _zones_from_rows(rows)

    def zones_for_index(self) -> list[Zone]:
        """Versions in force at some instant, with their effective validity."""
        with self._read() as c:
            return self._zones_for_index(c)

    @staticmethod
    def _zones_for_index(c: sqlite3.Connection) -> list[Zone]:
        query = (
            _EFFECTIVE_ZONES
            + " WHERE valid_to IS NULL OR valid_to > valid_from ORDER BY zone_id, version"
        )
        return _zones_from_rows(c.execute(query).fetchall())

    def _zone_index_in(self, c: sqlite3.Connection) -> ZoneIndex:
        """The zone index as transaction `c` sees the zones (kept while the token holds)."""
        token = int(c.execute("SELECT value FROM meta WHERE key = 'zones_token'").fetchone()[0])
        cached = self._incident_index
        if cached is not None and cached[0] == token:
            return cached[1]
        index = ZoneIndex(self._zones_for_index(c), threads=1)
        self._incident_index = (token, index)
        return index

    def zones_changed_token(self) -> int:
        """The zone-write counter (one step per zone-writing transaction)."""
        # One statement is its own read transaction (autocommit): read on every check, so no
        # BEGIN/COMMIT around it.
        row = self._conn().execute("SELECT value FROM meta WHERE key = 'zones_token'").fetchone()
        return int(row[0])

    def _follow_zones(
        self, c: sqlite3.Connection, now_us: int, before: dict[str, list[Zone]]
    ) -> None:
        """After a zone write, in its transaction: recompute the incidents it can change
        (`app.alerts.zone_changes`), with their events after its `zone.changed`."""
        records = _Incidents(self, c, now_us, cache_index=False)
        follow_zone_changes(records, before, _from_us(now_us))

    @staticmethod
    def _bump_zones_token(c: sqlite3.Connection) -> None:
        c.execute("UPDATE meta SET value = value + 1 WHERE key = 'zones_token'")

    @staticmethod
    def _latest_version(c: sqlite3.Connection, zone_id: str) -> int:
        row = c.execute("SELECT max(version) FROM zones WHERE zone_id = ?", (zone_id,)).fetchone()
        if row[0] is None:
            raise UnknownZone(f"no zone with id {zone_id!r}", field="id")
        return int(row[0])

    @staticmethod
    def _insert_zone(
        c: sqlite3.Connection, zone_id: str, version: int, values: tuple[Any, ...], audit_id: int
    ) -> None:
        c.execute(
            """INSERT INTO zones (zone_id, version, name, kind, geometry, minx, miny, maxx, maxy,
                valid_from, valid_to, authorized_parties, warning_distance_m, agreement, source,
                boundary_uncertainty_m, audit_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (zone_id, version, *values, audit_id),
        )

    @staticmethod
    def _existing(c: sqlite3.Connection, select: str, column: str, ids: set[str]) -> set[str]:
        """Which of `ids` the query finds, asked in chunks that fit SQLite's parameter limit."""
        found: set[str] = set()
        unique = sorted(ids)
        for chunk in _chunks(unique, _IN_CHUNK):
            marks = ",".join("?" * len(chunk))
            found.update(
                row[0] for row in c.execute(f"{select} WHERE {column} IN ({marks})", chunk)
            )
        return found

    # -- events ---------------------------------------------------------------------------

    @staticmethod
    def _append_event(
        c: sqlite3.Connection,
        at_us: int,
        event_type: str,
        data: dict[str, Any],
        *,
        incident_id: int | None = None,
        zone_id: str | None = None,
    ) -> int:
        """Append an event in `c`'s (write) transaction; returns its id."""
        cursor = c.execute(
            "INSERT INTO events (type, created_at, incident_id, zone_id, data) "
            "VALUES (?, ?, ?, ?, ?)",
            (event_type, at_us, incident_id, zone_id, orjson.dumps(data).decode()),
        )
        event_id = int(cursor.lastrowid or 0)
        _appended.last = event_id  # told to the watchers once the transaction commits
        return event_id

    def _zone_event(
        self, c: sqlite3.Connection, at_us: int, zone_id: str, version: int, change: str, name: str
    ) -> None:
        payload = zone_changed_payload(zone_id, version, change, name)
        self._append_event(c, at_us, ZONE_CHANGED, payload, zone_id=zone_id)

    def events_after(
        self, after_id: int, limit: int = 1000, types: Sequence[str] | None = None
    ) -> list[Event]:
        """Events with ids above `after_id`, ascending (see `Store.events_after`)."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        query = "SELECT id, type, created_at, data FROM events WHERE id > ?"
        params: list[Any] = [int(after_id)]
        if types is not None:
            check_types(types)
            if not types:
                return []
            query += f" AND type IN ({','.join('?' * len(types))})"
            params.extend(types)
        query += " ORDER BY id LIMIT ?"
        params.append(limit)
        # One statement is its own read transaction (autocommit): no BEGIN/COMMIT around it,
        # for streams that read at every event.
        with _storage_errors():
            rows = self._conn().execute(query, params).fetchall()
        return [_event_from_row(row) for row in rows]

    def last_event_id(self) -> int:
        """The latest event's id, 0 when there is none."""
        with _storage_errors():
            row = self._conn().execute("SELECT coalesce(max(id), 0) FROM events").fetchone()
        return int(row[0])

    def watch_events(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Call `callback(event_id)` after each commit of this process that appended events
        (see `Store.watch_events`; other processes' commits are not heard)."""
        return self._event_watchers.add(callback)

    def events_heard_everywhere(self) -> bool:
        """False: a SQLite file has no notifications between processes."""
        return False

    def incident_events(self, incident_id: int) -> list[Event]:
        """Every event of one incident, oldest first (see `Store.incident_events`)."""
        with self._read() as c:
            self._incident(c, incident_id)
            rows = c.execute(
                "SELECT id, type, created_at, data FROM events WHERE incident_id = ? ORDER BY id",
                (incident_id,),
            ).fetchall()
        return [_event_from_row(row) for row in rows]

    # -- incidents ------------------------------------------------------------------------

    @staticmethod
    def _incident(c: sqlite3.Connection, incident_id: int) -> Incident:
        row = None
        if -(2**63) <= incident_id < 2**63:
            row = c.execute(
                f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE id = ?", (incident_id,)
            ).fetchone()
        if row is None:
            raise UnknownIncident(f"no incident with id {incident_id}", field="id")
        return _incident_from_row(row)

    def get_incident(self, incident_id: int) -> Incident:
        """One incident (see `Store.get_incident`)."""
        with self._read() as c:
            return self._incident(c, incident_id)

    def list_incidents(
        self, where: IncidentFilter, *, limit: int = 100, after: str | None = None
    ) -> tuple[list[Incident], str | None]:
        """One page of incidents by (opened_at, id) (see `Store.list_incidents`)."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        clauses, params = _incident_filters(where)
        if after is not None:
            clauses.append("(opened_at, id) > (?, ?)")
            params.extend(_decode_incident_cursor(after))
        query = f"SELECT {_INCIDENT_COLUMNS} FROM incidents"
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        query += " ORDER BY opened_at, id LIMIT ?"
        params.append(limit + 1)
        with self._read() as c:
            rows = c.execute(query, params).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = _encode_incident_cursor(rows[-1][7], rows[-1][0]) if more else None
        return [_incident_from_row(row) for row in rows], cursor

    def count_incidents(self, where: IncidentFilter) -> int:
        """How many incidents `list_incidents` lists (see `Store.count_incidents`)."""
        clauses, params = _incident_filters(where)
        query = "SELECT count(*) FROM incidents"
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        with self._read() as c:
            return int(c.execute(query, params).fetchone()[0])

    def mark_stale_tracks(self, now: datetime, stale_after: timedelta) -> list[Event]:
        """One `track.stale` event per stale sighting (see `Store.mark_stale_tracks`)."""
        due = _to_us(now, "now") - stale_after // _US
        events = []
        with self._write() as c:
            rows = c.execute(
                f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE state = 'open' "
                "AND unit IS NOT NULL AND last_seen_at <= ? "
                "AND (stale_at IS NULL OR stale_at <> last_seen_at) ORDER BY last_seen_at, id",
                (due,),
            ).fetchall()
            at = self._now_us()
            for incident in map(_incident_from_row, rows):
                payload = stale_payload(incident, stale_after)
                event_id = self._append_event(
                    c, at, TRACK_STALE, payload, incident_id=incident.id, zone_id=incident.zone_id
                )
                c.execute(
                    "UPDATE incidents SET stale_at = last_seen_at WHERE id = ?", (incident.id,)
                )
                events.append(Event(event_id, TRACK_STALE, _from_us(at), payload))
            # Units in a zone without an open incident there (their party is authorised).
            units = c.execute(
                "SELECT party, unit, last_at, last_report_id FROM units WHERE last_at <= ? "
                "AND (stale_at IS NULL OR stale_at <> last_at) ORDER BY last_at, party, unit "
                "LIMIT ?",
                (due, STALE_UNITS_PER_SWEEP),
            ).fetchall()
            index = self._zone_index_in(c) if units else None
            for party, unit, last_at, last_report_id in units:
                assert index is not None
                open_zones = {
                    row[0]
                    for row in c.execute(
                        "SELECT zone_id FROM incidents WHERE party = ? AND unit = ? "
                        "AND state = 'open'",
                        (party, unit),
                    )
                }
                tail = _unit_tail(c, party, unit, STALE_LOOKBACK)
                for held in zones_held(tail, index):
                    if held.zone_id in open_zones:
                        continue
                    payload = held_stale_payload(
                        party, unit, held, last_report_id, _from_us(last_at), stale_after
                    )
                    event_id = self._append_event(c, at, TRACK_STALE, payload, zone_id=held.zone_id)
                    events.append(Event(event_id, TRACK_STALE, _from_us(at), payload))
                c.execute(
                    "UPDATE units SET stale_at = last_at WHERE party = ? AND unit = ?",
                    (party, unit),
                )
        return events

    # -- parties --------------------------------------------------------------------------

    def list_parties(self) -> list[Party]:
        """Every registered party, by code."""
        with self._read() as c:
            rows = c.execute(
                "SELECT code, name, color, aliases FROM parties ORDER BY code"
            ).fetchall()
        return [
            Party(code=row[0], name=row[1], color=row[2], aliases=tuple(orjson.loads(row[3])))
            for row in rows
        ]

    def parties_token(self) -> tuple[int, int]:
        """How many parties, and the newest audit id among them: every write changes one."""
        with self._read() as c:
            count, newest = c.execute(
                "SELECT count(*), coalesce(max(audit_id), 0) FROM parties"
            ).fetchone()
        return int(count), int(newest)

    def put_party(self, party: Party, actor: str) -> tuple[Party, bool]:
        """Register or replace a party, audited (see `Store.put_party`)."""
        with self._write() as c:
            created = self._put_party(c, self._now_us(), party, actor)
        return party, created

    def _put_party(self, c: sqlite3.Connection, now: int, party: Party, actor: str) -> bool:
        created = (
            c.execute("SELECT 1 FROM parties WHERE code = ?", (party.code,)).fetchone() is None
        )
        detail = orjson.dumps(
            {"name": party.name, "color": party.color, "aliases": list(party.aliases)}
        ).decode()
        audit_id = self._audit(
            c, now, actor, "party.create" if created else "party.update", party.code, detail
        )
        c.execute(
            "INSERT INTO parties (code, name, color, aliases, audit_id) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (code) DO UPDATE SET name = excluded.name, color = excluded.color, "
            "aliases = excluded.aliases, audit_id = excluded.audit_id",
            (
                party.code,
                party.name,
                party.color,
                orjson.dumps(list(party.aliases)).decode(),
                audit_id,
            ),
        )
        return created

    # -- reports --------------------------------------------------------------------------

    def add_reports(self, reports: Sequence[Report], actor: str) -> tuple[list[Report], list[str]]:
        """Store a batch all or nothing; returns (stored, duplicate ids) in input order."""
        stored, _, duplicates = self._file_batch(reports, actor, update=False)
        return stored, duplicates

    def update_reports(
        self, reports: Sequence[Report], actor: str
    ) -> tuple[list[Report], list[ReportVersion], list[str]]:
        """Store a batch; changed reports become new versions (see `Store.update_reports`)."""
        return self._file_batch(reports, actor, update=True)

    def _file_batch(
        self, reports: Sequence[Report], actor: str, *, update: bool
    ) -> tuple[list[Report], list[ReportVersion], list[str]]:
        if not reports:
            return [], [], []
        # Serialised before the write lock is taken, so other writers wait less.
        values = [_report_values(report) for report in reports]
        big = len(reports) >= _BIG_BATCH
        if big:
            self._conn().execute(f"PRAGMA cache_size = {_BIG_BATCH_CACHE_KIB}")
        try:
            with self._write() as c:
                return self._insert_reports(c, reports, values, actor, update=update)
        finally:
            if big:
                self._conn().execute(f"PRAGMA cache_size = {_CACHE_KIB}")

    @staticmethod
    def _known(c: sqlite3.Connection, ids: set[str]) -> dict[str, _Known]:
        """What is stored of `ids`: every version's content, the latest number, retracted."""
        known: dict[str, _Known] = {}
        for chunk in _chunks(sorted(ids), _IN_CHUNK):
            marks = ",".join("?" * len(chunk))
            for row in c.execute(
                f"SELECT {_REPORT_COLUMNS} FROM reports WHERE id IN ({marks})", chunk
            ):
                known[row[0]] = _Known([tuple(row)])
            for row in c.execute(
                f"SELECT version, retracted, {_REPORT_COLUMNS} FROM report_versions "
                f"WHERE id IN ({marks}) ORDER BY id, version",
                chunk,
            ):
                entry = known[row[2]]
                if not row[1]:
                    entry.contents.append(tuple(row[2:]))
                entry.latest, entry.retracted = int(row[0]), bool(row[1])
        return known

    @staticmethod
    def _next_position(c: sqlite3.Connection) -> int:
        """The next position of the commit order that `reports` and `report_versions` share."""
        row = c.execute(
            "SELECT max(coalesce((SELECT max(rowid) FROM reports), 0), "
            "coalesce((SELECT max(seq) FROM report_versions), 0))"
        ).fetchone()
        return int(row[0]) + 1

    def _insert_reports(
        self,
        c: sqlite3.Connection,
        reports: Sequence[Report],
        values: list[tuple[Any, ...]],
        actor: str,
        *,
        update: bool = False,
    ) -> tuple[list[Report], list[ReportVersion], list[str]]:
        """File a batch in `c`'s transaction: new ids are stored, the same content again is a
        duplicate, changed content a new version (`update`) or a `Conflict`."""
        # Read inside the write transaction, so no other writer can add an id meanwhile.
        known = self._known(c, {r.id for r in reports})
        stored_at, corrected_at, duplicates = sort_batch(reports, values, known, update=update)
        now = self._now_us()
        detail = f"stored {len(stored_at)}, duplicates {len(duplicates)}"
        if update:
            detail += f", corrected {len(corrected_at)}"
        audit_id = self._audit(c, now, actor, "reports.add", "reports", detail)
        position = self._next_position(c)
        # Inserting in id order walks the primary-key index sequentially (ids are often
        # random UUIDs): a third less time for a big batch. Rowids are given explicitly: they
        # share the commit order with report_versions.
        rows = sorted(((*values[index], audit_id) for index in stored_at), key=itemgetter(0))
        c.executemany(
            f"INSERT INTO reports (rowid, {_REPORT_COLUMNS}, audit_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(position + n, *row) for n, row in enumerate(rows)],
        )
        position += len(rows)
        corrected = []
        touched = Touched().add(reports[index] for index in stored_at)
        for offset, index in enumerate(corrected_at):
            report = reports[index]
            version = known[report.id].latest + 1
            self._insert_version(c, position + offset, version, values[index], actor, now)
            corrected.append(ReportVersion(report, version, _from_us(now)))
            touched.add([report, _report_from_row(known[report.id].contents[-1])])
        cause = "corrected" if corrected_at else "reports"
        keep_incidents(_Incidents(self, c, now), touched, cause, _from_us(now))
        return [reports[index] for index in stored_at], corrected, duplicates

    def _insert_version(
        self,
        c: sqlite3.Connection,
        position: int,
        version: int,
        values: tuple[Any, ...],
        actor: str,
        now: int,
        reason: str | None = None,
    ) -> None:
        """Append a version (a retraction when `reason` is given), with its audit entry."""
        report_id = values[0]
        if reason is None:
            audit_id = self._audit(c, now, actor, "report.version", report_id, f"version {version}")
        else:
            audit_id = self._audit(
                c, now, actor, "report.retract", report_id, f"version {version}: {reason}"
            )
        c.execute(
            f"INSERT INTO report_versions (seq, version, retracted, reason, {_REPORT_COLUMNS}, "
            "audit_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (position, version, int(reason is not None), reason, *values, audit_id),
        )

    @staticmethod
    def _history(c: sqlite3.Connection, report_id: str) -> list[ReportVersion]:
        rows = c.execute(
            f"SELECT 1, 0, NULL, a.at, {_prefixed('r')} FROM reports AS r "
            "JOIN audit AS a ON a.id = r.audit_id WHERE r.id = ? "
            f"UNION ALL SELECT v.version, v.retracted, v.reason, a.at, {_prefixed('v')} "
            "FROM report_versions AS v JOIN audit AS a ON a.id = v.audit_id WHERE v.id = ? "
            "ORDER BY 1",
            (report_id, report_id),
        ).fetchall()
        if not rows:
            raise UnknownReport(f"no report with id {report_id!r}", field="id")
        return _versions_from_rows(rows)

    def get_report(self, report_id: str) -> ReportVersion:
        """The latest version of a report (see `Store.get_report`)."""
        with self._read() as c:
            return self._history(c, report_id)[-1]

    def latest_reports(self, report_ids: Sequence[str]) -> list[ReportVersion]:
        """The latest version of each report, in one query (see `Store.latest_reports`)."""
        if not report_ids:
            return []
        # The ids as one JSON parameter: one statement whatever their number.
        wanted = "(SELECT value FROM json_each(?))"
        query = (
            f"SELECT 1, 0, NULL, a.at, {_prefixed('r')} FROM reports AS r "
            f"JOIN audit AS a ON a.id = r.audit_id WHERE r.id IN {wanted} "
            "AND NOT EXISTS (SELECT 1 FROM report_versions AS x WHERE x.id = r.id) "
            f"UNION ALL SELECT v.version, v.retracted, v.reason, a.at, {_prefixed('v')} "
            "FROM report_versions AS v JOIN audit AS a ON a.id = v.audit_id "
            f"WHERE v.id IN {wanted} "
            "AND v.version = (SELECT max(version) FROM report_versions WHERE id = v.id)"
        )
        ids = orjson.dumps(list(report_ids)).decode()
        with self._read() as c:
            rows = c.execute(query, (ids, ids)).fetchall()
        found = {v.report.id: v for v in _versions_from_rows(rows)}
        return [found[i] for i in dict.fromkeys(report_ids) if i in found]

    def report_history(self, report_id: str) -> list[ReportVersion]:
        """Every version of a report, oldest first (see `Store.report_history`)."""
        with self._read() as c:
            return self._history(c, report_id)

    def correct_report(self, report: Report, actor: str) -> tuple[ReportVersion, bool]:
        """Store the next version of a report (see `Store.correct_report`)."""
        values = _report_values(report)
        with self._write() as c:
            latest = self._history(c, report.id)[-1]
            if latest.retracted:
                raise Conflict(
                    f"report {report.id!r} was retracted and takes no new version; "
                    "file it under a new id",
                    field="id",
                )
            if _same_content(_report_values(latest.report), values):
                return latest, False
            now = self._now_us()
            version = latest.version + 1
            self._insert_version(c, self._next_position(c), version, values, actor, now)
            touched = Touched().add([report, latest.report])
            keep_incidents(_Incidents(self, c, now), touched, "corrected", _from_us(now))
        return ReportVersion(report, version, _from_us(now)), True

    def retract_report(self, report_id: str, reason: str, actor: str) -> ReportVersion:
        """Retract a report with a reason (see `Store.retract_report`)."""
        with self._write() as c:
            latest = self._history(c, report_id)[-1]
            if latest.retracted:
                raise Conflict(
                    f"report {report_id!r} was already retracted at {latest.filed_at.isoformat()}",
                    field="id",
                )
            now = self._now_us()
            version = latest.version + 1
            self._insert_version(
                c,
                self._next_position(c),
                version,
                _report_values(latest.report),
                actor,
                now,
                reason=reason,
            )
            touched = Touched().add([latest.report])
            keep_incidents(_Incidents(self, c, now), touched, "retracted", _from_us(now))
        return ReportVersion(latest.report, version, _from_us(now), True, reason)

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
        """One page of reports (latest versions) by (observed_at, id) and the next cursor."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        where, params = _report_filters(since, until, party, bbox, unit)
        if after is not None:
            # Keyset pagination: a row-value comparison that the (observed_at, id) index serves.
            where.append("(observed_at, id) > (?, ?)")
            params.extend(_decode_cursor(after))
        query, params = _current_reports(where, params)
        # One row more than asked tells whether another page exists.
        query += " ORDER BY observed_at, id LIMIT ?"
        params.append(limit + 1)
        with self._read() as c:
            rows = c.execute(query, params).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = _encode_cursor(rows[-1][2], rows[-1][0]) if more else None
        return [_report_from_row(row) for row in rows], cursor

    def select_reports(
        self,
        where: Predicate | None,
        *,
        limit: int,
        after: str | None = None,
        before: str | None = None,
    ) -> ReportSelection:
        """One page of the reports `where` keeps (see `Store.select_reports`)."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if after is not None and before is not None:
            raise ValueError("give after or before, not both")
        clauses: list[str] = []
        params: list[Any] = []
        if where is not None:
            sql, values = render(where, REPORT_COLUMNS)
            clauses.append(sql)
            params.extend(values)
        if after is not None:
            clauses.append("(observed_at, id) > (?, ?)")
            params.extend(_decode_cursor(after))
        if before is not None:
            clauses.append("(observed_at, id) < (?, ?)")
            params.extend(_decode_cursor(before))
        query, params = _current_reports(clauses, params)
        direction = "DESC" if before is not None else "ASC"
        query += f" ORDER BY observed_at {direction}, id {direction} LIMIT ?"
        params.append(limit + 1)
        with self._read() as c:
            rows = c.execute(query, params).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        if before is not None:
            rows.reverse()
        if not rows:
            return ReportSelection([], more, None, None)
        return ReportSelection(
            [_report_from_row(row) for row in rows],
            more,
            _encode_cursor(rows[0][2], rows[0][0]),
            _encode_cursor(rows[-1][2], rows[-1][0]),
        )

    def count_reports_where(self, where: Predicate | None) -> int:
        """How many reports `where` keeps (see `Store.count_reports_where`)."""
        if where is None:
            # Every report but the retracted ones (a retraction is a report's one last version).
            with self._read() as c:
                row = c.execute(
                    "SELECT (SELECT count(*) FROM reports) - "
                    "(SELECT count(*) FROM report_versions WHERE retracted)"
                ).fetchone()
            return int(row[0])
        clauses: list[str] = []
        params: list[Any] = []
        if where is not None:
            sql, params = render(where, REPORT_COLUMNS)
            clauses.append(sql)
        query, params = _current_reports(clauses, params)
        with self._read() as c:
            return int(c.execute(f"SELECT count(*) FROM ({query})", params).fetchone()[0])

    def report_columns(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        party: str | None = None,
    ) -> ReportColumns:
        """Every matching report at once, as columns (see `Store.report_columns`)."""
        where, params = _report_filters(since, until, party, None, None)
        query, params = _current_reports(where, params)
        query = (
            "SELECT id, party, observed_at, lon, lat, uncertainty_m, kind, unit, source, "
            f"confidence FROM ({query}) ORDER BY observed_at, id"
        )
        with self._read() as c:
            cursor = c.execute(query, params)
            # A chunk at a time: a million rows' tuples never exist at once.
            return ReportColumns.from_chunks(iter(lambda: cursor.fetchmany(COLUMN_CHUNK), []))

    def reports_token(self) -> int:
        """The newest report position (`reports` rowids and `report_versions` seqs share one
        sequence): each a lookup at the end of a primary key."""
        with self._read() as c:
            row = c.execute(
                "SELECT max(coalesce((SELECT max(rowid) FROM reports), 0), "
                "coalesce((SELECT max(seq) FROM report_versions), 0))"
            ).fetchone()
        return int(row[0])

    def reports_extent(self) -> tuple[BBox | None, datetime | None, datetime | None]:
        """The reports' box and time range (see `Store.reports_extent`)."""
        query, params = _current_reports([], [])
        with self._read() as c:
            row = c.execute(
                "SELECT min(lon), min(lat), max(lon), max(lat), min(observed_at), "
                f"max(observed_at) FROM ({query})",
                params,
            ).fetchone()
        if row[0] is None:
            return None, None, None
        return (row[0], row[1], row[2], row[3]), _from_us(row[4]), _from_us(row[5])

    def count_matching_reports(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        party: str | None = None,
        bbox: BBox | None = None,
        unit: str | None = None,
    ) -> int:
        """How many reports `list_reports` lists with these filters (see the `Store` method)."""
        where, params = _report_filters(since, until, party, bbox, unit)
        query, params = _current_reports(where, params)
        with self._read() as c:
            return int(c.execute(f"SELECT count(*) FROM ({query})", params).fetchone()[0])

    def reports_after(self, position: int, limit: int) -> tuple[list[ReportVersion], int]:
        """Report versions by position after `position` (see `Store.reports_after`).

        Writers are serialised by BEGIN IMMEDIATE, rows are never deleted, and every write
        takes positions after the largest of both tables, so positions grow in commit order.
        """
        with self._read() as c:
            rows = c.execute(
                f"SELECT r.rowid, 1, 0, NULL, a.at, {_prefixed('r')} FROM reports AS r "
                "JOIN audit AS a ON a.id = r.audit_id WHERE r.rowid > ? "
                f"UNION ALL SELECT v.seq, v.version, v.retracted, v.reason, a.at, "
                f"{_prefixed('v')} FROM report_versions AS v "
                "JOIN audit AS a ON a.id = v.audit_id WHERE v.seq > ? "
                "ORDER BY 1 LIMIT ?",
                (position, position, limit),
            ).fetchall()
        if not rows:
            return [], position
        return _versions_from_rows([row[1:] for row in rows]), int(rows[-1][0])

    def get_reports_for_track(self, party: str, unit: str) -> list[Report]:
        """Every report (latest version) of one unit by (observed_at, id)."""
        query, params = _current_reports(["party = ?", "unit = ?"], [party, unit])
        with self._read() as c:
            rows = c.execute(query + " ORDER BY observed_at, id", params).fetchall()
        return [_report_from_row(row) for row in rows]

    def count_reports(self) -> int:
        """How many reports are stored (ids, retracted ones included)."""
        with self._read() as c:
            return int(c.execute("SELECT count(*) FROM reports").fetchone()[0])

    # -- audit ----------------------------------------------------------------------------

    def count_audit(self, after: int | None = None) -> int:
        """How many audit entries there are after the entry with id `after` (all: None)."""
        with self._read() as c:
            row = c.execute("SELECT count(*) FROM audit WHERE id > ?", (after or 0,)).fetchone()
        return int(row[0])

    def audit_log(self, limit: int = 100, after: int | None = None) -> list[AuditEntry]:
        """Audit entries oldest first, after the entry with id `after`."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        with self._read() as c:
            rows = c.execute(
                "SELECT id, at, actor, action, target, detail FROM audit WHERE id > ? "
                "ORDER BY id LIMIT ?",
                (after if after is not None else 0, limit),
            ).fetchall()
        return [
            AuditEntry(
                id=row[0],
                at=_from_us(row[1]),
                actor=row[2],
                action=row[3],
                target=row[4],
                detail=row[5],
            )
            for row in rows
        ]

    # -- API keys -------------------------------------------------------------------------

    def add_key(self, key_hash: str, role: str, label: str, actor: str) -> KeyRecord:
        """Store a key by its hash (see `Store.add_key`)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if not key_hash:
            raise ValueError("key_hash must not be empty")
        with self._write() as c:
            if c.execute("SELECT 1 FROM api_keys WHERE key_hash = ?", (key_hash,)).fetchone():
                raise Conflict("this key is already stored", field="key")
            now = self._now_us()
            cursor = c.execute(
                "INSERT INTO api_keys (key_hash, role, label, created_at, created_by) "
                "VALUES (?, ?, ?, ?, ?)",
                (key_hash, role, label, now, actor),
            )
            key_id = int(cursor.lastrowid or 0)
            self._audit(c, now, actor, "key.create", str(key_id), f"role {role}, label {label}")
            row = c.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)
            ).fetchone()
        return _key_from_row(row)

    def find_key(self, key_hash: str) -> KeyRecord | None:
        """The active key with this hash, or None."""
        with self._read() as c:
            row = c.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
                (key_hash,),
            ).fetchone()
        return None if row is None else _key_from_row(row)

    def list_keys(self) -> list[KeyRecord]:
        """Every key, oldest first."""
        with self._read() as c:
            rows = c.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY id").fetchall()
        return [_key_from_row(row) for row in rows]

    def revoke_key(self, key_id: int, actor: str) -> KeyRecord:
        """Revoke a key once; `UnknownKey` if there is no such key."""
        with self._write() as c:
            row = c.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)
            ).fetchone()
            if row is None:
                raise UnknownKey(f"no API key with id {key_id}", field="id")
            if row[6] is None:
                now = self._now_us()
                c.execute(
                    "UPDATE api_keys SET revoked_at = ?, revoked_by = ? WHERE id = ?",
                    (now, actor, key_id),
                )
                self._audit(c, now, actor, "key.revoke", str(key_id))
                row = c.execute(
                    f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)
                ).fetchone()
        return _key_from_row(row)

    # -- audit entries of the HTTP layer and idempotency keys ---------------------------------
    # The idempotency table is a cache of answers that expire, not part of the record: it is
    # created on first use rather than by a migration, and may be dropped at any time (retries
    # older than that are then run again, which a report with an id survives as a duplicate).

    def add_audit_entry(
        self, actor: str, action: str, target: str, detail: str | None = None
    ) -> AuditEntry:
        """Append one audit entry (see `Store.add_audit_entry`)."""
        with self._write() as c:
            now = self._now_us()
            entry_id = self._audit(c, now, actor, action, target, detail)
        return AuditEntry(
            id=entry_id, at=_from_us(now), actor=actor, action=action, target=target, detail=detail
        )

    _IDEMPOTENCY_TABLE = """CREATE TABLE IF NOT EXISTS idempotency (
        actor TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        status INTEGER,
        body BLOB,
        headers TEXT,
        PRIMARY KEY (actor, key)
    )"""

    def _idempotency(self, c: sqlite3.Connection) -> None:
        """Create the table and its expiry index in `c`'s transaction, unless they exist."""
        c.execute(self._IDEMPOTENCY_TABLE)
        c.execute("CREATE INDEX IF NOT EXISTS idempotency_by_age ON idempotency (created_at)")

    def claim_idempotency_key(
        self, actor: str, key: str, fingerprint: str, expire_before: datetime
    ) -> IdempotentAnswer | None:
        """Claim (actor, key), or return its entry (see `Store.claim_idempotency_key`)."""
        with self._write() as c:
            self._idempotency(c)
            c.execute(
                "DELETE FROM idempotency WHERE created_at < ?",
                (_to_us(expire_before, "expire_before"),),
            )
            row = c.execute(
                "SELECT fingerprint, created_at, status, body, headers FROM idempotency "
                "WHERE actor = ? AND key = ?",
                (actor, key),
            ).fetchone()
            if row is None:
                c.execute(
                    "INSERT INTO idempotency (actor, key, fingerprint, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (actor, key, fingerprint, self._now_us()),
                )
                return None
        headers = orjson.loads(row[4]) if row[4] else []
        return IdempotentAnswer(
            fingerprint=row[0],
            created_at=_from_us(row[1]),
            status=row[2],
            body=bytes(row[3] or b""),
            headers=tuple((str(name), str(value)) for name, value in headers),
        )

    def finish_idempotency_key(
        self,
        actor: str,
        key: str,
        status: int,
        body: bytes,
        headers: Sequence[tuple[str, str]],
    ) -> None:
        """Store the answer of a claimed key (see `Store.finish_idempotency_key`)."""
        with self._write() as c:
            self._idempotency(c)
            c.execute(
                "UPDATE idempotency SET status = ?, body = ?, headers = ? "
                "WHERE actor = ? AND key = ?",
                (status, body, orjson.dumps([list(h) for h in headers]).decode(), actor, key),
            )

    def release_idempotency_key(self, actor: str, key: str) -> None:
        """Forget a running claim (see `Store.release_idempotency_key`)."""
        with self._write() as c:
            self._idempotency(c)
            c.execute(
                "DELETE FROM idempotency WHERE actor = ? AND key = ? AND status IS NULL",
                (actor, key),
            )
