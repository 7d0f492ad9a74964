"""Filters as a small tree that every backend renders its own way.

A `Predicate` says which features of a collection to keep: comparisons of a property with a
literal, `LIKE`, `IN`, `BETWEEN`, `IS NULL`, `AND` / `OR` / `NOT`, and `Intersects` on the
feature's geometry. It names properties, never columns: each backend maps the names it knows to
its own storage through a whitelist, and refuses any other name. It is made from CQL2 text by
`app.cql2.parse_filter` (the OGC API's `filter` parameter), and from the `bbox` and `datetime`
parameters by `intersects_bbox` and `time_window`.

Backends that render it:

- `evaluate` (here): over columns of Python values in memory (zones, incursions, the reference
  layers), vectorised per node;
- `app.store.sqlite_filter.render`: parameterised SQL for the SQLite store's reports;
- a PostGIS store renders the same tree to its own SQL (`ST_Intersects` for `Intersects`).

Semantics every backend keeps (those of SQL):

- **Three-valued logic.** A comparison with a missing value (None, SQL NULL) is *unknown*;
  `NOT unknown` is unknown; `unknown AND false` is false, `unknown OR true` is true; a feature
  is kept only when the whole predicate is *true*. So `NOT (unit = 'x')` keeps no report
  without a unit, in memory as in SQL.
- **Strings** compare by code point (SQLite's BINARY collation on UTF-8 does the same); `LIKE`
  is case-sensitive, `%` matches any run of characters, `_` one character, and `\\` escapes
  the next character (CQL2's wildcards).
- **Times** are aware datetimes; backends compare instants (whatever their offsets).
- **Numbers** compare as floats; booleans as booleans.
- **Intersects** holds when the feature's geometry and the literal geometry share a point,
  boundaries included (shapely's `intersects` on lon/lat, as the rule draws edges).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

__all__ = [
    "And",
    "Between",
    "Compare",
    "In",
    "Intersects",
    "IsNull",
    "Like",
    "Not",
    "Or",
    "Predicate",
    "PropertyType",
    "Value",
    "all_of",
    "evaluate",
    "intersects_bbox",
    "like_regex",
    "properties_of",
    "time_window",
]

#: A literal a property is compared with.
Value: TypeAlias = str | float | int | bool | datetime


class PropertyType(StrEnum):
    """The type of a queryable property (as its JSON Schema in `/queryables` says)."""

    STRING = "string"
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    DATETIME = "datetime"


COMPARISONS = ("=", "<>", "<", "<=", ">", ">=")


@dataclass(frozen=True, slots=True)
class Compare:
    """`name op value`, op one of `COMPARISONS`."""

    name: str
    op: str
    value: Value


@dataclass(frozen=True, slots=True)
class Like:
    """`name LIKE pattern` (case-sensitive; `%`, `_`, `\\` as in CQL2)."""

    name: str
    pattern: str


@dataclass(frozen=True, slots=True)
class In:
    """`name IN (values)`."""

    name: str
    values: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Between:
    """`name BETWEEN low AND high` (both ends included)."""

    name: str
    low: Value
    high: Value


@dataclass(frozen=True, slots=True)
class IsNull:
    """`name IS NULL`."""

    name: str


@dataclass(frozen=True, slots=True)
class Intersects:
    """The feature's geometry shares a point with `geometry` (lon/lat, boundaries included)."""

    geometry: BaseGeometry


@dataclass(frozen=True, slots=True)
class Not:
    """`NOT part`."""

    part: Predicate


