"""`truce export zones|reports|incursions`: write what the database holds to a file."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli.common import (
    DEFAULT_DATABASE_URL,
    DatabaseUrl,
    ShowProgress,
    Steps,
    console,
    handled_errors,
    open_database,
    open_service,
    parse_time,
)
from app.io import output_format, write_findings, write_reports, write_zones
from app.store import Store, iter_report_pages

export_app = typer.Typer(help="Export zones, reports or incursions from the database to a file.")

Out = Annotated[Path, typer.Option(help="The file to write (.geojson, .csv or .gpkg)")]
Format = Annotated[
    str | None,
    typer.Option("--format", help="geojson, csv or gpkg [default: from the --out extension]"),
]
Since = Annotated[str | None, typer.Option(help="Only reports observed at or after this time")]
Until = Annotated[str | None, typer.Option(help="Only reports observed before this time")]
Party = Annotated[str | None, typer.Option(help="Only this party's reports")]


class VerdictChoice(StrEnum):
    """The two certainties of a violation."""

    INSIDE = "inside"
    POSSIBLE = "possible"


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
    with handled_errors():
        fmt = output_format(out, out_format)
        moment = parse_time(at, "--at")
        with Steps(show_progress) as steps, open_service(database_url, create=False) as service:
            zones = service.list_zones(moment, all_versions=moment is None)
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
    with handled_errors():
        fmt = output_format(out, out_format)
        start, end = parse_time(since, "--since"), parse_time(until, "--until")
        with Steps(show_progress) as steps, open_database(database_url, create=False) as store:
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
    verdict: Annotated[
        VerdictChoice | None,
        typer.Option(help="Only violations inside (certain) or only possible ones"),
    ] = None,
    show_progress: ShowProgress = True,
) -> None:
    """Write the violations of the stored reports against the stored zones to --out.

    As GET /incursions (the same service call): judged against the zones as they stand now.
    """
    with handled_errors():
        fmt = output_format(out, out_format)
        start, end = parse_time(since, "--since"), parse_time(until, "--until")
        with Steps(show_progress) as steps, open_service(database_url, create=False) as service:
            with steps.step("finding the incursions of the stored reports"):
                found = service.incursions(
                    since=start,
                    until=end,
                    party=party,
                    zone=zone,
                    verdict=None if verdict is None else verdict.value,
                )
            incursions = found.frame()
            write_findings(incursions, out, fmt, steps)
        inside = int((incursions["verdict"] == "inside").sum())
        console.print(
            f"{len(incursions):,} incursion(s) written to {out}: {inside:,} inside, "
            f"{len(incursions) - inside:,} possible (column `verdict`)"
        )
