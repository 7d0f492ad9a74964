"""Zone and report validation, with reasons precise enough to fix the input.

Every refusal is a `TruceError` whose `field` is a JSON-pointer-like path to the bad value
("coordinates/0/3", "properties/valid_from"). Input is repaired only where the repair is
unambiguous, and every repair is reported as a note: an unclosed ring is closed, repeated
consecutive positions and altitudes are dropped, a ring crossing the antimeridian is split at ±180
(RFC 7946 §3.1.9). Rings in either winding order are accepted and written counter-clockwise.
Anything ambiguous, such as a self-intersecting ring, is refused rather than guessed at with
`make_valid`. A zone the engine cannot judge (one reaching more than `MAX_REACH_DEG` from its
centre: the world, a hemisphere, pole to pole) is refused naming its farthest position; the engine
decides with the same `zone_reach`, so the two never disagree.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

import antimeridian
import numpy as np
import numpy.typing as npt
import shapely
from shapely import LinearRing, MultiPolygon, Polygon

from app.domain import Report
from app.errors import InvalidGeometry, InvalidInput, InvalidReport, InvalidZone
from app.geodesy import angle_from_deg, zone_reach

__all__ = [
    "CONTROL_CHARACTERS",
    "MAX_CODE_CHARS",
    "MAX_DEPTH",
    "MAX_EXTRA_BYTES",
    "MAX_ID_CHARS",
    "MAX_NOTES_CHARS",
    "MAX_PARTIES",
    "MAX_TEXT_CHARS",
    "check_id",
    "check_longitude",
    "check_latitude",
    "check_party",
    "check_uncertainty",
    "check_validity_period",
    "describe",
    "join_path",
    "parse_enum",
    "parse_number",
    "parse_position",
    "parse_timestamp",
    "optional_string",
    "required_string",
    "validate_position",
    "validate_report",
    "validate_zone_geometry",
]

Coords = npt.NDArray[np.float64]
E = TypeVar("E", bound=StrEnum)

_VALID = "Valid Geometry"

# --- how big any one field may be -----------------------------------------------------------------
# The request body as a whole is limited by the settings (TRUCE_MAX_BODY_BYTES, 413); these
# bound each field (422 naming it), so that no one value can grow every page that shows it.

#: Zone and report ids.
MAX_ID_CHARS = 256
#: Party codes (a report's party, a zone's authorized parties) and unit names.
MAX_CODE_CHARS = 64
#: A report's notes.
MAX_NOTES_CHARS = 4096
#: Every other free text: zone names, agreement, source.
MAX_TEXT_CHARS = 1024
#: Authorized parties of one zone.
MAX_PARTIES = 256
#: A report's other properties, kept as sent: their size written as compact JSON.
MAX_EXTRA_BYTES = 16 * 1024
#: Nesting of a request body: arrays and objects within one another (a MultiPolygon zone in a
#: FeatureCollection is 8 deep).
MAX_DEPTH = 32

#: What an id must not contain: the Unicode controls (category Cc: C0 such as CR and LF, DEL and
#: C1) and the line and paragraph separators (Zl, Zp), which would break headers and logs.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_REASON = re.compile(r"^(?P<text>.*?)\s*\[(?P<x>\S+) (?P<y>\S+)\]$")
_AXES = ("longitude", "latitude", "altitude")


# --- small helpers shared with app.geojson --------------------------------------------------------


def join_path(*parts: str | int) -> str:
    """Join segments with "/", skipping empty ones ("", "coordinates", 0) -> "coordinates/0"."""
    return "/".join(str(part) for part in parts if part != "")


def describe(value: object) -> str:
    """Name a JSON value's type, with a short rendering of scalars, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, numbers.Number):
        return f"number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, Sequence):
        return "an array"
    return f"a {type(value).__name__}"


