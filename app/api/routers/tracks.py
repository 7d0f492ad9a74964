"""`GET /tracks/{party}/{unit}`: a unit's reports, and when it entered and left each zone."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.responses import Response

from app.api.auth import ViewerKey
from app.api.deps import ServiceDep
from app.api.models import TrackOut, problems
from app.api.responses import ORJSONResponse
from app.geojson import report_to_feature

router = APIRouter(tags=["tracks"])


@router.get(
    "/tracks/{party}/{unit}",
    operation_id="getTrack",
    response_model=TrackOut,
    response_class=ORJSONResponse,
    responses=problems(401, 403, 404),
)
def get_track(
    party: Annotated[str, Path(description="the party's code", examples=["AZE"])],
    unit: Annotated[str, Path(description="the unit's track key", examples=["parukh-group"])],
    service: ServiceDep,
    _: ViewerKey,
) -> Response:
    """A unit's reports in time order, its `entered`/`exited` events per zone, and per zone the
    first entry, last exit, dwell time, whether it withdrew and whether it is back where it was
    before it entered. 404 when the unit has no reports.
    """
    track = service.track(party, unit)
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
