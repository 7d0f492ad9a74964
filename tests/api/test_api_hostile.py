"""A hostile client against a real server: no request it can send gets a 5xx or changes the store.

Every case goes over loopback to a uvicorn process of its own (the module's server), and is held
to three things: the answer is not a 5xx; a refusal is an RFC 9457 problem that names the field or
parameter at fault (where there is one); and the store is exactly as it was (its audit log, the
commit-order position of its reports and every zone version), as nothing refused may be stored.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import httpx
import pytest

from app.validate import MAX_CODE_CHARS, MAX_ID_CHARS, MAX_NOTES_CHARS, MAX_TEXT_CHARS
from tests.api.support import Server, assert_problem, auth, running_server
from tests.factories import FAR, PARUKH, T, collection, point_feature, zone_feature
from tests.postgis import create_database, drop_database, worker_database_name

MAX_BODY = 256 * 1024
MAX_FEATURES = 500
VIEWER, OBSERVER, ADMIN = auth("viewer"), auth("observer"), auth("admin")
#: Refusals at these statuses are about something the client sent, so they must name it.
NAMED = {400, 401, 403, 413, 415, 422}


@dataclass
class Case:
    """One hostile request and the status it must get (a field to name, when there is one)."""

    id: str
    method: str
    path: str
    status: int
    field: str | None = None
    body: Any = None  # JSON-able, sent as JSON
    content: bytes | None = None  # sent as is
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    params: dict[str, str] | None = None
    key: dict[str, str] = dataclasses.field(default_factory=lambda: ADMIN)


CASES: list[Case] = []


def case(*args: Any, **kwargs: Any) -> None:
    CASES.append(Case(*args, **kwargs))


def raw(text: str) -> bytes:
    return text.encode()


def report_with(**properties: Any) -> dict[str, Any]:
    return point_feature(*PARUKH, id="hostile", **properties)


def zone_with(**properties: Any) -> dict[str, Any]:
    return zone_feature("hostile-zone", **properties)


def zone_geometry(geometry: Any) -> dict[str, Any]:
    zone = zone_feature("hostile-zone")
    zone["geometry"] = geometry
    return zone


def polygon(*rings: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


# -- bodies that are not JSON -----------------------------------------------------------------

NOT_JSON = {
    "empty": b"",
    "blank": b"   \n",
    "open-brace": b"{",
    "open-bracket": b"[",
    "truncated": raw(json.dumps(report_with()))[:-5],
    "nan": raw('{"lon": NaN, "lat": 40, "party": "AZE"}'),
    "infinity": raw('{"lon": Infinity, "lat": 40, "party": "AZE"}'),
    "minus-infinity": raw('{"lon": -Infinity, "lat": 40, "party": "AZE"}'),
    "trailing-comma": raw('{"lon": 46, "lat": 40,}'),
    "single-quotes": raw("{'lon': 46, 'lat': 40}"),
    "bad-utf8": b'{"lon": 46, "lat": 40, "party": "\xff\xfe"}',
    "lone-surrogate": raw('{"lon": 46, "lat": 40, "party": "\\ud800"}'),
    "comment": raw('{"lon": 46 /* here */, "lat": 40}'),
    "two-documents": raw('{"lon": 46, "lat": 40} {"lon": 46, "lat": 40}'),
    "nul-byte": b'{"lon": 46, "lat": 40}\x00',
}
for name, content in NOT_JSON.items():
    for path, key in (("/reports", OBSERVER), ("/check", VIEWER), ("/zones", ADMIN)):
        case(f"not-json-{name}-{path[1:]}", "POST", path, 400, "body", content=content, key=key)

# -- documents of the wrong shape ---------------------------------------------------------------

WRONG_SHAPES: dict[str, Any] = {
    "array": [],
    "string": "report",
    "number": 17,
    "null": None,
    "no-type": {"features": []},
    "geometry-only": {"type": "Point", "coordinates": [46.8, 40.0]},
    "features-not-array": {"type": "FeatureCollection", "features": {}},
    "features-null": {"type": "FeatureCollection", "features": None},
    "feature-is-number": collection(7),  # type: ignore[arg-type]
    "feature-wrong-type": collection({"type": "Point", "coordinates": [46.8, 40.0]}),
}
for name, body in WRONG_SHAPES.items():
    for path, key in (("/reports", OBSERVER), ("/check", VIEWER), ("/zones", ADMIN)):
        case(f"shape-{name}-{path[1:]}", "POST", path, 422, body=body, key=key)

# -- every report field with the wrong type or value --------------------------------------------

WRONG_REPORT_VALUES: dict[str, list[Any]] = {
    "party": [None, 17, True, [], {}, "", "   ", "P" * (MAX_CODE_CHARS + 1)],
    "observed_at": [
        17,
        True,
        [],
        "",
        "yesterday",
        "2022-03-24T06:00:00",
        "2022-13-01T00:00:00Z",
        "2022-03-24T25:00:00Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T00:00:00Z",
        "2022-03-24T06:00:00+25:00",
    ],
    "uncertainty_m": [-1, "10", True, [], 1e300, 2e7 + 1e6],
    "kind": [17, "tank-battalion", [], True],
    "unit": [17, [], {}, "U" * (MAX_CODE_CHARS + 1)],
    "source": [17, [], True, "S" * (MAX_TEXT_CHARS + 1)],
    "confidence": ["certain", 3, []],
    "notes": [17, {}, "N" * (MAX_NOTES_CHARS + 1)],
}
for name, values in WRONG_REPORT_VALUES.items():
    for i, value in enumerate(values):
        body = report_with(**{name: value})
        if value is None:
            body["properties"].pop(name, None)
        where = f"properties/{name}"
        case(f"report-{name}-{i}", "POST", "/reports", 422, where, body=body, key=OBSERVER)
        batch = collection(point_feature(*PARUKH, id="fine"), body)
        case(
            f"batch-{name}-{i}",
            "POST",
            "/reports",
            422,
            f"features/1/{where}",
            body=batch,
            key=OBSERVER,
        )

BAD_IDS: dict[str, Any] = {
    "crlf": "a\r\nb",
    "lf": "a\nb",
    "nul": "a\x00b",
    "tab": "\tx",
    "c1": "a\x85b",
    "line-separator": "a\u2028b",
    "too-long": "i" * (MAX_ID_CHARS + 1),
    "empty": "",
    "blank": "  ",
    "fraction": 1.5,
    "exponent": 1e3,
    "bool": True,
    "array": ["a"],
    "object": {"id": "a"},
}
for name, value in BAD_IDS.items():
    body = point_feature(*PARUKH)
    body["id"] = value
    case(f"report-id-{name}", "POST", "/reports", 422, "id", body=body, key=OBSERVER)
    zone = zone_feature("placeholder")
    zone["id"] = value
    case(f"zone-id-{name}", "POST", "/zones", 422, "id", body=zone)
for name in ("slash", "dot", "dotdot"):
    value = {"slash": "a/b", "dot": ".", "dotdot": ".."}[name]
    case(f"zone-id-{name}", "POST", "/zones", 422, "id", body=zone_feature(value))

# -- positions ------------------------------------------------------------------------------------

BAD_POSITIONS: dict[str, Any] = {
    "lon-181": [181.0, 40.0],
    "lon-minus-181": [-181.0, 40.0],
    "lat-91": [46.0, 91.0],
    "lat-minus-91": [46.0, -91.0],
    "empty": [],
    "one-number": [46.0],
    "strings": ["46", "40"],
    "booleans": [True, False],
    "nulls": [None, None],
    "object": {"lon": 46, "lat": 40},
    "huge": [1e308, 1e308],
    "nested": [[46.0, 40.0]],
}
for name, coordinates in BAD_POSITIONS.items():
    body = point_feature(*PARUKH, id="pos")
    body["geometry"]["coordinates"] = coordinates
    case(f"position-{name}", "POST", "/reports", 422, body=body, key=OBSERVER)
    case(f"check-position-{name}", "POST", "/check", 422, body=body, key=VIEWER)
for name, geometry in {
    "null": None,
    "polygon": polygon([[46, 40], [47, 40], [47, 41], [46, 40]]),
    "no-coordinates": {"type": "Point"},
    "string": "POINT (46 40)",
}.items():
    body = point_feature(*PARUKH)
    body["geometry"] = geometry
    case(f"report-geometry-{name}", "POST", "/reports", 422, body=body, key=OBSERVER)
# Numbers beyond a double are no JSON numbers that can be read: 400, like NaN.
for name, literal in {"exponent": "1e400", "digits": "9" * 400, "negative": "-1e999"}.items():
    content = raw('{"lon": ' + literal + ', "lat": 40, "party": "AZE"}')
    case(f"huge-literal-{name}", "POST", "/check", 400, "body", content=content, key=VIEWER)
for name, body in {
    "bare-object-no-lat": {"lon": 46.8, "party": "AZE"},
    "bare-object-lat-string": {"lon": 46.8, "lat": "40", "party": "AZE"},
    "bare-object-lon-null": {"lon": None, "lat": 40, "party": "AZE"},
}.items():
    case(name, "POST", "/check", 422, body=body, key=VIEWER)

# -- zones: geometry and properties ---------------------------------------------------------------

BOWTIE = [[46, 40], [47, 41], [47, 40], [46, 41], [46, 40]]
SQUARE = [[46, 40], [47, 40], [47, 41], [46, 41], [46, 40]]
BAD_GEOMETRIES: dict[str, Any] = {
    "bowtie": polygon(BOWTIE),
    "three-positions": polygon([[46, 40], [47, 40], [46, 40]]),
    "collinear": polygon([[46, 40], [46.5, 40], [47, 40], [46, 40]]),
    "hole-outside": polygon(SQUARE, [[48, 40], [48.1, 40], [48.1, 40.1], [48, 40]]),
    "out-of-range": polygon([[46, 40], [200, 40], [200, 41], [46, 40]]),
    "lat-out-of-range": polygon([[46, 40], [47, 40], [47, 95], [46, 40]]),
    "empty-rings": polygon(),
    "empty-ring": polygon([]),
    "point": {"type": "Point", "coordinates": [46, 40]},
    "line": {"type": "LineString", "coordinates": [[46, 40], [47, 41]]},
    "no-type": {"coordinates": [SQUARE]},
    "string-coordinates": {"type": "Polygon", "coordinates": "46 40, 47 40"},
    "overlapping-parts": {"type": "MultiPolygon", "coordinates": [[SQUARE], [SQUARE]]},
    "empty-multipolygon": {"type": "MultiPolygon", "coordinates": []},
    "null": None,
}
for name, geometry in BAD_GEOMETRIES.items():
    case(f"zone-geometry-{name}", "POST", "/zones", 422, body=zone_geometry(geometry))

WRONG_ZONE_VALUES: dict[str, list[Any]] = {
    "name": [None, 17, "", "Z" * (MAX_TEXT_CHARS + 1)],
    "kind": [None, "castle", 3],
    "valid_from": [None, "tomorrow", "2022-03-24T06:00:00", 1648094400, "1000-01-01T00:00:00Z"],
    "valid_to": ["2019-01-01T00:00:00Z", "later", 7],
    "warning_distance_m": [-1, "1000", 1e30],
    "boundary_uncertainty_m": [-1, "2000", 1e30, True, {"m": 1}],
    "authorized_parties": ["AZE", [1], [""], ["P" * (MAX_CODE_CHARS + 1)]],
    "agreement": [17, "A" * (MAX_TEXT_CHARS + 1)],
    "version": [0, 1.5, "2"],
}
for name, values in WRONG_ZONE_VALUES.items():
    for i, value in enumerate(values):
        zone = zone_with(**{name: value})
        if value is None:
            zone["properties"].pop(name, None)
        case(f"zone-{name}-{i}", "POST", "/zones", 422, body=zone)
case("zones-empty-collection", "POST", "/zones", 422, "features", body=collection())
case(
    "zones-same-twice",
    "POST",
    "/zones",
    422,
    "features/1/id",
    body=collection(zone_feature("twin"), zone_feature("twin")),
)
case("zone-exists", "POST", "/zones", 409, body=zone_feature("nk-pk-zone"))
case("put-unknown-zone", "PUT", "/zones/nobody-here", 404, body=zone_feature("nobody-here"))
case("put-other-id", "PUT", "/zones/nk-pk-zone", 422, "id", body=zone_feature("lachin-corridor"))
case("put-collection", "PUT", "/zones/nk-pk-zone", 422, "type", body=collection())
case("put-bowtie", "PUT", "/zones/nk-pk-zone", 422, body=zone_geometry(polygon(BOWTIE)))
case("delete-unknown-zone", "DELETE", "/zones/nobody-here", 404)
case("delete-bad-at", "DELETE", "/zones/nk-pk-zone", 400, "at", params={"at": "soon"})
case(
    "delete-before-start", "DELETE", "/zones/nk-pk-zone", 409, params={"at": "1990-01-01T00:00:00Z"}
)

# -- bodies over the limits, nested, repeated, in other media types --------------------------------

big = raw(json.dumps(collection(*[point_feature(*PARUKH, notes="n" * 1000) for _ in range(300)])))
assert len(big) > MAX_BODY
case("body-over-limit", "POST", "/reports", 413, "body", content=big, key=OBSERVER)
case("check-over-limit", "POST", "/check", 413, "body", content=big, key=VIEWER)
many = collection(*[point_feature(*FAR) for _ in range(MAX_FEATURES + 1)])
case("too-many-features", "POST", "/check", 413, "features", body=many, key=VIEWER)
case(
    "gzip-bomb",
    "POST",
    "/reports",
    413,
    "body",
    content=gzip.compress(
        b'{"type": "FeatureCollection", "features": [' + b" " * (16 << 20) + b"]}"
    ),
    headers={"Content-Encoding": "gzip"},
    key=OBSERVER,
)
case(
    "gzip-garbage",
    "POST",
    "/reports",
    400,
    "body",
    content=b"\x1f\x8b\x08garbage",
    headers={"Content-Encoding": "gzip"},
    key=OBSERVER,
)
case(
    "brotli",
    "POST",
    "/reports",
    415,
    "Content-Encoding",
    content=b"{}",
    headers={"Content-Encoding": "br"},
    key=OBSERVER,
)
nested: Any = "bottom"
for _ in range(600):
    nested = {"a": nested}
case(
    "nested-600",
    "POST",
    "/reports",
    400,
    body=report_with(extra=nested),
    key=OBSERVER,
)
for depth in (100, 1000, 5000):
    content = b"[" * depth + b"]" * depth
    where = "body" if depth > 1024 else None  # orjson reads 1024 levels; then the path is named
    case(f"nested-{depth}", "POST", "/check", 400, where, content=content, key=VIEWER)
REPEATS = {
    "top-id": (raw('{"type": "Feature", "id": "a", "id": "b"}'), "id"),
    "party": (
        raw(
            '{"type": "Feature", "geometry": {"type": "Point", "coordinates": [46.8, 40]},'
            ' "properties": {"party": "AZE", "party": "RU-PK", "observed_at": "' + T + '"}}'
        ),
        "properties/party",
    ),
    "escaped": (raw('{"lon": 46.8, "lat": 40, "l\\u0061t": 41, "party": "AZE"}'), "lat"),
}
for name, (content, where) in REPEATS.items():
    case(f"repeated-{name}", "POST", "/reports", 422, where, content=content, key=OBSERVER)
for name, content_type in {
    "text": "text/plain",
    "form": "application/x-www-form-urlencoded",
    "xml": "application/xml",
    "multipart": "multipart/form-data; boundary=x",
    "latin1": "application/json; charset=iso-8859-1",
    "octets": "application/octet-stream",
}.items():
    for path, key in (("/reports", OBSERVER), ("/zones", ADMIN), ("/check", VIEWER)):
        case(
            f"media-{name}-{path[1:]}",
            "POST",
            path,
            415,
            "Content-Type",
            body=report_with(),
            headers={"Content-Type": content_type},
            key=key,
        )

# -- query parameters -----------------------------------------------------------------------------

BAD_PARAMETERS: dict[str, list[tuple[str, dict[str, str], str]]] = {
    "/zones": [
        ("at-word", {"at": "soon"}, "at"),
        ("at-naive", {"at": "2022-03-24T06:00:00"}, "at"),
        ("at-year-1", {"at": "0001-01-01T00:00:00Z"}, "at"),
        ("bbox-three", {"bbox": "1,2,3"}, "bbox"),
        ("bbox-words", {"bbox": "a,b,c,d"}, "bbox"),
        ("bbox-range", {"bbox": "-200,0,10,10"}, "bbox"),
        ("bbox-nan", {"bbox": "nan,0,10,10"}, "bbox"),
        ("bbox-lat-order", {"bbox": "0,10,10,0"}, "bbox"),
        ("kind", {"kind": "castle"}, "kind"),
        ("limit-0", {"limit": "0"}, "limit"),
        ("limit-huge", {"limit": "99999999999999999999"}, "limit"),
        ("limit-word", {"limit": "all"}, "limit"),
        ("offset-negative", {"offset": "-1"}, "offset"),
        ("offset-huge", {"offset": "99999999999999999999"}, "offset"),
    ],
    "/reports": [
        ("since-word", {"since": "monday"}, "since"),
        ("until-before-since", {"since": T, "until": "2020-01-01T00:00:00Z"}, "until"),
        ("datetime-three", {"datetime": "a/b/c"}, "datetime"),
        ("datetime-and-since", {"datetime": T, "since": T}, "datetime"),
        ("after-garbage", {"after": "!!!"}, "after"),
        ("after-not-list", {"after": base64.urlsafe_b64encode(b'{"a": 1}').decode()}, "after"),
        (
            "after-2-63",
            {"after": base64.urlsafe_b64encode(b'[9223372036854775808, "x"]').decode()},
            "after",
        ),
        ("after-swapped", {"after": base64.urlsafe_b64encode(b'["x", 1]').decode()}, "after"),
        ("after-float", {"after": base64.urlsafe_b64encode(b'[1e300, "x"]').decode()}, "after"),
        ("limit-negative", {"limit": "-5"}, "limit"),
        ("limit-over", {"limit": "10001"}, "limit"),
        ("bbox-inf", {"bbox": "0,0,inf,10"}, "bbox"),
        ("filed-after-negative", {"filed_after": "-1"}, "filed_after"),
        ("filed-after-huge", {"filed_after": "99999999999999999999"}, "filed_after"),
        ("filed-after-with-party", {"filed_after": "0", "party": "AZE"}, "party"),
        ("filed-after-with-zone", {"filed_after": "0", "zone": "nk-pk-zone"}, "zone"),
    ],
    "/incursions": [
        ("since-naive", {"since": "2022-03-24T06:00:00"}, "since"),
        ("until-word", {"until": "never"}, "until"),
        ("limit-0", {"limit": "0"}, "limit"),
        ("offset-huge", {"offset": "99999999999999999999"}, "offset"),
        ("verdict-word", {"verdict": "certain"}, "verdict"),
        ("verdict-approaching", {"verdict": "approaching"}, "verdict"),
        ("verdict-script", {"verdict": "<script>"}, "verdict"),
    ],
    "/parties": [("limit-0", {"limit": "0"}, "limit"), ("limit-word", {"limit": "all"}, "limit")],
    "/audit": [
        ("after-huge", {"after": "99999999999999999999"}, "after"),
        ("after-2-63", {"after": str(2**63)}, "after"),
        ("after-negative", {"after": "-1"}, "after"),
        ("after-word", {"after": "last"}, "after"),
        ("limit-0", {"limit": "0"}, "limit"),
    ],
    "/map": [
        ("at-word", {"at": "now-ish"}, "at"),
        ("until-before-since", {"since": T, "until": "2020-01-01T00:00:00Z"}, "until"),
    ],
}
for path, bad in BAD_PARAMETERS.items():
    for name, params, where in bad:
        case(f"query{path.replace('/', '-')}-{name}", "GET", path, 400, where, params=params)
case(
    "check-include-outside-word",
    "POST",
    "/check",
    400,
    "include_outside",
    body=report_with(),
    params={"include_outside": "perhaps"},
    key=VIEWER,
)

# -- unknown things, wrong methods, wrong keys ----------------------------------------------------

case("unknown-zone", "GET", "/zones/nobody-here", 404, "id")
case("unknown-zone-history", "GET", "/zones/nobody-here/history", 404, "id")
case("unknown-zone-script", "GET", "/zones/" + quote("зона-нет"), 404, "id")
case("unknown-map-zone", "GET", "/map", 404, params={"zone": "nobody-here"})
case("unknown-track", "GET", "/tracks/AZE/nobody", 404)
case("unknown-path", "GET", "/nothing/here", 404)
case("unknown-path-dots", "GET", "/static/../app/settings.py", 404)
for method, path in [
    ("PATCH", "/zones"),
    ("DELETE", "/zones"),
    ("PUT", "/reports"),
    ("DELETE", "/reports"),
    ("GET", "/check"),
    ("PUT", "/check"),
    ("POST", "/health"),
    ("POST", "/audit"),
    ("POST", "/incursions"),
    ("POST", "/zones/nk-pk-zone"),
    ("PATCH", "/zones/nk-pk-zone"),
    ("POST", "/tracks/AZE/u"),
]:
    case(f"method-{method}{path.replace('/', '-')}", method, path, 405, body={})
ENDPOINTS = [
    ("GET", "/zones", None, "viewer"),
    ("GET", "/reports", None, "viewer"),
    ("GET", "/incursions", None, "viewer"),
    ("GET", "/audit", None, "admin"),
    ("GET", "/map", None, "viewer"),
    ("POST", "/check", report_with(), "viewer"),
    ("POST", "/reports", report_with(), "observer"),
    ("POST", "/zones", zone_feature("keyless"), "admin"),
    ("PUT", "/zones/nk-pk-zone", zone_feature("nk-pk-zone"), "admin"),
    ("DELETE", "/zones/nk-pk-zone", None, "admin"),
]
for method, path, body, role in ENDPOINTS:
    name = f"{method}{path.replace('/', '-')}"
    case(f"no-key-{name}", method, path, 401, "X-API-Key", body=body, key={})
    case(f"wrong-key-{name}", method, path, 401, "X-API-Key", body=body, key=auth("wrong"))
    case(f"empty-key-{name}", method, path, 401, "X-API-Key", body=body, key={"X-API-Key": ""})
    if role != "viewer":
        weaker = "viewer" if role == "observer" else "observer"
        case(f"weak-key-{name}", method, path, 403, "X-API-Key", body=body, key=auth(weaker))

# Accepted, but judged and not stored: swapped coordinates, empty collections, the far away.
case("check-swapped", "POST", "/check", 200, body=point_feature(PARUKH[1], PARUKH[0]), key=VIEWER)
case("check-empty", "POST", "/check", 200, body=collection(), key=VIEWER)
case("check-far", "POST", "/check", 200, body=point_feature(*FAR), key=VIEWER)
case(
    "check-gzip",
    "POST",
    "/check",
    200,
    content=gzip.compress(raw(json.dumps(point_feature(*FAR)))),
    headers={"Content-Encoding": "gzip"},
    key=VIEWER,
)
case("reports-empty", "POST", "/reports", 200, body=collection(), key=OBSERVER)


# -- the server and the store -------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgis"])
def hostile(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server of this module's own, with small limits, over each store."""
    directory = tmp_path_factory.mktemp("hostile")
    database: Path | str = directory / "truce.sqlite"
    name = worker_database_name("truce_hostile")
    if request.param == "postgis":
        database = create_database(name)
    try:
        with running_server(
            database,
            directory / "uvicorn.log",
            env={"TRUCE_MAX_BODY_BYTES": str(MAX_BODY), "TRUCE_MAX_FEATURES": str(MAX_FEATURES)},
        ) as running:
            yield running
    finally:
        if request.param == "postgis":
            drop_database(name)