def _fmt(x: float) -> str:
    """Render a number as short as it round-trips: 181.0 -> "181", 95.2 -> "95.2"."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def _is_number(value: object) -> bool:
    # bool is an int in Python but never a coordinate or a distance in JSON.
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


# --- positions ------------------------------------------------------------------------------------


def _finite(value: object, field: str, what: str) -> float:
    if not _is_number(value):
        raise InvalidGeometry(f"{what} must be a number, got {describe(value)}", field=field)
    number = float(value)  # type: ignore[arg-type]  # _is_number checked it is a Real
    if not math.isfinite(number):
        raise InvalidGeometry(f"{what} is not a finite number ({number})", field=field)
    return number


def check_longitude(value: object, field: str) -> float:
    """Return `value` as a longitude in [-180, 180], or refuse it naming `field`."""
    lon = _finite(value, field, "longitude")
    if not -180.0 <= lon <= 180.0:
        raise InvalidGeometry(f"longitude {_fmt(lon)} is out of range [-180, 180]", field=field)
    return lon


def check_latitude(value: object, field: str) -> float:
    """Return `value` as a latitude in [-90, 90], or refuse it naming `field`."""
    lat = _finite(value, field, "latitude")
    if not -90.0 <= lat <= 90.0:
        raise InvalidGeometry(f"latitude {_fmt(lat)} is out of range [-90, 90]", field=field)
    return lat


def validate_position(lon: object, lat: object, field: str) -> None:
    """Refuse a position whose longitude or latitude is not a finite number in range.

    The message names `field`, e.g. "coordinates/0/3: latitude 95.2 is out of range [-90, 90]".
    """
    check_longitude(lon, field)
    check_latitude(lat, field)


def parse_position(value: object, field: str) -> tuple[float, float, bool]:
    """Parse a GeoJSON position `[lon, lat(, alt)]` into `(lon, lat, had_altitude)`.

    Elements past the second (altitude) must be finite numbers too, but are dropped: Truce is 2D.
    """
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidGeometry(f"expected a position [lon, lat], got {describe(value)}", field=field)
    if len(value) < 2:
        raise InvalidGeometry(
            f"a position needs 2 numbers [lon, lat], got {len(value)}", field=field
        )
    for axis, element in enumerate(value):
        what = _AXES[axis] if axis < len(_AXES) else f"coordinate {axis}"
        _finite(element, join_path(field, axis), what)
    lon, lat = float(value[0]), float(value[1])
    validate_position(lon, lat, field)
    return lon, lat, len(value) > 2


# --- zone geometry --------------------------------------------------------------------------------


@dataclasses.dataclass
class _Parse:
    """What one geometry's parse collects on the way: repair notes and altitude drops."""

    notes: list[str] = dataclasses.field(default_factory=list)
    altitudes: int = 0


@dataclasses.dataclass
class _Part:
    """One polygon of the input: its rings as (n, 2) arrays and the path of its coordinates."""

    rings: list[Coords]
    path: str
    # For each ring, the input index of each of its positions (repeats dropped, closure added).
    origins: list[npt.NDArray[np.intp]]


def _positions(value: object, path: str, state: _Parse) -> Coords:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidGeometry(
            f"expected a linear ring (an array of positions), got {describe(value)}", field=path
        )
    rows = []
    for i, position in enumerate(value):
        lon, lat, had_altitude = parse_position(position, join_path(path, i))
        state.altitudes += had_altitude
        rows.append((lon, lat))
    return np.array(rows, dtype=np.float64).reshape(-1, 2)


def _ring(value: object, path: str, state: _Parse) -> tuple[Coords, npt.NDArray[np.intp]]:
    """The ring, repaired, and the input index of each of its positions."""
    ring = _positions(value, path, state)
    origin = np.arange(len(ring))
    if len(ring) == 0:
        raise InvalidGeometry("linear ring is empty", field=path)
    repeated = np.concatenate([[False], np.all(ring[1:] == ring[:-1], axis=1)])
    if repeated.any():
        # A repeated position adds no edge; dropping it changes nothing but the vertex count.
        ring, origin = ring[~repeated], origin[~repeated]
        state.notes.append(
            f"{path}: removed {int(repeated.sum())} repeated consecutive position(s)"
        )
    if len(ring) > 1 and not np.array_equal(ring[0], ring[-1]):
        # RFC 7946 asks for closed rings; repeating the first position is the only closure.
        ring, origin = np.vstack([ring, ring[:1]]), np.append(origin, origin[0])
        state.notes.append(f"{path}: ring was not closed; closed it with its first position")
    distinct = len(np.unique(ring, axis=0))
    if len(ring) < 4 or distinct < 3:
        raise InvalidGeometry(
            "a linear ring needs at least 4 positions (3 distinct, then the first again), "
            f"got {len(ring)} with {distinct} distinct",
            field=path,
        )
    return ring, origin


