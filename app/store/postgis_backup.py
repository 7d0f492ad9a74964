"""`truce backup` and `truce restore` on a PostGIS database: pg_dump and pg_restore.

- **backup** runs `pg_dump --format=custom` (one consistent snapshot, taken while the servers go
  on filing: pg_dump reads in one repeatable-read transaction), writes to `DEST.partial` and
  renames it into place only once pg_dump succeeded, then checks that `pg_restore --list` reads
  the archive back. Progress: the tables whose data is dumped, out of the database's tables.
- **restore** runs `pg_restore --single-transaction --exit-on-error --no-owner` into the
  database of the URL: all or nothing. It refuses a database that holds a Truce schema already
  unless `--force`, which adds `--clean --if-exists` (the archive's objects are dropped and made
  again, in the same single transaction). Stop the servers first: they cache zones.
- Both need PostgreSQL's client tools on PATH (Debian: postgresql-client-15, of the server's
  major version or newer); when they are missing the error says so and points at
  docs/deployment.md (base backups with pg_basebackup are the other way).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from app.store.base import StoreError
from app.store.postgis import postgres_conninfo

__all__ = ["ArchiveInfo", "PgToolError", "pg_backup", "pg_restore"]

#: Progress: (tables done, tables in all).
Progress = Callable[[int, int], None]

# What pg_dump / pg_restore print (with --verbose) as they reach each table's data.
_DUMPING = re.compile(r'dumping contents of table "?([^"\s]+)"?')
_RESTORING = re.compile(r'processing data for table "?([^"\s]+)"?')
_ARCHIVE_MAGIC = b"PGDMP"


class PgToolError(StoreError):
    """pg_dump or pg_restore is missing, or failed (its own message is in the detail)."""

    title = "Backup tool failed"


@dataclass(frozen=True, slots=True)
class ArchiveInfo:
    """A pg_dump archive: where, its size, and how many tables' data it holds."""

    path: Path
    bytes: int
    tables: int


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise PgToolError(
            f"{name} is not installed (or not on PATH): backing up and restoring a PostGIS "
            f"database needs PostgreSQL's client tools of the server's major version or newer "
            f"(Debian: apt-get install postgresql-client-15); docs/deployment.md also describes "
            f"base backups with pg_basebackup"
        )
    return found


def _run(command: list[str], pattern: re.Pattern[str], total: int, progress: Progress) -> None:
    """Run a pg tool, reading its --verbose lines for progress; its last lines on failure."""
    done = 0
    progress(done, total)
    tail: list[str] = []
    env = {**os.environ, "PGCONNECT_TIMEOUT": os.environ.get("PGCONNECT_TIMEOUT", "10")}
    with subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        assert process.stderr is not None
        for line in process.stderr:
            if pattern.search(line):
                done += 1
                progress(min(done, total), total)
            elif "error" in line.lower() or "fatal" in line.lower() or "detail" in line.lower():
                tail.append(line.strip())
        code = process.wait()
    if code != 0:
        message = "; ".join(tail[-3:]) or f"exit code {code}"
        raise PgToolError(f"{Path(command[0]).name} failed: {message}")
    progress(total, total)


def _tables(conninfo: str) -> int:
    """The tables whose data pg_dump writes (partitions included)."""
    try:
        with psycopg.connect(conninfo) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_class WHERE relkind = 'r' "
                "AND relnamespace NOT IN ('pg_catalog'::regnamespace, "
                "'information_schema'::regnamespace)"
            ).fetchone()
    except psycopg.OperationalError as exc:
        raise PgToolError(f"cannot reach the database: {str(exc).strip()}") from exc
    return int(row[0]) if row else 0


def _archive_tables(pg_restore_path: str, archive: Path) -> int:
    """How many tables' data `archive` holds; refuses what pg_restore cannot read."""
    listed = subprocess.run(
        [pg_restore_path, "--list", str(archive)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if listed.returncode != 0:
        raise PgToolError(f"{archive} is not a readable pg_dump archive: {listed.stderr.strip()}")
    return sum(1 for line in listed.stdout.splitlines() if " TABLE DATA " in line)


def pg_backup(
    url: str, dest: Path, *, overwrite: bool = False, progress: Progress | None = None
) -> ArchiveInfo:
    """Dump the PostGIS database of `url` into the custom-format archive `dest`."""
    report = progress or (lambda done, total: None)
    pg_dump, pg_restore_path = _tool("pg_dump"), _tool("pg_restore")
    conninfo, _ = postgres_conninfo(url)
    if dest.exists() and not overwrite:
        raise PgToolError(f"{dest} exists already; pass --force to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    total = _tables(conninfo)
    try:
        _run(
            [pg_dump, "--format=custom", "--verbose", f"--file={partial}", f"--dbname={conninfo}"],
            _DUMPING,
            total,
            report,
        )
        tables = _archive_tables(pg_restore_path, partial)
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)
    return ArchiveInfo(dest, dest.stat().st_size, tables)


def pg_restore(
    source: Path, url: str, *, force: bool = False, progress: Progress | None = None
) -> ArchiveInfo:
    """Restore the archive `source` into the database of `url`, in one transaction."""
    report = progress or (lambda done, total: None)
    pg_restore_path = _tool("pg_restore")
    conninfo, _ = postgres_conninfo(url)
    with source.open("rb") as file:
        if file.read(len(_ARCHIVE_MAGIC)) != _ARCHIVE_MAGIC:
            raise PgToolError(
                f"{source} is not a pg_dump archive (custom format, made by truce backup on a "
                "PostGIS URL); a SQLite backup is restored to a sqlite:/// URL, or moved into "
                "PostGIS with truce db copy"
            )
    tables = _archive_tables(pg_restore_path, source)
    try:
        with psycopg.connect(conninfo) as conn:
            row = conn.execute("SELECT to_regclass('truce_schema') IS NOT NULL").fetchone()
    except psycopg.OperationalError as exc:
        raise PgToolError(f"cannot reach the database: {str(exc).strip()}") from exc
    holds_store = bool(row and row[0])
    if holds_store and not force:
        raise PgToolError(
            "the target database holds a Truce store already: restore into a new, empty "
            "database (createdb), or pass --force to replace what it holds (stop the servers)"
        )
    command = [pg_restore_path, "--single-transaction", "--exit-on-error", "--no-owner"]
    if holds_store:
        command += ["--clean", "--if-exists"]
    _run([*command, "--verbose", f"--dbname={conninfo}", str(source)], _RESTORING, tables, report)
    return ArchiveInfo(source, source.stat().st_size, tables)
