"""Reports: file one or a batch (idempotent by id), list them by time, party and place; read,
correct (a new version) and retract one, and list its history."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from app.api.auth import ObserverKey, ViewerKey
from app.api.body import (
    check_feature_count,
    load_document,
    read_json_body,
    with_exact_ids,
)
from app.api.deps import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_POSITION,
    BBoxDep,
    ListLimitDep,
    ServiceDep,
    SettingsDep,
    TimeRangeDep,
    href,
    page_links,
)
from app.api.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from app.api.inputs import REPORTS_BODY
from app.api.limits import run_limited
from app.api.models import (
    POINT_EXAMPLE,
    Feature,
    FeatureCollection,
    Page,
    ReportCorrected,
    ReportsFiled,
    json_body,
    problems,
)
from app.api.parsing import feature_for_path, parse_reports
from app.api.responses import GEOJSON, GeoJSONResponse, ORJSONResponse, dumps
from app.batch import ReportBatch
from app.errors import InvalidParameter
from app.geojson import report_to_feature
from app.service import MAX_REASON_CHARS, Service
from app.settings import Settings
from app.store import ReportVersion

router = APIRouter(tags=["reports"])


def _new_id(index: int | None) -> str:
    return str(uuid.uuid4())


@router.post(
    "/reports",
    operation_id="createReports",
    status_code=201,
    response_model=ReportsFiled,
    response_class=ORJSONResponse,
    responses={
        200: {"description": "nothing new was stored: every report was a duplicate"},
        **problems(400, 401, 403, 409, 413, 422, 503),
    },
    openapi_extra={
        **json_body("a report Feature or a FeatureCollection of them", POINT_EXAMPLE, REPORTS_BODY),
        "parameters": [IDEMPOTENCY_PARAMETER],
    },
)
async def create_reports(
    request: Request, service: ServiceDep, settings: SettingsDep, key: ObserverKey
) -> Response:
    """Store a report Feature or a FeatureCollection of them, all or none, and check them.

    Each report is a Point with `party` and `observed_at` (with a UTC offset) required, and
    optionally `uncertainty_m`, `kind`, `unit`, `source`, `confidence`, `notes`. The Feature's `id`
    makes a re-sent report with the same content a duplicate rather than a second report; the
    same id with different content is a 409 (correct a report with `PUT /reports/{id}`). A
    report without an id is given a UUID, so to retry safely send an
    `Idempotency-Key` header: a retry with the same key is answered as the first request was and
    stores nothing again. One bad feature refuses the whole batch, naming `features/<i>/...`.

    Answers 201 with the ids `stored`, the `duplicates`, the `findings` of every report sent
    (against the zones in force at its time) and `warnings` (such as coordinates that look
    swapped); 200 when nothing new was stored.
    """
    return await idempotent(
        request, key.actor, lambda: _file_reports(request, service, settings, key.actor)
    )


async def _file_reports(
    request: Request, service: Service, settings: Settings, actor: str
) -> Response:
    body = await read_json_body(request)

    def work() -> tuple[bytes, bool]:
        obj = load_document(body)
        check_feature_count(obj, settings.max_features)
        batch = with_exact_ids(
            body,
            obj,
            lambda doc: parse_reports(
                doc, default_observed_at=None, assign_id=_new_id, allow_object=False
            ),
        )
        filed = service.add_reports(batch, actor)
        answer = {
            "stored": filed.stored,
            "duplicates": filed.duplicates,
            "findings": {
                "type": "FeatureCollection",
                "features": filed.checked.findings,
                "numberReturned": len(filed.checked.findings),
                "violations": filed.checked.violations,
                "violationsByVerdict": filed.checked.violations_by_verdict,
                "warnings": filed.checked.warnings,
            },
            "warnings": filed.checked.warnings,
        }
        return dumps(answer), bool(filed.stored)

    content, stored_any = await run_limited(request, len(body), work)
    return ORJSONResponse(content, status_code=201 if stored_any else 200)


@router.get(
    "/reports",
    operation_id="listReports",
    response_model=Page,
    response_class=GeoJSONResponse,
    responses=problems(400, 401, 403),
)
def list_reports(
    request: Request,
    service: ServiceDep,
    _: ViewerKey,
    times: TimeRangeDep,
    bbox: BBoxDep,
    party: Annotated[str | None, Query(description="only this party's reports")] = None,
    unit: Annotated[str | None, Query(description="only this unit's reports")] = None,
    zone: Annotated[
        str | None,
        Query(
            description="only reports with a finding (inside, possible or approaching) in this "
            "zone (its id), judged against the zones as they stand now"
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="most reports in one page")
    ] = DEFAULT_LIMIT,
    after: Annotated[
        str | None, Query(description="the cursor of a `next` link; keep the other filters")
    ] = None,
    filed_after: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_POSITION,
            description="commit order instead: reports filed after this position (0: from the "
            "first); the `next` link carries the position to ask from next time",
        ),
    ] = None,
) -> Response:
    """Stored reports in (observed_at, id) order, one page at a time; or, with `filed_after`,
    in the order they were filed.

    Follow the `next` link (it carries the cursor and the filters) for the following page;
    pages never skip or repeat a report, even while reports are being added. A report filed
    during the walk with an `observed_at` before the page already read is not in a later page,
    though: a consumer that follows new reports asks with `filed_after` (start at 0), which
    lists them in commit order and always answers a `next` link to poll, so that every report
    stored later comes exactly once. `filed_after` takes no other filter but `limit`. That
    feed also lists corrections and retractions (as versions, with `version`, `filed_at` and
    `retracted`), while the time-ordered listing shows each report's latest version only and
    leaves retracted reports out.

    `numberMatched`, on the first page (without `after`), counts every report of the listing's
    filters over all its pages; later pages leave it out, as counting is a pass over them. `zone`
    keeps reports with a finding (inside, possible or approaching) in that zone, judged against
    the zones as they stand now; with it, a page may hold fewer than `limit` reports (even none)
    and still have a `next` link.
    """
    if filed_after is not None:
        others = {
            "since": times.since,
            "until": times.until,
            "bbox": bbox,
            "party": party,
            "unit": unit,
            "zone": zone,
            "after": after,
        }
        return _filed_after(request, service, filed_after, limit, others)
    reports, cursor = service.list_reports(
        since=times.since,
        until=times.until,
        party=party,
        bbox=bbox,
        unit=unit,
        limit=limit,
        after=after,
        zone=zone,
    )
    # Counted on the first page only: a count is a pass over the matching reports (about 50 ms
    # for 1e5, a page 0.5 ms), which a walk through every page should not pay each time.
    matched = None
    if after is None:
        matched = service.count_reports(
            since=times.since, until=times.until, party=party, bbox=bbox, unit=unit, zone=zone
        )
    features = [report_to_feature(r) for r in reports]
    next_params: dict[str, str | int] | None = None
    if cursor is not None:
        next_params = {"after": cursor, "limit": limit}
    return GeoJSONResponse(
        {
            "type": "FeatureCollection",
            "features": features,
            **({} if matched is None else {"numberMatched": matched}),
            "numberReturned": len(features),
            "timeStamp": datetime.now(UTC).isoformat(),
            "links": page_links(request, next_params, GEOJSON),
        }
    )


def _filed_after(
    request: Request,
    service: ServiceDep,
    position: int,
    limit: int,
    others: Mapping[str, object],
) -> Response:
    """A page of the commit-order feed (see `list_reports`)."""
    for name, value in others.items():
        if value is not None:
            raise InvalidParameter(
                "filed_after lists every report in commit order and takes no filter but limit",
                field=name,
            )
    versions, position = service.store.reports_after(position, limit)
    # Corrections and retractions come in this feed too, each with its `version`.
    features = [_version_feature(request, v) for v in versions]
    return GeoJSONResponse(
        {
            "type": "FeatureCollection",
            "features": features,
            "numberReturned": len(features),
            "timeStamp": datetime.now(UTC).isoformat(),
            "links": page_links(request, {"filed_after": position, "limit": limit}, GEOJSON),
        }
    )


# -- one report: read, correct, retract, history -----------------------------------------------

ReportId = Annotated[
    str,
    Path(
        description="the report's id, percent-encoded (a `/` in it may be sent as it is)",
        examples=["op-7-2022-03-24-0600"],
    ),
]


def _version_feature(request: Request, found: ReportVersion) -> dict[str, Any]:
    """A report version as a Feature: the report, then `version`, `filed_at` and, for a
    retraction, `retracted` and `retraction_reason`; with links to itself and its history."""
    feature = report_to_feature(found.report)
    properties = feature["properties"]
    properties["version"] = found.version
    properties["filed_at"] = found.filed_at.isoformat()
    properties["retracted"] = found.retracted
    if found.retracted:
        properties["retraction_reason"] = found.reason
    # `href` percent-encodes the id; a `/` in it stays, which the `:path` routes below take.
    path = f"/reports/{found.report.id}"
    feature["links"] = [
        {"href": href(request, path), "rel": "self", "type": GEOJSON},
        {"href": href(request, path + "/history"), "rel": "version-history", "type": GEOJSON},
    ]
    return feature


def _parse_correction(obj: Any, report_id: str) -> ReportBatch:
    """The new version of report `report_id`: one Feature whose id, if given, is the path's."""
    obj = feature_for_path(obj, report_id, "report")
    return parse_reports(obj, default_observed_at=None, assign_id=_new_id, allow_object=False)