def _polygon(value: object, path: str, state: _Parse) -> _Part:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidGeometry(
            f"expected a polygon (an array of linear rings), got {describe(value)}", field=path
        )
    if len(value) == 0:
        raise InvalidGeometry("a polygon needs at least its exterior ring, got none", field=path)
    rings = [_ring(ring, join_path(path, i), state) for i, ring in enumerate(value)]
    return _Part([r for r, _ in rings], path, [o for _, o in rings])


def _invalid(reason: str, path: str, *, suffix: str = "") -> InvalidGeometry:
    """Turn shapely's "Self-intersection[0.5 0.5]" into a message with the place in lon/lat."""
    match = _REASON.match(reason)
    if match is None:
        text = f"invalid geometry: {reason}"
    else:
        x, y = float(match["x"]), float(match["y"])
        # Locations from an unwrapped (antimeridian) frame are wrapped back to [-180, 180].
        lon = (x + 180.0) % 360.0 - 180.0 if abs(x) > 180.0 else x
        text = f"invalid geometry: {match['text']} near lon {_fmt(lon)}, lat {_fmt(y)}"
    return InvalidGeometry(f"{text}{suffix}; not repaired, as the fix is ambiguous", field=path)


def _valid_polygon(rings: list[Coords], path: str) -> Polygon:
    """Build the polygon, or refuse it with shapely's reason and the ring it comes from."""
    polygon = Polygon(rings[0], rings[1:])
    reason = shapely.is_valid_reason(polygon)
    if reason != _VALID:
        for i, ring in enumerate(rings):
            ring_reason = shapely.is_valid_reason(LinearRing(ring))
            if ring_reason != _VALID:
                raise _invalid(ring_reason, join_path(path, i))
        for i, hole in enumerate(rings[1:], start=1):
            hole_reason = shapely.is_valid_reason(Polygon(rings[0], [hole]))
            if hole_reason != _VALID:
                raise _invalid(hole_reason, join_path(path, i))
        raise _invalid(reason, path)
    if polygon.area <= 0.0:
        raise InvalidGeometry("polygon has zero area", field=path)
    return polygon


def _jumps(lon: Coords) -> npt.NDArray[np.bool_]:
    """Edges taken as crossing the antimeridian: a longitude jump of more than 180°.

    A jump of exactly 360° runs between -180 and 180, along the antimeridian, so is no crossing
    (the antimeridian package draws the same line).
    """
    step = np.abs(np.diff(lon))
    jumps: npt.NDArray[np.bool_] = (step > 180.0) & (step != 360.0)
    return jumps


def _unwrap(ring: Coords) -> Coords:
    """Shift longitudes by whole turns so that no edge jumps by more than 180°."""
    step = np.diff(ring[:, 0])
    turns = np.concatenate([[0.0], np.cumsum(-np.round(step / 360.0) * _jumps(ring[:, 0]))])
    # Whole multiples of 360 keep the input's digits exact, unlike cumulative sums of steps.
    return np.column_stack([ring[:, 0] + 360.0 * turns, ring[:, 1]])


