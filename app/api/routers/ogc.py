"""OGC API – Features, Parts 1 (Core, GeoJSON, OpenAPI 3.0) and 3 (Filtering, CQL2 text).

`/conformance`, `/collections`, `/collections/{collectionId}`, `…/items`, `…/items/{featureId}`
and `…/queryables`, over the collections of `app.ogc.collections` (the landing page `/` is in
`app.api.routers.home`). The routes only read parameters and write JSON: filters are parsed
by `app.cql`, paging and filtering happen in the collections (the store, for reports).

Links start with `TRUCE_PUBLIC_URL` when it is set (else they are relative), never with the
request's `Host`. Every route takes a viewer key (or none with public read), and refuses
unknown query parameters with a 400 whose type is the OGC requirement
(`/req/core/query-param-unknown`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, cast
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from starlette.responses import Response

from app.api.auth import ViewerKey
from app.api.deps import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    href,
    parse_bbox,
    parse_interval,
)
from app.api.models import CollectionOut, Collections, Conformance, Feature, Page, problems
from app.api.responses import GEOJSON, GeoJSONResponse, ORJSONResponse
from app.cql import GEOMETRY, Queryable, parse_filter
from app.errors import InvalidParameter
from app.ogc.collections import Collection, ItemsQuery, finite_bbox, make_collections
from app.predicate import PropertyType, all_of, intersects_bbox
from app.scenario import GEODATA
from app.store import NotFound

__all__ = [
    "CONFORMANCE",
    "CRS84",
    "OPENAPI_JSON",
    "collection_document",
    "get_collections",
    "router",
]


async def json_only(
    f: Annotated[
        Literal["json", "geojson"] | None,
        Query(description="json (the only encoding; ArcGIS and other clients send f=json)"),
    ] = None,
) -> None:
    """The `f` parameter that OGC API clients may send: JSON is the only encoding here."""


router = APIRouter(tags=["ogc"], dependencies=[Depends(json_only)])

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
SCHEMA_JSON = "application/schema+json"
OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.0"
_TRS = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"

#: Everything QGIS needs to send filters to the server (it wants all four of filter,
#: features-filter, basic-cql2 and cql2-text), and what else is taken. Not oas30: the API
#: definition is the OpenAPI 3.1 document that FastAPI writes (served at /openapi.json and
#: linked as `service-desc` with the 3.0 media type that QGIS and GDAL look for).
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
]

_CRS84_NAMES = {CRS84, CRS84.replace("http://", "https://"), "CRS84", "OGC:CRS84"}


async def get_collections(request: Request) -> dict[str, Collection]:
    """The app's collections, made on first use (they read the reference layers once)."""
    made = getattr(request.app.state, "ogc_collections", None)
    if made is None:
        settings = getattr(request.app.state, "settings", None)
        geodata = cast(Path, getattr(settings, "geodata_dir", None) or GEODATA)
        made = make_collections(request.app.state.service, geodata)
        request.app.state.ogc_collections = made
    return cast(dict[str, Collection], made)


CollectionsDep = Annotated[dict[str, Collection], Depends(get_collections)]

CollectionId = Annotated[
    str,
    PathParam(
        alias="collectionId", description="a collection's id (see /collections)", examples=["zones"]
    ),
]


async def get_collection(collection_id: CollectionId, collections: CollectionsDep) -> Collection:
    """The collection the path names; 404 naming the ones there are."""
    found = collections.get(collection_id)
    if found is None:
        raise NotFound(
            f"no collection {collection_id!r}; the collections are: {', '.join(collections)}",
            field="collectionId",
        )
    return found


CollectionDep = Annotated[Collection, Depends(get_collection)]


def _link(
    request: Request, path: str, rel: str, media: str, title: str | None = None
) -> dict[str, str]:
    link = {"href": href(request, path), "rel": rel, "type": media}
    if title:
        link["title"] = title
    return link


def collection_document(request: Request, collection: Collection) -> dict[str, Any]:
    """A collection's metadata: id, title, extent, CRS, links to its items and queryables."""
    base = f"/collections/{collection.id}"
    extent = collection.extent()
    temporal = [
        [
            None if extent.start is None else extent.start.astimezone(UTC).isoformat(),
            None if extent.end is None else extent.end.astimezone(UTC).isoformat(),
        ]
    ]
    spatial = finite_bbox(extent.bbox)
    return {
        "id": collection.id,
        "title": collection.title,
        "description": collection.description,
        "itemType": "feature",
        "crs": [CRS84],
        "storageCrs": CRS84,
        "extent": {
            "spatial": {"bbox": [spatial or [-180.0, -90.0, 180.0, 90.0]], "crs": CRS84},
            "temporal": {"interval": temporal, "trs": _TRS},
        },
        "links": [
            _link(request, base, "self", "application/json", collection.title),
            _link(request, base + "/items", "items", GEOJSON, f"{collection.title} as GeoJSON"),
            _link(
                request,
                base + "/queryables",
                "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                SCHEMA_JSON,
                "the properties a filter may name",
            ),
            # The same, under the draft's name that GDAL's OAPIF driver looks for.
            _link(
                request,
                base + "/queryables",
                "queryables",
                SCHEMA_JSON,
                "the properties a filter may name",
            ),
        ],
    }


