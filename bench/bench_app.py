"""The app that the HTTP benchmark serves: Truce's own, plus one constant POST endpoint.

`POST /bench/constant` reads the request body, as `POST /check` does, and answers a constant: the
framework's ceiling for a POST of that body, beside `GET /health`'s ceiling for a GET. It is
matched first, so that it is the best case; it exists only in the benchmark's servers.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.responses import Response

from app.api.main import create_app_from_env

CONSTANT = b'{"type":"FeatureCollection","features":[]}'


def create_bench_app() -> FastAPI:
    """Truce's app from the environment, with `POST /bench/constant` matched before any route."""
    app = create_app_from_env()

    @app.post("/bench/constant", include_in_schema=False)
    async def constant(request: Request) -> Response:
        await request.body()
        return Response(CONSTANT, media_type="application/geo+json")

    app.router.routes.insert(0, app.router.routes.pop())
    return app
