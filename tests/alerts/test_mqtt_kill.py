"""SIGKILL of the MQTT bridge (`truce deliver` with TRUCE_MQTT_URL) while it files positions,
against the machine's Mosquitto, over both stores: after a restart every one of the 2,000
positions published is stored exactly once, those received but not yet filed at the kill
included (the broker sends them again to the bridge's persistent session).

The bridge files one position at a time (`TRUCE_MQTT_BATCH=1`), so that the kill falls while
most of the positions have reached it (its Receive Maximum lets the broker send them all at
once) but are not yet filed. Each run has its own client id, topic root and unit names, so
runs side by side do not share a session nor file each other's positions.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiomqtt
import orjson

from app.service import Service
from app.store import Store
from tests.api.support import REPO
from tests.factories import FAR

UNITS = 20
BEFORE_KILL = 100  # positions a unit, published while the bridge runs


@contextmanager
def bridge_process(
    url: str, client_id: str, root: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`truce deliver` bridging MQTT into the database at `url`; SIGKILLed at the end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUCE_")}
    env.update(
        TRUCE_DATABASE_URL=url,
        TRUCE_MQTT_URL="mqtt://127.0.0.1:1883",
        TRUCE_MQTT_CLIENT_ID=client_id,
        # Topics of the run's own: no other bridge on the broker files its positions.
        TRUCE_MQTT_TOPIC_ROOT=root,
        # Long enough for the test, short enough that the broker soon forgets the session.
        TRUCE_MQTT_SESSION_EXPIRY_S="120",
        # One position a transaction: filing is slower than the broker's sending, so at the
        # kill most positions have reached the bridge and wait there, unacknowledged.
        TRUCE_MQTT_BATCH="1",
        TRUCE_MQTT_BATCH_MS="0",
    )
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", "from app.cli import main; main()", "deliver"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def _messages(prefix: str, root: str, steps: range) -> list[tuple[str, bytes]]:
    messages = []
    for k in steps:
        for unit in range(UNITS):
            body = {
                "id": f"{prefix}-u{unit}-{k}",
                "lon": FAR[0] + unit * 1e-4,
                "lat": FAR[1],
                "observed_at": f"2022-03-27T{k // 60:02d}:{k % 60:02d}:00Z",
            }
            messages.append((f"{root}/reports/AZE/{prefix}-u{unit}", orjson.dumps(body)))
    return messages


def _publish(messages: list[tuple[str, bytes]]) -> None:
    """Publish with QoS 1; returns once the broker has acknowledged every message."""

    async def main() -> None:
        async with aiomqtt.Client("127.0.0.1", 1883) as tracker:
            tracker.pending_calls_threshold = 1000  # batches of 200 are meant
            for start in range(0, len(messages), 200):
                await asyncio.gather(
                    *(tracker.publish(t, p, qos=1) for t, p in messages[start : start + 200])
                )

    asyncio.run(main())


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_bridge_killed_while_filing_stores_every_position_once_after_restart(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    service = Service(store)
    assert service.load_scenario()
    before = store.count_reports()
    prefix = uuid.uuid4().hex[:8]
    client_id = f"truce-kill-{prefix}"
    root = f"truce-test-{prefix}"
    log = tmp_path / "bridge.log"
    expected = UNITS * BEFORE_KILL

    def stored() -> int:
        return store.count_reports() - before

    with bridge_process(store_url, client_id, root, log) as first:
        # The bridge is subscribed (its session exists) once a probe position is filed.
        probe = _messages(f"{prefix}p", root, range(1))[:1]
        _wait_probe = time.monotonic() + 60
        while stored() < 1:
            assert first.poll() is None, log.read_text()
            assert time.monotonic() < _wait_probe, log.read_text()
            _publish(probe)
            time.sleep(0.3)
        before += 1
        _publish(_messages(prefix, root, range(BEFORE_KILL)))
        # Every position has been handed to the broker; kill as soon as filing is under way.
        _wait(lambda: stored() >= 100, 60, "the first hundred")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
    at_kill = stored()
    # The kill fell mid-ingest: what the broker had sent was not all stored.
    assert 0 < at_kill < UNITS * BEFORE_KILL, at_kill

    with bridge_process(store_url, client_id, root, log) as second:
        _wait(lambda: stored() >= expected, 120, f"{expected} positions")
        # A moment more for anything delivered twice to show (it must not be stored).
        time.sleep(1.0)
        assert second.poll() is None, log.read_text()

    assert stored() == expected
    for unit in (0, UNITS - 1):
        page, _ = store.list_reports(unit=f"{prefix}-u{unit}", party="AZE", limit=1000)
        assert sorted(r.id for r in page) == sorted(
            f"{prefix}-u{unit}-{k}" for k in range(BEFORE_KILL)
        )
