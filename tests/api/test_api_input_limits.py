"""What a client may send: ids in any script, exact numeric ids, field limits, JSON only, gzip
both ways, no repeated keys, links that never come from `Host`, and a commit-order feed.

Each test here failed before the service was hardened against it (issue 10).
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import orjson
import pytest
from fastapi.testclient import TestClient

from app.validate import (
    MAX_CODE_CHARS,
    MAX_DEPTH,
    MAX_EXTRA_BYTES,
    MAX_ID_CHARS,
    MAX_NOTES_CHARS,
    MAX_TEXT_CHARS,
)
from tests.api.support import assert_problem, auth
from tests.factories import PARUKH, collection, point_feature, zone_feature

VIEWER = auth("viewer")
OBSERVER = auth("observer")
ADMIN = auth("admin")

SCRIPTS = {
    "cyrillic": "зона-Степанакерт",
    "armenian": "Պառուխ-գոտի",
    "euro": "zone-€-1",
    "emoji": "🕊️-buffer-✌🏽",
    "arabic": "منطقة-عازلة",
    "cjk": "緩衝地帯",
    "reserved": "a?b#c d&e=f+g",
}


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


def _stored(client: TestClient) -> tuple[Any, ...]:
    """What the store holds: every report, every zone version and the audit log."""
    reports = client.get("/reports", params={"limit": 10_000}, headers=VIEWER).json()
    zones = client.get("/zones", params={"at": "all"}, headers=VIEWER).json()
    audit = client.get("/audit", params={"limit": 10_000}, headers=ADMIN).json()
    return reports["features"], zones["features"], audit["entries"]


# -- ids ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("zone_id", SCRIPTS.values(), ids=SCRIPTS.keys())
def test_zone_id_in_any_script_is_stored_and_its_location_followed(
    client: TestClient, zone_id: str
) -> None:
    created = client.post("/zones", json=zone_feature(zone_id), headers=ADMIN)
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    assert location.isascii() and location.startswith("/zones/")
    assert unquote(location.removeprefix("/zones/")) == zone_id
    assert client.get(location, headers=VIEWER).json()["id"] == zone_id
    history = client.get(location + "/history", headers=VIEWER).json()
    assert [f["id"] for f in history["features"]] == [zone_id]
    # A retry is the conflict it should be, not a second answer to the first request.
    assert_problem(client.post("/zones", json=zone_feature(zone_id), headers=ADMIN), 409)


@pytest.mark.parametrize("report_id", SCRIPTS.values(), ids=SCRIPTS.keys())
def test_report_id_in_any_script_is_stored_as_sent(client: TestClient, report_id: str) -> None:
    filed = client.post("/reports", json=point_feature(*PARUKH, id=report_id), headers=OBSERVER)
    assert filed.json()["stored"] == [report_id]
    listed = client.get("/reports", params={"limit": 1000}, headers=VIEWER).json()
    assert report_id in [f["id"] for f in listed["features"]]


@pytest.mark.parametrize("char", ["\r\n", "\n", "\r", "\t", "\x00", "\x7f", "\x85", "\u2028"])
def test_ids_with_control_characters_are_refused_naming_the_field(
    client: TestClient, char: str
) -> None:
    bad = f"zone{char}x"
    # A name of its own: the default name holds the id, and a name is checked first.
    zone = zone_feature(bad, name="A zone with a bad id")
    assert_problem(client.post("/zones", json=zone, headers=ADMIN), 422, "id")
    report = point_feature(*PARUKH, id=bad)
    assert_problem(client.post("/reports", json=report, headers=OBSERVER), 422, "id")
    assert_problem(client.post("/check", json=report, headers=VIEWER), 422, "id")
    assert client.get("/zones", params={"at": "all"}, headers=VIEWER).status_code == 200


def test_ids_up_to_256_characters_and_no_longer(client: TestClient) -> None:
    longest = "я" * MAX_ID_CHARS
    assert client.post("/zones", json=zone_feature(longest), headers=ADMIN).status_code == 201
    too_long = collection(
        point_feature(*PARUKH, id="x"), point_feature(*PARUKH, id="y" * (MAX_ID_CHARS + 1))
    )
    problem = assert_problem(
        client.post("/reports", json=too_long, headers=OBSERVER), 422, "features/1/id"
    )
    assert problem["index"] == 1
    assert_problem(client.post("/zones", json=zone_feature(""), headers=ADMIN), 422, "id")


@pytest.mark.parametrize("zone_id", ["a/b", ".", ".."])
def test_zone_ids_that_cannot_be_a_path_segment_are_refused(
    client: TestClient, zone_id: str
) -> None:
    assert_problem(client.post("/zones", json=zone_feature(zone_id), headers=ADMIN), 422, "id")


def test_a_big_numeric_id_keeps_every_digit(client: TestClient) -> None:
    big = 1180591620717411303424
    body = collection(point_feature(*PARUKH, id=big), point_feature(*PARUKH, id=big + 1))
    filed = client.post("/reports", content=_json(body), headers=OBSERVER).json()
    assert filed["stored"] == [str(big), str(big + 1)] and filed["duplicates"] == []
    single = client.post(
        "/reports", content=_json(point_feature(*PARUKH, id=-(2**70))), headers=OBSERVER
    )
    assert single.json()["stored"] == [str(-(2**70))]
    zone = zone_feature("placeholder")
    zone["id"] = 2**80
    created = client.post("/zones", content=_json(zone), headers=ADMIN)
    assert created.json()["features"][0]["id"] == str(2**80)


@pytest.mark.parametrize("text", ["1.5", "1e3", "1.0", "-0.25"])
def test_a_fractional_or_exponent_id_is_refused(client: TestClient, text: str) -> None:
    body = _json(point_feature(*PARUKH, id="PLACEHOLDER")).replace(b'"PLACEHOLDER"', text.encode())
    problem = assert_problem(client.post("/reports", content=body, headers=OBSERVER), 422, "id")
    assert "whole number" in problem["detail"]


# -- 500s on client-controlled input ------------------------------------------------------------


def test_a_crafted_cursor_is_a_400(client: TestClient) -> None:
    for value in ([2**63, "x"], [-(2**63) - 1, "x"], [2**64, "x"]):
        cursor = base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
        answer = client.get("/reports", params={"after": cursor}, headers=VIEWER)
        assert_problem(answer, 400, "after")


@pytest.mark.parametrize("after", ["99999999999999999999", str(2**63)])
def test_an_audit_position_beyond_64_bits_is_a_400(client: TestClient, after: str) -> None:
    assert_problem(client.get("/audit", params={"after": after}, headers=ADMIN), 400, "after")


@pytest.mark.parametrize("path", ["/reports", "/check"])
def test_deeply_nested_properties_are_a_400_naming_where(client: TestClient, path: str) -> None:
    nested: dict[str, Any] = {}
    inner = nested
    for _ in range(500):
        inner["a"] = {}
        inner = inner["a"]
    body = point_feature(*PARUKH, id="deep", extra=nested)
    problem = assert_problem(client.post(path, json=body, headers=OBSERVER), 400)
    assert problem["field"].startswith("properties/extra/a/a")
    # Nesting up to the limit is fine (a report's properties then hold MAX_DEPTH - 3 levels).
    shallow: dict[str, Any] = {}
    inner = shallow
    for _ in range(MAX_DEPTH - 4):
        inner["a"] = {}
        inner = inner["a"]
    assert client.post(
        path, json=point_feature(*PARUKH, extra=shallow), headers=OBSERVER
    ).is_success


# -- field limits ---------------------------------------------------------------------------------

REPORT_LIMITS = {
    "party": MAX_CODE_CHARS,
    "unit": MAX_CODE_CHARS,
    "source": MAX_TEXT_CHARS,
    "notes": MAX_NOTES_CHARS,
}


@pytest.mark.parametrize(("name", "limit"), REPORT_LIMITS.items())
@pytest.mark.parametrize("batch", [False, True], ids=["feature", "collection"])
def test_report_text_fields_are_limited(
    client: TestClient, name: str, limit: int, batch: bool
) -> None:
    def body(text: str) -> dict[str, Any]:
        report = point_feature(*PARUKH, **{name: text})
        return collection(*[report] * 3) if batch else report

    field = f"features/0/properties/{name}" if batch else f"properties/{name}"
    if name == "party":  # a party at the limit must be registered to be accepted
        registered = client.put(f"/parties/{'W' * limit}", json={"name": "W"}, headers=ADMIN)
        assert registered.status_code == 201, registered.text
    refused = client.post("/reports", json=body("W" * (limit + 1)), headers=OBSERVER)
    problem = assert_problem(refused, 422, field)
    assert f"{limit:,}" in problem["detail"]
    assert client.post("/check", json=body("W" * limit), headers=VIEWER).status_code == 200


def test_a_report_s_other_properties_are_limited(client: TestClient) -> None:
    big = point_feature(*PARUKH, comment="x" * MAX_EXTRA_BYTES)
    assert_problem(client.post("/reports", json=big, headers=OBSERVER), 422, "properties")
    batch = collection(point_feature(*PARUKH), big)
    assert_problem(client.post("/reports", json=batch, headers=OBSERVER), 422)
    fine = point_feature(*PARUKH, comment="x" * (MAX_EXTRA_BYTES // 2))
    assert client.post("/reports", json=fine, headers=OBSERVER).status_code == 201


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("name", "N" * (MAX_TEXT_CHARS + 1), "properties/name"),
        ("agreement", "A" * (MAX_TEXT_CHARS + 1), "properties/agreement"),
        ("source", "S" * (MAX_TEXT_CHARS + 1), "properties/source"),
        ("authorized_parties", ["P" * (MAX_CODE_CHARS + 1)], "properties/authorized_parties/0"),
        ("authorized_parties", [f"P{i}" for i in range(300)], "properties/authorized_parties"),
    ],
)
def test_zone_text_fields_are_limited(
    client: TestClient, name: str, value: Any, field: str
) -> None:
    zone = zone_feature("limited", **{name: value})
    assert_problem(client.post("/zones", json=zone, headers=ADMIN), 422, field)
    assert_problem(client.get("/zones/limited", headers=VIEWER), 404)


# -- media types and codings --------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/json; charset=latin-1",
    ],
)
def test_a_body_that_is_not_json_by_its_content_type_is_a_415(
    client: TestClient, content_type: str
) -> None:
    before = _stored(client)
    body = _json(point_feature(*PARUKH, id="sent-as-text"))
    headers = {**ADMIN, "Content-Type": content_type}
    for path in ("/reports", "/check", "/zones"):
        assert_problem(client.post(path, content=body, headers=headers), 415, "Content-Type")
    assert _stored(client) == before


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/geo+json",
        "application/vnd.truce+json",
        "Application/JSON; charset=UTF-8",
        None,
    ],
)
def test_json_media_types_and_no_content_type_are_read(
    client: TestClient, content_type: str | None
) -> None:
    headers = dict(OBSERVER)
    if content_type is not None:
        headers["Content-Type"] = content_type
    answer = client.post("/check", content=_json(point_feature(*PARUKH)), headers=headers)
    assert answer.status_code == 200, answer.text


def test_a_gzip_body_is_read(client: TestClient) -> None:
    body = gzip.compress(
        _json(collection(*[point_feature(*PARUKH, id=f"g{i}") for i in range(50)]))
    )
    headers = {**OBSERVER, "Content-Encoding": "gzip", "Content-Type": "application/geo+json"}
    filed = client.post("/reports", content=body, headers=headers)
    assert filed.status_code == 201 and len(filed.json()["stored"]) == 50


def test_a_gzip_bomb_is_refused_after_the_limit(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_body_bytes=64 * 1024)
    # 64 MiB of spaces inside valid JSON, 64 KiB compressed: 1000 times the limit once inflated.
    inflated = b'{"type": "FeatureCollection", "features": [' + b" " * (64 << 20) + b"]}"
    bomb = gzip.compress(inflated, 9)
    assert len(bomb) < 128 * 1024
    headers = {**OBSERVER, "Content-Encoding": "gzip"}
    problem = assert_problem(client.post("/reports", content=bomb, headers=headers), 413, "body")
    assert "inflated" in problem["detail"]


@pytest.mark.parametrize(
    ("body", "headers", "status", "field"),
    [
        (b"not gzip at all", {"Content-Encoding": "gzip"}, 400, "body"),
        (gzip.compress(b'{"a": 1}', mtime=0)[:-6], {"Content-Encoding": "gzip"}, 400, "body"),
        (gzip.compress(b"{}", mtime=0) + b"junk", {"Content-Encoding": "gzip"}, 400, "body"),
        (b"{}", {"Content-Encoding": "br"}, 415, "Content-Encoding"),
        (b"{}", {"Content-Encoding": "deflate"}, 415, "Content-Encoding"),
    ],
)
def test_bad_codings_are_refused(
    client: TestClient, body: bytes, headers: dict[str, str], status: int, field: str
) -> None:
    answer = client.post("/reports", content=body, headers={**OBSERVER, **headers})
    assert_problem(answer, status, field)


def test_answers_are_compressed_when_asked(client: TestClient) -> None:
    asked = client.get("/zones?at=all", headers={**VIEWER, "Accept-Encoding": "gzip"})
    assert asked.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in asked.headers["vary"]
    assert asked.json()["type"] == "FeatureCollection"  # httpx inflates it
    plain = client.get("/zones?at=all", headers={**VIEWER, "Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.json() == asked.json() | {"timeStamp": plain.json()["timeStamp"]}
    problem = client.get("/zones/nobody", headers={**VIEWER, "Accept-Encoding": "gzip"})
    assert_problem(problem, 404)


# -- repeated keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/reports",
            b'{"type": "Feature", "id": "a", "id": "b", "geometry": {"type": "Point",'
            b' "coordinates": [46.8, 40.0]}, "properties": {"party": "AZE",'
            b' "observed_at": "2022-03-24T06:00:00+04:00"}}',
            "id",
        ),
        (
            "/reports",
            b'{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry":'
            b' {"type": "Point", "coordinates": [46.8, 40.0]}, "properties": {"party": "AZE",'
            b' "party": "RU-PK", "observed_at": "2022-03-24T06:00:00+04:00"}}]}',
            "features/0/properties/party",
        ),
        (
            "/check",
            b'{"lon": 46.8, "lat": 40.0, "lat": 41.0, "party": "AZE"}',
            "lat",
        ),
        (
            "/zones",
            _json(zone_feature("dup"))[:-1] + b', "type": "Feature"}',
            "type",
        ),
        (
            "/reports",
            b'{"type": "Feature", "geometry": {"type": "Point", "coordinates": [46.8, 40.0]},'
            b' "properties": {"party": "AZE", "observed_at": "2022-03-24T06:00:00+04:00",'
            b' "a/b": {"x\\u003a": 1, "x:": 2}}}',
            "properties/a~1b/x:",
        ),
    ],
)
def test_repeated_keys_are_refused_naming_the_key(
    client: TestClient, path: str, body: bytes, field: str
) -> None:
    before = _stored(client)
    assert_problem(client.post(path, content=body, headers=ADMIN), 422, field)
    assert _stored(client) == before


def test_keys_that_only_look_alike_are_not_repeats(client: TestClient) -> None:
    # Colons in strings and escaped keys that differ from each other are no repeats.
    body = point_feature(*PARUKH, id="a:b", notes='x": "y', **{"k:1": 1, "k\u003a2": 2, "K:1": 3})
    assert client.post("/reports", json=body, headers=OBSERVER).status_code == 201


# -- links ----------------------------------------------------------------------------------------


def _links(page: dict[str, Any]) -> dict[str, str]:
    return {link["rel"]: link["href"] for link in page["links"]}


def test_links_never_come_from_the_host_header(client: TestClient) -> None:
    headers = {**VIEWER, "Host": "evil.example"}
    for path in ("/zones?limit=1&at=all", "/incursions?limit=1", "/reports?limit=1"):
        answer = client.get(path, headers=headers)
        assert "evil.example" not in answer.text
        assert all(href.startswith("/") for href in _links(answer.json()).values())
    created = client.post(
        "/zones", json=zone_feature("zone-links"), headers={**ADMIN, "Host": "evil.example"}
    )
    assert created.headers["location"] == "/zones/zone-links"
    assert "evil.example" not in created.text + str(created.headers)


def test_links_start_with_the_configured_public_url(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(public_url="https://truce.example.org/api/")
    headers = {**VIEWER, "Host": "evil.example"}
    links = _links(client.get("/zones?limit=1&at=all", headers=headers).json())
    assert links["self"] == "https://truce.example.org/api/zones?limit=1&at=all"
    assert links["next"].startswith("https://truce.example.org/api/zones?")
    evil_admin = {**ADMIN, "Host": "evil.example"}
    created = client.post("/zones", json=zone_feature("€"), headers=evil_admin)
    assert created.headers["location"] == "https://truce.example.org/api/zones/%E2%82%AC"


@pytest.mark.parametrize("url", ["ftp://x.example", "https://x.example/?q=1", "not a url"])
def test_a_public_url_must_be_http(make_client: Callable[..., TestClient], url: str) -> None:
    with pytest.raises(ValueError, match="public_url"):
        make_client(public_url=url)


# -- commit order ---------------------------------------------------------------------------------


def test_filed_after_never_misses_a_report_filed_during_the_walk(client: TestClient) -> None:
    def report(i: int, day: int) -> dict[str, Any]:
        return point_feature(*PARUKH, id=f"r{i}", observed_at=f"2022-03-{day:02d}T06:00:00+04:00")

    # Where the feed stands now (the scenario's reports are already filed).
    everything = client.get("/reports?filed_after=0&limit=10000", headers=VIEWER).json()
    assert everything["numberReturned"] > 0
    now = _links(everything)["next"]
    assert client.get(now, headers=VIEWER).json()["features"] == []
    batch = collection(*[report(i, 20 + i) for i in range(4)])
    client.post("/reports", json=batch, headers=OBSERVER)
    seen: list[str] = []
    page = client.get(now.replace("limit=10000", "limit=3"), headers=VIEWER).json()
    seen += [f["id"] for f in page["features"]]
    # Filed during the walk, observed before everything already read: the keyset walk by
    # observed_at would never reach it; the commit-order feed gives it next.
    client.post("/reports", json=report(9, 1), headers=OBSERVER)
    for _ in range(3):
        page = client.get(_links(page)["next"], headers=VIEWER).json()
        seen += [f["id"] for f in page["features"]]
    assert seen == ["r0", "r1", "r2", "r3", "r9"]
    assert page["features"] == [] and "filed_after=" in _links(page)["next"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"filed_after": "-1"}, "filed_after"),
        ({"filed_after": str(2**63)}, "filed_after"),
        ({"filed_after": "x"}, "filed_after"),
        ({"filed_after": "0", "party": "AZE"}, "party"),
        ({"filed_after": "0", "since": "2022-01-01T00:00:00Z"}, "since"),
    ],
)
def test_filed_after_refuses_what_it_cannot_do(
    client: TestClient, params: dict[str, str], field: str
) -> None:
    assert_problem(client.get("/reports", params=params, headers=VIEWER), 400, field)


# -- caching ------------------------------------------------------------------------------------


def test_keyed_reads_are_private_and_every_read_varies_with_the_key(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(public_read=True)
    keyed = client.get("/zones", headers=VIEWER)
    assert "private" in keyed.headers["cache-control"]
    assert "X-API-Key" in keyed.headers["vary"]
    public = client.get("/zones")
    assert public.status_code == 200 and "X-API-Key" in public.headers["vary"]
    assert "private" not in public.headers.get("cache-control", "")
    # The map is never stored at all, which says more than private.
    assert client.get("/map", headers=VIEWER).headers["cache-control"] == "no-store"


def test_the_document_limits_hold_for_the_body_as_a_whole() -> None:
    # The depth check relies on orjson writing at most 254 levels; if that ever changes, the
    # check would let deeper documents through, so it is pinned here.
    nested: list[Any] = []
    for _ in range(253):
        nested = [nested]
    orjson.dumps(nested)
    with pytest.raises(TypeError):
        orjson.dumps([nested])
