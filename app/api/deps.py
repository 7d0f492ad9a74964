"""Small dependencies shared by the routers: the service, the settings and the query parameters.

Times are RFC 3339 with an offset; a naive time is refused (which zone versions are in force
depends on the instant). `datetime` follows OGC API – Features: an instant, or an interval
"start/end" where ".." or nothing leaves that end open; its interval is closed at both ends. The
`since`/`until` pair is half-open instead (`since <= observed_at < until`), like zone validity.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, cast
from urllib.parse import quote, urlencode

from fastapi import Depends, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError

from app.errors import InvalidParameter, UnknownQueryParameter
from app.limits import check_time
from app.service import Service
from app.settings import Settings
from app.store import BBox
from app.validate import parse_timestamp

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_PAGE",
    "MAX_LIMIT",
    "MAX_POSITION",
    "BBoxDep",
    "Page",
    "PageDep",
    "ServiceDep",
    "SettingsDep",
    "SinceUntilDep",
    "TimeRange",
    "TimeRangeDep",
    "ZoneTime",
    "ZoneTimeDep",
    "get_service",
    "href",
    "page_links",
    "get_settings",
    "parse_bbox",
    "parse_flag",
    "parse_instant",
    "parse_interval",
    "query_names",
    "refuse_unknown_query",
    "strict_query",
]

DEFAULT_LIMIT = 100
#: Zones and incursions are computed whole, and a map wants them all at once.
DEFAULT_PAGE = 1_000
MAX_LIMIT = 10_000
#: The largest position (an audit id, a report's filing position, an offset): what SQLite's
#: 64-bit integers hold. Larger numbers are refused as parameters (400), never passed on.
MAX_POSITION = 2**63 - 1
_US = timedelta(microseconds=1)


async def get_service(request: Request) -> Service:
    """The app's service (made at start-up)."""
    return cast(Service, request.app.state.service)


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return cast(Settings, request.app.state.settings)


