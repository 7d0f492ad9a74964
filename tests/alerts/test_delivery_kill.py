"""SIGKILL of a delivering process (`truce serve` or `truce deliver`), over both stores: events
committed before the kill, and the one in flight during it, are all delivered after a restart.

The receiver answers slowly (0.1 s a delivery), so that the kill falls while events are
committed but not yet delivered, and while a delivery is in flight.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from app.alerts.subscriptions import check_spec, new_secret
from app.store import Store
from tests.alerts.receiver import Receiver, receiver
from tests.api.support import REPO, auth, start_server
from tests.factories import make_zone, square, zone_feature

FAST_ENV = {
    "TRUCE_WEBHOOK_LEASE_S": "1",
    "TRUCE_WEBHOOK_TIMEOUT_S": "5",
    "TRUCE_WEBHOOK_RETRY_BASE_S": "0.05",
    "TRUCE_WEBHOOK_RETRY_CAP_S": "0.2",
}


@contextmanager
def deliver_process(url: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`truce deliver` on the database at `url`; SIGKILLed at the end if still running."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUCE_")}
    env.update(FAST_ENV, TRUCE_DATABASE_URL=url)
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


def _wait(condition: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def _assert_every_event_once_in_order(hook: Receiver, last: int) -> None:
    accepted = [r.event_id for r in hook.accepted()]
    assert set(accepted) == set(range(1, last + 1)), "an event was lost"
    first_seen = list(dict.fromkeys(accepted))
    assert first_seen == sorted(first_seen), "out of order"
    # At least once: only what was in flight at a kill may come twice.
    assert len(accepted) - last <= 2


def test_truce_deliver_killed_during_delivery_delivers_everything_after_restart(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    with receiver(then="slow") as hook:
        store.add_subscription(check_spec(hook.url), new_secret(), "test", cursor=0)
        # Committed with no deliverer running: between commit and delivery.
        store.add_zones([make_zone(square(46 + i * 0.2), f"k{i}") for i in range(10)], "test")
        with deliver_process(store_url, tmp_path / "deliver-1.log") as first:
            _wait(lambda: len(hook.received) >= 3)
            os.killpg(first.pid, signal.SIGKILL)  # during a delivery (each takes 0.1 s)
        delivered_before = {r.event_id for r in hook.accepted()}
        assert len(delivered_before) < 10
        store.add_zones([make_zone(square(50 + i * 0.2), f"m{i}") for i in range(5)], "test")
        last = store.last_event_id()
        assert last == 15
        with deliver_process(store_url, tmp_path / "deliver-2.log"):
            _wait(lambda: {r.event_id for r in hook.accepted()} >= set(range(1, last + 1)))
    _assert_every_event_once_in_order(hook, last)


def test_truce_serve_killed_after_acknowledging_writes_delivers_them_after_restart(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    with receiver(then="slow") as hook:
        store.add_subscription(check_spec(hook.url), new_secret(), "test", cursor=0)
        server = start_server(store_url, tmp_path / "serve-1.log", env=FAST_ENV)
        try:
            for i in range(8):
                answer = httpx.post(
                    f"{server.url}/zones",
                    json=zone_feature(f"s{i}", lon=46 + i * 0.2),
                    headers=auth("admin"),
                    timeout=10,
                )
                assert answer.status_code == 201, answer.text
        finally:
            server.kill(signal.SIGKILL)  # acknowledged, and (mostly) not yet delivered
        last = store.last_event_id()
        assert last >= 8
        assert len({r.event_id for r in hook.accepted()}) < last
        server = start_server(store_url, tmp_path / "serve-2.log", env=FAST_ENV)
        try:
            _wait(lambda: {r.event_id for r in hook.accepted()} >= set(range(1, last + 1)))
        finally:
            server.kill()
    _assert_every_event_once_in_order(hook, last)
