"""`truce map`: the interactive map as one standalone HTML file."""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from app.scenario import GEODATA, load_scenario

console = Console()


def map_command(
    out: Annotated[Path, typer.Option(help="The HTML file to write.")] = Path("map.html"),
    database_url: Annotated[
        str | None,
        typer.Option(help="Map this database (sqlite:///…) instead of the sample scenario."),
    ] = None,
    scenario: Annotated[
        Path, typer.Option(help="The scenario directory to map when no database is given.")
    ] = GEODATA,
    at: Annotated[datetime | None, typer.Option(help="Open on this moment (zones then).")] = None,
    since: Annotated[datetime | None, typer.Option(help="Reports from this time.")] = None,
    until: Annotated[datetime | None, typer.Option(help="Reports before this time.")] = None,
    zone: Annotated[str | None, typer.Option(help="Only this zone's findings.")] = None,
    party: Annotated[str | None, typer.Option(help="Only this party's reports.")] = None,
    tiles: Annotated[
        str, typer.Option(help="'offline' (outlines, no tiles), a provider or a URL template.")
    ] = "offline",
) -> None:
    """Write the interactive map as one standalone HTML file that opens without internet."""
    from app.assets import MissingAssets
    from app.mapview import MapData, MapQuery, map_data_from_service, write_map_html
    from app.service import Service
    from app.store import open_store

    moments = {"at": _aware(at), "since": _aware(since), "until": _aware(until)}
    if database_url is None:
        data = MapData.from_scenario(load_scenario(scenario))
    else:
        with closing(open_store(database_url)) as store:
            data, truncated = map_data_from_service(
                Service(store),
                since=moments["since"],
                until=moments["until"],
                party=party,
                geodata=scenario,
            )
        if truncated:
            console.print("[yellow]note:[/yellow] too many reports: the map shows the first ones")
    try:
        path = write_map_html(out, data, MapQuery(zone=zone, party=party, **moments), tiles=tiles)
    except MissingAssets as exc:
        console.print(f"[red]error:[/red] {exc}: run `make assets`")
        raise typer.Exit(2) from exc
    console.print(f"map written to {path} ({path.stat().st_size / 1e6:.1f} MB)")


def _aware(moment: datetime | None) -> datetime | None:
    """Times without an offset are taken as UTC (the command line has no other sensible zone)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
