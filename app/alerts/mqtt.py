"""MQTT both ways (aiomqtt): positions in as reports, events out.

**In.** Trackers publish a position on ``truce/reports/{party}/{unit}``: a JSON object with
`lon`, `lat`, `observed_at` and optionally `id`, `uncertainty_m`, `kind`, `source`,
`confidence`, `notes`. The topic names the party and the unit (it wins over the body). Positions
are micro-batched (up to `TRUCE_MQTT_BATCH`, or `TRUCE_MQTT_BATCH_MS` after the first) and
filed through `Service.add_reports`, the path of `POST /reports`: same validation, same
findings, incidents and events. Idempotent by id: a position without one gets
``mqtt:{party}:{unit}:{observed_at}`` (a unit is in one place at one time), so a message the
broker delivers twice is stored once. A bad message is answered on
``truce/errors/{party}/{unit}`` with an RFC 9457 problem (naming the field and the position's
`id`) and the rest of its batch is filed; nothing a tracker sends stops the bridge.

**Out.** Events are published on ``truce/events/{type}`` with QoS 1, the body that webhooks
get. The bridge's cursor is a subscription row of kind ``mqtt`` with a lease, delivered by
`Deliverer` like a webhook: at least once, in order, by one process at a time.

**Nothing lost.** A QoS 1 position is acknowledged to the broker (PUBACK) only once the batch
holding it is committed, or once its problem is published on the error topic; acks go in the
order the messages arrived. The bridge keeps a persistent session (`TRUCE_MQTT_CLIENT_ID`, clean
start off, `TRUCE_MQTT_SESSION_EXPIRY_S`), so after a crash or a lost connection the broker sends
again what was not acknowledged, and keeps for it what trackers publish meanwhile; ids make the
redelivery store nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt
import orjson
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from app.alerts.delivery import Deliverer, Outcome, event_body
from app.alerts.events import Event
from app.alerts.manage import delivery_options
from app.alerts.subscriptions import Subscription, SubscriptionSpec
from app.api.parsing import parse_reports
from app.errors import TruceError
from app.service import Service
from app.settings import Settings

__all__ = ["REPORT_TOPIC", "MqttBridge", "Position", "broker", "file_positions"]

log = logging.getLogger("truce.mqtt")

REPORT_TOPIC = "truce/reports/+/+"
_FIELDS = ("id", "uncertainty_m", "kind", "source", "confidence", "notes", "observed_at")


@dataclass(frozen=True, slots=True)
class Position:
    """One message of a tracker: its topic's party and unit, and its payload."""

    party: str
    unit: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Refusal:
    """A message that could not be filed, and the problem to answer on the error topic."""

    position: Position
    problem: dict[str, Any]

    @property
    def topic(self) -> str:
        """Where the problem is published."""
        return f"truce/errors/{self.position.party}/{self.position.unit}"


@dataclass(frozen=True, slots=True)
class Received:
    """A position as received, with what acknowledging its message takes."""

    position: Position
    mid: int
    qos: int


def _acknowledge(client: aiomqtt.Client, received: Received) -> None:
    if received.qos > 0:
        client._client.ack(received.mid, received.qos)


