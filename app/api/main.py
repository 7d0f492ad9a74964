"""The app factory: `create_app(settings)` assembles the HTTP API of docs/api.md.

At start-up (the lifespan) the store is opened, the founding scenario loaded into an empty
database if the settings ask for it, and the zone index built; at shutdown the store is closed.
`create_app_from_env` is the factory that uvicorn calls in each worker process
(`uvicorn --factory app.api.main:create_app_from_env`), with the settings from `TRUCE_*`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from starlette.middleware.gzip import GZipMiddleware

from app import __version__
from app.alerts.runner import Alerts
from app.alerts.stale import run_stale_sweeps
from app.alerts.tail import EventTail
from app.api import map as map_api
from app.api.auth import KeyRing, require_role, warn_short_keys
from app.api.body import BodyLimit
from app.api.deps import strict_query
from app.api.errors import register_error_handlers
from app.api.event_models import add_event_schemas
from app.api.idempotency import register_idempotency_handlers
from app.api.inputs import add_schemas
from app.api.limits import (
    AuthThrottle,
    ReadTimeout,
    heavy_turn,
    register_limit_handlers,
    store_auditor,
)
from app.api.models import add_problem_schema
from app.api.responses import CacheHeaders, ORJSONResponse
from app.api.routers import (
    admin,
    check,
    events,
    health,
    home,
    incidents,
    incursions,
    ogc,
    parties,
    reports,
    subscriptions,
    tracks,
    zones,
)
from app.roles import Role
from app.scenario import GEODATA
from app.service import Service
from app.settings import Settings
from app.store import open_store

__all__ = ["create_app", "create_app_from_env"]

log = logging.getLogger("truce.api")

#: How long shutdown waits for a running stale-track sweep to end.
SWEEP_STOP_S = 10.0

#: Answers smaller than this are sent uncompressed (gzip would save little or add bytes).
GZIP_MIN_BYTES = 1024

DESCRIPTION = """
Which reports entered which ceasefire zones, how deep, whether the party was allowed there, and
whether it withdrew.

Send the key in the `X-API-Key` header. Roles: **viewer** reads, **observer** also files reports,
**admin** also manages zones and parties. Errors are RFC 9457 `application/problem+json` naming
the bad `field` and, in a batch, the feature `index`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API over the database that `settings` names (default: from the environment)."""
    settings = settings if settings is not None else Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_store(settings.database_url, settings.database_read_url)
        try:
            service = Service(store)
            if settings.load_scenario and service.load_scenario(settings.geodata_dir or GEODATA):
                log.info("loaded the founding scenario into the empty database")
            service.index()  # built now rather than on the first request
            app.state.service = service
            app.state.keyring = KeyRing(settings.api_keys, store)
            app.state.throttle = AuthThrottle(
                settings.auth_failures, settings.auth_window_s, store_auditor(store)
            )
            warn_short_keys(settings.api_keys)
            # Webhooks and MQTT (app/alerts), unless `truce deliver` processes do it.
            alerts = Alerts(service, settings).start() if settings.deliver else None
            stop = asyncio.Event()
            app.state.event_tail = tail = EventTail(
                store, settings.events_poll_s, settings.events_fallback_s
            )
            background = [
                asyncio.create_task(
                    run_stale_sweeps(
                        store, settings.stale_sweep_s, settings.track_stale_after_or_default, stop
                    ),
                    name="truce-stale-sweeps",
                ),
                asyncio.create_task(tail.run(stop), name="truce-event-tail"),
            ]
            try:
                yield
            finally:
                # Bounded: a sweep in its thread finishes its one transaction, then the loop ends.
                stop.set()
                for task in background:
                    try:
                        await asyncio.wait_for(task, timeout=SWEEP_STOP_S)
                    except TimeoutError:
                        log.warning("%s did not stop in %s s", task.get_name(), SWEEP_STOP_S)
                if alerts is not None:
                    await alerts.stop()
        finally:
            store.close()

    app = FastAPI(
        title="Truce",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=ORJSONResponse,
        # Served by app.api.routers.home from this server's own copies (no CDN).
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    register_error_handlers(app)
    register_limit_handlers(app)
    register_idempotency_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    # Outside the size limit: a body that stops arriving is refused whatever its size.
    app.add_middleware(ReadTimeout, timeout_s=settings.read_timeout_s)
    app.add_middleware(CacheHeaders)
    # Outermost: answers over 1 KiB are compressed for clients that send Accept-Encoding: gzip
    # (big ones in a worker thread). Level 1: GeoJSON shrinks about 7 times at level 1 and 8 at
    # 6, for half the CPU time.
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MIN_BYTES, compresslevel=1)
    # Every route refuses query parameters it does not declare (400 naming it); /check, the hot
    # path, runs the same check inline rather than as a dependency.
    strict = Depends(strict_query)
    # /check first after /health: routes are matched in order, and single checks are the hot path.
    # Probes stay plain: a load balancer's cache-busting parameter must not fail a liveness check.
    app.include_router(health.router)
    app.include_router(check.router)
    for module in (
        zones,
        reports,
        tracks,
        incidents,
        events,
        admin,
        parties,
        subscriptions,
        ogc,
        home,
    ):
        app.include_router(module.router, dependencies=[strict])
    # Heavy routes take a turn (app.api.limits) after the key is checked.
    heavy = Depends(heavy_turn)
    app.include_router(incursions.router, dependencies=[strict, heavy])
    app.include_router(
        map_api.router, dependencies=[strict, Depends(require_role(Role.VIEWER)), heavy]
    )
    map_api.mount_static(app)
    make_document = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_event_schemas(add_schemas(add_problem_schema(make_document())))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def create_app_from_env() -> FastAPI:
    """The app with settings from the `TRUCE_*` environment (uvicorn's `--factory` target)."""
    return create_app(Settings())