ServiceDep = Annotated[Service, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


_OFFSET_SPACE = re.compile(r" (\d{2}:?\d{2})$")


def parse_instant(value: str, field: str) -> datetime:
    """An RFC 3339 time with an offset, within the range the engine holds.

    An unencoded "+04:00" in a query string arrives as " 04:00": it is read as meant.
    """
    value = _OFFSET_SPACE.sub(r"+\1", value.strip())
    moment = parse_timestamp(value, field, error=InvalidParameter)
    check_time(moment, field)
    return moment


def parse_interval(value: str, field: str = "datetime") -> tuple[datetime | None, datetime | None]:
    """An OGC `datetime` (instant or closed interval) as half-open (since, until)."""
    if "/" not in value:
        moment = parse_instant(value, field)
        return moment, moment + _US
    start, _, end = value.partition("/")
    if "/" in end:
        raise InvalidParameter("an interval has one '/': start/end", field=field)
    since = None if start.strip() in ("", "..") else parse_instant(start, field)
    until = None if end.strip() in ("", "..") else parse_instant(end, field) + _US
    if since is not None and until is not None and until <= since:
        raise InvalidParameter("the interval ends before it starts", field=field)
    return since, until


_BOOL = TypeAdapter(bool)


def parse_flag(value: str | None, field: str) -> bool:
    """A boolean query parameter (absent: false), read as FastAPI reads `bool` parameters."""
    if value is None:
        return False
    try:
        return _BOOL.validate_python(value)
    except ValidationError:
        raise InvalidParameter(f"expected true or false, got {value!r}", field=field) from None


def parse_bbox(value: str) -> BBox:
    """ "min lon,min lat,max lon,max lat"; min lon > max lon crosses the antimeridian."""
    parts = value.split(",")
    if len(parts) != 4:
        raise InvalidParameter(
            f"expected 4 numbers, min lon,min lat,max lon,max lat; got {len(parts)}", field="bbox"
        )
    try:
        minx, miny, maxx, maxy = (float(part) for part in parts)
    except ValueError:
        raise InvalidParameter(
            "expected 4 numbers, min lon,min lat,max lon,max lat", field="bbox"
        ) from None
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
        raise InvalidParameter("must be finite numbers", field="bbox")
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise InvalidParameter(
            "longitudes must be in [-180, 180], latitudes in [-90, 90] with min <= max",
            field="bbox",
        )
    return minx, miny, maxx, maxy


async def bbox_query(
    bbox: Annotated[
        str | None,
        Query(
            description="min lon,min lat,max lon,max lat (WGS84); min lon > max lon crosses 180°",
            examples=["46.3,39.6,47.2,40.4"],
        ),
    ] = None,
) -> BBox | None:
    """The `bbox` parameter."""
    return None if bbox is None else parse_bbox(bbox)


BBoxDep = Annotated[BBox | None, Depends(bbox_query)]

#: A time at which zones are asked for, or "all" for every version.
ZoneTime = datetime | Literal["all"]


async def zone_time_query(
    at: Annotated[
        str | None,
        Query(
            description="RFC 3339 time (default now), or `all` for every version",
            examples=["2022-03-24T06:00:00+04:00"],
        ),
    ] = None,
) -> ZoneTime:
    """The `at` parameter of the zone listings."""
    if at is None:
        return datetime.now(UTC)
    if at.strip().lower() == "all":
        return "all"
    return parse_instant(at, "at")


ZoneTimeDep = Annotated[ZoneTime, Depends(zone_time_query)]


@dataclass(frozen=True, slots=True)
class TimeRange:
    """Half-open: `since <= t < until`; None leaves an end open."""

    since: datetime | None
    until: datetime | None


async def _since_until_params(
    since: Annotated[
        str | None, Query(description="RFC 3339; reports observed at or after this time")
    ] = None,
    until: Annotated[
        str | None, Query(description="RFC 3339; reports observed before this time")
    ] = None,
) -> tuple[str | None, str | None]:
    """The `since` and `until` parameters as given (declared once for every route)."""
    return since, until


def _since_until(since: str | None, until: str | None) -> TimeRange:
    start = None if since is None else parse_instant(since, "since")
    end = None if until is None else parse_instant(until, "until")
    if start is not None and end is not None and end <= start:
        raise InvalidParameter("must be after since", field="until")
    return TimeRange(start, end)


async def _datetime_param(
    interval: Annotated[
        str | None,
        Query(
            alias="datetime",
            description="OGC API style: an instant, or start/end with '..' for an open end "
            "(closed interval); instead of since/until",
            examples=["2022-03-24T00:00:00Z/2022-03-29T00:00:00Z", "../2022-03-25T00:00:00Z"],
        ),
    ] = None,
) -> str | None:
    """The OGC `datetime` parameter as given."""
    return interval


async def since_until_query(
    params: Annotated[tuple[str | None, str | None], Depends(_since_until_params)],
) -> TimeRange:
    """`since`/`until` only (for routes that take no OGC `datetime`, such as the map)."""
    return _since_until(*params)


async def time_range_query(
    params: Annotated[tuple[str | None, str | None], Depends(_since_until_params)],
    interval: Annotated[str | None, Depends(_datetime_param)],
) -> TimeRange:
    """`since`/`until`, or `datetime`."""
    since, until = params
    if interval is not None:
        if since is not None or until is not None:
            raise InvalidParameter(
                "give either datetime or since/until, not both", field="datetime"
            )
        return TimeRange(*parse_interval(interval))
    return _since_until(since, until)


SinceUntilDep = Annotated[TimeRange, Depends(since_until_query)]
TimeRangeDep = Annotated[TimeRange, Depends(time_range_query)]


@dataclass(frozen=True, slots=True)
class Page:
    """`limit` and `offset` for listings that are computed whole (zones, incursions)."""

    limit: int
    offset: int


async def page_query(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="most features in one page")
    ] = DEFAULT_PAGE,
    offset: Annotated[
        int, Query(ge=0, le=MAX_POSITION, description="features to skip (from a `next` link)")
    ] = 0,
) -> Page:
    """The `limit` and `offset` parameters."""
    return Page(limit, offset)


