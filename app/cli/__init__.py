"""`truce`: the command line, a thin layer over the engine and the service.

One command (or one group of commands) a module: `serve`, `map`, `check`, `importing`
(`import zones|reports`), `exporting` (`export zones|reports|incursions`), `keys`,
`parties` and `db` (`db migrate|copy`); `judging`
judges a file's reports with progress bars, and `common` holds what the commands share (output,
errors, progress bars, options, the database). The commands over files and the database read and
write files through `app.io` and reach the database through `app.service.Service`, the layer the
HTTP API uses (importing zones, exporting incursions, the map), so the command line follows the
same rules and the same validation as the HTTP API.

`main` is the `truce` console script.
"""

from __future__ import annotations

import typer
from rich.console import Console

from app import __version__
from app.cli import backup
from app.cli.check import check
from app.cli.db import db_app
from app.cli.deliver import deliver
from app.cli.exporting import export_app
from app.cli.importing import import_app
from app.cli.keys import keys_app
from app.cli.map import map_command
from app.cli.parties import parties_app
from app.cli.serve import serve

__all__ = ["cli", "main", "register"]


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


cli.command()(serve)
cli.command("map")(map_command)
cli.command("deliver")(deliver)


# --- wiring ---------------------------------------------------------------------------------------


def register(cli: typer.Typer) -> None:
    """Add `check`, `import`, `export`, `keys` and `parties` to `cli`."""
    cli.command("check")(check)
    cli.add_typer(import_app, name="import")
    cli.add_typer(export_app, name="export")
    cli.add_typer(keys_app, name="keys")
    cli.add_typer(parties_app, name="parties")
    backup.add_commands(cli)  # backup, restore
    cli.add_typer(db_app, name="db")


# check, import, export and keys: the commands over files and the database.
register(cli)


def main() -> None:
    """Entry point of the `truce` console script."""
    cli()
