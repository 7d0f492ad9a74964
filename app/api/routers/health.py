"""`GET /health`: liveness and version, for load balancers and the container's HEALTHCHECK.

It stays a liveness probe (always 200): a stored zone that the engine had to set aside (see
`ZoneIndex`) makes the answer `degraded` and names it, while every other zone keeps being judged.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from app import __version__
from app.api.models import Health
from app.api.responses import ORJSONResponse, dumps

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
