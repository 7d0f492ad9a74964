"""MQTT both ways against the machine's Mosquitto (127.0.0.1:1883), over both stores: 10,000
positions from 50 trackers are stored once each (a resend stores nothing), a bad message is
answered on the error topic, and every event reaches an MQTT subscriber, in order."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import aiomqtt
import orjson
import pytest

from app.alerts.mqtt import MqttBridge
from app.service import Service
from app.settings import Settings
from app.store import Store
from tests.factories import FAR, PARUKH

BROKER = "mqtt://127.0.0.1:1883"
UNITS = 50
PER_UNIT = 200


def _positions(prefix: str, root: str) -> list[tuple[str, bytes]]:
    """Each unit goes into the peacekeeping zone at Parukh, then far out of it."""
    messages = []
    for unit in range(UNITS):
        for k in range(PER_UNIT):
            lon, lat = PARUKH if k < PER_UNIT // 2 else FAR
            body = {
                "id": f"{prefix}-u{unit}-{k}",
                "lon": lon + unit * 1e-5,
                "lat": lat,
                "observed_at": f"2022-03-26T{k // 60:02d}:{k % 60:02d}:00Z",
                "kind": "vehicle",
            }
            messages.append((f"{root}/reports/AZE/{prefix}-u{unit}", orjson.dumps(body)))
    return messages


async def _collect(client: aiomqtt.Client, into: list[tuple[str, Any]]) -> None:
    async for message in client.messages:
        assert isinstance(message.payload, bytes)
        into.append((message.topic.value, orjson.loads(message.payload)))


async def _until(check: Any, timeout_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


async def _publish(client: aiomqtt.Client, messages: list[tuple[str, bytes]]) -> None:
    for start in range(0, len(messages), 500):
        await asyncio.gather(
            *(client.publish(t, p, qos=1) for t, p in messages[start : start + 500])
        )


def test_ten_thousand_positions_are_stored_once_and_events_reach_a_subscriber(
    store: Store, store_url: str
) -> None:
    service = Service(store)
    assert service.load_scenario()
    service.index()
    reports_before = store.count_reports()
    prefix = uuid.uuid4().hex[:8]
    # Topics of this run's own: another worker's bridge on the same broker never sees them.
    root = f"truce-test-{prefix}"
    settings = Settings(
        _env_file=None,
        database_url=store_url,
        mqtt_url=BROKER,
        webhook_lease_s=2.0,
        # A session of this run's own, which the broker forgets soon after.
        mqtt_client_id=f"truce-test-{prefix}",
        mqtt_session_expiry_s=60,
        mqtt_topic_root=root,
    )
    messages = _positions(prefix, root)
    received: list[tuple[str, Any]] = []

    async def main() -> None:
        stop = asyncio.Event()
        bridge = MqttBridge(service, settings)
        async with aiomqtt.Client("127.0.0.1", 1883) as listener:
            await listener.subscribe(f"{root}/events/#", qos=1)
            await listener.subscribe(f"{root}/errors/AZE/{prefix}-bad", qos=1)
            collecting = asyncio.create_task(_collect(listener, received))
            running = asyncio.create_task(bridge.run(stop))
            try:
                async with aiomqtt.Client("127.0.0.1", 1883) as tracker:
                    # A bad message is answered, which also shows the bridge is subscribed.
                    bad_topic = f"{root}/reports/AZE/{prefix}-bad"
                    while not any(t.startswith(f"{root}/errors/") for t, _ in received):
                        await tracker.publish(bad_topic, b'{"lon": 46.8}', qos=1)
                        await asyncio.sleep(0.2)
                    first = store.list_subscriptions("mqtt")[0].cursor
                    await _publish(tracker, messages)
                    await _until(lambda: bridge.filed >= UNITS * PER_UNIT, 120)
                    # Sent again (a tracker retrying): nothing more is stored.
                    await _publish(tracker, messages[:500])
                    await _until(lambda: bridge.duplicates >= 500, 30)
                last = store.last_event_id()
                assert last > first

                def event_ids() -> list[int]:
                    return [b["id"] for t, b in received if t.startswith(f"{root}/events/")]

                await _until(lambda: set(event_ids()) >= set(range(first + 1, last + 1)), 60)
                # At least once, in order: the first arrival of each event is in log order.
                arrivals = [i for i in dict.fromkeys(event_ids()) if first < i <= last]
                assert arrivals == list(range(first + 1, last + 1)), (
                    len(event_ids()),
                    last - first,
                )
                for topic, body in received:
                    if topic.startswith(f"{root}/events/"):
                        assert topic == f"{root}/events/{body['type']}"
            finally:
                stop.set()
                await asyncio.wait_for(running, 15)
                collecting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await collecting

    asyncio.run(main())
    assert store.count_reports() == reports_before + UNITS * PER_UNIT
    page, _ = store.list_reports(unit=f"{prefix}-u7", party="AZE", limit=1000)
    assert sorted(r.id for r in page) == sorted(f"{prefix}-u7-{k}" for k in range(PER_UNIT))
    errors = [body for topic, body in received if topic.startswith(f"{root}/errors/")]
    assert errors[0]["status"] == 422 and errors[0]["field"] == "lat"
    opened = [b for t, b in received if t == f"{root}/events/incident.opened"]
    closed = [b for t, b in received if t == f"{root}/events/incident.closed"]
    units = {f"{prefix}-u{u}" for u in range(UNITS)}
    assert {e["data"]["unit"] for e in opened if e["data"]["unit"] in units} == units
    assert {e["data"]["unit"] for e in closed if e["data"]["unit"] in units} == units


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b"not json", "body"),
        (b"[1, 2]", "body"),
        (b'{"lon": "x", "lat": 40}', "lon"),
        (b'{"lon": 46.8, "lat": 40.0}', "observed_at"),
        (b'{"lon": 46.8, "lat": 40.0, "observed_at": "2022-03-26T10:00:00"}', "observed_at"),
        (b'{"lon": 246.8, "lat": 40.0, "observed_at": "2022-03-26T10:00:00Z"}', None),
    ],
)
def test_bad_positions_are_refused_by_name_and_the_rest_of_the_batch_is_filed(
    store: Store, payload: bytes, field: str | None
) -> None:
    from app.alerts.mqtt import Position, file_positions

    service = Service(store)
    assert service.load_scenario()
    good = Position(
        "AZE",
        "g1",
        orjson.dumps(
            {
                "id": "g1-1",
                "lon": PARUKH[0],
                "lat": PARUKH[1],
                "observed_at": "2022-03-26T10:00:00Z",
            }
        ),
    )
    stored, duplicates, refusals = file_positions(service, [good, Position("AZE", "b1", payload)])
    assert (stored, duplicates, len(refusals)) == (1, 0, 1)
    problem = refusals[0].problem
    assert problem["status"] == 422 and problem["detail"]
    assert refusals[0].topic == "truce/errors/AZE/b1"  # the default root
    if field is not None:
        assert problem["field"] == field
    else:
        assert problem["field"]
    assert store.get_report("g1-1").report.unit == "g1"


def test_the_bridge_connects_with_a_persistent_session_and_a_wide_window() -> None:
    from app.alerts.mqtt import broker

    target = broker("mqtt://u:p%40ss@broker.example:1884", "truce-site-2", 3600)
    assert (target.host, target.port) == ("broker.example", 1884)
    assert (target.username, target.password) == ("u", "p@ss")
    assert target.client_id == "truce-site-2"
    assert target.session_expiry_s == 3600
    # Positions are acknowledged once filed: the window must hold more than a batch.
    assert target.receive_maximum == 65535 > Settings(_env_file=None).mqtt_batch
    # Events and refusals go out on a connection of their own, with a clean session.
    out = target.aiomqtt_options("truce-site-2-out")
    assert out["identifier"] == "truce-site-2-out" and out["clean_start"] is True
    assert (out["hostname"], out["port"], out["password"]) == ("broker.example", 1884, "p@ss")
