"""Webhook subscriptions (admin): create, list, read, delete, their delivery attempts, replay.

The signing secret is in the answer of `POST /subscriptions` only. Validation is
`app.alerts.subscriptions.check_spec` (422 naming the field); delivery is `app.alerts.delivery`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from app.alerts.manage import create_subscription, replay
from app.alerts.subscriptions import DeliveryAttempt, Subscription, check_spec
from app.api.auth import AdminKey
from app.api.deps import MAX_LIMIT, MAX_POSITION, ServiceDep, SettingsDep, href, parse_instant
from app.api.models import problems
from app.api.responses import ORJSONResponse
from app.errors import InvalidParameter

router = APIRouter(tags=["subscriptions"])

SubscriptionId = Annotated[
    int, Path(ge=1, le=MAX_POSITION, description="the subscription's id", examples=[1])
]


class SubscriptionIn(BaseModel):
    """Where to send which events. Empty lists mean "any"."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "url": "https://alerts.example.org/truce",
                "types": ["incident.opened", "incident.closed"],
                "zones": ["nk-pk-zone"],
                "parties": ["AZE"],
                "verdicts": ["inside"],
                "min_depth_m": 100,
            }
        },
    )

    url: Any = Field(description="http or https URL that receives the events (POST)")
    types: Any = Field(default=None, description="event types (default: every type)")
    zones: Any = Field(default=None, description="zone ids")
    parties: Any = Field(default=None, description="party codes")
    verdicts: Any = Field(default=None, description="`inside`, `possible`")
    min_depth_m: Any = Field(default=None, description="least depth inside the zone, metres")
    description: Any = Field(default=None, description="a note for operators")


class SubscriptionOut(BaseModel):
    """A subscription and its delivery state (the secret only when it was just made)."""

    id: int
    url: str
    types: list[str]
    zones: list[str]
    parties: list[str]
    verdicts: list[str]
    min_depth_m: float | None
    description: str | None
    created_at: str
    created_by: str
    state: str = Field(description="`active`, or `failed` (held after the retry window)")
    cursor: int = Field(description="the last event delivered (or passed over by the filters)")
    attempts: int = Field(description="failed attempts at the next event")
    failing_since: str | None
    next_attempt_at: str | None
    secret: str | None = Field(default=None, description="`whsec_...`, shown once at creation")


class SubscriptionList(BaseModel):
    """Every subscription."""

    subscriptions: list[SubscriptionOut]
    numberMatched: int
    numberReturned: int


class AttemptOut(BaseModel):
    """One delivery attempt."""

    id: int
    event_id: int
    webhook_id: str
    attempt: int
    at: str
    outcome: str = Field(description="`delivered`, `retry`, `failed` or `replayed` (a marker)")
    status: int | None = Field(description="the receiver's HTTP status (null: no answer)")
    latency_ms: float | None
    error: str | None


class AttemptList(BaseModel):
    """Attempts, newest first, with a link to older ones."""

    deliveries: list[AttemptOut]
    numberMatched: int
    numberReturned: int
    links: list[dict[str, str]]


def _iso(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())


def _out(sub: Subscription, secret: bool = False) -> dict[str, Any]:
    spec = sub.spec
    return {
        "id": sub.id,
        "url": spec.url,
        "types": list(spec.types),
        "zones": list(spec.zones),
        "parties": list(spec.parties),
        "verdicts": list(spec.verdicts),
        "min_depth_m": spec.min_depth_m,
        "description": spec.description,
        "created_at": _iso(sub.created_at),
        "created_by": sub.created_by,
        "state": sub.state,
        "cursor": sub.cursor,
        "attempts": sub.attempts,
        "failing_since": _iso(sub.failing_since),
        "next_attempt_at": _iso(sub.next_attempt_at),
        **({"secret": sub.secret} if secret else {}),
    }


def _attempt(attempt: DeliveryAttempt) -> dict[str, Any]:
    return {
        "id": attempt.id,
        "event_id": attempt.event_id,
        "webhook_id": attempt.webhook_id,
        "attempt": attempt.attempt,
        "at": _iso(attempt.at),
        "outcome": attempt.outcome,
        "status": attempt.status,
        "latency_ms": attempt.latency_ms,
        "error": attempt.error,
    }


