"""Hostile MQTT positions, over both stores: each is refused naming its field (never an
exception), the good ones of the same batch are stored, and what is stored is what was sent."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from app.alerts.mqtt import file_received
from app.service import Service
from app.store import Store
from tests.factories import PARUKH

T = "2022-03-26T10:00:00Z"


def _body(**fields: Any) -> bytes:
    return orjson.dumps({"lon": PARUKH[0], "lat": PARUKH[1], "observed_at": T, **fields})


HOSTILE: list[tuple[str, bytes, str]] = [
    ("nan", b'{"lon": NaN, "lat": 40.0, "observed_at": "2022-03-26T10:00:00Z"}', "body"),
    ("infinity", b'{"lon": 1e999, "lat": 40.0, "observed_at": "2022-03-26T10:00:00Z"}', "body"),
    ("not utf-8", b"\xff\xfe\x00", "body"),
    ("empty", b"", "body"),
    ("null", b"null", "body"),
    ("deep", b"[" * 100_000, "body"),
    ("latitude out of range", _body(lon=40.0, lat=100.0), "lat"),
    ("longitude out of range", _body(lon=-246.8), "lon"),
    ("latitude a string", _body(lat="40.0"), "lat"),
    ("longitude a boolean", _body(lon=True), "lon"),
    ("time a number", _body(observed_at=5), "observed_at"),
    ("uncertainty a string", _body(uncertainty_m="5"), "uncertainty_m"),
    ("uncertainty negative", _body(uncertainty_m=-5), "uncertainty_m"),
    ("kind a number", _body(kind=5), "kind"),
    ("huge notes", _body(notes="n" * 1_000_000), "notes"),
    ("huge id", _body(id="i" * 100_000), "id"),
    ("id with NUL", _body(id="a\x00b"), "id"),
    ("id an object", _body(id={"a": 1}), "id"),
]


def test_hostile_positions_are_refused_by_field_and_the_good_ones_stored(store: Store) -> None:
    service = Service(store)
    assert service.load_scenario()
    topics, payloads = [], []
    for k, (name, payload, _) in enumerate(HOSTILE):
        topics.append(f"truce/reports/AZE/bad-{k}".encode())
        payloads.append(payload)
        # A good position of another unit after each bad one, in the same batch.
        topics.append(f"truce/reports/AZE/good-{k}".encode())
        payloads.append(_body(id=f"good-{k}", notes=name))
    stored, duplicates, refusals = file_received(service, topics, payloads)
    assert (stored, duplicates) == (len(HOSTILE), 0)
    by_topic = {r.topic: r.problem for r in refusals}
    assert len(by_topic) == len(refusals) == len(HOSTILE)
    for k, (name, _, field) in enumerate(HOSTILE):
        problem = by_topic[f"truce/errors/AZE/bad-{k}"]
        assert (problem["field"], problem["status"]) == (field, 422), name
        assert problem["topic"] == f"truce/reports/AZE/bad-{k}"
        assert problem["detail"], name
        report = store.get_report(f"good-{k}").report
        assert (report.unit, report.notes) == (f"good-{k}", name)
    # The id is repeated to help the tracker match its message, but never a huge one whole
    # nor a non-scalar.
    huge = by_topic[f"truce/errors/AZE/bad-{[h[0] for h in HOSTILE].index('huge id')}"]
    assert huge["id"] == "i" * 256
    assert by_topic[f"truce/errors/AZE/bad-{len(HOSTILE) - 1}"]["id"] is None


def test_swapped_coordinates_are_stored_as_sent_as_post_reports_does(store: Store) -> None:
    # [lat, lon] of Parukh read as [lon, lat] is a valid position (far from every zone):
    # POST /reports keeps such a report as sent (with a warning), and so does MQTT.
    service = Service(store)
    assert service.load_scenario()
    swapped = _body(id="swapped-1", lon=PARUKH[1], lat=PARUKH[0])
    stored, _, refusals = file_received(service, [b"truce/reports/AZE/s1"], [swapped])
    assert (stored, refusals) == (1, [])
    report = store.get_report("swapped-1").report
    assert (report.lon, report.lat) == (PARUKH[1], PARUKH[0])


def test_the_topic_names_party_and_unit_and_unknown_keys_are_left_out(store: Store) -> None:
    service = Service(store)
    assert service.load_scenario()
    body = _body(id="k-1", party="ARM", unit="other", speed_kmh=40, kind="troops")
    stored, _, refusals = file_received(service, ["truce/reports/AZE/ü-1".encode()], [body])
    assert (stored, refusals) == (1, [])
    report = store.get_report("k-1").report
    assert (report.party, report.unit, report.kind.value) == ("AZE", "ü-1", "troops")
    assert report.extra == {}


@pytest.mark.parametrize("with_id", [True, False])
def test_a_position_sent_twice_is_stored_once(store: Store, with_id: bool) -> None:
    # Without an id, the unit and time name the report (a unit is in one place at a time).
    service = Service(store)
    assert service.load_scenario()
    body = _body(id="twice-1") if with_id else _body()
    topic = b"truce/reports/AZE/twice"
    assert file_received(service, [topic, topic], [body, body])[:2] == (1, 1)
    assert file_received(service, [topic], [body])[:2] == (0, 1)
    expected = "twice-1" if with_id else f"mqtt:AZE:twice:{T}"
    assert store.get_report(expected).report.unit == "twice"