def broker(
    url: str, client_id: str = "truce-bridge", session_expiry_s: int = 604800
) -> dict[str, Any]:
    """aiomqtt's connection arguments for ``mqtt://[user[:password]@]host[:port]``, with a
    persistent session under `client_id`."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp") or not parts.hostname:
        raise ValueError(f"TRUCE_MQTT_URL must read mqtt://host:port, not {url!r}")
    # MQTT 5 lets the bridge raise its Receive Maximum: the broker then keeps up to 65,535
    # QoS 1 messages in flight to it instead of 20 (Mosquitto's default), and a burst from many
    # trackers is sent on at once rather than queued at the broker, which drops what exceeds its
    # queue (1,000 messages by default).
    connect = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    # Messages are acknowledged only once filed, so this is also how many positions may await
    # their batch; it is well above `TRUCE_MQTT_BATCH`, so acks never hold back the flow.
    connect.ReceiveMaximum = 65535
    # A persistent session: what the bridge had not acknowledged when it went away, and what was
    # published while it was away, is kept by the broker and sent again when it comes back.
    connect.SessionExpiryInterval = session_expiry_s
    options: dict[str, Any] = {
        "hostname": parts.hostname,
        "port": parts.port or (8883 if parts.scheme == "mqtts" else 1883),
        "protocol": aiomqtt.ProtocolVersion.V5,
        "properties": connect,
        "identifier": client_id,
        "clean_start": False,
    }
    if parts.username:
        options["username"] = unquote(parts.username)
        options["password"] = unquote(parts.password or "") or None
    if parts.scheme == "mqtts":
        import ssl

        options["tls_context"] = ssl.create_default_context()
    return options


def _problem(detail: str, field: str | None, position: Position, sent_id: Any) -> dict[str, Any]:
    return {
        "type": "urn:truce:problem:invalid-report",
        "title": "Invalid report",
        "status": 422,
        "detail": detail,
        "field": field,
        "topic": f"truce/reports/{position.party}/{position.unit}",
        "id": sent_id,
    }


def _feature(position: Position) -> tuple[dict[str, Any] | None, str | None, Any]:
    """The GeoJSON Feature of a message, or why it is none; and the id it was sent with."""
    try:
        body = orjson.loads(position.payload)
    except orjson.JSONDecodeError as exc:
        return None, f"body: not JSON ({exc})", None
    if not isinstance(body, dict):
        return None, "body: must be a JSON object with lon, lat and observed_at", None
    sent_id = body.get("id")
    for name in ("lon", "lat"):
        value = body.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"{name}: must be a number", sent_id
    properties = {k: body[k] for k in _FIELDS if k in body}
    properties["party"], properties["unit"] = position.party, position.unit
    # The id goes on the Feature (where the columnar parser of POST /reports reads it).
    report_id = properties.pop("id", None)
    if report_id is None and isinstance(body.get("observed_at"), str):
        report_id = f"mqtt:{position.party}:{position.unit}:{body['observed_at']}"
    feature: dict[str, Any] = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [body["lon"], body["lat"]]},
        "properties": properties,
    }
    if report_id is not None:
        feature["id"] = report_id
    return feature, None, sent_id


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
            filed = service.add_reports(batch, actor)
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
        filed = service.add_reports(batch, actor)
    except TruceError as exc:
        field = (exc.field or "").removeprefix("features/0/").removeprefix("properties/")
        return 0, 0, [Refusal(position, _problem(exc.message, field or None, position, sent_id))]
    return len(filed.stored), len(filed.duplicates), []


class MqttBridge:
    """Positions in, events out, over one broker connection; reconnects until stopped."""

    def __init__(self, service: Service, settings: Settings) -> None:
        assert settings.mqtt_url
        self.service = service
        self.settings = settings
        self.options = broker(
            settings.mqtt_url, settings.mqtt_client_id, settings.mqtt_session_expiry_s
        )
        self.filed = 0
        self.duplicates = 0
        self.refused = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set; a lost broker is retried every second."""
        while not stop.is_set():
            try:
                client = aiomqtt.Client(**self.options)
                # aiomqtt 2.5 has no manual acknowledgement of its own; paho's is switched on
                # before connecting, and `_acknowledge` sends the PUBACKs once positions are filed.
                client._client.manual_ack_set(True)
                async with client:
                    await self._serve(client, stop)
            except aiomqtt.MqttError as exc:
                log.warning("MQTT broker %s: %s", self.settings.mqtt_url, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def _serve(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        await client.subscribe(REPORT_TOPIC, qos=1)
        queue: asyncio.Queue[Received] = asyncio.Queue()

        async def publish(sub: Subscription, event: Event) -> Outcome:
            started = time.perf_counter()
            try:
                await client.publish(f"truce/events/{event.type}", event_body(event), qos=1)
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
            asyncio.create_task(self._read(client, queue)),
            asyncio.create_task(self._file(client, queue)),
            asyncio.create_task(publisher.run(stop)),
        ]
        try:
            stopped = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([*tasks, stopped], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopped and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
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

    async def _read(self, client: aiomqtt.Client, queue: asyncio.Queue[Received]) -> None:
        async for message in client.messages:
            parts = message.topic.value.split("/")
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                payload = str(payload).encode()
            position = Position(parts[2], parts[3], bytes(payload))
            queue.put_nowait(Received(position, message.mid, message.qos))

    async def _file(self, client: aiomqtt.Client, queue: asyncio.Queue[Received]) -> None:
        limit = self.settings.mqtt_batch
        wait_s = self.settings.mqtt_batch_ms / 1000
        last_filing_s = 0.0
        while True:
            batch = [await queue.get()]
            # Under load, wait about as long as the last batch took to file (at most 0.5 s):
            # batches grow with the load, and each costs incidents one recomputation of its
            # units' tracks. Idle, a position waits `TRUCE_MQTT_BATCH_MS` at most.
            deadline = time.monotonic() + max(wait_s, min(last_filing_s, 0.5))
            while len(batch) < limit:
                left = deadline - time.monotonic()
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), left))
                except TimeoutError:
                    break
            started = time.perf_counter()
            positions = [r.position for r in batch]
            try:
                stored, duplicates, refusals = await asyncio.to_thread(
                    file_positions, self.service, positions
                )
                log.debug("filed %d positions in %.3f s", len(batch), time.perf_counter() - started)
            except Exception as exc:  # the store is down: answer every position, then reconnect
                log.warning("cannot file %d MQTT positions: %s", len(batch), exc)
                refusals = [
                    Refusal(
                        p,
                        {
                            **_problem(str(exc), None, p, None),
                            "status": 503,
                            "title": "Storage unavailable",
                        },
                    )
                    for p in positions
                ]
                stored = duplicates = 0
                failure: Exception | None = exc
            else:
                failure = None
            self.filed += stored
            self.duplicates += duplicates
            self.refused += len(refusals)
            for refusal in refusals:
                await client.publish(refusal.topic, orjson.dumps(refusal.problem), qos=1)
            if failure is not None:
                # Not filed, so not acknowledged: a new connection has the broker send them again.
                raise aiomqtt.MqttError(f"cannot file positions: {failure}")
            # Committed, and the refused answered: now the broker may forget them. In the order
            # of receipt, which MQTT asks of QoS 1 acknowledgements.
            for received in batch:
                _acknowledge(client, received)
