"""`render`: an `app.predicate.Predicate` as parameterised SQL for the SQLite store.

The one place where the SQLite store turns a filter into SQL (the PostGIS store keeps its own
renderer of the same predicate, with `ST_Intersects` for `Intersects`). Interface, for every
store:

    render(predicate, columns) -> (sql, params)

- `columns` is the store's whitelist: property name -> `Column` (the SQL expression and how a
  literal is stored). A property not in it raises `ValueError` (the caller checked names
  against the collection's queryables first, so this is a bug, never user input).
- Every literal goes out as a `?` parameter, converted as the column stores it (times as
  microseconds since 1970 UTC); nothing the client sent is ever spliced into the text.
- The semantics are those of `app.predicate`: SQL's three-valued logic, case-sensitive `LIKE`
  with CQL2's wildcards (SQLite's own `LIKE` ignores ASCII case, so it is a registered function,
  `truce_like`), and `Intersects` on a report's point: a range test on `lon`/`lat` for boxes,
  and for other shapes the shape's envelope then `truce_intersects_xy(shape WKB, lon, lat)`,
  a registered function that tests the point against the prepared shape.

`register_functions(connection)` installs those two functions; `SQLiteStore` calls it on every
connection it opens.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from app.limits import to_us
from app.predicate import (
    And,
    Compare,
    In,
    Intersects,
    IsNull,
    Like,
    Not,
    Or,
    Predicate,
    Value,
    like_regex,
)

__all__ = ["REPORT_COLUMNS", "Column", "register_functions", "render"]


@dataclass(frozen=True, slots=True)
class Column:
    """A property's SQL expression, and whether it stores times as integer microseconds."""

    sql: str
    microseconds: bool = False


#: The report properties a filter may name, and their columns (`reports`, `report_versions`).
REPORT_COLUMNS: Mapping[str, Column] = {
    "id": Column("id"),
    "party": Column("party"),
    "observed_at": Column("observed_at", microseconds=True),
    "uncertainty_m": Column("uncertainty_m"),
    "kind": Column("kind"),
    "unit": Column("unit"),
    "source": Column("source"),
    "confidence": Column("confidence"),
    "notes": Column("notes"),
}

_SQL_OPS = {"=": "=", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def _value(column: Column, value: Value) -> Any:
    if isinstance(value, datetime):
        if not column.microseconds:
            raise ValueError(f"{column.sql} does not hold times")
        return to_us(value)  # the store's own encoding of times
    if isinstance(value, bool):
        return int(value)
    return value


def is_box(geometry: BaseGeometry) -> bool:
    """Whether a polygon is exactly its envelope (a lon/lat box)."""
    return bool(
        geometry.geom_type == "Polygon"
        and not list(geometry.interiors)
        and shapely.equals(geometry, shapely.envelope(geometry))
    )


def _intersects(predicate: Intersects, lon: str, lat: str) -> tuple[str, list[Any]]:
    geometry = predicate.geometry
    parts = list(geometry.geoms) if geometry.geom_type == "MultiPolygon" else [geometry]
    if all(is_box(part) for part in parts):
        boxes = []
        params: list[Any] = []
        for part in parts:
            minx, miny, maxx, maxy = part.bounds
            boxes.append(f"({lon} BETWEEN ? AND ? AND {lat} BETWEEN ? AND ?)")
            params += [minx, maxx, miny, maxy]
        return "(" + " OR ".join(boxes) + ")", params
    minx, miny, maxx, maxy = geometry.bounds
    return (
        f"({lon} BETWEEN ? AND ? AND {lat} BETWEEN ? AND ? "
        f"AND truce_intersects_xy(?, {lon}, {lat}))",
        [minx, maxx, miny, maxy, bytes(shapely.to_wkb(geometry))],
    )


def render(
    predicate: Predicate,
    columns: Mapping[str, Column],
    *,
    lon: str = "lon",
    lat: str = "lat",
) -> tuple[str, list[Any]]:
    """SQL for `predicate` over `columns` (see the module docstring), and its parameters."""
    if isinstance(predicate, And | Or):
        rendered = [render(part, columns, lon=lon, lat=lat) for part in predicate.parts]
        joiner = " AND " if isinstance(predicate, And) else " OR "
        return (
            "(" + joiner.join(sql for sql, _ in rendered) + ")",
            [param for _, params in rendered for param in params],
        )
    if isinstance(predicate, Not):
        sql, params = render(predicate.part, columns, lon=lon, lat=lat)
        return f"(NOT {sql})", params
    if isinstance(predicate, Intersects):
        return _intersects(predicate, lon, lat)
    column = columns.get(predicate.name)
    if column is None:
        raise ValueError(f"no column for the property {predicate.name!r}")
    if isinstance(predicate, IsNull):
        return f"({column.sql} IS NULL)", []
    if isinstance(predicate, Compare):
        return f"({column.sql} {_SQL_OPS[predicate.op]} ?)", [_value(column, predicate.value)]
    if isinstance(predicate, Like):
        return f"truce_like({column.sql}, ?)", [predicate.pattern]
    if isinstance(predicate, In):
        marks = ", ".join("?" * len(predicate.values))
        return f"({column.sql} IN ({marks}))", [_value(column, v) for v in predicate.values]
    return (
        f"({column.sql} BETWEEN ? AND ?)",
        [_value(column, predicate.low), _value(column, predicate.high)],
    )


# -- functions registered on every connection ---------------------------------------------------


def _like(value: Any, pattern: Any) -> int | None:
    if value is None or pattern is None:
        return None
    return int(like_regex(str(pattern)).fullmatch(str(value)) is not None)


@lru_cache(maxsize=64)
def _prepared(wkb: bytes) -> BaseGeometry:
    geometry = shapely.from_wkb(wkb)
    shapely.prepare(geometry)
    return geometry


def _intersects_xy(wkb: Any, lon: Any, lat: Any) -> int | None:
    if wkb is None or lon is None or lat is None:
        return None
    return int(shapely.intersects_xy(_prepared(bytes(wkb)), float(lon), float(lat)))


def register_functions(connection: sqlite3.Connection) -> None:
    """Install `truce_like` and `truce_intersects_xy` on a connection."""
    connection.create_function("truce_like", 2, _like, deterministic=True)
    connection.create_function("truce_intersects_xy", 3, _intersects_xy, deterministic=True)
