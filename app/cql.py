"""CQL2 text (OGC API – Features Part 3's `filter`) read into an `app.predicate.Predicate`.

The text is parsed by `cql2` (PyPI; the Rust cql2-rs parser of the OGC's CQL2 grammar), which
gives its CQL2-JSON form; this module walks that JSON and builds the backend-neutral predicate,
checking every property against the collection's queryables and every literal against the
property's type. Nothing here renders SQL: the store does that from the predicate, with its own
whitelist of columns.

(pygeofilter 0.4, the other parser on PyPI, reads ``a OR b AND c`` as ``(a OR b) AND c``, does
not take the doubled quote that CQL2 uses to escape one in a string, and refuses one-letter
property names and ``NOT NOT``; cql2 follows the grammar on each.)

What is taken, and declared at `/conformance`:

- *basic-cql2*: ``= <> < <= > >=`` between a property and a literal (either side), ``IS [NOT]
  NULL``, ``AND``, ``OR``, ``NOT``, string, number, boolean, ``TIMESTAMP('…')`` and
  ``DATE('…')`` literals (a date is its midnight UTC when compared with a time);
- *advanced-comparison-operators*: ``LIKE`` (case-sensitive, ``%`` and ``_``), ``IN``,
  ``BETWEEN``;
- *basic-spatial-functions*, and any geometry for it: ``S_INTERSECTS(geometry, <BBOX(…), POINT,
  POLYGON, …>)`` in WGS84 lon/lat.

Everything else (temporal and array functions, arithmetic, ``CASEI``, comparing two
properties) is refused with a 400 problem that names the operator; unknown properties, literals
of the wrong type and values outside a property's enumeration are refused naming them. Input is
bounded before it reaches the parser: at most `MAX_FILTER_CHARS` characters and
`MAX_FILTER_NESTING` levels of parentheses and prefixes (`NOT`, `-`): cql2-rs parses
recursively, and a few thousand nested parentheses overflow its stack, which would end the
process rather than raise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

import cql2
import shapely
from shapely.geometry.base import BaseGeometry

from app.errors import InvalidParameter
from app.predicate import (
    COMPARISONS,
    And,
    Between,
    Compare,
    In,
    Intersects,
    IsNull,
    Like,
    Not,
    Or,
    Predicate,
    PropertyType,
    Value,
    intersects_bbox,
)

__all__ = [
    "GEOMETRY",
    "MAX_FILTER_CHARS",
    "MAX_FILTER_NESTING",
    "FilterError",
    "Queryable",
    "parse_filter",
]

#: The longest filter taken, in characters (a URL carries it; QGIS's and GDAL's are short).
MAX_FILTER_CHARS = 8192
#: The deepest nesting taken: parentheses, `NOT` and unary minus, counted together.
MAX_FILTER_NESTING = 64
#: The name of a feature's geometry in filters (`S_INTERSECTS(geometry, …)`).
GEOMETRY = "geometry"

_FLIP = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_NAMES = {"isNull": "IS NULL", "s_intersects": "S_INTERSECTS"}


class FilterError(InvalidParameter):
    """A `filter` that cannot be read or applied; the message names the bad part."""

    title = "Invalid filter"


@dataclass(frozen=True, slots=True)
class Queryable:
    """A property a filter may name: its type, its values when they are a closed set, and a
    description for `/queryables`."""

    type: PropertyType
    description: str
    enum: tuple[str, ...] | None = None


def _error(message: str) -> FilterError:
    return FilterError(message, field="filter")


def _check_bounds(text: str) -> None:
    """Refuse filters too long or too deeply nested for the parser (see the module docstring).

    Nesting is counted outside quoted strings and names: open parentheses, plus the run of
    prefixes (`NOT`, `-`, `(`) that leads to the current operand.
    """
    if len(text) > MAX_FILTER_CHARS:
        raise _error(f"the filter is {len(text)} characters long; at most {MAX_FILTER_CHARS}")
    depth = run = 0
    quote: str | None = None
    upper = text.upper()
    i = 0
    while i < len(text):
        ch = text[i]
        step = 1
        if quote is not None:
            if ch == quote:
                quote = None
            i += 1
            continue
        if ch in "'\"":
            quote, run = ch, 0
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth, run = max(depth - 1, 0), 0
        elif ch == "-":
            run += 1
        elif (
            upper.startswith("NOT", i)
            and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_"))
            and not (text[i + 3 : i + 4].isalnum() or text[i + 3 : i + 4] == "_")
        ):
            run, step = run + 1, 3
        elif not ch.isspace():
            run = 0
        if depth + run > MAX_FILTER_NESTING:
            raise _error(
                f"the filter nests deeper than {MAX_FILTER_NESTING} levels (parentheses, NOT "
                f"and minus signs) at character {i + 1}"
            )
        i += step


def _syntax_message(exc: Exception) -> str:
    """cql2's parse error, on one line: where it stopped and what it expected."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    where = next((line[3:].strip() for line in lines if line.startswith("-->")), None)
    expected = next((line.lstrip("= ").strip() for line in lines if line.startswith("=")), None)
    text = "a CQL2 text syntax error"
    if where:
        line, _, column = where.partition(":")
        text += f" at character {column}" if line == "1" else f" at line {line}, column {column}"
    if expected:
        text += f": {expected}"
    return text


