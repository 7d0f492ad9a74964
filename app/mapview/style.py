"""How things look on the map: colours, report statuses, zone and reference styles, marker shapes
and the marker SVG."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from app.domain import ReportKind, ZoneKind

VIOLATION_COLOR = "#d7191c"
WARNING_COLOR = "#f0a000"
OUTLINE_COLOR = "#8a8f98"

#: Status of a report on the map, from its findings: the highest applies.
PLAIN, AUTHORIZED_IN, WARNING, VIOLATION = range(4)
STATUS_NAMES = ("plain", "authorized", "warning", "violation")
#: Per status: the marker's size in pixels and its SVG view box (room for the halo or ring).
MARKER_SIZES = {PLAIN: (16, 22), AUTHORIZED_IN: (16, 22), WARNING: (20, 28), VIOLATION: (26, 32)}


@dataclass(frozen=True, slots=True)
class ZoneStyle:
    """How a zone kind is drawn: told apart by colour *and* dash pattern (colour-blind safe)."""

    color: str
    dash: str | None
    weight: float
    fill_opacity: float
    label: str

    def leaflet(self) -> dict[str, Any]:
        """The Leaflet path options."""
        return {
            "color": self.color,
            "weight": self.weight,
            "opacity": 0.95,
            "dashArray": self.dash,
            "fillColor": self.color,
            "fillOpacity": self.fill_opacity,
        }


ZONE_STYLES: dict[ZoneKind, ZoneStyle] = {
    ZoneKind.PEACEKEEPING: ZoneStyle("#2166ac", None, 2.5, 0.12, "Peacekeeping zone"),
    ZoneKind.CORRIDOR: ZoneStyle("#762a83", "10 5", 3.0, 0.22, "Corridor"),
    ZoneKind.BUFFER: ZoneStyle("#8c510a", "2 5", 2.5, 0.15, "Buffer zone"),
    ZoneKind.CONTROL: ZoneStyle("#4d4d4d", "12 4 3 4", 2.0, 0.06, "Area of control"),
    ZoneKind.DEMILITARIZED: ZoneStyle("#1b7837", "6 3", 2.5, 0.12, "Demilitarized zone"),
    ZoneKind.EXCLUSION: ZoneStyle("#c51b7d", None, 3.5, 0.20, "Exclusion zone"),
}


def _polygon_path(points: Iterable[tuple[float, float]]) -> str:
    return "M" + "L".join(f"{x:.1f} {y:.1f}" for x, y in points) + "Z"


def _star(n: int, outer: float, inner: float) -> str:
    return _polygon_path(
        (
            10 + (outer if i % 2 == 0 else inner) * math.sin(math.pi * i / n),
            10 - (outer if i % 2 == 0 else inner) * math.cos(math.pi * i / n),
        )
        for i in range(2 * n)
    )


def _regular(n: int, radius: float) -> str:
    return _polygon_path(
        (10 + radius * math.sin(2 * math.pi * i / n), 10 - radius * math.cos(2 * math.pi * i / n))
        for i in range(n)
    )


#: The marker shape of each report kind: an SVG path in a 20 × 20 box centred on (10, 10).
REPORT_SHAPES: dict[ReportKind, str] = {
    ReportKind.TROOPS: "M3 10a7 7 0 1 0 14 0a7 7 0 1 0 -14 0Z",
    ReportKind.VEHICLE: "M3.8 3.8H16.2V16.2H3.8Z",
    ReportKind.STRIKE: _star(8, 9.0, 4.0),
    ReportKind.DRONE: "M10 2.2L18 16.8H2Z",
    ReportKind.ARTILLERY: "M10 1.8L18.2 10L10 18.2L1.8 10Z",
    ReportKind.FORTIFICATION: _regular(5, 8.2),
    ReportKind.OTHER: "M7.6 3H12.4V7.6H17V12.4H12.4V17H7.6V12.4H3V7.6H7.6Z",
}

#: Outline dash patterns that tell sources apart (most frequent source first); the rest share
#: the last, thin one.
SOURCE_DASHES = ("", "3.5 1.8", "1.2 1.6", "5 1.6 1.2 1.6", "7 2.5", "0.6 2.4")
CONFIDENCE_OPACITY = {"low": 0.5, "medium": 0.8, "high": 1.0, None: 0.8}
#: Colours for parties that the party list does not know (Okabe–Ito and Tol, past the first 5).
FALLBACK_COLORS = ("#56B4E9", "#F0E442", "#882255", "#44AA99", "#332288", "#999933", "#AA4499")


REFERENCE_STYLES: dict[str, dict[str, Any]] = {
    "line_of_contact": {"color": "#111111", "weight": 3.5, "opacity": 0.9, "dashArray": "1 0"},
    "observation_posts": {
        "color": "#111111",
        "weight": 2,
        "fillColor": "#ffffff",
        "fillOpacity": 1.0,
        "radius": 6,
    },
    "other": {"color": "#555555", "weight": 1.5, "opacity": 0.8, "fillOpacity": 0.1},
}


def marker_svg(shape: str, fill: str, opacity: str, dash: str, status: int) -> str:
    """The SVG of a report marker; map.js fills the same template from the payload.

    Violations are larger with a red halo; warnings (approaching) carry an amber ring.
    """
    size, box = MARKER_SIZES[status]
    pad = (box - 20) / 2
    ring = ""
    if status == VIOLATION:
        ring = (
            f'<circle cx="10" cy="10" r="14.5" fill="{VIOLATION_COLOR}" fill-opacity="0.25" '
            f'stroke="{VIOLATION_COLOR}" stroke-width="3"/>'
        )
    elif status == WARNING:
        ring = (
            f'<circle cx="10" cy="10" r="12.4" fill="none" stroke="{WARNING_COLOR}" '
            'stroke-width="2.6"/>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="{-pad:g} {-pad:g} {box} {box}">{ring}'
        f'<path d="{shape}" fill="{fill}" fill-opacity="{opacity}" stroke="#1a1a1a" '
        f'stroke-width="1.6" stroke-dasharray="{dash}" stroke-linejoin="round"/></svg>'
    )