@dataclass(frozen=True, slots=True)
class And:
    """Every part holds."""

    parts: tuple[Predicate, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """At least one part holds."""

    parts: tuple[Predicate, ...]


Predicate: TypeAlias = Compare | Like | In | Between | IsNull | Intersects | Not | And | Or


def all_of(parts: Sequence[Predicate | None]) -> Predicate | None:
    """The conjunction of the parts given (None when there is none)."""
    kept = tuple(part for part in parts if part is not None)
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else And(kept)


def properties_of(predicate: Predicate | None) -> set[str]:
    """The property names a predicate reads."""
    if predicate is None or isinstance(predicate, Intersects):
        return set()
    if isinstance(predicate, Not):
        return properties_of(predicate.part)
    if isinstance(predicate, And | Or):
        return set().union(*(properties_of(part) for part in predicate.parts))
    return {predicate.name}


def intersects_bbox(bbox: tuple[float, float, float, float]) -> Intersects:
    """`Intersects` for a lon/lat box; a box whose min lon exceeds its max lon crosses 180°."""
    minx, miny, maxx, maxy = bbox
    if minx <= maxx:
        return Intersects(shapely.box(minx, miny, maxx, maxy))
    return Intersects(
        shapely.MultiPolygon(
            [shapely.box(minx, miny, 180, maxy), shapely.box(-180, miny, maxx, maxy)]
        )
    )


def time_window(
    start_name: str, end_name: str | None, since: datetime | None, until: datetime | None
) -> Predicate | None:
    """Features whose time (or validity `[start, end)`, with a missing end open) meets the
    half-open window `[since, until)`; None when both ends are open."""
    parts: list[Predicate] = []
    if until is not None:
        parts.append(Compare(start_name, "<", until))
    if since is not None:
        if end_name is None:
            parts.append(Compare(start_name, ">=", since))
        else:
            parts.append(Or((IsNull(end_name), Compare(end_name, ">", since))))
    return all_of(parts)


# -- in memory ----------------------------------------------------------------------------------

Bools = npt.NDArray[np.bool_]


@lru_cache(maxsize=256)
def like_regex(pattern: str) -> re.Pattern[str]:
    """The regular expression of a CQL2 `LIKE` pattern (whole value, case-sensitive)."""
    out = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _comparable(value: Any) -> Any:
    """Values as the backends compare them: datetimes as UTC instants, ints as floats."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: bool(a == b),
    "<>": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
}


def _leaf(column: Sequence[Any], test: Callable[[Any], bool]) -> tuple[Bools, Bools]:
    """(true, known) of a test on each value; a missing value, or one of another type than
    the literal's, is unknown (as SQL NULL)."""
    n = len(column)
    value, known = np.zeros(n, bool), np.zeros(n, bool)
    for i, v in enumerate(column):
        if v is None:
            continue
        try:
            value[i] = test(_comparable(v))
        except TypeError:
            continue
        known[i] = True
    return value, known


def _eval(
    predicate: Predicate,
    columns: Mapping[str, Sequence[Any]],
    geometries: npt.NDArray[np.object_],
    n: int,
) -> tuple[Bools, Bools]:
    """(true, known) per row: three-valued logic as two boolean arrays."""
    if isinstance(predicate, And | Or):
        value, known = _eval(predicate.parts[0], columns, geometries, n)
        for part in predicate.parts[1:]:
            v, k = _eval(part, columns, geometries, n)
            if isinstance(predicate, And):
                # false wins over unknown: known when both are known or either is false
                known = (known & k) | (known & ~value) | (k & ~v)
                value = value & v
            else:
                known = (known & k) | (known & value) | (k & v)
                value = value | v
        return value & known, known
    if isinstance(predicate, Not):
        value, known = _eval(predicate.part, columns, geometries, n)
        return ~value & known, known
    if isinstance(predicate, Intersects):
        hit = np.asarray(shapely.intersects(geometries, predicate.geometry), dtype=bool)
        return hit, np.ones(n, bool)
    column = columns[predicate.name]
    if isinstance(predicate, IsNull):
        return np.fromiter((v is None for v in column), bool, n), np.ones(n, bool)
    if isinstance(predicate, Compare):
        op, target = _OPS[predicate.op], _comparable(predicate.value)
        return _leaf(column, lambda v: op(v, target))
    if isinstance(predicate, Like):
        regex = like_regex(predicate.pattern)
        return _leaf(column, lambda v: isinstance(v, str) and regex.fullmatch(v) is not None)
    if isinstance(predicate, In):
        targets = [_comparable(v) for v in predicate.values]
        return _leaf(column, lambda v: any(v == t for t in targets))
    low, high = _comparable(predicate.low), _comparable(predicate.high)
    return _leaf(column, lambda v: bool(low <= v <= high))


def evaluate(
    predicate: Predicate | None,
    columns: Mapping[str, Sequence[Any]],
    geometries: Sequence[BaseGeometry | None] | npt.NDArray[np.object_],
) -> Bools:
    """Which rows the predicate keeps (true, not unknown).

    `columns` maps each property name the predicate reads to one value per row (None where the
    value is missing); `geometries` holds each row's shapely geometry.
    """
    n = len(geometries)
    if predicate is None:
        return np.ones(n, bool)
    array = np.empty(n, dtype=object)
    array[:] = list(geometries)
    value, known = _eval(predicate, columns, array, n)
    return value & known
