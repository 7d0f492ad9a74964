"""The founding scenario (or any directory laid out like `geodata/`), read into domain types."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.domain import Party, Report, Zone
from app.geojson import reports_from_geojson, zones_from_geojson

GEODATA = Path(__file__).resolve().parent.parent / "geodata"
REFERENCE_LAYERS = ("line_of_contact", "observation_posts", "places")


@dataclass(frozen=True, slots=True)
class Scenario:
    """Zones (every version), reports, parties and the reference layers as raw GeoJSON."""

    zones: list[Zone]
    reports: list[Report]
    parties: list[Party]
    layers: dict[str, dict[str, Any]]


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def load_scenario(directory: Path = GEODATA) -> Scenario:
    """Read `zones.geojson`, `reports.geojson`, `parties.json` and the reference layers."""
    zones, _ = zones_from_geojson(_read_json(directory / "zones.geojson"))
    reports = reports_from_geojson(_read_json(directory / "reports.geojson"))
    parties = [
        Party(
            code=p["code"],
            name=p["name"],
            color=p.get("color", "#666666"),
            aliases=tuple(p.get("aliases", ())),
        )
        for p in _read_json(directory / "parties.json")
    ]
    layers = {
        name: _read_json(directory / f"{name}.geojson")
        for name in REFERENCE_LAYERS
        if (directory / f"{name}.geojson").exists()
    }
    return Scenario(zones=zones, reports=reports, parties=parties, layers=layers)
