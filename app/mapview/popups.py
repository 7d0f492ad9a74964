"""The HTML of popups and labels: zones, reference features and places, always escaped."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from app.domain import Party, Zone
from app.mapview.seconds import _iso, _zone_seconds
from app.mapview.style import ZONE_STYLES


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _table(rows: Iterable[tuple[str, object]]) -> str:
    cells = "".join(
        f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows if v not in (None, "")
    )
    return f"<table>{cells}</table>"


def _party_label(code: str, parties: Mapping[str, Party]) -> str:
    party = parties.get(code)
    name = f" ({_e(party.name)})" if party and party.name != code else ""
    return f"{_e(code)}{name}"


def zone_popup(zone: Zone, parties: Sequence[Party] = ()) -> str:
    """The popup of a zone version: every field an analyst asks about, HTML-escaped."""
    by_code = {p.code: p for p in parties}
    authorized = ", ".join(_party_label(c, by_code) for c in sorted(zone.authorized_parties))
    begin, stop = _zone_seconds(zone)
    style = ZONE_STYLES[zone.kind]
    return (
        f'<div class="truce-popup"><h4>{_e(zone.name)}</h4>'
        + _table(
            [
                ("Zone", f"{_e(zone.id)} (version {zone.version})"),
                ("Kind", f"{_e(zone.kind.value)} ({_e(style.label)})"),
                ("Authorized parties", authorized or "none"),
                ("Valid from", _e(_iso(begin))),
                ("Valid to", _e(_iso(stop))),
                ("Warning distance", f"{zone.warning_distance_m:,.0f} m"),
                ("Agreement", _e(zone.agreement)),
                ("Source and accuracy", _e(zone.source)),
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


def _reference_popup(name: str, props: Mapping[str, Any]) -> str:
    if name == "places":
        rows: list[tuple[str, object]] = [
            ("Armenian name", _e(props.get("name_hy"))),
            ("Azerbaijani name", _e(props.get("name_az"))),
            ("Note", _e(props.get("note"))),
        ]
        return f'<div class="truce-popup"><h4>{_e(place_label(props))}</h4>{_table(rows)}</div>'
    skip = {"name", "style"}
    rows = [
        (key.replace("_", " ").capitalize(), _e(value))
        for key, value in props.items()
        if key not in skip and not key.startswith("_") and value is not None
    ]
    title = props.get("name") or name.replace("_", " ").capitalize()
    return f'<div class="truce-popup"><h4>{_e(title)}</h4>{_table(rows)}</div>'
