"""The front door: `GET /` (a landing page: HTML for browsers, JSON for clients), and the API
docs `/docs` (Swagger UI) and `/redoc` (ReDoc), served from this server's own copies.

`GET /` is also the OGC API – Features landing page: its JSON links `self`, `service-desc` (the
OpenAPI document, `application/vnd.oai.openapi+json;version=3.0`), `service-doc`,
`conformance` and `data` (QGIS refuses a landing page without `service-desc` and `data`), and
the map, the health probe and the dates of the stored data. The representation follows the
`f` parameter (`json` or `html`), else the `Accept` header: HTML when the client prefers
`text/html` (a browser), JSON otherwise (curl, GDAL, QGIS, OWSLib).

The docs pages load Swagger UI and ReDoc from `/static/vendor/` (copied from the npm registry by
`make assets`), never from a CDN, under a Content-Security-Policy that lets them load nothing
from another host.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from app import __version__, assets
from app.api.deps import ServiceDep, href
from app.api.models import LandingPage, problems
from app.api.responses import ORJSONResponse
from app.api.routers.ogc import OPENAPI_JSON
from app.errors import InvalidParameter
from app.service import Service

__all__ = ["DOCS_CSP", "landing_document", "router"]

router = APIRouter(tags=["home"])

#: Only this origin: the docs' scripts, styles, fonts and images all come from /static.
#: Swagger UI and ReDoc start from an inline script and style their elements inline; ReDoc runs
#: a web worker from a blob: URL.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'self'"
)
_HEADERS = {"Content-Security-Policy": DOCS_CSP, "X-Content-Type-Options": "nosniff"}


def _static(request: Request, path: str) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/") + "/static/" + path


def landing_document(request: Request, service: Service) -> dict[str, Any]:
    """The landing page's JSON: title, description, links, and what the data covers."""

    def link(path: str, rel: str, media: str, title: str) -> dict[str, str]:
        path, _, query = path.partition("?")
        return {"href": href(request, path, query), "rel": rel, "type": media, "title": title}

    _, first, last = service.store.reports_extent()
    in_force = service.list_zones(datetime.now(UTC))
    return {
        "title": "Truce",
        "description": "A ceasefire-zone monitor: which reports entered which zones, how deep, "
        "and whether the party withdrew. OGC API – Features (Parts 1 and 3, CQL2 text).",
        "version": __version__,
        "links": [
            link("/", "self", "application/json", "this page"),
            link("/?f=html", "alternate", "text/html", "this page as HTML"),
            link("/openapi.json", "service-desc", OPENAPI_JSON, "the API definition (OpenAPI 3)"),
            link("/docs", "service-doc", "text/html", "the API documentation (Swagger UI)"),
            link("/redoc", "service-doc", "text/html", "the API documentation (ReDoc)"),
            link(
                "/conformance",
                "conformance",
                "application/json",
                "the OGC conformance classes implemented",
            ),
            link(
                "/conformance",
                "http://www.opengis.net/def/rel/ogc/1.0/conformance",
                "application/json",
                "the OGC conformance classes implemented",
            ),
            link("/collections", "data", "application/json", "the feature collections"),
            link(
                "/collections",
                "http://www.opengis.net/def/rel/ogc/1.0/data",
                "application/json",
                "the feature collections",
            ),
            link("/map", "http://www.opengis.net/def/rel/ogc/1.0/map", "text/html", "the map"),
            link("/health", "status", "application/json", "liveness and version"),
        ],
        "data": {
            "reports": service.store.count_reports_where(None),
            "first_report_at": None if first is None else first.isoformat(),
            "last_report_at": None if last is None else last.isoformat(),
            "zones_in_force": len(in_force),
        },
    }


def _wants_html(request: Request, f: str | None) -> bool:
    if f is not None:
        choice = f.strip().lower()
        if choice not in ("json", "html"):
            raise InvalidParameter(f"f is json or html, not {f!r}", field="f")
        return choice == "html"
    accept = request.headers.get("accept", "")
    best_html = best_json = -1.0
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.strip().lower()
        if media in ("text/html", "application/xhtml+xml"):
            best_html = max(best_html, quality)
        elif media.endswith("json"):
            best_json = max(best_json, quality)
    return best_html > 0 and best_html >= best_json


