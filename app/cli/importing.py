"""`truce import zones|reports`: store the zones or reports of a file in the database."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import (
    DEFAULT_DATABASE_URL,
    Actor,
    AllowSwapped,
    Crs,
    DatabaseUrl,
    IdColumn,
    LatColumn,
    Layer,
    LonColumn,
    PartyColumn,
    PartyMap,
    ShowProgress,
    Steps,
    TimeColumn,
    TimeZone,
    actor_name,
    console,
    handled_errors,
    open_service,
    parse_time,
    print_note,
    read_options,
)
from app.cli.judging import judge_reports, refuse_swapped
from app.io import FileProblem, ReadOptions, read_reports, read_zones
from app.store import Conflict

#: Reports stored per transaction when importing.
IMPORT_BATCH = 10_000


import_app = typer.Typer(help="Import zones or reports from a file into the database.")


def _print_duplicates(duplicates: Sequence[str]) -> None:
    """The first ten duplicates, if any."""
    if duplicates:
        shown = ", ".join(duplicates[:10])
        console.print(f"duplicates: {shown}{' ...' if len(duplicates) > 10 else ''}")


@import_app.command("zones")
def import_zones(
    file: Annotated[Path, typer.Argument(help="Zones: GeoJSON, GeoPackage, Shapefile, ...")],
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    layer: Layer = None,
    crs: Crs = None,
    actor: Actor = None,
    show_progress: ShowProgress = True,
) -> None:
    """Store the zones of FILE: new zones, and new versions of stored ones.

    A version already stored with the same content is a duplicate and is skipped, so importing
    a file twice changes nothing. A version that differs from the stored version of the same
    number is refused (give it the next version number to file a change); nothing is stored.
    """
    with handled_errors():
        who = actor_name(actor)
        with Steps(show_progress) as steps:
            zones, notes = read_zones(file, ReadOptions(layer=layer, crs=crs), steps)
        for note in notes:
            print_note(note)
        with open_service(database_url, create=True) as service:
            try:  # the rule is the service's (app.zone_import), not the command line's
                done = service.import_zones(zones, who)
            except Conflict as exc:
                raise FileProblem(f"{file.name}: {exc.message}") from None
        console.print(
            f"{file.name}: {len(zones)} zone version(s): {len(done.created)} zone(s) created, "
            f"{len(done.added)} new version(s), {len(done.duplicates)} duplicate(s) already stored"
        )
        _print_duplicates(done.duplicates)


@import_app.command("reports")
def import_reports(
    file: Annotated[
        Path, typer.Argument(help="Reports: GeoJSON, GeoPackage, Shapefile, CSV, ACLED export")
    ],
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    at: Annotated[
        str | None, typer.Option(help="Time of reports that have none (else they are refused)")
    ] = None,
    lon_column: LonColumn = None,
    lat_column: LatColumn = None,
    time_column: TimeColumn = None,
    party_column: PartyColumn = None,
    id_column: IdColumn = None,
    crs: Crs = None,
    layer: Layer = None,
    party_map: PartyMap = None,
    timezone: TimeZone = None,
    allow_swapped: AllowSwapped = False,
    update: Annotated[
        bool,
        typer.Option(
            "--update",
            help="File reports stored with other content as their next version (a correction)",
        ),
    ] = False,
    actor: Actor = None,
    show_progress: ShowProgress = True,
) -> None:
    """Store the reports of FILE; ids already stored with the same content are duplicates.

    Reports without an id get one made from their content ("h-" and a hash), so importing the
    same file twice stores it once. Parties are stored as the registered codes they match (see
    `truce parties`); a party that matches none refuses the file, naming the row. An id stored
    with different content (say, after a better --party-map) is refused unless --update is given,
    which files it as the report's next version: incursions and exports then follow the corrected
    report. The whole file is validated before anything is stored; it is then stored in batches
    of 10,000, each all or nothing.
    """
    with handled_errors():
        who = actor_name(actor)
        options = read_options(
            lon_column=lon_column,
            lat_column=lat_column,
            time_column=time_column,
            party_column=party_column,
            id_column=id_column,
            crs=crs,
            layer=layer,
            party_map=party_map,
            at=parse_time(at, "--at"),
            timezone=timezone,
            storing=True,
        )
        with Steps(show_progress) as steps, open_service(database_url, create=True) as service:
            # Parties are matched to the registered codes, or refused naming the row (Service).
            table = service.resolve_parties(read_reports(file, options, steps))
            with steps.step("indexing the stored zones"):
                index = service.index()
            violations = certain = 0
            if len(index) and len(table):
                findings = judge_reports(index, table, steps)
                violating = findings["violation"].to_numpy(bool)
                violations = int(violating.sum())
                certain = int((violating & (findings["verdict"] == "inside").to_numpy()).sum())
                if not allow_swapped:
                    refuse_swapped(index, table, findings)
            stored = corrected = 0
            duplicates: list[str] = []
            n = len(table)
            with steps.step(f"storing {n:,} reports", n) as advance:
                for start in range(0, n, IMPORT_BATCH):
                    stop = min(n, start + IMPORT_BATCH)
                    # Judged above with progress bars: stored straight, as the service would.
                    try:
                        done = service.update_reports(table.reports(start, stop), who, update)
                    except Conflict as exc:
                        raise FileProblem(_conflict(file, exc, start, stop, update)) from None
                    stored += len(done.stored)
                    corrected += len(done.corrected)
                    duplicates += done.duplicates
                    advance(stop - start)
        for message in table.messages:
            print_note(message)
        changed = f", {corrected:,} corrected (new versions)" if update else ""
        console.print(
            f"{file.name}: {n:,} report(s): {stored:,} stored{changed}, {len(duplicates):,} "
            f"duplicate(s) already stored; violations against the stored zones: {certain:,} "
            f"inside, {violations - certain:,} possible"
        )
        _print_duplicates(duplicates)


def _conflict(file: Path, exc: Conflict, start: int, stop: int, update: bool) -> str:
    """One line for a report that conflicts with the stored one, and what to do about it."""
    where = f"report {start + exc.index + 1}" if exc.index is not None else "a report"
    hint = "" if update else "; import with --update to file changed reports as corrections"
    earlier = f" (the {start:,} report(s) before this batch were stored)" if start else ""
    return (
        f"{file.name}: {where}: {exc.message}{hint}; nothing of reports "
        f"{start + 1:,}-{stop:,} was stored{earlier}"
    )