def _split_at_antimeridian(part: _Part, state: _Parse) -> list[Polygon]:
    """Split a polygon whose rings cross the antimeridian into parts on either side of ±180."""
    unwrapped = []
    for i, ring in enumerate(part.rings):
        flat = _unwrap(ring)
        if flat[-1, 0] != flat[0, 0]:
            raise InvalidGeometry(
                "ring crosses the antimeridian an odd number of times, so it would enclose a pole;"
                " zones around a pole are not supported",
                field=join_path(part.path, i),
            )
        unwrapped.append(flat)
    # Put every hole in the shell's frame: the whole turn that brings its middle nearest.
    shell_mid = unwrapped[0][:, 0].min() / 2 + unwrapped[0][:, 0].max() / 2
    for i, hole in enumerate(unwrapped[1:], start=1):
        hole_mid = hole[:, 0].min() / 2 + hole[:, 0].max() / 2
        unwrapped[i] = hole + [360.0 * round((shell_mid - hole_mid) / 360.0), 0.0]
    span = max(r[:, 0].max() for r in unwrapped) - min(r[:, 0].min() for r in unwrapped)
    if span >= 360.0:
        raise InvalidGeometry("polygon spans 360° of longitude or more", field=part.path)
    whole = _valid_polygon(unwrapped, part.path)
    # Wind the input rings as the unwrapped ones should be (shell CCW, holes CW): the package
    # joins cut segments by their direction, and so need not guess which side is the zone.
    rings = [
        ring[::-1] if shapely.is_ccw(LinearRing(flat)) != (i == 0) else ring
        for i, (ring, flat) in enumerate(zip(part.rings, unwrapped, strict=True))
    ]
    try:
        # great_circle=False: edges are straight in lon/lat (docs/rule.md), so the crossing
        # latitude is interpolated linearly, exactly where the unwrapped edge meets ±180.
        fixed = antimeridian.fix_polygon(
            Polygon(rings[0], rings[1:]), great_circle=False, fix_winding=True
        )
    except (AssertionError, ValueError, shapely.errors.ShapelyError) as exc:
        raise InvalidGeometry(
            f"could not split the polygon at the antimeridian: {exc}", field=part.path
        ) from exc
    pieces = list(fixed.geoms) if isinstance(fixed, MultiPolygon) else [fixed]
    # The pieces must tile the unwrapped polygon; anything else is a split gone wrong (say, the
    # complement of the zone), which must not pass as the zone. The package rounds crossing
    # latitudes to 1e-7° (about 1 cm), which moves the area by at most 2.5e-8° per degree of
    # perimeter; a wrong split is off by far more.
    area = sum(piece.area for piece in pieces)
    if not all(shapely.is_valid(pieces)) or abs(area - whole.area) > 1e-7 * whole.length:
        raise InvalidGeometry(
            "could not split the polygon at the antimeridian unambiguously", field=part.path
        )
    state.notes.append(
        f"{part.path}: crosses the antimeridian; split at ±180 into {len(pieces)} polygon(s)"
        " (RFC 7946 §3.1.9)"
    )
    return pieces


def _build(part: _Part, state: _Parse) -> list[Polygon]:
    if any(_jumps(ring[:, 0]).any() for ring in part.rings):
        return _split_at_antimeridian(part, state)
    return [_valid_polygon(part.rings, part.path)]


def _check_parts_apart(polygons: list[Polygon], origin: list[int], path: str) -> None:
    """Refuse MultiPolygon parts that overlap, share an edge or nest, naming both parts."""
    multi = MultiPolygon(polygons)
    reason = shapely.is_valid_reason(multi)
    if reason == _VALID:
        return
    tree = shapely.STRtree(polygons)
    left, right = tree.query(polygons, predicate="intersects")
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        if i < j:
            pair_reason = shapely.is_valid_reason(MultiPolygon([polygons[i], polygons[j]]))
            if pair_reason != _VALID:
                raise _invalid(
                    pair_reason,
                    join_path(path, origin[j]),
                    suffix=f": polygon {origin[j]} overlaps or touches polygon {origin[i]} "
                    "along more than a point",
                )
    raise _invalid(reason, path)


def _check_reach(geometry: Polygon | MultiPolygon, parts: list[_Part]) -> None:
    """Refuse a zone the engine cannot judge (`zone_reach`), naming its farthest position."""
    reach = zone_reach(geometry)
    if reach.judgeable:
        return
    where, farthest = "", -1.0
    for part in parts:
        for i, (ring, origin) in enumerate(zip(part.rings, part.origins, strict=True)):
            angle = angle_from_deg(reach.centre, ring[:, 0], ring[:, 1])
            k = int(np.argmax(angle))
            if angle[k] > farthest:
                where, farthest = join_path(part.path, i, int(origin[k])), float(angle[k])
    raise InvalidGeometry(reach.reason(), field=where)


