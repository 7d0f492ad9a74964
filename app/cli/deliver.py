"""`truce deliver`: webhook delivery and the MQTT bridge in a process of their own.

Run one or several beside `truce serve --no-deliver`-style services (`TRUCE_DELIVER=false`):
each subscription is delivered by one process at a time (a lease in the database), and a
process that dies leaves its subscriptions to the others once its leases expire
(`TRUCE_WEBHOOK_LEASE_S`).
"""

from __future__ import annotations

import asyncio
import os
import signal
from contextlib import closing
from typing import Annotated

import typer
from rich.console import Console

console = Console(stderr=True)


def deliver(
    database_url: Annotated[
        str | None,
        typer.Option(
            help="sqlite:///path/to/truce.sqlite or postgresql://... [default: TRUCE_DATABASE_URL]"
        ),
    ] = None,
    mqtt_url: Annotated[
        str | None,
        typer.Option(help="mqtt://host:1883 of the broker [default: TRUCE_MQTT_URL]"),
    ] = None,
) -> None:
    """Deliver webhooks (and bridge MQTT with TRUCE_MQTT_URL) until SIGINT or SIGTERM."""
    from pydantic import ValidationError

    from app.alerts.runner import Alerts
    from app.service import Service
    from app.settings import Settings
    from app.store import open_store

    if database_url is not None:
        os.environ["TRUCE_DATABASE_URL"] = database_url
    if mqtt_url is not None:
        os.environ["TRUCE_MQTT_URL"] = mqtt_url
    try:
        settings = Settings()
    except ValidationError as exc:
        console.print(f"[red]error:[/red] bad settings: {exc}")
        raise typer.Exit(2) from None

    async def main() -> None:
        with closing(open_store(settings.database_url, settings.database_read_url)) as store:
            service = Service(store)
            service.index()
            alerts = Alerts(service, settings).start()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, alerts.stopping.set)
            console.print(
                f"delivering from {settings.database_url}"
                + (f", MQTT {settings.mqtt_url}" if settings.mqtt_url else "")
            )
            await alerts.stopping.wait()
            await alerts.stop()

    asyncio.run(main())
