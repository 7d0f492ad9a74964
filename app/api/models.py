"""Response shapes, for the OpenAPI document.

The handlers write their answers with orjson straight from dicts (building and validating a
pydantic model per feature would cost more than the check itself), so these models describe the
answers rather than produce them; the tests check that real answers validate against them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.domain import TrackEventKind, Verdict

__all__ = [
    "AuditEntryOut",
    "CollectionOut",
    "Collections",
    "Conformance",
    "AuditPage",
    "Feature",
    "FeatureCollection",
    "FindingCollection",
    "FindingFeature",
    "FindingProperties",
    "Health",
    "LandingPage",
    "Link",
    "Page",
    "PointGeometry",
    "Problem",
    "ReportsFiled",
    "TrackEventOut",
    "TrackOut",
    "TrackSummaryOut",
    "TrackUnitOut",
    "TrackUnits",
    "ZoneCollection",
]


class Link(BaseModel):
    """An OGC API link: `self`, `next`."""

    href: str
    rel: str
    type: str | None = None
    title: str | None = None


class Feature(BaseModel):
    """A GeoJSON Feature (RFC 7946)."""

    type: Literal["Feature"] = "Feature"
    id: str | int | None = None
    geometry: dict[str, Any] | None
    properties: dict[str, Any] | None


class FeatureCollection(BaseModel):
    """A GeoJSON FeatureCollection."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[Feature]


class Page(FeatureCollection):
    """One page of a listing, OGC API – Features style: follow the `next` link for more."""

    numberReturned: int  # camelCase: the OGC API names
    numberMatched: int | None = None
    timeStamp: datetime
    links: list[Link]


class IncursionPage(Page):
    """A page of violations, with the matched ones counted by certainty."""

    violationsByVerdict: dict[str, int] = Field(
        description="of numberMatched: how many are `inside` (certain) and how many `possible`"
    )


class ZoneCollection(FeatureCollection):
    """Zones written back, with notes on what was repaired or assumed on the way in."""

    warnings: list[str] = Field(default_factory=list)


class PointGeometry(BaseModel):
    """A GeoJSON Point."""

    type: Literal["Point"] = "Point"
    coordinates: list[float]


class FindingProperties(BaseModel):
    """A finding: one report against one zone (docs/data-model.md, "Findings")."""

    report_id: str = Field(description="the report's id, else its index in the input")
    zone_id: str
    zone_name: str
    verdict: Verdict
    violation: bool
    depth_m: float = Field(description="geodesic metres to the boundary, + inside, − outside")
    party: str
    observed_at: datetime


class FindingFeature(BaseModel):
    """A finding as a Point Feature at its report."""

    type: Literal["Feature"] = "Feature"
    geometry: PointGeometry
    properties: FindingProperties


class FindingCollection(BaseModel):
    """The findings of a check, and warnings about the input (such as swapped coordinates)."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[FindingFeature]
    numberReturned: int
    violations: int
    violationsByVerdict: dict[str, int] = Field(
        description="the violations counted by certainty: `inside` apart from `possible`"
    )
    warnings: list[str]
    judged_at: datetime | None = Field(
        default=None,
        description="`POST /check`: the time used for reports sent without `observed_at`",
    )


class ReportsFiled(BaseModel):
    """What `POST /reports` did: stored, duplicate (already stored), and what the check found."""

    stored: list[str]
    duplicates: list[str]
    findings: FindingCollection
    warnings: list[str]


TrackState = Literal["in", "out", "stale"]


class ReportCorrected(BaseModel):
    """What `PUT /reports/{id}` did: the report's latest version, whether this request made it,
    and what the check of that version found."""

    report: Feature
    version: int
    changed: bool
    findings: FindingCollection
    warnings: list[str]


class TrackEventOut(BaseModel):
    """A unit entering, leaving or crossing a zone, or going stale in it (docs/rule.md).

    `at` is the time of the report that showed it (a crossing: the report after the segment;
    `stale`: the time the unit became stale, with its latest report). An exit carries `dwell_s`,
    the seconds since the entry it ends.

    The one definition of a track event's shape: the rows of `app.tracks.track_events`
    (`EVENT_COLUMNS`), which the API writes as they are.
    """

    party: str
    unit: str
    zone_id: str
    kind: TrackEventKind
    at: datetime
    report_id: str
    dwell_s: float | None


class TrackSummaryOut(BaseModel):
    """Per unit and zone: state (in, out, stale), entry, exit, dwell, withdrawal, return."""

    party: str
    unit: str
    zone_id: str
    state: TrackState
    entered_at: datetime | None
    last_exited_at: datetime | None
    last_report_at: datetime
    dwell_s: float
    inside_now: bool
    withdrawn: bool
    initial_lon: float | None
    initial_lat: float | None
    distance_to_initial_m: float | None
    back_at_initial: bool


class TrackUnitOut(BaseModel):
    """A unit in `GET /tracks`: its latest report and position, and its state per zone.

    `zones` maps each zone the unit was ever inside to `in`, `out` or `stale`.
    """

    party: str
    unit: str
    reports: int
    last_report_id: str
    last_report_at: datetime
    lon: float
    lat: float
    zones: dict[str, TrackState]


class TrackUnits(BaseModel):
    """The units with tracks, by party and unit."""

    units: list[TrackUnitOut]
    numberMatched: int
    numberReturned: int
    timeStamp: datetime
    links: list[Link]


class TrackOut(BaseModel):
    """A unit's reports, its zone events and its per-zone summary."""

    reports: FeatureCollection
    events: list[TrackEventOut]
    summary: list[TrackSummaryOut]