def parse_filter(text: str, queryables: Mapping[str, Queryable]) -> Predicate:
    """The predicate of a CQL2 text filter over a collection with these queryables.

    Raises `FilterError` (a 400 problem on `filter`) naming the bad part.
    """
    if not text.strip():
        raise _error("the filter is empty")
    if any(ord(ch) < 32 and ch not in "\t\r\n" for ch in text):
        raise _error("the filter holds a control character")
    _check_bounds(text)
    try:
        tree = cql2.parse_text(text).to_json()
    except (cql2.ParseError, cql2.ValidationError, ValueError) as exc:
        raise _error(_syntax_message(exc)) from None
    return _Reader(queryables).predicate(tree)


class _Reader:
    """Walks CQL2-JSON (as cql2 writes it) into a predicate."""

    def __init__(self, queryables: Mapping[str, Queryable]) -> None:
        self.queryables = queryables

    # -- boolean structure ------------------------------------------------------------------

    def predicate(self, node: Any) -> Predicate:
        if isinstance(node, bool):
            raise _error(f"a bare {str(node).upper()} is not a filter; compare a property instead")
        if not isinstance(node, dict) or "op" not in node:
            raise _error(f"expected a condition, got {self._show(node)}")
        op, args = node["op"], node.get("args", [])
        if op in ("and", "or"):
            parts = tuple(self.predicate(arg) for arg in args)
            return And(parts) if op == "and" else Or(parts)
        if op == "not":
            return Not(self.predicate(args[0]))
        if op in COMPARISONS:
            return self._compare(op, args)
        if op == "isNull":
            return IsNull(self._property(args[0], "IS NULL"))
        if op == "like":
            name = self._property(args[0], "LIKE")
            if self.queryables[name].type is not PropertyType.STRING:
                raise _error(f"LIKE needs a string property; {name} is a {self._type(name)}")
            pattern = args[1]
            if not isinstance(pattern, str):
                raise _error(f"LIKE needs a string pattern, got {self._show(pattern)}")
            return Like(name, pattern)
        if op == "in":
            name = self._property(args[0], "IN")
            values = args[1]
            if not isinstance(values, list) or not values:
                raise _error(f"IN needs a list of values after {name}")
            return In(name, tuple(self._literal(name, value) for value in values))
        if op == "between":
            name = self._property(args[0], "BETWEEN")
            if self.queryables[name].type not in (
                PropertyType.NUMBER,
                PropertyType.INTEGER,
                PropertyType.DATETIME,
            ):
                raise _error(
                    f"BETWEEN needs a number or time property; {name} is a {self._type(name)}"
                )
            return Between(name, self._literal(name, args[1]), self._literal(name, args[2]))
        if op == "s_intersects":
            return self._intersects(args)
        shown = _NAMES.get(op, str(op).upper())
        raise _error(
            f"the operator {shown} is not supported; use comparisons (= <> < <= > >=), LIKE, "
            "IN, BETWEEN, IS NULL, AND, OR, NOT and S_INTERSECTS"
        )

    def _compare(self, op: str, args: list[Any]) -> Predicate:
        left, right = args
        if self._is_property(right) and not self._is_property(left):
            left, right, op = right, left, _FLIP[op]
        if self._is_property(right):
            raise _error(
                f"comparing two properties ({self._show(left)} {op} {self._show(right)}) is "
                "not supported; compare a property with a value"
            )
        name = self._property(left, op)
        if right is None:
            raise _error(f"{name} {op} NULL is never true; write {name} IS NULL")
        kind = self.queryables[name].type
        if op not in ("=", "<>") and kind is PropertyType.BOOLEAN:
            raise _error(f"{name} is a boolean: compare it with = or <>")
        return Compare(name, op, self._literal(name, right))

    def _intersects(self, args: list[Any]) -> Predicate:
        first, second = args
        if self._is_property(second) and not self._is_property(first):
            first, second = second, first
        if not (self._is_property(first) and first["property"] == GEOMETRY):
            raise _error(
                f"S_INTERSECTS compares the feature's geometry: S_INTERSECTS({GEOMETRY}, …), "
                f"got {self._show(first)}"
            )
        return self._geometry(second)

    def _geometry(self, node: Any) -> Intersects:
        if isinstance(node, dict) and "bbox" in node:
            box = node["bbox"]
            numbers = [v for v in box if isinstance(v, int | float) and not isinstance(v, bool)]
            if len(box) != 4 or len(numbers) != 4:
                raise _error("BBOX takes 4 numbers: min lon, min lat, max lon, max lat")
            minx, miny, maxx, maxy = (float(v) for v in box)
            if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)) or not (
                -180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= maxy <= 90
            ):
                raise _error(
                    "BBOX needs longitudes in [-180, 180] and latitudes in [-90, 90] with "
                    "min lat <= max lat"
                )
            return intersects_bbox((minx, miny, maxx, maxy))
        if not isinstance(node, dict) or "type" not in node:
            raise _error(f"S_INTERSECTS needs a geometry or BBOX, got {self._show(node)}")
        try:
            geometry: BaseGeometry = shapely.geometry.shape(node)
            coords = shapely.get_coordinates(geometry)
        except (ValueError, TypeError, AttributeError, shapely.errors.ShapelyError):
            raise _error(f"the {node.get('type')} in S_INTERSECTS cannot be read") from None
        if geometry.is_empty or not (
            (abs(coords[:, 0]) <= 180).all() and (abs(coords[:, 1]) <= 90).all()
        ):
            raise _error(
                f"the {node.get('type')} in S_INTERSECTS needs lon/lat coordinates "
                "(longitudes in [-180, 180], latitudes in [-90, 90])"
            )
        if not geometry.is_valid:
            geometry = shapely.make_valid(geometry)
        return Intersects(geometry)

    # -- properties and literals --------------------------------------------------------------

    @staticmethod
    def _is_property(node: Any) -> bool:
        return isinstance(node, dict) and set(node) == {"property"}

    def _property(self, node: Any, where: str) -> str:
        if not self._is_property(node):
            raise _error(f"{where} needs a property on one side, got {self._show(node)}")
        name = str(node["property"])
        if name == GEOMETRY:
            raise _error(f"{GEOMETRY} can only be used in S_INTERSECTS")
        if name not in self.queryables:
            known = ", ".join(sorted(self.queryables))
            raise _error(f"unknown property {name!r}; the queryables here are: {known}")
        return name

    def _type(self, name: str) -> str:
        return self.queryables[name].type.value

    def _literal(self, name: str, node: Any) -> Value:
        """`node` as a value of the property's type, or a `FilterError` naming both."""
        queryable = self.queryables[name]
        kind = queryable.type
        shown = self._show(node)
        if kind is PropertyType.STRING:
            if not isinstance(node, str):
                raise _error(f"{name} is a string; {shown} is not (quote it: '…')")
            if queryable.enum is not None and node not in queryable.enum:
                raise _error(f"{name} is one of {', '.join(queryable.enum)}; got {node!r}")
            return node
        if kind is PropertyType.BOOLEAN:
            if not isinstance(node, bool):
                raise _error(f"{name} is a boolean; {shown} is not (TRUE or FALSE)")
            return node
        if kind in (PropertyType.NUMBER, PropertyType.INTEGER):
            if isinstance(node, bool) or not isinstance(node, int | float):
                raise _error(f"{name} is a number; {shown} is not")
            if not math.isfinite(node):
                raise _error(f"{name}: {shown} is not a finite number")
            return float(node)
        return self._time(name, node)

    def _time(self, name: str, node: Any) -> datetime:
        if isinstance(node, dict) and set(node) == {"timestamp"}:
            text = str(node["timestamp"])
            try:
                moment = datetime.fromisoformat(text.replace("z", "Z"))
            except ValueError:
                raise _error(f"TIMESTAMP('{text}') is not an RFC 3339 time") from None
            if moment.tzinfo is None:
                raise _error(f"TIMESTAMP('{text}') needs a UTC offset (Z or +hh:mm)")
            return moment
        if isinstance(node, dict) and set(node) == {"date"}:
            text = str(node["date"])
            try:
                day = date.fromisoformat(text)
            except ValueError:
                raise _error(f"DATE('{text}') is not a date (YYYY-MM-DD)") from None
            return datetime.combine(day, time(), UTC)
        if isinstance(node, str):
            # A quoted RFC 3339 time, as the draft's cql-text (and GDAL) writes one.
            try:
                quoted = datetime.fromisoformat(node.replace("z", "Z"))
            except ValueError:
                quoted = None
            if quoted is not None and quoted.tzinfo is not None:
                return quoted
        raise _error(
            f"{name} is a time; compare it with TIMESTAMP('2022-03-24T00:00:00Z') or "
            f"DATE('2022-03-24'), not {self._show(node)}"
        )

    @staticmethod
    def _show(node: Any) -> str:
        """A node as the user might have written it, for messages."""
        if isinstance(node, dict):
            if set(node) == {"property"}:
                return str(node["property"])
            if "timestamp" in node:
                return f"TIMESTAMP('{node['timestamp']}')"
            if "date" in node:
                return f"DATE('{node['date']}')"
            if "op" in node:
                return f"{_NAMES.get(node['op'], str(node['op']).upper())}(…)"
            if "type" in node:
                return str(node["type"]).upper()
            if "bbox" in node:
                return "BBOX(…)"
        if isinstance(node, bool):
            return str(node).upper()
        if isinstance(node, str):
            short = node if len(node) <= 40 else node[:40] + "…"
            return repr(short)
        if node is None:
            return "NULL"
        if isinstance(node, list):
            return "(…)"
        if isinstance(node, float) and node.is_integer() and abs(node) < 1e15:
            return str(int(node))
        return str(node)
