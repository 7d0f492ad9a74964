"""The file commands of `truce`: check, import, export, and API keys.

`register(cli)` adds them to the main typer app (`app.cli`); `python -m app.cli_files` runs them
on their own. Every command reads and writes through `app.io`, judges with `app.engine`, and stores
through `app.store`, so the command line follows the same rule and the same validation as the
HTTP API. Bad input ends the command with one line on stderr, "error: FILE: row N: problem", and
exit code 2, never a traceback (set TRUCE_DEBUG=1 to see one for an unexpected error).

Progress bars (rich, on stderr) follow every step that can take more than a second: reading,
validating, checking and writing.
"""

from __future__ import annotations

import getpass
import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from datetime import UTC, datetime
from enum import StrEnum
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
from rich.table import Table

from app.domain import Zone
from app.engine import FINDING_COLUMNS, ZoneIndex
from app.errors import InvalidParameter, TruceError
from app.io import (
    CsvColumns,
    FileProblem,
    ReadOptions,
    ReportTable,
    output_format,
    parse_party_map,
    read_reports,
    read_zones,
    write_findings,
    write_reports,
    write_zones,
)
from app.scenario import GEODATA
from app.store import ROLES, Store, UnknownZone, hash_key, iter_report_pages, open_store
from app.tracks import track_summary
from app.validate import parse_timestamp

__all__ = ["DEFAULT_DATABASE_URL", "main", "register"]

#: The database used when neither --database-url nor TRUCE_DATABASE_URL says another.
DEFAULT_DATABASE_URL = "sqlite:///data/truce.sqlite"
#: Reports judged per engine call: bounds memory and lets the progress bar move.
CHECK_CHUNK = 500_000
#: Reports stored per transaction when importing.
IMPORT_BATCH = 10_000

progress_console = Console(stderr=True)


def _stdout() -> Console:
    """stdout for tables: 160 columns when it is no terminal, so pipes and logs keep rows whole."""
    terminal = Console().is_terminal
    return Console(soft_wrap=True, width=None if terminal else 160)


console = _stdout()


# --- errors and progress --------------------------------------------------------------------------


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _note(message: str, kind: str = "note") -> None:
    typer.echo(f"{kind}: {message}", err=True)


