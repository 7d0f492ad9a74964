"""The bridge's inbound MQTT connection: positions arrive as columns, acknowledged in bulk.

An asyncio protocol over `mqtt_wire`: each chunk the socket gives is cut into packets at once
and the positions appended to `pending` (topics, payloads, packet ids); the bridge takes them
a batch at a time and, once the batch is committed, sends all its PUBACKs in one write
(`ack`). The session is persistent and the receive window wide (`Broker`), so what is not
acknowledged when the connection ends is sent again by the broker on the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from app.alerts import mqtt_wire as wire

__all__ = ["Broker", "Inbox", "broker", "open_inbox"]


@dataclass(frozen=True, slots=True)
class Broker:
    """Where the broker is, and the bridge's persistent session on it."""

    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool
    client_id: str
    session_expiry_s: int
    #: How many QoS 1 messages the broker may have sent and not yet had acknowledged: the
    #: most MQTT 5 allows. Positions are acknowledged only once filed, so this is also how many
    #: may wait for their batch; Mosquitto's default for a client that does not say is 20.
    receive_maximum: int = 65535
    keepalive_s: int = 30

    def aiomqtt_options(self, identifier: str) -> dict[str, Any]:
        """aiomqtt's arguments for an outbound connection (events, refusals) of this broker,
        under `identifier`, with a clean session (nothing is kept for it)."""
        import aiomqtt

        options: dict[str, Any] = {
            "hostname": self.host,
            "port": self.port,
            "protocol": aiomqtt.ProtocolVersion.V5,
            "identifier": identifier,
            "clean_start": True,
            "username": self.username,
            "password": self.password,
        }
        if self.tls:
            options["tls_context"] = ssl.create_default_context()
        return options


