"""`TRUCE_MQTT_TOPIC_ROOT`: a bad root is a settings error naming the field, and two bridges on
the machine's Mosquitto (127.0.0.1:1883) under different roots each file only the positions
published under their own root (over both stores: the first bridge's store is each kind)."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import closing
from pathlib import Path

import aiomqtt
import orjson
import pytest
from pydantic import ValidationError

from app.alerts.mqtt import MqttBridge, file_received, report_filter
from app.service import Service
from app.settings import Settings
from app.store import Store, open_store
from tests.factories import FAR

BROKER = "mqtt://127.0.0.1:1883"
PER_BRIDGE = 40


@pytest.mark.parametrize(
    "root", ["", "truce/+", "a/#", "#", "tru\x00ce", "/truce", "truce/", "/", "site/a/"]
)
def test_a_bad_topic_root_is_refused_naming_the_setting(
    root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValidationError, match="mqtt_topic_root"):
        Settings(_env_file=None, mqtt_topic_root=root)
    # From the environment too, as the service reads it.
    if "\x00" not in root:  # (an environment variable cannot hold NUL)
        monkeypatch.setenv("TRUCE_MQTT_TOPIC_ROOT", root)
        with pytest.raises(ValidationError, match="mqtt_topic_root"):
            Settings(_env_file=None)


@pytest.mark.parametrize("root", ["truce", "site/a", "truce-test-1f2e", "ü/x y"])
def test_a_good_topic_root_is_kept_and_makes_the_subscription(
    root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRUCE_MQTT_TOPIC_ROOT", root)
    assert Settings(_env_file=None).mqtt_topic_root == root
    assert report_filter(root) == f"{root}/reports/+/+"
    monkeypatch.delenv("TRUCE_MQTT_TOPIC_ROOT")
    assert Settings(_env_file=None).mqtt_topic_root == "truce"


def test_a_refusal_is_answered_under_the_root_it_came_under(store: Store) -> None:
    service = Service(store)
    assert service.load_scenario()
    # A root of two levels: party and unit are still the last two levels of the topic.
    stored, _, refusals = file_received(service, [b"site/a/reports/AZE/u1"], [b"{}"])
    assert stored == 0 and len(refusals) == 1
    assert refusals[0].topic == "site/a/errors/AZE/u1"
    assert refusals[0].problem["topic"] == "site/a/reports/AZE/u1"
    assert refusals[0].position.party == "AZE" and refusals[0].position.unit == "u1"


def _messages(root: str, prefix: str) -> list[tuple[str, bytes]]:
    return [
        (
            f"{root}/reports/AZE/{prefix}-u{k % 4}",
            orjson.dumps(
                {
                    "id": f"{prefix}-{k}",
                    "lon": FAR[0] + k * 1e-5,
                    "lat": FAR[1],
                    "observed_at": f"2022-03-27T10:{k:02d}:00Z",
                }
            ),
        )
        for k in range(PER_BRIDGE)
    ]


async def _until(check: object, timeout_s: float) -> None:
    assert callable(check)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


def test_two_bridges_under_different_roots_each_file_only_their_own_positions(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    roots = (f"truce-test-{run}-a", f"truce-test-{run}-b")
    urls = (store_url, f"sqlite:///{tmp_path / 'other.db'}")
    with closing(open_store(urls[1])) as other:
        stores = (store, other)
        services = [Service(s) for s in stores]
        for service in services:
            assert service.load_scenario()
        before = [s.count_reports() for s in stores]
        bridges = [
            MqttBridge(
                service,
                Settings(
                    _env_file=None,
                    database_url=url,
                    mqtt_url=BROKER,
                    mqtt_client_id=f"truce-root-{run}-{i}",
                    mqtt_session_expiry_s=60,
                    mqtt_topic_root=root,
                ),
            )
            for i, (service, url, root) in enumerate(zip(services, urls, roots, strict=True))
        ]
        # Each bridge's positions have unit names of their own, so a stray one would show.
        sent = [_messages(root, f"{run}{'ab'[i]}") for i, root in enumerate(roots)]

        async def main() -> None:
            stop = asyncio.Event()
            running = [asyncio.create_task(b.run(stop)) for b in bridges]
            try:
                async with aiomqtt.Client("127.0.0.1", 1883) as tracker:
                    # Both subscribed: a probe under each root is filed by its bridge.
                    while not all(b.filed for b in bridges):
                        for root, bridge in zip(roots, bridges, strict=True):
                            if not bridge.filed:
                                await tracker.publish(*_messages(root, f"{run}probe")[0], qos=1)
                        await asyncio.sleep(0.2)
                    probes = [b.filed for b in bridges]
                    for messages in sent:
                        for topic, payload in messages:
                            await tracker.publish(topic, payload, qos=1)
                    await _until(
                        lambda: all(
                            b.filed + b.duplicates >= p + PER_BRIDGE
                            for b, p in zip(bridges, probes, strict=True)
                        ),
                        60,
                    )
                    # A moment more, for a position of the other root to show (none must).
                    await asyncio.sleep(1.0)
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(*running), 15)

        asyncio.run(main())
        for i, (s, bridge) in enumerate(zip(stores, bridges, strict=True)):
            own, theirs = f"{run}{'ab'[i]}", f"{run}{'ba'[i]}"
            assert bridge.refused == 0
            # One probe and its own positions: the other root's were never received.
            assert s.count_reports() - before[i] == bridge.filed == 1 + PER_BRIDGE
            filed = {
                r.id
                for u in range(4)
                for r in s.list_reports(unit=f"{own}-u{u}", party="AZE", limit=1000)[0]
            }
            assert filed == {f"{own}-{k}" for k in range(PER_BRIDGE)}
            for u in range(4):
                page, _ = s.list_reports(unit=f"{theirs}-u{u}", party="AZE", limit=1000)
                assert page == []
