"""`truce import zones` and `truce import reports` write their events like the API does."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from app.alerts.events import INCIDENT_OPENED, ZONE_CHANGED
from app.cli import register
from app.scenario import GEODATA
from app.store import IncidentFilter, Store, open_store


def _app() -> typer.Typer:
    app = typer.Typer(no_args_is_help=True, add_completion=False)

    @app.command()
    def version() -> None:
        print("test")

    register(app)
    return app


def test_importing_zones_and_reports_writes_their_events(store_url: str) -> None:
    runner, app = CliRunner(), _app()
    zones = runner.invoke(
        app,
        [
            "import",
            "zones",
            str(GEODATA / "zones.geojson"),
            "--database-url",
            store_url,
            "--no-progress",
        ],
    )
    assert zones.exit_code == 0, zones.output
    reports = runner.invoke(
        app,
        [
            "import",
            "reports",
            str(GEODATA / "reports.geojson"),
            "--database-url",
            store_url,
            "--no-progress",
        ],
    )
    assert reports.exit_code == 0, reports.output
    store: Store = open_store(store_url)
    try:
        changed = store.events_after(0, types=[ZONE_CHANGED])
        history = {z.id: len(store.zone_history(z.id)) for z in store.list_zones()}
        assert len(changed) == sum(history.values())  # one event per version stored
        assert {e.data["zone_id"] for e in changed} == set(history)
        incidents = store.list_incidents(IncidentFilter(), limit=1000)[0]
        assert incidents, "the founding scenario's reports violate its zones"
        opened = store.events_after(0, types=[INCIDENT_OPENED])
        assert {e.data["incident_id"] for e in opened} == {i.id for i in incidents}
    finally:
        store.close()
