"""`PostGISStore`: the `Store` in PostgreSQL with PostGIS, for many processes and machines.

Choices, and why:

- **psycopg 3 and a pool per server** (psycopg-pool): a connection is checked out per call and
  checked before use (a readable socket on an idle connection means the server closed it: then
  a round trip decides), so connections that a restart of the server killed are replaced by
  themselves; while the server is down, calls fail within `pool_timeout` with
  `Unreachable` (503 with `Retry-After`), and nothing of a write that failed is stored.
- **Writers are serialised** by one transaction-level advisory lock, as SQLite's writers are:
  the audit ids, the zone versions and the report positions of `reports_after` then grow in
  commit order, and the duplicate check of a batch sees every committed id. Readers never wait.
- **Geometry in PostGIS columns**: zones in `geometry(Geometry, 4326)`, reports (and their
  versions) carry a generated `geometry(Point, 4326)`; all with GiST indexes, used by bbox
  filters. Text keys are `COLLATE "C"`, so orders and cursors are those of the SQLite store.
- **Reports partitioned by month of `observed_at`** (declarative range partitions), created on
  demand, each in a short transaction of its own before the batch that needs it.
- **Batches by binary COPY** and reads through binary cursors (no text parsing either way).
- **Every process sees every zone change**: each zone write bumps `meta.zones_token` and sends
  `NOTIFY truce_zones` with the new token, zone and version in the same transaction; each store
  keeps one listening connection in a thread, and on every (re)connection reads the token again
  (notifications sent while it was away are not replayed). `zones_changed_token` answers from
  memory; while the listener is down it reads the token from the primary.
- **A read replica** (`read_url`) serves lists, the report feed and counts; anything that must
  read its own writes (single zones and reports, histories, keys, parties, the zone index and
  every write) goes to the primary. The zone index always comes from the primary, so replica lag
  never makes a check use a stale zone.
- **Schema migrations**: `truce_schema` and the `MIGRATIONS` tuple, run under an advisory lock,
  so processes starting together migrate once; a database from a newer Truce is refused.
"""

from __future__ import annotations

import base64
import math
import select
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import psycopg
import psycopg.errors
import shapely
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

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
    Store,
    StoreError,
    Unavailable,
    UnknownIncident,
    UnknownKey,
    UnknownReport,
    UnknownZone,
    Unreachable,
    UnsupportedDatabase,
)
from app.store.event_watch import EventWatchers
from app.store.postgis_filter import render_postgres
from app.store.postgis_subscriptions import SUBSCRIPTIONS_MIGRATION, PostGISSubscriptions
from app.store.sqlite import (
    _decode_incident_cursor,
    _encode_incident_cursor,
    _Known,
    _report_values,
    _same_content,
    sort_batch,
)
from app.store.sqlite import (
    _report_from_row as _report_from_values,
)

__all__ = [
    "MIGRATIONS",
    "NOTIFY_CHANNEL",
    "UNITS_BACKFILL",
    "PostGISStore",
    "postgres_conninfo",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
#: The advisory lock every write transaction takes (serialises writers, as SQLite does).
_WRITE_LOCK = 0x7472_7563_6501
#: The advisory lock of migrations and of partition creation.
_SCHEMA_LOCK = 0x7472_7563_6502
NOTIFY_CHANNEL = "truce_zones"
#: Up to this many new reports, a batch is written by pipelined INSERTs rather than COPY.
_SMALL_BATCH = 8


def _immutable(table: str) -> tuple[str, ...]:
    return (
        f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION truce_immutable()",
    )


_REPORT_COLUMNS_DDL = """
    id text COLLATE "C" NOT NULL,
    party text COLLATE "C" NOT NULL,
    observed_at timestamptz NOT NULL,
    lon double precision NOT NULL,
    lat double precision NOT NULL,
    uncertainty_m double precision NOT NULL,
    kind text NOT NULL,
    unit text COLLATE "C",
    source text,
    confidence text,
    notes text,
    extra text,
    geom geometry(Point, 4326)
        GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(lon, lat), 4326)) STORED,
    audit_id bigint NOT NULL"""

#: Every report of a unit, latest versions, retracted ones left out (for the units' backfill).
_UNIT_REPORTS = """
    SELECT party, unit, observed_at, id FROM reports AS r WHERE unit IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM report_versions AS x WHERE x.id = r.id)
    UNION ALL SELECT party, unit, observed_at, id FROM report_versions AS v
    WHERE unit IS NOT NULL AND NOT retracted
    AND version = (SELECT max(version) FROM report_versions WHERE id = v.id)"""

#: Every unit's last sighting from the reports stored, as looked at by a stale sweep already
#: (the migration that made `units`, and `truce db copy`, which copies reports but not units).
UNITS_BACKFILL = f"""INSERT INTO units (party, unit, last_at, last_report_id, stale_at)
    SELECT DISTINCT ON (party, unit) party, unit, observed_at, id, observed_at FROM (
        {_UNIT_REPORTS}
    ) AS current ORDER BY party, unit, observed_at DESC, id DESC
    ON CONFLICT (party, unit) DO NOTHING"""

#: The schema, one tuple of statements per version; append, never edit a released one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE EXTENSION IF NOT EXISTS postgis",
        """CREATE FUNCTION truce_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% rows are never overwritten or deleted', TG_TABLE_NAME;
        END $$""",
        """CREATE FUNCTION truce_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% rows are never deleted', TG_TABLE_NAME;
        END $$""",
        # Counters by name: `zones_token` moves with every zone write, `report_position` is
        # the last position of the commit-order feed.
        'CREATE TABLE meta (key text COLLATE "C" PRIMARY KEY, value bigint NOT NULL)',
        "INSERT INTO meta (key, value) VALUES ('zones_token', 0), ('report_position', 0), "
        "('parties_token', 0)",
        """CREATE TABLE audit (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at timestamptz NOT NULL,
            actor text NOT NULL,
            action text NOT NULL,
            target text NOT NULL,
            detail text
        )""",
        """CREATE TABLE zones (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            zone_id text COLLATE "C" NOT NULL,
            version integer NOT NULL,
            name text NOT NULL,
            kind text NOT NULL,
            geometry geometry(Geometry, 4326) NOT NULL,
            minx double precision,
            miny double precision,
            maxx double precision,
            maxy double precision,
            valid_from timestamptz NOT NULL,
            valid_to timestamptz,
            authorized_parties text NOT NULL,
            warning_distance_m double precision NOT NULL,
            boundary_uncertainty_m double precision NOT NULL DEFAULT 0,
            agreement text,
            source text,
            audit_id bigint NOT NULL REFERENCES audit (id),
            UNIQUE (zone_id, version)
        )""",
        "CREATE INDEX zones_geometry ON zones USING gist (geometry)",
        # Version 1 of every report, partitioned by month of observed_at (partitions are made
        # on demand). Ids are unique because writers are serialised and check them first.
        f"""CREATE TABLE reports (
            position bigint NOT NULL,
            {_REPORT_COLUMNS_DDL}
        ) PARTITION BY RANGE (observed_at)""",
        "CREATE INDEX reports_by_id ON reports (id)",
        # Every report id once, with the time that finds its partition: uniqueness across
        # partitions (which a partitioned table cannot declare), and one probe per id for the
        # duplicate check of a batch instead of one per partition.
        """CREATE TABLE report_ids (
            id text COLLATE "C" PRIMARY KEY,
            observed_at timestamptz NOT NULL
        )""",
        "CREATE INDEX reports_by_time ON reports (observed_at, id)",
        "CREATE INDEX reports_by_party ON reports (party, observed_at, id)",
        "CREATE INDEX reports_by_track ON reports (party, unit, observed_at, id)",
        "CREATE INDEX reports_by_position ON reports (position)",
        "CREATE INDEX reports_geom ON reports USING gist (geom)",
        f"""CREATE TABLE report_versions (
            position bigint PRIMARY KEY,
            version integer NOT NULL,
            retracted boolean NOT NULL,
            reason text,
            {_REPORT_COLUMNS_DDL} REFERENCES audit (id),
            UNIQUE (id, version)
        )""",
        "CREATE INDEX report_versions_geom ON report_versions USING gist (geom)",
        """CREATE TABLE api_keys (
            id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            key_hash text NOT NULL UNIQUE,
            role text NOT NULL,
            label text NOT NULL,
            created_at timestamptz NOT NULL,
            created_by text NOT NULL,
            revoked_at timestamptz,
            revoked_by text
        )""",
        """CREATE TABLE parties (
            code text COLLATE "C" PRIMARY KEY,
            name text NOT NULL,
            color text NOT NULL,
            aliases text NOT NULL,
            audit_id bigint NOT NULL REFERENCES audit (id)
        )""",
        # Answers to writes sent with an Idempotency-Key: a cache that expires, not the record.
        """CREATE TABLE idempotency (
            actor text NOT NULL,
            key text NOT NULL,
            fingerprint text NOT NULL,
            created_at timestamptz NOT NULL,
            status integer,
            body bytea,
            headers text,
            PRIMARY KEY (actor, key)
        )""",
        "CREATE INDEX idempotency_by_age ON idempotency (created_at)",
        *_immutable("zones"),
        *_immutable("reports"),
        *_immutable("report_versions"),
        *_immutable("report_ids"),
        *_immutable("audit"),
        "CREATE TRIGGER api_keys_no_delete BEFORE DELETE ON api_keys "
        "FOR EACH ROW EXECUTE FUNCTION truce_no_delete()",
        "CREATE TRIGGER parties_no_delete BEFORE DELETE ON parties "
        "FOR EACH ROW EXECUTE FUNCTION truce_no_delete()",
    ),
    (
        # The event log (app.alerts.events). Ids come from an identity, but only writers that
        # hold the writers' advisory lock (`_WRITE_LOCK`, to their commit) append: ids are
        # therefore taken and committed in one order, and a reader paging by id never skips
        # a lower id committed later.
        """CREATE TABLE events (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            type text NOT NULL,
            created_at timestamptz NOT NULL,
            incident_id bigint,
            zone_id text COLLATE "C",
            data jsonb NOT NULL
        )""",
        "CREATE INDEX events_by_incident ON events (incident_id, id)",
        *_immutable("events"),
        # Incidents (app.alerts.incidents): derived from the reports, kept in step with them in
        # the same transactions; rows change, their history is in `events`.
        """CREATE TABLE incidents (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            party text COLLATE "C" NOT NULL,
            unit text COLLATE "C",
            report_key text COLLATE "C",
            zone_id text COLLATE "C" NOT NULL,
            zone_name text NOT NULL,
            state text NOT NULL,
            opened_at timestamptz NOT NULL,
            last_seen_at timestamptz NOT NULL,
            closed_at timestamptz,
            close_reason text,
            verdict text NOT NULL,
            depth_m double precision NOT NULL,
            deepest_report_id text COLLATE "C" NOT NULL,
            last_report_id text COLLATE "C" NOT NULL,
            report_ids text NOT NULL,
            stale_at timestamptz
        )""",
        "CREATE INDEX incidents_by_unit ON incidents (party, unit)",
        "CREATE INDEX incidents_by_report ON incidents (report_key)",
        "CREATE INDEX incidents_by_time ON incidents (opened_at, id)",
        "CREATE INDEX incidents_open ON incidents (state, last_seen_at)",
    ),
    # webhook subscriptions, their delivery attempts and leases (app/store/postgis_subscriptions)
    SUBSCRIPTIONS_MIGRATION,
    (
        # Units and their last sighting (latest report), kept by every report write, for the
        # stale sweeps of tracks in a zone their party is authorised in (no incident to mark).
        # `stale_at`: the sighting a sweep has looked at. Filled from the reports stored, as
        # looked at already: sightings from before this version raise no event.
        """CREATE TABLE units (
            party text COLLATE "C" NOT NULL,
            unit text COLLATE "C" NOT NULL,
            last_at timestamptz NOT NULL,
            last_report_id text COLLATE "C" NOT NULL,
            stale_at timestamptz,
            PRIMARY KEY (party, unit)
        )""",
        "CREATE INDEX units_by_sighting ON units (last_at)",
        UNITS_BACKFILL,
    ),
)