def broker(url: str, client_id: str = "truce-bridge", session_expiry_s: int = 604800) -> Broker:
    """The broker of ``mqtt://[user[:password]@]host[:port]`` (or ``mqtts://``), with a
    persistent session under `client_id`."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp") or not parts.hostname:
        raise ValueError(f"TRUCE_MQTT_URL must read mqtt://host:port, not {url!r}")
    tls = parts.scheme == "mqtts"
    return Broker(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=(unquote(parts.password or "") or None) if parts.username else None,
        tls=tls,
        client_id=client_id,
        session_expiry_s=session_expiry_s,
    )


class Inbox(asyncio.Protocol):
    """One connection's received positions, waiting to be filed (see the module docstring)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.pending = wire.Inbound([], [], [], [])
        #: When the oldest pending position arrived (monotonic s), for the batch deadline.
        self.first_at = 0.0
        #: Set when at least `threshold` positions are pending.
        self.full = asyncio.Event()
        self.arrived = asyncio.Event()
        self.threshold = 1
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Why it ended is read by `check`, or not at all once the bridge has moved on.
        self.closed.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._replies: asyncio.Queue[tuple[int, int, bytes]] = asyncio.Queue()
        self._rest = b""

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport (for CONNECT, SUBSCRIBE, acks)."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        """Cut the chunk into packets: positions to `pending`, replies to `reply`."""
        buffer = self._rest + data if self._rest else data
        pending = self.pending
        was = len(pending.payloads)
        try:
            used = wire.split_packets(buffer, pending)
        except wire.ProtocolError as exc:
            self._fail(exc)
            return
        self._rest = buffer[used:]
        if pending.other:
            for kind, flags, body in pending.other:
                if kind == wire.PINGRESP:
                    continue
                if kind == wire.DISCONNECT:
                    code = body[0] if body else 0
                    self._fail(ConnectionError(f"the broker disconnected (reason {code:#04x})"))
                    return
                self._replies.put_nowait((kind, flags, body))
            pending.other.clear()
        count = len(pending.payloads)
        if count > was:
            if not was:
                self.first_at = time.monotonic()
                self.arrived.set()
            if count >= self.threshold:
                self.full.set()

    def connection_lost(self, exc: Exception | None) -> None:
        """Record why the connection ended, and wake the bridge."""
        if not self.closed.done():
            self.closed.set_exception(exc or ConnectionError("the broker closed the connection"))
        self.arrived.set()  # wake a waiting bridge: it finds the connection closed
        self.full.set()

    def _fail(self, exc: Exception) -> None:
        if not self.closed.done():
            self.closed.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    # -- the bridge's side ----------------------------------------------------------------------

    def check(self) -> None:
        """Raise if the connection has ended (its reason)."""
        if self.closed.done():
            self.closed.result()

    def take(self, limit: int) -> wire.Inbound:
        """Up to `limit` pending positions, oldest first; the rest stays pending."""
        pending = self.pending
        if len(pending.payloads) <= limit:
            self.pending = wire.Inbound([], [], [], [])
            taken = pending
        else:
            taken = wire.Inbound(
                pending.topics[:limit], pending.payloads[:limit], pending.packet_ids[:limit], []
            )
            del pending.topics[:limit], pending.payloads[:limit], pending.packet_ids[:limit]
        if self.pending.payloads:
            self.first_at = time.monotonic()
        else:
            self.arrived.clear()
        if len(self.pending.payloads) < self.threshold:
            self.full.clear()
        return taken

    def ack(self, packet_ids: list[int]) -> None:
        """Acknowledge positions (in the order received; 0, a QoS 0 message, needs none)."""
        wanted = [i for i in packet_ids if i]
        if wanted and self.transport is not None and not self.transport.is_closing():
            self.transport.write(wire.pubacks(wanted))

    def send(self, packet: bytes) -> None:
        """Write a packet (CONNECT, SUBSCRIBE, PINGREQ...)."""
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("the connection to the broker is closed")
        self.transport.write(packet)

    async def reply(self, kind: int, timeout_s: float) -> bytes:
        """The body of the broker's next packet of `kind` (CONNACK, SUBACK)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.check()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer from the broker in {timeout_s} s")
            try:
                got, _, body = await asyncio.wait_for(self._replies.get(), min(left, 0.5))
            except TimeoutError:
                continue
            if got == kind:
                return body
            raise wire.ProtocolError(f"packet type {got} where {kind} was due")

    async def keepalive(self, every_s: float) -> None:
        """PINGREQ every `every_s` until the connection ends (MQTT's keepalive)."""
        while not self.closed.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.closed), every_s)
            if not self.closed.done():
                self.send(wire.PINGREQ)

    def close(self) -> None:
        """Disconnect cleanly (the session stays with the broker)."""
        if not self.closed.done():
            self.closed.set_exception(ConnectionError("the connection was closed"))
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(wire.DISCONNECT_NORMAL)
            self.transport.close()


async def open_inbox(target: Broker, topic_filter: str, timeout_s: float = 10.0) -> Inbox:
    """Connect, resume (or start) the persistent session, subscribe to `topic_filter` at QoS 1."""
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context() if target.tls else None
    try:
        _, inbox = await asyncio.wait_for(
            loop.create_connection(Inbox, target.host, target.port, ssl=context), timeout_s
        )
    except (OSError, TimeoutError) as exc:
        raise ConnectionError(f"cannot reach {target.host}:{target.port}: {exc}") from exc
    try:
        inbox.send(
            wire.connect_packet(
                target.client_id,
                clean_start=False,
                session_expiry_s=target.session_expiry_s,
                receive_maximum=target.receive_maximum,
                keepalive_s=target.keepalive_s,
                username=target.username,
                password=target.password,
            )
        )
        wire.read_connack(await inbox.reply(wire.CONNACK, timeout_s))
        inbox.send(wire.subscribe_packet(1, topic_filter, 1))
        wire.read_suback(await inbox.reply(wire.SUBACK, timeout_s), 1)
    except BaseException:
        inbox.close()
        raise
    return inbox
