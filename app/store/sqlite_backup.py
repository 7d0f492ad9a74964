"""Online backup and restore of a `SQLiteStore` file, while the server keeps running.

Choices, and why:

- **SQLite's online backup API** (`sqlite3.Connection.backup`), a step of pages at a time so that
  a big store shows progress. The source connection holds one read transaction for the whole
  copy: every step reads the same snapshot, so the copy is consistent (it holds exactly the
  transactions committed before the copy began) and the backup never restarts, however many
  writes land meanwhile. In WAL mode a reader never blocks writers, so the server keeps filing
  reports during the copy.
- **The copy is checked before it is kept**: `PRAGMA integrity_check` on the finished copy, then
  fsync and an atomic rename onto the destination; a failed backup leaves no file behind.
- **Backups are single self-contained files** in rollback-journal mode (no `-wal`/`-shm` next to
  them), so they can be read from read-only media; the server switches a restored file back to
  WAL when it opens it.
- **Restore verifies the source first** (`PRAGMA integrity_check` and a Truce schema it knows),
  refuses to replace a database that a process has open (a server would keep writing to the old
  file, and its `-wal` would not match the new one) unless forced, copies the source beside the
  target, removes the old file's `-wal` and `-shm`, and renames the copy over the target: the
  target path holds the old database or the new one, never a mixture.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from app.store.base import StoreError, UnsupportedDatabase
from app.store.sqlite import MIGRATIONS

__all__ = [
    "BackupError",
    "Copied",
    "DatabaseInUse",
    "ProgressFn",
    "backup",
    "in_use",
    "integrity_problems",
    "restore",
    "sqlite_file",
]

#: Called with (pages copied, pages in all) after each step of a copy.
ProgressFn = Callable[[int, int], None]

#: Pages per step of a copy: 4 MiB with SQLite's default 4 KiB pages, so a progress bar moves
#: smoothly and each step is short.
STEP_PAGES = 1024


class BackupError(StoreError):
    """A backup or restore that cannot be done (no source, a damaged file, a target in the way)."""

    title = "Backup failed"


class DatabaseInUse(BackupError):
    """The database to replace is open in another process (a running server)."""

    title = "Database in use"


@dataclass(frozen=True, slots=True)
class Copied:
    """What a backup or restore wrote: the file, its size and how many reports it holds."""

    path: Path
    pages: int
    bytes: int
    reports: int


def sqlite_file(url: str) -> Path:
    """The file that a `sqlite:///...` database URL names (as `app.store.open_store` reads it)."""
    parts = urlsplit(url)
    path = unquote(parts.path)[1:]
    if parts.scheme.lower() != "sqlite" or parts.netloc or not path or path == ":memory:":
        hint = (
            "; back up a PostGIS store with pg_dump or pg_basebackup (docs/deployment.md)"
            if parts.scheme.lower().startswith(("postgres", "postgis"))
            else ""
        )
        raise UnsupportedDatabase(
            f"backup and restore work on SQLite files (sqlite:///path/to/truce.db), not "
            f"{url!r}{hint}"
        )
    return Path(path)


def _side_files(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def _reader(path: Path) -> sqlite3.Connection:
    """A connection that only reads `path` (a live WAL database included)."""
    # Read-write at the file level, so that a WAL file left by a crash can still be read
    # (a read-only connection cannot recover it); `query_only` keeps it from writing.
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA query_only = ON")
    return conn


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(
    source: Path, dest: Path, progress: ProgressFn | None, step_pages: int
) -> tuple[int, int]:
    """Copy the snapshot of `source` into the new file `dest`; returns (pages, reports)."""
    src = _reader(source)
    try:
        # One read transaction for the whole copy: every step sees the same snapshot.
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()
        dst = sqlite3.connect(dest, isolation_level=None)
        try:

            def step(status: int, remaining: int, total: int) -> None:
                if progress is not None:
                    progress(total - remaining, total)

            src.backup(dst, pages=step_pages, progress=step)
            src.execute("ROLLBACK")
            # A self-contained file: no -wal beside it, readable on read-only media.
            dst.execute("PRAGMA journal_mode = DELETE")
            problems = [row[0] for row in dst.execute("PRAGMA integrity_check(20)")]
            if problems != ["ok"]:
                raise BackupError(f"the copy failed its integrity check: {'; '.join(problems)}")
            pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
            reports = _count_reports(dst)
        finally:
            dst.close()
    finally:
        src.close()
    _fsync(dest)
    return pages, reports


def _count_reports(conn: sqlite3.Connection) -> int:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'reports'"
    ).fetchone()
    return int(conn.execute("SELECT count(*) FROM reports").fetchone()[0]) if exists else 0


def _partial(dest: Path) -> Path:
    """The temporary file beside `dest` that becomes it by an atomic rename."""
    return dest.with_name(f".{dest.name}.{os.getpid()}.partial")


def _publish(partial: Path, dest: Path) -> None:
    """Rename `partial` over `dest` and make the rename durable."""
    os.replace(partial, dest)
    directory = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _cleanup(partial: Path) -> None:
    for path in (partial, *_side_files(partial)):
        path.unlink(missing_ok=True)


def backup(
    source: Path,
    dest: Path,
    *,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    step_pages: int = STEP_PAGES,
) -> Copied:
    """Copy the database at `source` to `dest` while it is in use (see the module docstring).

    The copy holds every transaction committed before it began. Raises `BackupError` when
    `source` does not exist, when `dest` exists and `overwrite` is false, or when the copy fails
    its integrity check (then nothing is left at `dest`).
    """
    if not source.is_file():
        raise BackupError(f"no database at {source}", field="database_url")
    if dest.exists() and not overwrite:
        raise BackupError(f"{dest} exists; give --force to replace it", field="dest")
    if dest.exists() and dest.resolve() == source.resolve():
        raise BackupError("the backup cannot replace the database itself", field="dest")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial(dest)
    _cleanup(partial)
    try:
        pages, reports = _copy(source, partial, progress, step_pages)
        _publish(partial, dest)
    finally:
        _cleanup(partial)
    return Copied(dest, pages, dest.stat().st_size, reports)


def integrity_problems(path: Path) -> list[str]:
    """What is wrong with the Truce database at `path`: [] when it can be restored.

    Runs `PRAGMA integrity_check` and checks that the file holds a Truce schema that this
    version can read.
    """
    if not path.is_file():
        return [f"no file at {path}"]
    try:
        conn = _reader(path)
        try:
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check(20)")]
            if problems != ["ok"]:
                return problems
            tables = {
                row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if not {"schema_version", "zones", "reports"} <= tables:
                return [f"{path} is a SQLite file but not a Truce database"]
            version = int(conn.execute("SELECT max(version) FROM schema_version").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return [f"{path} cannot be read as a SQLite database: {exc}"]
    if version > len(MIGRATIONS):
        return [f"{path} has schema version {version}, newer than this Truce ({len(MIGRATIONS)})"]
    return []


def in_use(path: Path) -> bool:
    """Whether another connection (a running server, another command) has `path` open.

    In WAL mode every open connection holds a shared lock on the file, so an exclusive lock is
    granted only when nobody else has it open; it is asked without waiting, and released at once.
    """
    if not path.exists():
        return False
    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("ROLLBACK")
    except sqlite3.DatabaseError as exc:
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        # Anything but a lock (a file that is not a database at all) is no server's store.
        return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    finally:
        conn.close()
    return False


def restore(
    source: Path,
    target: Path,
    *,
    force: bool = False,
    progress: ProgressFn | None = None,
    step_pages: int = STEP_PAGES,
) -> Copied:
    """Replace the database at `target` with a verified copy of `source` (module docstring).

    Raises `BackupError` when `source` fails its checks (nothing is changed), and
    `DatabaseInUse` when a process has `target` open and `force` is false.
    """
    problems = integrity_problems(source)
    if problems:
        raise BackupError(f"{source} cannot be restored: {'; '.join(problems)}", field="source")
    if target.exists() and source.resolve() == target.resolve():
        raise BackupError("the source is the database itself", field="source")
    if not force and in_use(target):
        raise DatabaseInUse(
            f"{target} is open in another process (a running server?): stop it first, "
            "or give --force to replace the file under it (its writes would be lost)",
            field="database_url",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial(target)
    _cleanup(partial)
    try:
        pages, reports = _copy(source, partial, progress, step_pages)
        # The old file's WAL must not be replayed onto the new file.
        for side in _side_files(target):
            side.unlink(missing_ok=True)
        _publish(partial, target)
    finally:
        _cleanup(partial)
    return Copied(target, pages, target.stat().st_size, reports)
