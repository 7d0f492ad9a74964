"""`GET /incursions`: the violations among the stored reports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from app.api.auth import ViewerKey
from app.api.deps import BBoxDep, PageDep, ServiceDep, TimeRangeDep, page_links
from app.api.models import IncursionPage, problems
from app.api.responses import GEOJSON, GeoJSONResponse

router = APIRouter(tags=["incursions"])


@router.get(
    "/incursions",
    operation_id="listIncursions",
    response_model=IncursionPage,
    response_class=GeoJSONResponse,
    responses=problems(400, 401, 403),
)
def list_incursions(
    request: Request,
    service: ServiceDep,
    _: ViewerKey,
    times: TimeRangeDep,
    bbox: BBoxDep,
    page: PageDep,
    zone: Annotated[str | None, Query(description="only violations of this zone (its id)")] = None,
    party: Annotated[str | None, Query(description="only this party's violations")] = None,
    verdict: Annotated[
        Literal["inside", "possible"] | None,
        Query(description="only violations `inside` (certain) or only `possible` ones"),
    ] = None,
) -> Response:
    """Stored reports that violate a zone: findings (inside or possible, party not authorized)
    as Point features, in report time order; `bbox` keeps reports in the box, `verdict` one
    certainty. `violationsByVerdict` counts the matched ones `inside` apart from `possible`.

    They are worked out against the zones as they now stand, so a corrected zone corrects its
    incursions; each worker keeps them and judges only the reports stored since it last did.
    """
    found = service.incursions(
        since=times.since, until=times.until, party=party, zone=zone, bbox=bbox, verdict=verdict
    )
    shown = found.take(slice(page.offset, page.offset + page.limit)).features()
    more = page.offset + page.limit < len(found)
    next_params = {"offset": page.offset + page.limit, "limit": page.limit} if more else None
    return GeoJSONResponse(
        {
            "type": "FeatureCollection",
            "features": shown,
            "numberMatched": len(found),
            "violationsByVerdict": found.by_verdict(),
            "numberReturned": len(shown),
            "timeStamp": datetime.now(UTC).isoformat(),
            "links": page_links(request, next_params, GEOJSON),
        }
    )
