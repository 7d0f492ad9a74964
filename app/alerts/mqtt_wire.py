"""The few MQTT 5 packets the position inbox speaks, as bytes: no sockets, no asyncio.

Why not aiomqtt (paho) for positions: paho reads a packet in three or four `recv` calls, builds
a message, a message-info with a lock and a properties object for each, and aiomqtt adds its
own message and a queue hop; an acknowledgement is a `send` of its own. Measured on the
development machine, reading and acknowledging alone took ~400 µs a position, well over the
whole budget of 50 µs (20,000 positions/s). Here a received chunk is cut into packets in one
loop over a `bytes` buffer, and the acknowledgements of a batch go out as one write.

Only what a subscriber of QoS 1 positions needs: CONNECT (persistent session, a wide receive
window), SUBSCRIBE, PUBLISH in (QoS 0 or 1), PUBACK out, PINGREQ, DISCONNECT, and reading
CONNACK, SUBACK, PINGRESP, DISCONNECT. Anything else from the broker is a `ProtocolError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "CONNACK",
    "DISCONNECT",
    "PINGREQ",
    "PINGRESP",
    "PUBLISH",
    "SUBACK",
    "Inbound",
    "ProtocolError",
    "connect_packet",
    "pubacks",
    "read_connack",
    "read_suback",
    "split_packets",
    "subscribe_packet",
]

# Packet types (the high nibble of the first byte).
CONNACK = 2
PUBLISH = 3
SUBACK = 9
PINGRESP = 13
DISCONNECT = 14

PINGREQ = b"\xc0\x00"
DISCONNECT_NORMAL = b"\xe0\x00"

#: The largest packet accepted (MQTT's own limit is 256 MiB); a bigger one ends the connection.
#: It is also announced to the broker (Maximum Packet Size), which then drops bigger messages
#: instead of sending them.
MAX_PACKET = 1 << 20

_PUBACK = struct.Struct(">BBH")


class ProtocolError(Exception):
    """The broker sent what MQTT 5 does not allow here; the connection is given up."""


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > 0xFFFF:
        raise ValueError("an MQTT string is at most 65,535 bytes")
    return struct.pack(">H", len(raw)) + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


def connect_packet(
    client_id: str,
    *,
    clean_start: bool,
    session_expiry_s: int,
    receive_maximum: int,
    keepalive_s: int,
    username: str | None = None,
    password: str | None = None,
) -> bytes:
    """CONNECT, MQTT 5: the session, the receive window and the largest packet taken."""
    flags = (0x02 if clean_start else 0) | (0x80 if username is not None else 0)
    flags |= 0x40 if password is not None else 0
    properties = (
        b"\x11" + struct.pack(">I", session_expiry_s)
        + b"\x21" + struct.pack(">H", receive_maximum)
        + b"\x27" + struct.pack(">I", MAX_PACKET)
    )  # fmt: skip
    body = _string("MQTT") + bytes([5, flags]) + struct.pack(">H", keepalive_s)
    body += _varint(len(properties)) + properties + _string(client_id)
    if username is not None:
        body += _string(username)
    if password is not None:
        body += _string(password)
    return _packet(0x10, body)


def subscribe_packet(packet_id: int, topic_filter: str, qos: int = 1) -> bytes:
    """SUBSCRIBE to one filter with a maximum QoS."""
    body = struct.pack(">H", packet_id) + b"\x00" + _string(topic_filter) + bytes([qos])
    return _packet(0x82, body)


def pubacks(packet_ids: list[int]) -> bytes:
    """PUBACKs (success, no properties: the 2-byte form), in the given order, as one write."""
    pack = _PUBACK.pack
    return b"".join([pack(0x40, 2, i) for i in packet_ids])


@dataclass(slots=True)
class Inbound:
    """What one chunk of bytes held, in order: positions as parallel lists, other packets as
    (type, flags, body)."""

    topics: list[bytes]
    payloads: list[bytes]
    packet_ids: list[int]  # 0 for QoS 0: nothing to acknowledge
    other: list[tuple[int, int, bytes]]


def split_packets(buffer: bytes, into: Inbound) -> int:
    """Cut the whole packets at the start of `buffer` into `into`; returns how many bytes they
    took (the rest is the start of a packet still arriving)."""
    size = len(buffer)
    at = 0
    topics, payloads, ids, other = into.topics, into.payloads, into.packet_ids, into.other
    while at + 2 <= size:
        first = buffer[at]
        # Remaining length: 1 to 4 bytes, 7 bits each.
        length = 0
        shift = 0
        cursor = at + 1
        while True:
            if cursor >= size:
                return at
            byte = buffer[cursor]
            cursor += 1
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 21:
                raise ProtocolError("a remaining length longer than 4 bytes")
        if length > MAX_PACKET:
            raise ProtocolError(f"a packet of {length:,} bytes (at most {MAX_PACKET:,})")
        end = cursor + length
        if end > size:
            return at
        kind = first >> 4
        if kind == PUBLISH:
            qos = (first >> 1) & 3
            if qos > 1:
                raise ProtocolError("a QoS 2 message on a QoS 1 subscription")
            if cursor + 2 > end:
                raise ProtocolError("a PUBLISH without a topic")
            topic_start = cursor + 2
            topic_end = topic_start + ((buffer[cursor] << 8) | buffer[cursor + 1])
            cursor = topic_end
            packet_id = 0
            if qos:
                if cursor + 2 > end:
                    raise ProtocolError("a PUBLISH cut short")
                packet_id = (buffer[cursor] << 8) | buffer[cursor + 1]
                cursor += 2
                if not packet_id:
                    raise ProtocolError("a QoS 1 message with packet id 0")
            # Properties: skipped (a topic alias is never sent: none was allowed in CONNECT).
            prop_length = 0
            shift = 0
            while True:
                if cursor >= end:
                    raise ProtocolError("a PUBLISH cut short")
                byte = buffer[cursor]
                cursor += 1
                prop_length |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    break
                shift += 7
                if shift > 21:
                    raise ProtocolError("a property length longer than 4 bytes")
            cursor += prop_length
            if topic_end > end or cursor > end:
                raise ProtocolError("a PUBLISH cut short")
            topics.append(buffer[topic_start:topic_end])
            payloads.append(buffer[cursor:end])
            ids.append(packet_id)
        else:
            other.append((kind, first & 0x0F, buffer[cursor:end]))
        at = end
    return at


def read_connack(body: bytes) -> bool:
    """Whether the broker kept a session for the client; raises if it refused the connection."""
    if len(body) < 2:
        raise ProtocolError("a CONNACK cut short")
    if body[1] >= 0x80:
        raise ProtocolError(f"the broker refused the connection (reason code {body[1]:#04x})")
    return bool(body[0] & 1)


def read_suback(body: bytes, packet_id: int) -> int:
    """The QoS granted to a one-filter SUBSCRIBE; raises if refused."""
    if len(body) < 4 or struct.unpack_from(">H", body)[0] != packet_id:
        raise ProtocolError("a SUBACK for another SUBSCRIBE")
    at = 2
    prop_length = shift = 0
    while True:
        byte = body[at]
        at += 1
        prop_length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    code = body[at + prop_length] if at + prop_length < len(body) else 0x80
    if code >= 0x80:
        raise ProtocolError(f"the broker refused the subscription (reason code {code:#04x})")
    return code