_ZONE_SELECT = (
    "zone_id, version, name, kind, ST_AsBinary(geometry), valid_from, valid_to, "
    "authorized_parties, warning_distance_m, agreement, source, boundary_uncertainty_m"
)
_REPORT_COLUMNS = (
    "id, party, observed_at, lon, lat, uncertainty_m, kind, unit, source, confidence, notes, extra"
)
_KEY_COLUMNS = "id, key_hash, role, label, created_at, created_by, revoked_at, revoked_by"
# The binary COPY types of `position`, the report columns and `audit_id`.
_COPY_TYPES = [
    "int8",
    "text",
    "text",
    "timestamptz",
    "float8",
    "float8",
    "float8",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "int8",
]

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
SELECT zone_id, version, name, kind, ST_AsBinary(geometry), valid_from, valid_to,
    authorized_parties, warning_distance_m, agreement, source, boundary_uncertainty_m
FROM effective
"""


# -- conversions ------------------------------------------------------------------------------


def _aware(at: datetime, what: str = "datetime") -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {at.isoformat()}")
    return at.astimezone(UTC)


def _utc(at: datetime | None) -> datetime | None:
    return None if at is None else at.astimezone(UTC)


def _to_us(at: datetime) -> int:
    return (at - _EPOCH) // _US


def _zone_params(zone: Zone) -> tuple[Any, ...]:
    """A zone's parameters for `_insert_zone`, after its id and version."""
    valid_from = _aware(zone.valid_from, "valid_from")
    valid_to = None if zone.valid_to is None else _aware(zone.valid_to, "valid_to")
    if valid_to is not None and valid_to <= valid_from:
        raise ValueError(f"zone {zone.id!r}: valid_to must be later than valid_from")
    return (
        zone.name,
        str(zone.kind),
        bytes(shapely.to_wkb(zone.geometry)),
        *(_finite_or_none(float(b)) for b in zone.geometry.bounds),
        valid_from,
        valid_to,
        orjson.dumps(sorted(zone.authorized_parties)).decode(),
        float(zone.warning_distance_m),
        zone.agreement,
        zone.source,
        float(zone.boundary_uncertainty_m),
    )


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _zones_from_rows(rows: Sequence[Sequence[Any]]) -> list[Zone]:
    geometries = shapely.from_wkb([bytes(row[4]) for row in rows]) if rows else []
    return [
        Zone(
            id=row[0],
            version=row[1],
            name=row[2],
            kind=ZoneKind(row[3]),
            geometry=geometry,
            valid_from=row[5].astimezone(UTC),
            valid_to=_utc(row[6]),
            authorized_parties=frozenset(orjson.loads(row[7])),
            warning_distance_m=row[8],
            agreement=row[9],
            source=row[10],
            boundary_uncertainty_m=row[11],
        )
        for row, geometry in zip(rows, geometries, strict=True)
    ]


