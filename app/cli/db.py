"""`truce db migrate` and `truce db copy`: the database's schema, and moving a store into PostGIS.

`migrate` creates or upgrades the schema of the store at `--database-url` (SQLite or PostGIS;
servers do it themselves on start, this does it ahead of them). `copy` moves a whole SQLite
store into a PostGIS database, resumably, with progress (`app.store.copy`).
"""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import (
    DEFAULT_DATABASE_URL,
    DatabaseUrl,
    ShowProgress,
    Steps,
    _sqlite_path,
    fail,
    handled_errors,
    print_note,
)

db_app = typer.Typer(help="The database: run its migrations, or copy a SQLite store into PostGIS.")


@db_app.command("migrate")
def migrate(database_url: DatabaseUrl = DEFAULT_DATABASE_URL) -> None:
    """Create or upgrade the schema of the database (the servers also do it on start)."""
    with handled_errors():
        path = _sqlite_path(database_url)
        if path is not None:
            from app.store.sqlite import MIGRATIONS, SQLiteStore

            path.parent.mkdir(parents=True, exist_ok=True)
            SQLiteStore(path).close()
            print_note(f"{database_url}: schema version {len(MIGRATIONS)}", "done")
            return
        from app.store.postgis import MIGRATIONS as PG_MIGRATIONS
        from app.store.postgis import PostGISStore, postgres_conninfo

        postgres_conninfo(database_url)  # refuses what is neither SQLite nor PostgreSQL
        store = PostGISStore(database_url, listen=False, migrate=False, check_schema=False)
        try:
            ran = store.migrate()
        finally:
            store.close()
        done = f"ran {', '.join(map(str, ran))}" if ran else "nothing to run"
        print_note(f"schema version {len(PG_MIGRATIONS)} ({done})", "done")


@db_app.command("copy")
def copy(
    source: Annotated[
        str, typer.Option("--from", help="The SQLite store: sqlite:///path/to/truce.sqlite")
    ],
    target: Annotated[str, typer.Option("--to", help="The PostGIS database: postgresql://...")],
    chunk: Annotated[int, typer.Option(min=1, help="Rows per transaction")] = 10_000,
    show_progress: ShowProgress = True,
) -> None:
    """Copy a whole SQLite store into PostGIS: zones with every version, reports with their
    history, keys, parties and the audit log, as filed.

    Stop the servers first. Resumable: run it again after an interruption and it goes on.
    """
    with handled_errors():
        path = _sqlite_path(source)
        if path is None:
            fail(f"--from must be a SQLite URL (sqlite:///path), not {source!r}")
        from app.store.copy import copy_sqlite_to_postgis
        from app.store.postgis import PostGISStore, postgres_conninfo

        postgres_conninfo(target)
        store = PostGISStore(target, listen=False)
        try:
            with Steps(enabled=show_progress) as steps:
                copied = copy_sqlite_to_postgis(
                    path, store, chunk=chunk, progress=lambda t, d, n: steps(t, d, n)
                )
        finally:
            store.close()
        rows = ", ".join(f"{n:,} {table}" for table, n in copied.rows.items()) or "nothing new"
        resumed = " (resumed)" if copied.resumed else ""
        print_note(f"copied {source} to the PostGIS database{resumed}: {rows}", "done")
