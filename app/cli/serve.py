"""`truce serve`: the HTTP API under uvicorn."""

from __future__ import annotations

import os
from contextlib import closing
from importlib.util import find_spec
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from app import __version__
from app.scenario import GEODATA

if TYPE_CHECKING:
    from app.settings import Settings

console = Console()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for the limits of the settings (see `app.api.protocol`).

    The keep-alive outlasts the pools of common clients (uvicorn's 5 s default closed idle
    connections while clients reused them, a reset on a request that never reached the app).
    Without httptools, h11 takes the head size limit (it answers 400 rather than 431, and has
    no head timeout).
    """
    options: dict[str, Any] = {"timeout_keep_alive": settings.keep_alive_s}
    if find_spec("httptools") is not None:
        from app.api.protocol import PROTOCOL

        options["http"] = PROTOCOL
    else:  # pragma: no cover - httptools comes with uvicorn[standard]
        options["http"] = "h11"
        options["h11_max_incomplete_event_size"] = settings.max_header_bytes
    return options


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", envvar="PORT")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes (they share the database).")
    ] = 1,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="sqlite:///path/to/truce.sqlite or postgresql://... [default: TRUCE_DATABASE_URL]"
        ),
    ] = None,
    load_scenario: Annotated[
        bool | None,
        typer.Option(
            "--load-scenario/--no-load-scenario",
            help="Load geodata/ into an empty database on first start "
            "[default: TRUCE_LOAD_SCENARIO]",
        ),
    ] = None,
    public_read: Annotated[
        bool | None,
        typer.Option(
            "--public-read/--no-public-read",
            help="Allow reads without a key [default: TRUCE_PUBLIC_READ]",
        ),
    ] = None,
) -> None:
    """Serve the HTTP API with uvicorn; settings from TRUCE_* and the options given."""
    import uvicorn
    from pydantic import ValidationError

    from app.settings import Settings

    # The options travel to the workers as TRUCE_* variables: uvicorn builds the app in each
    # worker process with `create_app_from_env`, which is what makes --workers possible.
    if database_url is not None:
        os.environ["TRUCE_DATABASE_URL"] = database_url
    if load_scenario is not None:
        os.environ["TRUCE_LOAD_SCENARIO"] = "true" if load_scenario else "false"
    if public_read is not None:
        os.environ["TRUCE_PUBLIC_READ"] = "true" if public_read else "false"
    try:
        # Read once here, so that a bad setting stops us before uvicorn starts. The settings
        # hide their input in errors, so a bad TRUCE_API_KEYS does not print the keys.
        settings = Settings()
    except ValidationError as exc:
        console.print(f"[red]error:[/red] bad settings: {exc}")
        raise typer.Exit(2) from None
    if settings.load_scenario and workers > 1:
        # Loaded once, here, rather than raced for by the workers.
        from app.service import Service
        from app.store import open_store

        with closing(open_store(settings.database_url, settings.database_read_url)) as store:
            Service(store).load_scenario(settings.geodata_dir or GEODATA)
    console.print(
        f"Truce {__version__} on http://{host}:{port} (API docs at /docs), "
        f"database {settings.database_url}, {len(settings.api_keys)} key(s) from TRUCE_API_KEYS"
        + (", public read" if settings.public_read else "")
    )
    uvicorn.run(
        "app.api.main:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        **uvicorn_options(settings),
    )
