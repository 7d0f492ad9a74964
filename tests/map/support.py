"""Helpers for the map tests: loading a store, a minimal map app, many synthetic reports."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from fastapi import FastAPI

from app.api.map import mount_static, router
from app.domain import Confidence, Party, Report, ReportKind, Zone
from app.scenario import Scenario
from app.service import Service
from app.store import SQLiteStore

REPO = Path(__file__).resolve().parents[2]


def load_into(store: SQLiteStore, scenario: Scenario) -> None:
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


def map_app(store: SQLiteStore, tiles: str | None = None) -> FastAPI:
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


def many_reports(n: int, zone_parties: list[Party]) -> list[Report]:
    rng = np.random.default_rng(7)
    start = datetime(2022, 3, 1, tzinfo=UTC)
    lon, lat = rng.uniform(46.2, 47.2, n), rng.uniform(39.5, 40.5, n)
    seconds = rng.integers(0, 30 * 86400, n)
    kinds, codes = list(ReportKind), [p.code for p in zone_parties]
    return [
        Report(
            id=f"r{i}",
            party=codes[i % len(codes)],
            observed_at=start + timedelta(seconds=int(seconds[i])),
            lon=float(lon[i]),
            lat=float(lat[i]),
            uncertainty_m=float(i % 4) * 500,
            kind=kinds[i % len(kinds)],
            unit=f"unit-{i % 50}" if i % 20 == 0 else None,
            source=("OP", "drone", "press")[i % 3],
            confidence=Confidence.MEDIUM,
        )
        for i in range(n)
    ]
