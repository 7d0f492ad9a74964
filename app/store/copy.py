"""Moving a whole SQLite store into PostGIS: `copy_sqlite_to_postgis` (`truce db copy`).

Everything is copied as it was filed, below the `Store` interface (which cannot write the past):
the audit log with its ids and times, every zone version with its audit entry, every report
version with its position in the commit-order feed, the API keys (hashes, revocations) with
their ids, the parties, the zone token, and the answers kept for Idempotency-Key retries (so a
client retrying across the move gets its first answer). The target's identity sequences then
continue after the copied ids.

- **One snapshot**: a run reads the SQLite file in one read transaction, so what it copies is the
  store as it was when the run began (stop the servers first: writes made during the copy are
  not in it).
- **Resumable**: tables go in order (audit, zones, parties, keys, reports, report versions,
  idempotency answers, the event log with its ids, then the incidents as they stand), in chunks
  of `chunk` rows by key, each chunk in one transaction; a run that stops (or fails) leaves
  whole chunks, and the next run goes on after the last key found in the target. Audit
  entries, zones, keys and parties are checked to be the same rows when resuming; a target that
  holds anything else is refused.
- **Fast**: reports go by binary COPY; a month the target has no partition for is loaded into a
  partition of `reports_loading` (no indexes) and moved to `reports` at the end, in one
  transaction, its indexes built by sorting beforehand. Until then the copied reports of those
  months are not visible (a resumed run finds them and goes on).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from app.store.base import StoreError
from app.store.copy_subscriptions import copy_subscriptions
from app.store.postgis import (
    _COPY_TYPES,
    _SCHEMA_LOCK,
    UNITS_BACKFILL,
    PostGISStore,
    _partition,
)

__all__ = ["CopyProgress", "Copied", "copy_sqlite_to_postgis"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: Progress: (table, rows done, rows in all).
CopyProgress = Callable[[str, int, int], None]


def _at(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=us)


@dataclass
class Copied:
    """Rows copied by one run, by table (rows found already in the target are not counted)."""

    rows: dict[str, int] = field(default_factory=dict)
    resumed: bool = False


_REPORT_COLUMNS = (
    "id, party, observed_at, lon, lat, uncertainty_m, kind, unit, source, confidence, notes, extra"
)


def _report_row(row: sqlite3.Row | tuple[Any, ...]) -> tuple[Any, ...]:
    """A SQLite report row (columns above) with its time as a datetime."""
    return (row[0], row[1], _at(row[2]), *row[3:])


def copy_sqlite_to_postgis(
    source: Path,
    target: PostGISStore,
    *,
    chunk: int = 10_000,
    progress: CopyProgress | None = None,
) -> Copied:
    """Copy the SQLite store at `source` into `target` (see the module docstring)."""
    if not source.is_file():
        raise StoreError(f"no SQLite database at {source}")
    report = progress or (lambda table, done, total: None)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, isolation_level=None)
    try:
        src.execute("BEGIN")  # one snapshot for the whole run
        tables = {row[0] for row in src.execute("SELECT name FROM sqlite_master")}
        if not {"audit", "zones", "reports", "api_keys"} <= tables:
            raise StoreError(f"{source} is not a Truce store")
        copied = Copied()
        with target._connection() as pg:
            copied.resumed = _started(pg)
            _copy_audit(src, pg, chunk, copied, report)
            _copy_zones(src, pg, copied, report)
            if "parties" in tables:
                _copy_parties(src, pg, copied, report)
            _copy_keys(src, pg, copied, report)
            _copy_reports(src, pg, target, chunk, copied, report)
            if "report_versions" in tables:
                _copy_versions(src, pg, chunk, copied, report)
            if "idempotency" in tables:
                _copy_idempotency(src, pg, chunk, copied, report)
            if "events" in tables:
                _copy_events(src, pg, chunk, copied, report)
                _copy_incidents(src, pg, copied, report)
            if "subscriptions" in tables and (subscriptions := copy_subscriptions(src, pg)):
                copied.rows["subscriptions"] = subscriptions
                report("subscriptions", subscriptions, subscriptions)
            _finish(src, pg)
        src.execute("COMMIT")
        return copied
    finally:
        src.close()


def _one(pg: psycopg.Connection[Any], query: str, params: tuple[Any, ...] = ()) -> Any:
    row = pg.execute(query.encode(), params).fetchone()
    return None if row is None else row[0]


def _started(pg: psycopg.Connection[Any]) -> bool:
    return bool(_one(pg, "SELECT EXISTS (SELECT 1 FROM audit)"))


def _chunks(src: sqlite3.Connection, query: str, after: Any, size: int) -> Iterator[list[Any]]:
    """Rows of `query` (which takes the last key and a limit) in chunks, by key."""
    while True:
        rows = src.execute(query, (after, size)).fetchall()
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def _copy_audit(
    src: sqlite3.Connection,
    pg: psycopg.Connection[Any],
    size: int,
    copied: Copied,
    report: CopyProgress,
) -> None:
    total = int(src.execute("SELECT count(*) FROM audit").fetchone()[0])
    last = int(_one(pg, "SELECT coalesce(max(id), 0) FROM audit"))
    if last:
        mine = src.execute(
            "SELECT id, at, actor, action, target, detail FROM audit WHERE id = ?", (last,)
        ).fetchone()
        theirs = pg.execute(
            "SELECT id, at, actor, action, target, detail FROM audit WHERE id = %s", (last,)
        ).fetchone()
        if mine is None or theirs is None or (*mine[:1], _at(mine[1]), *mine[2:]) != theirs:
            raise StoreError(
                "the target database holds an audit log that is not this store's: "
                "copy into an empty database"
            )
    done = int(src.execute("SELECT count(*) FROM audit WHERE id <= ?", (last,)).fetchone()[0])
    report("audit", done, total)
    for rows in _chunks(
        src,
        "SELECT id, at, actor, action, target, detail FROM audit WHERE id > ? ORDER BY id LIMIT ?",
        last,
        size,
    ):
        with pg.transaction(), pg.cursor() as cur:
            cur.executemany(
                "INSERT INTO audit (id, at, actor, action, target, detail) "
                "OVERRIDING SYSTEM VALUE VALUES (%s, %s, %s, %s, %s, %s)",
                [(r[0], _at(r[1]), *r[2:]) for r in rows],
            )
        done += len(rows)
        copied.rows["audit"] = copied.rows.get("audit", 0) + len(rows)
        report("audit", done, total)


def _copy_zones(
    src: sqlite3.Connection, pg: psycopg.Connection[Any], copied: Copied, report: CopyProgress
) -> None:
    columns = {row[1] for row in src.execute("PRAGMA table_info(zones)")}
    uncertainty = "boundary_uncertainty_m" if "boundary_uncertainty_m" in columns else "0.0"
    rows = src.execute(
        "SELECT zone_id, version, name, kind, geometry, minx, miny, maxx, maxy, valid_from, "
        f"valid_to, authorized_parties, warning_distance_m, {uncertainty}, agreement, source, "
        "audit_id FROM zones ORDER BY zone_id, version"
    ).fetchall()
    stored = int(_one(pg, "SELECT count(*) FROM zones"))
    report("zones", stored, len(rows))
    if stored == len(rows):
        return
    if stored:
        raise StoreError("the target database holds some zones already: copy into an empty one")
    with pg.transaction(), pg.cursor() as cur:
        cur.executemany(
            """INSERT INTO zones (zone_id, version, name, kind, geometry, minx, miny, maxx, maxy,
                valid_from, valid_to, authorized_parties, warning_distance_m,
                boundary_uncertainty_m, agreement, source, audit_id)
            VALUES (%s, %s, %s, %s, ST_GeomFromWKB(%s, 4326), %s, %s, %s, %s, %s, %s, %s, %s,
                %s, %s, %s, %s)""",
            [(*r[:9], _at(r[9]), _at(r[10]), *r[11:]) for r in rows],
        )
    copied.rows["zones"] = len(rows)
    report("zones", len(rows), len(rows))


def _copy_parties(
    src: sqlite3.Connection, pg: psycopg.Connection[Any], copied: Copied, report: CopyProgress
) -> None:
    rows = src.execute("SELECT code, name, color, aliases, audit_id FROM parties").fetchall()
    stored = int(_one(pg, "SELECT count(*) FROM parties"))
    if stored != len(rows):
        if stored:
            raise StoreError("the target database holds some parties already")
        with pg.transaction(), pg.cursor() as cur:
            cur.executemany(
                "INSERT INTO parties (code, name, color, aliases, audit_id) "
                "VALUES (%s, %s, %s, %s, %s)",
                rows,
            )
        copied.rows["parties"] = len(rows)
    report("parties", len(rows), len(rows))


def _copy_keys(
    src: sqlite3.Connection, pg: psycopg.Connection[Any], copied: Copied, report: CopyProgress
) -> None:
    rows = src.execute(
        "SELECT id, key_hash, role, label, created_at, created_by, revoked_at, revoked_by "
        "FROM api_keys ORDER BY id"
    ).fetchall()
    stored = int(_one(pg, "SELECT count(*) FROM api_keys"))
    if stored != len(rows):
        if stored:
            raise StoreError("the target database holds some API keys already")
        with pg.transaction(), pg.cursor() as cur:
            cur.executemany(
                "INSERT INTO api_keys (id, key_hash, role, label, created_at, created_by, "
                "revoked_at, revoked_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [(*r[:4], _at(r[4]), r[5], _at(r[6]), r[7]) for r in rows],
            )
        copied.rows["api_keys"] = len(rows)
    report("api_keys", len(rows), len(rows))


#: Microseconds from 1970 (SQLite's times) to 2000 (PostgreSQL's binary timestamptz).
_PG_EPOCH_US = 946_684_800_000_000
#: The partitioned table a copy loads months into: no indexes, so each row costs a heap write.
_LOADING = "reports_loading"
#: COPY types of the rows below: the time goes as PostgreSQL's own binary timestamptz (int8
#: microseconds since 2000), so no Python datetime is made for a report.
_BULK_TYPES = [*_COPY_TYPES[:3], "int8", *_COPY_TYPES[4:]]


def _copy_reports(
    src: sqlite3.Connection,
    pg: psycopg.Connection[Any],
    target: PostGISStore,
    size: int,
    copied: Copied,
    report: CopyProgress,
) -> None:
    """Reports in chunks by rowid (= position), the bulk way (see bench/README.md).

    A month the target has no partition for is loaded into a partition of `reports_loading`,
    a partitioned table without indexes, by one binary COPY per chunk; once every chunk is in,
    each month moves to `reports` with its ids (`_attach_loaded`), where PostgreSQL builds its
    six indexes by sorting instead of growing them row by row. Until then the copied reports of
    those months are not visible; a resumed run finds them and goes on. Months that are
    partitions of `reports` already take their rows by COPY into `reports`, as a batch does.
    """
    total = int(src.execute("SELECT count(*) FROM reports").fetchone()[0])
    pg.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (LIKE reports INCLUDING DEFAULTS INCLUDING GENERATED) "
            "PARTITION BY RANGE (observed_at)"
        ).format(sql.Identifier(_LOADING))
    )
    last = int(
        _one(
            pg,
            "SELECT greatest((SELECT max(position) FROM reports), "
            f"(SELECT max(position) FROM {_LOADING}), 0)",
        )
    )
    done = int(src.execute("SELECT count(*) FROM reports WHERE rowid <= ?", (last,)).fetchone()[0])
    report("reports", done, total)
    state = _month_states(pg)
    month_of = "CAST(strftime('%Y%m', observed_at / 1000000, 'unixepoch') AS INTEGER)"
    for chunk in _chunks(
        src,
        f"SELECT rowid, id, party, observed_at - {_PG_EPOCH_US}, lon, lat, uncertainty_m, kind, "
        "unit, source, confidence, notes, extra, audit_id "
        "FROM reports WHERE rowid > ? ORDER BY rowid LIMIT ?",
        last,
        size,
    ):
        # The chunk's months from SQLite (rather than from every row in Python).
        months = {
            int(row[0])
            for row in src.execute(
                f"SELECT DISTINCT {month_of} FROM reports WHERE rowid BETWEEN ? AND ?",
                (chunk[0][0], chunk[-1][0]),
            )
        }
        # One month after another, so COPY fills one partition at a time (a sorted copy: the
        # chunks go on after the chunk's last rowid).
        rows = sorted(chunk, key=itemgetter(3))
        with pg.transaction():  # the chunk and (for months in `reports`) its ids, together
            for month in sorted(months - state.keys()):
                state[month] = _loading_month(pg, month)
            if not any(state[month] for month in months):
                _copy_rows(pg, _LOADING, rows)  # the usual case: every month loading
            else:
                live = [row for row in rows if state[_month_of_row(row)]]
                _copy_rows(pg, _LOADING, [row for row in rows if not state[_month_of_row(row)]])
                _copy_rows(pg, "reports", live)
                _copy_bulk_ids(pg, live)
        done += len(rows)
        copied.rows["reports"] = copied.rows.get("reports", 0) + len(rows)
        report("reports", done, total)
    _attach_loaded(pg, target, report)


def _month_of_row(row: tuple[Any, ...]) -> int:
    """The month (yyyymm, UTC) of a row whose time is PostgreSQL microseconds (since 2000)."""
    at = _at(int(row[3]) + _PG_EPOCH_US)
    assert at is not None
    return at.year * 100 + at.month


def _month_states(pg: psycopg.Connection[Any]) -> dict[int, bool]:
    """The months (yyyymm) that have a table: True for a partition of `reports`, False for one
    of `reports_loading`."""
    rows = pg.execute(
        "SELECT c.relname, p.relname = 'reports' FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
        "WHERE p.relname IN ('reports', %s)",
        (_LOADING,),
    ).fetchall()
    return {int(name[9:15]): bool(live) for name, live in rows if name[9:15].isdigit()}


def _loading_month(pg: psycopg.Connection[Any], month: int) -> bool:
    """Give `month` (yyyymm) a partition of `reports_loading`; False (not live)."""
    name, start, end = _partition(month // 100, month % 100)
    pg.execute(
        sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
            sql.Identifier(name), sql.Identifier(_LOADING), sql.Literal(start), sql.Literal(end)
        )
    )
    return False


def _copy_rows(pg: psycopg.Connection[Any], table: str, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    with (
        pg.cursor() as cur,
        cur.copy(
            sql.SQL("COPY {} (position, {}, audit_id) FROM STDIN (FORMAT BINARY)").format(
                sql.Identifier(table), sql.SQL(_REPORT_COLUMNS)
            )
        ) as copy,
    ):
        copy.set_types(_BULK_TYPES)
        for row in rows:
            copy.write_row(row)


def _copy_bulk_ids(pg: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> None:
    with (
        pg.cursor() as cur,
        cur.copy("COPY report_ids (id, observed_at) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(["text", "int8"])
        for row in rows:
            copy.write_row((row[1], row[3]))


def _index_months(
    pg: psycopg.Connection[Any], target: PostGISStore, months: list[int], report: CopyProgress
) -> None:
    """Build the indexes of `reports` on the loaded month tables, on two connections at once
    (the machine's two cores): each a sorted build; ATTACH then finds them and builds none."""
    definitions = [
        (str(row[0]), str(row[1]))
        for row in pg.execute(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'reports'::regclass"
        ).fetchall()
    ]
    jobs: list[str] = []
    for month in months:
        name, _, _ = _partition(month // 100, month % 100)
        have = {
            str(row[0])
            for row in pg.execute(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE i.indrelid = %s::regclass",
                (name,),
            ).fetchall()
        }
        for index, definition in definitions:
            mine = f"{name}_{index.removeprefix('reports_')}"
            if mine in have:  # built by an earlier run that stopped before attaching
                continue
            # "CREATE INDEX reports_by_id ON ONLY public.reports USING ..." -> the month's.
            head, sep, tail = definition.partition(" ON ONLY public.reports ")
            if not sep:
                raise StoreError(f"unexpected index definition: {definition}")
            jobs.append(
                sql.SQL("CREATE INDEX {} ON {} ")
                .format(sql.Identifier(mine), sql.Identifier(name))
                .as_string(pg)
                + tail
            )
    if not jobs:
        return
    done = 0
    lock = threading.Lock()

    def build(statements: list[str]) -> None:
        nonlocal done
        # A connection of its own, outside the store's pool (which may be as small as one).
        with psycopg.connect(target._conninfo, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement.encode())
                with lock:
                    done += 1
                    report("report month indexes", done, len(jobs))

    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(build, jobs[k::2]) for k in range(2)]:
            future.result()


def _attach_loaded(pg: psycopg.Connection[Any], target: PostGISStore, report: CopyProgress) -> None:
    """Move every loaded month to `reports`, all in one transaction: their ids registered in
    `report_ids` by one insert in id order (the primary key then grows at its end), and each
    month detached from `reports_loading` and attached to `reports` (its indexes, built by
    `_index_months`, are taken as the partition's; the row triggers are cloned). One
    transaction, so the ids never name a report not visible yet, whatever stops the run."""
    months = sorted(month for month, live in _month_states(pg).items() if not live)
    _index_months(pg, target, months, report)
    if not months:
        pg.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(_LOADING)))
        return
    report("report months attached", 0, len(months))
    with pg.transaction():
        pg.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        # The ids' sort in memory rather than in temporary files (a one-off, about 50 MiB for
        # a million ids).
        pg.execute("SET LOCAL work_mem = '128MB'")
        pg.execute(
            sql.SQL(
                "INSERT INTO report_ids (id, observed_at) SELECT id, observed_at FROM {} "
                "ORDER BY id"
            ).format(sql.Identifier(_LOADING))
        )
        for n, month in enumerate(months, 1):
            name, start, end = _partition(month // 100, month % 100)
            pg.execute(
                sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
                    sql.Identifier(_LOADING), sql.Identifier(name)
                )
            )
            pg.execute(
                sql.SQL(
                    "ALTER TABLE reports ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})"
                ).format(sql.Identifier(name), sql.Literal(start), sql.Literal(end))
            )
            report("report months attached", n, len(months))
        pg.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(_LOADING)))
    target._partitions.update((month // 100, month % 100) for month in months)


def _copy_versions(
    src: sqlite3.Connection,
    pg: psycopg.Connection[Any],
    size: int,
    copied: Copied,
    report: CopyProgress,
) -> None:
    total = int(src.execute("SELECT count(*) FROM report_versions").fetchone()[0])
    last = int(_one(pg, "SELECT coalesce(max(position), 0) FROM report_versions"))
    done = int(
        src.execute("SELECT count(*) FROM report_versions WHERE seq <= ?", (last,)).fetchone()[0]
    )
    report("report_versions", done, total)
    for rows in _chunks(
        src,
        f"SELECT seq, version, retracted, reason, {_REPORT_COLUMNS}, audit_id "
        "FROM report_versions WHERE seq > ? ORDER BY seq LIMIT ?",
        last,
        size,
    ):
        with pg.transaction(), pg.cursor() as cur:
            cur.executemany(
                f"INSERT INTO report_versions (position, version, retracted, reason, "
                f"{_REPORT_COLUMNS}, audit_id) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [(r[0], r[1], bool(r[2]), r[3], *_report_row(r[4:16]), r[16]) for r in rows],
            )
        done += len(rows)
        copied.rows["report_versions"] = copied.rows.get("report_versions", 0) + len(rows)
        report("report_versions", done, total)


def _copy_idempotency(
    src: sqlite3.Connection,
    pg: psycopg.Connection[Any],
    size: int,
    copied: Copied,
    report: CopyProgress,
) -> None:
    """The answers kept for Idempotency-Key retries, with their times (they expire alike), in
    chunks by (actor, key); a resumed run goes on after the greatest pair in the target, in
    the bytewise order both databases share (SQLite's BINARY, PostgreSQL's "C"). Claims with
    no answer are left out: they are requests that were running when the servers stopped, and
    a retry of one must run again rather than wait for the claim to expire."""
    finished = "status IS NOT NULL"
    total = int(src.execute(f"SELECT count(*) FROM idempotency WHERE {finished}").fetchone()[0])
    last = pg.execute(
        'SELECT actor, key FROM idempotency ORDER BY actor COLLATE "C" DESC, key COLLATE "C" '
        "DESC LIMIT 1"
    ).fetchone()
    after = (str(last[0]), str(last[1])) if last else ("", "")
    done = int(
        src.execute(
            f"SELECT count(*) FROM idempotency WHERE {finished} AND (actor, key) <= (?, ?)",
            after,
        ).fetchone()[0]
    )
    report("idempotency", done, total)
    while True:
        rows = src.execute(
            "SELECT actor, key, fingerprint, created_at, status, body, headers FROM idempotency "
            f"WHERE {finished} AND (actor, key) > (?, ?) ORDER BY actor, key LIMIT ?",
            (*after, size),
        ).fetchall()
        if not rows:
            return
        with pg.transaction(), pg.cursor() as cur:
            cur.executemany(
                "INSERT INTO idempotency (actor, key, fingerprint, created_at, status, body, "
                "headers) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [(r[0], r[1], r[2], _at(r[3]), r[4], r[5], r[6]) for r in rows],
            )
        after = (rows[-1][0], rows[-1][1])
        done += len(rows)
        copied.rows["idempotency"] = copied.rows.get("idempotency", 0) + len(rows)
        report("idempotency", done, total)


_INCIDENT_COLUMNS = (
    "id, party, unit, report_key, zone_id, zone_name, state, opened_at, last_seen_at, "
    "closed_at, close_reason, verdict, depth_m, deepest_report_id, last_report_id, report_ids, "
    "stale_at"
)


def _copy_events(
    src: sqlite3.Connection,
    pg: psycopg.Connection[Any],
    size: int,
    copied: Copied,
    report: CopyProgress,
) -> None:
    """The event log with its ids (so clients resume with the ids they hold), by id chunks."""
    total = int(src.execute("SELECT count(*) FROM events").fetchone()[0])
    last = int(_one(pg, "SELECT coalesce(max(id), 0) FROM events"))
    done = int(src.execute("SELECT count(*) FROM events WHERE id <= ?", (last,)).fetchone()[0])
    query = (
        "SELECT id, type, created_at, incident_id, zone_id, data FROM events "
        "WHERE id > ? ORDER BY id LIMIT ?"
    )
    for rows in _chunks(src, query, last, size):
        with pg.transaction(), pg.cursor() as cur:
            cur.executemany(
                "INSERT INTO events (id, type, created_at, incident_id, zone_id, data) "
                "OVERRIDING SYSTEM VALUE VALUES (%s, %s, %s, %s, %s, %s::jsonb)",
                [(r[0], r[1], _at(r[2]), r[3], r[4], r[5]) for r in rows],
            )
        done += len(rows)
        copied.rows["events"] = copied.rows.get("events", 0) + len(rows)
        report("events", done, total)


def _copy_incidents(
    src: sqlite3.Connection, pg: psycopg.Connection[Any], copied: Copied, report: CopyProgress
) -> None:
    """The incidents as they stand (derived rows, copied whole in one transaction)."""
    rows = src.execute(f"SELECT {_INCIDENT_COLUMNS} FROM incidents ORDER BY id").fetchall()
    stored = int(_one(pg, "SELECT count(*) FROM incidents"))
    if stored != len(rows):
        if stored:
            raise StoreError("the target database holds some incidents already")
        marks = ", ".join(["%s"] * 17)
        with pg.transaction(), pg.cursor() as cur:
            cur.executemany(
                f"INSERT INTO incidents ({_INCIDENT_COLUMNS}) OVERRIDING SYSTEM VALUE "
                f"VALUES ({marks})",
                [(*r[:7], _at(r[7]), _at(r[8]), _at(r[9]), *r[10:16], _at(r[16])) for r in rows],
            )
        copied.rows["incidents"] = len(rows)
    report("incidents", len(rows), len(rows))


def _finish(src: sqlite3.Connection, pg: psycopg.Connection[Any]) -> None:
    """Counters and identity sequences continue after what was copied."""
    token = src.execute("SELECT value FROM meta WHERE key = 'zones_token'").fetchone()
    position = src.execute(
        "SELECT max(coalesce((SELECT max(rowid) FROM reports), 0), "
        "coalesce((SELECT max(seq) FROM report_versions), 0))"
        if _has_versions(src)
        else "SELECT coalesce(max(rowid), 0) FROM reports"
    ).fetchone()
    with pg.transaction():
        pg.execute(
            "UPDATE meta SET value = greatest(value, %s) WHERE key = 'zones_token'",
            (int(token[0]) if token else 0,),
        )
        pg.execute(
            "UPDATE meta SET value = greatest(value, %s) WHERE key = 'report_position'",
            (int(position[0]),),
        )
        pg.execute("UPDATE meta SET value = value + 1 WHERE key = 'parties_token'")
        pg.execute(UNITS_BACKFILL.encode())  # derived from the reports just copied
        for table in ("audit", "api_keys", "events", "incidents"):
            pg.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)".encode()
            )
        pg.execute(
            "SELECT pg_notify('truce_zones', "
            "(SELECT value FROM meta WHERE key = 'zones_token')::text || ' copy')"
        )


def _has_versions(src: sqlite3.Connection) -> bool:
    row = src.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'report_versions'"
    ).fetchone()
    return row is not None