def validate_zone_geometry(
    geometry: Mapping[str, Any], *, path: str = ""
) -> tuple[Polygon | MultiPolygon, list[str]]:
    """Check a GeoJSON Polygon or MultiPolygon and return it as shapely, with repair notes.

    The result has counter-clockwise exteriors and clockwise holes. A Polygon crossing the
    antimeridian comes back as a MultiPolygon split at ±180; a MultiPolygon stays one.
    Errors and notes name fields relative to the geometry ("coordinates/0/3"), prefixed with
    `path` when given (e.g. "features/2/geometry").

    Raises:
        InvalidGeometry: for a wrong type, malformed or out-of-range coordinates, a ring of
            fewer than 3 distinct positions, a self-intersection, a hole outside its shell,
            overlapping parts, or zero area.
    """
    if not isinstance(geometry, Mapping):
        raise InvalidGeometry(
            f"expected a GeoJSON Polygon or MultiPolygon, got {describe(geometry)}", field=path
        )
    kind = geometry.get("type")
    if kind not in ("Polygon", "MultiPolygon"):
        got = repr(kind) if isinstance(kind, str) else describe(kind)
        raise InvalidGeometry(
            f"a zone must be a Polygon or MultiPolygon, got {got}", field=join_path(path, "type")
        )
    where = join_path(path, "coordinates")
    if "coordinates" not in geometry:
        raise InvalidGeometry("missing", field=where)
    coordinates = geometry["coordinates"]
    state = _Parse()
    if kind == "Polygon":
        parts = [_polygon(coordinates, where, state)]
    else:
        if isinstance(coordinates, str | bytes) or not isinstance(coordinates, Sequence):
            raise InvalidGeometry(
                f"expected an array of polygons, got {describe(coordinates)}", field=where
            )
        if len(coordinates) == 0:
            raise InvalidGeometry(
                "a MultiPolygon needs at least one polygon, got none", field=where
            )
        parts = [_polygon(p, join_path(where, i), state) for i, p in enumerate(coordinates)]

    polygons: list[Polygon] = []
    origin: list[int] = []  # which input part each output polygon comes from
    for i, part in enumerate(parts):
        built = _build(part, state)
        polygons += built
        origin += [i] * len(built)

    result: Polygon | MultiPolygon
    if kind == "Polygon" and len(polygons) == 1:
        result = polygons[0]
    else:
        _check_parts_apart(polygons, origin, where)
        result = MultiPolygon(polygons)
    _check_reach(result, parts)
    if state.altitudes:
        state.notes.append(
            f"{where}: dropped the altitude of {state.altitudes} position(s); zones are 2D"
        )
    return shapely.orient_polygons(result, exterior_cw=False), state.notes


# --- scalar properties ----------------------------------------------------------------------------


def _check_text(value: str, field: str, max_chars: int, error: type[InvalidInput]) -> str:
    if len(value) > max_chars:
        raise error(f"must be at most {max_chars:,} characters, got {len(value):,}", field=field)
    # Free text may hold line breaks and tabs, but not U+0000, which no text column of
    # PostgreSQL can hold (both stores refuse it alike).
    if "\x00" in value:
        raise error("must not contain U+0000 (NUL)", field=field)
    return value


def required_string(
    value: object,
    field: str,
    *,
    error: type[InvalidInput] = InvalidInput,
    max_chars: int = MAX_TEXT_CHARS,
) -> str:
    """Return `value` if it is a non-blank string of at most `max_chars`, else refuse it."""
    if value is None:
        raise error("is required", field=field)
    if not isinstance(value, str):
        raise error(f"must be a string, got {describe(value)}", field=field)
    if not value.strip():
        raise error("must not be empty", field=field)
    return _check_text(value, field, max_chars, error)


def optional_string(
    value: object,
    field: str,
    *,
    error: type[InvalidInput] = InvalidInput,
    max_chars: int = MAX_TEXT_CHARS,
) -> str | None:
    """Return `value` if it is null or a string of at most `max_chars`, else refuse it."""
    if value is None:
        return None
    if isinstance(value, str):
        return _check_text(value, field, max_chars, error)
    raise error(f"must be a string or null, got {describe(value)}", field=field)


def _control(text: str) -> str | None:
    """The first control character (C0, DEL, C1), line or paragraph separator in `text`."""
    found = CONTROL_CHARACTERS.search(text)
    return None if found is None else found.group()


