"""What pushes events out, as one background job: webhook delivery and (with `TRUCE_MQTT_URL`)
the MQTT bridge. The service's lifespan starts it (unless `TRUCE_DELIVER=false`), and so does
`truce deliver`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable

from app.alerts.delivery import Deliverer
from app.alerts.manage import delivery_options
from app.service import Service
from app.settings import Settings

__all__ = ["Alerts"]

log = logging.getLogger("truce.alerts")


class Alerts:
    """The running jobs (webhooks, MQTT in and out); `stop()` ends them and frees their leases."""

    def __init__(self, service: Service, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        self.stopping = asyncio.Event()
        self.deliverer = Deliverer(service.store, service.store, delivery_options(settings))
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> Alerts:
        """Start every job in the running event loop."""
        jobs: list[Awaitable[None]] = [self.deliverer.run(self.stopping)]
        if self.settings.mqtt_url:
            from app.alerts.mqtt import MqttBridge

            jobs.append(MqttBridge(self.service, self.settings).run(self.stopping))
        self._tasks = [asyncio.ensure_future(job) for job in jobs]
        return self

    async def wait(self) -> None:
        """Until every job has ended (after `stop`, or a job's failure)."""
        await asyncio.gather(*self._tasks)

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Ask every job to stop, and wait for them (cancelled after `timeout_s`)."""
        self.stopping.set()
        done, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        for task in [*done, *pending]:
            with contextlib.suppress(BaseException):
                await task
