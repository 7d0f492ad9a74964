"""`GET /audit`: every write, who made it and when (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from app.api.auth import AdminKey
from app.api.deps import MAX_LIMIT, MAX_POSITION, ServiceDep, page_links
from app.api.models import AuditPage, problems
from app.api.responses import ORJSONResponse

router = APIRouter(tags=["admin"])


@router.get(
    "/audit",
    operation_id="listAudit",
    response_model=AuditPage,
    response_class=ORJSONResponse,
    responses=problems(400, 401, 403),
)
def list_audit(
    request: Request,
    service: ServiceDep,
    _: AdminKey,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="most entries")] = 100,
    after: Annotated[
        int | None,
        Query(ge=0, le=MAX_POSITION, description="the id of the last entry already seen"),
    ] = None,
) -> Response:
    """Audit entries oldest first: `zone.create`, `zone.version`, `zone.retire`, `reports.add`,
    `key.create`, `key.revoke`, each with the key that made it (`actor`) and when.
    `numberMatched` counts the entries after `after` (all of them without it).
    """
    entries = service.audit_log(limit=limit, after=after)
    more = len(entries) == limit
    next_params = {"after": entries[-1].id, "limit": limit} if more and entries else None
    return ORJSONResponse(
        {
            "entries": [
                {
                    "id": e.id,
                    "at": e.at.isoformat(),
                    "actor": e.actor,
                    "action": e.action,
                    "target": e.target,
                    "detail": e.detail,
                }
                for e in entries
            ],
            "numberMatched": service.count_audit(after),
            "numberReturned": len(entries),
            "links": page_links(request, next_params, "application/json"),
        }
    )
