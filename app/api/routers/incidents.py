"""`GET /incidents` and `GET /incidents/{id}`: violation episodes, their reports and timeline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from app.alerts.incidents import Incident
from app.api.auth import ViewerKey
from app.api.deps import MAX_LIMIT, ServiceDep, TimeRangeDep, page_links
from app.api.event_models import IncidentDetail, IncidentPage
from app.api.models import problems
from app.api.responses import ORJSONResponse
from app.geojson import report_to_feature
from app.store import IncidentFilter

router = APIRouter(tags=["incidents"])

JSON_TYPE = "application/json"
DEFAULT_INCIDENTS = 100
MAX_INCIDENT_ID = 2**63 - 1


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat()


def incident_to_json(incident: Incident) -> dict[str, Any]:
    """An incident as the API writes it."""
    return {
        "id": incident.id,
        "party": incident.party,
        "unit": incident.unit,
        "zone_id": incident.zone_id,
        "zone_name": incident.zone_name,
        "state": incident.state,
        "verdict": incident.verdict,
        "depth_m": incident.depth_m,
        "opened_at": _iso(incident.opened_at),
        "last_seen_at": _iso(incident.last_seen_at),
        "closed_at": _iso(incident.closed_at),
        "close_reason": incident.close_reason,
        "stale": incident.state == "open" and incident.stale_at == incident.last_seen_at,
        "deepest_report_id": incident.deepest_report_id,
        "last_report_id": incident.last_report_id,
        "report_ids": list(incident.report_ids),
    }


@router.get(
    "/incidents",
    operation_id="listIncidents",
    response_model=IncidentPage,
    response_class=ORJSONResponse,
    responses=problems(400, 401, 403),
)
def list_incidents(
    request: Request,
    service: ServiceDep,
    _: ViewerKey,
    times: TimeRangeDep,
    zone: Annotated[str | None, Query(description="only incidents in this zone (its id)")] = None,
    party: Annotated[str | None, Query(description="only this party's incidents")] = None,
    verdict: Annotated[
        Literal["inside", "possible"] | None,
        Query(description="only incidents whose deepest finding is `inside` (or `possible`)"),
    ] = None,
    state: Annotated[
        Literal["open", "closed"] | None, Query(description="only open (or closed) incidents")
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="most incidents in one page")
    ] = DEFAULT_INCIDENTS,
    after: Annotated[
        str | None, Query(description="the cursor of a `next` link; keep the other filters")
    ] = None,
) -> Response:
    """Violation episodes by opening time: those seen in ``[since, until)`` (opened before
    `until`, last seen at or after `since`), of a zone, a party, a verdict and a state.

    An incident opens at a unit's first `inside` violation of a zone, is updated by its later
    reports (deepest point, last seen; `possible` ones keep it open, as tracks do) and closes
    at the report that shows the unit out again; a report without a unit is an incident of its
    own, opened and closed at once. An incident whose reports were retracted or corrected away
    is closed with that reason; one that a zone change no longer supports (the zone shrank away
    from its reports, or now authorises the party) with `zone-changed`. Keyset pages: follow
    `next`; `numberMatched` counts them all.
    """
    where = IncidentFilter(
        since=times.since,
        until=times.until,
        zone=zone,
        party=None if party is None else service.party_code(party),
        verdict=verdict,
        state=state,
    )
    incidents, cursor = service.store.list_incidents(where, limit=limit, after=after)
    matched = service.store.count_incidents(where)
    next_params: dict[str, str | int] | None = None
    if cursor is not None:
        next_params = {"after": cursor, "limit": limit}
    return ORJSONResponse(
        {
            "incidents": [incident_to_json(i) for i in incidents],
            "numberMatched": matched,
            "numberReturned": len(incidents),
            "timeStamp": datetime.now(UTC).isoformat(),
            "links": page_links(request, next_params, JSON_TYPE),
        }
    )


@router.get(
    "/incidents/{incident_id}",
    operation_id="getIncident",
    response_model=IncidentDetail,
    response_class=ORJSONResponse,
    responses=problems(400, 401, 403, 404),
)
def get_incident(
    service: ServiceDep,
    _: ViewerKey,
    incident_id: Annotated[int, Path(ge=1, le=MAX_INCIDENT_ID, description="the incident's id")],
) -> Response:
    """One incident, with its reports (their latest versions, as Point features; a report
    retracted since is shown retracted) and its timeline: its events, oldest first."""
    incident = service.store.get_incident(incident_id)
    timeline = service.store.incident_events(incident_id)
    reports = []
    for latest in service.store.latest_reports(incident.report_ids):  # one query for all
        feature = report_to_feature(latest.report)
        feature["properties"]["version"] = latest.version
        feature["properties"]["retracted"] = latest.retracted
        reports.append(feature)
    body = incident_to_json(incident)
    body["reports"] = {"type": "FeatureCollection", "features": reports}
    body["timeline"] = [
        {"id": e.id, "type": e.type, "timestamp": _iso(e.created_at), "data": e.data}
        for e in timeline
    ]
    return ORJSONResponse(body)