@contextmanager
def _handled() -> Iterator[None]:
    """Turn every error into one line on stderr and exit code 2."""
    try:
        yield
    except (typer.Exit, click.exceptions.Exit, click.ClickException, click.Abort):
        raise
    except TruceError as exc:
        _fail(exc.detail)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt:
        _fail("interrupted")
    except Exception as exc:
        if os.environ.get("TRUCE_DEBUG"):
            raise
        _fail(
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
        help="sqlite:///path/to/truce.sqlite (relative) or sqlite:////absolute/path",
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


def _actor(given: str | None) -> str:
    if given:
        return given
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in some containers
        return "cli"


def _time(value: str | None, option: str) -> datetime | None:
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
def _store(url: str, *, create: bool) -> Iterator[Store]:
    """The store at `url`; a SQLite file (and its directory) is created only when `create`."""
    path = _sqlite_path(url)
    if path is not None:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.exists():
            _fail(f"no database at {url} (import zones first, or give --database-url)")
    with closing(open_store(url)) as store:
        yield store


def _options(
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


# --- checking -------------------------------------------------------------------------------------


def _load_zones(
    zones: str, url: str, layer: str | None, crs: str | None, steps: Steps
) -> list[Zone]:
    if zones.strip().lower() in ("db", "database"):
        with _store(url, create=False) as store:
            found = store.zones_for_index()
        if not found:
            _fail(f"the database {url} has no zones (import some with `truce import zones`)")
        return found
    zone_list, notes = read_zones(Path(zones), ReadOptions(layer=layer, crs=crs), steps)
    for note in notes[:20]:
        _note(note)
    if len(notes) > 20:
        _note(f"... and {len(notes) - 20} more notes")
    return zone_list


def _index(zones: list[Zone], steps: Steps) -> ZoneIndex:
    with steps.step(f"indexing {len(zones)} zone versions"):
        return ZoneIndex(zones)


def _judge(index: ZoneIndex, table: ReportTable, steps: Steps) -> pd.DataFrame:
    """Findings for every report of `table`, with `report_id`, `unit`, `lon` and `lat` added."""
    n = len(table)
    parts = []
    with steps.step(f"checking {n:,} reports against {len(index):,} zone versions", n) as advance:
        for start in range(0, n, CHECK_CHUNK):
            stop = min(n, start + CHECK_CHUNK)
            rows = index.check(table.frame(start, stop))
            rows["report"] += start
            parts.append(rows)
            advance(stop - start)
    findings = (
        pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=FINDING_COLUMNS)
    )
    report = findings["report"].to_numpy(np.int64)
    findings["report_id"] = table.report_ids(report)
    findings["unit"] = table.unit[report]
    findings["lon"] = table.lon[report]
    findings["lat"] = table.lat[report]
    return findings


def _swapped(
    index: ZoneIndex, table: ReportTable, findings: pd.DataFrame
) -> tuple[int, str, int] | None:
    """The first report far from every zone that would lie in one with lon and lat exchanged.

    Returns (report, zone id, how many reports look so), or None.
    """
    reports, zones = index.swapped(
        table.lon,
        table.lat,
        table.time_ns,
        table.party,
        findings["report"].to_numpy(np.int64),
    )
    if not len(reports):
        return None
    return int(reports[0]), str(index.zone_ids[zones[0]]), len(reports)


def _refuse_swapped(index: ZoneIndex, table: ReportTable, findings: pd.DataFrame) -> None:
    swapped = _swapped(index, table, findings)
    if swapped is None:
        return
    i, zone_id, count = swapped
    lon, lat = float(table.lon[i]), float(table.lat[i])
    more = f" ({count - 1} more report(s) look the same)" if count > 1 else ""
    raise FileProblem(
        f"{table.path.name}: {table.where(i)}: longitude and latitude look swapped: "
        f"lon {lon:g}, lat {lat:g} is far from every zone, but lon {lat:g}, lat {lon:g} lies in "
        f"zone {zone_id!r}{more}; fix the file (or name the columns with --lon-column and "
        "--lat-column), or pass --allow-swapped to take the positions as written"
    )


def _when(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return "-"
    stamp = pd.Timestamp(value)
    return "-" if pd.isna(stamp) else str(stamp.strftime("%Y-%m-%d %H:%M"))


def _duration(seconds: float) -> str:
    if not np.isfinite(seconds) or seconds <= 0:
        return "-"
    hours = seconds / 3600.0
    return f"{hours:,.1f} h" if hours < 48 else f"{hours / 24:,.1f} d"


def _print_summary(table: ReportTable, findings: pd.DataFrame, top: int) -> None:
    verdicts = findings["verdict"].value_counts()
    violations = findings[findings["violation"].to_numpy(bool)]
    console.print(
        f"[bold]{len(table):,}[/bold] reports: {len(findings):,} findings "
        f"({verdicts.get('inside', 0):,} inside, {verdicts.get('possible', 0):,} possible, "
        f"{verdicts.get('approaching', 0):,} approaching), "
        f"[bold red]{len(violations):,}[/bold red] violations"
        f" by {violations['report'].nunique():,} reports"
    )
    if violations.empty:
        return
    by_zone = (
        violations.groupby(["zone_id", "zone_name", "party"], sort=False)
        .agg(
            violations=("report", "size"),
            deepest=("depth_m", "max"),
            first=("observed_at", "min"),
            last=("observed_at", "max"),
        )
        .reset_index()
        .sort_values(["violations", "deepest"], ascending=False)
    )
    grid = Table(title="Violations by zone and party")
    for name, justify in (
        ("zone", "left"),
        ("party", "left"),
        ("violations", "right"),
        ("deepest (m)", "right"),
        ("first", "left"),
        ("last", "left"),
    ):
        grid.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in by_zone.head(top * 2).itertuples(index=False):
        grid.add_row(
            f"{row.zone_name} ({row.zone_id})",
            str(row.party),
            f"{row.violations:,}",
            f"{row.deepest:,.0f}",
            _when(row.first),
            _when(row.last),
        )
    if len(by_zone) > top * 2:
        grid.caption = f"{len(by_zone) - top * 2} more (zone, party) pairs not shown"
    console.print(grid)

    deepest = violations.nlargest(top, "depth_m")
    grid = Table(title="Deepest incursions")
    for name in ("report", "where", "zone", "party", "observed", "depth (m)", "verdict"):
        grid.add_column(name, justify="right" if name == "depth (m)" else "left")
    for row in deepest.itertuples(index=False):
        grid.add_row(
            str(row.report_id),
            table.where(int(row.report)),  # type: ignore[arg-type]
            str(row.zone_id),
            str(row.party),
            _when(row.observed_at),
            f"{row.depth_m:,.0f}",
            str(row.verdict),
        )
    console.print(grid)
    _print_units(table, findings, top)


def _print_units(table: ReportTable, findings: pd.DataFrame, top: int) -> None:
    """Units that entered a zone where their party is not authorized, not withdrawn first."""
    with_unit = np.flatnonzero(pd.notna(table.unit))
    if not len(with_unit):
        return
    violating = findings[findings["violation"].to_numpy(bool) & findings["unit"].notna()]
    if violating.empty:
        return
    keys = set(zip(violating["party"], violating["unit"], violating["zone_id"], strict=True))
    frame = table.frame().iloc[with_unit].reset_index(drop=True)
    frame["id"] = table.report_ids(with_unit)
    sub = findings[findings["report"].isin(with_unit)].copy()
    sub["report"] = np.searchsorted(with_unit, sub["report"].to_numpy(np.int64))
    summary = track_summary(frame, sub)
    mask = [
        (p, u, z) in keys
        for p, u, z in zip(summary["party"], summary["unit"], summary["zone_id"], strict=True)
    ]
    summary = summary[mask].sort_values(["withdrawn", "entered_at"])
    if summary.empty:
        return
    staying = int((~summary["withdrawn"]).sum())
    grid = Table(
        title=f"Units in zones where their party is not authorized: {staying} not withdrawn"
    )
    for name in ("party", "unit", "zone", "entered", "dwell", "withdrawn", "back at start"):
        grid.add_column(name)
    for row in summary.head(top * 2).itertuples(index=False):
        grid.add_row(
            str(row.party),
            str(row.unit),
            str(row.zone_id),
            _when(row.entered_at),
            _duration(float(row.dwell_s)),  # type: ignore[arg-type]
            "yes" if row.withdrawn else "[bold red]no[/bold red]",
            "yes" if row.back_at_initial else "no",
        )
    console.print(grid)


def check(
    reports: Annotated[
        Path,
        typer.Argument(
            help="Reports: GeoJSON, GeoPackage, Shapefile, FlatGeobuf, CSV or an ACLED export"
        ),
    ],
    zones: Annotated[
        str,
        typer.Option(
            help="Zones: a file (as for REPORTS, CSV with a WKT column), or 'db' for the "
            "zones of the database"
        ),
    ] = str(GEODATA / "zones.geojson"),
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    at: Annotated[
        str | None,
        typer.Option(help="Time of reports that have none (ISO 8601 with offset) [default: now]"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the findings here (.geojson, .csv or .gpkg)")
    ] = None,
    out_format: Annotated[
        str | None, typer.Option("--format", help="Format of --out: geojson, csv or gpkg")
    ] = None,
    fail_on_violation: Annotated[
        bool, typer.Option(help="Exit with status 1 when there is a violation")
    ] = False,
    lon_column: LonColumn = None,
    lat_column: LatColumn = None,
    time_column: TimeColumn = None,
    party_column: PartyColumn = None,
    id_column: IdColumn = None,
    crs: Crs = None,
    layer: Layer = None,
    zones_layer: Annotated[str | None, typer.Option(help="Layer of the zones file")] = None,
    party_map: PartyMap = None,
    timezone: TimeZone = None,
    allow_swapped: AllowSwapped = False,
    top: Annotated[int, typer.Option(min=1, help="Rows in each summary table")] = 10,
    show_progress: ShowProgress = True,
) -> None:
    """Judge REPORTS against ZONES by the verdict rule and print what was found.

    Prints violations by zone and party, the deepest incursions, and units that entered a zone
    where their party is not authorized and have not withdrawn.
    """
    with _handled():
        when = _time(at, "--at") or datetime.now(UTC)
        options = _options(
            lon_column=lon_column,
            lat_column=lat_column,
            time_column=time_column,
            party_column=party_column,
            id_column=id_column,
            crs=crs,
            layer=layer,
            party_map=party_map,
            at=when,
            timezone=timezone,
        )
        fmt = None if out is None else output_format(out, out_format)
        with Steps(show_progress) as steps:
            zone_list = _load_zones(zones, database_url, zones_layer, crs, steps)
            index = _index(zone_list, steps)
            table = read_reports(reports, options, steps)
            findings = _judge(index, table, steps)
            if not allow_swapped:
                _refuse_swapped(index, table, findings)
            if out is not None:
                write_findings(findings, out, fmt, steps)
        for message in table.messages:
            _note(message)
        _print_summary(table, findings, top)
        if out is not None:
            console.print(f"{len(findings):,} findings written to {out}")
    if fail_on_violation and findings["violation"].to_numpy(bool).any():
        raise typer.Exit(1)


# --- import ---------------------------------------------------------------------------------------

import_app = typer.Typer(help="Import zones or reports from a file into the database.")


def _same_zone(a: Zone, b: Zone) -> bool:
    """The same zone content (the version number aside)."""
    return (
        a.id == b.id
        and a.name == b.name
        and a.kind == b.kind
        and a.valid_from == b.valid_from
        and a.valid_to == b.valid_to
        and a.authorized_parties == b.authorized_parties
        and a.warning_distance_m == b.warning_distance_m
        and (a.agreement or None) == (b.agreement or None)
        and (a.source or None) == (b.source or None)
        and a.geometry.geom_type == b.geometry.geom_type
        and bool(a.geometry.equals_exact(b.geometry, 0.0))
    )


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
    with _handled():
        who = _actor(actor)
        with Steps(show_progress) as steps:
            zones, notes = read_zones(file, ReadOptions(layer=layer, crs=crs), steps)
        for note in notes:
            _note(note)
        with _store(database_url, create=True) as store:
            by_id: dict[str, list[Zone]] = {}
            for zone in sorted(zones, key=lambda z: (z.id, z.version)):
                by_id.setdefault(zone.id, []).append(zone)
            first: list[Zone] = []
            later: list[Zone] = []
            duplicates: list[str] = []
            for zone_id, versions in by_id.items():
                try:
                    history = store.zone_history(zone_id)
                except UnknownZone:
                    history = []
                latest = max((z.version for z in history), default=0)
                fresh: list[Zone] = []
                for zone in versions:
                    if any(_same_zone(zone, old) for old in history):
                        duplicates.append(f"{zone.id} v{zone.version}")
                    elif zone.version > latest:
                        fresh.append(zone)
                    else:
                        raise FileProblem(
                            f"{file.name}: zone {zone.id!r} version {zone.version} differs from "
                            f"the stored version {zone.version}; give the change the next "
                            f"version number ({latest + 1}) to file it as a new version"
                        )
                if fresh and not history:
                    first.append(fresh[0])
                    fresh = fresh[1:]
                later += fresh
            created = store.add_zones(first, who) if first else []
            added = [store.new_zone_version(zone, who) for zone in later]
        console.print(
            f"{file.name}: {len(zones)} zone version(s): {len(created)} zone(s) created, "
            f"{len(added)} new version(s), {len(duplicates)} duplicate(s) already stored"
        )
        _print_duplicates(duplicates)


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
    actor: Actor = None,
    show_progress: ShowProgress = True,
) -> None:
    """Store the reports of FILE; ids already stored are duplicates and are skipped.

    Reports without an id get one made from their content ("h-" and a hash), so importing the
    same file twice stores it once. The whole file is validated before anything is stored; it
    is then stored in batches of 10,000, each all or nothing.
    """
    with _handled():
        who = _actor(actor)
        options = _options(
            lon_column=lon_column,
            lat_column=lat_column,
            time_column=time_column,
            party_column=party_column,
            id_column=id_column,
            crs=crs,
            layer=layer,
            party_map=party_map,
            at=_time(at, "--at"),
            timezone=timezone,
            storing=True,
        )
        with Steps(show_progress) as steps, _store(database_url, create=True) as store:
            table = read_reports(file, options, steps)
            zones = store.zones_for_index()
            violations = 0
            if zones and len(table):
                index = _index(zones, steps)
                findings = _judge(index, table, steps)
                violations = int(findings["violation"].to_numpy(bool).sum())
                if not allow_swapped:
                    _refuse_swapped(index, table, findings)
            stored = 0
            duplicates: list[str] = []
            n = len(table)
            with steps.step(f"storing {n:,} reports", n) as advance:
                for start in range(0, n, IMPORT_BATCH):
                    stop = min(n, start + IMPORT_BATCH)
                    done, dups = store.add_reports(table.reports(start, stop), who)
                    stored += len(done)
                    duplicates += dups
                    advance(stop - start)
        for message in table.messages:
            _note(message)
        console.print(
            f"{file.name}: {n:,} report(s): {stored:,} stored, {len(duplicates):,} duplicate(s) "
            f"already stored; {violations:,} violation(s) against the stored zones"
        )
        _print_duplicates(duplicates)


# --- export ---------------------------------------------------------------------------------------

export_app = typer.Typer(help="Export zones, reports or incursions from the database to a file.")

Out = Annotated[Path, typer.Option(help="The file to write (.geojson, .csv or .gpkg)")]
Format = Annotated[
    str | None,
    typer.Option("--format", help="geojson, csv or gpkg [default: from the --out extension]"),
]
Since = Annotated[str | None, typer.Option(help="Only reports observed at or after this time")]
Until = Annotated[str | None, typer.Option(help="Only reports observed before this time")]
Party = Annotated[str | None, typer.Option(help="Only this party's reports")]


def _stored_reports(
    store: Store,
    since: datetime | None,
    until: datetime | None,
    party: str | None,
    steps: Steps,
) -> list[Any]:
    reports: list[Any] = []
    total = store.count_reports()
    step = "reading reports from the database"
    steps(step, 0, total)
    for page in iter_report_pages(store, since=since, until=until, party=party):
        reports += page
        steps(step, len(reports), max(total, len(reports)))
    steps(step, len(reports), len(reports))
    return reports


@export_app.command("zones")
def export_zones(
    out: Out,
    out_format: Format = None,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    at: Annotated[
        str | None,
        typer.Option(help="Only the versions in force at this time [default: every version]"),
    ] = None,
    show_progress: ShowProgress = True,
) -> None:
    """Write the stored zones, every version (or those in force --at a time), to --out."""
    with _handled():
        fmt = output_format(out, out_format)
        moment = _time(at, "--at")
        with Steps(show_progress) as steps, _store(database_url, create=False) as store:
            if moment is None:
                zones = store.list_zones(all_versions=True)
            else:
                zones = store.list_zones(at=moment)
            write_zones(zones, out, fmt, steps)
        console.print(f"{len(zones)} zone version(s) written to {out}")


@export_app.command("reports")
def export_reports(
    out: Out,
    out_format: Format = None,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    since: Since = None,
    until: Until = None,
    party: Party = None,
    show_progress: ShowProgress = True,
) -> None:
    """Write the stored reports (by time, party) to --out."""
    with _handled():
        fmt = output_format(out, out_format)
        start, end = _time(since, "--since"), _time(until, "--until")
        with Steps(show_progress) as steps, _store(database_url, create=False) as store:
            reports = _stored_reports(store, start, end, party, steps)
            write_reports(reports, out, fmt, steps)
        console.print(f"{len(reports):,} report(s) written to {out}")


@export_app.command("incursions")
def export_incursions(
    out: Out,
    out_format: Format = None,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    since: Since = None,
    until: Until = None,
    party: Party = None,
    zone: Annotated[str | None, typer.Option(help="Only incursions into this zone id")] = None,
    show_progress: ShowProgress = True,
) -> None:
    """Write the violations of the stored reports against the stored zones to --out.

    As GET /incursions: judged against the zones as they stand now.
    """
    with _handled():
        fmt = output_format(out, out_format)
        start, end = _time(since, "--since"), _time(until, "--until")
        with Steps(show_progress) as steps, _store(database_url, create=False) as store:
            reports = _stored_reports(store, start, end, party, steps)
            zones = store.zones_for_index()
            table = ReportTable.from_reports(Path("database"), reports)
            if zones and reports:
                findings = _judge(_index(zones, steps), table, steps)
            else:
                findings = _judge(ZoneIndex([]), ReportTable.from_reports(Path("-"), []), steps)
            keep = findings["violation"].to_numpy(bool)
            if zone is not None:
                keep = keep & (findings["zone_id"].to_numpy(object) == zone)
            incursions = findings[keep]
            write_findings(incursions, out, fmt, steps)
        console.print(f"{len(incursions):,} incursion(s) written to {out}")


# --- keys -----------------------------------------------------------------------------------------

keys_app = typer.Typer(help="API keys stored in the database (hashed), beside TRUCE_API_KEYS.")


class Role(StrEnum):
    """API key roles, weakest first."""

    VIEWER = "viewer"
    OBSERVER = "observer"
    ADMIN = "admin"


assert tuple(r.value for r in Role) == ROLES


@keys_app.command("create")
def keys_create(
    role: Annotated[Role, typer.Option(help="viewer (read), observer (+ reports), admin (all)")],
    label: Annotated[str, typer.Option(help="What the key is for; the audit log names it")] = "",
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    actor: Actor = None,
) -> None:
    """Create an API key and print it once: only its SHA-256 hash is stored."""
    with _handled():
        secret = secrets.token_urlsafe(32)
        with _store(database_url, create=True) as store:
            record = store.add_key(hash_key(secret), role.value, label or role.value, _actor(actor))
        typer.echo(
            f"created key {record.id} (role {record.role}, label {record.label!r}); "
            "it is shown only this once, store it now:",
            err=True,
        )
        typer.echo(secret)


@keys_app.command("list")
def keys_list(database_url: DatabaseUrl = DEFAULT_DATABASE_URL) -> None:
    """List the stored keys (never their secrets), revoked ones included."""
    with _handled():
        with _store(database_url, create=False) as store:
            records = store.list_keys()
        grid = Table(title=f"{len(records)} stored key(s)")
        for name in ("id", "role", "label", "created", "by", "revoked"):
            grid.add_column(name)
        for record in records:
            grid.add_row(
                str(record.id),
                record.role,
                record.label,
                _when(record.created_at),
                record.created_by,
                "active" if record.active else f"[red]{_when(record.revoked_at)}[/red]",
            )
        console.print(grid)
        configured = [k for k in os.environ.get("TRUCE_API_KEYS", "").split(",") if k.strip()]
        if configured:
            console.print(f"and {len(configured)} key(s) from TRUCE_API_KEYS (not listed)")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="The key's id (see `keys list`)")],
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    actor: Actor = None,
) -> None:
    """Revoke a stored key; it stops working at once, and stays listed as revoked."""
    with _handled():
        with _store(database_url, create=False) as store:
            record = store.revoke_key(key_id, _actor(actor))
        console.print(f"key {record.id} ({record.role}, {record.label!r}) revoked")


# --- wiring ---------------------------------------------------------------------------------------


def register(cli: typer.Typer) -> None:
    """Add `check` (replacing any `check` already there), `import`, `export` and `keys` to `cli`."""

    def name_of(info: Any) -> str:
        callback = info.callback
        return str(info.name or (callback.__name__.replace("_", "-") if callback else ""))

    cli.registered_commands = [c for c in cli.registered_commands if name_of(c) != "check"]
    cli.command("check")(check)
    cli.add_typer(import_app, name="import")
    cli.add_typer(export_app, name="export")
    cli.add_typer(keys_app, name="keys")


def main() -> None:
    """Run the file commands on their own (`python -m app.cli_files`)."""
    app = typer.Typer(
        help="Truce file commands: check, import, export, keys.",
        no_args_is_help=True,
        add_completion=False,
    )
    register(app)
    app()


if __name__ == "__main__":
    main()
