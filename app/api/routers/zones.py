"""Zones: list in force at a time, create, read, new version, retire, history.

Nothing is overwritten: `PUT` stores a new version, `DELETE` stores a version that ends at the
retirement time, and `GET /zones/{id}/history` lists them all.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from app.api.auth import AdminKey, ViewerKey
from app.api.body import (
    check_feature_count,
    load_document,
    read_json_body,
    run_sized,
    with_exact_ids,
)
from app.api.deps import (
    BBoxDep,
    ListLimitDep,
    PageDep,
    ServiceDep,
    SettingsDep,
    ZoneTimeDep,
    href,
    page_links,
    parse_instant,
)
from app.api.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from app.api.inputs import ZONE_BODY, ZONES_BODY
from app.api.models import Feature, FeatureCollection, Page, ZoneCollection, json_body, problems
from app.api.parsing import parse_zone_version, parse_zones
from app.api.responses import GEOJSON, GeoJSONResponse, dumps
from app.domain import Zone, ZoneKind
from app.geojson import zone_to_feature
from app.service import Service
from app.settings import Settings

router = APIRouter(tags=["zones"])

ZoneId = Annotated[str, Path(description="the zone's id", examples=["nk-pk-zone"])]

_ZONE_EXAMPLE: dict[str, Any] = {
    "type": "Feature",
    "id": "buffer-1",
    "geometry": {
        "type": "Polygon",
        "coordinates": [[[46.7, 39.9], [46.8, 39.9], [46.8, 40.0], [46.7, 40.0], [46.7, 39.9]]],
    },
    "properties": {
        "name": "Buffer 1",
        "kind": "buffer",
        "authorized_parties": ["RU-PK"],
        "valid_from": "2022-04-01T00:00:00+04:00",
    },
}


def _collection(zones: list[Zone], **members: Any) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [zone_to_feature(z) for z in zones],
        **members,
    }


@router.get(
    "/zones",
    operation_id="listZones",
    response_model=Page,
    response_class=GeoJSONResponse,
    responses=problems(400, 401, 403),
)
def list_zones(
    request: Request,
    service: ServiceDep,
    _: ViewerKey,
    at: ZoneTimeDep,
    bbox: BBoxDep,
    page: PageDep,
    kind: Annotated[ZoneKind | None, Query(description="only zones of this kind")] = None,
) -> Response:
    """Zones in force at `at` (default now), or every version of every zone with `at=all`.

    `bbox` keeps zones whose envelope meets the box; `kind` keeps one kind. In force means
    `valid_from <= at < valid_to`, where a later version cuts off an earlier one.
    """
    if at == "all":
        zones = service.list_zones(None, bbox, kind, all_versions=True)
    else:
        zones = service.list_zones(at, bbox, kind)
    shown = zones[page.offset : page.offset + page.limit]
    more = page.offset + page.limit < len(zones)
    next_params = {"offset": page.offset + page.limit, "limit": page.limit} if more else None
    return GeoJSONResponse(
        _collection(
            shown,
            numberMatched=len(zones),
            numberReturned=len(shown),
            timeStamp=datetime.now(UTC).isoformat(),
            links=page_links(request, next_params, GEOJSON),
        )
    )


@router.post(
    "/zones",
    operation_id="createZones",
    status_code=201,
    response_model=ZoneCollection,
    response_class=GeoJSONResponse,
    responses=problems(400, 401, 403, 409, 413, 422, 503),
    openapi_extra={
        **json_body("a zone Feature or a FeatureCollection of zones", _ZONE_EXAMPLE, ZONES_BODY),
        "parameters": [IDEMPOTENCY_PARAMETER],
    },
)
async def create_zones(
    request: Request, service: ServiceDep, settings: SettingsDep, key: AdminKey
) -> Response:
    """Create zones from a Feature or a FeatureCollection, each as version 1; all or none.

    Properties: `name`, `kind`, `valid_from` (required); `authorized_parties`, `valid_to`,
    `warning_distance_m` (default 1000), `boundary_uncertainty_m` (how far the drawn line may be
    from the agreed one, default 0; added to each report's uncertainty in the verdict),
    `agreement`, `source`. Rings in either winding order
    are taken (and written back counter-clockwise); unambiguous repairs are made and listed in
    `warnings`; anything ambiguous (a self-intersecting ring) is refused. An id already stored
    is a conflict (409): send a new version with `PUT /zones/{id}`. With an `Idempotency-Key`
    header, a retry is answered as the first request was (rather than 409).
    """
    return await idempotent(
        request, key.actor, lambda: _create_zones(request, service, settings, key.actor)
    )


async def _create_zones(
    request: Request, service: Service, settings: Settings, actor: str
) -> Response:
    body = await read_json_body(request)

    def work() -> tuple[bytes, list[Zone]]:
        obj = load_document(body)
        check_feature_count(obj, settings.max_features)
        zones, notes = with_exact_ids(body, obj, parse_zones)
        created = service.add_zones(zones, actor)
        return dumps(_collection(created, warnings=notes)), created

    content, created = await run_sized(len(body), work)
    # The id is percent-encoded: ids in any script make a valid (ASCII) header.
    headers = {"Location": href(request, f"/zones/{created[0].id}")} if len(created) == 1 else None
    return GeoJSONResponse(content, status_code=201, headers=headers)


@router.get(
    "/zones/{zone_id}",
    operation_id="getZone",
    response_model=Feature,
    response_class=GeoJSONResponse,
    responses=problems(401, 403, 404),
)
def get_zone(zone_id: ZoneId, service: ServiceDep, _: ViewerKey) -> Response:
    """The latest version of a zone, as filed (retired zones included)."""
    return GeoJSONResponse(zone_to_feature(service.get_zone(zone_id)))


@router.put(
    "/zones/{zone_id}",
    operation_id="createZoneVersion",
    response_model=ZoneCollection,
    response_class=GeoJSONResponse,
    responses=problems(400, 401, 403, 404, 413, 422, 503),
    openapi_extra=json_body("the zone's new version, a Feature", _ZONE_EXAMPLE, ZONE_BODY),
)
async def put_zone(
    zone_id: ZoneId, request: Request, service: ServiceDep, key: AdminKey
) -> Response:
    """Store a new version of a zone from a Feature; the earlier versions stay as they were.

    The new version applies from its `valid_from` on and cuts off earlier versions from then.
    The Feature's id may be left out; if given it must be the path's. Answers the version stored,
    with its number, in a one-feature collection with any repair `warnings`.
    """
    body = await read_json_body(request)

    def work() -> bytes:
        zone, notes = with_exact_ids(
            body, load_document(body), lambda obj: parse_zone_version(obj, zone_id)
        )
        stored = service.new_zone_version(zone, key.actor)
        return dumps(_collection([stored], warnings=notes))

    return GeoJSONResponse(await run_sized(len(body), work))


@router.delete(
    "/zones/{zone_id}",
    operation_id="retireZone",
    response_model=Feature,
    response_class=GeoJSONResponse,
    responses=problems(400, 401, 403, 404, 409, 503),
)
def retire_zone(
    zone_id: ZoneId,
    service: ServiceDep,
    key: AdminKey,
    at: Annotated[
        str | None, Query(description="RFC 3339 time the zone ends (default now)")
    ] = None,
) -> Response:
    """Retire a zone from `at` (default now): a new version that ends then. History is kept.

    409 when the zone already ends by then or starts after `at`.
    """
    when = datetime.now(UTC) if at is None else parse_instant(at, "at")
    return GeoJSONResponse(zone_to_feature(service.retire_zone(zone_id, when, key.actor)))


@router.get(
    "/zones/{zone_id}/history",
    operation_id="getZoneHistory",
    response_model=FeatureCollection,
    response_class=GeoJSONResponse,
    responses=problems(400, 401, 403, 404),
)
def zone_history(
    zone_id: ZoneId, service: ServiceDep, _: ViewerKey, limit: ListLimitDep
) -> Response:
    """Every version of a zone, oldest first, as filed (each with its `version`); `limit`
    keeps the first."""
    versions = service.zone_history(zone_id)
    shown = versions[:limit]
    return GeoJSONResponse(
        _collection(shown, numberMatched=len(versions), numberReturned=len(shown))
    )
