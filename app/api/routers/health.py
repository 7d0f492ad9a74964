"""`GET /health`: liveness and version, for load balancers and the container's HEALTHCHECK."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from app import __version__
from app.api.models import Health
from app.api.responses import ORJSONResponse, dumps

router = APIRouter(tags=["health"])

# The answer never changes: rendered once.
_HEALTH = dumps({"status": "ok", "version": __version__})


@router.get("/health", operation_id="health", response_model=Health, response_class=ORJSONResponse)
async def health() -> Response:
    """Liveness and version. Needs no key."""
    return ORJSONResponse(_HEALTH)
