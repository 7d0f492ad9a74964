"""Response shapes of the alert routes: incidents (`GET /incidents[/{id}]`) and the events of
the log, as `GET /events` streams them and `GET /incidents/{id}` lists them.

As in `app.api.models`, the handlers write their answers from dicts and these models describe
them for the OpenAPI document; the tests validate real answers against them and check that
each payload model has exactly the keys `app.alerts` writes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from app.alerts.events import EVENT_TYPES
from app.api.models import FeatureCollection, Link

__all__ = [
    "EVENT_STREAM_RESPONSE",
    "EventEnvelope",
    "IncidentDetail",
    "IncidentEvent",
    "IncidentEventData",
    "IncidentOut",
    "IncidentPage",
    "TrackStaleData",
    "TrackStaleEvent",
    "ZoneChangedData",
    "ZoneChangedEvent",
    "add_event_schemas",
]

IncidentVerdict = Literal["inside", "possible"]
IncidentState = Literal["open", "closed"]
CloseReason = Literal[
    "exited", "single-report", "corrected", "retracted", "superseded", "zone-changed"
]


class IncidentOut(BaseModel):
    """A violation episode of a (party, unit, zone), or of one report without a unit."""

    id: int
    party: str
    unit: str | None = Field(description="null: a report without a unit, its own incident")
    zone_id: str
    zone_name: str
    state: IncidentState
    verdict: IncidentVerdict = Field(description="the verdict of its deepest finding")
    depth_m: float = Field(description="its deepest point: geodesic metres inside the zone")
    opened_at: datetime = Field(description="its first report")
    last_seen_at: datetime = Field(description="its last report in the zone")
    closed_at: datetime | None = Field(
        description="the report that showed the unit out (`exited`), else when the write that "
        "closed it was made"
    )
    close_reason: CloseReason | None = Field(
        description="`exited`; `single-report` (no unit); `corrected`, `retracted`, "
        "`superseded` (its reports were changed away) or `zone-changed` (the zone no longer "
        "holds them)"
    )
    stale: bool = Field(
        description="open, and a `track.stale` event was raised for its last report"
    )
    deepest_report_id: str
    last_report_id: str
    report_ids: list[str] = Field(
        description="from the report that opened it to the one that closed it"
    )


class IncidentPage(BaseModel):
    """A page of incidents by opening time; follow `next` for more."""

    incidents: list[IncidentOut]
    numberMatched: int  # camelCase: the OGC API names, as the other listings
    numberReturned: int
    timeStamp: datetime
    links: list[Link]


class IncidentEventData(BaseModel):
    """The payload of `incident.opened`, `incident.updated` and `incident.closed`: the incident
    after the change (`incident.opened` shows it open, even when the same write closed it)."""

    incident_id: int
    party: str
    unit: str | None
    zone_id: str
    zone_name: str
    verdict: IncidentVerdict
    depth_m: float
    report_id: str = Field(description="its latest report")
    observed_at: datetime = Field(description="when its latest report was observed")
    state: IncidentState
    opened_at: datetime
    last_seen_at: datetime
    closed_at: datetime | None
    close_reason: CloseReason | None
    deepest_report_id: str
    reports: int = Field(description="how many reports it holds")


class TrackStaleData(BaseModel):
    """The payload of `track.stale`: a unit in a zone not reported for `stale_after_s`."""

    incident_id: int | None = Field(
        description="the open incident holding the unit; null for a party the zone authorises"
    )
    party: str
    unit: str
    zone_id: str
    zone_name: str
    verdict: IncidentVerdict = Field(description="the incident's, else that of the last report")
    depth_m: float = Field(description="the incident's deepest point, else the last report's")
    report_id: str = Field(description="the unit's last report")
    observed_at: datetime
    stale_after_s: float


class ZoneChangedData(BaseModel):
    """The payload of `zone.changed`."""

    zone_id: str
    version: int
    change: Literal["created", "updated", "retired"]
    name: str


class _Envelope(BaseModel):
    id: int = Field(description="its id in the log: grows in commit order")
    timestamp: datetime = Field(description="when it was written")


class IncidentEvent(_Envelope):
    """An incident opened, updated or closed."""

    type: Literal["incident.opened", "incident.updated", "incident.closed"]
    data: IncidentEventData


class TrackStaleEvent(_Envelope):
    """A unit gone stale inside a zone."""

    type: Literal["track.stale"]
    data: TrackStaleData


class ZoneChangedEvent(_Envelope):
    """A zone created, given a new version or retired."""

    type: Literal["zone.changed"]
    data: ZoneChangedData


#: An event as webhooks, MQTT and the stream send it: ``{"type", "id", "timestamp", "data"}``.
EventEnvelope = Annotated[
    IncidentEvent | TrackStaleEvent | ZoneChangedEvent, Field(discriminator="type")
]


class IncidentDetail(IncidentOut):
    """One incident with its reports (latest versions as Point features, with `version` and
    `retracted`) and its timeline: its events, oldest first."""

    reports: FeatureCollection
    timeline: list[EventEnvelope]


_EVENT_MODELS = (IncidentEvent, TrackStaleEvent, ZoneChangedEvent)

#: OpenAPI `responses` of `GET /events`: each SSE message's `data` is one envelope (merged into
#: the item schema FastAPI writes for a stream of `ServerSentEvent`s).
EVENT_STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events: `id` is the event's id in the log, `event` its "
        "type, `data` its envelope (JSON); comment lines are heartbeats",
        "content": {
            "text/event-stream": {
                "itemSchema": {
                    "properties": {
                        "event": {
                            "type": "string",
                            "enum": list(EVENT_TYPES),
                        },
                        "data": {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "contentSchema": {
                                "oneOf": [
                                    {"$ref": f"#/components/schemas/{model.__name__}"}
                                    for model in _EVENT_MODELS
                                ],
                                "discriminator": {"propertyName": "type"},
                            },
                        },
                    },
                }
            }
        },
    }
}


def add_event_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with the event schemas `EVENT_STREAM_RESPONSE` refers to."""
    _, top = models_json_schema(
        [(model, "serialization") for model in _EVENT_MODELS],
        ref_template="#/components/schemas/{model}",
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in top["$defs"].items():
        schemas.setdefault(name, schema)
    return document
