"""MQTT both ways (aiomqtt): positions in as reports, events out.

Topics sit under a root, `TRUCE_MQTT_TOPIC_ROOT` (``truce`` by default; one broker can serve
several deployments, or test runs, each under its own root).

**In.** Trackers publish a position on ``{root}/reports/{party}/{unit}``: a JSON object with
`lon`, `lat`, `observed_at` and optionally `id`, `uncertainty_m`, `kind`, `source`,
`confidence`, `notes`. The topic names the party and the unit (it wins over the body). Positions
are read by the inbox (`app.alerts.mqtt_inbox`, a small MQTT 5 client: aiomqtt's per-message
cost was the bottleneck), micro-batched (every position waiting, up to `TRUCE_MQTT_BATCH`, once
that many wait or the oldest has waited `TRUCE_MQTT_BATCH_MS`) and filed through
`Service.add_reports`, the path of `POST /reports`: same validation, incidents and events.
Idempotent by id: a position without one gets ``mqtt:{party}:{unit}:{observed_at}`` (a unit is
in one place at one time), so a message the broker delivers twice is stored once. A bad message
is answered on ``{root}/errors/{party}/{unit}`` with an RFC 9457 problem (naming the field and
the position's `id`) and the rest of its batch is filed; nothing a tracker sends stops the
bridge.

**Out.** Events are published on ``{root}/events/{type}`` with QoS 1, the body that webhooks get,
through aiomqtt on a second connection (``{client id}-out``, a clean session). The bridge's
cursor is a subscription row of kind ``mqtt`` with a lease, delivered by `Deliverer` like a
webhook: at least once, in order, by one process at a time.

**Nothing lost.** A QoS 1 position is acknowledged to the broker (PUBACK) only once the batch
holding it is committed, or once its problem is published on the error topic; acks go in the
order the messages arrived, a batch's in one write. The bridge keeps a persistent session
(`TRUCE_MQTT_CLIENT_ID`, clean start off, `TRUCE_MQTT_SESSION_EXPIRY_S`), so after a crash or a
lost connection the broker sends again what was not acknowledged, and keeps for it what trackers
publish meanwhile; ids make the redelivery store nothing twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt
import orjson

from app.alerts.delivery import Deliverer, Outcome, event_body
from app.alerts.events import Event
from app.alerts.manage import delivery_options
from app.alerts.mqtt_inbox import Broker, Inbox, broker, open_inbox
from app.alerts.mqtt_wire import Inbound, ProtocolError
from app.alerts.subscriptions import Subscription, SubscriptionSpec
from app.api.parsing import parse_reports
from app.errors import TruceError
from app.service import Service
from app.settings import Settings
from app.validate import MAX_ID_CHARS

__all__ = [
    "Broker",
    "MqttBridge",
    "Position",
    "broker",
    "file_positions",
    "file_received",
    "report_filter",
]

log = logging.getLogger("truce.mqtt")


def report_filter(root: str) -> str:
    """The subscription of the bridge under `TRUCE_MQTT_TOPIC_ROOT`: every party's units."""
    return f"{root}/reports/+/+"


_FIELDS = ("id", "uncertainty_m", "kind", "source", "confidence", "notes", "observed_at")


