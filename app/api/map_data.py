"""`GET /map/data/…`: what the map draws for one view (bbox, time window, zoom), fetched by
`app/static/truce/map.js` as the view and the slider move.

- `cells`: reports counted per grid cell (low zoom), violations inside and possible apart, by
  party;
- `reports`: the reports in view with their verdicts, findings, tracks and events (the columnar
  payload the page used to carry inline), at most `limit`, saying when there were more;
- `tracks`: every unit's path over the window, simplified to the zoom;
- `events`: entries into and exits from zones;
- `reports/{id}`: one report's notes, fetched when its popup opens (`reports` leaves notes out:
  they are free text of any length, and a view's answer stays small).

Answers are compact columnar JSON (orjson; gzip from the app's middleware) with an `ETag` of
the season they were cut from and the query: a client that sends it back (`If-None-Match`)
gets a 304 until something is written. The season is judged once, then advanced by the reports
written since (`app.mapview.seasons`), not judged per request; an answer cut from the season of
before a zone or party change, while the new one is judged, says so (`X-Truce-Season: stale`).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Annotated, Any, cast

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response

from app.api.deps import ServiceDep, SinceUntilDep, parse_bbox
from app.api.models import problems
from app.errors import InvalidParameter
from app.mapview.season import BBox
from app.mapview.seasons import Season, SeasonCache
from app.mapview.seconds import to_seconds
from app.mapview.sources import season_from_service
from app.scenario import GEODATA

router = APIRouter(prefix="/map/data", tags=["map"])

#: The most reports one `reports` answer carries.
MAX_LIMIT = 20_000
DEFAULT_LIMIT = 3_000


class AnswerCache:
    """The last answers by key (an ETag): a map reloaded, or several clients on the same view,
    cost a lookup, not a cut of the season again (and keep the workers' time for `/check`)."""

    def __init__(self, size: int = 256) -> None:
        """Keep `size` answers at most."""
        self._size = size
        self._answers: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, make: Callable[[], bytes]) -> bytes:
        """The answer kept under `key`, else `make()` (kept)."""
        with self._lock:
            found = self._answers.get(key)
            if found is not None:
                self._answers.move_to_end(key)
                return found
        made = make()
        with self._lock:
            self._answers[key] = made
            while len(self._answers) > self._size:
                self._answers.popitem(last=False)
        return made


def answers_of(request: Request) -> AnswerCache:
    """The app's cache of map answers (`app.state.map_answers`, made on first use)."""
    state = request.app.state
    cache = getattr(state, "map_answers", None)
    if cache is None:
        cache = state.map_answers = AnswerCache()
    return cast(AnswerCache, cache)


async def get_seasons(request: Request) -> SeasonCache:
    """The app's season cache (`app.state.seasons`, made on first use)."""
    state = request.app.state
    cache = getattr(state, "seasons", None)
    if cache is None:
        cache = state.seasons = SeasonCache()
    return cast(SeasonCache, cache)


async def map_bbox_query(
    bbox: Annotated[
        str | None,
        Query(
            description="the view: west,south,east,north (WGS84 degrees, west <= east)",
            examples=["46.3,39.6,47.2,40.4"],
        ),
    ] = None,
) -> BBox | None:
    """The view's `bbox`; the map's views never cross 180°, so west > east is refused."""
    if bbox is None:
        return None
    box = parse_bbox(bbox)
    if box[0] > box[2]:
        raise InvalidParameter("west must not be greater than east", field="bbox")
    return box


@dataclass(frozen=True, slots=True)
class View:
    """One request's view: season filter (party, zone), bbox and time window in seconds."""

    season: Season
    bbox: BBox | None
    since: int | None
    until: int | None


