"""`GET /events`: the event log as Server-Sent Events, resumable with `Last-Event-ID`.

Each event goes out with its log id as the SSE `id:`, its type as `event:`, and as `data:` the
envelope webhooks send too: ``{"type", "id", "timestamp", "data"}``. A client that reconnects
with `Last-Event-ID` (browsers do by themselves) gets every event after that id exactly once,
as the log's ids grow in commit order. While idle a stream waits for the process's `EventTail`
(woken by the store when events commit, with a poll of the latest id as the net) and then reads
its events from its own position, in pages of `PAGE`; it sends a comment line every
`TRUCE_EVENTS_HEARTBEAT_S` without events so that proxies keep the connection open and clients
notice a dead one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from app.alerts.events import EVENT_TYPES, Event, EventFilter
from app.alerts.tail import EventTail
from app.api.auth import ViewerKey
from app.api.deps import ServiceDep, SettingsDep
from app.api.event_models import EVENT_STREAM_RESPONSE
from app.api.models import problems
from app.errors import InvalidParameter

router = APIRouter(tags=["events"])

#: Events read from the store in one query while a client catches up.
PAGE = 500
MAX_EVENT_ID = 2**63 - 1


def _names(value: str | None, field: str, known: tuple[str, ...] | None = None) -> frozenset[str]:
    """A comma-separated list parameter; `known` refuses values not in it, naming the field."""
    if value is None:
        return frozenset()
    names = frozenset(part.strip() for part in value.split(",") if part.strip())
    if not names:
        raise InvalidParameter("must name at least one value", field=field)
    if known is not None:
        for name in sorted(names):
            if name not in known:
                raise InvalidParameter(
                    f"unknown value {name!r}; known: {', '.join(known)}", field=field
                )
    return names


def _start(last_event_id: str | None, after: int | None) -> int | None:
    """Where to resume: `Last-Event-ID` (a reconnecting browser keeps the URL's `after`, so the
    header wins), else `after`, else None (from now)."""
    if last_event_id is not None and last_event_id.strip():
        text = last_event_id.strip()
        if not text.isascii() or not text.isdigit() or int(text) > MAX_EVENT_ID:
            raise InvalidParameter(
                "must be the id of an event (a whole number)", field="Last-Event-ID"
            )
        return int(text)
    return after


def envelope(event: Event) -> dict[str, object]:
    """What an event's `data:` carries: the same envelope as a webhook body."""
    return {
        "type": event.type,
        "id": event.id,
        "timestamp": event.created_at.astimezone(UTC).isoformat(),
        "data": event.data,
    }


@dataclass(frozen=True, slots=True)
class StreamStart:
    """A stream's filter and where it starts (None: after the latest event)."""

    wanted: EventFilter
    after: int | None
    follow: bool = True


def stream_query(
    service: ServiceDep,
    types: Annotated[
        str | None,
        Query(description=f"comma-separated event types ({', '.join(EVENT_TYPES)}); default all"),
    ] = None,
    zones: Annotated[str | None, Query(description="comma-separated zone ids")] = None,
    parties: Annotated[str | None, Query(description="comma-separated party codes")] = None,
    verdicts: Annotated[
        str | None, Query(description="comma-separated verdicts: inside, possible")
    ] = None,
    min_depth: Annotated[
        float | None,
        Query(ge=-1e7, le=1e7, allow_inf_nan=False, description="events with depth_m at least"),
    ] = None,
    after: Annotated[
        int | None,
        Query(ge=0, le=MAX_EVENT_ID, description="start after this event id (0: the whole log)"),
    ] = None,
    follow: Annotated[
        bool,
        Query(
            description="false: send the events already in the log (after the start) and end, "
            "instead of waiting for new ones"
        ),
    ] = True,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="resume after this event id (sent by browsers when they reconnect)",
        ),
    ] = None,
) -> StreamStart:
    """The stream's parameters, checked before the stream starts (a bad one is a 400)."""
    wanted = EventFilter(
        types=_names(types, "types", EVENT_TYPES),
        zones=_names(zones, "zones"),
        parties=frozenset(service.party_code(p) or p for p in _names(parties, "parties")),
        verdicts=_names(verdicts, "verdicts", ("inside", "possible")),
        min_depth_m=min_depth,
    )
    return StreamStart(wanted, _start(last_event_id, after), follow)


@router.get(
    "/events",
    operation_id="streamEvents",
    response_class=EventSourceResponse,
    responses={**problems(400, 401, 403), **EVENT_STREAM_RESPONSE},
)
async def stream_events(
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    _: ViewerKey,
    start: Annotated[StreamStart, Depends(stream_query)],
) -> AsyncIterator[ServerSentEvent]:
    """The event log as Server-Sent Events, live: each event once, in log order, with its id.

    Resume with the `Last-Event-ID` header (or `after`); without either the stream starts with
    the next event written. Filters as for webhook subscriptions: `types`, `zones`, `parties`,
    `verdicts` and `min_depth` (metres; events without a depth, such as `zone.changed`, do not
    pass it). Comment lines are sent as heartbeats while no event comes. With `follow=false`
    the stream ends once it has sent what the log holds (for scripts that poll).
    """
    wanted = start.wanted
    store = service.store
    position = start.after
    if position is None:
        position = await asyncio.to_thread(store.last_event_id)
    type_list = sorted(wanted.types) or None
    poll_s, heartbeat_s = settings.events_poll_s, settings.events_heartbeat_s
    tail: EventTail = request.app.state.event_tail
    # Tell a browser to come back soon after a dropped connection.
    yield ServerSentEvent(comment="truce events", retry=int(poll_s * 1000) + 1000)
    quiet_since = time.monotonic()
    while not await request.is_disconnected():
        # Every event up to the tail's latest id had committed before this read (ids grow in
        # commit order): once the read is complete, the stream has passed them all, even those
        # the `types` filter left in the database. Without this, a stream of some types would
        # wake again and again for the other types' events until one of its own came.
        committed = tail.latest
        events = await asyncio.to_thread(store.events_after, position, PAGE, type_list)
        for event in events:
            position = event.id
            if wanted.matches(event):
                quiet_since = time.monotonic()
                yield ServerSentEvent(data=envelope(event), event=event.type, id=str(event.id))
        if len(events) == PAGE:
            continue  # catching up: the next page at once
        position = max(position, committed)
        if not start.follow:
            return
        quiet = time.monotonic() - quiet_since
        if quiet >= heartbeat_s:
            quiet_since, quiet = time.monotonic(), 0.0
            yield ServerSentEvent(comment="heartbeat")
        # Woken when the process's watcher sees the log move (at most a second asleep, so a
        # closed connection is noticed).
        await tail.wait_past(position, min(heartbeat_s - quiet, 1.0))
