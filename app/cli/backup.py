"""`truce backup DEST` and `truce restore SOURCE`: copies of the store, taken online.

SQLite: `backup` copies the running store (the server keeps serving and filing reports
meanwhile) into one self-contained, integrity-checked file; `restore` verifies such a file and
puts it in place of the store, atomically, refusing while a server has the store open. The
mechanics are in `app.store.sqlite_backup`.

PostGIS (a postgresql:// URL): pg_dump's custom format and pg_restore in one transaction
(`app.store.postgis_backup`), with progress by table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import (
    DEFAULT_DATABASE_URL,
    DatabaseUrl,
    ShowProgress,
    Steps,
    handled_errors,
    print_note,
)
from app.store.postgis_backup import ArchiveInfo, pg_backup, pg_restore
from app.store.sqlite_backup import Copied, backup, restore, sqlite_file

__all__ = ["add_commands", "backup_command", "restore_command"]


def _postgres(url: str) -> bool:
    return url.split(":", 1)[0].lower() in ("postgresql", "postgres", "postgis")


def _archive_summary(info: ArchiveInfo) -> str:
    return f"{info.tables:,} tables, {info.bytes / 2**20:,.1f} MiB (pg_dump custom format)"


def _summary(copied: Copied) -> str:
    return f"{copied.reports:,} reports, {copied.bytes / 2**20:,.1f} MiB ({copied.pages:,} pages)"


def backup_command(
    dest: Annotated[Path, typer.Argument(help="The backup file to write")],
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    force: Annotated[bool, typer.Option("--force", help="Replace DEST if it exists")] = False,
    show_progress: ShowProgress = True,
) -> None:
    """Copy the store, while it is in use, into one integrity-checked file.

    The copy holds every report acknowledged before it began; writes go on meanwhile. On a
    PostGIS URL: pg_dump's custom format (needs PostgreSQL's client tools).
    """
    with handled_errors():
        if _postgres(database_url):
            with Steps(enabled=show_progress) as steps:
                info = pg_backup(
                    database_url,
                    dest,
                    overwrite=force,
                    progress=lambda done, total: steps("dumping tables", done, total),
                )
            print_note(
                f"backed up the PostGIS database to {dest}: {_archive_summary(info)}", "done"
            )
            return
        source = sqlite_file(database_url)
        with Steps(enabled=show_progress) as steps:
            copied = backup(
                source,
                dest,
                overwrite=force,
                progress=lambda done, total: steps("copying pages", done, total),
            )
        print_note(f"backed up {source} to {copied.path}: {_summary(copied)}", "done")


def restore_command(
    source: Annotated[Path, typer.Argument(help="The backup file to restore")],
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace the store even while a process has it open (stop the server first: "
            "its later writes would be lost)",
        ),
    ] = False,
    show_progress: ShowProgress = True,
) -> None:
    """Replace the store with a backup, after checking the backup's integrity.

    Refuses while a server has the store open (unless --force); the switch is one atomic rename.
    On a PostGIS URL: pg_restore in one transaction, into an empty database (or --force to
    replace the Truce store it holds).
    """
    with handled_errors():
        if _postgres(database_url):
            with Steps(enabled=show_progress) as steps:
                info = pg_restore(
                    source,
                    database_url,
                    force=force,
                    progress=lambda done, total: steps("restoring tables", done, total),
                )
            print_note(
                f"restored {source} into the PostGIS database: {_archive_summary(info)}", "done"
            )
            return
        target = sqlite_file(database_url)
        with Steps(enabled=show_progress) as steps:
            copied = restore(
                source,
                target,
                force=force,
                progress=lambda done, total: steps("copying pages", done, total),
            )
        print_note(f"restored {source} into {copied.path}: {_summary(copied)}", "done")


def add_commands(cli: typer.Typer) -> None:
    """Add `backup` and `restore` to `cli`."""
    cli.command("backup")(backup_command)
    cli.command("restore")(restore_command)
