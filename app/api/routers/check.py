"""`POST /check`: the verdict rule on reports that are not stored.

A single check is the API's hot path, so this route reads what it needs from the request itself
(key, query flag, app state) instead of through FastAPI dependencies, which would cost about a
third of a single check's time; the same rules apply (`authorize` is what `ViewerKey` runs), and
`openapi_extra` documents the parameter and the key as the dependencies would.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.auth import API_KEY_HEADER, api_key_header, authorize
from app.api.body import (
    check_feature_count,
    load_document,
    read_json_body,
    with_exact_ids,
)
from app.api.deps import parse_flag, refuse_unknown_query
from app.api.inputs import REPORTS_OR_OBJECT_BODY
from app.api.limits import run_limited
from app.api.models import POINT_EXAMPLE, FindingCollection, json_body, problems
from app.api.parsing import parse_reports
from app.api.responses import GeoJSONResponse, dumps
from app.roles import Role
from app.service import Service
from app.settings import Settings

router = APIRouter(tags=["check"])

_INCLUDE_OUTSIDE = {
    "name": "include_outside",
    "in": "query",
    "required": False,
    "description": "also list the zones in force that each report is outside of",
    "schema": {"type": "boolean", "default": False},
}


@router.post(
    "/check",
    operation_id="check",
    response_model=FindingCollection,
    response_class=GeoJSONResponse,
    responses=problems(400, 401, 403, 413, 422, 503),
    openapi_extra={
        **json_body(
            'a Point Feature, a FeatureCollection of them, or {"lon", "lat", "party", ...}',
            POINT_EXAMPLE,
            REPORTS_OR_OBJECT_BODY,
        ),
        "parameters": [_INCLUDE_OUTSIDE],
        "security": [{api_key_header.scheme_name: []}],
    },
)
async def check(request: Request) -> Response:
    """Judge reports against the zones in force at their time; nothing is stored.

    `party` is required; a report without `observed_at` is judged at the time of the request,
    which the answer gives as `judged_at` (null when every report had a time) with a warning.
    Each finding's `report_id` is the input feature's id, else its index in the input. Findings
    are not listed for zones a report is `outside` of unless `include_outside=true`. `warnings`
    name the features whose coordinates look swapped (far from every zone, but inside one as
    [lat, lon]); they are judged as sent.
    """
    authorize(request, Role.VIEWER, request.headers.get(API_KEY_HEADER))
    refuse_unknown_query(request)
    include_outside = parse_flag(request.query_params.get("include_outside"), "include_outside")
    service = cast(Service, request.app.state.service)
    settings = cast(Settings, request.app.state.settings)
    body = await read_json_body(request)
    now = datetime.now(UTC)

    def work() -> bytes:
        obj = load_document(body)
        check_feature_count(obj, settings.max_features)
        batch = with_exact_ids(body, obj, lambda doc: parse_reports(doc, default_observed_at=now))
        checked = service.check(batch, include_outside=include_outside)
        undated = _undated(obj)
        warnings = checked.warnings
        if undated:
            shown = ", ".join(undated[:5]) + (
                f" and {len(undated) - 5} more" if len(undated) > 5 else ""
            )
            warnings = [
                *warnings,
                f"{shown}: no observed_at; judged against the zones in force at "
                f"{now.isoformat()} (judged_at), the time of the request",
            ]
        return dumps(
            {
                "type": "FeatureCollection",
                "features": checked.findings,
                "numberReturned": len(checked.findings),
                "violations": checked.violations,
                "violationsByVerdict": checked.violations_by_verdict,
                "warnings": warnings,
                "judged_at": now.isoformat() if undated else None,
            }
        )

    # A single check is cheaper than a thread hop: small bodies are judged on the event loop.
    # A big one waits for a heavy turn (app.api.limits), so single checks keep their latency.
    return GeoJSONResponse(await run_limited(request, len(body), work, inline=True))


def _undated(obj: object) -> list[str]:
    """Where the reports sent without `observed_at` are ("features/2", "body"), in input order.

    Read from the document after it was parsed, so its shape is known to be valid.
    """
    if not isinstance(obj, dict):
        return []
    if obj.get("type") == "FeatureCollection":
        features = obj.get("features") or []
        return [
            f"features/{i}"
            for i, feature in enumerate(features)
            if isinstance(feature, dict)
            and (feature.get("properties") or {}).get("observed_at") is None
        ]
    properties = obj.get("properties") if obj.get("type") == "Feature" else obj
    if isinstance(properties, dict) and properties.get("observed_at") is None:
        return ["body"]
    return []
