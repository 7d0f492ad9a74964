"""`GET /map`: the interactive map as one HTML page, and its assets under `/static`.

The router only fetches, through the app's `Service` (`app.state.service`, as every router): its
current zone index (rebuilt only when the zones change) and the stored reports of the range, with
parties and reference layers from `geodata/`; `app.mapview` does the rest. Wire it into an app
with::

    from app.api import map as map_api

    app.include_router(map_api.router, dependencies=[Depends(require_role(Role.VIEWER))])
    map_api.mount_static(app)
    app.state.service = Service(store)

`get_tiles` reads `app.state.settings.tiles` (None, "", "none" or "offline": the offline outline
basemap).

The page is served with a Content-Security-Policy that lets the browser load nothing from
another host (only the tile server, when one is configured), so a map that works in the test
browser cannot quietly depend on the internet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import NoMatchFound

from app import assets
from app.api import map_data
from app.api.deps import ServiceDep, SinceUntilDep, parse_instant
from app.api.map_data import answers_of, get_seasons
from app.api.models import problems
from app.mapview import (
    MAX_MAP_REPORTS,
    MapQuery,
    is_offline,
    map_html,
)
from app.mapview.seasons import Season, SeasonCache
from app.mapview.sources import season_from_service
from app.scenario import GEODATA
from app.service import Service

__all__ = [
    "MAX_MAP_REPORTS",
    "TilesDep",
    "content_security_policy",
    "get_tiles",
    "mount_static",
    "router",
]

router = APIRouter(tags=["map"])
router.include_router(map_data.router)


async def get_tiles(request: Request) -> str | None:
    """The tile source from `app.state.settings.tiles` (None when there are no settings)."""
    return cast(str | None, getattr(getattr(request.app.state, "settings", None), "tiles", None))


async def get_geodata(request: Request) -> Path:
    """Where parties and reference layers come from: `settings.geodata_dir`, else `geodata/`."""
    settings = getattr(request.app.state, "settings", None)
    return cast(Path, getattr(settings, "geodata_dir", None) or GEODATA)


TilesDep = Annotated[str | None, Depends(get_tiles)]
GeodataDep = Annotated[Path, Depends(get_geodata)]


def mount_static(app: FastAPI, path: str = "/static") -> None:
    """Serve the map's assets (`app/static`: our own and the npm vendor copies) at `path`."""
    app.mount(path, StaticFiles(directory=assets.STATIC_DIR, check_dir=False), name="static")


def content_security_policy(tiles: str | None) -> str:
    """Only this origin (and inline code, as folium writes it); images also from the tile
    server when one is configured. No eval: `make assets` precompiles leaflet-measure's
    templates (see `app.assets.precompile_templates`)."""
    images = "'self' data:" if is_offline(tiles) else "'self' data: https: http:"
    return (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; "
        f"style-src 'self' 'unsafe-inline'; img-src {images}; connect-src 'self'; "
        "font-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'self'"
    )


def available(service: Service, season: Season) -> dict[str, Any]:
    """What a filter can choose from (told when one matches nothing): the parties (registered,
    else the scenario's, and any with reports), the zones and the first and last report times."""
    _, first, last = service.store.reports_extent()
    return {
        "parties": [p.code for p in season.model.parties],
        "zones": sorted({z.id for z in service.index().zones}),
        "first": None if first is None else int(first.timestamp()),
        "last": None if last is None else int(last.timestamp()),
    }


def live_events(request: Request, service: Service, root: str) -> dict[str, Any] | None:
    """Where map.js listens for new incidents: the app's `GET /events` (None in an app without
    it), from after the log's last event (those before are on the map already)."""
    try:
        path = request.app.url_path_for("stream_events")
    except NoMatchFound:
        return None
    return {"url": root + str(path), "after": service.store.last_event_id()}


@router.get(
    "/map",
    operation_id="getMap",
    response_class=HTMLResponse,
    responses={
        200: {"content": {"text/html": {}}, "description": "the map page"},
        **problems(400, 401, 403, 404, 503),
    },
)
def get_map(
    request: Request,
    service: ServiceDep,
    tiles: TilesDep,
    geodata: GeodataDep,
    times: SinceUntilDep,
    seasons: Annotated[SeasonCache, Depends(get_seasons)],
    at: Annotated[
        str | None,
        Query(
            description="RFC 3339: the moment the map opens on (zones in force then, reports "
            "up to then); default the end of the range",
            examples=["2022-03-25T12:00:00+04:00"],
        ),
    ] = None,
    zone: Annotated[
        str | None,
        Query(description="one zone's id: its versions, findings and the units that met it"),
    ] = None,
    party: Annotated[str | None, Query(description="one party's reports", examples=["AZE"])] = None,
) -> HTMLResponse:
    """The interactive map: zones by kind in force at the slider's time, reference layers,
    reports by party, kind and source, violations and warnings, uncertainty circles, tracks,
    a time slider, a legend and a layer control. Works with no internet: every script and style
    sheet comes from `/static`.
    """
    opening = None if at is None or not at.strip() else parse_instant(at, "at")
    missing = assets.missing_assets()
    if missing:
        return HTMLResponse(
            "<!DOCTYPE html><title>Truce map</title><p>The map's assets are not installed on "
            "this server: run <code>make assets</code>.</p>",
            status_code=503,
        )
    if zone is not None:
        service.get_zone(zone)  # UnknownZone (404) for a zone that was never stored
    season = season_from_service(service, seasons, party=party, zone=zone, geodata=geodata)
    query = MapQuery(at=opening, since=times.since, until=times.until, zone=zone, party=party)
    root = request.scope.get("root_path", "").rstrip("/")
    events = live_events(request, service, root)
    # The same page for the same season, query, mount and event log position: rendered once
    # (folium takes ~0.1 s). The log's last id is in the key so that a page never tells its
    # stream to start before events it would then replay.
    after = None if events is None else events["after"]
    key = f"page:{season.token}:{root}:{tiles}:{after}:{request.url.query}"

    def render() -> bytes:
        # The reports, findings and tracks are fetched by map.js for each view from /map/data.
        source = {
            "url": root + "/map/data",
            "party": party,
            "zone": zone,
            "available": available(service, season),
            "events": events,
        }
        html = map_html(
            season.page_model(query),
            tiles=tiles,
            static_url=root + "/static",
            title="Truce map",
            source=source,
        )
        return html.encode("utf-8")

    page = answers_of(request).get(key, render)
    return HTMLResponse(
        page,
        headers={
            "Content-Security-Policy": content_security_policy(tiles),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