def _report_row(report: Report) -> tuple[Any, ...]:
    """A report's columns in `_REPORT_COLUMNS` order, as PostgreSQL takes them."""
    return (
        report.id,
        report.party,
        _aware(report.observed_at, "observed_at"),
        float(report.lon),
        float(report.lat),
        float(report.uncertainty_m),
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
        observed_at=row[2].astimezone(UTC),
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


def _versions_from_rows(rows: Sequence[Sequence[Any]]) -> list[ReportVersion]:
    """Rows of (version, retracted, reason, filed at, *report columns) as `ReportVersion`s."""
    return [
        ReportVersion(
            _report_from_row(row[4:]), row[0], row[3].astimezone(UTC), bool(row[1]), row[2]
        )
        for row in rows
    ]


def _key_from_row(row: Sequence[Any]) -> KeyRecord:
    return KeyRecord(
        id=row[0],
        key_hash=row[1],
        role=row[2],
        label=row[3],
        created_at=row[4].astimezone(UTC),
        created_by=row[5],
        revoked_at=_utc(row[6]),
        revoked_by=row[7],
    )


def _bbox_filter(
    bbox: BBox, geometry: str, minx: str, miny: str, maxx: str, maxy: str
) -> tuple[str, list[float]]:
    """SQL keeping envelopes that meet `bbox` (min lon > max lon crosses 180°).

    The GiST operator `&&` finds candidates (its boxes are rounded outwards to single
    precision); the exact comparisons on double columns decide, as the SQLite store does.
    """
    try:
        qminx, qminy, qmaxx, qmaxy = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise ValueError("bbox must be four numbers: min lon, min lat, max lon, max lat") from None
    if not all(math.isfinite(v) for v in (qminx, qminy, qmaxx, qmaxy)) or qminy > qmaxy:
        raise ValueError("bbox must be finite with min lat <= max lat")
    box = f"{geometry} && ST_MakeEnvelope(%s, %s, %s, %s, 4326)"
    lat = f"{maxy} >= %s AND {miny} <= %s"
    if qminx <= qmaxx:
        return (
            f"({box} AND {lat} AND {maxx} >= %s AND {minx} <= %s)",
            [qminx, qminy, qmaxx, qmaxy, qminy, qmaxy, qminx, qmaxx],
        )
    # Across the antimeridian the box is [qminx, 180] plus [-180, qmaxx] (and beyond).
    far = 1e30
    return (
        f"(({box} OR {box}) AND {lat} AND ({maxx} >= %s OR {minx} <= %s))",
        [qminx, qminy, far, qmaxy, -far, qminy, qmaxx, qmaxy, qminy, qmaxy, qminx, qmaxx],
    )


def _encode_cursor(observed_at: datetime, report_id: str) -> str:
    raw = orjson.dumps([_to_us(observed_at), report_id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
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
        or "\x00" in value[1]
    ):
        raise BadCursor("not a cursor from this server", field="after")
    try:
        at = _EPOCH + timedelta(microseconds=value[0])
    except OverflowError:
        raise BadCursor("not a cursor from this server", field="after") from None
    return at, value[1]


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
        opened_at=row[7].astimezone(UTC),
        last_seen_at=row[8].astimezone(UTC),
        closed_at=_utc(row[9]),
        close_reason=row[10],
        verdict=row[11],
        depth_m=float(row[12]),
        deepest_report_id=row[13],
        last_report_id=row[14],
        report_ids=tuple(orjson.loads(row[15])),
        stale_at=_utc(row[16]),
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
        incident.opened_at,
        incident.last_seen_at,
        incident.closed_at,
        incident.close_reason,
        incident.verdict,
        incident.depth_m,
        incident.deepest_report_id,
        incident.last_report_id,
        orjson.dumps(list(incident.report_ids)).decode(),
        incident.stale_at,
    )


def _incident_filters(where: IncidentFilter) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if where.since is not None:
        clauses.append("last_seen_at >= %s")
        params.append(_aware(where.since, "since"))
    if where.until is not None:
        clauses.append("opened_at < %s")
        params.append(_aware(where.until, "until"))
    for column in ("zone", "party", "verdict", "state"):
        value = getattr(where, column)
        if value is not None:
            if "\x00" in value:  # no text column holds U+0000: nothing matches
                clauses.append("false")
                continue
            clauses.append(f"{'zone_id' if column == 'zone' else column} = %s")
            params.append(value)
    return clauses, params


def _event_from_row(row: Sequence[Any]) -> Event:
    """A row of (id, type, created_at, data as text) as an `Event`."""
    return Event(int(row[0]), row[1], row[2].astimezone(UTC), orjson.loads(row[3]))


#: The `meta` key of the largest report uncertainty (whole metres, rounded up), the reach of
#: zone changes (`app.alerts.zone_changes`); computed on first use, raised by report writes.
_REACH_KEY = "uncertainty_reach_m"
#: Reaches are capped here: more than half the Earth's circumference reaches everywhere.
_REACH_CAP_M = 40_000_000


class _Incidents:
    """`app.alerts.incidents.IncidentRecords` (and `ZoneChangeRecords`) in one PostGIS write
    transaction (the writers' lock held: no other writer recomputes the same unit, or takes an
    incident or event id, meanwhile). `cache_index` off: a zone write's index is not kept, as
    its transaction may still roll back (the token it was built at would then come back with
    other zones).

    A batch touches thousands of units: their reports and stored incidents are read by one
    query each (the units as arrays), and the incidents and events written are kept here and
    sent by `flush` in one pipeline, with ids given from the two identity sequences (read
    once, moved on at the flush) instead of one round trip per `RETURNING id`. `flush` must
    run before anything else in the transaction appends an event.
    """

    def __init__(
        self,
        store: PostGISStore,
        c: psycopg.Connection[Any],
        now: datetime,
        cache_index: bool = True,
    ) -> None:
        self._store, self._c, self._now = store, c, now
        self._cache_index = cache_index
        self._next_ids: list[int | None] = [None, None]  # next incident id, next event id
        self._inserts: list[tuple[Any, ...]] = []
        self._updates: list[tuple[Any, ...]] = []
        self._events: list[tuple[Any, ...]] = []

    @staticmethod
    def _unit_arrays(touched: Touched) -> list[list[Any]]:
        units = sorted(touched.units.items())
        return [[k[0] for k, _ in units], [k[1] for k, _ in units], [at for _, at in units]]

    def current_reports(self, touched: Touched) -> list[TrackRow]:
        rows: list[Any] = []
        if touched.units:
            # Each unit's window up to `until` (none: to the end), and the AHEAD reports after
            # it: two lateral arms over the partitions' (party, unit, observed_at, id) indexes.
            upto, _ = _current_reports(
                [
                    "party = t.party",
                    "unit = t.unit",
                    "observed_at >= t.since",
                    "observed_at <= coalesce(t.until, 'infinity')",  # prunes months after
                ],
                [],
            )
            ahead, _ = _current_reports(
                ["party = t.party", "unit = t.unit", "observed_at > t.until"], [], Touched.AHEAD
            )
            ahead = ahead.replace("LIMIT %s", f"LIMIT {Touched.AHEAD}")
            parties, units, since = self._unit_arrays(touched)
            until = [touched.until.get(key) for key in zip(parties, units, strict=True)]
            rows.extend(
                self._c.execute(
                    "SELECT q.* FROM unnest(%s::text[], %s::text[], %s::timestamptz[], "
                    "%s::timestamptz[]) AS t(party, unit, since, until) "
                    f"CROSS JOIN LATERAL (({upto}) UNION ALL ({ahead})) AS q".encode(),
                    [parties, units, since, until],
                    binary=True,
                )
            )
        if touched.lone_reports:
            query, params = _current_reports(
                ["id = ANY(%s)", "unit IS NULL"], [sorted(touched.lone_reports)]
            )
            rows.extend(self._c.execute(query.encode(), params, binary=True))
        # id, party, unit, lon, lat, observed_at (µs), uncertainty_m
        return [(r[0], r[1], r[7], r[3], r[4], (r[2] - _EPOCH) // _US, r[5]) for r in rows]

    def stored_incidents(self, touched: Touched) -> list[Incident]:
        rows: list[Any] = []
        if touched.units:
            columns = ", ".join(f"i.{name}" for name in _INCIDENT_COLUMNS.split(", "))
            rows.extend(
                self._c.execute(
                    f"SELECT {columns} FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) "
                    "AS t(party, unit, since) JOIN incidents AS i "
                    "ON i.party = t.party AND i.unit = t.unit "
                    "AND (i.state = 'open' OR coalesce(i.closed_at, i.last_seen_at) >= t.since)",
                    self._unit_arrays(touched),
                )
            )
        if touched.lone_reports:
            rows.extend(
                self._c.execute(
                    f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE report_key = ANY(%s)",
                    (sorted(touched.lone_reports),),
                )
            )
        return [_incident_from_row(row) for row in rows]

    def zone_index(self) -> ZoneIndex:
        return self._store._zone_index_in(self._c, cache=self._cache_index)

    def note_uncertainty(self, metres: float) -> None:
        reach = min(math.ceil(metres), _REACH_CAP_M)
        self._c.execute(
            "UPDATE meta SET value = %s WHERE key = %s AND value < %s", (reach, _REACH_KEY, reach)
        )

    def uncertainty_reach(self) -> float:
        row = self._c.execute("SELECT value FROM meta WHERE key = %s", (_REACH_KEY,)).fetchone()
        if row is not None:
            return float(row[0])
        # First use on this database: one pass over the reports, then kept up by every write.
        widest = self._c.execute(
            "SELECT greatest(coalesce((SELECT max(uncertainty_m) FROM reports), 0), "
            "coalesce((SELECT max(uncertainty_m) FROM report_versions), 0))"
        ).fetchone()
        reach = min(math.ceil(float(widest[0]) if widest else 0.0), _REACH_CAP_M)
        self._c.execute(
            "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
            (_REACH_KEY, reach),
        )
        return float(reach)

    def note_units(self, latest: dict[tuple[str, str], tuple[int, str] | None]) -> None:
        later = [
            (party, unit, _EPOCH + timedelta(microseconds=last[0]), last[1])
            for (party, unit), last in latest.items()
            if last is not None
        ]
        found = []
        for party, unit in (key for key, last in latest.items() if last is None):
            rows = _unit_tail(self._c, party, unit, 1)
            if rows:
                found.append((party, unit, _EPOCH + rows[0][5] * _US, rows[0][0]))
            else:
                self._c.execute("DELETE FROM units WHERE party = %s AND unit = %s", (party, unit))
        upsert = (
            "INSERT INTO units (party, unit, last_at, last_report_id) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (party, unit) DO UPDATE SET "
            "last_at = excluded.last_at, last_report_id = excluded.last_report_id"
        )
        only_later = (
            " WHERE (excluded.last_at, excluded.last_report_id) "
            "> (units.last_at, units.last_report_id)"
        )
        with self._c.cursor() as cur:  # rows in key order: concurrent writers lock alike
            if later:
                cur.executemany(upsert + only_later, sorted(later))
            if found:
                cur.executemany(upsert, sorted(found))

    def effective_zones(self, zone_ids: Sequence[str]) -> dict[str, list[Zone]]:
        query = (
            _EFFECTIVE_ZONES + " WHERE zone_id = ANY(%s) "
            "AND (valid_to IS NULL OR valid_to > valid_from) ORDER BY zone_id, version"
        )
        rows = self._c.execute(query.encode(), (sorted(zone_ids),), binary=True).fetchall()
        found: dict[str, list[Zone]] = {}
        for zone in _zones_from_rows(rows):
            found.setdefault(zone.id, []).append(zone)
        return found

    def reports_in(self, region: Region) -> list[tuple[str, str | None, str, datetime]]:
        # The partitions of the period (pruned by observed_at), each through its GiST index.
        where, params = ["observed_at >= %s"], [region.start]
        if region.end is not None:
            where.append("observed_at < %s")
            params.append(region.end)
        box, values = _bbox_filter(region.bounds, "geom", "lon", "lat", "lon", "lat")
        query, args = _current_reports([*where, box], [*params, *values])
        rows = self._c.execute(query.encode(), args, binary=True)
        return [(r[1], r[7], r[0], r[2].astimezone(UTC)) for r in rows]

    def _take_id(self, which: int) -> int:
        """The next id of incidents (0) or events (1): the first by `nextval` (whatever the
        sequence's state, e.g. restarted by `truce db copy`), the next ones counted on."""
        taken = self._next_ids[which]
        if taken is None:
            table = ("incidents", "events")[which]
            row = self._c.execute(
                f"SELECT nextval(pg_get_serial_sequence('{table}', 'id'))"
            ).fetchone()
            assert row is not None
            taken = int(row[0])
        self._next_ids[which] = taken + 1
        return taken

    def save_incident(self, incident: Incident, new: bool) -> int:
        values = _incident_values(incident)
        if new:
            incident_id = self._take_id(0)
            self._inserts.append((incident_id, *values))
            return incident_id
        self._updates.append((*values, incident.id))
        return incident.id

    def append_event(
        self, event_type: str, data: dict[str, Any], incident_id: int, zone_id: str
    ) -> int:
        event_id = self._take_id(1)
        self._events.append(
            (event_id, event_type, self._now, incident_id, zone_id, orjson.dumps(data).decode())
        )
        return event_id

    def flush(self) -> None:
        """Write the incidents and events kept, in one pipeline, and move the identity
        sequences past the ids given (a rollback leaves a gap, as `nextval` would)."""
        if self._next_ids == [None, None]:
            return
        names = _INCIDENT_COLUMNS.split(", ")
        with self._c.pipeline(), self._c.cursor() as cur:
            if self._inserts:
                cur.executemany(
                    f"INSERT INTO incidents ({', '.join(names)}) OVERRIDING SYSTEM VALUE "
                    f"VALUES ({', '.join(['%s'] * len(names))})",
                    self._inserts,
                )
            if self._updates:
                cur.executemany(
                    f"UPDATE incidents SET {', '.join(f'{n} = %s' for n in names[1:])} "
                    "WHERE id = %s",
                    self._updates,
                )
            if self._events:
                cur.executemany(
                    "INSERT INTO events (id, type, created_at, incident_id, zone_id, data) "
                    "OVERRIDING SYSTEM VALUE VALUES (%s, %s, %s, %s, %s, %s::jsonb)",
                    self._events,
                )
                # The streams wake at commit (see `PostGISStore._append_event`).
                cur.execute(
                    "SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, f"events {self._events[-1][0]}")
                )
            for following, table in zip(self._next_ids, ("incidents", "events"), strict=True):
                if following is not None:
                    cur.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), %s)",
                        (following - 1,),
                    )
        self._inserts, self._updates, self._events = [], [], []
        self._next_ids = [None, None]


def _keep_incidents(
    store: PostGISStore, c: psycopg.Connection[Any], touched: Touched, cause: str, now: datetime
) -> None:
    """`keep_incidents` in `c`'s write transaction, its writes sent at the end."""
    records = _Incidents(store, c, now)
    keep_incidents(records, touched, cause, now)
    records.flush()


