"""Request shapes, for the OpenAPI document.

The routes read their bodies themselves (orjson, then `app.geojson` and `app.api.parsing`, which
name the bad field in a problem); these models only describe what they accept, so that clients
and tools that generate requests from the document (schemathesis in the tests) know the shapes.
The parsers stay the authority: they also accept what RFC 7946 allows beyond these (an altitude,
extra properties, rings in either winding order), and refuse what a schema cannot say (a
self-intersecting ring, a naive time).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from app.domain import Confidence, ReportKind, ZoneKind

__all__ = ["REPORTS_BODY", "REPORTS_OR_OBJECT_BODY", "ZONE_BODY", "ZONES_BODY", "add_schemas"]

Lon = Annotated[float, Field(ge=-180, le=180)]
Lat = Annotated[float, Field(ge=-90, le=90)]
Position = tuple[Lon, Lat]
Ring = Annotated[list[Position], Field(min_length=4, description="closed: last = first")]


class ReportPropertiesIn(BaseModel):
    """What a report says besides where (docs/data-model.md); other properties are kept as sent."""

    model_config = ConfigDict(extra="allow")

    party: str = Field(min_length=1, examples=["AZE"])
    observed_at: datetime | None = Field(
        None, description="RFC 3339 with an offset; /check judges a report without it at now"
    )
    uncertainty_m: float = Field(0.0, ge=0, description="radius in metres")
    kind: ReportKind | None = None
    unit: str | None = Field(None, description="the track key, with the party")
    source: str | None = None
    confidence: Confidence | None = None
    notes: str | None = None


class PointIn(BaseModel):
    """A GeoJSON Point: [longitude, latitude]."""

    type: Literal["Point"]
    coordinates: Position


class ReportFeatureIn(BaseModel):
    """A report as a Point Feature; `id` makes a re-sent report a duplicate."""

    type: Literal["Feature"]
    id: str | int | None = None
    geometry: PointIn
    properties: ReportPropertiesIn


class ReportCollectionIn(BaseModel):
    """Reports as a FeatureCollection: stored or checked all or nothing."""

    type: Literal["FeatureCollection"]
    features: list[ReportFeatureIn] = Field(min_length=1)


class ReportObjectIn(ReportPropertiesIn):
    """A bare report for `/check`: `lon` and `lat` beside the report's properties."""

    id: str | int | None = None
    lon: Lon
    lat: Lat


class PolygonIn(BaseModel):
    """A GeoJSON Polygon: an outer ring, then holes."""

    type: Literal["Polygon"]
    coordinates: list[Ring] = Field(min_length=1)


class MultiPolygonIn(BaseModel):
    """A GeoJSON MultiPolygon."""

    type: Literal["MultiPolygon"]
    coordinates: list[Annotated[list[Ring], Field(min_length=1)]] = Field(min_length=1)


class ZonePropertiesIn(BaseModel):
    """A zone's fields (docs/data-model.md); its id is the Feature's `id` or `properties.id`."""

    id: str | None = None
    name: str = Field(min_length=1)
    kind: ZoneKind
    valid_from: datetime = Field(description="RFC 3339 with an offset")
    valid_to: datetime | None = Field(None, description="exclusive; null: open")
    authorized_parties: list[str] = Field(default_factory=list)
    warning_distance_m: float = Field(1000.0, ge=0)
    boundary_uncertainty_m: float = Field(
        0.0, ge=0, description="how far the drawn line may be from the agreed one (m)"
    )
    agreement: str | None = None
    source: str | None = None


class ZoneFeatureIn(BaseModel):
    """A zone as a Polygon or MultiPolygon Feature (edges straight in lon/lat, RFC 7946)."""

    type: Literal["Feature"]
    id: str | None = None
    geometry: PolygonIn | MultiPolygonIn
    properties: ZonePropertiesIn


class ZoneCollectionIn(BaseModel):
    """Zones as a FeatureCollection: created all or none."""

    type: Literal["FeatureCollection"]
    features: list[ZoneFeatureIn] = Field(min_length=1)


_MODELS: list[type[BaseModel]] = [
    ReportFeatureIn,
    ReportCollectionIn,
    ReportObjectIn,
    ZoneFeatureIn,
    ZoneCollectionIn,
]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


REPORTS_BODY = {"anyOf": [_ref(ReportFeatureIn), _ref(ReportCollectionIn)]}
REPORTS_OR_OBJECT_BODY = {"anyOf": [*REPORTS_BODY["anyOf"], _ref(ReportObjectIn)]}
ZONE_BODY = _ref(ZoneFeatureIn)
ZONES_BODY = {"anyOf": [ZONE_BODY, _ref(ZoneCollectionIn)]}


def add_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with the schemas that the `*_BODY` constants refer to."""
    _, top = models_json_schema(
        [(model, "validation") for model in _MODELS],
        ref_template="#/components/schemas/{model}",
    )
    document.setdefault("components", {}).setdefault("schemas", {}).update(top["$defs"])
    return document
