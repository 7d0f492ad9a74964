"""`POST /check`: the verdict rule on reports that are not stored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from app.api.auth import ViewerKey
from app.api.body import check_feature_count, load_json, run_sized
from app.api.deps import ServiceDep, SettingsDep
from app.api.models import POINT_EXAMPLE, FindingCollection, json_body, problems
from app.api.parsing import parse_reports
from app.api.responses import GeoJSONResponse, dumps

router = APIRouter(tags=["check"])


@router.post(
    "/check",
    operation_id="check",
    response_model=FindingCollection,
    response_class=GeoJSONResponse,
    responses=problems(400, 401, 403, 413, 422),
    openapi_extra=json_body(
        'a Point Feature, a FeatureCollection of them, or {"lon", "lat", "party", ...}',
        POINT_EXAMPLE,
    ),
)
async def check(
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    _: ViewerKey,
    include_outside: Annotated[
        bool, Query(description="also list the zones in force that each report is outside of")
    ] = False,
) -> Response:
    """Judge reports against the zones in force at their time; nothing is stored.

    `party` is required; a report without `observed_at` is judged at the time of the request.
    Each finding's `report_id` is the input feature's id, else its index in the input. Findings
    are not listed for zones a report is `outside` of unless `include_outside=true`. `warnings`
    name the features whose coordinates look swapped (far from every zone, but inside one as
    [lat, lon]); they are judged as sent.
    """
    body = await request.body()
    now = datetime.now(UTC)

    def work() -> bytes:
        obj = load_json(body)
        check_feature_count(obj, settings.max_features)
        batch = parse_reports(obj, default_observed_at=now)
        checked = service.check(batch, include_outside=include_outside)
        return dumps(
            {
                "type": "FeatureCollection",
                "features": checked.findings,
                "numberReturned": len(checked.findings),
                "violations": checked.violations,
                "warnings": checked.warnings,
            }
        )

    # A single check is cheaper than a thread hop: small bodies are judged on the event loop.
    return GeoJSONResponse(await run_sized(len(body), work, inline=True))
