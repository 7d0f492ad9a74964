"""`truce check`: judge a file of reports against zones and print what was found."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich.table import Table

from app.batch import ReportBatch
from app.cli.common import (
    DEFAULT_DATABASE_URL,
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
    console,
    fail,
    format_time,
    handled_errors,
    open_service,
    parse_time,
    print_note,
    read_options,
)
from app.cli.judging import index_zones, judge_reports, refuse_swapped
from app.engine import ZoneIndex
from app.io import ReadOptions, output_format, read_reports, read_zones, write_findings
from app.parties import PartyRegistry, resolve_batch
from app.precision import format_depth
from app.scenario import GEODATA
from app.tracks import track_summary


def _load_index(
    zones: str, url: str, layer: str | None, crs: str | None, steps: Steps
) -> tuple[ZoneIndex, PartyRegistry | None]:
    """The zone index, and with `--zones db` the database's registered parties."""
    if zones.strip().lower() in ("db", "database"):
        with open_service(url, create=False) as service, steps.step("indexing the stored zones"):
            index = service.index()  # the index the HTTP API judges with
            registry = service.party_registry()
        if not len(index):
            fail(f"the database {url} has no zones (import some with `truce import zones`)")
        return index, registry
    zone_list, notes = read_zones(Path(zones), ReadOptions(layer=layer, crs=crs), steps)
    for note in notes[:20]:
        print_note(note)
    if len(notes) > 20:
        print_note(f"... and {len(notes) - 20} more notes")
    return index_zones(zone_list, steps), None


def _duration(seconds: float) -> str:
    if not np.isfinite(seconds) or seconds <= 0:
        return "-"
    hours = seconds / 3600.0
    return f"{hours:,.1f} h" if hours < 48 else f"{hours / 24:,.1f} d"


def _print_summary(table: ReportBatch, findings: pd.DataFrame, top: int) -> None:
    verdicts = findings["verdict"].value_counts()
    violations = findings[findings["violation"].to_numpy(bool)]
    inside = violations[violations["verdict"] == "inside"]
    console.print(
        f"[bold]{len(table):,}[/bold] reports: {len(findings):,} findings "
        f"({verdicts.get('inside', 0):,} inside, {verdicts.get('possible', 0):,} possible, "
        f"{verdicts.get('approaching', 0):,} approaching); violations: "
        f"[bold red]{len(inside):,} inside[/bold red] (certain), "
        f"{len(violations) - len(inside):,} possible"
        f" ({violations['report'].nunique():,} reports)"
    )
    if violations.empty:
        return
    counted = violations.assign(
        inside=violations["verdict"] == "inside",
        possible=violations["verdict"] == "possible",
    )
    # The deepest `inside` finding of each (zone, party), rounded to fit its uncertainty.
    deepest_first = inside.sort_values("depth_m", ascending=False, kind="stable")
    deepest_first = deepest_first.drop_duplicates(["zone_id", "party"])
    deepest_of = {
        (zone, party): format_depth(depth, u)
        for zone, party, depth, u in zip(
            deepest_first["zone_id"].tolist(),
            deepest_first["party"].tolist(),
            deepest_first["depth_m"].tolist(),
            deepest_first["uncertainty_m"].tolist(),
            strict=True,
        )
    }
    by_zone = (
        counted.groupby(["zone_id", "zone_name", "party"], sort=False)
        .agg(
            inside=("inside", "sum"),
            possible=("possible", "sum"),
            first=("observed_at", "min"),
            last=("observed_at", "max"),
        )
        .reset_index()
        .sort_values(["inside", "possible"], ascending=False)
    )
    grid = Table(title="Violations by zone and party: inside (certain) apart from possible")
    for name, justify in (
        ("zone", "left"),
        ("party", "left"),
        ("inside", "right"),
        ("possible", "right"),
        ("deepest inside (m)", "right"),
        ("first", "left"),
        ("last", "left"),
    ):
        grid.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in by_zone.head(top * 2).itertuples(index=False):
        grid.add_row(
            f"{row.zone_name} ({row.zone_id})",
            str(row.party),
            f"{row.inside:,}",
            f"{row.possible:,}",
            deepest_of.get((row.zone_id, row.party), "-"),
            format_time(row.first),
            format_time(row.last),
        )
    if len(by_zone) > top * 2:
        grid.caption = f"{len(by_zone) - top * 2} more (zone, party) pairs not shown"
    console.print(grid)

    if not inside.empty:
        deepest_rows = inside.nlargest(top, "depth_m")
        grid = Table(title="Deepest incursions (inside: the whole uncertainty disc in the zone)")
        columns = ("report", "where", "zone", "party", "observed", "depth (m)", "± u (m)")
        for name in columns:
            grid.add_column(name, justify="right" if name.endswith("(m)") else "left")
        for row in deepest_rows.itertuples(index=False):
            u = float(row.uncertainty_m)  # type: ignore[arg-type]
            grid.add_row(
                str(row.report_id),
                table.where(int(row.report)),  # type: ignore[arg-type]
                str(row.zone_id),
                str(row.party),
                format_time(row.observed_at),
                format_depth(float(row.depth_m), u),  # type: ignore[arg-type]
                f"{u:,.0f}",
            )
        grid.caption = "depths rounded to a step that fits u (report + zone boundary)"
        console.print(grid)
    _print_units(table, findings, top)


def _print_units(table: ReportBatch, findings: pd.DataFrame, top: int) -> None:
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
            format_time(row.entered_at),
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
    where their party is not authorized and have not withdrawn. With `--zones db`, parties are
    matched to the database's registered parties (`truce parties`), and an unknown one refuses
    the file naming its row.
    """
    with handled_errors():
        when = parse_time(at, "--at") or datetime.now(UTC)
        options = read_options(
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
            index, registry = _load_index(zones, database_url, zones_layer, crs, steps)
            table = read_reports(reports, options, steps)
            if registry is not None:  # the database's parties, as the service matches them
                table = resolve_batch(registry, table)
            findings = judge_reports(index, table, steps)
            if not allow_swapped:
                refuse_swapped(index, table, findings)
            if out is not None:
                write_findings(findings, out, fmt, steps)
        for message in table.messages:
            print_note(message)
        _print_summary(table, findings, top)
        if out is not None:
            console.print(f"{len(findings):,} findings written to {out}")
    if fail_on_violation and findings["violation"].to_numpy(bool).any():
        raise typer.Exit(1)
