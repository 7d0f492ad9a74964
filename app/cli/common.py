"""What the commands of `truce` share: output, errors, progress bars, options and the database.

Bad input ends a command with one line on stderr, "error: FILE: row N: problem", and exit code 2,
never a traceback (set TRUCE_DEBUG=1 to see one for an unexpected error): commands run their work
inside `handled_errors()`, and reach the database through `open_service` (the `Service` that the
HTTP API uses) or, for keys and plain listings, `open_database`. Progress bars (rich, on stderr)
follow every step that can take more than a second: reading, validating, checking and writing;
`Steps` draws them.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, NoReturn
from urllib.parse import unquote, urlsplit

import click
import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from app.errors import InvalidParameter, TruceError
from app.io import CsvColumns, ReadOptions, parse_party_map
from app.service import Service
from app.store import Store, open_store
from app.validate import parse_timestamp

#: The database used when neither --database-url nor TRUCE_DATABASE_URL says another.
DEFAULT_DATABASE_URL = "sqlite:///data/truce.sqlite"

progress_console = Console(stderr=True)


def _stdout() -> Console:
    """stdout for tables: 160 columns when it is no terminal, so pipes and logs keep rows whole."""
    terminal = Console().is_terminal
    return Console(soft_wrap=True, width=None if terminal else 160)


console = _stdout()


# --- errors and progress --------------------------------------------------------------------------


def fail(message: str) -> NoReturn:
    """Print "error: MESSAGE" on stderr and end the command with exit code 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def print_note(message: str, kind: str = "note") -> None:
    """Print "KIND: MESSAGE" (a note by default) on stderr."""
    typer.echo(f"{kind}: {message}", err=True)


@contextmanager
def handled_errors() -> Iterator[None]:
    """Turn every error into one line on stderr and exit code 2."""
    try:
        yield
    except (typer.Exit, click.exceptions.Exit, click.ClickException, click.Abort):
        raise
    except TruceError as exc:
        fail(exc.detail)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt:
        fail("interrupted")
    except Exception as exc:
        if os.environ.get("TRUCE_DEBUG"):
            raise
        fail(
            f"unexpected {type(exc).__name__}: {exc} "
            "(please report it; TRUCE_DEBUG=1 shows the traceback)"
        )


