"""`truce`: the command line, a thin layer over the engine and the service."""

from __future__ import annotations

import os
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from app import __version__
from app.cli_files import register
from app.scenario import GEODATA, load_scenario

cli = typer.Typer(
    help="Truce: which reports entered which ceasefire zones, how deep, and did they withdraw.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


@cli.command()
def version() -> None:
    """Print Truce's version."""
    console.print(__version__)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", envvar="PORT")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes (they share the database).")
    ] = 1,
    database_url: Annotated[
        str | None,
        typer.Option(help="sqlite:///path/to/truce.sqlite [default: TRUCE_DATABASE_URL]"),
    ] = None,
    load_scenario: Annotated[
        bool | None,
        typer.Option(
            "--load-scenario/--no-load-scenario",
            help="Load geodata/ into an empty database on first start "
            "[default: TRUCE_LOAD_SCENARIO]",
        ),
    ] = None,
    public_read: Annotated[
        bool | None,
        typer.Option(
            "--public-read/--no-public-read",
            help="Allow reads without a key [default: TRUCE_PUBLIC_READ]",
        ),
    ] = None,
) -> None:
    """Serve the HTTP API with uvicorn; settings from TRUCE_* and the options given."""
    import uvicorn
    from pydantic import ValidationError

    from app.settings import Settings

    # The options travel to the workers as TRUCE_* variables: uvicorn builds the app in each
    # worker process with `create_app_from_env`, which is what makes --workers possible.
    if database_url is not None:
        os.environ["TRUCE_DATABASE_URL"] = database_url
    if load_scenario is not None:
        os.environ["TRUCE_LOAD_SCENARIO"] = "true" if load_scenario else "false"
    if public_read is not None:
        os.environ["TRUCE_PUBLIC_READ"] = "true" if public_read else "false"
    try:
        # Read once here, so that a bad setting stops us before uvicorn starts. The settings
        # hide their input in errors, so a bad TRUCE_API_KEYS does not print the keys.
        settings = Settings()
    except ValidationError as exc:
        console.print(f"[red]error:[/red] bad settings: {exc}")
        raise typer.Exit(2) from None
    if settings.load_scenario and workers > 1:
        # Loaded once, here, rather than raced for by the workers.
        from app.service import Service
        from app.store import open_store

        with closing(open_store(settings.database_url)) as store:
            Service(store).load_scenario(settings.geodata_dir or GEODATA)
    console.print(
        f"Truce {__version__} on http://{host}:{port} (API docs at /docs), "
        f"database {settings.database_url}, {len(settings.api_keys)} key(s) from TRUCE_API_KEYS"
        + (", public read" if settings.public_read else "")
    )
    uvicorn.run(
        "app.api.main:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


@cli.command("map")
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
    from app.mapview import MapData, MapQuery, map_data_from_store, write_map_html
    from app.store import open_store

    moments = {"at": _aware(at), "since": _aware(since), "until": _aware(until)}
    if database_url is None:
        data = MapData.from_scenario(load_scenario(scenario))
    else:
        with closing(open_store(database_url)) as store:
            data, truncated = map_data_from_store(
                store,
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


# check, import, export and keys: the commands over files and the database.
register(cli)


def main() -> None:
    """Entry point of the `truce` console script."""
    cli()