class AuditEntryOut(BaseModel):
    """One write: who did what to what, and when."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: str | None


class AuditPage(BaseModel):
    """Audit entries oldest first; follow `next` for more."""

    entries: list[AuditEntryOut]
    numberMatched: int
    numberReturned: int
    links: list[Link]


class ZoneSetAside(BaseModel):
    """A stored zone version that the engine could not prepare, so judges nothing against."""

    id: str
    version: int
    reason: str


class Health(BaseModel):
    """Liveness; `degraded` names the zones set aside (the service still answers for the rest)."""

    status: Literal["ok", "degraded"]
    version: str
    zones_set_aside: list[ZoneSetAside] | None = None


class Conformance(BaseModel):
    """The OGC conformance classes implemented."""

    conformsTo: list[str]  # camelCase: the OGC API name


class Extent(BaseModel):
    """A collection's extent: `spatial.bbox` (CRS84) and `temporal.interval` (null: open)."""

    spatial: dict[str, Any]
    temporal: dict[str, Any]


class CollectionOut(BaseModel):
    """One OGC API collection: its id, title, extent, CRS and links."""

    id: str
    title: str
    description: str
    itemType: Literal["feature"]
    crs: list[str]
    storageCrs: str
    extent: Extent
    links: list[Link]


class Collections(BaseModel):
    """Every collection."""

    links: list[Link]
    collections: list[CollectionOut]


class LandingPage(BaseModel):
    """The landing page as JSON: links to the API definition, docs, conformance, collections,
    the map and health; what the stored data covers."""

    title: str
    description: str
    version: str
    links: list[Link]
    data: dict[str, Any]


class Problem(BaseModel):
    """An RFC 9457 problem, with the bad field and the feature index in a batch."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    field: str | None = None
    index: int | None = None


_PROBLEM_TEXT = {
    400: "the request cannot be read (not JSON, a bad parameter)",
    401: "no API key, or an unknown one",
    403: "the key's role does not allow this",
    404: "no such zone or resource",
    409: "conflicts with what is stored",
    413: "the body is over the size or feature limit",
    422: "the body is JSON but not acceptable; `field` and `index` say where",
    503: "the database is locked, read-only or failing (`cause` says which); retry after "
    "`Retry-After` seconds",
    507: "the database's disk is full; retry after `Retry-After` seconds",
}


#: Where `problems` points; `add_problem_schema` puts the schema there.
_PROBLEM_SCHEMA = {"$ref": "#/components/schemas/Problem"}


def add_problem_schema(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with the `Problem` schema that `problems` refers to."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    return document


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the problems a route may answer."""
    # A `model` here would be filed under the route's own media type (geo+json), not problem+json.
    return {
        code: {
            "description": _PROBLEM_TEXT[code],
            "content": {"application/problem+json": {"schema": _PROBLEM_SCHEMA}},
        }
        for code in codes
    }


def json_body(description: str, example: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI `requestBody` for a route that reads its JSON body itself (`app.api.inputs`)."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {
                "application/geo+json": {"schema": schema, "example": example},
                "application/json": {"schema": schema},
            },
        }
    }


POINT_EXAMPLE: dict[str, Any] = {
    "type": "Feature",
    "id": "op-7-2022-03-24-0600",
    "geometry": {"type": "Point", "coordinates": [46.81, 40.02]},
    "properties": {
        "party": "AZE",
        "observed_at": "2022-03-24T06:00:00+04:00",
        "uncertainty_m": 500,
        "kind": "troops",
        "unit": "parukh-group",
    },
}
