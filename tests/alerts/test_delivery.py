"""Webhook delivery against a real receiver on loopback, over both stores."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from standardwebhooks.webhooks import Webhook

from app.alerts.delivery import Deliverer, DeliveryOptions
from app.alerts.subscriptions import backoff, check_spec, new_secret
from app.store import Store
from tests.alerts.conftest import MemoryLog
from tests.alerts.receiver import receiver
from tests.factories import make_zone, square

FAST = DeliveryOptions(
    timeout_s=0.5,
    connect_timeout_s=0.5,
    lease_ttl_s=2.0,
    poll_s=0.02,
    refresh_s=0.1,
    retry_base_s=0.05,
    retry_cap_s=0.2,
)


async def _until(check: Callable[[], bool], timeout_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


def _run(deliverers: list[Deliverer], until: Callable[[], bool], timeout_s: float = 20.0) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(d.run(stop)) for d in deliverers]
        try:
            await _until(until, timeout_s)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 10)

    asyncio.run(main())


def test_refused_and_timed_out_deliveries_are_retried_in_order_with_stable_signed_ids(
    store: Store, event_log: MemoryLog
) -> None:
    secret = new_secret()
    with receiver(["refuse", "refuse", "timeout", "refuse"]) as hook:
        sub = store.add_subscription(check_spec(hook.url), secret, "test", cursor=0)
        for n in range(5):
            event_log.append("incident.opened", zone_id="z1", party="AZE", n=n)
        deliverer = Deliverer(store, event_log, FAST)
        _run([deliverer], lambda: len(hook.accepted()) >= 5)
    accepted = hook.accepted()
    assert [r.event_id for r in accepted] == [1, 2, 3, 4, 5]
    verifier = Webhook(secret)
    for request in hook.received:
        payload = verifier.verify(request.body, request.headers)
        assert request.headers["webhook-id"] == f"evt_{payload['id']}"
        assert payload["type"] == "incident.opened"
    # The first event was tried five times (two refusals, a timeout, a refusal, then accepted),
    # always under the same webhook-id; nothing of event 2 was sent before event 1 arrived.
    first_tries = [r for r in hook.received if r.event_id == 1]
    assert len(first_tries) == 5
    assert {r.headers["webhook-id"] for r in first_tries} == {"evt_1"}
    assert [r.event_id for r in hook.received[:5]] == [1] * 5
    attempts, total = store.list_deliveries(sub.id, limit=100)
    assert total == 9
    outcomes = [(a.event_id, a.attempt, a.outcome) for a in reversed(attempts)]
    assert outcomes[:5] == [
        (1, 1, "retry"),
        (1, 2, "retry"),
        (1, 3, "retry"),
        (1, 4, "retry"),
        (1, 5, "delivered"),
    ]
    timeout = [a for a in attempts if a.attempt == 3][0]
    assert timeout.status is None and timeout.error is not None and "timeout" in timeout.error
    assert [a.status for a in attempts if a.attempt == 1 and a.event_id == 1] == [503]
    assert store.get_subscription(sub.id).cursor == 5


def test_filters_pass_over_events_and_the_cursor_moves_past_them(
    store: Store, event_log: MemoryLog
) -> None:
    with receiver() as hook:
        spec = check_spec(hook.url, types=["incident.opened"], parties=["AZE"], min_depth_m=100)
        sub = store.add_subscription(spec, new_secret(), "test", cursor=0)
        event_log.append("incident.opened", zone_id="z1", party="ARM", depth_m=500.0)
        event_log.append("incident.opened", zone_id="z1", party="AZE", depth_m=50.0)
        event_log.append("incident.closed", zone_id="z1", party="AZE", depth_m=500.0)
        event_log.append("incident.opened", zone_id="z1", party="AZE", depth_m=150.0)
        event_log.append("incident.opened", zone_id="z1", party="ARM", depth_m=150.0)
        _run(
            [Deliverer(store, event_log, FAST)],
            lambda: store.get_subscription(sub.id).cursor == 5,
        )
    assert [r.event_id for r in hook.accepted()] == [4]


def test_a_dead_receiver_does_not_hold_up_another_subscription(
    store: Store, event_log: MemoryLog
) -> None:
    with receiver(then="timeout", hold_s=1.0) as dead, receiver() as alive:
        store.add_subscription(check_spec(dead.url), new_secret(), "test", cursor=0)
        store.add_subscription(check_spec(alive.url), new_secret(), "test", cursor=0)
        for n in range(20):
            event_log.append("track.stale", zone_id="z1", n=n)
        _run([Deliverer(store, event_log, FAST)], lambda: len(alive.accepted()) >= 20, 10)
    assert [r.event_id for r in alive.accepted()] == list(range(1, 21))
    assert {r.event_id for r in dead.received} == {1}


def test_two_deliverers_never_deliver_one_subscription_at_once(
    store: Store, event_log: MemoryLog
) -> None:
    with receiver() as hook:
        sub = store.add_subscription(check_spec(hook.url), new_secret(), "test", cursor=0)
        for n in range(30):
            event_log.append("incident.updated", zone_id="z1", n=n)
        a = Deliverer(store, event_log, FAST, holder="a")
        b = Deliverer(store, event_log, FAST, holder="b")
        _run([a, b], lambda: store.get_subscription(sub.id).cursor == 30)
    assert [r.event_id for r in hook.accepted()] == list(range(1, 31))


def test_an_event_failing_for_the_whole_window_holds_the_subscription_until_replayed(
    store: Store, event_log: MemoryLog
) -> None:
    options = replace(FAST, retry_window=timedelta(seconds=0.3))
    with receiver(then="refuse") as hook:
        sub = store.add_subscription(check_spec(hook.url), new_secret(), "test", cursor=0)
        event_log.append("zone.changed", zone_id="z1")
        _run(
            [Deliverer(store, event_log, options)],
            lambda: store.get_subscription(sub.id).state == "failed",
        )
        held = store.get_subscription(sub.id)
        attempts, _ = store.list_deliveries(sub.id)
        assert attempts[0].outcome == "failed" and attempts[0].event_id == 1
        assert held.cursor == 0 and held.attempts == len(attempts) >= 2
        hook.then = "accept"
        store.replay_subscription(sub.id, 0, "test")
        _run(
            [Deliverer(store, event_log, options)],
            lambda: store.get_subscription(sub.id).cursor == 1,
        )
    assert len(hook.accepted()) == 1
    assert store.get_subscription(sub.id).state == "active"
    attempts, _ = store.list_deliveries(sub.id)
    assert [a.outcome for a in attempts[:2]] == ["delivered", "replayed"]


def test_a_name_resolving_to_a_refused_address_is_never_sent_to(
    store: Store, event_log: MemoryLog
) -> None:
    # `localhost` passes creation (a name), but resolves to loopback, refused by this policy.
    options = replace(FAST, private_targets=False)
    with receiver() as hook:
        url = hook.url.replace("127.0.0.1", "localhost")
        sub = store.add_subscription(check_spec(url), new_secret(), "test", cursor=0)
        event_log.append("zone.changed", zone_id="z1")
        _run(
            [Deliverer(store, event_log, options)],
            lambda: store.list_deliveries(sub.id)[1] >= 2,
        )
    assert hook.received == []
    attempts, _ = store.list_deliveries(sub.id)
    assert all(a.outcome == "retry" and a.status is None for a in attempts)
    assert "refused" in (attempts[0].error or "") and "loopback" in (attempts[0].error or "")


def test_backoff_doubles_up_to_its_cap_with_half_of_it_jittered() -> None:
    rng = random.Random(7)
    waits = [backoff(n, base_s=1.0, cap_s=60.0, rng=rng) for n in range(1, 12)]
    for n, wait in enumerate(waits, start=1):
        ceiling = min(60.0, 2.0 ** (n - 1))
        assert ceiling / 2 <= wait <= ceiling
    assert len({round(w, 6) for w in waits[7:]}) > 1  # capped, still jittered


def test_the_stores_own_log_is_delivered_through_refusals_and_a_timeout_in_order(
    store: Store,
) -> None:
    secret = new_secret()
    with receiver(["refuse", "timeout", "refuse"]) as hook:
        sub = store.add_subscription(check_spec(hook.url), secret, "test", store.last_event_id())
        store.add_zones([make_zone(square(46 + i * 0.2), f"d{i}") for i in range(4)], "test")
        last = store.last_event_id()
        _run([Deliverer(store, store, FAST)], lambda: store.get_subscription(sub.id).cursor == last)
    payloads = [Webhook(secret).verify(r.body, r.headers) for r in hook.accepted()]
    assert [p["data"]["zone_id"] for p in payloads] == ["d0", "d1", "d2", "d3"]
    assert [p["type"] for p in payloads] == ["zone.changed"] * 4
    assert [r.headers["webhook-id"] for r in hook.received[:4]] == [
        hook.received[0].headers["webhook-id"]
    ] * 4