@router.get(
    "/conformance",
    operation_id="getConformance",
    response_model=Conformance,
    response_class=ORJSONResponse,
    responses=problems(400, 401, 403),
)
def conformance(_: ViewerKey) -> Response:
    """The OGC conformance classes this API implements: Features Part 1 (core, GeoJSON,
    OpenAPI 3.0) and Part 3 (filter, features-filter, queryables) with CQL2 text (basic CQL2,
    advanced comparisons, basic spatial functions with any geometry)."""
    return ORJSONResponse({"conformsTo": CONFORMANCE})


@router.get(
    "/collections",
    operation_id="listCollections",
    response_model=Collections,
    response_class=ORJSONResponse,
    responses=problems(400, 401, 403),
)
def list_collections(request: Request, collections: CollectionsDep, _: ViewerKey) -> Response:
    """Every collection: zones (by version), reports, incursions, and the reference layers
    (observation posts, places, the line of contact), each with its extent and links."""
    return ORJSONResponse(
        {
            "links": [
                _link(request, "/collections", "self", "application/json", "the collections")
            ],
            "collections": [collection_document(request, c) for c in collections.values()],
        }
    )


@router.get(
    "/collections/{collectionId}",
    operation_id="getCollection",
    response_model=CollectionOut,
    response_class=ORJSONResponse,
    responses=problems(400, 401, 403, 404),
)
def get_collection_route(request: Request, collection: CollectionDep, _: ViewerKey) -> Response:
    """One collection: its title, description, spatial and temporal extent, CRS and links."""
    return ORJSONResponse(collection_document(request, collection))


def _schema_of(queryable: Queryable) -> dict[str, Any]:
    schema: dict[str, Any] = {"title": queryable.description}
    kind = queryable.type
    if kind is PropertyType.DATETIME:
        schema.update({"type": "string", "format": "date-time"})
    else:
        schema["type"] = kind.value
    if queryable.enum is not None:
        schema["enum"] = list(queryable.enum)
    return schema


_GEOMETRY_FORMATS = {
    "Point": "geometry-point",
    "LineString": "geometry-linestring",
    "Polygon": "geometry-polygon",
    "MultiPolygon": "geometry-multipolygon",
}


@router.get(
    "/collections/{collectionId}/queryables",
    operation_id="getQueryables",
    response_class=ORJSONResponse,
    responses={
        200: {"content": {SCHEMA_JSON: {"schema": {"type": "object"}}}, "description": "schema"},
        **problems(400, 401, 403, 404),
    },
)
def queryables(request: Request, collection: CollectionDep, _: ViewerKey) -> Response:
    """The properties a `filter` may name, as a JSON Schema (2020-12): their types and, for
    closed sets, their values; `geometry` for `S_INTERSECTS`."""
    properties = {name: _schema_of(q) for name, q in collection.queryables.items()}
    properties[GEOMETRY] = {
        "title": "the feature's geometry (WGS84 lon/lat), for S_INTERSECTS",
        "format": _GEOMETRY_FORMATS.get(collection.geometry_type, "geometry-any"),
    }
    path = f"/collections/{collection.id}/queryables"
    return ORJSONResponse(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": href(request, path),
            "type": "object",
            "title": collection.title,
            "properties": properties,
            "additionalProperties": False,
            # The draft's list of queryables, which GDAL's OAPIF driver reads to decide which
            # parts of a filter it sends to the server (JSON Schema ignores the member).
            "queryables": [
                {"id": name, "type": schema.get("format", schema.get("type"))}
                for name, schema in properties.items()
                if name != GEOMETRY
            ],
        },
        media_type=_schema_media_type(request),
    )


def _schema_media_type(request: Request) -> str:
    """`application/schema+json`, unless the client asks for JSON without naming it (GDAL's
    OAPIF driver accepts only the media types it asked for)."""
    accept = request.headers.get("accept", "").lower()
    if "application/json" in accept and SCHEMA_JSON not in accept:
        return "application/json"
    return SCHEMA_JSON


# -- items ----------------------------------------------------------------------------------------


