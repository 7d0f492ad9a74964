"""Zones and reference layers as styled GeoJSON with popups, the outline basemap, and the
map's bounds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson
import pandas as pd
import shapely

from app.domain import Party, Zone, ZoneKind
from app.mapview.popups import escape, place_label, reference_popup, zone_popup
from app.mapview.seconds import seconds_or_none, zone_seconds
from app.mapview.style import OUTLINE_COLOR, REFERENCE_STYLES, ZONE_STYLES


def zone_layers_by_kind(
    zones: Sequence[Zone], parties: Sequence[Party]
) -> dict[ZoneKind, dict[str, Any]]:
    """Zone versions as styled GeoJSON by kind, with popups, labels and validity `_from`/`_to`."""
    layers: dict[ZoneKind, dict[str, Any]] = {}
    for kind in ZoneKind:
        of_kind = [z for z in zones if z.kind == kind]
        if not of_kind:
            continue
        geometries = shapely.to_geojson(np.array([z.geometry for z in of_kind], dtype=object))
        features = []
        for zone, geometry in zip(of_kind, geometries, strict=True):
            begin, stop = zone_seconds(zone)
            features.append(
                {
                    "type": "Feature",
                    "id": f"{zone.id}@{zone.version}",
                    "geometry": orjson.loads(geometry),
                    "properties": {
                        "id": zone.id,
                        "version": zone.version,
                        "name": zone.name,
                        "kind": kind.value,
                        "_from": begin,
                        "_to": stop,
                        # Tooltips are HTML: escaped here like the popups.
                        "_label": escape(f"{zone.name} ({kind.value})"),
                        "_popup": zone_popup(zone, parties),
                        "style": ZONE_STYLES[kind].leaflet(),
                    },
                }
            )
        layers[kind] = {"type": "FeatureCollection", "features": features}
    return layers


def reference_layer(name: str, layer: Mapping[str, Any]) -> dict[str, Any]:
    """A reference layer with `style`, `_popup`, `_label` and validity `_from`/`_to` added."""
    style = REFERENCE_STYLES.get(name, REFERENCE_STYLES["other"])
    features = []
    for feature in layer.get("features", []):
        props = dict(feature.get("properties") or {})
        label = place_label(props) if name == "places" else str(props.get("name") or "")
        if name == "places":
            props["_html"] = (
                f'<div class="truce-place-label"><span class="truce-place-dot"></span>'
                f"{escape(label)}</div>"
            )
        props.update(
            {
                "_from": seconds_or_none(props.get("valid_from")),
                "_to": seconds_or_none(props.get("valid_to")),
                "_label": escape(label),
                "_popup": reference_popup(name, props),
                "style": style,
            }
        )
        features.append({**feature, "properties": props})
    return {"type": "FeatureCollection", "features": features}


def outlines(zones: Sequence[Zone], layers: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Every zone boundary and reference line once, simplified: a basemap for orientation."""
    geometries = [z.geometry for z in zones]
    for layer in layers.values():
        for feature in layer.get("features", []):
            geometry = feature.get("geometry")
            if geometry and geometry.get("type") in ("LineString", "MultiLineString"):
                geometries.append(shapely.geometry.shape(geometry))
    if not geometries:
        return {"type": "FeatureCollection", "features": []}
    lines = np.array(geometries, dtype=object)
    polygonal = np.isin(shapely.get_type_id(lines), [3, 6])  # Polygon, MultiPolygon
    lines[polygonal] = shapely.boundary(lines[polygonal])
    lines = shapely.set_precision(shapely.simplify(lines, 0.0005), 1e-5)
    unique = list(dict.fromkeys(shapely.to_wkb(lines)))
    shapes = shapely.from_wkb(unique)
    style = {"color": OUTLINE_COLOR, "weight": 1.2, "opacity": 0.9, "fill": False}
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": orjson.loads(g), "properties": {"style": style}}
            for g in shapely.to_geojson(shapes)
        ],
    }


def bounds(
    zones: Sequence[Zone], frame: pd.DataFrame, layers: Mapping[str, Mapping[str, Any]]
) -> tuple[float, float, float, float] | None:
    """(west, south, east, north) of zones and reports, else of the reference layers; or None."""
    boxes = [shapely.bounds(z.geometry) for z in zones]
    if len(frame):
        boxes.append(
            np.array(
                [frame["lon"].min(), frame["lat"].min(), frame["lon"].max(), frame["lat"].max()]
            )
        )
    if not boxes:
        for layer in layers.values():
            for feature in layer["features"]:
                if feature.get("geometry"):
                    boxes.append(shapely.bounds(shapely.geometry.shape(feature["geometry"])))
    if not boxes:
        return None
    stack = np.vstack(boxes)
    return (
        float(stack[:, 0].min()),
        float(stack[:, 1].min()),
        float(stack[:, 2].max()),
        float(stack[:, 3].max()),
    )
