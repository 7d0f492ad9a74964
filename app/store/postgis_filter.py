"""`render_postgres`: an `app.predicate.Predicate` as parameterised SQL for the PostGIS store.

The PostGIS store's counterpart of `app.store.sqlite_filter.render`, with the same semantics
(those of `app.predicate`): every literal is a `%s` parameter, property names come from the
whitelist `REPORT_COLUMNS`, times are `timestamptz` values, `LIKE` is PostgreSQL's own (it is
case-sensitive and takes CQL2's `%`, `_` and `\\` escape as they are), and `Intersects` on a
report's point is a range test on `lon`/`lat` for boxes and `ST_Intersects` for other shapes.
"""

from __future__ import annotations

from typing import Any

import shapely

from app.predicate import And, Compare, In, Intersects, IsNull, Like, Not, Or, Predicate
from app.store.sqlite_filter import REPORT_COLUMNS, is_box

__all__ = ["render_postgres"]

_SQL_OPS = {"=": "=", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def _intersects(predicate: Intersects) -> tuple[str, list[Any]]:
    geometry = predicate.geometry
    parts = list(geometry.geoms) if geometry.geom_type == "MultiPolygon" else [geometry]
    if all(is_box(part) for part in parts):
        boxes = []
        params: list[Any] = []
        for part in parts:
            minx, miny, maxx, maxy = part.bounds
            boxes.append("(lon BETWEEN %s AND %s AND lat BETWEEN %s AND %s)")
            params += [minx, maxx, miny, maxy]
        return "(" + " OR ".join(boxes) + ")", params
    minx, miny, maxx, maxy = geometry.bounds
    return (
        "(lon BETWEEN %s AND %s AND lat BETWEEN %s AND %s "
        "AND ST_Intersects(geom, ST_GeomFromWKB(%s, 4326)))",
        [minx, maxx, miny, maxy, bytes(shapely.to_wkb(geometry))],
    )


def render_postgres(predicate: Predicate) -> tuple[str, list[Any]]:
    """SQL for `predicate` over the report columns, and its parameters."""
    if isinstance(predicate, And | Or):
        rendered = [render_postgres(part) for part in predicate.parts]
        joiner = " AND " if isinstance(predicate, And) else " OR "
        return (
            "(" + joiner.join(sql for sql, _ in rendered) + ")",
            [param for _, params in rendered for param in params],
        )
    if isinstance(predicate, Not):
        sql, params = render_postgres(predicate.part)
        return f"(NOT {sql})", params
    if isinstance(predicate, Intersects):
        return _intersects(predicate)
    column = REPORT_COLUMNS.get(predicate.name)
    if column is None:
        raise ValueError(f"no column for the property {predicate.name!r}")
    if isinstance(predicate, IsNull):
        return f"({column.sql} IS NULL)", []
    if isinstance(predicate, Compare):
        return f"({column.sql} {_SQL_OPS[predicate.op]} %s)", [predicate.value]
    if isinstance(predicate, Like):
        return f"({column.sql} LIKE %s)", [predicate.pattern]
    if isinstance(predicate, In):
        marks = ", ".join(["%s"] * len(predicate.values))
        return f"({column.sql} IN ({marks}))", list(predicate.values)
    return f"({column.sql} BETWEEN %s AND %s)", [predicate.low, predicate.high]