PageDep = Annotated[Page, Depends(page_query)]


# Characters left as they are in a path (RFC 3986 pchar and "/"); everything else is
# percent-encoded as UTF-8, so ids in any script make valid links and headers.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def href(request: Request, path: str, query: str = "") -> str:
    """A link to `path` (within this app, not encoded yet) with an encoded `query`.

    From the configured public URL (`TRUCE_PUBLIC_URL`) when there is one, else a relative
    reference ("/zones/..."): never from the request's `Host`, which the client chooses.
    """
    settings = cast(Settings | None, getattr(request.app.state, "settings", None))
    base = settings.public_url if settings is not None else None
    if base is None:
        # Relative to this server's origin: the path as the client reached it.
        path = request.scope.get("root_path", "").rstrip("/") + path
        base = ""
    link = base + quote(path, safe=_PATH_SAFE)
    return f"{link}?{query}" if query else link


def _app_path(request: Request) -> str:
    """The request's path within the app (without the root path it is mounted under)."""
    path = str(request.scope.get("path", "/"))
    root = str(request.scope.get("root_path", "")).rstrip("/")
    return path[len(root) :] if root and path.startswith(root + "/") else path


def page_links(
    request: Request, next_params: Mapping[str, str | int] | None, media_type: str
) -> list[dict[str, str]]:
    """`self` and, when there is more, `next` links (the request's URL with new parameters)."""
    path = _app_path(request)
    links = [{"href": href(request, path, request.url.query), "rel": "self", "type": media_type}]
    if next_params is not None:
        params = dict(request.query_params)
        params.update({name: str(value) for name, value in next_params.items()})
        links.append(
            {
                "href": href(request, path, urlencode(params)),
                "rel": "next",
                "type": media_type,
                "title": "next page",
            }
        )
    return links


# -- strict queries -----------------------------------------------------------------------------

#: Where a route keeps its query names once worked out (routes compare by value and are not
#: hashable, and an id could be reused by another app's route in the same process).
_QUERY_NAMES = "_truce_query_names"


def query_names(route: APIRoute) -> frozenset[str]:
    """The query parameters a route declares: its own and its dependencies' (by their alias),
    and those its `openapi_extra` documents (routes that read the query themselves)."""
    names: frozenset[str] | None = getattr(route, _QUERY_NAMES, None)
    if names is None:
        declared = set(_declared(route.dependant))
        extra = (route.openapi_extra or {}).get("parameters", [])
        declared |= {p["name"] for p in extra if isinstance(p, dict) and p.get("in") == "query"}
        names = frozenset(declared)
        setattr(route, _QUERY_NAMES, names)
    return names


def _declared(dependant: Dependant) -> Iterator[str]:
    """The query parameter names of a dependant and of every dependency under it."""
    yield from (param.alias for param in dependant.query_params)
    for sub in dependant.dependencies:
        yield from _declared(sub)


def refuse_unknown_query(request: Request) -> None:
    """400 naming the first query parameter the matched route does not take.

    A misspelt filter (`partyy=AZE`) or one a route does not have (`bbox` where none is taken)
    would otherwise be ignored and answer everything, which reads as a filtered answer.
    """
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.url.query:
        return
    allowed = query_names(route)
    for name in request.query_params:
        if name not in allowed:
            takes = ", ".join(sorted(allowed)) or "none"
            raise UnknownQueryParameter(
                f"unknown query parameter {name!r}; {route.path} takes: {takes}", field=name
            )


async def strict_query(request: Request) -> None:
    """The dependency form of `refuse_unknown_query`, applied to every router in `create_app`."""
    refuse_unknown_query(request)


async def list_limit_query(
    limit: Annotated[
        int | None,
        Query(ge=1, le=MAX_LIMIT, description="at most this many items (default: every one)"),
    ] = None,
) -> int | None:
    """`limit` of a short listing that has no pages (parties, a history): the first items."""
    return limit


ListLimitDep = Annotated[int | None, Depends(list_limit_query)]