@router.get(
    "/reports/{report_id:path}/history",
    operation_id="getReportHistory",
    response_model=FeatureCollection,
    response_class=GeoJSONResponse,
    responses=problems(400, 401, 403, 404),
)
def report_history(
    report_id: ReportId, request: Request, service: ServiceDep, _: ViewerKey, limit: ListLimitDep
) -> Response:
    """Every version of a report, oldest first: as filed (version 1), each correction, and the
    retraction if there is one (`retracted: true`, with its `retraction_reason`); `limit` keeps
    the first."""
    versions = service.report_history(report_id)
    shown = versions[:limit]
    return GeoJSONResponse(
        {
            "type": "FeatureCollection",
            "features": [_version_feature(request, v) for v in shown],
            "numberMatched": len(versions),
            "numberReturned": len(shown),
        }
    )


@router.get(
    "/reports/{report_id:path}",
    operation_id="getReport",
    response_model=Feature,
    response_class=GeoJSONResponse,
    responses=problems(401, 403, 404),
)
def get_report(
    report_id: ReportId, request: Request, service: ServiceDep, _: ViewerKey
) -> Response:
    """The latest version of a report, with its `version` and `filed_at`.

    A retracted report answers its retraction (`retracted: true`, `retraction_reason`): it is
    left out of every list, incursion, track, map and export, but its record stays readable.
    """
    return GeoJSONResponse(_version_feature(request, service.get_report(report_id)))