async def items_query(
    collection: CollectionDep,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="most features in one page")
    ] = DEFAULT_LIMIT,
    bbox: Annotated[
        str | None,
        Query(
            description="min lon,min lat,max lon,max lat (WGS84); min lon > max lon crosses 180°",
            examples=["46.3,39.6,47.2,40.4"],
        ),
    ] = None,
    interval: Annotated[
        str | None,
        Query(
            alias="datetime",
            description="an instant, or start/end with '..' (or nothing) for an open end",
            examples=["2022-03-24T00:00:00Z/2022-03-29T00:00:00Z", "2022-03-26T00:00:00Z/.."],
        ),
    ] = None,
    filter_text: Annotated[
        str | None,
        Query(
            alias="filter",
            description="a CQL2 text filter over the collection's queryables",
            examples=["party = 'AZE' AND verdict = 'inside'"],
        ),
    ] = None,
    filter_lang: Annotated[
        Literal["cql2-text", "cql-text"],
        Query(
            alias="filter-lang",
            description="cql2-text (the default; cql-text, the draft's name that GDAL sends, "
            "is read as CQL2 text)",
        ),
    ] = "cql2-text",
    filter_crs: Annotated[
        str | None, Query(alias="filter-crs", description=f"{CRS84} (the only one taken)")
    ] = None,
    crs: Annotated[
        str | None, Query(description=f"{CRS84} (the only one served: WGS84 lon/lat)")
    ] = None,
    bbox_crs: Annotated[
        str | None, Query(alias="bbox-crs", description=f"{CRS84} (the only one taken)")
    ] = None,
    after: Annotated[
        str | None, Query(description="the cursor of a `next` link (keep the other parameters)")
    ] = None,
    before: Annotated[
        str | None, Query(description="the cursor of a `prev` link (keep the other parameters)")
    ] = None,
) -> ItemsQuery:
    """The parameters of `/items` as one query."""
    for name, value in (("filter-crs", filter_crs), ("crs", crs), ("bbox-crs", bbox_crs)):
        if value is not None and value.strip() not in _CRS84_NAMES:
            raise InvalidParameter(f"only {CRS84} (lon/lat) is served", field=name)
    if after is not None and before is not None:
        raise InvalidParameter("give after or before, not both", field="before")
    since = until = None
    if interval is not None:
        since, until = parse_interval(interval)
    where = None
    if filter_text is not None:
        where = parse_filter(filter_text, collection.queryables)
    return ItemsQuery(
        where=all_of([None if bbox is None else intersects_bbox(parse_bbox(bbox)), where]),
        since=since,
        until=until,
        limit=limit,
        after=after,
        before=before,
    )


ItemsQueryDep = Annotated[ItemsQuery, Depends(items_query)]


def _page_link(request: Request, rel: str, cursor: tuple[str, str] | None) -> dict[str, str]:
    params = {k: v for k, v in request.query_params.items() if k not in ("after", "before")}
    if cursor is not None:
        params[cursor[0]] = cursor[1]
    path = f"/collections/{request.path_params['collectionId']}/items"
    link = {"href": href(request, path, urlencode(params)), "rel": rel, "type": GEOJSON}
    return link


@router.get(
    "/collections/{collectionId}/items",
    operation_id="getFeatures",
    response_model=Page,
    response_class=GeoJSONResponse,
    responses=problems(400, 401, 403, 404),
)
def get_features(
    request: Request, collection: CollectionDep, query: ItemsQueryDep, _: ViewerKey
) -> Response:
    """A page of a collection's features, with `numberMatched`, `numberReturned`, `timeStamp`
    and `next`/`prev` links (keyset cursors: pages never repeat or skip a feature).

    `bbox` keeps features whose geometry meets the box; `datetime` an instant or an interval
    (see the collection's description for what time means there); `filter` a CQL2 text
    expression over the collection's queryables (`/queryables`): comparisons, LIKE, IN,
    BETWEEN, IS NULL, AND, OR, NOT, and S_INTERSECTS(geometry, BBOX(…) or a WKT geometry).
    A filter that cannot be applied is a 400 problem naming its bad part.
    """
    page = collection.items(query)
    links = [
        _page_link(
            request,
            "self",
            None
            if query.after is None and query.before is None
            else ("after", query.after)
            if query.after
            else ("before", query.before or ""),
        ),
        _link(request, f"/collections/{collection.id}", "collection", "application/json"),
    ]
    if page.next is not None:
        links.append(_page_link(request, "next", ("after", page.next)))
    if page.prev is not None:
        links.append(_page_link(request, "prev", ("before", page.prev)))
    return GeoJSONResponse(
        {
            "type": "FeatureCollection",
            "features": page.features,
            "numberMatched": page.matched,
            "numberReturned": len(page.features),
            "timeStamp": datetime.now(UTC).isoformat(),
            "links": links,
        },
        headers={"Content-Crs": f"<{CRS84}>"},
    )


FeatureId = Annotated[
    str,
    PathParam(
        alias="featureId",
        description="a feature's id (zones: <zone id>@v<version>; incursions: "
        "<report id>@<zone id>), percent-encoded",
        examples=["nk-pk-zone@v1"],
    ),
]


@router.get(
    "/collections/{collectionId}/items/{featureId:path}",
    operation_id="getFeature",
    response_model=Feature,
    response_class=GeoJSONResponse,
    responses=problems(400, 401, 403, 404),
)
def get_feature(
    request: Request, collection: CollectionDep, feature_id: FeatureId, _: ViewerKey
) -> Response:
    """One feature of a collection, by its id, with links to itself and its collection."""
    feature = dict(collection.item(feature_id))
    base = f"/collections/{collection.id}"
    feature["links"] = [
        _link(request, f"{base}/items/{feature_id}", "self", GEOJSON),
        _link(request, base, "collection", "application/json"),
    ]
    return GeoJSONResponse(feature)