@pytest.fixture(scope="module")
def http(hostile: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hostile.url, timeout=60) as client:
        yield client


def store_state(http: httpx.Client) -> tuple[Any, ...]:
    """The whole store as the API shows it: audit log, reports in filing order, zone versions."""
    audit = http.get("/audit", params={"limit": 10_000}, headers=ADMIN).json()["entries"]
    feed = http.get("/reports", params={"filed_after": 0, "limit": 10_000}, headers=VIEWER)
    zones = http.get("/zones", params={"at": "all", "limit": 10_000}, headers=VIEWER).json()
    digest = hashlib.sha256(json.dumps(zones["features"], sort_keys=True).encode()).hexdigest()
    reports = feed.json()
    return audit, reports["links"][1]["href"], reports["numberReturned"], digest


def send(http: httpx.Client, c: Case) -> httpx.Response:
    headers = {**c.key, **c.headers}
    if c.body is not None or c.content is None and c.method in ("POST", "PUT"):
        content = json.dumps(c.body).encode() if c.content is None else c.content
        headers.setdefault("Content-Type", "application/json")
    else:
        content = c.content
    return http.request(c.method, c.path, content=content, headers=headers, params=c.params)


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 200
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_a_hostile_request_is_refused_cleanly_and_stores_nothing(
    http: httpx.Client, c: Case
) -> None:
    before = store_state(http)
    answer = send(http, c)
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        problem = assert_problem(answer, c.status, c.field)
        if c.status in NAMED:
            assert problem["field"], problem
    else:
        assert answer.status_code == c.status, answer.text
    assert store_state(http) == before
    assert http.get("/health").status_code == 200