class Steps(AbstractContextManager["Steps"]):
    """Rich progress bars, one per step; also the `ProgressFn` that `app.io` calls."""

    def __init__(self, enabled: bool = True) -> None:
        """Bars go to stderr; with `enabled` false nothing is shown."""
        self.progress = Progress(
            SpinnerColumn(finished_text="✓"),
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=progress_console,
            disable=not enabled,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> Steps:
        self.progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def __call__(self, step: str, done: int, total: int | None) -> None:
        """Show `done` of `total` for `step` (a new bar for a new step)."""
        task = self.tasks.get(step)
        if task is None:
            task = self.tasks[step] = self.progress.add_task(step, total=total)
        self.progress.update(task, completed=done, total=total)

    @contextmanager
    def step(self, description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        """A step whose bar is advanced by the function yielded; complete when the block ends."""
        task = self.progress.add_task(description, total=total)

        def advance(amount: int) -> None:
            self.progress.advance(task, amount)

        yield advance
        self.progress.update(task, total=total or 1, completed=total or 1)


# --- shared options -------------------------------------------------------------------------------

DatabaseUrl = Annotated[
    str,
    typer.Option(
        "--database-url",
        envvar="TRUCE_DATABASE_URL",
        help="sqlite:///path/to/truce.sqlite (relative), sqlite:////absolute/path or "
        "postgresql://user@host/db",
    ),
]
Actor = Annotated[
    str | None,
    typer.Option(help="Who the audit log names for this write [default: cli:<user>]"),
]
Crs = Annotated[
    str | None,
    typer.Option(
        help="CRS of coordinates in a file that declares none (CSV x/y, a Shapefile without "
        ".prj), e.g. EPSG:32638; declared CRSs are always transformed to WGS84"
    ),
]
Layer = Annotated[str | None, typer.Option(help="Layer to read from a multi-layer file")]
PartyMap = Annotated[
    list[str] | None,
    typer.Option(
        "--party-map",
        help="ACLED actor1 to party code: a JSON file {actor: code}, or 'ACTOR=CODE' "
        "(repeatable; ACTOR may be a pattern with *)",
    ),
]
LonColumn = Annotated[str | None, typer.Option(help="CSV column of longitudes [lon/lng/x...]")]
LatColumn = Annotated[str | None, typer.Option(help="CSV column of latitudes [lat/latitude/y]")]
TimeColumn = Annotated[
    str | None, typer.Option(help="CSV column of observation times [observed_at/time/date...]")
]
PartyColumn = Annotated[str | None, typer.Option(help="CSV column of parties [party/actor]")]
IdColumn = Annotated[str | None, typer.Option(help="CSV column of report ids [id/report_id]")]
TimeZone = Annotated[
    str | None,
    typer.Option(
        "--timezone",
        help="Zone of times written without a UTC offset (e.g. UTC, +04:00, Asia/Baku); "
        "without it such times are refused",
    ),
]
AllowSwapped = Annotated[
    bool,
    typer.Option(
        help="Take positions as written even when longitude and latitude look swapped "
        "(far from every zone, but inside one when exchanged)"
    ),
]
ShowProgress = Annotated[
    bool, typer.Option("--progress/--no-progress", help="Show progress bars on stderr")
]


def actor_name(given: str | None) -> str:
    """Who the audit log names: `given`, else "cli:<user>" (or "cli" with no user name)."""
    if given:
        return given
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in some containers
        return "cli"


def parse_time(value: str | None, option: str) -> datetime | None:
    """The moment an option gives (a timestamp or "now"), or None; bad input names `option`."""
    if value is None:
        return None
    if value.strip().lower() == "now":
        return datetime.now(UTC)
    try:
        return parse_timestamp(value, option, error=InvalidParameter)
    except TruceError as exc:
        raise InvalidParameter(exc.message, field=option) from None


def _sqlite_path(url: str) -> Path | None:
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite" or parts.netloc:
        return None
    path = unquote(parts.path)[1:]
    return Path(path) if path and path != ":memory:" else None


@contextmanager
def open_database(url: str, *, create: bool) -> Iterator[Store]:
    """The store at `url`; a SQLite file (and its directory) is created only when `create`."""
    path = _sqlite_path(url)
    if path is not None:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.exists():
            fail(f"no database at {url} (import zones first, or give --database-url)")
    with closing(open_store(url)) as store:
        yield store


@contextmanager
def open_service(url: str, *, create: bool) -> Iterator[Service]:
    """The `Service` over the store at `url` (see `open_database`): the commands that read or
    write zones, incursions or the map go through it, so they follow the HTTP API's rules."""
    with open_database(url, create=create) as store:
        yield Service(store)


def read_options(
    *,
    lon_column: str | None = None,
    lat_column: str | None = None,
    time_column: str | None = None,
    party_column: str | None = None,
    id_column: str | None = None,
    crs: str | None = None,
    layer: str | None = None,
    party_map: Sequence[str] | None = None,
    at: datetime | None = None,
    timezone: str | None = None,
    storing: bool = False,
) -> ReadOptions:
    """The `ReadOptions` of a command's file options; `storing` keeps extras and content ids."""
    return ReadOptions(
        columns=CsvColumns(
            lon=lon_column, lat=lat_column, time=time_column, party=party_column, id=id_column
        ),
        crs=crs,
        layer=layer,
        party_map=parse_party_map(party_map or []),
        default_observed_at=at,
        timezone=timezone,
        keep_extra=storing,
        content_ids=storing,
    )


# --- table cells ----------------------------------------------------------------------------------


def format_time(value: Any) -> str:
    """A table cell for a moment: "YYYY-MM-DD HH:MM", or "-" when there is none."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return "-"
    stamp = pd.Timestamp(value)
    return "-" if pd.isna(stamp) else str(stamp.strftime("%Y-%m-%d %H:%M"))