async def view_query(
    request: Request,
    service: ServiceDep,
    times: SinceUntilDep,
    bbox: Annotated[BBox | None, Depends(map_bbox_query)],
    seasons: Annotated[SeasonCache, Depends(get_seasons)],
    party: Annotated[str | None, Query(description="one party's reports", examples=["AZE"])] = None,
    zone: Annotated[
        str | None, Query(description="one zone's id: its findings and the units that met it")
    ] = None,
) -> View:
    """The season of (party, zone) and the view's bbox and window."""
    if zone is not None:
        service.get_zone(zone)  # UnknownZone (404)
    settings = getattr(request.app.state, "settings", None)
    geodata = cast(FilePath, getattr(settings, "geodata_dir", None) or GEODATA)
    season = season_from_service(service, seasons, party=party, zone=zone, geodata=geodata)
    return View(
        season,
        bbox,
        None if times.since is None else to_seconds(times.since),
        # until is exclusive to the microsecond; the season's times are whole seconds.
        None if times.until is None else -(-int(times.until.timestamp() * 1e6) // 1_000_000),
    )


ViewDep = Annotated[View, Depends(view_query)]
ZoomQuery = Annotated[
    float, Query(ge=0, le=24, description="the map's zoom level (cells and simplification)")
]

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/json": {"schema": {"type": "object"}}},
        "description": "columnar JSON: one array per field (see docs/api.md, the map's data)",
    },
    304: {"description": "unchanged since the ETag sent in If-None-Match"},
    **problems(400, 401, 403, 404, 422, 503),
}


def _answer(request: Request, view: View, make: Callable[[], dict[str, Any]]) -> Response:
    """`make()` as compact JSON with an ETag of (season, query); 304 when the client has it."""
    query = "&".join(sorted(f"{k}={v}" for k, v in request.query_params.multi_items()))
    digest = hashlib.blake2b(query.encode(), digest_size=6).hexdigest()
    etag = f'"{view.season.token}-{digest}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if view.season.stale:
        # The season of before a zone or party change, while the new one is judged.
        headers["X-Truce-Season"] = "stale"
    if etag in (request.headers.get("if-none-match") or "").replace("W/", "").split(", "):
        return Response(status_code=304, headers=headers)
    body = answers_of(request).get(
        request.url.path + etag, lambda: orjson.dumps(make(), option=orjson.OPT_SERIALIZE_NUMPY)
    )
    return Response(body, media_type="application/json", headers=headers)


@router.get("/cells", operation_id="getMapCells", response_class=Response, responses=_RESPONSES)
def get_map_cells(request: Request, view: ViewDep, zoom: ZoomQuery) -> Response:
    """Reports in view and window counted per grid cell (48 screen pixels at `zoom`): count,
    violations inside and possible apart, warnings, and per party; each cell placed at the mean
    of its reports. With the window's counts over the whole map (`counts`) and in view."""
    return _answer(
        request, view, lambda: view.season.cells(view.bbox, view.since, view.until, zoom)
    )


@router.get("/reports", operation_id="getMapReports", response_class=Response, responses=_RESPONSES)
def get_map_reports(
    request: Request,
    view: ViewDep,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"at most this many reports (<= {MAX_LIMIT})")
    ] = DEFAULT_LIMIT,
) -> Response:
    """Reports in view and window (the first `limit` in time order) with their verdict
    (`status`, `certain`, `possible`), findings (zone, verdict, depth, u), tracks and
    entry/exit events, as columns; `matched` and `truncated` say how many the view held."""
    return _answer(
        request, view, lambda: view.season.reports(view.bbox, view.since, view.until, limit)
    )


@router.get("/tracks", operation_id="getMapTracks", response_class=Response, responses=_RESPONSES)
def get_map_tracks(request: Request, view: ViewDep, zoom: ZoomQuery) -> Response:
    """Each unit with a report in view: its path over the window, simplified to 1.5 screen
    pixels at `zoom` (Douglas-Peucker), as offsets into lon/lat columns."""
    return _answer(
        request, view, lambda: view.season.tracks(view.bbox, view.since, view.until, zoom)
    )


@router.get("/events", operation_id="getMapEvents", response_class=Response, responses=_RESPONSES)
def get_map_events(request: Request, view: ViewDep) -> Response:
    """Entries into and exits from zones in view and window, in time order."""
    return _answer(request, view, lambda: view.season.events(view.bbox, view.since, view.until))


@router.get(
    "/reports/{report_id:path}",
    operation_id="getMapReport",
    response_class=Response,
    responses={
        200: {
            "content": {"application/json": {"schema": {"type": "object"}}},
            "description": "the report's id, notes, source, version and whether it was retracted",
        },
        **problems(401, 403, 404),
    },
)
def get_map_report(
    report_id: Annotated[str, Path(description="the report's id, percent-encoded")],
    service: ServiceDep,
) -> Response:
    """One report's notes and source as its latest version has them, for its popup (the
    reports answer leaves notes out). The page sets them as text, never as HTML."""
    version = service.get_report(report_id)
    report = version.report
    body = {
        "id": report.id,
        "notes": report.notes,
        "source": report.source,
        "version": version.version,
        "retracted": version.retracted,
    }
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)