def test_host_never_makes_a_link(http: httpx.Client) -> None:
    headers = {**VIEWER, "Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    for path in ("/zones?at=all&limit=1", "/reports?limit=1", "/incursions?limit=1"):
        answer = http.get(path, headers=headers)
        assert answer.status_code == 200
        assert "evil.example" not in answer.text + str(answer.headers)


SCRIPTS = ["зона-1", "Պառուխ", "€-100%", "🕊️✌🏽", "منطقة", "緩衝地帯", "a b?c#d&e=f+g%2F"]


@pytest.mark.parametrize("zone_id", SCRIPTS)
def test_zone_ids_in_any_script_end_to_end(http: httpx.Client, zone_id: str) -> None:
    created = http.post("/zones", json=zone_feature(zone_id, 10.0, 10.0), headers=ADMIN)
    assert created.status_code == 201, created.text
    location = urljoin(str(http.base_url), created.headers["location"])
    # Followed as a client follows it: the URL exactly as the header gives it.
    got = httpx.get(httpx.URL(location), headers=VIEWER)
    assert got.status_code == 200 and got.json()["id"] == zone_id
    history = httpx.get(httpx.URL(location + "/history"), headers=VIEWER).json()
    assert [f["id"] for f in history["features"]] == [zone_id]
    retry = http.post("/zones", json=zone_feature(zone_id, 10.0, 10.0), headers=ADMIN)
    assert_problem(retry, 409)


def test_a_big_numeric_id_keeps_its_digits_over_http(http: httpx.Client, tmp_path: Path) -> None:
    big = 1180591620717411303424
    body = collection(point_feature(*FAR, id=big), point_feature(*FAR, id=big + 1))
    filed = http.post("/reports", content=json.dumps(body).encode(), headers=OBSERVER).json()
    assert filed["stored"] == [str(big), str(big + 1)]
