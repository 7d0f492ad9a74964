"""The inbox against the machine's Mosquitto (127.0.0.1:1883; a client id and topics of the
run's own): its session outlives the connection, what it did not acknowledge comes again, and
what it acknowledged does not."""

from __future__ import annotations

import asyncio
import uuid

import aiomqtt

from app.alerts.mqtt_inbox import Inbox, broker, open_inbox

BROKER = "mqtt://127.0.0.1:1883"


async def _receive(inbox: Inbox, count: int, timeout_s: float = 20) -> list[tuple[bytes, bytes]]:
    """Wait until `count` positions are pending (bounded), then take them."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(inbox.pending.payloads) < count:
        assert asyncio.get_running_loop().time() < deadline, len(inbox.pending.payloads)
        inbox.check()
        await asyncio.sleep(0.02)
    batch = inbox.take(10_000)
    pairs = list(zip(batch.topics, batch.payloads, strict=True))
    inbox.ack(batch.packet_ids)
    return pairs


def test_unacknowledged_positions_come_again_and_acknowledged_ones_do_not() -> None:
    run = uuid.uuid4().hex[:10]
    target = broker(BROKER, f"truce-inbox-{run}", session_expiry_s=60)
    # Outside truce/reports/: the bridges of other tests (which take every tracker topic) do
    # not see these.
    topic_filter = f"truce-test/{run}/+"
    sent = [(f"truce-test/{run}/u{k % 3}", f"position {k}".encode()) for k in range(300)]

    async def publish(messages: list[tuple[str, bytes]]) -> None:
        async with aiomqtt.Client("127.0.0.1", 1883, identifier=f"tracker-{run}") as tracker:
            tracker.pending_calls_threshold = 1000
            await asyncio.gather(*(tracker.publish(t, p, qos=1) for t, p in messages))

    async def main() -> None:
        inbox = await open_inbox(target, topic_filter)
        inbox.close()  # the session exists: the broker keeps what comes meanwhile
        await publish(sent)

        inbox = await open_inbox(target, topic_filter)
        deadline = asyncio.get_running_loop().time() + 20
        while len(inbox.pending.payloads) < len(sent):
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        first = inbox.take(10_000)
        assert [(t.decode(), p) for t, p in zip(first.topics, first.payloads, strict=True)] == sent
        assert all(first.packet_ids)
        # Acknowledge only the first 100, then go away.
        inbox.ack(first.packet_ids[:100])
        await asyncio.sleep(0.2)
        inbox.close()

        inbox = await open_inbox(target, topic_filter)
        again = await _receive(inbox, 200)
        assert [(t.decode(), p) for t, p in again] == sent[100:]
        await asyncio.sleep(0.2)
        inbox.close()

        inbox = await open_inbox(target, topic_filter)
        await publish(sent[:1])  # a marker: once it is here, nothing older is still to come
        rest = await _receive(inbox, 1)
        assert [(t.decode(), p) for t, p in rest] == sent[:1]
        inbox.close()

        # Clean up the session (expires at once on a clean-start connection with expiry 0).
        done = await open_inbox(broker(BROKER, target.client_id, 0), topic_filter)
        done.close()

    asyncio.run(main())


def test_a_broker_that_is_not_there_is_a_connection_error() -> None:
    async def main() -> None:
        target = broker("mqtt://127.0.0.1:1", "truce-nowhere", 0)
        try:
            await open_inbox(target, "truce/reports/+/+", timeout_s=5)
        except ConnectionError as exc:
            assert "127.0.0.1:1" in str(exc)
        else:
            raise AssertionError("connected to nothing")

    asyncio.run(main())
