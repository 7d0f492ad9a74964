"""`GET /health`: liveness and version, for load balancers and the container's HEALTHCHECK.

It stays a liveness probe (always 200): a stored zone that the engine had to set aside (see
`ZoneIndex`) makes the answer `degraded` and names it, while every other zone keeps being judged.

`GET /ready`: readiness, i.e. whether the store can take a write now (a load balancer stops
sending writes to a server that is not ready; `/health` stays a pure liveness probe, so that an
orchestrator does not restart a server whose disk is full: freeing space is enough).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from app import __version__
from app.api.deps import ServiceDep
from app.api.errors import closing_headers, problem
from app.api.models import Health, problems
from app.api.responses import ORJSONResponse, dumps
from app.store import StoreError
from app.store.base import Unavailable

router = APIRouter(tags=["health"])

# The usual answer never changes: rendered once.
_HEALTH = dumps({"status": "ok", "version": __version__})


@router.get("/health", operation_id="health", response_model=Health, response_class=ORJSONResponse)
async def health(request: Request) -> Response:
    """Liveness and version; `degraded` with the zones set aside, if any. Needs no key."""
    service = getattr(request.app.state, "service", None)
    # The latest index only: a liveness probe must not wait for the store or an index build.
    aside = service.zones_set_aside() if service is not None else ()
    if not aside:
        return ORJSONResponse(_HEALTH)
    return ORJSONResponse(
        {
            "status": "degraded",
            "version": __version__,
            "zones_set_aside": [
                {"id": z.zone_id, "version": z.version, "reason": z.reason} for z in aside
            ],
        }
    )


class Ready(BaseModel):
    """Readiness: the store took a write just now."""

    status: Literal["ready"]


_READY = dumps({"status": "ready"})


@router.get(
    "/ready",
    operation_id="ready",
    response_model=Ready,
    response_class=ORJSONResponse,
    responses=problems(503),
)
async def ready(service: ServiceDep) -> Response:
    """Readiness: 200 when the store can take a write now, else a 503 problem naming the cause.

    The check is a real write (see `SQLiteStore.check_writable`): it finds a full disk, a
    read-only database, a lock held too long and a failing disk. Needs no key. The answer
    carries `Retry-After`, and is never cached.
    """
    no_store = {"Cache-Control": "no-store"}
    try:
        # A write, with its fsync: off the event loop.
        await run_in_threadpool(service.store.check_writable)
    except StoreError as exc:
        cause = exc.cause if isinstance(exc, Unavailable) else "unavailable"
        retry_after = exc.retry_after if isinstance(exc, Unavailable) else Unavailable.retry_after
        return problem(
            503,
            headers={**closing_headers(503), **no_store, "Retry-After": str(retry_after)},
            type_="urn:truce:problem:not-ready",
            title="Not ready",
            detail=f"the store cannot take writes: {exc.detail}",
            instance="/ready",
            cause=cause,
        )
    return ORJSONResponse(_READY, headers=no_store)