@router.post(
    "/subscriptions",
    operation_id="createSubscription",
    response_model=SubscriptionOut,
    response_class=ORJSONResponse,
    status_code=201,
    responses=problems(400, 401, 403, 422, 503),
)
def create(
    body: SubscriptionIn,
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    key: AdminKey,
) -> Response:
    """Subscribe a URL to events; the answer carries the signing secret, shown only this once.

    Deliveries start with the next event committed (replay for earlier ones) and follow
    Standard Webhooks 1.0. A URL that is not http(s), has user info, or points at a link-local,
    multicast or reserved address is refused (422 naming `url`).
    """
    spec = check_spec(
        body.url,
        body.types,
        body.zones,
        body.parties,
        body.verdicts,
        body.min_depth_m,
        body.description,
        private_targets=settings.webhook_private_targets,
    )
    sub = create_subscription(service.store, spec, key.actor)
    return ORJSONResponse(
        _out(sub, secret=True),
        status_code=201,
        headers={"Location": href(request, f"/subscriptions/{sub.id}")},
    )


@router.get(
    "/subscriptions",
    operation_id="listSubscriptions",
    response_model=SubscriptionList,
    response_class=ORJSONResponse,
    responses=problems(400, 401, 403),
)
def list_all(service: ServiceDep, _: AdminKey) -> Response:
    """Every subscription with its delivery state (never its secret)."""
    subs = service.store.list_subscriptions()
    return ORJSONResponse(
        {
            "subscriptions": [_out(s) for s in subs],
            "numberMatched": len(subs),
            "numberReturned": len(subs),
        }
    )


@router.get(
    "/subscriptions/{subscription_id}",
    operation_id="getSubscription",
    response_model=SubscriptionOut,
    response_class=ORJSONResponse,
    responses=problems(400, 401, 403, 404),
)
def get_one(subscription_id: SubscriptionId, service: ServiceDep, _: AdminKey) -> Response:
    """One subscription and its delivery state (never its secret)."""
    return ORJSONResponse(_out(service.store.get_subscription(subscription_id)))


@router.delete(
    "/subscriptions/{subscription_id}",
    operation_id="deleteSubscription",
    response_model=SubscriptionOut,
    response_class=ORJSONResponse,
    responses=problems(400, 401, 403, 404, 503),
)
def delete(subscription_id: SubscriptionId, service: ServiceDep, key: AdminKey) -> Response:
    """Delete a subscription: nothing more is sent to it; its attempts stay in the database.
    Answers the subscription as it was."""
    sub = service.store.get_subscription(subscription_id)
    service.store.delete_subscription(subscription_id, key.actor)
    return ORJSONResponse(_out(sub))


@router.get(
    "/subscriptions/{subscription_id}/deliveries",
    operation_id="listDeliveries",
    response_model=AttemptList,
    response_class=ORJSONResponse,
    responses=problems(400, 401, 403, 404),
)
def deliveries(
    subscription_id: SubscriptionId,
    request: Request,
    service: ServiceDep,
    _: AdminKey,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="attempts per page")] = 100,
    before: Annotated[
        int | None,
        Query(ge=1, le=MAX_POSITION, description="attempts older than this attempt id"),
    ] = None,
) -> Response:
    """Every delivery attempt, newest first: event, attempt number, status, latency, error.

    A `next` link pages to older attempts.
    """
    attempts, total = service.store.list_deliveries(subscription_id, limit, before)
    links = []
    if len(attempts) == limit and attempts:
        links.append(
            {
                "rel": "next",
                "href": href(
                    request,
                    f"/subscriptions/{subscription_id}/deliveries",
                    f"limit={limit}&before={attempts[-1].id}",
                ),
            }
        )
    return ORJSONResponse(
        {
            "deliveries": [_attempt(a) for a in attempts],
            "numberMatched": total,
            "numberReturned": len(attempts),
            "links": links,
        }
    )


_EVENT_ID = re.compile(r"^[0-9]{1,19}$")


@router.post(
    "/subscriptions/{subscription_id}/replay",
    operation_id="replaySubscription",
    response_model=SubscriptionOut,
    response_class=ORJSONResponse,
    status_code=202,
    responses=problems(400, 401, 403, 404, 503),
)
def replay_events(
    subscription_id: SubscriptionId,
    service: ServiceDep,
    key: AdminKey,
    since: Annotated[
        str,
        Query(description="an event id (redeliver it and every later one) or an RFC 3339 time"),
    ],
) -> Response:
    """Redeliver every event from `since` on (202): the subscription's cursor moves back, a
    held subscription is active again, and its events are sent again in order, with the same
    `webhook-id` as the first time."""
    text = since.strip()
    start: int | Any
    if _EVENT_ID.match(text):
        start = int(text)
        if not 1 <= start <= MAX_POSITION:
            raise InvalidParameter("an event id is at least 1", field="since")
    else:
        start = parse_instant(text, "since")
    sub = replay(service.store, subscription_id, start, key.actor)
    return ORJSONResponse(_out(sub), status_code=202)
