"""Helpers for the map tests: loading a store, a minimal map app, a live server's address."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from app.api.map import mount_static, router
from app.domain import Zone
from app.scenario import Scenario
from app.service import Service
from app.store import Store

REPO = Path(__file__).resolve().parents[2]


def load_into(store: Store, scenario: Scenario) -> None:
    """The scenario's zones (first versions, then the later ones in order) and reports."""
    first: dict[str, Zone] = {}
    later: list[Zone] = []
    for zone in sorted(scenario.zones, key=lambda z: (z.id, z.version)):
        if zone.id in first:
            later.append(zone)
        else:
            first[zone.id] = zone
    store.add_zones(list(first.values()), "test")
    for zone in later:
        store.new_zone_version(zone, "test")
    store.add_reports(scenario.reports, "test")


def map_app(store: Store, tiles: str | None = None) -> FastAPI:
    """The smallest app that serves the map: the router, the static assets, a service."""
    app = FastAPI()
    app.include_router(router)
    mount_static(app)
    app.state.service = Service(store)
    app.state.settings = type("Settings", (), {"tiles": tiles})()
    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class LiveServer:
    url: str