@router.put(
    "/reports/{report_id:path}",
    operation_id="correctReport",
    response_model=ReportCorrected,
    response_class=ORJSONResponse,
    responses=problems(400, 401, 403, 404, 409, 413, 422, 503),
    openapi_extra=json_body(
        "the report's new version, a Feature", POINT_EXAMPLE, REPORTS_BODY["anyOf"][0]
    ),
)
async def correct_report(
    report_id: ReportId, request: Request, service: ServiceDep, key: ObserverKey
) -> Response:
    """Correct a report: store a Feature as its next version; earlier versions stay.

    Validated as `POST /reports` validates a report. The Feature's id may be left out; if given
    it must be the path's. Incursions, tracks, lists, the map and exports use the new version
    at once. Content equal to the latest version stores nothing (`changed: false`), so a retry
    is safe. 404 for an unknown report, 409 for a retracted one. Answers the latest version and
    the findings of its check.
    """
    body = await read_json_body(request)
    actor = key.actor

    def work() -> bytes:
        batch = with_exact_ids(
            body, load_document(body), lambda obj: _parse_correction(obj, report_id)
        )
        done = service.correct_report(batch, actor)
        return dumps(
            {
                "report": _version_feature(request, done.version),
                "version": done.version.version,
                "changed": done.changed,
                "findings": {
                    "type": "FeatureCollection",
                    "features": done.checked.findings,
                    "numberReturned": len(done.checked.findings),
                    "violations": done.checked.violations,
                    "violationsByVerdict": done.checked.violations_by_verdict,
                    "warnings": done.checked.warnings,
                },
                "warnings": done.checked.warnings,
            }
        )

    return ORJSONResponse(await run_limited(request, len(body), work))


@router.delete(
    "/reports/{report_id:path}",
    operation_id="retractReport",
    response_model=Feature,
    response_class=GeoJSONResponse,
    responses=problems(400, 401, 403, 404, 409, 503),
)
def retract_report(
    report_id: ReportId,
    request: Request,
    service: ServiceDep,
    key: ObserverKey,
    reason: Annotated[
        str | None,
        Query(
            description=f"why the report is retracted (required, at most {MAX_REASON_CHARS} "
            "characters)"
        ),
    ] = None,
) -> Response:
    """Retract a report, with a `reason` (a query parameter): a last version that keeps the
    content retracted. The report leaves every list, incursion, track, map and export at once;
    `GET /reports/{id}` and its history still show it. 409 when it is already retracted.
    """
    if reason is None:
        raise InvalidParameter("a retraction needs a reason", field="reason")
    return GeoJSONResponse(
        _version_feature(request, service.retract_report(report_id, reason, key.actor))
    )
