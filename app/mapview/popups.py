"""The HTML of popups and labels: zones, reference features and places, always escaped."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from app.domain import Party, Zone
from app.mapview.seconds import format_seconds, zone_seconds
from app.mapview.style import ZONE_STYLES


def escape(value: object) -> str:
    """`value` as HTML-escaped text (None is empty)."""
    return html.escape("" if value is None else str(value))


def _table(rows: Iterable[tuple[str, object]]) -> str:
    cells = "".join(
        f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows if v not in (None, "")
    )
    return f"<table>{cells}</table>"


def _party_label(code: str, parties: Mapping[str, Party]) -> str:
    party = parties.get(code)
    name = f" ({escape(party.name)})" if party and party.name != code else ""
    return f"{escape(code)}{name}"


def zone_popup(zone: Zone, parties: Sequence[Party] = ()) -> str:
    """The popup of a zone version: every field an analyst asks about, HTML-escaped."""
    by_code = {p.code: p for p in parties}
    authorized = ", ".join(_party_label(c, by_code) for c in sorted(zone.authorized_parties))
    begin, stop = zone_seconds(zone)
    style = ZONE_STYLES[zone.kind]
    return (
        f'<div class="truce-popup"><h4>{escape(zone.name)}</h4>'
        + _table(
            [
                ("Zone", f"{escape(zone.id)} (version {zone.version})"),
                ("Kind", f"{escape(zone.kind.value)} ({escape(style.label)})"),
                ("Authorized parties", authorized or "none"),
                ("Valid from", escape(format_seconds(begin))),
                ("Valid to", escape(format_seconds(stop))),
                ("Warning distance", f"{zone.warning_distance_m:,.0f} m"),
                ("Boundary accuracy", f"± {zone.boundary_uncertainty_m:,.0f} m"),
                ("Agreement", escape(zone.agreement)),
                ("Source and accuracy", escape(zone.source)),
            ]
        )
        + "</div>"
    )


def place_label(properties: Mapping[str, Any]) -> str:
    """A place's label: both names, in alphabetical order so that neither side's comes first."""
    names = [properties.get("name_hy"), properties.get("name_az")]
    both = sorted({str(n) for n in names if n})
    if not both and properties.get("name"):
        both = [str(properties["name"])]
    return " / ".join(both)


def reference_popup(name: str, props: Mapping[str, Any]) -> str:
    """The popup of a feature of reference layer `name`: a place's names and note, else its
    properties; HTML-escaped."""
    if name == "places":
        rows: list[tuple[str, object]] = [
            ("Armenian name", escape(props.get("name_hy"))),
            ("Azerbaijani name", escape(props.get("name_az"))),
            ("Note", escape(props.get("note"))),
        ]
        return f'<div class="truce-popup"><h4>{escape(place_label(props))}</h4>{_table(rows)}</div>'
    skip = {"name", "style"}
    rows = [
        (key.replace("_", " ").capitalize(), escape(value))
        for key, value in props.items()
        if key not in skip and not key.startswith("_") and value is not None
    ]
    title = props.get("name") or name.replace("_", " ").capitalize()
    return f'<div class="truce-popup"><h4>{escape(title)}</h4>{_table(rows)}</div>'