@dataclass(frozen=True, slots=True)
class Position:
    """One message of a tracker: its topic's party and unit, its payload, and the topic root
    it came under (its refusal is answered under the same root)."""

    party: str
    unit: str
    payload: bytes
    root: str = "truce"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A message that could not be filed, and the problem to answer on the error topic."""

    position: Position
    problem: dict[str, Any]

    @property
    def topic(self) -> str:
        """Where the problem is published."""
        p = self.position
        return f"{p.root}/errors/{p.party}/{p.unit}"


def _field(field: str | None, detail: str) -> str | None:
    """The field of a problem as the tracker sent it: coordinates are `lon` and `lat` here."""
    if field == "geometry/coordinates":
        return "lat" if detail.startswith("latitude") else "lon"
    return field


def _echo(sent_id: Any) -> Any:
    """The id a refused message was sent with, as the problem repeats it: a string is cut to
    `MAX_ID_CHARS` (a huge one is not sent back whole), anything but a string or a number is
    left out."""
    if isinstance(sent_id, str):
        return sent_id[:MAX_ID_CHARS]
    if isinstance(sent_id, int | float) and not isinstance(sent_id, bool):
        return sent_id
    return None


def _problem(detail: str, field: str | None, position: Position, sent_id: Any) -> dict[str, Any]:
    return {
        "type": "urn:truce:problem:invalid-report",
        "title": "Invalid report",
        "status": 422,
        "detail": detail,
        "field": _field(field, detail),
        "topic": f"{position.root}/reports/{position.party}/{position.unit}",
        "id": _echo(sent_id),
    }


_BODY_KEYS = frozenset({"lon", "lat", *_FIELDS})


def _feature(position: Position) -> tuple[dict[str, Any] | None, str | None, Any]:
    """The GeoJSON Feature of a message, or why it is none; and the id it was sent with."""
    try:
        body = orjson.loads(position.payload)
    except orjson.JSONDecodeError as exc:
        return None, f"body: not JSON ({exc})", None
    if type(body) is not dict:
        return None, "body: must be a JSON object with lon, lat and observed_at", None
    sent_id = body.get("id")
    lon, lat = body.pop("lon", None), body.pop("lat", None)
    for name, value in (("lon", lon), ("lat", lat)):
        if type(value) is not float and type(value) is not int:  # bool is no number here
            return None, f"{name}: must be a number", sent_id
    # The body becomes the properties (one dict less a message); keys of no report field are
    # left out, as they always were.
    properties = body if _BODY_KEYS.issuperset(body) else {k: body[k] for k in _FIELDS if k in body}
    properties["party"], properties["unit"] = position.party, position.unit
    # The id goes on the Feature (where the columnar parser of POST /reports reads it).
    report_id = properties.pop("id", None)
    if report_id is None and type(observed := body.get("observed_at")) is str:
        report_id = f"mqtt:{position.party}:{position.unit}:{observed}"
    feature: dict[str, Any] = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": properties,
    }
    if report_id is not None:
        feature["id"] = report_id
    return feature, None, sent_id


def _positions(topics: Sequence[bytes], payloads: Sequence[bytes]) -> list[Position]:
    """Positions of received messages; the subscription (``{root}/reports/+/+``) makes the
    last two levels of every topic the party and the unit (the root may have levels of its
    own, so the topic is split from the right), and the broker checked it is UTF-8."""
    names: dict[bytes, tuple[str, str, str]] = {}  # a unit sends many: each topic is split once
    out = []
    for topic, payload in zip(topics, payloads, strict=True):
        name = names.get(topic)
        if name is None:
            prefix, party, unit = topic.decode("utf-8", "replace").rsplit("/", 2)
            name = names[topic] = (party, unit, prefix.removesuffix("/reports"))
        out.append(Position(name[0], name[1], payload, name[2]))
    return out


def file_received(
    service: Service, topics: Sequence[bytes], payloads: Sequence[bytes], actor: str = "mqtt"
) -> tuple[int, int, list[Refusal]]:
    """`file_positions` of messages as the inbox holds them (topics and payloads as bytes)."""
    return file_positions(service, _positions(topics, payloads), actor)


def _no_id(index: int | None) -> str:
    # Reached only for a position without id nor a string observed_at, which parsing refuses.
    return f"mqtt-{index}"


def file_positions(
    service: Service, positions: Sequence[Position], actor: str = "mqtt"
) -> tuple[int, int, list[Refusal]]:
    """File positions as one batch of reports (bad ones set aside); returns how many were
    stored, how many were duplicates, and the refusals."""
    refusals: list[Refusal] = []
    features: list[dict[str, Any]] = []
    kept: list[tuple[Position, Any]] = []
    for position in positions:
        feature, error, sent_id = _feature(position)
        if feature is None:
            field, _, detail = (error or "").partition(": ")
            refusals.append(Refusal(position, _problem(detail, field, position, sent_id)))
        else:
            features.append(feature)
            kept.append((position, sent_id))
    stored = duplicates = 0
    # A bad position fails the whole batch, naming its index: set it aside and file the rest.
    while features:
        try:
            batch = parse_reports(
                {"type": "FeatureCollection", "features": features},
                default_observed_at=None,
                assign_id=_no_id,
                allow_object=False,
            )
            # Findings are not sent back over MQTT: not built (incidents judge anew).
            filed = service.add_reports(batch, actor, findings=False)
        except TruceError as exc:
            index = exc.index
            if index is None or not 0 <= index < len(features):
                if len(features) == 1:
                    index = 0
                else:  # no index (a conflict of ids...): file one by one to find it
                    for feature, origin in zip(features, kept, strict=True):
                        s, d, r = _file_one(service, feature, origin, actor)
                        stored, duplicates = stored + s, duplicates + d
                        refusals.extend(r)
                    return stored, duplicates, refusals
            position, sent_id = kept.pop(index)
            features.pop(index)
            field = (exc.field or "").removeprefix(f"features/{index}/").removeprefix("properties/")
            refusals.append(
                Refusal(position, _problem(exc.message, field or None, position, sent_id))
            )
            continue
        stored += len(filed.stored)
        duplicates += len(filed.duplicates)
        break
    return stored, duplicates, refusals


def _file_one(
    service: Service, feature: dict[str, Any], origin: tuple[Position, Any], actor: str
) -> tuple[int, int, list[Refusal]]:
    position, sent_id = origin
    try:
        batch = parse_reports(
            {"type": "FeatureCollection", "features": [feature]},
            default_observed_at=None,
            assign_id=_no_id,
            allow_object=False,
        )
        filed = service.add_reports(batch, actor, findings=False)
    except TruceError as exc:
        field = (exc.field or "").removeprefix("features/0/").removeprefix("properties/")
        return 0, 0, [Refusal(position, _problem(exc.message, field or None, position, sent_id))]
    return len(filed.stored), len(filed.duplicates), []


class MqttBridge:
    """Positions in, events out, over two broker connections; reconnects until stopped.

    Positions come on the inbox (`app.alerts.mqtt_inbox`, the persistent session); events and
    refusals go out through aiomqtt on a connection of their own (``{client id}-out``, a clean
    session: what it publishes is acknowledged before the bridge moves on).
    """

    def __init__(self, service: Service, settings: Settings) -> None:
        assert settings.mqtt_url
        self.service = service
        self.settings = settings
        self.broker = broker(
            settings.mqtt_url, settings.mqtt_client_id, settings.mqtt_session_expiry_s
        )
        self.filed = 0
        self.duplicates = 0
        self.refused = 0
        #: Sizes of the batches filed (the last 1,000), for benchmarks and logs.
        self.batch_sizes: collections.deque[int] = collections.deque(maxlen=1000)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set; a lost broker is retried every second."""
        while not stop.is_set():
            try:
                client = aiomqtt.Client(
                    **self.broker.aiomqtt_options(f"{self.broker.client_id}-out")
                )
                async with client:
                    inbox = await open_inbox(
                        self.broker, report_filter(self.settings.mqtt_topic_root)
                    )
                    try:
                        await self._serve(client, inbox, stop)
                    finally:
                        inbox.close()
            except (aiomqtt.MqttError, ConnectionError, TimeoutError, ProtocolError) as exc:
                log.warning("MQTT broker %s: %s", self.settings.mqtt_url, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def _serve(self, client: aiomqtt.Client, inbox: Inbox, stop: asyncio.Event) -> None:
        async def publish(sub: Subscription, event: Event) -> Outcome:
            started = time.perf_counter()
            try:
                root = self.settings.mqtt_topic_root
                await client.publish(f"{root}/events/{event.type}", event_body(event), qos=1)
            except aiomqtt.MqttError as exc:
                return Outcome(None, (time.perf_counter() - started) * 1000, str(exc))
            return Outcome(200, (time.perf_counter() - started) * 1000)

        await self._ensure_cursor()
        publisher = Deliverer(
            self.service.store,
            self.service.store,
            delivery_options(self.settings),
            kind="mqtt",
            sender=publish,
        )
        tasks = [
            asyncio.create_task(self._file(client, inbox)),
            asyncio.create_task(inbox.keepalive(self.broker.keepalive_s / 2)),
            asyncio.create_task(publisher.run(stop)),
        ]
        try:
            stopped = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([*tasks, stopped], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopped and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            inbox.check()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task

    async def _ensure_cursor(self) -> None:
        store = self.service.store
        if await asyncio.to_thread(store.list_subscriptions, "mqtt"):
            return
        spec = SubscriptionSpec(url=self.settings.mqtt_url or "", description="MQTT events")
        cursor = await asyncio.to_thread(store.last_event_id)
        # Two processes starting together may both try; the unique index keeps one.
        with contextlib.suppress(Exception):
            await asyncio.to_thread(store.add_subscription, spec, "", "mqtt", cursor, "mqtt")

    async def _next_batch(self, inbox: Inbox) -> Inbound:
        """The next batch: every pending position up to `TRUCE_MQTT_BATCH`, once that many
        are pending or the oldest has waited `TRUCE_MQTT_BATCH_MS`.

        While a batch is being filed the next one gathers in the inbox, so under load batches
        grow by themselves to what arrives in one filing (bigger batches cost incidents fewer
        recomputations of a unit's track); idle, a position waits the deadline at most.
        """
        limit = self.settings.mqtt_batch
        inbox.threshold = limit
        while not inbox.pending.payloads:
            inbox.check()
            await inbox.arrived.wait()
            inbox.check()
        left = inbox.first_at + self.settings.mqtt_batch_ms / 1000 - time.monotonic()
        if left > 0 and len(inbox.pending.payloads) < limit:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(inbox.full.wait(), left)
            inbox.check()
        return inbox.take(limit)

    async def _file(self, client: aiomqtt.Client, inbox: Inbox) -> None:
        while True:
            batch = await self._next_batch(inbox)
            started = time.perf_counter()
            try:
                stored, duplicates, refusals = await asyncio.to_thread(
                    file_received, self.service, batch.topics, batch.payloads
                )
                took = time.perf_counter() - started
                log.debug("filed %d positions in %.3f s", len(batch.payloads), took)
            except Exception as exc:  # the store is down: answer every position, then reconnect
                log.warning("cannot file %d MQTT positions: %s", len(batch.payloads), exc)
                refusals = [
                    Refusal(
                        p,
                        {
                            **_problem(str(exc), None, p, None),
                            "status": 503,
                            "title": "Storage unavailable",
                        },
                    )
                    for p in _positions(batch.topics, batch.payloads)
                ]
                stored = duplicates = 0
                failure: Exception | None = exc
            else:
                failure = None
            self.batch_sizes.append(len(batch.payloads))
            self.filed += stored
            self.duplicates += duplicates
            self.refused += len(refusals)
            if refusals:
                await asyncio.gather(
                    *(client.publish(r.topic, orjson.dumps(r.problem), qos=1) for r in refusals)
                )
            if failure is not None:
                # Not filed, so not acknowledged: a new connection has the broker send them again.
                raise ConnectionError(f"cannot file positions: {failure}")
            # Committed, and the refused answered: now the broker may forget them. In the order
            # of receipt, which MQTT asks of QoS 1 acknowledgements; one write for the batch.
            inbox.ack(batch.packet_ids)
