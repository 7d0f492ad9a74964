"""Tracks: the units and their state per zone, and one unit's reports and zone events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from app.api.auth import ViewerKey
from app.api.deps import (
    BBoxDep,
    PageDep,
    ServiceDep,
    SettingsDep,
    TimeRange,
    TimeRangeDep,
    page_links,
)
from app.api.limits import heavy_turn
from app.api.models import TrackOut, TrackUnits, problems
from app.api.responses import ORJSONResponse
from app.geojson import report_to_feature
from app.service import Service
from app.settings import Settings
from app.store import BBox

__all__ = ["router"]

router = APIRouter(tags=["tracks"])

PartyPath = Annotated[str, Path(description="the party's code", examples=["AZE"])]
ZoneFilter = Annotated[
    str | None, Query(description="only units that were ever inside this zone (its id)")
]


def _units(
    request: Request,
    service: Service,
    settings: Settings,
    *,
    party: str | None,
    zone: str | None,
    bbox: BBox | None,
    times: TimeRange,
    limit: int,
    offset: int,
) -> Response:
    units = service.tracks(
        party=party,
        zone=zone,
        bbox=bbox,
        since=times.since,
        until=times.until,
        stale_after=settings.stale_after,
    )
    shown = units[offset : offset + limit]
    more = offset + limit < len(units)
    next_params = {"offset": offset + limit, "limit": limit} if more else None
    return ORJSONResponse(
        {
            "units": shown,
            "numberMatched": len(units),
            "numberReturned": len(shown),
            "timeStamp": datetime.now(UTC).isoformat(),
            "links": page_links(request, next_params, "application/json"),
        }
    )


@router.get(
    "/tracks",
    operation_id="listTracks",
    response_model=TrackUnits,
    response_class=ORJSONResponse,
    responses=problems(400, 401, 403, 503),
    dependencies=[Depends(heavy_turn)],
)
def list_tracks(
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    _: ViewerKey,
    times: TimeRangeDep,
    bbox: BBoxDep,
    page: PageDep,
    zone: ZoneFilter = None,
    party: Annotated[str | None, Query(description="only this party's units")] = None,
) -> Response:
    """Every unit with reports, by party and unit: its latest report and position, and its
    state in each zone it was ever inside: `in`, `out` (withdrawn) or `stale` (in, and not
    reported for `TRUCE_STALE_AFTER`, default 24 hours). `bbox` and the time range apply to the
    unit's latest report.
    """
    return _units(
        request,
        service,
        settings,
        party=party,
        zone=zone,
        bbox=bbox,
        times=times,
        limit=page.limit,
        offset=page.offset,
    )


@router.get(
    "/tracks/{party}",
    operation_id="listPartyTracks",
    response_model=TrackUnits,
    response_class=ORJSONResponse,
    responses=problems(400, 401, 403, 503),
    dependencies=[Depends(heavy_turn)],
)
def list_party_tracks(
    request: Request,
    party: PartyPath,
    service: ServiceDep,
    settings: SettingsDep,
    _: ViewerKey,
    times: TimeRangeDep,
    bbox: BBoxDep,
    page: PageDep,
    zone: ZoneFilter = None,
) -> Response:
    """A party's units, as in `GET /tracks` (an empty list when it has none)."""
    return _units(
        request,
        service,
        settings,
        party=party,
        zone=zone,
        bbox=bbox,
        times=times,
        limit=page.limit,
        offset=page.offset,
    )


@router.get(
    "/tracks/{party}/{unit}",
    operation_id="getTrack",
    response_model=TrackOut,
    response_class=ORJSONResponse,
    responses=problems(401, 403, 404),
)
def get_track(
    party: PartyPath,
    unit: Annotated[str, Path(description="the unit's track key", examples=["parukh-group"])],
    service: ServiceDep,
    settings: SettingsDep,
    _: ViewerKey,
) -> Response:
    """A unit's reports in time order; its events per zone: `entered` and `exited` (with the
    dwell), `crossed` (the straight segment between two reports passes through a zone neither
    report is in) and `stale`; and per zone its state, first entry, last exit, dwell time,
    whether it withdrew and whether it is back where it was before it entered. A `possible`
    finding keeps the unit's state, so jitter along a boundary gives no events. 404 when the
    unit has no reports.
    """
    track = service.track(party, unit, stale_after=settings.stale_after)
    return ORJSONResponse(
        {
            "reports": {
                "type": "FeatureCollection",
                "features": [report_to_feature(r) for r in track.reports],
            },
            "events": track.events,
            "summary": track.summary,
        }
    )