def _unit_tail(c: psycopg.Connection[Any], party: str, unit: str, count: int) -> list[TrackRow]:
    """A unit's latest `count` reports (latest versions, retracted left out), newest first."""
    # Each arm walks the track index backwards and stops after `count` rows.
    tail = " ORDER BY observed_at DESC, id DESC LIMIT %s"
    query = (
        f"(SELECT {_REPORT_COLUMNS} FROM reports AS r WHERE party = %s AND unit = %s "
        f"AND NOT EXISTS (SELECT 1 FROM report_versions AS x WHERE x.id = r.id){tail}) "
        f"UNION ALL (SELECT {_REPORT_COLUMNS} FROM report_versions AS v WHERE NOT v.retracted "
        "AND party = %s AND unit = %s "
        f"AND v.version = (SELECT max(version) FROM report_versions WHERE id = v.id){tail})"
        f"{tail}"
    )
    params = [party, unit, count, party, unit, count, count]
    rows = c.execute(query.encode(), params, binary=True)
    return [(r[0], r[1], r[7], r[3], r[4], (r[2] - _EPOCH) // _US, r[5]) for r in rows]


def _month(at: datetime) -> tuple[int, int]:
    at = at.astimezone(UTC)
    return at.year, at.month


def _partition(year: int, month: int) -> tuple[str, str, str]:
    """Name and bounds of the month's partition of `reports`."""
    following = (year + 1, 1) if month == 12 else (year, month + 1)
    return (
        f"reports_p{year:04d}{month:02d}",
        f"{year:04d}-{month:02d}-01 00:00:00+00",
        f"{following[0]:04d}-{following[1]:02d}-01 00:00:00+00",
    )


def _unavailable(exc: BaseException) -> Unavailable | None:
    """The `Unavailable` that a failure of the database server stands for, else None."""
    if isinstance(exc, PoolTimeout):
        return Unreachable(f"no connection to the database could be had ({exc}); try again")
    if isinstance(exc, psycopg.errors.DiskFull):
        return StorageFull(
            "the database's disk is full: nothing can be written until space is freed "
            "(reads still work)"
        )
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return ReadOnlyStorage("the database is read-only (a standby): nothing can be written")
    if isinstance(
        exc,
        psycopg.errors.LockNotAvailable
        | psycopg.errors.QueryCanceled
        | psycopg.errors.SerializationFailure
        | psycopg.errors.DeadlockDetected,
    ):
        return Busy("the database is busy with other writers; try again")
    if isinstance(
        exc, psycopg.OperationalError | psycopg.InterfaceError | psycopg.errors.AdminShutdown
    ):
        return Unreachable(f"the database cannot be reached ({exc}); try again")
    return None


@contextmanager
def _storage_errors() -> Iterator[None]:
    try:
        yield
    except (psycopg.Error, PoolTimeout) as exc:
        translated = _unavailable(exc)
        if translated is None:
            raise
        raise translated from exc


#: Options of a PostgreSQL URL that this store reads (the rest go to libpq).
_OPTIONS = {"pool_min": 1, "pool_max": 8, "pool_timeout": 5.0, "connect_timeout": 5}


def postgres_conninfo(url: str) -> tuple[str, dict[str, float]]:
    """A libpq URL from a Truce URL (``postgis://``, ``postgresql+psycopg://`` accepted) and
    the pool options taken out of its query (`pool_min`, `pool_max`, `pool_timeout` seconds)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower().split("+")[0]
    if scheme not in ("postgresql", "postgres", "postgis"):
        raise UnsupportedDatabase(f"not a PostgreSQL URL: {url!r}")
    options: dict[str, float] = {}
    passed: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in ("pool_min", "pool_max", "pool_timeout"):
            try:
                number = float(value)
            except ValueError:
                raise UnsupportedDatabase(f"bad {name} {value!r} in the database URL") from None
            if not math.isfinite(number) or number < (1 if name == "pool_max" else 0):
                raise UnsupportedDatabase(f"bad {name} {value!r} in the database URL")
            options[name] = number
        else:
            passed.append((name, value))
    if not any(name == "connect_timeout" for name, _ in passed):
        passed.append(("connect_timeout", str(_OPTIONS["connect_timeout"])))
    return urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(passed), "")), options


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET TIME ZONE 'UTC'")
    # No JIT: the store's statements are index walks whose cost estimates (thousands of
    # lateral probes in a batch's incident recompute) pass `jit_above_cost`, and compiling
    # them took seconds where running them takes milliseconds.
    conn.execute("SET jit = off")


def _check(conn: psycopg.Connection[Any]) -> None:
    """Before a pooled connection is handed out: an idle connection has nothing to read, so a
    readable socket means the server sent something (a FATAL message when it shut down or
    terminated the session, or end of file): then a real round trip decides. A healthy
    connection costs no round trip."""
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    if readable:
        ConnectionPool.check_connection(conn)


# -- the zone listener ------------------------------------------------------------------------


class _ZoneListener:
    """A thread on a connection of its own that follows `NOTIFY truce_zones` (see module)."""

    def __init__(self, conninfo: str, store: PostGISStore) -> None:
        self._conninfo = conninfo
        self._store = store
        self._stop = threading.Event()
        self.connected = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._thread = threading.Thread(target=self._run, name="truce-zone-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    self._conn = conn
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    # Catch up: what changed while no notification could reach this process.
                    tokens: dict[str, int] = dict(
                        conn.execute(
                            "SELECT key, value FROM meta "
                            "WHERE key IN ('zones_token', 'parties_token')"
                        ).fetchall()
                    )
                    self._store._heard_zones_token(int(tokens.get("zones_token", 0)))
                    self._store._saw_parties_token(int(tokens.get("parties_token", 0)))
                    latest = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()
                    self.connected.set()
                    # Events committed while no notification could reach this process.
                    self._store._event_watchers.tell(int(latest[0]) if latest else 0)
                    backoff = 0.05
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.25):
                            with suppress(ValueError, IndexError):
                                words = note.payload.split()
                                if words[0] == "events":
                                    self._store._event_watchers.tell(int(words[1]))
                                elif words[0] == "parties":
                                    self._store._saw_parties_token(int(words[1]))
                                else:
                                    self._store._heard_zones_token(int(words[0]))
            except (psycopg.Error, OSError):
                pass
            finally:
                self.connected.clear()
                self._conn = None
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, 2.0)

    def stop(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None:
            with suppress(Exception):
                conn.cancel_safe(timeout=1.0)
        self._thread.join(timeout=5)


# -- the store --------------------------------------------------------------------------------


class PostGISStore(PostGISSubscriptions, Store):
    """The `Store` in a PostgreSQL + PostGIS database (schema created or migrated on open).

    Safe to share between threads; every process (or machine) opens its own.
    """

    def __init__(
        self,
        url: str,
        *,
        read_url: str | None = None,
        listen: bool = True,
        migrate: bool = True,
        check_schema: bool = True,
    ) -> None:
        """Open the database at `url` (and `read_url`, a replica, for reads).

        `listen` follows zone changes by LISTEN/NOTIFY (off: every `zones_changed_token` reads
        the primary). `migrate` creates or upgrades the schema (off: a database whose schema is
        not current is refused, unless `check_schema` is off too).
        """
        self.url = url
        conninfo, options = postgres_conninfo(url)
        self._conninfo = conninfo
        self._pool_timeout = float(options.get("pool_timeout", _OPTIONS["pool_timeout"]))
        self._closed = False
        # The zone index incidents are judged with, and the zone token it was built at.
        self._incident_index: tuple[int, ZoneIndex] | None = None
        self._token_lock = threading.Condition()
        self._zones_token = -1
        self._heard = -1  # the newest zones token this process's listener has heard
        self._parties_token = -1
        self._partitions: set[tuple[int, int]] = set()
        self._event_watchers = EventWatchers()
        self._local = threading.local()
        self._pool = self._make_pool(conninfo, options, "truce-primary")
        self._read_pool = self._pool
        self._listener: _ZoneListener | None = None
        try:
            if read_url:
                read_conninfo, read_options = postgres_conninfo(read_url)
                self._read_pool = self._make_pool(read_conninfo, read_options, "truce-replica")
            if migrate:
                self.migrate()
            elif check_schema:
                version = self.schema_version()
                if version != len(MIGRATIONS):
                    raise StoreError(
                        f"the database has schema version {version}, this Truce needs "
                        f"{len(MIGRATIONS)}: run `truce db migrate`"
                    )
            if listen:
                self._listener = _ZoneListener(conninfo, self)
                self._listener.connected.wait(self._pool_timeout)
        except BaseException:
            self.close()
            raise

    def _make_pool(self, conninfo: str, options: dict[str, float], name: str) -> ConnectionPool:
        pool = ConnectionPool(
            conninfo,
            min_size=int(options.get("pool_min", _OPTIONS["pool_min"])),
            max_size=max(
                int(options.get("pool_max", _OPTIONS["pool_max"])),
                int(options.get("pool_min", _OPTIONS["pool_min"])),
            ),
            timeout=float(options.get("pool_timeout", _OPTIONS["pool_timeout"])),
            kwargs={"autocommit": True},
            configure=_configure,
            check=_check,
            reconnect_timeout=0,  # keep trying for ever: the server may be restarting
            name=name,
            open=False,
        )
        pool.open(wait=False)
        return pool

    def __repr__(self) -> str:
        return f"PostGISStore({self._conninfo!r})"

    def __enter__(self) -> PostGISStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connections and transactions -----------------------------------------------------

    @contextmanager
    def _connection(self, pool: ConnectionPool | None = None) -> Iterator[psycopg.Connection[Any]]:
        if self._closed:
            raise StoreError("the store is closed")
        with _storage_errors(), (pool or self._pool).connection() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[psycopg.Connection[Any]]:
        """A write transaction on the primary, holding the writers' lock until it ends."""
        with self._connection() as conn, conn.transaction():
            # The lock and the write's time in one round trip: times then grow with audit ids.
            row = conn.execute(
                "SELECT pg_advisory_xact_lock(%s), clock_timestamp()", (_WRITE_LOCK,)
            ).fetchone()
            assert row is not None
            self._local.write = (conn, row[1].astimezone(UTC))
            try:
                yield conn
            finally:
                self._local.write = None

    @contextmanager
    def _read(self, replica: bool = False) -> Iterator[psycopg.Connection[Any]]:
        """A read transaction (one snapshot), on the replica when asked and configured."""
        pool = self._read_pool if replica else self._pool
        with self._connection(pool) as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield conn

    def schema_version(self) -> int:
        """The schema version of the database (0: no schema yet)."""
        with self._connection() as conn:
            row = conn.execute("SELECT to_regclass('truce_schema') IS NOT NULL").fetchone()
            if not row or not row[0]:
                return 0
            row = conn.execute("SELECT coalesce(max(version), 0) FROM truce_schema").fetchone()
        return int(row[0]) if row else 0

    def migrate(self) -> list[int]:
        """Create or upgrade the schema; returns the migrations run (none when current)."""
        ran: list[int] = []
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS truce_schema (version integer NOT NULL)")
            row = conn.execute("SELECT coalesce(max(version), 0) FROM truce_schema").fetchone()
            version = int(row[0]) if row else 0
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"the database has schema version {version}, newer than this Truce "
                    f"({len(MIGRATIONS)}); upgrade Truce"
                )
            for number in range(version + 1, len(MIGRATIONS) + 1):
                for statement in MIGRATIONS[number - 1]:
                    conn.execute(statement.encode())
                conn.execute("INSERT INTO truce_schema (version) VALUES (%s)", (number,))
                ran.append(number)
        return ran

    # -- readiness and lifetime -----------------------------------------------------------

    def check_writable(self, timeout_s: float = 2.0) -> None:
        """Prove a write now: a real row, committed, within `timeout_s` (see `Store`)."""
        with self._connection() as conn, conn.transaction():
            conn.execute(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}")
            conn.execute(f"SET LOCAL lock_timeout = {int(timeout_s * 1000)}")
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('ready_probe', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (_to_us(datetime.now(UTC)),),
            )

    def close(self) -> None:
        """Stop the listener and close both pools."""
        self._closed = True
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        for pool in {id(self._pool): self._pool, id(self._read_pool): self._read_pool}.values():
            with suppress(Exception):
                pool.close(timeout=2)

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _audit(
        c: psycopg.Connection[Any],
        at: datetime,
        actor: str,
        action: str,
        target: str,
        detail: str | None = None,
    ) -> int:
        row = c.execute(
            "INSERT INTO audit (at, actor, action, target, detail) VALUES (%s, %s, %s, %s, %s) "
            "RETURNING id",
            (at, actor, action, target, detail),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def _now(self, c: psycopg.Connection[Any]) -> datetime:
        """The time of the write on the database server's clock (one clock for all): when its
        transaction took the writers' lock."""
        write = getattr(self._local, "write", None)
        if write is not None and write[0] is c:
            cached: datetime = write[1]
            return cached
        row = c.execute("SELECT clock_timestamp()").fetchone()
        assert row is not None
        at: datetime = row[0]
        return at.astimezone(UTC)

    # -- zones ----------------------------------------------------------------------------

    def _saw_zones_token(self, token: int) -> None:
        with self._token_lock:
            self._zones_token = max(self._zones_token, token)

    def _heard_zones_token(self, token: int) -> None:
        with self._token_lock:
            self._heard = max(self._heard, token)
            self._zones_token = max(self._zones_token, token)
            self._token_lock.notify_all()

    def _bump_zones_token(self, c: psycopg.Connection[Any], detail: str) -> int:
        row = c.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'zones_token' RETURNING value"
        ).fetchone()
        assert row is not None
        token = int(row[0])
        c.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, f"{token} {detail}"))
        return token

    def _follow_zones(
        self, c: psycopg.Connection[Any], now: datetime, before: dict[str, list[Zone]]
    ) -> None:
        """After a zone write, in its transaction: recompute the incidents it can change
        (`app.alerts.zone_changes`), with their events after its `zone.changed`."""
        records = _Incidents(self, c, now, cache_index=False)
        follow_zone_changes(records, before, now)
        records.flush()

    def _zones_written(self, token: int) -> None:
        """After a zone write commits: this process knows its token at once, and waits briefly
        for its own listener to hear the notification (the other processes hear it together)."""
        self._saw_zones_token(token)
        listener = self._listener
        if listener is None or not listener.connected.is_set():
            return
        deadline = time.monotonic() + 0.2
        with self._token_lock:
            while self._heard < token and time.monotonic() < deadline:
                self._token_lock.wait(0.01)

    def zones_changed_token(self) -> int:
        """The zone-write counter: from memory while the listener is connected, else read."""
        listener = self._listener
        if listener is not None and listener.connected.is_set():
            return self._zones_token
        with self._connection() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'zones_token'").fetchone()
        token = int(row[0]) if row else 0
        self._saw_zones_token(token)
        return token

    def _insert_zone(
        self,
        c: psycopg.Connection[Any],
        zone_id: str,
        version: int,
        params: tuple[Any, ...],
        audit_id: int,
    ) -> None:
        c.execute(
            """INSERT INTO zones (zone_id, version, name, kind, geometry, minx, miny, maxx, maxy,
                valid_from, valid_to, authorized_parties, warning_distance_m, agreement, source,
                boundary_uncertainty_m, audit_id)
            VALUES (%s, %s, %s, %s, ST_GeomFromWKB(%s, 4326), %s, %s, %s, %s, %s, %s, %s, %s,
                %s, %s, %s, %s)""",
            (zone_id, version, *params, audit_id),
        )

    def add_zones(self, zones: Sequence[Zone], actor: str) -> list[Zone]:
        """Create zones, each as version 1, all or none (see `Store.add_zones`)."""
        seen: set[str] = set()
        for index, zone in enumerate(zones):
            if zone.id in seen:
                raise Conflict(f"zone {zone.id!r} appears twice", field="id", index=index)
            seen.add(zone.id)
        params = [_zone_params(zone) for zone in zones]
        if not zones:
            return []
        with self._write() as c:
            existing = {
                row[0]
                for row in c.execute(
                    "SELECT DISTINCT zone_id FROM zones WHERE zone_id = ANY(%s)", (sorted(seen),)
                )
            }
            for index, zone in enumerate(zones):
                if zone.id in existing:
                    raise Conflict(
                        f"zone {zone.id!r} already exists; send a new version instead",
                        field="id",
                        index=index,
                    )
            now = self._now(c)
            for zone, row in zip(zones, params, strict=True):
                audit_id = self._audit(c, now, actor, "zone.create", zone.id, "version 1")
                self._insert_zone(c, zone.id, 1, row, audit_id)
                self._zone_event(c, now, zone.id, 1, "created", zone.name)
            token = self._bump_zones_token(c, f"{zones[0].id} 1")
            self._follow_zones(c, now, {zone.id: [] for zone in zones})
        self._zones_written(token)
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
        zone_params = [_zone_params(zone) for zone in ordered]
        rows = [_report_row(report) for report in reports]
        filled = "SELECT EXISTS (SELECT 1 FROM zones) OR EXISTS (SELECT 1 FROM reports)"
        with self._read() as c:
            row = c.execute(filled).fetchone()
            if row and row[0]:
                return False
        self._ensure_partitions(reports)
        token = parties_token = None
        with self._write() as c:
            row = c.execute(filled).fetchone()
            if row and row[0]:
                return False
            now = self._now(c)
            versions: dict[str, int] = {}
            for zone, params in zip(ordered, zone_params, strict=True):
                version = versions[zone.id] = versions.get(zone.id, 0) + 1
                action = "zone.create" if version == 1 else "zone.version"
                audit_id = self._audit(c, now, actor, action, zone.id, f"version {version}")
                self._insert_zone(c, zone.id, version, params, audit_id)
                change = "created" if version == 1 else "updated"
                self._zone_event(c, now, zone.id, version, change, zone.name)
            if ordered:
                token = self._bump_zones_token(c, "seed")
            for party in parties:
                parties_token = self._put_party(c, now, party, actor)[1]
            if reports:
                self._insert_reports(c, reports, rows, actor, now)
        if token is not None:
            self._zones_written(token)
        if parties_token is not None:
            self._saw_parties_token(parties_token)
        return True

    def new_zone_version(self, zone: Zone, actor: str) -> Zone:
        """Store `zone` as the next version of its id (see `Store.new_zone_version`)."""
        params = _zone_params(zone)
        with self._write() as c:
            version = self._latest_version(c, zone.id) + 1
            now = self._now(c)
            before = _Incidents(self, c, now, cache_index=False).effective_zones([zone.id])
            audit_id = self._audit(c, now, actor, "zone.version", zone.id, f"version {version}")
            self._insert_zone(c, zone.id, version, params, audit_id)
            self._zone_event(c, now, zone.id, version, "updated", zone.name)
            token = self._bump_zones_token(c, f"{zone.id} {version}")
            self._follow_zones(c, now, {zone.id: before.get(zone.id, [])})
        self._zones_written(token)
        return replace(zone, version=version)

    def retire_zone(self, zone_id: str, at: datetime, actor: str) -> Zone:
        """Store a copy of the latest version ending at `at` (see `Store.retire_zone`)."""
        at = _aware(at, "at")
        with self._write() as c:
            version = self._latest_version(c, zone_id)
            row = c.execute(
                "SELECT valid_from, valid_to FROM zones WHERE zone_id = %s AND version = %s",
                (zone_id, version),
            ).fetchone()
            assert row is not None
            valid_from, valid_to = row
            if at <= valid_from:
                raise Conflict(
                    f"zone {zone_id!r} version {version} starts at "
                    f"{valid_from.astimezone(UTC).isoformat()}; it cannot be retired at or "
                    "before that",
                    field="at",
                )
            if valid_to is not None and valid_to <= at:
                raise Conflict(
                    f"zone {zone_id!r} already ends at {valid_to.astimezone(UTC).isoformat()}",
                    field="at",
                )
            now = self._now(c)
            before = _Incidents(self, c, now, cache_index=False).effective_zones([zone_id])
            audit_id = self._audit(
                c,
                now,
                actor,
                "zone.retire",
                zone_id,
                f"version {version + 1}, valid_to {at.isoformat()}",
            )
            c.execute(
                """INSERT INTO zones (zone_id, version, name, kind, geometry, minx, miny, maxx,
                    maxy, valid_from, valid_to, authorized_parties, warning_distance_m,
                    boundary_uncertainty_m, agreement, source, audit_id)
                SELECT zone_id, version + 1, name, kind, geometry, minx, miny, maxx, maxy,
                    valid_from, %s,
                    authorized_parties, warning_distance_m, boundary_uncertainty_m, agreement,
                    source, %s
                FROM zones WHERE zone_id = %s AND version = %s""",
                (at, audit_id, zone_id, version),
            )
            token = self._bump_zones_token(c, f"{zone_id} {version + 1}")
            rows = c.execute(
                f"SELECT {_ZONE_SELECT} FROM zones WHERE zone_id = %s AND version = %s",
                (zone_id, version + 1),
                binary=True,
            ).fetchall()
            retired = _zones_from_rows(rows)[0]
            self._zone_event(c, now, zone_id, version + 1, "retired", retired.name)
            self._follow_zones(c, now, {zone_id: before.get(zone_id, [])})
        self._zones_written(token)
        return retired

    @staticmethod
    def _latest_version(c: psycopg.Connection[Any], zone_id: str) -> int:
        row = c.execute("SELECT max(version) FROM zones WHERE zone_id = %s", (zone_id,)).fetchone()
        if row is None or row[0] is None:
            raise UnknownZone(f"no zone with id {zone_id!r}", field="id")
        return int(row[0])

    def get_zone(self, zone_id: str) -> Zone:
        """The latest version of a zone, as filed; `UnknownZone` if none."""
        if "\x00" in zone_id:  # no text column holds U+0000: no such zone
            raise UnknownZone(f"no zone with id {zone_id!r}", field="id")
        with self._read() as c:
            rows = c.execute(
                f"SELECT {_ZONE_SELECT} FROM zones WHERE zone_id = %s "
                "ORDER BY version DESC LIMIT 1",
                (zone_id,),
                binary=True,
            ).fetchall()
        if not rows:
            raise UnknownZone(f"no zone with id {zone_id!r}", field="id")
        return _zones_from_rows(rows)[0]

    def zone_history(self, zone_id: str) -> list[Zone]:
        """Every version of a zone, oldest first; `UnknownZone` if none."""
        if "\x00" in zone_id:
            raise UnknownZone(f"no zone with id {zone_id!r}", field="id")
        with self._read() as c:
            rows = c.execute(
                f"SELECT {_ZONE_SELECT} FROM zones WHERE zone_id = %s ORDER BY version",
                (zone_id,),
                binary=True,
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
        """Zones by id and version, filtered (see `Store.list_zones`); from the replica."""
        where: list[str] = []
        params: list[Any] = []
        if bbox is not None:
            clause, values = _bbox_filter(bbox, "geometry", "minx", "miny", "maxx", "maxy")
            where.append(clause)
            params.extend(values)
        if kind is not None:
            where.append("kind = %s")
            params.append(str(ZoneKind(kind)))
        if at is not None:
            at = _aware(at, "at")
            where.append("valid_from <= %s AND (valid_to IS NULL OR %s < valid_to)")
            params.extend([at, at])
            query = _EFFECTIVE_ZONES
        elif all_versions:
            query = f"SELECT {_ZONE_SELECT} FROM zones"
        else:
            query = f"SELECT {_ZONE_SELECT} FROM zones AS z"
            where.append("version = (SELECT max(version) FROM zones WHERE zone_id = z.zone_id)")
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY zone_id, version"
        with self._read(replica=True) as c:
            rows = c.execute(query.encode(), params, binary=True).fetchall()
        return _zones_from_rows(rows)

    def zones_for_index(self) -> list[Zone]:
        """Versions in force at some instant, with their effective validity (primary)."""
        query = (
            _EFFECTIVE_ZONES
            + " WHERE valid_to IS NULL OR valid_to > valid_from ORDER BY zone_id, version"
        )
        with self._read() as c:
            rows = c.execute(query.encode(), binary=True).fetchall()
        return _zones_from_rows(rows)

    def _zone_index_in(self, c: psycopg.Connection[Any], cache: bool = True) -> ZoneIndex:
        """The zone index as transaction `c` sees the zones (kept while the token holds, unless
        `cache` is off: a zone write's transaction may still roll back)."""
        row = c.execute("SELECT value FROM meta WHERE key = 'zones_token'").fetchone()
        token = int(row[0]) if row else 0
        cached = self._incident_index
        if cache and cached is not None and cached[0] == token:
            return cached[1]
        query = (
            _EFFECTIVE_ZONES
            + " WHERE valid_to IS NULL OR valid_to > valid_from ORDER BY zone_id, version"
        )
        zones = _zones_from_rows(c.execute(query.encode(), binary=True).fetchall())
        index = ZoneIndex(zones, threads=1)
        if cache:
            self._incident_index = (token, index)
        return index

    # -- events ---------------------------------------------------------------------------

    @staticmethod
    def _append_event(
        c: psycopg.Connection[Any],
        at: datetime,
        event_type: str,
        data: dict[str, Any],
        *,
        incident_id: int | None = None,
        zone_id: str | None = None,
    ) -> int:
        """Append an event in `c`'s write transaction (the writers' lock held: ids are taken
        in commit order); returns its id."""
        # The NOTIFY in the same statement (no round trip more): delivered to every listening
        # process when the transaction commits, never if it rolls back.
        row = c.execute(
            "WITH e AS (INSERT INTO events (type, created_at, incident_id, zone_id, data) "
            "VALUES (%s, %s, %s, %s, %s::jsonb) RETURNING id) "
            "SELECT id, pg_notify(%s, 'events ' || id) FROM e",
            (event_type, at, incident_id, zone_id, orjson.dumps(data).decode(), NOTIFY_CHANNEL),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def _zone_event(
        self,
        c: psycopg.Connection[Any],
        at: datetime,
        zone_id: str,
        version: int,
        change: str,
        name: str,
    ) -> None:
        payload = zone_changed_payload(zone_id, version, change, name)
        self._append_event(c, at, ZONE_CHANGED, payload, zone_id=zone_id)

    def events_after(
        self, after_id: int, limit: int = 1000, types: Sequence[str] | None = None
    ) -> list[Event]:
        """Events with ids above `after_id`, ascending (see `Store.events_after`).

        Read from the primary: a replica's lag would only delay events, but a reader must not
        see its own writes' events missing.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        query = "SELECT id, type, created_at, data::text FROM events WHERE id > %s"
        params: list[Any] = [int(after_id)]
        if types is not None:
            check_types(types)
            if not types:
                return []
            query += " AND type = ANY(%s)"
            params.append(list(types))
        query += " ORDER BY id LIMIT %s"
        params.append(limit)
        # One statement sees one snapshot by itself: no transaction around it (one round trip
        # instead of four, for streams that read at every event).
        with self._connection() as c:
            rows = c.execute(query, params).fetchall()
        return [_event_from_row(row) for row in rows]

    def last_event_id(self) -> int:
        """The latest event's id, 0 when there is none."""
        with self._connection() as c:
            row = c.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()
        return int(row[0]) if row else 0

    def watch_events(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Call `callback(event_id)` for every commit of any process that appended events, as
        the listener hears its NOTIFY, and after each (re)connection of the listener with the
        latest id (see `Store.watch_events`)."""
        return self._event_watchers.add(callback)

    def events_heard_everywhere(self) -> bool:
        """True while the listener is connected (notifications reach it from every process)."""
        listener = self._listener
        return listener is not None and listener.connected.is_set()

    def incident_events(self, incident_id: int) -> list[Event]:
        """Every event of one incident, oldest first (see `Store.incident_events`)."""
        with self._read() as c:
            self._incident(c, incident_id)
            rows = c.execute(
                "SELECT id, type, created_at, data::text FROM events WHERE incident_id = %s "
                "ORDER BY id",
                (incident_id,),
            ).fetchall()
        return [_event_from_row(row) for row in rows]

    # -- incidents ------------------------------------------------------------------------

    @staticmethod
    def _incident(c: psycopg.Connection[Any], incident_id: int) -> Incident:
        row = None
        if -(2**63) <= incident_id < 2**63:
            row = c.execute(
                f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE id = %s", (incident_id,)
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
            opened_us, incident_id = _decode_incident_cursor(after)
            try:
                opened_at = _EPOCH + timedelta(microseconds=opened_us)
            except OverflowError:
                raise BadCursor("not a cursor from this server", field="after") from None
            clauses.append("(opened_at, id) > (%s, %s)")
            params.extend([opened_at, incident_id])
        query = f"SELECT {_INCIDENT_COLUMNS} FROM incidents"
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        query += " ORDER BY opened_at, id LIMIT %s"
        params.append(limit + 1)
        with self._read() as c:
            rows = c.execute(query.encode(), params).fetchall()
        more = len(rows) > limit
        incidents = [_incident_from_row(row) for row in rows[:limit]]
        cursor = None
        if more:
            cursor = _encode_incident_cursor(_to_us(incidents[-1].opened_at), incidents[-1].id)
        return incidents, cursor

    def count_incidents(self, where: IncidentFilter) -> int:
        """How many incidents `list_incidents` lists (see `Store.count_incidents`)."""
        clauses, params = _incident_filters(where)
        query = "SELECT count(*) FROM incidents"
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        with self._read() as c:
            row = c.execute(query.encode(), params).fetchone()
        return int(row[0]) if row else 0

    def mark_stale_tracks(self, now: datetime, stale_after: timedelta) -> list[Event]:
        """One `track.stale` event per stale sighting (see `Store.mark_stale_tracks`)."""
        due = _aware(now, "now") - stale_after
        events = []
        with self._write() as c:
            rows = c.execute(
                f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE state = 'open' "
                "AND unit IS NOT NULL AND last_seen_at <= %s "
                "AND (stale_at IS NULL OR stale_at <> last_seen_at) ORDER BY last_seen_at, id",
                (due,),
            ).fetchall()
            at = self._now(c)
            for incident in map(_incident_from_row, rows):
                payload = stale_payload(incident, stale_after)
                event_id = self._append_event(
                    c, at, TRACK_STALE, payload, incident_id=incident.id, zone_id=incident.zone_id
                )
                c.execute(
                    "UPDATE incidents SET stale_at = last_seen_at WHERE id = %s", (incident.id,)
                )
                events.append(Event(event_id, TRACK_STALE, at, payload))
            # Units in a zone without an open incident there (their party is authorised).
            units = c.execute(
                "SELECT party, unit, last_at, last_report_id FROM units WHERE last_at <= %s "
                "AND (stale_at IS NULL OR stale_at <> last_at) ORDER BY last_at, party, unit "
                "LIMIT %s",
                (due, STALE_UNITS_PER_SWEEP),
            ).fetchall()
            index = self._zone_index_in(c) if units else None
            for party, unit, last_at, last_report_id in units:
                assert index is not None
                open_zones = {
                    row[0]
                    for row in c.execute(
                        "SELECT zone_id FROM incidents WHERE party = %s AND unit = %s "
                        "AND state = 'open'",
                        (party, unit),
                    )
                }
                tail = _unit_tail(c, party, unit, STALE_LOOKBACK)
                for held in zones_held(tail, index):
                    if held.zone_id in open_zones:
                        continue
                    payload = held_stale_payload(
                        party, unit, held, last_report_id, last_at.astimezone(UTC), stale_after
                    )
                    event_id = self._append_event(c, at, TRACK_STALE, payload, zone_id=held.zone_id)
                    events.append(Event(event_id, TRACK_STALE, at, payload))
                c.execute(
                    "UPDATE units SET stale_at = last_at WHERE party = %s AND unit = %s",
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

    def _saw_parties_token(self, token: int) -> None:
        with self._token_lock:
            self._parties_token = max(self._parties_token, token)

    def parties_token(self) -> tuple[int, int]:
        """The party-write counter (as the zones' token: from memory while the listener is
        connected, else read), paired with 0 to keep the protocol's shape."""
        listener = self._listener
        if listener is not None and listener.connected.is_set():
            return 0, self._parties_token
        with self._connection() as c:
            row = c.execute("SELECT value FROM meta WHERE key = 'parties_token'").fetchone()
        token = int(row[0]) if row else 0
        self._saw_parties_token(token)
        return 0, token

    def put_party(self, party: Party, actor: str) -> tuple[Party, bool]:
        """Register or replace a party, audited (see `Store.put_party`)."""
        with self._write() as c:
            created, token = self._put_party(c, self._now(c), party, actor)
        self._saw_parties_token(token)
        return party, created

    def _put_party(
        self, c: psycopg.Connection[Any], now: datetime, party: Party, actor: str
    ) -> tuple[bool, int]:
        """Write a party and its audit entry, move the parties' token and notify it."""
        created = c.execute("SELECT 1 FROM parties WHERE code = %s", (party.code,)).fetchone()
        detail = orjson.dumps(
            {"name": party.name, "color": party.color, "aliases": list(party.aliases)}
        ).decode()
        audit_id = self._audit(
            c, now, actor, "party.update" if created else "party.create", party.code, detail
        )
        c.execute(
            "INSERT INTO parties (code, name, color, aliases, audit_id) "
            "VALUES (%s, %s, %s, %s, %s) "
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
        row = c.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'parties_token' RETURNING value"
        ).fetchone()
        assert row is not None
        c.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, f"parties {row[0]}"))
        return created is None, int(row[0])

    # -- reports --------------------------------------------------------------------------

    def _ensure_partitions(self, reports: Sequence[Report]) -> None:
        """Create the month partitions the reports need, each in a short transaction of its
        own (creating a partition locks the parent table; a batch must not hold that lock)."""
        months: set[tuple[int, int]] = set()
        for report in reports:
            _aware(report.observed_at, "observed_at")
            months.add(_month(report.observed_at))
        self._ensure_months(months)

    def _ensure_months(self, months: set[tuple[int, int]]) -> None:
        """Create the partitions of `months` (year, month) that do not exist yet."""
        missing = months - self._partitions
        if not missing:
            return
        with self._connection() as conn:
            for year, month in sorted(missing):
                name, start, end = _partition(year, month)
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    exists = conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()
                    if exists is None or exists[0] is None:
                        conn.execute(
                            sql.SQL(
                                "CREATE TABLE {} PARTITION OF reports FOR VALUES FROM ({}) TO ({})"
                            ).format(sql.Identifier(name), sql.Literal(start), sql.Literal(end))
                        )
                self._partitions.add((year, month))

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
        rows = [_report_row(report) for report in reports]
        # Months from the rows' UTC times (checked aware by `_report_row`): no second pass.
        self._ensure_months({(row[2].year, row[2].month) for row in rows})
        with self._write() as c:
            return self._insert_reports(c, reports, rows, actor, self._now(c), update=update)

    @staticmethod
    def _known(c: psycopg.Connection[Any], ids: list[str]) -> dict[str, _Known]:
        """What is stored of `ids`: every version's content, the latest number, retracted.

        `report_ids` says which are stored in one probe each; only those are read whole.
        """
        known: dict[str, _Known] = {}
        with c.cursor(binary=True) as cur:
            found = [
                row[0]
                for row in cur.execute("SELECT id FROM report_ids WHERE id = ANY(%b)", (ids,))
            ]
            if not found:
                return known
            for row in cur.execute(
                f"SELECT {_REPORT_COLUMNS} FROM reports WHERE id = ANY(%s)", (found,)
            ):
                known[row[0]] = _Known([_report_values(_report_from_row(row))])
            for row in cur.execute(
                f"SELECT version, retracted, {_REPORT_COLUMNS} FROM report_versions "
                "WHERE id = ANY(%s) ORDER BY id, version",
                (found,),
            ):
                entry = known[row[2]]
                if not row[1]:
                    entry.contents.append(_report_values(_report_from_row(row[2:])))
                entry.latest, entry.retracted = int(row[0]), bool(row[1])
        return known

    @staticmethod
    def _take_positions(c: psycopg.Connection[Any], count: int) -> int:
        """Reserve `count` positions of the commit-order feed; returns the first."""
        row = c.execute(
            "UPDATE meta SET value = value + %s WHERE key = 'report_position' RETURNING value",
            (count,),
        ).fetchone()
        assert row is not None
        return int(row[0]) - count + 1

    def _insert_reports(
        self,
        c: psycopg.Connection[Any],
        reports: Sequence[Report],
        rows: list[tuple[Any, ...]],
        actor: str,
        now: datetime,
        *,
        update: bool = False,
    ) -> tuple[list[Report], list[ReportVersion], list[str]]:
        """File a batch in `c`'s transaction (the writers' lock held): new ids are stored by
        binary COPY, the same content again is a duplicate, changed content a new version
        (`update`) or a `Conflict`."""
        ids = [report.id for report in reports]
        unique_ids = set(ids)
        known = self._known(c, sorted(unique_ids))
        if not known and len(unique_ids) == len(ids):
            # Every id new and none twice (a bulk load's usual batch): nothing to compare, so
            # no content tuples are built (a third of the Python time of a 1e4 batch).
            stored_at: list[int] = list(range(len(reports)))
            corrected_at: list[int] = []
            duplicates: list[str] = []
        else:
            values = [_report_values(report) for report in reports]
            stored_at, corrected_at, duplicates = sort_batch(reports, values, known, update=update)
        detail = f"stored {len(stored_at)}, duplicates {len(duplicates)}"
        if update:
            detail += f", corrected {len(corrected_at)}"
        # The batch's audit entry and its positions in one round trip.
        taken = len(stored_at) + len(corrected_at)
        taken_row = c.execute(
            "WITH a AS (INSERT INTO audit (at, actor, action, target, detail) "
            "VALUES (%s, %s, 'reports.add', 'reports', %s) RETURNING id), "
            "p AS (UPDATE meta SET value = value + %s WHERE key = 'report_position' "
            "RETURNING value) SELECT a.id, p.value FROM a, p",
            (now, actor, detail, taken),
        ).fetchone()
        assert taken_row is not None
        audit_id, position = int(taken_row[0]), int(taken_row[1]) - taken + 1
        if 0 < len(stored_at) <= _SMALL_BATCH:
            # A few reports: two pipelined INSERTs cost fewer round trips than two COPYs.
            ordered = sorted((rows[index] for index in stored_at), key=lambda row: row[0])
            with c.pipeline(), c.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO reports (position, {_REPORT_COLUMNS}, audit_id) VALUES "
                    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [(position + n, *r, audit_id) for n, r in enumerate(ordered)],
                )
                cur.executemany(
                    "INSERT INTO report_ids (id, observed_at) VALUES (%s, %s)",
                    [(r[0], r[2]) for r in ordered],
                )
            position += len(ordered)
        elif stored_at:
            ordered = sorted((rows[index] for index in stored_at), key=lambda row: row[0])
            with (
                c.cursor() as cur,
                cur.copy(
                    f"COPY reports (position, {_REPORT_COLUMNS}, audit_id) "
                    "FROM STDIN (FORMAT BINARY)"
                ) as copy,
            ):
                copy.set_types(_COPY_TYPES)
                for row in _by_partition(ordered, position, audit_id):
                    copy.write_row(row)
            # The ids from the rows just written, on the server: no second COPY to encode.
            c.execute(
                "INSERT INTO report_ids (id, observed_at) SELECT id, observed_at FROM reports "
                "WHERE position BETWEEN %s AND %s ORDER BY id",
                (position, position + len(ordered) - 1),
            )
            position += len(ordered)
        corrected = []
        touched = Touched().add(reports[index] for index in stored_at)
        for offset, index in enumerate(corrected_at):
            report = reports[index]
            version = known[report.id].latest + 1
            self._insert_version(c, position + offset, version, rows[index], actor, now)
            corrected.append(ReportVersion(report, version, now))
            touched.add([report, _report_from_values(known[report.id].contents[-1])])
        cause = "corrected" if corrected_at else "reports"
        _keep_incidents(self, c, touched, cause, now)
        return [reports[index] for index in stored_at], corrected, duplicates

    def _insert_version(
        self,
        c: psycopg.Connection[Any],
        position: int,
        version: int,
        row: tuple[Any, ...],
        actor: str,
        now: datetime,
        reason: str | None = None,
    ) -> None:
        report_id = row[0]
        if reason is None:
            audit_id = self._audit(c, now, actor, "report.version", report_id, f"version {version}")
        else:
            audit_id = self._audit(
                c, now, actor, "report.retract", report_id, f"version {version}: {reason}"
            )
        c.execute(
            f"INSERT INTO report_versions (position, version, retracted, reason, "
            f"{_REPORT_COLUMNS}, audit_id) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (position, version, reason is not None, reason, *row, audit_id),
        )

    @staticmethod
    def _history(c: psycopg.Connection[Any], report_id: str) -> list[ReportVersion]:
        if "\x00" in report_id:  # no text column holds U+0000: no such report
            raise UnknownReport(f"no report with id {report_id!r}", field="id")
        prefixed_r = ", ".join(f"r.{name}" for name in _REPORT_COLUMNS.split(", "))
        prefixed_v = ", ".join(f"v.{name}" for name in _REPORT_COLUMNS.split(", "))
        rows = c.execute(
            f"SELECT 1, false, NULL::text, a.at, {prefixed_r} FROM reports AS r "
            "JOIN audit AS a ON a.id = r.audit_id WHERE r.id = %s "
            f"UNION ALL SELECT v.version, v.retracted, v.reason, a.at, {prefixed_v} "
            "FROM report_versions AS v JOIN audit AS a ON a.id = v.audit_id WHERE v.id = %s "
            "ORDER BY 1",
            (report_id, report_id),
            binary=True,
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
        ids = [i for i in dict.fromkeys(report_ids) if "\x00" not in i]
        if not ids:
            return []
        prefixed_r = ", ".join(f"r.{name}" for name in _REPORT_COLUMNS.split(", "))
        prefixed_v = ", ".join(f"v.{name}" for name in _REPORT_COLUMNS.split(", "))
        query = (
            f"SELECT 1, false, NULL::text, a.at, {prefixed_r} FROM reports AS r "
            "JOIN audit AS a ON a.id = r.audit_id WHERE r.id = ANY(%s) "
            "AND NOT EXISTS (SELECT 1 FROM report_versions AS x WHERE x.id = r.id) "
            f"UNION ALL SELECT v.version, v.retracted, v.reason, a.at, {prefixed_v} "
            "FROM report_versions AS v JOIN audit AS a ON a.id = v.audit_id "
            "WHERE v.id = ANY(%s) "
            "AND v.version = (SELECT max(version) FROM report_versions WHERE id = v.id)"
        )
        with self._read() as c:
            rows = c.execute(query, (ids, ids), binary=True).fetchall()
        found = {v.report.id: v for v in _versions_from_rows(rows)}
        return [found[i] for i in ids if i in found]

    def report_history(self, report_id: str) -> list[ReportVersion]:
        """Every version of a report, oldest first (see `Store.report_history`)."""
        with self._read() as c:
            return self._history(c, report_id)

    def correct_report(self, report: Report, actor: str) -> tuple[ReportVersion, bool]:
        """Store the next version of a report (see `Store.correct_report`)."""
        row = _report_row(report)
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
            now = self._now(c)
            version = latest.version + 1
            self._insert_version(c, self._take_positions(c, 1), version, row, actor, now)
            touched = Touched().add([report, latest.report])
            _keep_incidents(self, c, touched, "corrected", now)
        return ReportVersion(report, version, now), True

    def retract_report(self, report_id: str, reason: str, actor: str) -> ReportVersion:
        """Retract a report with a reason (see `Store.retract_report`)."""
        with self._write() as c:
            latest = self._history(c, report_id)[-1]
            if latest.retracted:
                raise Conflict(
                    f"report {report_id!r} was already retracted at {latest.filed_at.isoformat()}",
                    field="id",
                )
            now = self._now(c)
            version = latest.version + 1
            self._insert_version(
                c,
                self._take_positions(c, 1),
                version,
                _report_row(latest.report),
                actor,
                now,
                reason=reason,
            )
            touched = Touched().add([latest.report])
            _keep_incidents(self, c, touched, "retracted", now)
        return ReportVersion(latest.report, version, now, True, reason)

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
        """One page of reports (latest versions) by (observed_at, id), from the replica."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if any(value is not None and "\x00" in value for value in (party, unit)):
            return [], None  # no stored text holds U+0000
        where, params = _report_filters(since, until, party, bbox, unit)
        if after is not None:
            where.append("(observed_at, id) > (%s, %s)")
            params.extend(_decode_cursor(after))
        query, all_params = _current_reports(where, params, limit + 1)
        with self._read(replica=True) as c:
            rows = c.execute(query.encode(), all_params, binary=True).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = _encode_cursor(rows[-1][2], rows[-1][0]) if more else None
        return [_report_from_row(row) for row in rows], cursor

    def count_matching_reports(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        party: str | None = None,
        bbox: BBox | None = None,
        unit: str | None = None,
    ) -> int:
        """How many reports `list_reports` lists with these filters (see the `Store` method)."""
        if any(value is not None and "\x00" in value for value in (party, unit)):
            return 0
        where, params = _report_filters(since, until, party, bbox, unit)
        query, params = _current_reports(where, params)
        with self._read(replica=True) as c:
            row = c.execute(f"SELECT count(*) FROM ({query}) AS m", params).fetchone()
        return int(row[0]) if row else 0

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
            sql, values = render_postgres(where)
            clauses.append(sql)
            params.extend(values)
        if after is not None:
            clauses.append("(observed_at, id) > (%s, %s)")
            params.extend(_decode_cursor(after))
        if before is not None:
            clauses.append("(observed_at, id) < (%s, %s)")
            params.extend(_decode_cursor(before))
        query, params = _current_reports(clauses, params)
        direction = "DESC" if before is not None else "ASC"
        query = (
            f"SELECT * FROM ({query}) AS s ORDER BY observed_at {direction}, id {direction} "
            "LIMIT %s"
        )
        params.append(limit + 1)
        with self._read(replica=True) as c:
            rows = c.execute(query.encode(), params, binary=True).fetchall()
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
        clauses: list[str] = []
        params: list[Any] = []
        if where is not None:
            sql, params = render_postgres(where)
            clauses.append(sql)
        query, params = _current_reports(clauses, params)
        with self._read(replica=True) as c:
            row = c.execute(f"SELECT count(*) FROM ({query}) AS m", params).fetchone()
        return int(row[0]) if row else 0

    def report_columns(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        party: str | None = None,
    ) -> ReportColumns:
        """Every matching report at once, as columns (see `Store.report_columns`), from the
        replica; times as integer microseconds computed by the server."""
        if party is not None and "\x00" in party:
            return ReportColumns.from_rows([])
        where, params = _report_filters(since, until, party, None, None)
        query, params = _current_reports(where, params)
        query = (
            "SELECT id, party, "
            "(extract(epoch FROM observed_at) * 1000000)::bigint, lon, lat, uncertainty_m, "
            f"kind, unit, source, confidence FROM ({query}) AS m ORDER BY observed_at, id"
        )
        with self._read(replica=True) as c:
            cursor = c.execute(query.encode(), params, binary=True)
            # A chunk at a time: a million rows' tuples never exist at once.
            return ReportColumns.from_chunks(iter(lambda: cursor.fetchmany(COLUMN_CHUNK), []))

    def reports_token(self) -> int:
        """The newest report position (reports and report versions share one sequence): an
        index probe at the end of each `position` index. From the replica, as the columns
        are: a token never runs ahead of what `report_columns` reads."""
        with self._read(replica=True) as c:
            row = c.execute(
                "SELECT greatest((SELECT max(position) FROM reports), "
                "(SELECT max(position) FROM report_versions), 0)"
            ).fetchone()
        return int(row[0]) if row else 0

    def reports_extent(self) -> tuple[BBox | None, datetime | None, datetime | None]:
        """The reports' box and time range (see `Store.reports_extent`)."""
        query, params = _current_reports([], [])
        with self._read(replica=True) as c:
            row = c.execute(
                "SELECT min(lon), min(lat), max(lon), max(lat), min(observed_at), "
                f"max(observed_at) FROM ({query}) AS m",
                params,
            ).fetchone()
        if row is None or row[0] is None:
            return None, None, None
        return (row[0], row[1], row[2], row[3]), _utc(row[4]), _utc(row[5])

    def reports_after(self, position: int, limit: int) -> tuple[list[ReportVersion], int]:
        """Report versions by position after `position` (see `Store.reports_after`).

        Positions are taken with the writers' lock held to the commit, so they grow in commit
        order on the primary and on every replica (which replays commits in order).
        """
        prefixed_r = ", ".join(f"r.{name}" for name in _REPORT_COLUMNS.split(", "))
        prefixed_v = ", ".join(f"v.{name}" for name in _REPORT_COLUMNS.split(", "))
        with self._read(replica=True) as c:
            rows = c.execute(
                f"(SELECT r.position, 1, false, NULL::text, a.at, {prefixed_r} FROM reports AS r "
                "JOIN audit AS a ON a.id = r.audit_id WHERE r.position > %s "
                "ORDER BY r.position LIMIT %s) "
                f"UNION ALL (SELECT v.position, v.version, v.retracted, v.reason, a.at, "
                f"{prefixed_v} FROM report_versions AS v "
                "JOIN audit AS a ON a.id = v.audit_id WHERE v.position > %s "
                "ORDER BY v.position LIMIT %s) "
                "ORDER BY 1 LIMIT %s",
                (position, limit, position, limit, limit),
                binary=True,
            ).fetchall()
        if not rows:
            return [], position
        return _versions_from_rows([row[1:] for row in rows]), int(rows[-1][0])

    def get_reports_for_track(self, party: str, unit: str) -> list[Report]:
        """Every report (latest version) of one unit by (observed_at, id)."""
        if "\x00" in party or "\x00" in unit:
            return []
        query, params = _current_reports(["party = %s", "unit = %s"], [party, unit])
        with self._read(replica=True) as c:
            rows = c.execute(query.encode(), params, binary=True).fetchall()
        return [_report_from_row(row) for row in rows]

    def count_reports(self) -> int:
        """How many reports are stored (ids, retracted ones included)."""
        with self._read() as c:
            row = c.execute("SELECT count(*) FROM report_ids").fetchone()
        return int(row[0]) if row else 0

    # -- audit ----------------------------------------------------------------------------

    def count_audit(self, after: int | None = None) -> int:
        """How many audit entries there are after the entry with id `after` (all: None)."""
        with self._read() as c:
            row = c.execute("SELECT count(*) FROM audit WHERE id > %s", (after or 0,)).fetchone()
        return int(row[0]) if row else 0

    def audit_log(self, limit: int = 100, after: int | None = None) -> list[AuditEntry]:
        """Audit entries oldest first, after the entry with id `after`."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        with self._read() as c:
            rows = c.execute(
                "SELECT id, at, actor, action, target, detail FROM audit WHERE id > %s "
                "ORDER BY id LIMIT %s",
                (after if after is not None else 0, limit),
            ).fetchall()
        return [
            AuditEntry(
                id=row[0],
                at=row[1].astimezone(UTC),
                actor=row[2],
                action=row[3],
                target=row[4],
                detail=row[5],
            )
            for row in rows
        ]

    def add_audit_entry(
        self, actor: str, action: str, target: str, detail: str | None = None
    ) -> AuditEntry:
        """Append one audit entry (see `Store.add_audit_entry`)."""
        with self._write() as c:
            now = self._now(c)
            entry_id = self._audit(c, now, actor, action, target, detail)
        return AuditEntry(
            id=entry_id, at=now, actor=actor, action=action, target=target, detail=detail
        )

    # -- API keys -------------------------------------------------------------------------

    def add_key(self, key_hash: str, role: str, label: str, actor: str) -> KeyRecord:
        """Store a key by its hash (see `Store.add_key`)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if not key_hash:
            raise ValueError("key_hash must not be empty")
        with self._write() as c:
            if c.execute("SELECT 1 FROM api_keys WHERE key_hash = %s", (key_hash,)).fetchone():
                raise Conflict("this key is already stored", field="key")
            now = self._now(c)
            row = c.execute(
                "INSERT INTO api_keys (key_hash, role, label, created_at, created_by) "
                f"VALUES (%s, %s, %s, %s, %s) RETURNING {_KEY_COLUMNS}",
                (key_hash, role, label, now, actor),
            ).fetchone()
            assert row is not None
            self._audit(c, now, actor, "key.create", str(row[0]), f"role {role}, label {label}")
        return _key_from_row(row)

    def find_key(self, key_hash: str) -> KeyRecord | None:
        """The active key with this hash, or None (from the primary: revocations count)."""
        if "\x00" in key_hash:
            return None
        with self._connection() as c:
            row = c.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL",
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
        if not -(2**63) <= key_id < 2**63:
            raise UnknownKey(f"no API key with id {key_id}", field="id")
        with self._write() as c:
            row = c.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = %s", (key_id,)
            ).fetchone()
            if row is None:
                raise UnknownKey(f"no API key with id {key_id}", field="id")
            if row[6] is None:
                now = self._now(c)
                row = c.execute(
                    "UPDATE api_keys SET revoked_at = %s, revoked_by = %s WHERE id = %s "
                    f"RETURNING {_KEY_COLUMNS}",
                    (now, actor, key_id),
                ).fetchone()
                self._audit(c, now, actor, "key.revoke", str(key_id))
        assert row is not None
        return _key_from_row(row)

    # -- idempotency keys -----------------------------------------------------------------

    def claim_idempotency_key(
        self, actor: str, key: str, fingerprint: str, expire_before: datetime
    ) -> IdempotentAnswer | None:
        """Claim (actor, key), or return its entry (see `Store.claim_idempotency_key`)."""
        expire_before = _aware(expire_before, "expire_before")
        with self._connection() as c, c.transaction():
            c.execute("DELETE FROM idempotency WHERE created_at < %s", (expire_before,))
            claimed = c.execute(
                "INSERT INTO idempotency (actor, key, fingerprint, created_at) "
                "VALUES (%s, %s, %s, clock_timestamp()) ON CONFLICT DO NOTHING RETURNING 1",
                (actor, key, fingerprint),
            ).fetchone()
            if claimed is not None:
                return None
            row = c.execute(
                "SELECT fingerprint, created_at, status, body, headers FROM idempotency "
                "WHERE actor = %s AND key = %s",
                (actor, key),
            ).fetchone()
        if row is None:  # expired and deleted by another claim between the two statements
            return self.claim_idempotency_key(actor, key, fingerprint, expire_before)
        headers = orjson.loads(row[4]) if row[4] else []
        return IdempotentAnswer(
            fingerprint=row[0],
            created_at=row[1].astimezone(UTC),
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
        with self._connection() as c:
            c.execute(
                "UPDATE idempotency SET status = %s, body = %s, headers = %s "
                "WHERE actor = %s AND key = %s",
                (status, body, orjson.dumps([list(h) for h in headers]).decode(), actor, key),
            )

    def release_idempotency_key(self, actor: str, key: str) -> None:
        """Forget a running claim (see `Store.release_idempotency_key`)."""
        with self._connection() as c:
            c.execute(
                "DELETE FROM idempotency WHERE actor = %s AND key = %s AND status IS NULL",
                (actor, key),
            )


def _by_partition(
    ordered: Sequence[tuple[Any, ...]], position: int, audit_id: int
) -> list[tuple[Any, ...]]:
    """COPY rows (`position`, the report columns, `audit_id`) of `ordered` (rows in id order, so
    positions follow ids), sent in order of `observed_at`: COPY then fills one month partition
    at a time with its multi-row inserts (it keeps only 32 partitions' buffers) and each
    partition's time index grows at its end (about 1.6x the rows/s of id order, measured at
    1e5 reports over 38 months)."""
    rows = [(position + n, *row, audit_id) for n, row in enumerate(ordered)]
    rows.sort(key=lambda row: row[3])
    return rows


def _copy_ids(c: psycopg.Connection[Any], rows: Sequence[Sequence[Any]]) -> None:
    """Register new report ids (rows in `_REPORT_COLUMNS` order) by binary COPY; an id stored
    already fails the transaction (the primary key), whatever the checks before missed."""
    with (
        c.cursor() as cur,
        cur.copy("COPY report_ids (id, observed_at) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(["text", "timestamptz"])
        for row in rows:
            copy.write_row((row[0], row[2]))


def _report_filters(
    since: datetime | None,
    until: datetime | None,
    party: str | None,
    bbox: BBox | None,
    unit: str | None,
) -> tuple[list[str], list[Any]]:
    """The WHERE clauses and parameters of `list_reports`'s filters."""
    where: list[str] = []
    params: list[Any] = []
    if since is not None:
        where.append("observed_at >= %s")
        params.append(_aware(since, "since"))
    if until is not None:
        where.append("observed_at < %s")
        params.append(_aware(until, "until"))
    if party is not None:
        where.append("party = %s")
        params.append(party)
    if unit is not None:
        where.append("unit = %s")
        params.append(unit)
    if bbox is not None:
        clause, values = _bbox_filter(bbox, "geom", "lon", "lat", "lon", "lat")
        where.append(clause)
        params.extend(values)
    return where, params


def _current_reports(
    where: Sequence[str], params: Sequence[Any], limit: int | None = None
) -> tuple[str, list[Any]]:
    """Every report's latest version, retracted ones left out, under `where` (two arms, as in
    the SQLite store: reports never changed, and the latest versions of changed ones), ordered
    by (observed_at, id).

    With `limit`, each arm is ordered and limited itself: the first is then an ordered walk of
    the partitions' (observed_at, id) indexes that stops after `limit` rows, where an ORDER BY
    over the whole union would sort every matching report for each page.
    """
    condition = "".join(f" AND {clause}" for clause in where)
    tail = " ORDER BY observed_at, id" + (" LIMIT %s" if limit is not None else "")
    arm_params = [*params, limit] if limit is not None else [*params]
    query = (
        f"(SELECT {_REPORT_COLUMNS} FROM reports AS r "
        "WHERE NOT EXISTS (SELECT 1 FROM report_versions AS x WHERE x.id = r.id)"
        f"{condition}{tail}) "
        f"UNION ALL (SELECT {_REPORT_COLUMNS} FROM report_versions AS v WHERE NOT v.retracted "
        "AND v.version = (SELECT max(version) FROM report_versions WHERE id = v.id)"
        f"{condition}{tail}){tail}"
    )
    return query, [*arm_params, *arm_params, *([limit] if limit is not None else [])]
