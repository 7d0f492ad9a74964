"""`truce`: the command line, a thin layer over the engine (and, later, the service)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from app import __version__
from app.engine import ZoneIndex, reports_frame
from app.errors import TruceError
from app.geojson import finding_to_feature, reports_from_geojson, zones_from_geojson
from app.scenario import GEODATA
from app.tracks import track_summary

cli = typer.Typer(
    help="Truce: which reports entered which ceasefire zones, how deep, and did they withdraw.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


def _read_geojson(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise typer.BadParameter(f"{path}: {exc}") from exc


@cli.command()
def version() -> None:
    """Print Truce's version."""
    console.print(__version__)


@cli.command()
def check(
    reports: Annotated[Path, typer.Argument(help="Reports as a GeoJSON file of Point features.")],
    zones: Annotated[Path, typer.Option(help="Zones as a GeoJSON file.")] = GEODATA
    / "zones.geojson",
    out: Annotated[Path | None, typer.Option(help="Write the findings here as GeoJSON.")] = None,
    fail_on_violation: Annotated[
        bool, typer.Option(help="Exit with status 1 when there is a violation.")
    ] = False,
) -> None:
    """Judge REPORTS against ZONES by the verdict rule and print what was found."""
    try:
        zone_list, notes = zones_from_geojson(_read_geojson(zones))
        report_list = reports_from_geojson(_read_geojson(reports))
    except TruceError as exc:
        console.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(2) from exc
    for note in notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    frame = reports_frame(report_list)
    index = ZoneIndex(zone_list)
    findings = index.check(frame)
    _print_findings(findings)
    _print_tracks(track_summary(frame, findings))
    if out is not None:
        features = [finding_to_feature(f) for f in index.as_findings(findings, report_list)]
        out.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
        console.print(f"findings written to {out}")
    if fail_on_violation and findings["violation"].any():
        raise typer.Exit(1)


def _print_findings(findings: pd.DataFrame) -> None:
    violations = findings[findings["violation"]]
    table = Table(title=f"{len(findings)} findings, {len(violations)} violations")
    for column in ("zone", "party", "violations", "deepest (m)"):
        table.add_column(column, justify="right" if column[0] in "vd" else "left")
    for (zone, party), group in violations.groupby(["zone_name", "party"]):
        table.add_row(str(zone), str(party), str(len(group)), f"{group['depth_m'].max():,.0f}")
    console.print(table)


def _print_tracks(summary: pd.DataFrame) -> None:
    if summary.empty:
        return
    table = Table(title="Units that entered a zone")
    for column in ("party", "unit", "zone", "entered", "withdrawn", "back at start"):
        table.add_column(column)
    for row in summary.itertuples(index=False):
        table.add_row(
            str(row.party),
            str(row.unit),
            str(row.zone_id),
            _when(row.entered_at),
            "yes" if row.withdrawn else "[red]no[/red]",
            "yes" if row.back_at_initial else "no",
        )
    console.print(table)


def _when(at: object) -> str:
    return at.strftime("%Y-%m-%d %H:%M %Z") if isinstance(at, datetime) else "-"


def main() -> None:
    """Entry point of the `truce` console script."""
    cli()
