"""The legend's HTML: zone kinds, reference layers, parties, report kinds, sources, findings."""

from __future__ import annotations

from app.domain import ReportKind, ZoneKind
from app.mapview.model import MapModel
from app.mapview.popups import escape
from app.mapview.style import (
    OUTLINE_COLOR,
    PLAIN,
    REPORT_SHAPES,
    SOURCE_DASHES,
    VIOLATION,
    WARNING,
    ZONE_STYLES,
    ZoneStyle,
    marker_svg,
)


def _zone_swatch(style: ZoneStyle) -> str:
    dash = f' stroke-dasharray="{style.dash}"' if style.dash else ""
    return (
        f'<svg width="30" height="16" viewBox="0 0 30 16"><rect x="2" y="2" width="26" '
        f'height="12" fill="{style.color}" fill-opacity="{max(style.fill_opacity, 0.1)}" '
        f'stroke="{style.color}" stroke-width="{style.weight}"{dash}/></svg>'
    )


def _line_swatch(color: str, weight: float, dash: str | None = None) -> str:
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<svg width="30" height="16" viewBox="0 0 30 16"><line x1="2" y1="8" x2="28" y2="8" '
        f'stroke="{color}" stroke-width="{weight}"{dashed}/></svg>'
    )


def legend_html(model: MapModel) -> str:
    """The legend: zone kinds, reference layers, parties, report kinds, sources, findings."""
    items: list[tuple[str, list[tuple[str, str]]]] = []
    inside = model.counts.get("violations_inside", 0)
    possible = model.counts.get("violations_possible", 0)
    kinds_shown = list(model.zones) or list(ZoneKind)
    items.append(
        (
            "Zones (in force at the slider's time)",
            [(_zone_swatch(ZONE_STYLES[k]), escape(ZONE_STYLES[k].label)) for k in kinds_shown],
        )
    )
    reference = [(_line_swatch(OUTLINE_COLOR, 1.2), "Outlines: every zone and line (basemap)")]
    if "line_of_contact" in model.layers:
        reference.append((_line_swatch("#111111", 3.5), "Line of contact"))
    if "observation_posts" in model.layers:
        reference.append(
            (
                '<svg width="30" height="16"><circle cx="15" cy="8" r="5.5" fill="#fff" '
                'stroke="#111" stroke-width="2"/></svg>',
                "Observation post (illustrative)",
            )
        )
    if "places" in model.layers:
        reference.append(('<span class="truce-place-dot"></span>', "Place: both names, A–Z"))
    items.append(("Reference", reference))
    items.append(
        (
            "Parties (marker colour)",
            [
                (
                    marker_svg(REPORT_SHAPES[ReportKind.TROOPS], escape(p.color), "1", "", PLAIN),
                    escape(f"{p.code}: {p.name}"),
                )
                for p in model.parties
            ],
        )
    )
    items.append(
        (
            "Report kinds (marker shape)",
            [
                (marker_svg(REPORT_SHAPES[k], "#bbbbbb", "1", "", PLAIN), escape(k.value))
                for k in ReportKind
            ],
        )
    )
    if model.sources:
        items.append(
            (
                "Sources (marker outline)",
                [
                    (
                        marker_svg(
                            REPORT_SHAPES[ReportKind.VEHICLE],
                            "#ffffff",
                            "1",
                            SOURCE_DASHES[min(i, len(SOURCE_DASHES) - 1)],
                            PLAIN,
                        ),
                        escape(source),
                    )
                    for i, source in enumerate(model.sources)
                ],
            )
        )
    grey = REPORT_SHAPES[ReportKind.TROOPS]
    items.append(
        (
            "Findings",
            [
                (
                    marker_svg(grey, "#bbbbbb", "1", "", VIOLATION),
                    "Violation: inside or possible. In this map: "
                    f'<span class="truce-legend-inside">{inside:,} inside</span> (certain), '
                    f'<span class="truce-legend-possible">{possible:,} only possible</span>',
                ),
                (
                    '<svg width="30" height="16"><circle cx="15" cy="8" r="6.5" fill="#d7191c" '
                    'fill-opacity="0.08" stroke="#d7191c" stroke-width="1.5" '
                    'stroke-dasharray="3 3"/></svg>',
                    "Uncertainty circle of a possible finding",
                ),
                (marker_svg(grey, "#bbbbbb", "1", "", WARNING), "Approaching (warning)"),
                ("Opacity", "low / medium / high confidence"),
            ],
        )
    )
    items.append(
        (
            "Zoomed out",
            [
                (
                    '<span class="truce-cell truce-cell-inside truce-legend-cell"><div>'
                    "<span>120</span></div></span>",
                    "Reports counted per cell: red with a violation inside, orange with "
                    "possible ones only, amber with warnings; zoom in to see them one by one",
                ),
            ],
        )
    )
    items.append(
        (
            "Tracks",
            [
                (_line_swatch("#555555", 3, "7 4"), "A unit's path, in time order"),
                ('<span class="truce-event truce-entered">IN</span>', "Entered a zone"),
                ('<span class="truce-event truce-exited">OUT</span>', "Exited a zone"),
            ],
        )
    )
    sections = "".join(
        f'<div class="truce-legend-section"><h5>{escape(title)}</h5>'
        + "".join(
            f'<div class="truce-legend-row"><span class="truce-legend-key">{key}</span>'
            f"<span>{text}</span></div>"
            for key, text in rows
        )
        + "</div>"
        for title, rows in items
    )
    return f"<details open><summary>Legend</summary>{sections}</details>"