def check_id(
    value: object,
    field: str,
    *,
    error: type[InvalidInput] = InvalidInput,
    path_safe: bool = False,
) -> str | None:
    """An id as text, or None when `value` is null.

    Ids are 1 to `MAX_ID_CHARS` characters of any script with no control characters (which
    would break headers and logs). A JSON number is an id too (RFC 7946 §3.2): a whole number
    is kept as its exact decimal text; any other number (1.5, 1e3) is refused, as its text is
    not exact once read. With `path_safe` (ids that name a resource in a URL path), "/" and the
    dot segments "." and ".." are refused as well.
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, float):
        raise error(
            f"a number used as an id must be a whole number such as 17, got {value!r}; "
            "send any other id as a string",
            field=field,
        )
    else:
        text = required_string(value, field, error=error, max_chars=MAX_ID_CHARS)
    if len(text) > MAX_ID_CHARS:
        raise error(f"must be at most {MAX_ID_CHARS} characters, got {len(text):,}", field=field)
    bad = _control(text)
    if bad is not None:
        raise error(f"must not contain control characters, found U+{ord(bad):04X}", field=field)
    if path_safe and ("/" in text or text in (".", "..")):
        raise error(
            f"{text!r}: an id that names a resource in a URL path must not contain '/' "
            "nor be '.' or '..'",
            field=field,
        )
    return text


def parse_number(
    value: object,
    field: str,
    *,
    minimum: float | None = None,
    error: type[InvalidInput] = InvalidInput,
) -> float:
    """Return `value` as a finite float, at least `minimum` when given, else refuse it."""
    if not _is_number(value):
        raise error(f"must be a number, got {describe(value)}", field=field)
    number = float(value)  # type: ignore[arg-type]  # _is_number checked it is a Real
    if not math.isfinite(number):
        raise error(f"must be a finite number, got {number}", field=field)
    if minimum is not None and number < minimum:
        raise error(f"must be at least {_fmt(minimum)}, got {_fmt(number)}", field=field)
    return number


def parse_enum(
    value: object, kind: type[E], field: str, *, error: type[InvalidInput] = InvalidInput
) -> E:
    """Return the member of `kind` named by `value` (any letter case), else refuse it."""
    allowed = ", ".join(member.value for member in kind)
    if not isinstance(value, str):
        raise error(f"must be one of {allowed}; got {describe(value)}", field=field)
    try:
        return kind(value.strip().lower())
    except ValueError:
        raise error(f"{value!r} is not one of {allowed}", field=field) from None


def parse_timestamp(
    value: object, field: str, *, error: type[InvalidInput] = InvalidInput
) -> datetime:
    """Parse an RFC 3339 / ISO 8601 date-time with a UTC offset ("2022-03-24T06:00:00+04:00").

    An aware `datetime` passes as it is. Naive date-times are refused: a report's time decides
    which zone versions are in force, and guessing the zone of a clock would move that line.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise error(
                f"{value!r} is not an RFC 3339 date-time such as 2022-03-24T06:00:00+04:00",
                field=field,
            ) from None
    else:
        raise error(f"must be an RFC 3339 date-time string, got {describe(value)}", field=field)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise error("datetime has no UTC offset; add one, such as Z or +04:00", field=field)
    return moment


def check_validity_period(valid_from: datetime, valid_to: datetime | None, field: str) -> None:
    """Refuse a zone validity period whose end is not after its start (`field` names the end)."""
    if valid_to is not None and valid_to <= valid_from:
        raise InvalidZone(
            f"valid_to {valid_to.isoformat()} must be after valid_from {valid_from.isoformat()}",
            field=field,
        )


def check_party(value: object, field: str) -> str:
    """Return a report's party code, a non-empty string, else refuse naming `field`."""
    return required_string(value, field, error=InvalidReport, max_chars=MAX_CODE_CHARS)


def check_uncertainty(value: object, field: str) -> float:
    """Return a report's uncertainty radius in metres, a finite number ≥ 0 (null means 0)."""
    if value is None:
        return 0.0
    return parse_number(value, field, minimum=0.0, error=InvalidReport)


def validate_report(report: Report, *, path: str = "") -> None:
    """Check a `Report` built in code as the GeoJSON parser checks its input.

    Python API, for scripts that make reports themselves: the HTTP API and the file readers
    validate as they parse (`app.geojson`, `app.io`) and do not call it.
    """
    check_id(report.id, join_path(path, "id"), error=InvalidReport)
    check_party(report.party, join_path(path, "party"))
    optional_string(
        report.unit, join_path(path, "unit"), error=InvalidReport, max_chars=MAX_CODE_CHARS
    )
    optional_string(report.source, join_path(path, "source"), error=InvalidReport)
    optional_string(
        report.notes, join_path(path, "notes"), error=InvalidReport, max_chars=MAX_NOTES_CHARS
    )
    parse_timestamp(report.observed_at, join_path(path, "observed_at"), error=InvalidReport)
    validate_position(report.lon, report.lat, join_path(path, "coordinates"))
    check_uncertainty(report.uncertainty_m, join_path(path, "uncertainty_m"))