def _landing_html(document: dict[str, Any]) -> str:
    e = html.escape
    rows = "".join(
        f'<li><a href="{e(link["href"])}">{e(link["title"])}</a> <small>({e(link["rel"])}, '
        f"{e(link['type'])})</small></li>"
        for link in document["links"]
        if link["rel"] not in ("self", "alternate")
    )
    data = document["data"]
    map_href = next(link["href"] for link in document["links"] if link["title"] == "the map")
    dates = (
        f"{data['reports']:,} reports, observed from {e(str(data['first_report_at']))} to "
        f"{e(str(data['last_report_at']))}"
        if data["reports"]
        else "no reports stored yet"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Truce</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto;
  padding: 0 1rem; color: #1b1b1b; }}
h1 {{ margin-bottom: 0; }} small {{ color: #666; }} code {{ background: #f3f3f3; }}
</style></head>
<body>
<h1>Truce</h1>
<p>{e(document["description"])}</p>
<p><a href="{e(map_href)}"><strong>Open the map</strong></a></p>
<p>The data: {dates}; {data["zones_in_force"]} zones in force now.</p>
<ul>{rows}</ul>
<p>In QGIS: <em>Layer → Add Layer → Add WFS / OGC API – Features Layer</em>, new connection,
URL: this page's address. Keys go in the <code>X-API-Key</code> header.</p>
<p><small>Truce {e(document["version"])}</small></p>
</body></html>
"""


@router.get(
    "/",
    operation_id="getLandingPage",
    response_model=LandingPage,
    response_class=ORJSONResponse,
    responses={
        200: {
            "description": "the landing page, as JSON or HTML",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        **problems(400),
    },
)
def landing(
    request: Request,
    service: ServiceDep,
    f: Annotated[
        str | None, Query(description="json or html (default: by the Accept header)")
    ] = None,
) -> Response:
    """The landing page: links to the map, the API definition and docs, the OGC API –
    Features conformance and collections, and health; the dates of the stored reports. HTML for
    browsers, JSON for other clients (or as `f` says). Needs no key."""
    document = landing_document(request, service)
    if _wants_html(request, f):
        return HTMLResponse(_landing_html(document), headers={**_HEADERS, "Vary": "Accept"})
    return ORJSONResponse(document, headers={"Vary": "Accept"})


def _missing_docs() -> HTMLResponse | None:
    missing = assets.missing_docs_assets()
    if not missing:
        return None
    return HTMLResponse(
        "<!DOCTYPE html><title>Truce API docs</title><p>The docs' assets are not installed on "
        "this server: run <code>make assets</code>. The API definition is at "
        '<a href="openapi.json">/openapi.json</a>.</p>',
        status_code=503,
    )


@router.get("/docs", include_in_schema=False)
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI over /openapi.json, from this server's copy of swagger-ui-dist."""
    missing = _missing_docs()
    if missing is not None:
        return missing
    page = get_swagger_ui_html(
        openapi_url=request.scope.get("root_path", "").rstrip("/") + "/openapi.json",
        title="Truce API",
        swagger_js_url=_static(request, assets.SWAGGER_JS.path),
        swagger_css_url=_static(request, assets.SWAGGER_CSS.path),
        swagger_favicon_url=_static(request, assets.SWAGGER_FAVICON),
        # No badge from the online validator: nothing leaves the machine.
        swagger_ui_parameters={"validatorUrl": None},
    )
    page.headers.update(_HEADERS)
    return page


@router.get("/redoc", include_in_schema=False)
def redoc(request: Request) -> HTMLResponse:
    """ReDoc over /openapi.json, from this server's copy of redoc (no web fonts)."""
    missing = _missing_docs()
    if missing is not None:
        return missing
    page = get_redoc_html(
        openapi_url=request.scope.get("root_path", "").rstrip("/") + "/openapi.json",
        title="Truce API",
        redoc_js_url=_static(request, assets.REDOC_JS.path),
        redoc_favicon_url=_static(request, assets.SWAGGER_FAVICON),
        with_google_fonts=False,
    )
    page.headers.update(_HEADERS)
    return page
