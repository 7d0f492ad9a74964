"""The inbox's MQTT 5 codec against packets built here by the specification (MQTT 5.0,
OASIS standard, section 3), including hostile ones: cut anywhere, oversized, malformed."""

from __future__ import annotations

import struct

import pytest

from app.alerts import mqtt_wire as wire


def _varint(n: int) -> bytes:
    # Written out from the specification's algorithm (1.5.5), independently of the module's.
    out = b""
    while True:
        digit, n = n % 128, n // 128
        out += bytes([digit + 128 if n > 0 else digit])
        if n == 0:
            return out


def _publish(topic: str, payload: bytes, packet_id: int | None, properties: bytes = b"") -> bytes:
    qos = 0 if packet_id is None else 1
    body = struct.pack(">H", len(topic.encode())) + topic.encode()
    if packet_id is not None:
        body += struct.pack(">H", packet_id)
    body += _varint(len(properties)) + properties + payload
    return bytes([0x30 | qos << 1]) + _varint(len(body)) + body


def _split(data: bytes) -> tuple[wire.Inbound, int]:
    into = wire.Inbound([], [], [], [])
    return into, wire.split_packets(data, into)


def test_publishes_are_cut_into_topics_payloads_and_packet_ids() -> None:
    # A payload over 127 bytes needs a 2-byte remaining length; message expiry and user
    # properties are skipped; QoS 0 has no packet id (0: nothing to acknowledge).
    big = b'{"notes": "' + b"x" * 300 + b'"}'
    props = b"\x02\x00\x00\x00\x3c" + b"\x26\x00\x01k\x00\x01v"
    stream = (
        _publish("truce/reports/AZE/u1", b'{"lon": 1}', 7)
        + _publish("truce/reports/ARM/ü", big, 65535, props)
        + _publish("truce/reports/AZE/u2", b"", None)
        + b"\xd0\x00"  # PINGRESP
    )
    into, used = _split(stream)
    assert used == len(stream)
    assert into.topics == [
        b"truce/reports/AZE/u1",
        "truce/reports/ARM/ü".encode(),
        b"truce/reports/AZE/u2",
    ]
    assert into.payloads == [b'{"lon": 1}', big, b""]
    assert into.packet_ids == [7, 65535, 0]
    assert into.other == [(wire.PINGRESP, 0, b"")]


def test_a_stream_cut_at_every_byte_gives_the_same_packets() -> None:
    stream = b"".join(_publish(f"truce/reports/AZE/u{i}", b"p" * (i * 40), i + 1) for i in range(6))
    whole, _ = _split(stream)
    for cut in range(len(stream) + 1):
        into = wire.Inbound([], [], [], [])
        used = wire.split_packets(stream[:cut], into)
        used += wire.split_packets(stream[used:], into)
        assert used == len(stream)
        assert (into.topics, into.payloads, into.packet_ids) == (
            whole.topics,
            whole.payloads,
            whole.packet_ids,
        )


def test_a_packet_still_arriving_is_left_in_the_buffer() -> None:
    packet = _publish("truce/reports/AZE/u1", b"x" * 200, 1)
    for cut in (1, 2, 3, len(packet) - 1):
        into, used = _split(packet[:cut])
        assert used == 0 and not into.payloads


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x32\xff\xff\xff\xff\x01", "longer than 4 bytes"),  # a 5-byte remaining length
        (b"\x32" + _varint(wire.MAX_PACKET + 1), "at most"),  # oversized, refused early
        (b"\x34\x05\x00\x01t\x00\x01", "QoS 2"),
        (b"\x32\x06\x00\x01t\x00\x00\x00", "packet id 0"),
        (b"\x32\x04\x00\x09ab", "cut short"),  # the topic runs past the packet
        (b"\x32\x03\x00\x01t", "cut short"),  # no packet id
        (b"\x30\x03\x00\x01t", "cut short"),  # no property length
        (b"\x30\x04\x00\x01t\x09", "cut short"),  # properties past the packet
        (b"\x30\x01\x00", "without a topic"),
        (b"\x30\x00", "without a topic"),
    ],
)
def test_malformed_packets_end_the_connection_naming_why(data: bytes, why: str) -> None:
    with pytest.raises(wire.ProtocolError, match=why):
        _split(data)


def test_pubacks_are_the_two_byte_success_form_in_order() -> None:
    # 3.4.2.1: the reason code and properties may be left out when the reason is success.
    assert wire.pubacks([1, 258, 65535]) == b"\x40\x02\x00\x01\x40\x02\x01\x02\x40\x02\xff\xff"
    assert wire.pubacks([]) == b""


def test_connect_asks_for_a_persistent_session_and_a_wide_window() -> None:
    packet = wire.connect_packet(
        "truce-bridge",
        clean_start=False,
        session_expiry_s=3600,
        receive_maximum=65535,
        keepalive_s=30,
        username="u",
        password="p",
    )
    assert packet[0] == 0x10
    body = packet[1 + len(_varint(len(packet) - 2)) :]
    assert len(body) == len(packet) - 1 - len(_varint(len(body)))
    assert body[:7] == b"\x00\x04MQTT\x05"
    assert body[7] == 0x80 | 0x40  # username, password, clean start off
    assert struct.unpack(">H", body[8:10]) == (30,)
    length = body[10]
    properties = body[11 : 11 + length]
    assert b"\x11" + struct.pack(">I", 3600) in properties  # session expiry interval
    assert b"\x21" + struct.pack(">H", 65535) in properties  # receive maximum
    assert b"\x27" + struct.pack(">I", wire.MAX_PACKET) in properties  # maximum packet size
    assert body[11 + length :] == b"\x00\x0ctruce-bridge\x00\x01u\x00\x01p"


def test_connack_and_suback_refusals_are_errors() -> None:
    assert wire.read_connack(b"\x01\x00\x00") is True  # session present
    assert wire.read_connack(b"\x00\x00\x00") is False
    with pytest.raises(wire.ProtocolError, match="0x87"):
        wire.read_connack(b"\x00\x87\x00")  # not authorized
    assert wire.read_suback(b"\x00\x01\x00\x01", 1) == 1
    with pytest.raises(wire.ProtocolError, match="0x80"):
        wire.read_suback(b"\x00\x01\x00\x80", 1)
    with pytest.raises(wire.ProtocolError, match="another"):
        wire.read_suback(b"\x00\x02\x00\x01", 1)


def test_subscribe_asks_for_qos_1() -> None:
    packet = wire.subscribe_packet(1, "truce/reports/+/+")
    assert packet == b"\x82\x17\x00\x01\x00\x00\x11truce/reports/+/+\x01"
