"""`truce map`: the interactive map as one standalone HTML file, of the database (as `import`
and `export` use it) or, with `--scenario`, of the sample scenario."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import (
    DEFAULT_DATABASE_URL,
    DatabaseUrl,
    ShowProgress,
    Steps,
    console,
    handled_errors,
    open_service,
)
from app.scenario import GEODATA, load_scenario


def map_command(
    out: Annotated[Path, typer.Option(help="The HTML file to write.")] = Path("map.html"),
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    scenario: Annotated[
        bool,
        typer.Option(
            "--scenario", help="Map the sample scenario (geodata/) instead of the database."
        ),
    ] = False,
    geodata: Annotated[
        Path, typer.Option(help="Where the reference layers (and the sample scenario) are.")
    ] = GEODATA,
    at: Annotated[datetime | None, typer.Option(help="Open on this moment (zones then).")] = None,
    since: Annotated[datetime | None, typer.Option(help="Reports from this time.")] = None,
    until: Annotated[datetime | None, typer.Option(help="Reports before this time.")] = None,
    zone: Annotated[str | None, typer.Option(help="Only this zone's findings.")] = None,
    party: Annotated[str | None, typer.Option(help="Only this party's reports.")] = None,
    tiles: Annotated[
        str, typer.Option(help="'offline' (outlines, no tiles), a provider or a URL template.")
    ] = "offline",
    show_progress: ShowProgress = True,
) -> None:
    """Write the interactive map as one standalone HTML file that opens without internet.

    The season travels as compact columns that the page cuts views from, as it fetches them
    from a server: a month of 100,000 reports stays usable in a browser.
    """
    from app.assets import MissingAssets
    from app.mapview import MapData, MapQuery, write_map_html

    moments = {"at": _aware(at), "since": _aware(since), "until": _aware(until)}
    with handled_errors(), Steps(show_progress) as steps:
        if scenario:
            with steps.step("reading the sample scenario"):
                data = MapData.from_scenario(load_scenario(geodata))
        else:
            with open_service(database_url, create=False) as service:
                with steps.step("reading zones and parties"):
                    index = service.index()
                    try:
                        loaded = load_scenario(geodata)
                        parties, layers = loaded.parties, loaded.layers
                    except FileNotFoundError:
                        parties, layers = [], {}
                    parties = service.parties() or parties
                with steps.step("reading reports from the database"):
                    columns = service.store.report_columns(
                        since=moments["since"], until=moments["until"], party=party
                    )
                data = MapData(
                    zones=index.zones,
                    reports=[],
                    parties=parties,
                    layers=layers,
                    index=index,
                    columns=columns,
                )
        query = MapQuery(zone=zone, party=party, **moments)
        try:
            with steps.step("judging the reports and writing the page"):
                path = write_map_html(out, data, query, tiles=tiles)
        except MissingAssets as exc:
            console.print(f"[red]error:[/red] {exc}: run `make assets`")
            raise typer.Exit(2) from exc
    reports = len(data.columns) if data.columns is not None else len(data.reports)
    console.print(
        f"map of {reports:,} reports written to {path} ({path.stat().st_size / 1e6:.1f} MB)"
    )


def _aware(moment: datetime | None) -> datetime | None:
    """Times without an offset are taken as UTC (the command line has no other sensible zone)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
